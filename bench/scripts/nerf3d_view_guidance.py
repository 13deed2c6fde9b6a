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

The runs record ``job.options`` with ``view_guidance`` (not an option of DDRep: the denoiser is patched in here).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(runs: Path, prompt: str, seed: int, w: float, extra: dict) -> None:
    import torch

    import diffrep.methods.ddrep as ddrep
    from diffrep.priors import toyworld_prior
    from diffrep.priors.base import cfg_eps, eps_cond_uncond
    from nerf3d_lanes import planned, sample_one

    job = {"prompt": prompt, "seed": seed, "method": "ddrep", "options": extra | {"view_guidance": w}, "device": "cpu"}
    extra = dict(extra)
    kind_scale = extra.pop("kind_guidance", None)
    if (out := planned(runs, job, extra)) is None:
        return
    torch.set_num_threads(1)
    prior = toyworld_prior()
    view_free = prior.encode_prompt(prompt)

    def view_guided(prior, x_t, t, conds, guidance_scale, uncond=None):
        """DDRep's ``cfg_eps`` with the view-free prompt as guidance's negative and ``w`` as its scale (and the
        view-free prompt guided against the empty one at ``kind_scale``)."""
        eps_hat = cfg_eps(prior, x_t, t, conds, w, view_free)
        if kind_scale is not None:  # + (k - 1) (ε(PROMPT) - ε(∅))
            eps_p, eps_0 = eps_cond_uncond(prior, x_t, t, view_free)
            eps_hat = eps_hat + (kind_scale - 1) * (eps_p - eps_0)
        return eps_hat

    ddrep.cfg_eps = view_guided  # denoise_views' guidance, its one call of the prior
    sample_one(prior, out, job, **extra)


if __name__ == "__main__":
    import json

    from script_cli import command, parse, script_main

    _, a = command(__doc__, {None: (4, 5)})
    values = parse(lambda: (int(a[2]), float(a[3]), json.loads(a[4]) if len(a) == 5 else {}), "SEED, W and OPTIONS")
    script_main(main, Path(a[0]), a[1], *values)
