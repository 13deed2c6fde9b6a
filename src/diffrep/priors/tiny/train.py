"""Training of the tiny prior: DDPM ε-loss on toy-world images with augmented captions.

>>> from diffrep.priors.tiny.train import TrainConfig, train
>>> weights = train(TrainConfig(out=Path("runs/tiny"), steps=20_000), resume=True, callback=print)
"""

from __future__ import annotations

import copy
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from diffrep.checkpoint import atomic_save, load_optimizer, optimizer_tensors
from diffrep.errors import InputError
from diffrep.priors.empirical import EmpiricalPrior
from diffrep.priors.prompts import LabelQuery
from diffrep.priors.tiny.captions import HELD_OUT_COMBOS, named_caption
from diffrep.priors.tiny.text import TextEncoder
from diffrep.priors.tiny.unet import TinyUNet, UNetConfig
from diffrep.schedule import linear_schedule

LABELS: tuple[str, ...] = ("kind", "colour", "view")  # the labels of a toy-world image a caption can name
SAMPLE_PROMPTS: tuple[str, ...] = (
    "a red ball, front view", "a blue cube, side view", "a yellow duck, back view", "a green car, overhead view",
    "a crimson mug seen from the side", "something purple", "a teapot", "",
)


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of a tiny-prior training run."""

    out: Path  # run directory: checkpoints, sample grids, final tiny.safetensors + tiny.json
    res: int = 32  # image side, 32 or 64
    steps: int = 20_000  # total optimiser steps (the shipped weights: 11,000 + 6,000 + 1,500 + 8,000 in four runs, TRAINING.md)
    batch: int = 32  # images per step
    lr: float = 4e-4  # AdamW learning rate (constant)
    ema_decay: float = 0.999  # EMA of the weights used for sampling and export
    checkpoint_every: int = 1000  # steps between checkpoints (0: only at the end)
    sample_every: int = 2000  # steps between sample grids (0: never)
    data_n: int = 20_000  # toy-world images generated (held-out combos are then dropped)
    seed: int = 0  # seed of the data set, the captions, timesteps, noise and initial weights
    device: str = "auto"  # "auto" (CUDA when present), "cpu" or "cuda"
    channels: int = 32  # U-Net width at full resolution (32: 1.53 M parameters)
    cross_attention: bool = False  # attend to the prompt's token states at 16² and 8² (UNetConfig; experimental)
    scale_shift: bool = False  # the embedding also scales and shifts normalised features (UNetConfig, ADM's AdaGN)
    scale_shift_res: int = 0  # ... only in blocks whose feature map is at most this side (16, 8; 0: every block)
    label_loss: float = 0.0  # weight of the auxiliary loss: the text features name the caption's labels (see docs)
    p2_gamma: float = 0.0  # P2 weighting of the ε-loss, 1 / (1 + SNR(t))^gamma (Choi et al. 2022); 0: plain
    exact_target: bool = False  # regress on the training set's exact posterior-mean ε instead of the drawn ε (see train_step)
    focus_t: tuple[int, int] = (300, 800)  # noise steps [lo, hi) where the layout (the view) is decided ...
    focus_p: float = 0.0  # ... and the fraction of each batch whose t is drawn there instead of from all steps
    init: Path | None = None  # start from these tiny.safetensors weights (fine-tuning); new layers keep their init
    sample_steps: int = 50  # DDIM steps of the sample grids
    half: bool = False  # export the EMA weights in float16 (half the file; loaded back as float32)


def train(config: TrainConfig, *, resume: bool = False, callback: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """Train (or continue) a tiny prior; returns the path of the exported EMA ``tiny.safetensors``."""
    check_config(config)
    device = torch.device("cuda" if config.device == "auto" and torch.cuda.is_available() else
                          "cpu" if config.device == "auto" else config.device)
    images, labels = training_set(config)
    g = torch.Generator().manual_seed(config.seed)
    with torch.random.fork_rng(devices=[]):  # seeded initial weights; the caller's global RNG is left untouched
        torch.manual_seed(config.seed)
        model = TinyUNet(UNetConfig(res=config.res, channels=config.channels, cross_attention=config.cross_attention,
                                    scale_shift=config.scale_shift, scale_shift_res=config.scale_shift_res))
        head = LabelHead(4 * config.channels) if config.label_loss else None
    init_sha256 = init_from(model, config.init) if config.init is not None else None
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW([*model.parameters(), *(head.parameters() if head else ())], lr=config.lr)
    rng, step = random.Random(config.seed), 0
    if resume and (config.out / "checkpoint.json").is_file():
        step = load_checkpoint(config.out, model, ema, opt, g, rng, head)
    model.to(device), ema.to(device)
    if head is not None:
        head.to(device)
    _move_optimizer(opt, device)
    encoder, ab = TextEncoder(), linear_schedule().to(device, torch.float32)
    ideal = ideal_denoiser(images, labels) if config.exact_target else None
    t0 = time.perf_counter()
    while step < config.steps:
        loss, label_loss = train_step(model, opt, images, labels, encoder, ab, g, rng, config.batch, device,
                                      config.p2_gamma, head, config.label_loss, ideal, config.focus_t, config.focus_p)
        # EMA warm-up: early on the average would otherwise sit mostly on the random initial weights.
        ema_update(ema, model, min(config.ema_decay, (1 + step) / (10 + step)))
        step += 1
        info: dict[str, Any] = {"step": step, "steps": config.steps, "loss": loss, "seconds": time.perf_counter() - t0}
        if head is not None:
            info["label_loss"] = label_loss
        if config.checkpoint_every and step % config.checkpoint_every == 0 or step == config.steps:
            info["checkpoint"] = save_checkpoint(config, model, ema, opt, g, rng, step, head)
        if config.sample_every and step % config.sample_every == 0:
            info["samples"] = sample_grid(ema, encoder, config.out / f"samples-{step:07d}.png", config.sample_steps)
        if callback is not None:
            callback(info)
    from diffrep.priors.tiny import save_tiny

    training = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()}
    state = {k: v.half() if config.half and v.is_floating_point() else v for k, v in _cpu(ema.state_dict()).items()}
    return save_tiny(ema, config.out / "tiny.safetensors", state,
                     {"training": training | {"step": step, "ema": True, "init_sha256": init_sha256}})


# Options that add layers whose output starts at zero, by config key and parameter-name part:
# a model with them loaded from weights trained without them computes the same function.
ADDED_AT_ZERO: dict[str, str] = {"cross_attention": ".cross.", "scale_shift": ".film.", "scale_shift_res": ".film."}


def init_from(model: TinyUNet, path: Path) -> str:
    """Load ``tiny.safetensors`` weights into ``model`` for fine-tuning; layers the file lacks
    (``ADDED_AT_ZERO``: cross-attention, scale-shift of a model trained without them) keep their
    initialisation, which leaves the loaded model's function unchanged. Returns the file's SHA-256."""
    from diffrep.priors.tiny import load_tiny, weights_sha256

    loaded = load_tiny(path).model  # the same checks and one-line errors as --prior-path
    mine, theirs = model.config.to_dict(), loaded.config.to_dict()
    if any(mine[k] != theirs[k] for k in mine if k not in ADDED_AT_ZERO):
        raise InputError(f"init={str(path)!r} has architecture {theirs}, which does not match this run's {mine}")
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    if unexpected or any(not any(part in k for part in ADDED_AT_ZERO.values()) for k in missing):
        raise InputError(f"init={str(path)!r} does not fit this run: missing {missing}, unexpected {unexpected}")
    return weights_sha256(path)


def check_config(config: TrainConfig) -> None:
    """Validate a ``TrainConfig`` at the edge."""
    if config.res not in (32, 64):
        raise InputError(f"res={config.res} is not allowed; the toy world renders 32 or 64")
    for name in ("steps", "batch", "data_n", "channels", "sample_steps"):
        if getattr(config, name) < 1:
            raise InputError(f"{name}={getattr(config, name)} must be a positive integer")
    if config.channels % 8:
        raise InputError(f"channels={config.channels} must be a multiple of 8 (GroupNorm groups)")
    if config.label_loss < 0:
        raise InputError(f"label_loss={config.label_loss} must be >= 0 (0: no auxiliary loss)")
    if not 0 <= config.focus_p <= 1:
        raise InputError(f"focus_p={config.focus_p} must be in [0, 1] (0: t uniform over all steps)")
    if not 0 <= config.focus_t[0] < config.focus_t[1] <= 1000:
        raise InputError(f"focus_t={config.focus_t} must be lo < hi within [0, 1000] (the noise steps)")
    sides = [config.res >> i for i in range(len(UNetConfig().mults))]
    if config.scale_shift_res and (not config.scale_shift or config.scale_shift_res not in sides):
        raise InputError(f"scale_shift_res={config.scale_shift_res} is not allowed; with --scale-shift: 0 (every block) "
                         f"or a feature-map side, {', '.join(map(str, sides))}")
    if config.p2_gamma < 0:
        raise InputError(f"p2_gamma={config.p2_gamma} must be >= 0 (0: the plain ε-loss)")
    if config.init is not None and not Path(config.init).exists():
        raise InputError(f"init={str(config.init)!r} does not exist; give a tiny.safetensors file or the folder holding it")
    if config.device not in ("auto", "cpu", "cuda"):
        raise InputError(f"device={config.device!r} is not allowed; allowed: auto, cpu, cuda")


def training_set(config: TrainConfig) -> tuple[Tensor, dict[str, list[int]]]:
    """Toy-world images ``[N, 3, H, W]`` in [-1, 1] and labels, without the held-out combos."""
    from diffrep.priors.empirical import toyworld_data

    d = toyworld_data(config.data_n, config.res, config.seed)
    held = torch.tensor([k * 1000 + c for k, c in sorted(HELD_OUT_COMBOS)])
    keep = ~torch.isin(d["kind"].long() * 1000 + d["colour"].long(), held)
    images = d["images"][keep].float() / 127.5 - 1
    return images, {name: d[name][keep].tolist() for name in LABELS}


def train_step(model: TinyUNet, opt: torch.optim.Optimizer, images: Tensor, labels: dict[str, list[int]],
               encoder: TextEncoder, ab: Tensor, g: torch.Generator, rng: random.Random, batch: int, device,
               p2_gamma: float = 0.0, head: LabelHead | None = None, label_weight: float = 0.0,
               ideal: EmpiricalPrior | None = None, focus_t: tuple[int, int] = (0, 1000),
               focus_p: float = 0.0) -> tuple[float, float | None]:
    """One DDPM step: ``w(t) |eps - eps_theta(sqrt(ab_t) x0 + sqrt(1 - ab_t) eps, t, c)|^2`` with uniform ``t``
    and ``w(t) = 1 / (1 + SNR(t))^p2_gamma`` (1 for the plain loss of DDPM eq. 14), plus
    ``label_weight`` times ``head``'s label loss on the text features. Returns both losses.

    P2 weighting moves the loss from the low-noise steps, where the model only sharpens details,
    to the high-noise steps where the global layout (which way an object faces) is decided.

    With ``ideal`` (``ideal_denoiser`` of the training set) the target is not the drawn ``eps`` but
    its posterior mean ``E[eps | x_t, labels the caption names]`` over the training set: the exact
    minimiser of the same loss (design §2), so the optimum is unchanged, while the target's
    variance at high noise, where a single image's ``eps`` says little about the layout, drops to
    nothing (a stable target field, Xu et al. 2023, with the whole set as reference batch).

    With ``focus_t = (lo, hi)`` the first ``round(focus_p * batch)`` timesteps are drawn from
    ``[lo, hi)`` instead: more of each step goes to the noise levels where the layout is decided
    and the view word matters (``E[eps | x_t, c]`` at each t, the optimum, is unchanged)."""
    idx = torch.randint(len(images), (batch,), generator=g)
    t = torch.randint(len(ab), (batch,), generator=g)
    if focus_p:
        n = round(focus_p * batch)
        t[:n] = focus_t[0] + t[:n] * (focus_t[1] - focus_t[0]) // len(ab)  # the same draws, squeezed into [lo, hi)
    eps = torch.randn(batch, *images.shape[1:], generator=g)  # drawn on the CPU: same stream on any device
    asked = [[labels[n][i] for i in idx.tolist()] for n in LABELS]
    captions, named = zip(*(named_caption(k, c, v, rng) for k, c, v in zip(*asked)))
    x0, t, eps = images[idx].to(device), t.to(device), eps.to(device)
    a = ab[t].sqrt().view(-1, 1, 1, 1)
    x_t = a * x0 + (1 - a**2).sqrt() * eps  # forward process (DDPM eq. 4)
    text = encoder.condition(list(captions), model.config.cross_attention).to(device)
    if ideal is not None:
        queries = [LabelQuery(**{n: a[i] for n, a in zip(LABELS, asked) if n in names}) if names else None
                   for i, names in enumerate(named)]
        eps = ideal.eps(x_t.cpu(), t.cpu(), queries).to(device)
    err = (model(x_t, t, text) - eps).pow(2)
    loss = (err.mean((1, 2, 3)) * (1 - a.flatten()**2).pow(p2_gamma)).mean() if p2_gamma else err.mean()  # 1/(1+SNR) = 1-ab
    aux = head.loss(model.text_mlp(text[:, 0] if text.ndim == 3 else text), asked, named) if head is not None else None
    opt.zero_grad(set_to_none=True)
    (loss + label_weight * aux if aux is not None else loss).backward()
    opt.step()
    return loss.item(), None if aux is None else aux.item()


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


@torch.no_grad()
def ema_update(ema: TinyUNet, model: TinyUNet, decay: float) -> None:
    """``theta_ema <- decay theta_ema + (1 - decay) theta``."""
    for pe, p in zip(ema.parameters(), model.parameters()):
        pe.lerp_(p, 1 - decay)


@torch.no_grad()
def sample_grid(ema: TinyUNet, encoder: TextEncoder, path: Path, steps: int) -> Path:
    """DDIM samples of ``SAMPLE_PROMPTS`` (CFG 3, fixed seed) from the EMA model, as one PNG."""
    from diffrep.export import image_grid
    from diffrep.priors.tiny import TinyPrior
    from diffrep.samplers import sample_ddim
    from diffrep.schedule import timesteps

    prior = TinyPrior(ema, encoder)
    conds = [prior.encode_prompt(p) for p in SAMPLE_PROMPTS]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(len(conds), *prior.image_shape, generator=g)
    x0 = sample_ddim(prior, x, timesteps(len(prior.alphas_cumprod), steps), conds, guidance_scale=3.0, generator=g)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    image_grid(x0, nrow=len(conds), scale=2).save(tmp, format="PNG")
    os.replace(tmp, path)
    return path


def save_checkpoint(config: TrainConfig, model: TinyUNet, ema: TinyUNet, opt: torch.optim.Optimizer,
                    g: torch.Generator, rng: random.Random, step: int, head: LabelHead | None = None) -> Path:
    """Model, EMA, label head, AdamW moments, step and RNG states as ``checkpoint.safetensors`` +
    ``checkpoint.json``."""
    opt_tensors, param_groups = optimizer_tensors(opt)
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors |= {f"ema.{k}": v for k, v in ema.state_dict().items()}
    tensors |= {f"head.{k}": v for k, v in (head.state_dict() if head is not None else {}).items()}
    tensors |= opt_tensors
    tensors["rng.torch"] = g.get_state()
    version, state, gauss = rng.getstate()
    meta = {"step": step, "config": {k: str(v) for k, v in asdict(config).items()}, "unet": model.config.to_dict(),
            "param_groups": param_groups, "rng.python": [version, list(state), gauss]}
    path = config.out / "checkpoint.safetensors"
    atomic_save(tensors, path, meta)
    return path


def load_checkpoint(out: Path, model: TinyUNet, ema: TinyUNet, opt: torch.optim.Optimizer,
                    g: torch.Generator, rng: random.Random, head: LabelHead | None = None) -> int:
    """Restore what ``save_checkpoint`` wrote; returns the step to continue from."""
    from safetensors.torch import load_file

    try:
        meta = json.loads((out / "checkpoint.json").read_text())
        tensors = load_file(out / "checkpoint.safetensors")
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
        if head is not None:
            head.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("head.")})
    except Exception as e:
        raise InputError(f"checkpoint in {str(out)!r} cannot be resumed: {e}") from None
    load_optimizer(opt, tensors, meta["param_groups"])
    g.set_state(tensors["rng.torch"])
    version, s, gauss = meta["rng.python"]
    rng.setstate((version, tuple(s), gauss))
    return int(meta["step"])


def _move_optimizer(opt: torch.optim.Optimizer, device: torch.device) -> None:
    for s in opt.state.values():
        for k, v in s.items():
            if isinstance(v, Tensor) and k != "step":
                s[k] = v.to(device)


def _cpu(state: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.cpu() for k, v in state.items()}
