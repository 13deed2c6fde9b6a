"""Does guidance towards each view's label pin the pose? (issue 13's view labels)

DDRep's NeRF views are conditioned on "PROMPT, LABEL view", with classifier-free guidance at 3 against the empty
prompt by default. Here each view's denoiser is guided away from the prompt without its view instead (Perp-Neg's
idea in its plainest form: the negative is the view-free prompt):
``ε = ε(PROMPT) + w (ε(PROMPT, LABEL view) - ε(PROMPT))``. For the toy world's exact prior ``ε(PROMPT)`` is the
posterior over every view of the prompted kind and colour, so ``w > 1`` pushes a view towards what tells its label
from the others (a front camera 40° off the front towards a more frontal image, its side neighbour at 50° towards a
more side-on one), and, unlike classifier-free guidance against the empty prompt, not away from the prompted kind.
With ``{"kind_guidance": k}`` in the options the kind keeps its own guidance against the empty prompt,
``ε = ε(∅) + k (ε(PROMPT) - ε(∅)) + w (ε(PROMPT, LABEL view) - ε(PROMPT))``: the default's classifier-free guidance
at 3 is this with ``k = w = 3``, so ``k = 3`` varies the view's part alone. ``w = 1`` (and no ``k``) is no guidance at all (the default's control is `nerf3d_lanes.py sample RUNS` with options ``{}``). DDRep's
defaults otherwise; one-instance runs scored as `diffrep bench nerf3d`:

    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_view_guidance.py RUNS PROMPT SEED W ['{"eta": 1.0}']
    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_lanes.py score RUNS nerf3d-view-guidance

Each run is DDRep with ``--nerf.view-guidance W --guidance-scale k`` (k = 1 without ``kind_guidance``); its job records
the probe's options (``view_guidance``, ``kind_guidance``), as the rows of 2026-12-05 did when this script patched
DDRep's guidance with the same formula before the option existed (docs/benchmarks.md: the option's run agrees within a
run's trajectory noise).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(runs: Path, prompt: str, seed: int, w: float, extra: dict) -> None:
    """One object with DDRep's ``--nerf.view-guidance w`` and guidance scale ``kind_guidance`` (1 without it: the probe's
    view-only rows). The job keeps the probe's options, so the runs' tags and rows stay those it recorded before the
    option existed (when this script patched DDRep's guidance with the same formula)."""
    import torch

    from diffrep.priors import toyworld_prior
    from nerf3d_lanes import planned, sample_one

    job = {"prompt": prompt, "seed": seed, "method": "ddrep", "options": extra | {"view_guidance": w}, "device": "cpu"}
    options = dict(extra)
    options |= {"guidance_scale": options.pop("kind_guidance", 1.0), "view_guidance": w}
    if (out := planned(runs, job, options)) is None:
        return
    torch.set_num_threads(1)
    sample_one(toyworld_prior(), out, job, **options)


if __name__ == "__main__":
    import json

    from script_cli import command, parse, script_main

    _, a = command(__doc__, {None: (4, 5)})
    values = parse(lambda: (int(a[2]), float(a[3]), json.loads(a[4]) if len(a) == 5 else {}), "SEED, W and OPTIONS")
    script_main(main, Path(a[0]), a[1], *values)
