"""3-D evaluation of generated objects against the toy world's ground truth (design §9).

An object is evaluated through two callables (``Object3D``): its renders at held-out cameras,
labelled by their nearest toy-world image, and its occupancy on a grid over ``[-1, 1]^3``,
compared with the ground-truth instances of the prompted kind. Every metric is a small
function here; ``evaluate_instances`` assembles them for the ``n`` instances of one prompt
into a JSON-able dict and ``format_table`` prints it. docs/evaluate3d.md gives the formulas.

Example::

    ref = load_reference()                      # the default prior's 10000 toy-world images
    objects = [ground_truth_object("duck", "orange", inst) for inst in GroundTruth().instances(1)[:4]]
    results = evaluate_instances(objects, {"kind": 1, "colour": 5}, ref)
    print(format_table(results))
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

import torch
from torch import Tensor

from diffrep.cameras import GOLDEN, VIEWS, camera_frames, sample_cameras, view_label
from diffrep.checks import check_int
from diffrep.errors import InputError
from diffrep.metrics import nearest_data, nearest_iou
from diffrep.priors.prompts import LABELS, parse_prompt
from diffrep.toyworld.cameras import DISTANCE
from diffrep.toyworld.dataset import ToyWorldConfig, sample_scenes
from diffrep.toyworld.objects import COLOURS, FRONTED, KINDS, N_PARAMS, occupancy
from diffrep.toyworld.renderer import BACKGROUND, render

__all__ = [
    "Evaluate3DConfig", "GroundTruth", "Object3D", "Reference", "as_reference", "back_cameras", "best_matching_instance",
    "evaluate_instances", "foreground_mask", "format_table", "grid_points", "ground_truth_object", "gt_instances", "gt_light", "gt_render",
    "held_out_cameras", "janus_rate", "label_accuracy_3d", "load_reference", "mask_iou", "nearest_labels",
    "iou_matrix", "occupancy_grid", "occupancy_iou", "pairwise_mask_iou", "pairwise_occupancy_iou", "prompt_labels", "silhouette",
    "silhouette_kinds",
]

ELEVATION_RANGE: tuple[float, float] = ToyWorldConfig().elevation_range  # the toy world's cameras
BACK_ELEVATION_RANGE: tuple[float, float] = (-10.0, 40.0)  # Janus cameras: below the overhead threshold (45)
BACK_HALF_WIDTH_DEG: float = 30.0  # Janus cameras: azimuth within 180 +- this
MASK_TOLERANCE: float = 0.05  # a render pixel this far from the background (any channel) is the object's


@dataclass(frozen=True)
class Object3D:
    """One object to evaluate, as callables: a NeRF instance or a ground-truth toy-world instance."""

    render: Callable[[Tensor, int], Tensor]  # (cameras [V, 3], res) -> [V, 3, res, res] in [-1, 1]
    occupancy: Callable[[Tensor], Tensor]  # points [P, 3] -> bool, or float in [0, 1] (> 0.5 is inside), [P]
    mask: Callable[[Tensor, int], Tensor] | None = None  # (cameras, res) -> opacity [V, res, res] in [0, 1]


@dataclass(frozen=True)
class Evaluate3DConfig:
    """Options of the 3-D evaluation."""

    views: int = 16
    """Held-out cameras per instance (label accuracy, mask IoU, PSNR)."""
    janus_views: int = 8
    """Cameras behind each instance (azimuth 180 +- 30) for the Janus rate."""
    grid: int = 64
    """Occupancy grid resolution per axis over [-1, 1]^3."""
    instances: int = 64
    """Ground-truth instances of the prompted kind to match against (and whose spread is reported)."""
    baseline: int = 16
    """Ground-truth instances evaluated like the objects (labels, Janus): the labeller's ceiling."""

    def __post_init__(self):
        for name in ("views", "janus_views", "grid", "baseline"):
            check_int(name, getattr(self, name))
        check_int("instances", self.instances, minimum=2)


# ----------------------------------------------------------------------------------
# Cameras and the ground truth


def held_out_cameras(k: int = 16, seed: int = 0) -> Tensor:
    """``k`` cameras ``[k, 3]`` at the toy world's distance: azimuths ``360 (i + 1 - GOLDEN) / k``, stratified elevations.

    The azimuth offset ``1 - GOLDEN`` (irrational) keeps every camera off the azimuths
    ``360 j / V`` of any ``camera_bank(V)``; camera ``i``'s elevation is uniform in stratum
    ``perm(i)`` of ``k`` equal strata of the toy world's range (-10, 60), drawn from ``seed``.
    """
    check_int("k", k)
    g = torch.Generator().manual_seed(seed)
    u_az = (torch.arange(k, dtype=torch.float64) + 1.0 - GOLDEN) / k
    u_el = (torch.randperm(k, generator=g).double() + torch.rand(k, generator=g, dtype=torch.float64)) / k
    return sample_cameras(torch.stack([u_az, u_el], -1), ELEVATION_RANGE, DISTANCE)


def back_cameras(k: int = 8, seed: int = 0) -> Tensor:
    """``k`` cameras ``[k, 3]`` behind the object: azimuths evenly in 180 +- 30, stratified elevations in (-10, 40)."""
    check_int("k", k)
    g = torch.Generator().manual_seed(seed + 1)
    u = (torch.arange(k, dtype=torch.float64) + 0.5) / k
    u_az = 0.5 + BACK_HALF_WIDTH_DEG / 360.0 * (2.0 * u - 1.0)
    u_el = (torch.randperm(k, generator=g).double() + torch.rand(k, generator=g, dtype=torch.float64)) / k
    return sample_cameras(torch.stack([u_az, u_el], -1), BACK_ELEVATION_RANGE, DISTANCE)


def gt_light(cameras: Tensor) -> Tensor:
    """The fixed camera-side light ``[V, 3]`` of ground-truth renders: ``normalise(to_camera + 0.4 z)``.

    This is ``toyworld.cameras.sample_light`` without its random part (whose mean is zero)."""
    eye = camera_frames(cameras)[0].double()
    light = eye / eye.norm(dim=-1, keepdim=True) + torch.tensor([0.0, 0.0, 0.4], dtype=torch.float64)
    return (light / light.norm(dim=-1, keepdim=True)).float()


def ground_truth_object(kind: int | str, colour: int | str, instance: Tensor) -> Object3D:
    """A toy-world instance as an ``Object3D``: the toy world's renderer (light ``gt_light``) and occupancy.

    instance: ``[N_PARAMS]`` shape parameters (a row of ``ToyDataset.instance``).
    Example: ``ground_truth_object("duck", "red", GroundTruth().instances(1)[0])``."""
    k, c = _index("kind", kind, KINDS), _index("colour", colour, COLOURS)
    if instance.numel() != N_PARAMS:
        raise InputError(f"instance must hold {N_PARAMS} shape parameters, got shape {tuple(instance.shape)}")
    q = instance.float().reshape(1, N_PARAMS)
    return Object3D(render=lambda cameras, res: gt_render(k, c, q, cameras, res)[0],
                    occupancy=lambda points: occupancy(k, q[0], points),
                    mask=lambda cameras, res: gt_render(k, c, q, cameras, res, antialias=False)[1].float())


def gt_render(kind: int, colour: int | Tensor, instances: Tensor, cameras: Tensor, res: int, *,
              antialias: bool = True) -> tuple[Tensor, Tensor]:
    """Renders ``[B * V, 3, res, res]`` and masks ``[B * V, res, res]`` of ``B`` instances of ``kind`` at ``V`` cameras, in one call.

    instances: ``[B, N_PARAMS]``; colour: an index or ``[B]`` indices; light ``gt_light``.
    Instance ``b``'s views are rows ``b * V`` to ``(b + 1) * V - 1``."""
    B, V = instances.shape[0], cameras.shape[0]
    colours = torch.as_tensor(colour, dtype=torch.int64).expand(B).repeat_interleave(V)
    return render(torch.full((B * V,), kind), colours, instances.float().repeat_interleave(V, 0), cameras.float().repeat(B, 1),
                  gt_light(cameras).repeat(B, 1), res, antialias=antialias, return_mask=True)


def gt_instances(kind: int, m: int = 64, seed: int = 0) -> Tensor:
    """Shape parameters ``[m, N_PARAMS]`` of the first ``m`` instances of ``kind`` in the toy-world data set ``seed``.

    ``sample_scenes`` draws image ``i`` from row ``i`` alone, so these are the very shapes of
    every data set with that seed that is long enough (the prior's 10000 images hold 64 of each)."""
    kind, m = _index("kind", kind, KINDS), check_int("m", m)
    n = 2 * m * len(KINDS)
    while True:
        scenes = sample_scenes(ToyWorldConfig(n=n, seed=seed))
        rows = (scenes["kind"] == kind).nonzero().flatten()
        if rows.numel() >= m:
            return scenes["instance"][rows[:m]]
        n *= 2


class GroundTruth:
    """The ground-truth instances of each kind and their occupancy grids, computed on first use and kept.

    One object serves many evaluations (the grids of 64 instances at 64^3 take 0.2-2 s a kind on one thread)."""

    def __init__(self, instances: int = 64, grid: int = 64, seed: int = 0):
        self.m, self.grid, self.seed = check_int("instances", instances, 2), check_int("grid", grid), seed
        self._instances: dict[int, Tensor] = {}
        self._grids: dict[int, Tensor] = {}
        self._pairwise: dict[int, float] = {}

    def instances(self, kind: int) -> Tensor:
        """``[m, N_PARAMS]``, see ``gt_instances``."""
        if kind not in self._instances:
            self._instances[kind] = gt_instances(kind, self.m, self.seed)
        return self._instances[kind]

    def grids(self, kind: int) -> Tensor:
        """Occupancy ``[m, grid^3]`` bool of the instances, on ``grid_points(grid)``."""
        if kind not in self._grids:
            points = grid_points(self.grid)
            self._grids[kind] = torch.stack([occupancy(kind, q, points) for q in self.instances(kind)])
        return self._grids[kind]

    def pairwise_iou(self, kind: int) -> float:
        """Mean pairwise occupancy IoU of the instances: the data's 3-D spread."""
        if kind not in self._pairwise:
            self._pairwise[kind] = pairwise_occupancy_iou(self.grids(kind))
        return self._pairwise[kind]

    def object(self, kind: int, colour: int, index: int) -> Object3D:
        """Instance ``index`` of ``kind`` as an ``Object3D`` painted ``colour``."""
        return ground_truth_object(kind, colour, self.instances(kind)[index])


# ----------------------------------------------------------------------------------
# Reference images and labels


@dataclass(frozen=True)
class Reference:
    """Labelled toy-world images that name the kind, colour and view of a render by nearest neighbour."""

    images: Tensor  # [N, 3, H, W] float32 in [-1, 1]
    kind: Tensor  # [N] int64 index into KINDS
    colour: Tensor  # [N] int64 index into COLOURS
    view: Tensor  # [N] int64 index into VIEWS

    @property
    def res(self) -> int:
        return self.images.shape[-1]

    @cached_property
    def masks(self) -> Tensor:
        """``[N, H W]`` float 0/1: the images' foreground masks (``foreground_mask``), for ``silhouette_kinds``."""
        return foreground_mask(self.images).flatten(1).float()


def as_reference(source: Any) -> Reference:
    """A ``Reference`` from a ``Reference``, a ``toyworld_data`` dict (uint8 images), a ``ToyDataset`` or an ``EmpiricalPrior``."""
    if isinstance(source, Reference):
        return source
    if isinstance(source, dict):
        images, labels = source["images"], source
    elif hasattr(source, "captions"):  # ToyDataset
        images, labels = source.images, {name: getattr(source, name) for name in LABELS}
    elif hasattr(source, "labels") and hasattr(source, "data"):  # EmpiricalPrior
        images, labels = source.data, source.labels
    else:
        raise InputError(f"a reference must be a Reference, a toyworld_data dict, a ToyDataset or an EmpiricalPrior, "
                         f"got {type(source).__name__}")
    images = images.cpu()
    images = images.float() / 127.5 - 1.0 if images.dtype == torch.uint8 else images.float()
    return Reference(images, *(labels[name].cpu().long() for name in LABELS))


def load_reference(n: int = 10_000, res: int = 32, seed: int = 0,
                   progress: Callable[[int, int], None] | None = None) -> Reference:
    """The toy-world images the default prior uses (``toyworld_data``: generated once, then cached on disk)."""
    from diffrep.priors.empirical import toyworld_data

    return as_reference(toyworld_data(n, res, seed, progress))


def nearest_labels(images: Tensor, reference: Reference) -> dict[str, Tensor]:
    """Kind, colour and view ``[V]`` of the nearest (L2) reference image of each of ``images [V, 3, H, W]``."""
    if tuple(images.shape[1:]) != tuple(reference.images.shape[1:]):
        raise InputError(f"renders of shape {tuple(images.shape[1:])} cannot be compared with reference images of "
                         f"shape {tuple(reference.images.shape[1:])}; render at the reference's resolution")
    index = nearest_data(images.detach().cpu(), reference.images)[0]
    return {name: getattr(reference, name)[index] for name in LABELS}


def silhouette_kinds(masks: Tensor, reference: Reference) -> Tensor:
    """Kind ``[V]`` of the reference image whose foreground mask overlaps each of ``masks [V, H, W]`` most (IoU):
    a shape's kind, blind to colour and shading, which the nearest image's is not (a blue lump the size of a chair
    is nearest to a blue chair's image; its silhouette is nearest to a teapot's or a car's, docs/evaluate3d.md)."""
    return reference.kind[nearest_iou(masks.flatten(1).float().cpu(), reference.masks)]


def prompt_labels(text: str) -> dict[str, int]:
    """The labels a toy-world prompt asks for, e.g. ``prompt_labels("an orange duck") == {"kind": 1, "colour": 5}``."""
    query = parse_prompt(text, KINDS, COLOURS, VIEWS)
    return {} if query is None else dict(query.items())


def label_accuracy_3d(obj: Object3D, labels: dict[str, int], reference: Reference, cameras: Tensor) -> dict[str, float]:
    """Fractions of ``cameras`` whose render's nearest reference image has the prompt's kind and colour and the camera's view.

    ``view_exact`` compares the nearest image's view label with ``view_label`` of the camera;
    ``view`` does too for fronted kinds (or no kind), but for kinds without a front only
    asks whether both are or both are not "overhead" (front, side and back look alike there)."""
    return _label_accuracy(nearest_labels(_render(obj, cameras, reference.res), reference), labels, cameras)


def _label_accuracy(found: dict[str, Tensor], labels: dict[str, int], cameras: Tensor) -> dict[str, float]:
    out = {name: _mean(found[name] == labels[name]) for name in ("kind", "colour") if name in labels}
    true_view = view_label(cameras[:, 0], cameras[:, 1])
    exact = _mean(found["view"] == true_view)
    if "kind" in labels and KINDS[labels["kind"]] not in FRONTED:
        overhead = VIEWS.index("overhead")
        out["view"] = _mean((found["view"] == overhead) == (true_view == overhead))
    else:
        out["view"] = exact
    out["view_exact"] = exact
    return out


# ----------------------------------------------------------------------------------
# Occupancy


def grid_points(res: int = 64) -> Tensor:
    """Centres ``[res^3, 3]`` of the cells of a ``res^3`` grid over ``[-1, 1]^3`` (x slowest, z fastest)."""
    c = (torch.arange(res, dtype=torch.float32) + 0.5) * (2.0 / res) - 1.0
    return torch.stack(torch.meshgrid(c, c, c, indexing="ij"), -1).reshape(-1, 3)


def occupancy_grid(obj: Object3D, res: int = 64, chunk: int = 65536) -> Tensor:
    """``obj.occupancy`` on ``grid_points(res)`` in chunks: bool ``[res^3]`` (a float occupancy is inside above 0.5)."""
    out = []
    for points in grid_points(res).split(chunk):
        occ = obj.occupancy(points).detach().cpu()
        if tuple(occ.shape) != (points.shape[0],):
            raise InputError(f"occupancy of {points.shape[0]} points must have shape [{points.shape[0]}], got {tuple(occ.shape)}")
        out.append(occ if occ.dtype == torch.bool else occ > 0.5)
    return torch.cat(out)


def occupancy_iou(grid: Tensor, grids: Tensor) -> Tensor:
    """IoU ``[M]`` of one occupancy grid ``[P]`` bool with each of ``grids [M, P]`` bool; two empty grids have IoU 1."""
    inter = (grids & grid).sum(1)
    union = (grids | grid).sum(1)
    return torch.where(union > 0, inter / union.clamp_min(1), 1.0)


def best_matching_instance(grid: Tensor, gt_grids: Tensor) -> tuple[float, int]:
    """Best occupancy IoU of ``grid [P]`` over the ground-truth ``gt_grids [M, P]``, and that instance's index.

    No rotation is searched: a generated object must face +x, as its view prompts say."""
    iou = occupancy_iou(grid, gt_grids)
    best = int(iou.argmax())
    return float(iou[best]), best


def pairwise_occupancy_iou(grids: Tensor | Sequence[Object3D], res: int = 64, chunk: int = 32768) -> float | None:
    """Mean occupancy IoU over the pairs ``i < j`` of ``grids [n, P]`` bool (or of objects' grids at ``res``); None if n < 2.

    Intersections are one float32 matrix product per chunk of points (exact: counts < 2^24)."""
    if not isinstance(grids, Tensor):
        grids = torch.stack([occupancy_grid(o, res) for o in grids]) if len(grids) else torch.zeros(0, 1, dtype=torch.bool)
    n = grids.shape[0]
    if n < 2:
        return None
    i, j = torch.triu_indices(n, n, 1)
    return float(iou_matrix(grids, chunk)[i, j].mean())


def iou_matrix(grids: Tensor, chunk: int = 32768) -> Tensor:
    """IoU ``[n, n]`` of every pair of ``grids [n, P]`` bool (1 where both are empty), one float32 matrix product per
    chunk of points: what ``pairwise_occupancy_iou`` averages, for statistics over resampled pairs."""
    n = grids.shape[0]
    inter = torch.zeros(n, n)
    for g in grids.split(chunk, dim=1):
        g = g.float()
        inter += g @ g.T
    size = grids.sum(1).float()
    union = size[:, None] + size[None, :] - inter
    return torch.where(union > 0, inter / union.clamp_min(1.0), 1.0)


def pairwise_mask_iou(masks: Tensor) -> float | None:
    """Mean over the pairs ``i < j`` of the silhouette IoU pooled over views (``mask_iou``'s) of ``masks [n, V, H, W]``
    bool; None if n < 2: the pairwise IoU of the flattened masks. The 3-D spread seen from outside: unlike
    occupancy, two thin-walled mugs whose walls miss each other by a wall's thickness have near-identical silhouettes."""
    return pairwise_occupancy_iou(masks.flatten(1))


# ----------------------------------------------------------------------------------
# Silhouettes and the Janus rate


def silhouette(obj: Object3D, cameras: Tensor, res: int, images: Tensor | None = None) -> Tensor:
    """Bool ``[V, res, res]``: ``obj.mask > 0.5``, or without a mask, render pixels off the background by > MASK_TOLERANCE."""
    if obj.mask is not None:
        return obj.mask(cameras, res).detach().cpu() > 0.5
    return foreground_mask(_render(obj, cameras, res) if images is None else images)


def foreground_mask(images: Tensor, tolerance: float = MASK_TOLERANCE) -> Tensor:
    """Bool ``[..., H, W]``: pixels of toy-world-like ``images [..., C, H, W]`` off the flat background by more
    than ``tolerance`` in some channel."""
    return (images - BACKGROUND).abs().amax(-3) > tolerance


def mask_iou(obj: Object3D, gt_obj: Object3D, cameras: Tensor, res: int) -> float:
    """Silhouette IoU pooled over all views: ``sum_v |A_v & B_v| / sum_v |A_v | B_v|`` (1 if both are empty)."""
    return _pooled_iou(silhouette(obj, cameras, res), silhouette(gt_obj, cameras, res))


def janus_rate(objects: Sequence[Object3D], reference: Reference, cameras: Tensor | None = None) -> dict[str, Any]:
    """Share of objects whose back views are labelled front: more than half of ``cameras`` (default ``back_cameras()``).

    Returns ``rate``, and per object ``front_fraction`` (its back views whose nearest
    reference image is labelled "front") and ``janus``. Meaningful for fronted kinds only."""
    cameras = back_cameras() if cameras is None else cameras
    return _janus(torch.stack([_render(o, cameras, reference.res) for o in objects]), reference)


def _janus(back_images: Tensor, reference: Reference) -> dict[str, Any]:
    """``janus_rate`` of the renders ``[n, V, 3, H, W]`` of ``n`` objects from behind."""
    views = nearest_labels(back_images.flatten(0, 1), reference)["view"].view(back_images.shape[:2])
    fractions = [_mean(v == VIEWS.index("front")) for v in views]
    janus = [f > 0.5 for f in fractions]
    return {"rate": sum(janus) / len(janus) if janus else None, "front_fraction": fractions, "janus": janus}


# ----------------------------------------------------------------------------------
# All of it


def evaluate_instances(objects: Sequence[Object3D], prompt_labels: dict[str, int] | Any, reference: Any, *,
                       res: int | None = None, seed: int = 0, config: Evaluate3DConfig | None = None,
                       ground_truth: GroundTruth | None = None,
                       callback: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Label accuracy, occupancy and mask IoU, PSNR, Janus rate and 3-D diversity of the ``n`` instances of one prompt.

    prompt_labels: ``{"kind": i, "colour": j}`` (any subset, or a ``LabelQuery``); metrics that
    need a kind (IoUs, PSNR, Janus, the ground-truth row) are None without one, PSNR also needs a
    colour. reference: anything ``as_reference`` takes; renders are made at its resolution
    (``res``, if given, must match it). seed: the held-out cameras and the data set the
    ground-truth instances come from. ground_truth: a ``GroundTruth`` to reuse between calls (its
    grid and instance count win over ``config``'s). ``callback({"stage": ...})`` reports progress.
    Returns ``{"setup", "instances": [row per object], "aggregate", "seconds"}`` (JSON-able)."""
    cfg, ref, labels = config or Evaluate3DConfig(), as_reference(reference), _check_labels(prompt_labels)
    if res is not None and res != ref.res:
        raise InputError(f"res={res} does not match the reference images' resolution {ref.res}")
    if not objects:
        raise InputError("objects is empty; give at least one Object3D to evaluate")
    start = time.perf_counter()
    gt = ground_truth or GroundTruth(cfg.instances, cfg.grid, seed)
    kind = labels.get("kind")
    cameras, back = held_out_cameras(cfg.views, seed), back_cameras(cfg.janus_views, seed)
    # Labels of the renders at held-out cameras and behind the object.
    _report(callback, "labels")
    images = torch.stack([_render(o, cameras, ref.res) for o in objects])
    back_images = torch.stack([_render(o, back, ref.res) for o in objects]) if _fronted(labels) else None
    rows = _label_rows(images, back_images, labels, ref, cameras)
    # Occupancy, then the best-matching ground-truth instance and its renders.
    _report(callback, "occupancy")
    grids = torch.stack([occupancy_grid(o, gt.grid) for o in objects])
    masks = torch.stack([silhouette(o, cameras, ref.res, image) for o, image in zip(objects, images)])  # a render each
    if kind is not None:
        for row, grid, image, mask in zip(rows, grids, images, masks):
            row.update(_shape_metrics(grid, image, mask, labels, ref, cameras, gt))
            row["labels"]["kind_silhouette"] = _round(_mean(silhouette_kinds(mask, ref) == kind))
    # Means, 3-D diversity, and the same metrics of ground-truth instances.
    _report(callback, "ground truth")
    aggregate = {**_means(rows), "pairwise_occupancy_iou": _round(pairwise_occupancy_iou(grids)),
                 "pairwise_mask_iou": _round(pairwise_mask_iou(masks)),
                 "ground_truth": None if kind is None else _baseline(labels, ref, cameras, back, gt, cfg.baseline)}
    setup = {
        "prompt": {name: dict(zip(LABELS, (KINDS, COLOURS, VIEWS)))[name][v] for name, v in labels.items()},
        **asdict(cfg), "grid": gt.grid, "instances": gt.m, "seed": seed, "res": ref.res, "reference_size": len(ref.images),
        "cameras": _round_list(cameras), "back_cameras": _round_list(back),
    }
    return {"setup": setup, "instances": rows, "aggregate": aggregate, "seconds": round(time.perf_counter() - start, 3)}


def _label_rows(images: Tensor, back_images: Tensor | None, labels: dict[str, int], ref: Reference,
                cameras: Tensor) -> list[dict[str, Any]]:
    """Rows of ``evaluate_instances`` with the label metrics of renders ``[n, V, 3, H, W]`` (and from behind) filled in."""
    found = nearest_labels(images.flatten(0, 1), ref)
    janus = None if back_images is None else _janus(back_images, ref)
    rows = []
    for i in range(images.shape[0]):
        mine = {name: v.view(images.shape[:2])[i] for name, v in found.items()}
        rows.append({"labels": {k: _round(v) for k, v in _label_accuracy(mine, labels, cameras).items()},
                     "occupancy_iou": None, "best_instance": None, "mask_iou": None, "psnr": None,
                     "back_front_fraction": None if janus is None else _round(janus["front_fraction"][i]),
                     "janus": None if janus is None else janus["janus"][i]})
    return rows


def _shape_metrics(grid: Tensor, images: Tensor, mask: Tensor, labels: dict[str, int], ref: Reference,
                   cameras: Tensor, gt: GroundTruth) -> dict[str, Any]:
    """Occupancy IoU of an object's ``grid`` with the best-matching ground-truth instance; IoU of its silhouettes
    ``mask`` and PSNR of its renders ``images`` against that instance's."""
    kind = labels["kind"]
    iou, best = best_matching_instance(grid, gt.grids(kind))
    gt_images, gt_masks = gt_render(kind, labels.get("colour", 0), gt.instances(kind)[best:best + 1], cameras, ref.res)
    out = {"occupancy_iou": _round(iou), "best_instance": best,
           "mask_iou": _round(_pooled_iou(mask, gt_masks))}
    if "colour" in labels:
        out["psnr"] = _round(_psnr(images, gt_images))
    return out


def _baseline(labels: dict[str, int], ref: Reference, cameras: Tensor, back: Tensor, gt: GroundTruth,
              count: int) -> dict[str, Any]:
    """The metrics of the first ``count`` ground-truth instances: what the labeller gives a perfect object, and the data's spread."""
    kind, m = labels["kind"], min(count, gt.m)
    colour = labels["colour"] if "colour" in labels else torch.arange(m) % len(COLOURS)
    shape = (m, -1, 3, ref.res, ref.res)
    images, masks = gt_render(kind, colour, gt.instances(kind)[:m], cameras, ref.res)
    images, masks = images.view(shape), masks.view(m, -1, ref.res, ref.res)
    back_images = gt_render(kind, colour, gt.instances(kind)[:m], back, ref.res)[0].view(shape) if _fronted(labels) else None
    means = _means(_label_rows(images, back_images, labels, ref, cameras))
    means["labels"]["kind_silhouette"] = _round(_mean(silhouette_kinds(masks.flatten(0, 1), ref) == kind))
    return {"labels": means["labels"], "back_front_fraction": means["back_front_fraction"], "janus_rate": means["janus_rate"],
            "pairwise_occupancy_iou": _round(gt.pairwise_iou(kind)), "pairwise_mask_iou": _round(pairwise_mask_iou(masks)),
            "instances": m}


def _means(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over instances of every metric of the rows (None where no row has it)."""
    out: dict[str, Any] = {"labels": {name: _round(_mean_of([r["labels"][name] for r in rows])) for name in rows[0]["labels"]}}
    for name in ("occupancy_iou", "mask_iou", "psnr", "back_front_fraction"):
        out[name] = _round(_mean_of([r[name] for r in rows]))
    out["janus_rate"] = _round(_mean_of([None if r["janus"] is None else float(r["janus"]) for r in rows]))
    return out


COLUMNS: tuple[tuple[str, str | None, str], ...] = (
    ("kind", "labels", "kind"), ("kind by shape", "labels", "kind_silhouette"), ("colour", "labels", "colour"),
    ("view", "labels", "view"),
    ("occ IoU", None, "occupancy_iou"), ("gt #", None, "best_instance"), ("mask IoU", None, "mask_iou"),
    ("PSNR", None, "psnr"), ("back=front", None, "back_front_fraction"), ("Janus", None, "janus"),
)


def format_table(results: dict[str, Any]) -> str:
    """The results of ``evaluate_instances`` as text: a row per instance, the mean, ground truth, 3-D diversity."""
    setup, mean, truth = results["setup"], results["aggregate"], results["aggregate"]["ground_truth"]
    lines = [[str(i)] + [_cell(_get(r, c)) for c in COLUMNS] for i, r in enumerate(results["instances"])]
    lines.append(["mean"] + [_cell(_get(mean, c)) for c in COLUMNS])
    if truth is not None:
        lines.append(["ground truth"] + [_cell(_get(truth, c)) for c in COLUMNS])
    header = ["#"] + [c[0] for c in COLUMNS]
    widths = [max(len(h), *(len(line[j]) for line in lines)) for j, h in enumerate(header)]
    prompt = ", ".join(f"{k}={v}" for k, v in setup["prompt"].items()) or "unconditional"
    text = [f"3-D evaluation ({prompt}; {setup['views']} held-out views, {setup['janus_views']} back views, "
            f"grid {setup['grid']}^3, {setup['reference_size']} reference images)"]
    text += ["  ".join(s.rjust(w) for s, w in zip(row, widths)) for row in [header, *lines]]
    gt_spread = "-" if truth is None else f"{_cell(truth['pairwise_occupancy_iou'])} over {setup['instances']} instances"
    text.append(f"3-D diversity, mean pairwise occupancy IoU: {_cell(mean['pairwise_occupancy_iou'])} (ground truth {gt_spread})")
    gt_masks = "-" if truth is None else f"{_cell(truth['pairwise_mask_iou'])} over {truth['instances']} instances"
    text.append(f"3-D diversity, mean pairwise silhouette IoU: {_cell(mean['pairwise_mask_iou'])} (ground truth {gt_masks})")
    return "\n".join(text)


# ----------------------------------------------------------------------------------
# Helpers


def _render(obj: Object3D, cameras: Tensor, res: int) -> Tensor:
    images = obj.render(cameras, res).detach().cpu().float()
    if tuple(images.shape) != (cameras.shape[0], 3, res, res):
        raise InputError(f"render of {cameras.shape[0]} cameras at {res}x{res} must have shape "
                         f"[{cameras.shape[0]}, 3, {res}, {res}], got {tuple(images.shape)}")
    return images


def _index(name: str, value: int | str, names: tuple[str, ...]) -> int:
    if isinstance(value, str) and value in names:
        return names.index(value)
    if isinstance(value, int) and 0 <= value < len(names):
        return value
    raise InputError(f"{name}={value!r} is not allowed; allowed: {', '.join(names)} or an index below {len(names)}")


def _check_labels(labels: dict[str, int] | Any) -> dict[str, int]:
    out = dict(labels.items())
    vocab = dict(zip(LABELS, (KINDS, COLOURS, VIEWS)))
    for name, value in out.items():
        if name not in vocab:
            raise InputError(f"unknown label {name!r}; allowed: {', '.join(LABELS)}")
        out[name] = _index(name, value, vocab[name])
    return out


def _fronted(labels: dict[str, int]) -> bool:
    return "kind" in labels and KINDS[labels["kind"]] in FRONTED


def _pooled_iou(a: Tensor, b: Tensor) -> float:
    union = int((a | b).sum())
    return float((a & b).sum()) / union if union else 1.0


def _report(callback: Callable[[dict], None] | None, stage: str) -> None:
    if callback is not None:
        callback({"stage": stage})


def _psnr(x: Tensor, y: Tensor) -> float:
    """Mean over views of ``10 log10(2^2 / MSE)`` of images in [-1, 1], capped at 100 dB (identical images)."""
    mse = (x.clamp(-1, 1) - y.clamp(-1, 1)).pow(2).flatten(1).mean(1)
    return float((10.0 * torch.log10(4.0 / mse.clamp_min(4e-10))).mean())


def _get(row: dict[str, Any], column: tuple[str, str | None, str]) -> Any:
    if column[2] == "janus" and "janus_rate" in row:  # the mean and ground-truth rows hold the rate
        return row["janus_rate"]
    return (row[column[1]] if column[1] else row).get(column[2])


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "-" if value is None else f"{value:.2f}" if isinstance(value, float) else str(value)


def _mean(x: Tensor) -> float:
    return float(x.float().mean())


def _mean_of(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def _round(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) else round(float(x), 4)


def _round_list(cameras: Tensor) -> list[list[float]]:
    return [[round(v, 3) for v in row] for row in cameras.tolist()]
