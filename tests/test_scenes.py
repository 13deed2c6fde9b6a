"""Tests of diffrep.toyworld.scenes: views are exact crops of the panorama, view labels, determinism, options."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from diffrep.errors import InputError
from diffrep.reps.panorama import canvas_width, crop
from diffrep.toyworld import scene_text, scenes
from diffrep.toyworld.scene_text import SceneConfig, parse_scene_prompt, scene_caption


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def scene_set():
    return scenes.generate_scenes(SceneConfig(n=12, seed=3))


def test_canvas_is_the_panorama_reps_geometry(scene_set):
    assert scene_set.panoramas.shape == (12, 3, 32, canvas_width(32, scene_text.VIEW_FOV_DEG)) == (12, 3, 32, 192)
    assert scene_set.panoramas.min() >= -1 and scene_set.panoramas.max() <= 1


def test_views_are_exact_crops_of_the_panorama_wrap_included(scene_set):
    """A view rendered on its own (only its columns traced) equals the crop of the canvas bit for bit,
    across the seam too, and ``crop_views`` is the panorama rep's crop."""
    Wc = scene_set.panoramas.shape[-1]
    layout = {k: v[:4] for k, v in scene_set.layout.items()}
    for start in (0, 77, Wc - 10, Wc + 5, -3):
        alone, cover = scenes.render_columns(layout, 32, torch.arange(start, start + 32))
        views = scenes.crop_views(scene_set.panoramas[:4], torch.full((4, 1), start), 32)[:, 0]
        assert torch.equal(alone, views), start
        cols = torch.remainder(torch.arange(start, start + 32), Wc)
        assert torch.equal(cover, scene_set.coverage[:4, :, cols])
    columns = torch.randint(0, Wc, (12, 5), generator=torch.Generator().manual_seed(0))
    assert torch.equal(scene_set.views(columns), crop(scene_set.panoramas, columns, 32))


def test_view_labels_are_the_objects_whose_projection_falls_in_the_view(scene_set):
    """Labels against the geometry: an object whose centre's bearing is well inside a view is seen by it;
    one whose footprint circle projects wholly outside it is not; and against the pixel count."""
    Wc, deg = 192, 360.0 / 192
    L = scene_set.layout
    for i in range(len(scene_set)):
        for start in range(0, Wc, 8):
            seen = set(scenes.view_objects(scene_set, i, start))
            for s in range(int(L["count"][i])):
                bx, by, _ = scenes.KIND_SPECS[int(L["kind"][i, s])].bound
                half = float(torch.rad2deg(torch.asin(torch.tensor(min(1.0, (bx**2 + by**2) ** 0.5 / float(L["distance"][i, s]))))))
                centre = (float(L["bearing"][i, s]) - deg * (start + 16) + 180.0) % 360.0 - 180.0  # from the view's centre
                if abs(centre) < 30.0 - 0.5 * half:
                    assert s in seen, (i, start, s)
                if abs(centre) > 30.0 + half + deg:
                    assert s not in seen, (i, start, s)
                cols = torch.remainder(torch.arange(start, start + 32), Wc)
                share = scene_set.coverage[i, s, cols].sum() / scene_set.coverage[i, s].sum()
                assert (s in seen) == bool(share >= scenes.VISIBLE_FRACTION)
            assert seen <= set(range(int(L["count"][i])))


def test_every_object_is_drawn_once_and_stands_in_its_sector(scene_set):
    L = scene_set.layout
    for i in range(len(scene_set)):
        n = int(L["count"][i])
        assert 3 <= n <= 6 and (L["kind"][i, n:] == -1).all()
        kinds = L["kind"][i, :n].tolist()
        assert len(set(kinds)) == n
        assert (scene_set.coverage[i, :n].sum(-1) > 3).all() and (scene_set.coverage[i, n:] == 0).all()
    # Lifted onto the floor: an object's lowest point is at z = 0 (within the tracer's tolerance).
    low = scenes.lowest_point(L["kind"][0, :3], L["instance"][0, :3])
    assert torch.allclose(low + L["lift"][0, :3], torch.zeros(3))


def test_deterministic_from_the_seed_and_prefix_stable(scene_set):
    again = scenes.generate_scenes(SceneConfig(n=4, seed=3))
    assert torch.equal(again.panoramas, scene_set.panoramas[:4])
    assert all(torch.equal(v, scene_set.layout[k][:4]) for k, v in again.layout.items())
    other = scenes.sample_layouts(SceneConfig(n=4, seed=4))
    assert not torch.equal(other["bearing"], scene_set.layout["bearing"][:4])


def test_captions_round_trip_and_synonyms(scene_set):
    text = scene_caption([(0, 0), (1, 2)], 1)
    assert text == "a red mug and a blue duck on a green floor"
    assert parse_scene_prompt(text) == parse_scene_prompt("a crimson cup and an azure duckling on an emerald floor")
    for i in range(4):
        for start in (0, 50, 100):
            q = parse_scene_prompt(scene_set.caption(i, start))
            slots = scenes.view_objects(scene_set, i, start)
            assert q.floor == int(scene_set.layout["floor"][i])
            assert list(q.objects) == [(int(scene_set.layout["kind"][i, s]), int(scene_set.layout["colour"][i, s])) for s in slots]


def test_restricted_kinds_and_colours():
    ds = scenes.sample_layouts(SceneConfig(n=20, kinds=("cup", "duck", "tree"), colours=("red", "golden")))
    assert set(ds["kind"].flatten().tolist()) <= {-1, 0, 1, 10}
    assert set(ds["colour"].flatten().tolist()) <= {-1, 0, 3} and set(ds["floor"].tolist()) <= {0, 3}


@pytest.mark.parametrize("options, message", [
    ({"kinds": ("zebra",)}, "unknown kind 'zebra'"),
    ({"max_objects": 7}, "a scene holds at most 6"),
    ({"kinds": ("mug", "duck"), "max_objects": 3}, "2 are allowed"),
    ({"min_objects": 5, "max_objects": 4}, "at most max_objects=4"),
    ({"res": 48}, "res=48"),
])
def test_bad_config_is_refused(options, message):
    with pytest.raises(InputError, match=message):
        SceneConfig(**options)


def test_bad_options_one_line_exit_2_before_torch(tmp_path):
    argvs = [["toyworld", "--scenes", "--kinds", "mug", "zebra", "--out", "o"],
             ["toyworld", "--scenes", "--max-objects", "7", "--out", "o"],
             ["toyworld", "--scenes", "--kinds", "mug", "duck", "--max-objects", "3", "--out", "o"],
             ["toyworld", "--scenes", "--colours", "red", "mug", "--out", "o"],
             ["toyworld", "--max-objects", "3", "--out", "o"]]
    code = ("import sys, diffrep.cli\n"
            f"codes = [diffrep.cli.main(argv) for argv in {argvs!r}]\n"
            "assert codes == [2] * len(codes) and 'torch' not in sys.modules, codes\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == len(argvs) and all(line.startswith("diffrep: error: ") for line in lines), lines
    assert list(tmp_path.iterdir()) == []


def test_cli_writes_panoramas_and_scenes_json(tmp_path):
    import json

    from diffrep.cli import main

    assert main(["toyworld", "--scenes", "--n", "3", "--seed", "1", "--out", str(tmp_path / "s")]) == 0
    meta = json.loads((tmp_path / "s" / "scenes.json").read_text())
    assert len(meta["scenes"]) == 3 and (tmp_path / "s" / "panorama-00002.png").exists()
    assert meta["scenes"][0]["views"][0]["caption"].endswith("floor")
