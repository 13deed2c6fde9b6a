import math

import pytest
import torch

from diffrep.errors import InputError  # noqa: F401  (imported to check the module exists)
from diffrep.schedule import (
    cosine_schedule, ddim_coefficients, ddim_step, ddpm_posterior_step, forward_step, linear_schedule,
    make_schedule, scaled_linear_schedule, timesteps,
)


@pytest.mark.parametrize("fn", [linear_schedule, scaled_linear_schedule, cosine_schedule])
def test_schedules_decrease_from_one_to_near_zero(fn):
    ab = fn(1000)
    assert ab.shape == (1000,) and ab.dtype == torch.float64
    assert (ab[1:] < ab[:-1]).all()
    assert 0.99 < ab[0] < 1 and ab[-1] < 0.01


def test_known_schedule_values():
    # DDPM linear: alpha_bar_T ~ 4.0e-5; SD scaled-linear: alpha_bar_T ~ 4.7e-3.
    assert linear_schedule()[-1].item() == pytest.approx(4.04e-5, rel=0.02)
    assert scaled_linear_schedule()[-1].item() == pytest.approx(4.68e-3, rel=0.02)
    with pytest.raises(ValueError, match="allowed: linear, scaled_linear, cosine"):
        make_schedule("quadratic")


def test_timesteps_trailing_and_unique():
    ts = timesteps(1000, 50)
    assert ts[0] == 999 and ts[-1] > 0 and len(ts) == 50 and ts == sorted(ts, reverse=True)
    assert timesteps(10, 50) == list(range(9, -1, -1))  # more steps than T: every step once
    assert timesteps(1000, 4, t_start=400)[0] == 400


def test_ddim_coefficients_keep_variance():
    ab = linear_schedule()
    for eta in (0.0, 0.5, 1.0):
        k = ddim_coefficients(ab, 700, 500, eta)
        assert k.rho**2 + k.c**2 == pytest.approx(1 - ab[500].item())
    assert ddim_coefficients(ab, 700, 500, 0.0).c == 0
    k = ddim_coefficients(ab, 10, -1, 1.0)
    assert (k.a_s, k.s_s, k.c, k.rho) == (1.0, 0.0, 0.0, 0.0)


def test_ddim_eta_one_is_the_ddpm_posterior(gen):
    """With eta = 1, DDIM's step is the textbook DDPM posterior sample (same z)."""
    ab = linear_schedule()
    x_t, eps_hat, z = (torch.randn(4, 3, 5, 5, generator=gen, dtype=torch.float64) for _ in range(3))
    for t, s in ((999, 979), (500, 499), (20, 0)):
        a = ddim_step(x_t, eps_hat, ddim_coefficients(ab, t, s, 1.0), z)
        b = ddpm_posterior_step(x_t, eps_hat, ab, t, s, z)
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_forward_step_composes_to_marginal(gen):
    """q(x_t | x_s) after q(x_s | x_0) has the marginal N(a_t x_0, s_t^2)."""
    ab = linear_schedule()
    x0 = torch.full((200_000,), 0.7, dtype=torch.float64)
    x_s = math.sqrt(ab[300]) * x0 + math.sqrt(1 - ab[300]) * torch.randn(x0.shape, generator=gen, dtype=torch.float64)
    x_t = forward_step(x_s, ab, 300, 800, torch.randn(x0.shape, generator=gen, dtype=torch.float64))
    assert x_t.mean().item() == pytest.approx(math.sqrt(ab[800]) * 0.7, abs=5e-3)
    assert x_t.std().item() == pytest.approx(math.sqrt(1 - ab[800]), rel=5e-3)
