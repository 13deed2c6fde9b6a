"""The top-level API: ``diffrep.sample`` (and its image-space siblings ``sdedit``, ``inpaint``).

``sample`` reads its rep and method from the tables ``diffrep.reps.REPS`` and
``diffrep.methods.METHODS``: no method or rep is named here.
"""

from __future__ import annotations

import functools
import math
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from diffrep.checkpoint import RunCheckpoint
from diffrep.checks import check_positive_int
from diffrep.errors import InputError, RunError
from diffrep.methods import METHODS, MethodEntry, Sampling, ViewPrompt
from diffrep.priors import CountingPrior, Prior, draw_noise, latent, load, loaded_record, prior_device, to_rgb
from diffrep.priors.base import from_rgb, rgb_size
from diffrep.reps import REPS, make_rep, rep_name
from diffrep.samplers import sample_repaint, sample_sdedit
from diffrep.schedule import timesteps
from diffrep.spec import (  # noqa: F401 (re-exported: the API's checks before the work)
    RunSpec,
    build_config,
    check_checkpointing,
    check_prompt,
    check_seed,
    check_strength,
    encodes,
    prepare,
    run_spec,
)
from diffrep.toyworld.scene_text import ScenePrompt


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
    outputs: Any = None
    """``() -> {name: file}``: the rep's extra files (its table entry's ``outputs``), made when saved."""
    checkpoint: Path | None = None
    """A run's checkpoint folder kept until the result is saved (``sample(..., keep_checkpoint=True)``)."""

    def save(self, out: str | Path, overwrite: bool = False, extra: dict[str, bytes] | None = None) -> Path:
        """Write ``samples.png`` (grid; panoramas one per row), ``samples.safetensors``,
        ``run.json``, and for diffreps ``rep.safetensors`` (weights) and ``views.png`` (panoramas); ``extra``: more
        files (name -> bytes) written with them and listed in run.json, e.g. the command line's previews."""
        from diffrep.export import image_grid, write_folder

        scale = max(1, 128 // self.images.shape[-2])
        files = {"samples.png": samples_grid(self.images), "samples.safetensors": {"images": self.images}}
        if self.rep is not None:
            files["rep.safetensors"] = dict(self.rep.state_dict())
        if self.views is not None:
            files["views.png"] = image_grid(self.views.flatten(0, 1), nrow=self.views.shape[1], scale=scale)
        if self.outputs is not None:
            files |= self.outputs()
        files |= extra or {}
        files["run.json"] = self.info | {"outputs": sorted(files)}
        try:
            out = write_folder(out, files, overwrite)
        except OSError as e:  # a full disk, a folder made read-only: nothing half-written is left
            kept = f"; the run's last checkpoint is kept in {str(self.checkpoint)!r}" if self.checkpoint else ""
            raise RunError(f"cannot write the results into {str(out)!r} ({e.strerror or e}); nothing half-written "
                           f"is left{kept}") from None
        if self.checkpoint is not None:  # the result is safe: the run's checkpoint is no longer needed
            shutil.rmtree(self.checkpoint, ignore_errors=True)
        return out


def samples_grid(images: Tensor) -> Any:
    """``samples.png`` of ``images [N, C, H, W]`` in [-1, 1]: a grid, wide images (panoramas, a NeRF's strip of
    views) one per row, scaled up to about 128 pixels a side."""
    from diffrep.export import image_grid

    h, w = images.shape[-2:]
    return image_grid(images, nrow=1 if w > 2 * h else None, scale=max(1, 128 // h))


def preview_image(prior: Prior, rep: Any) -> Any:
    """A diffrep as it is now, as ``samples.png`` would show it (its ``preview()``, a latent prior's latents
    decoded): a PIL image, for previews during a run, e.g. from ``sample``'s callback, which hears ``rep`` after
    every step (the command line's ``--preview-every``).

    >>> hear = lambda d: d["step"] % 10 or preview_image(prior, d["rep"]).save(f"step-{d['step']}.png")
    >>> diffrep.sample(prior, rep="nerf", method="ddrep", prompt="a yellow duck", callback=hear)
    """
    with torch.no_grad():
        return samples_grid(to_rgb(prior, rep.preview()[0]).clamp(-1, 1).float().cpu())


def versions() -> dict[str, str]:
    from diffrep.version import __version__

    return {"diffrep": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "machine": platform.machine()}


def resolve_prior(prior: Prior | str) -> Prior:
    """A prior by name (``diffrep.priors.load``), or a ``diffrep.Prior`` as it is."""
    if isinstance(prior, str):
        return load(prior)
    if not isinstance(prior, Prior):
        raise InputError(f"prior must be a diffrep.Prior or a prior's name; got {type(prior).__name__}")
    return prior


def _check_unloaded(prior: Prior | str, prompt: str | None, method: str, *, image: bool, rep: str | None = None,
                    labels: tuple[str, ...] = (), options: Any = None, rep_options: Any = None) -> None:
    """Before a prior given by name loads (a toy-world data set is generated on first use, ~30 s; a Stable
    Diffusion reads gigabytes): the method and rep it runs with (``check_run``), its prompt and view prompts.
    A loaded prior: the method and rep, before the run."""
    from diffrep.priors import check_prompt, prior_config
    from diffrep.spec import check_run

    config = prior_config(prior) if isinstance(prior, str) else prior
    check_run(config, method, image=image, rep=rep, options=options, rep_options=rep_options)
    if isinstance(prior, str) and prompt is not None:
        check_prompt(config, prompt, labels)


def _condition(prior: Prior, prompt: str | None, cond: Any) -> Any:
    if prompt is not None and cond is not None:
        raise InputError("give either prompt or cond, not both")
    return prior.encode_prompt(prompt) if prompt is not None else cond


def _view_condition(prior: Prior, prompt: str | None, cond: Any, labels: tuple[str, ...] = (),
                    scene: bool = False, n: int | None = None, seed: int | None = None) -> Any:
    """A prompt as a ``ViewPrompt``, so reps with view labels condition each view on its own prompt;
    the prompt and its view prompts (``labels``) are encoded now, so a bad prompt fails before the work.
    ``scene``: the prompt names a whole scene (the panorama), encoded by the prior's ``encode_scene_prompt``
    where it has one (given the run's ``n`` and ``seed``, from which it may draw a layout per instance)."""
    if prompt is None or cond is not None:
        return _condition(prior, prompt, cond)
    encode = getattr(prior, "encode_scene_prompt", None) if scene else None
    encode = encode and functools.partial(encode, n=n, seed=seed)
    view_prompt = ViewPrompt(prompt, encode or prior.encode_prompt, camera=getattr(prior, "with_camera", None))
    for label in (None, *labels):
        view_prompt(label)
    return view_prompt


def _progress(callback, steps: int):
    if callback is None:
        return None
    return lambda d: callback(d | {"step": d["i"] + 1, "steps": steps})


def _run(prior: Prior, fn, config: dict[str, Any], seed: int) -> Result:
    """Time ``fn(counting_prior, generator)``, count prior evaluations, assemble the result (the seed is
    checked by the callers, before the prior is loaded)."""
    counted = CountingPrior(prior)
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    out = fn(counted, generator)
    elapsed = time.perf_counter() - start
    result = out if isinstance(out, Result) else Result(out)
    # Latent priors: what is saved and shown is the decoded RGB (the rep keeps the latents).
    result.images = to_rgb(prior, result.images).clamp(-1, 1).float().cpu()
    if result.views is not None:
        result.views = to_rgb(prior, result.views.flatten(0, 1)).unflatten(0, result.views.shape[:2]).clamp(-1, 1).cpu()
    result.info = {"config": loaded_record(prior) | config, "seed": seed, "prior_evaluations": counted.evaluations,
                   "timings": {"sampling_s": round(elapsed, 4)}, "versions": versions()}
    return result


def save_state(checkpoint: RunCheckpoint, rep, state, generator: torch.Generator) -> None:
    """Checkpoint ``rep`` + the method's ``state`` + the generator, whatever the method."""
    tensors, meta = state.checkpoint()
    rep_state = {f"rep.{k}": v for k, v in rep.state_dict().items()}
    try:
        checkpoint.save(state.step, rep_state | {f"state.{k}": v for k, v in tensors.items()}
                        | {"rng": generator.get_state()}, {"state": meta})
    except OSError as e:  # a full disk, a folder made read-only: the previous checkpoint is intact
        kept = "; the last good checkpoint is kept" if checkpoint.exists() else ""
        raise RunError(f"cannot write the checkpoint of step {state.step} into {str(checkpoint.folder)!r} "
                       f"({e.strerror or e}){kept}") from None


def load_state(checkpoint: RunCheckpoint, entry: MethodEntry, rep, generator: torch.Generator):
    """Restore ``rep`` and the generator from the last checkpoint; the method's state, or ``None``."""
    saved = checkpoint.load()
    if saved is None:
        return None
    step, tensors, meta = saved
    rep.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("rep.")})
    generator.set_state(tensors["rng"])
    return entry.state.restore(step, {k[6:]: v for k, v in tensors.items() if k.startswith("state.")}, meta["state"])


def check_finite_rep(rep, step: int, checkpoint: RunCheckpoint | None) -> None:
    """Stop the run, before anything non-finite is checkpointed, if the rep's parameters are not finite."""
    with torch.no_grad():
        finite = all(bool(torch.isfinite(p).all()) for p in rep.parameters())
    if not finite:
        kept = "" if checkpoint is None or not checkpoint.exists() else f"; the last good checkpoint is kept in {str(checkpoint.folder)!r}"
        raise RunError(f"the diffrep's parameters became non-finite at step {step} (a prior returning NaN or inf, "
                       f"or a learning rate too large){kept}")


def _method_run(spec: RunSpec, n: int, cond: Any, callback, checkpoint: RunCheckpoint | None, resume: bool,
                keep_checkpoint: bool = False):
    """The closure that runs ``spec`` on a prior: build the rep, restore, run with checkpoints, render."""
    entry = spec.entry

    def run(p: Prior, g: torch.Generator) -> Result:
        rep = make_rep(spec.rep_options, p.image_shape, n, generator=g).to(prior_device(p))
        if (wrap_rep := getattr(p, "wrap_rep", None)) is not None:  # a prior that encodes RGB renders (sd, rgb=True)
            rep = wrap_rep(rep)
        state = load_state(checkpoint, entry, rep, g) if checkpoint is not None and resume else None

        def step_done(d: dict[str, Any]) -> None:
            check_finite_rep(rep, d["i"] + 1, checkpoint)
            if checkpoint is not None and checkpoint.due(d["i"] + 1, d["steps"]):
                save_state(checkpoint, rep, d["state"], g)
            if callback is not None:
                callback(d | {"step": d["i"] + 1, "rep": rep})

        out = entry.run(p, rep, cond, spec.options, sampling=spec.sampling, generator=g, state=state, callback=step_done)
        if checkpoint is not None and not keep_checkpoint:
            checkpoint.remove()
        images, views = out if entry.image and out is not None else rep.preview()  # an image method's own images
        outputs, rendered = REPS[spec.rep].outputs, getattr(rep, "rep", rep)  # the RGB rep inside an encoded one
        return Result(images, rep=None if entry.image else rendered, views=views,
                      outputs=None if outputs is None or entry.image else (lambda: outputs(rendered)),
                      checkpoint=Path(checkpoint.folder) if checkpoint is not None and keep_checkpoint else None)

    return run


def sample(prior: Prior | str = "toyworld", *, rep: str | Any = "pixels", method: str | Any | None = None,
           prompt: str | None = None, cond: Any = None, n: int = 1, seed: int = 0, steps: int = 50,
           guidance_scale: float = 3.0, eta: float = 0.0, callback=None, checkpoint: str | Path | None = None,
           checkpoint_every: int | None = 0, resume: bool = False, keep_checkpoint: bool = False,
           **options: Any) -> Result:
    """Sample ``n`` diffreps of a prompt from a prior and render them.

    ``rep`` and ``method`` are names from ``diffrep.reps.REPS`` and ``diffrep.methods.METHODS`` with
    their options as keywords (``width=128``, ``iters=400``), or config objects
    (``rep=SirenConfig(width=128), method=SDSOptions(optim=OptimConfig(iters=400))``). Without a method, the
    rep's own (``diffrep.spec.default_method``): DDIM on pixels, DDRep on a diffrep (SDS on the canvas).

    Methods with a state checkpoint into the folder ``checkpoint`` every ``checkpoint_every`` steps
    (DDRep) or iterations (SDS, SJC; ``None``: a tenth of the run); ``resume=True`` continues from
    its last checkpoint (same options and seed), bit for bit on the CPU. The folder is removed
    when the run completes, or with ``keep_checkpoint`` only once ``Result.save`` has written the result.
    ``callback(dict)`` hears after each step or iteration: ``step``, ``steps``, ``rep`` (the diffrep as it
    is) and the method's own keys.

    >>> result = diffrep.sample("gmm", prompt="red", n=4, steps=20)
    >>> result.images.shape
    torch.Size([4, 3, 16, 16])
    """
    spec, ckpt = prepare(rep, method, sampling=Sampling(steps, guidance_scale, eta), n=n, seed=seed, prompt=prompt,
                         checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume,
                         encoded=encodes(prior), **options)
    labels = REPS[spec.rep].labels(spec.rep_options)
    _check_unloaded(prior, prompt, spec.method, image=spec.entry.image, rep=spec.rep, labels=labels,
                    options=spec.options, rep_options=None if spec.entry.image else spec.rep_options)
    rep_options, views = None if spec.entry.image else spec.rep_options, views_per_step(spec.options)
    check_memory_unloaded(prior, n, rep_options, views)
    prior = resolve_prior(prior)
    check_budget(prior, steps, n, rep_options, views)
    c = _view_condition(prior, prompt, cond, labels, REPS[spec.rep].scene_prompt, n, seed)
    run = _method_run(spec, n, c, callback, ckpt, resume, keep_checkpoint)
    result = _run(prior, run, {"prompt": prompt, "n": n, "image_shape": list(prior.image_shape)} | spec.record(), seed)
    scene = c(None) if isinstance(c, ViewPrompt) else None
    if isinstance(scene, ScenePrompt) and scene.layout is not None:
        result.info["scene_layout"] = scene.layout_record()  # where each instance's objects stand (docs/reps.md)
    return result


def check_budget(prior: Prior, steps: int, n: int, rep_options: Any = None, views: int = 1) -> None:
    """What needs the prior: ``steps`` at most its number of timesteps, and the run's estimated peak memory within
    the memory available (checked again where ``check_memory_unloaded`` could before the prior loaded: the rep's
    render is counted once, ``probe_activations``)."""
    T = len(prior.alphas_cumprod)
    if steps > T:
        raise InputError(f"steps={steps} is not allowed: the prior has {T} timesteps (at most {T} steps)")
    check_memory(prior.image_shape, n, rep_options, views)


def check_memory(image_shape: tuple[int, int, int], n: int, rep_options: Any = None, views: int = 1, *,
                 own_rep: bool = False) -> None:
    """The run's estimated peak memory (``estimate_memory``) within the memory available, so a run too big for the
    machine is refused, not killed (``own_rep``: ``rep_options`` are the method's, not the user's to make smaller)."""
    need, have = estimate_memory(image_shape, n, rep_options, views), available_memory()
    if need > have:
        smaller = "a smaller n" if rep_options is None or own_rep else "a smaller n or smaller rep options"
        raise InputError(f"n={n} needs about {need / 2**30:.1f} GiB (estimated), more than the "
                         f"{have / 2**30:.1f} GiB available; use {smaller}")


def check_memory_unloaded(prior: Any, n: int, rep_options: Any = None, views: int = 1, *,
                          own_rep: bool = False) -> None:
    """``check_memory`` before a prior given by name or config loads (a toy-world data set is generated on first use,
    ~30 s), where its config tells the shape of its images (``priors.unloaded_shape``)."""
    from diffrep.priors import PRIORS, prior_config, unloaded_shape

    if isinstance(prior, str):
        prior = prior_config(prior)
    elif not any(type(prior) is entry.config for entry in PRIORS.values()):
        return  # a loaded prior: check_budget counts with its own image shape
    if (shape := unloaded_shape(prior)) is not None:
        check_memory(shape, n, rep_options, views, own_rep=own_rep)


SAMPLER_OVERHEAD = 12 * 2**20
"""Bytes an image-space run needs beyond its images (8 MiB measured, bench/results/memory-estimate.json)."""
GRADIENT_OVERHEAD = 128 * 2**20
"""Bytes a run that back-propagates through a rep needs beyond its instances: autograd's and the
optimiser's working memory (80-90 MiB measured, bench/results/memory-estimate.json)."""


def estimate_memory(prior: Prior | tuple[int, int, int], n: int, rep_options: Any = None, views: int = 1) -> int:
    """Bytes a run of ``n`` instances adds at its peak: a fixed overhead, and per instance 64 images of the prior's
    shape (``prior``: a prior, or the shape of its images); with a rep (``rep_options``) also its parameters with
    their gradients and optimiser moments, its noise state, and 3x the activations one instance saves for the
    backward pass when it renders ``views`` views (``probe_activations``). An upper bound within 2x of the peaks
    measured by bench/scripts/memory_estimate.py (1.3-1.7x for DDIM, DDRep and SDS on pixels, SIREN and NeRF)."""
    shape = tuple(prior) if isinstance(prior, tuple) else tuple(prior.image_shape)
    per_instance = 64 * 4 * math.prod(shape)  # samples, noise, CFG's doubled batches, views, renders
    if rep_options is None:
        return SAMPLER_OVERHEAD + n * per_instance
    with torch.device("meta"):  # its parameters counted without allocating them: a rep too big to build is not built
        shell = make_rep(rep_options, shape, 1, generator=torch.Generator().manual_seed(0))
    noise = 4 * math.prod(shell.noise_shape[1:])  # DDRep's noise state (a canvas, a bank)
    per_instance += 6 * 4 * sum(p.numel() for p in shell.parameters()) + 4 * noise
    if GRADIENT_OVERHEAD + n * per_instance > available_memory():  # already too big: no need to render one
        return GRADIENT_OVERHEAD + n * per_instance
    return GRADIENT_OVERHEAD + n * (per_instance + probe_activations(shape, rep_options, views))


@functools.lru_cache(maxsize=16)
def probe_activations(shape: tuple[int, ...], rep_options: Any, views: int) -> int:
    """3x the bytes one instance of a rep of ``rep_options`` saves for the backward pass rendering ``views`` views,
    counted on the render its ``memory_probe`` names and scaled (a NeRF's at most 48 samples and 6 views), so a
    render too big to fit is not made to count itself; remembered, so the CLI's check before the prior loads and
    the API's after it render once."""
    probe, probe_views, factor = REPS[rep_name(rep_options)].memory_probe(rep_options, views)
    one = make_rep(probe, shape, 1, generator=torch.Generator().manual_seed(0))
    return round(3 * factor * saved_activations(one, probe_views))


def saved_activations(rep, views: int) -> int:
    """Bytes autograd keeps for the backward pass when ``rep`` renders ``views`` random views (its
    canonical view if it has none), counted once per storage."""
    saved: dict[int, int] = {}

    def pack(x: Tensor) -> Tensor:
        saved[x.untyped_storage().data_ptr()] = x.untyped_storage().nbytes()
        return x

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
        rep(rep.random_views(views, torch.Generator().manual_seed(0)))
    return sum(saved.values())


def views_per_step(options: Any) -> int:
    """The views a method renders per step: its ``views_per_step`` option or its loop's (``optim``), else 1."""
    for o in (options, getattr(options, "optim", None)):
        if isinstance(getattr(o, "views_per_step", None), int):
            return o.views_per_step
    return 1


def available_memory() -> int:
    """Bytes of memory available now (``MemAvailable``), or physical memory where that is unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os

    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def load_run(folder: str | Path, *, rep: str | None = None) -> tuple[Any, dict[str, Any]]:
    """The diffrep a result folder holds (rebuilt from ``run.json`` and ``rep.safetensors``) and its
    record; ``rep`` names the rep the caller needs (an ``InputError`` otherwise)."""
    from safetensors.torch import load_file

    from diffrep.export import run_record

    folder = Path(folder)
    record = run_record(folder, rep=rep)
    config = record["config"]
    name, options, shape = config["rep"], config["rep_options"], config["image_shape"]
    model = make_rep(REPS[name].config(**{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}),
                     tuple(shape), config["n"], generator=torch.Generator().manual_seed(0))
    try:
        model.load_state_dict(load_file(folder / "rep.safetensors"))
    except Exception as e:  # safetensors' own errors for truncated or foreign files
        raise InputError(f"{str(folder / 'rep.safetensors')!r} is corrupt or does not match run.json: {e}") from None
    return model, record


def _read_early(prior: Prior | str, *images: Any) -> None:
    """Images given as paths, with a prior given by name: a missing or unreadable file is refused before the prior
    loads (``_check_images`` and ``_check_mask`` read them again at its resolution). A loaded prior: nothing to do
    early, the one read is there."""
    from diffrep.export import load_image

    if not isinstance(prior, str):
        return
    for image in images:
        if isinstance(image, (str, Path)):
            load_image(image)


def _check_images(prior: Prior, image: Any, name: str) -> Tensor:
    """One image ``[C, H, W]`` or ``[1, C, H, W]``, floating point in [-1, 1], of the prior's shape; a latent prior
    also takes RGB ``[3, H, W]`` at its decoder's resolution (``rgb_size``), VAE-encoded here into its latents. Or
    a PNG/JPEG path, read at that resolution (the prior's own, a latent prior's decoder's), as the command line does."""
    if isinstance(image, (str, Path)):
        from diffrep.export import load_image

        image = load_image(image, rgb_size(prior))
    if not torch.is_tensor(image):
        try:
            image = torch.as_tensor(image)
        except (TypeError, ValueError, RuntimeError):
            raise InputError(f"{name} must be a tensor [C, H, W] in [-1, 1]; got {type(image).__name__}") from None
    if not image.is_floating_point():
        raise InputError(f"{name} has dtype {image.dtype}; it must be floating point in [-1, 1] "
                         "(for 8-bit pixels: x / 127.5 - 1)")
    if image.ndim == 3:
        image = image[None]
    if image.ndim != 4 or image.shape[0] != 1:
        raise InputError(f"{name} has shape {tuple(image.shape)}; give one image [C, H, W] (n= makes several)")
    shape, rgb = tuple(image.shape[1:]), (3, *rgb_size(prior)) if latent(prior) else None
    if shape not in (tuple(prior.image_shape), rgb):
        either = f"; give RGB {rgb} in [-1, 1] (VAE-encoded) or latents {tuple(prior.image_shape)}" if rgb else ""
        raise InputError(f"{name} has shape {shape}; the prior denoises {tuple(prior.image_shape)}{either}")
    if not torch.isfinite(image).all():
        raise InputError(f"{name} contains non-finite values")
    if shape != tuple(prior.image_shape):  # a latent prior's RGB: its latents, the starting point of the work
        with torch.no_grad():
            return from_rgb(prior, image.float())
    return image.float()


def _check_mask(prior: Prior, mask: Any) -> Tensor:
    """A mask broadcastable to one image of the prior, values in [0, 1] (1 = known); or a mask image's path (white =
    known), read at the resolution of the prior's images (a latent prior's latents, where RePaint keeps them)."""
    if isinstance(mask, (str, Path)):
        from diffrep.export import load_mask

        mask = load_mask(mask, prior.image_shape[1:])
    if not torch.is_tensor(mask) or not mask.is_floating_point():
        raise InputError(f"mask must be a floating-point tensor in [0, 1]; got "
                         f"{mask.dtype if torch.is_tensor(mask) else type(mask).__name__}")
    try:
        torch.broadcast_shapes(mask.shape, (1, *prior.image_shape))
    except RuntimeError:
        raise InputError(f"mask has shape {tuple(mask.shape)}; it must broadcast to {(1, *prior.image_shape)}") from None
    if not (torch.isfinite(mask).all() and mask.min() >= 0 and mask.max() <= 1):
        raise InputError("mask must hold finite values in [0, 1] (1 = known, 0 = fill)")
    return mask


def sdedit(prior: Prior | str, image: Tensor | str | Path, *, prompt: str | None = None, cond: Any = None,
           strength: float = 0.5, n: int = 1, seed: int = 0, steps: int = 50, guidance_scale: float = 3.0,
           eta: float = 0.0, callback=None) -> Result:
    """SDEdit an image ``[C, H, W]`` or ``[1, C, H, W]`` in [-1, 1] (or a PNG/JPEG path) towards a prompt; ``strength``
    in [0, 1]."""
    check_strength(strength), check_positive_int("n", n), Sampling(steps, guidance_scale, eta), check_seed(seed)
    check_prompt(prompt), _check_unloaded(prior, prompt, "sdedit", image=True), _read_early(prior, image)
    check_memory_unloaded(prior, n)
    prior = resolve_prior(prior)
    check_budget(prior, steps, n)
    x0 = _check_images(prior, image, "image").expand(n, -1, -1, -1)
    c = _condition(prior, prompt, cond)

    def run(p: Prior, g: torch.Generator) -> Tensor:
        return sample_sdedit(p, x0, strength, steps, c, guidance_scale=guidance_scale, eta=eta, generator=g,
                             callback=_progress(callback, steps))

    config = {"method": "sdedit", "prompt": prompt, "n": n, "steps": steps, "strength": strength,
              "guidance_scale": guidance_scale, "eta": eta}
    return _run(prior, run, config, seed)


def inpaint(prior: Prior | str, image: Tensor | str | Path, mask: Tensor | str | Path, *, prompt: str | None = None,
            cond: Any = None, rounds: int = 5, n: int = 1, seed: int = 0, steps: int = 50, guidance_scale: float = 3.0,
            eta: float = 1.0, callback=None) -> Result:
    """RePaint inpainting: keep ``image`` where ``mask`` is 1 (``[H, W]`` or broadcastable), fill the rest; either may
    be a PNG/JPEG path (the mask's white = keep)."""
    check_positive_int("n", n), check_positive_int("rounds", rounds), Sampling(steps, guidance_scale, eta)
    check_seed(seed), check_prompt(prompt), _check_unloaded(prior, prompt, "inpaint", image=True)
    _read_early(prior, image, mask)
    check_memory_unloaded(prior, n)
    prior = resolve_prior(prior)
    check_budget(prior, steps, n)
    known = _check_images(prior, image, "image").expand(n, -1, -1, -1)
    mask = _check_mask(prior, mask)
    c = _condition(prior, prompt, cond)
    ts = timesteps(len(prior.alphas_cumprod), steps)

    def run(p: Prior, g: torch.Generator) -> Tensor:
        x = draw_noise((n, *p.image_shape), g, device=prior_device(p))
        return sample_repaint(p, x, ts, known, mask, c, rounds=rounds, guidance_scale=guidance_scale, eta=eta,
                              generator=g, callback=_progress(callback, len(ts)))

    config = {"method": "repaint", "prompt": prompt, "n": n, "steps": steps, "rounds": rounds,
              "guidance_scale": guidance_scale, "eta": eta}
    return _run(prior, run, config, seed)


class AnchoredPixels(torch.nn.Module):
    """A pixels rep of ``n`` copies of ``image`` whose regulariser is the L2 anchor ``λ/2 ‖x - image‖²`` per view."""

    def __init__(self, image: Tensor, n: int, anchor: float):
        super().__init__()
        self.inner = make_rep("pixels", tuple(image.shape[1:]), n, generator=torch.Generator())
        with torch.no_grad():
            self.inner.theta.copy_(image.expand(n, -1, -1, -1))
        self.register_buffer("image", image.clone())
        self.anchor = anchor

    def __getattr__(self, name: str) -> Any:  # n, image_shape, random_views, view_labels, preview ... of the pixels
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.inner, name)

    def forward(self, views=None) -> Tensor:
        return self.inner(views)

    def regularised(self, views=None) -> tuple[Tensor, Tensor]:
        x = self.inner(views)
        return x, 0.5 * self.anchor * (x - self.image[:, None]).pow(2).flatten(2).sum(-1)


def edit(prior: Prior | str, image: Tensor | str | Path, *, prompt: str | None = None, cond: Any = None,
         method: str | Any = "lmc-sds", anchor: float = 0.03, n: int = 1, seed: int = 0, guidance_scale: float = 7.5,
         callback=None, **options: Any) -> Result:
    """Edit an image ``[C, H, W]`` or ``[1, C, H, W]`` in [-1, 1] (or a PNG/JPEG path) towards a prompt with a
    mode-seeking method (``lmc-sds``, ``sds``, ``dds``, ``nfsd``, ...; or its options object): a pixels rep starts at
    the image and is optimised with the method's gradient plus ``anchor/2 ‖x - image‖²``. A latent prior (Stable
    Diffusion) takes RGB at its decoder's resolution: the rep starts at its latents, is anchored to them, and the
    result is decoded. ``options``: ``iters``, ``lr``, ``t_range``, ``source_prompt`` (dds), ``corrective``
    (lmc-sds); the loop decays its rate on a cosine.

    >>> r = diffrep.edit("gmm", image, prompt="blue", method="dds", source_prompt="red", iters=100)
    """
    from diffrep.spec import _method, edit_options

    sampling = Sampling(guidance_scale=guidance_scale)
    spec_options = method if not isinstance(method, str) else edit_options(method, anchor=anchor, sampling=sampling,
                                                                            **options)
    name, _ = _method(spec_options)
    check_positive_int("n", n), check_seed(seed), check_prompt(prompt)
    _check_unloaded(prior, prompt, name, image=False, rep="pixels", options=spec_options), _read_early(prior, image)
    pixels = REPS["pixels"].config()  # the anchored pixels the method optimises
    check_memory_unloaded(prior, n, pixels, views_per_step(spec_options), own_rep=True)
    prior = resolve_prior(prior)
    check_memory(prior.image_shape, n, pixels, views_per_step(spec_options), own_rep=True)
    x_in = _check_images(prior, image, "image")
    c = _condition(prior, prompt, cond)
    entry = METHODS[name]

    def run(p: Prior, g: torch.Generator) -> Tensor:
        rep = AnchoredPixels(x_in.to(prior_device(p)), n, anchor)  # latents of a latent prior: anchored there
        wrap_rep = getattr(p, "wrap_rep", None)  # a prior that encodes RGB renders (sd, rgb=True): through its VAE
        entry.run(p, rep if wrap_rep is None else wrap_rep(rep), c, spec_options,
                  sampling=sampling, generator=g,
                  callback=_progress(callback, spec_options.optim.iters))
        return rep.inner.grid().detach()

    config = {"method": name, "prompt": prompt, "n": n, "anchor": anchor, "guidance_scale": guidance_scale,
              "options": _json_options(spec_options)}
    return _run(prior, run, config, seed)


def _json_options(options: Any) -> dict[str, Any]:
    import dataclasses

    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(options).items()}


def translate(weights: str | Path, image: str | Path | Tensor, *, to: str, prior: str | None = None) -> Result:
    """Translate ``image`` (a PNG/JPEG path, resized to the translator's resolution, or ``[C, H, W]`` /
    ``[N, C, H, W]`` in [-1, 1]) to kind ``to`` with the translator in ``weights`` (``diffrep train-translator``);
    ``prior`` refuses weights trained with another prior. No prior is loaded: the network runs alone.

    >>> r = diffrep.translate("runs/tr", "mug.png", to="duck"); r.save("outputs/duck")
    """
    from diffrep.export import check_input_image, load_image
    from diffrep.methods.translator import load_translator, translate_images
    from diffrep.methods.translator_meta import translator_record

    record = translator_record(weights, to=to, prior=prior)  # one line, before anything loads
    shape = tuple(record["image_shape"])
    if isinstance(image, (str, Path)):
        path = check_input_image(image)
        x = load_image(path, shape[1:])
    else:
        x = image if torch.is_tensor(image) else torch.as_tensor(image)
        if not x.is_floating_point():
            raise InputError(f"image has dtype {x.dtype}; it must be floating point in [-1, 1] (for 8-bit pixels: x / 127.5 - 1)")
        x = x[None] if x.ndim == 3 else x
        if x.ndim != 4 or tuple(x.shape[1:]) != shape:
            raise InputError(f"image has shape {tuple(x.shape)}; the translator takes [N, {', '.join(map(str, shape))}]")
        if not torch.isfinite(x).all():
            raise InputError("image contains non-finite values")
    model = load_translator(weights, prior=prior)
    start = time.perf_counter()
    y = translate_images(model, x.float(), to).clamp(-1, 1).cpu()
    config = {"weights": str(weights), "to": to, "image": str(image) if isinstance(image, (str, Path)) else None,
              "prior": record["prior"], "loss": record.get("loss"), "source": record.get("source"),
              "targets": record["targets"]}
    return Result(y, {"config": config, "prior_evaluations": 0, "timings": {"translate_s": round(time.perf_counter() - start, 4)},
                      "versions": versions()})
