"""Why LMC-SDS grows borders, halos and checkerboards on the toy-world prior (docs/benchmarks.md, "LMC-SDS artifacts").

1. Drift: a clean data image (a red mug) optimised with the unconditional gradient alone (prompt None, so g_cond = 0)
   for SDS (g = s_t² (ε̂(∅) - ε)) and LMC-SDS (g = g_lmc / ω): where the data image is a fixed point, it stays.
2. Restoring force: for x = data image + δ, the mean over t ~ U[0.02, 0.98]·T and ε of g·δ/|δ|² (how strongly the
   gradient pushes the perturbation back, x₀ form: SDS's x - x̂_0(∅), LMC's b̂ - x̂_0(∅)), for a smooth δ (a darker
   disc around the object), a checkerboard δ and a one-pixel border δ (`lmc_corrective_perturb.keep_and_restore`).

OMP_NUM_THREADS=1 python bench/scripts/lmc_drift.py  ->  docs/images/lmc-drift-toyworld.png, numbers on stdout."""

import torch
from lmc_corrective_perturb import keep_and_restore  # the three perturbations and their coefficients (same folder)

from diffrep.api import edit
from diffrep.export import image_grid
from diffrep.methods.corrective import load_corrective, shipped_corrective
from diffrep.priors import load
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

with torch.no_grad():
    for name, row in keep_and_restore(prior, load_corrective(shipped_corrective(prior), prior), x).items():
        print(f"{name}: restoring coefficient SDS (x - x̂0) {row['restoring_sds']:.3f}, LMC (b̂ - x̂0) {row['restoring_lmc']:.3f}")
