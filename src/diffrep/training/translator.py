"""Training of an amortised translator (LMC-SDS's "cats to others", Alldieck et al. 2024; here mugs to ducks,
chairs, houses, cars): ``y = f_φ(x, k)`` on toy-world images ``x`` of the source kind with a random target kind
``k`` is pushed by a mode-seeking gradient ``g`` of the prior under the prompt "a {colour} {k}, {view} view"
(the source image's own colour and view labels) through the surrogate ``½‖y - sg(y - g)‖²``, plus the anchor
``λ_k/2 ‖y - x‖²`` whose weight falls from ``λ_0`` to 0 on a cosine over the run. The shared loop
(``diffrep.training.fit``) minimises it.

>>> weights = train(TranslatorTrainConfig(out=Path("runs/tr"), loss="lmc-sds", steps=600), resume=True)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from diffrep.errors import AdviceWarning, InputError
from diffrep.methods.corrective import CorrectiveConfig, prior_fingerprint
from diffrep.methods.distillation import (
    lmc_grad,
    nfsd_grad,
    sds_grad,
    surrogate_loss,
    t_bounds,
)
from diffrep.methods.translator import Translator, save_translator
from diffrep.priors.base import Prior
from diffrep.toyworld.vocabulary import COLOURS, KINDS, VIEWS
from diffrep.training.config import TranslatorTrainConfig
from diffrep.training.config import check_translator_config as check_config
from diffrep.training.config import translator_advice
from diffrep.training.loop import (
    LoopConfig,
    Task,
    fit,
    resolve_device,
    seeded,
    subconfig,
)

GradFn = Callable[[Tensor, list, Tensor, Tensor], Tensor]  # (y, conds, t, ε) -> g


def anchor_weight(anchor: float, step: int, steps: int) -> float:
    """``λ_k = λ_0 (1 + cos(π k / K)) / 2``: the anchor's weight at step ``k`` of ``K``, from ``λ_0`` down to 0."""
    return anchor * 0.5 * (1 + math.cos(math.pi * step / steps))


def prompt_of(kind: int, colour: int, view: int) -> str:
    """The distillation prompt of a target kind at a source image's colour and view (toy-world indices)."""
    return f"a {COLOURS[colour]} {KINDS[kind]}, {VIEWS[view]} view"


def source_split(kind: Tensor, source: int, holdout: float) -> tuple[Tensor, Tensor]:
    """Indices of the source kind's images, split into (training, held out): every ``round(1/holdout)``-th
    source image (in data order) is held out."""
    idx = (kind == source).nonzero().squeeze(1)
    every = max(1, round(1 / holdout))
    held = torch.arange(len(idx)) % every == 0
    return idx[~held], idx[held]


def source_images(config: TranslatorTrainConfig, res: int) -> dict[str, Tensor]:
    """The toy-world set of ``config`` at ``res``: ``images`` in [-1, 1] and the ``kind``, ``colour``, ``view`` labels."""
    from diffrep.priors.empirical import toyworld_data

    d = toyworld_data(config.data_n, res, config.data_seed)
    return {"images": d["images"].float() / 127.5 - 1} | {name: d[name].long() for name in ("kind", "colour", "view")}


def _sds_loss(prior: Prior, w: float, prior_name: str | None, corrective: str | None) -> GradFn:
    return lambda y, c, t, eps: sds_grad(prior, y, c, t=t, eps=eps, guidance_scale=w)


def _nfsd_loss(prior: Prior, w: float, prior_name: str | None, corrective: str | None) -> GradFn:
    threshold = round(0.2 * len(prior.alphas_cumprod))
    return lambda y, c, t, eps: nfsd_grad(prior, y, c, None, t=t, eps=eps, guidance_scale=w, t_threshold=threshold)


def _l_cond_loss(prior: Prior, w: float, prior_name: str | None, corrective: str | None) -> GradFn:
    return lambda y, c, t, eps: lmc_grad(prior, y, c, None, t=t, eps=eps, guidance_scale=w)


def _lmc_sds_loss(prior: Prior, w: float, prior_name: str | None, corrective: str | None) -> GradFn:
    from diffrep.methods.corrective import named_corrective
    from diffrep.priors.base import prior_device

    b_hat = named_corrective(corrective, prior, prior_name).to(prior_device(prior))
    return lambda y, c, t, eps: lmc_grad(prior, y, c, b_hat, t=t, eps=eps, guidance_scale=w)


LOSS_GRADS: dict[str, Callable[[Prior, float, str | None, str | None], GradFn]] = {
    "lmc-sds": _lmc_sds_loss, "sds": _sds_loss, "nfsd": _nfsd_loss, "l-cond": _l_cond_loss}
"""``TRANSLATOR_LOSSES`` (the torch-free names the command line checks) -> ``(prior, ω, prior's name, corrective) -> g``."""


def distillation_grad(name: str, prior: Prior, guidance_scale: float, *, prior_name: str | None = None,
                      corrective: str | None = None) -> GradFn:
    """``g(y, conds, t, ε)`` of the loss ``name`` (``LOSS_GRADS``), with the paper's options: SDS ``w = 1 - ᾱ_t``; NFSD
    ``t_threshold = 0.2 T``, no negative prompt; LMC-SDS ``corrective`` (a shipped one's name or a folder; default the
    prior's clean shipped one), ``1/ω`` scaling; ``l-cond`` LMC-SDS's ``g_cond / ω`` alone."""
    return LOSS_GRADS[name](prior, guidance_scale, prior_name, corrective)


def draw_batch(data: dict[str, Tensor], pairs: Tensor, conds: dict, config: TranslatorTrainConfig, T: int,
               schedule: dict[str, float], g: torch.Generator, rng: Any, *, device: torch.device):
    """``(x, k, conds, t, ε, λ)``: (source image, target kind) pairs drawn from ``pairs [P, 2]``, their prompts'
    conditions, ``t``, noise and the anchor weight of this step."""
    b = config.batch
    idx, k = pairs[torch.randint(len(pairs), (b,), generator=g)].unbind(1)
    t_min, t_max = t_bounds(T, config.t_range)
    t = torch.randint(t_min, t_max + 1, (b,), generator=g)
    eps = torch.randn(b, *data["images"].shape[1:], generator=g)
    c = [conds[(int(kk), int(data["colour"][i]), int(data["view"][i]))] for kk, i in zip(k, idx)]
    return data["images"][idx].to(device), k.to(device), c, t.to(device), eps.to(device), schedule["anchor"]


def training_pairs(prior: Prior, data: dict[str, Tensor], train_idx: Tensor, targets: list[int]) -> tuple[Tensor, dict]:
    """``(pairs [P, 2], conds)``: every (training source image, target kind) whose prompt the prior takes (an empirical
    prior refuses a colour-view-kind combination none of its images has), and the encoded prompts."""
    conds, pairs = {}, []
    for i in train_idx.tolist():
        for k in targets:
            key = (k, int(data["colour"][i]), int(data["view"][i]))
            if key not in conds:
                try:
                    conds[key] = prior.encode_prompt(prompt_of(*key))
                except InputError:
                    conds[key] = None
            if conds[key] is not None:
                pairs.append((i, k))
    return torch.tensor(pairs, dtype=torch.long).view(-1, 2), conds


def translation_loss(model: Translator, batch, g: torch.Generator, *, grad: GradFn) -> tuple[Tensor, dict[str, float]]:
    """``½‖y - sg(y - g)‖² + λ/2 ‖y - x‖²`` (sums over pixels, means over the batch), ``y = f_φ(x, k)``."""
    x, k, conds, t, eps, lam = batch
    y = model(x, k)
    with torch.no_grad():
        g_img = grad(y.detach(), conds, t, eps)
    anchor = 0.5 * (y - x).pow(2).flatten(1).sum(1).mean()
    return surrogate_loss(y, g_img) + lam * anchor, {
        "anchor_weight": lam, "anchor_l2": anchor.item(), "grad_norm": g_img.flatten(1).norm(dim=1).mean().item()}


def train(config: TranslatorTrainConfig, *, resume: bool = False,
          callback: Callable[[dict[str, Any]], None] | None = None, prior: Prior | None = None) -> Path:
    """Train (or continue) a translator with ``config.loss`` from ``config.prior`` (or the loaded ``prior`` given for
    it); returns the path of the exported EMA ``translator.safetensors`` (with ``translator.json``)."""
    from diffrep.training.corrective import load_on

    check_config(config)
    if (advice := translator_advice(config)) is not None:
        warnings.warn(advice, AdviceWarning, stacklevel=2)
    device = resolve_device(config.device)
    prior = load_on(config.prior, device) if prior is None else prior
    res = prior.image_shape[-1]
    data = source_images(config, res)
    source = KINDS.index(config.source)
    train_idx, _ = source_split(data["kind"], source, config.holdout)
    if len(train_idx) == 0:
        raise InputError(f"the toy-world set of {config.data_n} images holds no {config.source!r} image to train on")
    pairs, conds = training_pairs(prior, data, train_idx, [KINDS.index(k) for k in config.targets])
    if len(pairs) == 0:
        raise InputError(f"no prompt of targets {list(config.targets)} at the colours and views of the training "
                         f"{config.source!r} images matches the prior's images")
    grad = distillation_grad(config.loss, prior, config.guidance_scale, prior_name=config.prior, corrective=config.corrective)
    arch = CorrectiveConfig(config.channels, config.levels)
    model = seeded(config.seed, lambda: Translator(prior.image_shape, len(KINDS), arch))
    schedule = {"anchor": config.anchor}

    def at_step(step: int) -> None:
        schedule["anchor"] = anchor_weight(config.anchor, step, config.steps)

    task = Task(model, partial(translation_loss, grad=grad),
                partial(draw_batch, data, pairs, conds, config, len(prior.alphas_cumprod), schedule, device=device),
                meta={"config": {k: str(v) for k, v in asdict(config).items()}}, at_step=at_step)
    fitted = fit(task, subconfig(LoopConfig, config), resume=resume, callback=callback)
    training = {k: Path(v).name if k == "out" else v for k, v in asdict(config).items()} | {"step": fitted.step, "ema": True}
    meta = prior_fingerprint(prior, config.prior) | {
        "loss": config.loss, "source": config.source, "targets": list(config.targets), "kinds": list(KINDS),
        "training": training}
    return save_translator(fitted.ema.cpu(), config.out, meta)
