"""Sampling methods on diffreps: DDRep (true sampling) and the mode-seeking family (SDS, SJC)."""

from diffrep.methods.ddrep import DDRepOptions, ddrep_sample, ddrep_step
from diffrep.methods.distill import (
    OptimConfig, SDSOptions, SJCOptions, distill, run_sds, run_sjc, sds_grad, sjc_grad, surrogate_loss,
)
from diffrep.methods.solvers import PullbackConfig, gauss_newton_step, pullback

__all__ = [
    "DDRepOptions", "OptimConfig", "PullbackConfig", "SDSOptions", "SJCOptions", "ddrep_sample", "ddrep_step",
    "distill", "gauss_newton_step", "pullback", "run_sds", "run_sjc", "sds_grad", "sjc_grad", "surrogate_loss",
]
