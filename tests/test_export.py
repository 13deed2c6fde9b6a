"""Output folders: --overwrite never deletes what diffrep did not write (the data-loss fix)."""

from __future__ import annotations

import json
import os

import pytest
import torch

import diffrep
from diffrep.cli import main
from diffrep.errors import InputError
from diffrep.export import check_output_dir, write_folder

SMALL = ["--prior", "gmm", "--prompt", "red", "--n", "1", "--steps", "1"]


def user_files(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "thesis.tex").write_text("years of work")
    (folder / "data").mkdir()
    (folder / "data" / "a.csv").write_text("1,2")
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def listing(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_overwrite_dot_keeps_the_users_files(tmp_path, monkeypatch, capsys):
    before = user_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["sample", "--out", ".", "--overwrite", *SMALL]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "working folder" in err
    assert listing(tmp_path) == before


@pytest.mark.parametrize("where", ["parent", "grandparent"])
def test_overwrite_never_takes_a_parent_of_the_working_folder(tmp_path, monkeypatch, capsys, where):
    before = user_files(tmp_path)
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    (deep / "run.json").write_text(json.dumps({"outputs": []}))
    monkeypatch.chdir(deep)
    out = ".." if where == "parent" else "../.."
    assert main(["sample", "--out", out, "--overwrite", *SMALL]) == 2
    assert "working folder" in capsys.readouterr().err
    assert set(before) <= set(listing(tmp_path)) and (deep / "run.json").exists()


def test_overwrite_refuses_a_folder_diffrep_did_not_write(tmp_path, capsys):
    out = tmp_path / "mine"
    before = user_files(out)
    assert main(["sample", "--out", str(out), "--overwrite", *SMALL]) == 2
    assert "was not written by diffrep" in capsys.readouterr().err
    assert listing(out) == before


def test_overwrite_refuses_a_diffrep_folder_that_gained_a_users_file(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["sample", "--out", str(out), *SMALL]) == 0
    (out / "notes.txt").write_text("my notes on this run")
    assert main(["sample", "--out", str(out), "--overwrite", *SMALL]) == 2
    assert "'notes.txt', which diffrep did not write" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "my notes on this run"


def test_overwrite_replaces_diffreps_own_folder(tmp_path):
    out = tmp_path / "run"
    assert main(["sample", "--out", str(out), *SMALL]) == 0
    first = json.loads((out / "run.json").read_text())
    assert main(["sample", "--out", str(out), "--overwrite", *SMALL, "--seed", "3"]) == 0
    assert json.loads((out / "run.json").read_text())["seed"] == 3 != first["seed"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing left aside


def test_overwrite_replaces_a_toyworld_set(tmp_path):
    out = tmp_path / "world"
    assert main(["toyworld", "--out", str(out), "--n", "3"]) == 0
    assert main(["toyworld", "--out", str(out), "--n", "2", "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["00000.png", "00001.png", "metadata.json"]


def test_api_save_refuses_a_users_folder(tmp_path):
    out = tmp_path / "mine"
    before = user_files(out)
    result = diffrep.sample("gmm", n=1, steps=1)
    with pytest.raises(InputError, match="not written by diffrep"):
        result.save(out, overwrite=True)
    assert listing(out) == before


def test_folder_gaining_a_file_during_the_run_is_kept(tmp_path):
    out = tmp_path / "run"
    write_folder(out, {"run.json": {"outputs": ["a.json"]}, "a.json": {"x": 1}}, overwrite=False)
    check_output_dir(out, overwrite=True)  # checked before the work: fine
    (out / "late.txt").write_text("written while the run was going")  # the user saves a file meanwhile
    with pytest.raises(InputError, match="'late.txt'"):
        write_folder(out, {"run.json": {"outputs": []}}, overwrite=True)
    assert (out / "late.txt").exists()


def test_outputs_have_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        out = write_folder(tmp_path / "r", {"run.json": {"outputs": ["t.safetensors"]},
                                            "t.safetensors": {"x": __import__("torch").zeros(2)}}, overwrite=False)
    finally:
        os.umask(old)
    assert oct(out.stat().st_mode & 0o777) == oct(0o755)
    assert oct((out / "t.safetensors").stat().st_mode & 0o777) == oct(0o644)


@pytest.mark.parametrize("mode", ["I;16", "RGBA", "LA", "L", "P"])
def test_images_of_every_mode_load_as_the_right_grey(tmp_path, mode):
    """A 16-bit PNG is not read as white; transparency is composited over white."""
    import numpy as np
    from PIL import Image

    from diffrep.export import load_image

    path = tmp_path / f"{mode.replace(';', '')}.png"
    if mode == "I;16":
        Image.fromarray(np.full((4, 4), 32768, dtype=np.uint16)).save(path)  # mid-grey in 16 bits
        expected = 128 / 127.5 - 1
    elif mode in ("RGBA", "LA"):
        Image.new(mode, (4, 4), (0, 0, 0, 0) if mode == "RGBA" else (0, 0)).save(path)  # fully transparent
        expected = 1.0  # white behind it
    else:
        grey = Image.new("RGB", (4, 4), (128, 128, 128))
        (grey.convert("L") if mode == "L" else grey.convert("P", palette=Image.ADAPTIVE)).save(path)
        expected = 128 / 127.5 - 1
    image = load_image(path)
    assert image.shape == (1, 3, 4, 4)
    assert torch.allclose(image, torch.full_like(image, expected), atol=1 / 127.5), (mode, image.mean())


def test_nothing_in_the_package_unpickles():
    """Weights, checkpoints and results load through safetensors and JSON only: no torch.load, no pickle."""
    import re
    from pathlib import Path

    allowed: set[str] = set()  # justified exceptions go here, with the reason beside them
    src = Path(__file__).resolve().parent.parent / "src" / "diffrep"
    found = {f"{p.relative_to(src)}:{i}" for p in src.rglob("*.py")
             for i, line in enumerate(p.read_text().splitlines(), 1)
             if re.search(r"torch\.load\(|\bimport pickle\b|\bpickle\.|\bdill\b|joblib\.load", line)}
    assert found <= allowed, found
