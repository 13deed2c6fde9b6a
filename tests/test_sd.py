"""The diffusers priors (sd, if) on tiny random-weight folders built here: loading, ε/v, guidance batching,
latents, every kind of rep and method through them, the command line and its one-line errors. No network:
every test runs with sockets refused and HF_HUB_OFFLINE=1, so anything that tries to download fails."""

from __future__ import annotations

import builtins
import os
import shutil
import socket

import pytest
import torch

pytest.importorskip("diffusers")

import diffrep  # noqa: E402
import diffrep.spec  # noqa: E402
from diffrep.cli import main  # noqa: E402
from diffrep.errors import InputError  # noqa: E402
from diffrep.priors import Prior, eps_cond_uncond, latent, load, prior_config  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore")


class NetworkUsed(AssertionError):
    pass


def refuse(*args, **kwargs):
    raise NetworkUsed(f"a test tried to reach the network: {args!r}")


@pytest.fixture(scope="module", autouse=True)
def offline():
    """Sockets refused and the hub offline for the whole module (fixtures included)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setattr(socket.socket, "connect", refuse)
        mp.setattr(socket, "create_connection", refuse)
        yield


def test_the_network_is_refused():
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    with pytest.raises(NetworkUsed):
        socket.create_connection(("huggingface.co", 443))
    with pytest.raises(NetworkUsed):
        socket.socket().connect(("10.0.0.1", 443))


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory, offline):
    from diffrep.priors.sd_tiny import make_tiny_sd

    return make_tiny_sd(tmp_path_factory.mktemp("sd") / "tiny-sd")


@pytest.fixture(scope="module")
def sd(sd_folder):
    return load(f"sd:{sd_folder}")


@pytest.fixture(scope="module")
def if_folder(tmp_path_factory, offline):
    from diffrep.priors.sd_tiny import make_tiny_if

    return make_tiny_if(tmp_path_factory.mktemp("if") / "tiny-if")


def raw_unet(prior, x, t, cond):
    with torch.no_grad():
        return prior.unet(x, t, encoder_hidden_states=prior.states(cond, len(x))).sample


# Loading.

def test_sd_loads_with_latent_shapes_and_dtypes(sd):
    assert isinstance(sd, Prior) and latent(sd)
    assert sd.image_shape == (4, 8, 8) and sd.alphas_cumprod.shape == (1000,) and sd.prediction_type == "epsilon"
    c = sd.encode_prompt("a red mug")
    assert c.shape == (16, 32) and sd.encode_prompt("a red mug") is c  # the prompt-embedding cache
    assert sd.encode_prompt("") is None and sd.encode_prompt(None) is None
    x, t = torch.randn(2, 4, 8, 8), torch.tensor([10, 900])
    eps = sd.eps(x, t, c)
    assert eps.shape == x.shape and eps.dtype == torch.float32 and torch.isfinite(eps).all()
    assert torch.equal(eps, raw_unet(sd, x, t, c))  # an ε model's output as it is
    # SD's own schedule: scaled linear, beta 0.00085 .. 0.012.
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    assert torch.allclose(sd.alphas_cumprod.double(), torch.cumprod(1 - betas, 0), atol=1e-6)


def test_v_prediction_is_converted_to_eps(tmp_path):
    from diffrep.priors.sd_tiny import make_tiny_sd

    prior = load(f"sd:{make_tiny_sd(tmp_path / 'v', prediction_type='v_prediction')}")
    assert prior.prediction_type == "v_prediction"
    x, t = torch.randn(3, 4, 8, 8), torch.tensor([0, 500, 999])
    v = raw_unet(prior, x, t, None).double()
    ab = prior.alphas_cumprod.double()[t].view(-1, 1, 1, 1)
    expected = ab.sqrt() * v + (1 - ab).sqrt() * x.double()  # ε = a_t v + s_t x_t, by hand
    assert torch.allclose(prior.eps(x, t, None).double(), expected, atol=1e-5)


def test_guidance_pair_is_one_batched_call_equal_to_two(sd):
    x, t = torch.randn(2, 4, 8, 8), torch.tensor([100, 700])
    c, neg = sd.encode_prompt("a red mug"), sd.encode_prompt("a blue ball")
    calls = []
    hook = sd.unet.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    try:
        for uncond in (None, neg):
            calls.clear()
            eps_c, eps_u = eps_cond_uncond(sd, x, t, c, uncond)
            assert calls == [4]
            assert torch.allclose(eps_c, sd.eps(x, t, c), atol=1e-5)
            assert torch.allclose(eps_u, sd.eps(x, t, uncond), atol=1e-5)
    finally:
        hook.remove()
    # per-element conditions: each image its own prompt, None the empty prompt
    both = sd.eps(x, t, [c, None])
    assert torch.allclose(both[1:], sd.eps(x[1:], t[1:], None), atol=1e-5)


def test_a_large_batch_is_evaluated_in_parts_equal_to_one(sd, monkeypatch):
    """The UNet sees at most ``eval_batch`` images a call (its activations bounded whatever the run's n), per-element
    prompts and timesteps split with the images: the same ε as one call."""
    x, t = torch.randn(5, 4, 8, 8), torch.tensor([10, 200, 400, 600, 900])
    conds = [sd.encode_prompt("a red mug"), None, sd.encode_prompt("a blue ball"), None, sd.encode_prompt("a red mug")]
    whole = sd.eps(x, t, conds)
    calls = []
    monkeypatch.setattr(sd, "eval_batch", 2)
    hook = sd.unet.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    try:
        parts = sd.eps(x, t, conds)
    finally:
        hook.remove()
    assert calls == [2, 2, 1]
    torch.testing.assert_close(parts, whole, atol=1e-5, rtol=1e-5)


def test_latents_decode_and_encode(sd):
    z = torch.randn(3, 4, 8, 8)
    rgb = sd.decode(z)
    assert rgb.shape == (3, 3, 64, 64) and torch.isfinite(rgb).all()
    assert sd.encode(rgb).shape == z.shape
    x = torch.rand(1, 3, 64, 64, requires_grad=True)
    sd.encode(x).sum().backward()  # the encoder carries the gradient to the RGB
    assert x.grad is not None and x.grad.abs().sum() > 0


def hooked_dtypes(module):
    """The dtypes of the inputs ``module`` is called with, while the hook is in place."""
    seen = []
    return seen, module.register_forward_pre_hook(lambda m, i: seen.append(i[0].dtype))


def test_fp16_vae_is_upcast_to_fp32(sd):
    """fp16 networks, the VAE in fp32 for encode and decode (SD's VAE gives NaN in fp16; diffusers' force_upcast).
    On the CPU: the dtype path, with the modules of the fp32 prior cast to fp16."""
    import copy

    from diffrep.priors.sd import SDPrior, vae_dtype

    unet, vae, text = (copy.deepcopy(m).half() for m in (sd.unet, sd.vae, sd.text_encoder))
    prior = SDPrior(unet, vae, text, sd.tokenizer, sd.alphas_cumprod)
    assert prior.dtype == torch.float16 and next(prior.unet.parameters()).dtype == torch.float16
    assert prior.vae_dtype == torch.float32 and {p.dtype for p in prior.vae.parameters()} == {torch.float32}
    for part, run in ((prior.vae.decoder, lambda: prior.decode(torch.randn(2, 4, 8, 8))),
                      (prior.vae.encoder, lambda: prior.encode(torch.rand(1, 3, 64, 64) * 2 - 1))):
        seen, hook = hooked_dtypes(part)
        try:
            out = run()
        finally:
            hook.remove()
        assert seen == [torch.float32] and out.dtype == torch.float32 and torch.isfinite(out).all()
    # the rule: fp16 only, and only where the VAE's config does not opt out
    assert vae_dtype(torch.float16, sd.vae.config) == torch.float32
    assert vae_dtype(torch.float16, {"force_upcast": False}) == torch.float16
    assert vae_dtype(torch.bfloat16, {}) == torch.bfloat16 and vae_dtype(torch.float32, {}) == torch.float32


def test_the_loader_reads_the_vae_in_fp32_for_fp16(sd_folder):
    """``load_sd`` with dtype fp16 (forced past the config's CUDA check, to run here): UNet and text encoder in
    fp16, the VAE read in fp32, decode finite."""
    from diffrep.priors.sd import load_sd

    config = prior_config(f"sd:{sd_folder}")
    object.__setattr__(config, "dtype", "fp16")  # the config refuses fp16 without CUDA; the loader is what is tested
    prior = load_sd(config)
    assert next(prior.unet.parameters()).dtype == torch.float16
    assert next(prior.text_encoder.parameters()).dtype == torch.float16
    assert {p.dtype for p in prior.vae.parameters()} == {torch.float32}
    assert torch.isfinite(prior.decode(torch.randn(1, 4, 8, 8))).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (fp16)")
def test_fp16_on_cuda_samples_finite_latents_and_decodes(sd_folder):
    prior = load(f"sd:{sd_folder}", device="cuda", dtype="fp16")
    assert prior.vae_dtype == torch.float32
    result = diffrep.sample(prior, rep="siren", method="ddrep", steps=2, adam_iters=2, n=1, width=16, depth=1,
                            prompt="a red mug")
    assert torch.isfinite(result.images).all()


# Every method and rep through it.

def test_ddrep_and_sds_on_siren_latents_are_decoded(sd):
    for method, opts in (("ddrep", {"steps": 2, "adam_iters": 2}), ("sds", {"iters": 2})):
        result = diffrep.sample(sd, rep="siren", method=method, prompt="a red mug", n=1, width=16, depth=1, **opts)
        assert result.images.shape == (1, 3, 64, 64), method  # the rep's 4×8×8 latents, decoded
        assert result.info["prior_evaluations"] > 0 and torch.isfinite(result.images).all()


def test_rgb_renders_are_encoded_with_gradient(sd_folder):
    prior = load(f"sd:{sd_folder}", rgb=True, rgb_res=16)
    assert prior.image_shape == (3, 16, 16) and not latent(prior)
    rep = prior.wrap_rep(diffrep.reps.make_rep("siren", prior.image_shape, 1, generator=torch.Generator(), width=8, depth=1))
    z = rep(None)
    assert z.shape == (1, 1, 4, 8, 8)
    z.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in rep.parameters())
    assert all(not k.startswith(("vae", "prior")) for k in rep.state_dict())  # the encoder is not the rep's
    with pytest.raises(InputError, match="rgb=True prior denoises the latents"):
        prior.eps(torch.zeros(1, 3, 16, 16), torch.tensor([5]), None)


@pytest.mark.parametrize("method", ["sds", "ddrep"])
def test_nerf_renders_rgb_through_the_encoder(sd_folder, method):
    prior = load(f"sd:{sd_folder}", rgb=True, rgb_res=16)
    opts = {"steps": 2, "adam_iters": 1, "views_per_step": 2} if method == "ddrep" else {"iters": 2, "views_per_step": 2}
    result = diffrep.sample(prior, rep="nerf", method=method, prompt="a duck", n=1, resolution=8, samples=8, bank=4, **opts)
    assert result.images.shape[:3] == (1, 3, 16) and torch.isfinite(result.images).all()  # RGB views, not latents
    assert type(result.rep).__name__ == "NerfRep"  # the rendering NeRF, for meshes and turntables


def test_ddrep_on_a_nerf_through_the_encoder_takes_the_whole_view_solve(sd_folder, tmp_path, capsys):
    """Through an rgb=True prior's encoder the NeRF's DDRep defaults are 10 Adam iterations on every pixel
    (``RepEntry.encoded_defaults``), from Python and the command line; a given option still wins."""
    import json

    small = {"resolution": 8, "samples": 8, "bank": 4, "views_per_step": 2}
    rgb = load(f"sd:{sd_folder}", rgb=True, rgb_res=16)
    used = diffrep.sample(rgb, rep="nerf", method="ddrep", prompt="a duck", steps=1, **small).info["config"]["method_options"]
    assert (used["adam_iters"], used["pixel_fraction"]) == (10, 1.0)
    used = diffrep.sample(rgb, rep="nerf", method="ddrep", prompt="a duck", steps=1, adam_iters=3,
                          **small).info["config"]["method_options"]
    assert (used["adam_iters"], used["pixel_fraction"]) == (3, 1.0)
    argv = ["sample", "--prior", f"sd:{sd_folder}", "--rgb", "--rgb-res", "16", "--rep", "nerf", "--method", "ddrep",
            "--steps", "1", "--nerf.resolution", "8", "--nerf.samples", "8", "--nerf.bank", "4",
            "--ddrep.views-per-step", "2", "--n", "1", "--prompt", "a duck", "--out", str(tmp_path / "o")]
    assert main(argv) == 0, capsys.readouterr().err
    used = json.loads((tmp_path / "o" / "run.json").read_text())["config"]["method_options"]
    assert (used["adam_iters"], used["pixel_fraction"]) == (10, 1.0)


def every_pair():
    from catalogue import PAIRS, allowed

    return [p for p in PAIRS if allowed(*p)]


@pytest.mark.parametrize("method,rep", every_pair())
def test_every_method_runs_on_every_rep_through_stable_diffusion(sd, sd_folder, tmp_path, method, rep):
    """Issue 14's "every method on every diffrep": each allowed pair of the tables runs one step on the tiny
    Stable Diffusion, latents rendered directly, except the NeRF, which renders RGB through the encoder
    (``rgb=True``); lmc-sds with a corrective made for this prior, dds with its source prompt."""
    from dataclasses import fields, is_dataclass

    from test_registry import SHORT, TINY

    from diffrep.methods import METHODS
    from diffrep.methods.corrective import Corrective, CorrectiveConfig, prior_fingerprint, save_corrective

    prior = load(f"sd:{sd_folder}", rgb=True, rgb_res=16) if rep == "nerf" else sd
    entry = METHODS[method]
    options = {} if entry.image else TINY[rep] | {k: v for k, v in SHORT.items()
                                                  if any(k in {g.name for g in fields(f.default)}
                                                         for f in fields(entry.config) if is_dataclass(f.default))}
    if rep == "canvas":
        options["size"] = 16  # latents 8x8: a canvas of twice the prior's side
    if method == "lmc-sds":
        save_corrective(Corrective(sd.image_shape, len(sd.alphas_cumprod), CorrectiveConfig(4, 2)), tmp_path / "c",
                        prior_fingerprint(sd, "sd"), {})
        options["corrective"] = str(tmp_path / "c")
    if method == "dds":
        options["source_prompt"] = "a red mug"
    steps = []
    result = diffrep.sample(prior, rep=rep, method=method, prompt="a blue mug", n=1, steps=1,
                            callback=lambda d: steps.append(d["step"]), **options)
    assert steps == [1] and torch.isfinite(result.images).all()
    assert result.images.shape[1] == 3  # decoded to RGB, whatever the rep rendered


def test_command_line_samples_with_a_local_folder(sd_folder, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["sample", "--prior", f"sd:{sd_folder}", "--rep", "siren", "--method", "sds", "--optim.iters", "2",
            "--siren.width", "8", "--siren.depth", "1", "--n", "1", "--out", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    assert (out / "samples.png").exists() and (out / "rep.safetensors").exists()
    import json

    assert json.loads((out / "run.json").read_text())["config"]["prior"] == f"sd:{sd_folder}"
    from diffrep.priors import config_record, prior_config

    assert config_record(prior_config(f"sd:{sd_folder}")) == {"prior": f"sd:{sd_folder}"}  # the API's record, the same


def test_command_line_prior_options_reach_the_prior(sd_folder, tmp_path, capsys):
    """--rgb, --rgb-res, --attention-slicing, --cpu-offload, --device, --dtype: the sd prior's options on the command line."""
    out = tmp_path / "rgb"
    argv = ["sample", "--prior", f"sd:{sd_folder}", "--rgb", "--rgb-res", "16", "--attention-slicing", "--cpu-offload",
            "--device", "cpu", "--dtype", "fp32", "--rep", "siren", "--method", "sds", "--optim.iters", "2",
            "--siren.width", "8", "--siren.depth", "1", "--n", "1", "--out", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    import json

    from safetensors.torch import load_file

    config = json.loads((out / "run.json").read_text())["config"]
    assert config["image_shape"] == [3, 16, 16]  # RGB renders, not latents
    assert config["prior_options"] == {"device": "cpu", "dtype": "fp32", "attention_slicing": True, "cpu_offload": True,
                                       "rgb": True, "rgb_res": 16}
    assert load_file(out / "samples.safetensors")["images"].shape[-3:] == (3, 16, 16)


# One-line errors.

def one_line_error(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("diffrep: error: "), err
    return err[0]


def test_missing_model_says_where_it_looked(tmp_path, capsys):
    err = one_line_error(["sample", "--prior", f"sd:{tmp_path / 'nothing'}", "--out", str(tmp_path / "o")], capsys)
    assert "nothing" in err and "diffusers folder" in err
    err = one_line_error(["sample", "--prior", "someone/not-downloaded", "--out", str(tmp_path / "o")], capsys)
    assert "unknown prior" in err  # a hub id is sd:ID
    err = one_line_error(["sample", "--prior", "sd:someone/not-downloaded", "--out", str(tmp_path / "o")], capsys)
    assert "Hugging Face cache" in err and "huggingface-cli download" in err
    err = one_line_error(["sample", "--prior", "sd", "--out", str(tmp_path / "o")], capsys)
    assert "needs a model" in err
    err = one_line_error(["sample", "--prior", "gmm:x", "--out", str(tmp_path / "o")], capsys)
    assert "takes no argument" in err and "sd:PATH" in err
    assert not (tmp_path / "o").exists()


def test_a_folder_without_safetensors_is_refused(sd_folder, tmp_path):
    folder = shutil.copytree(sd_folder, tmp_path / "bin")
    for f in (folder / "unet").glob("*.safetensors"):
        f.rename(f.with_suffix(".bin"))
    with pytest.raises(InputError, match="no .safetensors weights in unet"):
        prior_config(f"sd:{folder}")


def test_without_diffusers_the_error_names_the_extra(sd_folder, monkeypatch, capsys, tmp_path):
    real = builtins.__import__

    def no_diffusers(name, *args, **kwargs):
        if name.split(".")[0] in ("diffusers", "huggingface_hub"):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_diffusers)
    with pytest.raises(InputError, match=r"pip install 'diffrep\[diffusers\]'"):
        load(f"sd:{sd_folder}")
    err = one_line_error(["sample", "--prior", f"sd:{sd_folder}", "--out", str(tmp_path / "o")], capsys)
    assert "diffrep[diffusers]" in err


def test_options_are_checked_before_loading(sd_folder):
    with pytest.raises(InputError, match="dtype='fp16' needs a CUDA device"):
        prior_config(f"sd:{sd_folder}", dtype="fp16")
    with pytest.raises(InputError, match="device='tpu'"):
        prior_config(f"sd:{sd_folder}", device="tpu")
    with pytest.raises(InputError, match="give path once"):
        prior_config(f"sd:{sd_folder}", path=str(sd_folder))
    config = prior_config(f"sd:{sd_folder}", attention_slicing=True, cpu_offload=True)
    prior = diffrep.priors.load_config(config)  # slicing and offloading change where, not what
    x, t = torch.randn(1, 4, 8, 8), torch.tensor([300])
    assert prior.eps(x, t, None).shape == x.shape


def test_rgb_with_an_image_method_or_the_panorama_is_refused_before_loading(tmp_path):
    """From the config and the method/rep tables alone: in a fresh interpreter, on a folder no loader could read,
    each refusal is one line, exit 2, before torch is imported."""
    import subprocess
    import sys
    from pathlib import Path

    from catalogue import fake_sd_folder, rgb_misuse

    cases = rgb_misuse(str(fake_sd_folder(tmp_path / "fake-sd")))
    (tmp_path / "in.png").write_bytes(b"")  # exists (its path is checked first); never decoded: refused before
    code = ("import sys, diffrep.cli\n"
            f"codes = [diffrep.cli.main(argv) for argv, _ in {cases!r}]\n"
            "print(codes, sorted({'torch', 'numpy'} & set(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False,
                          env=os.environ | {"PYTHONPATH": str(Path(diffrep.__file__).parents[1])})
    assert done.stdout.strip() == f"{[2] * len(cases)} []", done.stderr
    errors = done.stderr.strip().splitlines()
    assert len(errors) == len(cases), errors
    for error, (argv, word) in zip(errors, cases):
        assert error.startswith("diffrep: error: ") and word in error, (argv, error)
    assert not (tmp_path / "o").exists()


def test_rgb_misuse_through_the_api(sd_folder):
    """A prior by name is checked before it loads; a loaded rgb prior before the run (no UNet call)."""
    config = prior_config(f"sd:{sd_folder}", rgb=True)
    for method, image, rep in (("ddim", True, "pixels"), ("sdedit", True, None), ("ddrep", False, "panorama")):
        with pytest.raises(InputError, match="image space" if image else "canvas"):
            diffrep.spec.check_run(config, method, image=image, rep=rep)
    diffrep.spec.check_run(config, "ddrep", image=False, rep="nerf")  # a diffrep method on a per-view rep: fine
    diffrep.spec.check_run(prior_config(f"sd:{sd_folder}"), "ddim", image=True, rep="panorama")  # latents: fine
    prior = load(f"sd:{sd_folder}", rgb=True, rgb_res=16)
    calls = []
    hook = prior.prior.unet.register_forward_hook(lambda *a: calls.append(1))
    try:
        with pytest.raises(InputError, match="image space"):
            diffrep.sample(prior, method="ddim", steps=2)
        with pytest.raises(InputError, match="image space"):
            diffrep.sdedit(prior, torch.zeros(3, 16, 16), steps=2)
        with pytest.raises(InputError, match="canvas"):
            diffrep.sample(prior, rep="panorama", method="sds", iters=2)
    finally:
        hook.remove()
    assert calls == []


# LMC-SDS: a corrective trained on a folder of images, VAE-encoded once.

@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """Five small images of different sizes (resized on loading) and a file that is not an image."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("images")
    g = torch.Generator().manual_seed(0)
    for i, (h, w) in enumerate([(48, 40), (64, 64), (30, 70), (64, 64), (20, 20)]):
        pixels = (torch.rand(h, w, 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / (f"{i:02d}.png" if i < 4 else f"{i:02d}.JPG"))
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_clean_images_of_a_folder_are_encoded_once_at_the_vae_resolution(sd, if_folder, image_folder):
    """Latents of a latent prior: each file read at the decoder's 64² and encoded alone (the slow twin) equals the
    batched encoding; a pixel prior (IF) takes the files at its own resolution as they are; data_n caps the count."""
    from diffrep.export import load_image
    from diffrep.training.config import data_files
    from diffrep.training.corrective import clean_images

    files = data_files(image_folder)
    assert [f.name for f in files] == ["00.png", "01.png", "02.png", "03.png", "04.JPG"]
    z = clean_images(sd, 10, torch.Generator(), folder=image_folder)
    assert z.shape == (5, 4, 8, 8) and z.dtype == torch.float32 and not z.requires_grad
    with torch.no_grad():
        twin = torch.cat([sd.encode(load_image(f, (64, 64))) for f in files])
    torch.testing.assert_close(z, twin, rtol=1e-4, atol=1e-5)
    assert torch.equal(clean_images(sd, 2, torch.Generator(), folder=image_folder), z[:2])
    pixels = clean_images(load(f"if:{if_folder}"), 10, torch.Generator(), folder=image_folder)
    assert torch.equal(pixels, torch.cat([load_image(f, (8, 8)) for f in files]))


def test_train_corrective_on_sd_needs_data_refused_before_loading(tmp_path, image_folder, capsys):
    """Without --data (or with a bad one) sd and if are refused in one line, exit 2, before the model is looked
    for (the path does not exist), nothing written."""
    out = tmp_path / "c"
    err = one_line_error(["train-corrective", "--prior", "sd:/no/such/model", "--out", str(out)], capsys)
    assert "--data DIR" in err and "clean images" in err
    err = one_line_error(["train-corrective", "--prior", "if:/no/such/model", "--out", str(out)], capsys)
    assert "--data DIR" in err
    err = one_line_error(["train-corrective", "--prior", "sd:/no/such/model", "--data", str(tmp_path / "none"),
                          "--out", str(out)], capsys)
    assert "is not a folder" in err
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.txt").write_text("x")
    err = one_line_error(["train-corrective", "--prior", "sd:/no/such/model", "--data", str(tmp_path / "empty"),
                          "--out", str(out)], capsys)
    assert "holds no images" in err
    err = one_line_error(["train-corrective", "--prior", "sd:/no/such/model", "--data", str(image_folder),
                          "--out", str(out)], capsys)
    assert "/no/such/model" in err  # with data, the model is looked for: not there
    assert not out.exists()


def test_lmc_sds_on_sd_with_a_corrective_trained_on_images(sd_folder, image_folder, tmp_path, capsys, monkeypatch):
    """train-corrective --data, then sample --method lmc-sds --lmc-sds.corrective DIR, both from the command line;
    the corrective is the one asked during the run, on the rep's latents, and on an rgb=True prior's encoded renders."""
    from diffrep.methods.corrective import Corrective

    corrective = tmp_path / "corr"
    assert main(["train-corrective", "--prior", f"sd:{sd_folder}", "--data", str(image_folder), "--out", str(corrective),
                 "--steps", "2", "--batch", "2", "--channels", "4", "--levels", "2", "--device", "cpu"]) == 0
    import json

    meta = json.loads((corrective / "corrective.json").read_text())
    assert meta["prior_class"] == "SDPrior" and meta["image_shape"] == [4, 8, 8]
    assert meta["training"]["data"] == str(image_folder)
    seen = []
    forward = Corrective.forward
    monkeypatch.setattr(Corrective, "forward", lambda self, x, t: seen.append(tuple(x.shape)) or forward(self, x, t))
    out = tmp_path / "lmc"
    argv = ["sample", "--prior", f"sd:{sd_folder}", "--rep", "siren", "--method", "lmc-sds", "--lmc-sds.corrective",
            str(corrective), "--optim.iters", "2", "--siren.width", "8", "--siren.depth", "1", "--n", "1",
            "--prompt", "a red mug", "--out", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    assert seen == [(1, 4, 8, 8)] * 2  # one corrective evaluation per iteration, on latents
    from safetensors.torch import load_file

    assert load_file(out / "samples.safetensors")["images"].shape == (1, 3, 64, 64)  # decoded
    # rgb=True renders are encoded: the same latent corrective fits them (here an RGB canvas, LMC-SDS's synthesis)
    rgb = load(f"sd:{sd_folder}", rgb=True, rgb_res=16)
    r = diffrep.sample(rgb, rep="canvas", method="lmc-sds", corrective=str(corrective), size=32, iters=2, prompt="a mug")
    assert seen[2:] == [(1, 4, 8, 8)] * 2 and r.images.shape == (1, 3, 32, 32)
    capsys.readouterr()
    # without a corrective: refused before loading, naming how to train one for sd
    err = one_line_error(["sample", "--prior", f"sd:{sd_folder}", "--method", "lmc-sds", "--out", str(tmp_path / "o")],
                         capsys)
    assert "--data IMAGES" in err and not (tmp_path / "o").exists()


# Editing an image with a latent prior: RGB in at the VAE's resolution, latents worked on, RGB out.

def test_edit_starts_at_the_images_latents_and_decodes(sd, sd_folder):
    """DDS with ω = 0 has no gradient and the anchor none at the start: the edit is the image's latents decoded,
    exactly; SDS moves them. SDEdit at strength 0 and RePaint with everything known give the same. With rgb=True
    the anchored pixels render through the encoder: DDS at ω = 0 returns the image itself."""
    x = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        expected = sd.decode(sd.encode(x[None])).clamp(-1, 1)
    keep = diffrep.edit(sd, x, prompt="a red mug", method="dds", source_prompt="a mug", guidance_scale=0.0, anchor=1.0,
                        iters=3)
    assert keep.images.shape == (1, 3, 64, 64) and torch.equal(keep.images, expected)
    moved = diffrep.edit(sd, x, prompt="a red mug", method="sds", anchor=0.1, iters=3, n=2)
    assert moved.images.shape == (2, 3, 64, 64) and torch.isfinite(moved.images).all()
    assert (moved.images - expected).abs().mean() > 1e-3 and moved.info["prior_evaluations"] > 0
    assert torch.equal(diffrep.sdedit(sd, x, strength=0.0, steps=4).images, expected)
    assert torch.equal(diffrep.inpaint(sd, x, torch.ones(8, 8), steps=4, rounds=1).images, expected)  # mask: latents'
    with pytest.raises(InputError, match=r"give RGB \(3, 64, 64\) in \[-1, 1\] \(VAE-encoded\) or latents \(4, 8, 8\)"):
        diffrep.edit(sd, torch.zeros(3, 32, 32), prompt="a red mug", method="sds", iters=2)
    rgb = load(f"sd:{sd_folder}", rgb=True, rgb_res=16)
    x16 = x[:, ::4, ::4].contiguous()
    keep = diffrep.edit(rgb, x16, prompt="a red mug", method="dds", source_prompt="a mug", guidance_scale=0.0, iters=3)
    assert torch.equal(keep.images[0], x16)
    moved = diffrep.edit(rgb, x16, prompt="a red mug", method="sds", iters=3)
    assert moved.images.shape == (1, 3, 16, 16) and (moved.images[0] - x16).abs().mean() > 1e-4


@pytest.mark.parametrize("method", ["dds", "sds"])
def test_command_line_edit_on_sd_reads_the_image_at_the_vae_resolution(sd, sd_folder, tmp_path, capsys, method):
    from PIL import Image
    from safetensors.torch import load_file

    from diffrep.export import load_image

    pixels = (torch.rand(40, 50, 3, generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8).numpy()
    Image.fromarray(pixels).save(tmp_path / "in.png")
    out = tmp_path / method
    extra = ["--source-prompt", "a mug", "--guidance-scale", "0"] if method == "dds" else []
    assert main(["edit", "--prior", f"sd:{sd_folder}", "--image", str(tmp_path / "in.png"), "--prompt", "a red mug",
                 "--method", method, "--iters", "2", "--out", str(out), *extra]) == 0, capsys.readouterr().err
    images = load_file(out / "samples.safetensors")["images"]
    assert images.shape == (1, 3, 64, 64)
    if method == "dds":  # ω = 0: the image's latents, decoded
        with torch.no_grad():
            assert torch.equal(images, sd.decode(sd.encode(load_image(tmp_path / "in.png", (64, 64)))).clamp(-1, 1))
    if method == "sds":
        return
    sdedit = tmp_path / "sdedit"
    assert main(["sdedit", "--prior", f"sd:{sd_folder}", "--image", str(tmp_path / "in.png"), "--steps", "4", "--n", "1",
                 "--out", str(sdedit)]) == 0
    assert load_file(sdedit / "samples.safetensors")["images"].shape == (1, 3, 64, 64)


# The canvas (LMC-SDS synthesis larger than the prior) on a latent prior.

def test_canvas_of_latents_is_decoded_and_an_rgb_canvas_is_encoded_per_view(sd, sd_folder):
    """Latents: the canvas is a [4, S, S] latent canvas, views are its windows, the result its decoding (8 S pixels).
    rgb=True: the canvas is RGB, each window resized to rgb_res then VAE-encoded; the result is the canvas itself."""
    r = diffrep.sample(sd, rep="canvas", method="sds", size=16, whole_phase=0.5, iters=4, prompt="a red mug")
    theta = r.rep.theta.detach()
    assert theta.shape == (1, 4, 16, 16) and theta.abs().sum() > 0  # moved from its start at 0
    with torch.no_grad():
        assert r.images.shape == (1, 3, 128, 128) and torch.equal(r.images, sd.decode(theta).clamp(-1, 1))
    lmc = diffrep.sample(sd, rep="canvas", method="lmc-sds", projection="none", size=16, iters=2, prompt="a red mug")
    assert lmc.images.shape == (1, 3, 128, 128) and torch.isfinite(lmc.images).all()
    rgb = load(f"sd:{sd_folder}", rgb=True, rgb_res=16)
    r = diffrep.sample(rgb, rep="canvas", method="sds", size=32, whole_phase=0.5, iters=4, prompt="a red mug")
    assert type(r.rep).__name__ == "CanvasRep" and r.rep.theta.shape == (1, 3, 32, 32)  # the RGB canvas, not the encoder
    assert r.rep.theta.abs().sum() > 0 and torch.equal(r.images, r.rep.theta.detach().clamp(-1, 1))


def test_a_canvas_that_does_not_fit_is_refused_before_the_model_loads(sd_folder, if_folder, tmp_path, capsys,
                                                                        monkeypatch):
    """The resolution comes from the folder's unet/config.json (latents 8) or rgb_res, torch-free: the loader is
    never called."""
    from diffrep.priors import sd as sd_module
    from diffrep.priors.sd_config import model_resolution

    assert model_resolution(prior_config(f"sd:{sd_folder}")) == (8, 8)
    assert model_resolution(prior_config(f"sd:{sd_folder}", rgb=True, rgb_res=16)) == (16, 16)
    assert model_resolution(prior_config(f"if:{if_folder}")) == (8, 8)
    monkeypatch.setattr(sd_module, "sd_from_config", lambda *a, **k: pytest.fail("the model was loaded"))
    base = ["sample", "--prior", f"sd:{sd_folder}", "--rep", "canvas", "--method", "sds", "--out", str(tmp_path / "o")]
    assert "multiple of the prior's resolution 8" in one_line_error([*base, "--canvas.size", "12"], capsys)
    assert "multiple of the prior's resolution 16" in one_line_error([*base, "--rgb", "--rgb-res", "16",
                                                                      "--canvas.size", "24"], capsys)
    with pytest.raises(InputError, match="multiple of the prior's resolution 8"):
        diffrep.sample(f"sd:{sd_folder}", rep="canvas", method="sds", size=12)
    assert not (tmp_path / "o").exists()


def test_a_run_too_big_is_refused_before_the_model_loads(sd_folder, if_folder, tmp_path, capsys, monkeypatch):
    """The shape of what the prior denoises comes from unet/config.json (in_channels, sample_size) or rgb_res,
    torch-free, and equals the loaded prior's: the memory check runs before the loader, from the CLI and the API."""
    from diffrep.priors import deepfloyd, unloaded_shape
    from diffrep.priors import sd as sd_module

    shapes = {f"sd:{sd_folder}": {}, f"if:{if_folder}": {}, f"sd:{sd_folder} rgb": {"rgb": True, "rgb_res": 16}}
    for name, options in shapes.items():
        config = prior_config(name.split()[0], **options)
        assert unloaded_shape(config) == tuple(load(name.split()[0], **options).image_shape), name
    monkeypatch.setattr(sd_module, "sd_from_config", lambda *a, **k: pytest.fail("the model was loaded"))
    monkeypatch.setattr(deepfloyd, "if_from_config", lambda *a, **k: pytest.fail("the model was loaded"))
    for prior in (f"sd:{sd_folder}", f"if:{if_folder}"):
        line = one_line_error(["sample", "--prior", prior, "--method", "ddim", "--n", "100000000000",
                               "--out", str(tmp_path / "o")], capsys)
        assert "n=100000000000 needs about" in line and "GiB" in line, line
        with pytest.raises(InputError, match="n=100000000000 needs about"):
            diffrep.sample(prior, method="ddim", n=10**11)
    assert not (tmp_path / "o").exists()


# DeepFloyd IF.

def test_if_loads_and_keeps_the_eps_half_of_its_output(if_folder):
    prior = load(f"if:{if_folder}")
    assert isinstance(prior, Prior) and not latent(prior) and prior.image_shape == (3, 8, 8)
    c = prior.encode_prompt("a red mug")
    assert c.shape == (77, 32) and prior.encode_prompt("a red mug") is c  # 77 tokens, as IF's pipeline
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([10, 900])
    raw = raw_unet(prior, x, t, c)
    assert raw.shape == (2, 6, 8, 8)
    assert torch.equal(prior.eps(x, t, c), raw[:, :3])
    eps_c, eps_u = eps_cond_uncond(prior, x, t, c)
    assert torch.allclose(eps_c, prior.eps(x, t, c), atol=1e-5) and torch.allclose(eps_u, prior.eps(x, t, None), atol=1e-5)
    # IF's cosine schedule
    assert prior.alphas_cumprod[0] > 0.999 and prior.alphas_cumprod[-1] < 1e-3


def test_if_samples_pixels_and_sirens(if_folder):
    prior = load(f"if:{if_folder}")
    assert diffrep.sample(prior, method="ddim", steps=2, n=1, prompt="a duck").images.shape == (1, 3, 8, 8)
    result = diffrep.sample(prior, rep="siren", method="ddrep", steps=2, adam_iters=1, n=1, width=8, depth=1, prompt="a duck")
    assert result.images.shape == (1, 3, 8, 8)


def test_the_table_names_loaders_that_exist():
    from diffrep.lazy import Lazy
    from diffrep.priors import PRIORS

    for name in ("sd", "if"):
        assert isinstance(PRIORS[name].load, Lazy) and callable(PRIORS[name].load.resolve()), name
        assert PRIORS[name].argument == "path"


def test_the_config_module_imports_no_torch():
    """The command line validates sd:PATH before torch: the config module (loaded on its own here, since the
    priors package itself still imports torch) needs neither torch nor diffusers, even for a hub id."""
    import subprocess
    import sys
    from pathlib import Path

    import diffrep.priors.sd_config as sd_config

    code = ("import sys, importlib.util\n"
            f"spec = importlib.util.spec_from_file_location('sdc', {str(Path(sd_config.__file__))!r})\n"
            "m = importlib.util.module_from_spec(spec); sys.modules['sdc'] = m; spec.loader.exec_module(m)\n"
            "try:\n    m.SDPriorConfig(path='someone/not-downloaded')\nexcept Exception as e:\n    print(type(e).__name__)\n"
            "print(sorted({'torch', 'numpy', 'diffusers', 'transformers'} & set(sys.modules)))\n")
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, env=env)
    assert done.stdout.split() == ["InputError", "[]"], done.stderr
