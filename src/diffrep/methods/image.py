"""Image-space samplers as methods (``METHODS["ddim"]``, ``["ddpm"]``): they sample the prior's images
directly and write them into the pixels rep, whose canonical view is the image itself."""

from __future__ import annotations

from typing import Any

import torch

from diffrep.methods.base import Sampling, view_conditions
from diffrep.methods.configs import DDIMOptions, DDPMOptions
from diffrep.priors.base import Prior, draw_noise, prior_device
from diffrep.samplers import sample_ddim, sample_ddpm
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
