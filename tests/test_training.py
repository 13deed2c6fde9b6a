"""The shared training loop: it fits a toy model with a custom loss, resumes bit-for-bit after an
interruption, averages the weights by its EMA formula; and nothing under ``priors/`` imports upward."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
import torch

from diffrep import training
from diffrep.errors import InputError
from diffrep.training import LoopConfig, Task, fit, seeded

SRC = Path(__file__).resolve().parent.parent / "src" / "diffrep"
A = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])  # the map the toy task fits
B = torch.tensor([0.5, -1.0])  # ... and its offset


class Offset(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.b = torch.nn.Parameter(torch.zeros(2))


def toy_task(seen: list[torch.Tensor] | None = None) -> Task:
    """Fit ``y = A x + B``: the model is ``A``, an extra module is ``B``. The batch scale comes from the
    Python generator and the label noise from the torch one, so a resume must restore both."""
    model, offset = seeded(0, lambda: torch.nn.Linear(3, 2, bias=False)), Offset()

    def batches(g, rng):
        x = torch.randn(16, 3, generator=g) * rng.choice([0.5, 1.0, 2.0])
        return x, x @ A.T + B

    def loss(m, batch, g):
        if seen is not None:
            seen.append(m.weight.detach().clone())  # the weights before this step
        x, y = batch
        mse = (m(x) + offset.b - y - 0.01 * torch.randn(y.shape, generator=g)).pow(2).mean()
        return mse, {"rms": mse.sqrt().item()}

    return Task(model, loss, batches, extra={"offset": offset})


def test_exports():
    for name in training.__all__:
        assert hasattr(training, name)


def test_fit_learns_a_linear_map_with_a_custom_loss(tmp_path):
    events = []
    config = LoopConfig(out=tmp_path, steps=300, lr=0.05, ema_decay=0.9, checkpoint_every=0, device="cpu")
    fitted = fit(toy_task(), config, callback=events.append)
    assert fitted.step == 300 and [e["step"] for e in events] == list(range(1, 301))
    assert set(events[0]) == {"step", "steps", "loss", "seconds", "rms"} and events[-1]["checkpoint"].is_file()
    assert torch.allclose(fitted.model.weight, A, atol=0.05)
    assert torch.allclose(fitted.ema.weight, A, atol=0.05)
    assert events[-1]["loss"] < 0.01 * events[0]["loss"]


def test_resume_after_an_interruption_is_bitwise(tmp_path):
    from safetensors.torch import load_file

    config = LoopConfig(out=tmp_path / "straight", steps=7, lr=0.05, checkpoint_every=3, device="cpu")
    straight = []
    fit(toy_task(), config, callback=straight.append)

    before = []

    def crash(info):
        before.append(info["seconds"])
        if info["step"] == 5:  # two steps past the checkpoint at 3
            raise KeyboardInterrupt

    cut = dataclasses.replace(config, out=tmp_path / "cut")
    with pytest.raises(KeyboardInterrupt):
        fit(toy_task(), cut, callback=crash)
    resumed = []
    fit(toy_task(), cut, resume=True, callback=resumed.append)
    assert [e["step"] for e in resumed] == [4, 5, 6, 7]
    assert [(e["loss"], e["rms"]) for e in resumed] == [(e["loss"], e["rms"]) for e in straight[3:]]
    assert resumed[0]["seconds"] > before[2]  # the training time counts the steps before the checkpoint too
    a, b = load_file(config.out / "checkpoint.safetensors"), load_file(cut.out / "checkpoint.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(v, b[k]) for k, v in a.items())
    assert {k.split(".")[0] for k in a} == {"model", "ema", "offset", "opt", "rng"}


def test_ema_follows_its_formula(tmp_path):
    """``ema_{k+1} = d_k ema_k + (1 - d_k) theta_{k+1}``, ``d_k = min(decay, (1 + k) / (10 + k))``,
    from ``ema_0 = theta_0``, written out in float64 from the weights the loss saw."""
    seen = []
    fitted = fit(toy_task(seen), LoopConfig(out=tmp_path, steps=20, lr=0.05, ema_decay=0.5, checkpoint_every=0,
                                            device="cpu"))
    thetas = [w.double() for w in seen] + [fitted.model.weight.detach().double()]
    ema = thetas[0]
    for k, theta in enumerate(thetas[1:]):
        d = min(0.5, (1 + k) / (10 + k))
        ema = d * ema + (1 - d) * theta
    assert torch.allclose(fitted.ema.weight.double(), ema, atol=1e-6)
    assert training.ema_decay_at(0.999, 0) == 0.1 and training.ema_decay_at(0.999, 10_000) == 0.999


def test_loop_config_is_checked_and_devices_resolve():
    for bad, message in [({"steps": 0}, "steps=0 must be a positive integer"),
                         ({"sample_every": -1}, "sample_every=-1 must be >= 0"),
                         ({"device": "tpu"}, "device='tpu' is not allowed; allowed: auto, cpu, cuda")]:
        with pytest.raises(InputError, match=message):
            training.check_loop_config(LoopConfig(out=Path("x"), **bad))
    assert training.resolve_device("cpu") == torch.device("cpu")
    assert training.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="may not be named"):
        Task(torch.nn.Linear(1, 1), toy_task().loss, toy_task().batches, extra={"ema": torch.nn.Linear(1, 1)})


# Modules that sit above the priors.
UPWARD = ("diffrep.samplers", "diffrep.training", "diffrep.api", "diffrep.cli", "diffrep.methods", "diffrep.reps",
          "diffrep.bench")


def upward_imports(source: str, package: str) -> set[str]:
    """The modules of ``UPWARD`` (or below them) that ``source``, a module of ``package``, imports."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = ".".join(parts[:len(parts) - node.level + 1]) if node.level else ""
            module = ".".join(p for p in (base, node.module) if p)
            names = [module] + [f"{module}.{a.name}" for a in node.names]  # `from diffrep import samplers`
        else:
            continue
        found |= {next(n for n in names if n.startswith(u + ".") or n == u) for u in UPWARD
                  if any(n.startswith(u + ".") or n == u for n in names)}
    return found


def test_the_import_scan_sees_every_form():
    source = "import diffrep.cli\nfrom diffrep import samplers, schedule\nfrom ...training import fit\nimport torch\n" \
             "def f():\n    from diffrep.api import sample\n"
    assert upward_imports(source, "diffrep.priors.tiny") == {"diffrep.cli", "diffrep.samplers", "diffrep.training",
                                                             "diffrep.api"}


def test_nothing_under_priors_imports_upward():
    found = set()
    for path in sorted((SRC / "priors").rglob("*.py")):
        package = ".".join(path.relative_to(SRC.parent).with_suffix("").parts[:-1])
        found |= {(path.relative_to(SRC).as_posix(), m) for m in upward_imports(path.read_text(), package)}
    assert found == set(), "priors must not import samplers, training, methods, reps, bench, api or cli"
