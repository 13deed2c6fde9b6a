import dataclasses
import math
import re

import pytest
import torch

from conftest import brute_force_posterior_mean
from diffrep.errors import InputError
from diffrep.priors import (
    PRIORS, Conditioning, CountingPrior, EmpiricalPrior, GaussianPrior, GMMPrior, GMMPriorConfig, LabelQuery, Prior,
    cfg_eps, default_gaussian, default_gmm, encode_prompts, eps_cond_uncond, latent, load, load_config, parse_prompt,
    per_element, prior_config, prior_device, prior_name, to_rgb,
)
from diffrep.priors.base import check_device, draw_noise, noise_levels

KINDS, COLOURS, VIEWS = ("mug", "ball", "duck"), ("red", "blue"), ("front", "side", "back", "overhead")


def autograd_eps(log_density, x_t, ab):
    """eps = -s * grad log p_t(x_t), the definition the closed forms must match."""
    x = x_t.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(log_density(x).sum(), x)
    return -math.sqrt(1 - ab) * grad


@pytest.mark.parametrize("t", [0, 100, 500, 999])
def test_gaussian_eps_is_the_exact_score(t, gen):
    prior = default_gaussian(size=3)
    ab = prior.alphas_cumprod[t].item()
    D = prior.mean.numel()
    p_t = torch.distributions.MultivariateNormal(math.sqrt(ab) * prior.mean.flatten(),
                                                 ab * prior.cov + (1 - ab) * torch.eye(D, dtype=torch.float64))
    x_t = torch.randn(5, *prior.image_shape, generator=gen, dtype=torch.float64)
    ref = autograd_eps(lambda x: p_t.log_prob(x.flatten(1)), x_t, ab)
    torch.testing.assert_close(prior.eps(x_t, torch.full((5,), t), None), ref, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("t", [10, 300, 900])
def test_gmm_eps_is_the_exact_score_conditional_and_not(t, gen):
    prior = GMMPrior(torch.tensor([0.5, 0.3, 0.2]), torch.randn(3, 2, 3, 3, generator=gen),
                     torch.tensor([0.2, 0.5, 0.3]), labels=["a", "b", "a"])
    ab = prior.alphas_cumprod[t].item()

    def log_density(x, keep):
        comps = []
        for k in range(3):
            if keep[k]:
                var = ab * prior.vars[k] + (1 - ab)
                normal = torch.distributions.Normal(math.sqrt(ab) * prior.means[k], var.sqrt())
                comps.append(prior.weights[k].log() + normal.log_prob(x).flatten(1).sum(1))
        return torch.logsumexp(torch.stack(comps), 0)

    x_t = torch.randn(4, 2, 3, 3, generator=gen, dtype=torch.float64)
    tt = torch.full((4,), t)
    torch.testing.assert_close(prior.eps(x_t, tt), autograd_eps(lambda x: log_density(x, [1, 1, 1]), x_t, ab))
    cond = prior.encode_prompt("a")
    torch.testing.assert_close(prior.eps(x_t, tt, cond), autograd_eps(lambda x: log_density(x, [1, 0, 1]), x_t, ab))


def random_empirical(gen, n=40):
    data = torch.rand(n, 3, 4, 4, generator=gen) * 2 - 1
    labels = {"kind": torch.randint(0, 3, (n,), generator=gen), "colour": torch.randint(0, 2, (n,), generator=gen),
              "view": torch.randint(0, 4, (n,), generator=gen)}
    return EmpiricalPrior(data, labels, {"kind": KINDS, "colour": COLOURS, "view": VIEWS})


@pytest.mark.parametrize("t", [0, 5, 50, 200, 500, 999])
def test_empirical_denoiser_matches_float64_brute_force(t, gen):
    prior = random_empirical(gen)
    ab = prior.alphas_cumprod[t]
    # Inputs near data points (the case sampling meets) and far from all of them.
    idx = torch.randint(0, len(prior), (6,), generator=gen)
    near = ab.sqrt().float() * prior.data[idx] + (1 - ab).sqrt().float() * torch.randn(6, 3, 4, 4, generator=gen)
    far = torch.randn(6, 3, 4, 4, generator=gen) * 2
    x_t = torch.cat([near, far])
    tt = torch.full((12,), t)
    ref = brute_force_posterior_mean(prior.data, x_t, ab.expand(12))
    torch.testing.assert_close(prior.denoise(x_t, tt).double(), ref, rtol=0, atol=2e-4)
    ref_eps = (x_t.double() - ab.sqrt() * ref) / (1 - ab).sqrt()
    torch.testing.assert_close(prior.eps(x_t, tt).double(), ref_eps, rtol=0, atol=2e-4 * ab.sqrt().item() / (1 - ab).sqrt().item() + 1e-5)


def test_empirical_conditional_is_the_subset_prior(gen):
    prior = random_empirical(gen, n=60)
    q = LabelQuery(kind=1, colour=0)
    keep = (prior.labels["kind"] == 1) & (prior.labels["colour"] == 0)
    sub = EmpiricalPrior(prior.data[keep])
    x_t, t = torch.randn(5, 3, 4, 4, generator=gen), torch.tensor([3, 100, 400, 700, 999])
    torch.testing.assert_close(prior.eps(x_t, t, q), sub.eps(x_t, t, None), atol=1e-5, rtol=1e-5)
    w, idx = prior.posterior(x_t, t, q)
    assert set(idx.tolist()) == set(keep.nonzero().squeeze(1).tolist())
    torch.testing.assert_close(w.sum(1), torch.ones(5))


def test_empirical_per_element_conditions_equal_one_by_one(gen):
    prior = random_empirical(gen)
    conds = [None, LabelQuery(kind=0), LabelQuery(colour=1), LabelQuery(kind=0)]
    x_t, t = torch.randn(4, 3, 4, 4, generator=gen), torch.tensor([10, 200, 500, 900])
    batched = prior.eps(x_t, t, conds)
    single = torch.cat([prior.eps(x_t[i:i + 1], t[i:i + 1], c) for i, c in enumerate(conds)])
    torch.testing.assert_close(batched, single)


def test_empirical_denoiser_takes_a_large_batch_in_parts(gen, monkeypatch):
    """A batch of more rows than ``POSTERIOR_ELEMENTS / M`` is denoised in parts (its working memory bounded
    whatever the run's n), each part the posterior mean of its rows: the same as whole, per-element conditions kept."""
    import diffrep.priors.empirical as empirical

    prior = random_empirical(gen)
    conds = [None, LabelQuery(kind=0), None, LabelQuery(colour=1), None, LabelQuery(kind=0), None] * 3
    x_t, t = torch.randn(21, 3, 4, 4, generator=gen), torch.randint(0, 1000, (21,), generator=gen)
    whole = prior.eps(x_t, t, conds)
    monkeypatch.setattr(empirical, "POSTERIOR_ELEMENTS", 2 * len(prior))  # two rows a part on the full set
    torch.testing.assert_close(prior.eps(x_t, t, conds), whole, atol=1e-5, rtol=1e-5)


def brute_force_window(cameras, azimuth, elevation, window, minimum=3):
    """Float64, one camera at a time: the rows within the window (azimuth on the circle), else the nearest."""
    inside, score = [], []
    for i, (az, el, _) in enumerate(cameras.double().tolist()):
        d_az = min(abs(az - azimuth) % 360, 360 - abs(az - azimuth) % 360)
        d_el = abs(el - elevation)
        if d_az <= window[0] and d_el <= window[1]:
            inside.append(i)
        score.append((d_az / window[0] + d_el / window[1], i))
    return inside if len(inside) >= minimum else sorted(i for _, i in sorted(score)[:minimum])


@pytest.mark.parametrize("azimuth,elevation,window", [(0.0, 20.0, (30.0, 20.0)), (355.0, 5.0, (20.0, 15.0)),
                                                       (180.0, 50.0, (5.0, 2.0)), (90.0, -5.0, (180.0, 90.0))])
def test_camera_window_selects_the_images_shot_from_near_the_view(azimuth, elevation, window, gen):
    from diffrep.priors.empirical import camera_window_rows

    cameras = torch.stack([torch.rand(200, generator=gen) * 360, torch.rand(200, generator=gen) * 70 - 10,
                           torch.full((200,), 3.2)], 1)
    got = camera_window_rows(cameras, azimuth, elevation, window).tolist()
    assert got == brute_force_window(cameras, azimuth, elevation, window)
    assert len(got) >= 3  # (5, 2) at 180/50 holds fewer than 3 of 200: the 3 nearest instead


def camera_empirical(gen, n=80, window=(40.0, 25.0)):
    from diffrep.priors.empirical import CameraEmpiricalPrior

    base = random_empirical(gen, n)
    cameras = torch.stack([torch.rand(n, generator=gen) * 360, torch.rand(n, generator=gen) * 70 - 10,
                           torch.full((n,), 3.2)], 1)
    return CameraEmpiricalPrior(base.data, base.labels, base.vocab, cameras=cameras, camera_window=window), base


@pytest.mark.parametrize("t", [5, 200, 700])
def test_camera_conditioned_denoiser_is_the_posterior_mean_over_the_labels_and_the_window(t, gen):
    prior, _ = camera_empirical(gen)
    q, camera = LabelQuery(kind=1), (350.0, 30.0, 3.2)
    rows = [i for i in brute_force_window(prior.cameras, 350.0, 30.0, prior.camera_window) if prior.labels["kind"][i] == 1]
    rows = rows if len(rows) >= 3 else None  # the fallback's nearest are taken among the label's images: below
    labelled = (prior.labels["kind"] == 1).nonzero().squeeze(1)
    if rows is None:
        rows = labelled[brute_force_window(prior.cameras[labelled], 350.0, 30.0, prior.camera_window)].tolist()
    cond = prior.with_camera(q, camera)
    assert prior.subset(cond).tolist() == rows
    x_t, tt = torch.randn(4, 3, 4, 4, generator=gen), torch.full((4,), t)
    ab = prior.alphas_cumprod[t]
    torch.testing.assert_close(prior.denoise(x_t, tt, cond).double(),
                               brute_force_posterior_mean(prior.data[rows], x_t, ab.expand(4)), rtol=0, atol=2e-4)


def test_camera_conditioned_prior_without_a_camera_is_the_label_prior(gen):
    prior, base = camera_empirical(gen)
    conds = [None, LabelQuery(kind=0), prior.with_camera(LabelQuery(colour=1), (10.0, 0.0, 3.2)), LabelQuery(kind=0)]
    x_t, t = torch.randn(4, 3, 4, 4, generator=gen), torch.tensor([10, 200, 500, 900])
    mixed = prior.eps(x_t, t, conds)
    for i in (0, 1, 3):
        torch.testing.assert_close(mixed[i:i + 1], base.eps(x_t[i:i + 1], t[i:i + 1], conds[i]))
    torch.testing.assert_close(mixed[2:3], prior.eps(x_t[2:3], t[2:3], conds[2]))


def test_toyworld_cameras_are_the_cameras_of_the_data_images():
    from diffrep import toyworld as tw
    from diffrep.priors.empirical import toyworld_cameras

    ds = tw.generate(tw.ToyWorldConfig(n=40, res=32, seed=5))
    assert torch.equal(toyworld_cameras(40, 32, 5), ds.cameras)
    prior = load("toyworld", n=40, seed=5, camera_window=[30, 20])  # a list (run.json's) is the same window
    assert prior.camera_window == (30.0, 20.0) and torch.equal(prior.cameras, ds.cameras)


def test_cfg_algebra(gen):
    prior = CountingPrior(random_empirical(gen))
    q = prior.encode_prompt("a red mug")
    x_t, t = torch.randn(3, 3, 4, 4, generator=gen), torch.tensor([100, 400, 800])
    e_u, e_c = prior.eps(x_t, t, None), prior.eps(x_t, t, q)
    prior.evaluations = 0
    torch.testing.assert_close(cfg_eps(prior, x_t, t, q, 7.5), e_u + 7.5 * (e_c - e_u))
    assert prior.evaluations == 6
    torch.testing.assert_close(cfg_eps(prior, x_t, t, q, 1.0), e_c)
    torch.testing.assert_close(cfg_eps(prior, x_t, t, q, 0.0), e_u)
    torch.testing.assert_close(cfg_eps(prior, x_t, t, None, 7.5), e_u)
    assert prior.evaluations == 6 + 3 + 3 + 3


def test_prompt_parsing_synonyms_subsets_and_errors():
    assert parse_prompt("a red mug, back view", KINDS, COLOURS, VIEWS) == LabelQuery(0, 0, 2)
    assert parse_prompt("A crimson sphere from behind", KINDS, COLOURS, VIEWS) == LabelQuery(1, 0, 2)
    assert parse_prompt("cups", KINDS, COLOURS, VIEWS) == LabelQuery(kind=0)
    assert parse_prompt("blue", KINDS, COLOURS, VIEWS) == LabelQuery(colour=1)
    assert parse_prompt("overhead view", KINDS, COLOURS, VIEWS) == LabelQuery(view=3)
    assert parse_prompt("", KINDS, COLOURS, VIEWS) is None
    with pytest.raises(InputError, match="unknown word 'zebra'.*kinds: mug, ball, duck.*colours: red, blue"):
        parse_prompt("a red zebra", KINDS, COLOURS, VIEWS)
    with pytest.raises(InputError, match="two colours"):
        parse_prompt("a red blue mug", KINDS, COLOURS, VIEWS)


def test_empty_subset_is_a_clear_error(gen):
    prior = random_empirical(gen, n=3)
    with pytest.raises(InputError, match="no data image matches kind=99"):
        prior.subset(LabelQuery(kind=99))


def test_load_and_protocol():
    for name in ("gaussian", "gmm"):
        prior = load(name)
        assert isinstance(prior, Prior)
        eps = prior.eps(torch.zeros(2, *prior.image_shape), torch.tensor([0, 999]), None)
        assert eps.shape == (2, *prior.image_shape) and torch.isfinite(eps).all()
    with pytest.raises(InputError, match=r"unknown prior 'sd9' \(did you mean 'sd'\?\); allowed: toyworld, gaussian, gmm"):
        load("sd9")
    with pytest.raises(InputError, match="unknown option 'colour' for prior 'gmm'"):
        load("gmm", colour=3)
    with pytest.raises(InputError, match="unknown prompt 'purple'"):
        default_gmm().encode_prompt("purple")
    with pytest.raises(InputError, match="unconditional"):
        GaussianPrior(torch.zeros(1, 2, 2), torch.ones(1, 2, 2)).encode_prompt("a cat")


# The table: every prior loads, every config validates itself, lists come from PRIORS.

SMALL = {"toyworld": {"n": 64}, "toyworld-scenes": {"n": 4}}  # the default 10,000 images take half a minute; the code path is the same
BAD = {  # per prior: option -> values its config must reject
    "toyworld": {"n": [0, -3, 2.5, True], "res": [48], "seed": [-1], "schedule": ["cosinus"], "device": ["tpu", "cuda:99"],
                 "camera_window": [(0, 15), (20, 91), (181, 15), (20,), "20 15", (20, float("nan"))]},
    "gaussian": {"size": [1, "8"], "length_scale": [0.0, float("inf")]},
    "gmm": {"size": [0], "std": [-0.1, float("nan")]},
    "tiny": {"path": ["/nonexistent/tiny.safetensors"], "device": ["cuda:99"]},
    "sd": {"path": [None, "/nonexistent/sd"], "device": ["tpu"], "dtype": ["fp8"], "rgb_res": [0]},
    "if": {"path": [None, "/nonexistent/if"], "device": ["tpu"], "dtype": ["fp8"]},
    "toyworld-scenes": {"n": [0, 2.5], "res": [48], "seed": [-1], "view_stride": [0], "schedule": ["cosinus"], "device": ["tpu"],
                        "scene_prompt": ["grid", None]},
}
NEEDS_MODEL = {"sd", "if"}  # no default model: tests/test_sd.py loads them from tiny folders it builds


@pytest.mark.parametrize("name", list(PRIORS))
def test_every_prior_loads_with_its_default_config(name):
    if name in NEEDS_MODEL:
        pytest.skip(f"prior {name!r} needs a model folder; tests/test_sd.py covers it")
    config = dataclasses.replace(PRIORS[name].config(), **SMALL.get(name, {}))
    prior = load_config(config)
    assert isinstance(prior, Prior) and prior_name(config) == name
    eps = prior.eps(torch.zeros(2, *prior.image_shape), torch.tensor([0, 999]), None)
    assert eps.shape == (2, *prior.image_shape) and torch.isfinite(eps).all()


def test_every_prior_has_bad_values_in_this_test():
    assert set(BAD) == set(PRIORS)


@pytest.mark.parametrize("name,option,value", [(n, o, v) for n, opts in BAD.items() for o, vs in opts.items() for v in vs])
def test_every_config_rejects_a_bad_value_naming_it(name, option, value):
    with pytest.raises(InputError, match=re.escape(repr(value))):
        prior_config(name, **{option: value})


@pytest.mark.parametrize("name", list(PRIORS))
def test_unknown_options_list_the_allowed_ones_and_fields_have_help(name, monkeypatch, capsys):
    allowed = [f.name for f in dataclasses.fields(PRIORS[name].config)]
    with pytest.raises(InputError, match=f"unknown option 'colr' for prior '{name}'; allowed: {', '.join(allowed)}$"):
        prior_config(name, colr=1)
    tyro = pytest.importorskip("tyro")
    monkeypatch.setenv("COLUMNS", "300")
    with pytest.raises(SystemExit):
        tyro.cli(PRIORS[name].config, args=["--help"])
    lines = capsys.readouterr().out.splitlines()
    for option in allowed:  # each field's docstring is its CLI help
        flag = f"--{option.replace('_', '-')}"
        line = next(line for line in lines if f"{flag} " in line or f"{flag}, " in line)  # a bool: --x, --no-x
        assert not re.search(r"--\S+ \S+\s+\((default|required)", line), line


def test_unknown_prior_lists_the_table():
    with pytest.raises(InputError, match=rf"unknown prior 'sd9' \(did you mean 'sd'\?\); allowed: {', '.join(PRIORS)}$"):
        prior_config("sd9")
    with pytest.raises(InputError, match="is not the config of a prior; allowed: ToyworldPriorConfig"):
        load_config(dataclasses.make_dataclass("NotAPrior", [])())


def test_load_keeps_its_options_and_progress():
    calls = []
    prior = load("toyworld", n=40, res=32, seed=3, schedule="cosine", device="cpu", progress=lambda d, n: calls.append(n))
    assert len(prior) == 40 and calls and calls[-1] == 40
    assert load("gaussian", size=3, length_scale=1.0).image_shape == (3, 3, 3)
    assert load("gmm", size=4, std=0.2).image_shape == (3, 4, 4)
    assert prior_config("gmm", std=0.2) == GMMPriorConfig(std=0.2)


def test_a_toyworld_word_is_refused_before_the_data_set_is_generated(tmp_path, monkeypatch):
    """The command line checks the prompt's words before loading the prior: a typo must not wait ~30 s for
    (and print the progress of) the data set's first generation."""
    from diffrep.priors import check_prompt

    monkeypatch.setenv("DIFFREP_CACHE_DIR", str(tmp_path))
    config = prior_config("toyworld", n=50)
    with pytest.raises(InputError, match="unknown word 'zebra' in prompt 'a red zebra'"):
        check_prompt(config, "a red zebra")
    check_prompt(config, "a crimson ball, from behind"), check_prompt(config, "")
    check_prompt(prior_config("gmm"), "purple")  # no check before loading: encode_prompt refuses it
    assert not any(tmp_path.iterdir())


def test_the_configs_know_the_schedules_make_schedule_knows():
    """priors/configs.py keeps a torch-free copy of the schedule names, for ToyworldPriorConfig's check."""
    from diffrep.priors.configs import SCHEDULES
    from diffrep.schedule import SCHEDULES as MADE, make_schedule

    assert SCHEDULES == MADE and all(make_schedule(name).shape == (1000,) for name in SCHEDULES)


def test_tiny_config_names_the_missing_file(tmp_path):
    from diffrep.priors import tiny

    weights = tiny.save_tiny(tiny.TinyUNet(tiny.UNetConfig(channels=16)), tmp_path / "mine.safetensors")
    assert prior_config("tiny", path=str(weights)).path == str(weights)
    weights.with_suffix(".json").unlink()
    with pytest.raises(InputError, match=r"tiny prior config '.*mine\.json' does not exist: the weights mine\.safetensors"):
        prior_config("tiny", path=str(weights))
    with pytest.raises(InputError, match=r"tiny prior file '.*other\.safetensors' does not exist"):
        prior_config("tiny", path=str(tmp_path / "other.safetensors"))


# The widened interface: the conditional/unconditional pair, prompts, latents, devices.

class PointMassPrior:
    """A prior written as a user would, with only the four protocol members: a point mass on one of
    two images chosen by the prompt, the unconditional model a point mass on their mean."""

    def __init__(self):
        self.alphas_cumprod = torch.linspace(0.999, 0.01, 100)
        self.image_shape = (3, 4, 4)
        ramp = torch.linspace(-1, 1, 4).expand(3, 4, 4)
        self.images = {"left": ramp, "right": ramp.flip(-1), None: torch.zeros(3, 4, 4)}
        self.calls = 0

    def encode_prompt(self, text):
        return text or None

    def eps(self, x_t, t, cond):
        self.calls += 1
        ab = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        x_star = torch.stack([self.images[c] for c in per_element(cond, x_t.shape[0])])
        return (x_t - ab.sqrt() * x_star) / (1 - ab).sqrt()


def pair_case(name, gen):
    """(prior, cond, uncond) for each kind of prior: analytic, empirical, learned, user-written."""
    if name == "gaussian":
        return default_gaussian(size=3), None, None
    if name == "gmm":
        prior = default_gmm(size=4)
        return prior, prior.encode_prompt("red"), None
    if name == "empirical":
        prior = random_empirical(gen)
        return prior, [LabelQuery(kind=0), LabelQuery(colour=1), None], LabelQuery(view=1)
    if name == "tiny":  # the shipped weights, a random unit embedding as the prompt (no text encoder needed)
        return load("tiny"), torch.nn.functional.normalize(torch.randn(384, generator=gen), dim=0), None
    return PointMassPrior(), "right", None


PAIR_PRIORS = ["gaussian", "gmm", "empirical", "tiny", "user"]


def timesteps(prior):
    """Three timesteps at 5 %, 40 % and 90 % of the prior's schedule."""
    return torch.tensor([5, 40, 90]) * len(prior.alphas_cumprod) // 100


@pytest.mark.parametrize("name", PAIR_PRIORS)
def test_pair_from_one_batched_call_equals_two_calls(name, gen):
    prior, cond, uncond = pair_case(name, gen)
    x_t = torch.randn(3, *prior.image_shape, generator=gen, dtype=torch.float64 if name == "gaussian" else torch.float32)
    t = timesteps(prior)
    eps_c, eps_u = eps_cond_uncond(prior, x_t, t, cond, uncond)
    torch.testing.assert_close(eps_c, prior.eps(x_t, t, cond), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(eps_u, prior.eps(x_t, t, uncond), atol=1e-5, rtol=1e-5)
    if name in ("gmm", "empirical", "tiny", "user"):
        assert not torch.allclose(eps_c, eps_u, atol=1e-3)  # the condition matters
    counted = CountingPrior(prior)
    eps_cond_uncond(counted, x_t, t, cond, uncond)
    assert counted.evaluations == 6


def old_cfg_eps(prior, x_t, t, cond, w):
    """cfg_eps as it was before the batched pair: two separate evaluations."""
    if cond is None or w == 1.0:
        return prior.eps(x_t, t, cond)
    eps_u = prior.eps(x_t, t, None)
    return eps_u if w == 0.0 else eps_u + w * (prior.eps(x_t, t, cond) - eps_u)


@pytest.mark.parametrize("name", PAIR_PRIORS)
@pytest.mark.parametrize("w", [0.0, 1.0, 3.5])
def test_cfg_eps_on_the_pair_equals_two_calls(name, w, gen):
    prior, cond, _ = pair_case(name, gen)
    x_t, t = torch.randn(3, *prior.image_shape, generator=gen), timesteps(prior)
    torch.testing.assert_close(cfg_eps(prior, x_t, t, cond, w), old_cfg_eps(prior, x_t, t, cond, w), atol=1e-4, rtol=1e-5)


def test_user_prior_with_four_members_gets_one_batched_call(gen):
    prior = PointMassPrior()
    assert isinstance(prior, Prior) and not latent(prior) and prior_device(prior) == torch.device("cpu")
    x_t, t = torch.randn(2, 3, 4, 4, generator=gen), torch.tensor([10, 60])
    cfg_eps(prior, x_t, t, "left", 4.0)
    assert prior.calls == 1
    cfg_eps(prior, x_t, t, None, 4.0)  # nothing to guide: one evaluation of B
    cfg_eps(prior, x_t, t, "left", 1.0)
    assert prior.calls == 3


def test_negative_prompt_replaces_the_unconditional(gen):
    prior = default_gmm(size=4)
    c = encode_prompts(prior, "red", negative="blue")
    assert isinstance(c, Conditioning) and encode_prompts(prior, "red").uncond is None
    x_t, t, w = torch.randn(3, 3, 4, 4, generator=gen), torch.tensor([100, 400, 800]), 3.0
    e_c, e_neg = prior.eps(x_t, t, c.cond), prior.eps(x_t, t, c.uncond)
    torch.testing.assert_close(cfg_eps(prior, x_t, t, c.cond, w, c.uncond), e_neg + w * (e_c - e_neg))
    assert not torch.allclose(cfg_eps(prior, x_t, t, c.cond, w, c.uncond), cfg_eps(prior, x_t, t, c.cond, w), atol=1e-3)
    torch.testing.assert_close(cfg_eps(prior, x_t, t, c.cond, 0.0, c.uncond), e_neg)
    per_view = encode_prompts(prior, ["red", "green", "red"])  # one prompt per element (views)
    torch.testing.assert_close(prior.eps(x_t, t, per_view.cond)[1], prior.eps(x_t[1:2], t[1:2], prior.encode_prompt("green"))[0])


def test_per_element_checks_the_batch():
    assert per_element("a", 3) == ["a", "a", "a"] and per_element(None, 2) == [None, None]
    with pytest.raises(InputError, match="2 conditions for a batch of 3"):
        per_element(["a", "b"], 3)


class FakeLatentPrior(PointMassPrior):
    """A latent prior: 3 x 4 x 4 latents decode to 3 x 8 x 8 images."""

    def decode(self, latents):
        self.decoded = latents
        return torch.nn.functional.interpolate(latents, scale_factor=2)


def test_to_rgb_decodes_latents_and_leaves_pixels(gen):
    x = torch.randn(2, 3, 4, 4, generator=gen)
    for prior in (default_gmm(size=4), PointMassPrior(), CountingPrior(default_gmm(size=4))):
        assert not latent(prior) and to_rgb(prior, x) is x
    fake = FakeLatentPrior()
    for prior in (fake, CountingPrior(fake)):
        assert latent(prior) and to_rgb(prior, x).shape == (2, 3, 8, 8) and fake.decoded is x


def test_device_rule_on_the_cpu(gen):
    assert prior_device(default_gmm()) == prior_device(PointMassPrior()) == torch.device("cpu")
    prior = random_empirical(gen)
    counted = CountingPrior(prior)
    assert prior_device(counted) == prior.device == torch.device("cpu")
    # Noise comes from the caller's generator on its own device, bit for bit torch.randn's.
    z = draw_noise((2, 3, 4, 4), torch.Generator().manual_seed(7), device=prior_device(prior))
    assert torch.equal(z, torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(7)))
    t = torch.tensor([0, 500, 999])
    a, s = noise_levels(prior.alphas_cumprod, t, torch.float32)
    ab = prior.alphas_cumprod.to(torch.float64)[t]
    assert torch.equal(a.flatten(), ab.sqrt().float()) and torch.equal(s.flatten(), (1 - ab).sqrt().float())
    assert check_device("cpu") == "cpu"
    with pytest.raises(InputError, match="device='tpu' is not allowed here; allowed: cpu"):
        check_device("tpu")


@pytest.mark.parametrize("t", [5, 200, 700])
def test_camera_conditioned_guidance_keeps_the_camera_in_the_unconditional_term(t, gen):
    from diffrep.priors import CountingPrior, cfg_eps, eps_cond_uncond

    prior, base = camera_empirical(gen)
    camera = (350.0, 30.0, 3.2)
    conds = [prior.with_camera(LabelQuery(kind=1), camera), LabelQuery(kind=0)]
    x_t, tt = torch.randn(2, 3, 4, 4, generator=gen), torch.full((2,), t)
    eps_c, eps_u = eps_cond_uncond(CountingPrior(prior), x_t, tt, conds)
    torch.testing.assert_close(eps_c, prior.eps(x_t, tt, conds))
    window = brute_force_window(prior.cameras, 350.0, 30.0, prior.camera_window)  # every label's images in the window
    ab = prior.alphas_cumprod[t]
    x0_u = (x_t[:1] - (1 - ab).sqrt() * eps_u[:1]) / ab.sqrt()
    torch.testing.assert_close(x0_u.double(), brute_force_posterior_mean(prior.data[window], x_t[:1], ab.expand(1)),
                               rtol=0, atol=2e-4)
    torch.testing.assert_close(eps_u[1:], base.eps(x_t[1:], tt[1:], None))  # no camera: the whole set, as before
    guided = cfg_eps(prior, x_t, tt, conds, 7.5)
    torch.testing.assert_close(guided, eps_u + 7.5 * (eps_c - eps_u))
    torch.testing.assert_close(cfg_eps(prior, x_t, tt, conds, 0.0), eps_u)  # guidance 0: the same unconditional term
    assert len(window) < len(prior) and len(window) >= 3
