"""The SIREN image diffrep (design §6): a coordinate MLP with sine activations over a sinusoidal
(random Fourier feature) embedding of the pixel coordinates, ``n`` instances batched.

Layer ``l`` of instance ``i`` is ``h <- sin(omega_l (h W_l[i] + b_l[i]))`` with SIREN's
initialisation (Sitzmann et al. 2020, §3.2) ``W_l ~ U(±sqrt(6 / fan_in) / omega_l)``; the last
layer is linear and scaled so the initial render has std ``init_std``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from diffrep.errors import InputError
from diffrep.reps.base import Diffrep
from diffrep.reps.configs import SirenConfig, check_siren_config  # noqa: F401 (re-exported)


class SirenMLP(Diffrep):
    """The batched network shared by ``SirenRep`` and ``PanoramaRep``: parameters ``weights.l [n, in, out]``,
    ``biases.l [n, 1, out]``; subclasses supply the embedding ``gamma``."""

    def __init__(self, image_shape: tuple[int, int, int], n: int, config: SirenConfig, generator: torch.Generator):
        super().__init__(image_shape, n)
        self.config = config
        self.weights, self.biases = init_siren(n, config, self.image_shape[0], generator)

    def mlp(self, gamma: Tensor) -> Tensor:
        """Embedding ``gamma [P, E]`` (shared) or ``[n, P, E]`` -> outputs ``[n, P, C]``."""
        omegas = [self.config.omega0] + [self.config.hidden_omega0] * (self.config.depth - 1)
        n = self.weights[0].shape[0]  # not self.n: functional_call may pass a slice of the instances
        h = gamma.expand(n, *gamma.shape[-2:])
        # Index the ParameterLists, never slice them: a slice re-wraps functional_call's tensors as new leaves.
        for layer, omega in enumerate(omegas):
            z = torch.baddbmm(self.biases[layer], h, self.weights[layer])
            h = torch.sin(z if omega == 1 else omega * z)
        return torch.baddbmm(self.biases[-1], h, self.weights[-1])


def init_siren(n: int, c: SirenConfig, channels: int,
               generator: torch.Generator) -> tuple[nn.ParameterList, nn.ParameterList]:
    """SIREN initialisation of ``n`` independent networks (weights ``[n, in, out]``, zero biases ``[n, 1, out]``)."""
    dims = [c.embed_dim] + [c.width] * c.depth
    omegas = [c.omega0] + [c.hidden_omega0] * (c.depth - 1)
    weights, biases = [], []
    for fan_in, fan_out, omega in zip(dims[:-1], dims[1:], omegas):
        bound = math.sqrt(6 / fan_in) / omega  # unit-variance pre-activations: Sitzmann et al. 2020, §3.2
        weights.append(bound * (2 * torch.rand(n, fan_in, fan_out, generator=generator) - 1))
        biases.append(torch.zeros(n, 1, fan_out))
    # Hidden units sin(.) have variance ~1/2, so U(±bound) gives outputs of std init_std.
    bound = c.init_std * math.sqrt(3 / (0.5 * c.width))
    weights.append(bound * (2 * torch.rand(n, c.width, channels, generator=generator) - 1))
    biases.append(torch.zeros(n, 1, channels))
    return nn.ParameterList(weights), nn.ParameterList(biases)


def pixel_centres(size: int) -> Tensor:
    """Pixel-centre coordinates of one axis in [-1, 1]: ``(2 i + 1) / size - 1``, ``[size]``."""
    return (2 * torch.arange(size, dtype=torch.float64) + 1) / size - 1


class SirenRep(SirenMLP):
    """``n`` SIREN images: ``x(p) = MLP(gamma(p))`` at the pixel centres ``p = (y, x)`` in [-1, 1]^2.

    ``gamma(p) = [sin(pi f.p), cos(pi f.p)]`` with ``embed_dim/2`` frequencies ``f = (f_y, f_x)`` (cycles
    per image) drawn once from ``N(0, (freq_scale * Nyquist)^2)`` per axis and shared by the instances.
    Only the canonical view exists.

    >>> rep = SirenRep((3, 8, 8), n=2, generator=torch.Generator().manual_seed(0))
    >>> rep().shape
    torch.Size([2, 1, 3, 8, 8])
    """

    def __init__(self, image_shape: tuple[int, int, int], n: int, config: SirenConfig | None = None, *,
                 generator: torch.Generator):
        config = SirenConfig() if config is None else config
        super().__init__(image_shape, n, config, generator=generator)
        _, H, W = self.image_shape
        nyquist = torch.tensor([H / 2, W / 2], dtype=torch.float64)
        z = torch.randn(config.embed_dim // 2, 2, generator=generator, dtype=torch.float64)
        f = z * config.freq_scale * nyquist
        self.register_buffer("freqs", f.to(torch.get_default_dtype()))  # [E/2, 2] cycles per image (y, x)

    def embedding(self) -> Tensor:
        """``gamma`` at the pixel centres, ``[H*W, E]`` (row-major)."""
        _, H, W = self.image_shape
        p = torch.stack(torch.meshgrid(pixel_centres(H), pixel_centres(W), indexing="ij"), -1).view(-1, 2)
        phase = math.pi * p.to(self.freqs) @ self.freqs.T
        return torch.cat([phase.sin(), phase.cos()], -1)

    def forward(self, views: Tensor | None = None) -> Tensor:
        """The canonical render ``[n, 1, C, H, W]`` (``views`` must be ``None``)."""
        if views is not None:
            raise InputError("the siren rep has only the canonical view; pass views=None")
        C, H, W = self.image_shape
        out = self.mlp(self.embedding())  # [n, H*W, C]
        return out.transpose(1, 2).reshape(-1, 1, C, H, W)
