"""DDRep's spread when V views with independent noise states all render one image (docs/nerf.md, *Shared noise*):
the samples' variance against the closed-form Gaussian prior's, for V = 1 ... 64, next to 1/V, the variance of a
product of V copies of the prior. The rep is the test's ``SharedImage`` (tests/test_nerf.py), solved in closed form,
6 views a step (all of them when V < 6), 50 DDIM steps, 2,000 samples.

    OMP_NUM_THREADS=2 .venv/bin/python bench/scripts/ddrep_view_product.py
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from test_nerf import SharedImage  # noqa: E402

from diffrep.methods import PullbackConfig, ddrep_sample  # noqa: E402
from diffrep.priors import default_gaussian  # noqa: E402
from diffrep.schedule import timesteps  # noqa: E402


def main() -> None:
    prior, ts, n = default_gaussian(size=4), timesteps(1000, 50), 2000
    print("| V | variance / prior's | × V | 1/V |\n|---|---|---|---|")
    for V in (1, 2, 4, 8, 16, 32, 64):
        rep = SharedImage(n, V, 0.0)
        ddrep_sample(prior, rep, ts, None, pull=PullbackConfig(solver="closed"), views_per_step=min(6, V),
                     generator=torch.Generator().manual_seed(0))
        x = rep.theta.detach().double().flatten(1)
        v = torch.cov(x.T).trace().item() / prior.cov.trace().item()
        print(f"| {V} | {v:.4f} | {v * V:.3f} | {1 / V:.4f} |", flush=True)


if __name__ == "__main__":
    main()
