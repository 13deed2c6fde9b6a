"""The empirical prior over views of 360-degree toy-world scenes (``toyworld-scenes``).

Its data are the crops of every scene's panorama every ``view_stride`` columns; a view's labels are
the objects it sees (``toyworld.scenes.visible_objects``: kind and colour) and its scene's floor colour.
A prompt (``"a red mug and a blue duck on a green floor"``) selects the views that see every object it
names (each by kind, colour or both) on the floor it names; the denoiser is ``EmpiricalPrior``'s.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch import Tensor

from diffrep.errors import InputError
from diffrep.priors.configs import ScenesPriorConfig
from diffrep.priors.empirical import EmpiricalPrior, _toyworld_source_hash, cache_dir
from diffrep.schedule import make_schedule
from diffrep.toyworld.scene_text import SceneConfig, SceneQuery, parse_scene_prompt


class SceneViewPrior(EmpiricalPrior):
    """``EmpiricalPrior`` over views ``[V, C, H, W]``, conditioned by ``SceneQuery``.

    seen: bool ``[V, n_kinds, n_colours]``, the (kind, colour) objects each view sees; floor: ``[V]``."""

    def __init__(self, data: Tensor, seen: Tensor, floor: Tensor, alphas_cumprod: Tensor | None = None):
        super().__init__(data, alphas_cumprod=alphas_cumprod)
        self.seen, self.floor = seen, floor

    def encode_prompt(self, text: str | None) -> SceneQuery | None:
        if not text:
            return None
        q = parse_scene_prompt(text)
        if q is not None:
            self.subset(q)  # raises if no view matches
        return q

    def matches(self, cond: SceneQuery) -> Tensor:
        """bool ``[V]``: the views that see every object of ``cond`` on its floor."""
        keep = torch.ones(len(self), dtype=torch.bool)
        for kind, colour in cond.objects:
            seen = self.seen if kind is None else self.seen[:, kind : kind + 1]
            seen = seen if colour is None else seen[:, :, colour : colour + 1]
            keep &= seen.flatten(1).any(1)
        if cond.floor is not None:
            keep &= self.floor == cond.floor
        return keep

    def subset(self, cond: SceneQuery | None) -> Tensor:
        if cond not in self._subsets:
            keep = torch.ones(len(self), dtype=torch.bool) if cond is None else self.matches(cond)
            if not keep.any():
                raise InputError(f"no scene view matches {cond}; pick fewer objects, or ones seen together")
            self._subsets[cond] = keep.nonzero().squeeze(1)
        return self._subsets[cond]


def scene_data(config: SceneConfig, progress: Callable[[int, int], None] | None = None) -> dict[str, Tensor]:
    """Generate (or load from the cache) scenes as uint8 panoramas, coverage and layouts."""
    from safetensors.torch import load_file, save_file

    from diffrep.toyworld.scenes import generate_scenes

    kinds, colours = ("-" + "-".join(config.kinds)) if config.kinds != SceneConfig().kinds else "", \
        ("-" + "-".join(config.colours)) if config.colours != SceneConfig().colours else ""
    name = (f"scenes-n{config.n}-r{config.res}-s{config.seed}-o{config.min_objects}-{config.max_objects}{kinds}{colours}"
            f"-{_toyworld_source_hash()}.safetensors")
    path = cache_dir() / name
    if path.exists():
        return load_file(path)
    ds = generate_scenes(config, progress=progress)
    tensors = {"panoramas": ((ds.panoramas + 1) * 127.5).round().clamp(0, 255).to(torch.uint8),
               "coverage": ds.coverage, **ds.layout}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    save_file({k: v.contiguous() for k, v in tensors.items()}, tmp)
    os.replace(tmp, path)
    return tensors


def scene_views(d: dict[str, Tensor], res: int, view_stride: int) -> tuple[Tensor, Tensor, Tensor]:
    """Views ``[V, 3, res, res]`` in [-1, 1] (scene-major, every ``view_stride`` columns), what each sees
    (bool ``[V, n_kinds, n_colours]``) and its floor ``[V]``, from ``scene_data``'s tensors."""
    from diffrep.toyworld.objects import COLOURS, KINDS
    from diffrep.toyworld.scenes import crop_views, visible_objects

    n, Wc = d["panoramas"].shape[0], d["panoramas"].shape[-1]
    columns = torch.arange(0, Wc, view_stride).expand(n, -1)
    views = crop_views(d["panoramas"], columns, res).flatten(0, 1).float() / 127.5 - 1
    visible = visible_objects(d["coverage"], columns, res)  # [n, k, MAX_OBJECTS]
    seen = torch.zeros(*visible.shape[:2], len(KINDS), len(COLOURS), dtype=torch.bool)
    b, k, s = visible.nonzero().T
    seen[b, k, d["kind"][b, s].long(), d["colour"][b, s].long()] = True
    return views, seen.flatten(0, 1), d["floor"].long().repeat_interleave(columns.shape[1])


def scenes_from_config(config: ScenesPriorConfig, *, progress: Callable[[int, int], None] | None = None) -> SceneViewPrior:
    """The empirical prior over views of ``config.n`` scenes (generated once, cached on disk)."""
    d = scene_data(SceneConfig(n=config.n, res=config.res, seed=config.seed), progress)
    views, seen, floor = scene_views(d, config.res, config.view_stride)
    return SceneViewPrior(views.to(config.device), seen, floor, make_schedule(config.schedule))
