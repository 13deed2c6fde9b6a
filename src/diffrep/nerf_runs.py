"""A NeRF result scored against the toy world and re-exported: what ``diffrep evaluate`` and ``diffrep export`` run,
for Python (``diffrep.evaluate``, ``diffrep.export_run``).

>>> result = diffrep.sample("toyworld", rep="nerf", method="ddrep", prompt="a yellow duck")
>>> diffrep.evaluate(result)["aggregate"]["occupancy_iou"]         # or a saved folder: diffrep.evaluate("outputs/duck")
>>> diffrep.export_run("outputs/duck", ("ply",), resolution=192)   # a finer mesh from the saved weights
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from diffrep.errors import InputError


def nerf_run(run: Any) -> tuple[Any, dict[str, Any]]:
    """The NeRF of ``run`` (a ``Result`` of ``diffrep.sample(rep="nerf")`` or a folder one was saved in) and its
    run config (prompt, rep options ...)."""
    from diffrep.api import Result, load_run

    if isinstance(run, Result):
        config = run.info.get("config", {})
        if run.rep is None or config.get("rep") != "nerf":
            raise InputError(f"run is a result of rep {config.get('rep')!r}; this needs a 'nerf' result "
                             "(diffrep.sample(rep='nerf', ...)) or the folder one was saved in")
        return run.rep, config
    if not isinstance(run, (str, Path)):
        raise InputError(f"run must be a Result of diffrep.sample(rep='nerf') or a result folder, got {type(run).__name__}")
    rep, record = load_run(run, rep="nerf")
    return rep, record["config"]


def _check_folder(run: Any) -> None:
    """A result folder's run.json names a NeRF run (torch-free; a ``Result`` passes)."""
    from diffrep.export import run_record

    if isinstance(run, (str, Path)):
        run_record(run, rep="nerf")


def evaluate(run: Any, *, reference: Any = None, reference_n: int = 10_000, seed: int = 0, ground_truth: Any = None,
             progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Score each NeRF instance of ``run`` against the toy world's ground truth for its prompt (docs/evaluate3d.md):
    labels of renders at held-out cameras, occupancy and mask IoU, PSNR, Janus rate, 3-D diversity
    (``evaluate3d.evaluate_instances``' dict, which ``format_table`` prints and ``diffrep evaluate`` saves as eval.json).

    run: a ``Result`` of ``diffrep.sample(rep="nerf")`` on a toy-world prompt, or a folder one was saved in.
    reference: the labeller's images (anything ``evaluate3d.as_reference`` takes); default the toy world's first
    ``reference_n`` at the NeRF's resolution, or at 32² for a NeRF of another prior's (generated once, then cached;
    ``progress(done, total)`` hears that). seed: held-out cameras and
    ground-truth instances. ground_truth: an ``evaluate3d.GroundTruth`` to reuse between calls."""
    from diffrep.checks import check_positive_int

    _check_folder(run)
    check_positive_int("reference_n", reference_n)  # both before torch is imported
    from diffrep.evaluate3d import evaluate_instances, load_reference, prompt_labels
    from diffrep.priors.configs import TOYWORLD_RESOLUTIONS
    from diffrep.reps.nerf import nerf_objects

    rep, config = nerf_run(run)
    labels = prompt_labels(config.get("prompt") or "")
    if reference is None:  # at the NeRF's own resolution where the toy world has one (a NeRF renders at any)
        res = rep.image_shape[-1] if rep.image_shape[-1] in TOYWORLD_RESOLUTIONS else TOYWORLD_RESOLUTIONS[0]
        reference = load_reference(reference_n, res, progress=progress)
    return evaluate_instances(nerf_objects(rep), labels, reference, seed=seed, ground_truth=ground_truth)


def export_run(run: str | Path, formats: str | Sequence[str] = ("glb", "obj", "ply"), *, resolution: int = 128,
               size: int | None = None, frames: int = 36) -> dict[str, Path]:
    """Re-export a saved NeRF result from its weights into its folder, each file atomically and listed in its
    run.json: meshes (``mesh-i.glb``, ``.obj``, ``.ply``; marching cubes on a ``resolution``³ grid over the scene box),
    turntables (``gif``, ``mp4``: ``frames`` frames, ``size`` pixels a side) and the geometry grid (``geometry``).
    Returns the files written. A ``Result`` in memory: ``result.save(DIR)`` writes them (at the defaults) first."""
    from diffrep.checks import check_int
    from diffrep.export import add_to_folder

    if not isinstance(run, (str, Path)):
        raise InputError(f"export_run writes into a saved result folder; got a {type(run).__name__}: save it first "
                         "(result.save(DIR) writes its meshes and turntables too), then export that folder")
    _check_folder(run)  # the folder and the numbers, before torch is imported
    check_int("resolution", resolution, 8)
    check_int("frames", frames)
    if size is not None:
        check_int("size", size, 8)
    from diffrep.reps.nerf import nerf_outputs

    rep, _ = nerf_run(run)
    files = nerf_outputs(rep, formats=tuple(dict.fromkeys((formats,) if isinstance(formats, str) else formats)),
                         frames=frames, size=size, mesh_resolution=resolution)
    add_to_folder(run, files)
    return {name: Path(run) / name for name in sorted(files)}
