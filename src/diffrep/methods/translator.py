"""Amortised translation (LMC-SDS's "cats to others", Alldieck et al. 2024): an image-to-image network
``y = f_φ(x, k)`` that turns a toy-world image ``x`` of the source kind into kind ``k`` at the same colour and view,
trained with a distillation loss from a prior (``diffrep.training.translator``). Saved as
``translator.safetensors`` with a ``translator.json`` sidecar naming the prior, the source kind and the targets.

The network is the corrective's U-Net (``methods/corrective.py``) with the target kind's index in place of the
timestep, as the same 10-frequency code concatenated to every pixel; it predicts a change of the input, and its
last layer starts at zero so that the untrained network is the identity.

>>> y = translate_images(load_translator("runs/tr"), x, "duck")  # x: [N, 3, 32, 32] in [-1, 1]
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from diffrep.errors import InputError
from diffrep.methods.corrective import Corrective, CorrectiveConfig, time_encoding
from diffrep.methods.translator_meta import translator_record


def class_encoding(k: Tensor, classes: int, size: tuple[int, int]) -> Tensor:
    """Class indices ``k [B]`` as the 10 frequencies ``sin, cos(2^j π k / classes)``, ``[B, 20, H, W]``
    (``time_encoding`` with the class count in place of ``T``)."""
    return time_encoding(k, classes, size)


class Translator(nn.Module):
    """``f_φ(x, k) = x + u(x, k)``: ``x [B, C, H, W]`` in [-1, 1], ``k [B]`` target class indices -> ``[B, C, H, W]``,
    with ``u`` the corrective's U-Net (class code at the input). Unclamped: trained as it is, as an edited image is
    (the distillation gradient and the anchor act on every pixel), and clamped to [-1, 1] by ``translate_images``.

    A clamp inside the training graph, its backward passing gradients straight through (the first version), let
    a pixel that the guided gradient pushes past ±1 run away unchecked, the gradient being taken at the clamped
    value and the anchor too: on one mug the pre-clamp outputs reached 1e16 within 300 steps and every pixel
    saturated; the suite's translators re-shaded mugs instead of translating them (docs/benchmarks.md)."""

    def __init__(self, image_shape: tuple[int, int, int], classes: int, config: CorrectiveConfig | None = None):
        super().__init__()
        config = CorrectiveConfig() if config is None else config
        self.image_shape, self.classes, self.config = tuple(image_shape), classes, config
        self.net = Corrective(image_shape, classes, config)  # its time input is the class here
        nn.init.zeros_(self.net.head.weight)
        nn.init.zeros_(self.net.head.bias)

    def forward(self, x: Tensor, k: Tensor) -> Tensor:
        return x + self.net(x, k)


def save_translator(model: Translator, folder: Path, meta: dict[str, Any]) -> Path:
    """``folder/translator.safetensors`` + ``translator.json`` (``meta``: prior fingerprint, kinds, the run), each
    written atomically, readable like any output (the record also in the weights' header)."""
    from diffrep.checkpoint import atomic_save

    record = meta | {"image_shape": list(model.image_shape), "classes": model.classes, "config": asdict(model.config)}
    atomic_save(dict(model.state_dict()), folder / "translator.safetensors", record)
    return folder / "translator.safetensors"


def load_translator(path: str | Path, *, prior: str | None = None) -> Translator:
    """The translator in ``path`` (refused in one line when missing, corrupt, or trained with another ``prior``)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    record = translator_record(path, prior=prior)
    folder = Path(record["folder"])
    try:
        state = load_file(str(folder / "translator.safetensors"))
        model = Translator(tuple(record["image_shape"]), int(record["classes"]), CorrectiveConfig(**record["config"]))
        model.load_state_dict(state)
    except (OSError, ValueError, SafetensorError, RuntimeError, KeyError, TypeError) as e:
        raise InputError(f"translator {str(path)!r} cannot be loaded: {str(e).splitlines()[0]}") from None
    model.record = record  # the sidecar, for the kind names
    return model.eval().requires_grad_(False)


@torch.no_grad()
def translate_images(model: Translator, x: Tensor, to: str) -> Tensor:
    """``x [N, C, H, W]`` in [-1, 1] translated to kind ``to`` (one of the model's targets), ``[N, C, H, W]``."""
    kinds = model.record["kinds"]
    if to not in model.record["targets"]:
        raise InputError(f"to={to!r} is not a target of this translator; allowed: {', '.join(model.record['targets'])}")
    k = torch.full((x.shape[0],), kinds.index(to), dtype=torch.long, device=x.device)
    return model(x, k).clamp(-1, 1)
