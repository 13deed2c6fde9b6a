"""DeepFloyd IF stage I as a ``diffrep.Prior`` (design §2): 64² pixels, T5 text states, ε and a learned
variance (the first 3 output channels are ε). diffusers and transformers are imported by the loader only."""

from __future__ import annotations

import torch

from diffrep.priors.base import check_device
from diffrep.priors.sd import (
    DTYPES,
    Offload,
    UNetPrior,
    alphas_cumprod,
    import_diffusers,
    quiet_loading,
    scheduler_config,
)
from diffrep.priors.sd_config import IFPriorConfig, model_folder


class IFPrior(UNetPrior):
    """IF stage I: a pixel-space ``UNetPrior``; its T5 encoder sees the attention mask, as IF's pipeline does."""

    text_mask = True
    max_tokens = 77  # IF's pipeline pads and truncates prompts to 77 tokens (its T5 tokenizer allows 512)


def if_from_config(config: IFPriorConfig, *, progress=None) -> IFPrior:
    """The ``if`` prior of a config: UNet, T5 encoder, tokenizer and schedule, from safetensors only, never downloaded."""
    diffusers = import_diffusers()
    import transformers

    folder = model_folder(config.path, IFPriorConfig.components)
    device, dtype = torch.device(check_device(config.device)), DTYPES[config.dtype]
    local = {"use_safetensors": True, "local_files_only": True}
    unet = diffusers.UNet2DConditionModel.from_pretrained(folder, subfolder="unet", torch_dtype=dtype,
                                                          low_cpu_mem_usage=False, **local)
    with quiet_loading():
        text = transformers.T5EncoderModel.from_pretrained(folder, subfolder="text_encoder", **local).to(dtype)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, subfolder="tokenizer", local_files_only=True)
    scheduler = scheduler_config(folder)
    if config.attention_slicing:
        unet.set_attention_slice("auto")
    return IFPrior(unet, text, tokenizer, alphas_cumprod(scheduler), scheduler.get("prediction_type", "epsilon"),
                   offload=Offload(device, config.cpu_offload))
