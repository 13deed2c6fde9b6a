"""The SIREN panorama diffrep (design §6): the SIREN network over (height, azimuth) on a 360° canvas.

The canvas is ``H × Wc`` with ``Wc = round(W · 360 / fov)``; column ``j`` is centred on azimuth
``phi_j = 2 pi (j + 1/2) / Wc``. Azimuth enters only through integer harmonics ``k`` of
``phi``, so the canvas is exactly periodic: column ``j + Wc`` *is* column ``j``. The phase
``k phi_j = 2 pi k (2j + 1) / (2 Wc)`` is reduced modulo ``2 pi`` in integer arithmetic before
it becomes a float, so the periodicity holds bit for bit. A view is the ``H × W`` crop starting
at integer column ``j`` with wrap-around.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from diffrep.errors import InputError
from diffrep.reps.configs import PanoramaConfig
from diffrep.reps.siren import SirenMLP, pixel_centres


def canvas_width(width: int, fov: float) -> int:
    """``Wc = round(W · 360 / fov)``: the number of columns around the full circle."""
    return round(width * 360 / fov)


def azimuth_phase(harmonics: Tensor, columns: Tensor, canvas_w: int) -> Tensor:
    """``k phi_j mod 2 pi`` for integer ``harmonics [K]`` and integer ``columns [M]`` -> ``[M, K]`` (float64).

    Exact periodicity: ``k (2j + 1) mod 2 Wc`` is computed on integers, so columns ``j`` and
    ``j + m Wc`` give identical phases."""
    half_turns = torch.remainder(harmonics[None, :] * (2 * columns[:, None] + 1), 2 * canvas_w)
    return (2 * math.pi / (2 * canvas_w)) * half_turns.to(torch.float64)


def panorama_embedding(freqs_y: Tensor, harmonics: Tensor, rows: int, columns: Tensor, canvas_w: int) -> Tensor:
    """``gamma(y, phi) = [sin(pi f y + k phi), cos(pi f y + k phi)]`` at ``rows`` pixel-centre heights
    times integer ``columns [M]`` -> ``[rows * M, E]`` (row-major)."""
    phase_y = math.pi * pixel_centres(rows).to(freqs_y)[:, None] * freqs_y  # [rows, K]
    phase_phi = azimuth_phase(harmonics, columns, canvas_w).to(freqs_y)  # [M, K]
    phase = (phase_y[:, None, :] + phase_phi[None, :, :]).reshape(-1, freqs_y.shape[0])
    return torch.cat([phase.sin(), phase.cos()], -1)


def crop(canvas: Tensor, views: Tensor, width: int) -> Tensor:
    """``width``-column crops of ``canvas [n, C, H, Wc]`` starting at integer columns ``views [n, k]``,
    wrapping around the seam -> ``[n, k, C, H, width]``. Pure indexing: differentiable, exact."""
    n, Wc, device = canvas.shape[0], canvas.shape[-1], canvas.device
    cols = torch.remainder(views.to(device)[..., None].long() + torch.arange(width, device=device), Wc)  # [n, k, W]
    picked = canvas.permute(0, 3, 1, 2)[torch.arange(n, device=device)[:, None, None], cols]  # [n, k, W, C, H]
    return picked.permute(0, 1, 3, 4, 2)


def canvas_preview(canvas: Tensor, width: int) -> tuple[Tensor, Tensor]:
    """A canvas ``[n, C, H, Wc]`` and a strip of its 6 evenly spaced ``width``-column views ``[n, 6, C, H, W]``
    (what a panorama run writes, whether the canvas is a SIREN's or a sampler's)."""
    n, Wc = canvas.shape[0], canvas.shape[-1]
    views = torch.arange(6, device=canvas.device).mul(Wc // 6).expand(n, 6)
    return canvas, crop(canvas, views, width).clamp(-1, 1)


class PanoramaRep(SirenMLP):
    """``n`` SIREN panoramas over (height, azimuth); views are column offsets ``[n, k]`` (int64).

    ``embed_dim/2`` features ``sin/cos(pi f y + k phi)``: ``f`` (cycles per view height) from
    ``N(0, (freq_scale H/2)^2)``, integer harmonics ``k = round(N(0, (freq_scale Wc/2)^2))``.

    >>> rep = PanoramaRep((3, 8, 8), n=2, generator=torch.Generator().manual_seed(0))
    >>> rep.canvas_shape, rep(torch.tensor([[0, 40], [5, 47]])).shape
    ((3, 8, 48), torch.Size([2, 2, 3, 8, 8]))
    """

    def __init__(self, image_shape: tuple[int, int, int], n: int, config: PanoramaConfig | None = None, *,
                 generator: torch.Generator):
        config = PanoramaConfig() if config is None else config
        super().__init__(image_shape, n, config, generator=generator)
        C, H, W = self.image_shape
        self.canvas_shape = (C, H, canvas_width(W, config.fov))
        z = torch.randn(2, config.embed_dim // 2, generator=generator, dtype=torch.float64) * config.freq_scale
        self.register_buffer("freqs_y", (z[0] * H / 2).to(torch.get_default_dtype()))  # [E/2] cycles per height
        self.register_buffer("harmonics", (z[1] * self.canvas_shape[2] / 2).round().long())  # [E/2] per turn

    def render_columns(self, columns: Tensor) -> Tensor:
        """Render integer canvas columns ``[M]`` (any integers; periodic in ``Wc``) -> ``[n, C, H, M]``."""
        C, H, Wc = self.canvas_shape
        gamma = panorama_embedding(self.freqs_y, self.harmonics, H, columns.to(self.harmonics.device).long(), Wc)
        out = self.mlp(gamma)  # [n, H*M, C]
        return out.transpose(1, 2).reshape(-1, C, H, columns.shape[0])

    def canvas(self) -> Tensor:
        """The full 360° canvas ``[n, C, H, Wc]``."""
        return self.render_columns(torch.arange(self.canvas_shape[2]))

    def crop(self, canvas: Tensor, views: Tensor | None) -> Tensor:
        """``crop(canvas, views, W)`` at this rep's view width, ``[n, C, H, Wc]`` -> ``[n, k, C, H, W]``;
        ``views=None`` is the canonical view (column 0)."""
        if views is None:
            views = torch.zeros(canvas.shape[0], 1, dtype=torch.long, device=canvas.device)
        return crop(canvas, views, self.image_shape[2])

    @property
    def noise_shape(self) -> tuple[int, int, int, int]:
        """Shape of a noise state that lives on the canvas (DDRep, design §5): ``(n, C, H, Wc)``."""
        return (self.n, *self.canvas_shape)

    def view_noise(self, noise: Tensor, views: Tensor | None) -> Tensor:
        """The noise of each view, ``[n, k, C, H, W]``: exactly the crop that ``forward`` renders."""
        return self.crop(noise, views)

    @torch.no_grad()
    def preview(self) -> tuple[Tensor, Tensor]:
        """The full canvas ``[n, C, H, Wc]`` and a strip of 6 evenly spaced views ``[n, 6, C, H, W]``."""
        return canvas_preview(self.canvas(), self.image_shape[2])

    def forward(self, views: Tensor | None = None) -> Tensor:
        """Render views (column offsets ``[n, k]``) -> ``[n, k, C, H, W]``; ``None``: column 0, k = 1.

        Renders the canvas once and crops it, so ``forward(views) == crop(canvas(), views)`` exactly."""
        n = self.weights[0].shape[0]  # not self.n: functional_call may pass a slice of the instances
        if views is not None and (views.ndim != 2 or views.shape[0] != n or views.is_floating_point()):
            raise InputError(f"panorama views must be integer column offsets [n={n}, k]; "
                             f"got {views.dtype} {tuple(views.shape)}")
        return self.crop(self.canvas(), views)

    def random_views(self, k: int, generator: torch.Generator, progress: float = 0.0) -> Tensor:
        """``k`` column offsets per instance, stratified: evenly spaced ``Wc / k`` apart with a uniform
        random phase, so each offset is uniform on ``[0, Wc)`` and ``k >= Wc / W`` views cover the
        whole canvas every time. ``[n, k]`` int64."""
        Wc = self.canvas_shape[2]
        phase = torch.randint(0, Wc, (self.n, 1), generator=generator, device=generator.device)
        spacing = torch.div(torch.arange(k, device=generator.device) * Wc, k, rounding_mode="floor")
        return ((phase + spacing) % Wc).to(self.harmonics.device)
