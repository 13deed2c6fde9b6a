"""Differentiable representations ("diffreps", design §6): ``n`` independent instances in one
module, rendering views ``[n, V, C, H, W]`` in the prior's space. This module imports no torch: the
configs are in ``configs``, and each entry names its constructor with ``Lazy``.

>>> import torch
>>> rep = make_rep("siren", (3, 32, 32), n=4, generator=torch.Generator().manual_seed(0), width=64)
>>> rep().shape
torch.Size([4, 1, 3, 32, 32])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from diffrep.checks import check_choice
from diffrep.errors import InputError
from diffrep.lazy import Lazy, lazy_exports
from diffrep.reps.configs import CanvasConfig, NerfConfig, PanoramaConfig, PixelsConfig, SirenConfig, canvas_side

if TYPE_CHECKING:
    import torch

    from diffrep.reps.base import Diffrep


@dataclass(frozen=True)
class RepEntry:
    """One row of ``REPS``: a rep's options dataclass, its constructor and whether it is linear."""

    config: type
    """The options dataclass (validates itself; its fields become ``--NAME.*`` on the command line)."""
    make: Callable[..., Diffrep]
    """``make(image_shape, n, config, *, generator) -> Diffrep``."""
    summary: str
    """One line for ``--help`` and error messages."""
    linear: Callable[[Any], bool] = lambda config: False
    """Whether a rep built with ``config`` is linear in its parameters (known before it is built)."""
    labels: Callable[[Any], tuple[str, ...]] = lambda config: ()
    """The view labels a rep built with ``config`` gives its views (their prompts are encoded before the run)."""
    canvas: bool = False
    """Whether its noise lives on a canvas its views share (``noise_shape`` is not per view): such a rep cannot
    render through a prior that encodes RGB (sd with rgb=True), which is refused before the prior loads."""
    scene_prompt: bool = False
    """Whether its prompt names the whole scene its views are crops of (the panorama): a prior offering
    ``encode_scene_prompt`` (toyworld-scenes) then encodes the prompt with it, for every view (docs/reps.md)."""
    outputs: Callable[[Diffrep], dict[str, Any]] | None = None
    """Extra files a saved result holds (name -> bytes, image or tensors), e.g. a NeRF's turntable and mesh."""
    fits: Callable[[Any, tuple[int, int]], Any] = lambda config, resolution: None
    """``fits(config, (H, W))`` raises an ``InputError`` if a rep built with ``config`` cannot render views of a
    prior of ``H x W`` images (the canvas: a size not a multiple of the prior's); checked torch-free where the
    prior's config tells its resolution (``PriorEntry.resolution``), and by the constructor in any case."""
    cameras: bool = False
    """Whether its views have cameras (``Diffrep.view_cameras``), so a camera-conditioned prior (toyworld with a
    ``camera_window``) can condition each view on its own; a prior so configured is refused with any other rep."""
    refuses: tuple[tuple[str, str], ...] = ()
    """``(method, why)`` pairs: methods of ``METHODS`` this rep cannot run with, refused with ``why`` by the same
    pairing check as a method's ``reps`` (``diffrep.spec.run_spec``)."""
    method_defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """``{method: {option: value}}``: defaults of a method's options measured for this rep, in place of the method's
    own (a user's options override them; ``--help`` with this rep shows them; a method's config object passed to
    ``diffrep.sample`` is taken as it is). The NeRF's DDRep solve: 40 Adam iterations a step, each on an eighth of
    every view's rays, as good a shape as 10 on all of them at 0.7x the time (docs/nerf.md)."""
    memory_probe: Callable[[Any, int], tuple[Any, int, float]] = lambda config, views: (config, views, 1.0)
    """``memory_probe(config, views) -> (config', views', factor)``: the render the memory estimate makes of one
    instance, whose saved activations times ``factor`` stand for those of ``views`` views of a rep of ``config``
    (``diffrep.api.estimate_memory``), so that a render too big to fit is refused, not made to count itself. The
    NeRF's: at most 48 samples a ray and 6 views, scaled by the ratios (its activations grow in proportion)."""
    instances: int = 8
    """How many instances ``diffrep sample`` draws unless ``--n`` says: a grid of 8 for reps that take seconds, 1 for
    one that takes a minute an instance (the NeRF). The Python API's ``n`` defaults to 1 for every rep."""
    encoded_defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """``{method: {option: value}}`` in place of ``method_defaults`` when the rep renders through a prior's encoder
    (sd with rgb=True, ``PriorEntry.encodes``), where what was measured on the rep's own renders need not hold. The
    NeRF's: 10 Adam iterations on every pixel, its solve before ray batches, since a subset of latent pixels saves
    no rendering (the encoder takes whole views): 40 iterations would cost 4x as much."""


NERF_DISTILL: dict[str, dict[str, Any]] = {  # measured on one duck, run by bench nerf3d (docs/nerf.md)
    "sds": {"iters": 400, "views_per_step": 4},
    "sjc": {"iters": 400, "lr": 5e-2, "optimizer": "adamax", "views_per_step": 4},  # SJC's own Adamax rate
    "lmc-sds": {"iters": 400, "views_per_step": 4},  # the DreamFusion recipe of bench nerf3d's lmc-sds section
}
"""The NeRF's defaults for the mode-seeking methods measured on it: 4 views an iteration, 400 iterations (SDS at
Adam's 1e-2 took a duck to occupancy IoU 0.87 where the first setting, 2.5e-3, reached 0.47)."""

REPS: dict[str, RepEntry] = {
    "pixels": RepEntry(PixelsConfig, Lazy("diffrep.reps.pixels:PixelRep"),
                       "a free grid per instance (tanh, rotation/scale views optional)",
                       linear=lambda c: c.linear),
    "siren": RepEntry(SirenConfig, Lazy("diffrep.reps.siren:SirenRep"),
                      "SIREN image: a sine MLP over a Fourier embedding of the pixel"),
    "panorama": RepEntry(PanoramaConfig, Lazy("diffrep.reps.panorama:PanoramaRep"),
                         "360° SIREN panorama; writes the canvas and a strip of views", canvas=True,
                         scene_prompt=True),
    "nerf": RepEntry(NerfConfig, Lazy("diffrep.reps.nerf:NerfRep"),
                     "NeRF (voxel or hash grid): views from a camera bank, view-dependent prompts; writes turntables "
                     "and meshes", labels=Lazy("diffrep.reps.nerf:bank_labels"),
                     outputs=Lazy("diffrep.reps.nerf:nerf_outputs"), cameras=True, instances=1,
                     method_defaults={"ddrep": {"adam_iters": 40, "pixel_fraction": 0.125}, **NERF_DISTILL},
                     memory_probe=Lazy("diffrep.reps.nerf:memory_probe"),
                     encoded_defaults={"ddrep": {"adam_iters": 10}}),
    "canvas": RepEntry(CanvasConfig, Lazy("diffrep.reps.canvas:CanvasRep"),
                       "pixel canvas larger than the prior, from 50 % grey: whole-canvas views, then random patches "
                       "(LMC-SDS synthesis); writes the full canvas",
                       fits=lambda c, hw: canvas_side(c, *hw),
                       refuses=(("ddrep", "DDRep keeps one noise per view, but canvas views resample the pixels "
                                 "(downscaled whole, rescaled patches) they share"),)),
}
"""Every diffrep by name; the API, the CLI, run.json and error messages derive their lists from it."""

PLANNED_REPS: tuple[str, ...] = ()

__all__ = [
    "REPS", "PLANNED_REPS", "RepEntry", "Diffrep", "make_rep", "rep_name", "CanvasConfig", "CanvasRep", "NerfConfig", "NerfRep", "PixelRep", "PixelsConfig", "SirenRep",
    "SirenConfig", "PanoramaRep", "PanoramaConfig", "crop", "canvas_width", "azimuth_phase", "panorama_embedding",
    "rotate_scale",
]


def make_rep(name: str | Any, image_shape: tuple[int, int, int], n: int, *, generator: torch.Generator,
             **options: Any) -> Diffrep:
    """A diffrep by name (``options``: the fields of its config) or from its config object:
    ``n`` instances rendering ``image_shape = (C, H, W)`` views.

    >>> rep = make_rep("panorama", (3, 16, 16), n=2, generator=torch.Generator().manual_seed(0), fov=90.0)
    >>> rep.canvas_shape
    (3, 16, 64)
    """
    import torch

    from diffrep.reps.base import check_image_shape, check_positive, config_from_options

    if isinstance(name, str):
        check_choice("rep", name, REPS, PLANNED_REPS)
        config = config_from_options(REPS[name].config, name, options)
    else:
        config, name = name, rep_name(name)
        if options:
            raise InputError(f"give the options of rep {name!r} in its config object, not as {sorted(options)}")
    if not isinstance(generator, torch.Generator):
        raise InputError(f"generator must be a torch.Generator; got {type(generator).__name__}")
    shape, n = check_image_shape(image_shape), check_positive("n", n)
    return REPS[name].make(shape, n, config, generator=generator)


def rep_name(config: Any) -> str:
    """The name under which ``config``'s type is registered in ``REPS``."""
    for name, entry in REPS.items():
        if type(config) is entry.config:
            return name
    raise InputError(f"{type(config).__name__} is not the config of a registered rep; registered: {', '.join(REPS)}")


# The implementations import torch: they load when first used (the command line parses without them).
__getattr__ = lazy_exports(__name__, {
    "diffrep.reps.base": ("Diffrep",),
    "diffrep.reps.canvas": ("CanvasRep",),
    "diffrep.reps.nerf": ("NerfRep",),
    "diffrep.reps.panorama": ("PanoramaRep", "azimuth_phase", "canvas_width", "crop", "panorama_embedding"),
    "diffrep.reps.pixels": ("PixelRep", "rotate_scale"),
    "diffrep.reps.siren": ("SirenRep",),
})
