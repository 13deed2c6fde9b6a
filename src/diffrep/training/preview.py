"""Preview images of a model in training: a DDIM sample grid written as one PNG."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from diffrep.priors.base import Prior
from diffrep.samplers import sample_ddim
from diffrep.schedule import timesteps


@torch.no_grad()
def sample_grid(prior: Prior, conds: list[Any], path: Path, steps: int, guidance_scale: float = 3.0) -> Path:
    """DDIM samples (``steps`` steps, CFG ``guidance_scale``, fixed seed 0), one per condition, as
    one row of ``path`` (PNG, written atomically)."""
    from diffrep.export import image_grid  # PIL

    g = torch.Generator().manual_seed(0)
    x = torch.randn(len(conds), *prior.image_shape, generator=g)
    x0 = sample_ddim(prior, x, timesteps(len(prior.alphas_cumprod), steps), conds, guidance_scale=guidance_scale, generator=g)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    image_grid(x0, nrow=len(conds), scale=2).save(tmp, format="PNG")
    os.replace(tmp, path)
    return path
