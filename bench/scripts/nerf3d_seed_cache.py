"""Seed the nerf3d suite's run cache with a section's committed rows, so that `diffrep bench nerf3d --section S` runs
only what its plan has gained since (new recipes, prompts or seeds) and writes the section's figures from all of them.

    .venv/bin/python bench/scripts/nerf3d_seed_cache.py SECTION   # default-prior, extra or lmc-sds

Honest only because the suite's runs are deterministic on one machine (docs/benchmarks.md: a re-run of the lmc-sds
section reproduced its 30 earlier rows to the last digit, only times moved); the rows keep their own dates' times.
Each committed row goes in under the key the suite computes for its spec (prompt, method, seed, n, options), with its
turntable from docs/images when its spec makes one; rows whose spec is gone from the plan are left out."""

import json
import sys
from pathlib import Path

root = Path(__file__).resolve().parents[2]
RESULTS = root / "bench" / "results"
FIELDS = {"default-prior": "rows", "extra": "extra_rows", "lmc-sds": "lmc_sds"}


def main(section: str) -> None:
    from diffrep.bench import nerf3d

    if section not in FIELDS:
        print(f"unknown section {section!r}; allowed: {', '.join(FIELDS)}", file=sys.stderr)
        sys.exit(2)
    figures = json.loads((RESULTS / "nerf3d.json").read_text())["figures"]
    rows = figures[FIELDS[section]]
    rows = rows["rows"] if isinstance(rows, dict) else rows
    committed = {nerf3d.run_key(r): r for r in rows}
    cache = RESULTS / ".nerf3d.cache"
    seeded = 0
    for spec in nerf3d.section_specs(False, section):
        key = nerf3d.run_key(spec)
        if key not in committed:
            continue
        row = {k: v for k, v in committed[key].items() if k != "label"}  # the section adds its label when it writes
        gif = (root / "docs" / "images" / f"nerf3d-{nerf3d.gif_name(spec)}").read_bytes() if spec.get("gif") else None
        nerf3d._write_cache(cache, "toyworld", key, row, gif)
        seeded += 1
    print(f"{seeded} of {len(nerf3d.section_specs(False, section))} runs of section {section} seeded into {cache}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__.split("\n\n")[1].strip(), file=sys.stderr)
        sys.exit(2)
    main(sys.argv[1])
