"""Stable Diffusion 1.x/2.x as a ``diffrep.Prior`` (design §2: the diffusers priors).

``SDPrior`` denoises latents ``(4, H/8, W/8)``: a rep renders latents directly (as the DDRep paper's
SIRENs do) and results are decoded for viewing (``decode``). ``EncodedRGBPrior`` (``rgb=True``) lets a
rep render RGB that is upsampled and VAE-encoded with gradient (DreamFusion with SD): its
``image_shape`` is the RGB the rep renders, and ``wrap_rep`` puts the encoder at the end of the rep's
renderer, so every method works in latent space on ``E(up(f_θ(π)))``. diffusers and transformers are
imported inside the loader only (``diffrep[diffusers]``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from diffrep.errors import InputError
from diffrep.priors.base import as_timesteps, check_device, in_parts, noise_levels, per_element
from diffrep.priors.sd_config import INSTALL, SDPriorConfig, model_folder

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def import_diffusers():
    """diffusers, or an ``InputError`` saying which extra to install."""
    try:
        import diffusers
        import transformers  # noqa: F401 (the text encoders)
    except ImportError:
        raise InputError(f"the sd and if priors need diffusers and transformers: {INSTALL}") from None
    return diffusers


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """transformers without its progress bars (the library reports, the CLI talks), as they were afterwards."""
    from transformers.utils import logging

    shown = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            logging.enable_progress_bar()


def v_to_eps(v: Tensor, x_t: Tensor, a: Tensor, s: Tensor) -> Tensor:
    """ε from a v-prediction (Salimans & Ho): ``v = a_t ε - s_t x_0`` gives ``ε = a_t v + s_t x_t``."""
    return a * v + s * x_t


class Offload:
    """Where a prior's networks live: on ``device``, or (``cpu_offload``) on the CPU, each moved to
    ``device`` only while it runs."""

    def __init__(self, device: torch.device, cpu_offload: bool):
        self.device, self.cpu_offload = device, cpu_offload

    def place(self, module: nn.Module) -> nn.Module:
        return module.requires_grad_(False).eval().to("cpu" if self.cpu_offload else self.device)

    @contextlib.contextmanager
    def on_device(self, module: nn.Module) -> Iterator[nn.Module]:
        if not self.cpu_offload:
            yield module
            return
        module.to(self.device)
        try:
            yield module
        finally:
            module.to("cpu")


class UNetPrior:
    """``diffrep.Prior`` over a diffusers text-conditioned UNet and a transformers text encoder: what
    Stable Diffusion and DeepFloyd IF share.

    ``encode_prompt(text)`` -> the text encoder's states ``[L, D]`` (cached per prompt; ``None`` or ``""``
    is unconditional, which ``eps`` maps to the empty prompt's states, as their classifier-free guidance
    does); ``eps(x_t, t, cond)`` for ``x_t: [B, *image_shape]`` (ε, or v converted to ε; a learned-variance
    output keeps its ε channels)."""

    def __init__(self, unet: nn.Module, text_encoder: nn.Module, tokenizer: Any, alphas_cumprod: Tensor,
                 prediction_type: str = "epsilon", *, offload: Offload | None = None):
        if prediction_type not in ("epsilon", "v_prediction"):
            raise InputError(f"prediction_type={prediction_type!r} is not supported; allowed: epsilon, v_prediction")
        self.offload = offload or Offload(next(unet.parameters()).device, False)
        self.unet, self.text_encoder = self.offload.place(unet), self.offload.place(text_encoder)
        self.tokenizer, self.prediction_type = tokenizer, prediction_type
        self.alphas_cumprod = alphas_cumprod.float().cpu()
        self.dtype = next(unet.parameters()).dtype
        size = unet.config.sample_size
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        self.image_shape = (unet.config.in_channels, h, w)
        self.embeddings: dict[str, Tensor] = {}  # the prompt-embedding cache

    text_mask = False
    """Whether the text encoder sees the tokenizer's attention mask (IF's T5 does, SD's CLIP does not)."""
    max_tokens: int | None = None
    """Prompt length in tokens; ``None``: the tokenizer's ``model_max_length`` (SD's CLIP: 77)."""

    @property
    def device(self) -> torch.device:
        return self.offload.device

    @torch.no_grad()
    def embed(self, text: str) -> Tensor:
        """The text encoder's last hidden states for ``text``, ``[L, D]`` on the device, cached."""
        if text not in self.embeddings:
            tok = self.tokenizer(text, padding="max_length", max_length=self.max_tokens or self.tokenizer.model_max_length,
                                 truncation=True, return_tensors="pt")
            mask = {"attention_mask": tok.attention_mask.to(self.device)} if self.text_mask else {}
            with self.offload.on_device(self.text_encoder) as encoder:
                states = encoder(tok.input_ids.to(self.device), **mask)[0][0]
            self.embeddings[text] = states.to(self.device, self.dtype)
        return self.embeddings[text]

    def encode_prompt(self, text: str | None) -> Tensor | None:
        """The prompt's text states ``[L, D]``; ``None`` or ``""`` is unconditional (``None``)."""
        return self.embed(text) if text else None

    def states(self, cond: Any, batch: int) -> Tensor:
        """Condition(s) -> text states ``[batch, L, D]`` (``None`` entries: the empty prompt's)."""
        return torch.stack([self.embed("") if c is None else c.to(self.device, self.dtype)
                            for c in per_element(cond, batch)])

    eval_batch: int = 32
    """Images the UNet evaluates at once: its activations stay those of 32 images however many a run has (a run's
    guidance doubles its instances into one batch)."""

    @torch.no_grad()
    def eps(self, x_t: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        t = as_timesteps(t, x_t.shape[0], self.device)
        x, states = x_t.to(self.device, self.dtype), self.states(cond, x_t.shape[0])
        with self.offload.on_device(self.unet) as unet:
            def call(x: Tensor, t: Tensor, states: Tensor) -> Tensor:
                return unet(x, t, encoder_hidden_states=states).sample.float()

            out = in_parts(call, self.eval_batch, x, t, states)
        out = out[:, :x_t.shape[1]]  # a learned-variance model (IF) predicts ε and its variance: keep ε
        if self.prediction_type == "v_prediction":
            out = v_to_eps(out, x.float(), *noise_levels(self.alphas_cumprod, t, torch.float32))
        return out.to(x_t.device, x_t.dtype)

    def eps_cond_uncond(self, x_t: Tensor, t: Tensor, cond: Any, uncond: Any = None) -> tuple[Tensor, Tensor]:
        """Both predictions from one UNet call on ``[x_t; x_t]`` with the two batches of text states."""
        B = x_t.shape[0]
        t = as_timesteps(t, B)
        eps = self.eps(torch.cat([x_t, x_t]), torch.cat([t, t]), per_element(cond, B) + per_element(uncond, B))
        return eps[:B], eps[B:]


class SDPrior(UNetPrior):
    """Stable Diffusion: a ``UNetPrior`` on latents ``[B, 4, H/8, W/8]`` with its VAE; ``decode``/``encode``
    map latents to and from RGB in [-1, 1] (scaled by the VAE's scaling factor). With fp16 networks the VAE
    computes in fp32 (``vae_dtype``), as diffusers' pipelines do: SD's VAE gives NaN in fp16."""

    def __init__(self, unet: nn.Module, vae: nn.Module, text_encoder: nn.Module, tokenizer: Any,
                 alphas_cumprod: Tensor, prediction_type: str = "epsilon", *, offload: Offload | None = None):
        super().__init__(unet, text_encoder, tokenizer, alphas_cumprod, prediction_type, offload=offload)
        given = next(vae.parameters()).dtype
        self.vae_dtype = vae_dtype(given, vae.config)
        self.vae = self.offload.place(vae if self.vae_dtype == given else vae.to(self.vae_dtype))
        self.vae_scale = 2 ** (len(vae.config.block_out_channels) - 1)

    def decode(self, latents: Tensor, chunk: int = 4) -> Tensor:
        """Latents ``[B, 4, h, w]`` -> RGB ``[B, 3, 8h, 8w]`` in about [-1, 1], ``chunk`` images at a time."""
        cfg = self.vae.config
        out = []
        with self.offload.on_device(self.vae) as vae:
            for z in latents.split(chunk):
                z = z.to(self.device, self.vae_dtype) / cfg.scaling_factor + (getattr(cfg, "shift_factor", None) or 0)
                out.append(vae.decode(z).sample.float().to(latents.device))
        return torch.cat(out)

    def encode(self, rgb: Tensor) -> Tensor:
        """RGB ``[B, 3, H, W]`` in [-1, 1] -> latents ``[B, 4, H/8, W/8]`` (the posterior mean, scaled),
        with gradient with respect to ``rgb``."""
        cfg = self.vae.config
        with self.offload.on_device(self.vae) as vae:
            z = vae.encode(rgb.to(self.device, self.vae_dtype)).latent_dist.mean
        return ((z - (getattr(cfg, "shift_factor", None) or 0)) * cfg.scaling_factor).float().to(rgb.device)


def vae_dtype(dtype: torch.dtype, config: Any) -> torch.dtype:
    """The dtype the VAE computes in when the prior's is ``dtype``: fp32 for fp16 if the VAE's ``config`` asks
    (``force_upcast``, true for SD 1.x/2.x, whose VAE overflows to NaN in fp16), as diffusers' pipelines upcast it."""
    force = config.get("force_upcast", True) if isinstance(config, dict) else getattr(config, "force_upcast", True)
    return torch.float32 if dtype == torch.float16 and force else dtype


class EncodedRGBPrior:
    """An ``SDPrior`` for reps that render RGB (``rgb=True``): ``image_shape = (3, R, R)`` is what the rep
    renders; ``wrap_rep`` makes the rep render ``encode(upsample(f_θ(π)))``, the latents every method
    then works on (``eps`` is the latent prior's). No ``decode``: results are the rep's own RGB renders."""

    def __init__(self, prior: SDPrior, res: int = 64):
        self.prior = prior
        self.alphas_cumprod = prior.alphas_cumprod
        self.image_shape = (3, res, res)
        self.latent_shape = prior.image_shape
        self.device = prior.device

    def encode_prompt(self, text: str | None) -> Tensor | None:
        return self.prior.encode_prompt(text)

    def eps(self, x_t: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        if tuple(x_t.shape[1:]) != self.latent_shape:
            raise InputError(f"an rgb=True prior denoises the latents of the reps it encodes ({self.latent_shape}), "
                             f"not {tuple(x_t.shape[1:])}: use a diffrep method (ddrep, sds, sjc), or rgb=False")
        return self.prior.eps(x_t, t, cond)

    def eps_cond_uncond(self, x_t: Tensor, t: Tensor, cond: Any, uncond: Any = None) -> tuple[Tensor, Tensor]:
        return self.prior.eps_cond_uncond(x_t, t, cond, uncond)

    def encode_rgb(self, rgb: Tensor) -> Tensor:
        """RGB renders ``[B, 3, R, R]`` -> latents, upsampled (bilinear) to the VAE's resolution, with gradient."""
        _, h, w = self.latent_shape
        size = (h * self.prior.vae_scale, w * self.prior.vae_scale)
        return self.prior.encode(nn.functional.interpolate(rgb, size=size, mode="bilinear", align_corners=False))

    def wrap_rep(self, rep: nn.Module) -> nn.Module:
        from diffrep.priors.encoded import EncodedRep

        return EncodedRep(rep, self.encode_rgb, self.latent_shape)


def load_sd(config: SDPriorConfig) -> SDPrior:
    """The networks of a diffusers Stable Diffusion folder, read from safetensors only, never downloaded."""
    diffusers = import_diffusers()
    import transformers

    folder = model_folder(config.path, SDPriorConfig.components)
    device, dtype = torch.device(check_device(config.device)), DTYPES[config.dtype]
    local = {"use_safetensors": True, "local_files_only": True}
    models = local | {"torch_dtype": dtype, "low_cpu_mem_usage": False}
    unet = diffusers.UNet2DConditionModel.from_pretrained(folder, subfolder="unet", **models)
    upcast = vae_dtype(dtype, diffusers.AutoencoderKL.load_config(folder, subfolder="vae", local_files_only=True))
    vae = diffusers.AutoencoderKL.from_pretrained(folder, subfolder="vae", **models | {"torch_dtype": upcast})
    with quiet_loading():
        text = transformers.CLIPTextModel.from_pretrained(folder, subfolder="text_encoder", **local).to(dtype)
    tokenizer = transformers.CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer", local_files_only=True)
    scheduler = scheduler_config(folder)
    if config.attention_slicing:
        unet.set_attention_slice("auto")
    offload = Offload(device, config.cpu_offload)
    return SDPrior(unet, vae, text, tokenizer, alphas_cumprod(scheduler), scheduler.get("prediction_type", "epsilon"),
                   offload=offload)


def scheduler_config(folder) -> dict:
    """The folder's ``scheduler/scheduler_config.json``."""
    import json

    return json.loads((folder / "scheduler" / "scheduler_config.json").read_text())


def alphas_cumprod(scheduler: dict) -> Tensor:
    """``ᾱ_t`` of a diffusers scheduler config (its betas, whatever scheduler class wrote it)."""
    from diffusers import DDPMScheduler

    keys = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas", "rescale_betas_zero_snr")
    return DDPMScheduler(**{k: scheduler[k] for k in keys if k in scheduler}).alphas_cumprod.float()


def sd_from_config(config: SDPriorConfig, *, progress=None) -> SDPrior | EncodedRGBPrior:
    """The ``sd`` prior of a config (``progress`` unused: nothing to generate)."""
    prior = load_sd(config)
    return EncodedRGBPrior(prior, config.rgb_res) if config.rgb else prior
