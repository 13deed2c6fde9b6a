"""Table 1's fidelity against the pullback solver's budget (issue 14: which solver setting keeps DDRep within
1.05x of DDIM at Stable Diffusion's size). The `diffrep bench table1` protocol (SIREN width 128, 50 DDIM steps,
eta 0, 5 prompts x 4 noise draws, the same seeds) at guidance 0, 3 and 10 (Stable Diffusion's 7.5 lies
between), on the toy-world and the tiny prior, for Adam at 20 (the default), 8 and 4 iterations a step.

    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/table1_solver.py
writes bench/results/table1-solver.json."""

import json
import time
from pathlib import Path

from diffrep.bench import machine_info
from diffrep.bench.common import ddrep_with_reference, prompts
from diffrep.export import atomic_write_text
from diffrep.methods import PullbackConfig
from diffrep.metrics import mean_std, psnr, ssim
from diffrep.priors import load

root = Path(__file__).resolve().parents[2]
SOLVERS = {"adam_20 (default)": PullbackConfig(), "adam_8": PullbackConfig(adam_iters=8),
           "adam_8_lr1e-2": PullbackConfig(adam_iters=8, adam_lr=1e-2), "adam_4_lr1e-2": PullbackConfig(adam_iters=4, adam_lr=1e-2)}
SCALES = (0, 3, 10)


def run() -> dict:
    out = {}
    for prior_name in ("toyworld", "tiny"):
        prior = load(prior_name)
        conds = [prior.encode_prompt(p) for p in prompts(prior, 5) for _ in range(4)]
        rows = []
        for w in SCALES:
            ref = None
            for name, pull in SOLVERS.items():
                ddrep, r = ddrep_with_reference(prior, conds, len(conds), 50, float(w), {"width": 128}, pull, seed=w,
                                                reference=ref is None)
                ref = ref or r
                row = {"guidance_scale": w, "solver": name, "adam_iters": pull.adam_iters, "adam_lr": pull.adam_lr,
                       "psnr_db": mean_std(psnr(ddrep.images, ref.images)), "ssim": mean_std(ssim(ddrep.images, ref.images)),
                       "ddrep_s": round(ddrep.seconds, 2)}
                print(prior_name, row, flush=True)
                rows.append(row)
        out[prior_name] = rows
    return out


if __name__ == "__main__":
    start = time.time()
    figures = run()
    record = {"suite": "table1 x solver budget (reduced: guidance 0, 3, 10)", "quick": False,
              "command": "OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/table1_solver.py",
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "wall_s": round(time.time() - start, 1),
              "machine": machine_info(), "figures": figures}
    atomic_write_text(root / "bench" / "results" / "table1-solver.json", json.dumps(record, indent=2) + "\n")
