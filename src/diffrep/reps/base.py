"""The diffrep interface (design §5, §6) and the option checks every rep shares.

A diffrep holds ``n`` independent instances of one representation in one module (weights carry
a leading ``n`` dimension) and renders views of each: ``forward(views) -> [n, V, C, H, W]``.
Sampling methods reach a rep only through this interface and through ``torch.func`` on its
plain ``nn.Parameter``s.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Literal, TypeVar

import torch
from torch import Tensor, nn

from diffrep.errors import InputError

ConfigT = TypeVar("ConfigT")


class Diffrep(nn.Module):
    """Base class: ``n`` independent instances rendering views of shape ``image_shape = (C, H, W)``.

    ``linear`` is True iff the render is linear in the parameters, so ``solve_linear`` can set
    them to the exact least-squares fit of a set of targets."""

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

    def random_views(self, k: int, generator: torch.Generator) -> Tensor | None:
        """``k`` random views per instance, ``[n, k, ...]``; ``None`` for reps with only the canonical view."""
        return None

    def solve_linear(self, views: Tensor | None, targets: Tensor) -> None:
        """Linear reps only: set the parameters to the least-squares fit of ``targets [n, V, C, H, W]``."""
        raise NotImplementedError(f"{type(self).__name__} is not linear in its parameters; use an iterative solver")

    def extra_repr(self) -> str:
        return f"n={self.n}, image_shape={self.image_shape}, linear={self.linear}"


def check_image_shape(image_shape: Any) -> tuple[int, int, int]:
    """``(C, H, W)`` of positive integers, or an ``InputError`` naming the value."""
    shape = tuple(image_shape) if isinstance(image_shape, (tuple, list, torch.Size)) else None
    if shape is None or len(shape) != 3 or not all(_is_int(s) and s > 0 for s in shape):
        raise InputError(f"image_shape={image_shape!r} is not allowed; it must be (C, H, W) of positive integers")
    return typing.cast(tuple[int, int, int], tuple(int(s) for s in shape))


def check_positive(name: str, value: Any) -> int:
    if not (_is_int(value) and value > 0):
        raise InputError(f"{name}={value!r} is not allowed; it must be a positive integer")
    return int(value)


def config_from_options(cls: type[ConfigT], rep: str, options: dict[str, Any]) -> ConfigT:
    """``cls(**options)``, with unknown option names reported as an ``InputError`` listing the allowed ones."""
    allowed = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    if bad := sorted(set(options) - set(allowed)):
        raise InputError(f"unknown option {bad[0]!r} for rep {rep!r}; allowed: {', '.join(allowed)}")
    return cls(**options)


def check_config_types(config: Any, rep: str) -> None:
    """Each field of a config dataclass has its annotated type (bool, int, float or a Literal)."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value, hint = getattr(config, f.name), hints[f.name]
        if typing.get_origin(hint) is Literal:
            ok, allowed = value in typing.get_args(hint), ", ".join(map(repr, typing.get_args(hint)))
        elif hint is bool:
            ok, allowed = isinstance(value, bool), "True or False"
        elif hint is int:
            ok, allowed = _is_int(value), "an integer"
        else:  # float
            ok = _is_number(value) and math.isfinite(value)
            allowed = "a finite number"
        if not ok:
            raise InputError(f"rep {rep!r}: option {f.name}={value!r} is not allowed; it must be {allowed}")


def check_range(rep: str, name: str, value: float, ok: bool, allowed: str) -> None:
    """Raise ``InputError`` naming the option and the allowed range unless ``ok``."""
    if not ok:
        raise InputError(f"rep {rep!r}: option {name}={value!r} is not allowed; it must be {allowed}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
