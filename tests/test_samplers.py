"""Image-space samplers against priors whose answer is known in closed form."""

import pytest
import torch

from diffrep.priors import EmpiricalPrior, GaussianPrior, default_gaussian
from diffrep.samplers import sample_ddim, sample_ddpm, sample_repaint, sample_sdedit
from diffrep.schedule import predict_x0, timesteps

N = 4000


def moments(x):
    x = x.flatten(1)
    return x.mean(0), torch.cov(x.T)


def check_moments(prior: GaussianPrior, x: torch.Tensor):
    """Sample mean within 4 standard errors per pixel; covariance within 10 % (Frobenius)."""
    mean, cov = moments(x)
    se = prior.cov.diagonal().sqrt() / N**0.5
    assert ((mean - prior.mean.flatten()).abs() < 4 * se + 1e-3).all()
    rel = torch.linalg.norm(cov - prior.cov) / torch.linalg.norm(prior.cov)
    assert rel < 0.10, f"covariance relative error {rel:.3f}"


@pytest.fixture(scope="module")
def gaussian():
    return default_gaussian(size=4)


def test_ddim_deterministic_reproduces_gaussian_moments(gaussian):
    g = torch.Generator().manual_seed(0)
    x_T = torch.randn(N, *gaussian.image_shape, generator=g, dtype=torch.float64)
    x = sample_ddim(gaussian, x_T, timesteps(1000, 200), eta=0.0)
    check_moments(gaussian, x)


def test_ddim_eta_one_reproduces_gaussian_moments(gaussian):
    g = torch.Generator().manual_seed(1)
    x_T = torch.randn(N, *gaussian.image_shape, generator=g, dtype=torch.float64)
    check_moments(gaussian, sample_ddim(gaussian, x_T, timesteps(1000, 100), eta=1.0, generator=g))


def test_ddpm_ancestral_reproduces_gaussian_moments(gaussian):
    g = torch.Generator().manual_seed(2)
    x_T = torch.randn(N, *gaussian.image_shape, generator=g, dtype=torch.float64)
    check_moments(gaussian, sample_ddpm(gaussian, x_T, timesteps(1000, 250), generator=g))


def test_ddim_is_deterministic_and_batch_independent(gaussian):
    x_T = torch.randn(6, *gaussian.image_shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ts = timesteps(1000, 20)
    full = sample_ddim(gaussian, x_T, ts)
    torch.testing.assert_close(full, sample_ddim(gaussian, x_T, ts))
    torch.testing.assert_close(full[2:4], sample_ddim(gaussian, x_T[2:4], ts))


def test_sdedit_endpoints(gaussian):
    g = torch.Generator().manual_seed(4)
    x0 = gaussian.sample_x0(4, generator=g)
    assert torch.equal(sample_sdedit(gaussian, x0, 0.0, 20, generator=g), x0)
    # The edit moves further from the input as the strength grows.
    dist = [(sample_sdedit(gaussian, x0, s, 20, generator=g) - x0).abs().mean().item() for s in (0.02, 0.2, 0.6)]
    assert dist[0] < dist[1] < dist[2], dist
    # strength 1 forgets the input (up to a_T x0, a_T = 0.006): moments of the prior again.
    x0 = gaussian.sample_x0(1, generator=g).expand(N, -1, -1, -1)
    check_moments(gaussian, sample_sdedit(gaussian, x0, 1.0, 100, generator=g))


def two_images():
    """Two data images that agree nowhere: a left half fixes which one is being inpainted."""
    a = torch.linspace(-0.8, 0.8, 3 * 6 * 6).view(3, 6, 6)
    return torch.stack([a, -a.flip(-1)])


@pytest.mark.parametrize("rounds", [1, 4])
def test_repaint_keeps_known_region_and_completes_the_data_image(rounds):
    prior = EmpiricalPrior(two_images())
    mask = torch.zeros(1, 1, 6, 6)
    mask[..., :3] = 1
    g = torch.Generator().manual_seed(5)
    for i in (0, 1):
        known = prior.data[i].expand(8, -1, -1, -1)
        x = sample_repaint(prior, torch.randn(8, 3, 6, 6, generator=g), timesteps(1000, 50), known, mask,
                           rounds=rounds, generator=g)
        torch.testing.assert_close(x[..., :3], known[..., :3])
        torch.testing.assert_close(x[..., 3:], known[..., 3:], atol=1e-3, rtol=0)


def test_repaint_resampling_matches_gaussian_conditional():
    """On a correlated Gaussian the right fill is the Gaussian conditional; resampling rounds
    move RePaint's fill towards its mean (the naive replacement method, r = 1, lags behind)."""
    D = 2
    cov = torch.tensor([[1.0, 0.95], [0.95, 1.0]], dtype=torch.float64) * 0.3
    prior = GaussianPrior(torch.zeros(1, 1, D, dtype=torch.float64), cov)
    known = torch.full((N, 1, 1, D), 0.8, dtype=torch.float64)
    mask = torch.tensor([1.0, 0.0], dtype=torch.float64).view(1, 1, 1, D)
    target = 0.95 * 0.8  # E[x2 | x1 = 0.8]
    errors = {}
    for rounds in (1, 10):
        g = torch.Generator().manual_seed(6)
        x = sample_repaint(prior, torch.randn(N, 1, 1, D, generator=g, dtype=torch.float64),
                           timesteps(1000, 50), known, mask, rounds=rounds, generator=g)
        errors[rounds] = abs(x[..., 1].mean().item() - target)
        if rounds == 10:
            assert x[..., 1].std().item() == pytest.approx((0.3 * (1 - 0.95**2)) ** 0.5, rel=0.25)
    assert errors[10] < 0.05, errors
    assert errors[10] < errors[1], errors


class RecordingPrior:
    """Wraps a prior and keeps every ``(x_t, t, eps_hat)`` it was asked about."""

    def __init__(self, prior):
        self.prior, self.alphas_cumprod, self.calls = prior, prior.alphas_cumprod, []

    def encode_prompt(self, text):
        return self.prior.encode_prompt(text)

    def eps(self, x_t, t, cond):
        eps_hat = self.prior.eps(x_t, t, cond)
        self.calls.append((x_t.clone(), int(t[0]), eps_hat))
        return eps_hat


@pytest.mark.parametrize("rounds", [1, 3])
def test_repaint_callback_reports_tweedie_estimate_at_t(gaussian, rounds):
    """The callback's x0_hat is Tweedie's estimate from the x_t of the step's last eps evaluation."""
    prior = RecordingPrior(gaussian)
    g = torch.Generator().manual_seed(7)
    x_T = torch.randn(3, *gaussian.image_shape, generator=g, dtype=torch.float64)
    known = gaussian.sample_x0(3, generator=g)
    mask = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    mask[..., :2] = 1
    ts, reports = timesteps(1000, 6), []
    sample_repaint(prior, x_T, ts, known, mask, rounds=rounds, generator=g, callback=reports.append)
    assert len(prior.calls) == rounds * len(ts)
    ab = gaussian.alphas_cumprod
    for r in reports:
        x_t, t, eps_hat = prior.calls[r["i"] * rounds + rounds - 1]
        assert t == r["t"]
        expected = predict_x0(x_t, gaussian.eps(x_t, torch.tensor([t] * 3), None), ab[t].item() ** 0.5, (1 - ab[t].item()) ** 0.5)
        torch.testing.assert_close(r["x0_hat"], expected)


def test_repaint_callback_matches_ddim_with_nothing_known(gaussian):
    """With nothing known, one round and eta = 0 RePaint is DDIM: same states, same x0_hat reports."""
    x_T = torch.randn(3, *gaussian.image_shape, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    ts, ddim, repaint = timesteps(1000, 6), [], []
    sample_ddim(gaussian, x_T, ts, callback=ddim.append)
    mask = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    sample_repaint(gaussian, x_T, ts, torch.zeros_like(x_T), mask, eta=0.0, generator=torch.Generator(), callback=repaint.append)
    for a, b in zip(ddim, repaint, strict=True):
        assert (a["i"], a["t"]) == (b["i"], b["t"])
        torch.testing.assert_close(a["x"], b["x"])
        torch.testing.assert_close(a["x0_hat"], b["x0_hat"])
