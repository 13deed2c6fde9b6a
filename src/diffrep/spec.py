"""What a run is, checked before any prior is loaded or torch imported: the rep and the method (names
with options, or config objects), their pairing, ``n``, the seed, the prompt's type and the checkpoint.
``diffrep.sample`` and the command line both call ``prepare`` first; ``diffrep.api`` re-exports it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diffrep.checkpoint import RunCheckpoint
from diffrep.checks import check_choice, check_count, check_finite, check_positive_int, suggestion
from diffrep.errors import InputError
from diffrep.methods import METHODS, PLANNED_METHODS, MethodEntry, Sampling
from diffrep.reps import PLANNED_REPS, REPS, rep_name


@dataclass(frozen=True)
class RunSpec:
    """What ``sample`` runs: a rep and a method, each by name with its validated options."""

    rep: str
    rep_options: Any
    method: str
    options: Any
    sampling: Sampling

    @property
    def entry(self) -> MethodEntry:
        return METHODS[self.method]

    def record(self) -> dict[str, Any]:
        """The run's configuration for run.json: names, the options of this rep and method only."""
        used = {k: getattr(self.sampling, k) for k in self.entry.uses}
        return {"rep": self.rep, "method": self.method, **used, "rep_options": dataclasses.asdict(self.rep_options),
                "method_options": dataclasses.asdict(self.options)}


def build_config(cls: type, options: dict[str, Any], defaults: Mapping[str, Any] | None = None) -> Any:
    """``cls`` from the entries of ``options`` named by its fields (nested config fields from the same
    flat names, e.g. ``iters`` for ``SDSOptions.optim``), the fields ``options`` does not name from ``defaults``
    (flat names too) if there, else from ``cls``; the entries of ``options`` used are removed from it."""
    kwargs = {}
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(f.default) and f.name not in options:
            nested = build_config(type(f.default), options, defaults)
            if nested != f.default:
                kwargs[f.name] = nested
        elif f.name in options:
            kwargs[f.name] = options.pop(f.name)
        elif defaults and f.name in defaults:
            kwargs[f.name] = defaults[f.name]
    return cls(**kwargs)


def flat_options(cls: type) -> set[str]:
    """The flat option names ``build_config`` takes for ``cls``: its fields, a nested config's by their own names."""
    return {name for f in dataclasses.fields(cls)
            for name in (flat_options(type(f.default)) if dataclasses.is_dataclass(f.default) else {f.name})}


def method_defaults(method: str, rep: str, encoded: bool = False) -> Mapping[str, Any]:
    """The defaults ``rep`` sets for ``method``'s options (``RepEntry.method_defaults``, or ``encoded_defaults`` when
    it renders through a prior's encoder; none for image methods)."""
    if METHODS[method].image:
        return {}
    return (REPS[rep].encoded_defaults if encoded else REPS[rep].method_defaults).get(method, {})


def encodes(prior: Any) -> bool:
    """Whether reps render RGB through ``prior``'s encoder (sd with rgb=True): ``prior`` a name, a config (from the
    tables, unloaded: ``PriorEntry.encodes``) or a loaded prior (it has a ``wrap_rep``)."""
    from diffrep.priors import PRIORS, prior_config

    prior = prior_config(prior) if isinstance(prior, str) else prior
    entry = next((e for e in PRIORS.values() if type(prior) is e.config), None)
    return entry.encodes(prior) if entry is not None else getattr(prior, "wrap_rep", None) is not None


def _method(method: str | Any) -> tuple[str, Any | None]:
    if isinstance(method, str):
        return check_choice("method", method, METHODS, PLANNED_METHODS), None
    for name, entry in METHODS.items():
        if type(method) is entry.config:
            return name, method
    raise InputError(f"{type(method).__name__} is not the options of a registered method; "
                     f"registered: {', '.join(METHODS)}")


def run_spec(rep: str | Any = "pixels", method: str | Any | None = None, sampling: Sampling = Sampling(), *,
             encoded: bool = False, **options: Any) -> RunSpec:
    """Validate a rep and a method (names with flat ``options``, or config objects; no method: the rep's
    ``default_method``) and their pairing, before any prior is loaded or any step is run. ``encoded``: the rep
    renders through a prior's encoder (``encodes``), which chooses the rep's defaults for the method
    (``method_defaults``)."""
    rep, rep_options = (check_choice("rep", rep, REPS, PLANNED_REPS), None) if isinstance(rep, str) else (rep_name(rep), rep)
    method, method_options = _method(default_method(rep) if method is None else method)
    entry = METHODS[method]
    if (why := pairing(method, rep)) is not None:
        others = [m for m in METHODS if pairing(m, rep) is None]
        raise InputError(f"{why}; for rep {rep!r} use one of: {', '.join(others)}")
    rest = dict(options)
    method_options = method_options or build_config(entry.config, rest, method_defaults(method, rep, encoded))
    if not entry.image:
        rep_options = rep_options or build_config(REPS[rep].config, rest)
    elif rep_options is not None and rep_options != REPS[rep].config():
        raise InputError(f"method {method!r} samples images directly; it takes no options of rep {rep!r}")
    if rest:
        raise InputError(unknown_option(next(iter(rest)), method, rep))
    rep_options = rep_options or REPS[rep].config()
    if (missing := entry.requires(method_options, sampling=sampling)) is not None:
        raise InputError(f"method {method!r} needs {missing}")
    if getattr(rep_options, "view_guidance", 0.0) and not entry.view_guidance:
        raise InputError(f"rep {rep!r}: option view_guidance needs a method whose guidance is classifier-free guidance "
                         f"alone; {method!r} is not: use one of {', '.join(m for m, e in METHODS.items() if e.view_guidance)}")
    if (reason := entry.needs_linear(method_options)) and not REPS[rep].linear(rep_options):
        raise InputError(f"{reason} needs a diffrep linear in its parameters; rep {rep!r} with these options is not")
    return RunSpec(rep, rep_options, method, method_options, sampling)


def unknown_option(name: str, method: str, rep: str) -> str:
    """What is wrong with an option ``diffrep.sample`` was given that neither the method nor the rep takes: the nearest
    name they do take, or, for a prior's option, where it goes (``diffrep.priors.load``)."""
    from diffrep.priors import PRIORS

    entry = METHODS[method]
    known = flat_options(entry.config) | (set() if entry.image else flat_options(REPS[rep].config))
    owners = [p for p, e in PRIORS.items() if name in {f.name for f in dataclasses.fields(e.config)}]
    where = (f"; it is an option of prior {', '.join(owners)}: give the prior loaded with it, e.g. "
             f"diffrep.priors.load({owners[0]!r}, {name}=...)" if owners else suggestion(name, sorted(known)))
    return f"unknown option {name!r} for method {method!r} on rep {rep!r}{where}"


def default_method(rep: str) -> str:
    """The method a run of ``rep`` takes when none is named: image-space DDIM on images, DDRep on a diffrep, else the
    first registered method the rep takes (the canvas, which refuses DDRep: SDS)."""
    return next(m for m in ("ddim", "ddrep", *METHODS) if m in METHODS and pairing(m, rep) is None)


def pairing(method: str, rep: str) -> str | None:
    """Why ``method`` cannot run on ``rep`` (the method's ``reps``, the rep's ``refuses``), or ``None`` if it can."""
    entry, refused = METHODS[method], dict(REPS[rep].refuses)
    if entry.reps is not None and rep not in entry.reps:
        why = "samples images directly and needs" if entry.image else "needs"
        return f"method {method!r} {why} rep {' or '.join(map(repr, entry.reps))}"
    if method in refused:
        return f"rep {rep!r} does not take method {method!r}: {refused[method]}"
    return None


def check_checkpointing(entry: MethodEntry, checkpoint_every: int, resume: bool) -> None:
    """Checkpoints are for methods with a state; ``checkpoint_every`` is a count (0: none)."""
    if entry.state is None and (checkpoint_every or resume):
        with_state = ", ".join(m for m, e in METHODS.items() if e.state is not None)
        raise InputError(f"checkpoints are written by the diffrep methods ({with_state}), not by this one, "
                         "which runs in seconds")
    check_count("checkpoint_every", checkpoint_every)


def check_strength(strength: float) -> float:
    check_finite("strength", strength, at_most=1.0)
    return float(strength)


def prepare(rep: str | Any = "pixels", method: str | Any | None = None, *, sampling: Sampling = Sampling(), n: int = 1,
            seed: int = 0, prompt: str | None = None, checkpoint: str | Path | None = None,
            checkpoint_every: int | None = 0, resume: bool = False, encoded: bool = False,
            **options: Any) -> tuple[RunSpec, RunCheckpoint | None]:
    """Everything ``sample`` checks before a prior is loaded (the CLI calls it first too): the rep,
    the method, their options and pairing, ``n``, the seed, the prompt's type and the checkpoint. ``encoded``: the
    rep renders through the prior's encoder (``encodes``; it chooses the rep's defaults for the method)."""
    spec = run_spec(rep, method, sampling, encoded=encoded, **options)
    check_positive_int("n", n), check_seed(seed), check_prompt(prompt)
    check_checkpointing(spec.entry, checkpoint_every or 0, resume)
    if checkpoint is None:
        if resume:
            raise InputError("resume=True needs checkpoint=FOLDER, the folder to resume from")
        return spec, None
    ckpt = RunCheckpoint(Path(checkpoint), checkpoint_every, spec.record() | {"n": n, "seed": seed, "prompt": prompt})
    if resume and not ckpt.exists():
        raise InputError(f"nothing to resume: {str(checkpoint)!r} holds no checkpoint; run without resume")
    return spec, ckpt


def check_prompt(prompt: Any) -> None:
    if prompt is not None and not isinstance(prompt, str):
        raise InputError(f"prompt={prompt!r} is not allowed; it must be a string")


def check_seed(seed: Any) -> int:
    if not (isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < 2**63):
        raise InputError(f"seed={seed!r} is not allowed; it must be an integer in [0, 2**63)")
    return seed


def edit_methods() -> list[str]:
    """The methods ``edit`` takes: those of ``METHODS`` that optimise a rep (their options have an ``optim``)."""
    return [m for m, e in METHODS.items() if "optim" in {f.name for f in dataclasses.fields(e.config)}]


EDIT_OPTIONS: tuple[str, ...] = ("source_prompt", "corrective")
"""Options of ``diffrep edit`` that only some methods take (those whose options have the field)."""


def edit_options(method: str, *, anchor: float = 0.03, iters: int = 200, lr: float = 0.1,
                 t_range: tuple[float, float] = (0.02, 0.98), sampling: Sampling = Sampling(), **given: Any) -> Any:
    """The options of an edit by ``method`` (a mode-seeking method of ``METHODS``), validated torch-free:
    a cosine-decayed Adam loop; ``source_prompt``, ``corrective`` only for a method whose options take them;
    ``sampling``: the edit's guidance scale, which the method may need (lmc-sds divides by it).

    The defaults lr 0.1 and anchor 0.03 are measured (docs/benchmarks.md, "Editing"): at lr 2e-2 Adam's steps on
    the noisy per-pixel gradient stall a red mug at purple for every method, and at λ = 0.1 the anchor balances
    lmc-sds's 1/ω-scaled gradient before the colour turns, whatever the rate or the number of iterations."""
    method, _ = _method(method)
    if method not in edit_methods():
        raise InputError(f"method {method!r} does not optimise a rep; edit takes a mode-seeking method: "
                         f"{', '.join(edit_methods())}")
    check_finite("anchor", anchor)
    if anchor < 0:
        raise InputError(f"anchor={anchor} is not allowed; it must be >= 0 (0: no anchor)")
    takes = {f.name for f in dataclasses.fields(METHODS[method].config)}
    for name, value in given.items():
        if value is not None and name not in takes:
            users = [m for m, e in METHODS.items() if name in {f.name for f in dataclasses.fields(e.config)}]
            raise InputError(f"option --{name.replace('_', '-')} is for method {' or '.join(users)}; this edit uses {method!r}")
    chosen = {k: v for k, v in given.items() if v is not None} | {"t_range": t_range}
    return run_spec("pixels", method, sampling, iters=iters, lr=lr, lr_schedule="cosine", **chosen).options


def check_cameras(prior: Any, method: str, rep: str | None) -> None:
    """A prior conditioned on each view's camera (``camera_window`` set: a toyworld config, or the prior it loads)
    needs a rep whose views have cameras (``RepEntry.cameras``): refused otherwise, before the work."""
    from diffrep.reps import REPS

    if (window := getattr(prior, "camera_window", None)) is None or (rep is not None and REPS[rep].cameras):
        return
    what = f"method {method!r} samples images, which have no camera" if rep is None else f"rep {rep!r} has no cameras"
    raise InputError(f"camera_window={window!r} conditions each view on its camera, but {what}; use a rep with cameras "
                     f"({', '.join(r for r, e in REPS.items() if e.cameras)}) or a prior without a camera window")


def check_run(prior: Any, method: str, *, image: bool, rep: str | None = None, options: Any = None,
              rep_options: Any = None) -> None:
    """Refuse, before any work, a method or rep that the prior cannot run with: ``prior`` is a config (checked
    before it loads, from the tables alone) or a loaded prior. A prior that encodes the reps' RGB renders
    (``PriorEntry.encodes``; a loaded one has ``wrap_rep``) denoises only latents of reps that render through
    its encoder: no image-space ``method`` (``image``: ddim, ddpm, sdedit, inpaint), no ``rep`` whose noise lives
    on a canvas shared by its views (``RepEntry.canvas``: the panorama). What the method's ``options`` lack for
    this prior (``MethodEntry.requires`` with its name: lmc-sds's shipped corrective) is refused. A rep built
    with ``rep_options`` must fit the prior's resolution where its config tells it (``RepEntry.fits``)."""
    from diffrep.priors import PRIORS
    from diffrep.reps import REPS

    name, entry = next(((n, e) for n, e in PRIORS.items() if type(prior) is e.config), (None, None))
    check_cameras(prior, method, rep)
    if rep is not None and rep_options is not None and entry is not None and (hw := entry.resolution(prior)):
        REPS[rep].fits(rep_options, hw)
    if options is not None and name is not None and (missing := METHODS[method].requires(options, name)) is not None:
        raise InputError(f"method {method!r} needs {missing}")
    if not encodes(prior):
        return
    if image:
        diffreps = ", ".join(m for m, e in METHODS.items() if not e.image)
        raise InputError(f"method {method!r} samples in image space, but a prior with rgb=True denoises only the "
                         f"latents of reps that render RGB through its VAE; use a diffrep method ({diffreps}) or rgb=False")
    if rep is not None and REPS[rep].canvas:
        raise InputError(f"rep {rep!r} keeps its noise on a canvas, not per view: it cannot render through an "
                         "rgb=True prior's VAE; use rgb=False (the rep renders latents)")
