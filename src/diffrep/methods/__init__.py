"""Sampling methods on diffreps, one table: name -> options dataclass + run function (``METHODS``).

Image-space samplers (DDIM, DDPM) write into the pixels rep, MultiDiffusion returns a panorama canvas; DDRep samples any diffrep; the
mode-seeking family (SDS, SJC) distils into it. Adding a method is one module and one entry
(docs/extending.md). This module imports no torch: the options are in ``configs``, and each entry
names its run function with ``Lazy``, imported when the method first runs.
"""

from diffrep.lazy import Lazy, lazy_exports
from diffrep.methods.base import MethodEntry, MethodState, Sampling, ViewPrompt, view_conditions
from diffrep.methods.configs import (
    DDIMOptions, DDPMOptions, DDRepOptions, DDSOptions, LMCSDSOptions, MultiDiffusionOptions, MultistepSDSOptions, NFSDOptions, Optim,
    OptimConfig, PullbackConfig, SDSOptions, SJCOptions, dds_requires, lmc_requires,
)

METHODS: dict[str, MethodEntry] = {
    "ddim": MethodEntry(DDIMOptions, Lazy("diffrep.methods.image:run_ddim"),
                        "DDIM in image space (eta: 0 = PF-ODE, 1 = DDPM-like)", reps=("pixels",), image=True),
    "ddpm": MethodEntry(DDPMOptions, Lazy("diffrep.methods.image:run_ddpm"), "DDPM ancestral sampling in image space",
                        reps=("pixels",), uses=("steps", "guidance_scale"), image=True),
    "ddrep": MethodEntry(DDRepOptions, Lazy("diffrep.methods.ddrep:run_ddrep"),
                         "DDRep: true sampling of any diffrep (Savani et al. 2024)",
                         state=Lazy("diffrep.methods.ddrep:DDRepState"), view_guidance=True,
                         needs_linear=lambda o: "solver 'closed'" if o.solver == "closed" else None),
    "sds": MethodEntry(SDSOptions, Lazy("diffrep.methods.distillation:run_sds"),
                       "score distillation sampling (DreamFusion), mode seeking",
                       state=Lazy("diffrep.methods.distillation:DistillState"), uses=("guidance_scale",), view_guidance=True),
    "sjc": MethodEntry(SJCOptions, Lazy("diffrep.methods.distillation:run_sjc"), "score Jacobian chaining, mode seeking",
                       state=Lazy("diffrep.methods.distillation:DistillState"), uses=("guidance_scale",), view_guidance=True),
    "nfsd": MethodEntry(NFSDOptions, Lazy("diffrep.methods.distillation:run_nfsd"),
                        "noise-free score distillation (Katzir et al. 2023), mode seeking",
                        state=Lazy("diffrep.methods.distillation:DistillState"), uses=("guidance_scale",)),
    "dds": MethodEntry(DDSOptions, Lazy("diffrep.methods.distillation:run_dds"),
                       "delta denoising score (Hertz et al. 2023): edits the rep's first render, needs a source prompt",
                       state=Lazy("diffrep.methods.distillation:DistillState"), uses=("guidance_scale",),
                       requires=dds_requires),
    "ms-sds": MethodEntry(MultistepSDSOptions, Lazy("diffrep.methods.distillation:run_multistep_sds"),
                          "multistep SDS: x̂_0 from k DDIM steps, mode seeking",
                          state=Lazy("diffrep.methods.distillation:DistillState"), uses=("guidance_scale",),
                          view_guidance=True),
    "lmc-sds": MethodEntry(LMCSDSOptions, Lazy("diffrep.methods.distillation:run_lmc_sds"),
                           "SDS with a learned manifold corrective (Alldieck et al. 2024), needs a trained corrective",
                           state=Lazy("diffrep.methods.distillation:DistillState"), uses=("guidance_scale",),
                           requires=lmc_requires),
    "multidiffusion": MethodEntry(MultiDiffusionOptions, Lazy("diffrep.methods.image:run_multidiffusion"),
                                  "MultiDiffusion in image space on the 360° canvas (Bar-Tal et al. 2023): overlapping "
                                  "views fused by their mean", reps=("panorama",), image=True),
}
"""Every method by name; the API, the CLI, run.json and error messages derive their lists from it."""

PLANNED_METHODS: tuple[str, ...] = ("vsd",)

__all__ = [
    "METHODS", "PLANNED_METHODS", "MethodEntry", "MethodState", "Sampling", "ViewPrompt", "view_conditions",
    "DDIMOptions", "DDPMOptions", "MultiDiffusionOptions", "DDRepOptions", "DDRepState", "DistillState", "Optim", "OptimConfig", "PullbackConfig",
    "SDSOptions", "SJCOptions", "NFSDOptions", "DDSOptions", "MultistepSDSOptions", "LMCSDSOptions",
    "dds_grad", "lmc_grad", "multistep_sds_grad", "nfsd_grad", "sds_split",
    "run_nfsd", "run_dds", "run_multistep_sds", "run_lmc_sds",
    "ddrep_sample", "ddrep_step", "distill", "gauss_newton_step", "pullback",
    "run_ddim", "run_ddpm", "run_multidiffusion", "run_ddrep", "run_sds", "run_sjc", "sds_grad", "sjc_grad", "surrogate_loss",
]

# The implementations import torch: they load when first used (the command line parses without them).
__getattr__ = lazy_exports(__name__, {
    "diffrep.methods.ddrep": ("DDRepState", "ddrep_sample", "ddrep_step", "run_ddrep"),
    "diffrep.methods.distillation": ("DistillState", "distill", "run_sds", "run_sjc", "sds_grad", "sjc_grad",
                                     "surrogate_loss", "dds_grad", "lmc_grad", "multistep_sds_grad", "nfsd_grad",
                                     "sds_split", "run_nfsd", "run_dds", "run_multistep_sds", "run_lmc_sds"),
    "diffrep.methods.image": ("run_ddim", "run_ddpm", "run_multidiffusion"),
    "diffrep.methods.solvers": ("gauss_newton_step", "pullback"),
})
