"""Cost: DDRep SIREN wall time over image-space DDIM wall time at equal prior evaluations, per
solver (with fidelity to the DDIM sample); SJC's wall time to reach DDRep's distance to the data."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from diffrep.bench.common import ddrep_with_reference, labelled_reference, prompts
from diffrep.methods import OptimConfig, PullbackConfig, Sampling, SJCOptions, run_sjc
from diffrep.metrics import nearest_data, psnr
from diffrep.priors import CountingPrior, toyworld_prior
from diffrep.reps import make_rep


def sjc_time_to_quality(prior, data, conds, n: int, w: float, rep_options: dict, target_rms: float, max_iters: int,
                        check_every: int) -> dict:
    """Run SJC in chunks until its mean nearest-data RMS reaches ``target_rms`` (or ``max_iters``)."""
    g = torch.Generator().manual_seed(3)
    rep = make_rep("siren", prior.image_shape, n, generator=g, **rep_options)
    counted, seconds, iters, rms = CountingPrior(prior), 0.0, 0, float("inf")
    while iters < max_iters and rms > target_rms:
        start = time.perf_counter()
        run_sjc(counted, rep, conds, SJCOptions(optim=OptimConfig(iters=check_every, lr=3e-3)),
                sampling=Sampling(guidance_scale=w), generator=g)
        seconds += time.perf_counter() - start
        iters += check_every
        with torch.no_grad():
            rms = nearest_data(rep(None)[:, 0], data)[1].mean().item()
    return {"reached": rms <= target_rms, "iters": iters, "seconds": round(seconds, 2), "nearest_rms": round(rms, 4),
            "prior_evaluations": counted.evaluations}


def run(quick: bool, log: Callable[[str], None], prior=None, prior_name: str = "toyworld") -> dict:
    prior = prior or toyworld_prior()
    k_prompts, seeds, steps, w = (2, 2, 20, 3.0) if quick else (4, 4, 50, 3.0)
    rep_options = {"width": 128}
    ps = prompts(prior, k_prompts)
    data = labelled_reference(prior).data
    conds = [prior.encode_prompt(p) for p in ps for _ in range(seeds)]
    n = len(conds)
    solvers = {"adam_20_default": PullbackConfig(), "gn_pcg5": PullbackConfig(solver="gn"),
               "gn_cg10_unpreconditioned": PullbackConfig(solver="gn", cg_iters=10, probes=0)}
    if not quick:
        solvers["adam_200_paper"] = PullbackConfig(solver="adam", adam_iters=200, adam_lr=1e-3)
    rows, best = [], None
    for name, pull in solvers.items():
        ddrep, ref = ddrep_with_reference(prior, conds, n, steps, w, rep_options, pull)
        rms = nearest_data(ddrep.images, data)[1].mean().item()
        row = {"solver": name, "ddrep_s": round(ddrep.seconds, 2), "ddim_s": round(ref.seconds, 3),
               "ratio": round(ddrep.seconds / ref.seconds, 1), "prior_evaluations": [ddrep.evaluations, ref.evaluations],
               "psnr_vs_ddim_db": round(psnr(ddrep.images, ref.images).mean().item(), 2), "nearest_rms": round(rms, 4)}
        log(str(row))
        rows.append(row)
        best = row if best is None or row["ddrep_s"] < best["ddrep_s"] else best
    sjc = sjc_time_to_quality(prior, data, conds, n, w, rep_options, best["nearest_rms"],
                              max_iters=200 if quick else 2000, check_every=50 if quick else 100)
    sjc["time_ratio_vs_fastest_ddrep"] = round(sjc["seconds"] / best["ddrep_s"], 2)
    log(f"sjc: {sjc}")
    return {"prior": prior_name, "n": n, "steps": steps, "guidance_scale": w, "rep_options": rep_options,
            "solvers": rows, "sjc_to_ddrep_quality": sjc, "target": "DDRep/DDIM wall-time ratio <= 1.3 (paper: 2.1)"}
