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

from diffrep.checkpoint import RunCheckpoint
from diffrep.errors import InputError
from diffrep.priors import CountingPrior, Prior, load
from diffrep.priors.base import check_finite_scale
from diffrep.samplers import sample_ddim, sample_ddpm, sample_repaint, sample_sdedit
from diffrep.schedule import timesteps

REPS: tuple[str, ...] = ("pixels", "siren", "panorama")
IMAGE_METHODS: tuple[str, ...] = ("ddim", "ddpm")
METHODS: tuple[str, ...] = ("ddim", "ddpm", "ddrep", "sds", "sjc")
PLANNED_REPS: tuple[str, ...] = ("nerf",)
PLANNED_METHODS: tuple[str, ...] = ("lmc", "nfsd", "dds", "multistep_sds", "vsd")


@dataclass
class Result:
    """What a run returns: ``images [N, C, H, W]`` in [-1, 1] and ``info`` (config, seed, timings,
    prior evaluations, versions)."""

    images: Tensor
    info: dict[str, Any] = field(default_factory=dict)
    rep: Any = None
    """The sampled diffrep (an ``nn.Module`` with ``n`` instances), for diffrep methods."""
    views: Tensor | None = None
    """Panoramas: a strip of views ``[N, V, C, H, W]``."""

    def save(self, out: str | Path, overwrite: bool = False) -> Path:
        """Write ``samples.png`` (grid; panoramas one per row), ``samples.safetensors``,
        ``run.json``, and for diffreps ``rep.safetensors`` (weights) and ``views.png`` (panoramas)."""
        from diffrep.export import image_grid, write_folder

        h, w = self.images.shape[-2:]
        scale = max(1, 128 // h)
        files = {"samples.png": image_grid(self.images, nrow=1 if w > 2 * h else None, scale=scale),
                 "samples.safetensors": {"images": self.images}}
        if self.rep is not None:
            files["rep.safetensors"] = dict(self.rep.state_dict())
        if self.views is not None:
            files["views.png"] = image_grid(self.views.flatten(0, 1), nrow=self.views.shape[1], scale=scale)
        files["run.json"] = self.info | {"outputs": sorted(files)}
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
    if method in IMAGE_METHODS and rep != "pixels":
        raise InputError(f"method {method!r} samples images directly and needs rep 'pixels'; "
                         f"for rep {rep!r} use one of: ddrep, sds, sjc")


def check_checkpointing(method: str, checkpoint_every: int, resume: bool) -> None:
    """Checkpoints are for the diffrep methods; ``checkpoint_every`` is a count (0: none)."""
    if method in IMAGE_METHODS and (checkpoint_every or resume):
        raise InputError(f"checkpoints are written by the diffrep methods (ddrep, sds, sjc), not {method!r}, "
                         "which runs in seconds")
    if checkpoint_every < 0:
        raise InputError(f"checkpoint_every={checkpoint_every} is not allowed; it must be >= 0 (0: no checkpoints)")


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
    out = fn(counted, generator)
    elapsed = time.perf_counter() - start
    result = out if isinstance(out, Result) else Result(out)
    result.images = result.images.clamp(-1, 1).float()
    result.info = {"config": config, "seed": seed, "prior_evaluations": counted.evaluations,
                   "timings": {"sampling_s": round(elapsed, 4)}, "versions": versions()}
    return result


def split_options(options: dict[str, Any], *configs: type) -> tuple[list[Any], dict[str, Any]]:
    """Build each config dataclass from the options named by its fields; return the rest."""
    from dataclasses import fields

    rest, built = dict(options), []
    for cls in configs:
        names = {f.name for f in fields(cls)}
        built.append(cls(**{k: rest.pop(k) for k in list(rest) if k in names}))
    return built, rest


def method_options(method: str, rep: str, options: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """Split flat options into the method's validated dataclasses and the rep's options."""
    from diffrep.methods import DDRepOptions, OptimConfig, SDSOptions, SJCOptions
    from diffrep.methods.validate import check_method_options

    method_cls = {"ddrep": (DDRepOptions,), "sds": (SDSOptions, OptimConfig), "sjc": (SJCOptions, OptimConfig)}[method]
    method_opts, rep_opts = split_options(options, *method_cls)
    check_method_options(method, method_opts, rep)
    return method_opts, rep_opts


def _diffrep_run(method: str, rep_name: str, n: int, steps: int, cond: Any, guidance_scale: float, eta: float,
                 options: dict[str, Any], callback, checkpoint: RunCheckpoint | None = None, resume: bool = False):
    """The closure that samples a diffrep with ``method``; validates every option before running.

    With ``checkpoint``, the rep, the noise state or optimiser, and the generator are saved every
    ``checkpoint.every`` steps (iterations for SDS/SJC); ``resume`` continues from the last one."""
    from diffrep.methods import ddrep_sample, run_sds, run_sjc
    from diffrep.reps import make_rep

    method_opts, rep_opts = method_options(method, rep_name, options)

    def run(p: Prior, g: torch.Generator) -> Result:
        rep = make_rep(rep_name, p.image_shape, n, generator=g, **rep_opts)
        if method == "ddrep" and method_opts[0].solver == "closed" and not rep.linear:
            raise InputError(f"solver 'closed' needs a diffrep linear in its parameters; this {rep_name} is not "
                             "(tanh or augmentation make pixels nonlinear)")
        state = checkpoint.load() if checkpoint is not None and resume else None
        if state is not None:
            rep.load_state_dict({k[4:]: v for k, v in state[1].items() if k.startswith("rep.")})
            g.set_state(state[1]["rng"])
        ts = timesteps(len(p.alphas_cumprod), steps)
        total = len(ts) if method == "ddrep" else method_opts[1].iters
        progress = _progress(callback, total)

        def step_done(d: dict[str, Any], tensors: dict[str, Tensor], meta: dict[str, Any] | None = None) -> None:
            if checkpoint is not None and checkpoint.due(d["i"] + 1, total):
                rep_state = {f"rep.{k}": v for k, v in rep.state_dict().items()}
                checkpoint.save(d["i"] + 1, rep_state | tensors | {"rng": g.get_state()}, meta)
            if progress is not None:
                progress(d)

        if method == "ddrep":
            o = method_opts[0]
            ddrep_sample(p, rep, ts, cond, guidance_scale=guidance_scale, eta=eta,
                         rounds=o.rounds, pull=o.pullback(), views_per_step=o.views_per_step, generator=g,
                         noise=None if state is None else state[1]["noise"], start=0 if state is None else state[0],
                         callback=lambda d: step_done(d, {"noise": d["noise"]}))
        else:
            from diffrep.checkpoint import optimizer_state, optimizer_tensors

            def distill_done(d: dict[str, Any]) -> None:
                tensors, groups = optimizer_tensors(d["optimizer"])
                step_done(d, tensors, {"param_groups": groups, "scheduler": d["scheduler"].state_dict()})

            resumed = None if state is None else {
                "start": state[0], "optimizer": optimizer_state(state[1], state[2]["param_groups"]),
                "scheduler": state[2]["scheduler"]}
            fn = run_sds if method == "sds" else run_sjc
            fn(p, rep, cond, guidance_scale=guidance_scale, options=method_opts[0], optim=method_opts[1], generator=g,
               callback=distill_done, resume=resumed)
        if checkpoint is not None:
            checkpoint.remove()
        return render_result(rep)

    return run, method_opts


@torch.no_grad()
def render_result(rep) -> Result:
    """Canonical renders (panoramas: the full canvas plus a strip of 6 evenly spaced views)."""
    if hasattr(rep, "canvas"):
        W = rep.canvas_shape[-1]
        views = torch.arange(6).mul(W // 6).expand(rep.n, 6)
        return Result(rep.canvas(), rep=rep, views=rep(views).clamp(-1, 1))
    return Result(rep(None)[:, 0], rep=rep)


def sample(prior: Prior | str = "toyworld", *, rep: str = "pixels", method: str = "ddim", prompt: str | None = None,
           cond: Any = None, n: int = 1, seed: int = 0, steps: int = 50, guidance_scale: float = 3.0,
           eta: float = 0.0, callback=None, checkpoint: str | Path | None = None, checkpoint_every: int = 0,
           resume: bool = False, **options: Any) -> Result:
    """Sample ``n`` diffreps of a prompt from a prior and render them.

    Diffrep methods checkpoint into the folder ``checkpoint`` every ``checkpoint_every`` steps
    (DDRep) or iterations (SDS, SJC); ``resume=True`` continues from its last checkpoint (same
    options and seed), bit for bit on the CPU. The folder is removed when the run completes.

    >>> result = diffrep.sample("gmm", prompt="red", n=4, steps=20)
    >>> result.images.shape
    torch.Size([4, 3, 16, 16])
    """
    check_sample_options(rep, method, n, steps, guidance_scale, eta)
    if method in IMAGE_METHODS and options:
        raise InputError(f"unknown option {next(iter(options))!r} for method {method!r} on rep {rep!r}")
    prior = resolve_prior(prior)
    c = _condition(prior, prompt, cond)
    config = {"rep": rep, "method": method, "prompt": prompt, "n": n, "steps": steps,
              "guidance_scale": guidance_scale, "eta": eta if method in ("ddim", "ddrep") else 1.0}
    check_checkpointing(method, checkpoint_every, resume)
    if method not in IMAGE_METHODS:
        from dataclasses import asdict

        ckpt = None if checkpoint is None else RunCheckpoint(Path(checkpoint), checkpoint_every,
                                                             config | {"seed": seed, "options": options})
        run, method_opts = _diffrep_run(method, rep, n, steps, c, guidance_scale, eta, options, callback, ckpt, resume)
        return _run(prior, run, config | {"options": options} | {type(o).__name__: asdict(o) for o in method_opts}, seed)
    ts = timesteps(len(prior.alphas_cumprod), steps)

    def run(p: Prior, g: torch.Generator) -> Tensor:
        x = torch.randn(n, *p.image_shape, generator=g)
        if method == "ddpm":
            return sample_ddpm(p, x, ts, c, guidance_scale=guidance_scale, generator=g, callback=_progress(callback, len(ts)))
        return sample_ddim(p, x, ts, c, guidance_scale=guidance_scale, eta=eta, generator=g, callback=_progress(callback, len(ts)))

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
