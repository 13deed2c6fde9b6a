"""The prior protocol every method talks to, classifier-free guidance, and evaluation counting."""

from __future__ import annotations

import math
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor


@runtime_checkable
class Prior(Protocol):
    """A diffusion model as diffrep sees it (design §2).

    ``alphas_cumprod``: 1-D tensor of length ``T``; ``image_shape``: ``(C, H, W)`` of what the
    prior denoises, values in [-1, 1]; ``encode_prompt(text)`` returns any condition object
    (``None`` is unconditional); ``eps(x_t, t, cond)`` predicts the noise of a batch
    ``x_t: [B, C, H, W]`` at integer timesteps ``t: [B]``.
    """

    alphas_cumprod: Tensor
    image_shape: tuple[int, int, int]

    def encode_prompt(self, text: str | None) -> Any: ...

    def eps(self, x_t: Tensor, t: Tensor, cond: Any) -> Tensor: ...


def as_timesteps(t: Tensor | int, batch: int) -> Tensor:
    """Broadcast an integer timestep (or a [B] tensor) to a long tensor ``[B]``."""
    if isinstance(t, int):
        return torch.full((batch,), t, dtype=torch.long)
    t = torch.as_tensor(t, dtype=torch.long)
    return t.expand(batch) if t.ndim == 0 else t


def noise_levels(alphas_cumprod: Tensor, t: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """``a_t = sqrt(alpha_bar_t)`` and ``s_t = sqrt(1 - alpha_bar_t)`` as ``[B, 1, 1, 1]`` tensors."""
    ab = alphas_cumprod.to(torch.float64)[t.cpu()]
    shape = (-1, 1, 1, 1)
    return ab.sqrt().to(dtype).view(shape), (1 - ab).sqrt().to(dtype).view(shape)


def cfg_eps(prior: Prior, x_t: Tensor, t: Tensor, cond: Any, guidance_scale: float, uncond: Any = None) -> Tensor:
    """Classifier-free guidance: ``eps_w = eps(uncond) + w (eps(cond) - eps(uncond))`` (design §1).

    ``w = 1`` (or no condition) costs one evaluation, ``w = 0`` is the unconditional model."""
    if cond is None or guidance_scale == 1.0:
        return prior.eps(x_t, t, cond)
    eps_u = prior.eps(x_t, t, uncond)
    if guidance_scale == 0.0:
        return eps_u
    return eps_u + guidance_scale * (prior.eps(x_t, t, cond) - eps_u)


class CountingPrior:
    """Wraps a prior and counts prior evaluations (one per image of each ``eps`` batch)."""

    def __init__(self, prior: Prior):
        self.prior = prior
        self.alphas_cumprod = prior.alphas_cumprod
        self.image_shape = prior.image_shape
        self.evaluations = 0

    def encode_prompt(self, text: str | None) -> Any:
        return self.prior.encode_prompt(text)

    def eps(self, x_t: Tensor, t: Tensor, cond: Any) -> Tensor:
        self.evaluations += x_t.shape[0]
        return self.prior.eps(x_t, t, cond)

    def __getattr__(self, name: str) -> Any:  # decode/encode of latent priors, labels, ...
        return getattr(self.prior, name)


def check_finite_scale(name: str, value: float) -> float:
    """Validate a non-negative finite scale (guidance, eta, strength...)."""
    from diffrep.errors import InputError

    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InputError(f"{name}={value!r} is not allowed; it must be a finite number >= 0")
    return float(value)
