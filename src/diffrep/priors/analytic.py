"""Analytic priors with closed-form noise prediction: a Gaussian and a Gaussian mixture.

For ``x_0 ~ N(mu, Sigma)`` the noisy marginal is ``x_t ~ N(a mu, a^2 Sigma + s^2 I)`` and the
optimal noise prediction is ``E[eps | x_t] = s (a^2 Sigma + s^2 I)^{-1} (x_t - a mu)``.
A mixture weighs each component's answer by its posterior responsibility.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from diffrep.errors import InputError
from diffrep.priors.base import noise_levels
from diffrep.priors.configs import GaussianPriorConfig, GMMPriorConfig
from diffrep.schedule import linear_schedule


class GaussianPrior:
    """``x_0 ~ N(mean, cov)`` over images of shape ``mean.shape``; exact ``eps`` (float64 inside).

    ``cov`` is a full ``[D, D]`` matrix (``D = C*H*W``) or a per-pixel std ``[C, H, W]``."""

    def __init__(self, mean: Tensor, cov: Tensor, alphas_cumprod: Tensor | None = None):
        self.image_shape = tuple(mean.shape)
        self.mean = mean.to(torch.float64)
        D = self.mean.numel()
        cov = cov.to(torch.float64)
        cov = torch.diag(cov.flatten() ** 2) if cov.shape == mean.shape else cov
        if cov.shape != (D, D):
            raise InputError(f"cov shape {tuple(cov.shape)} must be [{D}, {D}] or the image shape {self.image_shape}")
        self.cov = cov
        lam, U = torch.linalg.eigh(cov)
        self._lam, self._U = lam.clamp(min=0), U
        self.alphas_cumprod = linear_schedule() if alphas_cumprod is None else alphas_cumprod

    def encode_prompt(self, text: str | None) -> None:
        if text:
            raise InputError(f"the gaussian prior is unconditional; got prompt {text!r}")
        return None

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def eps(self, x_t: Tensor, t: Tensor, cond: object = None) -> Tensor:
        """``cond`` is ignored (the prior is unconditional): ``None`` or a list of ``None``."""
        a, s = noise_levels(self.alphas_cumprod, t.to(self.device), torch.float64)
        r = (x_t.to(self.device, torch.float64) - a * self.mean).flatten(1) @ self._U  # [B, D] in the eigenbasis
        r = r * s.view(-1, 1) / (a.view(-1, 1) ** 2 * self._lam + s.view(-1, 1) ** 2)
        return (r @ self._U.T).view_as(x_t).to(x_t.device, x_t.dtype)

    def sample_x0(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Exact samples ``[n, C, H, W]`` (float64)."""
        z = torch.randn(n, self.mean.numel(), generator=generator, dtype=torch.float64)
        x = (z * self._lam.sqrt()) @ self._U.T
        return x.view(n, *self.image_shape) + self.mean


class GMMPrior:
    """Mixture of Gaussians with diagonal covariances and named components.

    ``weights [K]``, ``means [K, C, H, W]``, ``stds [K]`` (isotropic) or ``[K, C, H, W]``.
    ``encode_prompt(text)`` selects the components whose label equals ``text``; the result is a
    boolean component mask, so conditional and unconditional models are exact and CFG is too;
    ``cond`` is ``None``, one mask, or a list with one of those per batch element.
    """

    def __init__(self, weights: Tensor, means: Tensor, stds: Tensor, labels: Sequence[str] | None = None,
                 alphas_cumprod: Tensor | None = None):
        K = means.shape[0]
        self.image_shape = tuple(means.shape[1:])
        self.weights = (weights / weights.sum()).to(torch.float64)
        self.means = means.to(torch.float64)
        stds = stds.to(torch.float64)
        self.vars = (stds.view(K, 1, 1, 1) if stds.ndim == 1 else stds).expand_as(self.means) ** 2
        self.labels = tuple(labels) if labels is not None else tuple(str(k) for k in range(K))
        self.alphas_cumprod = linear_schedule() if alphas_cumprod is None else alphas_cumprod

    def encode_prompt(self, text: str | None) -> Tensor | None:
        if not text:
            return None
        mask = torch.tensor([label == text.strip() for label in self.labels])
        if not mask.any():
            raise InputError(f"unknown prompt {text!r} for the gmm prior; allowed: {', '.join(sorted(set(self.labels)))}")
        return mask

    @property
    def device(self) -> torch.device:
        return self.means.device

    def _log_weights(self, cond: Tensor | list | None) -> Tensor:
        """Log prior weights ``[K]`` of a condition, or ``[B, K]`` of a per-element list."""
        if isinstance(cond, list):
            return torch.stack([self._log_weights(c) for c in cond])
        logw = self.weights.log()
        return logw if cond is None else logw.masked_fill(~cond.to(self.device), -math.inf)

    def responsibilities(self, x_t: Tensor, t: Tensor, cond: Tensor | list | None = None) -> Tensor:
        """Posterior component probabilities ``p(k | x_t)`` ``[B, K]``."""
        a, s = noise_levels(self.alphas_cumprod, t.to(self.device), torch.float64)
        var = a[:, None] ** 2 * self.vars + s[:, None] ** 2  # [B, K, C, H, W]
        diff = x_t.to(self.device, torch.float64)[:, None] - a[:, None] * self.means
        log_n = -0.5 * (diff**2 / var + var.log() + math.log(2 * math.pi)).flatten(2).sum(-1)
        return torch.softmax(log_n + self._log_weights(cond), dim=1)

    def eps(self, x_t: Tensor, t: Tensor, cond: Tensor | list | None = None) -> Tensor:
        a, s = noise_levels(self.alphas_cumprod, t.to(self.device), torch.float64)
        var = a[:, None] ** 2 * self.vars + s[:, None] ** 2
        diff = x_t.to(self.device, torch.float64)[:, None] - a[:, None] * self.means
        gamma = self.responsibilities(x_t, t, cond)
        eps = s * (gamma[..., None, None, None] * diff / var).sum(1)
        return eps.to(x_t.device, x_t.dtype)

    def sample_x0(self, n: int, cond: Tensor | None = None, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Exact samples ``[n, C, H, W]`` and their component indices ``[n]``."""
        probs = self._log_weights(cond).softmax(0)
        k = torch.multinomial(probs, n, replacement=True, generator=generator)
        z = torch.randn(n, *self.image_shape, generator=generator, dtype=torch.float64)
        return self.means[k] + self.vars[k].sqrt() * z, k


def default_gaussian(size: int = 8, length_scale: float = 2.0) -> GaussianPrior:
    """A correlated Gaussian over ``3 x size x size`` images: an RBF kernel over pixel positions
    (length scale in pixels), correlated colour channels, mean a soft grey gradient."""
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64), indexing="ij")
    pos = torch.stack([ys.flatten(), xs.flatten()], 1)
    k_space = torch.exp(-torch.cdist(pos, pos) ** 2 / (2 * length_scale**2))
    k_colour = torch.tensor([[1.0, 0.6, 0.3], [0.6, 1.0, 0.6], [0.3, 0.6, 1.0]], dtype=torch.float64)
    cov = 0.25 * torch.kron(k_colour, k_space) + 1e-4 * torch.eye(3 * size * size, dtype=torch.float64)
    mean = (xs / (size - 1) - 0.5).expand(3, size, size) * 0.5
    return GaussianPrior(mean, cov)


def default_gmm(size: int = 16, std: float = 0.1) -> GMMPrior:
    """Four flat-colour images (red, green, blue, yellow) with weights 0.4/0.3/0.2/0.1 and
    isotropic per-pixel noise ``std``, over ``3 x size x size`` images."""
    colours = {"red": (1, -1, -1), "green": (-1, 1, -1), "blue": (-1, -1, 1), "yellow": (1, 1, -1)}
    means = torch.tensor(list(colours.values()), dtype=torch.float64).mul(0.8)[:, :, None, None].expand(4, 3, size, size)
    weights = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64)
    return GMMPrior(weights, means.clone(), torch.full((4,), std, dtype=torch.float64), labels=list(colours))


def gaussian_from_config(config: GaussianPriorConfig, *, progress=None) -> GaussianPrior:
    """The ``gaussian`` prior of a config (``progress`` unused: nothing to generate)."""
    return default_gaussian(config.size, config.length_scale)


def gmm_from_config(config: GMMPriorConfig, *, progress=None) -> GMMPrior:
    """The ``gmm`` prior of a config (``progress`` unused: nothing to generate)."""
    return default_gmm(config.size, config.std)
