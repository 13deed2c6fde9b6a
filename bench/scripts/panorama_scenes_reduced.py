"""A reduced `diffrep bench panorama-scenes` (issue 16, layout conditioning), for a session too short for
the full suite: DDRep, SDS, SJC and MultiDiffusion on the suite's 6 scene prompts x seed 0 (the full suite's
settings otherwise; no seed 1).

    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/panorama_scenes_reduced.py [METHOD ...]
writes bench/results/panorama-scenes-layout-reduced.json and docs/images/panorama-scenes-layout-reduced-canvases.png
(each canvas shown twice around, seam in the middle); with methods (rows of RUNS, e.g. ddrep-repaint), those
rows instead, into panorama-scenes-layout-reduced-METHOD....json and -canvases.png."""

import json
import sys
import time
from pathlib import Path

from diffrep.bench import machine_info, save_images
from diffrep.bench import panorama_scenes as ps
from diffrep.export import atomic_write_text

root = Path(__file__).resolve().parents[2]
METHODS = tuple(sys.argv[1:]) or ("ddrep", "sds", "sjc", "multidiffusion")
STEM = "panorama-scenes-layout-reduced" + "".join(f"-{m}" for m in sys.argv[1:])


def run() -> tuple[dict, float]:
    from diffrep.priors import load

    prior = load("toyworld-scenes")
    start = time.time()
    out = ps.run(False, print, prior=prior, prompts=ps.scene_prompts(prior, 6), seeds=[0],
                 runs=[r for r in ps.RUNS if r[0] in METHODS])
    return out, time.time() - start


def write(out: dict, wall_s: float) -> None:
    images = out.pop("_images")
    record = {"suite": "panorama-scenes (reduced: layout conditioning, 6 prompts x seed 0, "
                       f"{', '.join(METHODS)})",
              "quick": False, "command": " ".join(["OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/panorama_scenes_reduced.py", *sys.argv[1:]]),
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "wall_s": round(wall_s, 2), "machine": machine_info(),
              "figures": out,
              "images": save_images(images, root / "docs" / "images", STEM)}
    record["images"] = [str(Path(p).relative_to(root)) for p in record["images"]]
    atomic_write_text(root / "bench" / "results" / f"{STEM}.json", json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    write(*run())
