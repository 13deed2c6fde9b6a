"""A translator's ``translator.json`` sidecar, read and checked without torch (the command line refuses a missing
or foreign translator, or a kind it was not trained for, before torch is imported)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from diffrep.errors import InputError


def translator_record(path: str | Path, *, to: str | None = None, prior: str | None = None) -> dict[str, Any]:
    """The ``translator.json`` beside the weights in ``path`` (their folder or ``.safetensors``), checked without
    torch: ``to`` must be one of its targets, ``prior`` (where given) the prior it was trained with."""
    path = Path(path)
    folder = path.parent if path.suffix == ".safetensors" else path
    try:
        record = json.loads((folder / "translator.json").read_text())
        targets, trained_for = list(record["targets"]), record["prior"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"translator {str(path)!r} cannot be read ({e}); train one with diffrep train-translator") from None
    if not (folder / "translator.safetensors").is_file():
        raise InputError(f"translator {str(path)!r} has no translator.safetensors; train one with diffrep train-translator")
    if prior is not None and prior != trained_for:
        raise InputError(f"translator {str(path)!r} was trained with prior {trained_for!r}, not {prior!r}")
    if to is not None and to not in targets:
        raise InputError(f"--to {to!r} is not a target of translator {str(path)!r}; allowed: {', '.join(targets)}")
    return record | {"folder": str(folder)}
