"""Does a corrective that keeps what is off the data bring LMC-SDS nearer the data? (issue 15; docs/benchmarks.md, LMC-SDS.)

The shipped correctives were fitted on clean data images only; off the data they remove most of a perturbation
themselves (the toy world's keeps 0.28 of a darker disc, 0.23 of a checkerboard, 0.03 of a one-pixel border), so
`g_lmc = b̂ - x̂_0(∅)` hardly restores it and LMC-SDS walks into halos and borders ("LMC-SDS artifacts"). A
corrective trained with `--perturb` learns `b̂(x + δ) = x̂_0(a_t x + s_t ε) + δ`: the data image's bias plus what
is off the data. For the shipped corrective and such a one, per prior:

1. keep: the share of δ that b̂ keeps (the mean over t ~ U[0.02, 0.98]·T and ε of (b̂(x+δ) - b̂(x))·δ/|δ|², after
   L_k's normalisation), and the restoring coefficient of `g_lmc` at `x + δ` (SDS's `x - x̂_0` beside it), for the
   three δ of `lmc_drift.py` on its data red mug;
2. bias: the RMS of the mean of `g_lmc` over t and ε on 16 clean data images (what the corrective is for: SDS's
   `x - x̂_0` beside it);
3. drift: that red mug optimised by `g_lmc` alone (prompt none) at lr 3e-2 × 80 iterations; RMS moved;
4. synthesis: the suite's cells (`bench.lmc.distill_pixels`, `synthesis_row`: "a red mug" and "a blue duck",
   2 instances each, 80 iterations from mid-grey, lr 3e-2 with cosine decay, seed = int(ω)) for `lmc-sds` with the
   corrective, at the suite's six ω; the suite's SDS and LMC-SDS rows stand beside them in the JSON (the shipped
   corrective's cells must reproduce the suite's LMC-SDS rows);
5. diversity: the suite's fixed-ε cells (10 runs of "a red mug" as one batch, ω = 8, 80 iterations, seed 7), standard
   and `fixed_eps`, mean pairwise RMS (the shipped corrective's must reproduce the suite's).

    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/lmc_corrective_perturb.py TOYWORLD_CORRECTIVE TINY_CORRECTIVE   # -> bench/results/lmc-corrective-perturb.json, docs/images/lmc-synthesis-perturb.png

where each corrective is a folder written by `diffrep train-corrective --prior P --perturb 0.5 --steps 5000`."""

import json
import sys
import time
from pathlib import Path

root = Path(__file__).resolve().parents[2]
SCALES = (3.0, 5.0, 8.0, 15.0, 30.0, 100.0)
SHOWN = (3.0, 8.0, 30.0, 100.0)


def deltas(H: int):
    import torch

    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(H), indexing="ij")
    r = ((yy - H / 2) ** 2 + (xx - H / 2) ** 2).sqrt()
    return {"darker disc": -0.2 * ((r > 11) & (r < 15)).float().expand(3, H, H),
            "checkerboard": 0.05 * (-1.0) ** (yy + xx).float().expand(3, H, H),
            "one-pixel border": 0.2 * ((yy == 0) | (yy == H - 1) | (xx == 0) | (xx == H - 1)).float()
            * torch.tensor([1.0, -1, 1])[:, None, None]}


def one_step(prior, x, t, eps):
    """The prior's one-step unconditional denoised image ``x̂_0(a_t x + s_t ε, t)``."""
    from diffrep.priors.base import noise_levels
    from diffrep.schedule import predict_x0

    a, s = noise_levels(prior.alphas_cumprod, t, x.dtype)
    return predict_x0(a * x + s * eps, prior.eps(a * x + s * eps, t, None), a, s)


def keep_and_restore(prior, b_hat, x, n: int = 256) -> dict:
    import torch

    from diffrep.methods.corrective import normalise

    out = {}
    for name, d in deltas(x.shape[-1]).items():
        g = torch.Generator().manual_seed(0)
        t = torch.randint(20, 981, (n,), generator=g)
        eps = torch.randn((n, *x.shape[1:]), generator=g)
        share = lambda v: ((v * d).flatten(1).sum(1) / d.pow(2).sum()).mean().item()  # noqa: E731
        clean, moved = x.expand(n, -1, -1, -1), (x + d).expand(n, -1, -1, -1)
        x0_clean, x0_moved = one_step(prior, clean, t, eps), one_step(prior, moved, t, eps)
        b_clean, b_moved = normalise(b_hat(clean, t), x0_clean), normalise(b_hat(moved, t), x0_moved)
        out[name] = {"b_keeps": round(share(b_moved - b_clean), 3), "x0_keeps": round(share(x0_moved - x0_clean), 3),
                     "restoring_lmc": round(share(b_moved - x0_moved), 3), "restoring_sds": round(share(moved - x0_moved), 3)}
    return out


def bias(prior, b_hat, data, n: int = 16, draws: int = 64) -> dict:
    import torch

    from diffrep.methods.corrective import normalise

    g = torch.Generator().manual_seed(1)
    x = data[torch.randperm(len(data), generator=g)[:n]].float()
    lmc, sds = torch.zeros_like(x), torch.zeros_like(x)
    for _ in range(draws):
        t = torch.randint(20, 981, (n,), generator=g)
        x0 = one_step(prior, x, t, torch.randn(x.shape, generator=g))
        lmc += (normalise(b_hat(x, t), x0) - x0) / draws
        sds += (x - x0) / draws
    rms = lambda v: v.pow(2).mean().sqrt().item()  # noqa: E731
    return {"lmc_mean_rms": round(rms(lmc), 4), "sds_mean_rms": round(rms(sds), 4)}


def main(folders: dict[str, Path]) -> None:
    import torch

    from diffrep.api import edit
    from diffrep.bench import machine_info
    from diffrep.bench.lmc import distill_pixels, prior_data, prompt_batch, synthesis_row
    from diffrep.export import atomic_write_text, image_grid
    from diffrep.methods.corrective import load_corrective, shipped_corrective
    from diffrep.metrics import mean_pairwise_rms, nearest_data
    from diffrep.priors import load
    from diffrep.toyworld import COLOURS, KINDS, VIEWS

    torch.set_num_threads(1)
    suite_figures = json.loads((root / "bench" / "results" / "lmc.json").read_text())["figures"]
    suite, suite_div = suite_figures["synthesis"], suite_figures["diversity"]
    figures: dict = {}
    shown = []
    for name, folder in folders.items():
        prior = load(name)
        data = prior_data(name, prior)
        L = data.labels
        i = ((L["kind"] == KINDS.index("mug")) & (L["colour"] == COLOURS.index("red"))
             & (L["view"] == VIEWS.index("front"))).nonzero()[0, 0]
        mug = data.images[i].float()[None]
        conds, asked = prompt_batch(prior)
        figures[name] = {"suite_sds": {str(w): suite[name]["sds"][str(w)] for w in SCALES},
                         "suite_lmc-sds": {str(w): suite[name]["lmc-sds"][str(w)] for w in SCALES},
                         "suite_diversity": suite_div[name]}
        for label, path in (("shipped", shipped_corrective(prior)), ("perturbed", folder)):
            b_hat = load_corrective(path, prior, name)
            with torch.no_grad():
                row = {"corrective": str(path.relative_to(root)) if path.is_relative_to(root) else str(path),
                       "training": json.loads((path / "corrective.json").read_text())["training"],
                       "keep": keep_and_restore(prior, b_hat, mug), "bias": bias(prior, b_hat, data.images)}
            moved = edit(prior, mug[0], prompt=None, method="lmc-sds", anchor=0.0, lr=3e-2, iters=80, seed=0,
                         corrective=str(path)).images
            row["drift_rms"] = round((moved - mug).pow(2).mean().sqrt().item(), 4)
            row["synthesis"] = {}
            for w in SCALES:
                t0 = time.perf_counter()
                x = distill_pixels(prior, "lmc-sds", {"corrective": str(path)}, conds, w, 80, 3e-2, seed=int(w))
                row["synthesis"][str(w)] = synthesis_row(x, data, asked) | {"seconds": round(time.perf_counter() - t0, 1)}
                if w in SHOWN:
                    shown.append(x[[0, 2]])
            row["diversity"] = {}
            for mode, options in (("standard", {}), ("fixed_eps", {"fixed_eps": True})):
                x = distill_pixels(prior, "lmc-sds", {"corrective": str(path)} | options,
                                   [prior.encode_prompt("a red mug")] * 10, 8.0, 80, 3e-2, seed=7).clamp(-1, 1)
                row["diversity"][mode] = {"mean_pairwise_rms": round(mean_pairwise_rms(x), 4),
                                          "nearest_rms": round(nearest_data(x, data.images)[1].mean().item(), 4)}
            row["diversity"]["ratio_fixed_over_standard"] = round(
                row["diversity"]["fixed_eps"]["mean_pairwise_rms"] / row["diversity"]["standard"]["mean_pairwise_rms"], 3)
            figures[name][label] = row
            print(name, label, json.dumps({k: row[k] for k in ("keep", "bias", "drift_rms", "diversity")}),
                  {w: r["nearest_rms"] for w, r in row["synthesis"].items()}, flush=True)
    image_grid(torch.cat(shown).clamp(-1, 1), nrow=2 * len(SHOWN), scale=3).save(root / "docs" / "images" / "lmc-synthesis-perturb.png")
    record = {"suite": "lmc-sds with a corrective trained off the data", "command": __doc__.split("\n\n")[3].strip(),
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine_info(),
              "grid": "docs/images/lmc-synthesis-perturb.png: rows toyworld shipped, toyworld perturbed, tiny shipped, "
                      "tiny perturbed; columns ω = 3, 8, 30, 100, a red mug and a blue duck each",
              "figures": figures}
    atomic_write_text(root / "bench" / "results" / "lmc-corrective-perturb.json", json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 3 or not all((Path(a) / "corrective.json").is_file() for a in sys.argv[1:]):
        print("usage: lmc_corrective_perturb.py TOYWORLD_CORRECTIVE TINY_CORRECTIVE (folders holding corrective.json)",
              file=sys.stderr)
        sys.exit(2)
    main({"toyworld": Path(sys.argv[1]).resolve(), "tiny": Path(sys.argv[2]).resolve()})
