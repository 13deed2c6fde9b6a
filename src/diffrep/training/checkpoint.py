"""Checkpoints of a training run, on ``diffrep.checkpoint``'s files: ``checkpoint.safetensors``
(modules by name, optimiser moments, torch RNG state) and ``checkpoint.json`` (step, the run's
config, param groups, Python RNG state). Restoring one continues the run bit-for-bit."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from diffrep.checkpoint import atomic_save, load_optimizer, optimizer_tensors, read_saved
from diffrep.errors import InputError


@dataclass(frozen=True)
class TrainState:
    """Everything of a run besides its step that a checkpoint holds."""

    modules: dict[str, torch.nn.Module]  # by name, the prefix of their tensors ("model", "ema", "head")
    opt: torch.optim.Optimizer
    g: torch.Generator  # CPU generator of the batches and the loss's draws
    rng: random.Random  # Python generator (e.g. captions)

    def to(self, device: torch.device) -> None:
        """Move the modules and the optimiser moments (not its step counts) to ``device``."""
        for m in self.modules.values():
            m.to(device)
        for s in self.opt.state.values():
            for k, v in s.items():
                if isinstance(v, Tensor) and k != "step":
                    s[k] = v.to(device)


def save_checkpoint(out: Path, step: int, state: TrainState, meta: dict[str, Any]) -> Path:
    """Write ``out/checkpoint.safetensors`` + ``.json`` atomically; ``meta``: JSON the run adds."""
    opt_tensors, param_groups = optimizer_tensors(state.opt)
    tensors = {f"{name}.{k}": v for name, m in state.modules.items() for k, v in m.state_dict().items()}
    tensors |= opt_tensors
    tensors["rng.torch"] = state.g.get_state()
    version, rng_state, gauss = state.rng.getstate()
    path = out / "checkpoint.safetensors"
    atomic_save(tensors, path, {"step": step, **meta, "param_groups": param_groups,
                                "rng.python": [version, list(rng_state), gauss]})
    return path


def load_checkpoint(out: Path, state: TrainState) -> tuple[int, float]:
    """Restore what ``save_checkpoint`` wrote into ``state``; returns the step to continue from and the training
    seconds spent before it (0 for checkpoints written before runs counted them)."""
    try:
        tensors, meta = read_saved(out / "checkpoint.safetensors")
        for name, m in state.modules.items():
            m.load_state_dict({k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + ".")})
    except Exception as e:
        raise InputError(f"checkpoint in {str(out)!r} cannot be resumed: {e}") from None
    load_optimizer(state.opt, tensors, meta["param_groups"])
    state.g.set_state(tensors["rng.torch"])
    version, rng_state, gauss = meta["rng.python"]
    state.rng.setstate((version, tuple(rng_state), gauss))
    return int(meta["step"]), float(meta.get("seconds", 0.0))
