"""The canvas rep (LMC-SDS's synthesis schedule): grey start, whole-canvas views against an explicit average
pool, patches as exact crops, gradients to the right pixels, bad options before the work, a run end to end."""

from __future__ import annotations

import json
import math

import pytest
import torch
from PIL import Image

import diffrep
from diffrep.cli import main
from diffrep.errors import InputError
from diffrep.reps import CanvasConfig, CanvasRep, make_rep


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_canvas(R: int = 8, S: int = 32, n: int = 2, **options) -> CanvasRep:
    rep = CanvasRep((3, R, R), n, CanvasConfig(size=S, **options), generator=gen())
    with torch.no_grad():
        rep.theta.copy_(torch.randn(rep.theta.shape, generator=gen(1)))
    return rep


def slow_area(canvas: torch.Tensor, y: int, x: int, side: int, R: int) -> torch.Tensor:
    """The slow twin of a window: output pixel (i, j) is the float64 mean of the canvas pixels
    [y + floor(i side/R), y + ceil((i+1) side/R)) x [x + floor(j side/R), x + ceil((j+1) side/R))."""
    out = torch.empty(canvas.shape[0], R, R, dtype=torch.float64)
    for i in range(R):
        for j in range(R):
            r0, r1 = y + math.floor(i * side / R), y + math.ceil((i + 1) * side / R)
            c0, c1 = x + math.floor(j * side / R), x + math.ceil((j + 1) * side / R)
            out[:, i, j] = canvas[:, r0:r1, c0:c1].double().mean((1, 2))
    return out


def test_the_canvas_starts_at_50_percent_grey():
    rep = make_rep("canvas", (3, 8, 8), 2, generator=gen(), size=24)
    assert rep.canvas_shape == (3, 24, 24) and torch.equal(rep.theta, torch.zeros(2, 3, 24, 24))
    assert torch.equal(rep(), torch.zeros(2, 1, 3, 8, 8))
    images, views = rep.preview()
    assert images.shape == (2, 3, 24, 24) and views is None
    assert make_rep("canvas", (3, 8, 8), 1, generator=gen()).canvas_shape == (3, 32, 32)  # default: 4x the prior's


def test_whole_phase_views_are_the_area_downscaled_canvas():
    rep = random_canvas(R=8, S=32, whole_phase=0.3)
    for progress in (0.0, 0.1, 0.299):
        views = rep.random_views(3, gen(), progress)
        assert views.tolist() == [[[0, 0, 32]] * 3] * 2
    x = rep(views)
    for i in range(2):
        twin = slow_area(rep.theta[i].detach(), 0, 0, 32, 8)
        for v in range(3):
            torch.testing.assert_close(x[i, v].double(), twin, rtol=0, atol=1e-6)
    torch.testing.assert_close(rep()[:, 0], torch.nn.functional.avg_pool2d(rep.theta, 4), rtol=0, atol=1e-6)


def test_patch_views_are_exact_crops_at_scale_one():
    rep = random_canvas(R=8, S=32)
    corners = set()
    for seed in range(20):
        views = rep.random_views(4, gen(seed), progress=0.3)
        x = rep(views)
        for i in range(2):
            for v, (y, c, side) in enumerate(views[i].tolist()):
                assert side == 8 and 0 <= y <= 24 and 0 <= c <= 24
                assert torch.equal(x[i, v], rep.theta[i, :, y:y + 8, c:c + 8])
                corners.add((y, c))
    assert {0, 24} <= {y for y, _ in corners} and {0, 24} <= {c for _, c in corners}  # both edges are reached


def test_larger_patches_are_average_pools_of_their_window():
    rep = random_canvas(R=8, S=32, max_patch=3, whole_phase=0.0)
    views = rep.random_views(8, gen(3))
    sides = views[..., 2]
    assert set(sides.flatten().tolist()) == {8, 16, 24}
    assert bool((views[..., :2] >= 0).all() and (views[..., :2] + sides[..., None] <= 32).all())
    x = rep(views)
    for i in range(2):
        for v, (y, c, side) in enumerate(views[i].tolist()):
            torch.testing.assert_close(x[i, v].double(), slow_area(rep.theta[i].detach(), y, c, side, 8), rtol=0, atol=1e-6)
    assert set(random_canvas(R=8, S=16, max_patch=5, whole_phase=0.0).random_views(16, gen())[..., 2].flatten().tolist()) \
        == {8, 16}  # at most the whole canvas


def test_gradients_reach_only_the_viewed_pixels_of_the_viewed_instance():
    rep = random_canvas(R=8, S=32)
    views = torch.tensor([[[5, 17, 8]], [[0, 0, 32]]])
    x = rep(views)
    (x[0].sum() + 2 * x[1].sum()).backward()
    expected = torch.zeros_like(rep.theta)
    expected[0, :, 5:13, 17:25] = 1.0  # the crop: each pixel once
    expected[1] = 2.0 / 16  # the whole canvas: each pixel a sixteenth of one output pixel
    assert torch.equal(rep.theta.grad, expected)
    rep.theta.grad = None
    rep(torch.tensor([[[5, 17, 8]], [[3, 4, 8]]]))[0].sum().backward()
    assert rep.theta.grad[1].abs().sum() == 0  # instances are independent


@pytest.mark.parametrize("argv,message", [
    (["--canvas.size", "100"], "size=100 is not allowed; it must be a multiple of the prior's resolution 32"),
    (["--canvas.size", "-32"], "size=-32 is not allowed"),
    (["--canvas.whole-phase", "-0.5"], "whole_phase=-0.5 is not allowed; it must be in [0, 1]"),
    (["--canvas.max-patch", "0"], "max_patch=0 is not allowed"),
    (["--method", "ddrep"], "rep 'canvas' does not take method 'ddrep'"),
    (["--method", "ddim"], "method 'ddim' samples images directly and needs rep 'pixels'"),
])
def test_bad_options_are_one_line_exit_2_before_the_prior_loads(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.setattr("diffrep.cli.load_prior", lambda config: pytest.fail("the prior was loaded"))
    out = tmp_path / "o"
    base = ["sample", "--rep", "canvas", "--method", "sds", "--prompt", "a red mug", "--out", str(out)]
    assert main(base + argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_bad_sizes_are_refused_by_the_api_before_the_prior_loads(monkeypatch):
    monkeypatch.setattr("diffrep.api.resolve_prior", lambda prior: pytest.fail("the prior was loaded"))
    with pytest.raises(InputError, match="size=24 is not allowed; it must be a multiple of the prior's resolution 16"):
        diffrep.sample("gmm", rep="canvas", method="sds", size=24)
    with pytest.raises(InputError, match="rep 'canvas' does not take method 'ddrep'"):
        diffrep.sample("gmm", rep="canvas", method="ddrep")
    with pytest.raises(InputError, match="needs a prior with square images"):
        make_rep("canvas", (3, 8, 12), 1, generator=gen())
    with pytest.raises(InputError, match="integer windows"):
        make_rep("canvas", (3, 8, 8), 1, generator=gen())(torch.zeros(1, 1, 3))


def test_sds_on_the_gmm_paints_the_whole_canvas_the_prompted_colour():
    """The analytic gmm (flat colours): whole-canvas views, then crops, turn the grey canvas red everywhere."""
    result = diffrep.sample("gmm", rep="canvas", method="sds", prompt="red", n=2, size=64, iters=150, lr=0.05,
                            lr_schedule="cosine", guidance_scale=3.0)
    canvas = result.images
    assert canvas.shape == (2, 3, 64, 64)
    quarters = canvas.unflatten(2, (2, 32)).unflatten(4, (2, 32)).mean((3, 5))  # [2, 3, 2, 2] per canvas quarter
    assert bool((quarters[:, 0] > 0.3).all() and (quarters[:, 1:] < -0.3).all()), quarters


def test_lmc_sds_on_the_gmm_end_to_end(tmp_path):
    from diffrep.methods.corrective import Corrective, CorrectiveConfig, prior_fingerprint, save_corrective
    from diffrep.priors import default_gmm

    prior = default_gmm()
    folder = tmp_path / "corrective"
    save_corrective(Corrective(prior.image_shape, 1000, CorrectiveConfig(4, 2)), folder, prior_fingerprint(prior, "gmm"), {})
    out = tmp_path / "run"
    argv = ["sample", "--prior", "gmm", "--rep", "canvas", "--method", "lmc-sds", "--lmc-sds.corrective", str(folder),
            "--canvas.size", "64", "--optim.iters", "20", "--optim.lr-schedule", "cosine", "--prompt", "red", "--n", "1",
            "--out", str(out)]
    assert main(argv) == 0
    from safetensors.torch import load_file

    assert load_file(out / "samples.safetensors")["images"].shape == (1, 3, 64, 64)  # the full canvas, not a view
    assert Image.open(out / "samples.png").size == (2 * 64 + 4, 2 * 64 + 4)  # image_grid: x2 below 128 px, padded
    record = json.loads((out / "run.json").read_text())
    assert record["config"]["rep"] == "canvas" and record["config"]["rep_options"]["size"] == 64
    rep, _ = diffrep.api.load_run(out, rep="canvas")
    assert rep.theta.shape == (1, 3, 64, 64) and rep.theta.abs().max() > 0  # moved from grey


def test_a_whole_phase_run_is_a_pixels_run_upsampled():
    """Whole-canvas views only: each canvas pixel gets 1/16 of its block's pixel gradient, which Adam's scale
    invariance undoes, so the canvas is the pixels rep's run, each pixel a 4 x 4 block (up to Adam's epsilon)."""
    common = dict(method="sds", prompt="red", n=2, seed=2, iters=30, lr=0.05, lr_schedule="cosine")
    canvas = diffrep.sample("gmm", rep="canvas", size=64, whole_phase=1.0, **common).images
    pixels = diffrep.sample("gmm", rep="pixels", **common).images
    assert pixels.abs().max() > 0.3  # the run moved the grey start
    torch.testing.assert_close(canvas, pixels.repeat_interleave(4, 2).repeat_interleave(4, 3), rtol=0, atol=1e-5)
