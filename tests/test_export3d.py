"""Meshes and turntables: marching cubes against analytic shapes, the file formats, GIF and MP4."""

from __future__ import annotations

import io
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from diffrep.errors import InputError
from diffrep.export3d import (
    DENSITY_THRESHOLD, FORMATS, GLB_FROM_WORLD, encode_gif, encode_mp4, extract_mesh, mesh_files, turntable_cameras,
    turntable_frames, write_mesh,
)

trimesh = pytest.importorskip("trimesh")
RES = 64
VOXEL = 2.0 / (RES - 1)
CENTRE = torch.tensor([0.4, -0.2, 0.1])
HALF = torch.tensor([0.2, 0.3, 0.1])  # three different sizes: an axis swap moves the box


def sphere_density(p):
    """DreamFusion's blob: 50 (1 - r), so the default threshold 25 is the sphere r = 0.5."""
    return 50.0 * (1.0 - p.norm(dim=-1)).relu()


def red_or_blue(p):
    """Red where x > 0, blue where x < 0."""
    east = (p[:, 0] > 0).float()
    return torch.stack([east, torch.zeros_like(east), 1 - east], 1)


def box_occupancy(p):
    return ((p - CENTRE).abs() < HALF).all(-1).float()


@pytest.fixture(scope="module")
def sphere():
    return extract_mesh(sphere_density, red_or_blue, resolution=RES)


def test_sphere_is_closed_outward_and_the_right_size(sphere):
    assert sphere.is_watertight
    assert sphere.volume > 0  # faces wound outward
    assert sphere.volume == pytest.approx(4 / 3 * math.pi * 0.5**3, rel=0.02)
    r = np.linalg.norm(sphere.vertices, axis=1)
    assert np.abs(r - 0.5).max() < VOXEL
    # Outward normals, face by face: each points away from the centre.
    assert (np.einsum("ij,ij->i", sphere.face_normals, sphere.triangles_center) > 0).all()


def test_a_threshold_chosen_from_the_grids_peak():
    """A function of the grid's peak density sets the level: half the peak of 50 (1 - r) is the sphere r = 0.5 (the
    grid holds the centre, where the peak is 50)."""
    peaks = []
    mesh = extract_mesh(sphere_density, red_or_blue, resolution=33, threshold=lambda peak: peaks.append(peak) or peak / 2)
    assert peaks == [pytest.approx(50.0)]
    assert mesh.volume == pytest.approx(4 / 3 * math.pi * 0.5**3, rel=0.05)


def test_vertex_colours_follow_colour_fn(sphere):
    c = np.asarray(sphere.visual.vertex_colors)
    assert c.dtype == np.uint8 and c.shape == (len(sphere.vertices), 4)
    x = sphere.vertices[:, 0]
    assert (c[x > 1e-6] == [255, 0, 0, 255]).all()
    assert (c[x < -1e-6] == [0, 0, 255, 255]).all()


def test_occupancy_box_lands_at_its_world_position():
    mesh = extract_mesh(box_occupancy, lambda p: torch.full_like(p, 0.5), resolution=RES, threshold=0.5)
    lo, hi = mesh.bounds
    np.testing.assert_allclose(lo, (CENTRE - HALF).numpy(), atol=VOXEL)
    np.testing.assert_allclose(hi, (CENTRE + HALF).numpy(), atol=VOXEL)
    assert mesh.is_watertight and mesh.volume > 0
    assert (np.asarray(mesh.visual.vertex_colors) == [128, 128, 128, 255]).all()


def test_bound_scales_the_grid_and_chunks_do_not_matter():
    a = extract_mesh(sphere_density, red_or_blue, resolution=24, bound=0.8, chunk=1000)
    b = extract_mesh(sphere_density, red_or_blue, resolution=24, bound=0.8)
    np.testing.assert_array_equal(a.vertices, b.vertices)
    np.testing.assert_array_equal(a.faces, b.faces)
    assert np.abs(np.linalg.norm(a.vertices, axis=1) - 0.5).max() < 1.6 / 23


def test_min_diameter_drops_floaters_and_keeps_the_object():
    """The sphere r = 0.5 with a speck of radius 0.06 beside it (bounding-box diagonals 1.73 and ~0.2)."""
    speck = lambda p: 50.0 * (1.0 - (p - torch.tensor([0.8, 0.0, 0.0])).norm(dim=-1) / 0.12).relu()  # noqa: E731
    both = lambda p: torch.maximum(sphere_density(p), speck(p))  # noqa: E731
    kept = extract_mesh(both, red_or_blue, resolution=RES)
    assert len(kept.split(only_watertight=False)) == 2
    clean = extract_mesh(both, red_or_blue, resolution=RES, min_diameter=0.1)
    assert len(clean.split(only_watertight=False)) == 1 and clean.is_watertight
    assert clean.volume == pytest.approx(4 / 3 * math.pi * 0.5**3, rel=0.02)
    assert np.abs(np.linalg.norm(clean.vertices, axis=1) - 0.5).max() < VOXEL  # the sphere, and only it
    far = lambda p: torch.maximum(speck(p), speck(-p))  # noqa: E731  two specks 1.6 apart, each under half the whole: one is kept
    assert len(extract_mesh(far, red_or_blue, resolution=RES, min_diameter=0.5).split(only_watertight=False)) == 1
    with pytest.raises(InputError, match="min_diameter"):
        extract_mesh(both, red_or_blue, resolution=8, min_diameter=1.0)


def test_fill_voids_drops_the_inner_surface_of_a_hollow_ball():
    """Dense between r = 0.25 and 0.5: an outer sphere wound outward and an inner one wound inward (negative volume)."""
    shell = lambda p: 50.0 * (1.0 - (p.norm(dim=-1) - 0.375).abs() / 0.25).relu()  # noqa: E731  > 25 on 0.25 < r < 0.5
    hollow = extract_mesh(shell, red_or_blue, resolution=RES)
    volumes = sorted(part.volume for part in hollow.split(only_watertight=False))
    assert len(volumes) == 2 and volumes[0] < 0 < volumes[1]
    assert hollow.volume == pytest.approx(4 / 3 * math.pi * (0.5**3 - 0.25**3), rel=0.05)
    filled = extract_mesh(shell, red_or_blue, resolution=RES, fill_voids=True)
    assert len(filled.split(only_watertight=False)) == 1 and filled.is_watertight
    assert filled.volume == pytest.approx(4 / 3 * math.pi * 0.5**3, rel=0.02)


@pytest.mark.parametrize("density", [lambda p: torch.zeros(p.shape[0]), lambda p: torch.full((p.shape[0],), 80.0)])
def test_empty_or_full_grid_is_refused(density):
    with pytest.raises(InputError, match=rf"no surface at threshold {DENSITY_THRESHOLD:g}: density range \[") as e:
        extract_mesh(density, red_or_blue, resolution=8)
    assert e.value.args[0].count("[") == 1


@pytest.mark.parametrize("kwargs, match", [
    ({"resolution": 1}, "resolution"), ({"bound": 0.0}, "bound"), ({"chunk": 0}, "chunk"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(InputError, match=match):
        extract_mesh(sphere_density, red_or_blue, **kwargs)


def test_a_density_of_the_wrong_shape_is_named():
    with pytest.raises(InputError, match=r"density_fn must map points \[P, 3\] to \[P\], got \(10, 1\)"):
        extract_mesh(lambda p: torch.zeros(p.shape[0], 1), red_or_blue, resolution=4, chunk=10)


def load(data: bytes, format: str):
    loaded = trimesh.load(io.BytesIO(data), file_type=format, process=False)
    return loaded.to_mesh() if isinstance(loaded, trimesh.Scene) else loaded


@pytest.mark.parametrize("format", FORMATS)
def test_each_format_round_trips(sphere, tmp_path, format):
    old = os.umask(0o027)
    try:
        path = write_mesh(sphere, tmp_path / f"out.{format}", format)
    finally:
        os.umask(old)
    assert path == tmp_path / f"out.{format}" and os.listdir(tmp_path) == [f"out.{format}"]  # no temporary left
    assert path.stat().st_mode & 0o777 == 0o640
    back = load(path.read_bytes(), format)
    expected = sphere.vertices @ np.array(GLB_FROM_WORLD)[:3, :3].T if format == "glb" else sphere.vertices
    assert len(back.vertices) == len(sphere.vertices) and len(back.faces) == len(sphere.faces)
    np.testing.assert_allclose(back.vertices, expected, atol=1e-6)
    np.testing.assert_array_equal(back.visual.vertex_colors, sphere.visual.vertex_colors)
    assert back.volume == pytest.approx(sphere.volume, rel=1e-5)  # orientation kept


def test_glb_is_y_up_with_the_front_at_plus_z():
    mesh = extract_mesh(box_occupancy, red_or_blue, resolution=RES, threshold=0.5)
    lo, hi = load(mesh_files(mesh, ["glb"])["mesh.glb"], "glb").bounds
    # glTF (X, Y, Z) = world (y, z, x): the box's centre (0.4, -0.2, 0.1) is at (-0.2, 0.1, 0.4).
    np.testing.assert_allclose((lo + hi) / 2, [-0.2, 0.1, 0.4], atol=VOXEL)


def test_mesh_files_names_and_unknown_format(sphere):
    files = mesh_files(sphere, name="mesh_001")
    assert sorted(files) == ["mesh_001.glb", "mesh_001.obj", "mesh_001.ply"]
    assert all(isinstance(b, bytes) and b for b in files.values())
    with pytest.raises(InputError, match="glb, obj, ply.*'stl'"):
        mesh_files(sphere, ["obj", "stl"])
    with pytest.raises(InputError, match="glb, obj, ply"):
        write_mesh(sphere, "never.fbx", "fbx")


def test_turntable_starts_at_the_front_and_is_even():
    seen = []

    def render(cameras):
        seen.append(cameras)
        return cameras[:, :1, None, None].expand(-1, 3, 4, 6) / 360.0

    frames = turntable_frames(render, frames=8, elevation=20.0, distance=2.5, batch=3)
    cams = torch.cat(seen)
    assert [len(c) for c in seen] == [3, 3, 2]
    torch.testing.assert_close(cams[:, 0], torch.arange(8.0) * 45.0)
    assert (cams[:, 1] == 20.0).all() and (cams[:, 2] == 2.5).all()
    assert frames.shape == (8, 3, 4, 6) and frames[0].eq(0).all()
    torch.testing.assert_close(turntable_cameras(), turntable_frames(lambda c: c[:, :, None, None], frames=36)[..., 0, 0])
    with pytest.raises(InputError, match="batch"):
        turntable_frames(render, frames=4, batch=0)
    from diffrep.toyworld.cameras import DISTANCE
    assert turntable_cameras()[0].tolist() == pytest.approx([0.0, 15.0, DISTANCE])


def moving_bar(frames=6, h=32, w=32):
    """Frames in [-1, 1] with a white column that moves: no two frames alike."""
    x = torch.full((frames, 3, h, w), -1.0)
    for i in range(frames):
        x[i, :, :, 4 * i: 4 * i + 3] = 1.0
    return x


def test_gif_loops_and_keeps_frames_and_size():
    from PIL import Image

    data = encode_gif(moving_bar(), fps=10)
    with Image.open(io.BytesIO(data)) as gif:
        assert gif.n_frames == 6 and gif.size == (128, 128)  # 32 px upscaled 4x by default
        assert gif.info["loop"] == 0 and gif.info["duration"] == 100
        gif.seek(2)
        rgb = np.asarray(gif.convert("RGB"))
    assert (rgb[:, 32:44] == 255).all() and (rgb[:, :32] == 0).all()
    with Image.open(io.BytesIO(encode_gif(moving_bar(), scale=1))) as gif:
        assert gif.size == (32, 32)


def test_mp4_decodes_with_the_right_frames(tmp_path):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    path = tmp_path / "t.mp4"
    path.write_bytes(encode_mp4(moving_bar(12), fps=12))
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    frames = [np.frombuffer(f, np.uint8).reshape(128, 128, 3) for f in reader]
    assert meta["size"] == (128, 128) and meta["fps"] == 12 and "h264" in meta["codec"]
    assert len(frames) == 12
    assert abs(frames[3][:, 50].mean() - 255) < 8 and frames[3][:, 100].mean() < 8  # the bar of frame 3
    path.write_bytes(encode_mp4(moving_bar(3, h=31, w=33), scale=1))  # odd sizes padded to even
    assert next(imageio_ffmpeg.read_frames(str(path)))["size"] == (34, 32)


@pytest.mark.parametrize("bad, match", [
    (torch.zeros(2, 3, 8), r"\[F, 3, H, W\]"), (torch.zeros(2, 4, 8, 8), r"\[F, 3, H, W\]"),
])
def test_bad_frames_are_named(bad, match):
    with pytest.raises(InputError, match=match):
        encode_gif(bad)
    with pytest.raises(InputError, match="fps"):
        encode_mp4(torch.zeros(2, 3, 8, 8), fps=0)


def test_import_is_light():
    code = "import sys, diffrep.export3d; print(sorted({'trimesh', 'mcubes', 'imageio_ffmpeg'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
