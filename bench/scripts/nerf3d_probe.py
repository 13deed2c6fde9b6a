"""Why DDRep's (and every method's) houses and chairs are blobs (issue 13; docs/benchmarks.md, nerf3d): one DDRep
NeRF of a prompt (seed 0 unless given) with changed options or prior, scored as `diffrep bench nerf3d` scores it
(labels by the nearest of 160,000 toy-world images), and the picture that says what the scores do not: the 16
held-out renders above their nearest reference images.

    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_probe.py run PROMPT OPTIONS_JSON [PRIOR [SEED]]
    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_probe.py targets PROMPT   # DDRep's per-view targets
    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_probe.py poses PROMPT     # whose cameras they show
    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_probe.py kept FOLDER...   # the picture of kept suite runs
    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/nerf3d_probe.py camera PROMPT N W_AZ W_EL [SEED [METHOD]]  # --camera-window W_AZ W_EL
    .venv/bin/python bench/scripts/nerf3d_probe.py write [NAME]   # bench/results/NAME, default nerf3d-probe.json

PRIOR: `toyworld` (the default, 10,000 images), `toyworld:N` (N images), or a name `diffrep.priors.load` takes
(`tiny`). `run` appends a row to bench/results/.nerf3d-probe.cache/rows.jsonl (ignored; a rerun skips it) and
writes the picture there; `kept` draws it for runs the suite kept; `targets` writes docs/images/nerf3d-house-targets.png: for 8 bank views (every 4th
camera, the toy world's mean light) at steps 10, 25, 40 and 48 of 50, the render above the prior's denoised
image D of that view (design §5, step 2); `write` makes bench/results/nerf3d-probe.json. About 2-6 min a run on
one thread."""

import json
import os
import time
from pathlib import Path

root = Path(__file__).resolve().parents[2]
CACHE = root / "bench" / "results" / ".nerf3d-probe.cache"


def load_prior(name: str):
    import diffrep
    from diffrep.priors import toyworld_prior

    if name.startswith("toyworld"):
        return toyworld_prior(n=int(name.split(":")[1]) if ":" in name else 10_000)
    return diffrep.priors.load(name)


def tag(prompt: str, options: dict, prior: str, seed: int = 0) -> str:
    return (f"{prompt.split()[-1]}-{prior.replace(':', '')}-" + "-".join(f"{k}{v}" for k, v in sorted(options.items()))
            + (f"-seed{seed}" if seed else ""))


def save_rows(rows, path: Path) -> None:
    """Image rows (each ``[k, 3, H, W]`` in [-1, 1]) one above the other, 3x, no padding (``export.image_grid``), atomically."""
    import torch

    from diffrep.export import image_grid

    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.png")
    image_grid(torch.cat(rows), nrow=len(rows[0]), scale=3, pad=0).save(tmp)
    tmp.replace(path)


def nearest_picture(nerf, reference) -> list:
    """The first instance of ``nerf`` at the 16 held-out cameras, above their nearest reference images."""
    from diffrep.evaluate3d import _render, held_out_cameras
    from diffrep.metrics import nearest_data
    from diffrep.reps.nerf import nerf_objects

    renders = _render(nerf_objects(nerf)[0], held_out_cameras(16), 32)
    return [renders, reference.images[nearest_data(renders, reference.images)[0]]]


def kept(folders: list[str]) -> None:
    """The picture of ``run`` for runs of the suite kept in bench/results/.nerf3d.runs/ (their first instance),
    one above the other: docs/images/nerf3d-kinds-nearest.png."""
    import torch

    from diffrep.api import load_run
    from diffrep.bench import nerf3d
    from diffrep.evaluate3d import load_reference

    torch.set_num_threads(1)
    reference = load_reference(nerf3d.REFERENCE_N, 32)
    rows = []
    for folder in folders:
        rows += nearest_picture(load_run(root / "bench" / "results" / ".nerf3d.runs" / folder)[0], reference)
    save_rows(rows, root / "docs" / "images" / "nerf3d-kinds-nearest.png")


def run(prompt: str, options: dict, prior_name: str = "toyworld", seed: int = 0) -> None:
    record(tag(prompt, options, prior_name, seed), prompt, load_prior(prior_name), options, lambda: {"prior": prior_name},
           seed)


def record(name: str, prompt: str, prior, options: dict, fields, seed: int = 0, method: str = "ddrep") -> None:
    """``method`` (DDRep) on ``prompt`` (one instance at ``seed``) scored as the suite scores it; its row (with ``fields()``, asked
    after the run) appended to the cache's rows.jsonl and its picture written there as ``name``.png; skipped when
    the cache has ``name``."""
    import torch

    from diffrep.bench import nerf3d
    from diffrep.evaluate3d import GroundTruth, load_reference

    torch.set_num_threads(1)
    rows = CACHE / "rows.jsonl"
    if rows.exists() and any(json.loads(line)["tag"] == name for line in rows.read_text().splitlines()):
        return
    reference = load_reference(nerf3d.REFERENCE_N, 32)
    row, result = nerf3d.one_run(prior, reference, GroundTruth(), prompt, method, seed, 1, options)
    a = row["aggregate"]
    row["roughness_deg"] = roughness(result.rep)
    print(name, row["seconds"], a["labels"], a["occupancy_iou"], a["mask_iou"], a["psnr"], row["roughness_deg"], flush=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    save_rows(nearest_picture(result.rep, reference), CACHE / f"{name}.png")
    with open(rows, "a") as f:
        f.write(json.dumps({"tag": name} | fields() | row) + "\n")


def roughness(rep, res: int = 64) -> float:
    """How rough a NeRF's surface is: the mean angle, in degrees, between the rendered normals of neighbouring
    pixels (across and down) where both are opaque (> 0.95), at ``res`` pixels a side and the eight cameras of its
    geometry grid (``NerfRep.geometry``), first instance. A sphere's at 64² is ~3°; voxel-scale dimples raise it."""
    import torch

    with torch.no_grad():
        out = rep.render_cameras(rep.preview_cameras()[:1], res=res, outputs=True)
    unit = out["normals"][0] / out["normals"][0].norm(dim=1, keepdim=True).clamp_min(1e-6)  # [8, 3, H, W]
    opaque = out["opacity"][0] > 0.95
    angles = []
    for a, b, both in ((unit[..., 1:, :], unit[..., :-1, :], opaque[:, 1:] & opaque[:, :-1]),
                       (unit[..., 1:], unit[..., :-1], opaque[..., 1:] & opaque[..., :-1])):
        cos = (a * b).sum(1).clamp(-1, 1)
        angles.append(torch.rad2deg(torch.acos(cos))[both])
    return round(torch.cat(angles).mean().item(), 2)


def bank_targets(prior, prompt_cond, rep, noise, ts, i: int, index):
    """The renders and the prior's denoised images ``D`` (design §5, step 2) of bank cameras ``index`` at step ``i``
    of ``ts`` (the toy world's mean light, Lambertian), ``[len(index), 3, H, W]`` each."""
    import torch

    from diffrep.methods.base import view_conditions
    from diffrep.methods.ddrep import denoise_views
    from diffrep.reps.nerf import default_light
    from diffrep.schedule import ddim_coefficients

    k = ddim_coefficients(prior.alphas_cumprod, ts[i], ts[i + 1], 0.0)
    views = torch.cat([index[:, None].float(), default_light(rep.bank[index]), torch.ones(len(index), 1)], -1)[None]
    with torch.no_grad():
        x = rep(views)
        D = denoise_views(prior, x, rep.view_noise(noise, views), ts[i], k, view_conditions(prompt_cond, rep, views), 3.0)
    return x[0], D[0]


def targets(prompt: str) -> None:
    import torch

    import diffrep
    from diffrep.methods.base import ViewPrompt
    from diffrep.schedule import timesteps

    torch.set_num_threads(1)
    prior = load_prior("toyworld")
    ts = timesteps(len(prior.alphas_cumprod), 50)
    rows = []

    def look(d: dict) -> None:
        if d["step"] - 1 in (10, 25, 40, 48):
            rows.extend(bank_targets(prior, ViewPrompt(prompt, prior.encode_prompt), d["rep"], d["state"].noise, ts,
                                     d["step"] - 1, torch.arange(0, 32, 4)))

    diffrep.sample(prior, rep="nerf", method="ddrep", prompt=prompt, n=1, seed=0, callback=look)
    save_rows(rows, root / "docs" / "images" / f"nerf3d-{prompt.split()[-1]}-targets.png")


def poses(prompt: str) -> None:
    """At step 48 of 50 of a DDRep run (seed 0), each of the 32 bank views' denoised image ``D`` is (nearly) one data
    image: print how far that image's camera is from the view's own (azimuth, elevation) and how many distinct
    data images the 32 views follow, and append them to the cache's poses.jsonl."""
    import torch

    import diffrep
    from diffrep.methods.base import ViewPrompt
    from diffrep.metrics import nearest_data
    from diffrep.priors.empirical import toyworld_cameras
    from diffrep.schedule import timesteps

    torch.set_num_threads(1)
    prior, cameras = load_prior("toyworld"), toyworld_cameras(10_000, 32, 0)
    ts = timesteps(len(prior.alphas_cumprod), 50)
    found = {}

    def look(d: dict) -> None:
        if d["step"] - 1 != 48:
            return
        rep = d["rep"]
        _, D = bank_targets(prior, ViewPrompt(prompt, prior.encode_prompt), rep, d["state"].noise, ts, 48, torch.arange(32))
        nearest, rms = nearest_data(D, prior.data)
        bank = rep.bank.cpu()
        daz = ((cameras[nearest, 0] - bank[:, 0] + 180) % 360 - 180).abs()
        found.update(prompt=prompt, rms_to_data=round(rms.mean().item(), 4), distinct_images=len(set(nearest.tolist())),
                     azimuth_error_deg=round(daz.mean().item(), 1), azimuth_error_median_deg=round(daz.median().item(), 1),
                     elevation_error_deg=round((cameras[nearest, 1] - bank[:, 1]).abs().mean().item(), 1))

    diffrep.sample(prior, rep="nerf", method="ddrep", prompt=prompt, n=1, seed=0, callback=look)
    print(json.dumps(found), flush=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "poses.jsonl", "a") as f:
        f.write(json.dumps(found) + "\n")


def camera(prompt: str, n: int, w_az: float, w_el: float, seed: int = 0, method: str = "ddrep") -> None:
    """DDRep (or ``method`` at the suite's settings) with the empirical prior conditioned on each view's camera (``--camera-window W_AZ W_EL``): a view's
    denoiser uses only the data images of its view prompt whose camera is within ``w_az`` degrees of azimuth and
    ``w_el`` of elevation of the view's (at least the 3 nearest). The rows written before the option existed
    (2026-12-01, until 08:15) came from an experiment that swapped DDRep's view conditions in this process and left
    the view label out of the condition; the option reproduces them (house, 160,000, 20/15: occupancy IoU 0.798
    against the experiment's 0.800, view 0.875 against 0.81)."""
    import torch

    from diffrep.priors import toyworld_prior
    from diffrep.priors.empirical import CameraQuery

    torch.set_num_threads(1)
    prior = toyworld_prior(n=n, camera_window=(w_az, w_el))

    def sizes() -> dict:
        asked = [len(rows) for cond, rows in prior._subsets.items() if isinstance(cond, CameraQuery)]
        return {"images_per_view": round(sum(asked) / len(asked), 1)}

    from diffrep.bench import nerf3d

    record(f"{prompt.split()[-1]}-toyworld{n}-camera{w_az:g}x{w_el:g}" + (f"-seed{seed}" if seed else "")
           + (f"-{method}" if method != "ddrep" else ""), prompt, prior, nerf3d.METHODS[method],
           lambda: {"prior": f"toyworld:{n}, --camera-window {w_az:g} {w_el:g}"} | sizes(), seed, method)


def write(name: str = "nerf3d-probe.json") -> None:
    from diffrep.bench import machine_info
    from diffrep.export import atomic_write_text

    from script_cli import merged

    path = root / "bench" / "results" / name
    rows = merged(path, lambda record: record["figures"]["rows"],
                  [json.loads(line) for line in (CACHE / "rows.jsonl").read_text().splitlines()], lambda r: r["tag"])
    poses_file = CACHE / "poses.jsonl"
    poses_rows = [json.loads(line) for line in poses_file.read_text().splitlines()] if poses_file.exists() else []
    table = [{"tag": r["tag"], "prompt": r["prompt"], "prior": r["prior"], "method": r["method"], "seed": r["seed"],
              "options": r["options"],
              "seconds": r["seconds"],
              "images_per_view": r.get("images_per_view"),
              "labels": r["aggregate"]["labels"], "occupancy_iou": r["aggregate"]["occupancy_iou"],
              "mask_iou": r["aggregate"]["mask_iou"], "psnr": r["aggregate"]["psnr"],
              "roughness_deg": r.get("roughness_deg")} for r in rows]
    record = {"suite": "nerf3d probe: DDRep houses and chairs with other options and priors",
              "command": __doc__.split("\n\n")[1].strip(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
              "machine": machine_info(), "figures": {"table": table, "rows": rows, "poses": poses_rows}}
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    from script_cli import MANY, cached, command, parse, script_main

    verb, a = command(__doc__, {"run": (2, 4), "targets": (1, 1), "poses": (1, 1), "camera": (4, 6), "kept": (1, MANY),
                                "write": (0, 1)})
    if verb == "run":
        script_main(run, a[0], parse(lambda: json.loads(a[1]), "OPTIONS_JSON"), *a[2:3], *parse(lambda: [int(s) for s in a[3:4]], "SEED"))
    elif verb == "targets":
        script_main(targets, a[0])
    elif verb == "poses":
        script_main(poses, a[0])
    elif verb == "camera":
        script_main(camera, a[0], *parse(lambda: (int(a[1]), float(a[2]), float(a[3]), *map(int, a[4:5])), "N, W_AZ, W_EL and SEED"),
                    *a[5:6])
    elif verb == "kept":
        kept(a)
    else:
        cached(CACHE / "rows.jsonl", "nerf3d_probe.py run")
        write(*a)
