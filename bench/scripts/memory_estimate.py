"""Peak memory of real runs against the estimate ``diffrep.sample`` checks before the work (issue 17).

    PYTHONPATH=src OMP_NUM_THREADS=1 python bench/scripts/memory_estimate.py

For each configuration and n, a fresh interpreter imports diffrep and the implementations, loads the
default toy-world prior, resets the kernel's peak-RSS mark (``/proc/self/clear_refs``), runs the
sample (a few steps: memory does not grow with the number of steps) and reports the peak RSS above
the mark (``VmHWM`` minus ``VmRSS`` before the run), beside ``diffrep.api.estimate_memory``. Writes
bench/results/memory-estimate.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = {  # small step counts: the peak is reached in the first step
    "pixels-ddim": {"rep": "pixels", "method": "ddim", "steps": 5},
    "siren-ddrep": {"rep": "siren", "method": "ddrep", "steps": 3},
    "siren-sds": {"rep": "siren", "method": "sds", "iters": 3},
    "nerf-ddrep": {"rep": "nerf", "method": "ddrep", "steps": 3},
    "nerf-sds": {"rep": "nerf", "method": "sds", "iters": 3},
}
NS = (1, 4, 8)
CHILD = """
import json, re, sys
import diffrep, diffrep.api, diffrep.methods.ddrep, diffrep.methods.distillation, diffrep.methods.image
import diffrep.reps.nerf, diffrep.reps.siren, diffrep.reps.pixels
from diffrep.api import estimate_memory, run_spec, views_per_step

def status(key):
    return 1024 * int(re.search(key + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1))

config, n = json.loads(sys.argv[1]), int(sys.argv[2])
prior = diffrep.priors.load("toyworld")
spec = run_spec(config["rep"], config["method"], **{k: v for k, v in config.items() if k not in ("rep", "method", "steps")})
estimate = estimate_memory(prior, n, None if spec.entry.image else spec.rep_options, views_per_step(spec.options))
open("/proc/self/clear_refs", "w").write("5")  # the peak mark starts again at the current RSS
before = status("VmRSS")
diffrep.sample(prior, prompt="a red mug", n=n, seed=0, **config)
print(json.dumps({"peak_bytes": status("VmHWM") - before, "estimate_bytes": estimate, "baseline_bytes": before}))
"""


def measure(config: dict, n: int) -> dict:
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(config), str(n)], env=env, capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{config} n={n}: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]) | {"wall_s": round(time.perf_counter() - start, 1)}


def main() -> None:
    rows = []
    for name, config in CONFIGS.items():
        for n in NS:
            m = measure(config, n)
            row = {"config": name, "n": n, "peak_mib": round(m["peak_bytes"] / 2**20, 1),
                   "estimate_mib": round(m["estimate_bytes"] / 2**20, 1),
                   "estimate_over_peak": round(m["estimate_bytes"] / max(m["peak_bytes"], 1), 2),
                   "baseline_mib": round(m["baseline_bytes"] / 2**20, 1), "wall_s": m["wall_s"]}
            rows.append(row)
            print(json.dumps(row), flush=True)
    record = {"command": "PYTHONPATH=src OMP_NUM_THREADS=1 python bench/scripts/memory_estimate.py",
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "prior": "toyworld (3 x 32 x 32)", "rows": rows,
              "ratio_min": min(r["estimate_over_peak"] for r in rows),
              "ratio_max": max(r["estimate_over_peak"] for r in rows)}
    (ROOT / "bench" / "results" / "memory-estimate.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"estimate / peak: {record['ratio_min']} .. {record['ratio_max']}")


if __name__ == "__main__":
    main()
