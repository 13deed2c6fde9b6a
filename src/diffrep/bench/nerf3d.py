"""Text-to-3D on the toy world: NeRFs sampled with DDRep and distilled with SDS and SJC, evaluated against
the toy world's ground truth (evaluate3d: labels at held-out cameras, occupancy and mask IoU, Janus rate,
3-D diversity), with wall time and prior evaluations; turntable GIFs of each method for two prompts."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

import diffrep
from diffrep.evaluate3d import GroundTruth, as_reference, evaluate_instances, prompt_labels
from diffrep.priors import toyworld_prior
from diffrep.reps.nerf import nerf_objects, nerf_outputs

PROMPTS: tuple[str, ...] = ("a yellow duck", "a red mug", "a blue chair", "a green car", "a purple robot", "an orange house")
# Each method's settings on the default voxel NeRF (32^3, 48 samples, bank 32): DDRep is the default config.
METHODS: dict[str, dict] = {
    "ddrep": {},
    "sds": {"iters": 400, "lr": 2.5e-3, "views_per_step": 4},
    "sjc": {"iters": 400, "lr": 2.5e-3, "optimizer": "adamax", "views_per_step": 4},
}
QUICK: dict[str, dict] = {  # a few steps each: checks that the suite runs, not what it measures
    "ddrep": {"steps": 4, "adam_iters": 2, "views_per_step": 2},
    "sds": {"iters": 4, "lr": 2.5e-3, "views_per_step": 2},
    "sjc": {"iters": 4, "lr": 2.5e-3, "optimizer": "adamax", "views_per_step": 2},
}


def one_run(prior, reference, gt, prompt: str, method: str, seed: int, n: int, options: dict) -> tuple[dict, object]:
    """Sample ``n`` NeRFs of ``prompt`` with ``method``; their evaluation, time and prior evaluations."""
    start = time.perf_counter()
    result = diffrep.sample(prior, rep="nerf", method=method, prompt=prompt, n=n, seed=seed, **options)
    seconds = time.perf_counter() - start
    metrics = evaluate_instances(nerf_objects(result.rep), prompt_labels(prompt), reference, ground_truth=gt)
    row = {"prompt": prompt, "method": method, "seed": seed, "n": n, "options": options, "seconds": round(seconds, 1),
           "prior_evaluations": result.info["prior_evaluations"], "aggregate": metrics["aggregate"],
           "instances": metrics["instances"]}
    return row, result.rep


def run(quick: bool, log: Callable[[str], None], prior=None, prior_name: str = "toyworld") -> dict:
    torch.set_num_threads(1)  # many small kernels: a second thread on a shared 2-core machine is 10x slower
    prior = prior or toyworld_prior()
    reference, gt = as_reference(prior), GroundTruth()
    prompts, seeds, settings = (PROMPTS[:1], (0,), QUICK) if quick else (PROMPTS, (0, 1), METHODS)
    rows, files = [], {}
    for prompt in prompts:
        for method, options in settings.items():
            for seed in seeds:
                row, rep = one_run(prior, reference, gt, prompt, method, seed, 1, options)
                log(f"{prompt} / {method} / seed {seed}: {row['seconds']} s, {row['aggregate']}")
                rows.append(row)
                if seed == 0 and prompt in prompts[:2]:
                    name = f"{prompt.split()[-1]}-{method}"
                    files[f"{name}.gif"] = nerf_outputs(rep, formats=())["turntable-0.gif"]
    extra = []
    if not quick:  # the other grid, and 3-D diversity across 4 instances of one run
        for prompt in PROMPTS[:2]:
            extra.append(one_run(prior, reference, gt, prompt, "ddrep", 0, 1, {"grid": "hash"})[0])
            for method, options in METHODS.items():
                extra.append(one_run(prior, reference, gt, prompt, method, 0, 4, options)[0])
    return {"prior": prior_name, "prompts": list(prompts), "seeds": list(seeds), "settings": settings,
            "rows": rows, "extra_rows": extra, "_images": {}, "_files": files}
