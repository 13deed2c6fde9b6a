"""Many one-instance NeRF runs at once (e.g. on a lent machine's 16 cores), saved without turntables or meshes and
scored afterwards here as `diffrep bench nerf3d` scores them (labels by the nearest of 160,000 toy-world images),
with the 3-D diversity of each (prompt, method, options) pooled over its runs: independent samples, each its own
seed, where the suite pairs the 4 instances of one batched run (whose instances are independent too).

    python bench/scripts/nerf3d_lanes.py jobs [gpu]                             # the job lines (JSON), one a run
    python bench/scripts/nerf3d_lanes.py sample RUNS JOB_JSON                   # one run into RUNS/<tag>
    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_lanes.py score RUNS NAME   # bench/results/NAME.json

`score` keeps the rows of runs NAME.json already holds (the runs added since are scored, their groups' diversity
redone).

The lent run is bench/scripts/device_nerf3d_lanes.sh. A job is {"prompt", "seed", "method", "options", "device"};
`sample` skips a run whose folder exists and writes run.json's `wall_s` (the sampling alone) and `device`."""

import json
import sys
import time
from pathlib import Path

root = Path(__file__).resolve().parents[2]
PAPER = {"steps": 100, "eta": 1.0, "rounds": 2}  # the DDRep paper's NeRF schedule (docs/benchmarks.md)
DIVERSITY = {"default": {}, "eta1": {"eta": 1.0}, "paper": PAPER}
"""DDRep's 3-D diversity, 8 instances each of the duck and the mug: the default (50 DDIM steps, eta 0), fresh noise
alone (eta 1), and the paper's schedule (100 steps, eta 1, one RePaint forward step each)."""


def jobs() -> list[dict]:
    from diffrep.bench.nerf3d import PROMPTS

    out = [{"prompt": p, "seed": s, "method": "ddrep", "options": DIVERSITY[name], "device": "cpu"}
           for name in ("paper", "default", "eta1") for p in PROMPTS[:2] for s in range(8)]
    out += [{"prompt": p, "seed": s, "method": "ddrep", "options": {"eta": 1.0, "rounds": r}, "device": "cpu"}
            for r in (4, 8) for p in PROMPTS for s in (0, 1)]  # view labels: RePaint rounds at the default 50 steps
    return out


def gpu_jobs() -> list[dict]:
    """Wall time on a GPU: the suite's three methods on the duck at seed 0 (DDRep twice: the first pays CUDA's warm-up)."""
    from diffrep.bench.nerf3d import METHODS

    return [{"prompt": "a yellow duck", "seed": s, "method": m, "options": METHODS[m], "device": "cuda"}
            for m, s in (("ddrep", 0), ("ddrep", 1), ("sds", 0), ("sjc", 0))]


def tag(job: dict) -> str:
    options = "-".join(f"{k}{v}" for k, v in sorted(job["options"].items())) or "default"
    return f"{job['prompt'].split()[-1]}-{job['method']}-{options}-seed{job['seed']}-{job['device']}"


def sample(runs: Path, job: dict) -> None:
    import torch

    import diffrep
    from diffrep.bench.common import device_name
    from diffrep.priors import toyworld_prior

    out = runs / tag(job)
    if out.exists():
        return
    torch.set_num_threads(1)
    prior = toyworld_prior(device=job["device"])
    start = time.perf_counter()
    result = diffrep.sample(prior, rep="nerf", method=job["method"], prompt=job["prompt"], n=1, seed=job["seed"],
                            **job["options"])
    if job["device"] != "cpu":
        torch.cuda.synchronize()
    result.info |= {"wall_s": round(time.perf_counter() - start, 1), "device": device_name(job["device"]), "job": job}
    result.outputs = None  # no turntables or meshes: the weights are what is scored
    result.save(out)
    print(tag(job), result.info["wall_s"], flush=True)


def score(runs: Path, name: str) -> None:
    """Each run's labels and IoUs (``nerf_runs.evaluate``) and, per (prompt, method, options, device), the pooled
    runs' 3-D diversity (``evaluate3d.evaluate_instances`` over all their instances)."""
    import torch

    from diffrep.api import load_run
    from diffrep.bench import machine_info
    from diffrep.bench.nerf3d import REFERENCE_N
    from diffrep.evaluate3d import GroundTruth, evaluate_instances, load_reference, prompt_labels
    from diffrep.export import atomic_write_text
    from diffrep.nerf_runs import evaluate
    from diffrep.reps.nerf import nerf_objects

    torch.set_num_threads(1)
    path = root / "bench" / "results" / f"{name}.json"
    old = json.loads(path.read_text())["figures"] if path.exists() else {"rows": [], "diversity": []}
    scored = {r["tag"]: r for r in old["rows"]}  # a run scored before is not scored again
    reference, gt = load_reference(REFERENCE_N, 32), GroundTruth()
    rows, groups, new_groups = [], {}, set()
    for folder in sorted(p for p in runs.iterdir() if (p / "run.json").exists()):
        rep, record = load_run(folder, rep="nerf")
        job = record["job"]
        key = json.dumps([job["prompt"], job["method"], job["options"], job["device"]], sort_keys=True)
        groups.setdefault(key, []).extend(nerf_objects(rep))
        if folder.name in scored:
            rows.append(scored[folder.name])
            continue
        new_groups.add(key)
        a = evaluate(folder, reference=reference, ground_truth=gt)["aggregate"]
        rows.append({"tag": folder.name, **job, "device_name": record["device"], "wall_s": record["wall_s"],
                     "labels": a["labels"], "occupancy_iou": a["occupancy_iou"], "mask_iou": a["mask_iou"],
                     "psnr": a["psnr"], "janus_rate": a["janus_rate"]})
        print(folder.name, record["wall_s"], a["labels"], a["occupancy_iou"], flush=True)
    kept = {json.dumps([d["prompt"], d["method"], d["options"], d["device"]], sort_keys=True): d for d in old["diversity"]}
    diversity = []
    for key, objects in groups.items():
        prompt, method, options, device = json.loads(key)
        if len(objects) < 4:
            continue
        if key in kept and key not in new_groups:
            diversity.append(kept[key])
            continue
        a = evaluate_instances(objects, prompt_labels(prompt), reference, ground_truth=gt)["aggregate"]
        spread, data = 1 - a["pairwise_mask_iou"], 1 - a["ground_truth"]["pairwise_mask_iou"]
        diversity.append({"prompt": prompt, "method": method, "options": options, "device": device, "instances": len(objects),
                          "pairwise_mask_iou": a["pairwise_mask_iou"], "data_pairwise_mask_iou": a["ground_truth"]["pairwise_mask_iou"],
                          "silhouette_spread": round(spread, 4), "data_silhouette_spread": round(data, 4),
                          "spread_over_data": round(spread / data, 3)})
        print(prompt, method, options, len(objects), round(spread / data, 3), flush=True)
    record = {"suite": "nerf3d one-instance runs in lanes, scored as the suite scores them",
              "command": __doc__.split("\n\n")[1].strip(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
              "scored_on": machine_info(), "figures": {"rows": rows, "diversity": diversity}}
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    verb, *rest = sys.argv[1:]
    if verb == "jobs":
        for job in gpu_jobs() if rest == ["gpu"] else jobs():
            print(json.dumps(job))
    elif verb == "sample":
        sample(Path(rest[0]), json.loads(rest[1]))
    elif verb == "score":
        score(Path(rest[0]), rest[1])
    else:
        print(f"error: unknown verb {verb!r}; allowed: jobs, sample, score", file=sys.stderr)
        sys.exit(2)
