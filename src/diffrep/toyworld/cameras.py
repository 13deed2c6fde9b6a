"""Cameras of the toy world: on a sphere round the origin, looking at it.

World frame: ``z`` up; objects face ``+x``. A camera is ``(azimuth_deg, elevation_deg,
distance)``: it sits at ``distance * (cos e cos a, cos e sin a, sin e)`` and looks at the
origin with ``z`` up in the image. Azimuth 0 sees an object's front, azimuth 90 its
right-hand side (+y), azimuth 180 its back. The vertical and horizontal field of view
is ``FOV_DEG``. Pixel ``(i, j)`` (row ``i`` from the top, column ``j`` from the left)
is the ray through the centre of that pixel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

VIEWS: tuple[str, ...] = ("front", "side", "back", "overhead")
DISTANCE: float = 3.2  # camera distance from the origin
FOV_DEG: float = 34.0  # full field of view, square images
OVERHEAD_DEG: float = 45.0  # elevation above which a view is "overhead"


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


def pixel_offsets(res: int, sub: tuple[float, float] = (0.5, 0.5)) -> tuple[Tensor, Tensor]:
    """Image-plane coordinates ``(s, t)`` ``[res * res]`` of the points ``sub`` inside each pixel (row-major)."""
    tan = math.tan(math.radians(FOV_DEG) / 2.0)
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


def camera_rays(cameras: Tensor, res: int) -> tuple[Tensor, Tensor]:
    """Ray origins and unit directions ``[N, res, res, 3]`` of ``cameras [N, 3]`` (az, el in degrees, distance).

    Example: ``o, d = camera_rays(torch.tensor([[0.0, 20.0, DISTANCE]]), 32)``.
    """
    if cameras.ndim != 2 or cameras.shape[1] < 3:
        raise ValueError(f"cameras must have shape [N, 3], got {tuple(cameras.shape)}")
    if res < 1:
        raise ValueError(f"res must be positive, got {res}")
    s, t = pixel_offsets(res)
    o, d = rays_from_frames([f[:, None, :] for f in camera_frames(cameras)], s[None], t[None])
    n = cameras.shape[0]
    return o.reshape(n, res, res, 3).contiguous(), d.reshape(n, res, res, 3)


def relative_azimuth(azimuth_deg: Tensor) -> Tensor:
    """Azimuth relative to the object's front, wrapped to ``(-180, 180]`` degrees."""
    a = torch.remainder(azimuth_deg, 360.0)
    return torch.where(a > 180.0, a - 360.0, a)


def view_label(azimuth_deg: Tensor, elevation_deg: Tensor) -> Tensor:
    """Index into ``VIEWS``: overhead if elevation > 45, else front |az| < 45, back |az| > 135, else side."""
    a = relative_azimuth(azimuth_deg).abs()
    view = torch.full(a.shape, VIEWS.index("side"), dtype=torch.int64)
    view[a < 45.0] = VIEWS.index("front")
    view[a > 135.0] = VIEWS.index("back")
    view[elevation_deg > OVERHEAD_DEG] = VIEWS.index("overhead")
    return view


def sample_cameras(u: Tensor, elevation_range: tuple[float, float]) -> Tensor:
    """Cameras ``[N, 3]`` from uniforms ``u [N, 2]``: azimuth in [0, 360), elevation in ``elevation_range``."""
    lo, hi = elevation_range
    az = 360.0 * u[:, 0]
    el = lo + (hi - lo) * u[:, 1]
    return torch.stack([az, el, torch.full_like(az, DISTANCE)], -1).float()


def sample_light(cameras: Tensor, u: Tensor) -> Tensor:
    """Unit light directions ``[N, 3]`` (towards the light) from uniforms ``u [N, 2]``.

    The light comes from the camera's side, tilted up a little, plus a uniform random
    direction of length 0.8, so that the lit side faces the camera in most images.
    """
    z = 2.0 * u[:, 0].double() - 1.0
    phi = 2.0 * math.pi * u[:, 1].double()
    rho = torch.sqrt((1.0 - z * z).clamp_min(0.0))
    rand = torch.stack([rho * torch.cos(phi), rho * torch.sin(phi), z], -1)
    eye = camera_frames(cameras)[0].double()
    to_camera = eye / eye.norm(dim=-1, keepdim=True)
    l = to_camera + 0.8 * rand + torch.tensor([0.0, 0.0, 0.4], dtype=torch.float64)
    return (l / l.norm(dim=-1, keepdim=True)).float()
