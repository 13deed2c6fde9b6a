"""The catalogue of refused inputs: the lists of bad command lines and API calls that the tests run
(each must be one line, exit 2 or ``InputError``, nothing written) and that
``bench/scripts/reliability_figures.py`` runs again, each command line as a subprocess, to count
the outcomes per command (docs/reliability.md). One list each, here, so the two never drift."""

from __future__ import annotations

from dataclasses import fields, is_dataclass

import torch
from PIL import Image

import diffrep
from diffrep.cli import option_groups
from diffrep.methods import METHODS
from diffrep.reps import REPS, make_rep

FIRST_ERRORS: dict[str, dict[str, list[str]]] = {
    "sample": {"typo": ["sample", "--method", "ddrep", "--rep", "nerf", "--nerf.gird", "voxel", "--out", "o"],
               "bad_out": ["sample", "--method", "ddrep", "--rep", "nerf", "--out", "/proc/o"]},
    "sdedit": {"typo": ["sdedit", "--image", "in.png", "--strenght", "0.5", "--out", "o"],
               "bad_out": ["sdedit", "--image", "in.png", "--out", "/proc/o"]},
    "inpaint": {"typo": ["inpaint", "--image", "in.png", "--mask", "in.png", "--roundz", "2", "--out", "o"],
                "bad_out": ["inpaint", "--image", "in.png", "--mask", "in.png", "--out", "/proc/o"]},
    "toyworld": {"typo": ["toyworld", "--nn", "3", "--out", "o"], "bad_out": ["toyworld", "--n", "3", "--out", "/proc/o"]},
    "export": {"typo": ["export", "run", "--resolutoin", "64"], "bad_out": ["export", "no-such-run"]},
    "evaluate": {"typo": ["evaluate", "run", "--reference-m", "10"], "bad_out": ["evaluate", "no-such-run"]},
    "bench": {"typo": ["bench", "speed", "--quik"], "bad_out": ["bench", "speed", "--quick", "--results", "/proc/o"]},
    "train-prior": {"typo": ["train-prior", "--out", "o", "--stpes", "3"], "bad_out": ["train-prior", "--out", "/proc/o"]},
    "train-translator": {"typo": ["train-translator", "--out", "o", "--stpes", "3"],
                         "bad_out": ["train-translator", "--out", "/proc/o"]},
    "translate": {"typo": ["translate", "--weights", "w", "--image", "in.png", "--to", "duck", "--out", "o", "--overwirte"],
                  "bad_out": ["translate", "--weights", "w", "--image", "in.png", "--to", "duck", "--out", "/proc/o"]},
}
"""Per command, a typo and a bad output location (for export and evaluate: the run folder they write
into): each must be refused in one line before torch is imported, in well under a second."""

VALUES_BEFORE_TORCH = [  # values the tables and the shared options check: refused before torch is imported too
    ["sdedit", "--image", "no-such.png", "--out", "o"],  # a wrong input path (export.check_input_image)
    ["inpaint", "--image", "no-such.png", "--mask", "no-such.png", "--out", "o"],
    ["edit", "--image", "no-such.png", "--prompt", "blue", "--method", "sds", "--out", "o"],
    ["sample", "--eta", "-0.5", "--out", "o"],
    ["sample", "--n", "0", "--out", "o"],
    ["sample", "--rep", "siren", "--method", "ddrep", "--checkpoint-every", "-1", "--out", "o"],
    ["sample", "--rep", "siren", "--method", "ddrep", "--resume", "--out", "o"],
    ["sample", "--rep", "siren", "--method", "ddim", "--out", "o"],
    ["sample", "--rep", "canvas", "--method", "ddrep", "--out", "o"],  # a method the rep refuses (RepEntry.refuses)
    ["sample", "--rep", "canvas", "--method", "sds", "--canvas.whole-phase", "-0.5", "--out", "o"],
    ["sdedit", "--image", "in.png", "--strength", "1.5", "--out", "o"],
    ["inpaint", "--image", "in.png", "--mask", "in.png", "--rounds", "0", "--out", "o"],
    ["sample", "--method", "lmc-sds", "--lmc-sds.projection", "nope", "--out", "o"],
    ["sample", "--method", "lmc-sds", "--lmc-sds.projection", "none", "--lmc-sds.corrective", "d", "--out", "o"],
    ["sample", "--method", "lmc-sds", "--guidance-scale", "0", "--out", "o"],  # LMC-SDS divides by ω
    ["edit", "--image", "in.png", "--prompt", "blue", "--method", "lmc-sds", "--guidance-scale", "0", "--out", "o"],
    ["train-corrective", "--prior", "sd:/nonexistent", "--out", "o"],  # sd has no clean images: needs --data
    ["train-corrective", "--prior", "sd:/nonexistent", "--data", "no-such-dir", "--out", "o"],
]

PRIOR_OPTIONS_BEFORE_TORCH = [  # the prior's options, checked against its torch-free config (diffrep/priors/configs.py)
    ["sample", "--prior", "nosuch", "--out", "o"],
    ["sample", "--res", "48", "--out", "o"],
    ["sample", "--toyworld-n", "0", "--out", "o"],
    ["sample", "--prior", "gmm", "--res", "32", "--out", "o"],
    ["sample", "--rep", "canvas", "--method", "sds", "--canvas.size", "100", "--out", "o"],  # not a multiple of 32
    ["sample", "--prior", "gmm", "--rep", "canvas", "--method", "sds", "--canvas.size", "24", "--out", "o"],
    ["sample", "--prior", "tiny", "--prior-path", "/nonexistent/tiny.safetensors", "--out", "o"],
    ["sdedit", "--image", "in.png", "--prior", "nosuch", "--out", "o"],
    ["inpaint", "--image", "in.png", "--mask", "in.png", "--res", "48", "--out", "o"],
    ["bench", "table1", "--prior", "nosuch"],
    ["bench", "table1", "--prior", "tiny", "--prior-path", "/nonexistent/tiny.safetensors"],
    # the sd and if priors' options (diffrep/priors/sd_config.py), refused before their model is looked for
    ["sample", "--prior", "sd:/nonexistent", "--dtype", "fp64", "--out", "o"],
    ["sample", "--prior", "sd:/nonexistent", "--dtype", "fp16", "--out", "o"],  # fp16 needs --device cuda
    ["sample", "--prior", "sd:/nonexistent", "--device", "tpu", "--out", "o"],
    ["sample", "--prior", "sd:/nonexistent", "--rgb", "--rgb-res", "4", "--out", "o"],
    ["sample", "--prior", "if:/nonexistent", "--rgb", "--out", "o"],  # rgb is sd's only
    ["sample", "--prior", "if:/nonexistent", "--dtype", "bf16", "--device", "cpu", "--out", "o"],
    ["sample", "--prior", "gmm", "--cpu-offload", "--out", "o"],
    ["sdedit", "--image", "in.png", "--prior", "toyworld", "--attention-slicing", "--out", "o"],
    # a camera window: its angles, and a rep whose views have cameras (diffrep.spec.check_cameras)
    ["sample", "--rep", "nerf", "--method", "ddrep", "--camera-window", "300", "20", "--out", "o"],
    ["sample", "--rep", "nerf", "--method", "ddrep", "--camera-window", "20", "0", "--out", "o"],
    ["sample", "--rep", "siren", "--method", "ddrep", "--camera-window", "20", "15", "--out", "o"],
    ["sample", "--camera-window", "20", "15", "--out", "o"],  # ddim on pixels: images have no camera
    ["sample", "--prior", "gmm", "--rep", "nerf", "--method", "ddrep", "--camera-window", "20", "15", "--out", "o"],
    # the toy world's prompts, against its torch-free vocabulary (diffrep/toyworld/vocabulary.py)
    ["sample", "--prompt", "a red zebra", "--out", "o"],
]



def fake_sd_folder(folder):
    """A folder that passes the sd prior's torch-free checks (its layout, empty .safetensors files) and that no
    loader could read: a command line refused with it was refused before the prior loads."""
    for component in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        (folder / component).mkdir(parents=True)
        if component in ("unet", "vae", "text_encoder"):
            (folder / component / "model.safetensors").write_bytes(b"")
    return folder


def rgb_misuse(sd: str) -> list[tuple[list[str], str]]:
    """Command lines an sd prior with --rgb refuses from the tables before it loads, and a word of each error:
    image-space methods (the prior denoises only the latents of reps it encodes) and the panorama (canvas noise)."""
    prior = ["--prior", f"sd:{sd}", "--rgb", "--out", "o"]
    return [(["sample", "--method", "ddim", *prior], "image space"),
            (["sample", "--method", "ddpm", *prior], "image space"),
            (["sdedit", "--image", "in.png", *prior], "image space"),
            (["inpaint", "--image", "in.png", "--mask", "in.png", *prior], "image space"),
            (["sample", "--rep", "panorama", "--method", "ddrep", *prior], "canvas"),
            (["sample", "--rep", "panorama", "--method", "sds", *prior], "canvas")]


# ---- command lines: values, paths, parse errors (tests/test_cli.py) ----

SMALL = ["--prior", "gmm", "--steps", "5", "--n", "2"]


def write_png(path, size=(16, 16), colour=(0, 0, 255)):
    Image.new("RGB", size, colour).save(path)
    return path


def bad_cases(tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    afile = tmp_path / "afile"
    afile.write_text("x")
    notimg = tmp_path / "notimg.png"
    notimg.write_text("not an image")
    out = str(tmp_path / "o")
    img = str(write_png(tmp_path / "ok.png"))
    return [
        (["sample", "--prior", "sd9", "--out", out], "unknown prior 'sd9' (did you mean 'sd'?); allowed: toyworld, gaussian"),
        (["sample", "--prior", "toyworl", "--out", out], "unknown prior 'toyworl' (did you mean 'toyworld'?)"),
        (["sample", "--rep", "nerfs", "--method", "ddrep", "--out", out], "unknown rep 'nerfs' (did you mean 'nerf'?)"),
        (["sample", "--rep", "nerf", "--method", "ddrep", "--prompt", "a yelow duck", "--out", out],
         "unknown word 'yelow' in prompt 'a yelow duck' (did you mean 'yellow'?)"),
        (["sample", "--rep", "nerf", "--method", "ddrep", "--prompt", "a yellow duck, from behind", "--out", out],
         "prompt 'a yellow duck, from behind' names a view, and the rep conditions each view on its camera's own"),
        (["sample", "--method", "magic", "--out", out, *SMALL], "unknown method 'magic'; allowed: ddim, ddpm, ddrep, sds, sjc"),
        (["sample", "--method", "vsd", "--out", out, *SMALL], "method 'vsd' is not available yet"),
        (["sample", "--rep", "voxels", "--out", out, *SMALL], "unknown rep 'voxels'; allowed: pixels, siren, panorama"),
        (["sample", "--prompt", "purple", "--out", out, *SMALL], "unknown prompt 'purple' for the gmm prior"),
        (["sample", "--prompt", "a red zebra", "--toyworld-n", "300", "--n", "1", "--steps", "2", "--out", out],
         "unknown word 'zebra'"),
        (["sample", "--steps", "0", "--out", out, *SMALL[:2]], "steps=0 is not allowed; it must be a positive integer"),
        (["sample", "--n", "-3", "--out", out, *SMALL[:2]], "n=-3 is not allowed; it must be a positive integer"),
        (["sample", "--guidance-scale", "nan", "--out", out, *SMALL], "guidance_scale=nan is not allowed"),
        (["sample", "--guidance-scale", "inf", "--out", out, *SMALL], "guidance_scale=inf is not allowed"),
        (["sample", "--guidance-scale", "-1", "--out", out, *SMALL], "guidance_scale=-1.0 is not allowed"),
        (["sample", "--eta", "-0.5", "--out", out, *SMALL], "eta=-0.5 is not allowed"),
        (["sample", "--out", str(full), *SMALL], "is not empty; pass --overwrite"),
        (["sample", "--out", str(afile / "sub"), *SMALL], "is not writable"),
        (["sample", "--out", str(afile), *SMALL], "exists and is not a folder"),
        (["sample", "--res", "48", "--out", out, "--n", "1"], "res=48 is not allowed"),
        (["sdedit", "--image", str(tmp_path / "missing.png"), "--out", out, *SMALL], "does not exist"),
        (["sdedit", "--image", str(notimg), "--out", out, *SMALL], "is not a readable image"),
        (["sdedit", "--image", img, "--strength", "1.5", "--out", out, *SMALL], "strength=1.5 is not allowed"),
        (["inpaint", "--image", img, "--mask", str(notimg), "--out", out, *SMALL], "is not a readable image"),
        (["inpaint", "--image", img, "--mask", img, "--rounds", "0", "--out", out, *SMALL], "rounds=0"),
        (["toyworld", "--res", "48", "--out", out], "res=48 is not allowed"),
        (["toyworld", "--n", "0", "--out", out], "n=0 is not allowed"),
        (["bench", "nosuch"], "unknown benchmark suite 'nosuch'"),
        (["sample", "--method", "ddim", "--resume", "--out", out, *SMALL], "checkpoints are written by the diffrep methods"),
        (["sample", "--rep", "siren", "--method", "ddrep", "--checkpoint-every", "-1", "--prompt", "red", "--out", out,
          *SMALL], "checkpoint_every=-1 is not allowed"),
        (["bench", "toyworld", "--prior", "tiny"], "suite 'toyworld' does not take --prior"),
        (["bench", "table1", "--prior", "tiny", "--prior-path", str(tmp_path / "none")], "does not exist"),
        (["sample", "--rep", "siren", "--method", "ddim", "--out", out, *SMALL], "needs rep 'pixels'"),
        (["sample", "--rep", "siren", "--method", "ddrep", "--ddrep.solver", "lbfgs", "--prompt", "red", "--out", out,
          *SMALL], "unknown solver 'lbfgs'; allowed: gn, adam, closed"),
        (["sample", "--rep", "siren", "--method", "ddrep", "--ddrep.solver", "closed", "--prompt", "red",
          "--out", out, *SMALL], "solver 'closed' needs a diffrep linear"),
        (["sample", "--rep", "pixels", "--pixels.tanh", "--method", "ddrep", "--ddrep.solver", "closed",
          "--prompt", "red", "--out", out, *SMALL], "solver 'closed' needs a diffrep linear"),
        (["sample", "--rep", "siren", "--method", "sds", "--sds.t-range", "0.5", "0.2", "--prompt", "red",
          "--out", out, *SMALL], "t_range=(0.5, 0.2) is not allowed"),
        (["sample", "--rep", "siren", "--method", "sjc", "--optim.lr", "0", "--prompt", "red", "--out", out, *SMALL],
         "lr=0.0 is not allowed"),
        (["sample", "--rep", "siren", "--method", "sds", "--optim.optimizer", "lion", "--prompt", "red",
          "--out", out, *SMALL], "unknown optimizer 'lion'"),
        # too big for the machine: refused by the memory estimate, before the toy world's data set is generated
        (["sample", "--rep", "nerf", "--method", "ddrep", "--nerf.resolution", "2000", "--out", out],
         "GiB available; use a smaller n or smaller rep options"),
        (["edit", "--image", img, "--prompt", "blue", "--prior", "gmm", "--method", "sds", "--n", "10000000000",
          "--out", out], "GiB available; use a smaller n"),
        (["train-prior", "--out", out, "--focus-p", "1.5"], "focus_p=1.5 must be in [0, 1]"),
        (["train-prior", "--out", out, "--focus-p", "0.5", "--focus-t", "800", "300"], "focus_t=(800, 300) must be lo < hi"),
        (["train-prior", "--out", out, "--scale-shift", "--scale-shift-res", "12"], "scale_shift_res=12 is not allowed"),
        (["train-prior", "--out", out, "--scale-shift-res", "16"], "scale_shift_res=16 is not allowed; with --scale-shift"),
    ]


PARSE_ERRORS = [  # tyro's own parse errors (wrong types, unknown or missing options)
    (["sample", "--steps", "many", "--out", "x"], "Error parsing --steps: invalid literal"),
    (["sample", "--nosuch", "3", "--out", "x"], "Unrecognized options: --nosuch, 3 (see diffrep sample --help)"),
    (["sample", "--rep", "nerf", "--method", "ddrep", "--nerf.resolutoin", "16", "--out", "x"],
     "Unrecognized options: --nerf.resolutoin, 16; did you mean --nerf.resolution? (see diffrep sample --help)"),
    (["sample"], "Missing from diffrep sample: --out PATH"),
    (["nosuch"], "Unrecognized options: nosuch (see diffrep --help)"),
]


# ---- method x rep pairs and option groups (tests/test_registry.py) ----

def allowed(method: str, rep: str) -> bool:
    entry = METHODS[method]
    return (entry.reps is None or rep in entry.reps) and method not in dict(REPS[rep].refuses)


PAIRS = [(m, r) for m in METHODS for r in REPS]


def one_option(config: type) -> tuple[str, str]:
    """A valid ``--field value`` of a config (its default, written as the CLI reads it)."""
    f = next(f for f in fields(config) if not is_dataclass(f.default))
    value = f.default
    text = " ".join(map(str, value)) if isinstance(value, tuple) else str(value)
    return f.name.replace("_", "-"), text


def foreign_groups(method: str, rep: str):
    """Every option group of another method or rep than the ones chosen."""
    entry = METHODS[method]
    mine = set(option_groups(method, entry.config)) | (set() if entry.image else {rep})
    groups = {g: f.default.__class__ for m, e in METHODS.items() for f in fields(e.config) if is_dataclass(f.default)
              for g in [f.name]}
    groups |= {m: e.config for m, e in METHODS.items()} | {r: e.config for r, e in REPS.items()}
    return [(g, cls) for g, cls in groups.items() if g not in mine and fields(cls)]


def disallowed_pairs(out: str) -> list[tuple[list[str], str]]:
    """``sample`` with each method x rep pair the tables exclude, and what its one line must say."""
    def message(m: str, r: str) -> str:
        if METHODS[m].reps is not None and r not in METHODS[m].reps:
            return f"method {m!r} samples images directly and needs rep {' or '.join(map(repr, METHODS[m].reps))}"
        return f"rep {r!r} does not take method {m!r}"

    return [(["sample", "--method", m, "--rep", r, "--prior", "gmm", "--out", out], message(m, r))
            for m, r in PAIRS if not allowed(m, r)]


def foreign_options(method: str, rep: str, out: str) -> list[tuple[list[str], str]]:
    """``sample --method M --rep R`` with a valid option of every other method's or rep's group."""
    cases = []
    for group, cls in foreign_groups(method, rep):
        name, value = one_option(cls)
        cases.append((["sample", "--method", method, "--rep", rep, "--prior", "gmm", "--out", out,
                       f"--{group}.{name}", *value.split()], f"option --{group}.{name} belongs to"))
    return cases


# ---- NeRF options (tests/test_nerf.py): argv after NERF_SAMPLE ----

NERF_SAMPLE = ["sample", "--rep", "nerf", "--method", "ddrep", "--prompt", "a yellow duck"]

NERF_OPTIONS = [
    (["--nerf.grid", "cube"], "--nerf.grid"),
    (["--nerf.resolution", "-4"], "resolution=-4 is not allowed"),
    (["--nerf.grid", "hash", "--nerf.resolution", "3"], "resolution=3 is not allowed; it must be >= 4 with grid 'hash'"),
    (["--nerf.shading", "phong"], "--nerf.shading"),
    (["--nerf.background", "sky"], "invalid choice 'sky' for argument '--nerf.background'. Expected one of ('fixed', 'learned')"),
    (["--nerf.distance", "1"], "distance=1.0 is not allowed"),
    (["--nerf.shared-noise", "1.5"], "shared_noise=1.5 is not allowed; it must be in [0, 1]"),
    (["--nerf.view-guidance", "-1"], "view_guidance=-1.0 is not allowed; it must be >= 0 (0: off)"),
    (["--nerf.view-guidance", "7.5", "--nerf.no-view-prompts"], "it must be 0 without view prompts"),
    (["--ddrep.pixel-fraction", "0"], "pixel_fraction=0.0 is not allowed; it must be a fraction in (0, 1]"),
]


# ---- the Python API (tests/test_api.py, tests/test_reps.py) ----

API_INPUTS = [
    (lambda: diffrep.sample(None), "prior must be a diffrep.Prior or a prior's name; got NoneType"),
    (lambda: diffrep.sample("gmm", prompt=3), "prompt=3 is not allowed; it must be a string"),
    (lambda: diffrep.sample("gmm", seed=2**64), r"seed=18446744073709551616 is not allowed"),
    (lambda: diffrep.sample("gmm", eta=5.0), r"eta=5.0 is not allowed; it must be in \[0, 1\]"),
    (lambda: diffrep.sample("gmm", rep="siren", method="ddrep", resume=True), "resume=True needs checkpoint"),
    (lambda: diffrep.sample("gmm", method="lmc-sds", guidance_scale=0.0), "needs a guidance scale ω ≠ 0: it divides"),
    (lambda: diffrep.edit("gmm", torch.zeros(3, 16, 16), prompt="blue", method="lmc-sds", guidance_scale=0.0),
     "needs a guidance scale ω ≠ 0: it divides"),
    (lambda: diffrep.sdedit("gmm", torch.zeros(3, 16, 16, dtype=torch.uint8)), "dtype torch.uint8"),
    (lambda: diffrep.sdedit("gmm", [[0.0]]), r"image has shape \(1, 1\)"),
    (lambda: diffrep.sdedit("gmm", torch.zeros(2, 3, 16, 16)), "give one image"),
    (lambda: diffrep.sdedit("gmm", object()), "image must be a tensor"),
    (lambda: diffrep.inpaint("gmm", torch.zeros(3, 16, 16), torch.full((16, 16), float("nan"))), "finite values in"),
    (lambda: diffrep.inpaint("gmm", torch.zeros(3, 16, 16), torch.ones(8, 8)), r"mask has shape \(8, 8\)"),
    (lambda: diffrep.inpaint("gmm", torch.zeros(3, 16, 16), None), "mask must be a floating-point tensor"),
]

API_TOO_BIG = [
    (lambda: diffrep.sample("gmm", steps=100_000), "steps=100000 is not allowed: the prior has 1000 timesteps"),
    (lambda: diffrep.sample("gmm", n=10**12), r"n=1000000000000 needs about .* GiB \(estimated\), more than the"),
    (lambda: diffrep.sample("gmm", rep="siren", method="ddrep", n=10**7), "GiB"),
    # a rep too big to build: counted on the meta device, not allocated (a 2000^3 voxel grid: 128 GB of parameters)
    (lambda: diffrep.sample("gmm", rep="nerf", method="sds", resolution=2000), r"GiB .* or smaller rep options"),
    (lambda: diffrep.sdedit("gmm", torch.zeros(3, 16, 16), steps=10**20), "the prior has 1000 timesteps"),
    (lambda: diffrep.inpaint("gmm", torch.zeros(3, 16, 16), torch.ones(16, 16), n=10**15), "GiB"),
    (lambda: diffrep.edit("gmm", torch.zeros(3, 16, 16), prompt="blue", method="sds", n=10**10), "use a smaller n$"),
]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


MAKE_REP_INPUTS = [
    (lambda: make_rep("voxels", (3, 8, 8), 1, generator=gen()), r"unknown rep 'voxels'; allowed: pixels, siren, panorama, nerf"),
    (lambda: make_rep("nerf", (3, 8, 12), 1, generator=gen()), r"image_shape=\(3, 8, 12\) .* square"),
    (lambda: make_rep("siren", (3, 8, 8), 1, generator=gen(), widht=8),
     r"unknown option 'widht' for rep 'siren' \(did you mean 'width'\?\); allowed: "),
    (lambda: make_rep("siren", (3, 8, 8), 1, generator=gen(), width=0), r"width=0 .* positive integer"),
    (lambda: make_rep("siren", (3, 8, 8), 1, generator=gen(), width=8.5), r"width=8.5 .* integer"),
    (lambda: make_rep("siren", (3, 8, 8), 1, generator=gen(), embed_dim=7), r"embed_dim=7 .* even"),
    (lambda: make_rep("siren", (3, 8, 8), 1, generator=gen(), freq_scale=-1.0), r"freq_scale=-1.0 .* > 0"),
    (lambda: make_rep("siren", (3, 8, 8), 1, generator=gen(), fov=90.0), r"unknown option 'fov' for rep 'siren'"),
    (lambda: make_rep("panorama", (3, 8, 8), 1, generator=gen(), fov=0.0), r"'panorama': option fov=0.0 .* \(0, 360\]"),
    (lambda: make_rep("panorama", (3, 8, 8), 1, generator=gen(), fov=361), r"fov=361 .* \(0, 360\]"),
    (lambda: make_rep("pixels", (3, 8, 8), 1, generator=gen(), tanh="yes"), r"tanh='yes' .* True or False"),
    (lambda: make_rep("pixels", (3, 8, 8), 1, generator=gen(), padding="wrap"), r"padding='wrap' .* 'reflection'"),
    (lambda: make_rep("pixels", (3, 8, 8), 1, generator=gen(), min_scale=2.0), r"max_scale=1.2 .* >= min_scale"),
    (lambda: make_rep("pixels", (3, 0, 8), 1, generator=gen()), r"image_shape=\(3, 0, 8\)"),
    (lambda: make_rep("pixels", (3, 8, 8), 0, generator=gen()), r"n=0 .* positive integer"),
    (lambda: make_rep("pixels", (3, 8, 8), 1, generator=0), r"generator must be a torch.Generator"),
    (lambda: make_rep("siren", (3, 8, 8), 1, generator=gen())(torch.zeros(1, 1)), r"only the canonical view"),
    (lambda: make_rep("panorama", (3, 8, 8), 1, generator=gen())(torch.zeros(1, 2)), r"integer column offsets"),
]
