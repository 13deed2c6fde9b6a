"""The tiny prior's training objective: the toy-world training set, captioned batches and the DDPM
ε-loss with its options (P2 weighting, exact target, focused ``t``, label loss on the text features).

The loop that minimises it (AdamW, EMA, checkpoints, previews) is ``diffrep.training``; the run
that wires the two together is ``diffrep.training.tiny.train``.

>>> batch = draw_batch(training_set(200, 32, 0), 4, g, rng, encoder=TextEncoder())
>>> objective, metrics = eps_loss(model, batch, g, ab=linear_schedule().float(), config=LossConfig(p2_gamma=1.0))
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from torch import Tensor

from diffrep.priors.empirical import EmpiricalPrior
from diffrep.priors.prompts import LABELS, LabelQuery
from diffrep.priors.tiny.captions import HELD_OUT_COMBOS, named_caption
from diffrep.priors.tiny.text import TextEncoder
from diffrep.priors.tiny.unet import TinyUNet
from diffrep.schedule import linear_schedule

@dataclass(frozen=True)
class LossConfig:
    """Options of the tiny prior's ε-loss (``eps_loss``); names as in ``TrainConfig``."""

    p2_gamma: float = 0.0  # P2 weighting, 1 / (1 + SNR(t))^gamma (Choi et al. 2022); 0: the plain loss
    label_loss: float = 0.0  # weight of the label head's loss on the text features (needs a head)
    focus_t: tuple[int, int] = (300, 800)  # noise steps [lo, hi) where the layout (the view) is decided ...
    focus_p: float = 0.0  # ... and the fraction of each batch whose t is drawn there instead of from all steps


@dataclass(frozen=True)
class Batch:
    """Training images with one random caption each."""

    x0: Tensor  # [B, 3, H, W] in [-1, 1]
    text: Tensor  # [B, 384], or [B, 1 + MAX_TOKENS, 384] for a cross-attention U-Net
    asked: list[list[int]]  # per label of LABELS, the B images' values
    named: tuple[tuple[str, ...], ...]  # per image, the labels its caption names


def training_set(n: int, res: int, seed: int) -> tuple[Tensor, dict[str, list[int]]]:
    """Toy-world images ``[N, 3, H, W]`` in [-1, 1] and labels, without the held-out combos."""
    from diffrep.priors.empirical import toyworld_data

    d = toyworld_data(n, res, seed)
    held = torch.tensor([k * 1000 + c for k, c in sorted(HELD_OUT_COMBOS)])
    keep = ~torch.isin(d["kind"].long() * 1000 + d["colour"].long(), held)
    images = d["images"][keep].float() / 127.5 - 1
    return images, {name: d[name][keep].tolist() for name in LABELS}


def draw_batch(data: tuple[Tensor, dict[str, list[int]]], n: int, g: torch.Generator, rng: random.Random, *,
               encoder: TextEncoder, tokens: bool = False, device: str | torch.device = "cpu") -> Batch:
    """``n`` images of ``data`` (``training_set``) drawn with ``g``, each with a caption drawn with ``rng``
    and embedded by ``encoder`` (with the token states when ``tokens``: a cross-attention U-Net)."""
    images, labels = data
    idx = torch.randint(len(images), (n,), generator=g)
    asked = [[labels[name][i] for i in idx.tolist()] for name in LABELS]
    captions, named = zip(*(named_caption(k, c, v, rng) for k, c, v in zip(*asked)))
    text = encoder.condition(list(captions), tokens).to(device)
    return Batch(images[idx].to(device), text, asked, named)


def eps_loss(model: TinyUNet, batch: Batch, g: torch.Generator, *, ab: Tensor, config: LossConfig = LossConfig(),
             head: LabelHead | None = None, ideal: EmpiricalPrior | None = None) -> tuple[Tensor, dict[str, float]]:
    """``w(t) |eps - eps_theta(sqrt(ab_t) x0 + sqrt(1 - ab_t) eps, t, c)|^2`` with uniform ``t`` and
    ``w(t) = 1 / (1 + SNR(t))^p2_gamma`` (1 for the plain loss of DDPM eq. 14), plus ``label_loss``
    times ``head``'s loss on the text features. Returns the objective and both losses as floats.

    P2 weighting moves the loss from the low-noise steps, where the model only sharpens details,
    to the high-noise steps where the global layout (which way an object faces) is decided.

    With ``ideal`` (``ideal_denoiser`` of the training set) the target is not the drawn ``eps`` but
    its posterior mean ``E[eps | x_t, labels the caption names]`` over the training set: the exact
    minimiser of the same loss (design §2), so the optimum is unchanged, while the target's
    variance at high noise, where a single image's ``eps`` says little about the layout, drops to
    nothing (a stable target field, Xu et al. 2023, with the whole set as reference batch).

    With ``focus_t = (lo, hi)`` the first ``round(focus_p * B)`` timesteps are drawn from
    ``[lo, hi)`` instead: more of each step goes to the noise levels where the layout is decided
    and the view word matters (``E[eps | x_t, c]`` at each t, the optimum, is unchanged)."""
    n, device = len(batch.x0), batch.x0.device
    t = torch.randint(len(ab), (n,), generator=g)
    if config.focus_p:
        k, (lo, hi) = round(config.focus_p * n), config.focus_t
        t[:k] = lo + t[:k] * (hi - lo) // len(ab)  # the same draws, squeezed into [lo, hi)
    eps = torch.randn(n, *batch.x0.shape[1:], generator=g).to(device)  # drawn on the CPU: same stream on any device
    t = t.to(device)
    a = ab[t].sqrt().view(-1, 1, 1, 1)
    x_t = a * batch.x0 + (1 - a**2).sqrt() * eps  # forward process (DDPM eq. 4)
    if ideal is not None:
        eps = exact_eps(ideal, x_t, t, batch)
    err = (model(x_t, t, batch.text) - eps).pow(2)
    loss = (err.mean((1, 2, 3)) * (1 - a.flatten()**2).pow(config.p2_gamma)).mean() if config.p2_gamma else err.mean()  # 1/(1+SNR) = 1-ab
    if head is None:
        return loss, {"loss": loss.item()}
    text = batch.text[:, 0] if batch.text.ndim == 3 else batch.text  # the pooled row
    aux = head.loss(model.text_mlp(text), batch.asked, batch.named)
    return loss + config.label_loss * aux, {"loss": loss.item(), "label_loss": aux.item()}


def exact_eps(ideal: EmpiricalPrior, x_t: Tensor, t: Tensor, batch: Batch) -> Tensor:
    """``E[eps | x_t, labels the caption names]`` over the training set (``exact_target``)."""
    queries = [LabelQuery(**{n: a[i] for n, a in zip(LABELS, batch.asked) if n in names}) if names else None
               for i, names in enumerate(batch.named)]
    return ideal.eps(x_t.cpu(), t.cpu(), queries).to(x_t.device)


def ideal_denoiser(images: Tensor, labels: dict[str, list[int]]) -> EmpiricalPrior:
    """The training set's exact denoiser given any subset of its labels (``--exact-target``)."""
    return EmpiricalPrior(images, {n: torch.tensor(labels[n]) for n in LABELS}, alphas_cumprod=linear_schedule())


class LabelHead(torch.nn.Module):
    """Linear read-out of the labels a caption names from the U-Net's text features (training only).

    A prompt reaches the U-Net as one pooled sentence embedding in which the view word moves the
    vector little (cosine 0.966 front vs back, 0.849 for a colour change), and plain training left
    the view out of the text features: ``text_mlp`` scaled view differences by ~0.5 and colour
    differences by ~3 (docs/tiny_prior.md). Asking the features to name every label the caption
    names (cross-entropy, captions that do not name a label are left out for it) keeps the view
    in them, invariant to the phrasing; the head is not part of the shipped prior. Its rows are
    unit vectors (a cosine classifier at scale 1, no bias): it cannot lower the loss by growing its
    own weights, only the features can, by moving apart for captions that name different labels."""

    def __init__(self, emb_dim: int):
        super().__init__()
        from diffrep.toyworld import COLOURS, KINDS, VIEWS

        self.sizes = {"kind": len(KINDS), "colour": len(COLOURS), "view": len(VIEWS)}
        self.weight = torch.nn.Parameter(torch.randn(sum(self.sizes.values()), emb_dim))

    def loss(self, features: Tensor, asked: list[list[int]], named: tuple[tuple[str, ...], ...]) -> Tensor:
        """Sum over kind, colour and view of the mean cross-entropy on the captions naming it."""
        logits = features @ torch.nn.functional.normalize(self.weight, dim=1).T
        total, start = features.new_zeros(()), 0
        for name, target in zip(LABELS, asked):
            size = self.sizes[name]
            rows = [i for i, n in enumerate(named) if name in n]
            if rows:
                total = total + torch.nn.functional.cross_entropy(
                    logits[rows, start:start + size], torch.tensor(target, device=features.device)[rows])
            start += size
        return total
