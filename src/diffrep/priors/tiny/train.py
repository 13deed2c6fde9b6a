"""Training of the tiny prior: DDPM ε-loss on toy-world images with augmented captions.

>>> from diffrep.priors.tiny.train import TrainConfig, train
>>> weights = train(TrainConfig(out=Path("runs/tiny"), steps=20_000), resume=True, callback=print)
"""

from __future__ import annotations

import copy
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from diffrep.checkpoint import atomic_save, load_optimizer, optimizer_tensors
from diffrep.errors import InputError
from diffrep.priors.tiny.captions import HELD_OUT_COMBOS, random_captions
from diffrep.priors.tiny.text import TextEncoder
from diffrep.priors.tiny.unet import TinyUNet, UNetConfig
from diffrep.schedule import linear_schedule

SAMPLE_PROMPTS: tuple[str, ...] = (
    "a red ball, front view", "a blue cube, side view", "a yellow duck, back view", "a green car, overhead view",
    "a crimson mug seen from the side", "something purple", "a teapot", "",
)


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of a tiny-prior training run."""

    out: Path  # run directory: checkpoints, sample grids, final tiny.safetensors + tiny.json
    res: int = 32  # image side, 32 or 64
    steps: int = 20_000  # total optimiser steps (the shipped weights: 11,000 on a CPU, docs/tiny_prior.md)
    batch: int = 32  # images per step
    lr: float = 4e-4  # AdamW learning rate (constant)
    ema_decay: float = 0.999  # EMA of the weights used for sampling and export
    checkpoint_every: int = 1000  # steps between checkpoints (0: only at the end)
    sample_every: int = 2000  # steps between sample grids (0: never)
    data_n: int = 20_000  # toy-world images generated (held-out combos are then dropped)
    seed: int = 0  # seed of the data set, the captions, timesteps, noise and initial weights
    device: str = "auto"  # "auto" (CUDA when present), "cpu" or "cuda"
    channels: int = 32  # U-Net width at full resolution (32: 1.53 M parameters)
    sample_steps: int = 50  # DDIM steps of the sample grids


def train(config: TrainConfig, *, resume: bool = False, callback: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """Train (or continue) a tiny prior; returns the path of the exported EMA ``tiny.safetensors``."""
    check_config(config)
    device = torch.device("cuda" if config.device == "auto" and torch.cuda.is_available() else
                          "cpu" if config.device == "auto" else config.device)
    images, labels = training_set(config)
    g = torch.Generator().manual_seed(config.seed)
    with torch.random.fork_rng(devices=[]):  # seeded initial weights; the caller's global RNG is left untouched
        torch.manual_seed(config.seed)
        model = TinyUNet(UNetConfig(res=config.res, channels=config.channels))
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr)
    rng, step = random.Random(config.seed), 0
    if resume and (config.out / "checkpoint.json").is_file():
        step = load_checkpoint(config.out, model, ema, opt, g, rng)
    model.to(device), ema.to(device)
    _move_optimizer(opt, device)
    encoder, ab = TextEncoder(), linear_schedule().to(device, torch.float32)
    t0 = time.perf_counter()
    while step < config.steps:
        loss = train_step(model, opt, images, labels, encoder, ab, g, rng, config.batch, device)
        # EMA warm-up: early on the average would otherwise sit mostly on the random initial weights.
        ema_update(ema, model, min(config.ema_decay, (1 + step) / (10 + step)))
        step += 1
        info: dict[str, Any] = {"step": step, "steps": config.steps, "loss": loss, "seconds": time.perf_counter() - t0}
        if config.checkpoint_every and step % config.checkpoint_every == 0 or step == config.steps:
            info["checkpoint"] = save_checkpoint(config, model, ema, opt, g, rng, step)
        if config.sample_every and step % config.sample_every == 0:
            info["samples"] = sample_grid(ema, encoder, config.out / f"samples-{step:07d}.png", config.sample_steps)
        if callback is not None:
            callback(info)
    from diffrep.priors.tiny import save_tiny

    training = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()}
    return save_tiny(ema, config.out / "tiny.safetensors", _cpu(ema.state_dict()),
                     {"training": training | {"step": step, "ema": True}})


def check_config(config: TrainConfig) -> None:
    """Validate a ``TrainConfig`` at the edge."""
    if config.res not in (32, 64):
        raise InputError(f"res={config.res} is not allowed; the toy world renders 32 or 64")
    for name in ("steps", "batch", "data_n", "channels", "sample_steps"):
        if getattr(config, name) < 1:
            raise InputError(f"{name}={getattr(config, name)} must be a positive integer")
    if config.channels % 8:
        raise InputError(f"channels={config.channels} must be a multiple of 8 (GroupNorm groups)")
    if config.device not in ("auto", "cpu", "cuda"):
        raise InputError(f"device={config.device!r} is not allowed; allowed: auto, cpu, cuda")


def training_set(config: TrainConfig) -> tuple[Tensor, dict[str, list[int]]]:
    """Toy-world images ``[N, 3, H, W]`` in [-1, 1] and labels, without the held-out combos."""
    from diffrep.priors.empirical import toyworld_data

    d = toyworld_data(config.data_n, config.res, config.seed)
    held = torch.tensor([k * 1000 + c for k, c in sorted(HELD_OUT_COMBOS)])
    keep = ~torch.isin(d["kind"].long() * 1000 + d["colour"].long(), held)
    images = d["images"][keep].float() / 127.5 - 1
    return images, {name: d[name][keep].tolist() for name in ("kind", "colour", "view")}


def train_step(model: TinyUNet, opt: torch.optim.Optimizer, images: Tensor, labels: dict[str, list[int]],
               encoder: TextEncoder, ab: Tensor, g: torch.Generator, rng: random.Random, batch: int, device) -> float:
    """One DDPM step: ``|eps - eps_theta(sqrt(ab_t) x0 + sqrt(1 - ab_t) eps, t, c)|^2`` with uniform ``t``."""
    idx = torch.randint(len(images), (batch,), generator=g)
    t = torch.randint(len(ab), (batch,), generator=g)
    eps = torch.randn(batch, *images.shape[1:], generator=g)  # drawn on the CPU: same stream on any device
    captions = random_captions(*([labels[n][i] for i in idx.tolist()] for n in ("kind", "colour", "view")), rng=rng)
    x0, t, eps = images[idx].to(device), t.to(device), eps.to(device)
    a = ab[t].sqrt().view(-1, 1, 1, 1)
    x_t = a * x0 + (1 - a**2).sqrt() * eps  # forward process (DDPM eq. 4)
    loss = (model(x_t, t, encoder.encode(captions).to(device)) - eps).pow(2).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


@torch.no_grad()
def ema_update(ema: TinyUNet, model: TinyUNet, decay: float) -> None:
    """``theta_ema <- decay theta_ema + (1 - decay) theta``."""
    for pe, p in zip(ema.parameters(), model.parameters()):
        pe.lerp_(p, 1 - decay)


@torch.no_grad()
def sample_grid(ema: TinyUNet, encoder: TextEncoder, path: Path, steps: int) -> Path:
    """DDIM samples of ``SAMPLE_PROMPTS`` (CFG 3, fixed seed) from the EMA model, as one PNG."""
    from diffrep.export import image_grid
    from diffrep.priors.tiny import TinyPrior
    from diffrep.samplers import sample_ddim
    from diffrep.schedule import timesteps

    prior = TinyPrior(ema, encoder)
    conds = [prior.encode_prompt(p) for p in SAMPLE_PROMPTS]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(len(conds), *prior.image_shape, generator=g)
    x0 = sample_ddim(prior, x, timesteps(len(prior.alphas_cumprod), steps), conds, guidance_scale=3.0, generator=g)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    image_grid(x0, nrow=len(conds), scale=2).save(tmp, format="PNG")
    os.replace(tmp, path)
    return path


def save_checkpoint(config: TrainConfig, model: TinyUNet, ema: TinyUNet, opt: torch.optim.Optimizer,
                    g: torch.Generator, rng: random.Random, step: int) -> Path:
    """Model, EMA, AdamW moments, step and RNG states as ``checkpoint.safetensors`` + ``checkpoint.json``."""
    opt_tensors, param_groups = optimizer_tensors(opt)
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors |= {f"ema.{k}": v for k, v in ema.state_dict().items()}
    tensors |= opt_tensors
    tensors["rng.torch"] = g.get_state()
    version, state, gauss = rng.getstate()
    meta = {"step": step, "config": {k: str(v) for k, v in asdict(config).items()}, "unet": model.config.to_dict(),
            "param_groups": param_groups, "rng.python": [version, list(state), gauss]}
    path = config.out / "checkpoint.safetensors"
    atomic_save(tensors, path, meta)
    return path


def load_checkpoint(out: Path, model: TinyUNet, ema: TinyUNet, opt: torch.optim.Optimizer,
                    g: torch.Generator, rng: random.Random) -> int:
    """Restore what ``save_checkpoint`` wrote; returns the step to continue from."""
    from safetensors.torch import load_file

    try:
        meta = json.loads((out / "checkpoint.json").read_text())
        tensors = load_file(out / "checkpoint.safetensors")
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    except Exception as e:
        raise InputError(f"checkpoint in {str(out)!r} cannot be resumed: {e}") from None
    load_optimizer(opt, tensors, meta["param_groups"])
    g.set_state(tensors["rng.torch"])
    version, s, gauss = meta["rng.python"]
    rng.setstate((version, tuple(s), gauss))
    return int(meta["step"])


def _move_optimizer(opt: torch.optim.Optimizer, device: torch.device) -> None:
    for s in opt.state.values():
        for k, v in s.items():
            if isinstance(v, Tensor) and k != "step":
                s[k] = v.to(device)


def _cpu(state: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.cpu() for k, v in state.items()}
