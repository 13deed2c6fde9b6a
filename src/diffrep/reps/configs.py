"""The options of the built-in reps, one frozen dataclass each, in a module without torch: the command
line is built from them (and refuses a bad value) before anything heavy is imported. Each rep's
module (``pixels``, ``siren``, ``panorama``, ``nerf``) holds its implementation and re-exports its config."""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from diffrep.checks import check_int, is_int, is_number
from diffrep.errors import InputError


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
            ok, allowed = is_int(value), "an integer"
        else:  # float
            ok = is_number(value) and math.isfinite(value)
            allowed = "a finite number"
        if not ok:
            raise InputError(f"rep {rep!r}: option {f.name}={value!r} is not allowed; it must be {allowed}")


def check_range(rep: str, name: str, value: float, ok: bool, allowed: str) -> None:
    """Raise ``InputError`` naming the option and the allowed range unless ``ok``."""
    if not ok:
        raise InputError(f"rep {rep!r}: option {name}={value!r} is not allowed; it must be {allowed}")


@dataclass(frozen=True)
class PixelsConfig:
    """Options of the ``pixels`` rep."""

    tanh: bool = False
    """Render tanh(theta) instead of theta, so renders stay in (-1, 1) (the rep is then not linear)."""
    augment: bool = False
    """Random views rotate and scale the grid (bilinear resampling); the canonical view is the grid itself."""
    init_std: float = 0.0
    """Std of the Gaussian noise the grid starts from; 0 starts every render at exactly 0 (mid-grey)."""
    max_angle: float = 30.0
    """augment only: random rotations are uniform in [-max_angle, max_angle] degrees."""
    min_scale: float = 0.6
    """augment only: random scales are uniform in [min_scale, max_scale] (>1 zooms in)."""
    max_scale: float = 1.2
    """augment only: upper end of the random scale range."""
    padding: Literal["reflection", "border", "zeros"] = "reflection"
    """augment only: what a rotated or shrunk view shows outside the grid (zeros = mid-grey)."""

    @property
    def linear(self) -> bool:
        """The render is linear in the grid: no tanh, no resampled views."""
        return not self.tanh and not self.augment

    def __post_init__(self) -> None:
        check_config_types(self, "pixels")
        check_range("pixels", "init_std", self.init_std, self.init_std >= 0, ">= 0")
        check_range("pixels", "max_angle", self.max_angle, 0 <= self.max_angle <= 180, "in [0, 180] degrees")
        check_range("pixels", "min_scale", self.min_scale, self.min_scale > 0, "> 0")
        check_range("pixels", "max_scale", self.max_scale, self.max_scale >= self.min_scale,
                    f">= min_scale={self.min_scale}")


@dataclass(frozen=True)
class SirenConfig:
    """Options of the ``siren`` rep (the ``panorama`` rep shares them)."""

    rep_name: ClassVar[str] = "siren"

    embed_dim: int = 128
    """Size of the sinusoidal embedding: sin and cos of embed_dim/2 random frequencies (even)."""
    depth: int = 3
    """Number of hidden sine layers."""
    width: int = 256
    """Width of the hidden layers."""
    freq_scale: float = 0.25
    """Std of the embedding frequencies, as a fraction of the Nyquist frequency of each axis."""
    omega0: float = 1.0
    """omega_0 of the first sine layer: sin(omega_0 (W gamma + b)); scales its effective learning rate."""
    hidden_omega0: float = 1.0
    """omega_0 of the other sine layers."""
    init_std: float = 0.02
    """Std of the initial render (the linear last layer is scaled to give it)."""

    def __post_init__(self) -> None:
        check_siren_config(self, self.rep_name)


def check_siren_config(c: SirenConfig, rep: str) -> None:
    check_config_types(c, rep)
    ok = c.embed_dim > 0 and c.embed_dim % 2 == 0
    check_range(rep, "embed_dim", c.embed_dim, ok, "a positive even integer")
    for name in ("depth", "width"):
        check_range(rep, name, getattr(c, name), getattr(c, name) > 0, "a positive integer")
    for name in ("freq_scale", "omega0", "hidden_omega0"):
        check_range(rep, name, getattr(c, name), getattr(c, name) > 0, "> 0")
    check_range(rep, "init_std", c.init_std, c.init_std >= 0, ">= 0")


@dataclass(frozen=True)
class PanoramaConfig(SirenConfig):
    """Options of the ``panorama`` rep: the SIREN options plus the field of view."""

    rep_name: ClassVar[str] = "panorama"

    fov: float = 60.0
    """Horizontal field of view of one view in degrees, in (0, 360]; the canvas is round(W*360/fov) wide."""

    def __post_init__(self) -> None:
        check_siren_config(self, self.rep_name)
        check_range(self.rep_name, "fov", self.fov, 0 < self.fov <= 360, "in (0, 360] degrees")


@dataclass(frozen=True)
class NerfConfig:
    """Options of the ``nerf`` rep."""

    rep_name: ClassVar[str] = "nerf"

    grid: Literal["voxel", "hash"] = "voxel"
    """Field: voxel (dense density + colour grid, SJC's voxNeRF) or hash (Instant-NGP hash grid + small MLP)."""
    resolution: int = 32
    """voxel: grid side; hash: finest level's resolution (>= 4: the coarsest level has 4 cells a side, 16 above 16)."""
    samples: int = 48
    """Samples per ray (stratified midpoints between the ray's entry into and exit from the scene box)."""
    bank: int = 32
    """Cameras in the fixed view bank (DDRep keeps one noise state per bank camera)."""
    shared_noise: float = 0.0
    """DDRep: correlation rho of the bank cameras' noise states, each view's noise sqrt(rho) e_shared + sqrt(1 - rho)
    e_own (standard normal for every rho). 0: the paper's independent states, which shrink the spread of what
    every view sees by ~1/bank (docs/nerf.md); 1: one noise image for every view."""
    distance: float = 3.2
    """Camera distance from the origin (the toy world's)."""
    fov: float = 34.0
    """Field of view in degrees (the toy world's)."""
    elevation_min: float = -10.0
    """Lowest camera elevation of the bank in degrees (the toy world's range is -10..60)."""
    elevation_max: float = 60.0
    """Highest camera elevation of the bank in degrees."""
    shading: Literal["albedo", "lambertian", "textureless", "random"] = "lambertian"
    """Shading of training views: albedo, lambertian (the toy world's; light from the camera's side),
    textureless (white, lit), random (DreamFusion: each view one of the three)."""
    normals_grad: bool = True
    """Let shading gradients flow through the normals too, so shading shapes the geometry (with difference
    normals ~1.25x the cost of a render, with autograd normals ~2x); off, only through the ray weights."""
    normal_eps: float = 0.05
    """Normals by central differences of this step (world units; about a voxel of the 32^3 grid smooths them
    across voxels, at 6 more density evaluations per sample); 0: autograd of the density (constant in a voxel)."""
    normal_weight_min: float = 0.0
    """Difference normals only at samples whose render weight exceeds this in some instance (elsewhere 0: a
    normal enters the render times its weight); 0: at every evaluated sample (exact)."""
    skip_density: float = 0.1
    """Occupancy-grid skipping: samples in cells where the density stays below this (checked on the grid's
    vertices and the neighbouring cells, each render, once for a whole DDRep pullback solve) are not evaluated; 0: off.
    0.1 is below nerfacc's usual threshold (an opacity of 0.01 over a step of 2 sqrt(3) / 48: a density of 0.14);
    0.01 kept the haze the total variation leaves around an object (docs/nerf.md, *Occupancy-grid skipping*)."""
    view_prompts: bool = True
    """Condition each view on "PROMPT, <front|side|back|overhead> view" by its camera (the toy world's labels)."""
    front_deg: float = 45.0
    """View prompts: |azimuth| below which a view is "front" (the toy world's threshold; DreamFusion's too)."""
    back_deg: float = 135.0
    """View prompts: |azimuth| above which a view is "back"."""
    overhead_deg: float = 45.0
    """View prompts: elevation above which a view is "overhead" (the toy world's; DreamFusion uses 60)."""
    view_guidance: float = 0.0
    """View prompts: guide each view's label against the prompt without it at this scale (Perp-Neg's idea in its
    plainest form): eps(empty) + w (eps(PROMPT) - eps(empty)) + v (eps(PROMPT, LABEL view) - eps(PROMPT)), w the
    guidance scale, at a third prior evaluation a view; 0: off (v = w, classifier-free guidance of the view prompt
    as a whole). 7.5 with w = 3 was the best single-round setting on the toy world (docs/nerf.md, *View guidance*)."""
    albedo_warmup: float = 0.0
    """Fraction of the run whose views are albedo-shaded (DreamFusion's warm-up; 0 suits the toy world,
    whose images are all lit)."""
    background: Literal["fixed", "learned"] = "fixed"
    """Behind the object: fixed (the toy world's grey) or learned (DreamFusion's: per instance a small MLP of the
    ray direction, started at that grey; for priors whose images have backgrounds of their own, such as Stable
    Diffusion's). diffrep evaluate renders over the fixed grey either way."""
    entropy_weight: float = 0.05
    """Weight of the binary entropy of each ray's opacity (pushes rays to empty or opaque: against fog)."""
    orientation_weight: float = 0.0
    """Weight of Ref-NeRF's orientation penalty, sum_i w_i max(0, n_i . d)^2 per ray (DreamFusion)."""
    emptiness_weight: float = 0.0
    """Weight of SJC's emptiness loss, mean_i log(1 + emptiness_scale w_i) per ray."""
    emptiness_scale: float = 10.0
    """SJC's emptiness scale (beta)."""
    centre_depth_weight: float = 0.0
    """Weight of SJC's centre-depth loss per view, -log(mean depth of the centre - mean depth of the border)."""
    tv_weight: float = 0.01
    """Weight of the total variation of the raw density (Plenoxels' mean over a resolution^3 lattice of the norm of
    each vertex's forward differences, summed over the cells the renders' occupancy grid keeps) per ray of each
    view: against a surface rough at the scale of a voxel (docs/nerf.md, *Regularisers*)."""
    blob_density: float = 5.0
    """Density added at the centre at initialisation, falling linearly to 0 at blob_radius (0: none)."""
    blob_radius: float = 0.5
    """Radius of the initial density blob."""
    param_scale: float = 20.0
    """voxel: the grid holds param_scale x its parameters, so an optimiser's step of lr moves a voxel by
    param_scale x lr (the pullback's Adam lr, 3e-3 by default, suits a SIREN; a grid needs ~20x more)."""
    levels: int = 8
    """hash: resolution levels."""
    log2_table: int = 14
    """hash: log2 of the hash table size per level."""
    hidden: int = 32
    """hash: width of the MLP."""

    def __post_init__(self) -> None:
        check_config_types(self, "nerf")
        for name in ("resolution", "samples", "bank", "levels", "log2_table", "hidden"):
            check_int(name, getattr(self, name), 2)
        if self.grid == "hash":
            check_range("nerf", "resolution", self.resolution, self.resolution >= 4,
                        ">= 4 with grid 'hash' (its finest level; the coarsest has 4 cells a side)")
        check_range("nerf", "distance", self.distance, self.distance > math.sqrt(3), "> sqrt(3) (outside the scene box)")
        check_range("nerf", "fov", self.fov, 0 < self.fov < 180, "in (0, 180) degrees")
        check_range("nerf", "elevation_max", self.elevation_max, -90 <= self.elevation_min <= self.elevation_max <= 90,
                    f">= elevation_min={self.elevation_min}, both in [-90, 90]")
        for name in ("skip_density", "normal_eps", "normal_weight_min", "entropy_weight", "orientation_weight", "emptiness_weight", "emptiness_scale",
                     "centre_depth_weight", "tv_weight", "blob_density"):
            check_range("nerf", name, getattr(self, name), getattr(self, name) >= 0, ">= 0")
        check_range("nerf", "back_deg", self.back_deg, 0 <= self.front_deg <= self.back_deg <= 180,
                    f">= front_deg={self.front_deg}, both in [0, 180]")
        check_range("nerf", "overhead_deg", self.overhead_deg, -90 <= self.overhead_deg <= 90, "in [-90, 90]")
        check_range("nerf", "albedo_warmup", self.albedo_warmup, 0 <= self.albedo_warmup <= 1, "in [0, 1]")
        check_range("nerf", "view_guidance", self.view_guidance, self.view_guidance >= 0, ">= 0 (0: off)")
        check_range("nerf", "view_guidance", self.view_guidance, self.view_guidance == 0 or self.view_prompts,
                    "0 without view prompts (it guides each view's label)")
        check_range("nerf", "shared_noise", self.shared_noise, 0 <= self.shared_noise <= 1, "in [0, 1]")
        check_range("nerf", "blob_radius", self.blob_radius, self.blob_radius > 0, "> 0")
        check_range("nerf", "param_scale", self.param_scale, self.param_scale > 0, "> 0")


@dataclass(frozen=True)
class CanvasConfig:
    """Options of the ``canvas`` rep: a free pixel canvas larger than the prior's images, started at 50 % grey,
    seen first whole (area-downscaled to the prior's resolution), then through random patches (LMC-SDS's synthesis
    schedule, Alldieck et al. 2024; docs/lmc.md)."""

    rep_name: ClassVar[str] = "canvas"

    size: int = 0
    """Canvas side S in pixels, a multiple of the prior's (square) resolution R; 0: 4 R (128 for a 32² prior)."""
    whole_phase: float = 0.3
    """Fraction of the run (its progress) whose views are the whole canvas area-downscaled to R x R; afterwards
    random patches. 1: whole-canvas views only; 0: patches from the start."""
    max_patch: int = 1
    """Largest patch side in multiples of R: a patch's side is m R, m uniform on {1, ..., min(max_patch, S/R)}, at a
    uniform position, m x m average-pooled to R x R (every canvas pixel of it weighs the same); 1: every patch is
    an exact R x R crop of the canvas."""

    def __post_init__(self) -> None:
        check_config_types(self, "canvas")
        check_range("canvas", "size", self.size, self.size >= 0, ">= 0 (0: 4x the prior's resolution)")
        check_range("canvas", "whole_phase", self.whole_phase, 0 <= self.whole_phase <= 1, "in [0, 1]")
        check_range("canvas", "max_patch", self.max_patch, self.max_patch >= 1, "a positive integer (patch sides "
                    "are 1 to max_patch times the prior's resolution)")


def canvas_side(config: CanvasConfig, height: int, width: int) -> int:
    """The canvas side S for a prior of ``height x width`` images, or an ``InputError`` naming why the canvas
    cannot be built (a non-square prior, a size that is not a positive multiple of its resolution)."""
    if height != width:
        raise InputError(f"rep 'canvas' needs a prior with square images; this one's are {height}x{width}")
    side = 4 * height if config.size == 0 else config.size
    check_range("canvas", "size", config.size, side % height == 0,
                f"a multiple of the prior's resolution {height} (0: 4 x {height} = {4 * height})")
    return side
