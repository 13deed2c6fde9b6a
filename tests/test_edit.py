"""diffrep train-corrective and diffrep edit: the corrective trains a few steps and loads; editing keeps the
image with ω = 0 and an anchor; bad options give one line and exit 2 before any work."""

import json

import pytest
import torch

import diffrep
from diffrep.cli import main
from diffrep.errors import InputError
from diffrep.methods.corrective import load_corrective
from diffrep.priors import default_gmm
from diffrep.spec import edit_methods
from diffrep.training.config import CorrectiveTrainConfig
from diffrep.training.corrective import train


def gmm_corrective(tmp_path):
    """A corrective for the gmm prior, trained two steps (enough to load and run)."""
    out = tmp_path / "gmm-corrective"
    train(CorrectiveTrainConfig(out=out, prior="gmm", steps=2, batch=2, data_n=8, channels=4, levels=2, device="cpu"))
    return out


def test_corrective_trains_a_few_steps_resumes_and_loads(tmp_path):
    config = CorrectiveTrainConfig(out=tmp_path / "c", prior="gmm", steps=4, batch=4, data_n=16, channels=4, levels=3,
                                   checkpoint_every=2, device="cpu")
    losses = []
    weights = train(config, callback=lambda d: losses.append(d["loss"]))
    assert len(losses) == 4 and all(map(torch.isfinite, map(torch.tensor, losses)))
    meta = json.loads((tmp_path / "c" / "corrective.json").read_text())
    assert meta["prior"] == "gmm" and meta["training"]["step"] == 4
    model = load_corrective(weights, default_gmm(), "gmm")
    assert model(torch.zeros(1, 3, 16, 16), torch.tensor([500])).shape == (1, 3, 16, 16)
    more = train(CorrectiveTrainConfig(**{**config.__dict__, "steps": 6}), resume=True, callback=lambda d: losses.append(d["step"]))
    assert losses[4:] == [5, 6] and more == weights


def test_train_corrective_command(tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["train-corrective", "--prior", "gmm", "--out", str(out), "--steps", "2", "--batch", "2",
                 "--data-n", "8", "--channels", "4", "--levels", "2", "--device", "cpu"]) == 0
    assert (out / "corrective.safetensors").is_file() and (out / "train_log.jsonl").is_file()
    assert main(["train-corrective", "--prior", "nope", "--out", str(tmp_path / "d")]) == 2
    assert "unknown prior 'nope'" in capsys.readouterr().err


def test_an_interrupted_training_names_its_checkpoint_and_resumes(tmp_path, capsys, monkeypatch):
    """Ctrl-C in train-corrective: exit 130 and a last line naming the checkpoint kept; the same command with --resume
    then finishes the run."""
    import diffrep.cli as cli

    out, real_call = tmp_path / "c", cli.Progress.__call__
    argv = ["train-corrective", "--prior", "gmm", "--out", str(out), "--steps", "4", "--batch", "2", "--data-n", "8",
            "--channels", "4", "--levels", "2", "--device", "cpu", "--checkpoint-every", "2"]

    def interrupt_at_3(self, d):
        if d["step"] == 3:
            raise KeyboardInterrupt
        real_call(self, d)

    monkeypatch.setattr(cli.Progress, "__call__", interrupt_at_3)
    assert main(argv) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"diffrep: interrupted; the checkpoint of step 2 is kept in {out}/; the same command with --resume continues "
        "from it")
    monkeypatch.setattr(cli.Progress, "__call__", real_call)
    assert main([*argv, "--resume"]) == 0 and (out / "corrective.safetensors").is_file()


def test_perturbations_leave_every_other_image_clean_and_stay_under_their_bound():
    from diffrep.training.corrective import perturbations

    d = perturbations((64, 3, 16, 16), 0.5, torch.Generator().manual_seed(0))
    rms = d.pow(2).mean((1, 2, 3)).sqrt()
    assert (rms[0::2] == 0).all() and (rms[1::2] > 0).all() and (rms[1::2] <= 0.5 + 1e-6).all()
    flat = d[1::2].flatten(2).std(2).max(1).values < 1e-6  # one cell: a constant colour cast
    fine = (d[1::2, :, 1:] - d[1::2, :, :-1]).abs().mean((1, 2, 3)) > rms[1::2]  # cells of one pixel: a checkerboard-like field
    assert flat.any() and fine.any() and not (flat | fine).all()


def test_perturbed_lk_loss_asks_b_hat_of_x_plus_delta_for_x0_hat_plus_delta():
    from diffrep.priors.base import noise_levels
    from diffrep.training.corrective import lk_loss, perturbations

    prior = default_gmm()
    g = torch.Generator().manual_seed(0)
    x = prior.sample_x0(6, generator=g)
    x = (x[0] if isinstance(x, tuple) else x).float()
    t, eps = torch.randint(0, 1000, (6,), generator=g), torch.randn(6, 3, 16, 16, generator=g)
    delta = perturbations(x.shape, 0.5, g)
    a, s = noise_levels(prior.alphas_cumprod, t, x.dtype)
    x0_hat = (a * x + s * eps - s * prior.eps(a * x + s * eps, t, None)) / a
    exact = lambda inp, tt: inp - x + x0_hat  # b̂(x + δ) = x̂_0 + δ: what a perfect perturbed corrective gives  # noqa: E731
    assert lk_loss(exact, (x, t, eps, delta), g, prior=prior)[0].item() < 1e-6
    assert lk_loss(exact, (x, t, eps, torch.zeros_like(x)), g, prior=prior)[0].item() < 1e-6  # δ = 0: the clean loss
    assert lk_loss(lambda inp, tt: x0_hat, (x, t, eps, delta), g, prior=prior)[0].item() > 1.0  # dropping δ is wrong


def test_train_corrective_with_perturb_trains_and_records_it(tmp_path):
    out = tmp_path / "c"
    assert main(["train-corrective", "--prior", "gmm", "--out", str(out), "--steps", "2", "--batch", "4", "--data-n", "8",
                 "--channels", "4", "--levels", "2", "--perturb", "0.3", "--device", "cpu"]) == 0
    assert json.loads((out / "corrective.json").read_text())["training"]["perturb"] == 0.3
    assert load_corrective(out, default_gmm(), "gmm")(torch.zeros(1, 3, 16, 16), torch.tensor([5])).isfinite().all()


def test_train_corrective_refuses_a_perturbation_bound_out_of_range_before_any_work(tmp_path, capsys):
    for bad in ("-0.1", "3", "nan"):
        assert main(["train-corrective", "--prior", "gmm", "--out", str(tmp_path / "c"), "--perturb", bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"perturb={float(bad)}" in err[0] and "[0, 2]" in err[0]
    assert not (tmp_path / "c").exists()


def save_png(x, path):
    from diffrep.export import image_grid

    image_grid(x).save(path)


def red_square():
    x = -torch.ones(3, 16, 16)
    x[0, 4:12, 4:12] = 1
    return x


@pytest.mark.parametrize("method,extra,tol", [("dds", {"source_prompt": "red"}, 1e-6), ("sds", {}, 0.2)])
def test_edit_keeps_the_image_with_guidance_zero_and_an_anchor(method, extra, tol):
    x = red_square()
    r = diffrep.edit("gmm", x, prompt="red", method=method, anchor=1.0, guidance_scale=0.0, iters=30, lr=1e-2, **extra)
    assert r.images.shape == (1, 3, 16, 16)
    assert (r.images[0] - x).abs().mean() < tol, (r.images[0] - x).abs().mean()


def test_edit_moves_towards_the_prompt_without_anchor():
    x = red_square()
    r = diffrep.edit("gmm", x, prompt="blue", method="dds", source_prompt="red", anchor=0.0, guidance_scale=7.5,
                     iters=60, lr=5e-2)
    assert (r.images[0] - x).abs().mean() > 0.05


@pytest.mark.parametrize("args,message", [
    (["--method", "dds"], "method 'dds' needs a source prompt"),
    (["--method", "sds", "--source-prompt", "red"], "option --source-prompt is for method dds"),
    (["--method", "lmc-sds"], "method 'lmc-sds' needs a trained corrective"),
    (["--method", "lmc-sds", "--corrective", "perturbed"], "needs a trained corrective: no perturbed one is shipped"),
    (["--method", "ddim"], "method 'ddim' does not optimise a rep; edit takes a mode-seeking method: sds, sjc, nfsd, dds, "
                           "ms-sds, lmc-sds"),
    (["--method", "nfds"], "unknown method 'nfds' (did you mean 'nfsd'?); allowed: sds, sjc, nfsd, dds, ms-sds, lmc-sds"),
    (["--method", "sds", "--anchor", "-1"], "anchor=-1.0 is not allowed"),
    (["--method", "sds", "--image", "/nonexistent.png"], "does not exist"),
])
def test_edit_bad_options_one_line_exit_2(tmp_path, capsys, args, message):
    img = tmp_path / "in.png"
    save_png(red_square()[None], img) if "--image" not in args else None
    argv = ["edit", "--prior", "gmm", "--prompt", "blue", "--out", str(tmp_path / "o")]
    argv += ([] if "--image" in args else ["--image", str(img)]) + args
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()


def test_edit_command_writes_the_edit(tmp_path, capsys):
    img = tmp_path / "in.png"
    save_png(red_square()[None], img)
    for method in edit_methods():  # the command takes what diffrep.edit takes: every method that optimises a rep
        out = tmp_path / method
        extra = {"dds": ["--source-prompt", "red"], "lmc-sds": ["--corrective", str(gmm_corrective(tmp_path))]}
        assert main(["edit", "--image", str(img), "--prior", "gmm", "--prompt", "blue", "--method", method,
                     "--iters", "5", "--out", str(out), *extra.get(method, [])]) == 0, capsys.readouterr().err
        assert (out / "samples.png").is_file()
        assert json.loads((out / "run.json").read_text())["config"]["method"] == method
    with pytest.raises(InputError, match="needs a source prompt"):
        diffrep.edit("gmm", red_square(), method="dds")


@pytest.mark.parametrize("method,extra", [("sds", {}), ("dds", {"source_prompt": "red"}), ("nfsd", {}),
                                          ("lmc-sds", {"projection": "none"})])
def test_edit_at_the_default_options_reaches_the_target(method, extra):
    """A flat red image edited towards "blue" on the analytic gmm prior ends nearer the blue mode than the red one
    (at the former defaults lr 2e-2, λ = 0.1 every method stopped half-way, RMS 0.5-0.6 to blue, 0.7-0.8 to red)."""
    red, blue = (torch.tensor(c)[:, None, None].expand(3, 16, 16) * 0.8 for c in ([1.0, -1, -1], [-1.0, -1, 1]))
    x = diffrep.edit("gmm", red.clone(), prompt="blue", method=method, **extra).images[0]
    rms = lambda a, b: (a - b).pow(2).mean().sqrt().item()  # noqa: E731
    assert rms(x, blue) < 0.5 * rms(x, red), (rms(x, blue), rms(x, red))


def test_edit_defaults_agree_between_the_cli_the_api_and_the_options():
    import dataclasses
    import inspect

    from diffrep.cli import EditArgs
    from diffrep.spec import edit_options

    cli = {f.name: f.default for f in dataclasses.fields(EditArgs)}
    spec = inspect.signature(edit_options).parameters
    assert all(cli[k] == spec[k].default for k in ("anchor", "iters", "lr", "t_range"))
    assert inspect.signature(diffrep.edit).parameters["anchor"].default == cli["anchor"]
