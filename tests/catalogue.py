"""Command lines the catalogue of refused inputs shares between the tests and
``bench/scripts/reliability_figures.py`` (which runs each as a subprocess and counts the outcomes)."""

from __future__ import annotations

FIRST_ERRORS: dict[str, dict[str, list[str]]] = {
    "sample": {"typo": ["sample", "--method", "ddrep", "--rep", "nerf", "--nerf.gird", "voxel", "--out", "o"],
               "bad_out": ["sample", "--method", "ddrep", "--rep", "nerf", "--out", "/proc/o"]},
    "sdedit": {"typo": ["sdedit", "--image", "in.png", "--strenght", "0.5", "--out", "o"],
               "bad_out": ["sdedit", "--image", "in.png", "--out", "/proc/o"]},
    "inpaint": {"typo": ["inpaint", "--image", "in.png", "--mask", "in.png", "--roundz", "2", "--out", "o"],
                "bad_out": ["inpaint", "--image", "in.png", "--mask", "in.png", "--out", "/proc/o"]},
    "toyworld": {"typo": ["toyworld", "--nn", "3", "--out", "o"], "bad_out": ["toyworld", "--n", "3", "--out", "/proc/o"]},
    "export": {"typo": ["export", "run", "--resolutoin", "64"], "bad_out": ["export", "no-such-run"]},
    "evaluate": {"typo": ["evaluate", "run", "--reference-m", "10"], "bad_out": ["evaluate", "no-such-run"]},
    "bench": {"typo": ["bench", "speed", "--quik"], "bad_out": ["bench", "speed", "--quick", "--results", "/proc/o"]},
    "train-prior": {"typo": ["train-prior", "--out", "o", "--stpes", "3"], "bad_out": ["train-prior", "--out", "/proc/o"]},
}
"""Per command, a typo and a bad output location (for export and evaluate: the run folder they write
into): each must be refused in one line before torch is imported, in well under a second."""
