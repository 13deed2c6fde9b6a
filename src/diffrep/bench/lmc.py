"""LMC-SDS and the distillation baselines (issue 15) on the pixels rep at the prior's 32², for the toy-world
and the tiny prior: synthesis per guidance scale ω (nearest-data distance, HSV saturation against the data's
range, radially averaged power spectrum against the data's, kind and colour labels of the nearest data image),
the diversity of fixed-ε LMC-SDS, and editing (target-colour accuracy with kind and view kept, against the
distance to the source image) per method and anchor.

Labels: kind and view of the nearest data image in pixel space, colour of the nearest in colour space
(``prior_quality.nearest_labels``: 100 % right on fresh data images). The data: the toy-world prior's own
10,000 images; for the tiny prior its 20,000-image training draw (``--quick``: its first 10,000)."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import Tensor

from diffrep.bench.prior_quality import chroma, labelled_set, nearest_labels
from diffrep.metrics import mean_pairwise_rms, nearest_data
from diffrep.methods import METHODS, OptimConfig, Sampling
from diffrep.priors import load
from diffrep.reps import make_rep
from diffrep.toyworld import COLOURS, KINDS, VIEWS

# name -> (method, its options): "L_cond only" is LMC-SDS's g_cond alone (--lmc-sds.projection none).
SYNTHESIS_METHODS: dict[str, tuple[str, dict]] = {
    "sds": ("sds", {}), "l_cond_only": ("lmc-sds", {"projection": "none"}), "nfsd": ("nfsd", {}),
    "ms-sds": ("ms-sds", {"k": 2}), "lmc-sds": ("lmc-sds", {})}
PROMPTS: tuple[tuple[str, str, str], ...] = (("a red mug", "mug", "red"), ("a blue duck", "duck", "blue"))
"""The synthesis prompts, each with the kind and colour it asks for."""
EDIT_METHODS: tuple[str, ...] = ("lmc-sds", "sds", "dds", "nfsd")
# (source prompt, its kind and colour, target prompt, target colour)
EDITS: tuple[tuple[str, str, str, str, str], ...] = (("a red mug", "mug", "red", "a blue mug", "blue"),
                                                     ("a blue duck", "duck", "blue", "a yellow duck", "yellow"))
PAPER_DIVERSITY_LPIPS = (0.041, 0.158)  # standard -> fixed ε, the paper's mean pairwise LPIPS


def saturation(x: Tensor) -> Tensor:
    """Per-image mean HSV saturation ``(max - min) / max`` of ``[N, 3, H, W]`` images in [-1, 1] (0 where max = 0)."""
    rgb = ((x.clamp(-1, 1) + 1) / 2).float()
    hi, lo = rgb.max(1).values, rgb.min(1).values
    return torch.where(hi > 0, (hi - lo) / hi.clamp_min(1e-12), torch.zeros_like(hi)).flatten(1).mean(1)


def radial_spectrum(x: Tensor) -> Tensor:
    """Radially averaged power spectrum of the grey level of ``[N, C, H, W]`` images: ``[N, H//2]``, bin ``r`` the
    mean of ``|FFT|²`` over frequencies with ``round(|k|) = r + 1`` (the DC term left out), normalised by ``H·W``."""
    grey = x.clamp(-1, 1).float().mean(1)
    h, w = grey.shape[-2:]
    power = torch.fft.fft2(grey).abs().pow(2) / (h * w)
    ky, kx = torch.fft.fftfreq(h) * h, torch.fft.fftfreq(w) * w
    r = (ky[:, None] ** 2 + kx[None, :] ** 2).sqrt().round().long()
    bins = min(h, w) // 2
    out = torch.zeros(x.shape[0], bins)
    for b in range(bins):
        mask = r == b + 1
        out[:, b] = power[:, mask].mean(1)
    return out


def spectrum_distance(spectra: Tensor, reference: Tensor) -> float:
    """RMS over radial bins of ``log10`` of the mean spectrum of ``spectra`` against ``reference`` (each ``[N, bins]``)."""
    return (spectra.mean(0).log10() - reference.mean(0).log10()).pow(2).mean().sqrt().item()


class Data:
    """A prior's data: images, labels, their colour-space copy, saturation range and mean spectrum."""

    def __init__(self, images: Tensor, labels: dict[str, Tensor], stats_n: int = 2000):
        self.images, self.labels, self.chroma = images, labels, chroma(images)
        sat = saturation(images[:stats_n])
        lo, hi = sat.quantile(torch.tensor([0.05, 0.95])).tolist()
        self.saturation = {"p5": round(lo, 4), "p95": round(hi, 4), "mean": round(sat.mean().item(), 4)}
        self.spectrum = radial_spectrum(images[:stats_n])

    def labels_of(self, x: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        return nearest_labels(x.clamp(-1, 1), self.images, self.labels, self.chroma)


def prior_data(name: str, prior, quick: bool = False) -> Data:
    """The toy-world prior's own images; the tiny prior's 20,000-image training draw, whose first 10,000 are the
    toy-world prior's (``--quick`` takes those, so that a fresh cache does not draw 20,000 images)."""
    if name == "toyworld":
        return Data(prior.data, {k: prior.labels[k].long() for k in ("kind", "colour", "view")})
    images, labels = labelled_set(10_000 if quick else 20_000, prior.image_shape[-1], 0)
    return Data(images, labels)


def distill_pixels(prior, method: str, options: dict, conds: list, w: float, iters: int, lr: float,
                   seed: int) -> Tensor:
    """``len(conds)`` pixel grids from mid-grey optimised by ``method`` at guidance ``w``; ``[n, C, H, W]``."""
    g = torch.Generator().manual_seed(seed)
    rep = make_rep("pixels", prior.image_shape, len(conds), generator=g)
    entry = METHODS[method]
    config = entry.config(optim=OptimConfig(iters=iters, lr=lr, lr_schedule="cosine"), **options)
    entry.run(prior, rep, conds, config, sampling=Sampling(guidance_scale=w), generator=g)
    with torch.no_grad():
        return rep(None)[:, 0].detach()


def synthesis_row(x: Tensor, data: Data, asked: dict[str, Tensor]) -> dict:
    got, dist = data.labels_of(x)
    sat = saturation(x)
    lo, hi = data.saturation["p5"], data.saturation["p95"]
    return {"nearest_rms": round(dist.mean().item(), 4), "saturation": round(sat.mean().item(), 4),
            "saturation_in_data_range": lo <= sat.mean().item() <= hi,
            "fraction_saturation_in_range": round(((sat >= lo) & (sat <= hi)).float().mean().item(), 3),
            "fraction_pixels_outside_unit_range": round((x.abs() > 1).float().mean().item(), 4),
            "spectrum_log10_rms": round(spectrum_distance(radial_spectrum(x), data.spectrum), 4),
            "kind_accuracy": round((got["kind"] == asked["kind"]).float().mean().item(), 3),
            "colour_accuracy": round((got["colour"] == asked["colour"]).float().mean().item(), 3)}


def source_image(data: Data, kind: str, colour: str, res: int) -> tuple[Tensor, int]:
    """A fresh toy-world image (not in either prior's data) of ``colour kind`` seen from the front, and its view.
    (2,000 images: 500 held no blue duck seen from the front, and the duck of the first editing run was a back view.)"""
    images, labels = labelled_set(2000, res, 1)
    hit = ((labels["kind"] == KINDS.index(kind)) & (labels["colour"] == COLOURS.index(colour))
           & (labels["view"] == VIEWS.index("front"))).nonzero()
    if len(hit) == 0:
        hit = ((labels["kind"] == KINDS.index(kind)) & (labels["colour"] == COLOURS.index(colour))).nonzero()
    i = hit[0, 0].item()
    return images[i], labels["view"][i].item()


SECTIONS: tuple[str, ...] = ("synthesis", "diversity", "editing")
"""Parts of the suite that ``diffrep bench lmc --section NAME`` runs alone (updating bench/results/lmc.json)."""


def run(quick: bool, log: Callable[[str], None], section: str | None = None) -> dict:
    out: dict = {}
    if section in (None, "synthesis", "diversity"):
        out = synthesis_and_diversity(quick, log, section)
    if section in (None, "editing"):
        from diffrep.bench import merge

        merge(out, editing_figures(quick, log))  # timings_s and _images joined key by key
    if section is None:
        out["paper"] = {"diversity_lpips_standard_fixed": PAPER_DIVERSITY_LPIPS,
                        "claims": "LMC-SDS nearer the data than SDS at ω ≤ 10; within the data's saturation range at "
                                  "ω = 100 where SDS is not; fixed ε raises diversity ≥ 3×"}
    if section in (None, "synthesis", "diversity"):
        from diffrep.bench import tiny_weights_record

        out["tiny_prior_weights"] = tiny_weights_record(None)
    return out


def synthesis_and_diversity(quick: bool, log: Callable[[str], None], section: str | None) -> dict:
    """Synthesis per method and ω, and fixed-ε diversity, on both priors (``section``: one of the two, or both)."""
    scales = (8.0, 100.0) if quick else (3.0, 5.0, 8.0, 15.0, 30.0, 100.0)
    prompt_set = PROMPTS[:1 if quick else 2]
    per_prompt = 2
    iters, lr = (15, 3e-2) if quick else (80, 3e-2)
    div_runs, div_iters = (3, 15) if quick else (10, 80)
    shown_scales = scales if quick else (3.0, 8.0, 30.0, 100.0)
    out: dict = {"data": {}, "claims": {}, "timings_s": {}}
    if section != "diversity":
        out |= {"rep": "pixels", "prompts": [p for p, _, _ in prompt_set], "instances_per_prompt": per_prompt,
                "guidance_scales": list(scales), "iters": iters, "lr": lr, "lr_schedule": "cosine",
                "methods": {k: {"method": m, "options": o} for k, (m, o) in SYNTHESIS_METHODS.items()}, "synthesis": {},
                "grids": {"synthesis-PRIOR": f"rows: {', '.join(SYNTHESIS_METHODS)}; columns: ω in {list(shown_scales)}, "
                                             f"one sample per prompt"}}
    if section != "synthesis":
        out |= {"diversity": {}}
        out.setdefault("grids", {})["diversity-PRIOR-VARIANT"] = "the runs of one prompt"
    images: dict = {}
    for prior_name in ("toyworld", "tiny"):
        prior = load(prior_name)
        data = prior_data(prior_name, prior, quick)
        out["data"][prior_name] = {"images": len(data.images), "saturation_p5_p95_mean": data.saturation}
        out["claims"][prior_name] = {}
        if section != "diversity":
            synthesis(prior_name, prior, data, out, images, log, prompt_set, per_prompt, scales, shown_scales, iters, lr)
        if section != "synthesis":
            diversity(prior_name, prior, data, out, images, log, prompt_set[0], div_runs, div_iters, lr)
    out["_images"] = images
    return out


def prompt_batch(prior, prompt_set=PROMPTS, per_prompt: int = 2) -> tuple[list, dict[str, Tensor]]:
    """``per_prompt`` instances of each prompt: the prior's conditions, and the kind and colour each asks for."""
    conds = [prior.encode_prompt(p) for p, _, _ in prompt_set for _ in range(per_prompt)]
    asked = {"kind": torch.tensor([KINDS.index(k) for _, k, _ in prompt_set for _ in range(per_prompt)]),
             "colour": torch.tensor([COLOURS.index(c) for _, _, c in prompt_set for _ in range(per_prompt)])}
    return conds, asked


def synthesis(prior_name: str, prior, data: Data, out: dict, images: dict, log, prompt_set, per_prompt: int,
              scales, shown_scales, iters: int, lr: float) -> None:
    """One prior's synthesis rows, claims and grid, into ``out`` and ``images``."""
    start = time.perf_counter()
    conds, asked = prompt_batch(prior, prompt_set, per_prompt)
    rows, grid = {}, []
    for name, (method, options) in SYNTHESIS_METHODS.items():
        rows[name], shown = {}, []
        for w in scales:
            t0 = time.perf_counter()
            x = distill_pixels(prior, method, options, conds, w, iters, lr, seed=int(w))
            row = synthesis_row(x, data, asked) | {"seconds": round(time.perf_counter() - t0, 1)}
            rows[name][str(w)] = row
            log(f"{prior_name} {name} ω={w}: {row}")
            if w in shown_scales:  # one sample per prompt
                shown += [x[j * per_prompt] for j in range(len(prompt_set))]
        grid.append(torch.stack(shown))
    out["synthesis"][prior_name] = rows
    images[f"synthesis-{prior_name}"] = (torch.cat(grid).clamp(-1, 1), len(shown_scales) * len(prompt_set))
    lmc, sds = rows["lmc-sds"], rows["sds"]
    out["claims"][prior_name] |= {
        "lmc_nearer_data_than_sds_at_each_omega_le_10": {str(w): lmc[str(w)]["nearest_rms"] < sds[str(w)]["nearest_rms"]
                                                         for w in scales if w <= 10},
        "lmc_saturation_in_data_range_at_100": lmc["100.0"]["saturation_in_data_range"],
        "sds_saturation_in_data_range_at_100": sds["100.0"]["saturation_in_data_range"],
        "lmc_in_range_where_sds_not_at_100": lmc["100.0"]["saturation_in_data_range"]
        and not sds["100.0"]["saturation_in_data_range"]}
    out["claims"][prior_name]["lmc_nearer_data_than_sds_at_all_omega_le_10"] = all(
        out["claims"][prior_name]["lmc_nearer_data_than_sds_at_each_omega_le_10"].values())
    out["timings_s"][f"synthesis_{prior_name}"] = round(time.perf_counter() - start, 1)


def diversity(prior_name: str, prior, data: Data, out: dict, images: dict, log, prompt: tuple[str, str, str | None],
              div_runs: int, div_iters: int, lr: float, guidance_scale: float = 8.0, options: dict | None = None,
              seed: int = 7) -> None:
    """One prior's fixed-ε diversity figures and claim, into ``out`` and ``images``; ``options``: LMC-SDS's own
    (e.g. ``{"corrective": "perturbed"}``) under both rows (the suite: none, ω = 8). ``prompt``: (text, kind, colour);
    colour None for a prompt that leaves it free (the data's spread is then that of the kind's images)."""
    # Diversity: `div_runs` LMC-SDS runs of one prompt, standard vs fixed ε. They run as one batch: each
    # instance draws its own t and ε (and its own fixed ε) and Adam is elementwise, so they are independent runs.
    start = time.perf_counter()
    prompt, kind, colour = prompt
    div = {}
    for label, fixed in (("standard", {}), ("fixed_eps", {"fixed_eps": True})):
        x = distill_pixels(prior, "lmc-sds", {**(options or {}), **fixed}, [prior.encode_prompt(prompt)] * div_runs,
                           guidance_scale, div_iters, lr, seed=seed)
        div[label] = {"mean_pairwise_rms": round(mean_pairwise_rms(x.clamp(-1, 1)), 4),
                      "nearest_rms": round(nearest_data(x.clamp(-1, 1), data.images)[1].mean().item(), 4)}
        images[f"diversity-{prior_name}-{label}"] = (x.clamp(-1, 1), div_runs)
    same = data.labels["kind"] == KINDS.index(kind)
    if colour is not None:
        same &= data.labels["colour"] == COLOURS.index(colour)
    div["data_same_prompt_mean_pairwise_rms"] = round(mean_pairwise_rms(data.images[same.nonzero()[:50, 0]]), 4)
    div["ratio_fixed_over_standard"] = round(div["fixed_eps"]["mean_pairwise_rms"] / div["standard"]["mean_pairwise_rms"], 3)
    div.update(prompt=prompt, runs=div_runs, iters=div_iters, guidance_scale=guidance_scale, seed=seed, **(options or {}))
    out["diversity"][prior_name] = div
    out["claims"][prior_name]["fixed_eps_diversity_rise_ge_3x"] = div["ratio_fixed_over_standard"] >= 3
    log(f"{prior_name} diversity: {div}")
    out["timings_s"][f"diversity_{prior_name}"] = round(time.perf_counter() - start, 1)


def editing_figures(quick: bool, log: Callable[[str], None], methods: tuple[str, ...] = EDIT_METHODS,
                    options: dict[str, dict] | None = None) -> dict:
    """Editing on the toy-world prior: fresh source images, each of ``methods`` (with its ``options``, e.g. another
    corrective for lmc-sds) at each anchor λ (weaker anchor: stronger edit), at the edit defaults
    (``spec.edit_options``: iterations, rate, t range); ``--quick``: 15 iterations."""
    import inspect

    from diffrep.api import edit
    from diffrep.spec import edit_options

    defaults = {k: p.default for k, p in inspect.signature(edit_options).parameters.items() if k in ("iters", "lr", "t_range")}
    edits, anchors, edit_n = (EDITS[:1], (0.3, 0.03), 2) if quick else (EDITS, (0.3, 0.1, 0.03, 0.01), 2)
    edit_iters = 15 if quick else defaults["iters"]
    start = time.perf_counter()
    prior = load("toyworld")
    data = prior_data("toyworld", prior)
    edit_rows, edit_grid = [], []
    for src_prompt, kind, colour, tgt_prompt, tgt_colour in edits:
        x_src, _ = source_image(data, kind, colour, prior.image_shape[-1])
        # kept = the labeller gives the edit the source's own kind and view (the toy world's front view of a duck
        # is a three-quarter view that the nearest-data labeller calls "side"; its true label would never match)
        src_labels, _ = data.labels_of(x_src[None])
        for method in methods:
            shown = [x_src]
            for anchor in anchors:
                extra = ({"source_prompt": src_prompt} if method == "dds" else {}) | (options or {}).get(method, {})
                r = edit(prior, x_src, prompt=tgt_prompt, method=method, anchor=anchor, n=edit_n, seed=1,
                         iters=edit_iters, **extra)
                x = r.images
                got, _ = data.labels_of(x)
                colour_ok = got["colour"] == COLOURS.index(tgt_colour)
                kept = (got["kind"] == src_labels["kind"]) & (got["view"] == src_labels["view"])
                row = {"edit": f"{src_prompt} -> {tgt_prompt}", "method": method, "anchor": anchor,
                       "source_labelled_view": VIEWS[src_labels["view"][0].item()],
                       "target_colour_accuracy": round(colour_ok.float().mean().item(), 3),
                       "kind_and_view_kept": round(kept.float().mean().item(), 3),
                       "success": round((colour_ok & kept).float().mean().item(), 3),
                       "rms_to_source": round((x - x_src).pow(2).flatten(1).mean(1).sqrt().mean().item(), 4)}
                log(str(row))
                edit_rows.append(row)
                shown.append(x[0])
            edit_grid.append(torch.stack(shown))
    return {"timings_s": {"edit": round(time.perf_counter() - start, 1)},
            "editing": {"prior": "toyworld", "anchors": list(anchors), "iters": edit_iters, "lr": defaults["lr"],
                        "lr_schedule": "cosine", "t_range": list(defaults["t_range"]), "instances": edit_n,
                        "guidance_scale": 7.5, "rows": edit_rows,
                        "grid": f"rows: each edit x method ({', '.join(methods)}); columns: source, then anchors"},
            "_images": {"edit": (torch.cat(edit_grid), 1 + len(anchors))}}
