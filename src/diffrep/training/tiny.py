"""Training of the tiny prior: its ε-loss (``diffrep.priors.tiny.loss``) on toy-world images with
augmented captions, minimised by the shared loop (``diffrep.training.fit``).

>>> from diffrep.training.tiny import TrainConfig, train
>>> weights = train(TrainConfig(out=Path("runs/tiny"), steps=20_000), resume=True, callback=print)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import torch

from diffrep.errors import InputError
from diffrep.priors.tiny import TextEncoder, TinyPrior, TinyUNet, UNetConfig, load_tiny, save_tiny, weights_sha256
from diffrep.priors.tiny.loss import LabelHead, LossConfig, draw_batch, eps_loss, ideal_denoiser, training_set
from diffrep.schedule import linear_schedule
from diffrep.training.config import TrainConfig
from diffrep.training.loop import (
    Fitted, LoopConfig, Task, check_loop_config, fit, resolve_device, seeded, subconfig,
)
from diffrep.training.preview import sample_grid

SAMPLE_PROMPTS: tuple[str, ...] = (
    "a red ball, front view", "a blue cube, side view", "a yellow duck, back view", "a green car, overhead view",
    "a crimson mug seen from the side", "something purple", "a teapot", "",
)


def train(config: TrainConfig, *, resume: bool = False, callback: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """Train (or continue) a tiny prior; returns the path of the exported EMA ``tiny.safetensors``."""
    check_config(config)
    device = resolve_device(config.device)
    data = training_set(config.data_n, config.res, config.seed)
    model, head = seeded(config.seed, partial(build, config))
    init_sha256 = init_from(model, config.init) if config.init is not None else None
    encoder = TextEncoder()
    loss = partial(eps_loss, ab=linear_schedule().to(device, torch.float32), config=subconfig(LossConfig, config),
                   head=head, ideal=ideal_denoiser(*data) if config.exact_target else None)
    batches = partial(draw_batch, data, config.batch, encoder=encoder, tokens=config.cross_attention, device=device)
    task = Task(model, loss, batches, extra={"head": head} if head is not None else {},
                preview=partial(preview, encoder=encoder, steps=config.sample_steps),
                meta={"config": {k: str(v) for k, v in asdict(config).items()}, "unet": model.config.to_dict()})
    return export(fit(task, subconfig(LoopConfig, config), resume=resume, callback=callback), config, init_sha256)


def build(config: TrainConfig) -> tuple[TinyUNet, LabelHead | None]:
    """The U-Net and, with ``label_loss``, the label head, initialised from the global torch RNG."""
    model = TinyUNet(UNetConfig(res=config.res, channels=config.channels, cross_attention=config.cross_attention,
                                scale_shift=config.scale_shift, scale_shift_res=config.scale_shift_res))
    return model, LabelHead(4 * config.channels) if config.label_loss else None


def preview(ema: TinyUNet, path: Path, *, encoder: TextEncoder, steps: int) -> Path:
    """DDIM samples of ``SAMPLE_PROMPTS`` (CFG 3, fixed seed) from the EMA model, as one PNG."""
    prior = TinyPrior(ema, encoder)
    return sample_grid(prior, [prior.encode_prompt(p) for p in SAMPLE_PROMPTS], path, steps)


def export(fitted: Fitted, config: TrainConfig, init_sha256: str | None) -> Path:
    """The EMA weights as ``out/tiny.safetensors`` (float16 with ``half``) + ``tiny.json`` with the run's config."""
    # Paths are recorded by their last part only: shipped metadata names no folder of the training machine.
    training = {k: Path(v).name if k in ("out", "init") and v else v for k, v in asdict(config).items()}
    cpu = {k: v.cpu() for k, v in fitted.ema.state_dict().items()}
    state = {k: v.half() if config.half and v.is_floating_point() else v for k, v in cpu.items()}
    return save_tiny(fitted.ema, config.out / "tiny.safetensors", state,
                     {"training": training | {"step": fitted.step, "ema": True, "init_sha256": init_sha256}})


# Options that add layers whose output starts at zero, by config key and parameter-name part:
# a model with them loaded from weights trained without them computes the same function.
ADDED_AT_ZERO: dict[str, str] = {"cross_attention": ".cross.", "scale_shift": ".film.", "scale_shift_res": ".film."}


def init_from(model: TinyUNet, path: Path) -> str:
    """Load ``tiny.safetensors`` weights into ``model`` for fine-tuning; layers the file lacks
    (``ADDED_AT_ZERO``: cross-attention, scale-shift of a model trained without them) keep their
    initialisation, which leaves the loaded model's function unchanged. Returns the file's SHA-256."""
    loaded = load_tiny(path).model  # the same checks and one-line errors as --prior-path
    mine, theirs = model.config.to_dict(), loaded.config.to_dict()
    if any(mine[k] != theirs[k] for k in mine if k not in ADDED_AT_ZERO):
        raise InputError(f"init={str(path)!r} has architecture {theirs}, which does not match this run's {mine}")
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    if unexpected or any(not any(part in k for part in ADDED_AT_ZERO.values()) for k in missing):
        raise InputError(f"init={str(path)!r} does not fit this run: missing {missing}, unexpected {unexpected}")
    return weights_sha256(path)


def check_config(config: TrainConfig) -> None:
    """Validate a ``TrainConfig`` at the edge."""
    if config.res not in (32, 64):
        raise InputError(f"res={config.res} is not allowed; the toy world renders 32 or 64")
    check_loop_config(subconfig(LoopConfig, config))
    for name in ("batch", "data_n", "channels", "sample_steps"):
        if getattr(config, name) < 1:
            raise InputError(f"{name}={getattr(config, name)} must be a positive integer")
    if config.channels % 8:
        raise InputError(f"channels={config.channels} must be a multiple of 8 (GroupNorm groups)")
    if config.label_loss < 0:
        raise InputError(f"label_loss={config.label_loss} must be >= 0 (0: no auxiliary loss)")
    if not 0 <= config.focus_p <= 1:
        raise InputError(f"focus_p={config.focus_p} must be in [0, 1] (0: t uniform over all steps)")
    if not 0 <= config.focus_t[0] < config.focus_t[1] <= 1000:
        raise InputError(f"focus_t={config.focus_t} must be lo < hi within [0, 1000] (the noise steps)")
    sides = [config.res >> i for i in range(len(UNetConfig().mults))]
    if config.scale_shift_res and (not config.scale_shift or config.scale_shift_res not in sides):
        raise InputError(f"scale_shift_res={config.scale_shift_res} is not allowed; with --scale-shift: 0 (every block) "
                         f"or a feature-map side, {', '.join(map(str, sides))}")
    if config.p2_gamma < 0:
        raise InputError(f"p2_gamma={config.p2_gamma} must be >= 0 (0: the plain ε-loss)")
    if config.init is not None and not Path(config.init).exists():
        raise InputError(f"init={str(config.init)!r} does not exist; give a tiny.safetensors file or the folder holding it")
