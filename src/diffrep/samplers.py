"""Image-space samplers (design §3): DDIM with ``eta``, DDPM ancestral, SDEdit, RePaint.

Plain ``@torch.no_grad()`` functions in the k-diffusion mould: a prior, a start ``x``, a
decreasing list of integer timesteps, a condition, and the randomness as a generator.
``callback`` receives ``{"i", "t", "x", "x0_hat"}`` after every step (``x`` the new state,
``x0_hat`` the prediction made at ``t``). Outputs are not clipped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from diffrep.priors.base import Prior, as_timesteps, cfg_eps, draw_noise
from diffrep.schedule import (
    ddim_coefficients, ddim_step, ddpm_posterior_step, forward_noise, forward_step, predict_x0, timesteps,
)

Callback = Callable[[dict[str, Any]], None] | None


def _randn(like: Tensor, generator: torch.Generator | None) -> Tensor:
    return draw_noise(like.shape, generator, device=like.device, dtype=like.dtype)


def _next(ts: list[int], i: int) -> int:
    return ts[i + 1] if i + 1 < len(ts) else -1


@torch.no_grad()
def sample_ddim(prior: Prior, x: Tensor, ts: list[int], cond: Any = None, *, guidance_scale: float = 1.0,
                eta: float = 0.0, generator: torch.Generator | None = None, callback: Callback = None) -> Tensor:
    """DDIM (Song et al. 2021, eq. 12) from ``x = x_{ts[0]}`` down to ``x_0``; ``eta = 1`` is DDPM-like.

    ``x: [B, C, H, W]``; returns the clean sample ``[B, C, H, W]``."""
    ab = prior.alphas_cumprod
    for i, t in enumerate(ts):
        k = ddim_coefficients(ab, t, _next(ts, i), eta)
        eps_hat = cfg_eps(prior, x, as_timesteps(t, x.shape[0]), cond, guidance_scale)
        z = _randn(x, generator) if k.c > 0 else None
        x0_hat = predict_x0(x, eps_hat, k.a_t, k.s_t)
        x = ddim_step(x, eps_hat, k, z)  # x_s = a_s x0_hat + rho eps_hat + c z
        if callback is not None:
            callback({"i": i, "t": t, "x": x, "x0_hat": x0_hat})
    return x


@torch.no_grad()
def sample_ddpm(prior: Prior, x: Tensor, ts: list[int], cond: Any = None, *, guidance_scale: float = 1.0,
                generator: torch.Generator | None = None, callback: Callback = None) -> Tensor:
    """DDPM ancestral sampling (Ho et al. 2020, Alg. 2) with the posterior ``q(x_s | x_t, x0_hat)``."""
    ab = prior.alphas_cumprod
    for i, t in enumerate(ts):
        s = _next(ts, i)
        eps_hat = cfg_eps(prior, x, as_timesteps(t, x.shape[0]), cond, guidance_scale)
        z = _randn(x, generator) if s >= 0 else None
        x0_hat = predict_x0(x, eps_hat, float(ab[t]) ** 0.5, (1 - float(ab[t])) ** 0.5)
        x = ddpm_posterior_step(x, eps_hat, ab, t, s, z)
        if callback is not None:
            callback({"i": i, "t": t, "x": x, "x0_hat": x0_hat})
    return x


@torch.no_grad()
def sample_sdedit(prior: Prior, x0: Tensor, strength: float, steps: int, cond: Any = None, *,
                  guidance_scale: float = 1.0, eta: float = 0.0, generator: torch.Generator | None = None,
                  callback: Callback = None) -> Tensor:
    """SDEdit (Meng et al. 2022): noise ``x0`` to ``t0 = strength (T-1)``, then denoise with DDIM."""
    T = len(prior.alphas_cumprod)
    t0 = round(strength * (T - 1))
    if t0 < 1:
        return x0.clone()
    x = forward_noise(x0, prior.alphas_cumprod, t0, _randn(x0, generator))
    ts = timesteps(T, steps, t_start=t0)
    return sample_ddim(prior, x, ts, cond, guidance_scale=guidance_scale, eta=eta, generator=generator, callback=callback)


@torch.no_grad()
def sample_repaint(prior: Prior, x: Tensor, ts: list[int], known: Tensor, mask: Tensor, cond: Any = None, *,
                   rounds: int = 1, guidance_scale: float = 1.0, eta: float = 1.0,
                   generator: torch.Generator | None = None, callback: Callback = None) -> Tensor:
    """RePaint (Lugmayr et al. 2022, Alg. 1) with DDIM reverse steps.

    ``known: [B, C, H, W]`` observation, ``mask`` broadcastable to it (1 = known). At each step
    the known region is re-noised from the observation; ``rounds = r`` resamples every step
    ``r`` times by jumping back with the forward kernel ``q(x_t | x_s)``."""
    ab = prior.alphas_cumprod
    mask = mask.to(x.dtype)
    for i, t in enumerate(ts):
        s = _next(ts, i)
        k = ddim_coefficients(ab, t, s, eta)
        for u in range(rounds):
            x_t = x
            eps_hat = cfg_eps(prior, x_t, as_timesteps(t, x_t.shape[0]), cond, guidance_scale)
            # Reverse step for the unknown region.
            x_unknown = ddim_step(x_t, eps_hat, k, _randn(x_t, generator) if k.c > 0 else None)
            # Known region sampled from q(x_s | x_0 = observation).
            x_known = known if s < 0 else forward_noise(known, ab, s, _randn(x_t, generator))
            x_s = mask * x_known + (1 - mask) * x_unknown
            # Jump back s -> t and resample, except after the last round.
            x = forward_step(x_s, ab, s, t, _randn(x_t, generator)) if u < rounds - 1 else x_s
        if callback is not None:
            # Tweedie's estimate at t, from the last round's x_t (the one eps_hat saw), as sample_ddim.
            callback({"i": i, "t": t, "x": x, "x0_hat": predict_x0(x_t, eps_hat, k.a_t, k.s_t)})
    return x
