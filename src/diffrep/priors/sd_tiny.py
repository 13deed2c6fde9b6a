"""Tiny random-weight Stable Diffusion and DeepFloyd IF folders, built locally (no download): the stand-ins
the tests, the README and ``bench/scripts/make_tiny_sd.py`` use for the real models. They have the real
folders' layout (``model_index.json``, one subfolder per component, ``.safetensors`` weights) and sample
noise-like images: they check the plumbing, not the pictures.

The tokenizers are made here too: a byte-level CLIP BPE vocabulary without merges (one token per
character) and a T5 unigram vocabulary of the printable ASCII characters.
"""

from __future__ import annotations

from pathlib import Path

import torch

from diffrep.priors.sd import import_diffusers

TEXT_DIM = 32
MAX_TOKENS = 16


def clip_tokenizer():
    """A CLIP tokenizer whose vocabulary is the 256 byte characters, alone and word-final, and no merges."""
    import transformers

    chars = byte_characters()
    vocab = {c: i for i, c in enumerate(chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"])}
    return transformers.CLIPTokenizer(vocab=vocab, merges=[], model_max_length=MAX_TOKENS)


def byte_characters() -> list[str]:
    """GPT-2's (and CLIP's) printable stand-in character for each of the 256 bytes."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    shifted = iter(range(256, 512))
    return [chr(b) if b in keep else chr(next(shifted)) for b in range(256)]


def t5_tokenizer():
    """A T5 tokenizer whose unigram vocabulary is the printable ASCII characters (and '▁' before a word)."""
    import transformers

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [(c, -3.0) for c in map(chr, range(33, 127))] + [("▁" + c, -2.5) for c in map(chr, range(33, 127))]
    return transformers.T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=MAX_TOKENS)


def make_tiny_sd(folder: str | Path, prediction_type: str = "epsilon", latent_size: int = 8, seed: int = 0) -> Path:
    """Write a random-weight Stable Diffusion folder: latents ``(4, latent_size, latent_size)``, a VAE with
    SD's factor 8, a 2-layer CLIP text encoder of width 32, and SD's scaled-linear DDIM schedule."""
    diffusers = import_diffusers()
    import transformers

    torch.manual_seed(seed)  # a build script's own weights, not a library draw
    unet = diffusers.UNet2DConditionModel(
        sample_size=latent_size, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TEXT_DIM, attention_head_dim=2, norm_num_groups=4)
    vae = diffusers.AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(4, 4, 4, 4), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=2,
        sample_size=8 * latent_size)
    tokenizer = clip_tokenizer()
    text = transformers.CLIPTextModel(transformers.CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=TEXT_DIM, intermediate_size=37, num_attention_heads=4,
        num_hidden_layers=2, max_position_embeddings=MAX_TOKENS, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    scheduler = diffusers.DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                        clip_sample=False, set_alpha_to_one=False, steps_offset=1,
                                        prediction_type=prediction_type)
    pipe = diffusers.StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text, tokenizer=tokenizer,
                                             scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                             requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)
    return Path(folder)


def make_tiny_if(folder: str | Path, size: int = 8, seed: int = 0) -> Path:
    """Write a random-weight DeepFloyd IF stage I folder: pixels ``(3, size, size)``, ε and a learned variance
    (6 output channels), a 1-layer T5 encoder of width 32, IF's cosine DDPM schedule."""
    diffusers = import_diffusers()
    import transformers

    torch.manual_seed(seed)
    tokenizer = t5_tokenizer()
    text = transformers.T5EncoderModel(transformers.T5Config(
        vocab_size=len(tokenizer), d_model=TEXT_DIM, d_kv=8, d_ff=37, num_layers=1, num_heads=4))
    unet = diffusers.UNet2DConditionModel(
        sample_size=size, in_channels=3, out_channels=6, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn", up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        cross_attention_dim=TEXT_DIM, encoder_hid_dim=TEXT_DIM, attention_head_dim=4, addition_embed_type="text",
        addition_embed_type_num_heads=2, cross_attention_norm="group_norm", resnet_time_scale_shift="scale_shift",
        act_fn="gelu", norm_num_groups=4)
    scheduler = diffusers.DDPMScheduler(beta_schedule="squaredcos_cap_v2", variance_type="learned_range",
                                        thresholding=True, prediction_type="epsilon")
    pipe = diffusers.IFPipeline(tokenizer=tokenizer, text_encoder=text, unet=unet, scheduler=scheduler,
                                safety_checker=None, feature_extractor=None, watermarker=None,
                                requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)
    return Path(folder)
