"""The value checks every config and entry point shares: one message shape, ``InputError``.

Each names the offending value and what is allowed, e.g. ``steps=0 is not allowed; it must be a
positive integer``. No torch here: configs validate themselves before anything heavy is imported.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from typing import Any

from diffrep.errors import InputError


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def suggestion(value: Any, allowed: Iterable[str]) -> str:
    """`` (did you mean 'X'?)`` for the one of ``allowed`` nearest a mistyped ``value`` (``difflib``'s ratio at least
    0.75: ``nerfs`` -> ``nerf``, ``resolutoin`` -> ``resolution``), else ``""``."""
    close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_known(options: Iterable[str], allowed: Iterable[str], owner: str) -> None:
    """Every name in ``options`` is one of ``allowed``; else ``unknown option 'x' for OWNER (did you mean ...)``."""
    allowed = list(allowed)
    if bad := sorted(set(options) - set(allowed)):
        raise InputError(f"unknown option {bad[0]!r} for {owner}{suggestion(bad[0], allowed)}; allowed: "
                         f"{', '.join(allowed)}")


def check_choice(name: str, value: Any, allowed: Iterable[str], planned: Iterable[str] = ()) -> str:
    """``value`` is one of ``allowed`` (``planned`` ones get "not available yet")."""
    allowed, planned = tuple(allowed), tuple(planned)
    if value in planned:
        raise InputError(f"{name} {value!r} is not available yet; available now: {', '.join(allowed)}")
    if value not in allowed:
        raise InputError(f"unknown {name} {value!r}{suggestion(value, allowed)}; allowed: {', '.join(allowed)}")
    return value


def check_one_of(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """``value`` is one of ``allowed`` (numbers, or names that are not a table's keys)."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise InputError(f"{name}={value!r} is not allowed; allowed: {', '.join(map(str, allowed))}")
    return value


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """An integer (not a bool) ``>= minimum``."""
    if not (is_int(value) and value >= minimum):
        allowed = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise InputError(f"{name}={value!r} is not allowed; it must be {allowed}")
    return int(value)


def check_positive_int(name: str, value: Any) -> int:
    return check_int(name, value, 1)


def check_count(name: str, value: Any) -> int:
    """An integer ``>= 0``."""
    return check_int(name, value, 0)


def check_finite(name: str, value: Any, *, positive: bool = False, at_most: float | None = None) -> float:
    """A finite number ``>= 0`` (``> 0`` if ``positive``; ``<= at_most`` if given)."""
    ok = is_number(value) and math.isfinite(value) and value >= 0 and not (positive and value == 0)
    if ok and at_most is not None and value > at_most:
        raise InputError(f"{name}={value!r} is not allowed; it must be in [0, {at_most:g}]")
    if not ok:
        bound = "> 0" if positive else ">= 0"
        raise InputError(f"{name}={value!r} is not allowed; it must be a finite number {bound}")
    return float(value)


def check_fraction_range(name: str, value: Any) -> tuple[float, float]:
    """Two fractions ``0 <= lo < hi <= 1``."""
    ok = isinstance(value, (tuple, list)) and len(value) == 2 and all(is_number(v) for v in value)
    if not ok or not 0 <= value[0] < value[1] <= 1:
        raise InputError(f"{name}={value!r} is not allowed; it must be two fractions 0 <= min < max <= 1")
    return float(value[0]), float(value[1])
