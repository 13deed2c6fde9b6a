"""Checks of method options at the library's edge (one clear error naming the value)."""

from __future__ import annotations

import math
from typing import Any

from diffrep.errors import InputError
from diffrep.methods.distill import ANNEALING, LR_SCHEDULES, OPTIMIZERS, WEIGHTINGS
from diffrep.methods.solvers import SOLVERS


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InputError(f"unknown {name} {value!r}; allowed: {', '.join(allowed)}")


def _positive_int(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InputError(f"{name}={value!r} is not allowed; it must be a positive integer")


def _finite(name: str, value: float, positive: bool = True) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise InputError(f"{name}={value!r} is not allowed; it must be a finite number {'> 0' if positive else '>= 0'}")


def _t_range(value: Any) -> None:
    ok = isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value)
    if not ok or not 0 <= value[0] < value[1] <= 1:
        raise InputError(f"t_range={value!r} is not allowed; it must be two fractions 0 <= min < max <= 1")


def check_method_options(method: str, options: list[Any], rep: str) -> None:
    """Validate the dataclasses built for ``method`` (DDRepOptions, or SDS/SJC options + OptimConfig)."""
    if method == "ddrep":
        (o,) = options
        _choice("solver", o.solver, SOLVERS)
        for name in ("rounds", "views_per_step", "adam_iters", "gn_iters", "cg_iters"):
            _positive_int(name, getattr(o, name))
        _finite("adam_lr", o.adam_lr), _finite("damping", o.damping, positive=False)
        if isinstance(o.probes, bool) or not isinstance(o.probes, int) or o.probes < 0:
            raise InputError(f"probes={o.probes!r} is not allowed; it must be an integer >= 0")
        if o.solver == "closed" and rep != "pixels":
            raise InputError(f"solver 'closed' needs a diffrep linear in its parameters (pixels); rep {rep!r} is not")
        return
    o, optim = options
    _t_range(o.t_range), _choice("annealing", o.annealing, ANNEALING)
    if method == "sds":
        _choice("weighting", o.weighting, WEIGHTINGS)
    _choice("optimizer", optim.optimizer, OPTIMIZERS), _choice("lr_schedule", optim.lr_schedule, LR_SCHEDULES)
    _positive_int("iters", optim.iters), _positive_int("views_per_step", optim.views_per_step)
    _finite("lr", optim.lr)
