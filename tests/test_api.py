import importlib
import json

import pytest
import torch
from catalogue import API_INPUTS, API_TOO_BIG

import diffrep
from diffrep.errors import InputError


def test_all_names_import():
    for name in diffrep.__all__:
        assert getattr(diffrep, name) is not None, name
    for mod in ("diffrep.priors", "diffrep.toyworld"):
        m = importlib.import_module(mod)
        for name in m.__all__:
            assert getattr(m, name) is not None, (mod, name)


def test_sample_result_shape_info_and_determinism():
    r = diffrep.sample("gmm", prompt="green", n=3, steps=10, seed=7)
    assert r.images.shape == (3, 3, 16, 16) and r.images.abs().max() <= 1
    assert r.info["prior_evaluations"] == 3 * 10 * 2 and r.info["seed"] == 7
    assert torch.equal(r.images, diffrep.sample("gmm", prompt="green", n=3, steps=10, seed=7).images)
    assert not torch.equal(r.images, diffrep.sample("gmm", prompt="green", n=3, steps=10, seed=8, eta=1.0).images)


def test_sample_follows_the_gmm_condition():
    r = diffrep.sample("gmm", prompt="yellow", n=8, steps=20, guidance_scale=1.0, method="ddpm")
    assert (r.images[:, :2].mean((0, 2, 3)) > 0.6).all() and r.images[:, 2].mean() < -0.6


def test_sample_rejects_bad_options():
    with pytest.raises(InputError, match="not available yet"):
        diffrep.sample("gmm", method="vsd")
    with pytest.raises(InputError, match="unknown option 'lr'"):
        diffrep.sample("gmm", lr=0.1)
    with pytest.raises(InputError, match=r"option 'resolutoin' for method 'ddrep' on rep 'nerf' \(did you mean "
                                         r"'resolution'\?\)$"):
        diffrep.sample("gmm", rep="nerf", method="ddrep", resolutoin=16)
    with pytest.raises(InputError, match=r"option 'adam_iter' .* \(did you mean 'adam_iters'\?\)$"):  # a nested one
        diffrep.sample("gmm", rep="nerf", method="ddrep", adam_iter=16)
    with pytest.raises(InputError, match=r"'camera_window' .*; it is an option of prior toyworld: give the prior "
                                         r"loaded with it, e.g. diffrep.priors.load\('toyworld', camera_window=...\)"):
        diffrep.sample("toyworld", rep="nerf", method="ddrep", camera_window=(20, 15))
    with pytest.raises(InputError, match="either prompt or cond"):
        diffrep.sample("gmm", prompt="red", cond=torch.tensor([True, False, False, False]))


def test_result_save_is_atomic_and_refuses_non_empty(tmp_path):
    r = diffrep.sample("gmm", n=1, steps=2)
    out = r.save(tmp_path / "r")
    assert (out / "run.json").exists()
    with pytest.raises(InputError, match="not empty"):
        r.save(out)
    r.save(out, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]  # no temporary folder left behind


class Stop(Exception):
    pass


def interrupted(ckpt, at_step: int, **kw) -> None:
    """Run ``diffrep.sample`` with checkpoints until the callback of step ``at_step`` stops it."""
    def stop(d):
        if d["step"] == at_step:
            raise Stop

    with pytest.raises(Stop):
        diffrep.sample("gmm", checkpoint=ckpt, callback=stop, **kw)


@pytest.mark.parametrize("method,options", [
    ("ddrep", {"rounds": 2, "width": 32, "depth": 2}),  # eta > 0: RePaint draws from the generator
    ("sds", {"iters": 6, "lr": 1e-2, "width": 32, "depth": 2}),
    ("sjc", {"iters": 6, "lr": 1e-2, "lr_schedule": "cosine", "width": 32, "depth": 2}),
])
def test_interrupted_run_resumes_bit_for_bit(tmp_path, method, options):
    kw = dict(rep="siren", method=method, prompt="red", n=2, steps=6, eta=0.5, seed=3, **options)
    full = diffrep.sample("gmm", **kw)
    ckpt = tmp_path / "run.checkpoint"
    interrupted(ckpt, 4, checkpoint_every=2, **kw)
    assert (ckpt / "state.safetensors").is_file()
    steps = []
    resumed = diffrep.sample("gmm", checkpoint=ckpt, checkpoint_every=2, resume=True,
                             callback=lambda d: steps.append(d["step"]), **kw)
    assert steps == [5, 6]  # continued after the checkpoint of step 4 (saved before the callback ran)
    assert torch.equal(full.images, resumed.images)
    assert not ckpt.exists()  # removed once the run completed


def test_resume_refuses_another_runs_checkpoint(tmp_path):
    kw = dict(rep="siren", method="ddrep", prompt="red", n=1, steps=4, width=32, depth=2)
    ckpt = tmp_path / "c"
    interrupted(ckpt, 3, checkpoint_every=1, **kw)
    with pytest.raises(InputError, match=r"belongs to another run \(differs in seed\)"):
        diffrep.sample("gmm", checkpoint=ckpt, checkpoint_every=1, resume=True, seed=9, **kw)
    with pytest.raises(InputError, match="checkpoints are written by the diffrep methods"):
        diffrep.sample("gmm", method="ddim", checkpoint=ckpt, resume=True)


class LatentGMM:
    """The gmm prior as if it were a latent prior: ``decode`` upsamples 2x (an RGB 'decoder')."""

    def __init__(self):
        self.inner = diffrep.priors.load("gmm", size=8)
        self.alphas_cumprod, self.image_shape = self.inner.alphas_cumprod, self.inner.image_shape

    def encode_prompt(self, text):
        return self.inner.encode_prompt(text)

    def eps(self, x_t, t, cond):
        return self.inner.eps(x_t, t, cond)

    def decode(self, latents):
        return torch.nn.functional.interpolate(latents, scale_factor=2, mode="nearest")


@pytest.mark.parametrize("rep,method", [("pixels", "ddim"), ("siren", "ddrep"), ("panorama", "ddrep")])
def test_latents_are_decoded_before_saving(tmp_path, rep, method):
    kw = {} if method == "ddim" else {"width": 16, "depth": 1}
    result = diffrep.sample(LatentGMM(), rep=rep, method=method, prompt="blue", n=2, steps=3, **kw)
    h = result.images.shape[-2]
    assert h == 16  # decoded: twice the prior's 8x8 latents
    if result.rep is not None:  # the rep itself renders latents
        assert result.rep(None).shape[-2:] == (8, 8)
    if rep == "panorama":
        assert result.views.shape[-2:] == (16, 16)
    result.save(tmp_path / "r")
    from safetensors.torch import load_file
    assert load_file(tmp_path / "r" / "samples.safetensors")["images"].shape[-2] == 16


@pytest.mark.parametrize("call,message", API_INPUTS)
def test_bad_api_input_is_one_input_error(call, message):
    with pytest.raises(InputError, match=message) as info:
        call()
    assert "\n" not in str(info.value)


def test_numpy_images_are_taken():
    import numpy as np

    result = diffrep.sdedit("gmm", np.zeros((3, 16, 16), dtype=np.float32), prompt="red", strength=0.3, steps=3)
    assert result.images.shape == (1, 3, 16, 16)


def test_image_paths_are_read_as_the_command_line_reads_them_and_a_bad_one_is_refused_before_the_prior_loads(
        tmp_path, monkeypatch):
    """sdedit, inpaint and edit take a PNG/JPEG path where they take an image (inpaint's mask too): the same result as
    the image read by ``load_image`` at the prior's resolution; a missing file is one InputError before the prior
    loads."""
    import diffrep.api
    from PIL import Image

    from diffrep.export import load_image, load_mask, to_uint8

    image, mask = tmp_path / "in.png", tmp_path / "mask.png"
    pixels = torch.linspace(-1, 1, 3 * 24 * 24).reshape(3, 24, 24)  # resized to the gmm's 16² when read
    Image.fromarray(to_uint8(pixels[None])[0].numpy()).save(image)
    Image.fromarray(to_uint8(torch.ones(1, 3, 16, 16).tril())[0].numpy()).save(mask)
    tensor = load_image(image, (16, 16))[0]
    for call in (lambda x, m: diffrep.sdedit("gmm", x, prompt="red", strength=0.5, steps=4, seed=1),
                 lambda x, m: diffrep.inpaint("gmm", x, m, prompt="red", steps=4, rounds=2, seed=1),
                 lambda x, m: diffrep.edit("gmm", x, prompt="blue", method="sds", iters=3, seed=1)):
        by_path, by_tensor = call(image, mask), call(tensor, load_mask(mask, (16, 16))[0])
        assert torch.equal(by_path.images, by_tensor.images)

    def boom(*args, **kwargs):
        raise AssertionError("the prior was loaded before the image was read")

    monkeypatch.setattr(diffrep.api, "load", boom)
    missing = tmp_path / "no.png"
    for call in (lambda: diffrep.sdedit("gmm", missing), lambda: diffrep.inpaint("gmm", image, missing),
                 lambda: diffrep.edit("gmm", str(missing), method="sds")):
        with pytest.raises(InputError, match="no.png' does not exist or is not a file"):
            call()


class NaNAfter:
    """The gmm prior, returning NaN from its ``k``-th call on (a fault injected into a run)."""

    def __init__(self, k: int):
        self.inner, self.k, self.calls = diffrep.priors.load("gmm"), k, 0
        self.alphas_cumprod, self.image_shape = self.inner.alphas_cumprod, self.inner.image_shape

    def encode_prompt(self, text):
        return self.inner.encode_prompt(text)

    def eps(self, x_t, t, cond):
        self.calls += 1
        eps = self.inner.eps(x_t, t, cond)
        return eps * float("nan") if self.calls >= self.k else eps


def test_non_finite_values_stop_the_run_and_keep_the_last_good_checkpoint(tmp_path):
    from safetensors.torch import load_file

    from diffrep.errors import RunError

    ckpt = tmp_path / "c"
    with pytest.raises(RunError, match="non-finite at step 4") as info:
        diffrep.sample(NaNAfter(4), rep="siren", method="ddrep", prompt="red", n=1, steps=6, width=16, depth=1,
                       guidance_scale=1.0, checkpoint=ckpt, checkpoint_every=1)
    assert "\n" not in str(info.value) and "last good checkpoint is kept" in str(info.value)
    state = load_file(ckpt / "state.safetensors")
    assert json.loads((ckpt / "state.json").read_text())["step"] == 3
    assert all(torch.isfinite(v).all() for k, v in state.items() if v.is_floating_point())


@pytest.mark.parametrize("call,message", API_TOO_BIG)
def test_runs_too_big_for_the_prior_or_the_machine_are_refused_before_the_work(call, message):
    with pytest.raises(InputError, match=message):
        call()


def test_a_prior_by_name_has_its_prompts_checked_before_it_loads(monkeypatch):
    """A toy-world prior loads its data set (generated on first use, ~30 s): bad words and a view in a NeRF's
    prompt are refused before that, in sample, sdedit and inpaint."""
    import diffrep.api

    def boom(*args, **kwargs):
        raise AssertionError("the prior was loaded before its prompt was checked")

    monkeypatch.setattr(diffrep.api, "load", boom)
    with pytest.raises(InputError, match="zebra"):
        diffrep.sample("toyworld", prompt="a red zebra")
    with pytest.raises(InputError, match=r"prompt 'a red mug, back view' names a view, .*no-view-prompts"):
        diffrep.sample("toyworld", rep="nerf", method="ddrep", prompt="a red mug, back view", resolution=4, bank=4)
    with pytest.raises(InputError, match=r"unknown word 'zebra' in prompt 'a red zebra, back view'"):  # its own
        diffrep.sample("toyworld", rep="nerf", method="ddrep", prompt="a red zebra, back view", resolution=4, bank=4)
    image = torch.zeros(3, 32, 32)
    with pytest.raises(InputError, match="zebra"):
        diffrep.sdedit("toyworld", image, prompt="a zebra")
    with pytest.raises(InputError, match="zebra"):
        diffrep.inpaint("toyworld", image, torch.ones(32, 32), prompt="a zebra")


def test_a_run_too_big_for_the_machine_is_refused_before_a_prior_by_name_loads(monkeypatch):
    """The memory estimate needs only the shape of the prior's images, which the toy world's config tells
    (``unloaded_shape``): a NeRF too big, or too many images, is refused before the data set is generated."""
    import diffrep.api
    from diffrep.priors import prior_config, unloaded_shape

    def boom(*args, **kwargs):
        raise AssertionError("the prior was loaded before the run's memory was checked")

    monkeypatch.setattr(diffrep.api, "load", boom)
    assert unloaded_shape(prior_config("toyworld", res=64)) == (3, 64, 64)
    assert unloaded_shape(prior_config("tiny")) == (3, 32, 32)  # from the shipped weights' tiny.json
    with pytest.raises(InputError, match=r"n=1 needs about .* GiB .* or smaller rep options"):
        diffrep.sample("toyworld", rep="nerf", method="ddrep", prompt="a yellow duck", resolution=2000)
    with pytest.raises(InputError, match=r"n=10000000000 needs about .* GiB .*; use a smaller n$"):
        diffrep.sample("toyworld", prompt="a red mug", n=10**10)
    with pytest.raises(InputError, match="GiB"):  # the tiny prior's shape from its tiny.json, before the U-Net loads
        diffrep.sample("tiny", n=10**10)
    for edit in (lambda: diffrep.sdedit("toyworld", torch.zeros(3, 32, 32), n=10**10),
                 lambda: diffrep.inpaint("toyworld", torch.zeros(3, 32, 32), torch.ones(32, 32), n=10**10)):
        with pytest.raises(InputError, match="GiB"):
            edit()


def test_run_json_records_the_prior_a_loaded_prior_came_from(tmp_path):
    from diffrep.priors import config_record, default_gmm, prior_config

    by_options = diffrep.sample(diffrep.priors.load("gmm", std=0.2), method="ddim", steps=2, prompt="red", n=1)
    assert by_options.info["config"]["prior"] == "gmm" and by_options.info["config"]["prior_options"] == {"std": 0.2}
    by_name = diffrep.sample("gmm", method="ddim", steps=2, prompt="red", n=1)
    assert by_name.info["config"]["prior"] == "gmm" and "prior_options" not in by_name.info["config"]
    by_hand = diffrep.sample(default_gmm(), method="ddim", steps=2, prompt="red", n=1)
    assert "prior" not in by_hand.info["config"]  # nothing to say where it came from: nothing said
    by_options.save(tmp_path / "run")
    assert json.loads((tmp_path / "run" / "run.json").read_text())["config"]["prior_options"] == {"std": 0.2}
    # the command line's form: the window as a list (an argument in the name: tests/test_sd.py)
    assert config_record(prior_config("toyworld", n=160_000, camera_window=(10, 10))) == {
        "prior": "toyworld", "prior_options": {"n": 160_000, "camera_window": [10.0, 10.0]}}
