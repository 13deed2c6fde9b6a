"""Differentiable representations ("diffreps", design §6): ``n`` independent instances in one
module, rendering views ``[n, V, C, H, W]`` in the prior's space.

>>> import torch
>>> rep = make_rep("siren", (3, 32, 32), n=4, generator=torch.Generator().manual_seed(0), width=64)
>>> rep().shape
torch.Size([4, 1, 3, 32, 32])
"""

from __future__ import annotations

from typing import Any

import torch

from diffrep.errors import InputError
from diffrep.reps.base import Diffrep, check_image_shape, check_positive, config_from_options
from diffrep.reps.panorama import PanoramaConfig, PanoramaRep, azimuth_phase, canvas_width, crop, panorama_embedding
from diffrep.reps.pixels import PixelRep, PixelsConfig, rotate_scale
from diffrep.reps.siren import SirenConfig, SirenRep

REPS: tuple[str, ...] = ("pixels", "siren", "panorama")

__all__ = [
    "REPS", "Diffrep", "make_rep", "PixelRep", "PixelsConfig", "SirenRep", "SirenConfig",
    "PanoramaRep", "PanoramaConfig", "crop", "canvas_width", "azimuth_phase", "panorama_embedding", "rotate_scale",
]


def make_rep(name: str, image_shape: tuple[int, int, int], n: int, *, generator: torch.Generator,
             **options: Any) -> Diffrep:
    """A diffrep by name: ``n`` instances rendering ``image_shape = (C, H, W)`` views; ``options`` are
    the fields of its config (``PixelsConfig``, ``SirenConfig``, ``PanoramaConfig``).

    >>> rep = make_rep("panorama", (3, 16, 16), n=2, generator=torch.Generator().manual_seed(0), fov=90.0)
    >>> rep.canvas_shape
    (3, 16, 64)
    """
    kinds = {"pixels": (PixelRep, PixelsConfig), "siren": (SirenRep, SirenConfig),
             "panorama": (PanoramaRep, PanoramaConfig)}
    if name not in kinds:
        raise InputError(f"unknown rep {name!r}; allowed: {', '.join(REPS)}")
    if not isinstance(generator, torch.Generator):
        raise InputError(f"generator must be a torch.Generator; got {type(generator).__name__}")
    shape, n = check_image_shape(image_shape), check_positive("n", n)
    rep_cls, config_cls = kinds[name]
    return rep_cls(shape, n, config_from_options(config_cls, name, options), generator=generator)
