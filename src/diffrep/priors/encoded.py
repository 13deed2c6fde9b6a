"""A rep whose RGB renders are encoded into a latent prior's space, with gradient (DreamFusion with SD).

The encoder is part of the renderer: ``x(π) = E(up(f_θ(π)))``. Every method then works in latent
space unchanged: SDS and SJC push their latent gradient ``g`` back through ``∂E/∂x`` and ``∂f/∂θ``
(the surrogate loss ``½‖x - sg(x - g)‖²`` differentiates through the encoder), and DDRep's pullback
fits ``E(up(f_θ(π)))`` to its latent targets, its noise states living in latent space.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
from torch import Tensor, nn

from diffrep.errors import InputError


class EncodedRep(nn.Module):
    """``rep`` (rendering RGB ``[n, V, 3, R, R]``) followed by ``encode`` (RGB ``[B, 3, R, R]`` -> latents
    ``[B, *latent_shape]``): the view/noise contract of ``diffrep.reps.Diffrep`` in latent space.
    ``preview`` is the rep's own RGB; the encoder's weights are not parameters of this module."""

    linear = False

    def __init__(self, rep: nn.Module, encode: Callable[[Tensor], Tensor], latent_shape: tuple[int, int, int]):
        super().__init__()
        if tuple(rep.noise_shape[-3:]) != tuple(rep.image_shape):
            raise InputError(f"rep {type(rep).__name__} keeps its noise on a canvas {tuple(rep.noise_shape[-3:])}, "
                             "not per view: it cannot render through an rgb=True prior's encoder; use rgb=False")
        self.rep, self.encode, self.image_shape, self.n = rep, encode, tuple(latent_shape), rep.n

    def forward(self, views: Tensor | None = None) -> Tensor:
        return self.encoded(self.rep(views))

    def encoded(self, rgb: Tensor) -> Tensor:
        """``[n, V, 3, R, R]`` -> ``[n, V, *latent_shape]``."""
        return self.encode(rgb.flatten(0, 1)).unflatten(0, rgb.shape[:2])

    def random_views(self, k: int, generator: torch.Generator, progress: float = 0.0) -> Tensor | None:
        return self.rep.random_views(k, generator, progress)

    def regularised(self, views: Tensor | None = None) -> tuple[Tensor, Tensor]:
        rgb, penalty = self.rep.regularised(views)
        return self.encoded(rgb), penalty

    @property
    def noise_shape(self) -> tuple[int, ...]:
        return (*self.rep.noise_shape[:-3], *self.image_shape)

    def view_noise(self, noise: Tensor, views: Tensor | None) -> Tensor:
        return self.rep.view_noise(noise, views)

    def view_labels(self, views: Tensor | None) -> list[list[str]] | None:
        return self.rep.view_labels(views)

    def solving(self) -> AbstractContextManager:
        return self.rep.solving()

    @torch.no_grad()
    def preview(self) -> tuple[Tensor, Tensor | None]:
        return self.rep.preview()

    def solve_linear(self, views: Tensor | None, targets: Tensor) -> None:
        raise NotImplementedError("an encoded rep is not linear in its parameters; use an iterative solver")
