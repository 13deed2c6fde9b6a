"""Why the tiny prior's corrective barely learns (issue 15; docs/benchmarks.md, LMC-SDS, *The tiny prior's one-step
x̂_0 at large t*). `floor PRIOR`: per timestep, on 32 of the prior's data images and 6 noise draws each, the part of
the corrective's loss `L_k` no `b̂(x, t)` can remove (the variance of the prior's one-step `x̂_0(a_t x + s_t ε)` over
`ε`, summed over pixels), the shipped correctives' `L_k`, and their error against the ε-mean of `x̂_0` (what `b̂`
learns). `t-range PRIOR`: the suite's synthesis cells ("a red mug", "a blue duck", 2 instances each; seed = int(ω))
at 500 iterations, ω = 5 and 8, LMC-SDS with the corrective trained off the data at the default `t ∈ [0.02, 0.98] T`
and below 0.8 T and 0.6 T, and SDS below 0.8 T (SDS at the default range: `lmc_corrective_perturb_more.py long`).

    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/lmc_corrective_floor.py floor PRIOR      # -> bench/results/lmc-corrective-floor-PRIOR.json
    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/lmc_corrective_floor.py t-range PRIOR    # -> bench/results/lmc-t-range-PRIOR.json"""

import json
import time
from pathlib import Path

import torch

from diffrep.bench import machine_info
from diffrep.export import atomic_write_text
from diffrep.priors import load

results = Path(__file__).resolve().parents[1] / "results"
TIMESTEPS = (50, 200, 400, 600, 800, 900, 950, 990)


def floor(name: str) -> dict:
    from diffrep.methods.corrective import corrective_loss, load_corrective, shipped_corrective
    from diffrep.priors.base import noise_levels
    from diffrep.priors.empirical import toyworld_data

    prior, g = load(name), torch.Generator().manual_seed(0)
    images = toyworld_data(10_000, 32, 0)["images"]
    x = images[torch.randperm(len(images), generator=g)[:32]].float() / 127.5 - 1
    folders = {training: shipped_corrective(prior, training) for training in ("clean", "perturbed")}
    correctives = {training: load_corrective(folder, prior) for training, folder in folders.items()}
    rows = []
    with torch.no_grad():
        for t in TIMESTEPS:
            tt = torch.full((len(x),), t)
            a, s = noise_levels(prior.alphas_cumprod, tt, x.dtype)
            x0 = []
            for _ in range(6):
                x_t = a * x + s * torch.randn(x.shape, generator=g)
                x0.append((x_t - s * prior.eps(x_t, tt, None)) / a)
            x0 = torch.stack(x0)
            mean = x0.mean(0)
            row = {"t": t, "floor": (x0 - mean).pow(2).flatten(2).sum(2).mean().item() * 6 / 5,
                   "x0_from_x": (x0 - x).pow(2).flatten(2).sum(2).mean().item()}
            for label, model in correctives.items():
                b = model(x, tt)
                row[f"L_k {label}"] = torch.stack([corrective_loss(b, one) for one in x0]).mean().item()
                row[f"to the mean {label}"] = corrective_loss(b, mean).item()
            rows.append({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()})
            print(json.dumps(rows[-1]), flush=True)
    return {"rows": rows, "correctives": {training: folder.name for training, folder in folders.items()}}


def t_range(name: str) -> dict:
    from diffrep.bench.lmc import distill_pixels, prior_data, prompt_batch, synthesis_row
    from diffrep.methods.corrective import shipped_corrective

    prior = load(name)
    data, (conds, asked) = prior_data(name, prior), prompt_batch(prior)
    perturbed = str(shipped_corrective(prior, "perturbed"))
    variants = {"lmc-sds t<0.98T": ("lmc-sds", {"corrective": perturbed}),
                "lmc-sds t<0.8T": ("lmc-sds", {"corrective": perturbed, "t_range": (0.02, 0.8)}),
                "lmc-sds t<0.6T": ("lmc-sds", {"corrective": perturbed, "t_range": (0.02, 0.6)}),
                "sds t<0.8T": ("sds", {"t_range": (0.02, 0.8)})}
    cells = {}
    for label, (method, options) in variants.items():
        for w in (5.0, 8.0):
            t0 = time.perf_counter()
            x = distill_pixels(prior, method, options, conds, w, 500, 3e-2, seed=int(w))
            cells.setdefault(label, {})[str(w)] = synthesis_row(x, data, asked) | {"seconds": round(time.perf_counter() - t0, 1)}
            print(label, w, cells[label][str(w)]["nearest_rms"], flush=True)
    return {"cells": cells}


if __name__ == "__main__":
    from script_cli import command, refuse

    what, (name,) = command(__doc__, {"floor": (1, 1), "t-range": (1, 1)})
    if name not in ("toyworld", "tiny"):  # the priors with a shipped corrective
        refuse(f"PRIOR {name!r}: toyworld or tiny")
    torch.set_num_threads(1)
    figures = {"floor": floor, "t-range": t_range}[what](name)
    command = next(c.strip() for c in __doc__.split("\n\n")[-1].splitlines() if f" {what} " in c).replace("PRIOR", name)
    atomic_write_text(results / f"lmc-{'corrective-floor' if what == 'floor' else 't-range'}-{name}.json", json.dumps(
        {"command": command.split("#")[0].strip(), "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine_info(),
         "figures": figures}, indent=1) + "\n")
