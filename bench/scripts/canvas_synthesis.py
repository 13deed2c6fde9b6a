"""LMC-SDS's synthesis larger than the prior (docs/lmc.md "Synthesis larger than the prior"): 128² canvases of
"a red mug" from the 32² toy-world prior, lmc-sds against sds, exact 32² crops against 32²-128² patches.

    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/canvas_synthesis.py [--iters 400]

Each row is one run (2 seeds: the rep's n = 2) through ``diffrep.sample(rep="canvas")``. Per canvas: the RMS
distance of the canvas area-downscaled to 32² to its nearest data image and that image's labels; and the number
of red blobs (4-connected regions of at least 16 canvas pixels whose red exceeds green and blue by 0.4 in [-1, 1]:
one per mug drawn; several when the patch phase repeats the object). Reference rows: the same method on a plain
32² pixels rep. Writes bench/results/canvas-synthesis.json and docs/images/lmc-canvas-128.png (a row per canvas
run: its two canvases at full resolution, then their 32² downscales x4)."""

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
    "lmc-sds, 32² pixels (reference)": ("lmc-sds", "pixels", {}),
    "sds, 32² pixels (reference)": ("sds", "pixels", {}),
}


def describe(prior, index: int) -> str:
    return " ".join(prior.vocab[name][int(prior.labels[name][index])] for name in ("colour", "kind", "view"))


def red_blobs(canvas: torch.Tensor, min_pixels: int = 16) -> int:
    """4-connected regions of at least ``min_pixels`` pixels of ``canvas [3, H, W]`` whose red exceeds green and
    blue by 0.4."""
    red = (canvas[0] - canvas[1:].max(0).values > 0.4).tolist()
    H, W = len(red), len(red[0])
    seen, blobs = [[False] * W for _ in range(H)], 0
    for y0 in range(H):
        for x0 in range(W):
            if not red[y0][x0] or seen[y0][x0]:
                continue
            seen[y0][x0], stack, size = True, [(y0, x0)], 0
            while stack:
                y, x = stack.pop()
                size += 1
                for v, u in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                    if 0 <= v < H and 0 <= u < W and red[v][u] and not seen[v][u]:
                        seen[v][u] = True
                        stack.append((v, u))
            blobs += size >= min_pixels
    return blobs


def measure(prior, images: torch.Tensor) -> list[dict]:
    """Per image ``[n, 3, S, S]``: nearest data image of its 32² downscale, and its red blobs."""
    R = prior.image_shape[-1]
    small = F.interpolate(images, size=(R, R), mode="area")
    idx, rms = nearest_data(small, prior.data)
    return [{"downscaled_nearest_rms": round(rms[i].item(), 4), "downscaled_nearest": describe(prior, idx[i]),
             "red_blobs": red_blobs(images[i])} for i in range(images.shape[0])]


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
