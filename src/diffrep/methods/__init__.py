"""Sampling methods on diffreps, one table: name -> options dataclass + run function (``METHODS``).

Image-space samplers (DDIM, DDPM) write into the pixels rep; DDRep samples any diffrep; the
mode-seeking family (SDS, SJC) distils into it. Adding a method is one module and one entry
(docs/extending.md).
"""

from diffrep.methods.base import MethodEntry, MethodState, Sampling, ViewPrompt, view_conditions
from diffrep.methods.ddrep import DDRepOptions, DDRepState, ddrep_sample, ddrep_step, run_ddrep
from diffrep.methods.distillation import (
    DistillState, Optim, OptimConfig, SDSOptions, SJCOptions, distill, run_sds, run_sjc, sds_grad, sjc_grad, surrogate_loss,
)
from diffrep.methods.image import DDIMOptions, DDPMOptions, run_ddim, run_ddpm
from diffrep.methods.solvers import PullbackConfig, gauss_newton_step, pullback

METHODS: dict[str, MethodEntry] = {
    "ddim": MethodEntry(DDIMOptions, run_ddim, "DDIM in image space (eta: 0 = PF-ODE, 1 = DDPM-like)",
                        reps=("pixels",), image=True),
    "ddpm": MethodEntry(DDPMOptions, run_ddpm, "DDPM ancestral sampling in image space", reps=("pixels",),
                        uses=("steps", "guidance_scale"), image=True),
    "ddrep": MethodEntry(DDRepOptions, run_ddrep, "DDRep: true sampling of any diffrep (Savani et al. 2024)",
                         state=DDRepState,
                         needs_linear=lambda o: "solver 'closed'" if o.solver == "closed" else None),
    "sds": MethodEntry(SDSOptions, run_sds, "score distillation sampling (DreamFusion), mode seeking",
                       state=DistillState, uses=("guidance_scale",)),
    "sjc": MethodEntry(SJCOptions, run_sjc, "score Jacobian chaining, mode seeking", state=DistillState,
                       uses=("guidance_scale",)),
}
"""Every method by name; the API, the CLI, run.json and error messages derive their lists from it."""

PLANNED_METHODS: tuple[str, ...] = ("lmc", "nfsd", "dds", "multistep_sds", "vsd")

__all__ = [
    "METHODS", "PLANNED_METHODS", "MethodEntry", "MethodState", "Sampling", "ViewPrompt", "view_conditions",
    "DDIMOptions", "DDPMOptions", "DDRepOptions", "DDRepState", "DistillState", "Optim", "OptimConfig", "PullbackConfig",
    "SDSOptions", "SJCOptions", "ddrep_sample", "ddrep_step", "distill", "gauss_newton_step", "pullback",
    "run_ddim", "run_ddpm", "run_ddrep", "run_sds", "run_sjc", "sds_grad", "sjc_grad", "surrogate_loss",
]
