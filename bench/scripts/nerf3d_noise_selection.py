"""Why does one shared noise image spread DDRep's mugs when a noise kept on the object does not? (issue 13's diversity)

At a step of high noise, each bank view's denoised image is the exact prior's posterior mean over the data images of
its label, weighted by how well each matches that view's noisy image. If two views' weights favour the same kind of
instance (a tall mug, a short one), the NeRF fitted to both keeps it; if they favour unrelated ones, the least squares
averages them away (the 1/V of the independent states). This measures, for two bank cameras, the correlation over
noise draws of one statistic of each view's posterior mean, the instance's size (its silhouette's pixel count in the
data image, weighted as the posterior weighs them), under three noises: independent per view, one image shared by
both (``--nerf.shared-noise 1``), and the sphere canvas of `nerf3d_sphere_noise.py` (radius 0.6, 128 x 256 cells).
The rendered NeRF is taken as the mid-grey it starts from (x̂ = 0), so ``x_t = s_t ε``.

    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_noise_selection.py   # -> bench/results/nerf3d-noise-selection.json
"""

import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
root = Path(__file__).resolve().parents[2]
DRAWS = 400
TIMESTEPS = (900, 800, 700, 600, 500)
PAIRS = ((0.0, 11.25), (0.0, 90.0), (0.0, 180.0))  # camera azimuths (elevation 15°): neighbours, front/side, front/back


def sizes(images: torch.Tensor) -> torch.Tensor:
    """Silhouette pixel count of each data image (``evaluate3d.foreground_mask``, as `diffrep evaluate` finds one)."""
    from diffrep.evaluate3d import foreground_mask

    return foreground_mask(images).flatten(1).sum(1).double()


def selected_size(eps: torch.Tensor, images: torch.Tensor, size: torch.Tensor, a: float, s: float) -> torch.Tensor:
    """The posterior-weighted size at ``x_t = s ε`` (x̂ = 0) for noises ``eps [D, C, H, W]`` over ``images [M, C, H, W]``."""
    X = images.flatten(1).double()
    logits = (a / s) * eps.flatten(1).double() @ X.T - a * a * (X * X).sum(1) / (2 * s * s)
    return torch.softmax(logits, 1) @ size


def main() -> None:
    from diffrep.bench import machine_info
    from diffrep.cameras import VIEWS, view_label
    from diffrep.export import atomic_write_text
    from diffrep.priors import toyworld_prior
    from diffrep.reps.configs import NerfConfig
    from diffrep.toyworld.vocabulary import COLOURS, KINDS
    from nerf3d_sphere_noise import CELLS, cell_pixels, integral_noise

    torch.set_num_threads(1)
    prior = toyworld_prior()
    data, labels = prior.data, prior.labels
    c = NerfConfig()
    g = torch.Generator().manual_seed(0)
    rows = []
    for kind, colour in (("mug", "red"), ("duck", "yellow")):
        for az0, az1 in PAIRS:
            cams = torch.tensor([[az0, 15.0, c.distance], [az1, 15.0, c.distance]])
            view = view_label(cams[:, 0], cams[:, 1])
            subsets = []
            for v in view.tolist():
                keep = (labels["kind"] == KINDS.index(kind)) & (labels["colour"] == COLOURS.index(colour)) & (labels["view"] == v)
                subsets.append(data[keep])
            pix = cell_pixels(cams, 32, c.fov, 0.6)
            own = torch.randn(DRAWS, 2, 3, 32, 32, generator=g, dtype=torch.float64)
            canvas = torch.randn(DRAWS, 3, CELLS[0] * CELLS[1], generator=g, dtype=torch.float64)
            noises = {"independent": own, "shared": own[:, :1].expand(-1, 2, -1, -1, -1),
                      "sphere": integral_noise(canvas, own, pix[None].expand(DRAWS, -1, -1))}
            for t in TIMESTEPS:
                ab = float(prior.alphas_cumprod[t])
                a, s = ab ** 0.5, (1 - ab) ** 0.5
                row = {"kind": kind, "colour": colour, "azimuths": [az0, az1], "views": [VIEWS[v] for v in view.tolist()],
                       "images": [len(x) for x in subsets], "t": t}
                for name, eps in noises.items():
                    s0 = selected_size(eps[:, 0].float(), subsets[0], sizes(subsets[0]), a, s)
                    s1 = selected_size(eps[:, 1].float(), subsets[1], sizes(subsets[1]), a, s)
                    row[name] = round(torch.corrcoef(torch.stack([s0, s1]))[0, 1].item(), 3)
                    row[f"{name}_size_sd"] = round(s0.std().item(), 2)
                print(json.dumps(row), flush=True)
                rows.append(row)
    record = {"command": "OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_noise_selection.py", "draws": DRAWS,
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine_info(), "rows": rows}
    atomic_write_text(root / "bench" / "results" / "nerf3d-noise-selection.json", json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
