"""LMC-SDS and the distillation baselines (NFSD, DDS, multistep SDS) against their explicit formulas
through a linear renderer, the SDS decomposition, the corrective's normalisation, end-to-end runs."""

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

import diffrep
from diffrep.errors import InputError
from diffrep.methods import dds_grad, lmc_grad, multistep_sds_grad, nfsd_grad, sds_grad, sds_split, surrogate_loss
from diffrep.methods.corrective import (
    Corrective, CorrectiveConfig, corrective_loss, load_corrective, normalise, prior_fingerprint, save_corrective,
)
from diffrep.priors import default_gaussian, default_gmm


class LinearRep(nn.Module):
    """f(θ) = A θ: a linear renderer whose parameter gradient is exactly Aᵀ g (as in test_methods)."""

    def __init__(self, gen, image_shape=(3, 4, 4), p=7):
        super().__init__()
        self.image_shape = image_shape
        self.A = torch.randn(math.prod(image_shape), p, generator=gen) / p**0.5
        self.theta = nn.Parameter(torch.randn(2, p, generator=gen))

    def forward(self):
        return (self.theta @ self.A.T).view(2, *self.image_shape)


def setup(seed=0):
    gen = torch.Generator().manual_seed(seed)
    prior, rep = default_gmm(size=4), LinearRep(gen)
    t, eps = torch.tensor([120, 870]), torch.randn(2, 3, 4, 4, generator=gen)
    return prior, rep, rep(), t, eps, gen


def x_t_of(prior, x, t, eps):
    ab = prior.alphas_cumprod[t].float().view(-1, 1, 1, 1)
    return ab.sqrt() * x + (1 - ab).sqrt() * eps, ab


def check_pullback(rep, x, g, g_ref):
    surrogate_loss(x, g).backward()
    torch.testing.assert_close(g, g_ref)
    torch.testing.assert_close(rep.theta.grad, g_ref.flatten(1) @ rep.A / 2)


def test_nfsd_gradient_is_explicit_formula_through_linear_renderer():
    prior, rep, x, t, eps, _ = setup()
    cond, neg = prior.encode_prompt("green"), prior.encode_prompt("blue")
    g = nfsd_grad(prior, x.detach(), cond, neg, t=t, eps=eps, guidance_scale=7.5, t_threshold=200, weighting="s2")
    x_t, ab = x_t_of(prior, x.detach(), t, eps)
    e_u, e_c, e_n = prior.eps(x_t, t, None), prior.eps(x_t, t, cond), prior.eps(x_t, t, neg)
    delta_D = torch.stack([e_u[0], e_u[1] - e_n[1]])  # t = 120 < 200: ε̂(∅); t = 870: ε̂(∅) - ε̂(neg)
    check_pullback(rep, x, g, (1 - ab) * (delta_D + 7.5 * (e_c - e_u)))


def test_dds_gradient_is_explicit_formula_and_zero_when_prompts_agree():
    prior, rep, x, t, eps, gen = setup(1)
    x_src = torch.randn(2, 3, 4, 4, generator=gen).clamp(-1, 1)
    tgt, src = prior.encode_prompt("red"), prior.encode_prompt("yellow")
    g = dds_grad(prior, x.detach(), x_src, tgt, src, t=t, eps=eps, guidance_scale=5.0)
    z_t, _ = x_t_of(prior, x.detach(), t, eps)
    zs_t, _ = x_t_of(prior, x_src, t, eps)
    cfg = lambda z, c: prior.eps(z, t, None) + 5.0 * (prior.eps(z, t, c) - prior.eps(z, t, None))  # noqa: E731
    check_pullback(rep, x, g, cfg(z_t, tgt) - cfg(zs_t, src))
    for w in (0.0, 1.0, 7.5):  # the source itself under the same prompt: nothing to change
        same = dds_grad(prior, x.detach(), x.detach(), tgt, prior.encode_prompt("red"), t=t, eps=eps, guidance_scale=w)
        assert same.abs().max() == 0


def test_multistep_sds_is_sds_for_one_step_and_an_explicit_ddim_loop_for_more():
    prior, rep, x, t, eps, _ = setup(2)
    cond = prior.encode_prompt("blue")
    one = multistep_sds_grad(prior, x.detach(), cond, t=t, eps=eps, guidance_scale=3.0, k=1)
    torch.testing.assert_close(one, sds_grad(prior, x.detach(), cond, t=t, eps=eps, guidance_scale=3.0), atol=1e-5, rtol=1e-4)
    g = multistep_sds_grad(prior, x.detach(), cond, t=t, eps=eps, guidance_scale=3.0, k=3, weighting="one")
    ab = prior.alphas_cumprod.double()
    refs = []
    for b in range(2):  # slow twin: one image at a time, python timesteps, float64
        tb, xb = int(t[b]), x.detach()[b:b + 1].double()
        taus = [tb * (3 - j) // 3 for j in range(3)] + [None]
        z = ab[tb].sqrt() * xb + (1 - ab[tb]).sqrt() * eps[b:b + 1].double()
        for tau, nxt in zip(taus, taus[1:]):
            tt = torch.tensor([tau])
            e = prior.eps(z.float(), tt, None).double()
            e = e + 3.0 * (prior.eps(z.float(), tt, cond).double() - e)
            x0 = (z - (1 - ab[tau]).sqrt() * e) / ab[tau].sqrt()
            if nxt is not None:
                z = ab[nxt].sqrt() * x0 + (1 - ab[nxt]).sqrt() * e
        refs.append((ab[tb] / (1 - ab[tb])).sqrt() * (xb - x0))
    torch.testing.assert_close(g.double(), torch.cat(refs), atol=1e-4, rtol=1e-4)


def toy_corrective(x, t):
    return 0.7 * x + 0.1 * torch.sin(3 * x) + t.view(-1, 1, 1, 1) / 1000


@pytest.mark.parametrize("fixed", [False, True])
@pytest.mark.parametrize("inverse_scale", [True, False])
def test_lmc_gradient_is_explicit_formula_through_linear_renderer(fixed, inverse_scale):
    prior, rep, x, t, eps, gen = setup(3)
    cond = prior.encode_prompt("red")
    eps_cond = torch.randn(2, 3, 4, 4, generator=gen) if fixed else None
    g = lmc_grad(prior, x.detach(), cond, toy_corrective, t=t, eps=eps, guidance_scale=4.0, eps_cond=eps_cond,
                 inverse_scale=inverse_scale)
    xc_t, _ = x_t_of(prior, x.detach(), t, eps if eps_cond is None else eps_cond)
    g_cond = 4.0 * (prior.eps(xc_t, t, cond) - prior.eps(xc_t, t, None))
    x_t, ab = x_t_of(prior, x.detach(), t, eps)
    x0 = (x_t - (1 - ab).sqrt() * prior.eps(x_t, t, None)) / ab.sqrt()
    b = toy_corrective(x.detach(), t)
    mb = b.mean((1, 2, 3), keepdim=True)
    b_n = x0.std((1, 2, 3), keepdim=True) / b.std((1, 2, 3), keepdim=True) * (b - mb) + mb
    g_ref = (g_cond + b_n - x0) / (4.0 if inverse_scale else 1.0)
    surrogate_loss(x, g).backward()
    torch.testing.assert_close(g, g_ref, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(rep.theta.grad, g_ref.flatten(1) @ rep.A / 2, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("corrective", [toy_corrective, None])
@pytest.mark.parametrize("weighting", ["s2", "snr_inverse"])
def test_lmc_weighting_multiplies_the_whole_gradient_by_w_t(corrective, weighting):
    """``weighting`` (default one, design §4's form) is SDS's w(t) on the whole gradient, g_cond and g_lmc alike."""
    prior, rep, x, t, eps, _ = setup(7)
    cond = prior.encode_prompt("red")
    one = lmc_grad(prior, x.detach(), cond, corrective, t=t, eps=eps, guidance_scale=4.0)
    _, ab = x_t_of(prior, x.detach(), t, eps)
    w = {"s2": 1 - ab, "snr_inverse": (1 - ab) / ab}[weighting]
    g = lmc_grad(prior, x.detach(), cond, corrective, t=t, eps=eps, guidance_scale=4.0, weighting=weighting)
    check_pullback(rep, x, g, w * one)
    assert not torch.allclose(g, one)


@pytest.mark.parametrize("inverse_scale", [True, False])
def test_lmc_without_projection_is_the_conditional_term_alone(inverse_scale):
    """projection='none' (the paper's "L_cond only"): g = ω (ε̂(c) - ε̂(∅)) (/ω), the corrective never asked."""
    prior, rep, x, t, eps, _ = setup(5)
    cond = prior.encode_prompt("red")
    g = lmc_grad(prior, x.detach(), cond, None, t=t, eps=eps, guidance_scale=4.0, inverse_scale=inverse_scale)
    x_t, _ = x_t_of(prior, x.detach(), t, eps)
    g_cond = 4.0 * (prior.eps(x_t, t, cond) - prior.eps(x_t, t, None))
    check_pullback(rep, x, g, g_cond / (4.0 if inverse_scale else 1.0))
    g_cond_split, _ = sds_split(prior, x.detach(), cond, t=t, eps=eps, guidance_scale=4.0)
    torch.testing.assert_close(g * (4.0 if inverse_scale else 1.0), g_cond_split)


def test_lmc_without_projection_runs_without_a_corrective_and_refuses_one():
    r = diffrep.sample("gmm", method="lmc-sds", projection="none", prompt="blue", n=2, iters=5, guidance_scale=5.0)
    assert torch.isfinite(r.images).all() and r.info["config"]["method_options"]["projection"] == "none"
    with pytest.raises(InputError, match="corrective='x' is unused with projection='none'"):
        diffrep.sample("gmm", method="lmc-sds", projection="none", corrective="x", iters=5)
    with pytest.raises(InputError, match=r"unknown projection 'nope' \(did you mean 'none'\?\); allowed: corrective, none"):
        diffrep.sample("gmm", method="lmc-sds", projection="nope", iters=5)


def test_lmc_at_zero_guidance_is_refused_by_run_spec_and_by_a_direct_method_call_alike():
    """ω = 0 under the 1/ω scaling: refused before the prior loads (``run_spec``) and, for a caller that runs the
    method table's entry itself, by the method; one requirement, one message; without the scaling it runs."""
    from diffrep.methods import METHODS, OptimConfig, Sampling
    from diffrep.reps import make_rep
    from diffrep.spec import run_spec

    message = "method 'lmc-sds' needs a guidance scale ω ≠ 0: it divides its gradient by ω"
    with pytest.raises(InputError, match=message):
        run_spec("pixels", "lmc-sds", Sampling(guidance_scale=0.0), projection="none")
    prior, entry = default_gmm(), METHODS["lmc-sds"]
    rep = make_rep("pixels", prior.image_shape, 1, generator=torch.Generator().manual_seed(0))
    cond = [prior.encode_prompt("blue")]
    with pytest.raises(InputError, match=message):
        entry.run(prior, rep, cond, entry.config(projection="none"), sampling=Sampling(guidance_scale=0.0))
    entry.run(prior, rep, cond, entry.config(projection="none", inverse_scale=False, optim=OptimConfig(iters=2)),
              sampling=Sampling(guidance_scale=0.0))


def test_sds_is_the_sum_of_the_conditional_and_projection_terms():
    prior, _, x, t, eps, _ = setup(4)
    cond = prior.encode_prompt("yellow")
    for w in (0.0, 1.0, 7.5, 100.0):
        g_cond, g_proj = sds_split(prior, x.detach(), cond, t=t, eps=eps, guidance_scale=w)
        g = sds_grad(prior, x.detach(), cond, t=t, eps=eps, guidance_scale=w, weighting="one")
        torch.testing.assert_close(g_cond + g_proj, g, atol=1e-4 * max(w, 1), rtol=1e-5)


def test_corrective_normalisation_is_that_of_L_k():
    gen = torch.Generator().manual_seed(5)
    b, x0 = torch.randn(3, 3, 8, 8, generator=gen) * 2 + 1, torch.randn(3, 3, 8, 8, generator=gen) * 0.3
    n = normalise(b, x0)
    torch.testing.assert_close(n.mean((1, 2, 3)), b.mean((1, 2, 3)))
    torch.testing.assert_close(n.std((1, 2, 3)), x0.std((1, 2, 3)), atol=1e-5, rtol=1e-4)
    ref = sum(((x0[i] - (x0[i].std() / b[i].std() * (b[i] - b[i].mean()) + b[i].mean())) ** 2).sum() for i in range(3)) / 3
    torch.testing.assert_close(corrective_loss(b, x0), ref)
    model = Corrective((3, 16, 16), 1000, CorrectiveConfig(channels=4, levels=4))
    assert model(torch.zeros(2, 3, 16, 16), torch.tensor([0, 999])).shape == (2, 3, 16, 16)


def saved_corrective(tmp_path, prior, name="gmm"):
    model = Corrective(prior.image_shape, len(prior.alphas_cumprod), CorrectiveConfig(channels=4, levels=3))
    save_corrective(model, tmp_path / "corr", prior_fingerprint(prior, name), {"steps": 0})
    return tmp_path / "corr"


def test_corrective_for_another_prior_is_refused_in_one_line(tmp_path):
    folder = saved_corrective(tmp_path, default_gmm(size=16))
    load_corrective(folder, default_gmm(size=16), "gmm")
    assert (folder / "corrective.safetensors").stat().st_mode & 0o777 == 0o644  # safetensors' own writer leaves 0600
    with pytest.raises(InputError, match="trained for prior 'gmm'") as e:
        load_corrective(folder, default_gaussian(size=16))
    assert "\n" not in str(e.value)
    with pytest.raises(InputError, match="trained for prior 'gmm'"):
        load_corrective(folder, default_gmm(size=16), "tiny")
    (folder / "corrective.safetensors").write_bytes(b"junk")
    with pytest.raises(InputError, match="cannot be read"):
        load_corrective(folder, default_gmm(size=16))


@pytest.mark.parametrize("rep", ["pixels", "siren"])
@pytest.mark.parametrize("method", ["nfsd", "dds", "ms-sds", "lmc-sds"])
def test_each_method_runs_end_to_end(tmp_path, rep, method):
    extra = {"dds": {"source_prompt": "red"}, "nfsd": {"negative_prompt": "green"}, "ms-sds": {"k": 2},
             "lmc-sds": {"corrective": str(saved_corrective(tmp_path, default_gmm())), "fixed_eps": True}}[method]
    reps = {"siren": {"embed_dim": 4, "width": 8, "depth": 1}, "pixels": {}}[rep]
    r = diffrep.sample("gmm", rep=rep, method=method, prompt="blue", n=2, iters=5, guidance_scale=5.0, **extra, **reps)
    assert r.images.shape == (2, 3, 16, 16) and torch.isfinite(r.images).all()
    assert r.info["config"]["method"] == method


def test_missing_source_prompt_or_corrective_fails_before_the_prior_loads():
    with pytest.raises(InputError, match="needs a source prompt"):
        diffrep.sample("toyworld", method="dds", iters=5)
    with pytest.raises(InputError, match="needs a trained corrective: none is shipped for prior 'gmm'"):
        diffrep.sample("gmm", method="lmc-sds", iters=5)
    with pytest.raises(InputError, match="'/nonexistent' is neither a shipped one \\(clean, perturbed\\) nor a folder"):
        diffrep.sample("toyworld", method="lmc-sds", corrective="/nonexistent", iters=5)
    with pytest.raises(InputError, match="holds no corrective.json"):
        diffrep.sample("toyworld", method="lmc-sds", corrective=str(Path(__file__).parent), iters=5)


def test_the_shipped_correctives_are_found_by_fingerprint_and_training_and_run():
    """lmc-sds without a corrective takes the clean one shipped for the prior (toyworld, tiny), with
    ``corrective='perturbed'`` the one trained off the data (its record says --perturb 0.5); a loaded prior with
    none shipped, or an unknown training, is refused in one line."""
    import json

    from diffrep.methods.corrective import SHIPPED, load_corrective, shipped_corrective
    from diffrep.methods.configs import SHIPPED_CORRECTIVES
    from diffrep.priors import load

    folders = {f.name for f in SHIPPED.iterdir() if f.is_dir()}
    assert folders == {p + ("" if t == "clean" else f"-{t}") for t, ps in SHIPPED_CORRECTIVES.items() for p in ps}
    prior = load("toyworld")
    assert shipped_corrective(prior) == SHIPPED / "toyworld"
    assert shipped_corrective(prior, "perturbed") == SHIPPED / "toyworld-perturbed"
    perturb = {t: json.loads((shipped_corrective(prior, t) / "corrective.json").read_text())["training"].get("perturb", 0)
               for t in SHIPPED_CORRECTIVES}
    assert perturb == {"clean": 0, "perturbed": 0.5}
    b_hat = load_corrective(shipped_corrective(prior), prior, "toyworld")
    off = load_corrective(shipped_corrective(prior, "perturbed"), prior, "toyworld")
    assert sum(p.numel() for p in b_hat.parameters()) > 1e6
    assert any(not torch.equal(a, b) for a, b in zip(b_hat.parameters(), off.parameters()))
    with pytest.raises(InputError, match="no clean corrective is shipped for this prior \\(GMMPrior"):
        shipped_corrective(default_gmm())
    with pytest.raises(InputError, match="training='noisy' is not a shipped corrective's; shipped: clean, perturbed"):
        shipped_corrective(prior, "noisy")
    for corrective in (None, "perturbed"):
        r = diffrep.sample(prior, method="lmc-sds", prompt="a red mug", n=1, iters=3, guidance_scale=5.0,
                           corrective=corrective)
        assert torch.isfinite(r.images).all() and r.info["config"]["method_options"]["corrective"] == corrective
    with pytest.raises(InputError, match="needs a trained corrective: no perturbed one is shipped for prior 'gmm'"):
        diffrep.sample("gmm", method="lmc-sds", corrective="perturbed", iters=5)


def test_the_perturbed_corrective_is_chosen_by_name_on_the_command_line(tmp_path):
    from diffrep.cli import main

    out = tmp_path / "run"
    assert main(["sample", "--prior", "toyworld", "--method", "lmc-sds", "--lmc-sds.corrective", "perturbed",
                 "--optim.iters", "2", "--prompt", "a red mug", "--n", "1", "--guidance-scale", "5", "--out", str(out)]) == 0
    assert json.loads((out / "run.json").read_text())["config"]["method_options"]["corrective"] == "perturbed"


def test_train_corrective_refuses_a_prior_without_clean_images_before_it_loads(tmp_path, capsys):
    """A Stable Diffusion folder would load gigabytes before clean_images found it has no data: refused first."""
    from diffrep.cli import main

    assert main(["train-corrective", "--prior", "sd:/no/such/model", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train-corrective needs the prior's clean images" in err[0]
    assert not (tmp_path / "c").exists()
