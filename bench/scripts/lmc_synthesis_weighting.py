"""Does SDS's weighting w(t) = 1 - ᾱ_t bring LMC-SDS nearer the data in 2-D? (issue 15; docs/benchmarks.md, LMC-SDS.)

On a NeRF, SDS's weighting is what gives LMC-SDS SDS's shapes (`diffrep bench nerf3d --section lmc-sds`,
`lmc-sds-w20-s2`). The 2-D suite's first claim (LMC-SDS nearer the data than SDS at ω ≤ 10) is not met with the
design's w(t) = 1. This runs the suite's synthesis cells (`bench.lmc.distill_pixels` and `synthesis_row`: "a red mug"
and "a blue duck", 2 instances each, 80 iterations from mid-grey, lr 3e-2 with cosine decay, seed = int(ω)) for
LMC-SDS with `weighting` s2 and, as the control that must reproduce the suite's `lmc-sds` rows, with the default one,
at the suite's six ω, on both priors; the suite's SDS rows stand beside them in the JSON.

    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/lmc_synthesis_weighting.py   # -> bench/results/lmc-synthesis-weighting.json

About 3 min on one thread."""

import json
import time
from pathlib import Path

root = Path(__file__).resolve().parents[2]
SCALES = (3.0, 5.0, 8.0, 15.0, 30.0, 100.0)
VARIANTS = {"lmc-sds": {}, "lmc-sds-s2": {"weighting": "s2"}}


def main() -> None:
    import torch

    from diffrep.bench import machine_info
    from diffrep.bench.lmc import distill_pixels, prior_data, prompt_batch, synthesis_row
    from diffrep.export import atomic_write_text
    from diffrep.priors import load

    torch.set_num_threads(1)
    suite = json.loads((root / "bench" / "results" / "lmc.json").read_text())["figures"]["synthesis"]
    figures: dict = {}
    for name in ("toyworld", "tiny"):
        prior = load(name)
        data, (conds, asked) = prior_data(name, prior), prompt_batch(prior)
        figures[name] = {"suite_sds": {w: suite[name]["sds"][w] for w in map(str, SCALES)},
                         "suite_lmc-sds": {w: suite[name]["lmc-sds"][w] for w in map(str, SCALES)}}
        for label, options in VARIANTS.items():
            figures[name][label] = {}
            for w in SCALES:
                t0 = time.perf_counter()
                x = distill_pixels(prior, "lmc-sds", options, conds, w, 80, 3e-2, seed=int(w))
                figures[name][label][str(w)] = synthesis_row(x, data, asked) | {"seconds": round(time.perf_counter() - t0, 1)}
                print(name, label, w, figures[name][label][str(w)]["nearest_rms"], flush=True)
    record = {"suite": "lmc synthesis with SDS's weighting", "command": __doc__.split("\n\n")[3].strip(),
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine_info(),
              "variants": {k: {"method": "lmc-sds", "options": v} for k, v in VARIANTS.items()}, "figures": figures}
    atomic_write_text(root / "bench" / "results" / "lmc-synthesis-weighting.json", json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
