"""Property-based fuzzing of the edges: the CLI's argument space and the API's arguments.

Every generated input must end in one of two ways: refused with one ``InputError`` line (exit 2 on the
command line, no traceback, nothing written), or accepted, which the test sees as ``Accepted`` raised
where the work would start (the prior's loading or the run is replaced by it). Any other exception is
a bug. ``make test`` runs a few hundred inputs; ``make test-fuzz`` (``DIFFREP_FUZZ=1``) several
thousand."""

from __future__ import annotations

import os
import string

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import diffrep
import diffrep.api as api
import diffrep.cli as cli
from diffrep.errors import InputError
from diffrep.methods import METHODS
from diffrep.reps import REPS

EXAMPLES = 3000 if os.environ.get("DIFFREP_FUZZ") else 200
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("DIFFREP_FUZZ"),
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


class Accepted(Exception):
    """Raised where the work would start: the input passed every check."""


def accept(*args, **kwargs):
    raise Accepted


# ---- values ----------------------------------------------------------------------------------

NUMBERS = st.one_of(st.integers(-10**20, 10**20), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0, 1, -1, 2**63, 2**64, 0.5, 1e-300]))
TEXT = st.one_of(st.text(max_size=12), st.sampled_from(["", "a yellow duck", "red", "一个红色的杯子 🍵", "nan",
                                                        "none", "cube", "../..", "/proc/x"]))
VALUE = st.one_of(NUMBERS.map(str), TEXT)


def group_flags() -> list[str]:
    """Every --GROUP.FIELD the tables know, for any method and rep."""
    from dataclasses import fields, is_dataclass

    flags = []
    for name, entry in [*METHODS.items(), *REPS.items()]:
        for f in fields(entry.config):
            if is_dataclass(f.default):
                flags += [f"--{f.name}.{g.name.replace('_', '-')}" for g in fields(f.default)]
            else:
                flags.append(f"--{name}.{f.name.replace('_', '-')}")
    return flags


PLAIN = ["--n", "--seed", "--steps", "--guidance-scale", "--eta", "--prompt", "--prior", "--prior-path",
         "--toyworld-n", "--res", "--rep", "--method", "--checkpoint-every", "--strength", "--rounds", "--format",
         "--resolution", "--reference-n", "--quick", "--results"]
FLAGS = ["--overwrite", "--resume", "--no-overwrite", "--help-not", "--nosuch"]
COMMANDS = ["sample", "sdedit", "inpaint", "toyworld", "export", "evaluate", "bench", "nosuch"]


@st.composite
def argv(draw) -> list[str]:
    command = draw(st.sampled_from(COMMANDS))
    args = [command]
    options = draw(st.lists(st.tuples(st.sampled_from(PLAIN + group_flags()), VALUE), max_size=6))
    for flag, value in options:
        args += [flag, value]
    args += draw(st.lists(st.sampled_from(FLAGS), max_size=2))
    if draw(st.booleans()):
        args += ["--rep", draw(st.sampled_from([*REPS, "voxels"])), "--method", draw(st.sampled_from([*METHODS, "vsd"]))]
    return args


@pytest.fixture
def no_work(monkeypatch, tmp_path):
    """Replace where every command's work starts by ``accept``; run in an empty folder."""
    monkeypatch.setattr(cli, "load_prior", accept)
    monkeypatch.setattr(cli, "run_toyworld", accept)
    monkeypatch.setattr(cli, "run_bench", accept)
    monkeypatch.setattr("diffrep.api.load_run", accept)
    monkeypatch.setitem(cli.RUNNERS, cli.ToyworldArgs, accept)
    monkeypatch.setitem(cli.RUNNERS, cli.BenchArgs, accept)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@FUZZ
@given(args=argv(), out=st.sampled_from(["o", ".", "..", "/proc/o", "o/../o", ""]))
def test_the_command_line_refuses_in_one_line_or_reaches_the_work(no_work, capsys, args, out):
    if args[0] in ("sample", "sdedit", "inpaint", "toyworld"):
        args = [*args, "--out", out]
    before = sorted(p.name for p in no_work.iterdir())
    try:
        code = cli.main(args)
    except Accepted:
        return
    except SystemExit as e:  # --help and friends print and exit 0
        assert e.code == 0, args
        return
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, (args, err)
    assert len(err) == 1 and err[0].startswith("diffrep: error: "), (args, err)
    assert sorted(p.name for p in no_work.iterdir()) == before, args  # nothing written


KWARGS = st.dictionaries(st.sampled_from(["n", "seed", "steps", "guidance_scale", "eta", "prompt", "rep", "method",
                                          "checkpoint_every", "resume", "width", "iters", "solver", "rounds", "tanh",
                                          "grid", "resolution", "lr", "t_range", "nosuch"]),
                         st.one_of(NUMBERS, TEXT, st.booleans(), st.none(), st.tuples(NUMBERS, NUMBERS)), max_size=5)


@FUZZ
@given(kwargs=KWARGS)
def test_sample_refuses_with_an_input_error_or_reaches_the_work(monkeypatch, kwargs):
    monkeypatch.setattr(api, "resolve_prior", accept)
    try:
        diffrep.sample("gmm", **kwargs)
    except Accepted:
        return
    except InputError as e:
        assert "\n" not in str(e), kwargs


IMAGES = st.one_of(st.none(), TEXT, NUMBERS, st.sampled_from([
    torch.zeros(3, 16, 16), torch.zeros(1, 3, 16, 16), torch.zeros(2, 3, 16, 16), torch.zeros(3, 8, 8),
    torch.zeros(16, 16), torch.full((3, 16, 16), float("nan")), torch.zeros(3, 16, 16, dtype=torch.uint8),
    torch.zeros(3, 16, 16, dtype=torch.int64), torch.ones(16, 16), torch.full((16, 16), 2.0)]))


@FUZZ
@given(image=IMAGES, mask=IMAGES, kwargs=st.dictionaries(
    st.sampled_from(["n", "seed", "steps", "guidance_scale", "eta", "strength", "rounds", "prompt"]),
    st.one_of(NUMBERS, TEXT, st.none()), max_size=4), inpaint=st.booleans())
def test_sdedit_and_inpaint_refuse_with_an_input_error_or_reach_the_work(monkeypatch, image, mask, kwargs, inpaint):
    monkeypatch.setattr(api, "_run", accept)
    kwargs = {k: v for k, v in kwargs.items() if k != ("strength" if inpaint else "rounds")}
    try:
        if inpaint:
            diffrep.inpaint("gmm", image, mask, **kwargs)
        else:
            diffrep.sdedit("gmm", image, **kwargs)
    except Accepted:
        return
    except InputError as e:
        assert "\n" not in str(e), (image, mask, kwargs)


@FUZZ
@given(name=st.one_of(st.sampled_from(["toyworld", "gaussian", "gmm", "tiny"]), TEXT),
       options=st.dictionaries(st.sampled_from(["n", "res", "seed", "schedule", "device", "size", "length_scale", "std",
                                                "path", "nosuch"]), st.one_of(NUMBERS, TEXT, st.none()), max_size=3))
def test_priors_load_refuses_with_an_input_error_or_reaches_the_work(monkeypatch, name, options):
    from diffrep import priors

    monkeypatch.setattr(priors, "load_config", accept)
    try:
        priors.load(name, **options)
    except Accepted:
        return
    except InputError as e:
        assert "\n" not in str(e), (name, options)


def test_the_alphabet_of_the_fuzzer_covers_the_tables():
    assert {"--sds.weighting", "--optim.iters", "--nerf.grid", "--siren.width"} <= set(group_flags())
    assert string.ascii_letters  # keeps the import honest
