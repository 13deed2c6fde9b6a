"""The command line: a tiny end-to-end run, and every bad input as one line with exit code 2."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from catalogue import PARSE_ERRORS, SMALL, bad_cases, write_png
from PIL import Image
from safetensors.torch import load_file

import diffrep
from diffrep.cli import main


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_sample_end_to_end_gmm(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, _ = run(["sample", "--prompt", "blue", "--out", str(out), *SMALL], capsys)
    assert code == 0 and str(out / "samples.png") in stdout
    assert Image.open(out / "samples.png").size[0] > 32
    images = load_file(out / "samples.safetensors")["images"]
    assert images.shape == (2, 3, 16, 16)
    assert images[:, 2].mean() > 0.5 and images[:, 0].mean() < -0.5  # blue
    record = json.loads((out / "run.json").read_text())
    assert record["seed"] == 0 and record["prior_evaluations"] == 2 * 5 * 2
    assert record["config"]["prompt"] == "blue" and "torch" in record["versions"]
    assert sorted(p.name for p in out.iterdir()) == ["run.json", "samples.png", "samples.safetensors"]


def test_sample_end_to_end_toyworld_subprocess(tmp_path):
    """The real entry point with the embedded default prior (a small data set)."""
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "diffrep.cli", "sample", "--toyworld-n", "300", "--n", "2", "--steps", "10",
           "--prompt", "a red mug", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    images = load_file(out / "samples.safetensors")["images"]
    assert images.shape == (2, 3, 32, 32)
    assert images[:, 0].mean() > images[:, 2].mean()  # red dominates blue somewhere on the object


def test_same_seed_same_result(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert run(["sample", "--prompt", "red", "--eta", "1", "--out", str(out), *SMALL], capsys)[0] == 0
    assert torch.equal(load_file(a / "samples.safetensors")["images"], load_file(b / "samples.safetensors")["images"])


def test_run_json_records_the_command_that_reproduces_the_run(tmp_path, capsys):
    import shlex

    out = tmp_path / "a run"  # a space: the command is shell-quoted
    argv = ["sample", "--prompt", "red", "--method", "ddpm", "--out", str(out), *SMALL]
    assert main(argv) == 0
    command = json.loads((out / "run.json").read_text())["command"]
    assert shlex.split(command) == ["diffrep", *argv]
    again = shlex.split(command.replace(shlex.quote(str(out)), shlex.quote(str(tmp_path / "again"))))
    assert again[0] == "diffrep" and main(again[1:]) == 0
    assert (out / "samples.safetensors").read_bytes() == (tmp_path / "again" / "samples.safetensors").read_bytes()
    capsys.readouterr()


def test_sdedit_and_inpaint_end_to_end(tmp_path, capsys):
    img = write_png(tmp_path / "in.png", (20, 20))
    mask = Image.new("L", (16, 16), 0)
    mask.paste(255, (0, 0, 8, 16))
    mask.save(tmp_path / "mask.png")
    code, _, _ = run(["sdedit", "--image", str(img), "--prompt", "green", "--strength", "0.9",
                      "--out", str(tmp_path / "e"), *SMALL], capsys)
    assert code == 0 and load_file(tmp_path / "e" / "samples.safetensors")["images"].shape == (2, 3, 16, 16)
    code, _, _ = run(["inpaint", "--image", str(img), "--mask", str(tmp_path / "mask.png"), "--rounds", "2",
                      "--out", str(tmp_path / "i"), *SMALL], capsys)
    images = load_file(tmp_path / "i" / "samples.safetensors")["images"]
    assert code == 0
    torch.testing.assert_close(images[..., :8], torch.tensor([-1.0, -1.0, 1.0]).view(1, 3, 1, 1).expand(2, 3, 16, 8))


def test_bad_input_is_one_line_exit_2_no_output(tmp_path, capsys):
    for argv, message in bad_cases(tmp_path):
        code, stdout, stderr = run(argv, capsys)
        assert code == 2, (argv, stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("diffrep: error: "), (argv, stderr)
        assert message in lines[0], (argv, lines[0])
        assert "Traceback" not in stderr and stdout == ""
        assert not (tmp_path / "o").exists(), argv


def test_a_rep_without_method_takes_ddrep_on_the_command_line_and_in_python(tmp_path, capsys):
    """``diffrep sample --rep siren`` with no --method samples with DDRep (pixels keep DDIM): the run says so in its
    run.json, and ``diffrep.sample(rep="siren")`` gives the same images."""
    out = tmp_path / "r"
    argv = ["sample", "--rep", "siren", "--prompt", "red", "--out", str(out), "--prior", "gmm", "--n", "2",
            "--steps", "3", "--siren.width", "16"]
    code, _, stderr = run(argv, capsys)
    assert code == 0, stderr
    assert json.loads((out / "run.json").read_text())["config"]["method"] == "ddrep"
    result = diffrep.sample("gmm", rep="siren", prompt="red", n=2, steps=3, width=16)
    assert result.info["config"]["method"] == "ddrep"
    assert torch.equal(result.images, load_file(out / "samples.safetensors")["images"])


@pytest.mark.parametrize("rep,method", [("siren", "ddrep"), ("panorama", "ddrep"), ("siren", "sds"), ("siren", "sjc"),
                                        ("pixels", "ddrep")])
def test_diffrep_methods_end_to_end(tmp_path, capsys, rep, method):
    out = tmp_path / "r"
    argv = ["sample", "--rep", rep, "--method", method, "--prompt", "red", "--out", str(out), "--prior", "gmm",
            "--n", "2", "--steps", "4", f"--{rep}.{'init-std' if rep == 'pixels' else 'width'}",
            "0.1" if rep == "pixels" else "16"] + (["--optim.iters", "5"] if method in ("sds", "sjc") else [])
    code, stdout, stderr = run(argv, capsys)
    assert code == 0, stderr
    names = sorted(p.name for p in out.iterdir())
    assert {"rep.safetensors", "run.json", "samples.png", "samples.safetensors"} <= set(names)
    weights = load_file(out / "rep.safetensors")
    assert weights and all(torch.isfinite(v).all() for v in weights.values())
    images = load_file(out / "samples.safetensors")["images"]
    record = json.loads((out / "run.json").read_text())
    assert record["config"]["method"] == method and record["prior_evaluations"] > 0
    if rep == "panorama":
        assert images.shape == (2, 3, 16, 96) and "views.png" in names
    else:
        assert images.shape == (2, 3, 16, 16)


def test_sigterm_unwinds_like_ctrl_c_releasing_the_lock_and_naming_the_checkpoint(tmp_path, capsys, monkeypatch):
    """A scheduler's SIGTERM mid-run: exit 143, one last line naming the kept checkpoint, no OUT.lock left behind
    (the lock's finally runs), and the process's own SIGTERM handler back once main returns."""
    import signal

    import diffrep.cli as cli

    real_call, before = cli.Progress.__call__, signal.getsignal(signal.SIGTERM)

    def terminate_at_3(self, d):
        if d["step"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        real_call(self, d)

    monkeypatch.setattr(cli.Progress, "__call__", terminate_at_3)
    out = tmp_path / "r"
    code, _, stderr = run(["sample", "--rep", "siren", "--method", "ddrep", "--prompt", "red", "--prior", "gmm",
                           "--n", "1", "--steps", "6", "--siren.width", "16", "--checkpoint-every", "2",
                           "--out", str(out)], capsys)
    assert code == 143 and not out.exists() and not (tmp_path / "r.lock").exists()
    assert stderr.strip().splitlines()[-1] == (f"diffrep: terminated; the checkpoint of step 2 is kept in "
                                               f"{tmp_path / 'r.checkpoint'}/; the same command with --resume "
                                               "continues from it")
    assert signal.getsignal(signal.SIGTERM) is before


def test_interrupted_sample_resumes_from_out_checkpoint(tmp_path, capsys, monkeypatch):
    import diffrep.cli as cli

    argv = ["sample", "--rep", "siren", "--method", "ddrep", "--prompt", "red", "--prior", "gmm", "--n", "2",
            "--steps", "6", "--eta", "0.5", "--siren.width", "16", "--checkpoint-every", "2"]
    assert run([*argv, "--out", str(tmp_path / "clean")], capsys)[0] == 0
    assert not (tmp_path / "clean.checkpoint").exists()
    out, real_call = tmp_path / "r", cli.Progress.__call__

    def interrupt_at_5(self, d):
        if d["step"] == 5:
            raise KeyboardInterrupt
        real_call(self, d)

    monkeypatch.setattr(cli.Progress, "__call__", interrupt_at_5)
    code, _, stderr = run([*argv, "--out", str(out)], capsys)
    assert code == 130 and not out.exists()
    kept = tmp_path / "r.checkpoint"  # the last line says what is kept and how to go on
    assert stderr.strip().splitlines()[-1] == (f"diffrep: interrupted; the checkpoint of step 4 is kept in {kept}/; "
                                               "the same command with --resume continues from it")
    assert json.loads((tmp_path / "r.checkpoint" / "state.json").read_text())["step"] == 4
    steps = [f"step-{i:06d}.png" for i in range(1, 7)]  # previews: a tenth of 6 steps is every step
    assert sorted(p.name for p in (tmp_path / "r.previews").iterdir()) == steps[:4]  # written as the run went
    monkeypatch.setattr(cli.Progress, "__call__", real_call)
    code, _, stderr = run([*argv, "--out", str(out), "--resume"], capsys)
    assert code == 0, stderr
    assert torch.equal(load_file(out / "samples.safetensors")["images"],
                       load_file(tmp_path / "clean" / "samples.safetensors")["images"])
    assert not (tmp_path / "r.checkpoint").exists() and not (tmp_path / "r.previews").exists()
    previews = [f"preview-{s[5:]}" for s in steps]  # moved into the result, listed in run.json
    assert previews == sorted(p.name for p in out.glob("preview-*.png"))
    assert set(previews) <= set(json.loads((out / "run.json").read_text())["outputs"])
    for name in previews:  # the resumed run's previews are the uninterrupted run's, bit for bit
        assert (out / name).read_bytes() == (tmp_path / "clean" / name).read_bytes(), name
    stale = tmp_path / "s.previews"  # an unfinished run's previews are cleared by a fresh run, a user's file kept
    stale.mkdir()
    (stale / "step-000099.png").write_bytes(b"old")
    (stale / "notes.txt").write_text("mine")
    assert run([*argv, "--preview-every", "3", "--out", str(tmp_path / "s")], capsys)[0] == 0
    assert sorted(p.name for p in (tmp_path / "s").glob("preview-*")) == ["preview-000003.png", "preview-000006.png"]
    assert [p.name for p in stale.iterdir()] == ["notes.txt"]


def test_preview_every_is_checked_before_the_work(tmp_path, capsys):
    base = ["sample", "--prior", "gmm", "--prompt", "red", "--n", "1", "--out", str(tmp_path / "o")]
    for extra, message in ((["--rep", "siren", "--method", "sds", "--preview-every", "-1"],
                            "preview_every=-1 is not allowed"),
                           (["--method", "ddim", "--preview-every", "2"],
                            "previews are drawn by the diffrep methods, not by 'ddim', which runs in seconds")):
        code, _, stderr = run([*base, *extra], capsys)
        assert code == 2 and message in stderr and stderr.count("\n") == 1, stderr
    assert list(tmp_path.iterdir()) == []
    assert run([*base, "--rep", "siren", "--method", "sds", "--optim.iters", "4", "--siren.width", "8",
                "--preview-every", "0"], capsys)[0] == 0
    assert not list((tmp_path / "o").glob("preview-*"))


def test_parse_errors_are_one_line_exit_2(capsys):
    """tyro's own parse errors (wrong types, unknown or missing options) are folded into one line."""
    for argv, message in PARSE_ERRORS:
        code, stdout, stderr = run(argv, capsys)
        lines = stderr.strip().splitlines()
        assert code == 2 and stdout == "" and len(lines) == 1, (argv, stderr)
        assert lines[0].startswith("diffrep: error: ") and message in lines[0], lines[0]
        assert "╭" not in stderr and "Traceback" not in stderr


def test_argument_errors_import_no_torch(tmp_path):
    """A typo or a bad output location is refused before torch (or numpy) is imported: building the parser
    once imported the tables' implementations, and torch with them, and took 1.5 s before the error."""
    from catalogue import FIRST_ERRORS, PRIOR_OPTIONS_BEFORE_TORCH, VALUES_BEFORE_TORCH

    argvs = [argv for cases in FIRST_ERRORS.values() for argv in cases.values()] + VALUES_BEFORE_TORCH
    argvs += PRIOR_OPTIONS_BEFORE_TORCH
    code = ("import sys, diffrep.cli\n"
            f"codes = [diffrep.cli.main(argv) for argv in {argvs!r}]\n"
            "heavy = sorted({'torch', 'numpy'} & set(sys.modules))\n"
            "assert codes == [2] * len(codes) and not heavy, (codes, heavy)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    errors = done.stderr.strip().splitlines()
    assert len(errors) == len(argvs) and all(e.startswith("diffrep: error: ") for e in errors), errors
    assert list(tmp_path.iterdir()) == []


def test_help_is_complete(capsys):
    for cmd in ([], ["sample"], ["sdedit"], ["inpaint"], ["toyworld"], ["bench"]):
        with pytest.raises(SystemExit) as e:
            main([*cmd, "--help"])
        assert e.value.code == 0
        text = capsys.readouterr().out
        assert "usage: diffrep" in text


def test_help_lists_every_entry_of_the_tables(capsys):
    """The option lists in --help come from the tables, so none lags behind an entry added to one."""
    from diffrep.bench import SUITES
    from diffrep.methods import METHODS
    from diffrep.priors import PRIORS
    from diffrep.reps import REPS

    def option_help(argv, option, next_option):
        with pytest.raises(SystemExit):
            main([*argv, "--help"])
        text = " ".join(capsys.readouterr().out.replace("│", " ").split())
        return text.split(option, 1)[1].split(next_option, 1)[0]

    import importlib
    import re

    words = lambda text: set(re.findall(r"[\w:-]+", text))
    assert set(REPS) <= words(option_help(["sample"], "--rep STR", "--method"))
    assert set(METHODS) <= words(option_help(["sample"], "--method STR", "--n INT"))
    steps = option_help(["sample"], "--steps INT", "--guidance-scale")
    assert {m for m, e in METHODS.items() if "steps" in e.uses} <= words(steps)
    assert "sds" not in words(steps)
    assert {f"{p}:PATH" if e.argument else p for p, e in PRIORS.items()} <= words(
        option_help(["sample"], "--prior STR", "--prior-path"))
    assert set(SUITES) <= words(option_help(["bench"], "STR Suite:", "(required)"))
    sections = option_help(["bench"], "--section {None}|STR", "--shard")  # written out: the suites import torch
    for name, module in SUITES.items():
        assert set(getattr(importlib.import_module(module), "SECTIONS", ())) <= words(sections), name


def test_every_readme_command_line_parses():
    """The command line stays as users know it: every `diffrep ...` example in the README parses."""
    import re
    import shlex

    from diffrep.cli import parse

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    shell = "\n".join(re.findall(r"```sh\n(.*?)```", readme, flags=re.S))
    lines = [line.split(" #")[0].strip() for line in shell.splitlines() if line.startswith("diffrep ")]
    assert len(lines) >= 10
    for line in lines:
        argv = shlex.split(line)[1:]
        if "--help" in argv:
            continue
        assert parse(argv) is not None, line


def test_progress_off_a_terminal_is_plain_lines(tmp_path, capsys):
    """A run logged to a file or a pipe still says how far it is: a line every 5 % and at the end."""
    out = tmp_path / "r"
    code, _, stderr = run(["sample", "--rep", "siren", "--method", "sds", "--optim.iters", "40", "--siren.width", "8",
                           "--prior", "gmm", "--prompt", "red", "--n", "1", "--out", str(out)], capsys)
    assert code == 0
    lines = [line for line in stderr.splitlines() if line.startswith("sds siren: ")]
    assert 15 <= len(lines) <= 21 and "40/40 (100 %)" in lines[-1] and "ETA 0 s" in lines[-1], lines
    assert all("elapsed" in line and ", |g| " in line for line in lines)  # SDS: its gradient's norm
    code, _, stderr = run(["sample", "--rep", "siren", "--method", "ddrep", "--steps", "4", "--siren.width", "8",
                           "--prior", "gmm", "--prompt", "red", "--n", "1", "--out", str(tmp_path / "d")], capsys)
    lines = [line for line in stderr.splitlines() if line.startswith("ddrep siren: ")]
    assert code == 0 and len(lines) == 4 and all(", loss " in line for line in lines), lines  # DDRep: its fit


def test_a_second_run_on_the_same_folder_is_refused(tmp_path, capsys):
    import os

    out = tmp_path / "r"
    lock = tmp_path / "r.lock"
    lock.write_text(f"{os.getpid()}\n")  # a live process holds it
    code, _, stderr = run(["sample", "--out", str(out), "--prompt", "red", *SMALL], capsys)
    assert code == 2 and "another diffrep run (pid" in stderr and not out.exists()
    (tmp_path / "r.previews").mkdir()  # the running one's previews: a refused second run leaves them alone
    (tmp_path / "r.previews" / "step-000002.png").write_bytes(b"png")
    code, _, stderr = run(["sample", "--rep", "siren", "--method", "sds", "--siren.width", "8", "--out", str(out),
                           "--prompt", "red", *SMALL], capsys)
    assert code == 2 and "another diffrep run (pid" in stderr
    assert (tmp_path / "r.previews" / "step-000002.png").read_bytes() == b"png"
    shutil.rmtree(tmp_path / "r.previews")
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock.write_text(done.stdout)  # a process that is gone: its lock is stale
    code, _, stderr = run(["sample", "--out", str(out), "--prompt", "red", *SMALL], capsys)
    assert code == 0, stderr
    assert not lock.exists()


def test_prior_options_reach_the_config_fields():
    """Every PriorArgs option maps to a field of some prior's config; a switch left off or an option left unset is
    not given (the prior's default applies), so a toy-world run is untouched by the sd/if options."""
    from dataclasses import fields

    from diffrep.cli import PRIOR_FIELDS, PriorArgs, prior_options
    from diffrep.priors import PRIORS

    assert set(PRIOR_FIELDS) == {f.name for f in fields(PriorArgs)} - {"prior"}
    assert all(any(v in {f.name for f in fields(e.config)} for e in PRIORS.values()) for v in PRIOR_FIELDS.values())
    assert prior_options(PriorArgs()) == {}
    a = PriorArgs(prior="sd:/x", device="cuda", dtype="fp16", attention_slicing=True, cpu_offload=True, rgb=True,
                  rgb_res=32)
    assert prior_options(a) == {"device": "cuda", "dtype": "fp16", "attention_slicing": True, "cpu_offload": True,
                                "rgb": True, "rgb_res": 32}


def test_a_reader_that_stops_early_gets_no_traceback():
    """`diffrep sample --rep nerf --method ddrep --help | head -2`: the pipe closes while the help (26 kB) is written;
    the command stops quietly with a shell's SIGPIPE status. The pipe is shrunk to one page, so the help cannot fit
    in it before it closes."""
    import fcntl

    read, write = os.pipe()
    fcntl.fcntl(write, fcntl.F_SETPIPE_SZ, 4096)
    proc = subprocess.Popen([sys.executable, "-m", "diffrep.cli", "sample", "--rep", "nerf", "--method", "ddrep", "--help"],
                            stdout=write, stderr=subprocess.PIPE)
    os.close(write)
    with os.fdopen(read, "rb") as out:
        assert out.readline().startswith(b"usage: diffrep sample")
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141 and "Traceback" not in err, err
