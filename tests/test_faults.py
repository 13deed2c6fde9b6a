"""Faults: a run killed with SIGKILL resumes to the same result; a checkpoint cut short mid-write
falls back to the previous good one."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

import diffrep

RUNS = {  # short runs of each kind of diffrep run: (options, kill after step)
    "ddrep-siren": (dict(rep="siren", method="ddrep", steps=8, eta=0.5, rounds=2, width=16, depth=1), 5),
    "sds-siren": (dict(rep="siren", method="sds", iters=8, width=16, depth=1), 5),
}
KILLER = """
import os, signal, sys
import diffrep
options = {options}
def kill(d):
    if d["step"] == {step}:
        os.kill(os.getpid(), signal.SIGKILL)
diffrep.sample("gmm", prompt="red", n=2, seed=5, checkpoint=sys.argv[1], checkpoint_every=1, callback=kill, **options)
"""


@pytest.mark.parametrize("name", RUNS)
def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path, name):
    options, step = RUNS[name]
    full = diffrep.sample("gmm", prompt="red", n=2, seed=5, **options)
    ckpt = tmp_path / "c"
    proc = subprocess.run([sys.executable, "-c", KILLER.format(options=repr(options), step=step), str(ckpt)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr  # killed, not finished
    assert json.loads((ckpt / "state.json").read_text())["step"] == step
    resumed = diffrep.sample("gmm", prompt="red", n=2, seed=5, checkpoint=ckpt, checkpoint_every=1, resume=True,
                             **options)
    assert torch.equal(full.images, resumed.images)
    assert torch.equal(torch.cat([p.flatten() for p in full.rep.parameters()]),
                       torch.cat([p.flatten() for p in resumed.rep.parameters()]))


def interrupted(ckpt, at: int, options: dict) -> None:
    """A run checkpointing every step, interrupted after step ``at``."""
    def stop(d):
        if d["step"] == at:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        diffrep.sample("gmm", prompt="red", n=2, seed=5, checkpoint=ckpt, checkpoint_every=1, callback=stop, **options)


def test_a_checkpoint_cut_short_falls_back_to_the_previous_one(tmp_path):
    options = RUNS["ddrep-siren"][0]
    full = diffrep.sample("gmm", prompt="red", n=2, seed=5, **options)
    ckpt = tmp_path / "c"
    interrupted(ckpt, 5, options)
    data = (ckpt / "state.safetensors").read_bytes()
    (ckpt / "state.safetensors").write_bytes(data[: len(data) // 2])  # the last write was cut short
    steps = []
    resumed = diffrep.sample("gmm", prompt="red", n=2, seed=5, checkpoint=ckpt, checkpoint_every=1, resume=True,
                             callback=lambda d: steps.append(d["step"]), **options)
    assert steps[0] == 5  # resumed after step 4, from state.prev.safetensors
    assert torch.equal(full.images, resumed.images)


def test_both_checkpoints_corrupt_is_one_line(tmp_path):
    options = RUNS["ddrep-siren"][0]
    ckpt = tmp_path / "c"
    interrupted(ckpt, 3, options)
    for name in ("state.safetensors", "state.prev.safetensors"):
        (ckpt / name).write_bytes(b"garbage")
    with pytest.raises(diffrep.InputError, match="cannot be resumed") as info:
        diffrep.sample("gmm", prompt="red", n=2, seed=5, checkpoint=ckpt, checkpoint_every=1, resume=True, **options)
    assert "\n" not in str(info.value)


def test_a_full_disk_is_one_line_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    import errno

    import diffrep.checkpoint as checkpoint
    from diffrep.errors import RunError

    real, calls = checkpoint.atomic_save, []

    def fills_up(*args, **kwargs):
        calls.append(1)
        if len(calls) >= 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(checkpoint, "atomic_save", fills_up)
    ckpt = tmp_path / "c"
    with pytest.raises(RunError, match=r"cannot write the checkpoint of step 3 .*No space left on device.*last good "
                                       r"checkpoint is kept") as info:
        diffrep.sample("gmm", prompt="red", n=2, seed=5, checkpoint=ckpt, checkpoint_every=1, **RUNS["ddrep-siren"][0])
    assert "\n" not in str(info.value)
    assert json.loads((ckpt / "state.json").read_text())["step"] == 2
    monkeypatch.setattr(checkpoint, "atomic_save", real)
    full = diffrep.sample("gmm", prompt="red", n=2, seed=5, **RUNS["ddrep-siren"][0])
    resumed = diffrep.sample("gmm", prompt="red", n=2, seed=5, checkpoint=ckpt, checkpoint_every=1, resume=True,
                             **RUNS["ddrep-siren"][0])
    assert torch.equal(full.images, resumed.images)


def test_results_that_cannot_be_written_are_one_line_and_leave_nothing(tmp_path, monkeypatch):
    import errno

    import diffrep.export as export
    from diffrep.errors import RunError

    result = diffrep.sample("gmm", prompt="red", n=1, steps=2)

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export, "_write_one", full_disk)
    with pytest.raises(RunError, match="cannot write the results into .*No space left"):
        result.save(tmp_path / "r")
    assert list(tmp_path.iterdir()) == []


def test_from_the_cli_a_result_that_cannot_be_written_keeps_the_checkpoint(tmp_path, monkeypatch, capsys):
    import errno

    import diffrep.export as export
    from diffrep.cli import main

    argv = ["sample", "--rep", "siren", "--method", "ddrep", "--prior", "gmm", "--prompt", "red", "--n", "1",
            "--steps", "10", "--siren.width", "16", "--out", str(tmp_path / "r")]
    real = export._write_one

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export, "_write_one", full_disk)
    assert main(argv) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("diffrep:")]  # not progress
    assert len(err) == 1 and "last checkpoint is kept" in err[0], err
    assert (tmp_path / "r.checkpoint" / "state.safetensors").is_file() and not (tmp_path / "r").exists()
    monkeypatch.setattr(export, "_write_one", real)
    assert main([*argv, "--resume"]) == 0  # the run goes on from its checkpoint
    assert (tmp_path / "r" / "run.json").is_file() and not (tmp_path / "r.checkpoint").exists()


def test_a_preview_that_cannot_be_written_stops_the_run_in_one_line_and_resume_finishes_it(tmp_path, monkeypatch, capsys):
    import errno

    from PIL import Image

    from diffrep.cli import main

    argv = ["sample", "--rep", "siren", "--method", "ddrep", "--prior", "gmm", "--prompt", "red", "--n", "1",
            "--steps", "10", "--siren.width", "16", "--out", str(tmp_path / "r")]
    real = Image.Image.save

    def full_disk(self, path, *args, **kwargs):
        if "step-000004" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, path, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", full_disk)
    assert main(argv) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("diffrep:")]
    assert len(err) == 1 and "cannot write the preview" in err[0] and "No space left" in err[0], err
    assert not (tmp_path / "r").exists() and (tmp_path / "r.checkpoint" / "state.safetensors").is_file()
    monkeypatch.setattr(Image.Image, "save", real)
    assert main([*argv, "--resume"]) == 0
    steps = sorted(int(p.stem[8:]) for p in (tmp_path / "r").glob("preview-*.png"))
    assert steps == [1, 2, 3, 5, 6, 7, 8, 9, 10]  # step 4 was checkpointed before its preview failed: resumed after it
