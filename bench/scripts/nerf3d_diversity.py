"""The 3-D diversity rows of `diffrep bench nerf3d` (4 instances of "a yellow duck" and "a red mug", seed 0, each
method at the suite's settings) re-run for the silhouette spread `pairwise_mask_iou` beside the occupancy one
(issue 13: pairwise occupancy IoU misjudges thin-walled kinds; a data mug's walls barely overlap the next
mug's, IoU 0.32, while their silhouettes agree, 0.86).

    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_diversity.py run PROMPT   # one prompt's 3 runs
    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_diversity.py run PROMPT RHO   # DDRep, --nerf.shared-noise RHO
    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_diversity.py run PROMPT camera   # DDRep, the suite's camera prior
    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_diversity.py run PROMPT camera N AZ EL   # DDRep, another
    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_diversity.py run PROMPT RHO camera N AZ EL   # both
    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_diversity.py run PROMPT RHO camera at S   # ... at seed S
    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_diversity.py run PROMPT bank V   # DDRep, --nerf.bank V
    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_diversity.py run PROMPT seed S OPTIONS_JSON   # DDRep
    .venv/bin/python bench/scripts/nerf3d_diversity.py write                        # the JSON from both
Finished runs are appended to bench/results/.nerf3d-diversity.cache/rows.jsonl (ignored; a rerun skips them);
`write` makes bench/results/nerf3d-diversity.json: the cache's rows, and that file's earlier rows the cache has not
replaced (a row with the same prompt, method, options and prior). Rows from 2026-12-01 17:00 on record the NeRF's
DDRep defaults they ran with (`ddrep_defaults`) and their date."""

import json
import time
from pathlib import Path

root = Path(__file__).resolve().parents[2]
ROWS = root / "bench" / "results" / ".nerf3d-diversity.cache" / "rows.jsonl"


def done() -> dict:
    if not ROWS.exists():
        return {}
    rows = map(json.loads, ROWS.read_text().splitlines())
    return {key(r["prompt"], r["method"], r["options"], r.get("prior", "toyworld"), r.get("seed", 0)): r for r in rows}


def key(prompt: str, method: str, options: dict, prior: str = "toyworld", seed: int = 0) -> str:
    return json.dumps([prompt, method, options] + ([prior] if prior != "toyworld" else []) + ([seed] if seed else []),
                      sort_keys=True)


def run(prompt: str, rho: float | None = None, camera: dict | None = None, bank: int | None = None,
        seed: int = 0, options: dict | None = None) -> None:
    """The suite's three methods on ``prompt``; with ``rho``, DDRep alone with the bank's noise shared by ``rho``
    (``--nerf.shared-noise``); with ``camera``, DDRep alone (with ``rho`` if given) on the camera-conditioned prior of
    those options (the suite's: ``nerf3d.CAMERA_PRIOR``), labelled against the default prior's images as the other rows;
    with ``bank``, DDRep alone with that many bank cameras (``--nerf.bank``; the default 32); with ``options``, DDRep
    alone with those NeRF options at ``seed`` (the spread's own noise: another seed's 4 instances)."""
    import torch

    from diffrep.bench import nerf3d
    from diffrep.evaluate3d import GroundTruth, as_reference
    from diffrep.priors import toyworld_prior
    from nerf3d_lanes import check_job

    ddrep = ({} if rho is None else {"shared_noise": rho}) | ({} if bank is None else {"bank": bank}) | (options or {})
    check_job("ddrep", prompt, seed, 4, ddrep)  # a typo is refused before the priors load
    torch.set_num_threads(1)
    reference, gt = as_reference(toyworld_prior()), GroundTruth()
    prior = toyworld_prior(**camera) if camera else toyworld_prior()
    tag = "toyworld {n} --camera-window {camera_window[0]:g} {camera_window[1]:g}".format(**camera) \
        if camera else "toyworld"
    methods = nerf3d.METHODS.items() if not ddrep and not camera and options is None else [("ddrep", ddrep)]
    for method, options in methods:
        if key(prompt, method, options, tag, seed) in done():
            continue
        row, _ = nerf3d.one_run(prior, reference, gt, prompt, method, seed, 4, options)
        row["prior"] = tag
        from diffrep.reps import REPS  # the NeRF's own DDRep defaults at the time (its solve), which `options` leaves out

        row["ddrep_defaults"], row["date"] = dict(REPS["nerf"].method_defaults.get("ddrep", {})), time.strftime("%Y-%m-%d %H:%M")
        a = row["aggregate"]
        print(prompt, method, row["seconds"], a["pairwise_occupancy_iou"], a["pairwise_mask_iou"],
              a["ground_truth"]["pairwise_occupancy_iou"], a["ground_truth"]["pairwise_mask_iou"], flush=True)
        ROWS.parent.mkdir(parents=True, exist_ok=True)
        with open(ROWS, "a") as f:
            f.write(json.dumps(row) + "\n")


def write() -> None:
    from diffrep.bench import machine_info
    from diffrep.export import atomic_write_text

    path = root / "bench" / "results" / "nerf3d-diversity.json"
    kept = json.loads(path.read_text())["figures"]["rows"] if path.exists() else []  # rows of earlier sessions' caches
    rows = list(({key(r["prompt"], r["method"], r["options"], r.get("prior", "toyworld"), r.get("seed", 0)): r
                  for r in kept} | done()).values())
    table = []
    for r in rows:
        a, g = r["aggregate"], r["aggregate"]["ground_truth"]
        spread, data = 1 - a["pairwise_mask_iou"], 1 - g["pairwise_mask_iou"]
        table.append({"prompt": r["prompt"], "method": r["method"], "seed": r.get("seed", 0), "options": r["options"],
                      "prior": r.get("prior", "toyworld"), "seconds": r["seconds"],
                      "pairwise_occupancy_iou": a["pairwise_occupancy_iou"], "data_pairwise_occupancy_iou": g["pairwise_occupancy_iou"],
                      "pairwise_mask_iou": a["pairwise_mask_iou"], "data_pairwise_mask_iou": g["pairwise_mask_iou"],
                      "silhouette_spread": round(spread, 4), "data_silhouette_spread": round(data, 4),
                      "spread_over_data": round(spread / data, 3), "occupancy_iou": a["occupancy_iou"], "mask_iou": a["mask_iou"],
                      "psnr": a["psnr"], "labels": a["labels"]})
    record = {"suite": "nerf3d 3-D diversity rows (silhouette spread)", "command": __doc__.split("\n\n")[1].strip(),
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine_info(),
              "figures": {"table": table, "rows": rows,
                          "spread": "1 - mean pairwise silhouette IoU over 16 held-out cameras; data: the first 16 "
                                    "ground-truth instances of the kind; target: within 20 % of the data's"}}
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")


def run_args(prompt: str, *rest: str) -> dict:
    """``run``'s keywords from ``PROMPT [RHO] [camera [N AZ EL]] [at S] | PROMPT bank V | PROMPT seed S OPTIONS_JSON``;
    a form the usage does not name is one line and exit 2."""
    from diffrep.bench.nerf3d import CAMERA_PRIOR
    from script_cli import refuse

    rest = list(rest)
    if rest[:1] == ["bank"] and len(rest) == 2:
        return {"prompt": prompt, "bank": int(rest[1])}
    if rest[:1] == ["seed"] and len(rest) == 3:
        return {"prompt": prompt, "seed": int(rest[1]), "options": json.loads(rest[2])}
    seed = int(rest[-1]) if rest[-2:-1] == ["at"] else 0  # a trailing `at S`: another seed's instances
    rest = rest[:-2] if rest[-2:-1] == ["at"] else rest
    rho = float(rest.pop(0)) if rest and rest[0] != "camera" else None
    if rest and (rest[0] != "camera" or len(rest) not in (1, 4)):
        refuse(f"run {prompt!r} {' '.join(rest)!r}: see the usage lines of nerf3d_diversity.py (RHO, camera [N AZ EL], "
               "at S, bank V, seed S OPTIONS_JSON)")
    window = {"n": int(rest[1]), "camera_window": (float(rest[2]), float(rest[3]))} if len(rest) == 4 else CAMERA_PRIOR
    return {"prompt": prompt, "rho": rho, "camera": window if rest else None, "seed": seed}


if __name__ == "__main__":
    from script_cli import cached, command, parse, script_main

    verb, args = command(__doc__, {"run": (1, 6), "write": (0, 0)})
    if verb == "write":
        cached(ROWS, "nerf3d_diversity.py run")
    script_main(run, **parse(lambda: run_args(*args))) if verb == "run" else write()
