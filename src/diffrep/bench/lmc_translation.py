"""Amortised translation (LMC-SDS's Table 1 analogue, "cats to others" as mugs to ducks, chairs, houses, cars): one
translator per distillation loss (lmc-sds, sds, nfsd), trained for a short schedule on the toyworld prior, scored
on held-out mugs by the labels of the nearest data image: the target kind, the input's colour and view kept."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
from torch import Tensor

from diffrep.toyworld.vocabulary import KINDS
from diffrep.training.config import TranslatorTrainConfig

ROWS = 6  # held-out mugs shown per target in the image grid
LOSSES = ("lmc-sds", "sds", "nfsd")  # the paper's Table 1 (the l-cond ablation of TRANSLATOR_LOSSES: a screen)


SILHOUETTE_TAU = 0.1
"""A pixel is the object's where some channel lies this far from the toy world's flat background."""


def silhouettes(images: Tensor) -> Tensor:
    """Foreground masks ``[N, H W]`` (float 0/1) of toy-world-like ``images [N, C, H, W]``: off the background."""
    from diffrep.evaluate3d import foreground_mask

    return foreground_mask(images, SILHOUETTE_TAU).flatten(1).float()


SATURATION_TAU = 0.15
"""A pixel is an object's coloured body where its channels (in [0, 1]) spread this much (``chromaticity``'s
"vivid" threshold of the scene labeller)."""


def saturated_silhouettes(images: Tensor) -> Tensor:
    """Masks ``[N, H W]`` (float 0/1) of the saturated pixels of ``images [N, C, H, W]``: an object's coloured
    body, without its white label, its grey shadow, or the pale ghost of the input mug that a translator leaves
    round its output (which makes every ``silhouettes`` mask a mug's or nothing's, docs/benchmarks.md)."""
    y = (images + 1) / 2
    return ((y.amax(1) - y.amin(1)) > SATURATION_TAU).flatten(1).float()


def silhouette_kind(images: Tensor, data_masks: Tensor, data_kind: Tensor, masks=silhouettes) -> Tensor:
    """``[N]``: the kind of the data image whose mask (``masks``: ``silhouettes`` or ``saturated_silhouettes``,
    the data's ``data_masks`` made by the same) overlaps each image's most (IoU; colour- and shading-blind). On
    the toy-world set itself, leave one out, either names 99.75 % of the kinds right (2,000 queries)."""
    from diffrep.metrics import nearest_iou

    return data_kind[nearest_iou(masks(images), data_masks)]


def translation_scores(outputs: Tensor, inputs: Tensor, colour: Tensor, view: Tensor, target: int,
                       data: dict[str, Tensor]) -> dict[str, float]:
    """Scores of ``outputs [N, C, H, W]`` (translations of ``inputs`` to kind ``target``) by the labeller of
    ``bench prior-quality`` (kind and view of the nearest data image, colour of the nearest in colour space): its kind
    is the target (``kind``), its colour and view are the input's (``colour``, ``view``; all five kinds here have
    a front, so the view is scored exactly), all three (``all``); its silhouette's kind is the target
    (``kind_silhouette``, ``silhouette_kind``: a shading change on a mug's outline does not pass), and with colour
    and view kept (``all_silhouette``); the same by the saturated body alone (``kind_saturated``,
    ``all_saturated``: a pale ghost of the mug round a duck does not fail it); the RMS distance to the nearest data image (``nearest_rms``) and to the
    input (``input_rms``)."""
    from diffrep.bench.prior_quality import nearest_labels, score

    labels = {name: data[name] for name in ("kind", "colour", "view")}
    got, dist = nearest_labels(outputs, data["images"], labels, data.get("chroma"))
    asked = torch.stack([torch.full_like(colour, target), colour, view], 1)
    scores = score(asked, got)
    shaped = silhouette_kind(outputs, data["silhouettes"], data["kind"]) == target
    bodied = silhouette_kind(outputs, data["saturated"], data["kind"], saturated_silhouettes) == target
    kept = (got["colour"] == colour) & (got["view"] == view)
    return {k: scores[k] for k in ("kind", "colour", "view", "all", "colour_pixel_nn")} | {
        "kind_silhouette": shaped.float().mean().item(), "all_silhouette": (shaped & kept).float().mean().item(),
        "kind_saturated": bodied.float().mean().item(), "all_saturated": (bodied & kept).float().mean().item(),
        "nearest_rms": dist.mean().item(), "input_rms": ((outputs - inputs).flatten(1).pow(2).mean(1).sqrt()).mean().item()}


def scoring_data(config: TranslatorTrainConfig, res: int) -> tuple[dict[str, Tensor], Tensor]:
    """The toy-world set of a translator's ``config`` with the labellers' references computed once (``chroma``,
    ``silhouettes``, ``saturated``), and the indices of its held-out source images: what ``score_all`` scores on."""
    from diffrep.bench.prior_quality import chroma
    from diffrep.training.translator import source_images, source_split

    data = source_images(config, res)
    data |= {"chroma": chroma(data["images"]), "silhouettes": silhouettes(data["images"]),
             "saturated": saturated_silhouettes(data["images"])}
    _, test_idx = source_split(data["kind"], KINDS.index(config.source), config.holdout)
    return data, test_idx


def score_all(translate: Callable[[Tensor, str], Tensor], data: dict[str, Tensor], test_idx: Tensor,
              targets: tuple[str, ...]) -> tuple[dict, dict[str, Tensor]]:
    """Per-target scores and their mean over targets; and the outputs per target (``data``: ``scoring_data``)."""
    x, colour, view = data["images"][test_idx], data["colour"][test_idx], data["view"][test_idx]
    per, outs = {}, {}
    for name in targets:
        outs[name] = translate(x, name)
        per[name] = translation_scores(outs[name], x, colour, view, KINDS.index(name), data)
    mean = {k: round(sum(p[k] for p in per.values()) / len(per), 4) for k in next(iter(per.values()))}
    return mean | {"per_target": {t: {k: round(v, 4) for k, v in p.items()} for t, p in per.items()}}, outs


STEPS, LR = 20_000, 3e-3  # the full suite's schedule (constant AdamW learning rate)


def run(quick: bool, log: Callable[[str], None], cache: Path | None = None) -> dict:
    from diffrep.methods.translator import load_translator, translate_images
    from diffrep.priors import load
    from diffrep.training.translator import train

    prior = load("toyworld")
    base = TranslatorTrainConfig(out=Path("."), steps=40 if quick else STEPS, lr=LR, batch=8 if quick else 16,
                                 channels=8 if quick else 16, levels=2 if quick else 3, checkpoint_every=500, device="cpu")
    data, test_idx = scoring_data(base, prior.image_shape[-1])
    if quick:
        test_idx = test_idx[:16]
    targets = base.targets
    rows = {}
    shown = {"input": data["images"][test_idx[:ROWS]]}
    identity, _ = score_all(lambda x, name: x, data, test_idx, targets)
    rows["input (identity)"] = identity | {"train_s": 0.0}
    log(f"input (identity): {identity['kind']} kind, {identity['colour']} colour, {identity['view']} view")
    with tempfile.TemporaryDirectory() as tmp:
        for loss in LOSSES:
            config = TranslatorTrainConfig(**{**asdict(base), "out": Path(cache or tmp) / loss, "loss": loss})
            train(config, prior=prior, resume=True)
            # training time over every resume (None: a checkpoint written before the loop counted it)
            seconds = json.loads((config.out / "checkpoint.json").read_text()).get("seconds")
            model = load_translator(config.out, prior="toyworld")
            scores, outs = score_all(lambda x, name, m=model: translate_images(m, x, name), data, test_idx, targets)
            rows[loss] = scores | {"train_s": None if seconds is None else round(seconds, 1)}
            shown[loss] = {t: outs[t][:ROWS] for t in targets}
            log(f"{loss}: {scores['kind']} kind, {scores['colour']} colour, {scores['view']} view, "
                f"{scores['all']} all ({rows[loss]['train_s']} s)")
    # Grid: one row per held-out mug; columns: the input, then per loss its targets.
    n = min(ROWS, len(test_idx))
    grid = torch.cat([torch.stack([shown["input"][i], *(shown[loss][t][i] for loss in LOSSES for t in targets)])
                      for i in range(n)])
    config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(base).items() if k not in ("out", "loss")}
    return {"prior": "toyworld", "source": base.source, "targets": list(targets), "held_out_sources": len(test_idx),
            "config": config, "rows": rows,
            "image_columns": ["input"] + [f"{loss}: {t}" for loss in LOSSES for t in targets],
            "_images": {"grid": (grid, 1 + len(LOSSES) * len(targets))},
            "metric": "labels of the nearest data image (RMS) of each translated held-out mug: kind = target, "
                      "colour and view = the input's; means over the four targets"}
