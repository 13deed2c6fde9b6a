"""The prior protocol every method talks to, the helpers every method builds on (guidance, prompts,
decoding, devices), and evaluation counting.

A prior implements the four members of ``Prior``; everything else here works on any prior and uses
an optional member (``eps_cond_uncond``, ``decode``, ``device``) where a prior has one.

Device rule: random draws use the caller's ``torch.Generator`` on its own device (CPU by default, so
a seed gives the same numbers with or without an accelerator) and are then moved to
``prior_device(prior)`` (``draw_noise``); a prior accepts ``x_t`` on any device, computes on its own
and returns ε on the device of ``x_t``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from diffrep.errors import InputError


@runtime_checkable
class Prior(Protocol):
    """A diffusion model as diffrep sees it (design §2).

    ``alphas_cumprod``: 1-D tensor of length ``T``; ``image_shape``: ``(C, H, W)`` of what the
    prior denoises, values in [-1, 1]; ``encode_prompt(text)`` returns any condition object
    (``None`` is unconditional); ``eps(x_t, t, cond)`` predicts the noise of a batch
    ``x_t: [B, C, H, W]`` at integer timesteps ``t: [B]``, where ``cond`` is one condition for the
    whole batch or a ``list`` of ``B``, one per element (``per_element`` turns either into the list).

    Optional members the helpers use: ``device`` (where it computes, default CPU), ``decode`` (a
    latent prior: latents -> RGB), ``eps_cond_uncond`` (a faster conditional/unconditional pair),
    ``with_camera(cond, camera)`` (a camera-conditioned prior: the condition of a view shot from
    ``camera = (azimuth, elevation, distance)``, used for reps whose views have cameras; the toy world's
    with ``camera_window``).
    """

    alphas_cumprod: Tensor
    image_shape: tuple[int, int, int]

    def encode_prompt(self, text: str | None) -> Any: ...

    def eps(self, x_t: Tensor, t: Tensor, cond: Any) -> Tensor: ...


def as_timesteps(t: Tensor | int, batch: int, device: torch.device | str | None = None) -> Tensor:
    """Broadcast an integer timestep (or a [B] tensor) to a long tensor ``[B]`` (on ``device`` if given)."""
    if isinstance(t, int):
        return torch.full((batch,), t, dtype=torch.long, device=device)
    t = torch.as_tensor(t, dtype=torch.long, device=device)
    return t.expand(batch) if t.ndim == 0 else t


def in_parts(network, size: int, *batches: Tensor) -> Tensor:
    """``network(*batch)`` over ``batches`` (aligned on their first dimension) ``size`` rows at a time, concatenated:
    a learned prior's activations stay those of ``size`` images however many a run evaluates at once."""
    return torch.cat([network(*part) for part in zip(*(b.split(size) for b in batches))])


def noise_levels(alphas_cumprod: Tensor, t: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """``a_t = sqrt(alpha_bar_t)`` and ``s_t = sqrt(1 - alpha_bar_t)`` as ``[B, 1, 1, 1]`` tensors on
    the device of ``t``."""
    ab = alphas_cumprod.to(t.device, torch.float64)[t]
    shape = (-1, 1, 1, 1)
    return ab.sqrt().to(dtype).view(shape), (1 - ab).sqrt().to(dtype).view(shape)


# Devices.

def prior_device(prior: Prior) -> torch.device:
    """Where ``prior`` computes: its ``device`` attribute, or the CPU for a prior without one."""
    return torch.device(getattr(prior, "device", None) or "cpu")


def draw_noise(shape: Sequence[int], generator: torch.Generator | None = None, *,
               device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """``N(0, I)`` of ``shape``, drawn on the generator's device (CPU by default), moved to ``device``.

    >>> draw_noise((2, 3), torch.Generator().manual_seed(0), device="cpu").shape
    torch.Size([2, 3])
    """
    z = torch.randn(shape, generator=generator, dtype=dtype, device=generator.device if generator is not None else "cpu")
    return z if device is None else z.to(device)


def available_devices() -> list[str]:
    """The devices this machine can compute on: ``cpu``, ``cuda:N`` for each GPU, ``mps``."""
    cuda = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return ["cpu", *cuda, *(["mps"] if torch.backends.mps.is_available() else [])]


def check_device(device: str) -> str:
    """Validate a device name against ``available_devices()`` (``cuda`` means ``cuda:0``)."""
    allowed = available_devices()
    try:
        d = torch.device(device) if isinstance(device, str) else None  # torch.device(7) is cuda:7
    except (RuntimeError, TypeError, ValueError):
        d = None
    name = None if d is None else d.type if d.type in ("cpu", "mps") else f"{d.type}:{d.index or 0}"
    if name not in allowed:
        raise InputError(f"device={device!r} is not allowed here; allowed: {', '.join(allowed)}")
    return device


# Conditions.

def per_element(cond: Any, batch: int) -> list:
    """``cond`` as a list of ``batch`` conditions: a list is checked and kept, anything else repeated."""
    if not isinstance(cond, list):
        return [cond] * batch
    if len(cond) != batch:
        raise InputError(f"{len(cond)} conditions for a batch of {batch}; give one per element")
    return cond


@dataclass(frozen=True, eq=False)
class Conditioning:
    """A prompt's encoding and its negative prompt's, as guidance takes them:
    ``cfg_eps(prior, x_t, t, c.cond, w, c.uncond)``. DDS encodes its source prompt as a second one."""

    cond: Any
    """``prior.encode_prompt(prompt)``; ``None`` is unconditional; a list holds one per batch element."""
    uncond: Any = None
    """The negative prompt's encoding; ``None`` is the empty prompt (plain classifier-free guidance)."""


def encode_prompts(prior: Prior, prompt: str | list[str] | None, negative: str | None = None) -> Conditioning:
    """Encode a prompt (or a list of per-element prompts) and an optional negative prompt, once each.

    >>> from diffrep.priors import load
    >>> c = encode_prompts(load("gmm"), "red", negative="blue")
    >>> c.cond.tolist(), c.uncond.tolist()
    ([True, False, False, False], [False, False, True, False])
    """
    cond = [prior.encode_prompt(p) for p in prompt] if isinstance(prompt, list) else prior.encode_prompt(prompt)
    return Conditioning(cond, prior.encode_prompt(negative) if negative else None)


@dataclass(frozen=True, eq=False)
class ViewGuided:
    """Each view's condition with its view label guided apart (``--nerf.view-guidance``; Perp-Neg's idea in its
    plainest form): ``cfg_eps`` gives ``ε(∅) + w (ε(free) − ε(∅)) + scale (ε(views) − ε(free))``, ``w`` the guidance
    scale. ``scale = w`` is classifier-free guidance of ``views`` itself."""

    views: list
    """Per batch element, the view prompt's encoding ("PROMPT, LABEL view")."""
    free: list
    """Per batch element, the prompt's without its view ("PROMPT")."""
    scale: float


# Guidance.

def unconditional(prior: Prior, cond: Any, uncond: Any, batch: int) -> Any:
    """What guidance's unconditional term is conditioned on: ``uncond`` (a negative prompt's encoding), or for the
    empty prompt (``None``) the prior's ``empty_condition(conds)`` where it has one — a per-element list; the
    camera-conditioned toy world keeps each view's camera in it (MVDream's convention) — else ``None``."""
    if uncond is not None or (empty := getattr(prior, "empty_condition", None)) is None:
        return uncond
    return empty(per_element(cond, batch))


def eps_cond_uncond(prior: Prior, x_t: Tensor, t: Tensor, cond: Any, uncond: Any = None) -> tuple[Tensor, Tensor]:
    """``(ε̂(x_t, t, cond), ε̂(x_t, t, uncond))`` from one batched evaluation of ``[x_t; x_t]``.

    ``x_t: [B, C, H, W]``, ``t: [B]``; ``uncond`` ``None`` is the empty prompt. A prior may provide
    its own ``eps_cond_uncond(x_t, t, cond, uncond)``; otherwise its ``eps`` gets the ``2B`` images
    with a per-element list of conditions. NFSD, LMC-SDS and DDS need the two terms apart."""
    B = x_t.shape[0]
    uncond = unconditional(prior, cond, uncond, B)
    if (pair := getattr(prior, "eps_cond_uncond", None)) is not None:
        return pair(x_t, t, cond, uncond)
    t = as_timesteps(t, B)
    eps = prior.eps(torch.cat([x_t, x_t]), torch.cat([t, t]), per_element(cond, B) + per_element(uncond, B))
    return eps[:B], eps[B:]


def cfg_eps(prior: Prior, x_t: Tensor, t: Tensor, cond: Any, guidance_scale: float, uncond: Any = None) -> Tensor:
    """Classifier-free guidance: ``eps_w = eps(uncond) + w (eps(cond) - eps(uncond))`` (design §1).

    ``uncond`` is a negative prompt's encoding (``None``: the empty prompt). ``w = 1`` (or ``cond``
    the same object as ``uncond``, e.g. both ``None``) costs one evaluation, ``w = 0`` is
    ``eps(uncond)``; otherwise the pair comes from one batched call (``eps_cond_uncond``). A ``ViewGuided`` condition
    takes the three terms of its formula from one batched call."""
    if isinstance(cond, ViewGuided):
        return view_guided_eps(prior, x_t, t, cond, guidance_scale, uncond)
    if guidance_scale == 1.0 or cond is uncond:
        return prior.eps(x_t, t, cond)
    if guidance_scale == 0.0:
        return prior.eps(x_t, t, unconditional(prior, cond, uncond, x_t.shape[0]))
    eps_c, eps_u = eps_cond_uncond(prior, x_t, t, cond, uncond)
    return eps_u + guidance_scale * (eps_c - eps_u)


def view_guided_eps(prior: Prior, x_t: Tensor, t: Tensor, cond: ViewGuided, guidance_scale: float,
                    uncond: Any = None) -> Tensor:
    """``ε(∅) + w (ε(free) − ε(∅)) + v (ε(views) − ε(free))`` from one evaluation of ``[x_t; x_t; x_t]``."""
    B = x_t.shape[0]
    t = as_timesteps(t, B)
    free = per_element(cond.free, B)
    conds = per_element(cond.views, B) + free + per_element(unconditional(prior, free, uncond, B), B)
    eps_v, eps_p, eps_0 = prior.eps(torch.cat([x_t] * 3), torch.cat([t] * 3), conds).split(B)
    return eps_0 + guidance_scale * (eps_p - eps_0) + cond.scale * (eps_v - eps_p)


# Latent priors.

def latent(prior: Prior) -> bool:
    """Whether ``prior`` denoises latents: it has ``decode(latents) -> rgb`` (design §2)."""
    return callable(getattr(prior, "decode", None))


def to_rgb(prior: Prior, x: Tensor) -> Tensor:
    """Images in [-1, 1] from what ``prior`` denoises: ``prior.decode(x)`` for a latent prior, else ``x``."""
    return prior.decode(x) if latent(prior) else x


def rgb_size(prior: Prior) -> tuple[int, int]:
    """``(H, W)`` of the RGB images the prior's images stand for: its decoder's output for a latent prior
    (``vae_scale`` times the latents', or one decoded), else its ``image_shape``'s."""
    _, h, w = prior.image_shape
    if not latent(prior):
        return h, w
    if (f := getattr(prior, "vae_scale", None)) is not None:
        return h * f, w * f
    with torch.no_grad():
        return tuple(prior.decode(torch.zeros(1, *prior.image_shape, device=prior_device(prior))).shape[-2:])


def from_rgb(prior: Prior, rgb: Tensor) -> Tensor:
    """What ``prior`` denoises from RGB ``[B, 3, H, W]`` in [-1, 1] at ``rgb_size(prior)``: ``prior.encode(rgb)``
    for a latent prior, else ``rgb``; the inverse of ``to_rgb`` up to the VAE's reconstruction error."""
    if not latent(prior):
        return rgb
    if not callable(getattr(prior, "encode", None)):
        raise InputError(f"prior {type(prior).__name__} decodes latents but has no encode: it cannot take RGB images")
    return prior.encode(rgb)


class CountingPrior:
    """Wraps a prior and counts prior evaluations (one per image of each ``eps`` batch, two per
    image of an ``eps_cond_uncond`` pair); other members (``device``, ``decode``...) are the prior's."""

    def __init__(self, prior: Prior):
        self.prior = prior
        self.alphas_cumprod = prior.alphas_cumprod
        self.image_shape = prior.image_shape
        self.evaluations = 0

    def encode_prompt(self, text: str | None) -> Any:
        return self.prior.encode_prompt(text)

    def eps(self, x_t: Tensor, t: Tensor, cond: Any) -> Tensor:
        self.evaluations += x_t.shape[0]
        return self.prior.eps(x_t, t, cond)

    def eps_cond_uncond(self, x_t: Tensor, t: Tensor, cond: Any, uncond: Any = None) -> tuple[Tensor, Tensor]:
        self.evaluations += 2 * x_t.shape[0]
        return eps_cond_uncond(self.prior, x_t, t, cond, uncond)

    def __getattr__(self, name: str) -> Any:  # device, decode/encode of latent priors, labels, ...
        return getattr(self.prior, name)
