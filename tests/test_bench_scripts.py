"""The probe scripts of bench/scripts refuse a command line that does not fit their usage in one line, exit 2, before
any work (``script_cli``), as the CLI does."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "bench" / "scripts"
sys.path.insert(0, str(SCRIPTS))

from script_cli import MANY, cached, command, merged, usage_line  # noqa: E402

DOC = """A probe.

    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/probe.py run PROMPT SEED [OPTIONS]   # one run
    .venv/bin/python bench/scripts/probe.py runs FOLDER...
    .venv/bin/python bench/scripts/probe.py write"""


def refused(capsys, argv, arities, doc=DOC) -> str:
    with pytest.raises(SystemExit) as e:
        command(doc, arities, argv, "probe.py")
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    return err


def test_command_gives_the_verb_and_its_arguments():
    arities = {"run": (2, 3), "runs": (1, MANY), "write": (0, 0)}
    assert command(DOC, arities, ["run", "a duck", "0"], "probe.py") == ("run", ["a duck", "0"])
    assert command(DOC, arities, ["runs", "a", "b", "c"], "probe.py") == ("runs", ["a", "b", "c"])
    assert command(DOC, arities, ["write"], "probe.py") == ("write", [])
    assert command(DOC, {None: (1, 2)}, ["x"], "probe.py") == (None, ["x"])


def test_command_refuses_a_missing_or_unknown_verb_naming_the_verbs(capsys):
    arities = {"run": (2, 3), "write": (0, 0)}
    assert "no verb given; allowed: run, write" in refused(capsys, [], arities)
    assert "unknown verb 'rnu'; allowed: run, write" in refused(capsys, ["rnu", "x"], arities)


def test_command_refuses_a_wrong_count_with_the_verbs_own_usage_line(capsys):
    err = refused(capsys, ["run", "a duck"], {"run": (2, 3)})
    assert "usage: probe.py run PROMPT SEED [OPTIONS] (2 to 3 arguments, got 1)" in err
    err = refused(capsys, ["write", "x"], {"write": (0, 0)})
    assert "usage: probe.py write (0 arguments, got 1)" in err
    assert "(1 or more arguments, got 0)" in refused(capsys, ["runs"], {"runs": (1, MANY)})


def test_usage_line_matches_the_verb_whole():
    assert usage_line(DOC, "probe.py", "run") == "probe.py run PROMPT SEED [OPTIONS]"
    assert usage_line(DOC, "probe.py", "runs") == "probe.py runs FOLDER..."
    assert usage_line(DOC, "probe.py", "ru") is None


def test_merged_keeps_the_committed_rows_a_partial_cache_did_not_rerun(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"rows": [{"k": 1, "v": "a"}, {"k": 2, "v": "b"}, {"k": 3, "v": "c"}]}))
    rows = merged(path, lambda record: record["rows"], [{"k": 2, "v": "B"}, {"k": 4, "v": "D"}], lambda r: r["k"])
    assert rows == [{"k": 1, "v": "a"}, {"k": 2, "v": "B"}, {"k": 3, "v": "c"}, {"k": 4, "v": "D"}]
    assert merged(tmp_path / "new.json", lambda record: record["rows"], [{"k": 5}], lambda r: r["k"]) == [{"k": 5}]


def test_cached_refuses_a_write_from_no_runs(tmp_path, capsys):
    for empty in (tmp_path / "rows.jsonl", tmp_path / "runs"):
        with pytest.raises(SystemExit) as e:
            cached(empty, "probe.py run")
        assert e.value.code == 2 and "probe.py run first" in capsys.readouterr().err
        (tmp_path / "runs").mkdir(exist_ok=True)
    (tmp_path / "rows.jsonl").write_text("{}\n")
    cached(tmp_path / "rows.jsonl", "probe.py run")  # rows there: no exit


OWN_CHECKS = {"lmc_corrective_perturb.py", "lmc_corrective_perturb_more.py", "nerf3d_lmc_corrective.py",
              "nerf3d_seed_cache.py"}
"""Scripts that check their command line themselves (one line, exit 2), written before script_cli."""
NO_ARGUMENTS_IS_A_RUN = {"lmc_oracle_corrective.py", "lmc_translation_rescore.py", "panorama_scenes_labeller.py", "panorama_scenes_reduced.py",
                         "memory_estimate.py"}
"""Scripts whose arguments are all optional (memory_estimate.py's ``sys.argv`` is its child process's)."""


def reads_arguments(path: Path) -> bool:
    return "sys.argv[" in path.read_text() or "from script_cli import" in path.read_text()


def refusing_scripts() -> list[str]:
    return sorted(p.name for p in SCRIPTS.glob("*.py") if reads_arguments(p) and p.name != "script_cli.py"
                  and p.name not in NO_ARGUMENTS_IS_A_RUN)


def test_every_script_that_reads_arguments_checks_them_or_is_named_here():
    unchecked = [name for name in refusing_scripts()
                 if name not in OWN_CHECKS and "from script_cli import" not in (SCRIPTS / name).read_text()]
    assert unchecked == []
    assert len(refusing_scripts()) >= 20


@pytest.mark.parametrize("script", refusing_scripts())
def test_a_script_run_without_arguments_says_its_usage_in_one_line(script):
    done = subprocess.run([sys.executable, str(SCRIPTS / script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert script in done.stderr.split(":")[0] or done.stderr.startswith("usage:"), done.stderr
