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


# The empirical prior over scene views.

@pytest.fixture(scope="module")
def scene_prior(tmp_path_factory):
    import os

    from diffrep.priors import load

    old = os.environ.get("DIFFREP_CACHE_DIR")
    os.environ["DIFFREP_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    try:
        yield load("toyworld-scenes", n=6, seed=3, view_stride=16)
    finally:
        os.environ.pop("DIFFREP_CACHE_DIR") if old is None else os.environ.__setitem__("DIFFREP_CACHE_DIR", old)


def test_scene_prior_views_and_labels_are_the_scene_sets(scene_prior, scene_set):
    """The prior's data are the 8-bit crops every 16 columns of the same scenes, and a query selects exactly
    the views whose objects (by ``view_objects``) and floor match it."""
    assert len(scene_prior) == 6 * 12
    columns = torch.arange(0, 192, 16).expand(6, -1)
    views = scenes.crop_views(scene_set.panoramas[:6], columns, 32).flatten(0, 1)
    assert (scene_prior.data - views).abs().max() <= 1 / 127.5 + 1e-6
    L = scene_set.layout
    objects = [[(int(L["kind"][i, s]), int(L["colour"][i, s])) for s in scenes.view_objects(scene_set, i, int(j))]
               for i in range(6) for j in range(0, 192, 16)]
    floors = [int(L["floor"][i]) for i in range(6) for _ in range(12)]
    kind, colour = objects[5][0] if objects[5] else (0, 0)
    for q in [scene_text.SceneQuery(((kind, colour),)), scene_text.SceneQuery(((kind, None),), floors[5]),
              scene_text.SceneQuery(((None, colour),)), scene_text.SceneQuery((), floors[0])]:
        want = [v for v in range(len(objects)) if (q.floor is None or floors[v] == q.floor) and all(
            any((k is None or k == ok) and (c is None or c == oc) for ok, oc in objects[v]) for k, c in q.objects)]
        assert scene_prior.subset(q).tolist() == want, q


def test_scene_prior_denoiser_against_float64_brute_force(scene_prior):
    from diffrep.priors.base import noise_levels

    g = torch.Generator().manual_seed(0)
    q = scene_prior.encode_prompt(scene_text.scene_caption([], int(scene_prior.floor[0])))
    x_t = torch.randn(3, 3, 32, 32, generator=g)
    t = torch.tensor([50, 300, 900])
    for cond in (None, q):
        X = scene_prior.data[scene_prior.subset(cond)].double().flatten(1)
        a, s = noise_levels(scene_prior.alphas_cumprod, t, torch.float64)
        d2 = ((x_t.double().flatten(1)[:, None] - a.view(-1, 1, 1) * X[None]) ** 2).sum(-1)
        w = torch.softmax(-d2 / (2 * s.view(-1, 1) ** 2), 1)
        x0 = (w @ X).view(-1, 3, 32, 32)
        eps = (x_t.double() - a.view(-1, 1, 1, 1) * x0) / s.view(-1, 1, 1, 1)
        assert torch.allclose(scene_prior.eps(x_t, t, cond).double(), eps, atol=2e-3), cond


def test_scene_prompts_are_checked_before_torch():
    code = ("import sys\nfrom diffrep.priors import check_prompt, prior_config\nfrom diffrep.errors import InputError\n"
            "c = prior_config('toyworld-scenes')\ncheck_prompt(c, 'a red mug and a blue duck on a green floor')\n"
            "try:\n    check_prompt(c, 'a red zebra')\nexcept InputError as e:\n    print(e)\n"
            "assert 'torch' not in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "unknown word 'zebra'" in done.stdout, done.stderr


# A panorama's prompt names the scene (docs/reps.md, per-view conditioning).

def scene_objects(scene_set, i: int) -> set[tuple[int, int]]:
    """The (kind, colour) objects scene ``i``'s views see, every 16 columns (brute force over ``view_objects``)."""
    L = scene_set.layout
    return {(int(L["kind"][i, s]), int(L["colour"][i, s])) for j in range(0, 192, 16)
            for s in scenes.view_objects(scene_set, i, j)}


def test_scene_prompt_selects_every_view_of_the_scenes_holding_its_objects(scene_prior, scene_set):
    """Objects no single view sees together are refused as a view prompt, accepted as a scene prompt, which
    selects all 12 views of each scene holding both (and its floor)."""
    held = [scene_objects(scene_set, i) for i in range(6)]
    L = scene_set.layout
    views_of = {o: {j for j in range(0, 192, 16) for s in scenes.view_objects(scene_set, 0, j)
                    if (int(L["kind"][0, s]), int(L["colour"][0, s])) == o} for o in held[0]}
    a, b = next((a, b) for a in held[0] for b in held[0] if a != b and not views_of[a] & views_of[b])
    text = scene_caption([a, b], int(L["floor"][0]))
    with pytest.raises(InputError, match="no scene view matches"):
        scene_prior.encode_prompt(text)
    cond = scene_prior.encode_scene_prompt(text)
    assert cond == scene_text.ScenePrompt(parse_scene_prompt(text))
    want = [v for v in range(72) if {a, b} <= held[v // 12] and int(L["floor"][v // 12]) == int(L["floor"][0])]
    assert scene_prior.subset(cond).tolist() == want and want[:12] == list(range(12))
    assert scene_prior.encode_scene_prompt("") is None


def test_scene_prompt_falls_back_to_the_scenes_holding_most_of_it(scene_prior, scene_set):
    """No scene holds every object of the prompt: the views of the scenes holding the most of its items."""
    held = [scene_objects(scene_set, i) for i in range(6)]
    everything = sorted(set().union(*held))
    cond = scene_text.ScenePrompt(scene_text.SceneQuery(tuple(everything)))
    counts = [len(h) for h in held]
    assert max(counts) < len(everything)
    want = [v for v in range(72) if counts[v // 12] == max(counts)]
    assert scene_prior.scene_items(cond).tolist() == counts and scene_prior.subset(cond).tolist() == want


def test_panorama_runs_take_the_scene_prompt(scene_prior, scene_set, monkeypatch):
    """diffrep.sample on the panorama rep conditions its views on the ScenePrompt (multidiffusion and ddrep)."""
    import diffrep

    L = scene_set.layout
    text = scene_caption(sorted(scene_objects(scene_set, 0))[:3], int(L["floor"][0]))
    seen = []
    real = scene_prior.eps
    monkeypatch.setattr(scene_prior, "eps", lambda x, t, cond=None: seen.append(cond) or real(x, t, cond))
    for method, options in [("multidiffusion", {}), ("ddrep", {"width": 16, "depth": 1, "adam_iters": 1})]:
        seen.clear()
        result = diffrep.sample(scene_prior, rep="panorama", method=method, prompt=text, n=1, steps=2, **options)
        assert result.images.shape == (1, 3, 32, 192) and torch.isfinite(result.images).all()
        conds = [c for cs in seen for c in (cs if isinstance(cs, list) else [cs])]
        assert scene_text.ScenePrompt(parse_scene_prompt(text)) in conds, method
