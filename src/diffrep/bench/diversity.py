"""Sampling against mode seeking: 16 seeds per prompt with the reference sampler (image DDIM),
DDRep, SDS and SJC on SIRENs; coverage of distinct nearest data images, mean pairwise distance,
label accuracy and distance to the data."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from diffrep.bench.common import ddrep_with_reference, labelled_reference, prompts
from diffrep.methods import METHODS, OptimConfig, PullbackConfig, Sampling
from diffrep.metrics import diversity, label_accuracy, nearest_data
from diffrep.priors import CountingPrior, toyworld_prior
from diffrep.reps import make_rep


def distill_images(method: str, prior, conds, n: int, guidance_scale: float, rep_options: dict, optim: OptimConfig,
                   seed: int) -> tuple[torch.Tensor, float, int]:
    g = torch.Generator().manual_seed(seed)
    rep = make_rep("siren", prior.image_shape, n, generator=g, **rep_options)
    counted = CountingPrior(prior)
    start = time.perf_counter()
    entry = METHODS[method]
    entry.run(counted, rep, conds, entry.config(optim=optim), sampling=Sampling(guidance_scale=guidance_scale), generator=g)
    with torch.no_grad():
        return rep(None)[:, 0], time.perf_counter() - start, counted.evaluations


def summarise(images, reference, ps, seeds, queries) -> dict:
    """Per-prompt coverage, pairwise distance and label accuracy, averaged over prompts."""
    idx, dist = nearest_data(images, reference.data)
    per_prompt = []
    for j, q in enumerate(queries):
        sl = slice(j * seeds, (j + 1) * seeds)
        d = diversity(images[sl], idx[sl])
        acc = label_accuracy(idx[sl], reference.labels, q)
        per_prompt.append(d | {"label_accuracy": sum(acc.values()) / len(acc), "nearest_rms": dist[sl].mean().item()})
    keys = per_prompt[0].keys()
    return {k: round(sum(p[k] for p in per_prompt) / len(per_prompt), 4) for k in keys}


def run(quick: bool, log: Callable[[str], None], prior=None, prior_name: str = "toyworld") -> dict:
    prior = prior or toyworld_prior()
    k_prompts, seeds = (2, 8) if quick else (6, 16)
    steps, w = (20, 3.0) if quick else (50, 3.0)
    rep_options = {"width": 64, "depth": 3}
    optim = OptimConfig(iters=100 if quick else 400, lr=3e-3, lr_schedule="cosine")
    ps = prompts(prior, k_prompts)
    reference = labelled_reference(prior)
    queries = [reference.encode_prompt(p) for p in ps]
    conds = [prior.encode_prompt(p) for p in ps for _ in range(seeds)]
    n = len(conds)
    ddrep, ref = ddrep_with_reference(prior, conds, n, steps, w, rep_options, PullbackConfig())
    results = {"reference_ddim": summarise(ref.images, reference, ps, seeds, queries) | {"seconds": round(ref.seconds, 2)},
               "ddrep": summarise(ddrep.images, reference, ps, seeds, queries) | {"seconds": round(ddrep.seconds, 2)}}
    shown = {"reference_ddim": ref.images, "ddrep": ddrep.images}
    for method in ("sds", "sjc"):
        images, secs, evals = distill_images(method, prior, conds, n, w, rep_options, optim, seed=1)
        results[method] = summarise(images, reference, ps, seeds, queries) | {"seconds": round(secs, 2)}
        shown[method] = images
    for name, r in results.items():
        r["coverage_ratio_vs_reference"] = round(r["coverage"] / max(1e-9, results["reference_ddim"]["coverage"]), 3)
        log(f"{name}: {r}")
    # One row per method, the first 8 seeds of the first two prompts.
    cols = min(8, seeds)
    grid = torch.cat([torch.cat([x[j * seeds: j * seeds + cols] for j in range(min(2, len(ps)))]) for x in shown.values()])
    return {"prior": prior_name, "prompts": ps, "seeds_per_prompt": seeds, "steps": steps, "guidance_scale": w,
            "rep_options": rep_options, "optim": vars(optim), "methods": results,
            "_images": {"methods": (grid, cols * min(2, len(ps)))}, "image_rows": list(shown),
            "target": "DDRep coverage ratio vs reference >= 0.9"}
