"""SIGKILL a run at random moments, resume it, compare with an uninterrupted run (issue 17, faults).

    .venv/bin/python bench/scripts/kill_resume.py [--trials 5]
For a DDRep SIREN run, an SDS SIREN run and a `train-prior` run: one uninterrupted run, then `trials`
runs killed with SIGKILL after a random delay and finished with --resume; prints whether each result is
bit-identical and writes bench/results/kill-resume.json."""

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
DIFFREP = [sys.executable, "-m", "diffrep.cli"]
SAMPLE = ["sample", "--prior", "gmm", "--prompt", "red", "--n", "2", "--seed", "3", "--checkpoint-every", "1"]
RUNS = {
    "ddrep-siren": SAMPLE + ["--rep", "siren", "--method", "ddrep", "--steps", "60", "--eta", "0.5", "--ddrep.rounds", "2",
                             "--siren.width", "64"],
    "sds-siren": SAMPLE + ["--rep", "siren", "--method", "sds", "--optim.iters", "300", "--siren.width", "64"],
    "train-prior": ["train-prior", "--steps", "40", "--batch", "4", "--data-n", "300", "--channels", "8",
                    "--checkpoint-every", "1", "--sample-every", "0"],
}
RESULT = {"ddrep-siren": "samples.safetensors", "sds-siren": "samples.safetensors", "train-prior": "tiny.safetensors"}


def run(args: list[str], out: Path, resume: bool = False) -> float:
    start = time.perf_counter()
    proc = subprocess.run(DIFFREP + args + ["--out", str(out)] + (["--resume"] if resume else []),
                          capture_output=True, text=True, env=os.environ | {"OMP_NUM_THREADS": "1"})
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} --out {out}{' --resume' if resume else ''}: {proc.stderr.strip()}")
    return time.perf_counter() - start


def has_checkpoint(name: str, out: Path) -> bool:
    """Whether the killed run left a checkpoint (a kill during start-up leaves none: the run starts over)."""
    folder = out if name == "train-prior" else out.with_name(out.name + ".checkpoint")
    return any(folder.glob("*.safetensors")) if folder.is_dir() else False


def digest(path: Path) -> str:
    """SHA-256 of the tensors (names and bytes), not of the file: its header records the run's folder name."""
    from safetensors.torch import load_file

    h = hashlib.sha256()
    for name, tensor in sorted(load_file(path).items()):
        h.update(name.encode())
        h.update(tensor.contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=5)
    trials = parser.parse_args().trials
    rng, rows = random.Random(0), []
    work = Path(tempfile.mkdtemp())
    for name, args in RUNS.items():
        reference = work / f"{name}-ref"
        seconds = run(args, reference)
        want = digest(reference / RESULT[name])
        for trial in range(trials):
            out = work / f"{name}-{trial}"
            delay = rng.uniform(0.3, 0.9) * seconds
            proc = subprocess.Popen(DIFFREP + args + ["--out", str(out)], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, env=os.environ | {"OMP_NUM_THREADS": "1"})
            time.sleep(delay)
            killed = proc.poll() is None
            proc.kill()
            proc.wait()
            if killed:
                run(args, out, resume=has_checkpoint(name, out))
            same = digest(out / RESULT[name]) == want
            rows.append({"run": name, "trial": trial, "killed_after_s": round(delay, 2), "killed": killed, "identical": same})
            print(rows[-1], flush=True)
    shutil.rmtree(work, ignore_errors=True)
    summary = {name: f"{sum(r['identical'] and r['killed'] for r in rows if r['run'] == name)} of "
                     f"{sum(r['run'] == name for r in rows)} killed and identical" for name in RUNS}
    record = {"command": "python bench/scripts/kill_resume.py --trials %d" % trials,
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "summary": summary, "rows": rows}
    (ROOT / "bench" / "results" / "kill-resume.json").write_text(json.dumps(record, indent=2) + "\n")
    print(summary)


if __name__ == "__main__":
    main()
