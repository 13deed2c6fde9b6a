"""Checks too long for `make test` (`make test-slow`, about 3 minutes): the issue's headline run in its default
configuration, end to end through the command line, against the figures it was measured at (docs/benchmarks.md,
nerf3d: the suite's seed-0 duck; `diffrep evaluate` here labels by the prior's 10,000 images, not 160,000)."""

from __future__ import annotations

import json
import time

import pytest

from diffrep.cli import main

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("method,floor", [
    ("ddrep", {"occupancy_iou": 0.80, "mask_iou": 0.90, "psnr": 23.0}),  # measured 0.835, 0.920, 23.83
    ("sds", {"occupancy_iou": 0.84, "mask_iou": 0.90, "psnr": 24.0}),  # measured 0.87, 0.93, 24.87
])
def test_a_default_nerf_of_a_yellow_duck_is_a_yellow_duck(tmp_path, method, floor):
    out = tmp_path / method
    start = time.perf_counter()
    assert main(["sample", "--rep", "nerf", "--method", method, "--prompt", "a yellow duck", "--out", str(out)]) == 0
    seconds = time.perf_counter() - start
    assert seconds < 600  # the 10 minutes for one 32² object in the default configuration (measured 68-85 s, and 31-44 s since the skipping threshold 0.1 on a faster day)
    assert main(["evaluate", str(out)]) == 0
    row = json.loads((out / "eval.json").read_text())["instances"]
    assert len(row) == 1 and not row[0]["janus"] and row[0]["labels"]["colour"] == 1.0, row
    assert row[0]["labels"]["kind"] >= 0.75, row  # measured 0.875 (DDRep), 0.94 (SDS)
    for name, least in floor.items():
        assert row[0][name] >= least, (name, row[0])
    assert {"turntable-0.gif", "turntable-0.mp4", "mesh-0.glb", "views.png"} <= {p.name for p in out.iterdir()}
