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
    DDSOptions,
    LMCSDSOptions,
    MultistepSDSOptions,
    NFSDOptions,
    SDSOptions,
    SJCOptions,
    lmc_guidance_requires,
)
from diffrep.errors import InputError
from diffrep.priors.base import Prior, cfg_eps, draw_noise, eps_cond_uncond, noise_levels


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


def nfsd_grad(prior: Prior, x: Tensor, cond: Any, negative: Any, *, t: Tensor, eps: Tensor, guidance_scale: float,
              t_threshold: int, weighting: str = "s2") -> Tensor:
    """NFSD (Katzir et al. 2023, eq. 7-8): ``g = w(t) (δ_D + ω δ_C)`` with ``δ_C = ε̂(x_t, c) - ε̂(x_t, ∅)`` and
    ``δ_D = ε̂(x_t, ∅) - ε̂(x_t, neg)`` for ``t ≥ t_threshold``, ``δ_D = ε̂(x_t, ∅)`` below it."""
    a, s = noise_levels(prior.alphas_cumprod, t, x.dtype)
    x_t = a * x + s * eps
    eps_c, eps_u = eps_cond_uncond(prior, x_t, t, cond)
    eps_neg = prior.eps(x_t, t, negative)
    small = (t < t_threshold).view(-1, 1, 1, 1)
    delta_D = torch.where(small, eps_u, eps_u - eps_neg)  # the "noise-free" domain term
    delta_C = eps_c - eps_u  # the condition term
    return sds_weight(prior.alphas_cumprod, t, weighting).to(x.dtype) * (delta_D + guidance_scale * delta_C)


def dds_grad(prior: Prior, x: Tensor, x_src: Tensor, cond: Any, cond_src: Any, *, t: Tensor, eps: Tensor,
             guidance_scale: float, weighting: str = "one") -> Tensor:
    """DDS (Hertz et al. 2023, eq. 6): ``g = w(t) (ε̂_ω(z_t, c_tgt) - ε̂_ω(ẑ_t, c_src))``, ``z_t = a_t x + s_t ε`` and
    ``ẑ_t = a_t x_src + s_t ε`` with the same ``t`` and ``ε``; ``x, x_src: [B, C, H, W]``."""
    a, s = noise_levels(prior.alphas_cumprod, t, x.dtype)
    eps_tgt = cfg_eps(prior, a * x + s * eps, t, cond, guidance_scale)
    eps_src = cfg_eps(prior, a * x_src + s * eps, t, cond_src, guidance_scale)
    return sds_weight(prior.alphas_cumprod, t, weighting).to(x.dtype) * (eps_tgt - eps_src)


def multistep_sds_grad(prior: Prior, x: Tensor, cond: Any, *, t: Tensor, eps: Tensor, guidance_scale: float,
                       k: int, weighting: str = "s2") -> Tensor:
    """Multistep SDS: ``x̂_0`` from ``k`` deterministic DDIM steps (η = 0) from ``x_t = a_t x + s_t ε`` through
    ``τ_j = ⌊t (k-j)/k⌋``, ``j = 0..k-1``; ``g = w(t) (a_t/s_t) (x - x̂_0)``, which is ``sds_grad`` for ``k = 1``."""
    a, s = noise_levels(prior.alphas_cumprod, t, x.dtype)
    x_tau = a * x + s * eps
    for j in range(k):
        tau = torch.div(t * (k - j), k, rounding_mode="floor")
        a_tau, s_tau = noise_levels(prior.alphas_cumprod, tau, x.dtype)
        eps_hat = cfg_eps(prior, x_tau, tau, cond, guidance_scale)
        x0_hat = (x_tau - s_tau * eps_hat) / a_tau  # Tweedie at τ_j
        if j + 1 < k:  # DDIM step τ_j -> τ_{j+1}
            a_next, s_next = noise_levels(prior.alphas_cumprod, torch.div(t * (k - j - 1), k, rounding_mode="floor"), x.dtype)
            x_tau = a_next * x0_hat + s_next * eps_hat
    return sds_weight(prior.alphas_cumprod, t, weighting).to(x.dtype) * (a / s) * (x - x0_hat)


def lmc_grad(prior: Prior, x: Tensor, cond: Any, corrective: Callable[[Tensor, Tensor], Tensor] | None, *, t: Tensor,
             eps: Tensor, guidance_scale: float, eps_cond: Tensor | None = None, inverse_scale: bool = True,
             weighting: str = "one") -> Tensor:
    """LMC-SDS (Alldieck et al. 2024; design §4): ``g = w(t) (g_cond + g_lmc) / ω`` (``/ω`` with ``inverse_scale``;
    ``w(t) = 1`` by default, design §4's form; ``weighting`` as SDS's),
    ``g_cond = ω (ε̂(x_t', c) - ε̂(x_t', ∅))`` on ``x_t' = a_t x + s_t ε_cond`` (``ε_cond``: the run's fixed ε,
    default ``ε``), ``g_lmc = normalise(b̂(x, t), x̂_0) - x̂_0`` with ``x̂_0 = (x_t - s_t ε̂(x_t, ∅)) / a_t``, ``x_t = a_t x + s_t ε``.
    ``corrective=None``: ``g_lmc = 0``, ``g_cond`` alone (the paper's "L_cond only" ablation)."""
    from diffrep.methods.corrective import normalise

    a, s = noise_levels(prior.alphas_cumprod, t, x.dtype)
    eps_cond = eps if eps_cond is None else eps_cond
    eps_c, eps_u = eps_cond_uncond(prior, a * x + s * eps_cond, t, cond)
    g = guidance_scale * (eps_c - eps_u)  # g_cond
    if corrective is not None:
        x_t = a * x + s * eps
        if eps_cond is not eps:  # the corrective term's own, fresh ε
            eps_u = prior.eps(x_t, t, None)
        x0_hat = (x_t - s * eps_u) / a  # one-step unconditional denoised image
        g = g + (normalise(corrective(x, t), x0_hat) - x0_hat)  # + g_lmc
    g = sds_weight(prior.alphas_cumprod, t, weighting).to(x.dtype) * g  # w(t) = 1 by default: exactly g
    return g / guidance_scale if inverse_scale else g


def sds_split(prior: Prior, x: Tensor, cond: Any, *, t: Tensor, eps: Tensor, guidance_scale: float) -> tuple[Tensor, Tensor]:
    """SDS (``w(t) = 1``) in LMC-SDS's two parts: ``g_cond = ω (ε̂(c) - ε̂(∅))``, ``g_proj = ε̂(∅) - ε``."""
    a, s = noise_levels(prior.alphas_cumprod, t, x.dtype)
    eps_c, eps_u = eps_cond_uncond(prior, a * x + s * eps, t, cond)
    return guidance_scale * (eps_c - eps_u), eps_u - eps


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


def run_nfsd(prior: Prior, rep, cond: Any, options: NFSDOptions, *, sampling: Sampling,
             generator: torch.Generator | None = None, state: DistillState | None = None,
             callback=None) -> DistillState:
    """NFSD on any diffrep (``METHODS["nfsd"]``): ``nfsd_grad`` in the SDS loop; the negative prompt is encoded once."""
    negative = prior.encode_prompt(options.negative_prompt)
    t_threshold = round(options.t_threshold * len(prior.alphas_cumprod))

    def grad(x: Tensor, conds: Any, t: Tensor, eps: Tensor) -> Tensor:
        return nfsd_grad(prior, x, conds, negative, t=t, eps=eps, guidance_scale=sampling.guidance_scale,
                         t_threshold=t_threshold, weighting=options.weighting)

    return noised_distill(prior, rep, cond, options, grad, generator=generator, state=state, callback=callback)


def run_multistep_sds(prior: Prior, rep, cond: Any, options: MultistepSDSOptions, *, sampling: Sampling,
                      generator: torch.Generator | None = None, state: DistillState | None = None,
                      callback=None) -> DistillState:
    """Multistep SDS on any diffrep (``METHODS["ms-sds"]``): ``multistep_sds_grad`` in the SDS loop."""
    def grad(x: Tensor, conds: Any, t: Tensor, eps: Tensor) -> Tensor:
        return multistep_sds_grad(prior, x, conds, t=t, eps=eps, guidance_scale=sampling.guidance_scale, k=options.k,
                                  weighting=options.weighting)

    return noised_distill(prior, rep, cond, options, grad, generator=generator, state=state, callback=callback)


def run_dds(prior: Prior, rep, cond: Any, options: DDSOptions, *, sampling: Sampling,
            generator: torch.Generator | None = None, state: DistillState | None = None,
            callback=None) -> DistillState:
    """DDS on any diffrep (``METHODS["dds"]``): the source ``ẑ`` is a frozen copy of the rep as the run starts,
    rendered from the same views as the edited rep each iteration; same ``t`` and ``ε`` on both."""
    import copy

    if state is not None:
        raise InputError("dds takes its source image from the rep's first render and cannot resume a run; start it again")
    source = copy.deepcopy(rep).requires_grad_(False)
    cond_src = prior.encode_prompt(options.source_prompt)
    draw_t = t_sampler(len(prior.alphas_cumprod), options.t_range, options.annealing, options.optim.iters)

    def grad_fn(x: Tensor, views: Any, k: int, g: torch.Generator | None) -> Tensor:
        t = draw_t(x.shape[0], k, g).to(x.device)
        eps = draw_noise(x.shape, g, device=x.device, dtype=x.dtype)
        x_src = source(views).flatten(0, 1)
        return dds_grad(prior, x, x_src, view_conditions(cond, rep, views), cond_src, t=t, eps=eps,
                        guidance_scale=sampling.guidance_scale, weighting=options.weighting)

    return distill(rep, grad_fn, options.optim, generator=generator, callback=callback, state=state)


def fixed_noise(generator: torch.Generator | None) -> Callable[[torch.Size, torch.device, torch.dtype], Tensor]:
    """LMC-SDS's fixed ε: drawn once per batch shape from a generator seeded by the run's seed (so a resumed run
    gets the same ε, and runs with different seeds different ones)."""
    seed = (generator.initial_seed() if generator is not None else 0) ^ 0x5EED
    cache: dict[torch.Size, Tensor] = {}

    def get(shape: torch.Size, device: torch.device, dtype: torch.dtype) -> Tensor:
        if shape not in cache:
            cache[shape] = draw_noise(shape, torch.Generator().manual_seed(seed), dtype=dtype)
        return cache[shape].to(device)

    return get


def run_lmc_sds(prior: Prior, rep, cond: Any, options: LMCSDSOptions, *, sampling: Sampling,
                generator: torch.Generator | None = None, state: DistillState | None = None,
                callback=None) -> DistillState:
    """LMC-SDS on any diffrep (``METHODS["lmc-sds"]``): ``lmc_grad`` in the SDS loop with the corrective of
    ``options.corrective`` (a shipped one's name or a folder; refused if trained for another prior; default: the
    clean one shipped for the prior), optionally with a fixed ε in ``g_cond``; ``options.projection == "none"``:
    ``g_cond`` alone, no corrective."""
    from diffrep.methods.corrective import named_corrective
    from diffrep.priors.base import prior_device

    if (missing := lmc_guidance_requires(options, sampling)) is not None:  # run_spec refuses it first; direct calls here
        raise InputError(f"method 'lmc-sds' needs {missing}")
    b_hat = None  # projection 'none': g_cond alone
    if options.projection == "corrective":
        b_hat = named_corrective(options.corrective, prior).to(prior_device(prior))
    eps_fixed = fixed_noise(generator) if options.fixed_eps else None

    def grad(x: Tensor, conds: Any, t: Tensor, eps: Tensor) -> Tensor:
        eps_cond = None if eps_fixed is None else eps_fixed(x.shape, x.device, x.dtype)
        return lmc_grad(prior, x, conds, b_hat, t=t, eps=eps, guidance_scale=sampling.guidance_scale,
                        eps_cond=eps_cond, inverse_scale=options.inverse_scale, weighting=options.weighting)

    return noised_distill(prior, rep, cond, options, grad, generator=generator, state=state, callback=callback)
