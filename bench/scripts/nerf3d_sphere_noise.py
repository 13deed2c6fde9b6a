"""Does a noise attached to the object keep DDRep's 3-D diversity? (issue 13's diversity miss)

With the paper's independent noise state per bank camera, the least squares averages the views' steps, and whatever
every view sees moves with the mean of V noises (variance 1/V): the mugs collapse to one mug (0.45x the data's
spread). One state shared by every view (``--nerf.shared-noise 1``) undoes the average but paints the same noise
image on every view, which no object could show. This probe gives the noise a place in the world instead, as the
panorama's canvas does for its crops: a white-noise canvas on a sphere of ``RADIUS`` round the origin (an
equirectangular grid of cells, finer than a pixel's footprint), and each view's pixel the sum of the canvas cells
that project into it from the sphere's side facing the camera, over the square root of their number ("integral
noise", Chang et al. 2024, *How I Warped Your Noise*). Pixels off the sphere keep a noise of their own. A view's
noise stays i.i.d. standard normal (disjoint cells a pixel, normalised); two views correlate where they see the
same part of the sphere, so neighbouring cameras share most of their noise on the object and opposite ones none.

The NeRF rep's ``noise_shape`` and ``view_noise`` are patched here (the method and everything else are DDRep's
defaults), the suite's 4 instances of PROMPT at SEED, scored as `nerf3d_diversity.py` scores its rows:

    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_sphere_noise.py check RADIUS [HC]  # the noise's statistics
    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_sphere_noise.py run PROMPT SEED RADIUS [HC]
    .venv/bin/python bench/scripts/nerf3d_sphere_noise.py write    # -> bench/results/nerf3d-sphere-noise.json

HC: the canvas's polar cells (default 128; twice as many round the equator). A coarser canvas (32: about a pixel's
footprint a cell) gives neighbouring views more of their noise in common (0.4-0.6 against 0.3-0.4 at 128), since a
pixel then sums fewer cells that the other view's pixel splits differently.
"""

import json
import math
import time
from pathlib import Path

import torch
from torch import Tensor

root = Path(__file__).resolve().parents[2]
ROWS = root / "bench" / "results" / ".nerf3d-sphere-noise.jsonl"
CELLS = (128, 256)  # the canvas: polar x azimuthal cells (about 16 to a pixel at the sphere's centre, 32² views)


def canvas_points(radius: float, cells: tuple[int, int]) -> Tensor:
    """The canvas cells' centres on the sphere, ``[Hc Wc, 3]`` (z up)."""
    h, w = cells
    theta = (torch.arange(h, dtype=torch.float64) + 0.5) * math.pi / h
    phi = (torch.arange(w, dtype=torch.float64) + 0.5) * 2 * math.pi / w
    st, ct = torch.sin(theta)[:, None], torch.cos(theta)[:, None]
    xyz = torch.stack([st * torch.cos(phi), st * torch.sin(phi), ct.expand(h, w)], -1)
    return radius * xyz.reshape(-1, 3)


def cell_pixels(bank: Tensor, res: int, fov_deg: float, radius: float) -> Tensor:
    """For each bank camera, the flat pixel each canvas cell projects into, or -1 where the cell faces away from the
    camera or falls outside its image: ``[V, Hc Wc]``."""
    from diffrep.cameras import camera_frames

    p = canvas_points(radius, CELLS)
    eye, right, up, forward = (f.double() for f in camera_frames(bank.double()))
    v = p[None] - eye[:, None]  # [V, N, 3]
    z = (v * forward[:, None]).sum(-1)
    tan = math.tan(math.radians(fov_deg) / 2)
    s = (v * right[:, None]).sum(-1) / z / tan  # [-1, 1] across the image
    t = (v * up[:, None]).sum(-1) / z / tan
    col = torch.floor((s + 1) / 2 * res).long()
    row = torch.floor((1 - t) / 2 * res).long()
    facing = (p[None] * eye[:, None]).sum(-1) > radius ** 2  # the cell's outward normal points at the eye
    inside = (col >= 0) & (col < res) & (row >= 0) & (row < res) & facing
    return torch.where(inside, row * res + col, torch.full_like(col, -1))


def integral_noise(canvas: Tensor, own: Tensor, pixels: Tensor) -> Tensor:
    """Views' noise ``[n, k, C, H, W]`` from the ``canvas [n, C, N]``, the views' own ``[n, k, C, H, W]`` (for pixels
    no cell reaches) and their cells' pixels ``[n, k, N]`` (``cell_pixels`` rows): sum over a pixel's cells / sqrt(count)."""
    n, k, C, H, W = own.shape
    out = torch.zeros(n, k, C, H * W + 1, dtype=canvas.dtype, device=canvas.device)  # the last slot takes the -1s
    slot = torch.where(pixels < 0, H * W, pixels)[:, :, None].expand(n, k, C, -1)
    out.scatter_add_(3, slot, canvas[:, None].expand(n, k, C, -1))
    count = torch.zeros(n, k, H * W + 1, dtype=canvas.dtype, device=canvas.device)
    count.scatter_add_(2, slot[:, :, 0], torch.ones_like(slot[:, :, 0], dtype=canvas.dtype))
    count = count[..., :-1].view(n, k, 1, H, W)
    summed = out[..., :-1].view(n, k, C, H, W)
    return torch.where(count > 0, summed / count.clamp_min(1).sqrt(), own)


def patch(radius: float) -> None:
    """The NeRF rep's noise: the canvas and one own image per bank camera, ``(n, C, N + V H W)`` flat."""
    from diffrep.reps.nerf import NerfRep

    def noise_shape(self) -> tuple[int, ...]:
        C, H, W = self.image_shape
        return (self.n, C, CELLS[0] * CELLS[1] + self.config.bank * H * W)

    def view_noise(self, noise: Tensor, views: Tensor | None) -> Tensor:
        C, H, W = self.image_shape
        N, V = CELLS[0] * CELLS[1], self.config.bank
        if not hasattr(self, "_cell_pixels"):
            self._cell_pixels = cell_pixels(self.bank.cpu(), H, self.config.fov, radius).to(noise.device)
        index = torch.zeros(self.n, 1, dtype=torch.long) if views is None else views[..., 0].long()
        index = index.to(noise.device)
        own = noise[:, :, N:].reshape(self.n, C, V, H, W).transpose(1, 2)  # [n, V, C, H, W]
        rows = torch.arange(self.n, device=noise.device)[:, None]
        return integral_noise(noise[:, :, :N], own[rows, index], self._cell_pixels[index])

    NerfRep.noise_shape = property(noise_shape)
    NerfRep.view_noise = view_noise


def check(radius: float) -> None:
    """A view's noise is standard normal and white; neighbouring bank cameras share some of it, opposite ones none."""
    from diffrep.reps.configs import NerfConfig
    from diffrep.cameras import camera_bank

    c = NerfConfig()
    bank = camera_bank(c.bank, (c.elevation_min, c.elevation_max), c.distance)
    pix = cell_pixels(bank, 32, c.fov, radius)
    g = torch.Generator().manual_seed(0)
    n, N = 200, CELLS[0] * CELLS[1]
    canvas = torch.randn(n, 1, N, generator=g, dtype=torch.float64)
    own = torch.randn(n, c.bank, 1, 32, 32, generator=g, dtype=torch.float64)
    x = integral_noise(canvas, own, pix[None].expand(n, -1, -1))  # [n, V, 1, 32, 32]
    flat = x.flatten(2)
    print(f"radius {radius}: mean {flat.mean():.4f}, variance {flat.var():.4f}, "
          f"neighbouring-pixel correlation {torch.corrcoef(torch.stack([x[..., :-1].flatten(), x[..., 1:].flatten()]))[0, 1]:.4f}")
    covered = [len(row[row >= 0].unique()) for row in pix]  # pixels some cell projects into
    print(f"pixels on the sphere a view: {sum(covered) / len(covered):.0f} of 1024")
    for j in (1, 2, 4, 8, 16):  # the noise at a sphere point, as camera 0 sees it and as camera j does
        both = (pix[0] >= 0) & (pix[j] >= 0)
        r = torch.corrcoef(torch.stack([flat[:, 0, pix[0, both]].flatten(), flat[:, j, pix[j, both]].flatten()]))[0, 1]
        print(f"camera 0 and {j} ({float(bank[j, 0] - bank[0, 0]):.1f}° apart, {float(bank[j, 1] - bank[0, 1]):+.1f}° "
              f"in elevation): correlation {r:.3f} at the sphere points both see ({int(both.sum())} cells)")


def run(prompt: str, seed: int, radius: float) -> None:
    from diffrep.bench import nerf3d
    from diffrep.errors import InputError
    from diffrep.evaluate3d import GroundTruth, as_reference
    from diffrep.priors import toyworld_prior
    from nerf3d_lanes import check_job

    if not 0 < radius <= 1:
        raise InputError(f"RADIUS {radius}: in (0, 1], the sphere inside the NeRF's box")
    check_job("ddrep", prompt, seed, 4, {})  # a typo in the prompt is refused before the prior loads
    done = [json.loads(line) for line in ROWS.read_text().splitlines()] if ROWS.exists() else []
    if any(r["prompt"] == prompt and r["seed"] == seed and r["sphere_noise_radius"] == radius
           and r.get("canvas_cells", [128, 256]) == list(CELLS) for r in done):
        return
    torch.set_num_threads(1)
    patch(radius)
    prior = toyworld_prior()
    reference, gt = as_reference(prior), GroundTruth()
    row, _ = nerf3d.one_run(prior, reference, gt, prompt, "ddrep", seed, 4, {})
    row |= {"sphere_noise_radius": radius, "canvas_cells": list(CELLS), "seed": seed, "date": time.strftime("%Y-%m-%d %H:%M")}
    a = row["aggregate"]
    spread, data = 1 - a["pairwise_mask_iou"], 1 - a["ground_truth"]["pairwise_mask_iou"]
    print(prompt, seed, radius, row["seconds"], "spread/data", round(spread / data, 3), "occupancy", a["occupancy_iou"],
          "labels", a["labels"], flush=True)
    with open(ROWS, "a") as f:
        f.write(json.dumps(row) + "\n")


def write() -> None:
    from diffrep.bench import machine_info
    from diffrep.export import atomic_write_text

    from script_cli import merged

    path = root / "bench" / "results" / "nerf3d-sphere-noise.json"
    rows = merged(path, lambda record: record["figures"]["rows"], [json.loads(line) for line in ROWS.read_text().splitlines()],
                  lambda r: (r["prompt"], r["seed"], r["sphere_noise_radius"], tuple(r.get("canvas_cells", [128, 256]))))
    table = []
    for r in rows:
        a, g = r["aggregate"], r["aggregate"]["ground_truth"]
        spread, data = 1 - a["pairwise_mask_iou"], 1 - g["pairwise_mask_iou"]
        table.append({"prompt": r["prompt"], "seed": r["seed"], "radius": r["sphere_noise_radius"],
                      "canvas_cells": r.get("canvas_cells", [128, 256]), "seconds": r["seconds"],
                      "silhouette_spread": round(spread, 4), "data_silhouette_spread": round(data, 4),
                      "spread_over_data": round(spread / data, 3), "occupancy_iou": a["occupancy_iou"],
                      "mask_iou": a["mask_iou"], "labels": a["labels"]})
    record = {"suite": "nerf3d 3-D diversity with a noise canvas on a sphere (probe)",
              "command": "OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_sphere_noise.py run PROMPT SEED RADIUS",
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine_info(), "figures": {"table": table, "rows": rows}}
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    from script_cli import cached, command, parse, refuse, script_main

    verb, args = command(__doc__, {"check": (1, 2), "run": (3, 4), "write": (0, 0)})
    if len(args) == {"check": 2, "run": 4}.get(verb):
        hc = args.pop()
        if not hc.isdigit() or not 4 <= int(hc) <= 1024:
            refuse(f"HC {hc!r}: a whole number of polar cells from 4 to 1024")
        CELLS = (int(hc), 2 * int(hc))
    if verb == "check":
        script_main(check, parse(lambda: float(args[0]), "RADIUS"))
    elif verb == "run":
        script_main(run, args[0], *parse(lambda: (int(args[1]), float(args[2])), "SEED and RADIUS"))
    else:
        cached(ROWS, "nerf3d_sphere_noise.py run")
        write()
