import math

import pytest
import torch

from conftest import brute_force_posterior_mean
from diffrep.errors import InputError
from diffrep.priors import (
    CountingPrior, EmpiricalPrior, GaussianPrior, GMMPrior, LabelQuery, Prior, cfg_eps, default_gaussian, default_gmm,
    load, parse_prompt,
)

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
    with pytest.raises(InputError, match="unknown prior 'sd9'; allowed: toyworld, gaussian, gmm"):
        load("sd9")
    with pytest.raises(InputError, match="unknown option 'colour' for prior 'gmm'"):
        load("gmm", colour=3)
    with pytest.raises(InputError, match="unknown prompt 'purple'"):
        default_gmm().encode_prompt("purple")
    with pytest.raises(InputError, match="unconditional"):
        GaussianPrior(torch.zeros(1, 2, 2), torch.ones(1, 2, 2)).encode_prompt("a cat")
