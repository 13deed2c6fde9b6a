"""The ``diffrep`` command: typed dataclass configs turned into a CLI by tyro. No algorithm code.

The library reports progress through callbacks; only this module prints, draws progress bars
and chooses exit codes (2 for bad input, one line, no traceback)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import tyro

from diffrep.errors import InputError
from diffrep.methods import DDRepOptions, OptimConfig, SDSOptions, SJCOptions
from diffrep.priors.tiny.train import TrainConfig
from diffrep.reps.panorama import PanoramaConfig
from diffrep.reps.pixels import PixelsConfig
from diffrep.reps.siren import SirenConfig


@dataclass(frozen=True)
class SampleArgs:
    """Sample diffreps for a prompt; writes OUT/samples.png (grid), samples.safetensors, run.json."""

    out: Path
    """Output folder (must be empty or new, unless --overwrite)."""
    prompt: str = "a red mug, front view"
    """Text prompt; toy-world words: kinds, colours, views and their synonyms. Empty = unconditional."""
    prior: str = "toyworld"
    """Prior: toyworld (embedded empirical prior, default), gaussian, gmm, tiny (learned; shipped weights unless --prior-path)."""
    prior_path: str | None = None
    """tiny prior only: your own trained weights (a run folder or its tiny.safetensors); default: the shipped ones."""
    toyworld_n: int = 10_000
    """toyworld prior only: number of data images (generated on first use, then cached)."""
    res: int = 32
    """toyworld prior only: resolution, 32 or 64."""
    rep: str = "pixels"
    """Differentiable representation: pixels, siren, panorama (360°, writes the canvas and a strip of views)."""
    method: str = "ddim"
    """Method: ddim, ddpm (image space, rep pixels); ddrep (true sampling of any rep); sds, sjc (mode seeking)."""
    n: int = 8
    """Number of samples."""
    seed: int = 0
    """Random seed; same seed and config give the same result on the same machine."""
    steps: int = 50
    """Number of denoising steps (ddim, ddpm, ddrep); sds and sjc run --optim.iters iterations."""
    guidance_scale: float = 3.0
    """Classifier-free guidance scale w (1 = plain conditional, 0 = unconditional)."""
    eta: float = 0.0
    """DDIM stochasticity (ddim, ddrep): 0 = deterministic (PF-ODE), 1 = DDPM-like."""
    overwrite: bool = False
    """Replace the contents of a non-empty output folder."""
    checkpoint_every: int | None = None
    """ddrep, sds, sjc: steps (iterations) between checkpoints in OUT.checkpoint/; default: a tenth
    of the run; 0: none. The folder is removed when the run completes."""
    resume: bool = False
    """ddrep, sds, sjc: continue from OUT.checkpoint/ (same options and seed)."""
    ddrep: DDRepOptions = DDRepOptions()
    sds: SDSOptions = SDSOptions()
    sjc: SJCOptions = SJCOptions()
    optim: OptimConfig = OptimConfig()
    """Optimisation loop of sds and sjc."""
    pixels: PixelsConfig = PixelsConfig()
    siren: SirenConfig = SirenConfig()
    panorama: PanoramaConfig = PanoramaConfig()


def method_options(a: SampleArgs) -> dict:
    """The flat options ``diffrep.sample`` takes for the chosen method and rep."""
    if a.method in ("ddim", "ddpm"):
        return {}
    opts = {"ddrep": [a.ddrep], "sds": [a.sds, a.optim], "sjc": [a.sjc, a.optim]}.get(a.method, [])
    opts += [{"pixels": a.pixels, "siren": a.siren, "panorama": a.panorama}[a.rep]] if a.rep in ("pixels", "siren", "panorama") else []
    out: dict = {}
    for o in opts:
        out |= asdict(o)
    return out


def checkpoint_options(a: SampleArgs) -> dict:
    """Where and how often a diffrep run checkpoints (image methods: never)."""
    from diffrep.api import check_checkpointing

    check_checkpointing(a.method, a.checkpoint_every or 0, a.resume)
    if a.method in ("ddim", "ddpm"):
        return {}
    total = a.steps if a.method == "ddrep" else a.optim.iters
    every = max(1, total // 10) if a.checkpoint_every is None else a.checkpoint_every
    return {"checkpoint": a.out.with_name(a.out.name + ".checkpoint"), "checkpoint_every": every, "resume": a.resume}


@dataclass(frozen=True)
class SdeditArgs:
    """SDEdit an input image towards a prompt: noise it to strength*T, then denoise with DDIM."""

    image: Path
    """Input image (PNG/JPEG), resized to the prior's resolution."""
    out: Path
    """Output folder (must be empty or new, unless --overwrite)."""
    prompt: str = ""
    """Target prompt (empty = unconditional)."""
    strength: float = 0.5
    """How far to noise the input, in [0, 1] (1 = sample from scratch)."""
    prior: str = "toyworld"
    """Prior: toyworld, gaussian, gmm, tiny (learned; shipped weights unless --prior-path)."""
    prior_path: str | None = None
    """tiny prior only: your own trained weights (a run folder or its tiny.safetensors); default: the shipped ones."""
    toyworld_n: int = 10_000
    """toyworld prior only: number of data images (generated on first use, then cached)."""
    res: int = 32
    """toyworld prior only: resolution, 32 or 64."""
    n: int = 4
    """Number of edits."""
    seed: int = 0
    """Random seed."""
    steps: int = 50
    """Denoising steps over the full schedule (fewer are run for strength < 1)."""
    guidance_scale: float = 3.0
    """Classifier-free guidance scale."""
    eta: float = 0.0
    """DDIM stochasticity."""
    overwrite: bool = False
    """Replace the contents of a non-empty output folder."""


@dataclass(frozen=True)
class InpaintArgs:
    """RePaint inpainting: keep the input where the mask is white, fill the rest from the prior."""

    image: Path
    """Input image (PNG/JPEG), resized to the prior's resolution."""
    mask: Path
    """Mask image: white = keep (known), black = fill."""
    out: Path
    """Output folder (must be empty or new, unless --overwrite)."""
    prompt: str = ""
    """Prompt for the filled region (empty = unconditional)."""
    prior: str = "toyworld"
    """Prior: toyworld, gaussian, gmm, tiny (learned; shipped weights unless --prior-path)."""
    prior_path: str | None = None
    """tiny prior only: your own trained weights (a run folder or its tiny.safetensors); default: the shipped ones."""
    toyworld_n: int = 10_000
    """toyworld prior only: number of data images (generated on first use, then cached)."""
    res: int = 32
    """toyworld prior only: resolution, 32 or 64."""
    rounds: int = 5
    """RePaint resampling rounds r per step (1 = no resampling)."""
    n: int = 4
    """Number of samples."""
    seed: int = 0
    """Random seed."""
    steps: int = 50
    """Denoising steps."""
    guidance_scale: float = 3.0
    """Classifier-free guidance scale."""
    eta: float = 1.0
    """DDIM stochasticity of each reverse step (RePaint needs eta > 0 to mix)."""
    overwrite: bool = False
    """Replace the contents of a non-empty output folder."""


@dataclass(frozen=True)
class ToyworldArgs:
    """Render a toy-world data set: OUT/00000.png ... and OUT/metadata.json."""

    out: Path
    """Output folder (must be empty or new, unless --overwrite)."""
    n: int = 100
    """Number of images."""
    res: int = 32
    """Resolution: 32 or 64."""
    seed: int = 0
    """Random seed."""
    overwrite: bool = False
    """Replace the contents of a non-empty output folder."""


@dataclass(frozen=True)
class BenchArgs:
    """Run a benchmark suite; writes bench/results/SUITE.json (with machine info)."""

    suite: Annotated[str, tyro.conf.Positional]
    """Suite: toyworld, prior, table1, diversity, speed, panorama, prior-quality (docs/benchmarks.md)."""
    quick: bool = False
    """A short version of the suite (under 2 minutes)."""
    results: Path = Path("bench/results")
    """Folder for the JSON results."""
    prior: str | None = None
    """Run a suite that samples (table1, diversity, speed, panorama, prior-quality) on this prior
    (toyworld, tiny, ...) instead of its default; results go to SUITE-PRIOR.json."""
    prior_path: str | None = None
    """tiny prior only: trained weights (default: the shipped ones)."""


@dataclass(frozen=True)
class TrainPriorArgs(TrainConfig):
    """Train the learned tiny prior on a fresh toy-world set (needs diffrep[tiny]); writes OUT/tiny.safetensors."""

    resume: bool = False
    """Continue from OUT's last checkpoint."""


COMMANDS = {"sample": SampleArgs, "sdedit": SdeditArgs, "inpaint": InpaintArgs, "toyworld": ToyworldArgs, "bench": BenchArgs,
            "train-prior": TrainPriorArgs}


def parse(argv: list[str] | None) -> object:
    """tyro's parse; its parse errors (a boxed panel on stderr) become one ``InputError`` line."""
    import contextlib
    import io

    panel = io.StringIO()
    try:
        with contextlib.redirect_stderr(panel):
            return tyro.extras.subcommand_cli_from_dict(
                COMMANDS, args=argv, prog="diffrep",
                description="diffrep: sample differentiable representations with a diffusion prior.")
    except SystemExit as e:
        if e.code in (0, None):
            sys.stderr.write(panel.getvalue())
            raise
        command = next((a for a in (argv if argv is not None else sys.argv[1:]) if a in COMMANDS), None)
        help_cmd = f"diffrep {command} --help" if command else "diffrep --help"
        raise InputError(f"{panel_message(panel.getvalue())} (see {help_cmd})") from None


def panel_message(text: str) -> str:
    """The first block of a tyro error panel (below its title, up to the next rule) as one line.

    tyro draws a box with the title in its top edge (``╭─ title ─╮``, ``│`` sides, ``─`` rules)
    or, on a plain console, the title as the first block, then ``-`` rules between blocks."""
    boxed = "╭" in text
    blocks: list[list[str]] = [[]]
    for line in text.splitlines():
        if "╭" in line:
            continue
        content = line.strip().strip("│|╰╯").strip()
        if not content or set(content) <= set("─-━="):
            if blocks[-1]:
                blocks.append([])
            continue
        blocks[-1].append(content)
    blocks = [b for b in blocks if b]
    block = blocks[0 if boxed or len(blocks) < 2 else 1] if blocks else []
    return " ".join(" ".join(block).split()) or "could not parse the arguments"


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse(argv)
        return RUNNERS[type(args)](args)
    except InputError as e:
        print(f"diffrep: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("diffrep: interrupted", file=sys.stderr)
        return 130


class Progress:
    """A tqdm bar on stderr fed by the library's callback dicts."""

    def __init__(self, desc: str):
        from tqdm import tqdm

        self.bar = tqdm(desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True, disable=None)

    def __call__(self, d: dict) -> None:
        self.bar.total = d["steps"]
        self.bar.update(d["step"] - self.bar.n)

    def count(self, done: int, total: int) -> None:
        self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def load_prior(a: SampleArgs | SdeditArgs | InpaintArgs):
    """Load the prior an argument set names, with a progress bar while toy-world data is generated."""
    from diffrep import priors

    if a.prior == "tiny":
        return priors.load("tiny", path=a.prior_path)
    if a.prior != "toyworld":
        return priors.load(a.prior)
    bar = Progress("toy-world data set (first use, then cached)")
    try:
        return priors.load("toyworld", n=a.toyworld_n, res=a.res, progress=bar.count)
    finally:
        bar.close()


def run_sample(a: SampleArgs) -> int:
    import diffrep
    from diffrep.api import check_sample_options
    from diffrep.api import method_options as api_method_options
    from diffrep.export import check_output_dir

    check_output_dir(a.out, a.overwrite)
    check_sample_options(a.rep, a.method, a.n, a.steps, a.guidance_scale, a.eta)
    checkpointing = checkpoint_options(a)
    if a.method not in ("ddim", "ddpm"):
        api_method_options(a.method, a.rep, method_options(a))  # validate before loading the prior
    prior = load_prior(a)
    bar = Progress(f"{a.method} {a.rep}")
    try:
        result = diffrep.sample(prior, rep=a.rep, method=a.method, prompt=a.prompt, n=a.n, seed=a.seed,
                                steps=a.steps, guidance_scale=a.guidance_scale, eta=a.eta, callback=bar,
                                **checkpointing, **method_options(a))
    finally:
        bar.close()
    result.info["config"] |= {"prior": a.prior}
    return _report(result.save(a.out, a.overwrite), result.info)


def run_sdedit(a: SdeditArgs) -> int:
    import diffrep
    from diffrep.api import check_sample_options, check_strength
    from diffrep.export import check_output_dir, load_image

    check_output_dir(a.out, a.overwrite)
    check_sample_options("pixels", "ddim", a.n, a.steps, a.guidance_scale, a.eta), check_strength(a.strength)
    load_image(a.image)  # fail on a bad file before loading the prior
    prior = load_prior(a)
    image = load_image(a.image, prior.image_shape[1:])
    bar = Progress("sdedit")
    try:
        result = diffrep.sdedit(prior, image, prompt=a.prompt, strength=a.strength, n=a.n, seed=a.seed,
                                steps=a.steps, guidance_scale=a.guidance_scale, eta=a.eta, callback=bar)
    finally:
        bar.close()
    result.info["config"] |= {"prior": a.prior, "image": str(a.image)}
    return _report(result.save(a.out, a.overwrite), result.info)


def run_inpaint(a: InpaintArgs) -> int:
    import diffrep
    from diffrep.api import check_positive_int, check_sample_options
    from diffrep.export import check_output_dir, load_image, load_mask

    check_output_dir(a.out, a.overwrite)
    check_sample_options("pixels", "ddim", a.n, a.steps, a.guidance_scale, a.eta)
    check_positive_int("rounds", a.rounds)
    load_image(a.image), load_image(a.mask)  # fail on a bad file before loading the prior
    prior = load_prior(a)
    image = load_image(a.image, prior.image_shape[1:])
    mask = load_mask(a.mask, prior.image_shape[1:])
    bar = Progress("repaint")
    try:
        result = diffrep.inpaint(prior, image, mask, prompt=a.prompt, rounds=a.rounds, n=a.n, seed=a.seed,
                                 steps=a.steps, guidance_scale=a.guidance_scale, eta=a.eta, callback=bar)
    finally:
        bar.close()
    result.info["config"] |= {"prior": a.prior, "image": str(a.image), "mask": str(a.mask)}
    return _report(result.save(a.out, a.overwrite), result.info)


def run_toyworld(a: ToyworldArgs) -> int:
    from diffrep import toyworld as tw
    from diffrep.api import check_positive_int
    from diffrep.export import check_output_dir

    check_output_dir(a.out, a.overwrite)
    check_positive_int("n", a.n)
    if a.res not in (32, 64):
        raise InputError(f"res={a.res} is not allowed; the toy world renders 32 or 64")
    bar = Progress("rendering")
    try:
        ds = tw.generate(tw.ToyWorldConfig(n=a.n, res=a.res, seed=a.seed), progress=bar.count)
    finally:
        bar.close()
    tw.write_dataset(ds, a.out, overwrite=a.overwrite)
    print(f"wrote {len(ds)} images and metadata.json to {a.out}")
    return 0


def run_bench(a: BenchArgs) -> int:
    from diffrep.bench import run_suite

    path = run_suite(a.suite, quick=a.quick, results=a.results, log=lambda s: print(s, file=sys.stderr),
                     prior=a.prior, prior_path=a.prior_path)
    print(f"results: {path}")
    return 0


def run_train_prior(a: TrainPriorArgs) -> int:
    from diffrep.priors.tiny.train import check_config, train

    config = TrainConfig(**{k: v for k, v in asdict(a).items() if k != "resume"})
    check_config(config)  # before the run folder exists: bad input leaves nothing behind
    bar = Progress("training the tiny prior")
    a.out.mkdir(parents=True, exist_ok=True)
    log = (a.out / "train_log.jsonl").open("a")  # the run's log: one JSON line every 50 steps

    def report(d: dict) -> None:
        bar(d)
        bar.bar.set_postfix(loss=f"{d['loss']:.4f}")
        if d["step"] % 50 == 0 or "checkpoint" in d or d["step"] == d["steps"]:
            log.write(json.dumps({k: (round(v, 5) if isinstance(v, float) else str(v)) for k, v in d.items()}) + "\n")
            log.flush()

    try:
        weights = train(config, resume=a.resume, callback=report)
    finally:
        bar.close()
        log.close()
    print(f"tiny prior weights: {weights}")
    return 0


def _report(out: Path, info: dict) -> int:
    evals, secs = info["prior_evaluations"], info["timings"]["sampling_s"]
    print(f"{evals} prior evaluations in {secs:.2f} s")
    print(f"samples: {out / 'samples.png'}")
    if (out / "views.png").exists():
        print(f"views: {out / 'views.png'}")
    extra = ", rep.safetensors (weights)" if (out / "rep.safetensors").exists() else ""
    print(f"tensors and run record: {out / 'samples.safetensors'}, {out / 'run.json'}{extra}")
    return 0


RUNNERS = {SampleArgs: run_sample, SdeditArgs: run_sdedit, InpaintArgs: run_inpaint, ToyworldArgs: run_toyworld,
           BenchArgs: run_bench, TrainPriorArgs: run_train_prior}


if __name__ == "__main__":
    sys.exit(main())
