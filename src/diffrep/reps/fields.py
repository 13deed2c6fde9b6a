"""Density and colour fields of ``n`` NeRF instances (design §6): a dense voxel grid (SJC's voxNeRF) and an
Instant-NGP multiresolution hash grid with a small MLP (Müller et al. 2022), both in plain PyTorch.

A field maps world points ``[n, P, 3]`` to ``sigma [n, P] >= 0`` and ``rgb [n, P, 3]`` in [0, 1]:
``sigma = softplus(raw + blob(x))`` with threestudio's "blob_magic3d" density bias
``blob(x) = blob_density * (1 - |x| / blob_radius)`` (an object-centred blob at initialisation),
``rgb = sigmoid(raw_rgb)``. See docs/nerf_fields.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from diffrep.checks import check_finite, check_int, check_positive_int

PRIMES: tuple[int, int, int] = (1, 2654435761, 805459861)  # Instant-NGP's spatial hash (Müller et al. 2022, eq. 4)
TABLE_INIT: float = 1e-4  # tables and grids start U(-TABLE_INIT, TABLE_INIT) (Instant-NGP §4)
TV_EPS: float = 1e-6  # inside the total variation's square root: a gradient where the density is flat


def blob(points: Tensor, blob_density: float, blob_radius: float) -> Tensor:
    """threestudio's "blob_magic3d" density bias ``blob_density * (1 - |x| / blob_radius)`` ``[...]`` at ``points [..., 3]``."""
    return blob_density * (1.0 - torch.linalg.vector_norm(points, dim=-1) / blob_radius)


def _check_field(n: int, bound: float, blob_density: float, blob_radius: float) -> None:
    check_positive_int("n", n)
    check_finite("bound", bound, positive=True)
    check_finite("blob_density", blob_density)
    check_finite("blob_radius", blob_radius, positive=True)


def _uniform(shape: tuple[int, ...], scale: float, generator: torch.Generator) -> Tensor:
    """``U(-scale, scale)`` of ``shape``, drawn from ``generator``."""
    return scale * (2.0 * torch.rand(shape, generator=generator) - 1.0)


def lattice(G: int, bound: float = 1.0, device: torch.device | str | None = None) -> Tensor:
    """The ``G^3`` vertices of a lattice over ``[-bound, bound]^3``, ``[G^3, 3]`` world points indexed ``[x, y, z]``."""
    axis = torch.linspace(-bound, bound, G, device=device)
    return torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).view(-1, 3)


def lattice_tv(raw: Tensor, eps: float = TV_EPS, cells: Tensor | None = None) -> Tensor:
    """Plenoxels' total variation ``[n]`` of values on lattices ``raw [n, G, G, G]``: the mean over the ``(G - 1)^3``
    vertices with a neighbour along each axis of ``sqrt(Δ1² + Δ2² + Δ3² + eps)``, ``Δa`` the forward difference.
    ``cells [n, G - 1, G - 1, G - 1]`` bool: only these vertices' terms are summed (still divided by ``(G - 1)^3``)."""
    d = [raw.diff(dim=1)[:, :, :-1, :-1], raw.diff(dim=2)[:, :-1, :, :-1], raw.diff(dim=3)[:, :-1, :-1, :]]
    terms = (d[0].pow(2) + d[1].pow(2) + d[2].pow(2) + eps).sqrt()
    if cells is not None:
        terms = terms * cells
    return terms.flatten(1).mean(1)


def tv_cells(G: int, occupancy: Tensor) -> Tensor:
    """``[n, G - 1, G - 1, G - 1]`` bool: the cells of a ``G^3`` lattice over the box whose centres lie in an occupied
    cell of ``occupancy [n, Go, Go, Go]`` (an occupancy grid over the same box, indexed alike); for ``Go = G - 1``
    the grid itself."""
    Go = occupancy.shape[-1]
    index = ((torch.arange(G - 1, device=occupancy.device) + 0.5) * Go / (G - 1)).long().clamp(max=Go - 1)
    return occupancy[:, index][:, :, index][:, :, :, index]


def lattice_vertices(cells: Tensor) -> Tensor:
    """``[n, G, G, G]`` bool: the vertices a total variation over ``cells [n, G - 1, G - 1, G - 1]`` reads: each
    cell's first vertex and its neighbour along each axis."""
    need = F.pad(cells, (0, 1, 0, 1, 0, 1))
    return need | need.roll(1, 1) | need.roll(1, 2) | need.roll(1, 3)  # the pad's zeros wrap into index 0


class Field(nn.Module):
    """What both fields share: ``raw(points, channels)`` -> pre-activations ``[n, P, channels]``; the activations here."""

    bound: float
    blob_density: float
    blob_radius: float

    def raw(self, points: Tensor, channels: int = 4) -> Tensor:
        raise NotImplementedError

    def density(self, points: Tensor) -> Tensor:
        """``sigma [n, P] = softplus(raw + blob)`` at ``points [n, P, 3]`` (only the density channel where that is cheaper)."""
        return F.softplus(self.raw(points, 1)[..., 0] + blob(points, self.blob_density, self.blob_radius))

    def total_variation(self, G: int, eps: float = TV_EPS, occupancy: Tensor | None = None) -> Tensor:
        """``[n]``: the total variation of the raw density (the learned pre-activation, without the blob) on a
        ``G^3`` lattice over the box: Plenoxels' ``mean_v sqrt(Δx² + Δy² + Δz² + eps)``, ``Δa = raw(v + h e_a) -
        raw(v)`` over the ``(G - 1)^3`` vertices with a neighbour along each axis (``h = 2 bound / (G - 1)``).
        Its unsquared differences cost a sharp surface no more than a blurred one of the same rise, so it flattens
        bumps without fogging the surface (a squared TV does). For the voxel grid at ``G = resolution`` the
        lattice is its own vertices (the grid's differences exactly). ``occupancy`` (an ``occupancy_grid``): the
        sum over the cells whose centres it holds occupied only (``tv_cells``; the mean still over all), the field
        looked up at their vertices alone: the space a render skips is left to itself."""
        first = next(self.parameters())
        n = first.shape[0]
        if occupancy is None:
            points = lattice(G, self.bound, first.device).expand(n, -1, -1)
            return lattice_tv(self.raw(points, 1)[..., 0].view(n, G, G, G), eps)
        cells = tv_cells(G, occupancy)
        index = lattice_vertices(cells).any(0).view(-1).nonzero()[:, 0]  # the vertices some instance reads
        points = lattice(G, self.bound, first.device)[index].expand(n, -1, -1)
        raw = first.new_zeros(n, G ** 3).index_copy(1, index, self.raw(points, 1)[..., 0])
        return lattice_tv(raw.view(n, G, G, G), eps, cells)

    @torch.no_grad()
    def occupancy_grid(self, G: int, threshold: float) -> Tensor:
        """``[n, G, G, G]`` bool (indexed ``[x, y, z]`` over the box): cells where some corner's density, or a
        neighbouring cell's, exceeds ``threshold``; for ``render_rays(..., occupancy=)``. For the voxel grid
        on its own vertices (``G = resolution - 1``) a cell's corners bound its trilinear values."""
        first = next(self.parameters())
        points = lattice(G + 1, self.bound, first.device).expand(first.shape[0], -1, -1)
        dense = self.density(points).view(first.shape[0], 1, G + 1, G + 1, G + 1)
        cells = F.max_pool3d(dense, 2, stride=1)  # the largest of each cell's 8 corners
        return (F.max_pool3d(cells, 3, stride=1, padding=1) > threshold)[:, 0]  # and of its neighbours

    def forward(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """``points [n, P, 3]`` (world) -> ``sigma [n, P] >= 0``, ``rgb [n, P, 3]`` in [0, 1]."""
        h = self.raw(points)
        sigma = F.softplus(h[..., 0] + blob(points, self.blob_density, self.blob_radius))
        return sigma, torch.sigmoid(h[..., 1:4])


class VoxelField(Field):
    """``n`` dense grids ``grids [n, 4, R, R, R]`` (raw density, raw rgb) over ``[-bound, bound]^3``, trilinear.

    Voxel ``grids[i, :, k, j, l]`` sits at world ``(x_l, y_j, z_k)``, ``x_l = bound (2 l / (R - 1) - 1)``
    (``F.grid_sample`` with ``align_corners=True``); points outside the box take the border value.

    >>> field = VoxelField(2, 16, 1.0, generator=torch.Generator().manual_seed(0), blob_density=5.0, blob_radius=0.5)
    >>> [v.shape for v in field(torch.zeros(2, 7, 3))]
    [torch.Size([2, 7]), torch.Size([2, 7, 3])]
    """

    def __init__(self, n: int, resolution: int, bound: float, *, generator: torch.Generator,
                 blob_density: float, blob_radius: float, scale: float = 1.0):
        super().__init__()
        _check_field(n, bound, blob_density, blob_radius)
        check_int("resolution", resolution, 2)
        self.bound, self.blob_density, self.blob_radius = float(bound), float(blob_density), float(blob_radius)
        # The grid values are ``scale * grids``: an optimiser step of lr moves them by scale * lr (a grid
        # needs steps of ~0.05, a SIREN's weights ~3e-3), as SIREN's omega_0 scales its layers.
        self.scale = float(scale)
        self.grids = nn.Parameter(_uniform((n, 4, resolution, resolution, resolution), TABLE_INIT / self.scale, generator))

    def total_variation(self, G: int, eps: float = TV_EPS, occupancy: Tensor | None = None) -> Tensor:
        """``Field.total_variation``; at ``G = resolution`` straight from the grid (its values are the lattice's;
        a DDRep run takes it every Adam iteration, and trilinear lookups of the lattice cost ~10x more)."""
        if G != self.grids.shape[-1]:
            return super().total_variation(G, eps, occupancy)
        cells = None if occupancy is None else tv_cells(G, occupancy).transpose(1, 3)  # [n, z, y, x] as the grid
        return lattice_tv(self.scale * self.grids[:, 0], eps, cells)  # the same sum as over [n, x, y, z]

    def raw(self, points: Tensor, channels: int = 4) -> Tensor:
        """The first ``channels`` grid channels trilinearly interpolated at ``points [n, P, 3]`` -> ``[n, P, channels]``."""
        n, P, _ = points.shape
        grid = (points / self.bound).view(n, 1, 1, P, 3).to(self.grids.dtype)
        values = self.grids[:, :channels] if self.scale == 1.0 else self.scale * self.grids[:, :channels]
        out = F.grid_sample(values, grid, mode="bilinear", padding_mode="border", align_corners=True)
        return out.view(n, channels, P).transpose(1, 2)


def level_resolutions(levels: int, base_res: int, max_res: int) -> tuple[int, ...]:
    """Instant-NGP's level resolutions ``N_l = floor(base_res b^l)``, ``b = (max_res / base_res)^(1 / (L - 1))`` (eq. 2-3)."""
    if levels == 1:
        return (base_res,)
    b = math.exp((math.log(max_res) - math.log(base_res)) / (levels - 1))
    return tuple(math.floor(base_res * b**level + 1e-9) for level in range(levels))


def hash_encode(points01: Tensor, tables: Tensor, resolutions: Tensor | Sequence[int]) -> Tensor:
    """Multiresolution hash encoding (Müller et al. 2022, §3): ``points01 [n, P, 3]`` in [0, 1] -> ``[n, P, L * F]``.

    tables: ``[n, L, T, F]`` feature tables (T a power of two); resolutions: ``[L]`` cells per axis.
    Level ``l`` scales the (clamped) point to ``x = p N_l``, takes the 8 vertices ``c + {0,1}^3`` of
    its cell ``c = min(floor(x), N_l - 1)`` and blends their features with trilinear weights. A
    vertex indexes its table directly (``c_x + (N+1) c_y + (N+1)^2 c_z``) when the level's ``(N+1)^3``
    vertices fit in ``T``, else through the spatial hash ``(c_x 1 xor c_y 2654435761 xor c_z 805459861) mod T``.
    Differentiable w.r.t. the tables and the points (inside the unit cube).
    """
    n, P, _ = points01.shape
    T, Fe = tables.shape[2:]
    # Work on [.., n P] tensors with the points innermost (contiguous, vectorised); rows index [F, n T] tables.
    p = points01.clamp(0.0, 1.0).permute(2, 0, 1).reshape(3, 1, n * P)
    instance = (torch.arange(n, device=p.device) * T).repeat_interleave(P)  # first row of each instance's table
    bits = torch.tensor([[0], [1]], device=p.device)
    out = []
    # unbind: the backward stacks the levels' gradients once instead of zero-filling all the tables per level.
    for level_table, N in zip(tables.unbind(1), (int(r) for r in resolutions)):
        # The point's cell and its offset in it, [3, 1, n P].
        x = p * N
        cell = x.detach().floor().clamp_max(N - 1)
        frac, cell = x - cell, cell.long()
        # Per axis, the terms (c_a + b) m_a of the vertices b = 0, 1 ([2, n P]); the 8 rows [2 (z), 2 (y), 2 (x), n P].
        hashed = (N + 1) ** 3 > T
        m = PRIMES if hashed else (1, N + 1, (N + 1) ** 2)
        tx, ty, tz = ((cell[a] + bits) * m[a] for a in range(3))
        if hashed:  # (a ^ b ^ c) mod T = (a mod T) ^ (b mod T) ^ (c mod T) for T a power of two
            tx, ty, tz = tx & (T - 1), ty & (T - 1), tz & (T - 1)
            row = tz[:, None, None] ^ ty[None, :, None] ^ (tx + instance)[None, None, :]  # the offset's bits are above T
        else:
            row = tz[:, None, None] + ty[None, :, None] + (tx + instance)[None, None, :]
        feats = level_table.permute(2, 0, 1).reshape(Fe, n * T).index_select(1, row.view(-1)).view(Fe, 8, n * P)
        # Trilinear weights prod_a (1 - f_a, f_a)[b_a], in the same vertex order.
        wx, wy, wz = (torch.cat([1.0 - frac[a], frac[a]]) for a in range(3))
        w = wz[:, None, None] * wy[None, :, None] * wx[None, None, :]
        out.append((feats * w.view(8, n * P)).sum(1))  # [F, n P]
    return torch.stack(out).view(len(out) * Fe, n * P).T.reshape(n, P, len(out) * Fe)  # explicit sizes: P may be 0


class HashField(Field):
    """``n`` Instant-NGP fields: hash encoding of ``(x / bound + 1) / 2`` -> MLP (one ReLU layer of ``hidden``) -> 4 raw outputs.

    Parameters: ``tables [n, L, 2^log2_table, F]`` (U(-1e-4, 1e-4)), ``w1 [n, L F, hidden]``,
    ``b1 [n, 1, hidden]``, ``w2 [n, hidden, 4]``, ``b2 [n, 1, 4]`` (He-uniform weights, zero biases);
    the instances' MLPs run as one ``baddbmm`` each layer.

    >>> field = HashField(2, levels=4, features=2, log2_table=10, base_res=4, max_res=32, hidden=16, bound=1.0,
    ...                   generator=torch.Generator().manual_seed(0), blob_density=5.0, blob_radius=0.5)
    >>> [v.shape for v in field(torch.zeros(2, 7, 3))]
    [torch.Size([2, 7]), torch.Size([2, 7, 3])]
    """

    def __init__(self, n: int, *, levels: int, features: int, log2_table: int, base_res: int, max_res: int,
                 hidden: int, bound: float, generator: torch.Generator, blob_density: float, blob_radius: float):
        super().__init__()
        _check_field(n, bound, blob_density, blob_radius)
        for name, value in (("levels", levels), ("features", features), ("log2_table", log2_table), ("hidden", hidden)):
            check_positive_int(name, value)
        check_int("max_res", max_res, check_positive_int("base_res", base_res))
        self.bound, self.blob_density, self.blob_radius = float(bound), float(blob_density), float(blob_radius)
        self.resolutions = level_resolutions(levels, base_res, max_res)
        self.tables = nn.Parameter(_uniform((n, levels, 1 << log2_table, features), TABLE_INIT, generator))
        d_in = levels * features
        self.w1 = nn.Parameter(_uniform((n, d_in, hidden), math.sqrt(6.0 / d_in), generator))
        self.b1 = nn.Parameter(torch.zeros(n, 1, hidden))
        self.w2 = nn.Parameter(_uniform((n, hidden, 4), math.sqrt(6.0 / hidden), generator))
        self.b2 = nn.Parameter(torch.zeros(n, 1, 4))

    def raw(self, points: Tensor, channels: int = 4) -> Tensor:
        """Raw outputs ``[n, P, 4]`` (density pre-activation without the blob, rgb logits) at ``points [n, P, 3]``;
        all four whatever ``channels`` asks (the MLP computes them together)."""
        h = hash_encode((points / self.bound + 1.0) / 2.0, self.tables, self.resolutions)
        h = torch.relu(torch.baddbmm(self.b1, h, self.w1))
        return torch.baddbmm(self.b2, h, self.w2)
