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


@pytest.mark.parametrize("mode", ["layout", "set"])
def test_panorama_runs_take_the_scene_prompt(scene_prior, scene_set, monkeypatch, tmp_path, mode):
    """diffrep.sample on the panorama rep conditions its views through the scene prompt (multidiffusion and
    ddrep): with "set" every view on the ScenePrompt; with "layout" (the default) each view on the objects its
    field of view holds in the layout drawn from the seed, which run.json records."""
    import json

    import diffrep
    from diffrep.priors.scenes import scene_layout

    L = scene_set.layout
    text = scene_caption(sorted(scene_objects(scene_set, 0))[:3], int(L["floor"][0]))
    monkeypatch.setattr(scene_prior, "scene_prompt", mode)
    seen = []
    real = scene_prior.eps
    monkeypatch.setattr(scene_prior, "eps", lambda x, t, cond=None: seen.append(cond) or real(x, t, cond))
    layout = scene_layout(parse_scene_prompt(text), 1, 4)
    for method, options in [("multidiffusion", {"stride": 8}), ("ddrep", {"width": 16, "depth": 1, "adam_iters": 1})]:
        seen.clear()
        result = diffrep.sample(scene_prior, rep="panorama", method=method, prompt=text, n=1, seed=4, steps=2, **options)
        assert result.images.shape == (1, 3, 32, 192) and torch.isfinite(result.images).all()
        conds = {c for cs in seen for c in (cs if isinstance(cs, list) else [cs])} - {None}
        if mode == "set":
            assert conds == {scene_text.ScenePrompt(parse_scene_prompt(text))} and "scene_layout" not in result.info
            continue
        if method == "multidiffusion":  # its 24 views, every 8 columns: all their conditions, and only those
            assert conds == set(layout.view_queries([list(range(0, 192, 8))], 32, 192)), conds
        else:
            assert conds <= set(layout.view_queries([list(range(192))], 32, 192)), conds
        assert len({c.objects for c in conds}) > 1  # views differ in what they are told to show
        saved = json.loads((result.save(tmp_path / f"{mode}-{method}") / "run.json").read_text())
        assert saved["scene_layout"] == layout.layout_record() and len(saved["scene_layout"][0]) == 3


# Layout conditioning (the default): each instance's objects stand at bearings drawn from the run's seed.

def inside_slow(bearing: float, column: int, width: int = 32, canvas_w: int = 192) -> bool:
    """Slow twin of ``ScenePrompt.view_query``'s test: the view's azimuths [360 j / Wc, 360 (j + W) / Wc)
    hold the bearing, or the bearing one turn on (the view across the seam)."""
    lo, hi = 360.0 * column / canvas_w, 360.0 * (column + width) / canvas_w
    return any(lo <= bearing + turn < hi for turn in (0.0, 360.0))


def near_slow(bearing: float, column: int, width: int = 32, canvas_w: int = 192) -> bool:
    """Slow twin of ``near_view``: outside the view, its centre less than width/8 columns (7.5 degrees at 32
    of 192) beyond the left or right edge, the seam included."""
    lo, hi, m = 360.0 * column / canvas_w, 360.0 * (column + width) / canvas_w, 360.0 * width / 8 / canvas_w
    return not inside_slow(bearing, column, width, canvas_w) and any(
        lo - m < bearing + turn < lo or hi <= bearing + turn < hi + m for turn in (-360.0, 0.0, 360.0))


def test_layout_views_name_exactly_the_objects_in_their_field_of_view():
    """Every start column against the slow twin, and the seam by hand: an object at 359 degrees (column
    191.5) is seen by views starting at 160..191 (wrapping), not by one starting at 0."""
    q = scene_text.SceneQuery(((0, 0), (1, 2), (None, 4)), floor=1)
    layout = ((359.0, 100.0, 120.0), (0.5, 250.0, 30.0))
    prompt = scene_text.ScenePrompt(q, layout)
    queries = prompt.view_queries([list(range(192))] * 2, 32, 192)
    for i in range(2):
        for j in range(192):
            inside = [(o, b) for o, b in zip(q.objects, layout[i]) if inside_slow(b, j)]
            # The slice of the view: which quarter of its 60 degrees, counted from its left edge, holds b.
            at = tuple(int(((b - 360.0 * j / 192) % 360.0) // 15.0) for _, b in inside)
            near = tuple(o for o, b in zip(q.objects, layout[i]) if near_slow(b, j))
            assert queries[i * 192 + j] == scene_text.SceneQuery(tuple(o for o, _ in inside), 1, only=True, at=at,
                                                                 near=near), (i, j)
    by_start = {j: prompt.view_query(0, j, 32, 192).objects for j in (0, 159, 160, 180, 191, 192 + 170)}
    assert by_start[0] == () and by_start[159] == () and all(by_start[j] == ((0, 0),) for j in (160, 180, 191, 362))
    assert prompt.view_query(0, 40, 32, 192).objects == ((1, 2), (None, 4))  # 100 and 120 degrees: both in view
    assert prompt.view_query(1, 191, 32, 192).objects == ((0, 0), (None, 4))  # 0.5 degrees is column 0.27
    assert prompt.view_query(0, 160, 32, 192).at == (3,) and prompt.view_query(0, 191, 32, 192).at == (0,)
    # 359 degrees (column 191.5) stands half a column beyond the view at 0 and the view at 159 (159..190): both may
    # see part of it; the view at 150 (150..181) ends 9.5 columns short of it, beyond the margin of 4.
    assert prompt.view_query(0, 0, 32, 192).near == ((0, 0),) and prompt.view_query(0, 159, 32, 192).near == ((0, 0),)
    assert prompt.view_query(0, 150, 32, 192).near == () and prompt.view_query(0, 180, 32, 192).near == ()


def test_layout_is_deterministic_from_the_seed_and_spread_like_scenes():
    from diffrep.priors.scenes import scene_layout

    q = parse_scene_prompt("a red mug, a blue duck and a green robot on a purple floor")
    a, b, c = scene_layout(q, 5, 7), scene_layout(q, 5, 7), scene_layout(q, 5, 8)
    assert a == b and a.layout != c.layout and scene_layout(q, 2, 7).layout == a.layout[:2]
    bearings = torch.tensor(a.layout)
    assert bearings.shape == (5, 3) and ((bearings >= 0) & (bearings < 360)).all()
    ordered = bearings.sort(1).values
    gaps = torch.cat([ordered.diff(dim=1), 360 - ordered[:, -1:] + ordered[:, :1]], 1)
    assert (gaps >= scenes.SPAN_DEG - 1e-9).all()  # one object per sector of 120 degrees, 50 kept free
    assert len({tuple(row.argsort().tolist()) for row in bearings}) > 1  # the objects' order round the circle varies


def test_layout_view_condition_selects_views_seeing_exactly_its_objects(scene_prior, scene_set):
    """``SceneQuery(..., only=True)``: the views seeing its objects on its floor and nothing else (brute force
    over ``view_objects``), the bare floor for none; where no view is exact, those holding the most of it."""
    L = scene_set.layout
    objects = [{(int(L["kind"][v // 12, s]), int(L["colour"][v // 12, s])) for s in scenes.view_objects(scene_set, v // 12, 16 * (v % 12))}
               for v in range(72)]
    floors = [int(L["floor"][v // 12]) for v in range(72)]
    single = next(o for o in objects if len(o) == 1)
    for q in (scene_text.SceneQuery(tuple(single), None, only=True),
              scene_text.SceneQuery(tuple(single), floors[objects.index(single)], only=True),
              scene_text.SceneQuery((), None, only=True)):
        want = [v for v in range(72) if objects[v] == set(q.objects) and (q.floor is None or floors[v] == q.floor)]
        assert want and scene_prior.subset(q).tolist() == want, q
    # With a place in the view: the views seeing it alone on its floor with its centre in that slice.
    o = next(iter(single))
    f = floors[objects.index(single)]
    checked = 0
    for at in range(scene_text.VIEW_BINS):
        q = scene_text.SceneQuery((o,), f, only=True, at=(at,))
        placed = [v for v in range(72) if objects[v] == {o} and floors[v] == f and any(
            (int(L["kind"][v // 12, s]), int(L["colour"][v // 12, s])) == o
            and scene_text.view_bin(float(L["bearing"][v // 12, s]), 16 * (v % 12), 32, 192) == at for s in range(6))]
        if placed:
            assert scene_prior.subset(q).tolist() == placed, at
            checked += 1
    assert checked >= 2
    # Two objects of scene 0 no view sees together: the views seeing most of them, then on the floor, then
    # seeing nothing else (the brute-force key, lexicographic).
    held = sorted(scene_objects(scene_set, 0))
    a, b = next((a, b) for a in held for b in held if a < b and not any({a, b} <= o for o in objects))
    q = scene_text.SceneQuery((a, b), floors[0], only=True)
    key = [(len({a, b} & objects[v]), floors[v] == floors[0], objects[v] <= {a, b}) for v in range(72)]
    assert scene_prior.subset(q).tolist() == [v for v in range(72) if key[v] == max(key)]
    # An object near the view (``near``: its centre just outside) may be seen in part: the views seeing the
    # query's object with it are kept beside those seeing the object alone, any other object still refused.
    pair = next(o for o in objects if len(o) == 2)
    v0 = objects.index(pair)
    a, b = sorted(pair)
    q = scene_text.SceneQuery((a,), floors[v0], only=True, near=(b,))
    want = [v for v in range(72) if a in objects[v] and objects[v] <= {a, b} and floors[v] == floors[v0]]
    assert v0 in want and scene_prior.subset(q).tolist() == want
    assert max(key)[0] == 1  # the fallback was taken
