"""The empirical prior: the exact optimal denoiser of a finite image set (design §2).

``x0_hat(x_t) = sum_i softmax_i(-|x_t - a_t x_i|^2 / (2 s_t^2)) x_i`` over the images whose
labels match the condition; the unconditional model uses the whole set, so CFG is exact too.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from diffrep.errors import InputError
from diffrep.priors.base import noise_levels
from diffrep.priors.configs import ToyworldPriorConfig
from diffrep.priors.prompts import LabelQuery, parse_prompt
from diffrep.schedule import linear_schedule, make_schedule


class EmpiricalPrior:
    """Closed-form denoiser of ``data [N, C, H, W]`` with integer ``labels`` (name -> [N]).

    ``vocab`` maps each label name to its value names (for prompts); ``cond`` is ``None``, a
    ``LabelQuery``, or a list with one of those per batch element. It computes on the device of
    ``data``; ``eps`` takes ``x_t`` on any device and answers on it."""

    def __init__(self, data: Tensor, labels: dict[str, Tensor] | None = None,
                 vocab: dict[str, tuple[str, ...]] | None = None, alphas_cumprod: Tensor | None = None):
        self.image_shape = tuple(data.shape[1:])
        self.data = data
        self.labels = labels or {}
        self.vocab = vocab or {}
        self.alphas_cumprod = linear_schedule() if alphas_cumprod is None else alphas_cumprod
        self._mean = data.mean(0)
        self._centred = (data - self._mean).flatten(1)  # centring keeps float32 dot products accurate
        self._sqnorm = self._centred.pow(2).sum(1)
        self._subsets: dict[LabelQuery | None, Tensor] = {}
        self._gathered: dict[LabelQuery, tuple[Tensor, Tensor]] = {}  # subset rows, gathered once

    def __len__(self) -> int:
        return self.data.shape[0]

    @property
    def device(self) -> torch.device:
        return self.data.device

    def encode_prompt(self, text: str | None) -> LabelQuery | None:
        if not text:
            return None
        q = parse_prompt(text, *(self.vocab.get(name, ()) for name in ("kind", "colour", "view")))
        self.subset(q)  # raises if no data image matches
        return q

    def subset(self, cond: LabelQuery | None) -> Tensor:
        """Indices of the data images matching ``cond`` (cached)."""
        if cond not in self._subsets:
            keep = torch.ones(len(self), dtype=torch.bool)
            for name, value in ([] if cond is None else cond.items()):
                keep &= self.labels[name] == value
            if not keep.any():
                raise InputError(f"no data image matches {describe(cond, self.vocab)}; pick fewer or other labels")
            self._subsets[cond] = keep.nonzero().squeeze(1)
        return self._subsets[cond]

    def posterior(self, x_t: Tensor, t: Tensor, cond: LabelQuery | None) -> tuple[Tensor, Tensor]:
        """Posterior weights ``[B, M]`` over the matching subset, and its indices ``[M]``."""
        idx = self.subset(cond)
        a, s = noise_levels(self.alphas_cumprod, t, torch.float32)
        a, s = a.view(-1, 1), s.view(-1, 1)
        x = (x_t.float() - a.view(-1, 1, 1, 1) * self._mean).flatten(1)
        X, sq = self._rows(cond, idx)
        logits = (a * (x @ X.T) - 0.5 * a**2 * sq) / s**2  # -|x - a X|^2 / 2s^2 up to a constant
        return torch.softmax(logits, dim=1), idx

    def denoise(self, x_t: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        """Posterior mean ``E[x_0 | x_t]`` ``[B, C, H, W]``."""
        conds = cond if isinstance(cond, list) else [cond] * x_t.shape[0]
        x0 = torch.empty_like(x_t, dtype=torch.float32)
        for q in set(conds):
            rows = torch.tensor([i for i, c in enumerate(conds) if c == q], device=x_t.device)
            for part in rows.split(max(1, POSTERIOR_ELEMENTS // len(self.subset(q)))):
                w, idx = self.posterior(x_t[part], t[part], q)
                x0[part] = (w @ self._rows(q, idx)[0]).view(-1, *self.image_shape) + self._mean
        return x0.to(x_t.dtype)

    def _rows(self, cond: LabelQuery | None, idx: Tensor) -> tuple[Tensor, Tensor]:
        """Centred data rows and squared norms of a subset; the full set is never copied."""
        if cond is None:
            return self._centred, self._sqnorm
        if cond not in self._gathered:
            self._gathered[cond] = (self._centred[idx], self._sqnorm[idx])
        return self._gathered[cond]

    def eps(self, x_t: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        x, t = x_t.to(self.device), t.to(self.device)
        a, s = noise_levels(self.alphas_cumprod, t, x.dtype)
        return ((x - a * self.denoise(x, t, cond)) / s).to(x_t.device)


POSTERIOR_ELEMENTS = 2**25
"""Posterior weights (batch rows x matching images) the denoiser computes at once: a batch of more rows than
``2**25 / M`` is taken in parts, so its working memory (a few such matrices, 128 MiB each) does not grow with the
run's number of instances (a run of 20,000 instances on the 10,000 images would hold 2.4 GB otherwise)."""


CAMERA_MIN_IMAGES = 3
"""A camera-conditioned view whose window holds fewer data images takes this many nearest ones instead."""


@dataclass(frozen=True)
class CameraQuery:
    """A label condition and a view's camera (degrees): the condition of one view under a camera window."""

    query: LabelQuery | None
    azimuth: float
    elevation: float


class CameraEmpiricalPrior(EmpiricalPrior):
    """The empirical prior conditioned on the camera as well as the labels: ``with_camera(cond, camera)`` is the
    condition of a view shot from ``camera`` (azimuth, elevation, distance); its denoiser is the exact posterior mean
    over the data images matching ``cond`` whose cameras ``[N, 3]`` lie within ``camera_window = (AZ, EL)`` degrees of it
    (at least the ``CAMERA_MIN_IMAGES`` nearest, by ``|Δaz|/AZ + |Δel|/EL``). Without a camera it is the label prior.

    Why: a view label (front / side / back / overhead) leaves a box's pose free by ±45°, and the label prior's
    denoised image of a view is a data image shot from up to that far away; DDRep's NeRFs of boxy kinds (houses,
    chairs) then average the poses into round blobs (docs/nerf.md). The camera is the condition a multi-view prior
    (Zero-1-to-3, MVDream) gives its denoiser; here it is exact."""

    def __init__(self, data: Tensor, labels: dict[str, Tensor], vocab: dict[str, tuple[str, ...]],
                 alphas_cumprod: Tensor | None = None, *, cameras: Tensor, camera_window: tuple[float, float]):
        super().__init__(data, labels, vocab, alphas_cumprod)
        if cameras.shape != (len(self), 3):
            raise InputError(f"cameras of shape {tuple(cameras.shape)} for {len(self)} data images; give [N, 3]")
        self.cameras = cameras.float().cpu()
        self.camera_window = camera_window  # the config's name: spec.check_cameras reads either

    def with_camera(self, cond: LabelQuery | None, camera: tuple[float, ...]) -> CameraQuery:
        return CameraQuery(cond, float(camera[0]), float(camera[1]))

    def empty_condition(self, conds: list) -> list:
        """Guidance's empty prompt for each view (``priors.base.unconditional``): with a camera, every data image in
        that camera's window, whatever its labels — guidance drops the words, not the camera (MVDream's convention;
        the camera is the denoiser's input). Over all the data, a view's guidance would also push towards its camera's
        images and away from the others', and each evaluation would weigh every data image."""
        return [CameraQuery(None, c.azimuth, c.elevation) if isinstance(c, CameraQuery) else None for c in conds]

    def subset(self, cond: LabelQuery | CameraQuery | None) -> Tensor:
        if not isinstance(cond, CameraQuery):
            return super().subset(cond)
        if cond not in self._subsets:
            rows = super().subset(cond.query)
            keep = camera_window_rows(self.cameras[rows.cpu()], cond.azimuth, cond.elevation, self.camera_window)
            self._subsets[cond] = rows[keep.to(rows.device)]
        return self._subsets[cond]


def camera_window_rows(cameras: Tensor, azimuth: float, elevation: float, window: tuple[float, float],
                       minimum: int = CAMERA_MIN_IMAGES) -> Tensor:
    """Indices into ``cameras [M, 3]`` of those within ``window = (AZ, EL)`` degrees of (azimuth, elevation), azimuth
    wrapping at 360; fewer than ``minimum``: the ``minimum`` nearest by ``|Δaz|/AZ + |Δel|/EL`` (all if fewer)."""
    d_az = ((cameras[:, 0] - azimuth + 180) % 360 - 180).abs()
    d_el = (cameras[:, 1] - elevation).abs()
    inside = ((d_az <= window[0]) & (d_el <= window[1])).nonzero().squeeze(1)
    if len(inside) >= minimum:
        return inside
    return (d_az / window[0] + d_el / window[1]).topk(min(minimum, len(cameras)), largest=False).indices.sort().values


def describe(cond: LabelQuery | None, vocab: dict[str, tuple[str, ...]]) -> str:
    if cond is None:
        return "the unconditional query"
    return ", ".join(f"{name}={vocab[name][v] if v < len(vocab.get(name, ())) else v}" for name, v in cond.items())


def cache_dir() -> Path:
    """``$DIFFREP_CACHE_DIR`` or the user's cache directory."""
    if env := os.environ.get("DIFFREP_CACHE_DIR"):
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("diffrep"))


def _toyworld_source_hash() -> str:
    """Hash of the toy-world renderer's source, so a changed renderer never reuses a stale cache."""
    import diffrep.toyworld as tw

    h = hashlib.sha256()
    for path in sorted(Path(tw.__file__).parent.glob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def toyworld_data(n: int, res: int, seed: int, progress: Callable[[int, int], None] | None = None) -> dict[str, Tensor]:
    """Generate (or load from the cache) a toy-world set as uint8 images plus labels."""
    from safetensors.torch import load_file, save_file

    from diffrep import toyworld as tw

    path = cache_dir() / f"toyworld-n{n}-r{res}-s{seed}-{_toyworld_source_hash()}.safetensors"
    if path.exists():
        return load_file(path)
    ds = tw.generate(tw.ToyWorldConfig(n=n, res=res, seed=seed), progress=progress)
    tensors = {
        "images": ((ds.images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8),
        "kind": ds.kind, "colour": ds.colour, "view": ds.view,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    save_file({k: v.contiguous() for k, v in tensors.items()}, tmp)
    os.replace(tmp, path)
    return tensors


def toyworld_from_config(config: ToyworldPriorConfig, *,
                         progress: Callable[[int, int], None] | None = None) -> EmpiricalPrior:
    """The embedded default: the empirical prior over ``config.n`` toy-world images (cached on disk)."""
    from diffrep import toyworld as tw

    d = toyworld_data(config.n, config.res, config.seed, progress)
    data = d["images"].float() / 127.5 - 1
    labels = {name: d[name].long() for name in ("kind", "colour", "view")}
    vocab = {"kind": tw.KINDS, "colour": tw.COLOURS, "view": tw.VIEWS}
    if config.camera_window is None:
        return EmpiricalPrior(data.to(config.device), labels, vocab, make_schedule(config.schedule))
    return CameraEmpiricalPrior(data.to(config.device), labels, vocab, make_schedule(config.schedule),
                                cameras=toyworld_cameras(config.n, config.res, config.seed),
                                camera_window=config.camera_window)


def toyworld_cameras(n: int, res: int, seed: int) -> Tensor:
    """The cameras ``[n, 3]`` (azimuth, elevation, distance) of ``toyworld_data(n, res, seed)``'s images: drawn again
    (the toy world draws every image's camera up front from its seed; 0.1 s for 160,000), not rendered."""
    from diffrep.toyworld.dataset import ToyWorldConfig, sample_scenes

    return sample_scenes(ToyWorldConfig(n=n, res=res, seed=seed))["cameras"]


def toyworld_prior(n: int = 10_000, res: int = 32, seed: int = 0, schedule: str = "linear",
                   progress: Callable[[int, int], None] | None = None, device: str = "cpu",
                   camera_window: tuple[float, float] | None = None) -> EmpiricalPrior:
    """``toyworld_from_config`` with the options as arguments (validated by ``ToyworldPriorConfig``)."""
    config = ToyworldPriorConfig(n=n, res=res, seed=seed, schedule=schedule, device=device, camera_window=camera_window)
    return toyworld_from_config(config, progress=progress)
