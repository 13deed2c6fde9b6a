"""The options of the built-in methods, one frozen dataclass each, in a module without torch: the command
line is built from them (and refuses a bad value) before anything heavy is imported. Each method's
module (``image``, ``ddrep``, ``distillation``, ``solvers``) holds its implementation and re-exports its options."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Annotated, Any

import tyro

from diffrep.checks import (
    check_choice,
    check_count,
    check_finite,
    check_fraction_range,
    check_positive_int,
    is_number,
)
from diffrep.errors import InputError


@dataclass(frozen=True)
class DDIMOptions:
    """DDIM (Song et al. 2021): takes only the shared --steps, --guidance-scale and --eta."""


@dataclass(frozen=True)
class DDPMOptions:
    """DDPM ancestral sampling (Ho et al. 2020): takes only the shared --steps and --guidance-scale."""


@dataclass(frozen=True)
class MultiDiffusionOptions:
    """MultiDiffusion (Bar-Tal et al. 2023) on the panorama's 360° canvas: DDIM steps (--steps, --guidance-scale,
    --eta) on overlapping views, fused by the per-pixel mean; the result is the sampled canvas, not a SIREN."""

    stride: int = 8
    """Columns between the starts of the denoised views (wrapping at 360°); at most the view width, so every
    column is covered (8 at 32: 24 views, each pixel in 4; the view width: no overlap, independent DDIM per view)."""

    def __post_init__(self) -> None:
        check_positive_int("stride", self.stride)


SOLVERS: tuple[str, ...] = ("gn", "adam", "closed")


@dataclass(frozen=True)
class PullbackConfig:
    """How each DDRep step's least-squares problem is solved."""

    solver: str = "adam"
    """Solver: adam (the paper's reference), gn (Gauss–Newton + preconditioned CG), closed (linear reps)."""
    adam_iters: int = 20
    """adam: iterations per step (paper: 200 at lr 1e-3; 20 at 3e-3 is as faithful on the toy world, docs/benchmarks.md;
    the NeRF's default is 40, each on an eighth of its rays, pixel_fraction; through an rgb prior's encoder 10 on all)."""
    adam_lr: float = 3e-3
    """adam: learning rate."""
    pixel_fraction: float = 1.0
    """adam: fraction of each view's pixels in each iteration's squared error, a fresh random subset every iteration
    (stochastic least squares, as NeRFs are fitted in ray batches; a NeRF renders only those rays, other reps render
    whole views and keep the subset); 1: every pixel."""
    gn_iters: int = 1
    """gn: Gauss–Newton iterations per step (each re-linearises)."""
    cg_iters: int = 5
    """gn: conjugate-gradient iterations per Gauss–Newton iteration."""
    damping: float = 0.0
    """gn: Levenberg–Marquardt damping λ (0 = pure Gauss–Newton; CG from zero gives the min-norm step)."""
    probes: int = 4
    """gn: Rademacher probes estimating diag(JᵀJ) for the Jacobi preconditioner (0 = plain CG)."""

    def __post_init__(self) -> None:
        check_choice("solver", self.solver, SOLVERS)
        for name in ("adam_iters", "gn_iters", "cg_iters"):
            check_positive_int(name, getattr(self, name))
        check_finite("adam_lr", self.adam_lr, positive=True), check_finite("damping", self.damping)
        if not (is_number(self.pixel_fraction) and 0 < self.pixel_fraction <= 1):
            raise InputError(f"pixel_fraction={self.pixel_fraction!r} is not allowed; it must be a fraction in (0, 1]")
        check_count("probes", self.probes)


@dataclass(frozen=True)
class DDRepOptions(PullbackConfig):
    """DDRep: separated noise, DDIM with eta, per-step least squares (the solver options), RePaint rounds."""

    rounds: int = 1
    """RePaint harmonisation rounds r per step (1 = none; needs eta > 0 to act)."""
    views_per_step: int = 6
    """Views evaluated by the prior per step, for reps with several views (panorama: 6 views of 60° cover 360°)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_int("rounds", self.rounds), check_positive_int("views_per_step", self.views_per_step)

    def pullback(self) -> PullbackConfig:
        return PullbackConfig(**{f.name: getattr(self, f.name) for f in fields(PullbackConfig)})


WEIGHTINGS: tuple[str, ...] = ("s2", "one", "snr_inverse")


ANNEALING: tuple[str, ...] = ("none", "linear", "sqrt")


@dataclass(frozen=True)
class OptimConfig:
    """The optimisation loop shared by every mode-seeking method."""

    iters: int = 500
    """Optimisation iterations."""
    optimizer: str = "adam"
    """Optimizer: adam, adamax (SJC's choice), sgd."""
    lr: float = 1e-2
    """Peak learning rate."""
    lr_schedule: str = "constant"
    """Learning-rate schedule: constant, cosine, linear (decay to 0)."""
    views_per_step: int = 1
    """Random views rendered per iteration (reps with several views)."""

    def __post_init__(self) -> None:
        check_choice("optimizer", self.optimizer, OPTIMIZERS), check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        check_positive_int("iters", self.iters), check_positive_int("views_per_step", self.views_per_step)
        check_finite("lr", self.lr, positive=True)


OPTIMIZERS: tuple[str, ...] = ("adam", "adamax", "sgd")


LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine", "linear")


# The loop's options are one group, --optim.*, shared by every mode-seeking method.
Optim = Annotated[OptimConfig, tyro.conf.arg(name="optim", prefix_name=False)]


@dataclass(frozen=True)
class NoisedOptions:
    """What every noised mode-seeking method (SDS and its kin) shares: its range of t, its annealing, its loop."""

    t_range: tuple[float, float] = (0.02, 0.98)
    """Range of t as fractions of T."""
    annealing: str = "none"
    """Anneal t_max towards t_min over the run: none, linear, sqrt."""
    optim: Optim = OptimConfig()
    """The optimisation loop."""

    def __post_init__(self) -> None:
        check_fraction_range("t_range", self.t_range), check_choice("annealing", self.annealing, ANNEALING)


@dataclass(frozen=True)
class SDSOptions(NoisedOptions):
    """Score distillation sampling (DreamFusion)."""

    weighting: str = "s2"
    """w(t): s2 = 1 - ᾱ_t (DreamFusion), one, snr_inverse = (1-ᾱ_t)/ᾱ_t."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("weighting", self.weighting, WEIGHTINGS)


@dataclass(frozen=True)
class SJCOptions(NoisedOptions):
    """Score Jacobian chaining (perturb-and-average scoring)."""

    variance_reduced: bool = True
    """Variance-reduced form g = -(D(x+σn) - x)/σ; off: the plain form with y = x + σn for x."""


@dataclass(frozen=True)
class NFSDOptions(NoisedOptions):
    """Noise-free score distillation (Katzir et al. 2023): g = w(t) (δ_D + ω δ_C), δ_C = ε̂(c) - ε̂(∅),
    δ_D = ε̂(∅) - ε̂(neg) for t ≥ t_threshold·T, ε̂(∅) below it."""

    t_threshold: float = 0.2
    """Fraction of T below which δ_D is the plain ε̂(∅) (paper: t < 200 of 1000)."""
    negative_prompt: str = ""
    """The negative prompt of δ_D at large t (paper, for Stable Diffusion: "unrealistic, blurry, low quality, ...");
    empty: δ_D = 0 at large t, as the prior's empty prompt is its unconditional one."""
    weighting: str = "s2"
    """w(t): s2 = 1 - ᾱ_t (DreamFusion), one, snr_inverse = (1-ᾱ_t)/ᾱ_t."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("weighting", self.weighting, WEIGHTINGS), check_finite("t_threshold", self.t_threshold, at_most=1.0)


@dataclass(frozen=True)
class DDSOptions(NoisedOptions):
    """Delta denoising score (Hertz et al. 2023): g = w(t) (ε̂_ω(z_t, c_tgt) - ε̂_ω(ẑ_t, c_src)), the same t and ε
    on the edited render z and the source ẑ: the rep's render at the start of the run (diffrep edit: the input image)."""

    source_prompt: str | None = None
    """The prompt describing the source image (required; empty = unconditional)."""
    weighting: str = "one"
    """w(t): one (the paper), s2 = 1 - ᾱ_t, snr_inverse = (1-ᾱ_t)/ᾱ_t."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("weighting", self.weighting, WEIGHTINGS)


def dds_requires(options: DDSOptions, prior: str | None = None, sampling: Any = None) -> str | None:
    return "a source prompt (--dds.source-prompt, or --source-prompt of diffrep edit)" if options.source_prompt is None else None


@dataclass(frozen=True)
class MultistepSDSOptions(NoisedOptions):
    """Multistep SDS: x̂_0 from k deterministic DDIM steps t -> 0 instead of one; g = w(t) (a_t/s_t) (x - x̂_0),
    which is SDS for k = 1."""

    k: int = 4
    """DDIM steps from x_t to x̂_0 (timesteps ⌊t (k-j)/k⌋, j = 0..k-1)."""
    weighting: str = "s2"
    """w(t): s2 = 1 - ᾱ_t (DreamFusion), one, snr_inverse = (1-ᾱ_t)/ᾱ_t."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("weighting", self.weighting, WEIGHTINGS), check_positive_int("k", self.k)


@dataclass(frozen=True)
class LMCSDSOptions(NoisedOptions):
    """LMC-SDS (Alldieck et al. 2024, design §4): g = (ω (ε̂(c) - ε̂(∅)) + b̂(x, t) - x̂_0(∅)) / ω with the
    learned corrective b̂ (diffrep train-corrective), normalised to x̂_0(∅)'s mean and std as in its loss L_k."""

    corrective: str | None = None
    """clean (the paper's, shipped for toyworld and tiny; None: this one), perturbed (shipped too, trained off the data
    with --perturb 0.5), or the folder of one trained for this prior (diffrep train-corrective)."""
    fixed_eps: bool = False
    """Diversity option: keep the ε of the conditional term fixed for the whole run (fresh for the corrective term)."""
    inverse_scale: bool = True
    """Divide the gradient by ω (the paper's 1/ω scaling; needs --guidance-scale ≠ 0)."""
    projection: str = "corrective"
    """The term added to g_cond: corrective (g_lmc = b̂ - x̂_0, the method), none (g_cond alone: the paper's
    "L_cond only" ablation; no corrective is loaded)."""
    weighting: str = "one"
    """w(t) on the whole gradient: one (design §4's LMC-SDS), s2 = 1 - ᾱ_t (SDS's, DreamFusion), snr_inverse."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("projection", self.projection, LMC_PROJECTIONS), check_choice("weighting", self.weighting, WEIGHTINGS)
        if self.projection == "none" and self.corrective is not None:
            raise InputError(f"corrective={self.corrective!r} is unused with projection='none' (g_cond alone); "
                             "drop it or use projection='corrective'")


LMC_PROJECTIONS: tuple[str, ...] = ("corrective", "none")


SHIPPED_CORRECTIVES: dict[str, tuple[str, ...]] = {"clean": ("toyworld", "tiny"), "perturbed": ("toyworld", "tiny")}
"""The shipped correctives by their training, each with the priors it is shipped for (``diffrep/methods/correctives/``,
TRAINING.md): ``clean``, the paper's, on the prior's clean data images (``PRIOR/``; the default); ``perturbed``,
every other image perturbed off the data (``train-corrective --perturb 0.5``, ``PRIOR-perturbed/``), which restores
what is off the data (docs/lmc.md). ``--lmc-sds.corrective NAME`` picks one."""


def lmc_guidance_requires(options: LMCSDSOptions, sampling: Any = None) -> str | None:
    """A guidance scale ω ≠ 0 for LMC-SDS's 1/ω scaling (``inverse_scale``); ``sampling``: the run's, where known."""
    if options.inverse_scale and sampling is not None and sampling.guidance_scale == 0:
        return ("a guidance scale ω ≠ 0: it divides its gradient by ω; give --guidance-scale > 0 (diffrep sample: or "
                "--lmc-sds.no-inverse-scale)")
    return None


def lmc_requires(options: LMCSDSOptions, prior: str | None = None, sampling: Any = None) -> str | None:
    """What an LMC-SDS run lacks, torch-free: a guidance scale ω ≠ 0 to divide by (``inverse_scale``; ``sampling``:
    the run's, where known); the corrective's folder and its JSON sidecar; with no corrective given or a shipped
    one's name, one shipped for ``prior`` (a prior's name; ``None``: not known yet), unless ``projection='none'``."""
    from pathlib import Path

    if (missing := lmc_guidance_requires(options, sampling)) is not None:
        return missing
    if options.corrective is None or options.corrective in SHIPPED_CORRECTIVES:
        shipped = SHIPPED_CORRECTIVES[options.corrective or "clean"]
        if options.projection == "none" or prior is None or prior in shipped:
            return None
        from diffrep.training.config import CLEAN_DATA_PRIORS

        train = f"--prior {prior}" if prior in CLEAN_DATA_PRIORS else f"--prior {prior}:PATH --data IMAGES"  # sd, if
        none = "none" if options.corrective is None else f"no {options.corrective} one"
        return (f"a trained corrective: {none} is shipped for prior {prior!r} (shipped: {', '.join(shipped)}); "
                f"train one with diffrep train-corrective {train} --out DIR and give it: --lmc-sds.corrective DIR "
                "(edit: --corrective DIR)")
    path = Path(options.corrective)
    sidecar = (path if path.is_dir() else path.parent) / "corrective.json"
    if not path.exists():
        return (f"a trained corrective; {options.corrective!r} is neither a shipped one ({', '.join(SHIPPED_CORRECTIVES)}) "
                "nor a folder (diffrep train-corrective writes one)")
    if not sidecar.is_file():
        return f"a trained corrective; {options.corrective!r} holds no corrective.json (diffrep train-corrective writes one)"
    return None
