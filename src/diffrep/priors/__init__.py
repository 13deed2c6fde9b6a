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


def load(name: str = "toyworld", **options: Any) -> Prior:
    """A ready prior by name: ``toyworld`` (default; options ``n``, ``res``, ``seed``,
    ``schedule``, ``progress``), ``gaussian`` (``size``, ``length_scale``), ``gmm`` (``size``, ``std``),
    ``tiny`` (the learned prior; ``path`` to trained weights, ``device``; needs ``diffrep[tiny]``).

    >>> prior = load("gmm")
    >>> prior.image_shape
    (3, 16, 16)
    """
    makers = {"toyworld": toyworld_prior, "gaussian": default_gaussian, "gmm": default_gmm, "tiny": _load_tiny}
    if name not in makers:
        raise InputError(f"unknown prior {name!r}; allowed: {', '.join(PRIORS)}")
    allowed = inspect.signature(makers[name]).parameters
    if bad := sorted(set(options) - set(allowed)):
        raise InputError(f"unknown option {bad[0]!r} for prior {name!r}; allowed: {', '.join(allowed)}")
    return makers[name](**options)


def _load_tiny(path: str | None = None, device: str = "cpu") -> Prior:
    from diffrep.priors.tiny import load_tiny

    return load_tiny(path, device)
