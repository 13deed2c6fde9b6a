"""Benchmark suites behind ``diffrep bench SUITE``; each writes ``bench/results/SUITE[-quick].json``."""

from __future__ import annotations

import importlib
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from diffrep.errors import InputError

SUITES: dict[str, str] = {
    "toyworld": "diffrep.bench.toyworld_speed",
    "prior": "diffrep.bench.prior_speed",
    "table1": "diffrep.bench.table1",
    "diversity": "diffrep.bench.diversity",
    "speed": "diffrep.bench.speed",
    "panorama": "diffrep.bench.panorama",
}


def machine_info() -> dict[str, Any]:
    cpu = ""
    if Path("/proc/cpuinfo").exists():
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), "")
    from diffrep.api import versions

    return versions() | {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                         "platform": platform.platform()}


def run_suite(name: str, *, quick: bool, results: Path, log: Callable[[str], None] = print) -> Path:
    """Run one suite and write its JSON (figures, the command, machine info, date)."""
    if name not in SUITES:
        raise InputError(f"unknown benchmark suite {name!r}; allowed: {', '.join(SUITES)}")
    suite = importlib.import_module(SUITES[name])
    start = time.perf_counter()
    figures = suite.run(quick=quick, log=log)
    images = figures.pop("_images", {})
    record = {"suite": name, "quick": quick, "command": f"diffrep bench {name}" + (" --quick" if quick else ""),
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "wall_s": round(time.perf_counter() - start, 2),
              "machine": machine_info(), "figures": figures}
    from diffrep.export import atomic_write_text

    path = Path(results) / f"{name}{'-quick' if quick else ''}.json"
    record["images"] = save_images(images, Path(results) if quick else Path(results).parent.parent / "docs" / "images",
                                   f"{name}{'-quick' if quick else ''}")
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    return path


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
