"""The DDRep paper's Table 1 on the toy world: DDRep SIREN renders against the image-space DDIM
sample with the same seed and noise, PSNR and SSIM per guidance scale."""

from __future__ import annotations

from collections.abc import Callable

from diffrep.bench.common import ddrep_with_reference, prompts
from diffrep.methods import PullbackConfig
from diffrep.metrics import mean_std, psnr, ssim
from diffrep.priors import toyworld_prior

PAPER_PSNR = {0: 29.7, 3: 29.9, 10: 27.6, 30: 23.5, 100: 13.6}  # Stable Diffusion 1.5, the paper's Table 1


def run(quick: bool, log: Callable[[str], None], prior=None, prior_name: str = "toyworld") -> dict:
    prior = prior or toyworld_prior()
    scales = (0, 10, 30) if quick else (0, 3, 10, 30, 100)
    k_prompts, seeds = (2, 2) if quick else (5, 4)
    steps = 20 if quick else 50
    rep_options = {"width": 128}
    pull = PullbackConfig()  # the default: Adam, 20 iterations per step at lr 3e-3
    ps = prompts(prior, k_prompts)
    conds = [prior.encode_prompt(p) for p in ps for _ in range(seeds)]
    rows = []
    for w in scales:
        ddrep, ref = ddrep_with_reference(prior, conds, len(conds), steps, float(w), rep_options, pull, seed=w)
        row = {"guidance_scale": w, "pairs": len(conds), "psnr_db": mean_std(psnr(ddrep.images, ref.images)),
               "ssim": mean_std(ssim(ddrep.images, ref.images)), "paper_psnr_db_sd15": PAPER_PSNR[w],
               "ddrep_s": round(ddrep.seconds, 2), "ddim_s": round(ref.seconds, 3),
               "prior_evaluations": ddrep.evaluations}
        log(str(row))
        rows.append(row)
    return {"prior": prior_name, "prompts": ps, "seeds_per_prompt": seeds, "steps": steps, "eta": 0.0,
            "rep": "siren", "rep_options": rep_options, "solver": vars(pull), "rows": rows,
            "target": ">= 30 dB at guidance 0-10, >= 25 dB at 30"}
