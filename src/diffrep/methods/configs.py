"""The options of the built-in methods, one frozen dataclass each, in a module without torch: the command
line is built from them (and refuses a bad value) before anything heavy is imported. Each method's
module (``image``, ``ddrep``, ``distillation``, ``solvers``) holds its implementation and re-exports its options."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Annotated

import tyro

from diffrep.checks import (
    check_choice,
    check_count,
    check_finite,
    check_fraction_range,
    check_positive_int,
)


@dataclass(frozen=True)
class DDIMOptions:
    """DDIM (Song et al. 2021): takes only the shared --steps, --guidance-scale and --eta."""


@dataclass(frozen=True)
class DDPMOptions:
    """DDPM ancestral sampling (Ho et al. 2020): takes only the shared --steps and --guidance-scale."""


SOLVERS: tuple[str, ...] = ("gn", "adam", "closed")


@dataclass(frozen=True)
class PullbackConfig:
    """How each DDRep step's least-squares problem is solved."""

    solver: str = "adam"
    """Solver: adam (the paper's reference), gn (Gauss–Newton + preconditioned CG), closed (linear reps)."""
    adam_iters: int = 20
    """adam: iterations per step (paper: 200 at lr 1e-3; 20 at 3e-3 is as faithful on the toy world, docs/benchmarks.md)."""
    adam_lr: float = 3e-3
    """adam: learning rate."""
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
class SDSOptions:
    """Score distillation sampling (DreamFusion)."""

    t_range: tuple[float, float] = (0.02, 0.98)
    """Range of t as fractions of T."""
    weighting: str = "s2"
    """w(t): s2 = 1 - ᾱ_t (DreamFusion), one, snr_inverse = (1-ᾱ_t)/ᾱ_t."""
    annealing: str = "none"
    """Anneal t_max towards t_min over the run: none, linear, sqrt."""
    optim: Optim = OptimConfig()
    """The optimisation loop."""

    def __post_init__(self) -> None:
        check_fraction_range("t_range", self.t_range), check_choice("annealing", self.annealing, ANNEALING)
        check_choice("weighting", self.weighting, WEIGHTINGS)


@dataclass(frozen=True)
class SJCOptions:
    """Score Jacobian chaining (perturb-and-average scoring)."""

    t_range: tuple[float, float] = (0.02, 0.98)
    """Range of t (hence σ = s_t/a_t) as fractions of T."""
    variance_reduced: bool = True
    """Variance-reduced form g = -(D(x+σn) - x)/σ; off: the plain form with y = x + σn for x."""
    annealing: str = "none"
    """Anneal the largest t towards the smallest over the run: none, linear, sqrt."""
    optim: Optim = OptimConfig()
    """The optimisation loop."""

    def __post_init__(self) -> None:
        check_fraction_range("t_range", self.t_range), check_choice("annealing", self.annealing, ANNEALING)
