"""LMC-SDS on a NeRF with a corrective trained off the data (issue 15, item 6; docs/benchmarks.md, nerf3d's LMC-SDS).

With the shipped corrective LMC-SDS's NeRFs are mottled lumps in floaters (`diffrep bench nerf3d --section
lmc-sds`, `lmc-sds-w20`), the 3-D face of its 2-D drift. This runs the section's `lmc-sds-w20` recipe (LMC-SDS at
ω = 20, the suite's SDS settings, seed 0, one NeRF a prompt) on the six prompts with the corrective given, scored
as the suite scores them (`bench.nerf3d.one_run`, with the renders' saturation), and writes the rows beside the
section's seed-0 rows of `lmc-sds-w20`, `lmc-sds-w20-s2` and `sds-w20`; turntables of the duck and the mug.

    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_lmc_corrective.py run CORRECTIVE [I/K]   # runs j % K == I - 1
    .venv/bin/python bench/scripts/nerf3d_lmc_corrective.py write   # -> bench/results/nerf3d-lmc-corrective.json

`run` appends rows to bench/results/.nerf3d-lmc-corrective.cache/rows.jsonl (ignored; a rerun skips a done prompt)
and writes the GIFs to docs/images/nerf3d-{duck,mug}-lmc-sds-w20-perturbed.gif. About 100 s a run on one thread."""

import json
import sys
import time
from pathlib import Path

root = Path(__file__).resolve().parents[2]
CACHE = root / "bench" / "results" / ".nerf3d-lmc-corrective.cache"
RECIPE = "lmc-sds-w20"
BESIDE = ("lmc-sds-w20", "lmc-sds-w20-s2", "sds-w20")


def run(corrective: Path, shard: tuple[int, int]) -> None:
    import torch

    from diffrep.bench.nerf3d import LMC_RECIPE, PROMPTS, REFERENCE_N, one_run
    from diffrep.evaluate3d import GroundTruth, load_reference
    from diffrep.bench import save_files
    from diffrep.priors import toyworld_prior
    from diffrep.reps.nerf import nerf_outputs

    torch.set_num_threads(1)
    CACHE.mkdir(parents=True, exist_ok=True)
    rows = CACHE / "rows.jsonl"
    done = {json.loads(line)["prompt"] for line in rows.read_text().splitlines()} if rows.is_file() else set()
    method, options, _ = LMC_RECIPE[RECIPE]
    options = options | {"corrective": str(corrective)}
    prior, gt, reference = toyworld_prior(), GroundTruth(), None
    for j, prompt in enumerate(PROMPTS):
        if j % shard[1] != shard[0] - 1 or prompt in done:
            continue
        reference = reference or load_reference(REFERENCE_N, prior.image_shape[-1])
        row, result = one_run(prior, reference, gt, prompt, method, 0, 1, options, saturation=True)
        row["label"] = f"{RECIPE}-perturbed"
        print(prompt, row["seconds"], json.dumps(row["aggregate"]["labels"]), row["aggregate"]["occupancy_iou"],
              row["saturation"], flush=True)
        if prompt in PROMPTS[:2]:
            gif = nerf_outputs(result.rep, formats=("gif",))["turntable-0.gif"]
            save_files({f"{prompt.split()[-1]}-{RECIPE}-perturbed.gif": gif}, root / "docs" / "images", "nerf3d")
        with rows.open("a") as f:
            f.write(json.dumps(row) + "\n")


def write() -> None:
    from diffrep.export import atomic_write_text

    from script_cli import merged

    path = root / "bench" / "results" / "nerf3d-lmc-corrective.json"
    rows = merged(path, lambda record: record["rows"],
                  [json.loads(line) for line in (CACHE / "rows.jsonl").read_text().splitlines()],
                  lambda r: (r["label"], r["prompt"], r["seed"]))
    suite = json.loads((root / "bench" / "results" / "nerf3d.json").read_text())["figures"]["lmc_sds"]["rows"]
    beside = [r for r in suite if r["label"] in BESIDE and r["seed"] == 0]
    corrective = Path(rows[0]["options"]["corrective"])  # its training record; the committed one once the folder is gone
    training = (json.loads((corrective / "corrective.json").read_text())["training"] if corrective.exists()
                else json.loads(path.read_text())["corrective"])
    record = {"suite": "nerf3d lmc-sds with a corrective trained off the data", "command": __doc__.split("\n\n")[2].strip(),
              "date": time.strftime("%Y-%m-%d %H:%M:%S"),
              "corrective": training,
              "rows": rows, "suite_rows": beside}
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["write"] and len(args) == 1:
        from script_cli import cached

        cached(CACHE / "rows.jsonl", "nerf3d_lmc_corrective.py run")
        write()
    elif args[:1] == ["run"] and len(args) in (2, 3) and (Path(args[1]) / "corrective.json").is_file():
        i, k = map(int, (args[2] if len(args) == 3 else "1/1").split("/"))
        run(Path(args[1]).resolve(), (i, k))
    else:
        print("usage: nerf3d_lmc_corrective.py run CORRECTIVE_FOLDER [I/K] | write", file=sys.stderr)
        sys.exit(2)
