"""The NeRF diffrep (design §6): ``n`` radiance fields (dense voxel grid or hash grid), volume
rendered from cameras on a sphere looking at the origin, shaded as the toy world shades.

Views are rows of ``[n, k, 5]``: the index of a camera of the fixed **bank** (DDRep keeps one noise
state per bank camera, design §5), the light direction, and the shading mode (0 albedo,
1 Lambertian, 2 textureless; DreamFusion's three). Lambertian shading is the toy world's own,
``albedo · (AMBIENT + DIFFUSE · max(0, n·l))`` clipped at 1, over its background, with the light
drawn as the toy world draws it (from the camera's side), so rendered views lie in the prior's
distribution. Shading is applied to the accumulated albedo and normal of each ray (deferred).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import torch
from torch import Tensor, nn

from diffrep.cameras import VIEWS, camera_bank, camera_rays, view_label
from diffrep.errors import InputError
from diffrep.reps.base import Diffrep
from diffrep.reps.configs import NerfConfig
from diffrep.reps.fields import HashField, VoxelField
from diffrep.reps.volume import render_rays

SHADINGS: tuple[str, ...] = ("albedo", "lambertian", "textureless")  # codes 0, 1, 2 of a view's last column
GEOMETRY_ROWS: tuple[str, ...] = ("colour", "albedo", "textureless", "normals", "depth", "opacity")  # geometry-i.png
AMBIENT, DIFFUSE = 0.3, 0.75  # the toy world's light (toyworld/renderer.py)
BACKGROUND = 0.8  # the toy world's background, 0.6 in [-1, 1], as a colour in [0, 1]
# Where a NeRF is "solid" (its occupancy and its mesh): the density at which a slab 0.2 units thick (the
# thinnest parts of toy-world objects: mug walls, chair legs) is half opaque. DDRep's NeRFs are only as
# dense as their renders need (peaks of ~10 on the toy world), far below the meshing convention of
# stable-dreamfusion (25), whose density regularisers make surfaces solid; docs/nerf.md shows how the
# occupancy IoU depends on this choice.
SURFACE_DENSITY = math.log(2) / 0.2


class NerfRep(Diffrep):
    """``n`` NeRFs. Views ``[n, k, 5]``: (bank camera index, light direction xyz, shading code).

    >>> rep = NerfRep((3, 16, 16), n=2, generator=torch.Generator().manual_seed(0))
    >>> rep(rep.random_views(3, torch.Generator().manual_seed(1))).shape
    torch.Size([2, 3, 3, 16, 16])
    """

    renders_pixels = True  # forward and regularised take ``pixels``: the rays of a subset of each view's pixels

    def __init__(self, image_shape: tuple[int, int, int], n: int, config: NerfConfig | None = None, *,
                 generator: torch.Generator):
        super().__init__(image_shape, n)
        if self.image_shape[1] != self.image_shape[2]:
            raise InputError(f"image_shape={tuple(image_shape)} is not allowed for rep 'nerf': its cameras render square views")
        self.config = config = NerfConfig() if config is None else config
        blob = {"blob_density": config.blob_density, "blob_radius": config.blob_radius, "bound": 1.0}
        if config.grid == "voxel":
            self.field = VoxelField(n, config.resolution, generator=generator, scale=config.param_scale, **blob)
        else:
            self.field = HashField(n, levels=config.levels, features=2, log2_table=config.log2_table, base_res=16 if
                                   config.resolution > 16 else 4, max_res=config.resolution, hidden=config.hidden,
                                   generator=generator, **blob)
        if config.background == "learned":  # drawn after the field: a fixed-background rep's draws are unchanged
            self.background_mlp = DirectionBackground(n, generator=generator)
        self._held_occupancy: Tensor | None = None  # the occupancy grid held through a solve (``solving``)
        bank = camera_bank(config.bank, (config.elevation_min, config.elevation_max), config.distance)
        self.register_buffer("bank", bank)  # [V, 3] azimuth, elevation, distance

    # --- the fields ---

    def density(self, points: Tensor) -> Tensor:
        """Density ``σ >= 0`` at world points ``[n, P, 3]`` -> ``[n, P]``."""
        return self.field(points)[0]

    def albedo(self, points: Tensor) -> Tensor:
        """Albedo in [0, 1] at world points ``[n, P, 3]`` -> ``[n, P, 3]``."""
        return self.field(points)[1]

    # --- rendering ---

    def render_cameras(self, cameras: Tensor, light: Tensor | None = None, shading: Tensor | None = None,
                       res: int | None = None, outputs: bool = False, pixels: Tensor | None = None,
                       background: str | None = None) -> Tensor | dict[str, Tensor]:
        """Render ``cameras [n, V, 3]`` (azimuth, elevation, distance) -> ``[n, V, 3, H, W]`` in [-1, 1].

        ``light [n, V, 3]``: directions towards the light (default: the camera's eye direction tilted
        up, as the toy world's mean light); ``shading [n, V]`` codes (default: Lambertian);
        ``outputs``: a dict with ``rgb``, ``opacity [n, V, H, W]``, ``depth``, ``albedo``, ``normals``,
        ``orientation [n, V, H, W]`` and the samples' ``weights [n, V, H, W, S]``. ``pixels [P]``: render only
        the rays of these flat pixel indices (row-major) of every view; each ``H, W`` above is then one ``P``.
        ``background``: ``"fixed"`` renders over the toy world's grey whatever the config's (the evaluation's)."""
        n, V = cameras.shape[:2]
        H = res or self.image_shape[1]
        o, d = camera_rays(cameras.reshape(n * V, 3).float().cpu(), H, self.config.fov)
        o, d = o.flatten(1, 2), d.flatten(1, 2)  # [n V, H W, 3]
        if pixels is not None:
            o, d = o[:, pixels.cpu()], d[:, pixels.cpu()]
        plane = (H, H) if pixels is None else (len(pixels),)
        P = o.shape[1]
        o, d = o.to(self.bank.device).reshape(n, V * P, 3), d.to(self.bank.device).reshape(n, V * P, 3)
        c = self.config
        occupancy = self._held_occupancy if self._held_occupancy is not None else self.occupancy()
        out = render_rays(self.field, o, d, samples=c.samples, bound=1.0, background=0.0, normals=True,
                          normals_grad=c.normals_grad, normal_eps=c.normal_eps or None,
                          normal_weight_min=c.normal_weight_min, occupancy=occupancy)
        light = default_light(cameras) if light is None else light
        shading = torch.ones(n, V, device=o.device) if shading is None else shading
        behind = (self.background_mlp(d).view(n, V, P, 3) if (background or c.background) == "learned"
                  else BACKGROUND)
        rgb = shade(out["rgb"].view(n, V, P, 3), out["normals"].view(n, V, P, 3),
                    out["opacity"].view(n, V, P, 1), light.to(o.device), shading.to(o.device), behind)
        image = channels_first(rgb * 2 - 1, plane)
        if not outputs:
            return image
        planes = {k: out[k].view(n, V, *plane, *out[k].shape[2:]) for k in ("opacity", "depth", "orientation", "weights")}
        return {"rgb": image, **planes, "albedo": channels_first(out["rgb"].view(n, V, P, 3), plane),
                "normals": channels_first(out["normals"].view(n, V, P, 3), plane)}

    def occupancy(self) -> Tensor | None:
        """The occupancy grid of the skipping (``NerfConfig.skip_density``; ``None`` when off), ``[n, G, G, G]``."""
        c = self.config
        if c.skip_density <= 0:
            return None
        return self.field.occupancy_grid(c.resolution - (c.grid == "voxel"), c.skip_density)  # voxel: cells between vertices

    @contextmanager
    def solving(self) -> Iterator[None]:
        """One occupancy grid, computed on entry, for every render of a pullback solve (nerfacc, too, refreshes its
        grid every few iterations, not each one): out of the scope each render computes its own. A solve's
        Adam iterations move the density little, and a cell can still grow into its neighbours (the grid is
        dilated by one cell); a DDRep NeRF run computed the grid 2,052 times, ~18 % of its time (docs/nerf.md)."""
        self._held_occupancy = self.occupancy()
        try:
            yield
        finally:
            self._held_occupancy = None

    def regularised(self, views: Tensor | None = None, pixels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Renders ``[n, k, C, H, W]`` and the regularisers of the config on them, ``[n, k]``: each view's sum
        over its rays (the scale of a view's squared error) of the weighted entropy, orientation and
        emptiness terms, plus its weighted centre-depth term and the field's weighted total variation, each times
        its number of rays. ``pixels [P]``: the rays of these pixels only (renders ``[n, k, C, P]``; every term
        over those rays)."""
        c = self.config
        if self._held_occupancy is None and c.tv_weight and c.skip_density > 0:
            with self.solving():  # one occupancy grid for the render and the total variation
                return self.regularised(views, pixels)
        if not (c.entropy_weight or c.orientation_weight or c.emptiness_weight or c.centre_depth_weight):
            x = self(views, pixels)
            return x, self._total_variation(x)
        out = self.render_cameras(*self._view_cameras(views), outputs=True, pixels=pixels)
        per_ray = c.orientation_weight * out["orientation"]
        if c.entropy_weight:
            o = out["opacity"].clamp(1e-5, 1 - 1e-5)
            per_ray = per_ray - c.entropy_weight * (o * o.log() + (1 - o) * (1 - o).log())
        if c.emptiness_weight:
            per_ray = per_ray + c.emptiness_weight * torch.log1p(c.emptiness_scale * out["weights"]).mean(-1)
        penalty = per_ray.flatten(2).sum(-1)
        if c.centre_depth_weight:
            depth = out["depth"].flatten(2)  # [n, k, rays]
            inner = centre_pixels(self.image_shape[1], pixels)
            penalty = penalty + c.centre_depth_weight * depth.shape[-1] * centre_depth_loss(depth, inner=inner)
        return out["rgb"], penalty + self._total_variation(out["rgb"])

    def _total_variation(self, x: Tensor) -> Tensor:
        """``[n, k]``: ``tv_weight`` times the field's total variation times the rays of each of the renders ``x``
        ``[n, k, C, ...]`` (zeros when the weight is 0), over the cells the renders' occupancy grid keeps (all
        without skipping): what a render skips no view sees, and the hash field is looked up at fewer vertices."""
        if not self.config.tv_weight:
            return x.new_zeros(x.shape[:2])
        tv = self.config.tv_weight * self.field.total_variation(self.config.resolution, occupancy=self._held_occupancy)
        return (tv * x[0, 0, 0].numel())[:, None].expand(x.shape[:2])

    def _view_cameras(self, views: Tensor | None) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """The cameras, lights and shading codes of ``views`` (``None``: bank camera 0, the toy world's mean light)."""
        if views is None:
            return self.bank[:1].expand(self.n, 1, 3), None, None
        return self.bank[views[..., 0].long()], views[..., 1:4], views[..., 4]

    def forward(self, views: Tensor | None = None, pixels: Tensor | None = None) -> Tensor:
        """Render views ``[n, k, 5]`` -> ``[n, k, C, H, W]``; ``None``: bank camera 0 (the front), lit as the toy world's mean light.
        ``pixels [P]``: only the rays of these flat pixel indices, ``[n, k, C, P]`` (the pullback's ray batches)."""
        return self.render_cameras(*self._view_cameras(views), pixels=pixels)

    # --- the view/noise contract ---

    def random_views(self, k: int, generator: torch.Generator, progress: float = 0.0) -> Tensor:
        """``k`` bank cameras per instance, stratified (evenly spaced through the bank, which is ordered by
        azimuth, with a random phase), each with a light drawn as the toy world draws it and a shading
        (albedo while ``progress < albedo_warmup``)."""
        from diffrep.toyworld.cameras import sample_light

        V = self.config.bank
        phase = torch.randint(0, V, (self.n, 1), generator=generator, device=generator.device)
        index = (phase + torch.div(torch.arange(k, device=generator.device) * V, k, rounding_mode="floor")) % V
        u = torch.rand(self.n * k, 2, generator=generator, device=generator.device, dtype=torch.float64)
        light = sample_light(self.bank.cpu()[index.flatten().cpu()], u.cpu()).view(self.n, k, 3)
        if self.config.shading == "random":
            code = torch.randint(0, 3, (self.n, k), generator=generator, device=generator.device).float()
        else:
            code = torch.full((self.n, k), float(SHADINGS.index(self.config.shading)))
        if progress < self.config.albedo_warmup:  # DreamFusion's warm-up: colour first, then shape by shading
            code = torch.zeros_like(code)
        views = torch.cat([index.float()[..., None].cpu(), light, code.cpu()[..., None]], -1)
        return views.to(self.bank.device)

    @property
    def noise_shape(self) -> tuple[int, ...]:
        """One noise state per bank camera, ``(n, V, C, H, W)``; with ``shared_noise > 0`` one more, shared by all
        views, first: ``(n, 1 + V, C, H, W)``."""
        return (self.n, self.config.bank + (self.config.shared_noise > 0), *self.image_shape)

    def view_noise(self, noise: Tensor, views: Tensor | None) -> Tensor:
        """The noise of the views' bank cameras, ``[n, k, C, H, W]``: their states, mixed with the shared one."""
        index = torch.zeros(self.n, 1, dtype=torch.long) if views is None else views[..., 0].long()
        return bank_view_noise(noise, index.to(noise.device), self.config.shared_noise)

    def view_labels(self, views: Tensor | None) -> list[list[str]] | None:
        """front / side / back / overhead of each view's camera, with the toy world's thresholds."""
        if not self.config.view_prompts:
            return None
        index = torch.zeros(self.n, 1, dtype=torch.long) if views is None else views[..., 0].long().cpu()
        cams = self.bank.cpu()[index]
        labels = view_label(cams[..., 0], cams[..., 1], **view_thresholds(self.config))
        return [[VIEWS[i] for i in row] for row in labels.tolist()]

    def view_cameras(self, views: Tensor | None) -> Tensor:
        """The bank camera of each view, ``[n, k, 3]`` (azimuth, elevation, distance)."""
        return self._view_cameras(views)[0]

    def preview_cameras(self) -> Tensor:
        """The cameras of ``preview``, ``views.png`` and ``geometry``, ``[n, 8, 3]``: round the object at elevation 15°, front first."""
        from diffrep.export3d import turntable_cameras

        return turntable_cameras(8, 15.0, self.config.distance).to(self.bank.device).expand(self.n, 8, 3)

    @torch.no_grad()
    def preview(self) -> tuple[Tensor, Tensor]:
        """Eight views round the object at elevation 15° (front first): a strip ``[n, C, H, 8W]`` and the views."""
        views = self.render_cameras(self.preview_cameras())
        return torch.cat(views.unbind(1), -1), views

    @torch.no_grad()
    def geometry(self, res: int | None = None) -> Tensor:
        """What a NeRF's views are made of, at the eight cameras of ``preview`` and ``res`` pixels a side (default:
        the views'): ``[n, len(GEOMETRY_ROWS), 8, 3, res, res]`` in [-1, 1], a row per ``GEOMETRY_ROWS`` entry — the
        shaded colour (as ``preview``), the albedo, the textureless shading (white, lit by the views' light), the
        world-space normals as ``(n + 1) / 2`` (x red, y green, z blue; over the background grey), the depth (near
        bright, each instance's own range; background black) and the opacity (background black)."""
        cameras = self.preview_cameras()
        out = self.render_cameras(cameras, res=res, outputs=True)
        opacity = out["opacity"][:, :, None]  # [n, 8, 1, H, W]
        flat = lambda x: x.flatten(3).transpose(2, 3)  # noqa: E731  [n, 8, C, H, W] -> [n, 8, HW, C], as shade takes
        textureless = shade(flat(out["albedo"]), flat(out["normals"]), flat(opacity), default_light(cameras),
                            torch.full(cameras.shape[:2], 2.0, device=opacity.device))
        unit = out["normals"] / out["normals"].norm(dim=2, keepdim=True).clamp_min(1e-6)
        normals = opacity * (unit + 1) / 2 + (1 - opacity) * BACKGROUND
        rows = [(out["rgb"] + 1) / 2, out["albedo"] + (1 - opacity) * BACKGROUND,
                textureless.transpose(2, 3).reshape(out["albedo"].shape), normals,
                depth_image(out["depth"], out["opacity"]).expand_as(normals), opacity.expand_as(normals)]
        return torch.stack(rows, 1).clamp(0, 1) * 2 - 1


def depth_image(depth: Tensor, opacity: Tensor) -> Tensor:
    """Rendered ``depth [n, V, H, W]`` (weighted, background 0) as grey ``[n, V, 1, H, W]``: where the ``opacity`` exceeds
    1/2, the surface's distance ``depth / opacity`` mapped from each instance's farthest (0.2) to its nearest (1);
    elsewhere 0."""
    solid = opacity > 0.5
    surface = depth / opacity.clamp_min(1e-6)
    near = surface.where(solid, torch.inf).flatten(1).amin(1).view(-1, 1, 1, 1)
    far = surface.where(solid, -torch.inf).flatten(1).amax(1).view(-1, 1, 1, 1)
    grey = 0.2 + 0.8 * (far - surface) / (far - near).clamp_min(1e-6)
    return grey.where(solid, 0.0)[:, :, None]


def bank_view_noise(noise: Tensor, index: Tensor, rho: float) -> Tensor:
    """The noise of views ``index [n, k]`` of a bank whose states are ``noise [n, V, ...]`` (``rho = 0``) or
    ``[n, 1 + V, ...]``, the shared state first: ``sqrt(rho) e_shared + sqrt(1 - rho) e_own``, ``[n, k, ...]``.

    Each view's noise is standard normal and two views' correlate by ``rho``. Why share: DDRep's least squares
    averages the views' steps, so with independent states (``rho = 0``) whatever all ``V`` views see moves with the
    mean of ``V`` noises, whose variance is ``1/V``: on a closed-form Gaussian over images that every view renders,
    the samples' variance is ~``1/V`` of the prior's (docs/nerf.md; ``tests/test_nerf.py``)."""
    rows = torch.arange(noise.shape[0], device=noise.device)[:, None]
    if rho == 0:
        return noise[rows, index]
    return math.sqrt(rho) * noise[:, :1] + math.sqrt(1 - rho) * noise[rows, index + 1]


def bank_labels(config: NerfConfig) -> tuple[str, ...]:
    """The view labels of the bank's cameras (the view prompts a run needs), none without view prompts."""
    if not config.view_prompts:
        return ()
    bank = camera_bank(config.bank, (config.elevation_min, config.elevation_max), config.distance)
    return tuple(VIEWS[i] for i in sorted(set(view_label(bank[:, 0], bank[:, 1], **view_thresholds(config)).tolist())))


def memory_probe(config: NerfConfig, views: int) -> tuple[NerfConfig, int, float]:
    """A render no bigger than the defaults' (48 samples a ray, 6 views) whose saved activations, times the factor,
    stand for those of ``views`` views of a NeRF of ``config``: they grow in proportion to both (scaled from 48 to
    512 samples 5 % over the voxel grid's own count, equal to the hash grid's; views: ``tests/test_nerf.py``), so
    the memory estimate need not make the render it is to refuse."""
    samples, probe_views = min(config.samples, NerfConfig.samples), min(views, 6)
    return replace(config, samples=samples), probe_views, (config.samples / samples) * (views / probe_views)


def view_thresholds(config: NerfConfig) -> dict[str, float]:
    """The config's view-label thresholds, as ``cameras.view_label`` takes them."""
    return {"front_deg": config.front_deg, "back_deg": config.back_deg, "overhead_deg": config.overhead_deg}


def centre_depth_loss(depth: Tensor, centre: float = 50 / 64, inner: Tensor | None = None) -> Tensor:
    """SJC's centre-depth loss of renders' ``depth [n, V, H, W]`` (background 0): ``-log(d_c - d_b)`` with
    ``d_c`` the mean depth of the central square (``centre`` of the side; SJC: 50 of 64 pixels) and ``d_b``
    that of the border, ``[n, V]``; the difference is floored at 1e-4 (SJC's 1e-12 lets the log fail).
    ``inner [P]`` (bool, ``centre_pixels``) with ``depth [n, V, P]``: the depth of some pixels, and which are central."""
    if inner is None:
        depth, inner = depth.flatten(-2), centre_pixels(depth.shape[-1], centre=centre)
    inner = inner.to(depth.device, depth.dtype)
    d_c = (depth * inner).sum(-1) / inner.sum().clamp_min(1)  # a subset without central pixels: 0
    d_b = (depth * (1 - inner)).sum(-1) / (1 - inner).sum().clamp_min(1)
    return -torch.log((d_c - d_b).clamp_min(1e-4))


def centre_pixels(res: int, pixels: Tensor | None = None, centre: float = 50 / 64) -> Tensor:
    """Whether each of ``pixels`` (flat indices; default all ``res * res``) lies in the central square of ``centre`` of the side."""
    h = round((res - centre * res) / 2)
    index = torch.arange(res * res) if pixels is None else pixels.cpu()
    row, col = index // res, index % res
    return (row >= h) & (row < res - h) & (col >= h) & (col < res - h)


def channels_first(values: Tensor, plane: tuple[int, ...]) -> Tensor:
    """``[n, V, P, C]`` -> ``[n, V, C, *plane]`` (``plane``: ``(H, W)`` of a whole view, ``(P,)`` of a pixel subset)."""
    n, V, _, C = values.shape
    return values.transpose(2, 3).reshape(n, V, C, *plane)


def default_light(cameras: Tensor) -> Tensor:
    """The toy world's mean light for each camera ``[..., 3]``: the eye direction tilted up by 0.4, normalised."""
    a, e = torch.deg2rad(cameras[..., 0]), torch.deg2rad(cameras[..., 1])
    eye = torch.stack([e.cos() * a.cos(), e.cos() * a.sin(), e.sin() + 0.4], -1)
    return eye / eye.norm(dim=-1, keepdim=True)


def shade(albedo: Tensor, normals: Tensor, opacity: Tensor, light: Tensor, code: Tensor,
          background: Tensor | float = BACKGROUND) -> Tensor:
    """Deferred shading of accumulated ``albedo [n, V, P, 3]`` (premultiplied by opacity) and ``normals``,
    over ``background`` (the toy world's grey, or a colour per ray ``[n, V, P, 3]``); ``light [n, V, 3]``,
    ``code [n, V]`` (0 albedo, 1 Lambertian, 2 textureless)."""
    normals = normals / normals.norm(dim=-1, keepdim=True).clamp_min(1e-6)  # accumulated: length <= opacity
    lit = AMBIENT + DIFFUSE * (normals * light[:, :, None, :]).sum(-1, keepdim=True).clamp_min(0.0)
    code = code[:, :, None, None]
    colour = torch.where(code == 2, opacity.expand_as(albedo), albedo)  # textureless: white
    colour = torch.where(code == 0, colour, (colour * lit).minimum(opacity))
    return colour + (1 - opacity) * background


class DirectionBackground(nn.Module):
    """DreamFusion's learned background: per instance, an MLP of the ray direction ``d`` (``d`` and its sines and
    cosines at ``FREQUENCIES`` octaves) with one ReLU layer of ``HIDDEN`` to a colour in [0, 1] by a sigmoid. Its
    last layer starts at zero and its bias at the logit of the toy world's grey, so a run starts as one with the
    fixed background does; the instances' MLPs run as one ``baddbmm`` a layer, as the hash grid's do.

    >>> DirectionBackground(2, generator=torch.Generator().manual_seed(0))(torch.ones(2, 5, 3)).shape
    torch.Size([2, 5, 3])
    """

    FREQUENCIES, HIDDEN = 2, 16

    def __init__(self, n: int, *, generator: torch.Generator):
        super().__init__()
        d_in = 3 * (1 + 2 * self.FREQUENCIES)
        bound = math.sqrt(6.0 / d_in)  # He-uniform
        self.w1 = nn.Parameter((torch.rand(n, d_in, self.HIDDEN, generator=generator) * 2 - 1) * bound)
        self.b1 = nn.Parameter(torch.zeros(n, 1, self.HIDDEN))
        self.w2 = nn.Parameter(torch.zeros(n, self.HIDDEN, 3))
        self.b2 = nn.Parameter(torch.full((n, 1, 3), math.log(BACKGROUND / (1 - BACKGROUND))))

    def forward(self, directions: Tensor) -> Tensor:
        """Colours ``[n, R, 3]`` of the rays ``directions [n, R, 3]``."""
        octaves = [f(2.0 ** k * math.pi * directions) for k in range(self.FREQUENCIES) for f in (torch.sin, torch.cos)]
        h = torch.relu(torch.baddbmm(self.b1, torch.cat([directions, *octaves], -1), self.w1))
        return torch.sigmoid(torch.baddbmm(self.b2, h, self.w2))


MESH_FORMATS: tuple[str, ...] = ("glb", "obj", "ply")
MESH_MIN_DIAMETER = 0.05  # floaters: components under 5 % of the mesh's diagonal are dropped (stable-dreamfusion's)
NERF_FORMATS: tuple[str, ...] = ("gif", "mp4", "geometry", *MESH_FORMATS)
"""What a saved NeRF result holds per instance ``i``: ``turntable-i.gif``, ``.mp4``, ``geometry-i.png``, ``mesh-i.*``."""


def nerf_outputs(rep: NerfRep, *, formats: tuple[str, ...] = NERF_FORMATS, frames: int = 36, size: int | None = None,
                 mesh_resolution: int = 96) -> dict[str, object]:
    """What a saved NeRF result holds beside the weights, per instance ``i`` and ``formats`` (``NERF_FORMATS``): a
    turntable (``turntable-i.gif``, ``turntable-i.mp4``, ``frames`` frames at elevation 15°, front first, ``size``
    pixels a side, default the views'), its geometry at the eight cameras of ``views.png`` (``geometry-i.png``: a
    row per ``GEOMETRY_ROWS`` entry, ``size`` pixels, default twice the views', at least 64) and a mesh by marching
    cubes with vertex colours (``mesh-i.glb``, ``.obj``, ``.ply``, on a ``mesh_resolution`` grid)."""
    from diffrep.checks import check_choice, check_int
    from diffrep.export import image_grid
    from diffrep.export3d import encode_gif, encode_mp4, extract_mesh, mesh_files, turntable_frames

    formats = (formats,) if isinstance(formats, str) else tuple(formats)
    for f in formats:
        check_choice("format", f, NERF_FORMATS)
    frames, size = check_int("frames", frames), size if size is None else check_int("size", size, 8)
    files: dict[str, object] = {}
    H = rep.image_shape[1]
    video_size, batch = size or H, max(1, frames * H * H // (size or H) ** 2)  # as many rays a call as at the views'
    with torch.no_grad():
        for i in range(rep.n):
            one = instance(rep, i)
            if {"gif", "mp4"} & set(formats):
                video = turntable_frames(lambda cams: one.render_cameras(cams[None].to(one.bank.device), res=video_size)[0],
                                         frames, distance=rep.config.distance, batch=batch)
                if "gif" in formats:
                    files[f"turntable-{i}.gif"] = encode_gif(video)
                if "mp4" in formats:
                    files[f"turntable-{i}.mp4"] = encode_mp4(video)
            if "geometry" in formats:
                grid = one.geometry(size or max(64, 2 * H))[0].flatten(0, 1).float().cpu()
                files[f"geometry-{i}.png"] = image_grid(grid, nrow=8)
            if meshes := tuple(f for f in formats if f in MESH_FORMATS):
                density = lambda p: one.density(p[None].to(one.bank.device))[0].cpu()  # noqa: E731
                mesh = extract_mesh(density, lambda p: one.albedo(p[None].to(one.bank.device))[0].cpu(),
                                    resolution=mesh_resolution, threshold=surface_level,
                                    min_diameter=MESH_MIN_DIAMETER, fill_voids=True)
                files |= mesh_files(mesh, meshes, name=f"mesh-{i}")
    return files


def surface_level(peak: float) -> float:
    """The density of the mesh's surface on a grid whose densest point has density ``peak``: ``SURFACE_DENSITY``,
    or half the peak when the grid never gets that dense (an early or faint NeRF, or a grid too coarse to meet
    its densest parts), so a saved run always has a mesh to look at, at any ``--resolution``."""
    return SURFACE_DENSITY if peak > SURFACE_DENSITY else 0.5 * peak


def instance(rep: NerfRep, i: int) -> NerfRep:
    """Instance ``i`` of ``rep`` as a rep of its own (shares nothing; for exports and evaluation)."""
    one = NerfRep(rep.image_shape, 1, rep.config, generator=torch.Generator().manual_seed(0)).to(rep.bank.device)
    params = {name for name, _ in rep.named_parameters()}
    one.load_state_dict({k: v[i:i + 1] if k in params else v for k, v in rep.state_dict().items()})
    return one


def nerf_objects(rep: NerfRep) -> list:
    """Each instance as an ``evaluate3d.Object3D``: renders lit by the evaluation's fixed light, occupancy
    where the density exceeds ``SURFACE_DENSITY``, and the rendered opacity as its mask."""
    from diffrep.evaluate3d import Object3D, gt_light

    def make(one: NerfRep) -> Object3D:
        last: dict[str, object] = {}  # the evaluation asks for renders and masks of the same cameras: render once

        def outputs(cameras: Tensor, res: int) -> dict[str, Tensor]:
            if last.get("res") != res or not (torch.is_tensor(last.get("cameras")) and torch.equal(last["cameras"], cameras)):
                cams = cameras[None].to(one.bank.device)
                out = one.render_cameras(cams, light=gt_light(cameras)[None], res=res, outputs=True, background="fixed")
                last.update(cameras=cameras.clone(), res=res, out=out)
            return last["out"]

        return Object3D(render=lambda cams, res: outputs(cams, res)["rgb"][0].cpu(),
                        occupancy=lambda points: one.density(points[None].to(one.bank.device))[0].cpu() > SURFACE_DENSITY,
                        mask=lambda cams, res: outputs(cams, res)["opacity"][0].cpu())

    with torch.no_grad():
        return [make(instance(rep, i)) for i in range(rep.n)]
