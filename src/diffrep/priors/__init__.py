"""Priors: the protocol and its helpers, the table of built-in priors, and the priors themselves.

``PRIORS`` is the one list of priors: name -> (config dataclass, loader, summary). The API, the
CLI, ``run.json`` and error messages take their names, options and help from it. Adding a prior is
one module (the prior, its config, ``<name>_from_config``) plus one entry here. This module imports
no torch: the configs are in ``configs``, and each entry names its loader with ``Lazy``.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from diffrep.checks import check_known, suggestion
from diffrep.errors import InputError
from diffrep.lazy import Lazy, lazy_exports
from diffrep.priors.prompts import with_view
from diffrep.priors.configs import (
    GaussianPriorConfig, GMMPriorConfig, ScenesPriorConfig, TinyPriorConfig, ToyworldPriorConfig, tiny_resolution,
)
from diffrep.priors.prompts import LabelQuery, parse_prompt
from diffrep.priors.sd_config import IFPriorConfig, SDPriorConfig, model_channels, model_resolution

if TYPE_CHECKING:
    from diffrep.priors.base import Prior

__all__ = [
    "PRIORS", "PriorEntry", "Prior", "check_prompt", "unloaded_shape", "load", "load_config", "prior_config", "prior_name", "split_prior",
    "config_record", "loaded_record",
    "ToyworldPriorConfig", "ScenesPriorConfig", "GaussianPriorConfig", "GMMPriorConfig", "TinyPriorConfig", "SDPriorConfig", "IFPriorConfig",
    "CountingPrior", "Conditioning", "cfg_eps", "eps_cond_uncond", "encode_prompts", "per_element",
    "latent", "to_rgb", "prior_device", "draw_noise",
    "EmpiricalPrior", "SceneViewPrior", "GaussianPrior", "GMMPrior", "LabelQuery", "parse_prompt",
    "toyworld_prior", "default_gaussian", "default_gmm",
]


@dataclass(frozen=True)
class PriorEntry:
    """One row of ``PRIORS``."""

    config: type
    """Frozen dataclass of the prior's options; it validates itself in ``__post_init__``."""
    load: Callable[..., Prior]
    """``load(config, *, progress=None) -> Prior`` (or a ``Lazy`` naming it); ``progress(done, total)`` while
    data is generated."""
    summary: str
    """One line for ``--help`` and error messages."""
    check_prompt: Callable[[Any, str], Any] | None = None
    """``check_prompt(config, prompt)``: refuses a prompt that the prior would refuse, where that needs no loaded
    prior (the toy world's words, before its data set is generated); ``encode_prompt`` still checks the rest."""
    argument: str | None = None
    """The config field that ``NAME:ARGUMENT`` sets (``sd:PATH_OR_ID`` sets ``path``); ``None``: the name takes none."""
    encodes: Callable[[Any], bool] = lambda config: False
    """Whether the prior with ``config`` denoises the latents of RGB that reps render, encoded inside the rep
    (``wrap_rep``; sd with ``rgb=True``): it takes no image-space method and no rep with canvas noise (``diffrep.spec.check_run``)."""
    resolution: Callable[[Any], tuple[int, int] | None] = lambda config: None
    """``(H, W)`` of the images the prior with ``config`` denoises, where the config tells it without loading
    anything (a rep's ``fits`` is checked against it before the prior loads); ``None``: known once loaded."""
    channels: Callable[[Any], int | None] | None = None
    """Channels of those images where the config tells them without loading anything (with ``resolution``, the
    run's memory is estimated before the prior loads: ``unloaded_shape``); ``None``: known once loaded."""


def rgb(config: Any) -> int:
    """The channels of a prior whose images are RGB whatever its config."""
    return 3


PRIORS: dict[str, PriorEntry] = {
    "toyworld": PriorEntry(ToyworldPriorConfig, Lazy("diffrep.priors.empirical:toyworld_from_config"),
                           "the embedded default: exact empirical prior over toy-world images, prompts by label",
                           check_prompt=Lazy("diffrep.priors.prompts:check_toyworld_prompt"),
                           resolution=lambda config: (config.res, config.res), channels=rgb),
    "gaussian": PriorEntry(GaussianPriorConfig, Lazy("diffrep.priors.analytic:gaussian_from_config"),
                           "analytic correlated Gaussian over small images, unconditional",
                           resolution=lambda config: (config.size, config.size), channels=rgb),
    "gmm": PriorEntry(GMMPriorConfig, Lazy("diffrep.priors.analytic:gmm_from_config"),
                      "analytic mixture of four flat colours, prompts red/green/blue/yellow",
                      resolution=lambda config: (config.size, config.size), channels=rgb),
    "tiny": PriorEntry(TinyPriorConfig, Lazy("diffrep.priors.tiny:tiny_from_config"),
                       "learned text-conditioned U-Net on the toy world (prompts need diffrep[tiny])",
                       resolution=tiny_resolution, channels=rgb),
    "sd": PriorEntry(SDPriorConfig, Lazy("diffrep.priors.sd:sd_from_config"),
                     "Stable Diffusion 1.x/2.x, latent, from a local folder or cached hub id: sd:PATH_OR_ID (diffrep[diffusers])",
                     argument="path", encodes=lambda config: config.rgb, resolution=model_resolution,
                     channels=model_channels),
    "if": PriorEntry(IFPriorConfig, Lazy("diffrep.priors.deepfloyd:if_from_config"),
                     "DeepFloyd IF stage I, 64² pixels, T5 text: if:PATH_OR_ID (diffrep[diffusers])", argument="path",
                     resolution=model_resolution, channels=model_channels),
    "toyworld-scenes": PriorEntry(ScenesPriorConfig, Lazy("diffrep.priors.scenes:scenes_from_config"),
                                  "exact empirical prior over views of 360° toy-world scenes, prompts like "
                                  "'a red mug and a blue duck on a green floor'",
                                  check_prompt=Lazy("diffrep.toyworld.scene_text:check_scene_prompt"),
                                  resolution=lambda config: (config.res, config.res), channels=rgb),
}


def split_prior(name: str) -> tuple[str, str | None]:
    """``"sd:PATH"`` -> ``("sd", "PATH")``; a name without an argument -> ``(name, None)``."""
    base, sep, argument = name.partition(":")
    return (base, argument) if sep else (name, None)


def prior_config(name: str, **options: Any) -> Any:
    """The validated config of prior ``name`` with ``options`` (the rest at their defaults).

    >>> prior_config("gmm", std=0.2)
    GMMPriorConfig(size=16, std=0.2)
    """
    name, argument = split_prior(name)
    if name not in PRIORS:
        raise InputError(f"unknown prior {name!r}{suggestion(name, PRIORS)}; allowed: {', '.join(PRIORS)}")
    if argument is not None:
        if (field := PRIORS[name].argument) is None or field in options:
            takes = [f"{n}:{e.argument.upper()}" for n, e in PRIORS.items() if e.argument]
            why = f"give {field} once" if field else "it takes no argument"
            raise InputError(f"prior {name + ':' + argument!r} is not allowed ({why}); these take one: {', '.join(takes)}")
        options = options | {field: argument}
    check_known(options, [f.name for f in fields(PRIORS[name].config)], f"prior {name!r}")
    return PRIORS[name].config(**options)


def prior_name(config: Any) -> str:
    """The name in ``PRIORS`` of a config instance (for ``run.json``)."""
    for name, entry in PRIORS.items():
        if type(config) is entry.config:
            return name
    raise InputError(f"{type(config).__name__} is not the config of a prior; allowed: "
                     + ", ".join(entry.config.__name__ for entry in PRIORS.values()))


def unloaded_shape(config: Any) -> tuple[int, int, int] | None:
    """``(C, H, W)`` of the images the prior of ``config`` denoises, where its entry tells them without loading
    anything (``channels`` and ``resolution``); ``None`` otherwise."""
    entry = PRIORS[prior_name(config)]
    channels = entry.channels(config) if entry.channels is not None else None
    hw = entry.resolution(config) if channels is not None else None
    return None if hw is None else (channels, *hw)


def check_prompt(config: Any, prompt: str | None, labels: tuple[str, ...] = ()) -> None:
    """Refuse ``prompt``, and its view prompts for the view ``labels`` a rep gives (``"PROMPT, back view"``),
    before the prior of ``config`` is loaded, where its entry can tell (``check_prompt``)."""
    check = PRIORS[prior_name(config)].check_prompt
    if prompt and check is not None:
        check(config, prompt)
        for label in labels:
            with_view(lambda text: check(config, text), prompt, label)


_LOADED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # prior -> its config_record, for run.json


def load_config(config: Any, *, progress: Callable[[int, int], None] | None = None) -> Prior:
    """Load the prior a config instance (or a prior name, with default options) describes; the prior remembers
    its ``config_record`` (``loaded_record``), which ``diffrep.sample`` and the other runs write into run.json."""
    if isinstance(config, str):
        config = prior_config(config)
    prior = PRIORS[prior_name(config)].load(config, progress=progress)
    try:
        _LOADED[prior] = config_record(config)
    except TypeError:  # a prior object that cannot be weakly referenced runs unrecorded, as one built by hand
        pass
    return prior


def config_record(config: Any) -> dict[str, Any]:
    """``{"prior": NAME[:ARGUMENT], "prior_options": {...}}``: a prior config as run.json records it — the command
    line's form (``--prior sd:PATH --toyworld-n 160000``), options only where they differ from the defaults."""
    name = prior_name(config)
    argument = PRIORS[name].argument
    options = {f.name: getattr(config, f.name) for f in fields(config) if getattr(config, f.name) != f.default}
    if argument in options:
        name = f"{name}:{options.pop(argument)}"
    options = json.loads(json.dumps(options, default=str))  # tuples as lists, paths as strings
    return {"prior": name} | ({"prior_options": options} if options else {})


def loaded_record(prior: Any) -> dict[str, Any]:
    """The ``config_record`` of a prior ``load_config`` loaded; ``{}`` for any other prior object."""
    try:
        return dict(_LOADED.get(prior, {}))
    except TypeError:
        return {}


def load(name: str = "toyworld", *, progress: Callable[[int, int], None] | None = None, **options: Any) -> Prior:
    """A ready prior by name and options (``prior_config``'s): ``toyworld`` (default; ``n``, ``res``,
    ``seed``, ``schedule``, ``device``), ``gaussian`` (``size``, ``length_scale``), ``gmm`` (``size``,
    ``std``), ``tiny`` (``path`` to trained weights, ``device``), ``sd:PATH_OR_ID`` / ``if:PATH_OR_ID``
    (Stable Diffusion, DeepFloyd IF from a local diffusers folder: ``device``, ``dtype``, ...; ``NAME:ARG``
    sets the field the entry's ``argument`` names). ``progress(done, total)`` is called while toy-world
    data is generated.

    >>> prior = load("gmm")
    >>> prior.image_shape
    (3, 16, 16)
    """
    return load_config(prior_config(name, **options), progress=progress)


# The priors import torch: they load when first used (the command line checks a prior's options without them).
__getattr__ = lazy_exports(__name__, {
    "diffrep.priors.analytic": ("analytic", "GaussianPrior", "GMMPrior", "default_gaussian", "default_gmm",
                                "gaussian_from_config", "gmm_from_config"),
    "diffrep.priors.base": ("base", "Conditioning", "CountingPrior", "Prior", "cfg_eps", "draw_noise", "encode_prompts",
                            "eps_cond_uncond", "latent", "per_element", "prior_device", "to_rgb"),
    "diffrep.priors.empirical": ("empirical", "EmpiricalPrior", "toyworld_from_config", "toyworld_prior"),
    "diffrep.priors.scenes": ("scenes", "SceneViewPrior", "scenes_from_config"),
    "diffrep.priors.tiny": ("tiny", "tiny_from_config"),
})
