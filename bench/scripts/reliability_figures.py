"""The per-command reliability figures of docs/reliability.md (issue 17), measured rather than listed.

    PYTHONPATH=src python bench/scripts/reliability_figures.py [--fuzz-examples 3000] [--repeats 5]

Runs every command line of the catalogue of refused inputs (tests/catalogue.py, the lists the tests
use) as a subprocess in a fresh temporary folder and classifies it: refused cleanly (exit 2, one line
``diffrep: error: ...`` naming what the test expects, nothing on stdout), a traceback, silently wrong
(exit 0: the bad input was taken), partial output (any file left in the working folder or beside the
case's fixtures). Then the API's cases in-process, the time to the first error (a typo, a bad output
location; median of ``repeats``), the fuzzer (``DIFFREP_FUZZ=1`` pytest of tests/test_fuzz.py) and
the kills survived (bench/results/kill-resume.json). Writes bench/results/reliability.json and prints
the Markdown table."""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

import catalogue  # tests/catalogue.py: one list each, shared with the tests

from diffrep.cli import COMMANDS
from diffrep.errors import InputError

DIFFREP = [sys.executable, "-m", "diffrep.cli"]
ENV = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"),
                                                                                        os.environ.get("PYTHONPATH")]))}
ORDER = [*COMMANDS, "(no command)", "Python API"]


def listing(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


def cli_cases(fixtures: Path) -> list[tuple[list[str], str | None]]:
    """Every command line of the catalogue, with the text its one line must hold (``None``: any)."""
    out = str(fixtures / "o")
    cases = list(catalogue.bad_cases(fixtures)) + list(catalogue.PARSE_ERRORS) + catalogue.disallowed_pairs(out)
    cases += [c for m, r in catalogue.PAIRS if catalogue.allowed(m, r) for c in catalogue.foreign_options(m, r, out)]
    cases += [([*catalogue.NERF_SAMPLE, "--out", out, *argv], message) for argv, message in catalogue.NERF_OPTIONS]
    cases += [(argv, None) for first in catalogue.FIRST_ERRORS.values() for argv in first.values()]
    return cases


def run_cli(argv: list[str], fixtures: Path) -> dict:
    """Run one command line in an empty working folder; what it printed, returned and left behind."""
    with tempfile.TemporaryDirectory() as cwd:
        before = listing(fixtures)
        start = time.perf_counter()
        proc = subprocess.run(DIFFREP + argv, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600, check=False)
        seconds = time.perf_counter() - start
        left = sorted(listing(Path(cwd)) | (listing(fixtures) - before))
    for name in left:  # a case that wrote must not spoil the next one
        path = fixtures / name
        if path.is_file():
            path.unlink()
    return {"code": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr, "left": left, "seconds": seconds}


def classify(code: int, stdout: str, stderr: str, left: list[str], message: str | None) -> dict:
    lines = stderr.strip().splitlines()
    traceback = "Traceback" in stdout + stderr
    clean = (code == 2 and len(lines) == 1 and lines[0].startswith("diffrep: error: ") and not stdout
             and not traceback and not left and (message is None or message in lines[0]))
    return {"clean": clean, "traceback": traceback, "silently_wrong": code == 0, "partial": bool(left)}


def api_outcome(call, message: str) -> dict:
    """Run one API case in an empty working folder: an ``InputError`` of one line matching ``message``."""
    here = Path.cwd()
    with tempfile.TemporaryDirectory() as cwd:
        os.chdir(cwd)
        try:
            call()
            outcome = {"clean": False, "traceback": False, "silently_wrong": True}
        except InputError as e:
            outcome = {"clean": "\n" not in str(e) and re.search(message, str(e)) is not None, "traceback": False,
                       "silently_wrong": False, "error": str(e)}
        except Exception as e:  # noqa: BLE001  (an unhandled exception is what this counts)
            outcome = {"clean": False, "traceback": True, "silently_wrong": False, "error": repr(e)}
        finally:
            os.chdir(here)
        left = sorted(listing(Path(cwd)))
    return outcome | {"partial": bool(left), "clean": outcome["clean"] and not left}


def first_error_seconds(repeats: int) -> dict:
    """Median wall time of a typo and of a bad output location, per command (a fresh interpreter each)."""
    with tempfile.TemporaryDirectory() as fixtures:
        times = {command: {kind: statistics.median(run_cli(argv, Path(fixtures))["seconds"] for _ in range(repeats))
                           for kind, argv in cases.items()} for command, cases in catalogue.FIRST_ERRORS.items()}
    return {command: {kind: round(s, 3) for kind, s in kinds.items()} for command, kinds in times.items()}


def fuzz() -> dict:
    """The four fuzzed edges of tests/test_fuzz.py, 3,000 random inputs each (``DIFFREP_FUZZ=1``)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
                           str(ROOT / "tests" / "test_fuzz.py")], cwd=ROOT, capture_output=True, text=True, check=False,
                          env=ENV | {"DIFFREP_FUZZ": "1"})
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    return {"inputs": 4 * 3000, "edges": 4, "unhandled": 0 if proc.returncode == 0 else "failed: see pytest",
            "pytest": lines[-1] if lines else "", "wall_s": round(time.perf_counter() - start, 1)}


def kills() -> dict:
    record = json.loads((ROOT / "bench" / "results" / "kill-resume.json").read_text())
    survived: dict[str, list[int]] = {}
    for row in record["rows"]:
        command = "train-prior" if row["run"] == "train-prior" else "sample"
        tally = survived.setdefault(command, [0, 0])
        tally[0] += bool(row["killed"] and row["identical"])
        tally[1] += bool(row["killed"])
    return {"source": "bench/results/kill-resume.json", "date": record["date"],
            "per_command": {c: {"identical_after_resume": a, "killed": b} for c, (a, b) in survived.items()}}


def table(rows: dict, first: dict, killed: dict) -> str:
    """The Markdown table of docs/reliability.md."""
    lines = [("| command | cases tried | refused cleanly | tracebacks | silently wrong | partial outputs | kills survived "
              "| first error: typo | first error: bad output |"), "|---|---|---|---|---|---|---|---|---|"]
    for command in [c for c in ORDER if c in rows]:
        r, k, t = rows[command], killed["per_command"].get(command), first.get(command)
        kill = f"{k['identical_after_resume']} of {k['killed']}" if k else "—"
        typo, bad_out = (f"{t['typo']:.2f} s", f"{t['bad_out']:.2f} s") if t else ("—", "—")
        lines.append(f"| `{command}` | {r['tried']} | {r['clean']} | {r['traceback']} | {r['silently_wrong']} "
                     f"| {r['partial']} | {kill} | {typo} | {bad_out} |")
    total = {k: sum(r[k] for r in rows.values()) for k in ("tried", "clean", "traceback", "silently_wrong", "partial")}
    lines.append(f"| all | {total['tried']} | {total['clean']} | {total['traceback']} | {total['silently_wrong']} "
                 f"| {total['partial']} | | | |")
    return "\n".join(lines)


def tally(outcomes: list[dict]) -> dict:
    return {"tried": len(outcomes), **{k: sum(o[k] for o in outcomes) for k in ("clean", "traceback", "silently_wrong",
                                                                               "partial")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per first-error timing (the median is kept)")
    parser.add_argument("--no-fuzz", action="store_true", help="keep the fuzz figures of the last results file")
    args = parser.parse_args()
    results = ROOT / "bench" / "results" / "reliability.json"

    cases: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        fixtures = Path(tmp)
        for argv, message in cli_cases(fixtures):
            ran = run_cli(argv, fixtures)
            command = argv[0] if argv and argv[0] in COMMANDS else "(no command)"
            outcome = classify(ran["code"], ran["stdout"], ran["stderr"], ran["left"], message)
            cases.setdefault(command, []).append(
                {"argv": [a.replace(tmp, "TMP") for a in argv], "code": ran["code"], "seconds": round(ran["seconds"], 3),
                 "line": ran["stderr"].strip().splitlines()[:1], "left": ran["left"], **outcome})
            print(f"{'ok ' if outcome['clean'] else 'BAD'} {ran['seconds']:5.2f} s  {' '.join(argv)[:110]}", flush=True)
    api = [{"case": i, **api_outcome(call, message)} for i, (call, message) in
           enumerate(catalogue.API_INPUTS + catalogue.API_TOO_BIG + catalogue.MAKE_REP_INPUTS)]
    cases["Python API"] = api
    first = first_error_seconds(args.repeats)
    previous = json.loads(results.read_text()) if results.exists() else {}
    fuzzed = previous.get("fuzz") if args.no_fuzz and "fuzz" in previous else fuzz()
    killed = kills()
    rows = {command: tally(outcomes) for command, outcomes in cases.items()}
    record = {"command": "PYTHONPATH=src python bench/scripts/reliability_figures.py", "date": time.strftime("%Y-%m-%d %H:%M:%S"),
              "python": sys.version.split()[0], "cpu_count": os.cpu_count(), "rows": rows,
              "first_error_s": first, "fuzz": fuzzed, "kills": killed, "table": table(rows, first, killed), "cases": cases}
    results.write_text(json.dumps(record, indent=1) + "\n")
    print(record["table"])
    print(f"fuzz: {fuzzed['inputs']:,} inputs, unhandled: {fuzzed['unhandled']} ({fuzzed['pytest']})")
    print(f"wrote {results.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
