"""Amortised translation (diffrep train-translator, diffrep translate): the network's shapes and identity start,
the class code, the anchor's cosine schedule, a few training steps that save, load and resume bit-for-bit, and
bad options refused in one line with exit 2 before any work."""

import itertools
import json
import math

import pytest
import torch

import diffrep
from diffrep.cli import main
from diffrep.errors import AdviceWarning, InputError
from diffrep.methods.corrective import CorrectiveConfig
from diffrep.methods.translator import (
    Translator,
    class_encoding,
    load_translator,
    translate_images,
)
from diffrep.priors.prompts import LabelQuery, parse_prompt
from diffrep.toyworld.vocabulary import COLOURS, KINDS, VIEWS
from diffrep.training.config import TRANSLATOR_LOSSES, TranslatorTrainConfig
from diffrep.training.translator import (
    LOSS_GRADS,
    anchor_weight,
    check_config,
    prompt_of,
    source_split,
    train,
    translation_loss,
)


def test_translator_shapes_identity_start_and_range():
    model = Translator((3, 16, 16), len(KINDS), CorrectiveConfig(channels=4, levels=3))
    x = (torch.rand(5, 3, 16, 16) * 2.4 - 1.2).requires_grad_()
    k = torch.tensor([1, 2, 3, 4, 1])
    y = model(x, k)
    assert y.shape == (5, 3, 16, 16)
    torch.testing.assert_close(y, x.detach())  # the last layer starts at zero: the identity, unclamped
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.ones_like(x))
    with torch.no_grad():
        model.net.head.bias.fill_(5.0)
    model.record = {"kinds": list(KINDS), "targets": ["duck"]}
    assert translate_images(model, x.detach(), "duck").abs().max() <= 1  # the images it hands out are clamped


def test_translator_outputs_stay_bounded_under_a_gradient_that_pushes_past_the_range():
    """A distillation gradient pushing every pixel up forever (guided predictions beyond +1 do) meets the anchor:
    the outputs settle near ``x + g/λ``. (Clamped inside the graph with a straight-through backward, the first
    translator ran away: the gradient and the anchor, taken at the clamped value, never stopped it.)"""
    torch.manual_seed(0)
    model = Translator((3, 8, 8), len(KINDS), CorrectiveConfig(channels=4, levels=2))
    x, k = torch.rand(4, 3, 8, 8) * 2 - 1, torch.tensor([1, 2, 3, 4])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    lam, push = 0.5, 0.25
    for _ in range(400):
        batch = (x, k, None, None, None, lam)
        loss, _ = translation_loss(model, batch, None, grad=lambda y, c, t, eps: torch.full_like(y, -push))
        opt.zero_grad(), loss.backward(), opt.step()
    y = model(x, k).detach()
    assert y.abs().max() < 1 + push / lam + 0.1
    torch.testing.assert_close(y, x + push / lam, atol=0.1, rtol=0)


def test_class_encoding_is_the_ten_frequency_code():
    code = class_encoding(torch.tensor([0, 3, 11]), 12, (4, 5))
    assert code.shape == (3, 20, 4, 5)
    assert (code == code[:, :, :1, :1]).all()  # the same at every pixel
    j = torch.arange(10, dtype=torch.float32)
    phase = math.pi * 3 / 12 * 2.0**j
    torch.testing.assert_close(code[1, :, 0, 0], torch.cat([phase.sin(), phase.cos()]))
    codes = class_encoding(torch.arange(12), 12, (1, 1)).flatten(1)
    assert torch.cdist(codes, codes).add(torch.eye(12)).min() > 0.1  # every class its own code


def test_anchor_weight_follows_a_cosine_from_lambda0_to_zero():
    assert anchor_weight(0.3, 0, 100) == pytest.approx(0.3)
    assert anchor_weight(0.3, 50, 100) == pytest.approx(0.15)
    assert anchor_weight(0.3, 100, 100) == pytest.approx(0.0, abs=1e-12)
    w = [anchor_weight(1.0, k, 10) for k in range(11)]
    assert all(a > b for a, b in itertools.pairwise(w))


def test_prompt_names_the_target_kind_at_the_source_colour_and_view():
    for k, c, v in [(1, 0, 0), (4, 5, 3), (3, 2, 1)]:
        assert parse_prompt(prompt_of(k, c, v), KINDS, COLOURS, VIEWS) == LabelQuery(kind=k, colour=c, view=v)


def test_source_split_holds_out_every_fifth_source_image():
    kind = torch.tensor([0, 1, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0])
    train_idx, test_idx = source_split(kind, 0, 0.2)
    assert sorted(train_idx.tolist() + test_idx.tolist()) == (kind == 0).nonzero().squeeze(1).tolist()
    assert test_idx.tolist() == [0, 7] and not set(train_idx.tolist()) & set(test_idx.tolist())


def small_config(tmp_path, name="tr", **kw):
    return TranslatorTrainConfig(**{"out": tmp_path / name, "steps": 4, "batch": 2, "data_n": 600, "channels": 4,
                                    "levels": 2, "checkpoint_every": 2, "device": "cpu", "targets": ("duck", "car"),
                                    **kw})


def test_every_loss_the_command_line_takes_has_its_gradient_in_the_table():
    """The torch-free names `--loss` is checked against and the table of gradients are one axis (style habit 14)."""
    assert tuple(LOSS_GRADS) == TRANSLATOR_LOSSES


@pytest.mark.parametrize("loss", TRANSLATOR_LOSSES)
def test_translator_trains_a_few_steps_saves_and_loads(tmp_path, toy_prior, loss):
    log = []
    weights = train(small_config(tmp_path, loss=loss), prior=toy_prior, callback=log.append)
    assert [d["step"] for d in log] == [1, 2, 3, 4] and all(math.isfinite(d["loss"]) for d in log)
    assert log[0]["anchor_weight"] == pytest.approx(0.1) and log[-1]["anchor_weight"] < log[0]["anchor_weight"]
    assert all(d["grad_norm"] > 0 for d in log)
    meta = json.loads((weights.parent / "translator.json").read_text())
    assert meta["prior"] == "toyworld" and meta["loss"] == loss and meta["targets"] == ["duck", "car"]
    assert weights.stat().st_mode & 0o777 == 0o644  # an ordinary file (safetensors' own writer leaves 0600)
    assert not [p.name for p in weights.parent.iterdir() if p.name.startswith(".")]  # no temporary file left
    assert meta["source"] == "mug" and meta["training"]["step"] == 4
    model = load_translator(weights, prior="toyworld")
    x = toy_prior.data[:3]
    y = translate_images(model, x, "car")
    assert y.shape == x.shape and y.abs().max() <= 1 and not torch.equal(y, x)  # it has learnt something


def test_the_lmc_sds_loss_takes_a_named_corrective(tmp_path, toy_prior):
    """--corrective perturbed trains with the corrective shipped off the data (another gradient from the first step)
    and the translator's record says so; the default, clean, records None."""
    logs = {}
    for corrective in (None, "perturbed"):
        logs[corrective] = []
        weights = train(small_config(tmp_path, str(corrective), steps=1, corrective=corrective), prior=toy_prior,
                        callback=logs[corrective].append)
        assert json.loads((weights.parent / "translator.json").read_text())["training"]["corrective"] == corrective
    assert logs[None][0]["grad_norm"] != pytest.approx(logs["perturbed"][0]["grad_norm"], rel=1e-3)


def test_lmc_sds_on_the_tiny_prior_with_its_clean_corrective_is_advised_against_before_the_prior_loads(
        tmp_path, monkeypatch, capsys):
    """The measured divergence (docs/lmc.md) is said in one line, from Python as an AdviceWarning and on the command
    line as ``diffrep: note:``, before the prior loads; the perturbed corrective, another loss or prior: no note."""
    import diffrep.training.corrective as trainer  # train() takes its load_on from there when it runs

    def stop(*a, **k):
        raise KeyboardInterrupt  # the prior would load here: the note must already be out

    monkeypatch.setattr(trainer, "load_on", stop)
    with pytest.warns(AdviceWarning, match="--corrective perturbed"), pytest.raises(KeyboardInterrupt):
        train(small_config(tmp_path, prior="tiny"))
    argv = ["train-translator", "--out", str(tmp_path / "c"), "--prior", "tiny", "--steps", "2"]
    for extra, noted in (([], True), (["--corrective", "clean"], True), (["--corrective", "perturbed"], False),
                         (["--loss", "sds"], False), (["--prior", "toyworld"], False)):
        assert main(argv + extra) == 130
        err = capsys.readouterr().err.splitlines()
        notes = [line for line in err if line.startswith("diffrep: note: ")]
        assert len(notes) == (1 if noted else 0), (extra, err)
        assert err[-1] == "diffrep: interrupted; no checkpoint was written yet"  # stopped before its first step
        assert not any("Traceback" in line or "Warning" in line for line in err)


def test_resume_equals_an_uninterrupted_run(tmp_path, toy_prior):
    straight = train(small_config(tmp_path, "a"), prior=toy_prior)

    def stop_at_2(d):
        if d["step"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(small_config(tmp_path, "b"), prior=toy_prior, callback=stop_at_2)
    resumed = train(small_config(tmp_path, "b"), prior=toy_prior, resume=True)
    a, b = load_translator(straight).state_dict(), load_translator(resumed).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_translate_api_and_command(tmp_path, toy_prior, capsys):
    from diffrep.export import image_grid

    weights = train(small_config(tmp_path), prior=toy_prior)
    mug = toy_prior.data[(toy_prior.labels["kind"] == 0).nonzero()[0, 0]]
    r = diffrep.translate(weights.parent, mug, to="duck")
    assert r.images.shape == (1, 3, 32, 32) and r.info["config"]["to"] == "duck"
    torch.testing.assert_close(r.images, translate_images(load_translator(weights), mug[None], "duck"))
    image_grid(mug[None]).save(tmp_path / "mug.png")
    out = tmp_path / "out"
    assert main(["translate", "--weights", str(weights.parent), "--image", str(tmp_path / "mug.png"), "--to", "duck",
                 "--out", str(out)]) == 0
    assert (out / "samples.png").is_file() and json.loads((out / "run.json").read_text())["config"]["to"] == "duck"


def test_bad_translate_options_give_one_line_and_exit_2_before_torch(tmp_path):
    """Unknown kind, missing or foreign weights, a bad image path: one line, exit 2, nothing written, no torch."""
    import subprocess
    import sys

    folder = tmp_path / "w"
    folder.mkdir()
    (folder / "translator.safetensors").write_bytes(b"junk")
    (folder / "translator.json").write_text(json.dumps({"prior": "toyworld", "targets": ["duck", "car"]}))
    (tmp_path / "in.png").write_bytes(b"not read before the checks")
    base = ["translate", "--image", str(tmp_path / "in.png"), "--out", str(tmp_path / "o")]
    argvs = [base + ["--weights", str(folder), "--to", "teapot"],  # not a target of these weights
             base + ["--weights", str(tmp_path / "none"), "--to", "duck"],  # no weights there
             base + ["--weights", str(folder), "--to", "duck", "--prior", "tiny"],  # weights for another prior
             ["translate", "--image", str(tmp_path / "no.png"), "--weights", str(folder), "--to", "duck", "--out",
              str(tmp_path / "o")],  # a bad image path
             ["train-translator", "--out", str(tmp_path / "t"), "--loss", "dds"],
             ["train-translator", "--out", str(tmp_path / "t"), "--targets", "duck", "dragon"],
             ["train-translator", "--out", str(tmp_path / "t"), "--prior", "gmm"],
             ["train-translator", "--out", str(tmp_path / "t"), "--holdout", "1.5"]]
    code = ("import sys, diffrep.cli\n"
            f"codes = [diffrep.cli.main(argv) for argv in {argvs!r}]\n"
            "assert codes == [2] * len(codes) and 'torch' not in sys.modules, (codes, 'torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    errors = done.stderr.strip().splitlines()
    assert len(errors) == len(argvs) and all(e.startswith("diffrep: error: ") for e in errors), errors
    assert "'teapot' is not a target" in errors[0] and "cannot be read" in errors[1]
    assert "trained with prior 'toyworld', not 'tiny'" in errors[2] and "no.png" in errors[3]
    assert "unknown loss 'dds'" in errors[4] and "unknown target kind 'dragon'" in errors[5]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "w"]


def test_corrupt_weights_are_refused_in_one_line(tmp_path, toy_prior, capsys):
    from diffrep.export import image_grid

    weights = train(small_config(tmp_path), prior=toy_prior)
    weights.write_bytes(b"junk")
    with pytest.raises(InputError, match="cannot be loaded"):
        load_translator(weights)
    image_grid(toy_prior.data[:1]).save(tmp_path / "mug.png")
    assert main(["translate", "--weights", str(weights.parent), "--image", str(tmp_path / "mug.png"), "--to", "duck",
                 "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.count("\n") == 1 and not (tmp_path / "o").exists()


def test_check_config_refuses_bad_options():
    from pathlib import Path

    for bad, match in [({"targets": ()}, "targets is empty"), ({"targets": ("mug",)}, "other than the source"),
                       ({"source": "dragon"}, "unknown source kind"), ({"guidance_scale": 0.0}, "guidance_scale"),
                       ({"t_range": (0.5, 0.2)}, "t_range"), ({"steps": 0}, "steps"),
                       ({"loss": "sds", "corrective": "perturbed"}, "corrective='perturbed' is for loss lmc-sds, not 'sds'"),
                       ({"corrective": "/nonexistent"}, "is neither a shipped one"),
                       ({"prior": "tiny", "corrective": "perturbd"}, "'perturbd' is neither a shipped one")]:
        with pytest.raises(InputError, match=match):
            check_config(TranslatorTrainConfig(**{"out": Path("x"), **bad}))
