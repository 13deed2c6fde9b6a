"""The NeRF evaluation's label ceiling against the size of its reference set (issue 13: the view target is 0.9 and
the nearest-image labeller gives ground-truth objects about 0.86 at the default 10,000 images). For the 6 prompts of
`diffrep bench nerf3d`, the labels `diffrep evaluate` gives 16 ground-truth instances at its 16 held-out cameras
(`evaluate3d._baseline`, seed 0), with toy-world reference sets of each size given:

    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_view_ceiling.py 10000 40000 160000

Writes bench/results/nerf3d-view-ceiling.json (reference sets are generated once and cached; 160,000 takes ~6 min)."""

import json
import sys
import time
from pathlib import Path

import torch

from diffrep import evaluate3d
from diffrep.bench import machine_info
from diffrep.bench.nerf3d import PROMPTS
from diffrep.export import atomic_write_text

torch.set_num_threads(1)
config = evaluate3d.Evaluate3DConfig()
truth = evaluate3d.GroundTruth(config.instances, config.grid, 0)
cameras, back = evaluate3d.held_out_cameras(config.views, 0), evaluate3d.back_cameras(config.janus_views, 0)
rows = []
from script_cli import MANY, command, refuse  # noqa: E402

_, sizes = command(__doc__, {None: (1, MANY)})
if not all(a.isdigit() for a in sizes):
    refuse(f"N... take whole numbers of reference images, got {' '.join(sizes)}")
for n in map(int, sizes):
    start = time.perf_counter()
    reference = evaluate3d.load_reference(n)
    per_prompt = {p: evaluate3d._baseline(evaluate3d.prompt_labels(p), reference, cameras, back, truth, config.baseline)["labels"]
                  for p in PROMPTS}
    mean = {k: round(sum(r[k] for r in per_prompt.values()) / len(per_prompt), 3) for k in ("kind", "colour", "view")}
    rows.append({"reference_images": n, "seconds": round(time.perf_counter() - start), "mean": mean, "per_prompt": per_prompt})
    print(json.dumps(rows[-1]), flush=True)
out = Path(__file__).resolve().parents[1] / "results" / "nerf3d-view-ceiling.json"
atomic_write_text(out, json.dumps({"command": "OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_view_ceiling.py "
                                   + " ".join(sys.argv[1:]), "machine": machine_info(), "rows": rows}, indent=1) + "\n")
