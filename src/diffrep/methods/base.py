"""What every method shares: the sampling options, the table entry, the state contract, and the
condition of each rendered view.

A method is one plain function ::

    run(prior, rep, cond, options, *, sampling, generator, state=None, callback=None) -> state

that moves ``rep`` (in place) towards samples of the prior; ``options`` is its config dataclass,
``state`` what it needs to continue (``None``: start), returned at the end and reported after
every step as ``callback({"i", "steps", "state", ...})``. A state that can be checkpointed has
``checkpoint() -> (tensors, meta)`` and ``restore(step, tensors, meta)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from diffrep.checks import check_finite, check_positive_int


@dataclass(frozen=True)
class Sampling:
    """The options every method shares (top level on the command line)."""

    steps: int = 50
    """Denoising steps (image samplers, DDRep)."""
    guidance_scale: float = 3.0
    """Classifier-free guidance scale w (1 = plain conditional, 0 = unconditional)."""
    eta: float = 0.0
    """DDIM stochasticity in [0, 1]: 0 = deterministic (PF-ODE), 1 = DDPM-like."""

    def __post_init__(self) -> None:
        check_positive_int("steps", self.steps)
        check_finite("guidance_scale", self.guidance_scale)
        check_finite("eta", self.eta, at_most=1.0)


class MethodState(Protocol):
    """A method's state between steps, enough to continue a run bit for bit."""

    step: int

    def checkpoint(self) -> tuple[dict[str, Any], dict[str, Any]]: ...

    @classmethod
    def restore(cls, step: int, tensors: dict[str, Any], meta: dict[str, Any]) -> MethodState: ...


def _not_linear(options: Any) -> str | None:
    return None


def _no_requirement(options: Any, prior: str | None = None, sampling: Any = None) -> str | None:
    return None


@dataclass(frozen=True)
class MethodEntry:
    """One row of ``METHODS``: a method's options, its run function and what it takes."""

    config: type
    """The options dataclass (validates itself; its fields become ``--NAME.*`` on the command line)."""
    run: Callable[..., Any]
    """``run(prior, rep, cond, options, *, sampling, generator, state=None, callback=None) -> state``."""
    summary: str
    """One line for ``--help`` and error messages."""
    state: type | None = None
    """The state class it checkpoints (``checkpoint``/``restore``); ``None``: runs in seconds, no checkpoints."""
    reps: tuple[str, ...] | None = None
    """The reps it takes (``None``: every rep)."""
    uses: tuple[str, ...] = ("steps", "guidance_scale", "eta")
    """The ``Sampling`` options it reads (the others are not recorded in run.json)."""
    image: bool = False
    """Samples images directly (the result is the images; no rep options, no rep weights saved): ``run`` writes them
    into the rep (pixels) and returns ``None``, or returns ``(images, views)`` itself (multidiffusion's canvases)."""
    needs_linear: Callable[[Any], str | None] = _not_linear
    """``options -> reason`` when these options need a rep linear in its parameters, else ``None``."""
    view_guidance: bool = False
    """Its guidance is classifier-free guidance alone (``cfg_eps`` on each view's condition), so a rep's view
    guidance (``--nerf.view-guidance``) applies to it."""
    requires: Callable[..., str | None] = _no_requirement
    """``(options, prior, sampling) -> what is missing`` (a source prompt, a trained corrective, a guidance scale it
    can divide by), checked before any work; ``prior``: the prior's name where known (``None`` while only the method is
    checked); ``sampling``: the run's ``Sampling`` where known; ``None``: nothing."""


def steps_callback(callback: Callable[[dict], None] | None, total: int, state: Callable[[dict], Any]):
    """Wrap a method's ``callback`` so each report carries ``steps`` (the run's length) and ``state``."""
    if callback is None:
        return None
    return lambda d: callback(d | {"steps": total, "state": state(d)})


@dataclass(frozen=True)
class ViewPrompt:
    """DreamFusion's view-dependent prompt: a view labelled ``L`` by its rep (``Diffrep.view_labels``)
    is conditioned on ``cameras.view_prompt(prompt, L)`` (``"{prompt}, {L} view"``, the toy world's
    caption form); unlabelled views on ``prompt``. ``encode`` is the prior's ``encode_prompt``;
    encodings are cached. ``camera`` is a camera-conditioned prior's ``with_camera(cond, camera)``: each view
    whose rep gives its camera (``Diffrep.view_cameras``) is then conditioned on that camera too."""

    prompt: str
    encode: Callable[[str], Any]
    camera: Callable[[Any, tuple[float, ...]], Any] | None = None
    cache: dict[str | None, Any] = field(default_factory=dict, compare=False, repr=False)

    def __call__(self, label: str | None) -> Any:
        from diffrep.priors.prompts import with_view

        if label not in self.cache:
            self.cache[label] = self.encode(self.prompt) if label is None else with_view(self.encode, self.prompt, label)
        return self.cache[label]


def view_conditions(cond: Any, rep: Any, views: Any) -> Any:
    """The condition of each rendered view, in the order of ``rep(views).flatten(0, 1)``.

    ``cond`` is one condition for every view, a list with one per instance, or a ``ViewPrompt``
    (one per view from the rep's view labels; with the rep's ``view_guidance`` the views' conditions and the view-free
    prompt's as a ``ViewGuided``, which ``cfg_eps`` guides apart). A scene prompt with a layout (``ScenePrompt.layout``, on a
    canvas rep whose views are start columns) gives each view the objects in its field of view."""
    from diffrep.priors.base import ViewGuided, per_element
    from diffrep.toyworld.scene_text import ScenePrompt

    V = 1 if views is None else views.shape[1]
    if isinstance(cond, ViewPrompt):
        labels, with_camera, prompt = rep.view_labels(views), cond.camera, cond
        cond = cond(None) if labels is None else [cond(label) for row in labels for label in row]
        if isinstance(cond, ScenePrompt) and cond.layout is not None:
            columns = [[0]] * rep.n if views is None else views.tolist()
            return cond.view_queries(columns, rep.image_shape[-1], rep.canvas_shape[-1])
        scale = getattr(getattr(rep, "config", None), "view_guidance", 0.0)  # --nerf.view-guidance
        free = [prompt(None)] * len(cond) if labels is not None and scale else None
        if with_camera is not None and (cameras := rep.view_cameras(views)) is not None:
            cameras = cameras.flatten(0, 1).tolist()
            cond = [with_camera(c, camera) for c, camera in zip(per_element(cond, len(cameras)), cameras)]
            free = free and [with_camera(c, camera) for c, camera in zip(free, cameras)]
        if free:
            return ViewGuided(cond, free, scale)
        return cond
    if isinstance(cond, list):
        return [c for c in cond for _ in range(V)]
    return cond
