"""Benchmark suites behind ``diffrep bench SUITE``; each writes ``bench/results/SUITE[-quick].json``."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from diffrep.checks import suggestion
from diffrep.errors import InputError

SUITES: dict[str, str] = {
    "toyworld": "diffrep.bench.toyworld_speed",
    "prior": "diffrep.bench.prior_speed",
    "table1": "diffrep.bench.table1",
    "diversity": "diffrep.bench.diversity",
    "speed": "diffrep.bench.speed",
    "panorama": "diffrep.bench.panorama",
    "panorama-scenes": "diffrep.bench.panorama_scenes",
    "prior-quality": "diffrep.bench.prior_quality",
    "nerf3d": "diffrep.bench.nerf3d",
    "sd-cost": "diffrep.bench.sd_cost",
    "lmc": "diffrep.bench.lmc",
    "lmc-translation": "diffrep.bench.lmc_translation",
}


def machine_info() -> dict[str, Any]:
    cpu = ""
    if Path("/proc/cpuinfo").exists():
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), "")
    import torch

    from diffrep.api import versions

    return versions() | {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                         "platform": platform.platform()}


def run_suite(name: str, *, quick: bool, results: Path, log: Callable[[str], None] = print,
              prior: str | None = None, prior_path: str | None = None, device: str | None = None,
              section: str | None = None, shard: str | None = None) -> Path:
    """Run one suite and write its JSON (figures, the command, machine info, date).

    ``prior`` (a name for ``diffrep.priors.load``) replaces a suite's default prior, for the suites
    that take one; the results then go to ``SUITE-PRIOR[-quick].json``. ``device`` (``cuda``, ...) runs a suite
    that takes one there; its results go to ``SUITE-TYPE[-quick].json`` (``sd-cost-cuda.json``). ``section`` (one
    of the suite's ``SECTIONS``) runs that part alone and updates the suite's existing JSON in place: the
    section's figures replace the old ones (dicts merged key by key), and ``sections_rerun`` records the run.
    ``shard`` (``"I/K"``, a suite with a cache) runs the I-th of K interleaved parts of its runs into the cache and
    returns the cache's path; a run without it then writes the JSON from the cache."""
    if name not in SUITES:
        raise InputError(f"unknown benchmark suite {name!r}{suggestion(name, SUITES)}; allowed: {', '.join(SUITES)}")
    part = parse_shard(shard) if shard is not None else None
    if prior is None and prior_path is not None:
        raise InputError("--prior-path needs --prior tiny")
    if prior is not None:  # its options, before the suite (and torch) is imported
        from diffrep.priors import prior_config

        config = prior_config(prior, **({"path": prior_path} if prior_path else {}))
    suite = importlib.import_module(SUITES[name])
    kwargs: dict[str, Any] = {}
    command = f"diffrep bench {name}"
    if device is not None:
        if "device" not in inspect.signature(suite.run).parameters:
            takes = [s for s in SUITES if "device" in inspect.signature(importlib.import_module(SUITES[s]).run).parameters]
            raise InputError(f"suite {name!r} does not take --device; suites that do: {', '.join(takes)}")
        from diffrep.priors.base import check_device

        kwargs["device"] = check_device(device)
        command += f" --device {device}"
    if prior is not None:
        if "prior" not in inspect.signature(suite.run).parameters:
            takes = [s for s in SUITES if "prior" in inspect.signature(importlib.import_module(SUITES[s]).run).parameters]
            raise InputError(f"suite {name!r} does not take --prior; suites that do: {', '.join(takes)}")
        from diffrep.priors import load_config

        kwargs |= {"prior": load_config(config), "prior_name": prior}
        command += f" --prior {prior}" + (f" --prior-path {prior_path}" if prior_path else "")
    default_prior = getattr(suite, "DEFAULT_PRIOR", "toyworld")
    stem = name + (f"-{prior}" if prior is not None and prior != default_prior else "")
    if section is not None:
        sections = getattr(suite, "SECTIONS", ())
        if section not in sections:
            having = [s for s in SUITES if getattr(importlib.import_module(SUITES[s]), "SECTIONS", ())]
            raise InputError(f"suite {name!r} has no section {section!r}; " + (
                f"allowed: {', '.join(sections)}" if sections else f"suites with sections: {', '.join(having)}"))
        kwargs["section"] = section
        command += f" --section {section}"
    cache = None
    if "cache" in inspect.signature(suite.run).parameters:  # suites of hours keep their finished runs, on any device
        cache = Path(results) / f".{stem}{'-quick' if quick else ''}.cache"
        kwargs["cache"] = cache
    if part is not None:
        if "shard" not in inspect.signature(suite.run).parameters:
            takes = [s for s in SUITES if "shard" in inspect.signature(importlib.import_module(SUITES[s]).run).parameters]
            raise InputError(f"suite {name!r} does not take --shard; suites that do: {', '.join(takes)}")
        kwargs["shard"] = part
    stem += f"-{device.split(':')[0]}" if device is not None and device != "cpu" else ""
    path = Path(results) / f"{stem}{'-quick' if quick else ''}.json"
    if section is not None and not path.is_file():
        raise InputError(f"--section {section} updates {path}, which does not exist; run the whole suite first")
    start = time.perf_counter()
    figures = suite.run(quick=quick, log=log, **kwargs)
    if figures is None:  # a shard: its runs are in the cache
        return cache
    images = figures.pop("_images", {})
    files = figures.pop("_files", {})
    run = {"command": command + (" --quick" if quick else ""), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
           "wall_s": round(time.perf_counter() - start, 2), "machine": machine_info()}
    if section is None:
        record = {"suite": name, "quick": quick, **run, "figures": figures}
    else:
        record = json.loads(path.read_text())
        merge(record["figures"], figures)
        record["sections_rerun"] = [r for r in record.get("sections_rerun", []) if r["section"] != section] + [
            {"section": section, **run}]
    if (prior or default_prior) == "tiny":
        record["prior_weights"] = tiny_weights_record(prior_path)
    from diffrep.export import atomic_write_text

    folder = Path(results) if quick else Path(results).parent.parent / "docs" / "images"
    saved = save_images(images, folder, f"{stem}{'-quick' if quick else ''}")
    record["images"] = sorted(set(record.get("images", [])) | set(saved)) if section is not None else saved
    saved = save_files(files, folder, f"{stem}{'-quick' if quick else ''}")
    record["files"] = sorted(set(record.get("files", [])) | set(saved)) if section is not None else saved
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    if cache is not None and cache.exists():
        import shutil

        shutil.rmtree(cache)
    return path


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/K"`` as ``(I, K)``, ``1 <= I <= K``, ``K >= 2``."""
    i, _, k = text.partition("/")
    if not (i.isdigit() and k.isdigit() and 1 <= int(i) <= int(k) and int(k) >= 2):
        raise InputError(f"--shard {text!r} must be I/K with 1 <= I <= K and K >= 2 (e.g. 1/2, then 2/2)")
    return int(i), int(k)


def merge(old: dict, new: dict) -> None:
    """``old`` updated in place by ``new``: nested dicts merged key by key, other values replaced."""
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(old.get(key), dict):
            merge(old[key], value)
        else:
            old[key] = value


def tiny_weights_record(prior_path: str | None) -> dict[str, str]:
    """Which learned weights a suite ran on: their file and SHA-256 (the shipped file changes between releases)."""
    from diffrep.priors.tiny import DEFAULT_WEIGHTS, weights_file, weights_sha256

    path = weights_file(prior_path)
    shown = "diffrep/priors/tiny/weights/tiny.safetensors (shipped)" if path == DEFAULT_WEIGHTS else str(path)
    return {"file": shown, "sha256": weights_sha256(path)}


def save_files(files: dict[str, bytes], folder: Path, prefix: str) -> list[str]:
    """Save a suite's other figures (name -> bytes, e.g. turntable GIFs) beside its grids."""
    paths = []
    for name, data in files.items():
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{prefix}-{name}"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        paths.append(str(path))
    return paths


def save_images(images: dict, folder: Path, prefix: str) -> list[str]:
    """Save a suite's figure grids (name -> (tensor [N, C, H, W], columns)) as PNGs; full runs go to docs/images."""
    from diffrep.export import image_grid

    paths = []
    for key, (tensor, nrow) in images.items():
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{prefix}-{key}.png"
        tmp = path.with_suffix(".tmp.png")
        image_grid(tensor, nrow=nrow, scale=max(1, 96 // tensor.shape[-2])).save(tmp)
        os.replace(tmp, path)
        paths.append(str(path))
    return paths
