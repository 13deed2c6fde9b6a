"""Does fixed ε's diversity rise grow with the length of the run? (issue 15; docs/benchmarks.md, LMC-SDS diversity.)

The suite's diversity figure (1.43x against the paper's 3.9x) is at 80 iterations, the suite's budget; the methods'
default is 500. Standard LMC-SDS draws a fresh ε each step, so the longer it runs, the more its runs may agree
(mode seeking); fixed ε keeps one direction per run. The suite's own figure (`bench.lmc.diversity`: "a red
mug", ω = 8, 10 runs as one batch, lr 3e-2 with cosine decay, seed 7) at ITERS iterations each, on PRIOR (toyworld or
tiny), with the data's own spread among the prompt's images (the ceiling of an in-distribution sampler's spread) and
the runs' distance to their nearest data image.

    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/lmc_diversity_iters.py PRIOR ITERS...
    .venv/bin/python bench/scripts/lmc_diversity_iters.py write   # -> bench/results/lmc-diversity-iters.json

Rows append to bench/results/.lmc-diversity-iters.jsonl (ignored)."""

import json
import sys
import time
from pathlib import Path

root = Path(__file__).resolve().parents[2]
ROWS = root / "bench" / "results" / ".lmc-diversity-iters.jsonl"


def run(prior_name: str, iters_list: list[int]) -> None:
    """The suite's own diversity figure (``bench.lmc.diversity``, "a red mug", 10 runs, lr 3e-2) at each length."""
    import torch

    from diffrep.bench.lmc import diversity, prior_data
    from diffrep.priors import load

    torch.set_num_threads(1)
    prior = load(prior_name)
    data = prior_data(prior_name, prior)
    for iters in iters_list:
        out: dict = {"diversity": {}, "claims": {prior_name: {}}, "timings_s": {}}
        diversity(prior_name, prior, data, out, {}, lambda s: None, ("a red mug", "mug", "red"), 10, iters, 3e-2)
        row = {"prior": prior_name, **out["diversity"][prior_name], "seconds": out["timings_s"][f"diversity_{prior_name}"]}
        print(json.dumps(row), flush=True)
        with open(ROWS, "a") as f:
            f.write(json.dumps(row) + "\n")


def write() -> None:
    from diffrep.bench import machine_info
    from diffrep.export import atomic_write_text

    from script_cli import merged

    path = root / "bench" / "results" / "lmc-diversity-iters.json"
    rows = merged(path, lambda record: record["rows"], [json.loads(line) for line in ROWS.read_text().splitlines() if line.strip()],
                  lambda r: (r["prior"], r["iters"]))
    record = {"command": "OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/lmc_diversity_iters.py PRIOR ITERS...",
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine_info(), "rows": rows}
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    from script_cli import MANY, cached, command, parse, script_main

    if sys.argv[1:2] == ["write"]:
        command(__doc__, {"write": (0, 0)})
        cached(ROWS, "lmc_diversity_iters.py PRIOR ITERS...")
        write()
    else:
        _, (prior, *iters) = command(__doc__, {None: (2, MANY)})
        script_main(run, prior, parse(lambda: [int(a) for a in iters], "ITERS"))
