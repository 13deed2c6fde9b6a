"""Cost with a real-sized prior: Stable Diffusion 1.5's UNet and VAE, built from their configuration with random
weights (the same cost as trained ones; nothing downloaded), on this machine's CPU.

Per step: image-space DDIM for 8 latents with guidance (one UNet batch of 16) against one DDRep step for 8
SIRENs rendering ``4×64×64`` latents (the same UNet batch plus the pullback solve), with the default solver,
Adam-8 and the paper's Adam-200 (``SOLVERS``; not in ``quick``); one SDS and one SJC iteration. The DDRep/DDIM ratio per step, and extrapolated to the
paper's 100-step run (decoding the 8 results included), beside the paper's 2.1× (82 s vs 39 s on an A6000).
``quick`` builds tiny components of the same kinds instead: it checks the suite, not the figures.
``device="cuda"`` runs the same suite on a GPU (the UNet in fp16, the VAE upcast to fp32 as diffusers does;
more timed steps after a warm-up, each step synchronised); its results go to ``sd-cost-cuda.json``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

from diffrep.bench.common import device_name
from diffrep.methods import OptimConfig, PullbackConfig, Sampling, SDSOptions, SJCOptions, ddrep_sample, run_sds, run_sjc
from diffrep.priors.sd import SDPrior
from diffrep.reps import make_rep
from diffrep.samplers import sample_ddim
from diffrep.schedule import timesteps

SD15_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32, norm_eps=1e-5, act_fn="silu",
    flip_sin_to_cos=True, freq_shift=0, downsample_padding=1, mid_block_scale_factor=1, center_input_sample=False)
"""Stable Diffusion 1.5's ``unet/config.json`` (860 M parameters)."""

SD15_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32,
    act_fn="silu", sample_size=512, scaling_factor=0.18215)
"""Stable Diffusion 1.5's ``vae/config.json`` (84 M parameters)."""

SD15_TEXT = (77, 768)
"""CLIP ViT-L/14's text states: 77 tokens of width 768."""

TINY_UNET = dict(sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32, attention_head_dim=2,
                 norm_num_groups=4)
TINY_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(4, 4, 4, 4), layers_per_block=1,
                down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                norm_num_groups=2, sample_size=128)
TINY_TEXT = (16, 32)

SOLVERS: dict[str, PullbackConfig] = {
    "default": PullbackConfig(),
    "adam_8": PullbackConfig(adam_iters=8),  # the budget the goal leaves on this CPU (table1-solver: its fidelity)
    "adam_200_paper": PullbackConfig(solver="adam", adam_iters=200, adam_lr=1e-3),
}
"""DDRep's solver settings timed (``quick``: the default only): the default (Adam 20), Adam 8, the paper's Adam 200."""

PAPER = {"ddrep_s": 82, "ddim_s": 39, "ratio": 2.1, "steps": 100, "n": 8, "gpu": "RTX A6000"}
"""The DDRep paper's cost figure: 8 SIRENs, Stable Diffusion 1.5, 100 steps."""


class TextStatesPrior(SDPrior):
    """``SDPrior`` without a text encoder: each prompt's states are a fixed random ``[L, D]`` tensor (the cost of the
    CLIP encoder is once per prompt, outside every step)."""

    def __init__(self, unet: nn.Module, vae: nn.Module, text: tuple[int, int], alphas_cumprod: Tensor):
        super().__init__(unet, vae, nn.Identity(), None, alphas_cumprod)
        self.text = text

    def embed(self, text: str) -> Tensor:
        if text not in self.embeddings:
            g = torch.Generator().manual_seed(sum(map(ord, text)))
            self.embeddings[text] = torch.randn(*self.text, generator=g).to(self.device, self.dtype)
        return self.embeddings[text]


def build_prior(quick: bool, device: str = "cpu", dtype: torch.dtype = torch.float32) -> TextStatesPrior:
    """SD 1.5's UNet and VAE (tiny ones for ``quick``) with random weights, and SD's scaled-linear schedule."""
    from diffrep.priors.sd import alphas_cumprod, import_diffusers

    diffusers = import_diffusers()
    unet = diffusers.UNet2DConditionModel(**(TINY_UNET if quick else SD15_UNET)).to(device, dtype)
    vae = diffusers.AutoencoderKL(**(TINY_VAE if quick else SD15_VAE)).to(device, dtype)
    ab = alphas_cumprod({"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"})
    return TextStatesPrior(unet, vae, TINY_TEXT if quick else SD15_TEXT, ab)


def synchronize() -> None:
    """Wait for the GPU's queued work, so that a wall-clock reading covers it (nothing on a CPU)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


class UNetClock:
    """Seconds spent inside the UNet's forward, summed over its calls (hooks on the module): read per step, it
    splits a step into the prior's share and the method's own (the solve), both measured in the same step."""

    def __init__(self, unet: nn.Module):
        self.total, self._t0 = 0.0, 0.0
        unet.register_forward_pre_hook(self._enter)
        unet.register_forward_hook(self._leave)

    def _enter(self, module, args) -> None:
        synchronize()
        self._t0 = time.perf_counter()

    def _leave(self, module, args, out) -> None:
        synchronize()
        self.total += time.perf_counter() - self._t0


class StepClock:
    """A callback that notes the time of each step: ``steps`` are the durations between them, the first measured
    from ``start()``; ``unet`` the UNet's seconds within each (from a ``UNetClock``)."""

    def __init__(self, unet_clock: UNetClock):
        self.unet_clock = unet_clock
        self.times: list[float] = []
        self.unet_totals: list[float] = []

    def start(self) -> None:
        synchronize()
        self.times, self.unet_totals = [time.perf_counter()], [self.unet_clock.total]

    def __call__(self, d: dict) -> None:
        synchronize()
        self.times.append(time.perf_counter())
        self.unet_totals.append(self.unet_clock.total)

    @property
    def steps(self) -> list[float]:
        return [b - a for a, b in zip(self.times, self.times[1:])]

    @property
    def unet(self) -> list[float]:
        return [b - a for a, b in zip(self.unet_totals, self.unet_totals[1:])]


def timed(run: Callable[[StepClock], object], unet_clock: UNetClock) -> dict:
    """Run ``run(clock)`` once: its per-step seconds (median, all), the UNet's seconds within each step and the
    rest of each step (``own``: the method's work beside the prior, e.g. DDRep's solve; medians), and the seconds
    outside the steps."""
    clock = StepClock(unet_clock)
    start = time.perf_counter()
    clock.start()
    run(clock)
    synchronize()
    total = time.perf_counter() - start
    steps, unet = clock.steps, clock.unet
    return {"step_s": round(statistics.median(steps), 3), "steps_s": [round(s, 3) for s in steps],
            "unet_s": round(statistics.median(unet), 3),
            "own_s": round(statistics.median([s - u for s, u in zip(steps, unet)]), 3),
            "outside_steps_s": round(total - sum(steps), 3)}


def run(quick: bool, log: Callable[[str], None], device: str = "cpu", *, solvers: list[str] | None = None,
        distill: bool = True) -> dict:
    """The suite; ``solvers`` (keys of ``SOLVERS``) and ``distill=False`` (no SDS/SJC rows) narrow it for a
    reduced run."""
    gpu = torch.device(device).type == "cuda"
    n, w = 8, 7.5
    k = 3 if quick else 8 if gpu else 2  # timed steps (iterations) per measurement; the median is reported
    dtype = torch.float16 if gpu else torch.float32
    prior = build_prior(quick, device, dtype)
    unet_clock = UNetClock(prior.unet)
    shape = prior.image_shape
    g = torch.Generator().manual_seed(0)
    conds = [prior.encode_prompt(f"prompt {i}") for i in range(n)]
    ts = timesteps(len(prior.alphas_cumprod), 100)[:k]  # the first k of the paper's 100 steps
    figures: dict = {"components": "tiny (quick)" if quick else "Stable Diffusion 1.5 shape, random weights",
                     "device": device_name(device), "dtype": str(dtype).removeprefix("torch."),
                     "latent_shape": list(shape), "n": n, "unet_batch": 2 * n, "guidance_scale": w,
                     "timed_steps": k, "threads": torch.get_num_threads()}
    if gpu or quick:  # kernel selection and the allocator's first growth, outside every timing (quick: to test it)
        prior.decode(torch.randn(n, *shape, generator=g).to(device))
        prior.eps(torch.randn(2 * n, *shape, device=device), torch.full((2 * n,), 500), conds + conds)

    # Decoding the 8 results: once per run, for DDIM and DDRep alike.
    synchronize()
    start = time.perf_counter()
    prior.decode(torch.randn(n, *shape, generator=g).to(device))
    synchronize()
    figures["decode_s"] = round(time.perf_counter() - start, 3)
    log(f"decode {n}: {figures['decode_s']} s")

    # Image-space DDIM: one UNet batch of 2n per step.
    x_T = torch.randn(n, *shape, generator=g).to(device)
    figures["ddim"] = timed(lambda c: sample_ddim(prior, x_T, ts, conds, guidance_scale=w, callback=c), unet_clock)
    log(f"ddim: {figures['ddim']}")

    # DDRep on 8 SIRENs rendering latents: the same UNet batch, then the pullback solve.
    names = solvers or (["default"] if quick else list(SOLVERS))  # quick: no 200 iterations (6 s a step when tiny)
    figures["ddrep"] = {}
    for name in names:
        pull = SOLVERS[name]
        rep = make_rep("siren", shape, n, generator=torch.Generator().manual_seed(1)).to(device)
        figures["ddrep"][name] = row = timed(lambda c: ddrep_sample(
            prior, rep, ts, conds, guidance_scale=w, pull=pull, generator=torch.Generator().manual_seed(2), callback=c),
            unet_clock)
        row["solver"] = {"solver": pull.solver, "adam_iters": pull.adam_iters, "adam_lr": pull.adam_lr}
        log(f"ddrep {name}: {row}")

    # One SDS and one SJC iteration on 8 latent SIRENs.
    sampling = Sampling(guidance_scale=w)
    distilled = (("sds", run_sds, SDSOptions(optim=OptimConfig(iters=k))),
                 ("sjc", run_sjc, SJCOptions(optim=OptimConfig(iters=k)))) if distill else ()
    for name, method, options in distilled:
        rep = make_rep("siren", shape, n, generator=torch.Generator().manual_seed(1)).to(device)
        figures[name] = timed(lambda c: method(prior, rep, conds, options, sampling=sampling,
                                               generator=torch.Generator().manual_seed(3), callback=c), unet_clock)
        log(f"{name}: {figures[name]}")
    figures["ratios"] = ratios(figures, PAPER["steps"])
    figures["paper"] = PAPER
    figures["goal"] = "DDRep/DDIM <= 1.05 over 100 steps (paper 2.1; 1.0 is the limit)"
    return figures


def ratios(figures: dict, steps: int) -> dict:
    """DDRep/DDIM per step, and over a ``steps``-step run with the decode of the results (and each method's time
    outside its steps) counted once; the solve's seconds per step. Two estimates: from the whole steps
    (``per_step``, ``run_N_steps``: DDRep's steps and DDIM's ran minutes apart, so the machine's drift enters),
    and ``same_unet``: one UNet time ``U`` (DDIM's median) for both, plus each method's own seconds measured
    inside its steps, ``(U + own_DDRep) / (U + own_DDIM)`` (the drift of the UNet's time between runs cancels)."""
    ddim = figures["ddim"]
    U, decode = ddim["unet_s"], figures["decode_s"]
    ddim_run = steps * ddim["step_s"] + ddim["outside_steps_s"] + decode
    ddim_same = steps * (U + ddim["own_s"]) + ddim["outside_steps_s"] + decode
    out = {"ddim_run_s": round(ddim_run, 1), "unet_s": U}
    for name, row in figures["ddrep"].items():
        run_s = steps * row["step_s"] + row["outside_steps_s"] + decode
        same = steps * (U + row["own_s"]) + row["outside_steps_s"] + decode
        out[name] = {"per_step": round(row["step_s"] / ddim["step_s"], 3), f"run_{steps}_steps": round(run_s / ddim_run, 3),
                     "run_s": round(run_s, 1), "solve_s_per_step": row["own_s"],
                     "same_unet": {"per_step": round((U + row["own_s"]) / (U + ddim["own_s"]), 3),
                                   f"run_{steps}_steps": round(same / ddim_same, 3)}}
    for name in ("sds", "sjc"):
        if name not in figures:
            continue
        out[f"{name}_iteration_over_ddim_step"] = round(figures[name]["step_s"] / ddim["step_s"], 3)
        out[f"{name}_iteration_same_unet"] = round((U + figures[name]["own_s"]) / (U + ddim["own_s"]), 3)
    return out
