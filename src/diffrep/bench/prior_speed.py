"""Prior evaluations per second: the empirical toy-world prior against data-set size, and the
analytic priors, at a fixed batch size."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from diffrep.priors import EmpiricalPrior, default_gaussian, default_gmm, toyworld_prior


def evals_per_second(prior, batch: int, repeats: int, cond=None) -> float:
    """Median over ``repeats`` timed ``eps`` calls of a ``batch`` at random timesteps."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *prior.image_shape, generator=g)
    t = torch.randint(0, len(prior.alphas_cumprod), (batch,), generator=g)
    prior.eps(x, t, cond)  # warm-up (and subset cache)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        prior.eps(x, t, cond)
        times.append(time.perf_counter() - start)
    return batch / sorted(times)[len(times) // 2]


def run(quick: bool, log: Callable[[str], None]) -> dict:
    sizes = [1000, 10000] if quick else [1000, 2500, 5000, 10000]
    batch, repeats = 16, 5 if quick else 20
    full = toyworld_prior(n=max(sizes), res=32)
    rows = []
    for n in sizes:
        prior = EmpiricalPrior(full.data[:n], {k: v[:n] for k, v in full.labels.items()}, full.vocab, full.alphas_cumprod)
        cond = prior.encode_prompt("a red mug")
        row = {"prior": "toyworld", "res": 32, "dataset_size": n, "batch": batch,
               "evals_per_s_uncond": round(evals_per_second(prior, batch, repeats), 1),
               "evals_per_s_cond_kind_colour": round(evals_per_second(prior, batch, repeats, cond), 1)}
        log(str(row))
        rows.append(row)
    for name, prior in (("gaussian", default_gaussian()), ("gmm", default_gmm())):
        row = {"prior": name, "image_shape": list(prior.image_shape), "batch": batch,
               "evals_per_s_uncond": round(evals_per_second(prior, batch, repeats), 1)}
        log(str(row))
        rows.append(row)
    return {"rows": rows}
