"""The diffrep interface (design §5, §6) and the option checks every rep shares.

A diffrep holds ``n`` independent instances of one representation in one module (weights carry
a leading ``n`` dimension) and renders views of each: ``forward(views) -> [n, V, C, H, W]``.
Sampling methods reach a rep only through this interface and through ``torch.func`` on its
plain ``nn.Parameter``s.
"""

from __future__ import annotations

import dataclasses
import typing
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from diffrep.checks import check_known, check_positive_int, is_int
from diffrep.errors import InputError
from diffrep.reps.configs import check_config_types, check_range  # noqa: F401 (re-exported)

ConfigT = TypeVar("ConfigT")


class Diffrep(nn.Module):
    """Base class: ``n`` independent instances rendering views of shape ``image_shape = (C, H, W)``.

    The view/noise contract every method relies on (and nothing else):

    * ``forward(views) -> [n, V, C, H, W]``; ``views=None`` is the canonical view (V = 1);
    * ``random_views(k, generator, progress)``: ``k`` views per instance, stratified where the rep has a
      view space to cover (so ``k`` views spread over it every time); ``None`` for one-view reps;
    * ``noise_shape`` and ``view_noise(noise, views)``: DDRep's separated noise state and the noise
      of each rendered view (a canvas crop for panoramas, so crops of one canvas agree);
    * ``view_labels(views)``: a label per view ("front", "back", ...) for view-dependent prompts,
      or ``None`` when views have none;
    * ``view_cameras(views)``: the camera of each view ``[n, V, 3]`` (azimuth, elevation in degrees, distance),
      for priors conditioned on the camera, or ``None`` when views have none;
    * ``regularised(views)``: the renders and the rep's own regularisers on them, one scalar per view
      ``[n, V]`` (zeros for reps without), which every method's objective adds to its data term;
    * ``preview()``: what a result saves, ``(images [n, C, H', W'], strip of views or None)``;
    * ``solving()``: the scope of one least-squares solve (DDRep's pullback at one step), in which a rep may
      hold what it derives from its parameters for rendering and a solve's small updates barely move (the
      NeRF's occupancy grid); a context manager, by default holding nothing;
    * ``linear`` and ``solve_linear``: True iff the render is linear in the parameters, so the
      least-squares fit of a set of targets is exact.

    ``random_views`` receives the run's ``progress`` (fraction done, in [0, 1]) for reps whose views
    change over a run (the NeRF's albedo warm-up); most ignore it.
    """

    n: int
    image_shape: tuple[int, int, int]
    linear: bool = False

    def __init__(self, image_shape: tuple[int, int, int], n: int):
        super().__init__()
        self.image_shape = check_image_shape(image_shape)
        self.n = check_positive("n", n)

    def forward(self, views: Tensor | None = None) -> Tensor:
        """Render ``views [n, V, ...]`` (rep-specific) -> ``[n, V, C, H, W]``; ``None``: the canonical view, V = 1."""
        raise NotImplementedError

    def random_views(self, k: int, generator: torch.Generator, progress: float = 0.0) -> Tensor | None:
        """``k`` random views per instance, ``[n, k, ...]``; ``None`` for reps with only the canonical view."""
        return None

    def regularised(self, views: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``forward(views)`` and the rep's regularisers on those renders, ``[n, V]`` (here none: zeros)."""
        x = self(views)
        return x, x.new_zeros(x.shape[:2])

    @property
    def noise_shape(self) -> tuple[int, ...]:
        """Shape of DDRep's noise state: one canonical image per instance unless the rep says otherwise."""
        return (self.n, *self.image_shape)

    def view_noise(self, noise: Tensor, views: Tensor | None) -> Tensor:
        """The noise of each view, ``[n, V, C, H, W]`` (here: the instance's noise, broadcast over its views)."""
        return noise[:, None]

    def view_labels(self, views: Tensor | None) -> list[list[str]] | None:
        """A label per view (``[n][V]``, e.g. "front"), for view-dependent prompts; ``None``: no labels."""
        return None

    def view_cameras(self, views: Tensor | None) -> Tensor | None:
        """The camera of each view, ``[n, V, 3]`` (azimuth, elevation, distance), for camera-conditioned priors; ``None``: none."""
        return None

    @torch.no_grad()
    def preview(self) -> tuple[Tensor, Tensor | None]:
        """What a result shows: the canonical renders ``[n, C, H, W]`` and no strip of views."""
        return self(None)[:, 0], None

    def solving(self) -> AbstractContextManager:
        """The scope of one pullback solve (here: nothing held)."""
        return nullcontext()

    def solve_linear(self, views: Tensor | None, targets: Tensor) -> None:
        """Linear reps only: set the parameters to the least-squares fit of ``targets [n, V, C, H, W]``."""
        raise NotImplementedError(f"{type(self).__name__} is not linear in its parameters; use an iterative solver")

    def extra_repr(self) -> str:
        return f"n={self.n}, image_shape={self.image_shape}, linear={self.linear}"


def check_image_shape(image_shape: Any) -> tuple[int, int, int]:
    """``(C, H, W)`` of positive integers, or an ``InputError`` naming the value."""
    shape = tuple(image_shape) if isinstance(image_shape, (tuple, list, torch.Size)) else None
    if shape is None or len(shape) != 3 or not all(is_int(s) and s > 0 for s in shape):
        raise InputError(f"image_shape={image_shape!r} is not allowed; it must be (C, H, W) of positive integers")
    return typing.cast(tuple[int, int, int], tuple(int(s) for s in shape))


check_positive = check_positive_int


def config_from_options(cls: type[ConfigT], rep: str, options: dict[str, Any]) -> ConfigT:
    """``cls(**options)``, with unknown option names reported as an ``InputError`` listing the allowed ones."""
    check_known(options, [f.name for f in dataclasses.fields(cls)], f"rep {rep!r}")  # type: ignore[arg-type]
    return cls(**options)


