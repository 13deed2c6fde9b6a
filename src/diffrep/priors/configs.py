"""The options of the built-in priors, one frozen dataclass each, in a module without torch: the command
line checks a prior's options against them (and refuses a bad one) before anything heavy is imported.
Each prior's module (``analytic``, ``empirical``, ``tiny``) holds its implementation and re-exports its config."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from diffrep.checks import check_finite, check_int, check_one_of, is_number
from diffrep.errors import InputError

SCHEDULES: tuple[str, ...] = ("linear", "scaled_linear", "cosine")
"""The noise schedules ``diffrep.schedule.make_schedule`` knows (that module imports torch; a test keeps the two equal)."""

DEFAULT_WEIGHTS = Path(__file__).parent / "tiny" / "weights" / "tiny.safetensors"


def check_device(device: str) -> str:
    """``device`` names a device this machine has (``diffrep.priors.base.check_device``). The default,
    ``"cpu"``, is always there and passes without torch; any other name needs torch (~1.2 s) to be checked."""
    if isinstance(device, str) and device == "cpu":
        return device
    from diffrep.priors.base import check_device as check_available

    return check_available(device)


TOYWORLD_RESOLUTIONS: tuple[int, ...] = (32, 64)
"""The resolutions the toy world renders its data sets and views at."""


@dataclass(frozen=True)
class ToyworldPriorConfig:
    """Options of the ``toyworld`` prior: the empirical prior over a generated toy-world set."""

    n: int = 10_000
    """Number of data images (generated on first use, then cached)."""
    res: int = 32
    """Resolution: 32 or 64."""
    seed: int = 0
    """Seed of the data set."""
    schedule: str = "linear"
    """Noise schedule: linear, scaled_linear or cosine."""
    device: str = "cpu"
    """Where the denoiser computes (the data set is moved there): cpu, cuda, cuda:N, mps."""
    camera_window: tuple[float, float] | None = None
    """(AZ, EL) degrees: condition each view on its camera as well as its prompt (reps whose views have cameras:
    nerf). A view's denoiser then uses only the data images of its prompt shot from within AZ degrees of azimuth
    and EL of elevation of the view's camera (at least the 3 nearest). Default: the prompt alone. docs/nerf.md."""

    def __post_init__(self):
        check_int("n", self.n)
        check_one_of("res", self.res, TOYWORLD_RESOLUTIONS)
        check_int("seed", self.seed, minimum=0)
        check_one_of("schedule", self.schedule, SCHEDULES)
        check_device(self.device)
        if self.camera_window is not None:  # a list from run.json is the same window
            object.__setattr__(self, "camera_window", check_camera_window(self.camera_window))


def check_camera_window(window) -> tuple[float, float]:
    """Two angles in degrees, ``0 < AZ <= 180`` and ``0 < EL <= 90``."""
    ok = isinstance(window, (tuple, list)) and len(window) == 2 and all(is_number(v) and math.isfinite(v) for v in window)
    if not ok or not (0 < window[0] <= 180 and 0 < window[1] <= 90):
        raise InputError(f"camera_window={window!r} is not allowed; it must be two angles in degrees, "
                         "0 < AZ <= 180 and 0 < EL <= 90 (e.g. 10 10)")
    return float(window[0]), float(window[1])


@dataclass(frozen=True)
class ScenesPriorConfig:
    """Options of the ``toyworld-scenes`` prior: the empirical prior over views of generated 360-degree scenes."""

    n: int = 500
    """Number of scenes (generated on first use, then cached); each gives Wc / view_stride views."""
    res: int = 32
    """View resolution: 32 or 64 (the canvas is res x 6 res)."""
    seed: int = 0
    """Seed of the scenes."""
    view_stride: int = 8
    """Columns between the data set's views of a scene (a view is res columns wide; 8 at 32 gives 24 views a scene)."""
    scene_prompt: str = "layout"
    """How a panorama's prompt (a whole scene) conditions each view: layout (each instance draws where the
    prompt's objects stand round the 360 degrees, from the run's seed, and a view is conditioned on exactly
    the objects in its field of view on the floor, or on the bare floor) or set (every view: any view of a
    scene holding the objects). docs/reps.md."""
    schedule: str = "linear"
    """Noise schedule: linear, scaled_linear or cosine."""
    device: str = "cpu"
    """Where the denoiser computes (the views are moved there): cpu, cuda, cuda:N, mps."""

    def __post_init__(self):
        check_int("n", self.n)
        check_one_of("res", self.res, TOYWORLD_RESOLUTIONS)
        check_int("seed", self.seed, minimum=0)
        check_int("view_stride", self.view_stride)
        check_one_of("scene_prompt", self.scene_prompt, ("layout", "set"))
        check_one_of("schedule", self.schedule, SCHEDULES)
        check_device(self.device)


@dataclass(frozen=True)
class GaussianPriorConfig:
    """Options of the ``gaussian`` prior (``default_gaussian``)."""

    size: int = 8
    """Image side: the prior is over 3 x size x size images (at least 2)."""
    length_scale: float = 2.0
    """Correlation length of the RBF covariance, in pixels."""

    def __post_init__(self):
        check_int("size", self.size, minimum=2)
        check_finite("length_scale", self.length_scale, positive=True)


@dataclass(frozen=True)
class GMMPriorConfig:
    """Options of the ``gmm`` prior (``default_gmm``)."""

    size: int = 16
    """Image side: the prior is over 3 x size x size images."""
    std: float = 0.1
    """Per-pixel standard deviation of each flat-colour component."""

    def __post_init__(self):
        check_int("size", self.size)
        check_finite("std", self.std, positive=True)


def weights_file(path: str | Path | None = None) -> Path:
    """The ``tiny.safetensors`` that ``load_tiny(path)`` reads: ``path``, the one inside a run
    directory ``path``, or the shipped weights for ``None``."""
    path = Path(path) if path is not None else DEFAULT_WEIGHTS
    return path / "tiny.safetensors" if path.is_dir() else path


def check_weights(path: str | Path | None = None) -> Path:
    """The weights file ``load_tiny(path)`` reads, after checking that it and its JSON config exist."""
    weights = weights_file(path)
    meta = weights.with_suffix(".json")
    if weights == DEFAULT_WEIGHTS and not (weights.is_file() and meta.is_file()):
        raise InputError(f"the shipped tiny prior weights {str(weights)!r} or {meta.name} are missing: reinstall diffrep")
    if not weights.is_file():
        raise InputError(f"tiny prior file {str(weights)!r} does not exist; train one with "
                         "`diffrep train-prior --out DIR` and pass --prior-path DIR")
    if not meta.is_file():
        raise InputError(f"tiny prior config {str(meta)!r} does not exist: the weights {weights.name} need the JSON "
                         "that `diffrep train-prior` writes beside them (copy it along with the weights)")
    return weights


def tiny_resolution(config: TinyPriorConfig) -> tuple[int, int] | None:
    """``(H, W)`` of the images the tiny prior of ``config`` denoises, from its ``tiny.json`` (torch-free, before the
    weights load); ``None`` where the file does not tell (the loader then says what is wrong)."""
    import json

    try:
        res = json.loads(weights_file(config.path).with_suffix(".json").read_text())["unet"]["res"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (res, res) if isinstance(res, int) and res > 0 else None


@dataclass(frozen=True)
class TinyPriorConfig:
    """Options of the ``tiny`` prior (the learned U-Net; prompts need the ``diffrep[tiny]`` extra)."""

    path: str | None = None
    """Trained weights: a run folder or its tiny.safetensors (with tiny.json beside it); default: the shipped ones."""
    device: str = "cpu"
    """Where the U-Net computes: cpu, cuda, cuda:N, mps."""

    def __post_init__(self):
        if self.path is not None and not isinstance(self.path, (str, os.PathLike)):
            raise InputError(f"path={self.path!r} is not allowed; it must be the path of a file or folder")
        if not isinstance(self.device, str):
            raise InputError(f"device={self.device!r} is not allowed; it must be a device name such as 'cpu'")
        check_weights(self.path)
        check_device(self.device)
