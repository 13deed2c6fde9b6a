"""The part of `diffrep bench nerf3d` that fitted in the session of 2026-11-30: 3 prompts x 1 seed x
{DDRep, SDS, SJC} on the default voxel NeRF, the suite's own settings and metrics (bench/nerf3d.py).

    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_partial.py
writes bench/results/nerf3d-partial.json and docs/images/nerf3d-partial-*.gif."""

import json
import os
import time
from pathlib import Path

import torch

from diffrep.bench import machine_info
from diffrep.bench.nerf3d import METHODS, PROMPTS, one_run
from diffrep.evaluate3d import GroundTruth, as_reference
from diffrep.priors import toyworld_prior
from diffrep.reps.nerf import nerf_outputs

torch.set_num_threads(1)
root = Path(__file__).resolve().parents[2]
prior = toyworld_prior()
reference, gt = as_reference(prior), GroundTruth()
rows = []
for prompt in PROMPTS[:3]:
    for method, options in METHODS.items():
        row, rep = one_run(prior, reference, gt, prompt, method, 0, 1, options)
        print(prompt, method, row["seconds"], row["aggregate"], flush=True)
        rows.append(row)
        gif = root / "docs" / "images" / f"nerf3d-partial-{prompt.split()[-1]}-{method}.gif"
        gif.write_bytes(nerf_outputs(rep, formats=())["turntable-0.gif"])
        record = {"suite": "nerf3d (partial: 3 prompts x 1 seed)", "command": "OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_partial.py",
                  "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine_info(), "settings": METHODS, "rows": rows}
        tmp = root / "bench" / "results" / "nerf3d-partial.json.tmp"
        tmp.write_text(json.dumps(record, indent=2, default=str) + "\n")
        os.replace(tmp, root / "bench" / "results" / "nerf3d-partial.json")
