"""Image-space samplers as methods (``METHODS["ddim"]``, ``["ddpm"]``, ``["multidiffusion"]``): they sample
the prior's images directly. DDIM and DDPM write them into the pixels rep, whose canonical view is the
image itself; MultiDiffusion samples a 360° canvas of the panorama rep's geometry and returns it (with its
strip of views) as the result, as the panorama's SIREN could only approximate it."""

from __future__ import annotations

from typing import Any

import torch

from diffrep.errors import InputError
from diffrep.methods.base import Sampling, view_conditions
from diffrep.methods.configs import DDIMOptions, DDPMOptions, MultiDiffusionOptions
from diffrep.priors.base import Prior, draw_noise, prior_device
from diffrep.samplers import (
    canvas_view_columns,
    sample_ddim,
    sample_ddpm,
    sample_multidiffusion,
)
from diffrep.schedule import timesteps


def _progress(callback, total: int):
    return None if callback is None else (lambda d: callback(d | {"steps": total, "state": None}))


def run_ddim(prior: Prior, rep, cond: Any, options: DDIMOptions, *, sampling: Sampling,
             generator: torch.Generator, state: None = None, callback=None) -> None:
    """DDIM from ``x_T ~ N(0, I)``; the samples become the (linear) rep's fit."""
    ts = timesteps(len(prior.alphas_cumprod), sampling.steps)
    x = draw_noise((rep.n, *prior.image_shape), generator, device=prior_device(prior))
    x = sample_ddim(prior, x, ts, view_conditions(cond, rep, None), guidance_scale=sampling.guidance_scale, eta=sampling.eta,
                    generator=generator, callback=_progress(callback, len(ts)))
    rep.solve_linear(None, x[:, None])


def run_ddpm(prior: Prior, rep, cond: Any, options: DDPMOptions, *, sampling: Sampling,
             generator: torch.Generator, state: None = None, callback=None) -> None:
    """DDPM ancestral sampling from ``x_T ~ N(0, I)``; the samples become the (linear) rep's fit."""
    ts = timesteps(len(prior.alphas_cumprod), sampling.steps)
    x = draw_noise((rep.n, *prior.image_shape), generator, device=prior_device(prior))
    x = sample_ddpm(prior, x, ts, view_conditions(cond, rep, None), guidance_scale=sampling.guidance_scale, generator=generator,
                    callback=_progress(callback, len(ts)))
    rep.solve_linear(None, x[:, None])


def run_multidiffusion(prior: Prior, rep, cond: Any, options: MultiDiffusionOptions, *, sampling: Sampling,
                       generator: torch.Generator, state: None = None, callback=None):
    """MultiDiffusion from a canvas ``x_T ~ N(0, I)`` of ``rep.canvas_shape``; returns the canvases
    ``[n, C, H, Wc]`` and their strips of 6 views (the rep itself is not fitted)."""
    from diffrep.reps.panorama import canvas_preview

    W = prior.image_shape[-1]
    if options.stride > W:
        raise InputError(f"multidiffusion stride={options.stride} is not allowed: at most the view width {W}, "
                         "so that every column of the canvas is denoised")
    ts = timesteps(len(prior.alphas_cumprod), sampling.steps)
    x = draw_noise((rep.n, *rep.canvas_shape), generator, device=prior_device(prior))
    starts = canvas_view_columns(rep.canvas_shape[-1], W, options.stride)[:, 0].expand(rep.n, -1)
    x = sample_multidiffusion(prior, x, ts, view_conditions(cond, rep, starts), stride=options.stride,
                              guidance_scale=sampling.guidance_scale, eta=sampling.eta, generator=generator,
                              callback=_progress(callback, len(ts)))
    return canvas_preview(x, W)
