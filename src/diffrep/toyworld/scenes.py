"""360-degree toy-world scenes: objects standing on a coloured floor round a central camera.

A scene is a floor colour, a light, and 3-6 objects of distinct kinds, each at its own bearing and
distance from the camera, facing a random direction, standing on the floor (``z = 0``); the camera
sits at the origin, ``EYE_HEIGHT`` above the floor. The scene is rendered once, as a cylindrical
panorama: canvas column ``j`` of ``Wc`` looks at bearing ``360 (j + 1/2) / Wc`` degrees, measured
clockwise from ``+x`` (so the canvas reads left to right as a person turning right), and row ``i``
of ``H`` at height ``tan(elevation) = (H/2 - i - 1/2) * 2 pi / Wc`` (square pixels on the horizon).
A *view* is the ``H x H`` crop of the canvas starting at a column, with wrap-around: the panorama
rep's geometry (``Wc = 6 H``, 60-degree views), so every view is exactly a crop of its panorama. It
is a cylindrical, not a pinhole, projection; over 60 degrees the two differ by at most 10% in height.

Pixels are the mean of 2 x 2 rays. Objects are traced with the object renderer's sphere tracer and
shaded with its Lambertian shading (``renderer.render_rays``); the floor is Lambertian under the same
light, fading into the horizon colour with distance, and above the horizon a wall/sky gradient.
Every ray's direction comes from a table of the canvas's columns, so a view rendered on its own
(``render_columns``) equals the crop of the canvas bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

from .objects import COLOUR_RGB, KIND_SPECS, KINDS, N_PARAMS, sample_instance
from .renderer import (
    AMBIENT,
    DIFFUSE,
    HIT_EPS,
    _intra_op_threads,
    render_rays,
    sphere_trace,
)
from .scene_text import MAX_OBJECTS, VIEW_FOV_DEG, SceneConfig, scene_caption
from .vocabulary import COLOURS

EYE_HEIGHT: float = 0.9  # camera height above the floor
DISTANCE_RANGE: tuple[float, float] = (2.1, 3.4)  # distances of objects from the camera
SPAN_DEG: float = 50.0  # bearing range kept free for an object (its footprint circle seen from 2.1 spans up to 54)
VISIBLE_FRACTION: float = 0.3  # a view sees an object if it holds at least this share of the object's pixels
FLOOR_TINT: float = 0.6  # floor colour = FLOOR_TINT * colour + (1 - FLOOR_TINT) * grey 0.5
FOG_DISTANCE: float = 14.0  # the floor fades into the horizon colour as 1 - exp(-distance / FOG_DISTANCE)
HORIZON_RGB: tuple[float, float, float] = (0.86, 0.86, 0.84)  # wall/sky colour at the horizon, in [0, 1]
ZENITH_RGB: tuple[float, float, float] = (0.52, 0.66, 0.86)  # at the canvas's top (tan elevation 0.5 and up)
SUB: int = 2  # rays per pixel side
CHUNK_SCENES: int = 32


def sample_layouts(config: SceneConfig) -> dict[str, Tensor]:
    """The layout of every scene, all drawn up front from one generator (row ``i`` decides scene ``i``).

    Returns ``count [N]``, ``floor [N]`` (colour index), ``light [N, 3]`` (unit, towards the light) and,
    per object slot (``[N, MAX_OBJECTS]``; slots ``>= count`` are empty, kind -1): ``kind``, ``colour``,
    ``bearing`` (degrees, clockwise from +x), ``distance``, ``yaw`` (degrees: the object's front, +x of its
    frame, turned anticlockwise), ``instance [N, MAX_OBJECTS, N_PARAMS]`` and ``lift`` (its frame's height
    above the floor, so that its lowest point touches the floor).
    """
    n, per_slot = config.n, 4 + N_PARAMS
    g = torch.Generator().manual_seed(config.seed)
    u = torch.rand(n, 5 + len(KINDS) + MAX_OBJECTS * per_slot, generator=g, dtype=torch.float64)
    span = config.max_objects - config.min_objects + 1
    count = config.min_objects + (u[:, 0] * span).long().clamp_max(span - 1)
    colours = torch.tensor([COLOURS.index(c) for c in config.colours])
    floor = colours[(u[:, 1] * len(colours)).long().clamp_max(len(colours) - 1)]
    light = _light(u[:, 2], u[:, 3])
    # Distinct kinds: the allowed kinds in the order of random keys.
    allowed = torch.tensor([k in config.kinds for k in KINDS])
    order = torch.where(allowed, u[:, 5 : 5 + len(KINDS)], 2.0).argsort(1)[:, :MAX_OBJECTS]
    slots = u[:, 5 + len(KINDS) :].view(n, MAX_OBJECTS, per_slot)
    present = torch.arange(MAX_OBJECTS) < count[:, None]
    kind = torch.where(present, order, -1)
    colour = colours[(slots[..., 0] * len(colours)).long().clamp_max(len(colours) - 1)]
    bearing = spread_bearings(u[:, 4:5], slots[..., 1], count)
    lo, hi = DISTANCE_RANGE
    distance = lo + (hi - lo) * slots[..., 2]
    yaw = 360.0 * slots[..., 3]
    instance = sample_instance(kind.clamp_min(0).flatten(), slots[..., 4:].reshape(-1, N_PARAMS)).view(n, MAX_OBJECTS, N_PARAMS)
    lift = torch.zeros(n, MAX_OBJECTS)
    lift[present] = -lowest_point(kind[present], instance[present])
    return {"count": count, "floor": floor, "light": light, "kind": kind, "colour": torch.where(present, colour, -1),
            "bearing": bearing.float(), "distance": distance.float(), "yaw": yaw.float(), "instance": instance, "lift": lift}


def spread_bearings(phase: Tensor, jitter: Tensor, count: Tensor) -> Tensor:
    """Bearings ``[N, M]`` (degrees, float64) of ``M`` object slots round the camera: one sector of
    ``360 / count`` degrees per object, from a random start ``360 phase``, the object anywhere in its sector
    that leaves ``SPAN_DEG`` to the next (``jitter`` in [0, 1]). Slots ``>= count`` get bearings too (unused).

    phase: ``[N, 1]``, jitter: ``[N, M]`` uniforms; count: ``[N]``. Scenes and panorama layouts
    (``prompt_layout``) both place their objects with it."""
    sector = 360.0 / count[:, None].double()
    return (360.0 * phase + torch.arange(jitter.shape[1]) * sector + jitter * (sector - SPAN_DEG).clamp_min(0.0)) % 360.0


def prompt_layout(k: int, n: int, generator: torch.Generator) -> Tensor:
    """Where ``k`` objects of a panorama's prompt stand in each of ``n`` scenes: bearings ``[n, k]`` (degrees,
    clockwise from +x, the canvas's column bearings) spread as a scene's objects are (``spread_bearings`` with
    ``count = k``), the objects' order round the circle random. Row ``i`` is decided by the ``i``-th row of
    one draw ``[n, 1 + 2k]`` of uniforms from ``generator``."""
    u = torch.rand(n, 1 + 2 * k, generator=generator, dtype=torch.float64)
    bearing = spread_bearings(u[:, :1], u[:, 1 : 1 + k], torch.full((n,), k))
    order = u[:, 1 + k :].argsort(1)  # object order[i, j] takes sector j
    return torch.empty_like(bearing).scatter_(1, order, bearing)


def _light(u: Tensor, v: Tensor) -> Tensor:
    """Unit directions ``[N, 3]`` towards the light: elevation 35-70 degrees, any azimuth."""
    el, az = torch.deg2rad(35.0 + 35.0 * u), 2.0 * math.pi * v
    return torch.stack([el.cos() * az.cos(), el.cos() * az.sin(), el.sin()], -1).float()


def lowest_point(kind: Tensor, instance: Tensor, grid: int = 24) -> Tensor:
    """Height ``[M]`` of the lowest surface point of instances ``[M]`` in their own frame.

    Sphere traces a ``grid x grid`` bundle of upward rays from under each kind's bounding box (spacing
    below the thinnest leg's width) and keeps the lowest hit."""
    low = torch.zeros(kind.shape[0])
    s = (torch.arange(grid, dtype=torch.float32) + 0.5) / grid * 2.0 - 1.0
    gx, gy = (v.flatten() for v in torch.meshgrid(s, s, indexing="ij"))
    for k in kind.unique().tolist():
        ids = (kind == k).nonzero().flatten()
        bx, by, bz = KIND_SPECS[k].bound
        m = ids.numel() * gx.numel()
        o = torch.stack([(gx * bx).repeat(ids.numel()), (gy * by).repeat(ids.numel()), torch.full((m,), -bz - 0.05)])
        d = torch.stack([torch.zeros(m), torch.zeros(m), torch.ones(m)])
        q = instance[ids].repeat_interleave(gx.numel(), 0).T.contiguous()
        t = sphere_trace(k, o, d, q, 1e-3).view(ids.numel(), -1).amin(1)
        low[ids] = -bz - 0.05 + t
    return low


def canvas_directions(res: int) -> Tensor:
    """Unit ray directions ``[3, SUB * H, Wc, SUB]`` (world) of every sub-pixel ray of the canvas."""
    H, Wc = res, round(res * 360 / VIEW_FOV_DEG)
    col = (torch.arange(Wc * SUB, dtype=torch.float64) + 0.5) / SUB  # sub-column centres, in columns
    row = (torch.arange(H * SUB, dtype=torch.float64) + 0.5) / SUB
    beta = 2.0 * math.pi * col / Wc
    y = (H / 2.0 - row) * (2.0 * math.pi / Wc)  # tan(elevation)
    d = torch.stack(torch.broadcast_tensors(beta.cos()[None], -beta.sin()[None], y[:, None]))  # [3, SH, S Wc]
    d = d / d.norm(dim=0, keepdim=True)
    return d.float().view(3, H * SUB, Wc, SUB)


def floor_and_sky(d: Tensor, floor_rgb: Tensor, light: Tensor) -> Tensor:
    """Colour ``[3, M]`` in [0, 1] of rays ``d [3, M]`` that hit no object: floor below the horizon, sky above.

    floor_rgb, light: ``[3, M]`` per ray."""
    horizon = torch.tensor(HORIZON_RGB)[:, None]
    t = EYE_HEIGHT / (-d[2]).clamp_min(1e-6)  # distance to the floor
    fog = 1.0 - torch.exp(-t / FOG_DISTANCE)
    floor = floor_rgb * (AMBIENT + DIFFUSE * light[2].clamp_min(0.0))
    floor = (1.0 - fog) * floor.clamp_max(1.0) + fog * horizon
    up = (d[2] / 0.45).clamp(0.0, 1.0)
    sky = (1.0 - up) * horizon + up * torch.tensor(ZENITH_RGB)[:, None]
    return torch.where(d[2] < 0.0, floor, sky)


def render_columns(layout: dict[str, Tensor], res: int, columns: Tensor, *,
                   progress: Callable[[int, int], None] | None = None, threads: int | None = 1) -> tuple[Tensor, Tensor]:
    """Canvas columns ``columns [M]`` (any integers, taken modulo ``Wc``) of the scenes of ``layout``.

    Returns images ``[N, 3, res, M]`` in [-1, 1] and coverage ``[N, MAX_OBJECTS, M]``: the pixels of each
    object slot in each column (a pixel counts the share of its 2 x 2 rays that hit the object).
    ``render_columns(layout, res, torch.arange(Wc))`` is the whole canvas; a column's pixels do not
    depend on which other columns are rendered with it."""
    dirs = canvas_directions(res)
    cols = torch.remainder(columns.long(), dirs.shape[2])
    n = layout["kind"].shape[0]
    images, coverage = torch.empty(n, 3, res, cols.numel()), torch.empty(n, MAX_OBJECTS, cols.numel())
    with _intra_op_threads(threads):
        for start in range(0, n, CHUNK_SCENES):
            rows = slice(start, start + CHUNK_SCENES)
            images[rows], coverage[rows] = _render_chunk({k: v[rows] for k, v in layout.items()}, dirs, cols)
            if progress is not None:
                progress(min(n, start + CHUNK_SCENES), n)
    return images, coverage


def _render_chunk(layout: dict[str, Tensor], dirs: Tensor, cols: Tensor) -> tuple[Tensor, Tensor]:
    """``render_columns`` for a few scenes: background, then each kind's objects traced in front of it."""
    B, SH, Wc, M = layout["kind"].shape[0], dirs.shape[1], dirs.shape[2], cols.numel()
    R = SH * M * SUB  # rays per scene, index (row * M + column) * SUB + sub-column
    d = dirs[:, :, cols, :].reshape(3, R)
    # Floor and sky; the floor's distance is the depth objects must beat (parts below the floor are hidden).
    floor_rgb = FLOOR_TINT * torch.tensor(COLOUR_RGB)[layout["floor"]] + (1.0 - FLOOR_TINT) * 0.5
    per_ray = lambda v: v.repeat_interleave(R, 0).T
    d_all = d.repeat(1, B)
    rgb = floor_and_sky(d_all, per_ray(floor_rgb), per_ray(layout["light"]))
    depth = torch.where(d_all[2] < 0.0, EYE_HEIGHT / (-d_all[2]).clamp_min(1e-6), math.inf)
    owner = torch.full((B * R,), -1, dtype=torch.long)
    col_bearing = 360.0 * (cols.double() + 0.5) / Wc
    eps = HIT_EPS * sum(DISTANCE_RANGE) / 2.0 * 2.0 * math.pi / Wc
    for k in sorted(set(layout["kind"].flatten().tolist()) - {-1}):
        b, s = (layout["kind"] == k).nonzero().T
        obj = {key: v[b, s] for key, v in layout.items() if v.ndim >= 2 and key != "light"}
        g, a, d_obj = _object_rays(k, obj, layout["light"][b], b, d, col_bearing, SH, R, Wc)
        colour, _, t = render_rays(k, a, d_obj, eps)
        hit = (t < depth[g]).nonzero().flatten()
        g_hit = g[hit]
        depth[g_hit], rgb[:, g_hit] = t[hit], colour[:, hit]
        owner[g_hit] = s[a[3].long()[hit]]  # a[3] carries the object's row in (b, s)
    # Mean of the 2 x 2 rays of each pixel, as explicit sums (the same at any M).
    x = rgb.view(3, B, SH // SUB, SUB, M, SUB)
    image = (x[:, :, :, 0, :, 0] + x[:, :, :, 0, :, 1] + x[:, :, :, 1, :, 0] + x[:, :, :, 1, :, 1]) * 0.25
    hits = torch.nn.functional.one_hot(owner + 1, MAX_OBJECTS + 1)[:, 1:].float().view(B, SH, M, SUB, MAX_OBJECTS)
    cover = hits.sum((1, 3)).transpose(1, 2) / (SUB * SUB)
    return (image.transpose(0, 1) * 2.0 - 1.0).clamp(-1.0, 1.0), cover


def _object_rays(kind: int, obj: dict[str, Tensor], light: Tensor, scene: Tensor, d: Tensor, col_bearing: Tensor,
                 SH: int, R: int, Wc: int) -> tuple[Tensor, Tensor, Tensor]:
    """The rays near ``P`` objects of one kind, in each object's frame: global ray indices ``[Q]``, the
    renderer's per-ray attributes ``[18 + N_PARAMS, Q]`` (row 3: the object's index) and directions ``[3, Q]``."""
    bx, by, _ = KIND_SPECS[kind].bound
    M = col_bearing.numel()
    # The columns within the object's footprint circle, and a column and a half more.
    half = torch.rad2deg(torch.asin((math.hypot(bx, by) / obj["distance"].double()).clamp_max(1.0))) + 540.0 / Wc
    offset = torch.remainder(col_bearing[None] - obj["bearing"].double()[:, None] + 180.0, 360.0) - 180.0
    p, m = (offset.abs() <= half[:, None]).nonzero().T  # (object, column) pairs
    rows, subs = torch.arange(SH), torch.arange(SUB)
    ray = ((rows[None, :, None] * M + m[:, None, None]) * SUB + subs[None, None, :]).flatten()  # within a scene
    p = p.repeat_interleave(SH * SUB)
    g = scene[p] * R + ray
    # Into each object's frame: translate by its position, turn by -yaw (elementwise, so batch independent).
    yaw = torch.deg2rad(obj["yaw"])
    c, s = yaw.cos(), yaw.sin()
    beta = torch.deg2rad(obj["bearing"])
    ex, ey, ez = -obj["distance"] * beta.cos(), obj["distance"] * beta.sin(), EYE_HEIGHT - obj["lift"]
    turn = lambda x, y: (c * x + s * y, c * y - s * x)
    eye = torch.stack([*turn(ex, ey), ez])  # [3, P]
    lx, ly = turn(light[:, 0], light[:, 1])
    frames = torch.cat([eye, torch.arange(len(yaw))[None].float(), torch.zeros(8, len(yaw))])
    attributes = torch.cat([frames, torch.tensor(COLOUR_RGB)[obj["colour"]].T, torch.stack([lx, ly, light[:, 2]]),
                            obj["instance"].T])[:, p]
    dw = d[:, ray]
    cp, sp = c[p], s[p]
    d_obj = torch.stack([cp * dw[0] + sp * dw[1], cp * dw[1] - sp * dw[0], dw[2]])
    return g, attributes.contiguous(), d_obj


@dataclass
class SceneSet:
    """Rendered scenes: their panoramas, the pixels of each object per canvas column, and their layouts."""

    panoramas: Tensor  # [N, 3, H, Wc] float32 in [-1, 1]
    coverage: Tensor  # [N, MAX_OBJECTS, Wc] pixels of each object slot per canvas column
    layout: dict[str, Tensor]  # see sample_layouts
    config: SceneConfig

    def __len__(self) -> int:
        return self.panoramas.shape[0]

    def views(self, columns: Tensor) -> Tensor:
        """Views ``[N, k, 3, H, H]``: the crops of every panorama starting at columns ``[N, k]`` (int)."""
        return crop_views(self.panoramas, columns, self.config.res)

    def visible(self, columns: Tensor) -> Tensor:
        """Which object slots the views starting at ``columns [N, k]`` see -> bool ``[N, k, MAX_OBJECTS]``."""
        return visible_objects(self.coverage, columns, self.config.res)

    def caption(self, i: int, column: int) -> str:
        """Caption of scene ``i``'s view starting at ``column``, its objects from left to right."""
        return scene_caption([(int(self.layout["kind"][i, s]), int(self.layout["colour"][i, s]))
                              for s in view_objects(self, i, column)], int(self.layout["floor"][i]))

    def scene_metadata(self, i: int) -> dict:
        """The JSON-ready layout of scene ``i``."""
        L = self.layout
        objects = [{"slot": s, "kind": KINDS[int(L["kind"][i, s])], "colour": COLOURS[int(L["colour"][i, s])],
                    "bearing": float(L["bearing"][i, s]), "distance": float(L["distance"][i, s]), "yaw": float(L["yaw"][i, s]),
                    "lift": float(L["lift"][i, s]),
                    "instance": {p.name: v for p, v in zip(KIND_SPECS[int(L["kind"][i, s])].params, L["instance"][i, s].tolist())}}
                   for s in range(int(L["count"][i]))]
        return {"file": f"panorama-{i:05d}.png", "floor": COLOURS[int(L["floor"][i])], "light": L["light"][i].tolist(),
                "objects": objects}


def crop_views(canvas: Tensor, columns: Tensor, width: int) -> Tensor:
    """``width``-column crops of ``canvas [N, C, H, Wc]`` starting at integer ``columns [N, k]``, wrapping
    round the seam -> ``[N, k, C, H, width]`` (``diffrep.reps.panorama.crop``'s indexing)."""
    Wc = canvas.shape[-1]
    cols = torch.remainder(columns.long()[..., None] + torch.arange(width), Wc)  # [N, k, W]
    picked = canvas.permute(0, 3, 1, 2)[torch.arange(canvas.shape[0])[:, None, None], cols]  # [N, k, W, C, H]
    return picked.permute(0, 1, 3, 4, 2)


def visible_objects(coverage: Tensor, columns: Tensor, width: int) -> Tensor:
    """bool ``[N, k, MAX_OBJECTS]``: a view sees an object if it holds ``VISIBLE_FRACTION`` of its pixels."""
    Wc = coverage.shape[-1]
    cols = torch.remainder(columns.long()[..., None] + torch.arange(width), Wc)  # [N, k, W]
    inside = torch.zeros(*columns.shape, Wc).scatter_(-1, cols, 1.0)  # [N, k, Wc]
    seen = torch.einsum("nkw,nsw->nks", inside, coverage)
    total = coverage.sum(-1)[:, None, :]
    return (seen >= VISIBLE_FRACTION * total) & (total > 0)


def view_objects(ds: SceneSet, i: int, column: int) -> list[int]:
    """The slots scene ``i``'s view at ``column`` sees, from left to right (by bearing from the view's centre)."""
    seen = visible_objects(ds.coverage[i : i + 1], torch.tensor([[column]]), ds.config.res)[0, 0]
    Wc = ds.coverage.shape[-1]
    centre = 360.0 * (column + ds.config.res / 2.0) / Wc
    offset = lambda s: (float(ds.layout["bearing"][i, s]) - centre + 180.0) % 360.0
    return sorted(seen.nonzero().flatten().tolist(), key=offset)


def view_column(bearing: float, res: int) -> int:
    """The start column of the view centred nearest ``bearing`` (degrees, clockwise from +x)."""
    Wc = round(res * 360 / VIEW_FOV_DEG)
    return round(bearing / 360.0 * Wc - res / 2.0) % Wc


def generate_scenes(config: SceneConfig, *, progress: Callable[[int, int], None] | None = None) -> SceneSet:
    """Sample and render ``config.n`` scenes; ``progress(done, total)`` after each chunk of scenes.

    Example: ``ds = generate_scenes(SceneConfig(n=4)); ds.panoramas.shape == (4, 3, 32, 192)``;
    ``ds.views(torch.tensor([[0, 100]] * 4))`` are two views of each, ``ds.caption(0, 100)`` one's caption."""
    layout = sample_layouts(config)
    Wc = config.canvas_shape[2]
    panoramas, coverage = render_columns(layout, config.res, torch.arange(Wc), progress=progress)
    return SceneSet(panoramas, coverage, layout, config)


def write_scenes(ds: SceneSet, out_dir: Path | str, *, overwrite: bool = False, view_stride: int | None = None) -> None:
    """Write ``ds`` as ``panorama-00000.png, ...`` and ``scenes.json`` into ``out_dir`` (atomically, as
    ``dataset.write_dataset``). scenes.json holds the config, the canvas geometry, every scene's layout and
    its views every ``view_stride`` columns (default: half a view) with their captions and objects."""
    from PIL import Image

    from diffrep.export import write_folder

    from .dataset import _to_uint8

    res, Wc = ds.config.res, ds.config.canvas_shape[2]
    stride = view_stride or res // 2
    scenes = []
    for i in range(len(ds)):
        row = ds.scene_metadata(i)
        row["views"] = [{"column": j, "bearing": 360.0 * (j + res / 2) / Wc, "caption": ds.caption(i, j),
                         "objects": view_objects(ds, i, j)} for j in range(0, Wc, stride)]
        scenes.append(row)
    files: dict[str, object] = {f"panorama-{i:05d}.png": Image.fromarray(p) for i, p in enumerate(_to_uint8(ds.panoramas).numpy())}
    files["scenes.json"] = {
        "config": asdict(ds.config),
        "canvas": {"shape": list(ds.config.canvas_shape), "view_fov_deg": VIEW_FOV_DEG, "eye_height": EYE_HEIGHT,
                   "column_bearing": "360 * (j + 0.5) / Wc degrees, clockwise from +x",
                   "row_height": "tan(elevation) = (H/2 - i - 0.5) * 2 pi / Wc",
                   "view": "columns j .. j + H - 1 (mod Wc) of the canvas"},
        "scenes": scenes,
    }
    write_folder(out_dir, files, overwrite)
