"""The toy world's camera model: a fixed distance and field of view, and its lights.

The camera maths (frames, rays, view labels, sampling) is ``diffrep.cameras``, shared with
the NeRF; it is re-exported here, so ``diffrep.toyworld.cameras`` still offers it. A toy-world
camera is ``(azimuth_deg, elevation_deg, DISTANCE)`` seen with field of view ``FOV_DEG``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from diffrep import cameras as _cameras
from diffrep.cameras import (
    OVERHEAD_DEG, VIEWS, camera_frames, pixel_offsets, rays_from_frames, relative_azimuth, sample_cameras, view_label,
)

__all__ = [  # the generic names too: the toy world's import paths from before diffrep.cameras
    "DISTANCE", "FOV_DEG", "OVERHEAD_DEG", "VIEWS", "camera_frames", "camera_rays", "pixel_offsets", "rays_from_frames",
    "relative_azimuth", "sample_cameras", "sample_light", "view_label",
]

DISTANCE: float = 3.2  # camera distance from the origin
FOV_DEG: float = 34.0  # full field of view, square images


def camera_rays(cameras: Tensor, res: int, fov_deg: float = FOV_DEG) -> tuple[Tensor, Tensor]:
    """``diffrep.cameras.camera_rays`` with the toy world's field of view: the very rays the renderer traces.

    Example: ``o, d = camera_rays(torch.tensor([[0.0, 20.0, DISTANCE]]), 32)``."""
    return _cameras.camera_rays(cameras, res, fov_deg)


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
