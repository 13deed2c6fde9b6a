"""The top-level API: ``diffrep.sample`` (and its image-space siblings ``sdedit``, ``inpaint``)."""

from __future__ import annotations

import math
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from diffrep.errors import InputError
from diffrep.priors import CountingPrior, Prior, load
from diffrep.priors.base import check_finite_scale
from diffrep.samplers import sample_ddim, sample_ddpm, sample_repaint, sample_sdedit
from diffrep.schedule import timesteps

REPS: tuple[str, ...] = ("pixels",)
METHODS: tuple[str, ...] = ("ddim", "ddpm")
PLANNED_REPS: tuple[str, ...] = ("siren", "panorama", "nerf")
PLANNED_METHODS: tuple[str, ...] = ("ddrep", "sds", "sjc", "lmc", "nfsd", "dds", "multistep_sds", "vsd")


@dataclass
class Result:
    """What a run returns: ``images [N, C, H, W]`` in [-1, 1] and ``info`` (config, seed, timings,
    prior evaluations, versions)."""

    images: Tensor
    info: dict[str, Any] = field(default_factory=dict)

    def save(self, out: str | Path, overwrite: bool = False) -> Path:
        """Write ``samples.png`` (grid), ``samples.safetensors`` and ``run.json`` into ``out``."""
        from diffrep.export import image_grid, write_folder

        scale = max(1, 128 // self.images.shape[-1])
        files = {"samples.png": image_grid(self.images, scale=scale),
                 "samples.safetensors": {"images": self.images},
                 "run.json": self.info | {"outputs": ["samples.png", "samples.safetensors"]}}
        return write_folder(out, files, overwrite)


def versions() -> dict[str, str]:
    from diffrep import __version__

    return {"diffrep": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "machine": platform.machine()}


def resolve_prior(prior: Prior | str) -> Prior:
    return load(prior) if isinstance(prior, str) else prior


def check_choice(name: str, value: str, allowed: tuple[str, ...], planned: tuple[str, ...] = ()) -> str:
    if value in planned:
        raise InputError(f"{name} {value!r} is not available yet; available now: {', '.join(allowed)}")
    if value not in allowed:
        raise InputError(f"unknown {name} {value!r}; allowed: {', '.join(allowed)}")
    return value


def check_positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InputError(f"{name}={value!r} is not allowed; it must be a positive integer")
    return value


def check_sample_options(rep: str, method: str, n: int, steps: int, guidance_scale: float, eta: float) -> None:
    """Validate the options every sampler shares (the CLI calls this before loading a prior)."""
    check_choice("rep", rep, REPS, PLANNED_REPS)
    check_choice("method", method, METHODS, PLANNED_METHODS)
    check_positive_int("n", n), check_positive_int("steps", steps)
    check_finite_scale("guidance_scale", guidance_scale), check_finite_scale("eta", eta)


def check_strength(strength: float) -> float:
    if not (isinstance(strength, (int, float)) and math.isfinite(strength) and 0 <= strength <= 1):
        raise InputError(f"strength={strength!r} is not allowed; it must be in [0, 1]")
    return float(strength)


def _condition(prior: Prior, prompt: str | None, cond: Any) -> Any:
    if prompt is not None and cond is not None:
        raise InputError("give either prompt or cond, not both")
    return prior.encode_prompt(prompt) if prompt is not None else cond


def _progress(callback, steps: int):
    if callback is None:
        return None
    return lambda d: callback(d | {"step": d["i"] + 1, "steps": steps})


def _run(prior: Prior, fn, config: dict[str, Any], seed: int) -> Result:
    """Time ``fn(counting_prior, generator)``, count prior evaluations, assemble the result."""
    counted = CountingPrior(prior)
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    images = fn(counted, generator)
    elapsed = time.perf_counter() - start
    info = {"config": config, "seed": seed, "prior_evaluations": counted.evaluations,
            "timings": {"sampling_s": round(elapsed, 4)}, "versions": versions()}
    return Result(images.clamp(-1, 1).float(), info)


def sample(prior: Prior | str = "toyworld", *, rep: str = "pixels", method: str = "ddim", prompt: str | None = None,
           cond: Any = None, n: int = 1, seed: int = 0, steps: int = 50, guidance_scale: float = 3.0,
           eta: float = 0.0, callback=None, **options: Any) -> Result:
    """Sample ``n`` diffreps of a prompt from a prior and render them.

    >>> result = diffrep.sample("gmm", prompt="red", n=4, steps=20)
    >>> result.images.shape
    torch.Size([4, 3, 16, 16])
    """
    check_sample_options(rep, method, n, steps, guidance_scale, eta)
    if options:
        raise InputError(f"unknown option {next(iter(options))!r} for method {method!r} on rep {rep!r}")
    prior = resolve_prior(prior)
    c = _condition(prior, prompt, cond)
    ts = timesteps(len(prior.alphas_cumprod), steps)

    def run(p: Prior, g: torch.Generator) -> Tensor:
        x = torch.randn(n, *p.image_shape, generator=g)
        if method == "ddpm":
            return sample_ddpm(p, x, ts, c, guidance_scale=guidance_scale, generator=g, callback=_progress(callback, len(ts)))
        return sample_ddim(p, x, ts, c, guidance_scale=guidance_scale, eta=eta, generator=g, callback=_progress(callback, len(ts)))

    config = {"rep": rep, "method": method, "prompt": prompt, "n": n, "steps": steps,
              "guidance_scale": guidance_scale, "eta": eta if method == "ddim" else 1.0}
    return _run(prior, run, config, seed)


def _check_images(prior: Prior, image: Tensor, name: str) -> Tensor:
    if image.ndim == 3:
        image = image[None]
    if tuple(image.shape[1:]) != tuple(prior.image_shape):
        raise InputError(f"{name} has shape {tuple(image.shape[1:])}; the prior denoises {tuple(prior.image_shape)}")
    if not torch.isfinite(image).all():
        raise InputError(f"{name} contains non-finite values")
    return image


def sdedit(prior: Prior | str, image: Tensor, *, prompt: str | None = None, cond: Any = None, strength: float = 0.5,
           n: int = 1, seed: int = 0, steps: int = 50, guidance_scale: float = 3.0, eta: float = 0.0,
           callback=None) -> Result:
    """SDEdit an image ``[C, H, W]`` or ``[1, C, H, W]`` in [-1, 1] towards a prompt; ``strength`` in [0, 1]."""
    check_strength(strength)
    check_positive_int("n", n), check_positive_int("steps", steps)
    check_finite_scale("guidance_scale", guidance_scale), check_finite_scale("eta", eta)
    prior = resolve_prior(prior)
    x0 = _check_images(prior, image, "image").expand(n, -1, -1, -1)
    c = _condition(prior, prompt, cond)

    def run(p: Prior, g: torch.Generator) -> Tensor:
        return sample_sdedit(p, x0, strength, steps, c, guidance_scale=guidance_scale, eta=eta, generator=g,
                             callback=_progress(callback, steps))

    config = {"method": "sdedit", "prompt": prompt, "n": n, "steps": steps, "strength": strength,
              "guidance_scale": guidance_scale, "eta": eta}
    return _run(prior, run, config, seed)


def inpaint(prior: Prior | str, image: Tensor, mask: Tensor, *, prompt: str | None = None, cond: Any = None,
            rounds: int = 5, n: int = 1, seed: int = 0, steps: int = 50, guidance_scale: float = 3.0,
            eta: float = 1.0, callback=None) -> Result:
    """RePaint inpainting: keep ``image`` where ``mask`` is 1 (``[H, W]`` or broadcastable), fill the rest."""
    check_positive_int("n", n), check_positive_int("steps", steps), check_positive_int("rounds", rounds)
    check_finite_scale("guidance_scale", guidance_scale), check_finite_scale("eta", eta)
    prior = resolve_prior(prior)
    known = _check_images(prior, image, "image").expand(n, -1, -1, -1)
    c = _condition(prior, prompt, cond)
    ts = timesteps(len(prior.alphas_cumprod), steps)

    def run(p: Prior, g: torch.Generator) -> Tensor:
        x = torch.randn(n, *p.image_shape, generator=g)
        return sample_repaint(p, x, ts, known, mask, c, rounds=rounds, guidance_scale=guidance_scale, eta=eta,
                              generator=g, callback=_progress(callback, len(ts)))

    config = {"method": "repaint", "prompt": prompt, "n": n, "steps": steps, "rounds": rounds,
              "guidance_scale": guidance_scale, "eta": eta}
    return _run(prior, run, config, seed)
