"""Volume rendering of density/colour fields inside the box ``[-bound, bound]^3`` (design §6), batched over ``n`` instances.

Emission-absorption quadrature (Max 1995; NeRF, Mildenhall et al. 2020, eq. 3)::

    C = sum_i T_i alpha_i c_i + (1 - O) c_bg,  alpha_i = 1 - exp(-sigma_i delta_i),
    T_i = exp(-sum_{j<i} sigma_j delta_j),     O = sum_i T_i alpha_i,   delta_i = t_{i+1} - t_i,

with the last interval running to the box exit ``t_far``. See docs/nerf_fields.md.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import Tensor

from diffrep.checks import check_finite, check_positive_int
from diffrep.errors import InputError

FAR_DELTA: float = 1e10  # the last interval when volume_render is given no t_far (NeRF's choice)


def intersect_box(origins: Tensor, dirs: Tensor, bound: float) -> tuple[Tensor, Tensor, Tensor]:
    """Slab test of rays ``origins, dirs [..., 3]`` against the box ``|x|_inf <= bound``.

    Returns ``t_near, t_far [...]`` (in units of ``|dirs|``, ``t_near >= 0``: a ray starting inside
    enters at 0) and ``hit [...]`` bool: the ray crosses the box along a segment of positive length.
    A ray parallel to a face counts as inside that slab iff it lies on or between its planes, so a
    ray sliding along a face hits; one touching an edge or corner at a single point misses. Missed
    rays get ``t_near = t_far = 0``.
    """
    t_near = torch.zeros_like(origins[..., 0])
    t_far = torch.full_like(origins[..., 0], math.inf)
    for k in range(3):
        o, d = origins[..., k], dirs[..., k]
        inside = o.abs() <= bound  # the slab a parallel ray lies in, if any
        d_safe = torch.where(d == 0, 1.0, d)
        ta, tb = (-bound - o) / d_safe, (bound - o) / d_safe
        lo = torch.where(d == 0, torch.where(inside, -math.inf, math.inf), torch.minimum(ta, tb))
        hi = torch.where(d == 0, torch.where(inside, math.inf, -math.inf), torch.maximum(ta, tb))
        t_near, t_far = torch.maximum(t_near, lo), torch.minimum(t_far, hi)
    hit = t_far > t_near
    return torch.where(hit, t_near, 0.0), torch.where(hit, t_far, 0.0), hit


def stratified_samples(t_near: Tensor, t_far: Tensor, samples: int, generator: torch.Generator | None = None) -> Tensor:
    """``t [..., S]``: one sample uniform in each of ``S`` equal bins of ``[t_near, t_far]`` (NeRF eq. 2).

    ``generator=None`` puts every sample at its bin's midpoint (deterministic renders).
    """
    check_positive_int("samples", samples)
    shape = (*t_near.shape, samples)
    if generator is None:
        u = torch.full(shape, 0.5, dtype=t_near.dtype, device=t_near.device)
    else:
        u = torch.rand(shape, generator=generator, dtype=t_near.dtype, device=generator.device).to(t_near.device)
    i = torch.arange(samples, dtype=t_near.dtype, device=t_near.device)
    return t_near[..., None] + (i + u) / samples * (t_far - t_near)[..., None]


def volume_render(sigma: Tensor, rgb: Tensor, t: Tensor, background: Tensor | float,
                  *, t_far: Tensor | None = None) -> dict[str, Tensor]:
    """Composite samples along rays: ``sigma [..., S] >= 0``, ``rgb [..., S, 3]``, ``t [..., S]`` increasing.

    ``delta_i = t_{i+1} - t_i``; the last interval runs to ``t_far [...]`` if given, else it is
    ``FAR_DELTA`` (NeRF's 1e10: the last sample is opaque wherever its density is positive).
    Returns ``rgb [..., 3]`` (composited over ``background [..., 3]`` or a float), ``opacity [...]``
    ``= sum_i w_i``, ``depth [...] = sum_i w_i t_i`` (the background contributes 0; ``depth / opacity``
    is the mean surface distance) and ``weights [..., S] = T_i alpha_i``.
    """
    last = torch.full_like(t[..., -1:], FAR_DELTA) if t_far is None else t_far[..., None] - t[..., -1:]
    delta = torch.cat([t[..., 1:] - t[..., :-1], last], -1)
    tau = sigma * delta  # optical thickness of each interval
    alpha = 1.0 - torch.exp(-tau)
    # T_i = exp(-sum_{j<i} tau_j): an exclusive cumulative sum.
    T = torch.exp(-torch.cat([torch.zeros_like(tau[..., :1]), torch.cumsum(tau[..., :-1], -1)], -1))
    weights = T * alpha
    opacity = weights.sum(-1)
    colour = (weights[..., None] * rgb).sum(-2) + (1.0 - opacity[..., None]) * background
    return {"rgb": colour, "opacity": opacity, "depth": (weights * t).sum(-1), "weights": weights}


def render_rays(field, origins: Tensor, dirs: Tensor, *, samples: int, bound: float, background: Tensor | float,
                generator: torch.Generator | None = None, normals: bool = False, normals_grad: bool = True,
                normal_eps: float | None = None, normal_weight_min: float = 0.0, max_points: int = 1 << 18,
                occupancy: Tensor | None = None) -> dict[str, Tensor]:
    """Volume-render ``field`` along rays ``origins, dirs [n, R, 3]`` of ``n`` instances.

    field: ``field(points [n, P, 3]) -> (sigma [n, P], rgb [n, P, 3])`` (and ``field.density(points)
    -> sigma [n, P]`` for finite-difference normals). ``dirs`` need not be unit (they are normalised,
    so ``depth`` is in world units). Samples are stratified in the ray's box segment (midpoints if
    ``generator`` is None); rays that miss the box render ``background`` (a float, ``[3]`` or ``[n, R, 3]``)
    with opacity 0 and depth 0. Returns ``rgb [n, R, 3]``, ``opacity [n, R]``, ``depth [n, R]`` and, if
    ``normals``, ``normals [n, R, 3] = sum_i w_i n_i`` (length <= opacity; not renormalised) with
    ``n_i = -grad sigma / |grad sigma|`` at the samples: by autograd of the samples' densities
    (``normal_eps=None``) or by central differences of step ``normal_eps`` (6 more density
    evaluations per sample; smooth across grid cells). ``normals_grad``: whether gradients flow
    through ``n_i`` (autograd: ``create_graph``; differences: a graph); either way they flow through
    the weights ``w_i``; with normals, also ``orientation [n, R] = sum_i w_i max(0, n_i . d)^2`` (Ref-NeRF's
    penalty on visible samples facing away from the camera), and the samples' ``weights [n, R, S]``.
    Rays are processed in chunks of at most ``max_points`` sample points (all
    instances together, difference points included). ``occupancy [n, G, G, G]`` (bool, indexed
    ``[x, y, z]`` over the box, ``Field.occupancy_grid``): samples in cells empty for every instance are
    not evaluated (density 0, no gradient; nerfacc's skipping, batched over instances). ``normal_weight_min > 0``:
    difference normals only at samples whose weight exceeds it in some instance (0 elsewhere; the rendered
    normals move by at most the weight left out).

    Example: ``out = render_rays(field, o, d, samples=48, bound=1.0, background=0.8)``.
    """
    _check_rays(origins, dirs, samples, bound, normal_eps, max_points)
    n, R, _ = origins.shape
    dirs = dirs / torch.linalg.vector_norm(dirs, dim=-1, keepdim=True)
    how = Normals(normals_grad, normal_eps, normal_weight_min) if normals else None
    rays = max(1, max_points // (n * samples * (7 if normals and normal_eps is not None else 1)))
    parts = [_render_chunk(field, origins[:, s:s + rays], dirs[:, s:s + rays], samples, bound,
                           _ray_slice(background, R, s, rays), generator, how, occupancy)
             for s in range(0, R, rays)]
    return {k: torch.cat([p[k] for p in parts], 1) for k in parts[0]}


@dataclass(frozen=True)
class Normals:
    """How ``render_rays`` computes normals: gradients through them or not; autograd (eps None) or differences."""

    grad: bool
    eps: float | None
    weight_min: float = 0.0


def _ray_slice(background: Tensor | float, R: int, start: int, rays: int) -> Tensor | float:
    """The chunk's part of a per-ray ``background [n, R, 3]``; a float or a ``[3]`` colour as it is."""
    if torch.is_tensor(background) and background.ndim == 3 and background.shape[1] == R:
        return background[:, start:start + rays]
    return background


def _render_chunk(field, o: Tensor, d: Tensor, samples: int, bound: float, background: Tensor | float,
                  generator: torch.Generator | None, normals: Normals | None, occupancy: Tensor | None = None
                  ) -> dict[str, Tensor]:
    """``render_rays`` on one chunk of rays."""
    n, R, _ = o.shape
    # Sample the box segment of every ray.
    t_near, t_far, _ = intersect_box(o, d, bound)
    t = stratified_samples(t_near, t_far, samples, generator)  # [n, R, S]
    x = (o[:, :, None, :] + t[..., None] * d[:, :, None, :]).reshape(n, R * samples, 3)
    # Skip samples in empty cells: evaluate the field at the others only.
    keep = None if occupancy is None else occupied_samples(occupancy, x, bound)
    x_all, x = x, (x if keep is None else x[:, keep])
    # Evaluate the field; autograd normals differentiate this very evaluation (a graph even under no_grad).
    graph = torch.is_grad_enabled()
    autograd = normals is not None and normals.eps is None
    with torch.enable_grad() if autograd else nullcontext():
        x = x.requires_grad_() if autograd and not x.requires_grad else x
        sigma, rgb = field(x)
        if autograd:
            (grad,) = torch.autograd.grad(sigma.sum(), x, create_graph=graph and normals.grad, retain_graph=graph)
    if autograd and not graph:
        sigma, rgb = sigma.detach(), rgb.detach()
    if keep is not None:
        sigma, rgb = _scatter(sigma, keep, R * samples), _scatter(rgb, keep, R * samples)
        grad = _scatter(grad, keep, R * samples) if autograd else None
    out = volume_render(sigma.view(n, R, samples), rgb.view(n, R, samples, 3), t, background, t_far=t_far)
    if normals is not None and not autograd:
        grad = _difference_gradient(field, x_all, keep, out["weights"], normals, graph)
    weights = out["weights"]
    if normals is not None:
        n_i = unit_normals(grad).view(n, R, samples, 3)
        out["normals"] = (weights[..., None] * n_i).sum(-2)
        # Ref-NeRF's orientation term: visible samples whose normal faces away from the camera.
        out["orientation"] = (weights * (n_i * d[:, :, None, :]).sum(-1).clamp_min(0.0) ** 2).sum(-1)
    return out


def _difference_gradient(field, x: Tensor, keep: Tensor | None, weights: Tensor, normals: Normals, graph: bool) -> Tensor:
    """``density_gradient`` ``[n, P, 3]`` at the chunk's points ``x [n, P, 3]``: at the evaluated ones (``keep``,
    all if None), or with ``normals.weight_min > 0`` only where some instance's sample weight exceeds it
    (a normal enters the render times its weight); zeros elsewhere."""
    P = x.shape[1]
    if normals.weight_min > 0:
        keep = (weights.detach().reshape(weights.shape[0], P) > normals.weight_min).any(0).nonzero().squeeze(1)
    with torch.set_grad_enabled(graph and normals.grad):
        if keep is None:
            return density_gradient(field, x, normals.eps)
        return _scatter(density_gradient(field, x[:, keep], normals.eps), keep, P)


def occupied_samples(occupancy: Tensor, x: Tensor, bound: float) -> Tensor:
    """Indices ``[K]`` of the points ``x [n, P, 3]`` whose cell of ``occupancy [n, G, G, G]`` is occupied in some instance."""
    n, G = occupancy.shape[0], occupancy.shape[1]
    cell = ((x.detach() + bound) / (2 * bound) * G).long().clamp(0, G - 1)  # [n, P, 3]
    inside = occupancy[torch.arange(n, device=x.device)[:, None], cell[..., 0], cell[..., 1], cell[..., 2]]
    return inside.any(0).nonzero().squeeze(1)


def _scatter(values: Tensor, keep: Tensor, P: int) -> Tensor:
    """``values [n, K, ...]`` at positions ``keep`` of ``[n, P, ...]``, zeros elsewhere (differentiable)."""
    return values.new_zeros(values.shape[0], P, *values.shape[2:]).index_copy(1, keep, values)


def density_gradient(field, points: Tensor, eps: float | None = None) -> Tensor:
    """``grad sigma`` ``[n, P, 3]`` of ``field.density`` at ``points [n, P, 3]`` (up to a positive scale).

    ``eps=None``: autograd (no graph of its own unless grad mode is on; then differentiable). Else central
    differences ``(sigma(x + eps e_a) - sigma(x - eps e_a)) / (2 eps)`` (error O(eps^2)), one call of
    ``field.density`` on all ``6 P`` points, returned times ``2 eps``.
    """
    n, P, _ = points.shape
    if eps is None:
        graph = torch.is_grad_enabled()
        with torch.enable_grad():
            x = points if points.requires_grad else points.detach().requires_grad_()
            return torch.autograd.grad(field.density(x).sum(), x, create_graph=graph)[0]
    e = eps * torch.eye(3, dtype=points.dtype, device=points.device)
    offsets = torch.cat([e, -e])  # [6, 3]: +x, +y, +z, -x, -y, -z
    sigma = field.density((points[:, None] + offsets[None, :, None]).reshape(n, 6 * P, 3)).view(n, 2, 3, P)
    return (sigma[:, 0] - sigma[:, 1]).transpose(1, 2)


def unit_normals(grad: Tensor) -> Tensor:
    """``-grad / |grad|`` ``[..., 3]`` (0 where the gradient vanishes)."""
    return -grad / torch.linalg.vector_norm(grad, dim=-1, keepdim=True).clamp_min(1e-12)


def _check_rays(origins: Tensor, dirs: Tensor, samples: int, bound: float, normal_eps: float | None, max_points: int) -> None:
    if origins.ndim != 3 or origins.shape[-1] != 3 or dirs.shape != origins.shape:
        raise InputError(f"origins and dirs must both have shape [n, R, 3], got {tuple(origins.shape)} and {tuple(dirs.shape)}")
    check_positive_int("samples", samples)
    check_positive_int("max_points", max_points)
    check_finite("bound", bound, positive=True)
    if normal_eps is not None:
        check_finite("normal_eps", normal_eps, positive=True)
