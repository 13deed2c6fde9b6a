"""Tests of diffrep.toyworld: determinism, the renderer against ground-truth occupancy, labels, I/O."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest
import torch

from diffrep import toyworld
from diffrep.toyworld import cameras, objects
from diffrep.errors import InputError
from diffrep.toyworld.dataset import ToyWorldConfig, generate, read_dataset, sample_scenes, write_dataset


def _render(scenes: dict, res: int = 32, **kwargs):
    return toyworld.render(scenes["kind"], scenes["colour"], scenes["instance"], scenes["cameras"], scenes["light"], res, **kwargs)


def _headlight(cams: torch.Tensor) -> torch.Tensor:
    eye = cameras.camera_frames(cams)[0]
    return eye / eye.norm(dim=-1, keepdim=True)


def _scenes_per_kind(per_kind: int, seed: int) -> dict:
    """``per_kind`` random scenes of every kind, in kind order."""
    n = per_kind * len(toyworld.KINDS)
    s = sample_scenes(ToyWorldConfig(n=n, seed=seed))
    kind = torch.arange(len(toyworld.KINDS)).repeat_interleave(per_kind)
    u = torch.rand(n, toyworld.N_PARAMS, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return {**s, "kind": kind, "instance": objects.sample_instance(kind, u)}


def test_public_api_and_vocabularies():
    for name in toyworld.__all__:
        assert hasattr(toyworld, name), name
    assert len(toyworld.KINDS) >= 10 and len(set(toyworld.KINDS)) == len(toyworld.KINDS)
    assert len(toyworld.FRONTED) >= 5 and set(toyworld.FRONTED) <= set(toyworld.KINDS)
    assert len(toyworld.COLOURS) >= 6 and len(set(toyworld.COLOURS)) == len(toyworld.COLOURS)
    assert toyworld.VIEWS == ("front", "side", "back", "overhead")
    assert all(k.isalpha() and k.islower() for k in toyworld.KINDS + toyworld.COLOURS)
    assert -1.0 <= toyworld.BACKGROUND <= 1.0


def test_generate_shapes_ranges_and_labels():
    ds = generate(ToyWorldConfig(n=30, res=32, seed=0))
    assert len(ds) == 30 and ds.images.shape == (30, 3, 32, 32) and ds.images.dtype == torch.float32
    assert ds.images.min() >= -1.0 and ds.images.max() <= 1.0
    for labels, vocab in ((ds.kind, toyworld.KINDS), (ds.colour, toyworld.COLOURS), (ds.view, toyworld.VIEWS)):
        assert labels.dtype == torch.int64 and 0 <= labels.min() and labels.max() < len(vocab)
    az, el, dist = ds.cameras.T
    assert (az >= 0).all() and (az < 360).all() and (el >= -10).all() and (el <= 60).all()
    assert torch.allclose(dist, torch.full_like(dist, toyworld.DISTANCE))
    assert torch.allclose(ds.light.norm(dim=-1), torch.ones(30))
    # Mostly lit from the camera's side.
    assert ((ds.light * cameras.camera_frames(ds.cameras)[0]).sum(-1) > 0).float().mean() > 0.8
    # Background away from the object (outline pixels are anti-aliased), object elsewhere.
    _, mask = _render(sample_scenes(ds.config), return_mask=True)
    near = torch.nn.functional.max_pool2d(mask[:, None].float(), 3, stride=1, padding=1)[:, 0] > 0
    assert (ds.images.permute(0, 2, 3, 1)[~near] == toyworld.BACKGROUND).all()
    assert (ds.images.permute(0, 2, 3, 1)[mask] != toyworld.BACKGROUND).any(-1).float().mean() > 0.99
    assert 0.05 < mask.float().mean() < 0.6


def test_instances_within_parameter_ranges():
    s = sample_scenes(ToyWorldConfig(n=200, seed=1))
    for i in range(200):
        spec = toyworld.KIND_SPECS[int(s["kind"][i])]
        for j, p in enumerate(spec.params):
            assert p.lo <= s["instance"][i, j] <= p.hi
        assert (s["instance"][i, len(spec.params) :] == 0).all()


def test_same_seed_same_images_other_seed_other_images():
    a = generate(ToyWorldConfig(n=24, seed=5))
    b = generate(ToyWorldConfig(n=24, seed=5))
    c = generate(ToyWorldConfig(n=24, seed=6))
    assert torch.equal(a.images, b.images) and a.captions == b.captions
    assert not torch.equal(a.images, c.images)
    # A smaller data set is the start of a larger one with the same seed.
    d = generate(ToyWorldConfig(n=10, seed=5))
    assert torch.equal(d.images, a.images[:10]) and d.captions == a.captions[:10]


def test_chunking_and_batching_do_not_change_images():
    s = sample_scenes(ToyWorldConfig(n=40, seed=2))
    full = _render(s)
    assert torch.equal(full, _render(s, chunk_rays=1))  # one image per chunk
    assert torch.equal(full, _render(s, chunk_rays=3 * 32 * 32))
    # Rendering a subset on its own gives the same pixels.
    sub = {k: v[7:12] for k, v in s.items()}
    assert torch.equal(full[7:12], _render(sub))


def _projected_occupancy(kind: int, instance: torch.Tensor, cams: torch.Tensor, res: int, samples: int = 400) -> torch.Tensor:
    """Slow twin of the renderer's mask: a pixel is occupied if any of ``samples`` points on its ray inside the unit sphere is."""
    origins, dirs = toyworld.camera_rays(cams[None], res)
    t = torch.linspace(toyworld.DISTANCE - 1.0, toyworld.DISTANCE + 1.0, samples)
    points = origins[0, :, :, None, :] + t[:, None] * dirs[0, :, :, None, :]
    return toyworld.occupancy(kind, instance, points).any(-1)


@pytest.mark.parametrize("res", [32, 64])
def test_mask_matches_projected_occupancy_for_every_kind(res):
    per_kind = 4 if res == 32 else 1
    s = _scenes_per_kind(per_kind, seed=11)
    _, mask = _render(s, res, return_mask=True)
    for k, name in enumerate(toyworld.KINDS):
        ids = range(k * per_kind, (k + 1) * per_kind)
        truth = torch.stack([_projected_occupancy(k, s["instance"][i], s["cameras"][i], res) for i in ids])
        m = mask[k * per_kind : (k + 1) * per_kind]
        iou = (m & truth).sum() / (m | truth).sum()
        assert iou > 0.95, (name, float(iou))


def test_objects_fit_their_bounding_boxes_and_the_unit_sphere():
    g = torch.Generator().manual_seed(0)
    points = torch.rand(60_000, 3, generator=g) * 2.4 - 1.2
    for k, spec in enumerate(toyworld.KIND_SPECS):
        n = len(spec.params)
        for corner in itertools.product([0.0, 1.0], repeat=n):
            u = torch.zeros(1, toyworld.N_PARAMS, dtype=torch.float64)
            u[0, :n] = torch.tensor(corner)
            occ = toyworld.occupancy(k, objects.sample_instance(torch.tensor([k]), u)[0], points)
            inside_box = (points.abs() <= torch.tensor(spec.bound)).all(-1)
            assert occ.any(), spec.name
            assert not (occ & ~inside_box).any(), spec.name
            assert points[occ].norm(dim=-1).max() < 1.0, spec.name


def test_dataset_occupancy_is_the_module_function():
    ds = generate(ToyWorldConfig(n=6, seed=3))
    p = torch.rand(5, 7, 3) * 2 - 1
    for i in range(6):
        expected = toyworld.occupancy(int(ds.kind[i]), ds.instance[i], p)
        assert expected.shape == (5, 7) and expected.dtype == torch.bool
        assert torch.equal(ds.occupancy(i, p), expected)
    assert ds.occupancy(0, torch.zeros(3)).shape == ()


def test_captions():
    assert toyworld.caption(toyworld.KINDS.index("duck"), toyworld.COLOURS.index("orange"), 0) == "an orange duck, front view"
    assert toyworld.caption(toyworld.KINDS.index("mug"), toyworld.COLOURS.index("red"), 2) == "a red mug, back view"
    ds = generate(ToyWorldConfig(n=40, seed=4))
    for i, text in enumerate(ds.captions):
        assert toyworld.parse_caption(text) == (int(ds.kind[i]), int(ds.colour[i]), int(ds.view[i]))
    with pytest.raises(ValueError, match="not a toy-world caption"):
        toyworld.parse_caption("a plaid mug, front view")


@pytest.mark.parametrize(
    ("azimuth", "elevation", "view"),
    [(0, 0, "front"), (44.9, 10, "front"), (315.5, 0, "front"), (-30, 0, "front"), (45.1, 0, "side"), (90, 20, "side"),
     (270, 45, "side"), (134.9, 0, "side"), (135.1, 0, "back"), (180, 44.9, "back"), (224.5, -10, "back"), (225.5, -10, "side"), (0, 45.1, "overhead"),
     (180, 60, "overhead")],
)
def test_view_labels(azimuth, elevation, view):
    label = toyworld.view_label(torch.tensor([float(azimuth)]), torch.tensor([float(elevation)]))
    assert toyworld.VIEWS[int(label)] == view


def test_camera_rays():
    cams = torch.tensor([[0.0, 0.0, toyworld.DISTANCE], [90.0, 0.0, toyworld.DISTANCE], [30.0, 89.0, 2.0]])
    o, d = toyworld.camera_rays(cams, 16)
    assert o.shape == d.shape == (3, 16, 16, 3)
    assert torch.allclose(d.norm(dim=-1), torch.ones(3, 16, 16))
    assert torch.allclose(o[0, 0, 0], torch.tensor([toyworld.DISTANCE, 0.0, 0.0]))
    assert torch.allclose(o[1, 0, 0], torch.tensor([0.0, toyworld.DISTANCE, 0.0]), atol=1e-6)
    # The mean ray looks at the origin; image up is world up, image right is +y from the front.
    assert torch.allclose(d[0].mean((0, 1)) / d[0].mean((0, 1)).norm(), torch.tensor([-1.0, 0.0, 0.0]), atol=1e-6)
    assert (d[0, 0, :, 2] > 0).all() and (d[0, -1, :, 2] < 0).all()
    assert (d[0, :, -1, 1] > 0).all() and (d[0, :, 0, 1] < 0).all()
    # Corner rays span the field of view.
    tan = torch.tensor(toyworld.FOV_DEG / 2).deg2rad().tan()
    assert torch.allclose(d[0, 8, 15, 1] / -d[0, 8, 15, 0], tan * 15 / 16, atol=1e-5)


def test_fronted_kinds_look_different_from_front_and_back():
    k = len(toyworld.KINDS)
    kind = torch.arange(k).repeat_interleave(2)
    instance = objects.sample_instance(kind, torch.full((2 * k, toyworld.N_PARAMS), 0.5, dtype=torch.float64))
    az = torch.tensor([0.0, 180.0]).repeat(k)
    cams = torch.stack([az, torch.full_like(az, 15.0), torch.full_like(az, toyworld.DISTANCE)], -1)
    scenes = {"kind": kind, "colour": torch.zeros(2 * k, dtype=torch.int64), "instance": instance, "cameras": cams, "light": _headlight(cams)}
    images = _render(scenes)
    # The mirrored back view of an object symmetric under x -> -x is its front view.
    diff = (images[0::2] - images[1::2].flip(-1)).abs().mean((1, 2, 3))
    fronted = torch.tensor([name in toyworld.FRONTED for name in toyworld.KINDS])
    assert diff[~fronted].max() < 0.003
    assert diff[fronted].min() > 0.007
    assert diff[fronted].min() > 3 * diff[~fronted].max()


def test_render_validates_inputs():
    s = sample_scenes(ToyWorldConfig(n=3, seed=0))
    with pytest.raises(ValueError, match="instance"):
        toyworld.render(s["kind"], s["colour"], s["instance"][:, :2], s["cameras"], s["light"], 32)
    with pytest.raises(ValueError, match="kind indices"):
        toyworld.render(s["kind"] + 100, s["colour"], s["instance"], s["cameras"], s["light"], 32)
    with pytest.raises(ValueError, match="res must be 32 or 64"):
        generate(ToyWorldConfig(n=3, res=48))


def test_progress_reports_every_chunk():
    calls = []
    generate(ToyWorldConfig(n=12, seed=0), progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (12, 12)
    assert all(a[0] < b[0] for a, b in zip(calls, calls[1:]))


def test_write_dataset_round_trips(tmp_path):
    ds = generate(ToyWorldConfig(n=8, seed=9))
    out = tmp_path / "toy"
    write_dataset(ds, out)
    assert sorted(p.name for p in out.iterdir()) == [f"{i:05d}.png" for i in range(8)] + ["metadata.json"]
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["images"] == ds.metadata()
    assert meta["vocabularies"]["kinds"] == list(toyworld.KINDS)
    assert meta["config"]["seed"] == 9
    back = read_dataset(out)
    assert back.config == ds.config and back.captions == ds.captions
    for name in ("kind", "colour", "view", "cameras", "light", "instance"):
        assert torch.equal(getattr(back, name), getattr(ds, name)), name
    assert (back.images - ds.images).abs().max() <= 1.0 / 127.5 + 1e-6
    # No stray temporary folders, and no silent overwrite.
    assert [p.name for p in tmp_path.iterdir()] == ["toy"]
    with pytest.raises(InputError, match="not empty"):
        write_dataset(ds, out)
    write_dataset(generate(ToyWorldConfig(n=2, seed=1)), out, overwrite=True)
    assert len(read_dataset(out)) == 2 and [p.name for p in tmp_path.iterdir()] == ["toy"]


def test_docs_example_runs():
    text = (Path(__file__).resolve().parent.parent / "docs" / "toyworld.md").read_text()
    block = re.findall(r"```python\n(.*?)```", text, flags=re.S)[0]
    exec(compile(block, "docs/toyworld.md", "exec"), {})


def test_the_vocabulary_without_torch_is_the_renderers():
    from diffrep import cameras as cams
    from diffrep.toyworld import objects as objs
    from diffrep.toyworld import vocabulary

    assert vocabulary.KINDS == tuple(k.name for k in objs.KIND_SPECS)
    assert vocabulary.COLOURS == objs.COLOURS and vocabulary.VIEWS == cams.VIEWS
    assert toyworld.render.__module__ == "diffrep.toyworld.renderer"  # the package's render is the function
