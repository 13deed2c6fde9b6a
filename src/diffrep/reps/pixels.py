"""The pixel diffrep (design §6): a free grid per instance, optionally through ``tanh``, with the
2-D playground's random rotation and scaling views."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from diffrep.errors import InputError
from diffrep.reps.base import Diffrep
from diffrep.reps.configs import PixelsConfig


class PixelRep(Diffrep):
    """``n`` free grids ``theta [n, C, H, W]``; render ``theta`` (or ``tanh(theta)``).

    Views (``augment``): ``[n, V, 2]`` = (angle in degrees, scale); ``(0, 1)`` is the canonical
    view and renders the grid exactly, without resampling.

    >>> rep = PixelRep((3, 8, 8), n=2, generator=torch.Generator().manual_seed(0))
    >>> rep().shape
    torch.Size([2, 1, 3, 8, 8])
    """

    def __init__(self, image_shape: tuple[int, int, int], n: int, config: PixelsConfig | None = None, *,
                 generator: torch.Generator):
        super().__init__(image_shape, n)
        config = PixelsConfig() if config is None else config
        self.config = config
        self.linear = config.linear
        noise = torch.randn(n, *self.image_shape, generator=generator) if config.init_std > 0 else None
        theta = torch.zeros(n, *self.image_shape) if noise is None else config.init_std * noise
        self.theta = nn.Parameter(theta)

    def grid(self) -> Tensor:
        """The canonical render of every instance, ``[n, C, H, W]``."""
        return torch.tanh(self.theta) if self.config.tanh else self.theta

    def forward(self, views: Tensor | None = None) -> Tensor:
        """Render ``views [n, V, 2]`` (angle_deg, scale) -> ``[n, V, C, H, W]``; ``None``: the grid, V = 1."""
        x = self.grid()
        if views is None:
            return x.unsqueeze(1)
        if views.ndim != 3 or views.shape[-1] != 2 or views.shape[0] != x.shape[0]:
            raise InputError(f"pixels views must be [n={x.shape[0]}, V, 2] (angle_deg, scale); "
                             f"got {tuple(views.shape)}")
        return rotate_scale(x, views, self.config.padding)

    def random_views(self, k: int, generator: torch.Generator, progress: float = 0.0) -> Tensor | None:
        """``k`` random (angle_deg, scale) per instance, ``[n, k, 2]``; ``None`` unless ``augment``."""
        if not self.config.augment:
            return None
        c = self.config
        u = torch.rand(self.n, k, 2, generator=generator, device=generator.device, dtype=self.theta.dtype)
        angle = c.max_angle * (2 * u[..., 0] - 1)
        scale = c.min_scale + (c.max_scale - c.min_scale) * u[..., 1]
        return torch.stack([angle, scale], -1).to(self.theta.device)

    @torch.no_grad()
    def solve_linear(self, views: Tensor | None, targets: Tensor) -> None:
        """Least squares over canonical views: every view renders ``theta``, so the fit is the mean target."""
        if not self.linear:
            super().solve_linear(views, targets)
        if views is not None and not bool(((views[..., 0] == 0) & (views[..., 1] == 1)).all()):
            raise InputError("pixels solve_linear takes only canonical views (0, 1) or views=None")
        if targets.ndim != 5 or tuple(targets.shape[2:]) != self.image_shape or targets.shape[0] != self.n:
            raise InputError(f"targets must be [n={self.n}, V, *{self.image_shape}]; got {tuple(targets.shape)}")
        self.theta.copy_(targets.mean(1))


def rotate_scale(x: Tensor, views: Tensor, padding: str = "reflection") -> Tensor:
    """Views of images ``x [n, C, H, W]`` rotated by ``angle_deg`` (counter-clockwise as displayed) and
    scaled by ``scale`` about the centre, ``views [n, V, 2]`` -> ``[n, V, C, H, W]``.

    Bilinear ``grid_sample``; views equal to ``(0, 1)`` are ``x`` itself, bit for bit."""
    n, V = views.shape[:2]
    angle, scale = views[..., 0] * (math.pi / 180), views[..., 1]
    cos, sin, zero = angle.cos() / scale, angle.sin() / scale, torch.zeros_like(scale)
    # Output pixel p samples the input at R(angle)^T p / scale (affine_grid maps output -> input).
    A = torch.stack([torch.stack([cos, -sin, zero], -1), torch.stack([sin, cos, zero], -1)], -2)
    src = x.unsqueeze(1).expand(n, V, *x.shape[1:]).reshape(n * V, *x.shape[1:])
    grid = F.affine_grid(A.reshape(n * V, 2, 3).to(x.dtype), list(src.shape), align_corners=False)
    warped = F.grid_sample(src, grid, mode="bilinear", padding_mode=padding, align_corners=False)
    canonical = (views[..., 0] == 0) & (views[..., 1] == 1)
    return torch.where(canonical[..., None, None, None], x.unsqueeze(1), warped.view(n, V, *x.shape[1:]))
