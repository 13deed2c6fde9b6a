"""Training of LMC-SDS's corrective ``b̂_ψ`` (design §4): ``L_k`` between ``b̂(x, t)`` and the prior's
one-step unconditional denoised image of ``a_t x + s_t ε``, on the prior's clean data images, minimised by
the shared loop (``diffrep.training.fit``). A prior without data of its own (Stable Diffusion, DeepFloyd IF)
trains on a folder of images (``data``), encoded once into its latents where it has a VAE.

>>> weights = train(CorrectiveTrainConfig(out=Path("runs/corr-gmm"), prior="gmm", steps=2000), resume=True)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from diffrep.errors import InputError
from diffrep.export import load_image
from diffrep.methods.corrective import Corrective, CorrectiveConfig, corrective_loss, prior_fingerprint, save_corrective
from diffrep.priors.base import Prior, from_rgb, latent, noise_levels, prior_device, rgb_size
from diffrep.training.config import CorrectiveTrainConfig, check_corrective_config, data_files
from diffrep.training.loop import LoopConfig, Task, fit, resolve_device, seeded, subconfig


def clean_images(prior: Prior, n: int, generator: torch.Generator, seed: int = 0, folder: Path | None = None) -> Tensor:
    """The prior's clean data: at most ``n`` images of ``folder`` (``folder_images``), an empirical prior's images,
    ``n`` images of the set a learned prior learnt (``data_images(n, seed)``: the toy world for ``tiny``), or ``n``
    exact draws of an analytic one; ``[N, C, H, W]`` in the prior's space."""
    if folder is not None:
        return folder_images(prior, data_files(folder)[:n])
    if (data := getattr(prior, "data", None)) is not None:
        return data.float()
    if (images := getattr(prior, "data_images", None)) is not None:
        return images(n, seed).float()
    if (draw := getattr(prior, "sample_x0", None)) is not None:
        x = draw(n, generator=generator)
        return (x[0] if isinstance(x, tuple) else x).float()
    raise InputError(f"prior {type(prior).__name__} has neither a data set nor an exact sampler; train-corrective "
                     "takes toyworld, tiny, gmm or gaussian, or a folder of images (--data DIR)")


@torch.no_grad()
def folder_images(prior: Prior, files: list[Path], batch: int = 16) -> Tensor:
    """``files`` (PNG/JPEG) read at the prior's pixel resolution (``rgb_size``) and mapped into its space
    (``from_rgb``: a latent prior's VAE encoder), ``batch`` at a time, once; ``[N, *image_shape]`` on the CPU."""
    if not latent(prior) and prior.image_shape[0] != 3:
        raise InputError(f"prior {type(prior).__name__} denoises {prior.image_shape[0]}-channel images; --data holds RGB")
    size = rgb_size(prior)
    chunks = [torch.cat([load_image(f, size) for f in files[i:i + batch]]) for i in range(0, len(files), batch)]
    return torch.cat([from_rgb(prior, x.to(prior_device(prior))).float().cpu() for x in chunks])


def draw_batch(data: Tensor, batch: int, T: int, g: torch.Generator, rng: Any, *, device: torch.device,
               perturb: float = 0.0):
    """``(x [B, C, H, W], t [B], ε [B, C, H, W], δ [B, C, H, W])``: data images, uniform timesteps, noise, and the
    off-manifold perturbations of ``perturbations`` (zeros at ``perturb = 0``, not drawn: the clean run's batches)."""
    idx = torch.randint(len(data), (batch,), generator=g)
    t = torch.randint(0, T, (batch,), generator=g)
    eps = torch.randn(batch, *data.shape[1:], generator=g)
    delta = perturbations((batch, *data.shape[1:]), perturb, g) if perturb > 0 else torch.zeros(batch, *data.shape[1:])
    return data[idx].to(device), t.to(device), eps.to(device), delta.to(device)


def perturbations(shape: tuple[int, ...], bound: float, g: torch.Generator) -> Tensor:
    """Off-manifold perturbations ``δ [B, C, H, W]``: Gaussian noise on a random grid of ``r × r`` cells (``r`` a power
    of two up to ``H``: a colour cast to a one-pixel checkerboard) upsampled bilinearly, scaled to an RMS drawn from
    ``U[0, bound]``; every other image keeps ``δ = 0``, so b̂ still sees clean images half the time."""
    B, C, H, W = shape
    scales = [2**k for k in range(int(math.log2(min(H, W))) + 1)]
    pick = torch.randint(len(scales), (B,), generator=g)
    rms = torch.rand(B, generator=g) * bound * (torch.arange(B) % 2 == 1)
    delta = torch.empty(shape)
    for b in range(B):
        r = scales[pick[b]]
        cells = torch.randn(1, C, r, r, generator=g)
        delta[b] = nn.functional.interpolate(cells, size=(H, W), mode="bilinear", align_corners=False)[0]
    return delta * (rms / delta.pow(2).mean((1, 2, 3)).sqrt().clamp_min(1e-8))[:, None, None, None]


def lk_loss(model: Corrective, batch, g: torch.Generator, *, prior: Prior) -> tuple[Tensor, dict[str, float]]:
    """``L_k``: ``b̂(x, t)`` against ``x̂_0 = (x_t - s_t ε̂(x_t, ∅)) / a_t`` of ``x_t = a_t x + s_t ε``; with a
    perturbation ``δ``, ``b̂(x + δ, t)`` against ``x̂_0 + δ`` (the data image's bias, plus what is off the data)."""
    x, t, eps, delta = batch
    a, s = noise_levels(prior.alphas_cumprod, t, x.dtype)
    with torch.no_grad():
        x_t = a * x + s * eps
        x0_hat = (x_t - s * prior.eps(x_t, t, None)) / a  # the prior's one-step denoised image
    return corrective_loss(model(x + delta, t), x0_hat + delta), {}  # δ = 0: exactly the clean loss


def train(config: CorrectiveTrainConfig, *, resume: bool = False,
          callback: Callable[[dict[str, Any]], None] | None = None, prior: Prior | None = None) -> Path:
    """Train (or continue) a corrective for ``config.prior`` (or the loaded ``prior`` given for it); returns the
    path of the exported EMA ``corrective.safetensors`` (with ``corrective.json`` naming the prior)."""
    check_corrective_config(config)
    device = resolve_device(config.device)
    prior = load_on(config.prior, device) if prior is None else prior
    data = clean_images(prior, config.data_n, torch.Generator().manual_seed(config.seed), config.seed, config.data)
    arch = CorrectiveConfig(config.channels, config.levels)
    model = seeded(config.seed, lambda: Corrective(prior.image_shape, len(prior.alphas_cumprod), arch))
    task = Task(model, partial(lk_loss, prior=prior),
                partial(draw_batch, data, config.batch, len(prior.alphas_cumprod), device=device, perturb=config.perturb),
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
