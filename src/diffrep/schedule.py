"""Noise schedules and the step maths of DDPM/DDIM (design §1, §3, §5).

Everything here is a pure function of the cumulative schedule ``alpha_bar``: no scheduler
objects, no state. ``a_t = sqrt(alpha_bar_t)``, ``s_t = sqrt(1 - alpha_bar_t)``.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch
from torch import Tensor

ScheduleName = Literal["linear", "scaled_linear", "cosine"]
SCHEDULES: tuple[str, ...] = ("linear", "scaled_linear", "cosine")


def linear_schedule(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """DDPM's linear beta schedule (Ho et al. 2020); returns ``alpha_bar`` [T] in float64."""
    betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


def scaled_linear_schedule(T: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012) -> Tensor:
    """Stable Diffusion's schedule: linear in sqrt(beta); returns ``alpha_bar`` [T] in float64."""
    betas = torch.linspace(beta_start**0.5, beta_end**0.5, T, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0)


def cosine_schedule(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """Nichol & Dhariwal's cosine schedule (betas clipped at ``max_beta``); ``alpha_bar`` [T]."""
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=max_beta)
    return torch.cumprod(1.0 - betas, dim=0)


def make_schedule(name: str, T: int = 1000) -> Tensor:
    """``alpha_bar`` [T] for a schedule name in ``SCHEDULES``."""
    makers = {"linear": linear_schedule, "scaled_linear": scaled_linear_schedule, "cosine": cosine_schedule}
    if name not in makers:
        raise ValueError(f"unknown schedule {name!r}; allowed: {', '.join(SCHEDULES)}")
    if T < 2:
        raise ValueError(f"schedule length T={T} must be at least 2")
    return makers[name](T)


def timesteps(T: int, steps: int, t_start: int | None = None) -> list[int]:
    """Decreasing integer timesteps for a ``steps``-step sampler, from ``t_start`` (default T-1)
    down to 0 ("trailing" spacing, so the first step starts at the noisiest level)."""
    t_start = T - 1 if t_start is None else t_start
    if steps < 1:
        raise ValueError(f"steps={steps} must be a positive integer")
    grid = torch.linspace(t_start, 0, steps + 1, dtype=torch.float64)[:-1].round().long()
    return sorted(set(grid.tolist()), reverse=True)


class StepCoefficients(NamedTuple):
    """Coefficients of one DDIM step ``t -> s`` (design §3)."""

    a_t: float
    s_t: float
    a_s: float
    s_s: float
    c: float  # std of the fresh noise z
    rho: float  # coefficient of eps_hat


def ddim_coefficients(alpha_bar: Tensor, t: int, s: int, eta: float) -> StepCoefficients:
    """``c = eta sqrt((1-ab_s)/(1-ab_t)) sqrt(1-ab_t/ab_s)``, ``rho = sqrt(1-ab_s-c^2)``.

    ``s = -1`` means the final step to clean data (``alpha_bar_s = 1``)."""
    ab_t = float(alpha_bar[t])
    ab_s = 1.0 if s < 0 else float(alpha_bar[s])
    c = eta * math.sqrt((1 - ab_s) / (1 - ab_t)) * math.sqrt(max(0.0, 1 - ab_t / ab_s))
    rho = math.sqrt(max(0.0, 1 - ab_s - c**2))
    return StepCoefficients(math.sqrt(ab_t), math.sqrt(1 - ab_t), math.sqrt(ab_s), math.sqrt(1 - ab_s), c, rho)


def predict_x0(x_t: Tensor, eps_hat: Tensor, a_t: float, s_t: float) -> Tensor:
    """Tweedie: ``x0_hat = (x_t - s_t eps_hat) / a_t``."""
    return (x_t - s_t * eps_hat) / a_t


def ddim_step(x_t: Tensor, eps_hat: Tensor, k: StepCoefficients, z: Tensor | None = None) -> Tensor:
    """DDIM update ``x_s = a_s x0_hat + rho eps_hat + c z`` (design §3)."""
    x0_hat = predict_x0(x_t, eps_hat, k.a_t, k.s_t)
    x_s = k.a_s * x0_hat + k.rho * eps_hat
    if k.c > 0:
        x_s = x_s + k.c * z
    return x_s


def ddpm_posterior_step(x_t: Tensor, eps_hat: Tensor, alpha_bar: Tensor, t: int, s: int, z: Tensor) -> Tensor:
    """Ancestral sample of ``q(x_s | x_t, x0_hat)`` in its textbook form (Ho et al. eq. 7),
    generalised to a skip ``t -> s``: mean ``(a_s b / (1-ab_t)) x0 + (sqrt(al) (1-ab_s)/(1-ab_t)) x_t``
    with ``al = ab_t/ab_s``, ``b = 1 - al``, variance ``b (1-ab_s)/(1-ab_t)``."""
    ab_t = float(alpha_bar[t])
    ab_s = 1.0 if s < 0 else float(alpha_bar[s])
    al = ab_t / ab_s
    b = 1 - al
    x0_hat = predict_x0(x_t, eps_hat, math.sqrt(ab_t), math.sqrt(1 - ab_t))
    mean = (math.sqrt(ab_s) * b / (1 - ab_t)) * x0_hat + (math.sqrt(al) * (1 - ab_s) / (1 - ab_t)) * x_t
    var = b * (1 - ab_s) / (1 - ab_t)
    return mean + math.sqrt(var) * z if s >= 0 else mean


def forward_noise(x0: Tensor, alpha_bar: Tensor, t: int, eps: Tensor) -> Tensor:
    """``q(x_t | x_0)``: ``x_t = a_t x_0 + s_t eps``."""
    ab = float(alpha_bar[t])
    return math.sqrt(ab) * x0 + math.sqrt(1 - ab) * eps


def forward_step(x_s: Tensor, alpha_bar: Tensor, s: int, t: int, z: Tensor) -> Tensor:
    """Markov forward kernel ``q(x_t | x_s)``, ``t > s``: ``sqrt(ab_t/ab_s) x_s + sqrt(1-ab_t/ab_s) z``
    (RePaint's "jump back"; ``s = -1`` means clean data)."""
    ab_s = 1.0 if s < 0 else float(alpha_bar[s])
    al = float(alpha_bar[t]) / ab_s
    return math.sqrt(al) * x_s + math.sqrt(1 - al) * z
