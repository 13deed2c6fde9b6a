"""Quality of the learned tiny prior (issue 4): DDIM samples for training captions, held-out
paraphrase templates and held-out (kind, colour) combinations at a few guidance scales, labelled
by their nearest image in a labelled toy-world set; a copy check against the training set; and
prior evaluations per second against the empirical prior.

Colour labels: in pixel space the nearest image of a thin object (a chair, a table) is often the
same shape in the neighbouring colour (red/orange, blue/purple), so the pixel nearest neighbour
names the right colour for only 92 % of fresh *data* images. Colour is therefore read from the
nearest data image in colour space (``chroma``: the image minus its grey level, 4×4 average
pooled), which is right for 100 % of 2,000 fresh images; the pixel-space figure is kept as
``colour_pixel_nn``.

View labels: kinds without a front (ball, donut, bottle, tree, table...) look the same from the
front, side and back, so a nearest-neighbour label can only tell "overhead" from the rest there.
``view`` is scored exactly on the kinds with a front and as overhead / not overhead on the
others; ``view_strict`` scores the exact label everywhere. The labeller's own accuracy on fresh
real images (``labeller``) is the ceiling of every figure.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn import functional as F

from diffrep.bench.prior_speed import evals_per_second
from diffrep.metrics import nearest_data
from diffrep.priors.empirical import toyworld_data, toyworld_prior
from diffrep.samplers import sample_ddim
from diffrep.schedule import timesteps
from diffrep.toyworld import COLOURS, FRONTED, KINDS, VIEWS, caption

DEFAULT_PRIOR = "tiny"
OVERHEAD = VIEWS.index("overhead")
TARGETS = {"held_out_paraphrases": {"kind": 0.85, "colour": 0.90, "view": 0.75},
           "held_out_combos": {"kind_and_colour": 0.70}}


def labelled_set(n: int, res: int, seed: int) -> tuple[Tensor, dict[str, Tensor]]:
    """Toy-world images in [-1, 1] and their labels (cached like the empirical prior's data)."""
    d = toyworld_data(n, res, seed)
    return d["images"].float() / 127.5 - 1, {k: d[k].long() for k in ("kind", "colour", "view")}


def prompt_sets(n: int, seed: int) -> dict[str, tuple[list[str], Tensor]]:
    """Captions and the labels they ask for ``[n, 3]`` (kind, colour, view) for the three sets."""
    from diffrep.priors.tiny.captions import HELD_OUT_COMBOS, random_caption

    rng = random.Random(seed)
    seen = [(k, c) for k in range(len(KINDS)) for c in range(len(COLOURS)) if (k, c) not in HELD_OUT_COMBOS]
    held = sorted(HELD_OUT_COMBOS)
    sets = {}
    for name, combos, held_out_template in (("training_captions", seen, False), ("held_out_paraphrases", seen, True),
                                            ("held_out_combos", held, False)):
        labels, texts = [], []
        for i in range(n):
            k, c = combos[i % len(combos)] if name == "held_out_combos" else rng.choice(combos)
            v = rng.randrange(len(VIEWS))
            labels.append((k, c, v))
            texts.append(random_caption(k, c, v, rng, held_out=True) if held_out_template else caption(k, c, v))
        sets[name] = (texts, torch.tensor(labels))
    return sets


def chroma(x: Tensor) -> Tensor:
    """Colour-only image: each pixel minus its grey level, 4×4 average pooled (shape and shading fade out)."""
    return F.avg_pool2d(x - x.mean(1, keepdim=True), 4)


def score(asked: Tensor, got: dict[str, Tensor]) -> dict[str, float]:
    """Fractions of samples whose nearest labelled image has the labels asked for."""
    kind, colour, view = asked.unbind(1)
    fronted = torch.tensor([KINDS[k] in FRONTED for k in kind.tolist()])
    kind_ok, colour_ok = got["kind"] == kind, got["colour"] == colour
    view_exact = got["view"] == view
    view_overhead = (got["view"] == OVERHEAD) == (view == OVERHEAD)
    view_ok = torch.where(fronted, view_exact, view_overhead)
    return {name: round(v.float().mean().item(), 3) for name, v in (
        ("kind", kind_ok), ("colour", colour_ok), ("view", view_ok), ("view_strict", view_exact),
        ("kind_and_colour", kind_ok & colour_ok), ("all", kind_ok & colour_ok & view_ok),
        *((("colour_pixel_nn", got["colour_pixel_nn"] == colour),) if "colour_pixel_nn" in got else ()))}


def nearest_labels(images: Tensor, data: Tensor, labels: dict[str, Tensor],
                   data_chroma: Tensor | None = None) -> tuple[dict[str, Tensor], Tensor]:
    """Kind and view of the nearest data image; colour of the nearest in ``chroma`` space (and in
    pixel space as ``colour_pixel_nn``); the pixel RMS distance."""
    idx, dist = nearest_data(images, data)
    got = {k: v[idx] for k, v in labels.items()}
    got["colour_pixel_nn"] = got["colour"]
    got["colour"] = labels["colour"][nearest_data(chroma(images), chroma(data) if data_chroma is None else data_chroma)[0]]
    return got, dist


def copy_check(samples: Tensor, fresh: Tensor, train: Tensor) -> dict[str, float]:
    """Nearest-training-image RMS of samples against that of fresh data images never trained on.

    A memorising model puts its samples much nearer the training set than new data lies."""
    _, d_sample = nearest_data(samples, train)
    _, d_fresh = nearest_data(fresh, train)
    q = torch.tensor([0.01, 0.05, 0.5])
    s, f = d_sample.quantile(q), d_fresh.quantile(q)
    return {"samples_nn_rms_p1_p5_median": [round(x, 4) for x in s.tolist()],
            "fresh_data_nn_rms_p1_p5_median": [round(x, 4) for x in f.tolist()],
            "median_ratio_samples_over_fresh": round((s[2] / f[2]).item(), 3),
            "fraction_of_samples_nearer_than_fresh_p1": round((d_sample < f[0]).float().mean().item(), 3)}


def conditioning_gaps(prior, n: int = 96, ts: tuple[int, ...] = (200, 400, 600)) -> list[dict]:
    """How much the prior uses each label: the rise of the ε-loss ``|ε̂(x_t, c) - ε|²`` on ``n`` fresh
    images of kinds with a front when the canonical caption names the wrong view (front <-> back,
    side <-> overhead) or the wrong colour instead of the right one, and when it is dropped. A
    label the model ignores has a gap of 0."""
    d = toyworld_data(2000, prior.image_shape[-1], 1)
    idx = torch.tensor([KINDS[k] in FRONTED for k in d["kind"].tolist()]).nonzero()[:n, 0]
    x0 = d["images"][idx].float() / 127.5 - 1
    k, c, v = (d[name][idx].tolist() for name in ("kind", "colour", "view"))
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    captions = {"right": [caption(*z) for z in zip(k, c, v)],
                "wrong_view": [caption(ki, ci, (vi + 2) % len(VIEWS)) for ki, ci, vi in zip(k, c, v)],
                "wrong_colour": [caption(ki, (ci + 3) % len(COLOURS), vi) for ki, ci, vi in zip(k, c, v)],
                "none": [None] * len(k)}
    conds = {name: [prior.encode_prompt(t) for t in texts] for name, texts in captions.items()}
    rows = []
    for t in ts:
        a = prior.alphas_cumprod[t].sqrt()
        x_t, tt = a * x0 + (1 - a**2).sqrt() * eps, torch.full((len(x0),), t)
        loss = {name: (prior.eps(x_t, tt, cond) - eps).pow(2).mean().item() for name, cond in conds.items()}
        rows.append({"t": t, "loss": round(loss["right"], 6),
                     **{f"gap_{name}": round(loss[name] - loss["right"], 6) for name in ("wrong_view", "wrong_colour", "none")}})
    return rows


def text_feature_separation(prior) -> dict[str, float] | None:
    """For a tiny prior: mean distance of its text features (``text_mlp`` output) between canonical
    captions that differ in the view (front/back, front/overhead) or in the colour, over the kinds
    with a front; and between a caption and a held-out-template paraphrase of it."""
    mlp = getattr(getattr(prior, "model", None), "text_mlp", None)
    if mlp is None:
        return None
    from diffrep.priors.tiny.captions import fill

    f = lambda text: mlp(prior.encode_prompt(text))  # noqa: E731
    pairs: dict[str, list[float]] = {"front_back": [], "front_overhead": [], "colour": [], "paraphrase": [], "norm": []}
    with torch.no_grad():
        for kind in (KINDS.index(name) for name in FRONTED):
            front, back = f(caption(kind, 0, 0)), f(caption(kind, 0, 2))
            pairs["front_back"].append((front - back).norm().item())
            pairs["front_overhead"].append((front - f(caption(kind, 0, 3))).norm().item())
            pairs["colour"].append((front - f(caption(kind, 2, 0))).norm().item())
            para = f(fill("a picture of a {c} {k} from the {v}", kind, 0, 2, random.Random(0)))
            pairs["paraphrase"].append((back - para).norm().item())
            pairs["norm"].append(front.norm().item())
    return {name: round(sum(v) / len(v), 3) for name, v in pairs.items()}


def run(quick: bool, log: Callable[[str], None], prior=None, prior_name: str = "tiny") -> dict:
    from diffrep.priors.tiny import load_tiny
    from diffrep.priors.tiny.captions import HELD_OUT_COMBOS

    prior = prior if prior is not None else load_tiny()
    res = prior.image_shape[-1]
    n, scales, steps = (16, (3.0,), 20) if quick else (96, (1.0, 3.0, 7.5), 50)
    reference, ref_labels = labelled_set(20_000, res, 0)  # the training draw, held-out combos included
    keep = ~torch.isin(ref_labels["kind"] * 1000 + ref_labels["colour"],
                       torch.tensor([k * 1000 + c for k, c in HELD_OUT_COMBOS]))
    fresh, fresh_labels = labelled_set(500 if quick else 2000, res, 1)
    ref_chroma = chroma(reference)
    got, _ = nearest_labels(fresh, reference, ref_labels, ref_chroma)
    labeller = score(torch.stack([fresh_labels[k] for k in ("kind", "colour", "view")], 1), got)
    log(f"labeller on fresh data: {labeller}")
    ts = timesteps(len(prior.alphas_cumprod), steps)
    rows, shown = [], {}
    sets = prompt_sets(n, seed=0)
    for name, (texts, asked) in sets.items():
        conds = [prior.encode_prompt(t) for t in texts]
        for w in scales:
            g = torch.Generator().manual_seed(int(10 * w))
            x = sample_ddim(prior, torch.randn(n, *prior.image_shape, generator=g), ts, conds, guidance_scale=w,
                            generator=g).clamp(-1, 1)
            got, dist = nearest_labels(x, reference, ref_labels, ref_chroma)
            row = {"set": name, "guidance_scale": w, "samples": n, **score(asked, got),
                   "nearest_rms": round(dist.mean().item(), 4)}
            log(str(row))
            rows.append(row)
            if w == 3.0:
                shown[name] = x
    copies = copy_check(shown["training_captions"], fresh, reference[keep])
    log(f"copy check: {copies}")
    gaps = conditioning_gaps(prior, 16 if quick else 96)
    log(f"conditioning gaps: {gaps}")
    features = text_feature_separation(prior)
    log(f"text feature separation: {features}")
    throughput = {"tiny": round(evals_per_second(prior, 16, 5 if quick else 20), 1),
                  "toyworld_empirical_n10000": round(evals_per_second(toyworld_prior(), 16, 5 if quick else 20), 1)}
    log(f"evaluations per second (batch 16): {throughput}")
    views = view_grid(prior, ts, seeds=4 if quick else 8)
    cols = 16
    grid = torch.cat([x[:cols] for x in shown.values()])
    return {"prior": prior_name, "samples_per_set": n, "steps": steps, "guidance_scales": list(scales),
            "prompts": {name: texts[:8] for name, (texts, _) in sets.items()},
            "labeller_on_fresh_data": labeller, "rows": rows, "copy_check": copies,
            "conditioning_gaps": gaps, "text_feature_separation": features,
            "evals_per_s_batch16": throughput, "targets": TARGETS,
            "_images": {"samples": (grid, cols), "views": views}, "image_rows": list(shown),
            "view_rows": [VIEW_PROMPT.format(k=k, v=v) for k in VIEW_KINDS for v in VIEWS]}


VIEW_PROMPT, VIEW_KINDS = "a red {k}, {v} view", ("car", "mug")


def view_grid(prior, ts: Tensor, seeds: int) -> tuple[Tensor, int]:
    """Same-seed samples (guidance 3) of "a red car / mug, {front, side, back, overhead} view": a row
    per prompt, a column per seed; a prior that ignores the view repeats each column."""
    x = torch.randn(seeds, *prior.image_shape, generator=torch.Generator().manual_seed(0))
    prompts = [VIEW_PROMPT.format(k=k, v=v) for k in VIEW_KINDS for v in VIEWS]
    conds = [prior.encode_prompt(p) for p in prompts for _ in range(seeds)]
    out = sample_ddim(prior, x.repeat(len(prompts), 1, 1, 1), ts, conds, guidance_scale=3.0,
                      generator=torch.Generator().manual_seed(1))
    return out.clamp(-1, 1), seeds
