"""diffrep: sample differentiable representations with a pretrained diffusion prior.

>>> import diffrep
>>> prior = diffrep.priors.load("toyworld")
>>> result = diffrep.sample(prior, prompt="a red mug, front view", n=4, seed=0)
>>> result.images.shape
torch.Size([4, 3, 32, 32])
"""

from diffrep.errors import InputError, RunError
from diffrep.lazy import lazy_exports
from diffrep.version import __version__

__all__ = [
    "__version__", "Prior", "Result", "InputError", "RunError", "cameras", "cfg_eps", "inpaint", "priors", "sample", "samplers",
    "schedule", "sdedit", "edit", "evaluate", "export_run", "toyworld", "translate",
]

# Imported on first use (PEP 562): `import diffrep.cli` must not pay for torch before it can report a typo.
__getattr__ = lazy_exports(__name__, {
    "diffrep.api": ("Result", "edit", "inpaint", "sample", "sdedit", "translate"),
    "diffrep.nerf_runs": ("evaluate", "export_run"),
    "diffrep.priors": ("priors", "Prior", "cfg_eps"),
    "diffrep.cameras": ("cameras",), "diffrep.samplers": ("samplers",), "diffrep.schedule": ("schedule",),
    "diffrep.toyworld": ("toyworld",),
})
