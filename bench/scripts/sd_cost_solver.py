"""A reduced `diffrep bench sd-cost` for the solver budget (issue 14): DDIM against DDRep with the default
solver (Adam 20) and with Adam 8, in one run on Stable Diffusion 1.5-shaped components (random weights), no
Adam-200, no SDS/SJC rows. Run it alone on the machine (timings).

    OMP_NUM_THREADS=2 .venv/bin/python bench/scripts/sd_cost_solver.py
writes bench/results/sd-cost-solver.json; bench/scripts/table1_solver.py measures what Adam 8 costs in fidelity."""

import json
import time
from pathlib import Path

from diffrep.bench import machine_info
from diffrep.bench import sd_cost
from diffrep.export import atomic_write_text

root = Path(__file__).resolve().parents[2]

if __name__ == "__main__":
    start = time.time()
    figures = sd_cost.run(False, print, solvers=["default", "adam_8"], distill=False)
    record = {"suite": "sd-cost (reduced: default and adam_8 solvers, no sds/sjc)", "quick": False,
              "command": "OMP_NUM_THREADS=2 .venv/bin/python bench/scripts/sd_cost_solver.py",
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "wall_s": round(time.time() - start, 1),
              "machine": machine_info(), "figures": figures}
    atomic_write_text(root / "bench" / "results" / "sd-cost-solver.json", json.dumps(record, indent=2) + "\n")
