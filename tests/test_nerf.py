"""The NeRF diffrep: its view/noise contract, DDRep on it, its outputs, and bad input."""

from __future__ import annotations

import io
import json
import math

import pytest
import torch
from catalogue import NERF_OPTIONS, NERF_SAMPLE

import diffrep
from diffrep.cameras import VIEWS, view_label
from diffrep.cli import main
from diffrep.errors import InputError
from diffrep.methods import PullbackConfig, ddrep_sample
from diffrep.priors import default_gaussian
from diffrep.reps import NerfConfig, make_rep
from diffrep.schedule import timesteps

SMALL = {"resolution": 8, "samples": 8, "bank": 8, "elevation_max": 40.0}  # no overhead views: small data sets lack them


@pytest.fixture(scope="module")
def toy3000():
    """Enough toy-world images that every (kind, colour, view) a view prompt names has some."""
    return diffrep.priors.load("toyworld", n=3000)


def nerf(n=2, res=8, **options):
    return make_rep("nerf", (3, res, res), n, generator=torch.Generator().manual_seed(0), **(SMALL | options))


def test_views_are_stratified_over_the_bank_and_noise_is_per_camera():
    rep = nerf(bank=12)
    views = rep.random_views(4, torch.Generator().manual_seed(3))
    assert views.shape == (2, 4, 5)
    index = views[..., 0].long()
    assert (torch.diff(torch.sort(index, 1).values, dim=1) == 3).all()  # 4 of 12, evenly spaced
    lights = views[..., 1:4]
    assert torch.allclose(lights.norm(dim=-1), torch.ones(2, 4), atol=1e-5)
    noise = torch.randn(rep.noise_shape)
    assert rep.noise_shape == (2, 12, 3, 8, 8)
    assert torch.equal(rep.view_noise(noise, views)[1, 2], noise[1, index[1, 2]])
    labels = rep.view_labels(views)
    bank = rep.bank[index]
    assert labels == [[VIEWS[i] for i in row] for row in view_label(bank[..., 0], bank[..., 1]).tolist()]
    assert nerf(view_prompts=False).view_labels(views) is None


def test_shared_noise_gives_standard_normal_views_correlated_by_rho():
    assert nerf(bank=12).noise_shape == (2, 12, 3, 8, 8)  # independent states: no shared one, checkpoints as before
    rep = nerf(n=64, bank=12, shared_noise=0.3)
    assert rep.noise_shape == (64, 13, 3, 8, 8)
    noise = torch.randn(rep.noise_shape, generator=torch.Generator().manual_seed(0))
    views = rep.random_views(2, torch.Generator().manual_seed(1))
    e = rep.view_noise(noise, views)
    assert e.shape == (64, 2, 3, 8, 8)
    assert abs(e.std().item() - 1) < 0.02
    corr = torch.corrcoef(e.transpose(0, 1).reshape(2, -1))[0, 1].item()
    assert abs(corr - 0.3) < 0.03


class SharedImage(torch.nn.Module):
    """A rep whose ``V`` bank views all render one image ``θ``, its noise that of a NeRF's bank
    (``bank_view_noise``): a correct sampler gives ``θ`` the prior's distribution."""

    linear = True

    def __init__(self, n: int, bank: int, rho: float, shape=(3, 4, 4)):
        super().__init__()
        self.n, self.bank, self.rho, self.image_shape = n, bank, rho, shape
        self.theta = torch.nn.Parameter(torch.zeros(n, *shape))
        self.noise_shape = (n, bank + (rho > 0), *shape)

    def forward(self, views):
        return self.theta[:, None].expand(self.n, views.shape[1], *self.image_shape)

    def random_views(self, k, generator, progress=0.0):
        phase = torch.randint(0, self.bank, (self.n, 1), generator=generator)
        return ((phase + torch.arange(k) * self.bank // k) % self.bank)[..., None]

    def view_noise(self, noise, views):
        from diffrep.reps.nerf import bank_view_noise

        return bank_view_noise(noise, views[..., 0], self.rho)

    def solve_linear(self, views, targets):
        self.theta.copy_(targets.mean(1))


def test_independent_view_noise_shrinks_the_shared_spread_by_the_bank_and_shared_noise_restores_it():
    """DDRep's least squares averages the views' steps: with independent noise states what every view sees moves
    with the mean of their noises, and its samples' variance is ~1/V of the closed-form Gaussian prior's; with one
    shared state (rho = 1) it is image-space DDIM from that state, exactly (whose variance, 0.81 of the prior's at
    20 steps, is DDIM's discretisation); in between, linear in rho."""
    from diffrep.samplers import sample_ddim

    prior = default_gaussian(size=4)
    ts, n = timesteps(1000, 20), 2000

    def sample(rho):
        rep = SharedImage(n, 32, rho)
        g = torch.Generator().manual_seed(0)
        noise = ddrep_sample(prior, rep, ts, None, pull=PullbackConfig(solver="closed"), views_per_step=6, generator=g)
        x = rep.theta.detach().double().flatten(1)
        return x, torch.cov(x.T).trace().item() / prior.cov.trace().item(), noise

    x1, v1, noise = sample(1.0)
    ddim = sample_ddim(prior, noise[:, 0].clone(), ts).double().flatten(1)  # eta = 0: the states never change
    assert torch.allclose(x1, ddim, atol=1e-4)
    _, v0, _ = sample(0.0)
    assert v0 < 0.1 * v1  # 1/32 would be 0.03; 6 views a step, 20 steps
    _, vh, _ = sample(0.5)
    assert abs(vh - (0.5 * v1 + 0.5 * v0)) < 0.05


def test_render_shape_range_and_determinism():
    rep = nerf()
    views = rep.random_views(3, torch.Generator().manual_seed(0))
    x = rep(views)
    assert x.shape == (2, 3, 3, 8, 8) and x.min() >= -1 and x.max() <= 1
    assert torch.equal(x, rep(views))  # deterministic: stratified midpoints
    x.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in rep.parameters())
    images, strip = rep.preview()
    assert images.shape == (2, 3, 8, 64) and strip.shape == (2, 8, 3, 8, 8)


def test_ddrep_on_a_nerf_keeps_the_noise_states_standard_normal():
    """Every step updates the noise of every bank camera with the model-free kernel (design §5): with the
    closed-form Gaussian prior evaluated on a subset of views, the states stay N(0, I)."""
    prior = default_gaussian(size=8)
    rep = nerf(n=2, bank=32)
    g = torch.Generator().manual_seed(0)
    noise = ddrep_sample(prior, rep, timesteps(1000, 6), None, guidance_scale=1.0, eta=1.0, rounds=2,
                         pull=PullbackConfig(solver="adam", adam_iters=2), views_per_step=4, generator=g)
    assert noise.shape == (2, 32, 3, 8, 8)
    assert abs(noise.mean().item()) < 0.03 and abs(noise.std().item() - 1) < 0.03
    # A bank camera's state is not its initial draw any more: all were updated.
    first = torch.randn(rep.noise_shape, generator=torch.Generator().manual_seed(0))
    assert (noise - first).flatten(2).norm(dim=2).min() > 1


def test_sample_writes_turntables_meshes_and_resumes(tmp_path, toy3000):
    kw = dict(rep="nerf", method="ddrep", prompt="a yellow duck", n=1, steps=4, eta=0.5, rounds=2, seed=1,
              adam_iters=2, views_per_step=2, **SMALL)
    prior = toy3000
    full = diffrep.sample(prior, **kw)

    class Stop(Exception):
        pass

    def stop(d):
        if d["step"] == 3:
            raise Stop

    ckpt = tmp_path / "c"
    with pytest.raises(Stop):
        diffrep.sample(prior, checkpoint=ckpt, checkpoint_every=1, callback=stop, **kw)
    resumed = diffrep.sample(prior, checkpoint=ckpt, checkpoint_every=1, resume=True, **kw)
    assert torch.equal(full.images, resumed.images)
    out = full.save(tmp_path / "run")
    names = {p.name for p in out.iterdir()}
    assert {"turntable-0.gif", "turntable-0.mp4", "geometry-0.png", "mesh-0.glb", "mesh-0.obj", "mesh-0.ply",
            "rep.safetensors", "views.png", "samples.png", "run.json"} <= names
    assert set(json.loads((out / "run.json").read_text())["outputs"]) == names - {"run.json"}


def test_geometry_of_a_sphere_shows_its_normals_depth_and_opacity():
    """A hard sphere of radius 0.5 (the blob at density 60) with albedo 0.5: the front camera's centre pixel sees
    the point nearest the camera, whose normal is the eye direction; the corners see the background."""
    from diffrep.reps.nerf import AMBIENT, DIFFUSE, GEOMETRY_ROWS, default_light

    rep = nerf(n=1, res=16, resolution=24, samples=64, blob_density=60.0, blob_radius=0.5)
    with torch.no_grad():
        rep.field.grids.zero_()  # albedo sigmoid(0) = 0.5 everywhere
    g = rep.geometry(32)[0]  # [rows, 8, 3, 32, 32] in [-1, 1]
    assert g.shape == (len(GEOMETRY_ROWS), 8, 3, 32, 32)
    row = {name: g[i, 0] for i, name in enumerate(GEOMETRY_ROWS)}  # the front camera (azimuth 0, elevation 15)
    c = (slice(None), slice(15, 17), slice(15, 17))  # the four central pixels
    e = math.radians(15.0)
    eye = torch.tensor([math.cos(e), 0.0, math.sin(e)])
    torch.testing.assert_close(row["normals"][c].mean((1, 2)), eye, atol=0.05, rtol=0)
    assert (row["opacity"][c] > 0.98).all() and (row["opacity"][:, :2, :2] < -0.98).all()  # 1 and 0 in [0, 1]
    torch.testing.assert_close(row["albedo"][c], torch.zeros(3, 2, 2), atol=0.02, rtol=0)
    lit = min(1.0, AMBIENT + DIFFUSE * float(eye @ default_light(torch.tensor([0.0, 15.0, 3.2]))))
    torch.testing.assert_close(row["textureless"][c], torch.full((3, 2, 2), 2 * lit - 1), atol=0.03, rtol=0)
    depth = row["depth"][0]
    assert depth[15:17, 15:17].min() > depth[16, 4:12].max()  # the centre is nearest, the silhouette farthest
    assert (depth[:2, :2] == -1).all()  # no surface: black
    torch.testing.assert_close(rep.geometry()[0, 0], rep.preview()[1][0].clamp(-1, 1), atol=1e-5, rtol=0)  # the views'


def test_view_prompts_are_encoded_before_the_run(toy3000):
    with pytest.raises(InputError, match="prompt 'a red mug, front view' names a view"):  # ", back view" added
        diffrep.sample(toy3000, rep="nerf", method="ddrep",
                       prompt="a red mug, front view", steps=1, **SMALL)


def test_a_camera_conditioned_prior_conditions_each_view_on_its_bank_camera_and_its_label(toy3000):
    from diffrep.methods import view_conditions
    from diffrep.methods.base import ViewPrompt
    from diffrep.priors.empirical import CameraQuery

    prior = diffrep.priors.load("toyworld", n=3000, camera_window=(30, 20))
    rep = nerf()
    views = rep.random_views(3, torch.Generator().manual_seed(0))
    conds = view_conditions(ViewPrompt("a yellow duck", prior.encode_prompt, camera=prior.with_camera), rep, views)
    cameras = rep.bank[views[..., 0].long()].flatten(0, 1)
    labels = [label for row in rep.view_labels(views) for label in row]
    assert [(c.azimuth, c.elevation) for c in conds] == [(float(a), float(e)) for a, e, _ in cameras.tolist()]
    assert [c.query for c in conds] == [prior.encode_prompt(f"a yellow duck, {label} view") for label in labels]
    assert all(isinstance(c, CameraQuery) for c in conds)
    # A rep without cameras keeps the label conditions; a prompt without a camera-conditioned prior too.
    pixels = make_rep("pixels", (3, 8, 8), 2, generator=torch.Generator().manual_seed(0))
    assert view_conditions(ViewPrompt("a yellow duck", prior.encode_prompt, camera=prior.with_camera), pixels, None) \
        == prior.encode_prompt("a yellow duck")
    plain = view_conditions(ViewPrompt("a yellow duck", toy3000.encode_prompt), rep, views)
    assert plain == [c.query for c in conds]


def test_sampling_with_a_camera_window_asks_the_prior_at_the_bank_cameras_and_refuses_reps_without(toy3000):
    prior = diffrep.priors.load("toyworld", n=3000, camera_window=(30, 20))
    asked = []  # the condition of each denoised group
    posterior = prior.posterior
    prior.posterior = lambda x_t, t, cond: asked.append(cond) or posterior(x_t, t, cond)
    result = diffrep.sample(prior, rep="nerf", method="ddrep", prompt="a yellow duck", n=1, steps=2, adam_iters=2,
                            views_per_step=2, **SMALL)
    bank = {(float(a), float(e)) for a, e, _ in result.rep.bank.tolist()}
    conditional = [c for c in asked if c.query is not None]
    unconditional = [c for c in asked if c.query is None]  # CFG's: the empty prompt, at the view's camera
    assert len(conditional) == len(unconditional) == 2 * 2
    assert {(c.azimuth, c.elevation) for c in conditional} == {(c.azimuth, c.elevation) for c in unconditional} <= bank
    with pytest.raises(InputError, match="rep 'siren' has no cameras"):
        diffrep.sample(prior, rep="siren", method="ddrep", prompt="a yellow duck", n=1, steps=1)


def test_view_guidance_splits_guidance_into_the_prompts_and_the_views_parts(toy3000):
    from diffrep.methods import view_conditions
    from diffrep.methods.base import ViewPrompt
    from diffrep.priors.base import ViewGuided, cfg_eps

    rep, plain = nerf(view_guidance=7.5), nerf()
    views = rep.random_views(3, torch.Generator().manual_seed(0))
    prompt = ViewPrompt("a yellow duck", toy3000.encode_prompt)
    guided = view_conditions(prompt, rep, views)
    assert isinstance(guided, ViewGuided) and guided.views == view_conditions(prompt, plain, views)
    assert guided.free == [toy3000.encode_prompt("a yellow duck")] * 6 and guided.scale == 7.5
    g = torch.Generator().manual_seed(1)
    x_t, t = torch.randn(6, 3, 8, 8, generator=g), torch.full((6,), 600)
    x_t = torch.nn.functional.interpolate(x_t, size=toy3000.image_shape[-1])
    eps = lambda c: toy3000.eps(x_t, t, c)  # noqa: E731
    eps_v, eps_p, eps_0 = eps(guided.views), eps(guided.free), eps(None)
    for w, v in ((3.0, 7.5), (1.0, 0.5)):  # the formula, term by term
        want = eps_0 + w * (eps_p - eps_0) + v * (eps_v - eps_p)
        torch.testing.assert_close(cfg_eps(toy3000, x_t, t, ViewGuided(guided.views, guided.free, v), w), want)
    # At v = w it is classifier-free guidance of the view prompts.
    torch.testing.assert_close(cfg_eps(toy3000, x_t, t, ViewGuided(guided.views, guided.free, 3.0), 3.0),
                               cfg_eps(toy3000, x_t, t, guided.views, 3.0), atol=1e-5, rtol=1e-5)


def test_view_guidance_runs_where_guidance_is_cfg_alone_and_is_refused_elsewhere(toy3000):
    result = diffrep.sample(toy3000, rep="nerf", method="ddrep", prompt="a yellow duck", n=1, steps=2, adam_iters=2,
                            views_per_step=2, view_guidance=7.5, **SMALL)
    plain = diffrep.sample(toy3000, rep="nerf", method="ddrep", prompt="a yellow duck", n=1, steps=2, adam_iters=2,
                           views_per_step=2, **SMALL)
    assert result.info["prior_evaluations"] == 3 * 2 * 2 and plain.info["prior_evaluations"] == 2 * 2 * 2
    assert not torch.equal(result.images, plain.images)
    with pytest.raises(InputError, match="view_guidance needs a method whose guidance is classifier-free guidance alone; "
                                         "'nfsd' is not: use one of ddrep, sds, sjc, ms-sds"):
        diffrep.sample(toy3000, rep="nerf", method="nfsd", prompt="a yellow duck", n=1, view_guidance=7.5, **SMALL)


@pytest.mark.parametrize("argv,message", NERF_OPTIONS)
def test_bad_nerf_options_are_one_line_exit_2(tmp_path, capsys, argv, message):
    out = tmp_path / "o"
    code = main([*NERF_SAMPLE, "--out", str(out), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_export_reexports_and_refuses_what_is_not_a_nerf_run(tmp_path, capsys):
    prior_args = ["--prior", "toyworld", "--toyworld-n", "3000"]
    run = tmp_path / "run"
    assert main(["sample", "--rep", "nerf", "--method", "sds", "--prompt", "a yellow duck", "--n", "1", "--optim.iters",
                 "2", *[f"--nerf.{k.replace('_', '-')}={v}" for k, v in SMALL.items()], *prior_args,
                 "--out", str(run)]) == 0
    assert main(["export", str(run), "--format", "ply", "--resolution", "32"]) == 0
    assert "mesh-0.ply" in json.loads((run / "run.json").read_text())["outputs"]
    from PIL import Image

    with Image.open(run / "turntable-0.gif") as gif:
        width = gif.width  # the views' 8 pixels, scaled up
    assert main(["export", str(run), "--format", "gif", "geometry", "--size", "24", "--frames", "6"]) == 0
    with Image.open(run / "turntable-0.gif") as gif, Image.open(run / "geometry-0.png") as geometry:
        assert gif.width % 24 == 0 and gif.width != width  # re-rendered at 24 pixels, scaled up
        assert geometry.size == (8 * 25 + 1, 6 * 25 + 1)  # 8 cameras x 6 rows of 24-pixel tiles, 1-pixel gaps
    capsys.readouterr()
    for bad, message in ((["--size", "4"], "size=4"), (["--frames", "0"], "frames=0"), (["--format", "png"], "png")):
        assert main(["export", str(run), *bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    siren = tmp_path / "siren"
    assert main(["sample", "--rep", "siren", "--method", "sds", "--optim.iters", "1", "--siren.width", "8", "--n", "1",
                 "--prior", "gmm", "--prompt", "red", "--out", str(siren)]) == 0
    capsys.readouterr()
    for folder, message in ((siren, "holds a 'siren' run"), (tmp_path / "none", "not a diffrep result folder")):
        assert main(["export", str(folder)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    (run / "rep.safetensors").write_bytes(b"not safetensors")
    assert main(["export", str(run)]) == 2
    assert "is corrupt" in capsys.readouterr().err


def test_a_coarse_mesh_grid_still_meets_a_surface():
    """The mesh's level comes from the grid it is cut from: an untrained NeRF (the blob, density 5.0 at the centre)
    on an 8^3 grid, whose nearest points to the centre lie 0.25 away (density 2.6, below SURFACE_DENSITY), is cut at
    half its peak (`diffrep export RUN --resolution 8` failed with "no surface" when the level came from a 33^3
    lattice that holds the centre)."""
    import trimesh

    from diffrep.reps.nerf import SURFACE_DENSITY, nerf_outputs

    rep = nerf(n=1)
    for resolution in (8, 33):
        mesh = trimesh.load(io.BytesIO(nerf_outputs(rep, formats=("ply",), mesh_resolution=resolution)["mesh-0.ply"]),
                            file_type="ply")
        assert len(mesh.faces) > 0 and mesh.is_watertight
    centre = rep.density(torch.zeros(1, 1, 3))[0, 0].item()
    assert centre > SURFACE_DENSITY > rep.density(torch.full((1, 1, 3), 1 / 7))[0, 0].item()


def test_the_default_prompt_of_a_nerf_leaves_the_view_to_its_cameras(tmp_path):
    """``diffrep sample`` without --prompt: 'a red mug, front view' would name a view beside each camera's own, so a
    rep with view prompts gets 'a red mug'; without them (and for pixels) the view stays in."""
    small = ["--toyworld-n", "3000", "--n", "1", "--optim.iters", "1",
             *[f"--nerf.{k.replace('_', '-')}={v}" for k, v in SMALL.items()]]
    for extra, prompt in (([], "a red mug"), (["--nerf.no-view-prompts"], "a red mug, front view")):
        out = tmp_path / prompt.replace(" ", "-").replace(",", "")
        assert main(["sample", "--rep", "nerf", "--method", "sds", *small, *extra, "--out", str(out)]) == 0
        assert json.loads((out / "run.json").read_text())["config"]["prompt"] == prompt
    out = tmp_path / "pixels"
    assert main(["sample", "--toyworld-n", "3000", "--n", "1", "--steps", "2", "--out", str(out)]) == 0
    assert json.loads((out / "run.json").read_text())["config"]["prompt"] == "a red mug, front view"


def test_evaluate_and_export_run_from_python_are_what_the_command_line_runs(tmp_path, capsys, toy3000):
    """``diffrep.evaluate`` on a Result, on its saved folder and ``diffrep evaluate`` give one evaluation;
    ``diffrep.export_run`` re-exports into the folder; each refuses what is not a NeRF result in one line."""
    from diffrep.evaluate3d import GroundTruth, as_reference

    result = diffrep.sample(toy3000, rep="nerf", method="sds", prompt="a yellow duck", n=2, iters=2, seed=0,
                            views_per_step=2, **SMALL)
    run = result.save(tmp_path / "run")
    reference, truth = as_reference(toy3000), GroundTruth(16, 32)
    in_memory = diffrep.evaluate(result, reference=reference, ground_truth=truth)
    saved = diffrep.evaluate(run, reference=reference, ground_truth=truth)
    assert in_memory["setup"]["prompt"] == {"kind": "duck", "colour": "yellow"} and len(in_memory["instances"]) == 2
    assert in_memory["instances"] == saved["instances"] and in_memory["aggregate"] == saved["aggregate"]
    assert 0.0 < in_memory["aggregate"]["occupancy_iou"] < 1.0  # a 2-iteration blob: some overlap, not a duck
    assert main(["evaluate", str(run), "--reference-n", "3000"]) == 0  # the prior's 3000 images, the 64^3 default
    on_disk = json.loads((run / "eval.json").read_text())
    assert on_disk["instances"][0]["labels"] == diffrep.evaluate(run, reference=reference)["instances"][0]["labels"]
    written = diffrep.export_run(run, "ply", resolution=16)
    assert written == {"mesh-0.ply": run / "mesh-0.ply", "mesh-1.ply": run / "mesh-1.ply"}
    assert {"eval.json", "mesh-1.ply"} <= set(json.loads((run / "run.json").read_text())["outputs"])
    gmm = diffrep.sample("gmm", rep="nerf", method="sds", prompt="red", n=1, iters=1, view_prompts=False, **SMALL)
    setup = diffrep.evaluate(gmm, reference_n=3000)["setup"]  # views of a size the toy world has no images of
    assert gmm.rep.image_shape[-1] == 16 and setup["res"] == 32 and setup["prompt"] == {"colour": "red"}
    pixels = diffrep.sample("gmm", prompt="red", n=1, steps=2)
    for call, message in ((lambda: diffrep.evaluate(pixels), "result of rep 'pixels'; this needs a 'nerf' result"),
                          (lambda: diffrep.evaluate(42), "run must be a Result"),
                          (lambda: diffrep.evaluate(tmp_path / "none"), "not a diffrep result folder"),
                          (lambda: diffrep.evaluate(run, reference_n=0), "reference_n=0"),
                          (lambda: diffrep.export_run(result), "save it first"),
                          (lambda: diffrep.export_run(run, "png"), "png"),
                          (lambda: diffrep.export_run(run, resolution=4), "resolution=4")):
        with pytest.raises(InputError, match=message):
            call()


def test_nerf_config_validates_itself():
    with pytest.raises(InputError, match="samples=1 is not allowed"):
        NerfConfig(samples=1)
    with pytest.raises(InputError, match="elevation_max"):
        NerfConfig(elevation_min=30.0, elevation_max=10.0)


def test_centre_depth_loss_hand_computed():
    from diffrep.reps.nerf import centre_depth_loss

    depth = torch.zeros(1, 1, 8, 8)
    depth[..., 1:7, 1:7] = 2.0  # centre (50/64 of 8 -> the inner 6x6) at depth 2, border at 0
    depth[..., 0, :] = 0.5  # one border row at 0.5: border mean = 4 / 28
    assert centre_depth_loss(depth).item() == pytest.approx(-math.log(2.0 - 4 / 28), rel=1e-6)
    assert centre_depth_loss(torch.ones(1, 1, 8, 8)).item() == pytest.approx(-math.log(1e-4))  # floored, finite


def test_regularisers_are_the_stated_sums_and_act_in_every_loop():
    """Each view's penalty is the weighted sum over its rays of the entropy of its opacity and the
    orientation and emptiness terms (plus the centre-depth term and the field's total variation times its rays);
    zero weights: zeros."""
    weights = {"entropy_weight": 0.3, "orientation_weight": 0.7, "emptiness_weight": 0.2, "centre_depth_weight": 0.1,
               "tv_weight": 0.4}
    rep = nerf(**weights)
    views = rep.random_views(3, torch.Generator().manual_seed(0))
    x, penalty = rep.regularised(views)
    torch.testing.assert_close(x, rep(views))
    out = rep.render_cameras(rep.bank[views[..., 0].long()], views[..., 1:4], views[..., 4], outputs=True)
    o = out["opacity"].clamp(1e-5, 1 - 1e-5)
    entropy = -(o * o.log() + (1 - o) * (1 - o).log())
    emptiness = torch.log1p(10.0 * out["weights"]).mean(-1)
    from diffrep.reps.nerf import centre_depth_loss

    expected = (0.3 * entropy + 0.7 * out["orientation"] + 0.2 * emptiness).flatten(2).sum(-1)
    tv = rep.field.total_variation(8, occupancy=rep.occupancy())
    expected = expected + 0.1 * 64 * centre_depth_loss(out["depth"]) + 0.4 * 64 * tv[:, None]
    torch.testing.assert_close(penalty, expected)
    assert penalty.shape == (2, 3) and penalty.requires_grad
    assert torch.equal(nerf(entropy_weight=0.0, tv_weight=0.0).regularised(views)[1], torch.zeros(2, 3))
    tv_only = nerf(entropy_weight=0.0, tv_weight=0.4)  # without a render-based term: renders plus the TV alone
    tv = tv_only.field.total_variation(8, occupancy=tv_only.occupancy())
    torch.testing.assert_close(tv_only.regularised(views)[1], (0.4 * 64 * tv)[:, None].expand(2, 3))
    # The entropy alone, minimised by the adam pullback towards the current renders, makes rays less foggy.
    from diffrep.methods.solvers import pullback

    foggy = nerf(entropy_weight=1.0)
    before = foggy.regularised(views)[1].sum().item()
    pullback(foggy, views, foggy(views).detach(), PullbackConfig(adam_iters=30, adam_lr=0.05))
    assert foggy.regularised(views)[1].sum().item() < 0.7 * before
    # The total variation alone, likewise, smooths a rough grid's density.
    rough = nerf(entropy_weight=0.0, tv_weight=1.0)
    with torch.no_grad():
        rough.field.grids[:, 0].normal_(generator=torch.Generator().manual_seed(3))
    before = rough.field.total_variation(8).sum().item()
    pullback(rough, views, rough(views).detach(), PullbackConfig(adam_iters=30, adam_lr=0.05))
    assert rough.field.total_variation(8).sum().item() < 0.7 * before


@pytest.mark.parametrize("skip", [0.01, 0.0])
def test_total_variation_is_over_the_cells_the_render_keeps(skip, monkeypatch):
    """With skipping on, a view's TV is over the cells of the occupancy grid its render uses, computed once for
    both (the rough empty box around a small cube is not smoothed: the TV is less than the whole box's); off,
    the whole box's."""
    rep = nerf(entropy_weight=0.0, tv_weight=0.4, blob_density=0.0, skip_density=skip)
    with torch.no_grad():
        rep.field.grids[:, 0] = (-20.0 + 2.0 * torch.randn(rep.field.grids[:, 0].shape)) / rep.field.scale
        rep.field.grids[:, 0, 3:5, 3:5, 3:5] = 5.0 / rep.field.scale
    grids, made = rep.field.occupancy_grid, []
    monkeypatch.setattr(rep.field, "occupancy_grid", lambda *a: made.append(a) or grids(*a))
    views = rep.random_views(3, torch.Generator().manual_seed(0))
    penalty = rep.regularised(views)[1]
    assert len(made) == (1 if skip else 0)
    whole = rep.field.total_variation(8)
    tv = rep.field.total_variation(8, occupancy=grids(7, skip)) if skip else whole
    torch.testing.assert_close(penalty, (0.4 * 64 * tv)[:, None].expand(2, 3))
    if skip:
        assert 0 < grids(7, skip).float().mean() < 0.5 and (tv < whole).all()


def test_pixel_subsets_render_those_rays_and_average_to_the_whole_objective():
    """``pixels`` renders exactly those pixels of the whole render (and their regularisers, the centre-depth term
    too); over every subset of a size the pullback's subset objective averages to ``P / (H W)`` of the whole one,
    for the NeRF (ray batches) and for a rep that renders whole views (the pixels are kept, the penalty scaled)."""
    import itertools

    from diffrep.methods.solvers import regularised_error
    from diffrep.reps.pixels import PixelRep

    weights = {"entropy_weight": 0.3, "orientation_weight": 0.7, "emptiness_weight": 0.2, "centre_depth_weight": 0.1,
               "tv_weight": 0.4}
    rep = nerf(res=4, **weights)
    views = rep.random_views(2, torch.Generator().manual_seed(0))
    x, penalty = rep.regularised(views)
    pixels = torch.tensor([0, 5, 6, 15])
    sub, sub_penalty = rep.regularised(views, pixels)
    torch.testing.assert_close(sub, x.flatten(-2)[..., pixels])
    torch.testing.assert_close(rep(views, pixels), sub)
    torch.testing.assert_close(rep.regularised(views, torch.arange(16))[1], penalty)  # all pixels: the whole penalty

    class Penalised(PixelRep):  # renders whole views; a penalty that sums over pixels
        def regularised(self, views=None):
            x = self(views)
            return x, x.pow(2).flatten(2).sum(-1)

    # The centre-depth term is a log of means, not a sum over rays: it alone is not linear in the subset.
    linear_terms = nerf(res=4, **(weights | {"centre_depth_weight": 0.0}))
    subsets = [torch.tensor(c) for c in itertools.combinations(range(16), 3)]
    for model, v in ((linear_terms, views), (Penalised((3, 4, 4), 2, generator=torch.Generator().manual_seed(0)), None)):
        target = torch.randn_like(model(v))
        whole = regularised_error(model, v, target).item()
        mean = sum(regularised_error(model, v, target, c).item() for c in subsets) / len(subsets)
        assert mean == pytest.approx(3 / 16 * whole, rel=1e-4)


def test_ddrep_with_ray_batches_keeps_the_noise_stream_and_fits_the_targets():
    """``pixel_fraction < 1`` draws its subsets from a stream of its own: the noise states are those of whole-view
    pullbacks (they are model-free); and Adam on ray batches fits a fixed target about as well as on whole views."""
    from diffrep.methods.solvers import pullback

    prior = default_gaussian(size=8)
    runs = {}
    for fraction in (1.0, 0.5):
        rep = nerf(n=1)
        runs[fraction] = ddrep_sample(prior, rep, timesteps(1000, 4), None, guidance_scale=1.0, eta=1.0,
                                      pull=PullbackConfig(adam_iters=2, pixel_fraction=fraction), views_per_step=2,
                                      generator=torch.Generator().manual_seed(0))
    assert torch.equal(runs[1.0], runs[0.5])
    views = nerf(n=1).random_views(4, torch.Generator().manual_seed(1))
    target = nerf(n=1, blob_radius=0.8)(views).detach()  # a bigger blob: reachable
    errors = {}
    for fraction in (1.0, 0.5, 0.25):
        rep = nerf(n=1)
        pullback(rep, views, target, PullbackConfig(adam_iters=60, adam_lr=0.05, pixel_fraction=fraction))
        errors[fraction] = (rep(views) - target).pow(2).mean().item()
    start = (nerf(n=1)(views) - target).pow(2).mean().item()
    assert errors[1.0] < 0.2 * start and errors[0.5] < 0.3 * start and errors[0.25] < 0.4 * start, (start, errors)
    with pytest.raises(InputError, match=r"pixel_fraction=0 is not allowed; it must be a fraction in \(0, 1\]"):
        PullbackConfig(pixel_fraction=0)
    with pytest.raises(InputError, match="pixel_fraction=1.5"):
        PullbackConfig(pixel_fraction=1.5)


def test_albedo_warmup_shades_early_views_by_albedo_only():
    rep = nerf(albedo_warmup=0.25, shading="lambertian")
    g = torch.Generator().manual_seed(0)
    assert (rep.random_views(4, g, progress=0.1)[..., 4] == 0).all()
    assert (rep.random_views(4, g, progress=0.25)[..., 4] == 1).all()
    assert (nerf().random_views(4, g, progress=0.0)[..., 4] == 1).all()


def test_view_label_thresholds_default_to_the_toy_worlds_and_are_configurable():
    from diffrep.cameras import BACK_DEG, FRONT_DEG, OVERHEAD_DEG
    from diffrep.reps.nerf import bank_labels

    c = NerfConfig()
    assert (c.front_deg, c.back_deg, c.overhead_deg) == (FRONT_DEG, BACK_DEG, OVERHEAD_DEG)  # the prior's own labels
    rep = nerf(bank=12, elevation_max=60.0, overhead_deg=30.0)
    views = torch.tensor([[[i, 0, 0, 1, 1] for i in range(12)]] * 2, dtype=torch.float32)
    cams = rep.bank
    assert rep.view_labels(views)[0] == [VIEWS[i] for i in view_label(cams[:, 0], cams[:, 1], overhead_deg=30.0).tolist()]
    assert "overhead" in bank_labels(NerfConfig(elevation_max=60.0, overhead_deg=30.0))
    assert "overhead" not in bank_labels(NerfConfig(elevation_max=60.0, overhead_deg=61.0))
    with pytest.raises(InputError, match="back_deg"):
        NerfConfig(front_deg=100.0, back_deg=90.0)


def test_the_nerf3d_suite_keeps_a_run_folder_that_loads_back(tmp_path, toy3000):
    """`diffrep bench nerf3d` keeps each run's folder (without turntables and meshes) for `diffrep evaluate` and
    `diffrep export`: the weights that load back are the run's."""
    from diffrep.api import load_run
    from diffrep.bench.nerf3d import _keep_run

    result = diffrep.sample(toy3000, rep="nerf", method="sds", prompt="a yellow duck", n=1, iters=2, seed=0,
                            views_per_step=2, **SMALL)
    spec = {"prompt": "a yellow duck", "method": "sds", "seed": 0, "n": 1}
    name = _keep_run(result, tmp_path / ".nerf3d.runs", spec, "key")
    folder = tmp_path / ".nerf3d.runs" / name
    assert name.startswith("duck-sds-seed0-n1-") and not any(p.suffix in (".glb", ".gif") for p in folder.iterdir())
    rep, record = load_run(folder, rep="nerf")
    assert record["config"]["prompt"] == "a yellow duck"
    assert all(torch.equal(v, rep.state_dict()[k]) for k, v in result.rep.state_dict().items())


def test_a_solve_holds_one_occupancy_grid_and_renders_outside_it_compute_their_own(monkeypatch):
    """In ``solving()`` every render skips by the occupancy grid of the parameters on entry, computed once; out of
    it each render computes the grid of the current parameters; DDRep's pullback solves in the scope."""
    from diffrep.methods.solvers import pullback

    rep = nerf(n=1, res=8, resolution=12, bank=4, blob_radius=0.3)
    views = rep.random_views(4, torch.Generator().manual_seed(0))
    calls = []
    grid = rep.field.occupancy_grid
    monkeypatch.setattr(rep.field, "occupancy_grid", lambda *a: calls.append(a) or grid(*a))
    occupied = grid(11, 0.01)[0].float()  # the voxel grid's 11^3 cells between its 12^3 vertices
    touched = torch.nn.functional.max_pool3d(torch.nn.functional.pad(occupied, (1,) * 6)[None], 2, stride=1)[0]
    free = (touched == 0).permute(2, 1, 0)  # vertices of skipped cells only; grids[i, c, z, y, x]
    assert 0.1 < free.float().mean() < 0.9, free.float().mean()
    with rep.solving():
        before = rep(views)
        with torch.no_grad():
            rep.field.grids[0, 0][free] = 10.0  # dense where the held grid skips
        held = rep(views)
    assert len(calls) == 1
    fresh = rep(views)
    assert len(calls) == 2
    # the new density lies only in cells the held grid skips (difference normals read the density an epsilon away)
    torch.testing.assert_close(held, before, atol=1e-3, rtol=0)
    assert (fresh - before).abs().max() > 0.1  # a render of its own sees it
    calls.clear()
    target = rep(views).detach()
    calls.clear()
    pullback(rep, views, target, PullbackConfig(adam_iters=5))
    assert len(calls) == 1  # one grid for the solve's five renders


def test_a_learned_background_starts_at_the_grey_learns_a_colour_and_is_left_out_of_evaluation(tmp_path):
    from diffrep.reps.nerf import nerf_objects

    fixed, learned = nerf(), nerf(background="learned", blob_density=0.0)
    views = fixed.random_views(4, torch.Generator().manual_seed(0))
    assert torch.equal(nerf(blob_density=0.0)(views), learned(views))  # it starts as the fixed grey
    with torch.no_grad():
        learned.field.grids[:, 0].fill_(-10.0 / learned.field.scale)  # an empty scene: every ray sees the background
    sky = torch.tensor([-0.6, 0.0, 0.8])[:, None, None]  # a colour far from the grey (0.6 in [-1, 1])
    opt = torch.optim.Adam(learned.background_mlp.parameters(), lr=0.05)
    for step in range(400):
        views = learned.random_views(4, torch.Generator().manual_seed(step))
        loss = (learned(views) - sky).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    unseen = learned.random_views(8, torch.Generator().manual_seed(999))
    assert (learned(unseen) - sky).abs().max() < 0.05  # learned, for cameras it was not fitted at
    grey = nerf_objects(learned)[0].render(learned.bank[:3].cpu(), 8)  # evaluation: over the toy world's grey
    assert (grey - 0.6).abs().max() < 1e-3
    run = tmp_path / "run"  # and it travels with the weights: a run with it saves, loads and re-exports
    assert main(["sample", "--rep", "nerf", "--method", "sds", "--prompt", "red", "--prior", "gmm", "--n", "1",
                 "--optim.iters", "2", "--nerf.background", "learned", "--nerf.no-view-prompts",
                 *[f"--nerf.{k.replace('_', '-')}={v}" for k, v in SMALL.items()], "--out", str(run)]) == 0
    assert main(["export", str(run), "--format", "ply", "--resolution", "16"]) == 0


@pytest.mark.parametrize("grid", ["voxel", "hash"])
def test_memory_probe_scales_a_small_render_to_the_full_one(grid):
    """The memory estimate counts a NeRF's activations on a render of at most 48 samples a ray and 6 views, scaled
    (``memory_probe``), so a render too big for the machine is refused, not made to count itself: the scaled count
    stands for the full render's within 10 % (the activations grow in proportion to samples and views)."""
    from diffrep.api import saved_activations
    from diffrep.reps.nerf import memory_probe

    config = NerfConfig(grid=grid, samples=96, resolution=8, levels=2, log2_table=8)
    probe, views, factor = memory_probe(config, 12)
    assert (probe.samples, views, factor) == (48, 6, 4.0)
    assert memory_probe(NerfConfig(), 6) == (NerfConfig(), 6, 1.0)  # the defaults render themselves
    full = saved_activations(make_rep(config, (3, 16, 16), 1, generator=torch.Generator().manual_seed(0)), 12)
    scaled = factor * saved_activations(make_rep(probe, (3, 16, 16), 1, generator=torch.Generator().manual_seed(0)), views)
    assert scaled == pytest.approx(full, rel=0.1)


def test_a_nerf_whose_one_render_does_not_fit_is_refused_without_rendering_it(monkeypatch):
    """200,000 samples a ray: hundreds of GB of activations for one render of 6 views, refused in one line."""
    import diffrep.api

    renders = []
    real = diffrep.api.saved_activations
    diffrep.api.probe_activations.cache_clear()  # counted anew, not remembered from another test
    monkeypatch.setattr(diffrep.api, "saved_activations",
                        lambda rep, views: renders.append(rep.config.samples) or real(rep, views))
    with pytest.raises(InputError, match=r"n=1 needs about .* GiB .* or smaller rep options"):
        diffrep.sample("gmm", rep="nerf", method="ddrep", prompt="red", samples=200_000, resolution=8)
    assert renders == [48]
