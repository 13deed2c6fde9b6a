"""Pulling an image-space step back into parameter space (design §5, step 4).

Each DDRep step solves ``θ_s = argmin_θ' Σ_π ‖f_θ'(π) - x̂_s(π)‖²`` warm-started at ``θ_t``:

* ``adam`` — the paper's reference: Adam on the squared error, ``iters`` iterations;
* ``gn`` — Gauss–Newton: linearise ``f`` at ``θ_t`` and solve ``(JᵀJ + λI) δ = Jᵀ r`` by
  conjugate gradients with autograd JVP/VJP (``torch.func.jvp``/``vjp``), never forming ``J``,
  preconditioned by a Hutchinson estimate of ``diag(JᵀJ)`` (Jacobi, as in Hessian-free optimisation);
* ``closed`` — the exact least-squares fit of a diffrep that is linear in ``θ``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext

import torch
from torch import Tensor, nn
from torch.func import functional_call, jvp, vjp

from diffrep.methods.configs import SOLVERS, PullbackConfig  # noqa: F401 (re-exported)


def squared_error(rep: nn.Module, views, target: Tensor) -> Tensor:
    """``Σ ‖f_θ(π) - x̂(π)‖²`` over instances, views and pixels."""
    return (rep(views) - target).pow(2).sum()


def regularised_error(rep: nn.Module, views, target: Tensor, pixels: Tensor | None = None) -> Tensor:
    """The squared error plus the rep's regularisers ``Σ_π R_θ(π)`` (``rep.regularised``; plain modules have none).

    ``pixels [P]``: on these flat pixel indices of every view only. A rep with ``renders_pixels`` renders just those
    (the NeRF: their rays); any other renders whole views, keeps those pixels and scales its regularisers by
    ``P / (H W)``, so either is ``P / (H W)`` times the whole objective in expectation over uniform subsets."""
    if pixels is not None and getattr(rep, "renders_pixels", False):
        x, penalty = rep.regularised(views, pixels=pixels)
        return (x - target.flatten(-2)[..., pixels]).pow(2).sum() + penalty.sum()
    x, penalty = rep.regularised(views) if hasattr(rep, "regularised") else (rep(views), torch.zeros(()))
    if pixels is None:
        return (x - target).pow(2).sum() + penalty.sum()
    x, target = x.flatten(-2), target.flatten(-2)
    return (x[..., pixels] - target[..., pixels]).pow(2).sum() + penalty.sum() * (len(pixels) / x.shape[-1])


def solve_adam(rep: nn.Module, views, target: Tensor, iters: int, lr: float, pixel_fraction: float = 1.0,
               generator: torch.Generator | None = None) -> float | None:
    """Warm-started Adam on the squared error plus the rep's regularisers (fresh moments every step); with
    ``pixel_fraction < 1`` each iteration on a fresh uniform subset of that fraction of each view's pixels, drawn
    from ``generator`` (seed 0 unless given). Returns the last iteration's objective per fitted value (a mean
    squared error, the regularisers' share included; ``None`` after no iteration), for progress reports."""
    opt = torch.optim.Adam(rep.parameters(), lr=lr)
    pixels = target.shape[-2] * target.shape[-1]
    batch = max(1, round(pixel_fraction * pixels))
    generator = generator or torch.Generator().manual_seed(0)
    loss = None
    for _ in range(iters):
        opt.zero_grad(set_to_none=True)
        subset = torch.randperm(pixels, generator=generator)[:batch].sort().values.to(target.device) if batch < pixels else None
        loss = regularised_error(rep, views, target, subset)
        loss.backward()
        opt.step()
    return None if loss is None else loss.item() * pixels / (batch * target.numel())


def conjugate_gradient(A: Callable[[Tensor], Tensor], b: Tensor, iters: int, M_inv: Tensor | None = None,
                       tol: float = 1e-20) -> Tensor:
    """Solve ``A x = b`` for symmetric positive (semi-)definite ``A`` from ``x = 0``, preconditioned
    by the diagonal ``M_inv`` if given (Hestenes–Stiefel PCG)."""
    x, r = torch.zeros_like(b), b.clone()
    z = r if M_inv is None else M_inv * r
    p, rz = z.clone(), r @ z
    for _ in range(iters):
        if rz <= tol:
            break
        Ap = A(p)
        alpha = rz / (p @ Ap)
        x, r = x + alpha * p, r - alpha * Ap
        z = r if M_inv is None else M_inv * r
        rz_new = r @ z
        p, rz = z + (rz_new / rz) * p, rz_new
    return x


def jacobi_preconditioner(vjp_fn, out: Tensor, probes: int, generator: torch.Generator) -> Tensor:
    """``1 / diag(JᵀJ)`` from Hutchinson's estimate ``E_z[(Jᵀz)²]``, ``z`` Rademacher, floored at
    1e-3 of its mean so flat directions stay bounded."""
    d = torch.zeros(())
    for _ in range(probes):
        z = torch.randint(0, 2, out.shape, generator=generator, dtype=out.dtype, device=generator.device)
        z = z.to(out.device).mul_(2).sub_(1)
        d = d + vjp_fn(z)[0] ** 2
    d = d / probes
    return 1.0 / (d + 1e-3 * d.mean())


def flat_function(rep: nn.Module, views) -> tuple[Callable[[Tensor], Tensor], Tensor, Callable[[Tensor], dict]]:
    """``θ ↦ f_θ(views)`` on one flat parameter vector, the current vector, and the unflattener."""
    names = [name for name, _ in rep.named_parameters()]
    shapes = [p.shape for _, p in rep.named_parameters()]
    sizes = [p.numel() for _, p in rep.named_parameters()]
    theta = torch.cat([p.detach().reshape(-1) for _, p in rep.named_parameters()])

    def unflatten(vec: Tensor) -> dict[str, Tensor]:
        return {n: v.view(s) for n, v, s in zip(names, vec.split(sizes), shapes)}

    return (lambda vec: functional_call(rep, unflatten(vec), (views,))), theta, unflatten


def gauss_newton_step(rep: nn.Module, views, target: Tensor, cg_iters: int, damping: float = 0.0, probes: int = 0,
                      generator: torch.Generator | None = None, fits: list[float] | None = None) -> Tensor:
    """One Gauss–Newton step ``δ = (JᵀJ + λI)⁻¹ (Jᵀ (x̂ - f_θ) - ½ ∇R)``, solved by (preconditioned) CG; returns ``δ``
    (``R``: the rep's regularisers, to first order). ``fits``: the mean squared error of ``f_θ`` before the step
    (which the step computes anyway) is appended to it.

    The probes draw from their own generator (seed 0 unless given), so a sampler's noise stream
    is the same whichever solver runs."""
    f, theta, _ = flat_function(rep, views)
    out, vjp_fn = vjp(f, theta)  # Jᵀ u (the backward graph is kept for every CG iteration)
    if fits is not None:
        fits.append((target - out).detach().pow(2).mean().item())

    def normal_matrix(v: Tensor) -> Tensor:  # (JᵀJ + λI) v; torch.func.linearize would trace (~2 s) per call
        return vjp_fn(jvp(f, (theta,), (v,))[1])[0] + damping * v

    M_inv = None
    if probes > 0:
        M_inv = jacobi_preconditioner(vjp_fn, out, probes, generator or torch.Generator().manual_seed(0))
    return conjugate_gradient(normal_matrix, vjp_fn(target - out)[0] - 0.5 * penalty_gradient(rep, views), cg_iters,
                              M_inv)


def penalty_gradient(rep: nn.Module, views) -> Tensor | float:
    """``∇_θ Σ_π R_θ(π)`` as one flat vector (0 for reps without regularisers): Gauss–Newton takes the
    regularisers to first order, ``(JᵀJ + λI) δ = Jᵀ r - ½ ∇R``."""
    if not hasattr(rep, "regularised"):
        return 0.0
    penalty = rep.regularised(views)[1].sum()
    if not penalty.requires_grad:
        return 0.0
    grads = torch.autograd.grad(penalty, list(rep.parameters()), allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(rep.parameters(), grads)])


@torch.no_grad()
def _add_flat(rep: nn.Module, delta: Tensor) -> None:
    offset = 0
    for p in rep.parameters():
        p.add_(delta[offset: offset + p.numel()].view_as(p))
        offset += p.numel()


def pullback(rep: nn.Module, views, target: Tensor, config: PullbackConfig,
             generator: torch.Generator | None = None) -> float | None:
    """Move ``rep``'s parameters to the least-squares fit of ``target [n, V, C, H, W]`` at ``views``
    (``generator``: the pixel subsets of ``adam`` with ``pixel_fraction < 1``; the sampler's own stream is not used,
    so its noise is the same whichever solver runs). The solve runs in the rep's ``solving()`` scope where it has
    one (a NeRF holds one occupancy grid through it). Returns the fit's mean squared error where the solver
    computes it on its way (``adam``: at its last iteration; ``gn``: before its last step), else ``None``
    (``closed``)."""
    with getattr(rep, "solving", nullcontext)():
        return PULLBACKS[config.solver](rep, views, target.detach(), config, generator)


def _closed(rep: nn.Module, views, target: Tensor, config: PullbackConfig, generator) -> None:
    with torch.no_grad():
        rep.solve_linear(views, target)


def _adam(rep: nn.Module, views, target: Tensor, config: PullbackConfig, generator) -> float | None:
    return solve_adam(rep, views, target, config.adam_iters, config.adam_lr, config.pixel_fraction, generator)


def _gauss_newton(rep: nn.Module, views, target: Tensor, config: PullbackConfig, generator) -> float | None:
    fits: list[float] = []  # the fit before each step: the last is the one the solve reports, as Adam's last iteration
    for _ in range(config.gn_iters):
        _add_flat(rep, gauss_newton_step(rep, views, target, config.cg_iters, config.damping, config.probes, fits=fits))
    return fits[-1] if fits else None


PULLBACKS: dict[str, Callable[..., float | None]] = {"gn": _gauss_newton, "adam": _adam, "closed": _closed}
"""The pullback's solvers, ``PullbackConfig.solver`` → ``(rep, views, target, config, generator)``; its names are
``configs.SOLVERS``, which the command line checks without importing torch."""
