"""DDRep: the reverse diffusion process pulled back into parameter space (design §5).

The diffrep ``f_θ`` holds only the clean part; a noise state ``ε`` lives beside it (one canvas
per instance, which views crop), so that ``x_t(π) = a_t f_θ(π) + s_t ε_π``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from diffrep.methods.base import Sampling, steps_callback, view_conditions
from diffrep.methods.configs import DDRepOptions, PullbackConfig
from diffrep.methods.solvers import pullback
from diffrep.priors.base import Prior, as_timesteps, cfg_eps, draw_noise, prior_device
from diffrep.schedule import StepCoefficients, ddim_coefficients, timesteps


def clean_target(x_hat: Tensor, D: Tensor, k: StepCoefficients) -> Tensor:
    """Step 3: ``x̂_s = D + (ρ a_t)/(s_t a_s) (x̂ - D)`` — DDIM's step on the clean component."""
    return D + (k.rho * k.a_t / (k.s_t * k.a_s)) * (x_hat - D)


def reverse_noise(noise: Tensor, k: StepCoefficients, generator: torch.Generator | None) -> Tensor:
    """Step 3: ``ε_s = (ρ ε + c z) / s_s``; model-free, stays standard normal."""
    if k.s_s == 0:
        return noise
    z = draw_noise(noise.shape, generator, device=noise.device, dtype=noise.dtype) if k.c > 0 else 0.0
    return (k.rho * noise + k.c * z) / k.s_s


def forward_noise_kernel(noise: Tensor, k: StepCoefficients, generator: torch.Generator | None) -> Tensor:
    """RePaint's forward step ``s -> t`` for the DDIM process (Bayes on the reverse kernel):
    ``ε_t = (ρ ε_s + c z') / s_s``, the clean part unchanged (derivation: docs/ddrep.md)."""
    return reverse_noise(noise, k, generator)


def denoise_views(prior: Prior, x_hat: Tensor, eps_views: Tensor, t: int, k: StepCoefficients, conds: Any,
                  guidance_scale: float) -> Tensor:
    """Steps 1–2: ``x_t = a_t x̂ + s_t ε_π``, then Tweedie's ``D = (x_t - s_t ε̂) / a_t`` per view
    (``conds``: the condition of each view, ``view_conditions``)."""
    n, V = x_hat.shape[:2]
    x_t = (k.a_t * x_hat + k.s_t * eps_views).flatten(0, 1)
    eps_hat = cfg_eps(prior, x_t, as_timesteps(t, n * V), conds, guidance_scale)
    return ((x_t - k.s_t * eps_hat) / k.a_t).view_as(x_hat)


def ddrep_step(prior: Prior, rep, noise: Tensor, t: int, s: int, cond: Any, *, guidance_scale: float, eta: float,
               pull: PullbackConfig, views=None, generator: torch.Generator | None = None,
               fits: list[float] | None = None) -> Tensor:
    """One reverse step ``t -> s`` of DDRep: updates ``rep`` in place, returns the new noise state; ``fits`` gets the
    pullback's mean squared error where its solver computes one (``pullback``), for progress reports."""
    k = ddim_coefficients(prior.alphas_cumprod, t, s, eta)
    with torch.no_grad():
        x_hat = rep(views)
        D = denoise_views(prior, x_hat, rep.view_noise(noise, views), t, k, view_conditions(cond, rep, views),
                          guidance_scale)
        target = clean_target(x_hat, D, k) if s >= 0 else D
    # Step 4: θ_s = argmin Σ_π ‖f_θ'(π) - x̂_s(π)‖² (pixel subsets, if any, from a stream of the step's own)
    fit = pullback(rep, views, target, pull, torch.Generator().manual_seed(t))
    if fits is not None and fit is not None:
        fits.append(fit)
    return reverse_noise(noise, k, generator)  # Step 5: ε ← ε_s


def ddrep_sample(prior: Prior, rep, ts: list[int], cond: Any = None, *, guidance_scale: float = 1.0, eta: float = 0.0,
                 rounds: int = 1, pull: PullbackConfig = PullbackConfig(), views_per_step: int = 1,
                 noise: Tensor | None = None, generator: torch.Generator | None = None, callback=None,
                 start: int = 0) -> Tensor:
    """Sample ``rep`` (in place) with DDRep; ``rounds = r`` RePaint harmonisation rounds per step.

    ``noise`` is the initial noise state (default: drawn from ``generator``); returns the final
    noise state. Views: reps with ``random_views`` are evaluated on ``views_per_step`` random
    views per step; others on their canonical view. ``start`` skips the first steps (resuming from
    a checkpoint taken after them: ``rep``, ``noise`` and ``generator`` as they were then)."""
    if noise is None:
        noise = draw_noise(rep.noise_shape, generator, device=prior_device(prior))
    ab = prior.alphas_cumprod
    for i, t in enumerate(ts[start:], start):
        s = ts[i + 1] if i + 1 < len(ts) else -1
        fits: list[float] = []
        for u in range(rounds):
            views = rep.random_views(views_per_step, generator, progress=i / len(ts)) if views_per_step > 0 else None
            noise = ddrep_step(prior, rep, noise, t, s, cond, guidance_scale=guidance_scale, eta=eta, pull=pull,
                               views=views, generator=generator, fits=fits)
            if u < rounds - 1 and s >= 0:  # RePaint: forward s -> t, then reverse again
                noise = forward_noise_kernel(noise, ddim_coefficients(ab, t, s, eta), generator)
        if callback is not None:  # loss: how closely the rep fits the step's targets (its last round's)
            callback({"i": i, "t": t, "rep": rep, "noise": noise} | ({"loss": fits[-1]} if fits else {}))
    return noise


@dataclass
class DDRepState:
    """DDRep between steps: the noise state ``ε`` after ``step`` reverse steps (design §5)."""

    step: int
    noise: Tensor

    def checkpoint(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        return {"noise": self.noise}, {}

    @classmethod
    def restore(cls, step: int, tensors: dict[str, Tensor], meta: dict[str, Any]) -> DDRepState:
        return cls(step, tensors["noise"])


def run_ddrep(prior: Prior, rep, cond: Any, options: DDRepOptions, *, sampling: Sampling,
              generator: torch.Generator, state: DDRepState | None = None, callback=None) -> DDRepState:
    """DDRep on any diffrep (``METHODS["ddrep"]``): ``sampling.steps`` reverse steps, continuing ``state``."""
    ts = timesteps(len(prior.alphas_cumprod), sampling.steps)
    noise = ddrep_sample(prior, rep, ts, cond, guidance_scale=sampling.guidance_scale, eta=sampling.eta,
                         rounds=options.rounds, pull=options.pullback(), views_per_step=options.views_per_step,
                         generator=generator, noise=None if state is None else state.noise,
                         start=0 if state is None else state.step,
                         callback=steps_callback(callback, len(ts), lambda d: DDRepState(d["i"] + 1, d["noise"])))
    return DDRepState(len(ts), noise)
