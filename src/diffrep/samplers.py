"""Image-space samplers (design §3): DDIM with ``eta``, DDPM ancestral, SDEdit, RePaint, and
MultiDiffusion on a 360° canvas.

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


def canvas_view_columns(canvas_w: int, width: int, stride: int, device: torch.device | None = None) -> Tensor:
    """Columns ``[V, width]`` of the views starting every ``stride`` columns of a ``canvas_w``-wide 360°
    canvas, wrapping at the seam (``V = ceil(canvas_w / stride)``)."""
    starts = torch.arange(0, canvas_w, stride, device=device)
    return (starts[:, None] + torch.arange(width, device=device)) % canvas_w


def fuse_views(views: Tensor, cols: Tensor, canvas_w: int) -> Tensor:
    """MultiDiffusion's fusion (Bar-Tal et al. 2023, eq. 5 with uniform weights): the canvas minimising
    ``sum_v ||crop_v(x) - views_v||^2``, i.e. each pixel the mean of the views that cover it.

    ``views: [B, V, C, H, W]``, ``cols: [V, W]`` -> ``[B, C, H, canvas_w]``."""
    B, V, C, H, W = views.shape
    total = views.new_zeros(B, C, H, canvas_w).index_add_(3, cols.flatten(), views.permute(0, 2, 3, 1, 4).reshape(B, C, H, V * W))
    count = torch.zeros(canvas_w, dtype=views.dtype, device=views.device).index_add_(0, cols.flatten(), torch.ones_like(cols.flatten(), dtype=views.dtype))
    return total / count


@torch.no_grad()
def sample_multidiffusion(prior: Prior, x: Tensor, ts: list[int], cond: Any = None, *, stride: int,
                          guidance_scale: float = 1.0, eta: float = 0.0, generator: torch.Generator | None = None,
                          callback: Callback = None) -> Tensor:
    """MultiDiffusion (Bar-Tal et al. 2023, Alg. 1) with DDIM steps on a 360° canvas ``x = x_{ts[0]}: [B, C, H, Wc]``.

    Each step crops the prior-sized views (``W = prior.image_shape[-1]`` columns) starting every ``stride``
    columns, wrapping at the seam, takes one DDIM step on each and fuses them by the per-pixel mean (the
    closed-form least-squares fusion). The step's noise ``z`` lives on the canvas and each view takes its
    crop, so overlapping views add the same noise and the fused canvas keeps unit variance. ``cond``: one
    condition, a list with one per canvas, or one per view (``B * V``, canvas-major, views in the order of
    ``canvas_view_columns``). Returns the clean canvas ``[B, C, H, Wc]``.
    No overlap (``stride = W`` dividing ``Wc``) is independent DDIM on each view."""
    ab, (B, C, H, Wc), W = prior.alphas_cumprod, x.shape, prior.image_shape[-1]
    cols = canvas_view_columns(Wc, W, stride, x.device)
    V = cols.shape[0]
    per_canvas = isinstance(cond, list) and len(cond) == B
    conds = [c for c in cond for _ in range(V)] if per_canvas else cond
    if isinstance(conds, list) and len(conds) != B * V:
        raise ValueError(f"cond: {len(conds)} conditions for {B} canvases of {V} views; give {B} or {B * V}")

    def crops(canvas: Tensor) -> Tensor:  # [B, C, H, Wc] -> [B * V, C, H, W]
        return canvas[..., cols].permute(0, 3, 1, 2, 4).reshape(B * V, C, H, W)

    for i, t in enumerate(ts):
        k = ddim_coefficients(ab, t, _next(ts, i), eta)
        # Denoise every view of the canvas.
        x_v = crops(x)
        eps_hat = cfg_eps(prior, x_v, as_timesteps(t, B * V), conds, guidance_scale)
        # One DDIM step per view, with the crop of the canvas noise.
        z = crops(_randn(x, generator)) if k.c > 0 else None
        x_s = ddim_step(x_v, eps_hat, k, z).view(B, V, C, H, W)
        # Fuse: each pixel the mean of its views' proposals.
        x = fuse_views(x_s, cols, Wc)
        if callback is not None:
            x0_hat = fuse_views(predict_x0(x_v, eps_hat, k.a_t, k.s_t).view(B, V, C, H, W), cols, Wc)
            callback({"i": i, "t": t, "x": x, "x0_hat": x0_hat})
    return x
