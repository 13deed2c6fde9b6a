"""LMC-SDS's synthesis larger than the prior (docs/lmc.md "Synthesis larger than the prior"): 128² canvases of
"a red mug" from the 32² toy-world prior, lmc-sds against sds, exact 32² crops against 32²-128² patches.

    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/canvas_synthesis.py [--iters 400]

Each row is one run (2 seeds: the rep's n = 2) through ``diffrep.sample``. Per image: the RMS distance of the
canvas area-downscaled to 32² to its nearest data image and that image's labels (is the whole still a toy-world
image?); the mean nearest-data RMS of its 16 non-overlapping 32² tiles and how many of them have a mug as their
nearest data image (what the patch phase asks of every window: to be a whole toy-world image); and the detail
RMS, ``RMS(canvas - up(down(canvas)))``, the part finer than the prior's pixels (0 for a canvas that only ever
saw whole views: each 4 x 4 block stays flat). Reference rows: the same method on a plain 32² pixels rep.
Writes bench/results/canvas-synthesis.json and docs/images/lmc-canvas-128.png (a row per canvas run: its two
canvases at full resolution, then their 32² downscales x4)."""

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import diffrep
from diffrep.export import image_grid
from diffrep.metrics import nearest_data
from diffrep.priors import load

ROOT = Path(__file__).resolve().parents[2]
PROMPT = "a red mug"
RUNS = {  # name -> (method, rep, rep options)
    "lmc-sds, 32² crops": ("lmc-sds", "canvas", {"max_patch": 1}),
    "sds, 32² crops": ("sds", "canvas", {"max_patch": 1}),
    "lmc-sds, 32²-128² patches": ("lmc-sds", "canvas", {"max_patch": 4}),
    "sds, 32²-128² patches": ("sds", "canvas", {"max_patch": 4}),
    "lmc-sds, whole canvas only": ("lmc-sds", "canvas", {"whole_phase": 1.0}),
    "lmc-sds, 32² crops, t annealed (sqrt)": ("lmc-sds", "canvas", {"max_patch": 1, "annealing": "sqrt"}),
    "lmc-sds, 32² pixels (reference)": ("lmc-sds", "pixels", {}),
    "sds, 32² pixels (reference)": ("sds", "pixels", {}),
}


def describe(prior, index: int) -> str:
    return " ".join(prior.vocab[name][int(prior.labels[name][index])] for name in ("colour", "kind", "view"))


def measure(prior, images: torch.Tensor) -> list[dict]:
    """Per image ``[n, 3, S, S]``: the nearest data image of its 32² downscale, its tiles' nearest data images and
    its detail finer than the prior's pixels."""
    R, S = prior.image_shape[-1], images.shape[-1]
    small = F.interpolate(images, size=(R, R), mode="area")
    idx, rms = nearest_data(small, prior.data)
    detail = (images - small.repeat_interleave(S // R, 2).repeat_interleave(S // R, 3)).flatten(1).pow(2).mean(1).sqrt()
    rows = []
    for i in range(images.shape[0]):
        tiles = images[i].unfold(1, R, R).unfold(2, R, R).permute(1, 2, 0, 3, 4).flatten(0, 1)  # [(S/R)², 3, R, R]
        t_idx, t_rms = nearest_data(tiles, prior.data)
        mugs = int((prior.labels["kind"][t_idx] == prior.vocab["kind"].index("mug")).sum())
        rows.append({"downscaled_nearest_rms": round(rms[i].item(), 4), "downscaled_nearest": describe(prior, idx[i]),
                     "tiles": tiles.shape[0], "tile_nearest_rms_mean": round(t_rms.mean().item(), 4),
                     "tiles_nearest_a_mug": mugs, "detail_rms": round(detail[i].item(), 4)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=400)
    ap.add_argument("--guidance-scale", type=float, default=8.0)
    a = ap.parse_args()
    prior = load("toyworld")
    rows, images = {}, []
    for name, (method, rep, options) in RUNS.items():
        start = time.perf_counter()
        sizes = {"size": 128, "whole_phase": 0.3} if rep == "canvas" else {}
        result = diffrep.sample(prior, rep=rep, method=method, prompt=PROMPT, n=2, seed=0,
                                guidance_scale=a.guidance_scale, iters=a.iters, lr=0.05, lr_schedule="cosine",
                                **(sizes | options))
        canvas = result.images
        rows[name] = {"method": method, "rep": rep, **(sizes | options),
                      "seconds": round(time.perf_counter() - start, 1), "images": measure(prior, canvas)}
        print(name, json.dumps(rows[name]), flush=True)
        if rep == "canvas":
            small = F.interpolate(F.interpolate(canvas, size=(32, 32), mode="area"), scale_factor=4, mode="nearest")
            images.append(torch.cat([canvas, small]))
    setup = {"prior": "toyworld", "prompt": PROMPT, "iters": a.iters, "lr": 0.05,
             "lr_schedule": "cosine", "guidance_scale": a.guidance_scale, "n": 2, "seed": 0}
    (ROOT / "bench/results/canvas-synthesis.json").write_text(json.dumps({"setup": setup, "runs": rows}, indent=1) + "\n")
    image_grid(torch.cat(images), nrow=4, pad=2).save(ROOT / "docs/images/lmc-canvas-128.png")


if __name__ == "__main__":
    main()
