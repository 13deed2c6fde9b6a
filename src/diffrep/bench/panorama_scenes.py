"""360° panoramas of toy-world scenes (issue 16): DDRep (with and without RePaint, equal prior evaluations),
SDS, SJC and MultiDiffusion on scene prompts x seeds over the ``toyworld-scenes`` empirical prior.

Each canvas is scored by its crops half a view apart: the RMS distance of each crop to its nearest data view
(against that of crops of fresh scenes the prior never saw), the seam ratio, the overlap disagreement, the
prompt's objects present (by the labels of the crops' nearest data views), objects duplicated around the
360° (an object seen in two separate runs of crops) and the wall time."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from diffrep.bench.panorama import seam_ratio, views_disagreement
from diffrep.metrics import nearest_data
from diffrep.priors.scenes import holds
from diffrep.reps.panorama import crop

DEFAULT_PRIOR = "toyworld-scenes"

# (method, options): DDRep's two rows take equal prior evaluations (rounds x steps constant).
RUNS: list[tuple[str, str, dict]] = [
    ("ddrep", "ddrep", {"rounds": 1}), ("ddrep-repaint", "ddrep", {"rounds": 2}),
    ("sds", "sds", {}), ("sjc", "sjc", {}), ("multidiffusion", "multidiffusion", {}),
]


def scene_prompts(prior, k: int) -> list[str]:
    """``k`` prompts of data scenes: the first two objects of scenes 0, 1, ... with their floor (as captions)."""
    from diffrep.priors.scenes import scene_data
    from diffrep.toyworld.scene_text import SceneConfig, scene_caption

    d = scene_data(SceneConfig(n=int(prior.scene.max()) + 1, res=prior.image_shape[-1], seed=0))
    return [scene_caption([(int(d["kind"][i, s]), int(d["colour"][i, s])) for s in range(2)], int(d["floor"][i]))
            for i in range(k)]


def canvas_crops(canvas: torch.Tensor, W: int) -> torch.Tensor:
    """Crops ``[n, V, C, H, W]`` every ``W // 2`` columns of canvases ``[n, C, H, Wc]``."""
    return crop(canvas, torch.arange(0, canvas.shape[-1], W // 2).expand(canvas.shape[0], -1), W)


def object_runs(seen: torch.Tensor) -> torch.Tensor:
    """Runs of consecutive ``True`` around a circle, per row of ``seen [n, V]`` -> ``[n]``."""
    starts = seen & ~seen.roll(1, dims=1)
    return torch.where(seen.all(1), torch.ones_like(seen[:, 0], dtype=torch.long), starts.sum(1))


def score(prior, canvas: torch.Tensor, cond) -> dict:
    """The suite's metrics of canvases ``[n, C, H, Wc]`` for a ``ScenePrompt`` ``cond``."""
    W = prior.image_shape[-1]
    views = canvas_crops(canvas, W)
    n, V = views.shape[:2]
    idx, dist = nearest_data(views.flatten(0, 1), prior.data)
    seen = prior.seen[idx].view(n, V, *prior.seen.shape[1:])
    runs = torch.stack([object_runs(holds(seen.flatten(0, 1), k, c).view(n, V)) for k, c in cond.query.objects], 1)
    return {"crop_nearest_rms": round(dist.mean().item(), 4), "seam_ratio": round(seam_ratio(canvas), 3),
            "overlap_disagreement_rms": round(views_disagreement(prior, views, cond), 4),
            "objects_present": round((runs > 0).float().mean().item(), 3),
            "duplicated_canvases": round((runs > 1).any(1).float().mean().item(), 3)}


def fresh_reference(prior, n: int) -> float:
    """Crop nearest-data RMS of ``n`` fresh scenes (another seed): what real scenes score."""
    from diffrep.toyworld.scene_text import SceneConfig
    from diffrep.toyworld.scenes import generate_scenes

    fresh = generate_scenes(SceneConfig(n=n, res=prior.image_shape[-1], seed=10_000)).panoramas
    return round(nearest_data(canvas_crops(fresh, prior.image_shape[-1]).flatten(0, 1), prior.data)[1].mean().item(), 4)


def run_one(prior, prompt: str, name: str, method: str, extra: dict, *, n: int, steps: int, iters: int, width: int,
            seed: int) -> tuple[dict, torch.Tensor]:
    import diffrep

    rep = {} if method == "multidiffusion" else {"width": width, "freq_scale": 0.1}
    options = {"ddrep": {"steps": steps * 2 // extra.get("rounds", 1), "eta": 1.0, "views_per_step": 6, **extra},
               "sds": {"iters": iters, "views_per_step": 6, "lr": 1e-2},
               "sjc": {"iters": iters, "views_per_step": 6, "lr": 1e-2},
               "multidiffusion": {"steps": steps * 2, "eta": 1.0, "stride": 8}}[method]
    start = time.perf_counter()
    result = diffrep.sample(prior, rep="panorama", method=method, prompt=prompt, n=n, seed=seed, **rep, **options)
    seconds = time.perf_counter() - start
    row = {"method": name, "prompt": prompt, "seed": seed, "prior_evaluations": result.info["prior_evaluations"],
           "seconds": round(seconds, 1)} | score(prior, result.images, prior.encode_scene_prompt(prompt))
    return row, result.images


def run(quick: bool, log: Callable[[str], None], prior=None, prior_name: str = DEFAULT_PRIOR) -> dict:
    from diffrep.priors import load

    prior = prior or load("toyworld-scenes", **({"n": 60, "view_stride": 16} if quick else {}))
    prompts, seeds = (scene_prompts(prior, 1), [0]) if quick else (scene_prompts(prior, 6), [0, 1])
    n, steps, iters, width = (1, 6, 12, 32) if quick else (2, 30, 60, 128)
    rows, canvases = [], []
    for prompt in prompts:
        for seed in seeds:
            for name, method, extra in RUNS:
                row, canvas = run_one(prior, prompt, name, method, extra, n=n, steps=steps, iters=iters, width=width,
                                      seed=seed)
                log(str(row))
                rows.append(row), canvases.append(canvas[:1])
    shown = torch.cat([torch.cat([c, c], -1) for c in canvases])  # each twice around: the seam in the middle
    return {"prior": prior_name, "n": n, "steps": steps, "iters": iters, "width": width, "freq_scale": 0.1,
            "fresh_crop_nearest_rms": fresh_reference(prior, 4 if quick else 20), "rows": rows,
            "_images": {"canvases": (shown, 1)},
            "image_rows": f"first canvas of each run, in the order of rows ({', '.join(r[0] for r in RUNS)} per prompt "
                          "and seed), each shown twice around, seam in the middle"}
