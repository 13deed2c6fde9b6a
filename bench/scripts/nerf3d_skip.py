"""The occupancy grid's skipping threshold (`--nerf.skip-density`) and the total variation's time (issue 13;
docs/nerf.md, *Occupancy-grid skipping*): how much of the box a trained DDRep duck keeps at each threshold and how far
its renders move from unskipped ones; and one DDRep duck's wall time and shape with given NeRF options, for runs
side by side.

    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_skip.py renders [GRID [TRAINED_AT]]   # ~1 min
    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_skip.py time OPTIONS_JSON [PROMPT]   # 0.5-6 min
    .venv/bin/python bench/scripts/nerf3d_skip.py write    # bench/results/nerf3d-skip.json

`renders` samples the duck (seed 0) with the defaults but the threshold TRAINED_AT (default 0.01, the default
before 2026-12-02), then renders it at the 8 cameras of its geometry grid at 64²
with skipping off and at each threshold (PSNR: the mean over the 8 views). `time` runs `diffrep bench nerf3d`'s `one_run` (one instance, seed 0,
labels by the prior's own 10,000 images) and records seconds, the share of cells kept at the end and the scores;
run two at a time (one thread each) to compare. Rows are appended to bench/results/.nerf3d-skip.cache/rows.jsonl
(ignored); `write` makes the JSON from them."""

import dataclasses
import json
import time
from pathlib import Path

root = Path(__file__).resolve().parents[2]
ROWS = root / "bench" / "results" / ".nerf3d-skip.cache" / "rows.jsonl"
THRESHOLDS = (0.01, 0.03, 0.1, 0.3, 1.0)


def append(row: dict) -> None:
    print(json.dumps(row), flush=True)
    ROWS.parent.mkdir(parents=True, exist_ok=True)
    with open(ROWS, "a") as f:
        f.write(json.dumps(row | {"date": time.strftime("%Y-%m-%d %H:%M")}) + "\n")


def renders(grid: str = "voxel", trained_at: float = 0.01) -> None:
    import torch

    import diffrep
    from diffrep.metrics import psnr
    from diffrep.priors import toyworld_prior

    torch.set_num_threads(1)
    rep = diffrep.sample(toyworld_prior(), rep="nerf", method="ddrep", prompt="a yellow duck", n=1, seed=0, grid=grid,
                         skip_density=trained_at).rep
    cams, trained = rep.preview_cameras(), rep.config
    with torch.no_grad():
        rep.config = dataclasses.replace(trained, skip_density=0.0)
        ref = rep.render_cameras(cams, res=64, outputs=True)
        for s in THRESHOLDS:
            rep.config = dataclasses.replace(trained, skip_density=s)
            out = rep.render_cameras(cams, res=64, outputs=True)
            append({"kind": "renders", "grid": grid, "trained_skip_density": trained.skip_density, "skip_density": s,
                    "cells_kept": round(rep.occupancy().float().mean().item(), 4),
                    "psnr_against_unskipped": round(psnr(out["rgb"].flatten(0, 1), ref["rgb"].flatten(0, 1)).mean().item(), 1),
                    "max_opacity_difference": round((out["opacity"] - ref["opacity"]).abs().max().item(), 4)})


def timed(options: dict, prompt: str = "a yellow duck") -> None:
    import torch

    import diffrep
    from diffrep.bench import nerf3d
    from diffrep.evaluate3d import GroundTruth, as_reference
    from diffrep.priors import toyworld_prior

    torch.set_num_threads(1)
    prior = toyworld_prior()
    row, result = nerf3d.one_run(prior, as_reference(prior), GroundTruth(), prompt, "ddrep", 0, 1, options)
    append({"kind": "time", "code": code_commit(Path(diffrep.__file__).parent), "options": options, "prompt": prompt,
            "seconds": row["seconds"], "cells_kept": round(result.rep.occupancy().float().mean().item(), 4),
            "occupancy_iou": row["aggregate"]["occupancy_iou"], "mask_iou": row["aggregate"]["mask_iou"],
            "labels": row["aggregate"]["labels"]})


def code_commit(folder: Path) -> str:
    """The commit of the checkout holding ``folder`` (the code a run imported: another checkout's through
    PYTHONPATH for a side-by-side comparison), with ``+`` when it has uncommitted changes."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True).stdout.strip()

    return git("rev-parse", "--short", "HEAD") + ("+" if git("status", "--porcelain", "--", ".") else "")


def write() -> None:
    from diffrep.bench import machine_info
    from diffrep.export import atomic_write_text

    from script_cli import merged

    path = root / "bench" / "results" / "nerf3d-skip.json"
    fields = ("kind", "grid", "trained_skip_density", "skip_density", "code", "options", "prompt")
    rows = merged(path, lambda record: record["figures"]["rows"], [json.loads(line) for line in ROWS.read_text().splitlines()],
                  lambda r: json.dumps([r.get(f) for f in fields], sort_keys=True))
    record = {"suite": "nerf3d skipping threshold and the total variation's time", "command": __doc__.split("\n\n")[1].strip(),
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine_info(), "figures": {"rows": rows}}
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    from script_cli import cached, command, parse, script_main

    verb, a = command(__doc__, {"renders": (0, 2), "time": (1, 2), "write": (0, 0)})
    if verb == "renders":
        script_main(renders, *a[:1], *parse(lambda: [float(s) for s in a[1:2]], "TRAINED_AT"))
    elif verb == "time":
        script_main(timed, parse(lambda: json.loads(a[0]), "OPTIONS_JSON"), *a[1:2])
    else:
        cached(ROWS, "nerf3d_skip.py time")
        write()
