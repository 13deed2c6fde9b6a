"""Where DDRep's view labels go wrong (issue 13's view target, docs/benchmarks.md, nerf3d): for each held-out camera of
`diffrep evaluate`, the view its camera has (`cameras.view_label`) against the view of the render's nearest image, as
the suite labels it (the nearest of 160,000 toy-world images), for DDRep's NeRFs of the suite's 6 prompts x 2 seeds
(default config) and for 16 ground-truth instances of each prompt at the same cameras. Each error is a *border* error
when the camera lies within BORDER degrees of the boundary between its label and the label read (relative azimuth 45
between front and side, 135 between side and back, elevation 45 for overhead), where the labeller errs on ground truth
too, and a *gross* one otherwise (a front read as a back, a side far from the overhead boundary read as overhead).

    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_view_errors.py run PROMPT SEED   # one DDRep NeRF, kept
    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_view_errors.py table              # -> bench/results/nerf3d-view-errors.json
    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_view_errors.py fitted PROMPT [STEPS] # the rep's own ceiling, below

`fitted` asks what the NeRF and DDRep's solve can show when every target is right: DDRep's loop at the default config
(bank of 32, 6 views a step, 40 Adam iterations a step on an eighth of the rays, the toy world's random light), with
each step's targets the ground-truth renders of the instance at those views and lights in place of the prior's
denoised images, for ground-truth instances 0 and 1 of PROMPT; then the same labels and occupancy IoU as `table` and
`diffrep evaluate`. STEPS: 50 (DDRep's) unless given. Rows go to bench/results/.nerf3d-view-errors.cache/fitted.jsonl;
once every prompt has its two, they are written into the JSON as `fitted` (which `table` keeps).

    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_view_errors.py spread PROMPT FIRST COUNT   # then write-spread

`spread` asks the same of 3-D diversity: ground-truth instances FIRST .. FIRST+COUNT-1 fitted that way, and the
silhouette spread of the fitted NeRFs (mean pairwise silhouette IoU at the 16 held-out cameras, as `diffrep bench
nerf3d` measures DDRep's) against that of the very instances they were fitted to (`fitted_spread` in the JSON).

`run` keeps the NeRF's result folder in bench/results/.nerf3d-view-errors.cache/ (ignored; a rerun skips it); the
suite's DDRep rows are the same runs (same config and seed), so the view column reproduces the suite's."""

import json
import time
from pathlib import Path

root = Path(__file__).resolve().parents[2]
CACHE = root / "bench" / "results" / ".nerf3d-view-errors.cache"
OUT = root / "bench" / "results" / "nerf3d-view-errors.json"
BORDER = 10.0  # degrees from a label boundary within which an error counts as a border error
GT_INSTANCES = 16  # as evaluate's ground-truth row
SEEDS = (0, 1)  # the suite's


def folder(prompt: str, seed: int) -> Path:
    return CACHE / f"{prompt.split()[-1]}-seed{seed}"


def run(prompt: str, seed: int) -> None:
    import torch

    import diffrep
    from diffrep.priors import toyworld_prior

    torch.set_num_threads(1)
    if (folder(prompt, seed) / "run.json").exists():
        return
    start = time.perf_counter()
    result = diffrep.sample(toyworld_prior(), rep="nerf", method="ddrep", prompt=prompt, n=1, seed=seed)
    result.outputs = None  # the weights and run.json are enough here
    result.save(folder(prompt, seed), overwrite=True)
    print(prompt, seed, round(time.perf_counter() - start, 1), "s", flush=True)


def fit_truth(kind: int, colour: int, instance, seed: int, steps: int = 50):
    """A NeRF (default config) fitted by DDRep's loop at the default config, each step's targets the ground-truth renders
    of ``instance [1, N_PARAMS]`` at the step's views and lights in place of the prior's denoised images."""
    import torch

    from diffrep.methods.configs import PullbackConfig
    from diffrep.methods.solvers import pullback
    from diffrep.reps.configs import NerfConfig
    from diffrep.reps.nerf import NerfRep
    from diffrep.toyworld.renderer import render

    pull = PullbackConfig(adam_iters=40, pixel_fraction=0.125)
    g = torch.Generator().manual_seed(seed)
    rep = NerfRep((3, 32, 32), 1, NerfConfig(), generator=g)
    for step in range(steps):
        views = rep.random_views(6, g, step / steps)
        cams, light = rep.view_cameras(views)[0], views[0, :, 1:4]
        k = len(cams)
        target = render(torch.full((k,), kind), torch.full((k,), colour), instance.float().expand(k, -1), cams.float(),
                        light.float(), 32)
        pullback(rep, views, target[None], pull, torch.Generator().manual_seed(step))
    return rep


def fitted(prompt: str, steps: int = 50) -> None:
    import torch

    from diffrep.bench import nerf3d
    from diffrep.evaluate3d import GroundTruth, _render, grid_points, held_out_cameras, load_reference, occupancy_iou, prompt_labels
    from diffrep.reps.nerf import SURFACE_DENSITY, nerf_objects

    torch.set_num_threads(1)
    reference, truth = load_reference(nerf3d.REFERENCE_N, 32), GroundTruth()
    labels, cameras = prompt_labels(prompt), held_out_cameras(16)
    kind, colour = labels["kind"], labels["colour"]
    points = grid_points(truth.grid)
    for index in (0, 1):
        start = time.perf_counter()
        rep = fit_truth(kind, colour, truth.instances(kind)[index:index + 1], index, steps)
        obj = nerf_objects(rep)[0]
        rows = labelled(_render(obj, cameras, 32), reference, cameras)
        with torch.no_grad():
            occupied = rep.density(points[None])[0] > SURFACE_DENSITY
        ious = occupancy_iou(occupied, truth.grids(kind))
        row = {"prompt": prompt, "instance": index, "steps": steps, **summary(rows),
               "own_occupancy_iou": round(float(ious[index]), 4), "best_occupancy_iou": round(float(ious.max()), 4),
               "seconds": round(time.perf_counter() - start, 1), "cameras": rows}
        print({k: v for k, v in row.items() if k != "cameras"}, flush=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        with open(CACHE / "fitted.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
    write_fitted()


def spread(prompt: str, first: int, count: int) -> None:
    """Ground-truth instances ``first .. first + count - 1`` of PROMPT fitted as ``fitted`` fits them; each one's
    silhouettes at the evaluation's 16 held-out cameras (the rendered opacity > 0.5, as `diffrep evaluate` takes them)
    and the ground truth's (its masks) appended to the cache's spread.jsonl."""
    import torch

    from diffrep.evaluate3d import GroundTruth, held_out_cameras, prompt_labels, silhouette
    from diffrep.reps.nerf import nerf_objects

    torch.set_num_threads(1)
    truth, cameras = GroundTruth(), held_out_cameras(16)
    labels = prompt_labels(prompt)
    kind, colour = labels["kind"], labels["colour"]
    for index in range(first, first + count):
        start = time.perf_counter()
        rep = fit_truth(kind, colour, truth.instances(kind)[index:index + 1], index)
        own = silhouette(nerf_objects(rep)[0], cameras, 32)
        gt = silhouette(truth.object(kind, colour, index), cameras, 32)
        row = {"prompt": prompt, "instance": index, "seconds": round(time.perf_counter() - start, 1),
               "fitted": own.flatten().tolist(), "ground_truth": gt.flatten().tolist()}
        print(prompt, index, row["seconds"], "s", flush=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        with open(CACHE / "spread.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")


def write_spread() -> None:
    """Per prompt: the mean pairwise silhouette IoU of the fitted NeRFs and of the same ground-truth instances, and
    their spreads (1 - IoU) in ratio, as `diffrep bench nerf3d`'s diversity; into the JSON as `fitted_spread`."""
    import torch

    from diffrep.evaluate3d import pairwise_mask_iou
    from diffrep.export import atomic_write_text

    rows: dict[str, dict[int, dict]] = {}
    for line in (CACHE / "spread.jsonl").read_text().splitlines():
        r = json.loads(line)
        rows.setdefault(r["prompt"], {})[r["instance"]] = r
    out_rows = []
    for prompt, by_index in rows.items():
        masks = {k: torch.tensor([by_index[i][k] for i in sorted(by_index)]).view(len(by_index), 16, 32, 32)
                 for k in ("fitted", "ground_truth")}
        iou = {k: pairwise_mask_iou(m) for k, m in masks.items()}
        out_rows.append({"prompt": prompt, "instances": sorted(by_index), "pairwise_silhouette_iou": round(iou["fitted"], 4),
                         "ground_truth_pairwise_silhouette_iou": round(iou["ground_truth"], 4),
                         "spread_over_data": round((1 - iou["fitted"]) / (1 - iou["ground_truth"]), 3)})
        print(json.dumps(out_rows[-1]), flush=True)
    out = json.loads(OUT.read_text())
    out["fitted_spread"] = {"command": "OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_view_errors.py spread "
                                       "PROMPT FIRST COUNT; ... write-spread",
                            "date": time.strftime("%Y-%m-%d %H:%M:%S"), "rows": out_rows}
    atomic_write_text(OUT, json.dumps(out, indent=1) + "\n")


def write_fitted() -> None:
    """The fitted rows of the suite's prompts at 50 steps, pooled, into the JSON once all are there."""
    from diffrep.bench import nerf3d
    from diffrep.export import atomic_write_text

    rows = {(r["prompt"], r["instance"]): r for line in (CACHE / "fitted.jsonl").read_text().splitlines()
            if (r := json.loads(line))["steps"] == 50}
    if any((p, i) not in rows for p in nerf3d.PROMPTS for i in (0, 1)):
        return
    rows = [rows[p, i] for p in nerf3d.PROMPTS for i in (0, 1)]
    pooled = summary([c for r in rows for c in r["cameras"]])
    pooled.update({name: round(sum(r[name] for r in rows) / len(rows), 4)
                   for name in ("own_occupancy_iou", "best_occupancy_iou", "seconds")})
    print(json.dumps(pooled), flush=True)
    out = json.loads(OUT.read_text())
    out["fitted"] = {"command": "OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_view_errors.py fitted PROMPT",
                     "date": time.strftime("%Y-%m-%d %H:%M:%S"), "pooled": pooled, "rows": rows}
    atomic_write_text(OUT, json.dumps(out, indent=1) + "\n")


def borders(cameras) -> list[dict[str, float]]:
    """Each camera's distance in degrees to the boundary between each pair of adjacent labels."""
    from diffrep.cameras import BACK_DEG, FRONT_DEG, OVERHEAD_DEG, relative_azimuth

    az, el = relative_azimuth(cameras[:, 0]).abs().tolist(), cameras[:, 1].tolist()
    return [{"front|side": abs(a - FRONT_DEG), "side|back": abs(a - BACK_DEG), "overhead": abs(e - OVERHEAD_DEG)}
            for a, e in zip(az, el)]


def border_error(true: str, found: str, distance: dict[str, float]) -> bool:
    """Whether ``true`` read as ``found`` is the labeller's border error: the camera within ``BORDER`` degrees of
    the boundary between the two labels (a front read as a back never is: they share none)."""
    pair = "overhead" if "overhead" in (true, found) else "|".join(sorted((true, found), key=("front", "side", "back").index))
    return pair in distance and distance[pair] < BORDER


def labelled(images, reference, cameras) -> list[dict]:
    from diffrep.cameras import VIEWS, view_label
    from diffrep.evaluate3d import nearest_labels

    found = nearest_labels(images, reference)["view"].tolist()
    true = view_label(cameras[:, 0], cameras[:, 1]).tolist()
    return [{"azimuth": round(float(c[0]), 1), "elevation": round(float(c[1]), 1), "true": VIEWS[t], "found": VIEWS[f],
             "border": t != f and border_error(VIEWS[t], VIEWS[f], d)}
            for c, t, f, d in zip(cameras.tolist(), true, found, borders(cameras))]


def summary(rows: list[dict]) -> dict:
    wrong = [r for r in rows if r["true"] != r["found"]]
    pairs: dict[str, int] = {}
    for r in wrong:
        pairs[f"{r['true']}->{r['found']}"] = pairs.get(f"{r['true']}->{r['found']}", 0) + 1
    return {"views": len(rows), "right": round(1 - len(wrong) / len(rows), 4),
            "border_errors": round(sum(r["border"] for r in wrong) / len(rows), 4),
            "gross_errors": round(sum(not r["border"] for r in wrong) / len(rows), 4),
            "front_back_swaps": round(sum({r["true"], r["found"]} == {"front", "back"} for r in wrong) / len(rows), 4),
            "confusions": dict(sorted(pairs.items(), key=lambda kv: -kv[1]))}


def table() -> None:
    import torch

    from diffrep.bench import nerf3d
    from diffrep.evaluate3d import GroundTruth, _render, gt_render, held_out_cameras, load_reference, prompt_labels
    from diffrep.nerf_runs import nerf_run
    from diffrep.reps.nerf import nerf_objects

    torch.set_num_threads(1)
    reference, truth = load_reference(nerf3d.REFERENCE_N, 32), GroundTruth()
    cameras = held_out_cameras(16)
    runs, gts = [], []
    for prompt in nerf3d.PROMPTS:
        labels = prompt_labels(prompt)
        images, _ = gt_render(labels["kind"], labels["colour"], truth.instances(labels["kind"])[:GT_INSTANCES], cameras, 32)
        rows = labelled(images, reference, cameras.repeat(GT_INSTANCES, 1))
        gts.append({"prompt": prompt, **summary(rows), "cameras": rows})
        for seed in SEEDS:
            rep, _ = nerf_run(folder(prompt, seed))
            rows = labelled(_render(nerf_objects(rep)[0], cameras, 32), reference, cameras)
            runs.append({"prompt": prompt, "seed": seed, **summary(rows), "cameras": rows})
            print(prompt, seed, {k: v for k, v in runs[-1].items() if k not in ("cameras",)}, flush=True)
    pooled = {"ddrep": summary([r for run in runs for r in run["cameras"]]),
              "ground_truth": summary([r for g in gts for r in g["cameras"]])}
    print(json.dumps(pooled, indent=1))
    before = json.loads(OUT.read_text()) if OUT.exists() else {}
    kept = {k: before[k] for k in ("fitted", "fitted_spread") if k in before}  # written by write_fitted, write_spread
    OUT.write_text(json.dumps({"command": "OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_view_errors.py table",
                               "date": time.strftime("%Y-%m-%d %H:%M:%S"), "reference_images": len(reference.images),
                               "border_deg": BORDER, "cameras": cameras.tolist(), "pooled": pooled, "ddrep": runs,
                               "ground_truth": gts, **kept}, indent=1) + "\n")


if __name__ == "__main__":
    from script_cli import cached, command, parse, script_main

    verb, a = command(__doc__, {"run": (2, 2), "spread": (3, 3), "write-spread": (0, 0), "write-fitted": (0, 0),
                                "fitted": (1, 2), "table": (0, 0)})
    if verb == "run":
        script_main(run, a[0], parse(lambda: int(a[1]), "SEED"))
    elif verb == "spread":
        script_main(spread, a[0], *parse(lambda: (int(a[1]), int(a[2])), "FIRST and COUNT"))
    elif verb == "write-spread":
        cached(CACHE / "spread.jsonl", "nerf3d_view_errors.py spread")
        write_spread()
    elif verb == "write-fitted":
        cached(CACHE / "fitted.jsonl", "nerf3d_view_errors.py fitted")
        write_fitted()
    elif verb == "fitted":
        script_main(fitted, a[0], *parse(lambda: [int(s) for s in a[1:2]], "STEPS"))
    else:
        cached(CACHE, "nerf3d_view_errors.py run")
        table()
