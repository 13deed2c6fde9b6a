"""360° panoramas with DDRep: seam error at 360°, agreement of overlapping views, crop quality,
with and without RePaint harmonisation at equal prior evaluations."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from diffrep.methods import PullbackConfig, ddrep_sample
from diffrep.bench.common import labelled_reference
from diffrep.metrics import label_accuracy, nearest_data
from diffrep.priors import CountingPrior, toyworld_prior
from diffrep.priors.base import as_timesteps
from diffrep.reps import make_rep
from diffrep.schedule import timesteps


def seam_ratio(canvas: torch.Tensor) -> float:
    """Mean |column 0 - last column| over the mean |difference| of adjacent columns elsewhere (1 = seamless)."""
    diffs = (canvas[..., 1:] - canvas[..., :-1]).abs().mean((0, 1, 2))
    seam = (canvas[..., 0] - canvas[..., -1]).abs().mean()
    return (seam / diffs.mean()).item()


@torch.no_grad()
def overlap_disagreement(prior, rep, cond, t: int = 100) -> float:
    """RMS disagreement, on their overlap, of the prior's denoised predictions for views half a
    view apart (how much the views' individual 'opinions' about shared pixels differ)."""
    W = rep.image_shape[-1]
    Wc = rep.canvas_shape[-1]
    offsets = torch.arange(0, Wc, W // 2)
    return views_disagreement(prior, rep(offsets.expand(rep.n, -1)), cond, t)


@torch.no_grad()
def views_disagreement(prior, views: torch.Tensor, cond, t: int = 100) -> float:
    """``overlap_disagreement`` of views ``[n, V, C, H, W]`` half a view apart around a canvas (any canvas);
    ``cond``: one condition, or a list with one per view (instance-major)."""
    n, V, W = *views.shape[:2], views.shape[-1]
    g = torch.Generator().manual_seed(0)
    ab = prior.alphas_cumprod[t]
    x_t = ab.sqrt() * views.flatten(0, 1) + (1 - ab).sqrt() * torch.randn(views.flatten(0, 1).shape, generator=g)
    conds = cond if isinstance(cond, list) else [cond] * (n * V)
    tt = as_timesteps(t, n * V)
    D = ((x_t - (1 - ab).sqrt() * prior.eps(x_t, tt, conds)) / ab.sqrt()).view_as(views)  # Tweedie
    left, right = D[:, :, ..., W // 2:], D.roll(-1, dims=1)[:, :, ..., : W - W // 2]
    return (left - right).pow(2).mean().sqrt().item()


def run_one(prior, prompt: str, n: int, steps: int, rounds: int, eta: float, width: int, views_per_step: int,
            seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    # freq_scale 0.1: at the default 0.25 the SIREN also fits the views' high-frequency disagreements (docs/benchmarks.md).
    rep = make_rep("panorama", prior.image_shape, n, generator=g, width=width, freq_scale=0.1)
    cond = prior.encode_prompt(prompt)
    counted = CountingPrior(prior)
    start = time.perf_counter()
    ddrep_sample(counted, rep, timesteps(len(prior.alphas_cumprod), steps), cond, guidance_scale=3.0, eta=eta,
                 rounds=rounds, pull=PullbackConfig(), views_per_step=views_per_step,
                 generator=g)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        canvas = rep.canvas()
        W = rep.image_shape[-1]
        crops = rep(torch.arange(0, canvas.shape[-1], W // 2).expand(n, -1)).flatten(0, 1)
    reference = labelled_reference(prior)
    idx, dist = nearest_data(crops, reference.data)
    acc = label_accuracy(idx, reference.labels, reference.encode_prompt(prompt))
    return {"rounds": rounds, "steps": steps, "prior_evaluations": counted.evaluations, "seconds": round(seconds, 1),
            "seam_ratio": round(seam_ratio(canvas), 3), "overlap_disagreement_rms": round(overlap_disagreement(prior, rep, cond), 4),
            "crop_nearest_rms": round(dist.mean().item(), 4), "crop_label_accuracy": {k: round(v, 3) for k, v in acc.items()},
            "canvas": canvas}


def run(quick: bool, log: Callable[[str], None], prior=None, prior_name: str = "toyworld") -> dict:
    prior = prior or toyworld_prior()
    n, steps, width = (2, 10, 64) if quick else (4, 30, 128)
    prompt, eta, views = "a red ball", 1.0, 6
    rows, canvases = [], []
    for rounds in (1, 2):  # equal prior evaluations: rounds x steps is constant
        row = run_one(prior, prompt, n, steps * 2 // rounds, rounds, eta, width, views, seed=0)
        canvases.append(row.pop("canvas"))
        log(str(row))
        rows.append(row)
    # Each canvas twice side by side, so the 360° seam sits in the middle of the picture.
    shown = torch.cat([torch.cat([c, c], -1) for c in canvases])
    return {"prior": prior_name, "prompt": prompt, "n": n, "eta": eta, "views_per_step": views, "width": width,
            "freq_scale": 0.1,
            "rows": rows, "_images": {"canvases": (shown, 1)},
            "image_rows": f"{n} canvases without RePaint, then {n} with (each shown twice around, seam in the middle)"}
