"""Many one-instance NeRF runs at once (e.g. on a lent machine's 16 cores), saved without turntables or meshes and
scored afterwards here as `diffrep bench nerf3d` scores them (labels by the nearest of 160,000 toy-world images),
with the 3-D diversity of each (prompt, method, options) pooled over its runs: independent samples, each its own
seed, where the suite pairs the 4 instances of one batched run (whose instances are independent too).

    python bench/scripts/nerf3d_lanes.py jobs [gpu]                             # the job lines (JSON), one a run
    python bench/scripts/nerf3d_lanes.py sample RUNS JOB_JSON                   # one run into RUNS/<tag>
    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_lanes.py score RUNS NAME   # bench/results/NAME.json
    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_lanes.py interval RUNS NAME  # + a 90 % interval of each spread
    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_lanes.py picture RUNS       # docs/images/nerf3d-shared-noise.png

`score` keeps the rows NAME.json already holds: a run in RUNS it has scored is not scored again, the runs added since
are, their groups' diversity is redone, and the rows and groups of runs not in RUNS (a fresh checkout's) stay as they are.

The lent run is bench/scripts/device_nerf3d_lanes.sh. A job is {"prompt", "seed", "method", "options", "device"};
`sample` skips a run whose folder exists and writes run.json's `wall_s` (the sampling alone) and `device`."""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from script_cli import command, parse, refuse, script_main  # noqa: E402  (script_main: the other scripts take it from here)

root = Path(__file__).resolve().parents[2]
PAPER = {"steps": 100, "eta": 1.0, "rounds": 2}  # the DDRep paper's NeRF schedule (docs/benchmarks.md)
DIVERSITY = {"default": {}, "eta1": {"eta": 1.0}, "paper": PAPER}
"""DDRep's 3-D diversity, 8 instances each of the duck and the mug: the default (50 DDIM steps, eta 0), fresh noise
alone (eta 1), and the paper's schedule (100 steps, eta 1, one RePaint forward step each)."""
SHARED = {"shared-eta1": {"eta": 1.0, "shared_noise": 1.0}, "shared-paper": PAPER | {"shared_noise": 1.0},
          "shared-rounds2": {"eta": 1.0, "rounds": 2, "shared_noise": 1.0}}
"""The same with one noise state shared by every view (--nerf.shared-noise 1): fresh noise made the ducks accurate,
sharing undoes the 1/V average that makes the mugs one mug; both at once."""


def jobs() -> list[dict]:
    from diffrep.bench.nerf3d import PROMPTS

    out = [{"prompt": p, "seed": s, "method": "ddrep", "options": DIVERSITY[name], "device": "cpu"}
           for name in ("paper", "default", "eta1") for p in PROMPTS[:2] for s in range(8)]
    out += [{"prompt": p, "seed": s, "method": "ddrep", "options": {"eta": 1.0, "rounds": r}, "device": "cpu"}
            for r in (4, 8) for p in PROMPTS for s in (0, 1)]  # view labels: RePaint rounds at the default 50 steps
    out += [{"prompt": p, "seed": s, "method": "ddrep", "options": SHARED[name], "device": "cpu"}
            for name in SHARED for p in PROMPTS[:2] for s in range(8 if name == "shared-rounds2" else 16)]
    out += [{"prompt": p, "seed": s, "method": "ddrep", "options": SHARED[name], "device": "cpu"}
            for name in SHARED for p in PROMPTS[2:] for s in (0, 1)]  # the suite's other objects: their accuracy
    return out


def gpu_jobs() -> list[dict]:
    """Wall time on a GPU: the suite's three methods on the duck at seed 0 (DDRep twice: the first pays CUDA's warm-up)."""
    from diffrep.bench.nerf3d import METHODS

    return [{"prompt": "a yellow duck", "seed": s, "method": m, "options": METHODS[m], "device": "cuda"}
            for m, s in (("ddrep", 0), ("ddrep", 1), ("sds", 0), ("sjc", 0))]


def tag(job: dict) -> str:
    options = "-".join(f"{k}{v}" for k, v in sorted(job["options"].items())) or "default"
    return f"{job['prompt'].split()[-1]}-{job['method']}-{options}-seed{job['seed']}-{job['device']}"


def group_key(job: dict) -> str:
    """The (prompt, method, options, device) a run or a diversity row belongs to, as one string: runs pooled for diversity."""
    return json.dumps([job["prompt"], job["method"], job["options"], job["device"]], sort_keys=True)


def planned(runs: Path, job: dict, options: dict) -> Path | None:
    """``job``'s run folder in ``runs``, or None when it is there already; the job's options and the folder are
    checked first (before a prior loads or a step runs: a typo or a wrong path is refused at once)."""
    from diffrep.export import check_writable

    out = runs / tag(job)
    if out.exists():
        return None
    check_job(job["method"], job["prompt"], job["seed"], 1, options)
    check_writable(out, "output folder")
    return out


def check_job(method: str, prompt: str, seed: int, n: int, options: dict) -> None:
    """What ``diffrep.sample(prior, rep="nerf", method=..., prompt=..., n=..., seed=..., **options)`` checks before
    its prior loads: ``options`` may hold the shared sampling options (steps, guidance_scale, eta) beside the
    method's and the rep's, as ``sample`` takes them."""
    from dataclasses import fields

    from diffrep.methods import Sampling
    from diffrep.spec import prepare

    shared = {f.name for f in fields(Sampling)}
    sampling = Sampling(**{k: v for k, v in options.items() if k in shared})
    prepare("nerf", method, sampling=sampling, n=n, seed=seed, prompt=prompt,
            **{k: v for k, v in options.items() if k not in shared})


def sample_one(prior, out: Path, job: dict, **options) -> None:
    """One one-instance DDRep (or ``job["method"]``) NeRF of ``job`` on ``prior`` into ``out``: weights and run.json
    (with the sampling's ``wall_s``, the device and the job), no turntables or meshes (the weights are what is scored)."""
    import torch

    import diffrep
    from diffrep.bench.common import device_name

    start = time.perf_counter()
    result = diffrep.sample(prior, rep="nerf", method=job["method"], prompt=job["prompt"], n=1, seed=job["seed"],
                            **options)
    if job["device"] != "cpu":
        torch.cuda.synchronize()
    result.info |= {"wall_s": round(time.perf_counter() - start, 1), "device": device_name(job["device"]), "job": job}
    result.outputs = None
    result.save(out)
    print(tag(job), result.info["wall_s"], flush=True)


def sample(runs: Path, job: dict) -> None:
    import torch

    from diffrep.priors import toyworld_prior

    if (out := planned(runs, job, job["options"])) is None:
        return
    torch.set_num_threads(1)
    sample_one(toyworld_prior(device=job["device"]), out, job, **job["options"])


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
        key = group_key(job)
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
    here = {r["tag"] for r in rows}
    elsewhere = [r for r in old["rows"] if r["tag"] not in here]  # runs scored before whose folders are not in RUNS
    rows += elsewhere
    partial = {group_key(r) for r in elsewhere}  # a group some of whose runs are not here keeps its committed spread
    kept = {group_key(d): d for d in old["diversity"]}
    diversity = [d for key, d in kept.items() if key not in groups or key in partial]
    for key, objects in groups.items():
        prompt, method, options, device = json.loads(key)
        if len(objects) < 4 or key in partial or (key in kept and key not in new_groups):
            if key in kept and key not in partial:
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


def interval(runs: Path, name: str, draws: int = 2000) -> None:
    """To each diversity row of NAME.json whose runs are in RUNS, a 90 % bootstrap interval of ``spread_over_data``:
    the runs and the 16 ground-truth instances resampled (with replacement, each its own draw), the spread of a draw
    the mean silhouette IoU over its pairs of distinct originals, as ``evaluate3d.pairwise_mask_iou`` over all pairs."""
    import torch

    from diffrep.api import load_run
    from diffrep.evaluate3d import (Evaluate3DConfig, GroundTruth, gt_render, held_out_cameras, iou_matrix, prompt_labels,
                                    silhouette)
    from diffrep.export import atomic_write_text
    from diffrep.reps.nerf import nerf_objects

    torch.set_num_threads(1)
    path = root / "bench" / "results" / f"{name}.json"
    record = json.loads(path.read_text())
    config = Evaluate3DConfig()  # the cameras, the ground-truth instances and their number evaluate_instances uses
    cameras, gt, m, res = held_out_cameras(config.views, 0), GroundTruth(), config.baseline, 32
    wanted = {group_key(row) for row in record["figures"]["diversity"]}
    groups: dict[str, list] = {}
    for folder in sorted(p for p in runs.iterdir() if (p / "run.json").exists()):
        if (key := group_key(json.loads((folder / "run.json").read_text())["job"])) in wanted:  # no other run is loaded
            rep, _ = load_run(folder, rep="nerf")
            groups.setdefault(key, []).extend(silhouette(o, cameras, res) for o in nerf_objects(rep))

    def spread(iou, pick):
        same = pick[:, None] == pick[None, :]
        return 1 - float(iou[pick][:, pick][~same].mean())

    for row in record["figures"]["diversity"]:
        key = group_key(row)
        if key not in groups:
            continue
        labels = prompt_labels(row["prompt"])
        gt_masks = gt_render(labels["kind"], labels["colour"], gt.instances(labels["kind"])[:m], cameras, res)[1]
        ours, data = iou_matrix(torch.stack(groups[key]).flatten(1)), iou_matrix(gt_masks.view(m, -1))
        n, generator = ours.shape[0], torch.Generator().manual_seed(0)  # each row its own draws
        ratios = sorted(spread(ours, torch.randint(n, (n,), generator=generator))
                        / spread(data, torch.randint(m, (m,), generator=generator)) for _ in range(draws))
        point = spread(ours, torch.arange(n)) / spread(data, torch.arange(m))
        row["spread_over_data_90"] = [round(ratios[int(0.05 * draws)], 3), round(ratios[int(0.95 * draws)], 3)]
        print(row["prompt"], row["options"], n, round(point, 3), row["spread_over_data"], row["spread_over_data_90"], flush=True)
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")


PICTURE = [("a red mug", {}), ("a red mug", SHARED["shared-eta1"]), ("a red mug", SHARED["shared-paper"]),
           ("a yellow duck", SHARED["shared-eta1"]), ("a yellow duck", SHARED["shared-paper"])]
"""The rows of ``picture``: the mugs with independent and with shared noise, and the ducks with shared noise."""


def picture(runs: Path) -> None:
    """docs/images/nerf3d-shared-noise.png: a row per ``PICTURE`` entry, its runs at seeds 0-7 seen from 45° of
    azimuth and 15° up (``preview``'s second camera), 3× enlarged."""
    import torch

    from diffrep.api import load_run
    from diffrep.export import image_grid

    torch.set_num_threads(1)
    frames = [load_run(runs / tag({"prompt": prompt, "method": "ddrep", "options": options, "device": "cpu", "seed": s}),
                       rep="nerf")[0].preview()[1][0, 1] for prompt, options in PICTURE for s in range(8)]
    out = root / "docs" / "images" / "nerf3d-shared-noise.png"
    image_grid(torch.stack(frames), nrow=8, scale=3).save(out)
    print(out)


if __name__ == "__main__":
    verb, rest = command(__doc__, {"jobs": (0, 1), "sample": (2, 2), "score": (2, 2), "interval": (2, 2), "picture": (1, 1)})
    if verb == "jobs" and rest not in ([], ["gpu"]):
        refuse(f"jobs {rest[0]!r}: give gpu or nothing")
    if verb in ("score", "interval", "picture") and not Path(rest[0]).is_dir():
        refuse(f"RUNS {rest[0]!r} is not a folder of runs")
    if verb == "jobs":
        for job in gpu_jobs() if rest == ["gpu"] else jobs():
            print(json.dumps(job))
    elif verb == "sample":
        script_main(sample, Path(rest[0]), parse(lambda: json.loads(rest[1]), "JOB_JSON"))
    elif verb == "score":
        script_main(score, Path(rest[0]), rest[1])
    elif verb == "interval":
        script_main(interval, Path(rest[0]), rest[1])
    else:
        script_main(picture, Path(rest[0]))
