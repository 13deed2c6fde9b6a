"""Shared pieces of the benchmark suites: prompts, the reference sampler, timed runs."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from diffrep.methods import PullbackConfig, ddrep_sample
from diffrep.priors import CountingPrior, EmpiricalPrior, toyworld_prior
from diffrep.reps import make_rep
from diffrep.samplers import sample_ddim
from diffrep.schedule import ddim_coefficients, timesteps

# Kind + colour prompts (each matches ~1/60 of the data set, so there is room for diversity).
PROMPTS: tuple[str, ...] = ("a red mug", "a blue duck", "a green chair", "a yellow house", "an orange car",
                            "a purple teapot", "a red ball", "a blue tree")


def prompts(prior, k: int) -> list[str]:
    """The first ``k`` benchmark prompts the prior understands."""
    out = []
    for p in PROMPTS:
        try:
            prior.encode_prompt(p)
            out.append(p)
        except ValueError:
            continue
    return out[:k]


def labelled_reference(prior) -> EmpiricalPrior:
    """The labelled images samples are scored against: the prior's own data for the empirical
    prior, the default toy-world set (at the prior's resolution) for a learned one."""
    return prior if isinstance(prior, EmpiricalPrior) else toyworld_prior(res=prior.image_shape[-1])


@dataclass
class Timed:
    images: Tensor
    seconds: float
    evaluations: int
    extra: dict[str, Any]


def reference_ddim(prior, x_T: Tensor, ts: list[int], conds, guidance_scale: float, eta: float = 0.0,
                   seed: int = 0) -> Timed:
    """Image-space DDIM from ``x_T`` (the reference every diffrep is compared against)."""
    counted = CountingPrior(prior)
    start = time.perf_counter()
    x = sample_ddim(counted, x_T, ts, conds, guidance_scale=guidance_scale, eta=eta,
                    generator=torch.Generator().manual_seed(seed))
    return Timed(x, time.perf_counter() - start, counted.evaluations, {})


def ddrep_with_reference(prior, conds, n: int, steps: int, guidance_scale: float, rep_options: dict, pull: PullbackConfig,
                         seed: int = 0, eta: float = 0.0, reference: bool = True) -> tuple[Timed, Timed | None]:
    """DDRep on a SIREN and image-space DDIM from the same initial state ``a_T f_θ0 + s_T ε``
    with the same noise stream: the paper's Table 1 protocol."""
    g = torch.Generator().manual_seed(seed)
    rep = make_rep("siren", prior.image_shape, n, generator=g, **rep_options)
    noise = torch.randn(n, *prior.image_shape, generator=g)
    ts = timesteps(len(prior.alphas_cumprod), steps)
    ref = None
    if reference:
        k = ddim_coefficients(prior.alphas_cumprod, ts[0], ts[1], eta)
        with torch.no_grad():
            x_T = k.a_t * rep(None)[:, 0] + k.s_t * noise
        ref = reference_ddim(prior, x_T, ts, conds, guidance_scale, eta, seed=seed + 1)
    counted = CountingPrior(prior)
    start = time.perf_counter()
    ddrep_sample(counted, rep, ts, conds, guidance_scale=guidance_scale, eta=eta, pull=pull, noise=noise,
                 generator=torch.Generator().manual_seed(seed + 1))
    seconds = time.perf_counter() - start
    with torch.no_grad():
        images = rep(None)[:, 0]
    return Timed(images, seconds, counted.evaluations, {"rep": rep}), ref


def device_name(device: str) -> str:
    """The device in words: ``CPU``, or the GPU's name (``NVIDIA H200``)."""
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(torch.device(device))
    return "CPU"
