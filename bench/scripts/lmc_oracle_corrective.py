"""LMC-SDS with the corrective it is trained to be (issue 15's first claim; docs/benchmarks.md, LMC-SDS): on the
toy-world prior, whose denoiser is exact, the function b̂(x, t) learns (design §4: the prior's one-step
unconditional denoised image x̂_0(a_t x + s_t ε) of a clean image x, in L_k's normalised space) can be computed
instead of learnt: its mean over ε, here over K draws at every call. LMC-SDS with this *oracle* in place of the
shipped network, at the suite's cells (mid-grey pixels, "a red mug" and "a blue duck" × 2, Adam lr 3e-2 with cosine
decay) at ω = 3, 5, 8 and 80 and 500 iterations, beside SDS and the shipped clean and perturbed correctives at the
same seeds: is the first claim's miss the learnt corrective's, or the method's on an exact prior?

    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/lmc_oracle_corrective.py [K]   # -> bench/results/lmc-oracle-corrective.json
    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/lmc_oracle_corrective.py picture   # -> docs/images/lmc-oracle-corrective.png

K: ε draws a call (8). The oracle keeps nothing of what is off the data in x (the exact x̂_0 maps x + δ onto data
images whatever δ), so g_lmc = normalise(b̂) - x̂_0 has no restoring force towards the data, unlike SDS's x - x̂_0."""

import json
import sys
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

root = Path(__file__).resolve().parents[2]
SCALES = (3.0, 5.0, 8.0)
ITERS = (80, 500)


class Oracle:
    """``b̂(x, t) = mean_k x̂_0(a_t x + s_t ε_k, ∅)`` over ``K`` fresh draws, by the prior itself (no gradient)."""

    def __init__(self, prior, draws: int, seed: int = 0):
        import torch

        self.prior, self.draws = prior, draws
        self.generator = torch.Generator().manual_seed(seed)

    def to(self, device):
        return self

    def __call__(self, x, t):
        import torch

        from diffrep.priors.base import noise_levels

        a, s = noise_levels(self.prior.alphas_cumprod, t, x.dtype)
        with torch.no_grad():
            total = torch.zeros_like(x)
            for _ in range(self.draws):
                eps = torch.randn(x.shape, generator=self.generator, dtype=x.dtype)
                x_t = a * x + s * eps
                total += (x_t - s * self.prior.eps(x_t, t, None)) / a
            return total / self.draws


@contextmanager
def oracle_corrective(prior, draws: int):
    """Within the scope, LMC-SDS takes ``Oracle(prior, draws)`` for whatever corrective its options name."""
    import diffrep.methods.corrective as corrective_module

    named = corrective_module.named_corrective
    corrective_module.named_corrective = lambda corrective, p, name=None: Oracle(prior, draws)
    try:
        yield
    finally:
        corrective_module.named_corrective = named


def main(draws: int = 8) -> None:
    import torch

    from diffrep.bench import machine_info
    from diffrep.bench.lmc import distill_pixels, prior_data, prompt_batch, synthesis_row
    from diffrep.export import atomic_write_text
    from diffrep.priors import load

    torch.set_num_threads(1)
    prior = load("toyworld")
    data = prior_data("toyworld", prior)
    conds, asked = prompt_batch(prior)
    variants = {"sds": ("sds", {}), "lmc-sds clean (shipped)": ("lmc-sds", {}),
                "lmc-sds perturbed (shipped)": ("lmc-sds", {"corrective": "perturbed"}),
                "lmc-sds oracle": ("lmc-sds", {})}  # the corrective: the oracle_corrective scope
    figures: dict = {}
    for iters in ITERS:
        for label, (method, options) in variants.items():
            for w in SCALES:
                t0 = time.perf_counter()
                with oracle_corrective(prior, draws) if "oracle" in label else nullcontext():
                    x = distill_pixels(prior, method, options, conds, w, iters, 3e-2, seed=int(w))
                row = synthesis_row(x, data, asked) | {"seconds": round(time.perf_counter() - t0, 1)}
                figures.setdefault(str(iters), {}).setdefault(label, {})[str(w)] = row
                print(iters, label, w, row["nearest_rms"], row["saturation"], row["seconds"], flush=True)
    out = {"suite": "lmc-sds with the oracle corrective (toy world, exact)", "date": time.strftime("%Y-%m-%d %H:%M:%S"),
           "command": "OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/lmc_oracle_corrective.py" + (f" {draws}" if draws != 8 else ""),
           "machine": machine_info(), "draws": draws, "lr": 3e-2, "seeds": "int(ω)", "figures": figures}
    atomic_write_text(root / "bench" / "results" / "lmc-oracle-corrective.json", json.dumps(out, indent=2) + "\n")


def picture(draws: int = 8) -> None:
    """Rows SDS and LMC-SDS with the oracle at ω = 5, 80 iterations, the suite's seed; columns two red mugs, two blue ducks."""
    import torch

    from diffrep.bench.lmc import distill_pixels, prompt_batch
    from diffrep.export import image_grid
    from diffrep.priors import load

    torch.set_num_threads(1)
    prior = load("toyworld")
    conds, _ = prompt_batch(prior)
    rows = [distill_pixels(prior, "sds", {}, conds, 5.0, 80, 3e-2, seed=5)]
    with oracle_corrective(prior, draws):
        rows.append(distill_pixels(prior, "lmc-sds", {}, conds, 5.0, 80, 3e-2, seed=5))
    image_grid(torch.cat(rows).clamp(-1, 1), nrow=4, scale=4).save(root / "docs" / "images" / "lmc-oracle-corrective.png")


if __name__ == "__main__":
    from script_cli import command, refuse

    if sys.argv[1:2] == ["picture"]:
        command(__doc__, {"picture": (0, 0)})
        picture()
    else:
        _, k = command(__doc__, {None: (0, 1)})
        if not all(a.isdigit() for a in k):
            refuse(f"K {k[0]!r}: a whole number of noise draws, or picture")
        main(*map(int, k))
