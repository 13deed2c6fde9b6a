"""Priors: the protocol, the embedded toy-world empirical prior, analytic priors, guidance."""

from __future__ import annotations

import inspect
from typing import Any

from diffrep.errors import InputError
from diffrep.priors.analytic import GaussianPrior, GMMPrior, default_gaussian, default_gmm
from diffrep.priors.base import CountingPrior, Prior, cfg_eps
from diffrep.priors.empirical import EmpiricalPrior, toyworld_prior
from diffrep.priors.prompts import LabelQuery, parse_prompt

PRIORS: tuple[str, ...] = ("toyworld", "gaussian", "gmm", "tiny")

__all__ = [
    "PRIORS", "Prior", "CountingPrior", "cfg_eps", "load",
    "EmpiricalPrior", "GaussianPrior", "GMMPrior", "LabelQuery", "parse_prompt",
    "toyworld_prior", "default_gaussian", "default_gmm",
]


_MAKERS = {"toyworld": toyworld_prior, "gaussian": default_gaussian, "gmm": default_gmm}


def _maker(name: str):
    if name not in PRIORS:
        raise InputError(f"unknown prior {name!r}; allowed: {', '.join(PRIORS)}")
    return _MAKERS.get(name, _load_tiny)


def prior_fields(name: str) -> set[str]:
    """The options prior ``name`` takes."""
    return set(inspect.signature(_maker(name)).parameters) - {"progress"}


def prior_config(name: str, **options: Any) -> dict[str, Any]:
    """Validate ``name`` and its option names (TEMPORARY: becomes the prior's config dataclass)."""
    allowed = prior_fields(name)
    if bad := sorted(set(options) - allowed):
        raise InputError(f"unknown option {bad[0]!r} for prior {name!r}; allowed: {', '.join(sorted(allowed))}")
    return options


def load(name: str = "toyworld", *, progress=None, **options: Any) -> Prior:
    """A ready prior by name: ``toyworld`` (default; options ``n``, ``res``, ``seed``,
    ``schedule``), ``gaussian`` (``size``, ``length_scale``), ``gmm`` (``size``, ``std``),
    ``tiny`` (the learned prior; ``path`` to trained weights, ``device``; needs ``diffrep[tiny]``).

    >>> prior = load("gmm")
    >>> prior.image_shape
    (3, 16, 16)
    """
    maker = _maker(name)
    prior_config(name, **options)
    if progress is not None and "progress" in inspect.signature(maker).parameters:
        options["progress"] = progress
    return maker(**options)


def _load_tiny(path: str | None = None, device: str = "cpu") -> Prior:
    from diffrep.priors.tiny import load_tiny

    return load_tiny(path, device)
