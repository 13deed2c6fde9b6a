"""DDRep and the distillation family against closed forms: image DDIM, dense Jacobians, exact
Gaussian and mixture priors, explicit gradient formulas."""

import copy
import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from diffrep.methods import PullbackConfig, ddrep_sample, gauss_newton_step, sds_grad, sjc_grad, surrogate_loss
from diffrep.methods.ddrep import forward_noise_kernel, reverse_noise
from diffrep.priors import default_gaussian, default_gmm
from diffrep.reps import make_rep
from diffrep.samplers import sample_ddim
from diffrep.schedule import ddim_coefficients, timesteps


def test_every_solver_the_command_line_takes_has_its_pullback_in_the_table():
    """The torch-free names `--ddrep.solver` is checked against and the table of pullbacks are one axis (habit 14)."""
    from diffrep.methods.configs import SOLVERS
    from diffrep.methods.solvers import PULLBACKS

    assert tuple(PULLBACKS) == SOLVERS


@pytest.mark.parametrize("eta", [0.0, 0.7])
@pytest.mark.parametrize("solver", ["closed", "gn"])
def test_ddrep_on_pixels_reproduces_image_ddim(eta, solver):
    """Identity diffrep + same noise: DDRep is image-space DDIM (design §5, the first test)."""
    prior = default_gmm(size=4)
    cond = prior.encode_prompt("red")
    ts = timesteps(1000, 25)
    rep = make_rep("pixels", prior.image_shape, 6, generator=torch.Generator().manual_seed(0))
    noise = torch.randn(6, *prior.image_shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        x_T = ddim_coefficients(prior.alphas_cumprod, ts[0], ts[1], eta)
        x_T = x_T.a_t * rep(None)[:, 0] + x_T.s_t * noise
    ref = sample_ddim(prior, x_T, ts, cond, guidance_scale=2.0, eta=eta, generator=torch.Generator().manual_seed(2))
    ddrep_sample(prior, rep, ts, cond, guidance_scale=2.0, eta=eta, noise=noise.clone(),
                 pull=PullbackConfig(solver=solver, cg_iters=5), generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(rep(None)[:, 0], ref, atol=2e-4, rtol=0)


class MLPRep(nn.Module):
    """A tiny smooth nonlinear diffrep with fewer parameters than outputs (JᵀJ invertible)."""

    def __init__(self, gen):
        super().__init__()
        self.n, self.image_shape, self.linear = 1, (1, 4, 4), False
        self.w1 = nn.Parameter(torch.randn(2, 3, generator=gen, dtype=torch.float64))
        self.b1 = nn.Parameter(torch.randn(3, generator=gen, dtype=torch.float64))
        self.w2 = nn.Parameter(torch.randn(3, 1, generator=gen, dtype=torch.float64) * 0.5)
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, 4), torch.linspace(-1, 1, 4), indexing="ij")
        self.register_buffer("coords", torch.stack([ys, xs], -1).reshape(16, 2).double())

    def forward(self, views=None):
        return (torch.sin(self.coords @ self.w1 + self.b1) @ self.w2).view(1, 1, 1, 4, 4)


def dense_gauss_newton(rep, target, lam=0.0):
    """``(JᵀJ)⁻¹ (Jᵀ r - λ θ)``: the Gauss–Newton step, with a regulariser ``λ‖θ‖²`` to first order."""
    params = dict(rep.named_parameters())
    flat = torch.cat([p.detach().reshape(-1) for p in params.values()])
    sizes = [p.numel() for p in params.values()]

    def f(vec):
        chunks = dict(zip(params, (c.view_as(p) for c, p in zip(vec.split(sizes), params.values()))))
        return torch.func.functional_call(rep, chunks, (None,)).reshape(-1)

    J = torch.func.jacrev(f)(flat)
    r = (target.reshape(-1) - f(flat))
    return torch.linalg.solve(J.T @ J, J.T @ r - lam * flat)


@pytest.mark.parametrize("probes", [0, 4])
def test_gauss_newton_equals_dense_jacobian_solve(probes):
    """Plain and Jacobi-preconditioned CG both solve the normal equations exactly."""
    gen = torch.Generator().manual_seed(0)
    rep = MLPRep(gen)
    target = torch.randn(1, 1, 1, 4, 4, generator=gen, dtype=torch.float64)
    dense = dense_gauss_newton(rep, target)
    fast = gauss_newton_step(rep, None, target, cg_iters=200, probes=probes)
    assert (fast - dense).norm() / dense.norm() < 1e-4


def test_gauss_newton_on_tiny_siren_equals_dense_solve():
    rep = make_rep("siren", (1, 6, 6), 1, generator=torch.Generator().manual_seed(0), embed_dim=4, width=3, depth=1)
    rep.double()
    n_params = sum(p.numel() for p in rep.parameters())
    assert n_params < 36, n_params  # fewer parameters than outputs: a unique least-squares solution
    target = torch.randn(1, 1, 1, 6, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.3
    dense = dense_gauss_newton(rep, target)
    for probes in (0, 4):
        fast = gauss_newton_step(rep, None, target, cg_iters=500, probes=probes)
        assert (fast - dense).norm() / dense.norm() < 1e-4, probes


def test_the_pullback_reports_its_fit_and_ddrep_its_progress_loss():
    """What the progress bar shows as DDRep's loss: the mean squared error of Adam's last iteration (before its
    update), on every pixel or estimated from a subset, or before Gauss–Newton's last step; the closed form none."""
    from diffrep.methods.solvers import pullback

    gen = torch.Generator().manual_seed(0)
    rep = make_rep("siren", (3, 8, 8), 2, generator=gen, width=16)
    views, target = None, torch.randn(2, 1, 3, 8, 8, generator=gen)
    before = (rep(views) - target).pow(2).mean().item()
    assert pullback(rep, views, target, PullbackConfig(adam_iters=1)) == pytest.approx(before, rel=1e-6)
    estimates = [pullback(make_rep("siren", (3, 8, 8), 2, generator=torch.Generator().manual_seed(0), width=16), views,
                          target, PullbackConfig(adam_iters=1, pixel_fraction=0.25), torch.Generator().manual_seed(s))
                 for s in range(200)]
    assert sum(estimates) / len(estimates) == pytest.approx(before, rel=0.05)  # unbiased over the subsets
    before = (rep(views) - target).pow(2).mean().item()  # after the Adam iteration
    twin = copy.deepcopy(rep)  # Gauss–Newton reports the fit before its last step: one step, then two
    one_step = PullbackConfig(solver="gn", gn_iters=1, cg_iters=4, probes=0)
    assert pullback(twin, views, target, one_step) == pytest.approx(before, rel=1e-6)
    after_one = (twin(views) - target).pow(2).mean().item()
    assert after_one < before and pullback(rep, views, target, replace(one_step, gn_iters=2)) == pytest.approx(after_one, rel=1e-5)
    pixels = make_rep("pixels", (3, 8, 8), 2, generator=gen, tanh=False)
    assert pullback(pixels, views, target, PullbackConfig(solver="closed")) is None  # the exact fit: none computed
    prior, heard = default_gaussian(size=8), []
    rep = make_rep("siren", (3, 8, 8), 1, generator=gen, width=16)
    ddrep_sample(prior, rep, timesteps(1000, 4), callback=heard.append, generator=gen)
    assert all(d["loss"] > 0 for d in heard) and len(heard) == 4


def test_adam_converges_to_the_least_squares_fit():
    gen = torch.Generator().manual_seed(0)  # seed 0: cond(JᵀJ) ~ 2e5, so CG converges
    rep = MLPRep(gen)
    target = (rep(None) + 0.05 * torch.randn(1, 1, 1, 4, 4, generator=gen, dtype=torch.float64)).detach()
    from diffrep.methods.solvers import pullback, squared_error

    gn = MLPRep(torch.Generator().manual_seed(0))
    for _ in range(30):  # Levenberg–Marquardt iterations to the nearest least-squares optimum
        pullback(gn, None, target, PullbackConfig(solver="gn", cg_iters=100, damping=1e-3))
    pullback(rep, None, target, PullbackConfig(solver="adam", adam_iters=3000, adam_lr=3e-3))
    pullback(rep, None, target, PullbackConfig(solver="adam", adam_iters=3000, adam_lr=1e-3))
    e_gn, e_adam = squared_error(gn, None, target).item(), squared_error(rep, None, target).item()
    assert e_adam == pytest.approx(e_gn, rel=1e-2, abs=1e-8)
    torch.testing.assert_close(rep(None), gn(None), atol=1e-3, rtol=0)


def test_repaint_forward_after_reverse_preserves_gaussian_marginal():
    """Reverse t -> s then forward s -> t: x_t = a_t x0 + s_t ε_t stays N(a_t x0, s_t² I) given the
    clean part, and (ε_s, ε_t) has the reverse kernel's joint law (correlation ρ / s_s)."""
    gen = torch.Generator().manual_seed(0)
    prior = default_gaussian(size=2)
    ab = prior.alphas_cumprod
    N = 20000
    k = ddim_coefficients(ab, 600, 560, eta=1.0)
    x0 = prior.sample_x0(N, generator=gen).float()
    eps_t = torch.randn(x0.shape, generator=gen)
    # A full DDRep reverse step on pixels, with the prior in the loop.
    rep = make_rep("pixels", prior.image_shape, N, generator=gen)
    with torch.no_grad():
        rep.solve_linear(None, x0[:, None])
    from diffrep.methods import ddrep_step

    eps_s = ddrep_step(prior, rep, eps_t, 600, 560, None, guidance_scale=1.0, eta=1.0,
                       pull=PullbackConfig(solver="closed"), generator=gen)
    eps_t2 = forward_noise_kernel(eps_s, k, gen)
    for e in (eps_s, eps_t2):
        assert e.mean().abs() < 0.01 and (e.flatten(1).var(0) - 1).abs().max() < 0.05
    corr = lambda a, b: ((a * b).mean() / (a.std() * b.std())).item()  # noqa: E731
    assert corr(eps_s, eps_t2) == pytest.approx(k.rho / k.s_s, abs=0.01)
    assert corr(eps_t, eps_s) == pytest.approx(k.rho / k.s_s, abs=0.01)
    x_t = k.a_t * rep(None)[:, 0].detach() + k.s_t * eps_t2
    resid = (x_t - k.a_t * rep(None)[:, 0].detach()) / k.s_t
    assert (resid.flatten(1).var(0) - 1).abs().max() < 0.05
    # eta = 0: the forward step changes nothing, so RePaint needs eta > 0.
    k0 = ddim_coefficients(ab, 600, 560, eta=0.0)
    torch.testing.assert_close(forward_noise_kernel(eps_s, k0, gen), eps_s)
    torch.testing.assert_close(reverse_noise(eps_s, k0, gen), eps_s)


class LinearRep(nn.Module):
    """f(θ) = A θ: a linear renderer whose parameter gradient is exactly Aᵀ g."""

    def __init__(self, gen, image_shape=(3, 4, 4), p=7):
        super().__init__()
        self.n, self.image_shape = 2, image_shape
        D = math.prod(image_shape)
        self.A = torch.randn(D, p, generator=gen) / p**0.5
        self.theta = nn.Parameter(torch.randn(2, p, generator=gen))

    def forward(self, views=None):
        return (self.theta @ self.A.T).view(2, 1, *self.image_shape)


@pytest.mark.parametrize("weighting", ["s2", "one"])
def test_sds_gradient_is_explicit_formula_through_linear_renderer(weighting):
    gen = torch.Generator().manual_seed(0)
    prior = default_gmm(size=4)
    rep = LinearRep(gen)
    cond = prior.encode_prompt("green")
    t, eps = torch.tensor([120, 870]), torch.randn(2, 3, 4, 4, generator=gen)
    x = rep(None).flatten(0, 1)
    g = sds_grad(prior, x.detach(), cond, t=t, eps=eps, guidance_scale=5.0, weighting=weighting)
    surrogate_loss(x, g).backward()
    # Explicit: w(t) (ε̂_u + w(ε̂_c - ε̂_u) - ε), pushed through Aᵀ, batch mean.
    ab = prior.alphas_cumprod[t].float().view(-1, 1, 1, 1)
    x_t = ab.sqrt() * x.detach() + (1 - ab).sqrt() * eps
    e_u, e_c = prior.eps(x_t, t, None), prior.eps(x_t, t, cond)
    w = (1 - ab) if weighting == "s2" else torch.ones_like(ab)
    g_ref = w * (e_u + 5.0 * (e_c - e_u) - eps)
    torch.testing.assert_close(g, g_ref)
    torch.testing.assert_close(rep.theta.grad, g_ref.flatten(1) @ rep.A / 2)


@pytest.mark.parametrize("variance_reduced", [True, False])
def test_sjc_gradient_is_explicit_formula_through_linear_renderer(variance_reduced):
    gen = torch.Generator().manual_seed(1)
    prior = default_gmm(size=4)
    rep = LinearRep(gen)
    t, n = torch.tensor([50, 640]), torch.randn(2, 3, 4, 4, generator=gen)
    x = rep(None).flatten(0, 1)
    g = sjc_grad(prior, x.detach(), None, t=t, noise=n, guidance_scale=1.0, variance_reduced=variance_reduced)
    surrogate_loss(x, g).backward()
    ab = prior.alphas_cumprod[t].double().view(-1, 1, 1, 1)
    sigma = ((1 - ab) / ab).sqrt()
    y = x.detach().double() + sigma * n.double()
    D = (ab.sqrt() * y - (1 - ab).sqrt() * prior.eps(ab.sqrt() * y, t, None)) / ab.sqrt()  # Tweedie at x_t = a y
    g_ref = -(D - (x.detach().double() if variance_reduced else y)) / sigma
    torch.testing.assert_close(g.double(), g_ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(rep.theta.grad.double(), g_ref.flatten(1) @ rep.A.double() / 2, atol=1e-4, rtol=1e-4)


def chi_square_p(counts: torch.Tensor, probs: torch.Tensor) -> float:
    """Pearson's chi-square goodness of fit, p-value (scipy-free: regularised upper gamma)."""
    expected = probs * counts.sum()
    stat = ((counts - expected) ** 2 / expected).sum().item()
    dof = len(counts) - 1
    return float(torch.special.gammaincc(torch.tensor(dof / 2, dtype=torch.float64), torch.tensor(stat / 2, dtype=torch.float64)))


def nearest_component(prior, x):
    d = ((x.double()[:, None] - prior.means[None]) ** 2).flatten(2).sum(-1)
    return d.argmin(1)


def test_ddrep_siren_samples_mixture_weights_where_sds_does_not():
    prior = default_gmm(size=4, std=0.15)
    probs = prior.weights.float()
    n = 300
    gen = torch.Generator().manual_seed(0)
    rep = make_rep("siren", prior.image_shape, n, generator=gen, embed_dim=16, width=32, depth=2)
    ddrep_sample(prior, rep, timesteps(1000, 25), None, guidance_scale=1.0, eta=0.0,
                 pull=PullbackConfig(solver="gn", cg_iters=20), generator=gen)
    counts = torch.bincount(nearest_component(prior, rep(None)[:, 0].detach()), minlength=4).float()
    assert chi_square_p(counts, probs) > 0.01, counts

    from diffrep.methods import OptimConfig, Sampling, SDSOptions, run_sds

    rep = make_rep("siren", prior.image_shape, n, generator=torch.Generator().manual_seed(0),
                   embed_dim=16, width=32, depth=2)
    run_sds(prior, rep, None, SDSOptions(optim=OptimConfig(iters=300, lr=1e-2)), sampling=Sampling(guidance_scale=1.0),
            generator=gen)
    counts_sds = torch.bincount(nearest_component(prior, rep(None)[:, 0].detach()), minlength=4).float()
    assert chi_square_p(counts_sds, probs) < 1e-4, counts_sds


class PenalisedMLP(MLPRep):
    """The MLP rep with the regulariser ``λ‖θ‖²`` on its one view."""

    def __init__(self, gen, lam):
        super().__init__(gen)
        self.lam = lam

    def regularised(self, views=None):
        return self(views), self.lam * sum(p.pow(2).sum() for p in self.parameters()).view(1, 1)


def test_regularisers_enter_gauss_newton_to_first_order_and_adam_exactly():
    """With ``R = λ‖θ‖²`` the Gauss–Newton step solves ``JᵀJ δ = Jᵀ r - λ θ`` (dense twin); Adam
    minimises the regularised error, so its fit has a smaller norm and a lower regularised error."""
    from diffrep.methods.solvers import pullback, regularised_error

    target = torch.randn(1, 1, 1, 4, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    rep = PenalisedMLP(torch.Generator().manual_seed(0), 0.01)
    fast = gauss_newton_step(rep, None, target, cg_iters=200)
    dense = dense_gauss_newton(rep, target, lam=0.01)
    assert (fast - dense).norm() / dense.norm() < 1e-4
    plain = PenalisedMLP(torch.Generator().manual_seed(0), 0.0)
    for model in (rep, plain):  # to convergence, as test_adam_converges_to_the_least_squares_fit
        pullback(model, None, target, PullbackConfig(solver="adam", adam_iters=3000, adam_lr=3e-3))
        pullback(model, None, target, PullbackConfig(solver="adam", adam_iters=3000, adam_lr=1e-3))
    norm = lambda m: sum(p.pow(2).sum() for p in m.parameters()).item()  # noqa: E731
    assert norm(rep) < norm(plain)
    assert regularised_error(rep, None, target).item() < regularised_error(plain, None, target).item() + 0.01 * norm(plain)
