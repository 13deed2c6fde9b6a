"""LMC-SDS's learned corrective ``b̂_ψ(x, t)`` (design §4): a small U-Net that predicts, from a clean
data image ``x`` and ``t``, the prior's one-step unconditional denoised image
``x̂_0(a_t x + s_t ε, t)``, compared in the normalised space of the loss ``L_k``; saved as
``corrective.safetensors`` with a ``corrective.json`` sidecar naming the prior it was trained for.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from diffrep.errors import InputError

FREQUENCIES = 10


@dataclass(frozen=True)
class CorrectiveConfig:
    """The U-Net's shape: ``levels`` encoder levels of ``channels·2^i`` filters (the paper: 4 levels from 32)."""

    channels: int = 32
    levels: int = 4


def time_encoding(t: Tensor, T: int, size: tuple[int, int]) -> Tensor:
    """``t [B]`` as 10 frequencies ``sin, cos(2^k π t/T)``, one ``[B, 20, H, W]`` map to concatenate to each pixel."""
    k = 2.0 ** torch.arange(FREQUENCIES, device=t.device, dtype=torch.float32)
    phase = math.pi * (t.float() / T)[:, None] * k
    code = torch.cat([phase.sin(), phase.cos()], 1)
    return code[:, :, None, None].expand(-1, -1, *size)


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    """Two conv-ReLU blocks."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.Conv2d(c_out, c_out, 3, padding=1), nn.ReLU())


class Corrective(nn.Module):
    """``b̂_ψ(x, t)``: ``x [B, C, H, W]`` clean images, ``t [B]`` integer timesteps -> ``[B, C, H, W]``.

    Encoder: per level two conv-ReLU blocks then max-pool (the last level without); decoder: upsample,
    concatenate the skip, two conv-ReLU blocks; ``t`` enters as ``time_encoding`` at the input."""

    def __init__(self, image_shape: tuple[int, int, int], T: int, config: CorrectiveConfig = CorrectiveConfig()):
        super().__init__()
        self.image_shape, self.T, self.config = tuple(image_shape), T, config
        widths = [config.channels * 2**i for i in range(config.levels)]
        c_in = image_shape[0] + 2 * FREQUENCIES
        self.down = nn.ModuleList(conv_block(a, b) for a, b in zip([c_in, *widths[:-1]], widths))
        self.up = nn.ModuleList(conv_block(widths[i] + widths[i + 1], widths[i]) for i in range(config.levels - 1))
        self.head = nn.Conv2d(widths[0], image_shape[0], 1)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        h = torch.cat([x, time_encoding(t, self.T, x.shape[-2:]).to(x.dtype)], 1)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h if i == 0 else nn.functional.max_pool2d(skips[-1], 2))
            skips.append(h)
        h = skips.pop()
        for block in reversed(self.up):
            skip = skips.pop()
            h = block(torch.cat([nn.functional.interpolate(h, size=skip.shape[-2:]), skip], 1))
        return self.head(h)


def normalise(b_hat: Tensor, x0_hat: Tensor, eps: float = 1e-6) -> Tensor:
    """``std(x̂_0)/std(b̂)·(b̂ - mean(b̂)) + mean(b̂)``, per image over ``C, H, W`` (the space of ``L_k``)."""
    dims = tuple(range(1, b_hat.ndim))
    mean = b_hat.mean(dims, keepdim=True)
    scale = x0_hat.std(dims, keepdim=True) / (b_hat.std(dims, keepdim=True) + eps)
    return scale * (b_hat - mean) + mean


def corrective_loss(b_hat: Tensor, x0_hat: Tensor) -> Tensor:
    """``L_k = ‖x̂_0 - normalise(b̂, x̂_0)‖²``, summed over pixels, averaged over the batch."""
    return (x0_hat - normalise(b_hat, x0_hat)).pow(2).flatten(1).sum(1).mean()


def prior_fingerprint(prior: Any, name: str | None) -> dict[str, Any]:
    """What a corrective is tied to: the prior's name (where known), class, image shape, schedule length and hash."""
    ab = prior.alphas_cumprod.detach().to("cpu", torch.float64).contiguous()
    inner = getattr(prior, "prior", prior)  # a CountingPrior's prior
    if getattr(inner, "wrap_rep", None) is not None:  # sd with rgb=True: b̂ sees the latents of the encoded renders
        inner = inner.prior
    return {"prior": name, "prior_class": type(inner).__name__, "image_shape": list(inner.image_shape), "T": len(ab),
            "alphas_sha256": hashlib.sha256(ab.numpy().tobytes()).hexdigest()}


def save_corrective(model: Corrective, folder: Path, fingerprint: dict[str, Any], training: dict[str, Any]) -> Path:
    """``folder/corrective.safetensors`` (fp16) + ``corrective.json`` (the prior's fingerprint, the architecture, the
    run), each written atomically, readable like any output (the record also in the weights' header)."""
    from diffrep.checkpoint import atomic_save

    # Half precision: the corrective's output is renormalised (N), so 1e-3 relative error in its weights is
    # immaterial, and the shipped files are half the size; load_corrective copies them into fp32 parameters.
    meta = fingerprint | {"config": asdict(model.config), "training": training}
    atomic_save({k: v.half() for k, v in model.state_dict().items()}, folder / "corrective.safetensors", meta)
    return folder / "corrective.safetensors"


SHIPPED = Path(__file__).parent / "correctives"
"""The shipped correctives, a folder per prior and training (``SHIPPED_CORRECTIVES``; TRAINING.md says how they were made)."""

FINGERPRINT = ("prior_class", "image_shape", "T", "alphas_sha256")


def shipped_corrective(prior: Any, training: str = "clean") -> Path:
    """The shipped corrective whose fingerprint (class, image shape, schedule) is ``prior``'s and whose training
    is ``training`` (``SHIPPED_CORRECTIVES``: clean, no perturbation in its record; perturbed, one); refused in one
    line where none is."""
    from diffrep.methods.configs import SHIPPED_CORRECTIVES

    if training not in SHIPPED_CORRECTIVES:
        raise InputError(f"training={training!r} is not a shipped corrective's; shipped: {', '.join(SHIPPED_CORRECTIVES)}")
    mine = prior_fingerprint(prior, None)
    for folder in sorted(f for f in SHIPPED.iterdir() if (f / "corrective.json").is_file()):
        meta = json.loads((folder / "corrective.json").read_text())
        perturbed = meta["training"].get("perturb", 0) > 0
        if all(meta.get(key) == mine[key] for key in FINGERPRINT) and perturbed == (training == "perturbed"):
            return folder
    raise InputError(f"no {training} corrective is shipped for this prior ({mine['prior_class']}, image shape "
                     f"{mine['image_shape']}); train one with diffrep train-corrective and give its folder "
                     "(--lmc-sds.corrective DIR)")


def load_corrective(path: str | Path, prior: Any, name: str | None = None) -> Corrective:
    """The corrective in ``path`` (its folder or ``.safetensors``), refused in one line if it was trained for
    another prior (name, where both are known; image shape; schedule)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    folder = path if path.is_dir() else path.parent
    try:
        meta = json.loads((folder / "corrective.json").read_text())
        state = load_file(str(folder / "corrective.safetensors"))
    except (OSError, ValueError, SafetensorError) as e:
        raise InputError(f"corrective {str(path)!r} cannot be read ({e}); train one with diffrep train-corrective") from None
    mine = prior_fingerprint(prior, name)
    for key in ("prior", *FINGERPRINT):
        if None not in (meta.get(key), mine[key]) and meta.get(key) != mine[key]:
            raise InputError(f"corrective {str(path)!r} was trained for prior {meta.get('prior')!r} "
                             f"({key} {meta.get(key)}), not for this one ({key} {mine[key]})")
    model = Corrective(tuple(meta["image_shape"]), meta["T"], CorrectiveConfig(**meta["config"]))
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise InputError(f"corrective {str(path)!r} does not match its corrective.json: {str(e).splitlines()[0]}") from None
    return model.eval().requires_grad_(False)


def named_corrective(corrective: str | None, prior: Any, name: str | None = None) -> Corrective:
    """The corrective an option names (``LMCSDSOptions.corrective``): a shipped one's training
    (``SHIPPED_CORRECTIVES``; ``None``: clean) for ``prior``, or a trained one's folder."""
    from diffrep.methods.configs import SHIPPED_CORRECTIVES

    training = corrective or "clean"
    path = shipped_corrective(prior, training) if training in SHIPPED_CORRECTIVES else corrective
    return load_corrective(path, prior, name)
