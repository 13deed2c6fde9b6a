"""The tables: every allowed method x rep pair runs, every disallowed one and every option of another
group is refused in one line, and a method and a rep registered here work everywhere."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, is_dataclass

import pytest
import torch
from catalogue import PAIRS, allowed, disallowed_pairs, foreign_options
from torch import nn

import diffrep
from diffrep.cli import main
from diffrep.errors import InputError
from diffrep.methods import (
    METHODS,
    DistillState,
    MethodEntry,
    Optim,
    OptimConfig,
    Sampling,
    SDSOptions,
    ViewPrompt,
    distill,
    view_conditions,
)
from diffrep.reps import REPS, Diffrep, RepEntry, SirenConfig

TINY = {"pixels": {"init_std": 0.1}, "siren": {"width": 16, "depth": 1, "embed_dim": 8},
        "panorama": {"width": 16, "depth": 1, "embed_dim": 8},
        "nerf": {"resolution": 8, "samples": 8, "bank": 8, "view_prompts": False}, "canvas": {"size": 32}}
SHORT = {"iters": 1}  # mode-seeking loops


def required(method: str, folder) -> dict:
    """The options a method cannot run without (its entry's ``requires``): a source prompt, a corrective."""
    if method == "lmc-sds":
        from diffrep.methods.corrective import Corrective, CorrectiveConfig, prior_fingerprint, save_corrective
        from diffrep.priors import default_gmm

        prior = default_gmm()
        save_corrective(Corrective(prior.image_shape, 1000, CorrectiveConfig(4, 2)), folder, prior_fingerprint(prior, "gmm"), {})
        return {"corrective": str(folder)}
    return {"source_prompt": "blue"} if method == "dds" else {}


@pytest.mark.parametrize("method,rep", [p for p in PAIRS if allowed(*p)])
def test_every_allowed_pair_runs_one_step(method, rep, tmp_path):
    entry = METHODS[method]
    options = {} if entry.image else TINY[rep] | {k: v for k, v in SHORT.items()
                                                  if any(k in {g.name for g in fields(f.default)}
                                                         for f in fields(entry.config) if is_dataclass(f.default))}
    options |= required(method, tmp_path / "corrective")
    steps = []
    result = diffrep.sample("gmm", rep=rep, method=method, prompt="red", n=2, steps=1,
                            callback=lambda d: steps.append(d["step"]), **options)
    assert steps == [1] and torch.isfinite(result.images).all()
    assert result.info["config"]["method"] == method and result.info["config"]["rep"] == rep


@pytest.mark.parametrize("argv,message", disallowed_pairs("o"))
def test_every_disallowed_pair_is_one_line_exit_2(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "o").exists()
    with pytest.raises(InputError, match=message.split(" and ")[-1]):
        diffrep.sample("gmm", method=argv[argv.index("--method") + 1], rep=argv[argv.index("--rep") + 1])


@pytest.mark.parametrize("method,rep", [p for p in PAIRS if allowed(*p)])
def test_every_option_of_another_group_is_refused(tmp_path, capsys, method, rep):
    out = tmp_path / "o"
    for argv, message in foreign_options(method, rep, str(out)):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (argv, err)
        assert not out.exists()


def test_every_lazy_entry_names_a_function_or_class():
    """The tables name their implementations as "module:name" (imported on first use): none is misspelt."""
    from diffrep.lazy import Lazy

    from diffrep.priors import PRIORS

    lazy = [(name, f.name, getattr(entry, f.name)) for table in (METHODS, REPS, PRIORS) for name, entry in table.items()
            for f in fields(entry) if isinstance(getattr(entry, f.name), Lazy)]
    assert len(lazy) >= len(METHODS) + len(REPS) + len(PRIORS)
    for name, field_name, value in lazy:
        assert callable(value.resolve()), (name, field_name, value)


def test_help_shows_only_the_chosen_groups(capsys):
    with pytest.raises(SystemExit):
        main(["sample", "--rep", "siren", "--method", "sds", "--help"])
    text = capsys.readouterr().out
    assert "--sds.weighting" in text and "--optim.iters" in text and "--siren.width" in text
    assert "--ddrep." not in text and "--sjc." not in text and "--pixels." not in text and "--panorama." not in text
    with pytest.raises(SystemExit):
        main(["sample", "--method", "ddim", "--help"])
    text = capsys.readouterr().out
    assert "--pixels." not in text and "--optim.iters INT" not in text and "--prior-path" in text


def test_config_objects_equal_names_with_keywords():
    by_name = diffrep.sample("gmm", rep="siren", method="sds", prompt="red", n=2, width=16, depth=1, iters=3, seed=4)
    by_config = diffrep.sample("gmm", rep=SirenConfig(width=16, depth=1), method=SDSOptions(optim=OptimConfig(iters=3)),
                               prompt="red", n=2, seed=4)
    assert torch.equal(by_name.images, by_config.images)
    assert by_name.info["config"] == by_config.info["config"]
    with pytest.raises(InputError, match="unknown option 'iters' for method 'ddrep'"):
        diffrep.sample("gmm", rep="siren", method="ddrep", iters=3)


def flat_fields(cls) -> set[str]:
    return {g for f in fields(cls) for g in (flat_fields(type(f.default)) if is_dataclass(f.default) else {f.name})}


def flat_get(config, name: str, group: str) -> tuple[object, str]:
    """The value of flat option ``name`` in ``config`` (a nested config's too) and its command-line group."""
    for f in fields(config):
        value = getattr(config, f.name)
        if f.name == name:
            return value, group
        if is_dataclass(value) and name in flat_fields(type(value)):
            return flat_get(value, name, f.name)
    raise KeyError(name)


@pytest.mark.parametrize("rep,encoded", [(r, e) for r in REPS for e in (False, True)
                                          if (REPS[r].encoded_defaults if e else REPS[r].method_defaults)])
def test_a_reps_method_defaults_are_options_it_sets_unless_given(rep, encoded, capsys):
    """``method_defaults``, and ``encoded_defaults`` in their place through a prior's encoder (``--rgb``)."""
    from diffrep.spec import run_spec

    table = REPS[rep].encoded_defaults if encoded else REPS[rep].method_defaults
    for method, defaults in table.items():
        assert set(defaults) <= flat_fields(METHODS[method].config), "a default names no option of the method"
        own = METHODS[method].config()
        for name, value in defaults.items():
            spec = run_spec(rep, method, encoded=encoded)
            (set_value, group), (own_value, _) = flat_get(spec.options, name, method), flat_get(own, name, method)
            assert set_value == value != own_value
            given = run_spec(rep, method, encoded=encoded, **{name: own_value}).options
            assert flat_get(given, name, method)[0] == own_value
            assert run_spec(rep, own, encoded=encoded).options == own  # a config object is taken as it is
            with pytest.raises(SystemExit):
                main(["sample", "--rep", rep, "--method", method, "--help"] + ["--rgb"] * encoded)
            text = " ".join(capsys.readouterr().out.split())
            flag = f"--{group}.{name.replace('_', '-')}"
            assert flag in text and f"(default: {value})" in text.rsplit(flag + " ", 1)[1].split("--", 1)[0]  # its own entry


def test_the_nerf_solves_ddrep_with_40_adam_iterations_on_an_eighth_of_its_rays_other_reps_with_20_on_all():
    """Through a prior's encoder the NeRF's rays are not batched (the encoder takes whole views): 10 on all."""
    from diffrep.spec import run_spec

    nerf = run_spec("nerf", "ddrep").options
    assert (nerf.adam_iters, nerf.pixel_fraction) == (40, 0.125)
    encoded = run_spec("nerf", "ddrep", encoded=True).options
    assert (encoded.adam_iters, encoded.pixel_fraction) == (10, 1.0)
    for rep in ("siren", "panorama", "pixels"):
        assert (run_spec(rep, "ddrep").options.adam_iters, run_spec(rep, "ddrep").options.pixel_fraction) == (20, 1.0)


# A method and a rep defined here, registered by one table entry each, touching no other module.

@dataclass(frozen=True)
class PullOptions:
    """A toy gradient: pull every render towards a grey level."""

    level: float = 0.5
    """The grey level in [-1, 1]."""
    optim: Optim = OptimConfig(iters=40, lr=0.1)


def run_pull(prior, rep, cond, options: PullOptions, *, sampling: Sampling, generator, state=None, callback=None):
    return distill(rep, lambda x, views, k, g: x - options.level, options.optim, generator=generator,
                   callback=callback, state=state)


class ColourRep(Diffrep):
    """One flat colour per instance: linear in its parameters."""

    linear = True

    def __init__(self, image_shape, n, config, *, generator):
        super().__init__(image_shape, n)
        self.colour = nn.Parameter(torch.zeros(n, image_shape[0], 1, 1))

    def forward(self, views=None):
        return self.colour.expand(-1, *self.image_shape)[:, None]

    def solve_linear(self, views, targets):
        self.colour.copy_(targets.mean((1, 3, 4), keepdim=True)[:, 0])


@dataclass(frozen=True)
class ColourConfig:
    """A flat colour (no options)."""


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(METHODS, "pull", MethodEntry(PullOptions, run_pull, "toy: pull renders to a grey level",
                                                     state=DistillState, uses=("guidance_scale",)))
    monkeypatch.setitem(REPS, "colour", RepEntry(ColourConfig, ColourRep, "toy: one flat colour", linear=lambda c: True))


def test_a_registered_method_and_rep_work_from_python(registered, tmp_path):
    result = diffrep.sample("gmm", rep="siren", method="pull", level=0.25, width=16, n=2)
    assert (result.images - 0.25).abs().max() < 0.05
    result = diffrep.sample("gmm", rep="colour", method="ddrep", solver="closed", prompt="blue", n=3, steps=20)
    assert result.images[:, 2].mean() > 0.5 and result.images[:, 0].mean() < -0.5  # the gmm's flat blue
    ckpt = tmp_path / "c"
    full = diffrep.sample("gmm", rep="colour", method="pull", n=2, seed=1)

    def stop(d):
        if d["step"] == 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        diffrep.sample("gmm", rep="colour", method="pull", n=2, seed=1, checkpoint=ckpt, checkpoint_every=10,
                       callback=stop)
    resumed = diffrep.sample("gmm", rep="colour", method="pull", n=2, seed=1, checkpoint=ckpt, checkpoint_every=10,
                             resume=True)
    assert torch.equal(full.images, resumed.images)


def test_a_registered_method_and_rep_work_from_the_cli(registered, tmp_path, capsys):
    out = tmp_path / "r"
    argv = ["sample", "--prior", "gmm", "--prompt", "", "--rep", "colour", "--method", "pull", "--pull.level", "-0.5",
            "--optim.iters", "60", "--n", "2", "--out", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    record = json.loads((out / "run.json").read_text())
    assert record["config"]["method"] == "pull" and record["config"]["method_options"]["level"] == -0.5
    assert record["config"]["method_options"]["optim"]["iters"] == 60
    with pytest.raises(SystemExit):
        main(["sample", "--method", "pull", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--pull.level" in text
    assert "colour" in text.split("--rep STR")[1].split("--method")[0]  # the registered rep is listed
    assert "pull" in text.split("--method STR")[1].split("--n INT")[0]
    assert "lmc-sds, pull: continue from" in text  # and checkpoints, for it has a state
    assert main(["sample", "--method", "magic", "--out", str(tmp_path / "x")]) == 2
    assert f"allowed: {', '.join(METHODS)}" in capsys.readouterr().err and METHODS and "pull" in METHODS


class LabelledRep(ColourRep):
    """Views are azimuths; each is labelled front or back."""

    def random_views(self, k, generator, progress=0.0):
        return torch.tensor([[0.0, 180.0][: k]] * self.n)

    def forward(self, views=None):
        V = 1 if views is None else views.shape[1]
        return super().forward().expand(-1, V, -1, -1, -1)

    def view_labels(self, views):
        return [["front" if a < 90 else "back" for a in row.tolist()] for row in views]


def test_view_prompts_condition_each_view_on_its_label():
    rep = LabelledRep((3, 4, 4), 2, None, generator=torch.Generator())
    encoded = []
    prompt = ViewPrompt("a red mug", lambda text: encoded.append(text) or text)
    views = rep.random_views(2, torch.Generator())
    assert view_conditions(prompt, rep, views) == ["a red mug, front view", "a red mug, back view"] * 2
    assert encoded == ["a red mug, front view", "a red mug, back view"]  # each encoded once
    assert view_conditions(["c0", "c1"], rep, views) == ["c0", "c0", "c1", "c1"]
    assert view_conditions("c", rep, views) == "c"


def test_a_run_without_a_method_takes_the_reps_default_method():
    """No method named: DDIM on images, DDRep on every diffrep but the canvas, which refuses it (SDS there); the
    default pairs with its rep, ``run_spec`` and ``diffrep sample --help`` use it, and a bad rep is still named."""
    from diffrep.cli import sample_class
    from diffrep.spec import default_method, pairing, run_spec

    expected = {"pixels": "ddim", "siren": "ddrep", "panorama": "ddrep", "nerf": "ddrep", "canvas": "sds"}
    assert {rep: default_method(rep) for rep in expected} == expected
    assert all(pairing(default_method(rep), rep) is None for rep in REPS)
    for rep, method in expected.items():
        assert run_spec(rep).method == method
        parser = sample_class(["--rep", rep, "--out", "o"])
        assert next(f.default for f in fields(parser) if f.name == "method") == method
    with pytest.raises(InputError, match="unknown rep 'nerfs' \\(did you mean 'nerf'\\?\\)"):
        run_spec("nerfs")


def test_the_command_lines_number_of_samples_defaults_to_the_reps():
    """``diffrep sample`` draws ``RepEntry.instances`` unless --n says: a grid of 8 images, one NeRF (a minute each)."""
    from diffrep.cli import sample_args_class

    default_n = {(rep, method): next(f.default for f in fields(sample_args_class(rep, method)) if f.name == "n")
                 for rep, method in (("pixels", "ddim"), ("siren", "ddrep"), ("nerf", "ddrep"), ("nerf", "sds"))}
    assert default_n == {("pixels", "ddim"): 8, ("siren", "ddrep"): 8, ("nerf", "ddrep"): 1, ("nerf", "sds"): 1}
    assert REPS["nerf"].instances == 1 and all(e.instances == 8 for r, e in REPS.items() if r != "nerf")
