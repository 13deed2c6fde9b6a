"""Are DDRep's NeRFs right objects at a wrong pose? (issue 13's view labels)

For each one-instance NeRF run in RUNS (e.g. those of nerf3d_lanes.py or nerf3d_bank_sectors.py): the ground-truth
instance of the prompt's kind and colour, and the turn ψ about the vertical axis, whose renders at the 16 held-out
cameras are nearest (mean squared error, the evaluation's fixed light) to the NeRF's renders there — the object's
pose as its pixels tell it, ψ in 5° steps over ±60°. Then that instance rendered at the turned cameras (the ground
truth at the NeRF's pose) is labelled as `diffrep evaluate` labels a NeRF (nearest of 160,000 images, the true view
of each unturned camera): if its view accuracy matches the NeRF's own, the NeRF's view errors are its pose's.

    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_pose.py RUNS NAME   # bench/results/NAME.json
"""

import json
import time
from pathlib import Path

root = Path(__file__).resolve().parents[2]
TURNS = list(range(-60, 61, 5))


def main(runs: Path, name: str) -> None:
    import torch

    from diffrep.api import load_run
    from diffrep.bench import machine_info
    from diffrep.bench.nerf3d import REFERENCE_N
    from diffrep.evaluate3d import (GroundTruth, _label_accuracy, _render, gt_render, held_out_cameras, load_reference,
                                    nearest_labels, prompt_labels)
    from diffrep.export import atomic_write_text
    from diffrep.reps.nerf import nerf_objects

    torch.set_num_threads(1)
    reference, gt, cameras = load_reference(REFERENCE_N, 32), GroundTruth(), held_out_cameras(16, 0)
    V, renders, rows = cameras.shape[0], {}, []
    for folder in sorted(p for p in runs.iterdir() if (p / "run.json").exists()):
        rep, record = load_run(folder, rep="nerf")
        job, labels = record["job"], prompt_labels(record["job"]["prompt"])
        if job["prompt"] not in renders:  # every instance at every turn, [T, m, V, 3, 32, 32]
            instances = gt.instances(labels["kind"])
            turned = [cameras + torch.tensor([float(psi), 0.0, 0.0]) for psi in TURNS]
            renders[job["prompt"]] = torch.stack([gt_render(labels["kind"], labels["colour"], instances, c, 32)[0]
                                                  .view(len(instances), V, 3, 32, 32) for c in turned])
        truth = renders[job["prompt"]]
        ours = _render(nerf_objects(rep)[0], cameras, 32).detach().cpu()
        mse = (truth - ours).pow(2).mean((2, 3, 4, 5))  # [T, m]
        t, i = divmod(int(mse.argmin()), mse.shape[1])
        i0 = int(mse[TURNS.index(0)].argmin())
        own = _label_accuracy(nearest_labels(ours, reference), labels, cameras)
        at_pose = _label_accuracy(nearest_labels(truth[t, i], reference), labels, cameras)
        at_zero = _label_accuracy(nearest_labels(truth[TURNS.index(0), i], reference), labels, cameras)
        rows.append({"tag": folder.name, **job, "turn_deg": TURNS[t], "instance": i,
                     "rms_at_turn": round(float(mse[t, i].sqrt()), 4), "rms_unturned": round(float(mse[TURNS.index(0), i0].sqrt()), 4),
                     "view": own["view"], "gt_view_at_turn": at_pose["view"], "gt_view_unturned": at_zero["view"]})
        print(folder.name, TURNS[t], i, rows[-1]["rms_at_turn"], rows[-1]["rms_unturned"], own["view"], at_pose["view"],
              at_zero["view"], flush=True)
    n = len(rows)
    summary = {k: round(sum(r[k] for r in rows) / n, 4) for k in ("view", "gt_view_at_turn", "gt_view_unturned")}
    summary |= {"runs": n, "mean_abs_turn_deg": round(sum(abs(r["turn_deg"]) for r in rows) / n, 2),
                "turned": sum(r["turn_deg"] != 0 for r in rows)}
    print(summary)
    record = {"suite": "the pose of one-instance NeRF runs by their nearest turned ground truth", "command": __doc__.split("\n\n")[-1].strip(),
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine_info(), "turns_deg": TURNS,
              "figures": {"summary": summary, "rows": rows}}
    atomic_write_text(root / "bench" / "results" / f"{name}.json", json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    from script_cli import command, refuse

    _, (runs, name) = command(__doc__, {None: (2, 2)})
    if not Path(runs).is_dir():
        refuse(f"RUNS {runs!r} is not a folder of runs")
    main(Path(runs), name)
