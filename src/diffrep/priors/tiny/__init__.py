"""The learned tiny prior: a small text-conditioned U-Net trained on the toy world (design §2).

``load_tiny(path)`` reads ``tiny.safetensors`` and the ``tiny.json`` beside it; prompts are
embedded by all-MiniLM-L6-v2 (``TextEncoder``), which needs the ``diffrep[tiny]`` extra.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from diffrep.errors import InputError
from diffrep.priors.base import in_parts
from diffrep.priors.configs import DEFAULT_WEIGHTS, TinyPriorConfig, check_weights, weights_file
from diffrep.priors.tiny.captions import HELD_OUT_COMBOS, HELD_OUT_TEMPLATES, random_caption
from diffrep.priors.tiny.text import EMBED_DIM, MAX_TOKENS, TextEncoder
from diffrep.priors.tiny.unet import TinyUNet, UNetConfig, param_count
from diffrep.schedule import linear_schedule

__all__ = [
    "TinyPrior", "TinyPriorConfig", "load_tiny", "tiny_from_config", "save_tiny", "TextEncoder", "TinyUNet", "UNetConfig", "param_count",
    "random_caption", "HELD_OUT_COMBOS", "HELD_OUT_TEMPLATES", "DEFAULT_WEIGHTS", "clip_eps",
]

class TinyPrior:
    """``diffrep.Prior`` over a ``TinyUNet`` and a ``TextEncoder``.

    ``cond`` is ``None`` (unconditional), one embedding from ``encode_prompt`` (``[384]``, or
    ``[1 + MAX_TOKENS, 384]`` with the token states for a cross-attention model), or a list of
    per-element embeddings (``None`` entries are unconditional).

    ``clip_x0`` (default on) clips the implied prediction ``x̂0 = (x_t - s_t ε̂) / a_t`` to the data
    range [-1, 1] and returns the ε consistent with it, as DDPM's ``clip_denoised`` and diffusers'
    ``clip_sample`` do: a small model's x̂0 overshoots at high noise, and without the clip its
    samples come out saturated and noisy.

    It computes on its model's device (``device``); ``eps`` takes ``x_t`` on any device and answers on it."""

    def __init__(self, model: TinyUNet, encoder: TextEncoder | None = None, alphas_cumprod: Tensor | None = None,
                 clip_x0: bool = True):
        self.model = model.eval()
        self.clip_x0 = clip_x0
        self.encoder = encoder
        self.alphas_cumprod = linear_schedule() if alphas_cumprod is None else alphas_cumprod
        self.image_shape = (3, model.config.res, model.config.res)
        self.cond_shape = (1 + MAX_TOKENS, EMBED_DIM) if model.config.cross_attention else (EMBED_DIM,)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode_prompt(self, text: str | None) -> Tensor | None:
        """The text embedding ``[384]``; ``None`` or ``""`` is unconditional (``None``: the model
        then sees the zero embedding it was trained with for empty captions)."""
        if not text:
            return None
        if self.encoder is None:
            self.encoder = TextEncoder()
        return self.encoder.condition([text], self.model.config.cross_attention)[0]

    def data_images(self, n: int, seed: int) -> Tensor:
        """Clean images of the distribution it learnt: ``n`` toy-world images at its resolution, ``[n, 3, H, W]``
        in [-1, 1] (the set ``toyworld`` with the same ``n`` and ``seed`` is built on, from the same cache)."""
        from diffrep.priors.empirical import toyworld_data

        return toyworld_data(n, self.image_shape[-1], seed)["images"].float() / 127.5 - 1

    @torch.no_grad()
    def eps(self, x_t: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        """ε̂ of ``x_t`` ``[B, 3, H, W]``, ``EVAL_BATCH`` images at a time: the U-Net's working memory (2.2 MiB an
        image at 32²) stays under 0.6 GiB however many instances a run has, as the memory estimate assumes."""
        p = next(self.model.parameters())
        text = embeddings(cond, x_t.shape[0], self.cond_shape).to(p.device, p.dtype)
        x, t = x_t.to(p.device, p.dtype), t.to(p.device).expand(x_t.shape[0])
        eps = in_parts(self.model, EVAL_BATCH, x, t, text).to(x_t.device, x_t.dtype)
        return clip_eps(x_t, t.to(x_t.device), eps, self.alphas_cumprod) if self.clip_x0 else eps


EVAL_BATCH = 256
"""Images the tiny prior's U-Net evaluates at once (``TinyPrior.eps``)."""


def clip_eps(x_t: Tensor, t: Tensor, eps: Tensor, alphas_cumprod: Tensor) -> Tensor:
    """ε whose implied ``x̂0`` is clipped to [-1, 1]: ``(x_t - a_t clip(x̂0)) / s_t``."""
    ab = alphas_cumprod.to(x_t.device, x_t.dtype)[t.to(x_t.device)].view(-1, *([1] * (x_t.ndim - 1)))
    x0 = ((x_t - (1 - ab).sqrt() * eps) / ab.sqrt()).clamp(-1, 1)
    return (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()


def embeddings(cond: Any, batch: int, shape: tuple[int, ...] = (EMBED_DIM,)) -> Tensor:
    """Condition -> text embeddings ``[batch, *shape]`` (``shape``: that of one ``encode_prompt``)."""
    if cond is None:
        return torch.zeros(batch, *shape)
    if isinstance(cond, (list, tuple)):
        return torch.stack([torch.zeros(shape) if c is None else c.cpu() for c in cond])
    return cond.expand(batch, *shape) if cond.shape == shape else cond


def save_tiny(model: TinyUNet, path: str | Path, state: dict[str, Tensor] | None = None,
              extra: dict[str, Any] | None = None) -> Path:
    """Write ``state`` (default: the model's weights) as safetensors plus the JSON config beside it
    (``extra``: provenance such as the training config and step)."""
    from diffrep.checkpoint import atomic_save

    path = Path(path)
    meta = {"unet": model.config.to_dict(), "schedule": "linear", "encoder": "all-MiniLM-L6-v2", "format": 1}
    atomic_save(state if state is not None else model.state_dict(), path, meta | (extra or {}))
    return path


def weights_sha256(path: str | Path | None = None) -> str:
    """SHA-256 of the weights ``load_tiny(path)`` reads (provenance of fine-tuning runs and benchmarks)."""
    import hashlib

    return hashlib.sha256(weights_file(path).read_bytes()).hexdigest()


def tiny_from_config(config: TinyPriorConfig, *, progress=None) -> TinyPrior:
    """The ``tiny`` prior of a config (``progress`` unused: nothing to generate)."""
    return load_tiny(config.path, config.device)


def load_tiny(path: str | Path | None = None, device: str | torch.device = "cpu") -> TinyPrior:
    """The tiny prior from ``tiny.safetensors`` (or a directory holding it) and its ``tiny.json``.

    Weights are read only through safetensors; a missing or corrupt file is an ``InputError``."""
    path = check_weights(path)
    meta = path.with_suffix(".json")
    try:
        config = UNetConfig.from_dict(json.loads(meta.read_text())["unet"])
    except (ValueError, KeyError, TypeError) as e:
        raise InputError(f"tiny prior config {str(meta)!r} is not valid: {e}") from None
    from safetensors.torch import load_file

    model = TinyUNet(config)
    try:
        model.load_state_dict(load_file(path))
    except Exception as e:  # safetensors raises its own error types for bad headers/truncation
        raise InputError(f"tiny prior weights {str(path)!r} are corrupt or do not match {meta.name}: {e}") from None
    return TinyPrior(model.to(device))
