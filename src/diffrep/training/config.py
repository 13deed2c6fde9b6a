"""The options of a tiny-prior training run, in a module without torch (the command line is built from them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diffrep.errors import InputError

DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of a tiny-prior training run."""

    out: Path  # run directory: checkpoints, sample grids, final tiny.safetensors + tiny.json
    res: int = 32  # image side, 32 or 64
    steps: int = 20_000  # total optimiser steps (the shipped weights: 11,000 + 6,000 + 1,500 + 8,000 in four runs, TRAINING.md)
    batch: int = 32  # images per step
    lr: float = 4e-4  # AdamW learning rate (constant)
    ema_decay: float = 0.999  # EMA of the weights used for sampling and export
    checkpoint_every: int = 1000  # steps between checkpoints (0: only at the end)
    sample_every: int = 2000  # steps between sample grids (0: never)
    data_n: int = 20_000  # toy-world images generated (held-out combos are then dropped)
    seed: int = 0  # seed of the data set, the captions, timesteps, noise and initial weights
    device: str = "auto"  # "auto" (CUDA when present), "cpu" or "cuda"
    channels: int = 32  # U-Net width at full resolution (32: 1.53 M parameters)
    cross_attention: bool = False  # attend to the prompt's token states at 16² and 8² (UNetConfig; experimental)
    scale_shift: bool = False  # the embedding also scales and shifts normalised features (UNetConfig, ADM's AdaGN)
    scale_shift_res: int = 0  # ... only in blocks whose feature map is at most this side (16, 8; 0: every block)
    label_loss: float = 0.0  # weight of the auxiliary loss: the text features name the caption's labels (see docs)
    p2_gamma: float = 0.0  # P2 weighting of the ε-loss, 1 / (1 + SNR(t))^gamma (Choi et al. 2022); 0: plain
    exact_target: bool = False  # regress on the training set's exact posterior-mean ε instead of the drawn ε (see eps_loss)
    focus_t: tuple[int, int] = (300, 800)  # noise steps [lo, hi) where the layout (the view) is decided ...
    focus_p: float = 0.0  # ... and the fraction of each batch whose t is drawn there instead of from all steps
    init: Path | None = None  # start from these tiny.safetensors weights (fine-tuning); new layers keep their init
    sample_steps: int = 50  # DDIM steps of the sample grids
    half: bool = False  # export the EMA weights in float16 (half the file; loaded back as float32)


@dataclass(frozen=True)
class CorrectiveTrainConfig:
    """Hyperparameters of a corrective (LMC-SDS's b̂) training run: L_k on the prior's clean data images."""

    out: Path  # run directory: checkpoints, final corrective.safetensors + corrective.json
    prior: str = "toyworld"  # the prior (default options) whose one-step denoiser b̂ learns: toyworld, tiny, gmm, gaussian; sd:PATH, if:PATH with --data
    data: Path | None = None  # a folder of PNG/JPEG images to train on (at the prior's pixel resolution; VAE-encoded once for sd), instead of the prior's own data; needed for sd and if
    steps: int = 5000  # total optimiser steps
    batch: int = 32  # clean images per step, each at its own t ~ U{0..T-1}
    lr: float = 1e-3  # AdamW learning rate (constant)
    ema_decay: float = 0.999  # EMA of the weights that is exported
    checkpoint_every: int = 500  # steps between checkpoints (0: only at the end)
    sample_every: int = 0  # kept at 0: a corrective has no previews (the shared loop's option)
    data_n: int = 10_000  # clean images drawn from a prior with an exact sampler (gmm, gaussian), tiny's toy-world images, or at most this many of --data's (sorted by name)
    channels: int = 32  # filters at full resolution, doubling per level (the paper: 32)
    levels: int = 4  # encoder levels (the paper: 4)
    perturb: float = 0.0  # off-manifold training: half of each batch gets δ, smoothed noise of RMS ~ U[0, perturb] at a random scale, and b̂(x + δ) learns x̂_0(a_t x + s_t ε) + δ, so that it keeps what is off the data (0: the paper's clean images only)
    seed: int = 0  # seed of the data draw, timesteps, noise and initial weights
    device: str = "auto"  # "auto" (CUDA when present), "cpu" or "cuda"


CLEAN_DATA_PRIORS: tuple[str, ...] = ("toyworld", "toyworld-scenes", "tiny", "gmm", "gaussian")
"""Priors whose clean data images a corrective can train on without ``--data`` (a data set, the set it learnt,
an exact sampler); the others (sd, if) need a folder of images."""
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg")
"""The image files ``--data`` folders hold (case-insensitive)."""


def data_files(folder: Path) -> list[Path]:
    """The PNG/JPEG files directly in ``folder``, sorted by name; an ``InputError`` if it is not a folder or holds none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"data={str(folder)!r} is not a folder; give a folder of PNG/JPEG images")
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
    if not files:
        raise InputError(f"data={str(folder)!r} holds no images ({', '.join(IMAGE_SUFFIXES)}); give a folder of PNG/JPEG images")
    return files


def check_corrective_config(config: CorrectiveTrainConfig) -> None:
    """Validate a ``CorrectiveTrainConfig`` at the edge, torch-free: a prior without clean images (sd, if) only with
    ``data``, refused by name before its path is looked up (a Stable Diffusion: gigabytes); the data folder."""
    from diffrep.priors import PRIORS, prior_config, split_prior

    name = split_prior(config.prior)[0]
    if config.data is None and name in PRIORS and name not in CLEAN_DATA_PRIORS:
        raise InputError(f"prior={config.prior!r} is not allowed without --data: train-corrective needs the prior's clean "
                         f"images, which only {', '.join(CLEAN_DATA_PRIORS)} provide; give a folder of images: --data DIR")
    if config.data is not None:
        data_files(config.data)
    prior_config(config.prior)
    check_loop_config(config)
    for field in ("batch", "data_n", "channels", "levels"):
        if getattr(config, field) < 1:
            raise InputError(f"{field}={getattr(config, field)} must be a positive integer")
    if not 0.0 <= config.perturb <= 2.0:
        raise InputError(f"perturb={config.perturb} is not allowed; give an RMS bound in [0, 2] (the data's range is [-1, 1]; 0: clean images only)")


TRANSLATOR_LOSSES: tuple[str, ...] = ("lmc-sds", "sds", "nfsd", "l-cond")
"""The distillation losses a translator trains with (``diffrep.training.translator.distillation_grad``); ``l-cond``
is LMC-SDS's ``g_cond`` alone (the paper's "L_cond only" ablation: no projection term, no corrective)."""
TRANSLATOR_PRIORS: tuple[str, ...] = ("toyworld", "tiny")
"""The priors a translator trains with: those that know the toy world's kinds, colours and views."""


@dataclass(frozen=True)
class TranslatorTrainConfig:
    """Hyperparameters of a translator run (LMC-SDS's amortised translation): source-kind toy-world images become the
    target kind at the same colour and view, by a distillation loss from the prior plus an L2 anchor to the input."""

    out: Path  # run directory: checkpoints, final translator.safetensors + translator.json
    prior: str = "toyworld"  # the prior (default options) whose distillation gradient trains the network: toyworld, tiny
    loss: str = "lmc-sds"  # distillation loss: lmc-sds (the prior's shipped corrective), sds, nfsd, l-cond (g_cond alone)
    corrective: str | None = None  # lmc-sds: a shipped corrective (clean, the default; perturbed) or a trained one's folder
    source: str = "mug"  # the kind of the input images
    targets: tuple[str, ...] = ("duck", "chair", "house", "car")  # the kinds the network is asked for (its class input)
    steps: int = 600  # total optimiser steps
    batch: int = 16  # source images per step, each with a random target kind, t and ε
    lr: float = 1e-3  # AdamW learning rate (constant)
    ema_decay: float = 0.99  # EMA of the weights that is exported
    checkpoint_every: int = 200  # steps between checkpoints (0: only at the end)
    sample_every: int = 0  # kept at 0: no previews (the shared loop's option)
    anchor: float = 0.1  # λ_0 of the L2 anchor λ_k/2 ‖y - x‖², λ_k = λ_0 (1 + cos(π k / steps)) / 2 (cosine to 0)
    guidance_scale: float = 7.5  # ω of the distillation gradient
    t_range: tuple[float, float] = (0.02, 0.98)  # t ~ U[t_min, t_max] as fractions of T
    holdout: float = 0.2  # fraction of the source images kept out of training (every 1/holdout-th; evaluation)
    data_n: int = 10_000  # toy-world images generated (the toyworld prior's own set at the default)
    data_seed: int = 0  # seed of the toy-world set (0: the toyworld prior's own set)
    channels: int = 16  # U-Net filters at full resolution, doubling per level
    levels: int = 3  # U-Net encoder levels
    seed: int = 0  # seed of the batches, targets, t, ε and initial weights
    device: str = "auto"  # "auto" (CUDA when present), "cpu" or "cuda"


def translator_advice(config: TranslatorTrainConfig) -> str | None:
    """A line for a translator run that is valid but measured to go wrong, or ``None``: lmc-sds on the tiny prior with
    its clean corrective diverged at 6,000 steps (outputs about 1,000 in size; docs/lmc.md, *Amortised translation*)."""
    if config.prior == "tiny" and config.loss == "lmc-sds" and config.corrective in (None, "clean"):
        return ("lmc-sds on the tiny prior with its clean corrective diverged in the 6,000-step screen "
                "(docs/lmc.md); --corrective perturbed stays in range")
    return None


def check_loop_config(config: Any) -> None:
    """Validate the loop's options of a ``LoopConfig`` (or of a trainer's config, which repeats them) at the edge,
    torch-free; messages name the option and its allowed values."""
    if config.steps < 1:
        raise InputError(f"steps={config.steps} must be a positive integer")
    for name, zero in (("checkpoint_every", "only at the end"), ("sample_every", "never")):
        if getattr(config, name) < 0:
            raise InputError(f"{name}={getattr(config, name)} must be >= 0 (0: {zero})")
    if config.device not in DEVICES:
        raise InputError(f"device={config.device!r} is not allowed; allowed: {', '.join(DEVICES)}")


def check_translator_config(config: TranslatorTrainConfig) -> None:
    """Validate a ``TranslatorTrainConfig`` at the edge, torch-free."""
    from diffrep.checks import (
        check_choice,
        check_finite,
        check_fraction_range,
        check_int,
    )
    from diffrep.toyworld.vocabulary import KINDS

    check_choice("prior", config.prior, TRANSLATOR_PRIORS)
    check_choice("loss", config.loss, TRANSLATOR_LOSSES)
    if config.corrective is not None:
        from diffrep.methods.configs import LMCSDSOptions, lmc_requires

        if config.loss != "lmc-sds":
            raise InputError(f"corrective={config.corrective!r} is for loss lmc-sds, not {config.loss!r}; drop it")
        if (missing := lmc_requires(LMCSDSOptions(corrective=config.corrective), config.prior)) is not None:
            raise InputError(f"loss lmc-sds needs {missing}")
    check_choice("source kind", config.source, KINDS)
    if not config.targets:
        raise InputError("targets is empty; give one or more kinds: " + ", ".join(KINDS))
    for kind in config.targets:
        check_choice("target kind", kind, KINDS)
    if len(set(config.targets)) != len(config.targets) or config.source in config.targets:
        raise InputError(f"targets={list(config.targets)} must be distinct kinds other than the source {config.source!r}")
    check_loop_config(config)
    for name in ("batch", "data_n", "channels", "levels"):
        check_int(name, getattr(config, name))
    check_int("data_seed", config.data_seed, 0)
    check_finite("anchor", config.anchor)
    check_finite("guidance_scale", config.guidance_scale, positive=config.loss in ("lmc-sds", "l-cond"))
    check_fraction_range("t_range", config.t_range)
    if not (isinstance(config.holdout, (int, float)) and 0 < config.holdout < 1):
        raise InputError(f"holdout={config.holdout!r} is not allowed; it must be a fraction in (0, 1)")
