"""Benchmark plumbing and the scoring of ``bench prior-quality`` (the suites themselves run under ``make bench``)."""

from __future__ import annotations

import json

import pytest
import torch

from diffrep import bench
from diffrep.bench import prior_quality as pq
from diffrep.bench import run_suite
from diffrep.errors import InputError
from diffrep.toyworld import FRONTED, KINDS, VIEWS


def test_score_views_of_kinds_without_a_front_only_count_overhead():
    ball, mug = KINDS.index("ball"), KINDS.index("mug")
    assert "ball" not in FRONTED and "mug" in FRONTED
    front, back, overhead = VIEWS.index("front"), VIEWS.index("back"), VIEWS.index("overhead")
    asked = torch.tensor([[ball, 0, front], [mug, 0, front], [mug, 1, overhead], [ball, 2, overhead]])
    got = {"kind": torch.tensor([ball, mug, ball, mug]), "colour": torch.tensor([0, 0, 1, 3]),
           "view": torch.tensor([back, back, overhead, front])}
    s = pq.score(asked, got)
    assert s["kind"] == 0.5 and s["colour"] == 0.75 and s["kind_and_colour"] == 0.5
    assert s["view"] == 0.5  # ball front->back is fine, mug front->back is not, ball overhead->front is not
    assert s["view_strict"] == 0.25
    assert s["all"] == 0.25


def test_prompt_sets_hold_out_what_they_say():
    from diffrep.priors.tiny.captions import HELD_OUT_COMBOS

    sets = pq.prompt_sets(60, seed=0)
    assert set(sets) == {"training_captions", "held_out_paraphrases", "held_out_combos"}
    for name, (texts, asked) in sets.items():
        assert len(texts) == len(asked) == 60 and all(texts)
        combos = set(map(tuple, asked[:, :2].tolist()))
        assert (combos <= HELD_OUT_COMBOS) == (name == "held_out_combos")
        assert combos & HELD_OUT_COMBOS == (combos if name == "held_out_combos" else set())
    # Only the two held-out full-caption templates: "a picture of a {c} {k} from the {v}", "a {k} in {c}, viewed ..."
    assert all("a picture of" in p or "viewed from the" in p for p in sets["held_out_paraphrases"][0])
    assert not any("a picture of" in p or "viewed from the" in p for p in sets["training_captions"][0])


def test_copy_check_tells_copies_from_new_images():
    g = torch.Generator().manual_seed(0)
    train, fresh = torch.rand(200, 3, 8, 8, generator=g), torch.rand(100, 3, 8, 8, generator=g)
    copies = pq.copy_check(train[:50] + 1e-3, fresh, train)
    new = pq.copy_check(torch.rand(50, 3, 8, 8, generator=g), fresh, train)
    assert copies["median_ratio_samples_over_fresh"] < 0.05 and copies["fraction_of_samples_nearer_than_fresh_p1"] == 1.0
    assert 0.8 < new["median_ratio_samples_over_fresh"] < 1.2 and new["fraction_of_samples_nearer_than_fresh_p1"] < 0.1


def test_run_suite_prior_errors(tmp_path):
    with pytest.raises(InputError, match="suite 'toyworld' does not take --prior; suites that do: .*prior-quality"):
        run_suite("toyworld", quick=True, results=tmp_path, prior="tiny")
    with pytest.raises(InputError, match="--prior-path needs --prior tiny"):
        run_suite("table1", quick=True, results=tmp_path, prior_path="x")
    with pytest.raises(InputError, match="unknown prior 'nosuch'"):
        run_suite("table1", quick=True, results=tmp_path, prior="nosuch")
    assert not any(tmp_path.iterdir())


def test_colour_labeller_reads_colour_not_shape():
    """A red square: in pixel space its nearest data image is the orange square (same shape),
    in colour space the red bar; kind comes from the pixel neighbour, colour from the colour one."""
    def image(rows: slice, cols: slice, rgb: list[float]) -> torch.Tensor:
        x = torch.full((1, 3, 8, 8), 0.6)  # the toy world's grey background
        x[..., rows, cols] = torch.tensor(rgb).view(1, 3, 1, 1)
        return x

    red, orange = [0.9, -0.6, -0.6], [0.9, 0.1, -0.6]
    data = torch.cat([image(slice(0, 8), slice(3, 5), red), image(slice(2, 6), slice(2, 6), orange)])
    labels = {"kind": torch.tensor([0, 1]), "colour": torch.tensor([0, 5]), "view": torch.tensor([0, 0])}
    got, _ = pq.nearest_labels(image(slice(2, 6), slice(2, 6), red), data, labels)
    assert got["kind"].item() == 1 and got["colour_pixel_nn"].item() == 5 and got["colour"].item() == 0


def test_conditioning_gaps_see_the_labels_a_prior_uses_and_none_it_ignores():
    """The exact empirical prior uses view and colour (positive gaps; dropping the prompt can even
    help it on fresh images, which it has never seen); the same prior with its prompts dropped
    uses nothing (gaps exactly 0)."""
    from diffrep.priors import load

    class Unconditional:
        def __init__(self, prior):
            self.prior, self.alphas_cumprod, self.image_shape = prior, prior.alphas_cumprod, prior.image_shape

        def encode_prompt(self, text):
            return None

        def eps(self, x_t, t, cond=None):
            return self.prior.eps(x_t, t, None)

    exact = load("toyworld", n=2000)
    rows = pq.conditioning_gaps(exact, n=16, ts=(400,))
    assert rows[0]["gap_wrong_view"] > 0 and rows[0]["gap_wrong_colour"] > 0
    ignored = pq.conditioning_gaps(Unconditional(exact), n=16, ts=(400,))
    assert all(ignored[0][f"gap_{k}"] == 0 for k in ("wrong_view", "wrong_colour", "none"))
    assert pq.text_feature_separation(exact) is None  # no text features to measure


def test_results_name_the_tiny_weights_they_ran_on(tmp_path, monkeypatch):
    """A suite on the tiny prior records the weights file and its SHA-256; on another prior, nothing."""
    import hashlib
    import sys
    import types

    from diffrep.priors.tiny import DEFAULT_WEIGHTS

    suite = types.ModuleType("fake_suite")
    suite.run = lambda quick, log, prior=None, prior_name="toyworld": {"prior": prior_name}
    monkeypatch.setitem(sys.modules, "fake_suite", suite)
    monkeypatch.setitem(bench.SUITES, "fake", "fake_suite")
    record = json.loads(run_suite("fake", quick=True, results=tmp_path, prior="tiny").read_text())
    assert record["prior_weights"] == {"file": "diffrep/priors/tiny/weights/tiny.safetensors (shipped)",
                                       "sha256": hashlib.sha256(DEFAULT_WEIGHTS.read_bytes()).hexdigest()}
    assert "prior_weights" not in json.loads(run_suite("fake", quick=True, results=tmp_path).read_text())
    suite.DEFAULT_PRIOR = "tiny"  # a suite whose own prior is the tiny one (prior-quality)
    assert json.loads(run_suite("fake", quick=True, results=tmp_path).read_text())["prior_weights"]["sha256"] == \
        hashlib.sha256(DEFAULT_WEIGHTS.read_bytes()).hexdigest()


def test_tiny_weights_record_of_a_run_folder(tmp_path):
    import hashlib

    (tmp_path / "tiny.safetensors").write_bytes(b"not really weights")
    record = bench.tiny_weights_record(str(tmp_path))
    assert record == {"file": str(tmp_path / "tiny.safetensors"), "sha256": hashlib.sha256(b"not really weights").hexdigest()}


def fake_nerf3d(monkeypatch, interrupt_at: int | None = None):
    """The nerf3d suite with its runs replaced by a fake that records them (and is killed at run ``interrupt_at``)."""
    from types import SimpleNamespace

    from diffrep.bench import nerf3d

    calls = []

    def fake_run(prior, reference, gt, prompt, method, seed, n, options, device="cpu", saturation=False):
        runs = [c for c in calls if c != "reference"]
        if len(runs) == fake_run.interrupt_at:
            raise KeyboardInterrupt
        calls.append(method)
        return ({"prompt": prompt, "method": method, "seed": seed, "seconds": 1.0,
                 "aggregate": {"occupancy_iou": len(runs) + 1}}, SimpleNamespace(rep=method))

    fake_run.interrupt_at = interrupt_at
    monkeypatch.setattr(nerf3d, "one_run", fake_run)
    monkeypatch.setattr(nerf3d, "nerf_outputs", lambda rep, formats: {"turntable-0.gif": rep.encode()})
    monkeypatch.setattr(nerf3d, "as_reference", lambda prior: calls.append("reference"))
    monkeypatch.setattr(nerf3d, "_keep_run", lambda result, runs, spec, key: f"{runs.name}/{result.rep}")
    return nerf3d, fake_run, calls


def test_nerf3d_keeps_finished_runs_and_a_rerun_skips_them(tmp_path, monkeypatch):
    """A suite of hours killed part-way loses only its current run: the rerun takes the others from the cache."""
    nerf3d, fake_run, calls = fake_nerf3d(monkeypatch, interrupt_at=2)  # killed during the third run
    cache = tmp_path / ".nerf3d-quick.cache"
    with pytest.raises(KeyboardInterrupt):
        nerf3d.run(quick=True, log=lambda s: None, prior=object(), cache=cache)
    assert calls == ["reference", "ddrep", "sds"]  # the labeller's images loaded once
    fake_run.interrupt_at = None
    figures = nerf3d.run(quick=True, log=lambda s: None, prior=object(), cache=cache)
    assert calls == ["reference", "ddrep", "sds", "reference", "sjc"]  # only the unfinished run ran again
    assert [r["method"] for r in figures["rows"]] == ["ddrep", "sds", "sjc"]
    assert [r["aggregate"]["occupancy_iou"] for r in figures["rows"]] == [1, 2, 3]
    assert [r["run_dir"] for r in figures["rows"]] == [f".nerf3d-quick.runs/{m}" for m in ("ddrep", "sds", "sjc")]
    assert figures["_files"] == {"duck-ddrep.gif": b"ddrep", "duck-sds.gif": b"sds", "duck-sjc.gif": b"sjc"}


def test_nerf3d_shards_run_each_run_once_and_the_last_call_writes_the_figures(tmp_path, monkeypatch):
    """`--shard 1/2` and `--shard 2/2` (two processes) split the runs between them; the suite without a shard then
    runs nothing and gives the figures of all of them, in the plan's order."""
    nerf3d, _, calls = fake_nerf3d(monkeypatch)
    cache = tmp_path / ".nerf3d-quick.cache"
    assert nerf3d.run(quick=True, log=lambda s: None, prior=object(), cache=cache, shard=(2, 2)) is None
    assert calls == ["reference", "sds"]
    assert nerf3d.run(quick=True, log=lambda s: None, prior=object(), cache=cache, shard=(1, 2)) is None
    assert calls == ["reference", "sds", "reference", "ddrep", "sjc"]
    figures = nerf3d.run(quick=True, log=lambda s: None, prior=object(), cache=cache)
    assert calls == ["reference", "sds", "reference", "ddrep", "sjc"]  # all from the cache: no images loaded
    assert [r["method"] for r in figures["rows"]] == ["ddrep", "sds", "sjc"]
    assert figures["_files"] == {"duck-ddrep.gif": b"ddrep", "duck-sds.gif": b"sds", "duck-sjc.gif": b"sjc"}


def test_nerf3d_camera_prior_section_runs_on_the_camera_conditioned_prior_alone(tmp_path, monkeypatch):
    """`--section camera-prior`: only the runs on the camera-conditioned prior, loaded with the suite's window, cached
    under their own keys (a default-prior row of the same prompt and method is not taken for one)."""
    nerf3d, _, calls = fake_nerf3d(monkeypatch)
    loaded = []
    monkeypatch.setattr(nerf3d, "toyworld_prior", lambda **options: loaded.append(options) or "camera prior")
    cache = tmp_path / ".nerf3d-quick.cache"
    assert [r["method"] for r in nerf3d.run(quick=True, log=lambda s: None, prior=object(), cache=cache)["rows"]] \
        == ["ddrep", "sds", "sjc"]
    assert loaded == []  # the quick suite without the section: the default prior only
    figures = nerf3d.run(quick=True, log=lambda s: None, prior=object(), cache=cache, section="camera-prior")
    assert loaded == [nerf3d.CAMERA_QUICK | {"device": "cpu"}] and calls[-1] == "ddrep"
    assert set(figures) == {"camera_prior", "_images", "_files"}
    assert figures["camera_prior"]["prior"] == {"name": "toyworld", **nerf3d.CAMERA_QUICK}
    assert [r["method"] for r in figures["camera_prior"]["rows"]] == ["ddrep"]
    full = nerf3d.camera_plan(quick=False)
    assert {(s["prompt"], s["method"]) for s in full} == {(p, m) for p in nerf3d.PROMPTS for m in nerf3d.METHODS}
    assert sorted(s["seed"] for s in full if s["method"] == "ddrep" and s["n"] == 1) == [0] * 6 + [1] * 6
    assert sorted((s["prompt"], s["method"], s["seed"]) for s in full if s["n"] > 1) == sorted(
        (p, "ddrep", seed) for p in nerf3d.PROMPTS[:2] for seed in (0, 1, 2, 3))
    assert all(bool(s.get("extra")) == (s["n"] > 1) for s in full)


def test_nerf3d_diversity_runs_4_instances_at_4_seeds_and_keeps_them_apart(tmp_path, monkeypatch):
    """3-D diversity "from 4 seeds of 2 prompts": the extra section runs 4 instances of the first two prompts with each
    method at seeds 0-3; on the camera-conditioned prior DDRep's such runs go to the section's own ``extra_rows``, not
    into the rows its per-method figures average."""
    from diffrep.bench import nerf3d

    diversity = [s for s in nerf3d.plan(quick=False) if s["n"] > 1]
    assert sorted((s["prompt"], s["method"], s["seed"]) for s in diversity) == sorted(
        (p, m, seed) for p in nerf3d.PROMPTS[:2] for m in nerf3d.METHODS for seed in (0, 1, 2, 3))
    assert all(s["extra"] for s in diversity)
    nerf3d, _, calls = fake_nerf3d(monkeypatch)
    monkeypatch.setattr(nerf3d, "toyworld_prior", lambda **options: "camera prior")
    quick = nerf3d.camera_plan(quick=True)
    monkeypatch.setattr(nerf3d, "camera_plan", lambda quick_: quick + [quick[0] | {"n": 4, "method": "four", "extra": True}])
    figures = nerf3d.run(quick=True, log=lambda s: None, prior=object(), cache=tmp_path / ".c", section="camera-prior")
    assert [r["method"] for r in figures["camera_prior"]["rows"]] == ["ddrep"]
    assert [r["method"] for r in figures["camera_prior"]["extra_rows"]] == ["four"]


def test_nerf3d_sections_partition_the_suite_and_each_writes_its_own_figures(tmp_path, monkeypatch):
    """The full suite is its four sections, each run once; `--section default-prior` gives only the main rows (and the
    prompts, seeds and settings they were run with), `extra` only the extra rows."""
    nerf3d, _, calls = fake_nerf3d(monkeypatch)
    key = lambda s: json.dumps(s, sort_keys=True)  # noqa: E731
    parts = [[key(s) for s in nerf3d.section_specs(False, name)] for name in nerf3d.SECTIONS]
    whole = [key(s) for s in nerf3d.section_specs(False, None)]
    assert sorted(sum(parts, [])) == sorted(whole) and len(set(whole)) == len(whole)
    assert all(parts) and not set(parts[0]) & set(parts[1])
    cache = tmp_path / ".nerf3d-quick.cache"
    figures = nerf3d.run(quick=True, log=lambda s: None, prior=object(), cache=cache, section="default-prior")
    assert set(figures) == {"prior", "prompts", "seeds", "settings", "rows", "_images", "_files"}
    assert [r["method"] for r in figures["rows"]] == ["ddrep", "sds", "sjc"]
    assert set(nerf3d.run(quick=True, log=lambda s: None, prior=object(), cache=cache, section="extra")) \
        == {"extra_rows", "_images", "_files"}


def test_nerf3d_lmc_sds_section_runs_the_dreamfusion_recipe_at_the_papers_guidance_scales(tmp_path, monkeypatch):
    """`--section lmc-sds` (issue 15, item 6): LMC-SDS at ω = 20 and SDS at ω = 100 and 20 and LMC-SDS with SDS's w(t)
    on every prompt at two seeds, LMC-SDS without its corrective (with and without 1/ω) and SDS with w(t) = 1 at ω = 20
    and 100 at seed 0, each with
    the suite's SDS settings; rows labelled by recipe,
    turntables named by it, the renders' saturation asked for."""
    nerf3d, fake_run, _ = fake_nerf3d(monkeypatch)
    asked = []
    monkeypatch.setattr(nerf3d, "one_run", lambda *a, saturation=False, **k: asked.append(saturation) or fake_run(*a, **k))
    figures = nerf3d.run(quick=True, log=lambda s: None, prior=object(), cache=tmp_path / ".c", section="lmc-sds")
    assert set(figures) == {"lmc_sds", "_images", "_files"} and asked == [True]
    assert [(r["method"], r["label"]) for r in figures["lmc_sds"]["rows"]] == [("lmc-sds", "lmc-sds-w20")]
    assert [s["options"]["guidance_scale"] for s in nerf3d.lmc_plan(quick=True)] == [20.0]
    full = nerf3d.lmc_plan(quick=False)
    seeds = {"sds-w100": (0, 1), "lmc-sds-w20": (0, 1), "sds-w20": (0, 1), "l-cond-w20": (0,), "l-cond-w20-unscaled": (0,),
             "sds-w20-one": (0,), "sds-w100-one": (0,), "lmc-sds-w20-s2": (0, 1)}
    assert sorted((s["prompt"], s["lmc"], s["seed"]) for s in full) == sorted(
        (p, label, seed) for p in nerf3d.PROMPTS for label in seeds for seed in seeds[label])
    changed = ("guidance_scale", "projection", "inverse_scale", "weighting")  # what the recipes set beyond the suite's SDS
    recipe = {label: (m, *(o.get(k) for k in changed)) for label, (m, o, _) in nerf3d.LMC_RECIPE.items()}
    assert recipe == {"sds-w100": ("sds", 100.0, None, None, None), "lmc-sds-w20": ("lmc-sds", 20.0, None, None, None),
                      "sds-w20": ("sds", 20.0, None, None, None), "l-cond-w20": ("lmc-sds", 20.0, "none", None, None),
                      "l-cond-w20-unscaled": ("lmc-sds", 20.0, "none", False, None),
                      "sds-w20-one": ("sds", 20.0, None, None, "one"), "sds-w100-one": ("sds", 100.0, None, None, "one"),
                      "lmc-sds-w20-s2": ("lmc-sds", 20.0, None, None, "s2")}
    assert all(s["method"] == nerf3d.LMC_RECIPE[s["lmc"]][0] and s["options"] == nerf3d.LMC_RECIPE[s["lmc"]][1]
               for s in full)
    assert all({k: v for k, v in s["options"].items() if k not in changed}
               == nerf3d.METHODS["sds"] for s in full)
    assert {(s["prompt"], s["lmc"]) for s in full if s["gif"]} == {(p, label) for p in nerf3d.PROMPTS[:2]
                                                                  for label in nerf3d.LMC_RECIPE}


def test_render_saturation_of_a_ground_truth_instance_equals_its_own(monkeypatch):
    """`render_saturation` renders the NeRF and the ground-truth instance it is scored against at the same cameras and
    light: an "NeRF" that is that instance has its saturation exactly; another instance of the kind another."""
    from diffrep.bench import nerf3d
    from diffrep.evaluate3d import GroundTruth, prompt_labels

    gt = GroundTruth(instances=4, grid=8)
    labels = prompt_labels("a yellow duck")
    monkeypatch.setattr(nerf3d, "nerf_objects", lambda rep: [gt.object(labels["kind"], labels["colour"], i) for i in rep])
    out = nerf3d.render_saturation([2, 3], gt, "a yellow duck", [{"best_instance": 2}, {"best_instance": 2}], 16)
    assert out["renders"][0] == out["ground_truth"][0] == out["ground_truth"][1] > 0.1  # a yellow duck is saturated
    assert out["renders"][1] != out["renders"][0] and 0 < out["renders"][1] < 1
    assert out["mean"] == pytest.approx(sum(out["renders"]) / 2, abs=1e-4)


@pytest.mark.parametrize("shard", ["0/2", "3/2", "1/1", "a/b", "2"])
def test_a_bad_shard_is_refused_before_the_suite_runs(shard, tmp_path):
    with pytest.raises(InputError, match="--shard"):
        run_suite("nerf3d", quick=True, results=tmp_path, shard=shard)
    assert list(tmp_path.iterdir()) == []


def test_a_suite_without_a_cache_does_not_take_a_shard(tmp_path):
    with pytest.raises(InputError, match="does not take --shard; suites that do: nerf3d"):
        run_suite("table1", quick=True, results=tmp_path, shard="1/2")


def test_sd_cost_quick_produces_its_figures(tmp_path):
    """`diffrep bench sd-cost --quick`: tiny components of SD's kinds, every figure the full suite reports (seconds)."""
    pytest.importorskip("diffusers")
    record = json.loads(run_suite("sd-cost", quick=True, results=tmp_path, log=lambda s: None).read_text())
    figures = record["figures"]
    assert record["command"] == "diffrep bench sd-cost --quick" and figures["unet_batch"] == 16
    assert figures["latent_shape"] == [4, 16, 16] and figures["decode_s"] > 0
    for row in (figures["ddim"], figures["ddrep"]["default"], figures["sds"], figures["sjc"]):
        assert len(row["steps_s"]) == figures["timed_steps"] and row["step_s"] > 0
    ratio = figures["ratios"]["default"]
    assert ratio["per_step"] > 0 and ratio["run_100_steps"] > 0 and "solve_s_per_step" in ratio
    for row in (figures["ddim"], figures["ddrep"]["default"], figures["sds"], figures["sjc"]):
        assert 0 < row["unet_s"] <= row["step_s"] and row["own_s"] >= 0  # the UNet's share of each step, and the rest
    ddim, ddrep = figures["ddim"], figures["ddrep"]["default"]
    assert ratio["same_unet"]["per_step"] == round((ddim["unet_s"] + ddrep["own_s"]) / (ddim["unet_s"] + ddim["own_s"]), 3)
    assert figures["paper"]["ratio"] == 2.1
    assert figures["device"] == "CPU" and figures["dtype"] == "float32"


def test_bench_device_is_checked_before_the_suite_runs(tmp_path):
    """--device is for suites that take one (sd-cost), and names a device this machine has."""
    with pytest.raises(InputError, match="does not take --device; suites that do: nerf3d, sd-cost"):
        run_suite("table1", quick=True, results=tmp_path, device="cpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="device='cuda' is not allowed here; allowed: cpu"):
            run_suite("sd-cost", quick=True, results=tmp_path, device="cuda")
    assert not list(tmp_path.iterdir())


def test_sd_cost_builds_the_real_sd15_shape():
    """The full suite's components are SD 1.5's (860 M and 84 M parameters), built without running them."""
    diffusers = pytest.importorskip("diffusers")
    from diffrep.bench.sd_cost import SD15_UNET, SD15_VAE

    with torch.device("meta"):  # shapes only: no memory, no init cost
        unet, vae = diffusers.UNet2DConditionModel(**SD15_UNET), diffusers.AutoencoderKL(**SD15_VAE)
    assert round(sum(p.numel() for p in unet.parameters()) / 1e6) == 860
    assert round(sum(p.numel() for p in vae.parameters()) / 1e6) == 84


def test_object_runs_count_separate_appearances_around_the_circle():
    from diffrep.bench.panorama_scenes import object_runs

    seen = torch.tensor([[0, 0, 0, 0], [1, 1, 0, 0], [1, 0, 0, 1], [1, 0, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    assert object_runs(seen).tolist() == [0, 1, 1, 2, 1]  # row 2 wraps round the seam: one object


def test_blob_centres_find_each_object_once_round_the_seam():
    from diffrep.bench.panorama_scenes import blob_centres

    canvas = torch.zeros(3, 3, 16, 96) + torch.linspace(-0.6, 0.4, 16)[None, None, :, None]  # wall and floor rows
    canvas[0, :, 4:12, 20:25] = 0.9  # columns 20..24: centre 22, 5 x 8 pixels
    canvas[0, :, 6:10, 93:96] = -0.9  # wrapping round the seam: 93..98 = 93..95, 0..2, centre (93 + 98) // 2 = 95
    canvas[0, :, 6:10, 0:3] = -0.9
    canvas[0, 1, 8, 60] = 0.9  # one pixel: noise, not an object
    canvas[2, :, 8:, 40:57] -= 0.3  # a patch of floor a view wide in another shade: floor, no blob
    assert blob_centres(canvas) == [[(22, 40), (95, 24)], [], []]


def test_blob_chromaticity_is_the_albedo_s_under_any_shading():
    from diffrep.bench.panorama_scenes import chromaticity
    from diffrep.toyworld.objects import COLOUR_RGB

    shade = torch.linspace(0.35, 1.0, 20)
    for c in COLOUR_RGB:
        c = torch.tensor(c)
        pixels = c[:, None] * shade[None]  # the albedo shaded from dark to lit
        pixels = torch.cat([pixels, torch.full((3, 8), 0.9)], 1)  # and a white label
        torch.testing.assert_close(chromaticity(pixels * 2 - 1), c / c.sum(), atol=1e-5, rtol=0)


def test_blob_labeller_reads_ground_truth_scenes_of_a_prompt():
    """Calibration: fresh ground-truth panoramas of a prompt show as many blobs as objects, their colours read
    right, no object twice; kinds by silhouette well above chance (1/12) even on the quick prior's 60 scenes
    (0.97 of the objects present on the default 500, 24 prompts: docs/benchmarks.md)."""
    from diffrep.bench import panorama_scenes as ps
    from diffrep.priors import load
    from diffrep.toyworld.scene_text import ScenePrompt, parse_scene_prompt

    prior = load("toyworld-scenes", n=60, view_stride=16)
    labeller = ps.BlobLabeller(ps.data_scenes(prior))
    for prompt in ps.scene_prompts(prior, 2):
        q = parse_scene_prompt(prompt)
        labels = labeller(ps.prompt_scenes(q, 8, 32, 1))
        assert all(len(row) == len(q.objects) for row in labels)
        colours = sorted(c for _, c in q.objects)
        assert sum(sorted(c for _, c in row) == colours for row in labels) >= 7
        scores = ps.blob_scores(labeller, ps.prompt_scenes(q, 8, 32, 1), ScenePrompt(q))
        assert scores["objects_present_blobs"] >= 0.75 and scores["duplicated_canvases_blobs"] == 0


def test_panorama_scenes_quick_produces_its_figures(tmp_path):
    """`diffrep bench panorama-scenes --quick`: every method on one scene prompt, every metric (seconds)."""
    record = json.loads(run_suite("panorama-scenes", quick=True, results=tmp_path, log=lambda s: None).read_text())
    figures = record["figures"]
    assert record["command"] == "diffrep bench panorama-scenes --quick"
    assert [r["method"] for r in figures["rows"]] == ["ddrep", "ddrep-repaint", "sds", "sjc", "multidiffusion"]
    ddrep, repaint = figures["rows"][:2]
    assert ddrep["prior_evaluations"] == repaint["prior_evaluations"]  # equal prior evaluations
    for row in figures["rows"]:
        assert 0 <= row["objects_present"] <= 1 and 0 <= row["duplicated_canvases"] <= 1
        assert 0 <= row["objects_present_blobs"] <= 1 and 0 <= row["duplicated_canvases_blobs"] <= 1
        assert row["crop_nearest_rms"] > 0 and row["seam_ratio"] > 0 and row["overlap_disagreement_rms"] > 0
        assert row["prompt_panorama_rms"] > 0 and row["data_panorama_rms"] > 0
    assert figures["fresh_crop_nearest_rms"] > 0 and (tmp_path / "panorama-scenes-quick-canvases.png").exists()
    assert figures["scene_prompt"] == "layout" and figures["fresh_data_panorama_rms"] > 0
    assert all(v > 0 for v in figures["fresh_prompt_panorama_rms"].values())
    assert all(0 <= v["objects_present_blobs"] <= 1 for v in figures["fresh_prompt_blobs"].values())


def test_lmc_image_statistics_against_closed_forms():
    """bench lmc's statistics on images whose values are known: HSV saturation, the radial power spectrum of a
    cosine, the log-spectrum distance, the mean pairwise RMS."""
    from diffrep.bench.lmc import mean_pairwise_rms, radial_spectrum, saturation, spectrum_distance

    grey = torch.full((1, 3, 8, 8), 0.2)
    red = torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1).expand(1, 3, 8, 8)
    half = grey.clone()
    half[..., :4] = red[..., :4]
    torch.testing.assert_close(saturation(torch.cat([grey, red, half])), torch.tensor([0.0, 1.0, 0.5]))
    cols = torch.arange(16.0)
    wave = torch.cos(2 * torch.pi * 3 * cols / 16).view(1, 1, 1, 16).expand(1, 3, 16, 16) * 0.5
    s = radial_spectrum(torch.cat([wave, torch.zeros(1, 3, 16, 16)]))
    assert s.shape == (2, 8) and s[1].abs().max() == 0
    ring = sum(1 for ky in range(-8, 8) for kx in range(-8, 8) if round((ky * ky + kx * kx) ** 0.5) == 3)
    expected = torch.zeros(8)
    expected[2] = 2 * (0.5 * 16 * 16 / 2) ** 2 / (16 * 16) / ring  # two peaks of |F| = A·H·W/2, averaged over the ring
    torch.testing.assert_close(s[0], expected, atol=1e-5, rtol=1e-4)
    ref = torch.rand(5, 8) + 0.1
    assert spectrum_distance(ref, ref) == 0 and abs(spectrum_distance(10 * ref, ref) - 1) < 1e-5
    pair = torch.stack([grey[0], grey[0] + 0.3, grey[0] - 0.3])
    assert abs(mean_pairwise_rms(pair) - (0.3 + 0.3 + 0.6) / 3) < 1e-6


def test_lmc_quick_suite_writes_every_figure(tmp_path):
    """bench lmc --quick: every (prior, method, ω) row with every metric, the claims as booleans, the diversity
    ratio, every edit row, every grid; and what follows from the definitions."""
    from diffrep.bench.lmc import EDIT_METHODS, SYNTHESIS_METHODS

    record = json.loads(run_suite("lmc", quick=True, results=tmp_path, log=lambda s: None).read_text())
    f = record["figures"]
    assert record["command"] == "diffrep bench lmc --quick"
    assert f["methods"]["l_cond_only"] == {"method": "lmc-sds", "options": {"projection": "none"}}
    metrics = {"nearest_rms", "saturation", "saturation_in_data_range", "fraction_saturation_in_range",
               "spectrum_log10_rms", "kind_accuracy", "colour_accuracy", "fraction_pixels_outside_unit_range"}
    for prior in ("toyworld", "tiny"):
        sat = f["data"][prior]["saturation_p5_p95_mean"]
        assert 0 <= sat["p5"] <= sat["mean"] <= sat["p95"] <= 1
        assert set(f["synthesis"][prior]) == set(SYNTHESIS_METHODS)
        for rows in f["synthesis"][prior].values():
            assert set(rows) == {str(w) for w in f["guidance_scales"]}
            for row in rows.values():
                assert metrics <= set(row) and 0 <= row["kind_accuracy"] <= 1 and row["nearest_rms"] >= 0
                assert row["saturation_in_data_range"] == (sat["p5"] <= row["saturation"] <= sat["p95"])
        claims = f["claims"][prior]
        for key in ("lmc_saturation_in_data_range_at_100", "sds_saturation_in_data_range_at_100",
                    "lmc_in_range_where_sds_not_at_100", "lmc_nearer_data_than_sds_at_all_omega_le_10",
                    "fixed_eps_diversity_rise_ge_3x"):
            assert isinstance(claims[key], bool)
        assert claims["lmc_in_range_where_sds_not_at_100"] == (claims["lmc_saturation_in_data_range_at_100"]
                                                               and not claims["sds_saturation_in_data_range_at_100"])
        d = f["diversity"][prior]
        assert abs(d["ratio_fixed_over_standard"] - d["fixed_eps"]["mean_pairwise_rms"] / d["standard"]["mean_pairwise_rms"]) < 2e-3
    rows = f["editing"]["rows"]
    assert len(rows) == len(EDIT_METHODS) * len(f["editing"]["anchors"]) and {r["method"] for r in rows} == set(EDIT_METHODS)
    assert all(r["success"] <= min(r["target_colour_accuracy"], r["kind_and_view_kept"]) for r in rows)
    names = {p.rsplit("/", 1)[-1] for p in record["images"]}
    assert names == {f"lmc-quick-{n}.png" for n in ("synthesis-toyworld", "synthesis-tiny", "edit",
                                                    *(f"diversity-{p}-{v}" for p in ("toyworld", "tiny")
                                                      for v in ("standard", "fixed_eps")))}
    assert all((tmp_path / n).is_file() for n in names)


def test_lmc_diversity_compares_against_the_prompts_own_data(toy_prior):
    """bench.lmc.diversity: the data's spread is that of the images the prompt names, the kind's alone when the
    prompt leaves the colour free; the ratio is the two rows' spreads."""
    from diffrep.bench.lmc import Data, diversity, mean_pairwise_rms
    from diffrep.toyworld.vocabulary import COLOURS

    data = Data(toy_prior.data, {k: toy_prior.labels[k].long() for k in ("kind", "colour", "view")})
    mug = data.labels["kind"] == KINDS.index("mug")
    red = data.labels["colour"] == COLOURS.index("red")
    for prompt, same in ((("a red mug", "mug", "red"), mug & red), (("a mug", "mug", None), mug)):
        out = {"diversity": {}, "claims": {"toyworld": {}}, "timings_s": {}}
        images: dict = {}
        diversity("toyworld", toy_prior, data, out, images, lambda s: None, prompt, 3, 2, 3e-2, seed=0)
        d = out["diversity"]["toyworld"]
        expected = mean_pairwise_rms(data.images[same.nonzero()[:50, 0]])
        assert d["data_same_prompt_mean_pairwise_rms"] == round(expected, 4) and d["prompt"] == prompt[0]
        assert abs(d["ratio_fixed_over_standard"] - d["fixed_eps"]["mean_pairwise_rms"] / d["standard"]["mean_pairwise_rms"]) < 2e-3
        assert images["diversity-toyworld-standard"][0].shape == (3, *toy_prior.image_shape)
    assert mean_pairwise_rms(data.images[mug.nonzero()[:50, 0]]) != mean_pairwise_rms(data.images[(mug & red).nonzero()[:50, 0]])


def test_lmc_translation_quick_produces_its_figures(tmp_path):
    """`diffrep bench lmc-translation --quick`: a translator per loss for a few steps, the identity row, the table's
    scores per target and the image grid (seconds)."""
    record = json.loads(run_suite("lmc-translation", quick=True, results=tmp_path, log=lambda s: None).read_text())
    figures = record["figures"]
    assert record["command"] == "diffrep bench lmc-translation --quick"
    assert list(figures["rows"]) == ["input (identity)", "lmc-sds", "sds", "nfsd"]
    identity = figures["rows"]["input (identity)"]
    assert identity["kind"] == 0 and identity["colour"] == identity["view"] == 1 and identity["input_rms"] == 0
    assert identity["kind_silhouette"] == identity["all_silhouette"] == 0
    for row in figures["rows"].values():
        assert set(row["per_target"]) == {"duck", "chair", "house", "car"}
        assert all(0 <= row[k] <= 1 for k in ("kind", "colour", "view", "all"))
    assert all(figures["rows"][loss]["train_s"] > 0 for loss in ("lmc-sds", "sds", "nfsd"))  # from the checkpoints
    assert (tmp_path / "lmc-translation-quick-grid.png").exists()
    assert not (tmp_path / ".lmc-translation-quick.cache").exists()  # the translators' folders, gone with the JSON


@pytest.mark.parametrize("saturated", [False, True])
def test_silhouette_kind_reads_shapes_not_shading(saturated):
    """Leave one out on toy-world images, the kind of the nearest silhouette (or saturated body) is right; a mug
    re-shaded is still a mug, where the nearest image in pixels may call it something else: darkened and tinted
    for the silhouette; for the saturated body, its light scaled by 0.5 and by 1.2 (shading; a tint that moves
    pixels across the saturation threshold is its weak side: the tint here reads 4 of these 20 mugs as chairs
    and a car, docs/benchmarks.md)."""
    from diffrep.bench.lmc_translation import saturated_silhouettes, silhouette_kind, silhouettes
    from diffrep.priors import toyworld_prior
    from diffrep.toyworld.vocabulary import KINDS

    prior = toyworld_prior()
    x, kind = prior.data[:2000].float(), prior.labels["kind"][:2000]
    shape = saturated_silhouettes if saturated else silhouettes
    masks = shape(x)
    got = torch.stack([silhouette_kind(x[i:i + 1], torch.cat([masks[:i], masks[i + 1:]]),
                                       torch.cat([kind[:i], kind[i + 1:]]), shape)[0] for i in range(300)])
    assert (got == kind[:300]).float().mean() >= 0.97
    mugs = x[kind == KINDS.index("mug")][:20]
    body = silhouettes(mugs).view(-1, 1, 32, 32).bool()
    shadings = ([lambda m, s=s: ((m + 1) / 2 * s).clamp(0, 1) * 2 - 1 for s in (0.5, 1.2)] if saturated
                else [lambda m: m * 0.6 + torch.tensor([0.2, -0.3, 0.1])[:, None, None]])
    for shading in shadings:
        shaded = torch.where(body, shading(mugs), mugs)
        assert (silhouette_kind(shaded, masks, kind, shape) == KINDS.index("mug")).float().mean() >= 0.9


def test_saturated_body_reads_a_duck_inside_the_ghost_of_a_mug():
    """A duck drawn over a pale ghost of a mug's outline (what a long-trained translator outputs): the saturated
    body is read as a duck; the silhouette, pale pixels included, is not."""
    from diffrep.bench.lmc_translation import saturated_silhouettes, silhouette_kind, silhouettes
    from diffrep.priors import toyworld_prior
    from diffrep.toyworld.vocabulary import KINDS

    prior = toyworld_prior()
    x, kind = prior.data.float(), prior.labels["kind"]
    ducks, mugs = x[kind == KINDS.index("duck")][:20], x[kind == KINDS.index("mug")][:20]
    duck_mask = silhouettes(ducks).view(-1, 1, 32, 32).bool()
    ghost = silhouettes(mugs).view(-1, 1, 32, 32).bool() & ~duck_mask
    ghosted = torch.where(ghost, torch.full_like(ducks, 0.8), ducks)  # near-white: off the background, unsaturated
    by_body = silhouette_kind(ghosted, saturated_silhouettes(x), kind, saturated_silhouettes) == KINDS.index("duck")
    by_outline = silhouette_kind(ghosted, silhouettes(x), kind) == KINDS.index("duck")
    assert by_body.float().mean() >= 0.9 and by_outline.float().mean() < by_body.float().mean()


def test_nearest_panorama_rms_takes_the_nearest_scene_under_every_rotation():
    """Against a slow twin (every scene, every shift, the RMS by hand); a turned copy of a scene is at 0."""
    from diffrep.bench.panorama_scenes import nearest_panorama_rms

    g = torch.Generator().manual_seed(0)
    scenes, canvas = torch.randn(5, 3, 4, 12, generator=g), torch.randn(2, 3, 4, 12, generator=g)
    canvas[1] = scenes[3].roll(5, -1)
    slow = [min(((c.roll(s, -1) - p) ** 2).mean().sqrt().item() for p in scenes for s in range(12)) for c in canvas]
    got = nearest_panorama_rms(canvas, scenes)
    assert torch.allclose(got, torch.tensor(slow), atol=1e-5) and got[1] < 1e-5


def test_prompt_scenes_hold_exactly_the_prompts_objects_on_its_floor():
    """Ground-truth panoramas of a prompt: its objects, in its colours, on its floor, and nothing else."""
    from diffrep.bench.panorama_scenes import prompt_scene_layouts, prompt_scenes
    from diffrep.toyworld.scene_text import parse_scene_prompt

    assert prompt_scenes(parse_scene_prompt("a red object and a duck on a green floor"), 2, 32, 0) is None
    q = parse_scene_prompt("a red mug and a blue duck on a green floor")
    layout = prompt_scene_layouts(q, 5, 32, 0)
    assert layout["count"].tolist() == [2] * 5 and layout["floor"].tolist() == [1] * 5
    for i in range(5):
        assert sorted(zip(layout["kind"][i, :2].tolist(), layout["colour"][i, :2].tolist())) == [(0, 0), (1, 2)]
        assert (layout["kind"][i, 2:] == -1).all() and (layout["colour"][i, 2:] == -1).all()
    assert prompt_scenes(q, 2, 32, 0).shape == (2, 3, 32, 192)


def test_a_section_rerun_updates_the_suite_json_in_place(tmp_path):
    """`diffrep bench lmc --section editing --quick`: refused without an existing JSON or for an unknown section (one
    line, before any work); otherwise only the editing figures are replaced, the rest of the record is kept, and
    the rerun is recorded."""
    with pytest.raises(InputError, match="does not exist; run the whole suite first"):
        run_suite("lmc", quick=True, results=tmp_path, log=lambda s: None, section="editing")
    with pytest.raises(InputError, match="allowed: synthesis, diversity, editing"):
        run_suite("lmc", quick=True, results=tmp_path, log=lambda s: None, section="nope")
    with pytest.raises(InputError, match="suites with sections: nerf3d, lmc"):
        run_suite("speed", quick=True, results=tmp_path, log=lambda s: None, section="editing")
    old = {"suite": "lmc", "command": "diffrep bench lmc --quick", "images": ["x-synthesis.png"],
           "figures": {"synthesis": {"kept": 1}, "editing": {"rows": []}, "timings_s": {"synthesis_toyworld": 1.0}}}
    (tmp_path / "lmc-quick.json").write_text(json.dumps(old))
    record = json.loads(run_suite("lmc", quick=True, results=tmp_path, log=lambda s: None, section="editing").read_text())
    f = record["figures"]
    assert f["synthesis"] == {"kept": 1} and record["command"] == old["command"]
    assert f["timings_s"]["synthesis_toyworld"] == 1.0 and f["timings_s"]["edit"] > 0
    assert len(f["editing"]["rows"]) == 4 * len(f["editing"]["anchors"]) and f["editing"]["iters"] == 15
    assert [r["command"] for r in record["sections_rerun"]] == ["diffrep bench lmc --section editing --quick"]
    assert "x-synthesis.png" in record["images"] and any(p.endswith("lmc-quick-edit.png") for p in record["images"])


def test_nearest_iou_against_a_loop():
    """``metrics.nearest_iou`` (both labellers' silhouette match) equals the IoU argmax of a slow loop."""
    from diffrep.metrics import nearest_iou

    g = torch.Generator().manual_seed(0)
    masks, refs = torch.rand(7, 40, generator=g) > 0.6, torch.rand(30, 40, generator=g) > 0.5
    slow = [max(range(30), key=lambda j: ((m & refs[j]).sum() / (m | refs[j]).sum().clamp_min(1)).item()) for m in masks]
    assert nearest_iou(masks, refs).tolist() == slow
    assert nearest_iou(refs[3:5], refs).tolist() == [3, 4]  # a reference is its own nearest


def test_the_nerf3d_suite_runs_each_method_at_the_nerfs_defaults():
    """The suite names its settings (its cached runs are keyed by them), and they are what `diffrep sample --rep nerf
    --method M` runs without options: the NeRF's measured defaults (``RepEntry.method_defaults``)."""
    from diffrep.bench import nerf3d
    from diffrep.spec import run_spec

    for method, options in nerf3d.METHODS.items():
        assert run_spec("nerf", method, **options).options == run_spec("nerf", method).options, method
