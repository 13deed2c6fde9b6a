"""diffrep: sample differentiable representations with a pretrained diffusion prior.

>>> import diffrep
>>> prior = diffrep.priors.load("toyworld")
>>> result = diffrep.sample(prior, prompt="a red mug, front view", n=4, seed=0)
>>> result.images.shape
torch.Size([4, 3, 32, 32])
"""

from diffrep import cameras, priors, samplers, schedule
from diffrep.api import Result, inpaint, sample, sdedit
from diffrep.errors import InputError, RunError
from diffrep.priors import Prior, cfg_eps
from diffrep.version import __version__

__all__ = [
    "__version__", "Prior", "Result", "InputError", "RunError", "cameras", "cfg_eps", "inpaint", "priors", "sample", "samplers",
    "schedule", "sdedit", "toyworld",
]


def __getattr__(name: str):
    if name == "toyworld":  # imported lazily: nothing renders on import anyway, but keep import light
        import importlib

        return importlib.import_module("diffrep.toyworld")
    raise AttributeError(f"module 'diffrep' has no attribute {name!r}")
