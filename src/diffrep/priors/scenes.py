"""The empirical prior over views of 360-degree toy-world scenes (``toyworld-scenes``).

Its data are the crops of every scene's panorama every ``view_stride`` columns; a view's labels are
the objects it sees (``toyworld.scenes.visible_objects``: kind and colour) and its scene's floor colour.
A prompt (``"a red mug and a blue duck on a green floor"``) selects the views that see every object it
names (each by kind, colour or both) on the floor it names; the denoiser is ``EmpiricalPrior``'s.
A panorama's prompt names the whole scene: ``encode_scene_prompt`` turns it into a ``ScenePrompt``. By
default (``scene_prompt="layout"``) it carries a layout per instance, where each of the prompt's objects
stands, and each view is conditioned on exactly the objects in its field of view on the floor; with
``scene_prompt="set"`` every view selects every view of the scenes that hold its objects on its floor
(docs/reps.md, per-view conditioning).
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
from diffrep.toyworld.scene_text import (
    VIEW_BINS,
    SceneConfig,
    ScenePrompt,
    SceneQuery,
    parse_scene_prompt,
)


def holds(seen: Tensor, kind: int | None, colour: int | None) -> Tensor:
    """bool ``[N]``: which rows of ``seen [N, n_kinds, n_colours]`` hold an object of this kind and/or colour."""
    seen = seen if kind is None else seen[:, kind : kind + 1]
    seen = seen if colour is None else seen[:, :, colour : colour + 1]
    return seen.flatten(1).any(1)


class SceneViewPrior(EmpiricalPrior):
    """``EmpiricalPrior`` over views ``[V, C, H, W]``, conditioned by ``SceneQuery`` (what a view sees) or
    ``ScenePrompt`` (what its scene holds).

    seen: bool ``[V, n_kinds, n_colours]``, the (kind, colour) objects each view sees; floor: ``[V]``;
    scene: ``[V]`` the index of each view's scene (default: each view its own); scene_prompt: how a panorama's
    prompt conditions its views, ``"layout"`` or ``"set"`` (``ScenesPriorConfig.scene_prompt``); where: int8
    ``[V, n_kinds, n_colours]``, the slice of the view each seen object's centre stands in (``view_bin``; -1:
    outside the view, or not seen; default: unknown, -1)."""

    def __init__(self, data: Tensor, seen: Tensor, floor: Tensor, alphas_cumprod: Tensor | None = None,
                 scene: Tensor | None = None, scene_prompt: str = "layout", where: Tensor | None = None):
        super().__init__(data, alphas_cumprod=alphas_cumprod)
        self.seen, self.floor = seen, floor
        self.where = torch.full(seen.shape, -1, dtype=torch.int8) if where is None else where
        self.scene = torch.arange(len(floor)) if scene is None else scene
        self.scene_prompt = scene_prompt

    def encode_prompt(self, text: str | None) -> SceneQuery | None:
        if not text:
            return None
        q = parse_scene_prompt(text)
        if q is not None:
            self.subset(q)  # raises if no view matches
        return q

    def encode_scene_prompt(self, text: str | None, n: int | None = None, seed: int | None = None) -> ScenePrompt | None:
        """A panorama's prompt as a ``ScenePrompt``: with ``scene_prompt="layout"`` and a run's ``n`` and
        ``seed``, with a layout of its objects for each of the ``n`` instances (``scene_layout``); otherwise
        the set condition (every view: a view of a scene holding its objects)."""
        q = parse_scene_prompt(text) if text else None
        if q is None:
            return None
        self.subset(ScenePrompt(q))  # raises if no scene holds any of it
        if self.scene_prompt == "layout" and n is not None and q.objects:
            return scene_layout(q, n, 0 if seed is None else seed)
        return ScenePrompt(q)

    def matches(self, cond: SceneQuery) -> Tensor:
        """bool ``[V]``: the views that see every object of ``cond`` on its floor (and, with ``cond.only``,
        nothing else); ``only`` never comes back empty: ``best_matches``."""
        if cond.only:
            return self.best_matches(cond)
        keep = torch.ones(len(self), dtype=torch.bool)
        for kind, colour in cond.objects:
            keep &= holds(self.seen, kind, colour)
        if cond.floor is not None:
            keep &= self.floor == cond.floor
        return keep

    def best_matches(self, cond: SceneQuery) -> Tensor:
        """bool ``[V]``: for a layout view's ``SceneQuery(..., only=True)``, the views holding the most of its
        objects where ``cond.at`` puts them, then anywhere, then (among those) on its floor, then seeing no
        other object than those and ``cond.near``'s: the exact matches (all its objects in place, its floor, nothing else) where the data
        have any."""
        zero = torch.zeros(len(self), dtype=torch.long)
        objects = sum((holds(self.seen, k, c).long() for k, c in cond.objects), zero)
        placed = sum((holds(self.seen & (self.where == b), k, c).long() for (k, c), b in zip(cond.objects, cond.at)), zero)
        floor = (self.floor == cond.floor).long() if cond.floor is not None else torch.zeros_like(objects)
        allowed = torch.zeros(self.seen.shape[1:], dtype=torch.bool)
        for kind, colour in cond.objects + cond.near:  # near: objects the view may see in part, not refused
            allowed[slice(None) if kind is None else kind, slice(None) if colour is None else colour] = True
        clean = (~(self.seen & ~allowed).flatten(1).any(1)).long()
        key = placed * 32 + objects * 4 + floor * 2 + clean  # lexicographic: at most 6 objects
        return key == key.max()

    def scene_items(self, cond: ScenePrompt) -> Tensor:
        """``[n_scenes]``: how many of the prompt's items (its objects, and its floor) each scene holds."""
        n = int(self.scene.max()) + 1
        has = torch.zeros(n, *self.seen.shape[1:]).index_add_(0, self.scene, self.seen.float()) > 0
        count = sum((holds(has, kind, colour).long() for kind, colour in cond.query.objects), torch.zeros(n, dtype=torch.long))
        if cond.query.floor is not None:
            floor = torch.zeros(n, dtype=torch.long).index_copy_(0, self.scene, self.floor)
            count += (floor == cond.query.floor).long()
        return count

    def scene_matches(self, cond: ScenePrompt) -> Tensor:
        """bool ``[V]``: the views of the scenes holding the most of the prompt's items (all, where one does)."""
        count = self.scene_items(cond)
        best = int(count.max())
        return (count == best)[self.scene] if best > 0 else torch.zeros(len(self), dtype=torch.bool)

    def subset(self, cond: SceneQuery | ScenePrompt | None) -> Tensor:
        if cond not in self._subsets:
            if cond is None:
                keep = torch.ones(len(self), dtype=torch.bool)
            else:
                keep = self.scene_matches(cond) if isinstance(cond, ScenePrompt) else self.matches(cond)
            if not keep.any():
                why = ("no scene holds any of its objects or its floor" if isinstance(cond, ScenePrompt)
                       else "pick fewer objects, or ones seen together")
                raise InputError(f"no scene view matches {cond}; {why}")
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


def scene_views(d: dict[str, Tensor], res: int, view_stride: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Views ``[V, 3, res, res]`` in [-1, 1] (scene-major, every ``view_stride`` columns), what each sees
    (bool ``[V, n_kinds, n_colours]``), its floor ``[V]`` and where in it each seen object's centre stands
    (int8 ``[V, n_kinds, n_colours]``, ``view_bin`` of its bearing; -1 outside, or not seen), from
    ``scene_data``'s tensors."""
    from diffrep.toyworld.objects import COLOURS, KINDS
    from diffrep.toyworld.scenes import crop_views, visible_objects

    n, Wc = d["panoramas"].shape[0], d["panoramas"].shape[-1]
    columns = torch.arange(0, Wc, view_stride).expand(n, -1)
    views = crop_views(d["panoramas"], columns, res).flatten(0, 1).float() / 127.5 - 1
    visible = visible_objects(d["coverage"], columns, res)  # [n, k, MAX_OBJECTS]
    seen = torch.zeros(*visible.shape[:2], len(KINDS), len(COLOURS), dtype=torch.bool)
    b, k, s = visible.nonzero().T
    seen[b, k, d["kind"][b, s].long(), d["colour"][b, s].long()] = True
    # view_bin, on tensors: the centre's column offset from the view's start, in slices of the view.
    offset = torch.remainder(d["bearing"][b, s].double() / 360.0 * Wc - columns[b, k], Wc)
    bins = torch.where(offset < res, (offset * VIEW_BINS).div(res, rounding_mode="floor"), -1).to(torch.int8)
    where = torch.full(seen.shape, -1, dtype=torch.int8)
    where[b, k, d["kind"][b, s].long(), d["colour"][b, s].long()] = bins
    return views, seen.flatten(0, 1), d["floor"].long().repeat_interleave(columns.shape[1]), where.flatten(0, 1)


def scenes_from_config(config: ScenesPriorConfig, *, progress: Callable[[int, int], None] | None = None) -> SceneViewPrior:
    """The empirical prior over views of ``config.n`` scenes (generated once, cached on disk)."""
    d = scene_data(SceneConfig(n=config.n, res=config.res, seed=config.seed), progress)
    views, seen, floor, where = scene_views(d, config.res, config.view_stride)
    scene = torch.arange(config.n).repeat_interleave(len(floor) // max(config.n, 1))
    return SceneViewPrior(views.to(config.device), seen, floor, make_schedule(config.schedule), scene=scene,
                          scene_prompt=config.scene_prompt, where=where)


LAYOUT_SEED_OFFSET: int = 1_000_003
"""A run's layouts draw from ``torch.Generator().manual_seed(seed + LAYOUT_SEED_OFFSET)``: a function of the
run's seed alone (so a resumed run has the same layout), on a stream apart from the run's noise."""


def scene_layout(query: SceneQuery, n: int, seed: int) -> ScenePrompt:
    """``ScenePrompt`` with a layout for ``n`` instances: the bearings of ``query``'s objects drawn by
    ``toyworld.scenes.prompt_layout`` from the run's ``seed`` (``LAYOUT_SEED_OFFSET``)."""
    from diffrep.toyworld.scenes import prompt_layout

    g = torch.Generator().manual_seed((seed + LAYOUT_SEED_OFFSET) % 2**63)
    bearings = prompt_layout(len(query.objects), n, g)
    return ScenePrompt(query, tuple(tuple(row) for row in bearings.tolist()))
