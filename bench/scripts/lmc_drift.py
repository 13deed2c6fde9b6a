"""Why LMC-SDS grows borders, halos and checkerboards on the toy-world prior (docs/benchmarks.md, "LMC-SDS artifacts").

1. Drift: a clean data image (a red mug) optimised with the unconditional gradient alone (prompt None, so g_cond = 0)
   for SDS (g = s_t² (ε̂(∅) - ε)) and LMC-SDS (g = g_lmc / ω): where the data image is a fixed point, it stays.
2. Restoring force: for x = data image + δ, the mean over t ~ U[0.02, 0.98]·T and ε of g·δ/|δ|² (how strongly the
   gradient pushes the perturbation back, x₀ form: SDS's x - x̂_0(∅), LMC's b̂ - x̂_0(∅)), for a smooth δ (a darker
   disc around the object), a checkerboard δ and a one-pixel border δ.

OMP_NUM_THREADS=1 python bench/scripts/lmc_drift.py  ->  docs/images/lmc-drift-toyworld.png, numbers on stdout."""

import torch

from diffrep.api import edit
from diffrep.export import image_grid
from diffrep.methods.corrective import load_corrective, normalise, shipped_corrective
from diffrep.priors import load
from diffrep.priors.base import noise_levels
from diffrep.toyworld import COLOURS, KINDS, VIEWS

prior = load("toyworld")
L = prior.labels
i = ((L["kind"] == KINDS.index("mug")) & (L["colour"] == COLOURS.index("red")) & (L["view"] == VIEWS.index("front"))).nonzero()[0, 0]
x = prior.data[i].float()[None]
shown = [x]
for method, lr, iters in (("sds", 3e-2, 80), ("lmc-sds", 3e-2, 80), ("sds", 0.1, 200), ("lmc-sds", 0.1, 200)):
    y = edit(prior, x[0], prompt=None, method=method, anchor=0.0, lr=lr, iters=iters, seed=0).images
    print(f"{method} lr {lr} {iters} iterations, unconditional, from a data image: RMS moved {(y - x).pow(2).mean().sqrt().item():.3f}")
    shown.append(y)
image_grid(torch.cat(shown).clamp(-1, 1), scale=4).save("docs/images/lmc-drift-toyworld.png")

b_hat = load_corrective(shipped_corrective(prior), prior)
H = x.shape[-1]
yy, xx = torch.meshgrid(torch.arange(H), torch.arange(H), indexing="ij")
r = ((yy - H / 2) ** 2 + (xx - H / 2) ** 2).sqrt()
deltas = {"darker disc": -0.2 * ((r > 11) & (r < 15)).float().expand(3, H, H),
          "checkerboard": 0.05 * (-1.0) ** (yy + xx).float().expand(3, H, H),
          "one-pixel border": 0.2 * ((yy == 0) | (yy == H - 1) | (xx == 0) | (xx == H - 1)).float() * torch.tensor([1.0, -1, 1])[:, None, None]}
g = torch.Generator().manual_seed(0)
for name, d in deltas.items():
    xp = (x + d).expand(256, -1, -1, -1)
    t = torch.randint(20, 981, (256,), generator=g)
    a, s = noise_levels(prior.alphas_cumprod, t, xp.dtype)
    xt = a * xp + s * torch.randn(xp.shape, generator=g)
    x0 = (xt - s * prior.eps(xt, t, None)) / a
    k = lambda v: ((v * d).flatten(1).sum(1) / d.pow(2).sum()).mean().item()  # noqa: E731
    print(f"{name}: restoring coefficient SDS (x - x̂0) {k(xp - x0):.3f}, LMC (b̂ - x̂0) {k(normalise(b_hat(xp, t), x0) - x0):.3f}")
