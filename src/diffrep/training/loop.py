"""The training loop shared by every trainer: AdamW steps on a loss, an EMA of the weights,
periodic checkpoints that ``resume`` continues bit-for-bit, and preview images.

A trainer supplies a ``Task`` (model, loss, batch source) and a ``LoopConfig``:

>>> task = Task(model, loss=lambda m, batch, g: ((m(batch[0]) - batch[1]).pow(2).mean(), {}),
...             batches=lambda g, rng: draw(g))
>>> fitted = fit(task, LoopConfig(out=Path("runs/toy"), steps=100), resume=True, callback=print)
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor

from diffrep.training.checkpoint import TrainState, load_checkpoint, save_checkpoint
from diffrep.training.config import DEVICES, check_loop_config  # noqa: F401 (torch-free, re-exported)

T = TypeVar("T")
C = TypeVar("C")
Loss = Callable[[torch.nn.Module, Any, torch.Generator], tuple[Tensor, dict[str, float]]]
Batches = Callable[[torch.Generator, random.Random], Any]


@dataclass(frozen=True)
class LoopConfig:
    """Hyperparameters of the loop; a trainer's own config repeats these names (``TrainConfig``)."""

    out: Path  # run directory: checkpoint.safetensors + checkpoint.json, samples-<step>.png
    steps: int = 1000  # total optimiser steps
    lr: float = 4e-4  # AdamW learning rate (constant)
    ema_decay: float = 0.999  # EMA of the weights (with warm-up, ``ema_decay_at``)
    checkpoint_every: int = 1000  # steps between checkpoints (0: only at the end)
    sample_every: int = 0  # steps between previews (0: never)
    seed: int = 0  # seed of the loop's generators: ``g`` (torch) and ``rng`` (Python)
    device: str = "auto"  # "auto" (CUDA when present), "cpu" or "cuda"


@dataclass(frozen=True)
class Task:
    """What a trainer supplies to ``fit``; the loop owns the optimiser, the EMA and the randomness."""

    model: torch.nn.Module  # trained, averaged (EMA) and returned; ``fit`` moves it to the device
    loss: Loss  # (model, batch, g) -> (objective to minimise, metrics to report as floats)
    batches: Batches  # (g, rng) -> the next batch, on the device
    extra: dict[str, torch.nn.Module] = field(default_factory=dict)  # trained beside the model (no EMA), e.g. a head
    preview: Callable[[torch.nn.Module, Path], Path] | None = None  # (EMA model, file) -> file written
    meta: dict[str, Any] = field(default_factory=dict)  # JSON kept in each checkpoint (the run's config)
    at_step: Callable[[int], None] | None = None  # told the step about to run (0-based), before its batch: schedules

    def __post_init__(self):
        if {"model", "ema"} & self.extra.keys():
            raise ValueError(f"Task.extra may not be named 'model' or 'ema' (checkpoint prefixes); got {sorted(self.extra)}")


@dataclass(frozen=True)
class Fitted:
    """The trained model, its EMA and the step they reached."""

    model: torch.nn.Module
    ema: torch.nn.Module
    step: int


def subconfig(cls: type[C], config: Any) -> C:
    """The fields of ``cls`` (``LoopConfig``, a loss's config) taken by name from a trainer's ``config``."""
    return cls(**{f.name: getattr(config, f.name) for f in fields(cls)})


def resolve_device(name: str) -> torch.device:
    """``"auto"``: CUDA when present, else the CPU; ``"cpu"`` and ``"cuda"`` as named."""
    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else "cpu" if name == "auto" else name)


def seeded(seed: int, build: Callable[[], T]) -> T:
    """``build()`` with the global torch RNG seeded (module initialisers draw from it); the caller's
    global RNG is left untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def fit(task: Task, config: LoopConfig, *, resume: bool = False,
        callback: Callable[[dict[str, Any]], None] | None = None) -> Fitted:
    """Minimise ``task.loss`` with AdamW for ``config.steps`` steps; ``resume`` continues from the
    checkpoint in ``config.out``. Reports ``{"step", "steps", "loss", "seconds", **metrics}`` (and
    ``"checkpoint"``, ``"samples"`` paths when written) to ``callback`` after each step."""
    device = resolve_device(config.device)
    ema = copy.deepcopy(task.model).requires_grad_(False)
    trained = {"model": task.model, **task.extra}
    opt = torch.optim.AdamW([p for m in trained.values() for p in m.parameters()], lr=config.lr)
    state = TrainState({"model": task.model, "ema": ema, **task.extra}, opt,
                       torch.Generator().manual_seed(config.seed), random.Random(config.seed))
    resuming = resume and (config.out / "checkpoint.json").is_file()
    step, before = load_checkpoint(config.out, state) if resuming else (0, 0.0)
    state.to(device)
    t0 = time.perf_counter() - before  # "seconds": the run's training time, over every resume
    while step < config.steps:
        if task.at_step is not None:
            task.at_step(step)
        metrics = train_step(task, opt, state.g, state.rng)
        ema_update(ema, task.model, ema_decay_at(config.ema_decay, step))
        step += 1
        info = {"step": step, "steps": config.steps, "loss": metrics["loss"], "seconds": time.perf_counter() - t0} | metrics
        if config.checkpoint_every and step % config.checkpoint_every == 0 or step == config.steps:
            info["checkpoint"] = save_checkpoint(config.out, step, state, task.meta | {"seconds": info["seconds"]})
        if task.preview is not None and config.sample_every and step % config.sample_every == 0:
            info["samples"] = task.preview(ema, config.out / f"samples-{step:07d}.png")
        if callback is not None:
            callback(info)
    return Fitted(task.model, ema, step)


def train_step(task: Task, opt: torch.optim.Optimizer, g: torch.Generator, rng: random.Random) -> dict[str, float]:
    """One optimiser step on a fresh batch; returns ``{"loss": objective} | metrics`` (metrics may name ``loss``)."""
    objective, metrics = task.loss(task.model, task.batches(g, rng), g)
    opt.zero_grad(set_to_none=True)
    objective.backward()
    opt.step()
    return {"loss": objective.item()} | metrics


def ema_decay_at(decay: float, step: int) -> float:
    """EMA decay with warm-up, ``min(decay, (1 + step) / (10 + step))``: early on the average would
    otherwise sit mostly on the random initial weights."""
    return min(decay, (1 + step) / (10 + step))


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """``theta_ema <- decay theta_ema + (1 - decay) theta``."""
    for pe, p in zip(ema.parameters(), model.parameters()):
        pe.lerp_(p, 1 - decay)
