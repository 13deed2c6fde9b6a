"""Does a camera bank with no camera near a view label's border pin the pose? (issue 13's view labels)

A view label ("front": |azimuth| < 45°, ...) asks a camera 40° off the front for a front image, whose poses are
spread over ±45° round the front: such a camera's target pulls the object towards facing it, and its neighbour's
the other way. Here every bank camera sits within ±HALF° of a label's centre (0°, 90°, 180°, 270°), so each view's
targets are centred on its own camera's direction; HALF = 45 is the default bank's spread (borders included).
`border` asks the opposite: half the bank straddles the four azimuth borders (45°, 135°, 225°, 315°) in pairs
within ±WIDTH° of them, so a turn of the object by a few degrees shows a front-labelled camera a side and the
reverse; the other half sits round the labels' centres (±7.5°, ±22.5°) for coverage.
DDRep at its defaults otherwise, one-instance runs scored as `diffrep bench nerf3d` scores them:

    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_bank_sectors.py sample RUNS PROMPT SEED HALF [ELMAX]
    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_bank_sectors.py border RUNS PROMPT SEED WIDTH
    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_lanes.py score RUNS NAME

The runs record ``job.options`` with ``bank_half`` (not an option of the rep: the bank is patched in here), so
nerf3d_lanes.py groups and tags them apart. ELMAX: the bank's highest elevation (default 60, the toy world's).
"""

import sys
from pathlib import Path

root = Path(__file__).resolve().parent
sys.path.insert(0, str(root))


def bank_at(azimuths: list, elevation_range: tuple[float, float], distance: float):
    """Cameras ``[V, 3]`` at the azimuths (degrees, tensors to concatenate), ordered by azimuth in [0, 360) as
    ``camera_bank`` orders its own; elevations by its golden sequence."""
    import torch

    from diffrep.cameras import GOLDEN, sample_cameras

    azimuths = torch.sort(torch.remainder(torch.cat(azimuths), 360.0)).values
    u_el = torch.remainder(0.5 + torch.arange(len(azimuths), dtype=torch.float64) * GOLDEN, 1.0)
    return sample_cameras(torch.stack([azimuths / 360.0, u_el], -1), elevation_range, distance)


def sector_bank(V: int, elevation_range: tuple[float, float], distance: float, half: float):
    """``V`` cameras ``[V, 3]`` (V a multiple of 4) evenly through the four sectors ``c ± half`` (c = 0, 90, 180,
    270), ordered by azimuth in [0, 360) as ``camera_bank`` orders its own; elevations by its golden sequence."""
    import torch

    m = V // 4
    offsets = -half + (torch.arange(m, dtype=torch.float64) + 0.5) * (2 * half / m)
    return bank_at([c + offsets for c in (0.0, 90.0, 180.0, 270.0)], elevation_range, distance)


def border_bank(V: int, elevation_range: tuple[float, float], distance: float, width: float):
    """``V`` cameras (V a multiple of 16): ``V/2`` in pairs straddling the borders 45°, 135°, 225°, 315° at offsets
    spread over ``±width``, ``V/2`` round the centres 0°, 90°, 180°, 270° at offsets spread over ±30°; ordered by
    azimuth, elevations by ``camera_bank``'s golden sequence."""
    import torch

    m = V // 8  # cameras a border, and a centre
    spread = lambda half: -half + (torch.arange(m, dtype=torch.float64) + 0.5) * (2 * half / m)  # noqa: E731
    parts = [c + spread(width) for c in (45.0, 135.0, 225.0, 315.0)] + [c + spread(30.0) for c in (0.0, 90.0, 180.0, 270.0)]
    return bank_at(parts, elevation_range, distance)


def sample(runs: Path, prompt: str, seed: int, half: float, elevation_max: float = 60.0, border: bool = False) -> None:
    import torch

    import diffrep.reps.nerf as nerf
    from diffrep.priors import toyworld_prior
    from nerf3d_lanes import planned, sample_one

    options = {} if elevation_max == 60.0 else {"elevation_max": elevation_max}
    bank_option = {"bank_border": half} if border else {"bank_half": half}
    job = {"prompt": prompt, "seed": seed, "method": "ddrep", "options": options | bank_option, "device": "cpu"}
    if (out := planned(runs, job, options)) is None:
        return
    bank = border_bank if border else sector_bank
    nerf.camera_bank = lambda V, er, d: bank(V, er, d, half)
    torch.set_num_threads(1)
    prior = toyworld_prior()
    sample_one(prior, out, job, **options)


if __name__ == "__main__":
    from script_cli import command, parse, script_main

    verb, args = command(__doc__, {"sample": (4, 5), "border": (4, 4)})
    numbers = parse(lambda: (int(args[2]), *map(float, args[3:])), "SEED, HALF, WIDTH and ELMAX")
    script_main(sample, Path(args[0]), args[1], *numbers, border=verb == "border")
