"""Checkpoints of long runs (training the tiny prior, sampling diffreps): tensors in safetensors,
everything else in JSON beside them, each file written atomically (temporary file + ``os.replace``).

>>> ckpt = RunCheckpoint(Path("out.checkpoint"), every=10, config={"steps": 50})
>>> state = ckpt.load()            # None, or (step, tensors, meta) of a run with the same config
>>> ckpt.save(10, {"noise": noise}, {"note": "anything JSON"})
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from diffrep.errors import InputError

if TYPE_CHECKING:  # torch is imported by whoever hands tensors in: prepare() builds a RunCheckpoint without it
    import torch
    from torch import Tensor


def atomic_save(tensors: dict[str, Tensor], path: Path, meta: dict[str, Any], keep_previous: bool = False) -> None:
    """``path`` (safetensors, with ``meta`` as JSON in its header, so the file is self-contained), then a
    readable copy ``path.with_suffix('.json')``, each via a temporary file and ``os.replace``; a kill
    between the two leaves a consistent file. ``keep_previous``: the file it replaces becomes
    ``previous_path(path)``, to fall back to if this one is ever cut short."""
    from safetensors.torch import save_file

    from diffrep.export import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp,
              metadata={"record": json.dumps(meta, default=str)})
    os.chmod(tmp, 0o644)  # mkstemp and save_file both leave 0600; weights and checkpoints are ordinary files
    if keep_previous and path.exists():
        os.replace(path, previous_path(path))
    os.replace(tmp, path)
    atomic_write_text(path.with_suffix(".json"), json.dumps(meta, indent=1, default=str))


def previous_path(path: Path) -> Path:
    """Where ``atomic_save(..., keep_previous=True)`` keeps the file it replaced."""
    return path.with_name(path.stem + ".prev" + path.suffix)


def read_saved(path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The tensors of a file ``atomic_save`` wrote and its record (from the header; files written before
    the record moved there: from the JSON beside them)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        header = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    record = json.loads(header["record"]) if "record" in header else json.loads(path.with_suffix(".json").read_text())
    return tensors, record


def optimizer_tensors(opt: torch.optim.Optimizer, prefix: str = "opt") -> tuple[dict[str, Tensor], list[dict]]:
    """An optimiser's state as flat tensors ``{prefix}.{param}.{name}`` and its JSON-able param groups."""
    return state_dict_tensors(opt.state_dict(), prefix)


def state_dict_tensors(sd: dict[str, Any], prefix: str = "opt") -> tuple[dict[str, Tensor], list[dict]]:
    """``optimizer_tensors`` of an optimiser's ``state_dict``."""
    return {f"{prefix}.{i}.{k}": v for i, s in sd["state"].items() for k, v in s.items()}, sd["param_groups"]


def optimizer_state(tensors: dict[str, Tensor], param_groups: list[dict], prefix: str = "opt") -> dict[str, Any]:
    """Inverse of ``optimizer_tensors``: an optimiser ``state_dict``."""
    state: dict[int, dict[str, Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith(prefix + "."):
            _, i, name = k.split(".", 2)
            state.setdefault(int(i), {})[name] = v
    return {"state": state, "param_groups": param_groups}


def load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, Tensor], param_groups: list[dict],
                   prefix: str = "opt") -> None:
    opt.load_state_dict(optimizer_state(tensors, param_groups, prefix))


@dataclass(frozen=True)
class RunCheckpoint:
    """Periodic checkpoints of a sampling run in ``folder`` (``state.safetensors`` + ``state.json``).

    ``config`` describes the run (JSON-able); ``load`` refuses a checkpoint written by another config."""

    folder: Path
    every: int | None
    """Steps between checkpoints; 0: none; ``None``: a tenth of the run."""
    config: dict[str, Any]

    @property
    def path(self) -> Path:
        return Path(self.folder) / "state.safetensors"

    def due(self, step: int, total: int) -> bool:
        """Save after ``step`` of ``total`` steps? (Never after the last one: the result is written then.)"""
        every = max(1, total // 10) if self.every is None else self.every
        return every > 0 and step % every == 0 and step < total

    def save(self, step: int, tensors: dict[str, Tensor], meta: dict[str, Any] | None = None) -> None:
        """One self-contained file, the checkpoint before it kept (``atomic_save``), so a file cut short
        (a kill, a full disk) leaves a good one to resume from. ``state.json`` is a readable copy."""
        atomic_save(tensors, self.path, {"step": step, "config": _jsonable(self.config), **(meta or {})},
                    keep_previous=True)

    @property
    def previous(self) -> Path:
        return previous_path(self.path)

    def exists(self) -> bool:
        return self.path.is_file() or self.previous.is_file()

    def load(self) -> tuple[int, dict[str, Tensor], dict[str, Any]] | None:
        """``(step, tensors, meta)`` of the last good checkpoint (the previous one if the last is cut
        short or corrupt), or ``None`` if there is none."""
        errors = []
        for path in (self.path, self.previous):
            if not path.is_file():
                continue
            try:
                tensors, meta = read_saved(path)
            except Exception as e:  # safetensors' own errors for a truncated or foreign file
                errors.append(f"{path.name}: {e}")
                continue
            self._check_config(meta)
            return int(meta["step"]), tensors, meta
        if errors:
            raise InputError(f"checkpoint in {str(self.folder)!r} cannot be resumed ({'; '.join(errors)}); "
                             "run without --resume")
        return None

    def _check_config(self, meta: dict[str, Any]) -> None:
        if meta.get("config") != _jsonable(self.config):
            diff = sorted(k for k in set(meta.get("config", {})) | set(_jsonable(self.config))
                          if meta.get("config", {}).get(k) != _jsonable(self.config).get(k))
            raise InputError(f"checkpoint in {str(self.folder)!r} belongs to another run (differs in "
                             f"{', '.join(diff)}); rerun with the same options or without --resume")

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _jsonable(d: Any) -> Any:
    return json.loads(json.dumps(d, default=str))
