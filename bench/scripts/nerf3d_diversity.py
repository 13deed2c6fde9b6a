"""The 3-D diversity row of `diffrep bench nerf3d` for one prompt and one method: 4 NeRF instances of
"a yellow duck" in one run (seed 0), their mean pairwise occupancy IoU next to that of 64 ground-truth
ducks, with the suite's settings and metrics.

    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_diversity.py METHOD
writes bench/results/nerf3d-diversity-METHOD.json."""

import json
import os
import sys
import time
from pathlib import Path

import torch

from diffrep.bench import machine_info
from diffrep.bench.nerf3d import METHODS, one_run
from diffrep.evaluate3d import GroundTruth, as_reference
from diffrep.priors import toyworld_prior

torch.set_num_threads(1)
method = sys.argv[1]
root = Path(__file__).resolve().parents[2]
prior = toyworld_prior()
row, _ = one_run(prior, as_reference(prior), GroundTruth(), "a yellow duck", method, 0, 4, METHODS[method])
print(row["seconds"], row["aggregate"], flush=True)
record = {"suite": "nerf3d (3-D diversity row, one prompt)",
          "command": f"OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_diversity.py {method}",
          "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine_info(), "row": row}
path = root / "bench" / "results" / f"nerf3d-diversity-{method}.json"
path.with_suffix(".tmp").write_text(json.dumps(record, indent=2, default=str) + "\n")
os.replace(path.with_suffix(".tmp"), path)
