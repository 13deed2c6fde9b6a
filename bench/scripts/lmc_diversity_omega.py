"""Does fixed ε's diversity rise depend on the guidance scale? (issue 15; docs/benchmarks.md, LMC-SDS diversity.)

The suite measures the rise at ω = 8 only (1.43x against the paper's 3.9x). With the 1/ω scaling LMC-SDS's gradient is
``(ε̂(x_t', c) − ε̂(x_t', ∅)) + g_lmc / ω``: as ω grows the corrective's share shrinks and the conditional difference,
evaluated at a fresh ε each step (standard) or at the run's own ε (fixed), is all that is left — the regime where a
mode-seeking run should collapse most and a fixed ε should matter most. The suite's own figure
(`bench.lmc.diversity`: "a red mug", 10 runs as one batch, lr 3e-2 with cosine decay, seed 7) at each ω, on PRIOR
(toyworld or tiny), with CORRECTIVE "clean" (the shipped default) or "perturbed" (`--lmc-sds.corrective perturbed`).
``prompt=KIND`` runs "a KIND" in place of "a red mug" (the colour left free; the data's spread is then the kind's),
``prompt=COLOUR-KIND`` "a COLOUR KIND".

    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/lmc_diversity_omega.py run PRIOR ITERS CORRECTIVE OMEGA... [seed=S] [prompt=P]
    .venv/bin/python bench/scripts/lmc_diversity_omega.py rescore  # the measures again, from the saved images
    .venv/bin/python bench/scripts/lmc_diversity_omega.py write    # -> bench/results/lmc-diversity-omega.json
    .venv/bin/python bench/scripts/lmc_diversity_omega.py picture PRIOR ITERS CORRECTIVE OMEGA [seed=S] [prompt=P]  # -> docs/images/

Rows append to bench/results/.lmc-diversity-omega.jsonl (ignored); each run's images to
bench/results/.lmc-diversity-omega.cache/ (ignored) for `picture`."""

import json
import sys
import time
from pathlib import Path

root = Path(__file__).resolve().parents[2]
ROWS = root / "bench" / "results" / ".lmc-diversity-omega.jsonl"
IMAGES = root / "bench" / "results" / ".lmc-diversity-omega.cache"


def key(prior_name: str, iters: int, corrective: str, omega: float, seed: int = 7, prompt: str = "red-mug") -> str:
    return (f"{prior_name}-{iters}-{corrective}-w{omega:g}" + ("" if seed == 7 else f"-seed{seed}")
            + ("" if prompt == "red-mug" else f"-{prompt}"))


def parse_prompt(prompt: str) -> tuple[str, str, str | None]:
    """``KIND`` or ``COLOUR-KIND`` -> (text, kind, colour or None); one line and exit 2 for a word the toy world lacks."""
    from diffrep.toyworld.vocabulary import COLOURS, KINDS

    *colour, kind = prompt.split("-")
    if kind not in KINDS or len(colour) > 1 or (colour and colour[0] not in COLOURS):
        sys.stderr.write(f"prompt={prompt!r}: KIND or COLOUR-KIND, KIND one of {', '.join(KINDS)}, COLOUR one of "
                         f"{', '.join(COLOURS)}\n")
        sys.exit(2)
    return (f"a {colour[0]} {kind}" if colour else f"a {kind}"), kind, (colour[0] if colour else None)


def spreads(x, data, kind: str = "mug", colour: str | None = "red") -> dict:
    """The runs' spread three ways, beside the suite's pixel RMS: at 8x8 (4x average pooling: the layout, not the
    pixel noise of the halos and borders), and of their nearest data images (what is left on the data's manifold),
    with how many distinct nearest images and view labels (front, side, back, overhead) the 10 runs reach."""
    import torch
    import torch.nn.functional as F

    from diffrep.metrics import mean_pairwise_rms, nearest_data
    from diffrep.toyworld.vocabulary import COLOURS, KINDS

    y = x.clamp(-1, 1)
    idx, _ = nearest_data(y, data.images)
    got, _ = data.labels_of(y)  # the suite's labels: kind by the nearest image, colour in colour space
    return {"pooled_rms": round(mean_pairwise_rms(F.avg_pool2d(y, 4)), 4),
            "nearest_image_spread": round(mean_pairwise_rms(data.images[idx]), 4),
            "distinct_nearest_images": len(set(idx.tolist())),
            "views": torch.bincount(data.labels["view"][idx], minlength=4).tolist(),
            "kind_accuracy": round((got["kind"] == KINDS.index(kind)).float().mean().item(), 3),
            "colour_accuracy": (round((got["colour"] == COLOURS.index(colour)).float().mean().item(), 3)
                                if colour else None),
            "colours": torch.bincount(got["colour"], minlength=len(COLOURS)).tolist()}


def data_spreads(data, kind: str = "mug", colour: str | None = "red") -> dict:
    """The data's own images of the prompt (the suite's 50: the first 50) on the same measures."""
    import torch
    import torch.nn.functional as F

    from diffrep.metrics import mean_pairwise_rms
    from diffrep.toyworld.vocabulary import COLOURS, KINDS

    same = data.labels["kind"] == KINDS.index(kind)
    if colour is not None:
        same &= data.labels["colour"] == COLOURS.index(colour)
    same = same.nonzero()[:50, 0]
    return {"mean_pairwise_rms": round(mean_pairwise_rms(data.images[same]), 4),
            "pooled_rms": round(mean_pairwise_rms(F.avg_pool2d(data.images[same], 4)), 4),
            "views": torch.bincount(data.labels["view"][same], minlength=4).tolist()}


def run(prior_name: str, iters: int, corrective: str, omegas: list[float], seed: int = 7, prompt: str = "red-mug") -> None:
    """The suite's diversity figure at each ω (both rows with ``corrective``; the suite's seed 7 and prompt unless
    ``seed``, ``prompt``)."""
    import torch
    from safetensors.torch import save_file

    from diffrep.bench.lmc import diversity, prior_data
    from diffrep.priors import load

    text, kind, colour = parse_prompt(prompt)
    torch.set_num_threads(1)
    prior = load(prior_name)
    data = prior_data(prior_name, prior)
    options = {} if corrective == "clean" else {"corrective": "perturbed"}
    IMAGES.mkdir(parents=True, exist_ok=True)
    for omega in omegas:
        out: dict = {"diversity": {}, "claims": {prior_name: {}}, "timings_s": {}}
        images: dict = {}
        diversity(prior_name, prior, data, out, images, lambda s: None, (text, kind, colour), 10, iters, 3e-2,
                  guidance_scale=omega, options=options, seed=seed)
        row = {"prior": prior_name, **out["diversity"][prior_name], "corrective": corrective,
               "seconds": out["timings_s"][f"diversity_{prior_name}"], "data_same_prompt": data_spreads(data, kind, colour),
               "prompt_key": prompt}
        for label in ("standard", "fixed_eps"):
            row[label].update(spreads(images[f"diversity-{prior_name}-{label}"][0], data, kind, colour))
        row["ratios"] = {m: round(row["fixed_eps"][m] / row["standard"][m], 3) if row["standard"][m] else None
                         for m in ("mean_pairwise_rms", "pooled_rms", "nearest_image_spread")}  # None: all one image
        save_file({label: images[f"diversity-{prior_name}-{label}"][0].contiguous() for label in ("standard", "fixed_eps")},
                  str(IMAGES / f"{key(prior_name, iters, corrective, omega, seed, prompt)}.safetensors"))
        print(json.dumps(row), flush=True)
        with open(ROWS, "a") as f:
            f.write(json.dumps(row) + "\n")


def rescore() -> None:
    """Recompute every row's ``spreads`` from its saved images (rows written before a measure was added)."""
    from safetensors.torch import load_file

    from diffrep.bench.lmc import prior_data
    from diffrep.priors import load

    rows = [{"seed": 7, **json.loads(line)} for line in ROWS.read_text().splitlines() if line.strip()]
    data = {name: prior_data(name, load(name)) for name in sorted({r["prior"] for r in rows})}
    for row in rows:
        prompt = row.get("prompt_key", "red-mug")
        _, kind, colour = parse_prompt(prompt)
        x = load_file(str(IMAGES / f"{key(row['prior'], row['iters'], row['corrective'], row['guidance_scale'], row['seed'], prompt)}.safetensors"))
        for label in ("standard", "fixed_eps"):
            row[label].update(spreads(x[label], data[row["prior"]], kind, colour))
    ROWS.write_text("".join(json.dumps(row) + "\n" for row in rows))


def write() -> None:
    from diffrep.bench import machine_info
    from diffrep.export import atomic_write_text
    from script_cli import merged

    path = root / "bench" / "results" / "lmc-diversity-omega.json"
    rows = merged(path, lambda record: record["rows"],
                  [{"seed": 7, **json.loads(line)} for line in ROWS.read_text().splitlines() if line.strip()],
                  lambda r: key(r["prior"], r["iters"], r["corrective"], r["guidance_scale"], r["seed"],
                                r.get("prompt_key", "red-mug")))
    record = {"command": "OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/lmc_diversity_omega.py run PRIOR ITERS "
                         "CORRECTIVE OMEGA... [seed=S]",
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine_info(), "rows": rows}
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")


def picture(prior_name: str, iters: int, corrective: str, omega: float, seed: int = 7, prompt: str = "red-mug") -> None:
    """Two rows, standard and fixed ε, of the 10 runs of one cell."""
    import torch
    from safetensors.torch import load_file

    from diffrep.export import image_grid

    name = key(prior_name, iters, corrective, omega, seed, prompt)
    x = load_file(str(IMAGES / f"{name}.safetensors"))
    path = root / "docs" / "images" / f"lmc-diversity-omega-{name}.png"
    image_grid(torch.cat([x["standard"], x["fixed_eps"]]), nrow=len(x["standard"]), scale=3).save(path)
    print(path)


if __name__ == "__main__":
    from script_cli import MANY, cached, command, refuse

    keyed = dict(a.split("=", 1) for a in sys.argv[2:] if a.startswith(("seed=", "prompt=")))
    verb, args = command(__doc__, {"run": (4, MANY), "rescore": (0, 0), "write": (0, 0), "picture": (4, 4)},
                         [a for a in sys.argv[1:] if not a.startswith(("seed=", "prompt="))])
    if verb in ("write", "rescore"):
        cached(ROWS, "lmc_diversity_omega.py run")
    if verb == "write":
        write()
    elif verb == "rescore":
        rescore()
    else:  # a bad prompt, corrective or number is refused before the prior loads
        prompt = keyed.get("prompt", "red-mug")
        parse_prompt(prompt)
        if args[0] not in ("toyworld", "tiny"):
            refuse(f"PRIOR {args[0]!r}: toyworld or tiny")
        if args[2] not in ("clean", "perturbed"):
            refuse(f"CORRECTIVE {args[2]!r}: clean or perturbed")
        try:
            seed, iters, omegas = int(keyed.get("seed", 7)), int(args[1]), [float(a) for a in args[3:]]
        except ValueError as e:
            refuse(f"seed=, ITERS and OMEGA take numbers: {e}")
        if verb == "run":
            run(args[0], iters, args[2], omegas, seed, prompt)
        else:
            picture(args[0], iters, args[2], omegas[0], seed, prompt)
