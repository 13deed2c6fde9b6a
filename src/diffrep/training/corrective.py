"""Training of LMC-SDS's corrective ``b̂_ψ`` (design §4): ``L_k`` between ``b̂(x, t)`` and the prior's
one-step unconditional denoised image of ``a_t x + s_t ε``, on the prior's clean data images, minimised by
the shared loop (``diffrep.training.fit``).

>>> weights = train(CorrectiveTrainConfig(out=Path("runs/corr-gmm"), prior="gmm", steps=2000), resume=True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from diffrep.errors import InputError
from diffrep.methods.corrective import Corrective, CorrectiveConfig, corrective_loss, prior_fingerprint, save_corrective
from diffrep.priors.base import Prior, noise_levels
from diffrep.training.config import CorrectiveTrainConfig
from diffrep.training.loop import LoopConfig, Task, check_loop_config, fit, resolve_device, seeded, subconfig


CLEAN_DATA_PRIORS: tuple[str, ...] = ("toyworld", "toyworld-scenes", "tiny", "gmm", "gaussian")
"""Priors whose clean data images ``clean_images`` can give (a data set, the set it learnt, an exact sampler)."""


def clean_images(prior: Prior, n: int, generator: torch.Generator, seed: int = 0) -> Tensor:
    """The prior's clean data: an empirical prior's images, ``n`` images of the set a learned prior learnt
    (``data_images(n, seed)``: the toy world for ``tiny``), or ``n`` exact draws of an analytic one; ``[N, C, H, W]``."""
    if (data := getattr(prior, "data", None)) is not None:
        return data.float()
    if (images := getattr(prior, "data_images", None)) is not None:
        return images(n, seed).float()
    if (draw := getattr(prior, "sample_x0", None)) is not None:
        x = draw(n, generator=generator)
        return (x[0] if isinstance(x, tuple) else x).float()
    raise InputError(f"prior {type(prior).__name__} has neither a data set nor an exact sampler; train-corrective "
                     "takes toyworld, tiny, gmm or gaussian")


def draw_batch(data: Tensor, batch: int, T: int, g: torch.Generator, rng: Any, *, device: torch.device):
    """``(x [B, C, H, W], t [B], ε [B, C, H, W])``: data images, uniform timesteps, noise."""
    idx = torch.randint(len(data), (batch,), generator=g)
    t = torch.randint(0, T, (batch,), generator=g)
    eps = torch.randn(batch, *data.shape[1:], generator=g)
    return data[idx].to(device), t.to(device), eps.to(device)


def lk_loss(model: Corrective, batch, g: torch.Generator, *, prior: Prior) -> tuple[Tensor, dict[str, float]]:
    """``L_k``: ``b̂(x, t)`` against ``x̂_0 = (x_t - s_t ε̂(x_t, ∅)) / a_t`` of ``x_t = a_t x + s_t ε``."""
    x, t, eps = batch
    a, s = noise_levels(prior.alphas_cumprod, t, x.dtype)
    with torch.no_grad():
        x_t = a * x + s * eps
        x0_hat = (x_t - s * prior.eps(x_t, t, None)) / a  # the prior's one-step denoised image
    return corrective_loss(model(x, t), x0_hat), {}


def train(config: CorrectiveTrainConfig, *, resume: bool = False,
          callback: Callable[[dict[str, Any]], None] | None = None, prior: Prior | None = None) -> Path:
    """Train (or continue) a corrective for ``config.prior`` (or the loaded ``prior`` given for it); returns the
    path of the exported EMA ``corrective.safetensors`` (with ``corrective.json`` naming the prior)."""
    check_config(config)
    device = resolve_device(config.device)
    prior = load_on(config.prior, device) if prior is None else prior
    data = clean_images(prior, config.data_n, torch.Generator().manual_seed(config.seed), config.seed)
    arch = CorrectiveConfig(config.channels, config.levels)
    model = seeded(config.seed, lambda: Corrective(prior.image_shape, len(prior.alphas_cumprod), arch))
    task = Task(model, partial(lk_loss, prior=prior),
                partial(draw_batch, data, config.batch, len(prior.alphas_cumprod), device=device),
                meta={"config": {k: str(v) for k, v in asdict(config).items()}})
    fitted = fit(task, subconfig(LoopConfig, config), resume=resume, callback=callback)
    training = {k: Path(v).name if k == "out" else v for k, v in asdict(config).items()} | {"step": fitted.step, "ema": True}
    return save_corrective(fitted.ema.cpu(), config.out, prior_fingerprint(prior, config.prior), training)


def load_on(name: str, device: torch.device) -> Prior:
    """The prior ``name`` computing on the training's ``device`` where its options have one (toyworld, tiny)."""
    from dataclasses import fields

    from diffrep.priors import load, prior_config

    on_device = "device" in {f.name for f in fields(prior_config(name))}
    return load(name, **({"device": str(device)} if on_device else {}))


def check_config(config: CorrectiveTrainConfig) -> None:
    """Validate a ``CorrectiveTrainConfig`` at the edge, torch-free apart from this module's imports."""
    from diffrep.priors import PRIORS, prior_config, split_prior

    name = split_prior(config.prior)[0]
    if name in PRIORS and name not in CLEAN_DATA_PRIORS:  # before its path is looked up (a Stable Diffusion: gigabytes)
        raise InputError(f"prior={config.prior!r} is not allowed: train-corrective needs the prior's clean images, "
                         f"which only {', '.join(CLEAN_DATA_PRIORS)} provide")
    prior_config(config.prior)
    check_loop_config(subconfig(LoopConfig, config))
    for name in ("batch", "data_n", "channels", "levels"):
        if getattr(config, name) < 1:
            raise InputError(f"{name}={getattr(config, name)} must be a positive integer")
