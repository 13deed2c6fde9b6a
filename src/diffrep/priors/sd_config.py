"""Options of the diffusers priors (``sd``: Stable Diffusion 1.x/2.x, ``if``: DeepFloyd IF stage I), and
where their model folder is. Torch-free: the command line validates these before anything heavy is imported.

The model is a diffusers folder, or a hub id already in the local Hugging Face cache: nothing is ever
downloaded (``local_files_only`` always), and weights are read only from ``.safetensors`` files.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from diffrep.checks import check_int, check_one_of
from diffrep.errors import InputError

DTYPES = ("fp32", "fp16", "bf16")
DEVICE = re.compile(r"(cpu|mps|cuda(:\d+)?)")
INSTALL = "pip install 'diffrep[diffusers]'"
HOW = ("give a diffusers folder (model_index.json and one subfolder per component with .safetensors weights) "
       "or a hub id downloaded beforehand (huggingface-cli download ID)")


def check_model_options(config) -> None:
    """The checks both configs share: the model is found, the device name and dtype fit together."""
    if not isinstance(config.device, str) or not DEVICE.fullmatch(config.device):
        raise InputError(f"device={config.device!r} is not allowed; it must be cpu, cuda, cuda:N or mps")
    check_one_of("dtype", config.dtype, DTYPES)
    if config.dtype != "fp32" and not config.device.startswith("cuda"):
        raise InputError(f"dtype={config.dtype!r} needs a CUDA device (device={config.device!r} computes in fp32)")
    for flag in ("attention_slicing", "cpu_offload"):
        if not isinstance(getattr(config, flag), bool):
            raise InputError(f"{flag}={getattr(config, flag)!r} is not allowed; it must be True or False")
    model_folder(config.path, config.components)


@dataclass(frozen=True)
class SDPriorConfig:
    """Options of the ``sd`` prior: Stable Diffusion 1.x/2.x from a local diffusers folder (``--prior sd:PATH_OR_ID``)."""

    path: str | None = None
    """The model: a diffusers folder, or a hub id in the local cache (never downloaded); --prior sd:PATH_OR_ID sets it."""
    device: str = "cpu"
    """Where the networks compute: cpu, cuda, cuda:N, mps."""
    dtype: str = "fp32"
    """Weights and activations: fp32, or fp16/bf16 on CUDA only."""
    attention_slicing: bool = False
    """Compute attention in slices: less memory, a little slower."""
    cpu_offload: bool = False
    """Keep each network on the CPU and move it to the device only while it runs (less GPU memory, slower)."""
    rgb: bool = False
    """Reps render RGB at --rgb-res, upsampled and VAE-encoded with gradient (DreamFusion with SD); else they render latents."""
    rgb_res: int = 64
    """rgb only: the resolution reps render (upsampled to the VAE's resolution before encoding)."""

    components = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")

    def __post_init__(self):
        if not isinstance(self.rgb, bool):
            raise InputError(f"rgb={self.rgb!r} is not allowed; it must be True or False")
        check_int("rgb_res", self.rgb_res, minimum=8)
        check_model_options(self)


@dataclass(frozen=True)
class IFPriorConfig:
    """Options of the ``if`` prior: DeepFloyd IF stage I (64² pixels, T5 text) from a local diffusers folder (``--prior if:PATH_OR_ID``)."""

    path: str | None = None
    """The model: a diffusers folder of IF stage I, or a hub id in the local cache (never downloaded); --prior if:PATH_OR_ID sets it."""
    device: str = "cpu"
    """Where the networks compute: cpu, cuda, cuda:N, mps."""
    dtype: str = "fp32"
    """Weights and activations: fp32, or fp16/bf16 on CUDA only."""
    attention_slicing: bool = False
    """Compute attention in slices: less memory, a little slower."""
    cpu_offload: bool = False
    """Keep each network on the CPU and move it to the device only while it runs (less GPU memory, slower)."""

    components = ("unet", "text_encoder", "tokenizer", "scheduler")

    def __post_init__(self):
        check_model_options(self)


def model_resolution(config: SDPriorConfig | IFPriorConfig) -> tuple[int, int] | None:
    """``(H, W)`` of what the prior of ``config`` denoises, torch-free (a rep's fit is checked before the model
    loads): ``rgb_res`` for sd with ``rgb``, else the ``sample_size`` of the folder's ``unet/config.json`` (sd: the
    latents', if: the pixels'); ``None`` where the file does not tell."""
    if getattr(config, "rgb", False):
        return config.rgb_res, config.rgb_res
    size = unet_config(config).get("sample_size")
    if isinstance(size, int):
        return size, size
    return tuple(size) if isinstance(size, (list, tuple)) and len(size) == 2 else None


def model_channels(config: SDPriorConfig | IFPriorConfig) -> int | None:
    """Channels of what the prior of ``config`` denoises, torch-free (with ``model_resolution``, the run's memory is
    checked before the model loads): 3 for sd with ``rgb`` (the reps render RGB), else the ``in_channels`` of the
    folder's ``unet/config.json`` (sd: 4 latent channels, if: 3); ``None`` where the file does not tell."""
    if getattr(config, "rgb", False):
        return 3
    channels = unet_config(config).get("in_channels")
    return channels if isinstance(channels, int) and channels > 0 else None


def unet_config(config: SDPriorConfig | IFPriorConfig) -> dict:
    """The folder's ``unet/config.json`` as a dict; empty where it cannot be read."""
    import json

    try:
        out = json.loads((model_folder(config.path, config.components) / "unet" / "config.json").read_text())
    except (OSError, ValueError, TypeError):
        return {}
    return out if isinstance(out, dict) else {}


def model_folder(path: str | os.PathLike | None, components: tuple[str, ...]) -> Path:
    """The local folder of the model ``path`` (a folder, or a hub id in the local cache), after checking that
    it has each of ``components`` and that the networks among them have ``.safetensors`` weights."""
    if path is None:
        raise InputError(f"path=None is not allowed: this prior needs a model (--prior sd:PATH_OR_ID, if:PATH_OR_ID); {HOW}")
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise InputError(f"path={path!r} is not allowed; it must be a folder or a hub id")
    folder = Path(path).expanduser()
    where = f"folder {str(folder)!r}"
    if not folder.is_dir():
        folder, where = cached_snapshot(str(path))
    missing = [c for c in components if not (folder / c).is_dir()]
    if missing:
        raise InputError(f"path={str(path)!r}: the {where} has no {', '.join(missing)} subfolder; {HOW}")
    unsafe = [c for c in components if c in ("unet", "vae", "text_encoder") and not any((folder / c).glob("*.safetensors"))]
    if unsafe:
        raise InputError(f"path={str(path)!r}: no .safetensors weights in {', '.join(unsafe)} of the {where} (diffrep reads "
                         "no pickled .bin weights); convert them with save_pretrained(safe_serialization=True)")
    return folder


def cached_snapshot(repo_id: str) -> tuple[Path, str]:
    """The local snapshot of hub model ``repo_id`` and a description of where it was looked for."""
    try:
        from huggingface_hub import constants, snapshot_download
    except ImportError:
        raise InputError(f"path={repo_id!r} is not a folder, and looking it up in the hub cache needs diffusers: "
                         f"{INSTALL}") from None
    where = f"Hugging Face cache {constants.HF_HUB_CACHE!r} (HF_HOME / HF_HUB_CACHE)"
    try:
        return Path(snapshot_download(repo_id, local_files_only=True)), where
    except Exception:  # not cached, or not a valid id: both mean "not here", and nothing is downloaded
        raise InputError(f"path={repo_id!r} is neither a folder nor a model in the {where}; {HOW}") from None
