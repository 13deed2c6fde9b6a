"""The corrective trained off the data (`train-corrective --perturb 0.5`) at the methods' default length and in editing
(issue 15; docs/benchmarks.md, LMC-SDS, *A corrective trained off the data*).

`long`: the suite's synthesis cells (`bench.lmc.distill_pixels`, `synthesis_row`: "a red mug" and "a blue duck", 2
instances each, from mid-grey, lr 3e-2 with cosine decay, seed = int(ω) and int(ω) + 100) at the methods' default 500
iterations, not the suite's 80, at ω = 3, 5, 8 (the first claim's range; or the ω given): SDS, LMC-SDS with the shipped corrective,
LMC-SDS with the given one, on one prior. Does LMC-SDS catch SDS up when both run to the end?

`edit`: the suite's editing cells (`bench.lmc.editing_figures`: the red mug to blue, the blue duck to yellow, at the
edit defaults, λ = 0.3, 0.1, 0.03, 0.01) for LMC-SDS with the given toy-world corrective; the suite's rows beside.
With the shipped corrective LMC-SDS empties the duck's head and keeps its view never.

    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/lmc_corrective_perturb_more.py long PRIOR CORRECTIVE [ω,...]   # -> bench/results/lmc-corrective-perturb-long-PRIOR[-wω...].json, docs/images/lmc-synthesis-long-PRIOR[-wω...].png
    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/lmc_corrective_perturb_more.py edit TOYWORLD_CORRECTIVE   # -> bench/results/lmc-corrective-perturb-edit.json, docs/images/lmc-edit-perturb.png"""

import json
import sys
import time
from pathlib import Path

root = Path(__file__).resolve().parents[2]
SCALES = (3.0, 5.0, 8.0)
SEED_OFFSETS = (0, 100)
ITERS = 500


def record(what: str, extra: dict) -> dict:
    from diffrep.bench import machine_info

    commands = __doc__.split("\n\n")[3].strip().splitlines()
    return {"suite": f"lmc-sds with a corrective trained off the data: {what}",
            "command": next(c.strip() for c in commands if f" {what} " in c),
            "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine_info()} | extra


def long(name: str, folder: Path, scales: tuple[float, ...] = SCALES) -> None:
    import torch

    from diffrep.bench.lmc import distill_pixels, prior_data, prompt_batch, synthesis_row
    from diffrep.export import atomic_write_text, image_grid
    from diffrep.methods.corrective import shipped_corrective
    from diffrep.priors import load

    torch.set_num_threads(1)
    prior = load(name)
    data = prior_data(name, prior)
    conds, asked = prompt_batch(prior)
    variants = {"sds": ("sds", {}), "lmc-sds shipped": ("lmc-sds", {"corrective": str(shipped_corrective(prior))}),
                "lmc-sds perturbed": ("lmc-sds", {"corrective": str(folder)})}
    figures: dict = {}
    shown = []
    for offset in SEED_OFFSETS:
        for label, (method, options) in variants.items():
            cells = figures.setdefault(f"seed+{offset}", {}).setdefault(label, {})
            for w in scales:
                t0 = time.perf_counter()
                x = distill_pixels(prior, method, options, conds, w, ITERS, 3e-2, seed=int(w) + offset)
                cells[str(w)] = synthesis_row(x, data, asked) | {"seconds": round(time.perf_counter() - t0, 1)}
                print(name, offset, label, w, cells[str(w)]["nearest_rms"], flush=True)
                if offset == 0:
                    shown.append(x[[0, 2]])
    tag = name + ("" if scales == SCALES else "-w" + "-".join(f"{w:g}" for w in scales))
    image_grid(torch.cat(shown).clamp(-1, 1), nrow=2 * len(scales), scale=3).save(
        root / "docs" / "images" / f"lmc-synthesis-long-{tag}.png")
    out = record("long", {"prior": name, "iters": ITERS, "corrective": str(folder), "figures": figures,
                          "image": f"docs/images/lmc-synthesis-long-{tag}.png: rows sds, lmc-sds shipped, lmc-sds "
                                   f"perturbed at seed = int(ω); columns ω = {', '.join(f'{w:g}' for w in scales)}, "
                                   "a red mug and a blue duck each"})
    atomic_write_text(root / "bench" / "results" / f"lmc-corrective-perturb-long-{tag}.json", json.dumps(out, indent=2) + "\n")


def edit(folder: Path) -> None:
    import torch

    from diffrep.bench.lmc import editing_figures
    from diffrep.export import atomic_write_text, image_grid

    torch.set_num_threads(1)
    got = editing_figures(False, print, methods=("lmc-sds",), options={"lmc-sds": {"corrective": str(folder)}})
    suite = json.loads((root / "bench" / "results" / "lmc.json").read_text())["figures"]["editing"]["rows"]
    grid, nrow = got.pop("_images")["edit"]
    image_grid(grid.clamp(-1, 1), nrow=nrow, scale=3).save(root / "docs" / "images" / "lmc-edit-perturb.png")
    out = record("edit", {"corrective": str(folder), **got["editing"], "timings_s": got["timings_s"],
                          "suite_rows": [r for r in suite if r["method"] == "lmc-sds"],
                          "image": "docs/images/lmc-edit-perturb.png: rows the two edits; columns source, then λ"})
    atomic_write_text(root / "bench" / "results" / "lmc-corrective-perturb-edit.json", json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    args = sys.argv[1:]
    ok = lambda *paths: all((Path(a) / "corrective.json").is_file() for a in paths)  # noqa: E731
    if args[:1] == ["long"] and len(args) in (3, 4) and args[1] in ("toyworld", "tiny") and ok(args[2]):
        long(args[1], Path(args[2]).resolve(), tuple(map(float, args[3].split(","))) if len(args) == 4 else SCALES)
    elif args[:1] == ["edit"] and len(args) == 2 and ok(args[1]):
        edit(Path(args[1]).resolve())
    else:
        print("usage: lmc_corrective_perturb_more.py long {toyworld,tiny} CORRECTIVE [ω,...] | edit TOYWORLD_CORRECTIVE",
              file=sys.stderr)
        sys.exit(2)
