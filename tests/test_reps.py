"""diffrep.reps: shapes, determinism, validation, exact views, fitting, independence, torch.func."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
from catalogue import MAKE_REP_INPUTS
from torch.func import functional_call, jacrev, jvp

import diffrep.reps as R
from diffrep.errors import InputError
from diffrep.reps import PixelRep, crop, make_rep

DOCS = Path(__file__).resolve().parent.parent / "docs"


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def toy_image(H: int, W: int) -> torch.Tensor:
    """A toy-world-like target [3, H, W]: a red disc and a blue rectangle, hard edges, on grey."""
    y, x = R.siren.pixel_centres(H).float(), R.siren.pixel_centres(W).float()
    Y, X = torch.meshgrid(y, x, indexing="ij")
    img = torch.full((3, H, W), -0.1)
    img[:, (X + 0.3) ** 2 + (Y + 0.2) ** 2 < 0.35**2] = torch.tensor([0.8, -0.7, -0.6])[:, None]
    img[:, (X > 0.05) & (X < 0.7) & (Y > 0.1) & (Y < 0.6)] = torch.tensor([-0.6, -0.3, 0.9])[:, None]
    return img


def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    """PSNR in dB of images in [-1, 1] (peak-to-peak 2, i.e. the usual PSNR on [0, 1])."""
    return 10 * math.log10(4 / ((x - y) ** 2).mean().item())


def fit(rep: torch.nn.Module, target: torch.Tensor, steps: int, lr: float, render=None) -> None:
    """Adam on the mean squared error of ``render()`` (default: the canonical view) against ``target``."""
    render = render or (lambda: rep())
    opt = torch.optim.Adam(rep.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        ((render() - target) ** 2).mean().backward()
        opt.step()


def flat_jacobian(rep: torch.nn.Module, views=None) -> torch.Tensor:
    """Dense ``[n*V*C*H*W, P]`` Jacobian of the render via functional_call + jacrev."""
    params = {k: v.detach() for k, v in rep.named_parameters()}
    J = jacrev(lambda p: functional_call(rep, p, (views,)))(params)
    out = rep(views).numel()
    return torch.cat([J[k].reshape(out, -1) for k in params], 1)


# ---- the registry and the shared interface -------------------------------------------------


def test_all_names_import():
    for name in R.__all__:
        assert getattr(R, name) is not None, name


@pytest.mark.parametrize("name", ["pixels", "siren", "panorama"])  # the NeRF: tests/test_nerf.py
def test_shapes_views_and_determinism(name):
    opts = {} if name == "pixels" else {"width": 16, "embed_dim": 8}
    rep = make_rep(name, (3, 8, 12), 2, generator=gen(0), **opts)
    assert rep.n == 2 and rep.image_shape == (3, 8, 12) and rep().shape == (2, 1, 3, 8, 12)
    views = rep.random_views(5, gen(1))
    if name == "panorama":
        assert views.shape == (2, 5) and views.dtype == torch.long and rep(views).shape == (2, 5, 3, 8, 12)
    else:
        assert views is None
    twin = make_rep(name, (3, 8, 12), 2, generator=gen(0), **opts)
    for (k, a), b in zip(rep.state_dict().items(), twin.state_dict().values()):
        assert torch.equal(a, b), k
    if name != "pixels":
        other = make_rep(name, (3, 8, 12), 2, generator=gen(1), **opts)
        assert not torch.equal(rep(), other())
        assert 0 < rep().abs().max() < 0.1  # the initial render is small


@pytest.mark.parametrize("call, message", MAKE_REP_INPUTS)
def test_bad_input_is_one_clear_input_error(call, message):
    with pytest.raises(InputError, match=message) as info:
        call()
    assert "\n" not in str(info.value)


# ---- pixels ----------------------------------------------------------------------------------


def test_pixels_canonical_view_is_the_grid_exactly():
    rep = PixelRep((3, 8, 8), 2, R.PixelsConfig(augment=True, init_std=0.5), generator=gen())
    views = rep.random_views(4, gen(1))
    views[:, 1] = torch.tensor([0.0, 1.0])
    out = rep(views)
    assert torch.equal(rep()[:, 0], rep.theta) and torch.equal(out[:, 1], rep.theta)
    assert (out[:, [0, 2, 3]] - rep.theta[:, None]).abs().amax((2, 3, 4)).min() > 0.1  # augmented views differ
    assert views[..., 0].abs().max() <= 30 and views[..., 1].min() >= 0.6 and views[..., 1].max() <= 1.2


def test_pixels_tanh_starts_at_zero_and_stays_bounded():
    rep = make_rep("pixels", (3, 4, 4), 2, generator=gen(), tanh=True)
    assert torch.equal(rep(), torch.zeros(2, 1, 3, 4, 4)) and not rep.linear
    with torch.no_grad():
        rep.theta.fill_(10.0)
    assert rep().max() <= 1


def test_pixels_rotation_direction_and_differentiability():
    x = torch.randn(1, 3, 6, 6, generator=gen(), dtype=torch.float64)
    rotated = R.rotate_scale(x, torch.tensor([[[90.0, 1.0]]], dtype=torch.float64))[:, 0]
    torch.testing.assert_close(rotated, torch.rot90(x, 1, (-2, -1)))  # counter-clockwise as displayed
    views = torch.tensor([[[17.0, 0.8], [-25.0, 1.1]]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: R.rotate_scale(t, views), (x.requires_grad_(),))


def test_pixels_solve_linear_is_the_exact_least_squares_fit():
    rep = PixelRep((2, 3, 3), 2, generator=gen())
    targets = torch.randn(2, 4, 2, 3, 3, generator=gen(1))
    rep.solve_linear(None, targets)
    twin = PixelRep((2, 3, 3), 2, generator=gen())
    twin.solve_linear(torch.tensor([[[0.0, 1.0]] * 4] * 2), targets)
    assert torch.equal(twin.theta, rep.theta)
    # Slow twin: dense Jacobian of the 4 canonical views, least squares per instance.
    one = PixelRep((2, 3, 3), 1, generator=gen())
    views = torch.tensor([[[0.0, 1.0]] * 4])
    J = flat_jacobian(one, views)  # [4*18, 18]
    for i in range(2):
        theta = torch.linalg.lstsq(J, targets[i].reshape(-1, 1)).solution.view(2, 3, 3)
        torch.testing.assert_close(rep.theta[i], theta)
    for bad in (dict(tanh=True), dict(augment=True)):
        with pytest.raises(NotImplementedError):
            make_rep("pixels", (2, 3, 3), 2, generator=gen(), **bad).solve_linear(None, targets)


# ---- siren -----------------------------------------------------------------------------------


def test_siren_fits_a_toy_image():
    target = toy_image(32, 32)
    rep = make_rep("siren", (3, 32, 32), 1, generator=gen())
    fit(rep, target, steps=50, lr=3e-3)  # ~48 dB; 35 dB is reached in ~25 steps (docs/reps.md)
    assert psnr(rep()[0, 0].detach(), target) >= 35


@pytest.mark.parametrize("name", ["siren", "panorama"])
def test_instances_are_independent_and_batched_equals_looped(name):
    rep = make_rep(name, (3, 8, 8), 3, generator=gen(), width=32)
    views = rep.random_views(2, gen(1))
    out = rep(views)
    grads = torch.autograd.grad(out[0].square().sum(), list(rep.parameters()))
    assert all(g[1:].abs().max() == 0 and g[0].abs().max() > 0 for g in grads)
    for i in range(3):
        params = {k: v[i:i + 1] for k, v in rep.named_parameters()}
        one = functional_call(rep, params, (None if views is None else views[i:i + 1],))
        torch.testing.assert_close(one, out[i:i + 1], rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["siren", "panorama"])
def test_jacrev_gives_the_dense_jacobian(name):
    rep = make_rep(name, (3, 8, 8), 2, generator=gen(), width=8, embed_dim=8, depth=2)
    views = None if name == "siren" else torch.tensor([[0, 30], [44, 3]])
    J = flat_jacobian(rep, views)
    P = sum(p.numel() for p in rep.parameters())
    assert J.shape == (rep(views).numel(), P)
    # u^T J equals ordinary autograd on the module's own parameters (catches functional_call
    # silently leaving a parameter out), and J v equals the forward-mode JVP.
    u = torch.randn(rep(views).shape, generator=gen(1))
    grads = torch.autograd.grad(rep(views), list(rep.parameters()), grad_outputs=u)
    torch.testing.assert_close(u.flatten() @ J, torch.cat([g.flatten() for g in grads]), rtol=1e-4, atol=1e-5)
    params = {k: v.detach() for k, v in rep.named_parameters()}
    tangent = {k: torch.randn(v.shape, generator=gen(2)) for k, v in params.items()}
    _, Jv = jvp(lambda p: functional_call(rep, p, (views,)), (params,), (tangent,))
    v = torch.cat([t.flatten() for t in tangent.values()])
    torch.testing.assert_close(J @ v, Jv.flatten(), rtol=1e-4, atol=1e-5)


# ---- panorama --------------------------------------------------------------------------------


def test_panorama_encoding_and_render_are_exactly_periodic():
    rep = make_rep("panorama", (3, 8, 8), 2, generator=gen(), width=32)
    Wc = rep.canvas_shape[2]
    assert rep.canvas_shape == (3, 8, 48)
    cols = torch.arange(Wc)
    enc = R.panorama_embedding(rep.freqs_y, rep.harmonics, 8, cols, Wc)
    for shift in (Wc, -Wc, 5 * Wc):  # phi + 2 pi m
        assert torch.equal(enc, R.panorama_embedding(rep.freqs_y, rep.harmonics, 8, cols + shift, Wc))
    phi = 2 * math.pi * (cols.double() + 0.5) / Wc  # the integer phase reduction is k phi mod 2 pi
    k_phi = R.azimuth_phase(rep.harmonics, cols, Wc)
    torch.testing.assert_close(torch.sin(k_phi), torch.sin(rep.harmonics.double() * phi[:, None]))
    assert torch.equal(rep.render_columns(torch.tensor([Wc])), rep.render_columns(torch.tensor([0])))
    assert torch.equal(rep.render_columns(torch.arange(Wc, 2 * Wc)), rep.canvas())


def test_panorama_crop_of_the_canvas_is_the_view_render():
    rep = make_rep("panorama", (3, 8, 8), 2, generator=gen(), width=32)
    views = torch.cat([rep.random_views(3, gen(1)), torch.tensor([[0, 47], [43, 40]])], 1)
    canvas = rep.canvas()
    assert torch.equal(crop(canvas, views, 8), rep(views)) and torch.equal(rep.crop(canvas, views), rep(views))
    assert torch.equal(rep(), crop(canvas, torch.zeros(2, 1, dtype=torch.long), 8))
    noise = torch.randn(rep.noise_shape, generator=gen(2))  # DDRep's noise state lives on the canvas
    assert rep.noise_shape == (2, 3, 8, 48)
    assert torch.equal(rep.view_noise(noise, views), crop(noise, views, 8))
    assert torch.equal(rep.view_noise(noise, None), noise[:, None, ..., :8])
    # Slow twin: roll the canvas so the view starts at column 0, then slice.
    for i in range(2):
        for v, j in enumerate(views[i].tolist()):
            torch.testing.assert_close(rep(views)[i, v], torch.roll(canvas[i], -j, -1)[..., :8], rtol=0, atol=0)


def test_fitted_panorama_is_continuous_across_the_seam():
    rep = make_rep("panorama", (3, 16, 16), 1, generator=gen(), fov=90.0, width=64, depth=2)
    C, H, Wc = rep.canvas_shape
    # A periodic target: a disc centred on the seam and a band, on grey.
    y = R.siren.pixel_centres(H).float()[:, None]
    d = torch.remainder(torch.arange(Wc) + 0.5 + Wc / 2, Wc) - Wc / 2  # signed column distance to the seam
    target = torch.full((C, H, Wc), -0.1)
    target[:, (d / 6) ** 2 + (y * 16 / 6) ** 2 < 1] = torch.tensor([0.8, -0.6, -0.6])[:, None]
    target[:, (y > 0.5).expand(H, Wc) & (torch.arange(Wc) > 20) & (torch.arange(Wc) < 40)] = 0.7
    fit(rep, target, steps=100, lr=5e-3, render=lambda: rep.canvas()[0])
    canvas = rep.canvas()[0].detach()
    assert psnr(canvas, target) > 40
    view = rep(torch.tensor([[Wc - 8]]))[0, 0].detach()  # a view straddling the seam
    jumps = (view[..., 1:] - view[..., :-1]).abs().mean((0, 1))  # [W-1]; the seam is between columns 7 and 8
    neighbours = (canvas - torch.roll(canvas, 1, -1)).abs().mean((0, 1))
    assert jumps[7] <= neighbours.quantile(0.9)


def test_docs_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / "reps.md").read_text(), flags=re.S)
    assert blocks
    exec(compile(blocks[0], "docs/reps.md", "exec"), {})
