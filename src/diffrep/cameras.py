"""Cameras on a sphere round the origin, looking at it; view labels and view-dependent prompts.

World frame: ``z`` up; objects face ``+x``. A camera is a row ``(azimuth_deg, elevation_deg,
distance)``: it sits at ``distance * (cos e cos a, cos e sin a, sin e)`` and looks at the
origin with ``z`` up in the image (DreamFusion's and threestudio's convention). Azimuth 0
sees an object's front, azimuth 90 its right-hand side (+y), azimuth 180 its back. Images
are square with full field of view ``fov_deg``; pixel ``(i, j)`` (row ``i`` from the top,
column ``j`` from the left) is the ray through the centre of that pixel.

View labels (DreamFusion, Poole et al. 2022, §3.2): ``overhead`` above an elevation
threshold, else ``front``, ``side`` or ``back`` by the azimuth relative to the front; the
view-dependent prompt appends ``", {view} view"``. See docs/cameras.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "BACK_DEG", "FRONT_DEG", "OVERHEAD_DEG", "VIEWS", "camera_bank", "camera_frames", "camera_rays", "pixel_offsets",
    "rays_from_frames", "relative_azimuth", "sample_cameras", "stratified_cameras", "view_label", "view_prompt",
    "view_suffix",
]

VIEWS: tuple[str, ...] = ("front", "side", "back", "overhead")
FRONT_DEG: float = 45.0  # |relative azimuth| below which a view is "front"
BACK_DEG: float = 135.0  # |relative azimuth| above which a view is "back"
OVERHEAD_DEG: float = 45.0  # elevation above which a view is "overhead"
GOLDEN: float = (math.sqrt(5.0) - 1.0) / 2.0  # golden-ratio conjugate: a low-discrepancy step in [0, 1)


def camera_frames(cameras: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Eye position and right, up, forward unit vectors, each ``[N, 3]``, of ``cameras [N, 3]``."""
    a = torch.deg2rad(cameras[:, 0].double())
    e = torch.deg2rad(cameras[:, 1].double())
    r = cameras[:, 2].double()
    back = torch.stack([torch.cos(e) * torch.cos(a), torch.cos(e) * torch.sin(a), torch.sin(e)], -1)
    # right = forward x z_up, up = right x forward (closed forms for forward = -back).
    right = torch.stack([-torch.sin(a), torch.cos(a), torch.zeros_like(a)], -1)
    up = torch.stack([-torch.sin(e) * torch.cos(a), -torch.sin(e) * torch.sin(a), torch.cos(e)], -1)
    return (r[:, None] * back).float(), right.float(), up.float(), (-back).float()


def pixel_offsets(res: int, fov_deg: float, sub: tuple[float, float] = (0.5, 0.5)) -> tuple[Tensor, Tensor]:
    """Image-plane coordinates ``(s, t)`` ``[res * res]`` of the points ``sub`` inside each pixel (row-major).

    ``s`` points right and ``t`` up, at unit distance from the eye: the image spans
    ``[-tan(fov/2), tan(fov/2)]`` in both."""
    tan = math.tan(math.radians(fov_deg) / 2.0)
    i = torch.arange(res, dtype=torch.float32)
    t = (1.0 - 2.0 * (i + sub[0]) / res) * tan  # up
    s = (2.0 * (i + sub[1]) / res - 1.0) * tan  # right
    return s.repeat(res), t.repeat_interleave(res)


def rays_from_frames(frames: Sequence[Tensor], s: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """Origins and unit directions ``[..., 3]`` of the rays through image-plane points ``s, t [...]``.

    frames: eye, right, up, forward, each ``[..., 3]`` and broadcastable against ``s[..., None]``.
    """
    eye, right, up, forward = frames
    d = forward + s[..., None] * right + t[..., None] * up
    n = torch.sqrt(d[..., 0] * d[..., 0] + d[..., 1] * d[..., 1] + d[..., 2] * d[..., 2])
    return eye.expand_as(d), d / n[..., None]


def camera_rays(cameras: Tensor, res: int, fov_deg: float) -> tuple[Tensor, Tensor]:
    """Ray origins and unit directions ``[N, res, res, 3]`` of ``cameras [N, 3]`` (az, el in degrees, distance).

    Example: ``o, d = camera_rays(torch.tensor([[0.0, 20.0, 3.2]]), 32, fov_deg=34.0)``.
    """
    if cameras.ndim != 2 or cameras.shape[1] < 3:
        raise ValueError(f"cameras must have shape [N, 3], got {tuple(cameras.shape)}")
    if res < 1:
        raise ValueError(f"res must be positive, got {res}")
    if not 0.0 < fov_deg < 180.0:
        raise ValueError(f"fov_deg must be in (0, 180), got {fov_deg}")
    s, t = pixel_offsets(res, fov_deg)
    o, d = rays_from_frames([f[:, None, :] for f in camera_frames(cameras)], s[None], t[None])
    n = cameras.shape[0]
    return o.reshape(n, res, res, 3).contiguous(), d.reshape(n, res, res, 3)


def relative_azimuth(azimuth_deg: Tensor) -> Tensor:
    """Azimuth relative to the object's front, wrapped to ``(-180, 180]`` degrees."""
    a = torch.remainder(azimuth_deg, 360.0)
    return torch.where(a > 180.0, a - 360.0, a)


def view_label(azimuth_deg: Tensor, elevation_deg: Tensor, *, front_deg: float = FRONT_DEG,
               back_deg: float = BACK_DEG, overhead_deg: float = OVERHEAD_DEG) -> Tensor:
    """Index into ``VIEWS``: overhead if elevation > overhead_deg, else front if |az| < front_deg,
    back if |az| > back_deg, else side (az relative to the front); thresholds are strict."""
    if not 0.0 <= front_deg <= back_deg <= 180.0:
        raise ValueError(f"need 0 <= front_deg <= back_deg <= 180, got front_deg={front_deg}, back_deg={back_deg}")
    a = relative_azimuth(azimuth_deg).abs()
    view = torch.full(a.shape, VIEWS.index("side"), dtype=torch.int64)
    view[a < front_deg] = VIEWS.index("front")
    view[a > back_deg] = VIEWS.index("back")
    view[elevation_deg > overhead_deg] = VIEWS.index("overhead")
    return view


def view_prompt(prompt: str, view: int | str) -> str:
    """DreamFusion's view-dependent prompt, e.g. ``view_prompt("a red mug", "back") == "a red mug, back view"``.

    view: an index into ``VIEWS`` or one of its names."""
    if view not in VIEWS and view not in range(len(VIEWS)):
        raise ValueError(f"view must be one of {VIEWS} or an index 0..{len(VIEWS) - 1}, got {view!r}")
    return f"{prompt}, {view if isinstance(view, str) else VIEWS[view]} view"


def view_suffix(azimuth_deg: float, elevation_deg: float, **thresholds: float) -> str:
    """The suffix ``", {view} view"`` of one camera; ``thresholds`` as ``view_label``'s.

    Example: ``"a red mug" + view_suffix(180.0, 10.0) == "a red mug, back view"``."""
    view = view_label(torch.tensor([float(azimuth_deg)]), torch.tensor([float(elevation_deg)]), **thresholds)
    return view_prompt("", int(view[0]))


def sample_cameras(u: Tensor, elevation_range: tuple[float, float], distance: float) -> Tensor:
    """Cameras ``[N, 3]`` from uniforms ``u [N, 2]``: azimuth in [0, 360), elevation in ``elevation_range``.

    Taking uniforms rather than a generator lets a caller draw everything about an image
    in one row (as the toy world does); ``torch.rand(N, 2, generator=g)`` gives random views."""
    lo, hi = elevation_range
    az = 360.0 * u[:, 0]
    el = lo + (hi - lo) * u[:, 1]
    return torch.stack([az, el, torch.full_like(az, distance)], -1).float()


def stratified_cameras(k: int, generator: torch.Generator, elevation_range: tuple[float, float],
                       distance: float) -> Tensor:
    """``k`` cameras ``[k, 3]`` with azimuths evenly spaced from a uniform random phase, elevations uniform.

    Every draw puts one camera in each azimuth bin ``[360 i / k, 360 (i + 1) / k)``, so ``k >= 4``
    views always see the front, both sides and the back; each camera alone is uniform in azimuth.
    Example: ``stratified_cameras(4, torch.Generator().manual_seed(0), (-10.0, 60.0), 3.2)``."""
    _check_views(k, elevation_range, distance)
    phase = torch.rand(1, generator=generator, dtype=torch.float64)
    u_el = torch.rand(k, generator=generator, dtype=torch.float64)
    u_az = (torch.arange(k, dtype=torch.float64) + phase) / k
    return sample_cameras(torch.stack([u_az, u_el], -1), elevation_range, distance)


def camera_bank(V: int, elevation_range: tuple[float, float], distance: float) -> Tensor:
    """A fixed bank of ``V`` cameras ``[V, 3]``: azimuths ``360 i / V``, elevations spread over the range.

    Camera ``i``'s elevation is at fraction ``(0.5 + i * GOLDEN) mod 1`` of ``elevation_range``, a
    low-discrepancy sequence, so neighbours in azimuth differ in height; a range ``(e, e)`` gives
    a ring at elevation ``e``. Deterministic: the same ``V`` gives the same cameras."""
    _check_views(V, elevation_range, distance)
    i = torch.arange(V, dtype=torch.float64)
    u_el = torch.remainder(0.5 + i * GOLDEN, 1.0)
    return sample_cameras(torch.stack([i / V, u_el], -1), elevation_range, distance)


def _check_views(k: int, elevation_range: tuple[float, float], distance: float) -> None:
    if k < 1:
        raise ValueError(f"the number of cameras must be positive, got {k}")
    lo, hi = elevation_range
    if not -90.0 <= lo <= hi <= 90.0:
        raise ValueError(f"elevation_range must satisfy -90 <= lo <= hi <= 90, got {elevation_range}")
    if not distance > 0.0:
        raise ValueError(f"distance must be positive, got {distance}")
