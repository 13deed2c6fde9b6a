"""Toy-world data sets: sampling, captions, labels, and reading and writing them to disk."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

from diffrep.cameras import VIEWS, sample_cameras, view_label, view_prompt

from .cameras import DISTANCE, FOV_DEG, sample_light
from .objects import COLOURS, KIND_SPECS, KINDS, N_PARAMS, occupancy, sample_instance
from .renderer import BACKGROUND, render


@dataclass(frozen=True)
class ToyWorldConfig:
    """How to generate a toy-world data set."""

    n: int = 1000
    """Number of images."""
    res: int = 32
    """Image resolution: 32 or 64."""
    seed: int = 0
    """Seed of the one torch.Generator all random choices come from."""
    elevation_range: tuple[float, float] = (-10.0, 60.0)
    """Camera elevations are uniform in this range (degrees)."""


@dataclass
class ToyDataset:
    """Rendered toy-world images with their labels, cameras, lights and shapes."""

    images: Tensor  # [N, 3, H, W] float32 in [-1, 1]
    kind: Tensor  # [N] int64 index into KINDS
    colour: Tensor  # [N] int64 index into COLOURS
    view: Tensor  # [N] int64 index into VIEWS
    captions: list[str]
    cameras: Tensor  # [N, 3] azimuth_deg, elevation_deg, distance (field of view FOV_DEG)
    light: Tensor  # [N, 3] unit direction towards the light (world)
    instance: Tensor  # [N, N_PARAMS] shape parameters, see KIND_SPECS[kind].params
    config: ToyWorldConfig | None = None

    def __len__(self) -> int:
        return self.images.shape[0]

    def occupancy(self, i: int, points: Tensor) -> Tensor:
        """Ground-truth occupancy of image ``i``'s object at world points ``[..., 3]`` -> bool ``[...]``."""
        return occupancy(int(self.kind[i]), self.instance[i], points)

    def metadata(self) -> list[dict]:
        """Per image: file, caption, kind, colour and view names, camera, light and shape parameters."""
        return [image_metadata(self, i) for i in range(len(self))]


def image_metadata(ds: ToyDataset, i: int) -> dict:
    """The JSON-ready description of image ``i`` of ``ds``."""
    kind = KIND_SPECS[int(ds.kind[i])]
    az, el, dist = ds.cameras[i].tolist()
    return {
        "file": f"{i:05d}.png",
        "caption": ds.captions[i],
        "kind": kind.name,
        "colour": COLOURS[int(ds.colour[i])],
        "view": VIEWS[int(ds.view[i])],
        "camera": {"azimuth": az, "elevation": el, "distance": dist},
        "light": ds.light[i].tolist(),
        "instance": {p.name: v for p, v in zip(kind.params, ds.instance[i].tolist())},
    }


def caption(kind: int, colour: int, view: int) -> str:
    """Caption of a labelled image, e.g. ``caption(1, 5, 0) == "an orange duck, front view"``.

    The view part is DreamFusion's view-dependent suffix (``diffrep.cameras.view_prompt``)."""
    words = f"{COLOURS[colour]} {KINDS[kind]}"
    article = "an" if words[0] in "aeiou" else "a"
    return view_prompt(f"{article} {words}", view)


def parse_caption(text: str) -> tuple[int, int, int]:
    """Inverse of ``caption``: ``(kind, colour, view)`` indices of a caption."""
    m = re.fullmatch(r"an? (\w+) (\w+), (\w+) view", text.strip())
    if m is None or m[1] not in COLOURS or m[2] not in KINDS or m[3] not in VIEWS:
        raise ValueError(f"not a toy-world caption: {text!r}")
    return KINDS.index(m[2]), COLOURS.index(m[1]), VIEWS.index(m[3])


def sample_scenes(config: ToyWorldConfig) -> dict[str, Tensor]:
    """Kind, colour, camera, light and shape of every image, all drawn up front from one generator.

    Row ``i`` of one ``[n, 6 + N_PARAMS]`` uniform draw decides image ``i``, so a data set
    of ``n`` images is the first ``n`` images of a larger one with the same seed.
    """
    g = torch.Generator().manual_seed(config.seed)
    u = torch.rand(config.n, 6 + N_PARAMS, generator=g, dtype=torch.float64)
    kind = (u[:, 0] * len(KINDS)).long().clamp_max(len(KINDS) - 1)
    colour = (u[:, 1] * len(COLOURS)).long().clamp_max(len(COLOURS) - 1)
    cameras = sample_cameras(u[:, 2:4], config.elevation_range, DISTANCE)
    light = sample_light(cameras, u[:, 4:6])
    instance = sample_instance(kind, u[:, 6:])
    view = view_label(cameras[:, 0], cameras[:, 1])
    return {"kind": kind, "colour": colour, "view": view, "cameras": cameras, "light": light, "instance": instance}


def generate(config: ToyWorldConfig, *, progress: Callable[[int, int], None] | None = None) -> ToyDataset:
    """Sample and render a toy-world data set; ``progress(done, total)`` is called as chunks finish.

    Example: ``ds = generate(ToyWorldConfig(n=100, res=32, seed=0)); ds.images.shape == (100, 3, 32, 32)``.
    """
    if config.res not in (32, 64):
        raise ValueError(f"res must be 32 or 64, got {config.res}")
    if config.n < 0:
        raise ValueError(f"n must be non-negative, got {config.n}")
    lo, hi = config.elevation_range
    if not -90.0 < lo <= hi < 90.0:
        raise ValueError(f"elevation_range must satisfy -90 < lo <= hi < 90, got {config.elevation_range}")
    s = sample_scenes(config)
    images = render(s["kind"], s["colour"], s["instance"], s["cameras"], s["light"], config.res, progress=progress)
    captions = [caption(k, c, v) for k, c, v in zip(s["kind"].tolist(), s["colour"].tolist(), s["view"].tolist())]
    return ToyDataset(images=images, captions=captions, config=config, **s)


def _to_uint8(images: Tensor) -> Tensor:
    """Images ``[N, 3, H, W]`` in [-1, 1] as uint8 ``[N, H, W, 3]``."""
    return ((images.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)


def write_dataset(ds: ToyDataset, out_dir: Path | str, *, overwrite: bool = False) -> None:
    """Write ``ds`` as PNGs ``00000.png, ...`` and ``metadata.json`` into ``out_dir``.

    metadata.json holds the config, the vocabularies, the camera model and one dict per
    image (see ``ToyDataset.metadata``). The files are written into a temporary folder
    beside ``out_dir`` that is then renamed, so ``out_dir`` is either complete or absent.
    An existing non-empty ``out_dir`` is an ``InputError`` unless ``overwrite``, and even then
    unless it is a folder diffrep wrote (``diffrep.export.check_output_dir``).
    """
    from PIL import Image

    from diffrep.export import write_folder

    files: dict[str, object] = {f"{i:05d}.png": Image.fromarray(pixels)
                                for i, pixels in enumerate(_to_uint8(ds.images).numpy())}
    files["metadata.json"] = {
        "config": None if ds.config is None else asdict(ds.config),
        "vocabularies": {"kinds": list(KINDS), "colours": list(COLOURS), "views": list(VIEWS)},
        "camera_model": {"fov_deg": FOV_DEG, "distance": DISTANCE, "up": "z", "front": "+x"},
        "background": BACKGROUND,
        "images": ds.metadata(),
    }
    write_folder(out_dir, files, overwrite)


def read_dataset(out_dir: Path | str) -> ToyDataset:
    """Read a data set written by ``write_dataset`` (images quantised to 8 bits by the PNGs)."""
    import numpy as np
    from PIL import Image

    out_dir = Path(out_dir)
    meta = json.loads((out_dir / "metadata.json").read_text())
    rows = meta["images"]
    res = meta["config"]["res"] if meta["config"] else 32
    pixels = np.stack([np.asarray(Image.open(out_dir / r["file"]).convert("RGB")) for r in rows]) if rows else np.zeros((0, res, res, 3), np.uint8)
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    instance = torch.zeros(len(rows), N_PARAMS)
    for i, r in enumerate(rows):
        names = [p.name for p in KIND_SPECS[KINDS.index(r["kind"])].params]
        instance[i, : len(names)] = torch.tensor([r["instance"][k] for k in names])
    config = None if meta["config"] is None else ToyWorldConfig(**{**meta["config"], "elevation_range": tuple(meta["config"]["elevation_range"])})
    return ToyDataset(
        images=images.contiguous(),
        kind=torch.tensor([KINDS.index(r["kind"]) for r in rows], dtype=torch.int64),
        colour=torch.tensor([COLOURS.index(r["colour"]) for r in rows], dtype=torch.int64),
        view=torch.tensor([VIEWS.index(r["view"]) for r in rows], dtype=torch.int64),
        captions=[r["caption"] for r in rows],
        cameras=torch.tensor([[r["camera"][k] for k in ("azimuth", "elevation", "distance")] for r in rows]).reshape(-1, 3),
        light=torch.tensor([r["light"] for r in rows]).reshape(-1, 3),
        instance=instance,
        config=config,
    )
