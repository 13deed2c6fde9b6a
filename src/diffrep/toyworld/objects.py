"""Signed distance functions of the toy world's objects.

Every object lives in its own frame, which is also the world frame: ``z`` is up, the
object's front faces ``+x`` (camera azimuth 0), and ``+y`` is on the right of a front
view.  Every instance fits in a box of half extents ``Kind.bound`` centred
at the origin, which itself fits in the unit sphere.

An object's SDF is a list of *parts* ``(distance, material)``; the object is the union
(``min``) of its parts and a surface point takes the material of its nearest part.
Material ``BODY`` is painted with the instance's colour, ``SHADE`` with a darker shade of
it, the others are neutral.

Points come in as three component tensors ``x, y, z`` (each ``[M]``) and instance
parameters as a sequence ``q`` of ``[M]`` tensors (one per parameter, in
``Kind.params`` order), so that the renderer can evaluate many rays of many instances of
one kind at once.  Only ``+ - * / sqrt min max abs clamp`` are used per point, so
a point's distance does not depend on how points are batched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from diffrep.toyworld.vocabulary import COLOURS  # noqa: F401  re-exported; the words live where no torch is imported

Scalar = Tensor | float
Parts = list[tuple[Tensor, int]]

# Materials of an object's parts.
BODY, DARK, LIGHT, GREY, WOOD, SHADE = 0, 1, 2, 3, 4, 5
MATERIAL_RGB: tuple[tuple[float, float, float], ...] = (
    (0.0, 0.0, 0.0),  # BODY: replaced by the instance colour
    (0.13, 0.13, 0.15),  # DARK: windows, doors, eyes, wheels, beaks, handles, caps
    (0.96, 0.95, 0.92),  # LIGHT: labels, prints, visors, headlights, cushions, dough
    (0.50, 0.50, 0.53),  # GREY: robot feet
    (0.42, 0.27, 0.15),  # WOOD: tree trunks
    (0.0, 0.0, 0.0),  # SHADE: the instance colour darkened by SHADE_FACTOR (roofs)
)
SHADE_FACTOR: float = 0.65

COLOUR_RGB: tuple[tuple[float, float, float], ...] = (
    (0.88, 0.12, 0.10),
    (0.13, 0.68, 0.20),
    (0.12, 0.32, 0.92),
    (0.98, 0.85, 0.08),
    (0.58, 0.20, 0.80),
    (1.00, 0.50, 0.04),
)


# ----------------------------------------------------------------------------------
# Primitives (iq's distance functions, https://iquilezles.org/articles/distfunctions/)


def _len2(a: Tensor, b: Tensor) -> Tensor:
    return torch.sqrt(a * a + b * b)


def _len3(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    return torch.sqrt(a * a + b * b + c * c)


def sd_sphere(x: Tensor, y: Tensor, z: Tensor, r: Scalar) -> Tensor:
    """Sphere of radius ``r`` at the origin."""
    return _len3(x, y, z) - r


def sd_box(x: Tensor, y: Tensor, z: Tensor, bx: Scalar, by: Scalar, bz: Scalar, r: float = 0.0) -> Tensor:
    """Box of half extents ``(bx, by, bz)`` whose edges are rounded with radius ``r``."""
    qx, qy, qz = x.abs() - (bx - r), y.abs() - (by - r), z.abs() - (bz - r)
    outside = _len3(qx.clamp_min(0.0), qy.clamp_min(0.0), qz.clamp_min(0.0))
    inside = torch.maximum(qx, torch.maximum(qy, qz)).clamp_max(0.0)
    return outside + inside - r


def sd_cylinder(x: Tensor, y: Tensor, z: Tensor, r: Scalar, h: Scalar) -> Tensor:
    """Capped cylinder along ``z``: radius ``r``, half height ``h``."""
    dr, dz = _len2(x, y) - r, z.abs() - h
    return torch.maximum(dr, dz).clamp_max(0.0) + _len2(dr.clamp_min(0.0), dz.clamp_min(0.0))


def sd_capsule(x: Tensor, y: Tensor, z: Tensor, h: Scalar, r: Scalar) -> Tensor:
    """Capsule along ``z``: segment from ``-h`` to ``h``, radius ``r``."""
    return _len3(x, y, (z.abs() - h).clamp_min(0.0)) - r


def sd_torus(x: Tensor, y: Tensor, z: Tensor, R: Scalar, r: Scalar) -> Tensor:
    """Torus in the ``xy`` plane: ring radius ``R``, tube radius ``r``."""
    return _len2(_len2(x, y) - R, z) - r


def sd_ellipsoid(x: Tensor, y: Tensor, z: Tensor, a: Scalar, b: Scalar, c: Scalar) -> Tensor:
    """Ellipsoid with semi-axes ``(a, b, c)`` (iq's bound: exact sign, near-exact distance)."""
    k0 = _len3(x / a, y / b, z / c)
    k1 = _len3(x / (a * a), y / (b * b), z / (c * c))
    return k0 * (k0 - 1.0) / k1.clamp_min(1e-6)


def sd_cone(x: Tensor, y: Tensor, z: Tensor, h: Scalar, r1: Scalar, r2: Scalar) -> Tensor:
    """Capped cone along ``z`` from radius ``r1`` at ``z = -h`` to ``r2`` at ``z = h``.

    The larger of the distances to the cone's side and to its caps' planes: exact sign,
    a lower bound of the distance near the rims.
    """
    k = r2 - r1
    side = (_len2(x, y) - 0.5 * (r1 + r2) - k * z / (2.0 * h)) * (2.0 * h / torch.sqrt(torch.as_tensor(4.0 * h * h + k * k)))
    return torch.maximum(side, z.abs() - h)


def sd_tapered_capsule_xz(x: Tensor, y: Tensor, z: Tensor, a: tuple[Scalar, Scalar], b: tuple[Scalar, Scalar], r1: float, r2: float) -> Tensor:
    """Segment from ``(a[0], 0, a[1])`` to ``(b[0], 0, b[1])`` thickened by a radius going from ``r1`` to ``r2``.

    Distance to the nearest segment point minus the radius there, scaled to stay a bound.
    """
    bax, baz = b[0] - a[0], b[1] - a[1]
    pax, paz = x - a[0], z - a[1]
    l2 = bax * bax + baz * baz
    s = ((pax * bax + paz * baz) / l2).clamp(0.0, 1.0)
    d = _len3(pax - bax * s, y, paz - baz * s) - (r1 + (r2 - r1) * s)
    return d * 0.85


def smin(a: Tensor, b: Tensor, k: float) -> Tensor:
    """Polynomial smooth minimum (smooth union) with blend radius ``k``."""
    h = (0.5 + 0.5 * (b - a) / k).clamp(0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


# ----------------------------------------------------------------------------------
# Object kinds


@dataclass(frozen=True)
class Param:
    """One shape parameter of a kind, drawn uniformly from ``[lo, hi]`` (world units)."""

    name: str
    lo: float
    hi: float


@dataclass(frozen=True)
class Kind:
    """An object kind: its shape parameters, a bounding box and its parts' SDF."""

    name: str
    params: tuple[Param, ...]
    bound: tuple[float, float, float]  # half extents of a box holding every instance
    fronted: bool  # has a distinct front (at +x), i.e. is not mirror symmetric in x
    parts: Callable[[Tensor, Tensor, Tensor, Sequence[Tensor]], Parts]


def ball(x: Tensor, y: Tensor, z: Tensor, q: Sequence[Tensor]) -> Parts:
    """Ball of radius ``r`` with a light band of half width ``band`` round its equator."""
    r, band = q[0], q[1]
    stripe = torch.maximum(sd_sphere(x, y, z, r + 0.008), z.abs() - band)
    return [(sd_sphere(x, y, z, r), BODY), (stripe, LIGHT)]


def donut(x: Tensor, y: Tensor, z: Tensor, q: Sequence[Tensor]) -> Parts:
    """Lying torus (ring radius ``R``, tube radius ``r``): light dough, coloured icing on top."""
    R, r = q[0], q[1]
    icing = torch.maximum(sd_torus(x, y, z, R, r + 0.015), -0.2 * r - z)
    return [(sd_torus(x, y, z, R, r), LIGHT), (icing, BODY)]


def bottle(x: Tensor, y: Tensor, z: Tensor, q: Sequence[Tensor]) -> Parts:
    """Bottle standing on z = -0.7: body (radius ``r``, half height ``h``), neck (``neck``), dark cap, light label."""
    r, h, neck = q[0], q[1], q[2]
    zb, zt = -0.7 + h, -0.7 + 2.0 * h
    body = sd_cylinder(x, y, z - zb, r - 0.03, h - 0.03) - 0.03
    shoulder = sd_cone(x, y, z - (zt + 0.1), 0.1, r - 0.01, neck)
    neck_ = sd_cylinder(x, y, z - (zt + 0.78) / 2.0, neck, (0.58 - zt) / 2.0)
    glass = smin(smin(body, shoulder, 0.05), neck_, 0.03)
    cap = sd_cylinder(x, y, z - 0.645, neck + 0.01, 0.045) - 0.01
    label = sd_cylinder(x, y, z - zb, r + 0.008, 0.5 * h)
    return [(glass, BODY), (cap, DARK), (label, LIGHT)]


def tree(x: Tensor, y: Tensor, z: Tensor, q: Sequence[Tensor]) -> Parts:
    """Fir tree: three stacked cones (bottom radius ``w``, top at ``top``) on a wooden trunk (radius ``trunk``)."""
    w, trunk, top = q[0], q[1], q[2]
    stem = sd_cylinder(x, y, z + 0.6, trunk, 0.15)
    h3 = (top - 0.14) / 2.0
    tiers = torch.minimum(sd_cone(x, y, z + 0.25, 0.2, w, 0.3 * w), sd_cone(x, y, z - 0.05, 0.19, 0.8 * w, 0.2 * w))
    tiers = torch.minimum(tiers, sd_cone(x, y, z - (top - h3), h3, 0.58 * w, 0.02))
    return [(stem, WOOD), (tiers, BODY)]


def table(x: Tensor, y: Tensor, z: Tensor, q: Sequence[Tensor]) -> Parts:
    """Table: top of half extents ``(a, b)`` at height ``top``, four legs of radius ``leg`` down to z = -0.55."""
    a, b, top, leg = q[0], q[1], q[2], q[3]
    board = sd_box(x, y, z - top, a, b, 0.045, r=0.015)
    lx, ly = x.abs() - (a - 0.07), y.abs() - (b - 0.07)
    legs = sd_cylinder(lx, ly, z - (top - 0.55) / 2.0, leg, (top + 0.55) / 2.0)
    return [(torch.minimum(board, legs), BODY)]


def mug(x: Tensor, y: Tensor, z: Tensor, q: Sequence[Tensor]) -> Parts:
    """Mug (radius ``r``, half height ``h``), handle of ring radius ``R`` on its right (+y), light print on its front."""
    r, h, R = q[0], q[1], q[2]
    cup = sd_cylinder(x, y, z, r - 0.02, h - 0.02) - 0.02
    cup = torch.maximum(cup, -sd_cylinder(x, y, z - 0.07, r - 0.05, h))
    handle = torch.maximum(sd_torus(y - r, z, x, R, 0.045), r - 0.03 - y)
    shell = torch.maximum((_len2(x, y) - r).abs() - 0.01, (z - 0.05).abs() - 0.42 * h)
    print_ = torch.maximum(shell, torch.maximum(y.abs() - 0.55 * r, -x))
    return [(torch.minimum(cup, handle), BODY), (print_, LIGHT)]


def teapot(x: Tensor, y: Tensor, z: Tensor, q: Sequence[Tensor]) -> Parts:
    """Teapot: body of radius ``a`` and half height ``c``, spout of length ``spout`` at the front, dark handle at the back."""
    a, c, spout = q[0], q[1], q[2]
    zl = -0.1 + 0.9 * c
    body = torch.maximum(sd_ellipsoid(x, y, z + 0.1, a, a, c), -0.1 - 0.85 * c - z)
    nose = sd_tapered_capsule_xz(x, y, z, (0.55 * a, -0.15), (a + spout, zl + 0.03), 0.1, 0.045)
    body = smin(body, nose, 0.04)
    lid = torch.minimum(sd_ellipsoid(x, y, z - zl, 0.55 * a, 0.55 * a, 0.09), sd_sphere(x, y, z - zl - 0.12, 0.055))
    handle = torch.maximum(sd_torus(x + a + 0.02, z + 0.08, y, 0.18, 0.04), x + a - 0.1)
    return [(torch.minimum(body, lid), BODY), (handle, DARK)]


def duck(x: Tensor, y: Tensor, z: Tensor, q: Sequence[Tensor]) -> Parts:
    """Rubber duck: body of half length ``a`` and half width ``b``, head of radius ``rh`` at the front, dark beak and eyes."""
    a, b, rh = q[0], q[1], q[2]
    xh, zh = 0.5 * a, 0.22
    body = sd_ellipsoid(x + 0.1, y, z + 0.2, a, b, 0.3)
    tail = sd_ellipsoid(x + 0.1 + 0.9 * a, y, z + 0.06, 0.16, 0.1, 0.1)
    head = sd_sphere(x - xh, y, z - zh, rh)
    duck_ = smin(smin(body, tail, 0.1), head, 0.12)
    beak = sd_ellipsoid(x - xh - 0.95 * rh, y, z - zh + 0.03, 0.15, 0.1, 0.045)
    eyes = sd_sphere(x - xh - 0.64 * rh, y.abs() - 0.54 * rh, z - zh - 0.44 * rh, 0.045)
    return [(duck_, BODY), (torch.minimum(beak, eyes), DARK)]


def chair(x: Tensor, y: Tensor, z: Tensor, q: Sequence[Tensor]) -> Parts:
    """Chair: seat of half extents ``(sx, sy)`` at height ``zs``, backrest (half height ``hb``) at the back, light cushions."""
    sx, sy, zs, hb = q[0], q[1], q[2], q[3]
    seat = sd_box(x, y, z - zs, sx, sy, 0.045, r=0.015)
    lx, ly = x.abs() - (sx - 0.05), y.abs() - (sy - 0.05)
    legs = sd_cylinder(lx, ly, z - (zs - 0.62) / 2.0, 0.035, (zs + 0.62) / 2.0)
    back = sd_box(x + sx - 0.035, y, z - zs - hb, 0.035, sy, hb, r=0.015)
    cushion = sd_box(x - 0.02, y, z - zs - 0.055, sx - 0.07, sy - 0.05, 0.025, r=0.02)
    pad = sd_box(x + sx - 0.085, y, z - zs - hb - 0.04, 0.02, sy - 0.06, hb - 0.1, r=0.02)
    frame = torch.minimum(torch.minimum(seat, legs), back)
    return [(frame, BODY), (torch.minimum(cushion, pad), LIGHT)]


def house(x: Tensor, y: Tensor, z: Tensor, q: Sequence[Tensor]) -> Parts:
    """House on z = -0.5: walls of half extents ``(bx, by, hw)``, roof (darker body colour) of height ``rh``, door and windows at the front."""
    bx, by, hw, rh = q[0], q[1], q[2], q[3]
    zw, zt, ex = -0.5 + hw, -0.5 + 2.0 * hw, bx + 0.07
    walls = sd_box(x, y, z - zw, bx, by, hw)
    slope = (x.abs() * rh + (z - zt - rh) * ex) / torch.sqrt(rh * rh + ex * ex)
    roof = torch.maximum(torch.maximum(slope, zt - 0.03 - z), y.abs() - by - 0.05)
    chimney = sd_box(x + 0.45 * bx, y - 0.45 * by, z - zt - 0.5 * rh, 0.06, 0.06, 0.5 * rh)
    door = sd_box(x - bx, y, z + 0.33, 0.012, 0.09, 0.17, r=0.01)
    zwin = -0.5 + 1.25 * hw
    windows = sd_box(x - bx, y.abs() - 0.62 * by, z - zwin, 0.012, 0.08, 0.07)
    windows = torch.minimum(windows, sd_box(x, y.abs() - by, z - zwin, 0.08, 0.012, 0.07))
    return [(torch.minimum(walls, chimney), BODY), (roof, SHADE), (door, DARK), (windows, LIGHT)]


def car(x: Tensor, y: Tensor, z: Tensor, q: Sequence[Tensor]) -> Parts:
    """Car: body of half extents ``(a, b, c)``, cabin (half length ``ac``) set back, headlights and grille at the front."""
    a, b, c, ac = q[0], q[1], q[2], q[3]
    zb, xc = -0.1, -0.1
    zc = zb + c + 0.1
    body = torch.minimum(sd_box(x, y, z - zb, a, b, c, r=0.05), sd_box(x - xc, y, z - zc, ac, b - 0.04, 0.11, r=0.05))
    glass = sd_box(x - xc, y, z - zc - 0.025, ac + 0.008, b - 0.032, 0.06, r=0.04)
    lights = sd_sphere(x - a + 0.035, y.abs() - b + 0.09, z - zb - 0.02, 0.055)
    grille = sd_box(x - a, y, z - zb + 0.035, 0.012, b - 0.17, 0.035, r=0.01)
    wheels = sd_cylinder(x.abs() - a + 0.2, z - zb + c, y.abs() - b + 0.04, 0.14, 0.06)
    return [(body, BODY), (torch.minimum(torch.minimum(glass, grille), wheels), DARK), (lights, LIGHT)]


def robot(x: Tensor, y: Tensor, z: Tensor, q: Sequence[Tensor]) -> Parts:
    """Robot: body of half width ``w`` and half height ``hb``, head (half height ``hh``) with a light visor at the front."""
    w, hb, hh = q[0], q[1], q[2]
    zb = -0.15
    zt = zb + hb
    zh = zt + 0.05 + hh
    body = sd_box(x, y, z - zb, 0.2, w, hb, r=0.05)
    head = sd_box(x, y, z - zh, 0.18, 0.2, hh, r=0.05)
    neck = sd_cylinder(x, y, z - zt - 0.03, 0.06, 0.06)
    arms = sd_capsule(x, y.abs() - w - 0.07, z - zb + 0.05, 0.7 * hb, 0.055)
    legs = sd_cylinder(x, y.abs() - 0.5 * w, z - (zb - hb - 0.7) / 2.0, 0.07, (0.7 + zb - hb) / 2.0 + 0.02)
    antenna = torch.minimum(sd_capsule(x, y, z - zh - hh - 0.06, 0.06, 0.015), sd_sphere(x, y, z - zh - hh - 0.13, 0.04))
    frame = torch.minimum(torch.minimum(body, head), torch.minimum(torch.minimum(neck, arms), torch.minimum(legs, antenna)))
    visor = sd_box(x - 0.18, y, z - zh - 0.02, 0.015, 0.15, 0.055, r=0.01)
    panel = sd_box(x - 0.2, y, z - zb, 0.012, 0.5 * w, 0.45 * hb, r=0.01)
    feet = sd_box(x - 0.05, y.abs() - 0.5 * w, z + 0.68, 0.14, 0.08, 0.05, r=0.03)
    return [(frame, BODY), (visor, LIGHT), (panel, DARK), (feet, GREY)]


KIND_SPECS: tuple[Kind, ...] = (
    Kind("mug", (Param("r", 0.34, 0.44), Param("h", 0.4, 0.54), Param("R", 0.15, 0.21)), (0.47, 0.72, 0.57), True, mug),
    Kind("duck", (Param("a", 0.52, 0.62), Param("b", 0.34, 0.42), Param("rh", 0.21, 0.27)), (0.84, 0.44, 0.53), True, duck),
    Kind("chair", (Param("sx", 0.3, 0.4), Param("sy", 0.3, 0.4), Param("zs", -0.15, -0.02), Param("hb", 0.26, 0.33)), (0.43, 0.43, 0.66), True, chair),
    Kind("house", (Param("bx", 0.32, 0.42), Param("by", 0.38, 0.5), Param("hw", 0.24, 0.3), Param("rh", 0.25, 0.35)), (0.55, 0.57, 0.53), True, house),
    Kind("car", (Param("a", 0.6, 0.72), Param("b", 0.28, 0.34), Param("c", 0.1, 0.14), Param("ac", 0.26, 0.34)), (0.76, 0.39, 0.40), True, car),
    Kind("teapot", (Param("a", 0.42, 0.52), Param("c", 0.31, 0.38), Param("spout", 0.2, 0.27)), (0.86, 0.54, 0.44), True, teapot),
    Kind("robot", (Param("w", 0.24, 0.32), Param("hb", 0.22, 0.28), Param("hh", 0.13, 0.17)), (0.24, 0.47, 0.76), True, robot),
    Kind("ball", (Param("r", 0.5, 0.65), Param("band", 0.06, 0.12)), (0.68, 0.68, 0.68), False, ball),
    Kind("donut", (Param("R", 0.42, 0.55), Param("r", 0.17, 0.24)), (0.83, 0.83, 0.28), False, donut),
    Kind("bottle", (Param("r", 0.22, 0.3), Param("h", 0.3, 0.4), Param("neck", 0.08, 0.11)), (0.33, 0.33, 0.72), False, bottle),
    Kind("tree", (Param("w", 0.4, 0.55), Param("trunk", 0.06, 0.1), Param("top", 0.6, 0.8)), (0.57, 0.57, 0.83), False, tree),
    Kind("table", (Param("a", 0.45, 0.58), Param("b", 0.35, 0.5), Param("top", 0.0, 0.2), Param("leg", 0.035, 0.055)), (0.61, 0.53, 0.57), False, table),
)
KINDS: tuple[str, ...] = tuple(k.name for k in KIND_SPECS)
FRONTED: tuple[str, ...] = tuple(k.name for k in KIND_SPECS if k.fronted)
N_PARAMS: int = max(len(k.params) for k in KIND_SPECS)  # columns of an instance tensor


def sample_instance(kind: Tensor, u: Tensor) -> Tensor:
    """Shape parameters ``[N, N_PARAMS]`` from uniforms ``u [N, N_PARAMS]``; unused columns are 0."""
    lo = torch.zeros(len(KINDS), N_PARAMS, dtype=u.dtype)
    hi = torch.zeros(len(KINDS), N_PARAMS, dtype=u.dtype)
    for i, spec in enumerate(KIND_SPECS):
        for j, p in enumerate(spec.params):
            lo[i, j], hi[i, j] = p.lo, p.hi
    return (lo[kind] + u * (hi[kind] - lo[kind])).float()


def parts(kind: int, x: Tensor, y: Tensor, z: Tensor, q: Sequence[Tensor]) -> Parts:
    """The parts ``(distance, material)`` of ``KINDS[kind]`` at points ``(x, y, z)``."""
    return KIND_SPECS[kind].parts(x, y, z, q)


def sdf(kind: int, x: Tensor, y: Tensor, z: Tensor, q: Sequence[Tensor]) -> Tensor:
    """Signed distance to the object: the union (min) of its parts."""
    ds = [d for d, _ in parts(kind, x, y, z, q)]
    d = ds[0]
    for other in ds[1:]:
        d = torch.minimum(d, other)
    return d


def occupancy(kind: int, instance: Tensor, points: Tensor) -> Tensor:
    """Ground-truth occupancy (SDF < 0) of one instance.

    kind: index into ``KINDS``; instance: ``[N_PARAMS]`` shape parameters (a row of
    ``ToyDataset.instance``); points: ``[..., 3]`` world coordinates. Returns bool ``[...]``.
    """
    if not 0 <= int(kind) < len(KINDS):
        raise ValueError(f"kind must be in [0, {len(KINDS)}), got {kind}")
    if points.shape[-1] != 3:
        raise ValueError(f"points must have shape [..., 3], got {tuple(points.shape)}")
    p = points.float()
    q = [v for v in instance.float().reshape(-1)]
    return sdf(int(kind), p[..., 0], p[..., 1], p[..., 2], q) < 0.0
