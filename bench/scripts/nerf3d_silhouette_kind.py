"""Kind by shape (``evaluate3d.silhouette_kinds``: the kind of the reference image whose foreground mask overlaps a
render's silhouette most) for the suite's kept NeRF runs, beside the nearest image's kind the suite reports: the
rows of `bench/results/nerf3d.json` on the default prior (``rows``) and on the camera-conditioned prior
(``camera_prior``), one instance each, at the evaluation's 16 held-out cameras (seed 0), and 16 ground-truth
instances of each prompt (the labeller's ceiling). The runs' folders must be in bench/results/.nerf3d.runs/ (a run
of the suite keeps them).

    OMP_NUM_THREADS=2 .venv/bin/python bench/scripts/nerf3d_silhouette_kind.py 160000

Writes bench/results/nerf3d-silhouette-kind.json."""

import json
import sys
import time
from collections import defaultdict
from pathlib import Path

from diffrep import evaluate3d as e3
from diffrep.api import load_run
from diffrep.bench import machine_info
from diffrep.export import atomic_write_text
from diffrep.reps.nerf import nerf_objects
from diffrep.toyworld.objects import KINDS

results = Path(__file__).resolve().parents[1] / "results"
from script_cli import command, refuse  # noqa: E402

_, (n,) = command(__doc__, {None: (1, 1)})
if not n.isdigit():
    refuse(f"N {n!r}: a number of reference images")
n = int(n)
start = time.perf_counter()
reference = e3.load_reference(n)
config = e3.Evaluate3DConfig()
cameras, truth = e3.held_out_cameras(config.views, 0), e3.GroundTruth(config.instances, config.grid, 0)
suite = json.loads((results / "nerf3d.json").read_text())["figures"]


def shape_kinds(masks, kind):
    found = e3.silhouette_kinds(masks, reference)
    return round((found == kind).float().mean().item(), 4), sorted({KINDS[k] for k in found.tolist()})


figures = {"ground_truth": {}, "rows": [], "camera_prior": [], "means": {}}
for prompt in suite["prompts"]:
    labels = e3.prompt_labels(prompt)
    _, masks = e3.gt_render(labels["kind"], labels["colour"], truth.instances(labels["kind"])[:config.baseline],
                            cameras, reference.res)
    figures["ground_truth"][prompt] = shape_kinds(masks.view(-1, reference.res, reference.res), labels["kind"])[0]
for section, rows in (("rows", suite["rows"]), ("camera_prior", suite["camera_prior"]["rows"])):
    for row in rows:
        rep, _ = load_run(results / ".nerf3d.runs" / row["run_dir"], rep="nerf")
        masks = e3.silhouette(nerf_objects(rep)[0], cameras, reference.res)
        by_shape, kinds = shape_kinds(masks, e3.prompt_labels(row["prompt"])["kind"])
        figures[section].append({"prompt": row["prompt"], "method": row["method"], "seed": row["seed"],
                                 "run_dir": row["run_dir"], "kind_nearest_image": row["aggregate"]["labels"]["kind"],
                                 "kind_by_shape": by_shape, "kinds_by_shape": kinds})
        print(section, json.dumps(figures[section][-1]), flush=True)
    by_method = defaultdict(list)
    for r in figures[section]:
        by_method[r["method"]].append(r)
    figures["means"][section] = {m: {k: round(sum(r[k] for r in rs) / len(rs), 3) for k in ("kind_nearest_image", "kind_by_shape")}
                                 | {"runs": len(rs)} for m, rs in by_method.items()}
print(json.dumps(figures["means"]), json.dumps(figures["ground_truth"]))
atomic_write_text(results / "nerf3d-silhouette-kind.json", json.dumps({
    "suite": "nerf3d: kind by shape of the kept runs", "reference_images": n,
    "command": "OMP_NUM_THREADS=2 .venv/bin/python bench/scripts/nerf3d_silhouette_kind.py " + " ".join(sys.argv[1:]),
    "seconds": round(time.perf_counter() - start), "machine": machine_info(), "figures": figures}, indent=1) + "\n")
