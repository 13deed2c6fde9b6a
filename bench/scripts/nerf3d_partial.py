"""The part of `diffrep bench nerf3d` that fitted in a session: the runs its cache holds
(`bench/results/.nerf3d.cache/`, written as each run finishes), laid out as the suite lays them out.

    .venv/bin/python bench/scripts/nerf3d_partial.py [RESULTS_DIR]
writes bench/results/nerf3d-partial.json and docs/images/nerf3d-partial-*.gif. Rerunning `diffrep bench
nerf3d` later continues the suite from the same cache."""

import json
import sys
import time
from pathlib import Path

from diffrep.bench import machine_info
from diffrep.bench.nerf3d import METHODS, _cached_gif, _read_cache, plan
from diffrep.export import atomic_write_text

root = Path(__file__).resolve().parents[2]
results = Path(sys.argv[1]) if len(sys.argv) > 1 else root / "bench" / "results"
cache = results / ".nerf3d.cache"
done = _read_cache(cache, "toyworld")
rows, extra, gifs = [], [], []
for spec in plan(quick=False):
    key = json.dumps([spec["prompt"], spec["method"], spec["seed"], spec["n"], spec["options"]])
    if key not in done:
        continue
    (extra if spec.get("extra") else rows).append(done[key])
    if spec.get("gif"):
        name = f"nerf3d-partial-{spec['prompt'].split()[-1]}-{spec['method']}.gif"
        (root / "docs" / "images" / name).write_bytes(_cached_gif(cache, key))
        gifs.append(f"docs/images/{name}")
record = {"suite": "nerf3d (partial: the runs that finished)", "command": "diffrep bench nerf3d (killed), then "
          "python bench/scripts/nerf3d_partial.py", "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine_info(),
          "planned_runs": len(plan(quick=False)), "finished_runs": len(rows) + len(extra),
          "figures": {"prior": "toyworld", "settings": METHODS, "rows": rows, "extra_rows": extra}, "files": gifs}
atomic_write_text(root / "bench" / "results" / "nerf3d-partial.json", json.dumps(record, indent=2) + "\n")
print(f"{len(rows) + len(extra)} of {len(plan(quick=False))} runs -> bench/results/nerf3d-partial.json")
