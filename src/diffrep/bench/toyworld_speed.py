"""Toy-world rendering speed: images per second at 32² (10,000 images; target < 60 s) and 64²."""

from __future__ import annotations

import time
from collections.abc import Callable


def run(quick: bool, log: Callable[[str], None]) -> dict:
    from diffrep import toyworld as tw

    rows = []
    for res, n in ((32, 1000 if quick else 10_000), (64, 200 if quick else 1000)):
        start = time.perf_counter()
        tw.generate(tw.ToyWorldConfig(n=n, res=res, seed=0))
        secs = time.perf_counter() - start
        row = {"res": res, "n": n, "seconds": round(secs, 2), "images_per_s": round(n / secs, 1)}
        if res == 32:
            row["projected_s_for_10000"] = round(10_000 / (n / secs), 1)
        log(str(row))
        rows.append(row)
    return {"rows": rows, "target": "10,000 images of 32² in under 60 s"}
