"""MultiDiffusion on a 360° canvas (samplers.sample_multidiffusion): against a dense float64 closed form on a
Gaussian view prior, and reduced to independent DDIM per view when the views do not overlap."""

import pytest
import torch

from diffrep.priors import EmpiricalPrior, GaussianPrior
from diffrep.samplers import (
    canvas_view_columns,
    fuse_views,
    sample_ddim,
    sample_multidiffusion,
)
from diffrep.schedule import ddim_coefficients, timesteps


def gaussian_view_prior(C=2, H=3, W=4, seed=0) -> GaussianPrior:
    g = torch.Generator().manual_seed(seed)
    D = C * H * W
    A = torch.randn(D, D, generator=g, dtype=torch.float64) / D**0.5
    return GaussianPrior(torch.randn(C, H, W, generator=g, dtype=torch.float64) * 0.3, A @ A.T + 0.05 * torch.eye(D, dtype=torch.float64))


def closed_form_multidiffusion(prior: GaussianPrior, x: torch.Tensor, ts: list[int], stride: int, eta: float,
                               generator: torch.Generator) -> torch.Tensor:
    """The fused step as dense linear algebra: per view the DDIM map of the Gaussian is affine,
    ``x_s^v = (a_s/a_t) P_v x + (rho - a_s s_t/a_t) M_t (P_v x - a_t mu) + c P_v z`` with
    ``M_t = Sigma-eigen form of eps``, and the fusion is ``(sum_v P_v^T P_v)^-1 sum_v P_v^T x_s^v``."""
    B, C, H, Wc = x.shape
    W = prior.image_shape[-1]
    index = torch.arange(C * H * Wc).view(C, H, Wc)
    eye = torch.eye(C * H * Wc, dtype=torch.float64)
    P = [eye[index[:, :, [(j + u) % Wc for u in range(W)]].flatten()] for j in range(0, Wc, stride)]
    G = sum(p.T @ p for p in P)
    mu, lam, U = prior.mean.flatten(), prior._lam, prior._U
    x = x.flatten(1).to(torch.float64)
    for i, t in enumerate(ts):
        k = ddim_coefficients(prior.alphas_cumprod, t, ts[i + 1] if i + 1 < len(ts) else -1, eta)
        M = U @ torch.diag(k.s_t / (k.a_t**2 * lam + k.s_t**2)) @ U.T
        z = torch.randn((B, C * H * Wc), generator=generator, dtype=torch.float64) if k.c > 0 else torch.zeros_like(x)
        total = 0
        for p in P:
            xv = x @ p.T
            eps = (xv - k.a_t * mu) @ M.T
            total = total + (k.a_s / k.a_t * xv + (k.rho - k.a_s * k.s_t / k.a_t) * eps + k.c * (z @ p.T)) @ p
        x = torch.linalg.solve(G, total.T).T
    return x.view(B, C, H, Wc)


@pytest.mark.parametrize("stride,eta", [(1, 0.0), (3, 1.0), (4, 0.5)])
def test_multidiffusion_matches_dense_closed_form_on_gaussian_views(stride, eta):
    prior = gaussian_view_prior()
    x = torch.randn(2, 2, 3, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ts = timesteps(len(prior.alphas_cumprod), 8)
    got = sample_multidiffusion(prior, x, ts, stride=stride, eta=eta, generator=torch.Generator().manual_seed(2))
    want = closed_form_multidiffusion(prior, x, ts, stride, eta, torch.Generator().manual_seed(2))
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


def test_multidiffusion_without_overlap_is_independent_ddim_per_view():
    g = torch.Generator().manual_seed(0)
    prior = EmpiricalPrior(torch.rand(20, 3, 4, 4, generator=g) * 2 - 1)
    x = torch.randn(2, 3, 4, 12, generator=g)
    ts = timesteps(len(prior.alphas_cumprod), 10)
    got = sample_multidiffusion(prior, x, ts, stride=4)
    per_view = x.unflatten(-1, (3, 4)).permute(0, 3, 1, 2, 4).reshape(6, 3, 4, 4)
    want = sample_ddim(prior, per_view, ts).view(2, 3, 3, 4, 4).permute(0, 2, 3, 1, 4).reshape(2, 3, 4, 12)
    torch.testing.assert_close(got, want)


def test_fusion_is_the_mean_of_covering_views_with_wraparound():
    cols = canvas_view_columns(6, 4, 2)  # views at 0, 2, 4; the last wraps to columns 4, 5, 0, 1
    assert cols.tolist() == [[0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 0, 1]]
    views = torch.arange(3.0).view(1, 3, 1, 1, 1).expand(1, 3, 1, 1, 4)  # view v proposes the value v
    canvas = fuse_views(views, cols, 6)
    assert canvas.flatten().tolist() == [1.0, 1.0, 0.5, 0.5, 1.5, 1.5]
