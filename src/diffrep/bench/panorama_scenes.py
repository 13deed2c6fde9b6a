"""360° panoramas of toy-world scenes (issue 16): DDRep (with and without RePaint, equal prior evaluations),
SDS, SJC and MultiDiffusion on scene prompts x seeds over the ``toyworld-scenes`` empirical prior.

Each canvas is scored by its crops half a view apart: the RMS distance of each crop to its nearest data view
(against that of crops of fresh scenes the prior never saw), the seam ratio, the overlap disagreement, the
prompt's objects present (by the labels of the crops' nearest data views), objects duplicated around the
360° (an object seen in two separate runs of crops), the wall time, and the distance of the whole canvas to
the nearest ground-truth scene panorama (``nearest_panorama_rms``: over every rotation of the canvas), of two
sets: ``GT_SCENES`` scenes rendered with exactly the prompt's objects on its floor (``prompt_scenes``), and
the prior's data scenes; each against what fresh ground-truth panoramas score. The views are conditioned by
the prior's ``scene_prompt`` (default: layout; docs/reps.md)."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from diffrep.bench.panorama import seam_ratio, views_disagreement
from diffrep.metrics import nearest_data, nearest_iou
from diffrep.priors.scenes import holds
from diffrep.reps.panorama import crop

DEFAULT_PRIOR = "toyworld-scenes"
GT_SCENES = 32  # ground-truth panoramas of each prompt's objects (and as many fresh ones as the reference)

GUIDANCE: dict[str, float] = {"ddrep": 1.0, "multidiffusion": 1.0, "sds": 3.0, "sjc": 3.0}
"""Guidance per method: the samplers (DDRep, MultiDiffusion) at 1, the exact conditional of the empirical prior
(at 3 DDRep's views extrapolate away from the unconditional mean and its objects come out off-colour with
white shards: crop nearest-data RMS 0.072 against 0.052 at 1, docs/benchmarks.md); SDS and SJC, which seek a
mode, at 3 as in the first runs."""

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


FOREGROUND_TAU = 0.15
"""A canvas pixel is an object's where some channel lies this far from its background (``background``)."""


def background(canvas: torch.Tensor) -> torch.Tensor:
    """``[n, C, H, Wc]``: each pixel's background, the median of its row over a view's width of columns (``H + 1``)
    centred on it, round the 360°: the wall and the floor without the objects (narrower than half a view), and a
    patch of floor a view wide in another shade kept as floor (a DDRep canvas's views can each come out under
    another scene's light; the median of a whole row made such patches blobs that swallowed their objects,
    docs/benchmarks.md)."""
    h = canvas.shape[-2] // 2
    turned = torch.cat([canvas[..., -h:], canvas, canvas[..., :h]], -1)
    return turned.unfold(-1, 2 * h + 1, 1).median(-1).values


def foreground(images: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """bool ``[..., H, W]``: pixels of ``images [..., C, H, W]`` off their ``background`` (the same shape)."""
    return (images - background).abs().amax(-3) > FOREGROUND_TAU


def blob_centres(canvas: torch.Tensor, min_width: int = 3, back: torch.Tensor | None = None) -> list[list[tuple[int, int]]]:
    """Per canvas ``[n, C, H, Wc]``, ``(centre column, area)`` of its objects: runs (round the 360°) of at least
    ``min_width`` columns holding two or more foreground pixels; the area counts the run's foreground pixels.
    ``back``: the canvases' ``background``, when the caller has it already."""
    counts = foreground(canvas, background(canvas) if back is None else back).sum(1)  # [n, Wc]
    Wc, out = canvas.shape[-1], []
    for row, count in zip((counts >= 2).tolist(), counts.tolist()):
        centres = []
        if any(row) and not all(row):
            start = row.index(False)  # turned so that no run wraps
            turned, count, j = row[start:] + row[:start], count[start:] + count[:start], 0
            while j < Wc:
                k = j
                while k < Wc and turned[k]:
                    k += 1
                if k - j >= min_width:
                    centres.append(((start + (j + k - 1) // 2) % Wc, sum(count[j:k])))
                j = max(k, j + 1)
        out.append(centres)
    return out


class BlobLabeller:
    """Names the objects of canvases: each foreground blob (``blob_centres``) is compared with the blobs of the
    prior's data panoramas, found the same way and named by the scene layouts (a blob whose centre column
    exactly one object covers): the kind of the reference whose silhouette (foreground mask of the crop centred
    on the blob) overlaps its own most (IoU, colour-blind), the colour most common among the 5 references
    nearest in chromaticity (``chromaticity``: shading-blind). A blob of fewer pixels than the smallest reference
    (``min_area``) is a fragment, not an object.

    Nearest data views over whole crops, the first labeller, read the wall and the floor more than the object
    (0.37 of the objects present in ground-truth panoramas of the bench's prompts); silhouettes against the
    data's views with an object in their middle half, the second, 0.91 over 24 prompts' fresh ground truth
    (misaligned masks read chairs as mugs); this one 0.97 (0.99 on the bench's 6; bench/scripts/panorama_scenes_labeller.py)."""

    K_COLOUR = 5

    def __init__(self, scenes: dict[str, torch.Tensor]):
        panoramas = scenes["panoramas"].float() / 127.5 - 1
        self.width, self.min_area = panoramas.shape[-2], panoramas.shape[-2] * panoramas.shape[-1]
        masks, kinds, colours, chroma = [], [], [], []
        for i, blobs in enumerate(self.blobs(panoramas)):
            for centre, area, pixels, mask in blobs:
                covering = (scenes["coverage"][i, :, centre] > 0).nonzero().flatten()
                if len(covering) == 1:  # one object's blob, not two side by side
                    j = int(covering[0])
                    masks.append(mask.flatten().float()), chroma.append(chromaticity(pixels[:, mask]))
                    kinds.append(int(scenes["kind"][i, j])), colours.append(int(scenes["colour"][i, j]))
                    self.min_area = min(self.min_area, area)
        self.masks, self.chroma = torch.stack(masks), torch.stack(chroma)
        self.kinds, self.colours = torch.tensor(kinds), torch.tensor(colours)

    def blobs(self, canvas: torch.Tensor, min_area: int = 0) -> list[list[tuple[int, int, torch.Tensor, torch.Tensor]]]:
        """Per canvas ``[n, C, H, Wc]``: ``(centre column, area, crop [C, H, H] centred on it, its foreground mask)``
        of each blob of ``min_area`` pixels or more."""
        back, out = background(canvas), []
        for i, runs in enumerate(blob_centres(canvas, back=back)):
            runs = [(centre, area) for centre, area in runs if area >= min_area]
            if not runs:
                out.append([])
                continue
            starts = (torch.tensor([centre for centre, _ in runs]) - self.width // 2).remainder(canvas.shape[-1])[None]
            crops = crop(canvas[i:i + 1], starts, self.width)[0]
            fg = foreground(crops, crop(back[i:i + 1], starts, self.width)[0])
            out.append([(centre, area, c, m) for (centre, area), c, m in zip(runs, crops, fg)])
        return out

    def __call__(self, canvas: torch.Tensor) -> list[list[tuple[int, int]]]:
        """Per canvas ``[n, C, H, Wc]``, the ``(kind, colour)`` of each of its blobs, round the 360°."""
        out = []
        for blobs in self.blobs(canvas, self.min_area):
            if not blobs:
                out.append([])
                continue
            kinds = self.kinds[nearest_iou(torch.stack([mask.flatten() for *_, mask in blobs]), self.masks)]
            colours = [self.colours[(self.chroma - chromaticity(pixels[:, mask])).norm(dim=1)
                                    .topk(self.K_COLOUR, largest=False).indices].mode().values for *_, pixels, mask in blobs]
            out.append([(int(k), int(c)) for k, c in zip(kinds, colours)])
        return out


def chromaticity(pixels: torch.Tensor) -> torch.Tensor:
    """``[3]``: the median chromaticity ``rgb / (r + g + b)`` of an object's pixels ``[3, P]`` in [-1, 1], over its
    saturated ones (a white label or a grey shadow left out): the same under any shading of one albedo."""
    x = (pixels + 1) / 2
    vivid = (x.amax(0) - x.amin(0)) > 0.15
    x = x[:, vivid] if vivid.sum() >= 3 else x
    return (x / x.sum(0, keepdim=True).clamp_min(1e-3)).median(1).values


def blob_counts(labels: list[list[tuple[int, int]]], objects) -> torch.Tensor:
    """``[n, k]``: how many blobs of each canvas are each of the prompt's ``objects`` (kind, colour; None: any)."""
    return torch.tensor([[sum(1 for kk, cc in row if (k is None or kk == k) and (c is None or cc == c)) for k, c in objects]
                         for row in labels])


def nearest_panorama_rms(canvas: torch.Tensor, panoramas: torch.Tensor) -> torch.Tensor:
    """RMS distance ``[n]`` of each canvas ``[n, C, H, Wc]`` to the nearest of ``panoramas [M, C, H, Wc]``
    under every rotation (a shift by whole columns round the 360°): a panorama is the same scene turned."""
    Wc = canvas.shape[-1]
    P = panoramas.flatten(1).float()
    best = []
    for c in canvas.float():
        turned = torch.stack([c.roll(s, -1) for s in range(Wc)]).flatten(1)  # [Wc, D]
        best.append(torch.cdist(turned, P).min())
    return torch.stack(best) / P.shape[1] ** 0.5


def prompt_scenes(query, n: int, res: int, seed: int) -> torch.Tensor | None:
    """``n`` ground-truth panoramas ``[n, C, H, Wc]`` of the prompt ``query`` (``prompt_scene_layouts``)."""
    from diffrep.toyworld.scenes import render_columns

    layout = prompt_scene_layouts(query, n, res, seed)
    return None if layout is None else render_columns(layout, res, torch.arange(round(res * 6)))[0]


def prompt_scene_layouts(query, n: int, res: int, seed: int) -> dict | None:
    """Layouts (``toyworld.scenes.sample_layouts``'s) of ``n`` scenes holding exactly the objects of the prompt
    ``query`` (their kinds and colours) on its floor, laid out, posed and shaped as the scene generator does;
    ``None`` where an object lacks a kind or a colour, two share a kind, or the floor is not named."""
    from diffrep.toyworld.objects import COLOURS, KINDS
    from diffrep.toyworld.scene_text import SceneConfig
    from diffrep.toyworld.scenes import sample_layouts

    kinds = [k for k, _ in query.objects]
    if query.floor is None or None in kinds or any(c is None for _, c in query.objects) or len(set(kinds)) < len(kinds):
        return None
    k = len(kinds)
    layout = sample_layouts(SceneConfig(n=n, res=res, seed=seed, kinds=tuple(KINDS[i] for i in kinds),
                                        colours=COLOURS, min_objects=k, max_objects=k))
    colour_of = dict(query.objects)
    present = layout["kind"] >= 0
    layout["colour"] = torch.where(present, layout["kind"].clamp_min(0).apply_(lambda i: colour_of.get(i, -1)), -1)
    layout["floor"] = torch.full_like(layout["floor"], query.floor)
    return layout


def score(prior, canvas: torch.Tensor, cond, truth: dict | None = None, labeller: BlobLabeller | None = None) -> dict:
    """The suite's metrics of canvases ``[n, C, H, Wc]`` for a ``ScenePrompt`` ``cond``; ``truth``: ground-truth
    panoramas (``"prompt"``: of the prompt's objects, ``"data"``: the prior's scenes) for the panorama distances;
    ``labeller``: objects present and duplicated by the canvas's blobs (``BlobLabeller``) beside those by its crops."""
    W = prior.image_shape[-1]
    views = canvas_crops(canvas, W)
    n, V = views.shape[:2]
    # Each crop denoised under its own condition: with a layout, the objects in its field of view.
    view_conds = (cond.view_queries([list(range(0, canvas.shape[-1], W // 2))] * n, W, canvas.shape[-1])
                  if cond.layout is not None else cond)
    idx, dist = nearest_data(views.flatten(0, 1), prior.data)
    seen = prior.seen[idx].view(n, V, *prior.seen.shape[1:])
    runs = torch.stack([object_runs(holds(seen.flatten(0, 1), k, c).view(n, V)) for k, c in cond.query.objects], 1)
    return {"crop_nearest_rms": round(dist.mean().item(), 4), "seam_ratio": round(seam_ratio(canvas), 3),
            "overlap_disagreement_rms": round(views_disagreement(prior, views, view_conds), 4),
            "objects_present": round((runs > 0).float().mean().item(), 3),
            "duplicated_canvases": round((runs > 1).any(1).float().mean().item(), 3)} | blob_scores(labeller, canvas, cond) | {
            f"{name}_panorama_rms": round(nearest_panorama_rms(canvas.cpu(), panoramas).mean().item(), 4)
            for name, panoramas in (truth or {}).items() if panoramas is not None}


def blob_scores(labeller: BlobLabeller | None, canvas: torch.Tensor, cond) -> dict:
    """``objects_present_blobs``, ``duplicated_canvases_blobs`` (an object named by two blobs) and the blobs per canvas."""
    if labeller is None:
        return {}
    labels = labeller(canvas.cpu())
    counts = blob_counts(labels, cond.query.objects)
    return {"objects_present_blobs": round((counts > 0).float().mean().item(), 3),
            "duplicated_canvases_blobs": round((counts > 1).any(1).float().mean().item(), 3),
            "blobs_per_canvas": round(sum(map(len, labels)) / len(labels), 2)}


def data_scenes(prior) -> dict[str, torch.Tensor]:
    """The prior's data scenes (``priors.scenes.scene_data``: uint8 panoramas, coverage, layouts)."""
    from diffrep.priors.scenes import scene_data
    from diffrep.toyworld.scene_text import SceneConfig

    return scene_data(SceneConfig(n=int(prior.scene.max()) + 1, res=prior.image_shape[-1], seed=0))


def fresh_reference(prior, n: int, data: torch.Tensor) -> dict:
    """What ``n`` fresh scenes (another seed) score: crop nearest-data RMS, and panorama RMS to the nearest
    data scene ``data``."""
    from diffrep.toyworld.scene_text import SceneConfig
    from diffrep.toyworld.scenes import generate_scenes

    fresh = generate_scenes(SceneConfig(n=n, res=prior.image_shape[-1], seed=10_000)).panoramas
    crops = nearest_data(canvas_crops(fresh, prior.image_shape[-1]).flatten(0, 1), prior.data)[1].mean().item()
    return {"fresh_crop_nearest_rms": round(crops, 4),
            "fresh_data_panorama_rms": round(nearest_panorama_rms(fresh, data).mean().item(), 4)}


def prompt_truth(prior, prompt: str, n: int, labeller: BlobLabeller) -> tuple[torch.Tensor | None, float | None, dict | None]:
    """``n`` ground-truth panoramas of ``prompt`` (``prompt_scenes``, seed 0), and what ``n`` fresh ones (seed 1)
    score, the references of a real scene of the prompt: their panorama RMS to the nearest of the first, and
    what the labeller reads in them (``blob_scores``)."""
    from diffrep.toyworld.scene_text import ScenePrompt, parse_scene_prompt

    q, res = parse_scene_prompt(prompt), prior.image_shape[-1]
    truth = prompt_scenes(q, n, res, 0)
    if truth is None:
        return None, None, None
    fresh = prompt_scenes(q, n, res, 1)
    return truth, round(nearest_panorama_rms(fresh, truth).mean().item(), 4), blob_scores(labeller, fresh, ScenePrompt(q))


def run_one(prior, prompt: str, name: str, method: str, extra: dict, *, n: int, steps: int, iters: int, width: int,
            seed: int, truth: dict | None = None, labeller: BlobLabeller | None = None) -> tuple[dict, torch.Tensor]:
    import diffrep

    rep = {} if method == "multidiffusion" else {"width": width, "freq_scale": 0.1}
    options = {"ddrep": {"steps": steps * 2 // extra.get("rounds", 1), "eta": 1.0, "views_per_step": 6, **extra},
               "sds": {"iters": iters, "views_per_step": 6, "lr": 1e-2},
               "sjc": {"iters": iters, "views_per_step": 6, "lr": 1e-2},
               "multidiffusion": {"steps": steps * 2, "eta": 1.0, "stride": 8}}[method]
    start = time.perf_counter()
    result = diffrep.sample(prior, rep="panorama", method=method, prompt=prompt, n=n, seed=seed,
                            guidance_scale=GUIDANCE[method], **rep, **options)
    seconds = time.perf_counter() - start
    row = {"method": name, "prompt": prompt, "seed": seed, "guidance_scale": GUIDANCE[method], "prior_evaluations": result.info["prior_evaluations"],
           "seconds": round(seconds, 1)} | score(prior, result.images, prior.encode_scene_prompt(prompt, n=n, seed=seed), truth, labeller)
    return row, result.images


def run(quick: bool, log: Callable[[str], None], prior=None, prior_name: str = DEFAULT_PRIOR, *,
        prompts: list[str] | None = None, seeds: list[int] | None = None, runs: list[tuple[str, str, dict]] | None = None) -> dict:
    """The suite; ``prompts``, ``seeds`` and ``runs`` (rows of ``RUNS``) narrow it for a reduced check."""
    from diffrep.priors import load

    prior = prior or load("toyworld-scenes", **({"n": 60, "view_stride": 16} if quick else {}))
    prompts = prompts or (scene_prompts(prior, 1) if quick else scene_prompts(prior, 6))
    seeds = seeds or ([0] if quick else [0, 1])
    runs = runs or RUNS
    n, steps, iters, width = (1, 6, 12, 32) if quick else (2, 30, 60, 128)
    gt = 4 if quick else GT_SCENES
    scenes = data_scenes(prior)
    data, labeller = scenes["panoramas"].float() / 127.5 - 1, BlobLabeller(scenes)
    rows, canvases, fresh_prompt, fresh_blobs = [], [], {}, {}
    for prompt in prompts:
        truth, fresh_prompt[prompt], fresh_blobs[prompt] = prompt_truth(prior, prompt, gt, labeller)
        for seed in seeds:
            for name, method, extra in runs:
                row, canvas = run_one(prior, prompt, name, method, extra, n=n, steps=steps, iters=iters, width=width,
                                      seed=seed, truth={"prompt": truth, "data": data}, labeller=labeller)
                log(str(row))
                rows.append(row), canvases.append(canvas[:1])
    shown = torch.cat([torch.cat([c, c], -1) for c in canvases])  # each twice around: the seam in the middle
    return {"prior": prior_name, "scene_prompt": prior.scene_prompt, "n": n, "steps": steps, "iters": iters,
            "width": width, "freq_scale": 0.1, **fresh_reference(prior, 4 if quick else 20, data),
            "ground_truth_scenes": gt, "fresh_prompt_panorama_rms": fresh_prompt,
            "fresh_prompt_blobs": fresh_blobs, "rows": rows,
            "_images": {"canvases": (shown, 1)},
            "image_rows": f"first canvas of each run, in the order of rows ({', '.join(r[0] for r in runs)} per prompt "
                          "and seed), each shown twice around, seam in the middle"}
