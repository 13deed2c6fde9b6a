"""3-D results: meshes by marching cubes (GLB, OBJ, PLY) and turntable videos (GIF, MP4).

The heavy packages (PyMCubes, trimesh, imageio-ffmpeg) are imported inside the functions that
use them. Meshes come out in the world frame of ``diffrep.cameras`` (z up, objects face +x),
except in GLB files, whose format fixes +Y up and +Z forward (see ``GLB_FROM_WORLD``).
"""

from __future__ import annotations

import io
import math
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from diffrep.errors import InputError
from diffrep.export import _umask, to_uint8

__all__ = [
    "DENSITY_THRESHOLD", "FORMATS", "GLB_FROM_WORLD", "MIN_VIDEO_PX", "encode_gif", "encode_mp4", "extract_mesh",
    "mesh_files", "turntable_cameras", "turntable_frames", "write_mesh",
]

DENSITY_THRESHOLD: float = 25.0
"""Default iso-level for NeRF volume densities (stable-dreamfusion's and threestudio's): with
sample spacing ~0.01-0.03 a density of 25 stops 20-50 % of the light per sample, a visible surface.
Pass ``threshold=0.5`` for an occupancy in [0, 1]."""

FORMATS: tuple[str, ...] = ("glb", "obj", "ply")

GLB_FROM_WORLD: tuple[tuple[float, ...], ...] = (
    (0.0, 1.0, 0.0, 0.0),  # glTF X = world y
    (0.0, 0.0, 1.0, 0.0),  # glTF Y (up) = world z (up)
    (1.0, 0.0, 0.0, 0.0),  # glTF Z (forward) = world x (the front)
    (0.0, 0.0, 0.0, 1.0),
)
"""The rotation (a cyclic permutation, det +1) applied to GLB files: glTF is +Y up with the front
facing +Z; the world is z up with the front facing +x."""

MIN_VIDEO_PX: int = 128  # the default ``scale`` upscales frames to at least this many pixels a side


def _need(module: str, package: str, what: str) -> Any:
    """Import ``module`` or fail with a message naming the package to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise InputError(f"{what} needs the package {package!r}: pip install {package} ({e})") from None


@torch.no_grad()
def _evaluate(fn: Callable[[Tensor], Tensor], points: Tensor, chunk: int, tail: tuple[int, ...], name: str) -> Tensor:
    """``fn`` on ``points [P, 3]`` in chunks, as float32 on the CPU, shape ``[P, *tail]`` checked."""
    out = []
    for p in points.split(chunk):
        v = fn(p)
        if not isinstance(v, Tensor) or tuple(v.shape) != (p.shape[0], *tail):
            got = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
            raise InputError(f"{name} must map points [P, 3] to [P{''.join(f', {t}' for t in tail)}], got {got} "
                             f"for P={p.shape[0]}")
        out.append(v.detach().float().cpu())
    return torch.cat(out)


def _density_grid(density_fn: Callable[[Tensor], Tensor], bound: float, resolution: int, chunk: int,
                  device: torch.device | str) -> Tensor:
    """Densities ``[R, R, R]`` at ``linspace(-bound, bound, R)`` per axis; ``grid[i, j, k]`` is at ``(x_i, y_j, z_k)``."""
    r = resolution
    axis = torch.linspace(-bound, bound, r, device=device)
    out = []
    for start in range(0, r**3, chunk):  # points made chunk by chunk: the full grid of points is never held
        idx = torch.arange(start, min(start + chunk, r**3), device=device)
        points = torch.stack([axis[idx // (r * r)], axis[idx // r % r], axis[idx % r]], -1)
        out.append(_evaluate(density_fn, points, chunk, (), "density_fn"))
    return torch.cat(out).view(r, r, r)


def extract_mesh(density_fn: Callable[[Tensor], Tensor], colour_fn: Callable[[Tensor], Tensor], *,
                 bound: float = 1.0, resolution: int = 128, threshold: float | Callable[[float], float] | None = None,
                 chunk: int = 65536,
                 device: torch.device | str = "cpu", min_diameter: float = 0.0,
                 fill_voids: bool = False) -> "trimesh.Trimesh":  # noqa: F821
    """Marching-cubes mesh of ``{density > threshold}`` in ``[-bound, bound]^3``, with vertex colours.

    min_diameter: connected components whose bounding-box diagonal is below this fraction of the whole mesh's are
    dropped (floaters; stable-dreamfusion's ``clean_mesh`` drops those under 5 %); 0 keeps every one. fill_voids:
    closed components of negative volume, the inward-facing surfaces of empty pockets enclosed by the dense region
    (invisible from outside), are dropped, which fills the pockets.

    density_fn: points ``[P, 3]`` (world, on ``device``) -> ``[P]``; colour_fn: points ``[P, 3]`` ->
    ``[P, 3]`` in [0, 1], evaluated at the vertices (stored as uint8 RGBA). threshold: ``None`` is
    ``DENSITY_THRESHOLD`` (NeRF densities); 0.5 suits an occupancy; a function of the grid's peak density chooses
    it from the very grid the mesh is cut from (``reps.nerf.surface_level``). Vertices are in world
    coordinates; faces are wound so that normals point out of the dense region (positive volume).

    Example: ``mesh = extract_mesh(lambda p: 50 * (1 - p.norm(dim=-1)).relu(), lambda p: p * 0 + 0.5, resolution=64)``.
    """
    mcubes = _need("mcubes", "PyMCubes", "mesh extraction")
    trimesh = _need("trimesh", "trimesh", "mesh extraction")
    if not (isinstance(resolution, int) and resolution >= 2):
        raise InputError(f"resolution must be an integer >= 2, got {resolution!r}")
    if not bound > 0:
        raise InputError(f"bound must be positive, got {bound!r}")
    if not (isinstance(chunk, int) and chunk >= 1):
        raise InputError(f"chunk must be a positive integer, got {chunk!r}")
    if not 0 <= min_diameter < 1:
        raise InputError(f"min_diameter must be in [0, 1) (a fraction of the mesh's diagonal), got {min_diameter!r}")
    grid = _density_grid(density_fn, bound, resolution, chunk, device)
    if torch.isnan(grid).any():
        raise InputError("density_fn returned NaN on the grid; no mesh can be extracted")
    lo, hi = grid.min().item(), grid.max().item()
    threshold = DENSITY_THRESHOLD if threshold is None else float(threshold(hi) if callable(threshold) else threshold)
    if not lo < threshold < hi:
        raise InputError(f"no surface at threshold {threshold:g}: density range [{lo:.4g}, {hi:.4g}]")
    # PyMCubes: vertices in index coordinates (axis 0 of the array first); faces wound outward for
    # "inside = value above the iso-level", which is the density's sense (tested: positive volume).
    vertices, faces = mcubes.marching_cubes(grid.double().numpy(), threshold)
    vertices = vertices * (2.0 * bound / (resolution - 1)) - bound
    rgb = _evaluate(colour_fn, torch.as_tensor(vertices, dtype=torch.float32, device=device), chunk, (3,), "colour_fn")
    rgba = torch.cat([(rgb.clamp(0, 1) * 255).round(), torch.full_like(rgb[:, :1], 255)], 1).to(torch.uint8)
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, vertex_colors=rgba.numpy(), process=False)
    return clean_mesh(mesh, min_diameter, fill_voids) if min_diameter > 0 or fill_voids else mesh


def clean_mesh(mesh: "trimesh.Trimesh", min_diameter: float = 0.0, fill_voids: bool = False) -> "trimesh.Trimesh":  # noqa: F821
    """``mesh`` without the connected components whose bounding-box diagonal is below ``min_diameter`` of its own and,
    with ``fill_voids``, the closed ones of negative volume (faces are wound out of the dense region, so such a
    component bounds an empty pocket inside it). The widest component is always kept: specks scattered far apart
    leave their largest, not an empty mesh."""
    import trimesh

    def diagonal(m) -> float:
        return float(((m.bounds[1] - m.bounds[0]) ** 2).sum() ** 0.5)

    parts = mesh.split(only_watertight=False)
    kept = [p for p in parts if diagonal(p) >= min_diameter * diagonal(mesh)
            and not (fill_voids and p.is_watertight and p.volume < 0)] or [max(parts, key=diagonal)]
    return mesh if len(kept) == len(parts) else trimesh.util.concatenate(kept)


def _check_formats(formats: Iterable[str]) -> list[str]:
    formats = list(formats)
    for f in formats:
        if f not in FORMATS:
            raise InputError(f"mesh format must be one of {', '.join(FORMATS)}, got {f!r}")
    return formats


def _mesh_bytes(mesh: "trimesh.Trimesh", format: str) -> bytes:  # noqa: F821
    """One file's bytes; GLB rotated to glTF's +Y up (``GLB_FROM_WORLD``), OBJ and PLY in the world frame."""
    if format == "glb":
        mesh = mesh.copy()
        mesh.apply_transform(GLB_FROM_WORLD)
    data = mesh.export(file_type=format)  # OBJ: "v x y z r g b" lines; PLY: binary with RGBA; GLB: COLOR_0
    return data.encode() if isinstance(data, str) else bytes(data)


def mesh_files(mesh: "trimesh.Trimesh", formats: Iterable[str] = FORMATS, *,  # noqa: F821
               name: str = "mesh") -> dict[str, bytes]:
    """``{f"{name}.{format}": bytes}`` for ``diffrep.export.write_folder``; formats from ``FORMATS``."""
    return {f"{name}.{f}": _mesh_bytes(mesh, f) for f in _check_formats(formats)}


def write_mesh(mesh: "trimesh.Trimesh", path: str | Path, format: str) -> Path:  # noqa: F821
    """Write ``mesh`` as ``format`` ("glb", "obj" or "ply") to ``path`` atomically (a temporary
    file in the same folder, then ``os.replace``), mode 0666 less the umask; returns the path."""
    data = _mesh_bytes(mesh, _check_formats([format])[0])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def turntable_cameras(frames: int = 36, elevation: float = 15.0, distance: float = 3.2) -> Tensor:
    """Cameras ``[frames, 3]`` at azimuths ``360 i / frames`` (i = 0: the front), one elevation and distance."""
    if not (isinstance(frames, int) and frames >= 1):
        raise InputError(f"frames must be a positive integer, got {frames!r}")
    if not distance > 0:
        raise InputError(f"distance must be positive, got {distance!r}")
    azimuth = torch.arange(frames, dtype=torch.float64) * (360.0 / frames)
    return torch.stack([azimuth, torch.full_like(azimuth, elevation), torch.full_like(azimuth, distance)], 1).float()


def turntable_frames(render_fn: Callable[[Tensor], Tensor], frames: int = 36, elevation: float = 15.0,
                     distance: float = 3.2, *, batch: int | None = None) -> Tensor:
    """Render a turntable: ``render_fn(cameras [B, 3]) -> [B, 3, H, W]`` in [-1, 1] on ``turntable_cameras``.

    distance: 3.2 is ``toyworld.cameras.DISTANCE``. batch: cameras per call (``None``: all at once).
    Returns ``[frames, 3, H, W]``, frame 0 seen from the front (azimuth 0), turning towards +y.
    """
    if batch is not None and not (isinstance(batch, int) and batch >= 1):
        raise InputError(f"batch must be a positive integer or None, got {batch!r}")
    cameras = turntable_cameras(frames, elevation, distance)
    with torch.no_grad():
        images = torch.cat([render_fn(c) for c in cameras.split(batch or frames)])
    if images.ndim != 4 or images.shape[0] != frames:
        raise InputError(f"render_fn must return [B, C, H, W] for B cameras; got {tuple(images.shape)} "
                         f"for {frames} cameras in all")
    return images


def _video_pixels(frames: Tensor, fps: float, scale: int | None, even: bool) -> "numpy.ndarray":  # noqa: F821
    """``[F, C, H, W]`` in [-1, 1] -> uint8 ``[F, sH, sW, 3]``, nearest upscaling by ``s = scale`` (``None``:
    the least ``s`` with ``s * min(H, W) >= MIN_VIDEO_PX``); ``even``: odd sizes padded by their last row/column."""
    if not isinstance(frames, Tensor) or frames.ndim != 4 or frames.shape[1] not in (1, 3) or frames.shape[0] < 1:
        got = tuple(frames.shape) if isinstance(frames, Tensor) else type(frames).__name__
        raise InputError(f"frames must be a tensor [F, 3, H, W] (or [F, 1, H, W]) with F >= 1, got {got}")
    if not fps > 0:
        raise InputError(f"fps must be positive, got {fps!r}")
    if scale is not None and not (isinstance(scale, int) and scale >= 1):
        raise InputError(f"scale must be a positive integer or None, got {scale!r}")
    s = scale or max(1, math.ceil(MIN_VIDEO_PX / min(frames.shape[2:])))
    x = to_uint8(frames).expand(-1, -1, -1, 3).repeat_interleave(s, 1).repeat_interleave(s, 2)
    if even:
        x = torch.cat([x, x[:, -1:]], 1) if x.shape[1] % 2 else x
        x = torch.cat([x, x[:, :, -1:]], 2) if x.shape[2] % 2 else x
    return x.contiguous().numpy()


def encode_gif(frames: Tensor, fps: float = 12, scale: int | None = None) -> bytes:
    """An endlessly looping GIF of ``frames [F, 3, H, W]`` in [-1, 1] (Pillow; delays in 10 ms steps).

    scale: nearest upscaling factor, ``None`` for at least ``MIN_VIDEO_PX`` pixels a side. Pillow
    merges identical consecutive frames into one longer frame (same playback)."""
    from PIL import Image

    images = [Image.fromarray(p) for p in _video_pixels(frames, fps, scale, even=False)]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    return buf.getvalue()


def encode_mp4(frames: Tensor, fps: float = 12, scale: int | None = None, crf: int = 18) -> bytes:
    """An H.264 MP4 (libx264, yuv420p, CRF ``crf``) of ``frames [F, 3, H, W]`` in [-1, 1], via imageio-ffmpeg.

    scale: as ``encode_gif``'s; odd sizes are padded to even ones (yuv420p needs them)."""
    imageio_ffmpeg = _need("imageio_ffmpeg", "imageio-ffmpeg", "MP4 encoding")
    pixels = _video_pixels(frames, fps, scale, even=True)
    with tempfile.TemporaryDirectory(prefix="diffrep-mp4-") as folder:
        path = os.path.join(folder, "video.mp4")
        writer = imageio_ffmpeg.write_frames(
            path, (pixels.shape[2], pixels.shape[1]), fps=fps, codec="libx264", pix_fmt_out="yuv420p", quality=None,
            macro_block_size=1, ffmpeg_log_level="error", output_params=["-crf", str(crf), "-movflags", "+faststart"])
        writer.send(None)  # start ffmpeg
        for p in pixels:
            writer.send(p)
        writer.close()
        return Path(path).read_bytes()
