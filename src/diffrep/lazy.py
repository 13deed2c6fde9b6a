"""Imports deferred to first use, so that reading the tables (the command line, its errors) imports no torch.

A table entry names its implementation ``Lazy("diffrep.methods.ddrep:run_ddrep")`` where it would
hold the function itself; a plain function or class is as good (entries registered by users hold
those). A package re-exports the names of its heavy modules through ``lazy_exports`` (PEP 562).
Every ``Lazy`` in the tables is resolved by a test, so a misspelt one cannot hide.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Lazy:
    """The function or class ``"module:name"``, imported when first called or when one of its
    attributes is read (a state class's ``restore``).

    >>> Lazy("math:sqrt")(4.0)
    2.0
    """

    target: str

    def resolve(self) -> Any:
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy, pickle and friends probe for dunders: never import for them
            raise AttributeError(name)
        return getattr(self.resolve(), name)


def resolve(value: Any) -> Any:
    """``value`` itself, or what it names if it is a ``Lazy``."""
    return value.resolve() if isinstance(value, Lazy) else value


def lazy_exports(package: str, exports: dict[str, tuple[str, ...]]) -> Callable[[str], Any]:
    """A PEP 562 ``__getattr__`` for ``package``: ``exports`` maps a module to the names it gives the
    package; a name equal to the module's last part is the module itself (``diffrep.priors``)."""
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(where[name])
        value = module if where[name] == f"{package}.{name}" else getattr(module, name)
        setattr(sys.modules[package], name, value)  # found directly next time
        return value

    return __getattr__
