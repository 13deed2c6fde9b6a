"""The canvas diffrep: a free pixel image larger than the prior's images (LMC-SDS's optimisation-based synthesis,
Alldieck et al. 2024; docs/lmc.md "Synthesis larger than the prior").

The canvas ``theta [n, C, S, S]`` starts at 0 (50 % grey in [-1, 1]). A view is a square window
``(y, x, side)`` of the canvas, area-resized to the prior's ``R x R``: ``(0, 0, S)`` is the whole canvas
area-downscaled (an ``S/R x S/R`` average pool), ``side = R`` an exact crop. ``random_views`` gives the
whole canvas while the run's progress is below ``whole_phase``, then random patches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from diffrep.errors import InputError
from diffrep.reps.base import Diffrep
from diffrep.reps.configs import CanvasConfig, canvas_side


def window(canvas: Tensor, y: int, x: int, side: int, size: tuple[int, int]) -> Tensor:
    """The ``side x side`` window of ``canvas [C, S, S]`` at row ``y``, column ``x``, area-resized to ``size``
    -> ``[C, *size]``; a window of that size is returned as it is (an exact crop)."""
    patch = canvas[:, y:y + side, x:x + side]
    if (side, side) == tuple(size):
        return patch
    return F.interpolate(patch[None], size=size, mode="area")[0]  # the mean over each output pixel's area


class CanvasRep(Diffrep):
    """``n`` free canvases ``theta [n, C, S, S]`` rendering ``R x R`` views; views are windows ``[n, V, 3]``
    (int64: row, column, side).

    >>> rep = CanvasRep((3, 8, 8), n=2, CanvasConfig(size=32), generator=torch.Generator())
    >>> rep.canvas_shape, rep().shape, rep(torch.tensor([[[0, 0, 8]], [[24, 16, 16]]])).shape
    ((3, 32, 32), torch.Size([2, 1, 3, 8, 8]), torch.Size([2, 1, 3, 8, 8]))
    """

    def __init__(self, image_shape: tuple[int, int, int], n: int, config: CanvasConfig | None = None, *,
                 generator: torch.Generator):
        super().__init__(image_shape, n)
        self.config = CanvasConfig() if config is None else config
        C, H, W = self.image_shape
        self.side = canvas_side(self.config, H, W)
        self.canvas_shape = (C, self.side, self.side)
        self.theta = nn.Parameter(torch.zeros(n, *self.canvas_shape))  # 50 % grey

    def whole(self) -> Tensor:
        """The canonical view of every instance: the whole canvas ``(0, 0, S)``, ``[n, 1, 3]``."""
        return torch.tensor([0, 0, self.side], device=self.theta.device).expand(self.theta.shape[0], 1, 3)

    def forward(self, views: Tensor | None = None) -> Tensor:
        """Render windows ``views [n, V, 3]`` (row, column, side) -> ``[n, V, C, R, R]``; ``None``: the whole
        canvas area-downscaled, V = 1."""
        n = self.theta.shape[0]  # not self.n: functional_call may pass a slice of the instances
        views = self.whole() if views is None else views
        if views.ndim != 3 or views.shape[0] != n or views.shape[-1] != 3 or views.is_floating_point():
            raise InputError(f"canvas views must be integer windows [n={n}, V, 3] (row, column, side); "
                             f"got {views.dtype} {tuple(views.shape)}")
        size = tuple(self.image_shape[1:])
        rows = views.tolist()
        return torch.stack([torch.stack([window(self.theta[i], y, x, s, size) for y, x, s in rows[i]])
                            for i in range(n)])

    def random_views(self, k: int, generator: torch.Generator, progress: float = 0.0) -> Tensor:
        """``k`` windows per instance, ``[n, k, 3]``: the whole canvas while ``progress < whole_phase``, then
        patches of side ``m R``, ``m`` uniform on ``{1, ..., min(max_patch, S/R)}``, at a uniform position."""
        if progress < self.config.whole_phase:
            return self.whole().expand(self.n, k, 3).clone()
        R, S, dev = self.image_shape[1], self.side, generator.device
        m = torch.randint(1, min(self.config.max_patch, S // R) + 1, (self.n, k), generator=generator, device=dev)
        side = m * R
        u = torch.rand(self.n, k, 2, generator=generator, device=dev, dtype=torch.float64)
        corner = (u * (S - side + 1)[..., None]).long()  # uniform on {0, ..., S - side}
        return torch.cat([corner, side[..., None]], -1).to(self.theta.device)

    @torch.no_grad()
    def preview(self) -> tuple[Tensor, None]:
        """The full-resolution canvases ``[n, C, S, S]`` (what a result saves), no strip of views."""
        return self.theta.detach().clone(), None
