"""Where DDRep's view labels go wrong (issue 13's view target, docs/benchmarks.md, nerf3d): for each held-out camera of
`diffrep evaluate`, the view its camera has (`cameras.view_label`) against the view of the render's nearest image, as
the suite labels it (the nearest of 160,000 toy-world images), for DDRep's NeRFs of the suite's 6 prompts x 2 seeds
(default config) and for 16 ground-truth instances of each prompt at the same cameras. Each error is a *border* error
when the camera lies within BORDER degrees of the boundary between its label and the label read (relative azimuth 45
between front and side, 135 between side and back, elevation 45 for overhead), where the labeller errs on ground truth
too, and a *gross* one otherwise (a front read as a back, a side far from the overhead boundary read as overhead).

    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_view_errors.py run PROMPT SEED   # one DDRep NeRF, kept
    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_view_errors.py table              # -> bench/results/nerf3d-view-errors.json

`run` keeps the NeRF's result folder in bench/results/.nerf3d-view-errors.cache/ (ignored; a rerun skips it); the
suite's DDRep rows are the same runs (same config and seed), so the view column reproduces the suite's."""

import json
import sys
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
    OUT.write_text(json.dumps({"command": "OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_view_errors.py table",
                               "date": time.strftime("%Y-%m-%d %H:%M:%S"), "reference_images": len(reference.images),
                               "border_deg": BORDER, "cameras": cameras.tolist(), "pooled": pooled, "ddrep": runs,
                               "ground_truth": gts}, indent=1) + "\n")


if __name__ == "__main__":
    if sys.argv[1] == "run":
        run(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "table":
        table()
