"""Mode-seeking distillation (design §4): image-space gradients and the one optimisation loop.

Every method returns an image-space gradient ``g`` that is pushed through the renderer with
the surrogate loss ``½‖x - sg(x - g)‖²`` (sum over pixels, mean over the batch), so that
``∂loss/∂θ = Jᵀ g``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from diffrep.methods.base import Sampling, view_conditions
from diffrep.methods.configs import (  # noqa: F401 (re-exported)
    ANNEALING,
    LR_SCHEDULES,
    OPTIMIZERS,
    WEIGHTINGS,
    Optim,
    OptimConfig,
    SDSOptions,
    SJCOptions,
)
from diffrep.priors.base import Prior, cfg_eps, draw_noise, noise_levels


def t_bounds(T: int, t_range: tuple[float, float]) -> tuple[int, int]:
    """Integer ``[t_min, t_max]`` from fractions of ``T``."""
    return max(0, round(t_range[0] * T)), min(T - 1, round(t_range[1] * T))


def annealed_t_max(t_min: int, t_max: int, progress: float, annealing: str) -> int:
    """``t_max`` moved towards ``t_min`` as the run progresses (DreamFusion-style annealing)."""
    frac = {"none": 0.0, "linear": progress, "sqrt": math.sqrt(progress)}[annealing]
    return max(t_min, round(t_max - frac * (t_max - t_min)))


def sds_weight(alphas_cumprod: Tensor, t: Tensor, weighting: str) -> Tensor:
    """``w(t)``: ``s2`` = ``1 - ᾱ_t`` (DreamFusion), ``one``, ``snr_inverse`` = ``s_t² / a_t²``; ``[B, 1, 1, 1]``."""
    a, s = noise_levels(alphas_cumprod, t, torch.float32)
    w = {"s2": s**2, "one": torch.ones_like(s), "snr_inverse": s**2 / a**2}[weighting]
    return w


def sds_grad(prior: Prior, x: Tensor, cond: Any, *, t: Tensor, eps: Tensor, guidance_scale: float,
             weighting: str = "s2") -> Tensor:
    """SDS (DreamFusion): ``g = w(t) (ε̂_w(a_t x + s_t ε, t) - ε)``; ``x, eps: [B, C, H, W]``, ``t: [B]``."""
    a, s = noise_levels(prior.alphas_cumprod, t, x.dtype)
    x_t = a * x + s * eps
    eps_hat = cfg_eps(prior, x_t, t, cond, guidance_scale)
    return sds_weight(prior.alphas_cumprod, t, weighting).to(x.dtype) * (eps_hat - eps)


def sjc_grad(prior: Prior, x: Tensor, cond: Any, *, t: Tensor, noise: Tensor, guidance_scale: float,
             variance_reduced: bool = True) -> Tensor:
    """SJC's perturb-and-average scoring: ``y = x + σ n``, ``g = -(D(y; σ) - x) / σ`` with
    ``σ = s_t / a_t`` (VE view); the plain form uses ``y`` in place of ``x``."""
    a, s = noise_levels(prior.alphas_cumprod, t, x.dtype)
    sigma = s / a
    y = x + sigma * noise
    eps_hat = cfg_eps(prior, a * y, t, cond, guidance_scale)  # x_t = a_t y
    D = y - sigma * eps_hat  # D(y; σ) = x̂_0
    return -(D - (x if variance_reduced else y)) / sigma


def surrogate_loss(x: Tensor, g: Tensor) -> Tensor:
    """``½‖x - sg(x - g)‖²`` summed over pixels, averaged over the batch: its gradient is ``g``."""
    return 0.5 * (x - (x - g).detach()).pow(2).flatten(1).sum(1).mean()


def make_optimizer(params, config: OptimConfig) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    opt = {"adam": torch.optim.Adam, "adamax": torch.optim.Adamax, "sgd": torch.optim.SGD}[config.optimizer](
        params, lr=config.lr)
    n = max(1, config.iters)
    factor = {"constant": lambda k: 1.0, "linear": lambda k: 1 - k / n,
              "cosine": lambda k: 0.5 * (1 + math.cos(math.pi * k / n))}[config.lr_schedule]
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


GradFn = Callable[[Tensor, Any, int, torch.Generator], Tensor]


@dataclass
class DistillState:
    """A mode-seeking run after ``step`` iterations: the optimiser's and the schedule's state dicts."""

    step: int
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]

    def checkpoint(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        from diffrep.checkpoint import state_dict_tensors

        tensors, groups = state_dict_tensors(self.optimizer)
        return tensors, {"param_groups": groups, "scheduler": self.scheduler}

    @classmethod
    def restore(cls, step: int, tensors: dict[str, Tensor], meta: dict[str, Any]) -> DistillState:
        from diffrep.checkpoint import optimizer_state

        return cls(step, optimizer_state(tensors, meta["param_groups"]), meta["scheduler"])


def distill(rep, grad_fn: GradFn, config: OptimConfig, *, generator: torch.Generator | None = None,
            callback=None, state: DistillState | None = None) -> DistillState:
    """Optimise ``rep`` in place: render views, ask ``grad_fn(x, views, k, generator)`` for ``g``,
    step on the surrogate loss plus the rep's regularisers (``rep.regularised``). ``x: [n·V, C, H, W]``; ``k`` is the iteration.

    ``state`` continues a run after ``state.step`` iterations; the callback receives the state
    after each iteration (``{"i", "steps", "state", "grad_norm"}``)."""
    opt, sched = make_optimizer(rep.parameters(), config)
    if state is not None:
        opt.load_state_dict(state.optimizer)
        sched.load_state_dict(state.scheduler)
    for k in range(0 if state is None else state.step, config.iters):
        views = rep.random_views(config.views_per_step, generator, progress=k / config.iters)
        x, penalty = rep.regularised(views)
        x = x.flatten(0, 1)
        with torch.no_grad():
            g = grad_fn(x.detach(), views, k, generator)
        opt.zero_grad(set_to_none=True)
        (surrogate_loss(x, g) + penalty.mean()).backward()  # the rep's regularisers, per view as the data term
        opt.step()
        sched.step()
        if callback is not None:
            callback({"i": k, "steps": config.iters, "grad_norm": g.flatten(1).norm(dim=1).mean().item(),
                      "state": DistillState(k + 1, opt.state_dict(), sched.state_dict())})
    return DistillState(config.iters, opt.state_dict(), sched.state_dict())


def random_t(n: int, t_min: int, t_max: int, generator: torch.Generator | None) -> Tensor:
    """``t ~ U{t_min, ..., t_max}``, ``[n]``."""
    return torch.randint(t_min, t_max + 1, (n,), generator=generator)


def t_sampler(T: int, t_range: tuple[float, float], annealing: str, iters: int):
    """``(n, k, generator) -> t [n]``: uniform on ``[t_min, t_max(k)]``, ``t_max`` annealed over ``iters``."""
    t_min, t_max = t_bounds(T, t_range)
    return lambda n, k, g: random_t(n, t_min, annealed_t_max(t_min, t_max, k / iters, annealing), g)


def noised_distill(prior: Prior, rep, cond: Any, options: Any, grad: Callable[..., Tensor], *,
                   generator: torch.Generator | None, state: DistillState | None, callback) -> DistillState:
    """The loop SDS, SJC and their kin share: each iteration draws ``t ~ U[t_min, t_max(k)]`` (from
    ``options.t_range``, ``options.annealing``) and fresh ``N(0, I)`` noise, and pushes
    ``grad(x, conds, t, noise)`` through the renderer (``conds``: the condition of each view)."""
    draw_t = t_sampler(len(prior.alphas_cumprod), options.t_range, options.annealing, options.optim.iters)

    def grad_fn(x: Tensor, views: Any, k: int, g: torch.Generator | None) -> Tensor:
        t = draw_t(x.shape[0], k, g).to(x.device)
        noise = draw_noise(x.shape, g, device=x.device, dtype=x.dtype)
        return grad(x, view_conditions(cond, rep, views), t, noise)

    return distill(rep, grad_fn, options.optim, generator=generator, callback=callback, state=state)


def run_sds(prior: Prior, rep, cond: Any, options: SDSOptions, *, sampling: Sampling,
            generator: torch.Generator | None = None, state: DistillState | None = None,
            callback=None) -> DistillState:
    """SDS on any diffrep (``METHODS["sds"]``): ``t ~ U[t_min, t_max(k)]``, fresh ``ε`` every iteration."""
    def grad(x: Tensor, conds: Any, t: Tensor, eps: Tensor) -> Tensor:
        return sds_grad(prior, x, conds, t=t, eps=eps, guidance_scale=sampling.guidance_scale,
                        weighting=options.weighting)

    return noised_distill(prior, rep, cond, options, grad, generator=generator, state=state, callback=callback)


def run_sjc(prior: Prior, rep, cond: Any, options: SJCOptions, *, sampling: Sampling,
            generator: torch.Generator | None = None, state: DistillState | None = None,
            callback=None) -> DistillState:
    """SJC on any diffrep (``METHODS["sjc"]``): ``σ`` from the schedule's VE range, fresh ``n`` every iteration."""
    def grad(x: Tensor, conds: Any, t: Tensor, noise: Tensor) -> Tensor:
        return sjc_grad(prior, x, conds, t=t, noise=noise, guidance_scale=sampling.guidance_scale,
                        variance_reduced=options.variance_reduced)

    return noised_distill(prior, rep, cond, options, grad, generator=generator, state=state, callback=callback)
