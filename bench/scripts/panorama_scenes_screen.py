"""Screens of DDRep's panorama settings against the floor patches of `diffrep bench panorama-scenes` (issue 16):
darker or lighter rectangles of floor, edged at view boundaries, around the objects of its canvases. DDRep on the
suite's 6 prompts x 2 seeds, 2 canvases each, its settings otherwise, with

    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/panorama_scenes_screen.py VIEWS_PER_STEP STEPS SCENES

(the suite: 6 views a step, tiling the 192 columns without overlap, 60 steps, a prior of 500 scenes; 12 views
overlap by half at the same prior evaluations with 30 steps; 2000 scenes give each view's condition 4x the data).
Objects present and duplicated are read by the suite's labeller of the 500 scenes, the nearest data scene among
those 500 too, so the rows compare with the suite's; crop nearest-data RMS is against the screened prior's own
views. Writes bench/results/panorama-scenes-screen-vVIEWS-sSTEPS-nSCENES.json and the first canvas of each row
in docs/images/ under the same stem."""

import json
import time
from pathlib import Path

import torch

from diffrep.bench import machine_info, save_images
from diffrep.bench import panorama_scenes as ps
from diffrep.export import atomic_write_text
from diffrep.priors import load
from diffrep.priors.scenes import scene_data
from diffrep.toyworld.scene_text import SceneConfig

root = Path(__file__).resolve().parents[2]
from script_cli import command, refuse  # noqa: E402

_, args = command(__doc__, {None: (3, 3)})
if not all(a.isdigit() for a in args):
    refuse(f"VIEWS_PER_STEP STEPS SCENES take whole numbers, got {' '.join(args)}")
views, steps, n_scenes = (int(a) for a in args)
stem = f"panorama-scenes-screen-v{views}-s{steps}-n{n_scenes}"
torch.set_num_threads(1)
start = time.time()
prior = load("toyworld-scenes", n=n_scenes)
scenes = scene_data(SceneConfig(n=500, res=prior.image_shape[-1], seed=0))  # the suite's labeller and data scenes
data, labeller = scenes["panoramas"].float() / 127.5 - 1, ps.BlobLabeller(scenes)
rows, canvases = [], []
for prompt in ps.scene_prompts(prior, 6):
    truth, _, _ = ps.prompt_truth(prior, prompt, ps.GT_SCENES, labeller)
    for seed in (0, 1):
        row, canvas = ps.run_one(prior, prompt, "ddrep", "ddrep", {"views_per_step": views, "steps": steps}, n=2,
                                 steps=30, iters=60, width=128, seed=seed, truth={"prompt": truth, "data": data},
                                 labeller=labeller)
        print(row, flush=True)
        rows.append(row), canvases.append(canvas[:1])
keys = [k for k, v in rows[0].items() if isinstance(v, (int, float)) and k != "seed"]
figures = {"views_per_step": views, "steps": steps, "scenes": n_scenes, "rows": rows,
           "means": {k: round(sum(r[k] for r in rows) / len(rows), 4) for k in keys}}
shown = torch.cat([torch.cat([c, c], -1) for c in canvases])
images = save_images({"canvases": (shown, 1)}, root / "docs" / "images", stem)
record = {"suite": "panorama-scenes screen", "command": f"OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/panorama_scenes_screen.py {views} {steps} {n_scenes}",
          "date": time.strftime("%Y-%m-%d %H:%M:%S"), "wall_s": round(time.time() - start, 1), "machine": machine_info(),
          "figures": figures, "images": [str(Path(p).relative_to(root)) for p in images]}
atomic_write_text(root / "bench" / "results" / f"{stem}.json", json.dumps(record, indent=2) + "\n")
print(json.dumps(figures["means"]))
