"""The ``diffrep`` command: typed dataclass configs turned into a CLI by tyro. No algorithm code.

The library reports progress through callbacks; only this module prints, draws progress bars
and chooses exit codes (2 for bad input, one line, no traceback)."""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import shlex
import sys
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, is_dataclass, make_dataclass
from pathlib import Path
from typing import Annotated, Literal

import tyro

from diffrep.bench import SUITES
from diffrep.errors import AdviceWarning, InputError, RunError
from diffrep.methods import METHODS
from diffrep.priors import PRIORS
from diffrep.reps import REPS
from diffrep.spec import default_method, edit_methods
from diffrep.training.config import CorrectiveTrainConfig, TrainConfig, TranslatorTrainConfig, check_translator_config


def helped(text: str) -> object:
    """A field's ``--help`` text given here rather than by its docstring: for option lists built from the tables
    (``REPS``, ``METHODS``, ``PRIORS``, ``SUITES``), which a docstring would let drift from them."""
    return tyro.conf.arg(help=text)


PRIOR_HELP = ("Prior: " + ", ".join(f"{name}:{entry.argument.upper()}" if entry.argument else name
                                    for name, entry in PRIORS.items())
              + ". toyworld is the embedded default (exact empirical prior); tiny is learned (shipped weights unless "
                "--prior-path); sd and if take local diffusers folders or downloaded hub ids (diffrep[diffusers]).")
SUITE_HELP = "Suite: " + ", ".join(SUITES) + " (docs/benchmarks.md)."


@dataclass(frozen=True)
class PriorArgs:
    """The prior, shared by every command that takes one; an option of another prior is refused."""

    prior: Annotated[str, helped(PRIOR_HELP)] = "toyworld"
    prior_path: str | None = None
    """tiny prior: your own trained weights (a run folder or its tiny.safetensors); default: the shipped ones. sd, if: the model."""
    toyworld_n: int | None = None
    """toyworld prior: number of data images (default 10000); toyworld-scenes: number of scenes (default 500);
    generated on first use, then cached."""
    res: int | None = None
    """toyworld and toyworld-scenes priors: resolution, 32 or 64 (default 32)."""
    scene_prompt: str | None = None
    """toyworld-scenes prior: how a panorama's prompt conditions its views: layout (default; each instance draws
    where the prompt's objects stand, each view is told the objects in its field of view) or set (every view: a
    view of a scene holding them). docs/reps.md."""
    camera_window: tuple[float, float] | None = None
    """toyworld prior, nerf rep: AZ EL degrees; condition each view on its camera as well as its prompt (the data
    images within AZ of azimuth and EL of elevation of the view's camera), e.g. 10 10 with --toyworld-n 160000.
    docs/nerf.md."""
    device: str | None = None
    """Where the prior computes: cpu (default), cuda, cuda:N, mps (toyworld, tiny, sd, if)."""
    dtype: str | None = None
    """sd, if: weights and activations, fp32 (default), or fp16/bf16 on CUDA (the SD VAE then runs in fp32)."""
    attention_slicing: bool = False
    """sd, if: compute attention in slices (less memory, a little slower)."""
    cpu_offload: bool = False
    """sd, if: keep each network on the CPU, moved to --device only while it runs (less GPU memory, slower)."""
    rgb: bool = False
    """sd only: reps render RGB, upsampled and VAE-encoded with gradient inside the rep (DreamFusion with SD);
    default: they render latents, decoded for viewing. Diffrep methods only (ddrep, sds, sjc)."""
    rgb_res: int | None = None
    """sd --rgb only: the resolution reps render (default 64), upsampled to the VAE's before encoding."""


PRIOR_FIELDS = {"prior_path": "path", "toyworld_n": "n", "res": "res", "scene_prompt": "scene_prompt",
                "camera_window": "camera_window", "device": "device",
                "dtype": "dtype", "attention_slicing": "attention_slicing", "cpu_offload": "cpu_offload", "rgb": "rgb",
                "rgb_res": "rgb_res"}
"""Command-line option of ``PriorArgs`` -> the field of a prior's config it sets. An option left at its
default (``None``, or ``False`` for a switch) is not given: the prior's own default applies."""

Prior = Annotated[PriorArgs, tyro.conf.OmitArgPrefixes]


@dataclass(frozen=True)
class SampleArgs:
    """Sample diffreps for a prompt; writes OUT/samples.png (grid), samples.safetensors, run.json.
    The options of the chosen --rep and --method follow as --REP.* and --METHOD.* groups."""

    out: Path
    """Output folder (must be empty or new, unless --overwrite)."""
    prompt: str | None = None
    """Text prompt; toy-world words: kinds, colours, views and their synonyms. Empty = unconditional. Default:
    'a red mug, front view'; 'a red mug' for a rep whose views add view words of their own (a NeRF's view prompts)."""
    prior: Prior = PriorArgs()
    rep: str = "pixels"
    """Differentiable representation (the list: ``sample_helps``)."""
    method: str = "ddim"
    """Method (the list: ``sample_helps``)."""
    n: int = 8
    """Number of samples (the default: the rep's ``RepEntry.instances``, set by ``sample_args_class``)."""
    seed: int = 0
    """Random seed; same seed and config give the same result on the same machine."""
    steps: int = 50
    """Number of denoising steps (the methods that take them: ``sample_helps``)."""
    guidance_scale: float = 3.0
    """Classifier-free guidance scale w (1 = plain conditional, 0 = unconditional)."""
    eta: float = 0.0
    """DDIM stochasticity in [0, 1]: 0 = deterministic (PF-ODE), 1 = DDPM-like."""
    overwrite: bool = False
    """Replace an output folder that diffrep wrote before (never a folder holding anything else)."""
    checkpoint_every: int | None = None
    """Steps (iterations) between checkpoints in OUT.checkpoint/; default: a tenth of the run; 0: none."""
    preview_every: int | None = None
    """Steps (iterations) between preview images; default: a tenth of the run; 0: none."""
    resume: bool = False
    """Continue from OUT.checkpoint/ (same options and seed)."""


def sample_helps() -> dict[str, str]:
    """``--help`` of the ``sample`` options that list methods or reps or depend on them, from ``METHODS`` and ``REPS`` as
    they are when the command runs (a method registered at run time is listed too, docs/extending.md)."""
    def using(option: str) -> str:
        return ", ".join(name for name, entry in METHODS.items() if option in entry.uses)

    stateful = ", ".join(name for name, entry in METHODS.items() if entry.state is not None)
    methods = ", ".join(f"{name} (rep {' or '.join(entry.reps)} only)" if entry.reps else name
                        for name, entry in METHODS.items())
    return {
        "n": "Number of samples (instances of the rep; the default is the rep's: a grid of 8 images, one NeRF).",
        "rep": f"Differentiable representation: {', '.join(REPS)} (docs/reps.md, docs/nerf.md).",
        "method": f"Method: {methods}. The chosen method's summary heads its option group below; ddrep samples, "
                  "the mode-seeking family (sds, sjc, ...) distils. Without --method: "
                  f"{', '.join(f'{default_method(rep)} on {rep}' for rep in REPS)}.",
        "steps": f"Number of denoising steps ({using('steps')}); the others run --optim.iters iterations.",
        "eta": f"DDIM stochasticity in [0, 1] ({using('eta')}): 0 = deterministic (PF-ODE), 1 = DDPM-like.",
        "checkpoint_every": f"{stateful}: steps (iterations) between checkpoints in OUT.checkpoint/; default: a "
                            "tenth of the run; 0: none. The folder is removed when the run completes.",
        "preview_every": f"{stateful}: steps (iterations) between preview images of the reps as they are (what "
                         "samples.png shows), OUT.previews/step-N.png while the run lasts, kept in OUT as "
                         "preview-N.png; default: a tenth of the run; 0: none.",
        "resume": f"{stateful}: continue from OUT.checkpoint/ (same options and seed).",
    }


def option_groups(name: str, config: type) -> list[str]:
    """The ``--GROUP.`` prefixes a method's or rep's options take: its name and its nested configs."""
    return [name] + [f.name for f in fields(config) if is_dataclass(f.default)]


def sample_args_class(rep: str, method: str, encoded: bool = False) -> type:
    """``SampleArgs`` with the option groups of this rep and method only (``--help`` shows just those), the method's
    defaults those the rep sets for it (``encoded``: rendering through the prior's encoder, sd --rgb); ``--method``'s
    default the rep's own (``default_method``)."""
    from diffrep.spec import build_config, method_defaults

    entry = METHODS[method]
    groups = [(method, build_config(entry.config, {}, method_defaults(method, rep, encoded)), entry.summary)]
    if not entry.image:
        groups.append((rep, REPS[rep].config(), REPS[rep].summary))
    extra = [(name.replace("-", "_"), Annotated[type(default), tyro.conf.arg(help=f"{name}: {summary}")],
              field(default=default)) for name, default, summary in groups]
    base = {f.name: f for f in fields(SampleArgs)}
    defaults = {"n": SampleArgs.n if entry.image else REPS[rep].instances,  # a grid of images; one NeRF
                "method": default_method(rep)}
    extra += [(name, Annotated[base[name].type, helped(text)], field(default=defaults.get(name, base[name].default)))
              for name, text in sample_helps().items()]
    return make_dataclass("SampleArgs", extra, bases=(SampleArgs,), frozen=True)


def chosen(argv: list[str], option: str, default: str) -> str:
    """The value of ``--option X`` or ``--option=X`` in ``argv`` (the last one), else ``default``."""
    value = default
    for i, arg in enumerate(argv):
        if arg == option and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(option + "="):
            value = arg.split("=", 1)[1]
    return value


def switched(argv: list[str], flag: str) -> bool:
    """Whether the switch ``--flag`` is on in ``argv`` (the last of ``--flag`` and ``--no-flag``)."""
    on = False
    for arg in argv:
        on = True if arg == flag else False if arg == "--no-" + flag[2:] else on
    return on


def sample_class(argv: list[str]) -> type:
    """Read --rep, --method and --rgb first, refuse another method's or rep's options, build the parser class."""
    from diffrep.checks import check_choice
    from diffrep.methods import PLANNED_METHODS
    from diffrep.reps import PLANNED_REPS

    rep = check_choice("rep", chosen(argv, "--rep", "pixels"), REPS, PLANNED_REPS)
    method = check_choice("method", chosen(argv, "--method", default_method(rep)), METHODS, PLANNED_METHODS)
    owners: dict[str, tuple[str, list[str]]] = {r: ("rep", [r]) for r in REPS}
    for m, e in METHODS.items():
        for g in option_groups(m, e.config):
            owners.setdefault(g, ("method", []))[1].append(m)
    mine = set(option_groups(method, METHODS[method].config)) | (set() if METHODS[method].image else {rep})
    for arg in argv:
        group = arg[2:].split(".", 1)[0] if arg.startswith("--") and "." in arg.split("=", 1)[0] else None
        if group in owners and group not in mine:
            kind, names = owners[group]
            why = (f"method {method!r} samples images directly and takes no rep options" if kind == "rep"
                   and METHODS[method].image else f"this run uses {kind} {method if kind == 'method' else rep!r}")
            raise InputError(f"option {arg.split('=', 1)[0]} belongs to {kind} {' or '.join(map(repr, names))}; {why}")
    return sample_args_class(rep, method, encoded=switched(argv, "--rgb"))


@dataclass(frozen=True)
class ImageArgs:
    """The options of the commands that start from an input image (sdedit, inpaint)."""

    image: Path
    """Input image (PNG/JPEG), resized to the prior's resolution (a latent prior's: its VAE's, then encoded)."""
    out: Path
    """Output folder (must be empty or new, unless --overwrite)."""
    prompt: str = ""
    """Target prompt (empty = unconditional)."""
    prior: Prior = PriorArgs()
    n: int = 4
    """Number of samples."""
    seed: int = 0
    """Random seed."""
    steps: int = 50
    """Denoising steps over the full schedule (SDEdit runs fewer for strength < 1)."""
    guidance_scale: float = 3.0
    """Classifier-free guidance scale."""
    eta: float = 0.0
    """DDIM stochasticity of each reverse step in [0, 1]."""
    overwrite: bool = False
    """Replace an output folder that diffrep wrote before (never a folder holding anything else)."""


@dataclass(frozen=True)
class SdeditArgs(ImageArgs):
    """SDEdit an input image towards a prompt: noise it to strength*T, then denoise with DDIM."""

    strength: float = 0.5
    """How far to noise the input, in [0, 1] (1 = sample from scratch)."""


@dataclass(frozen=True)
class InpaintArgs(ImageArgs):
    """RePaint inpainting: keep the input where the mask is white, fill the rest from the prior."""

    mask: Path = field(kw_only=True)
    """Mask image: white = keep (known), black = fill."""
    eta: float = 1.0
    """DDIM stochasticity of each reverse step in [0, 1] (RePaint needs eta > 0 to mix)."""
    rounds: int = 5
    """RePaint resampling rounds r per step (1 = no resampling)."""


@dataclass(frozen=True)
class ToyworldArgs:
    """Render a toy-world data set: OUT/00000.png ... and OUT/metadata.json; with --scenes, 360-degree scenes:
    OUT/panorama-00000.png ... and OUT/scenes.json."""

    out: Path
    """Output folder (must be empty or new, unless --overwrite)."""
    n: int = 100
    """Number of images (scenes with --scenes)."""
    res: int = 32
    """Resolution: 32 or 64."""
    seed: int = 0
    """Random seed."""
    overwrite: bool = False
    """Replace the contents of a non-empty output folder."""
    scenes: bool = False
    """Render 360-degree scenes (panoramas of rooms with 3-6 objects) instead of single objects."""
    min_objects: int | None = None
    """--scenes only: fewest objects in a scene (default 3)."""
    max_objects: int | None = None
    """--scenes only: most objects in a scene (at most 6 and the number of --kinds; default: that)."""
    kinds: tuple[str, ...] | None = None
    """--scenes only: the kinds objects are drawn from (default: all)."""
    colours: tuple[str, ...] | None = None
    """--scenes only: the colours objects and floors are drawn from (default: all)."""


@dataclass(frozen=True)
class ExportArgs:
    """Re-export a saved NeRF run from its weights: meshes (RUN/mesh-i.FORMAT), turntables (RUN/turntable-i.gif,
    .mp4) and the geometry grid (RUN/geometry-i.png) at any size; run.json lists them."""

    run: Annotated[Path, tyro.conf.Positional]
    """A result folder of `diffrep sample --rep nerf`."""
    format: tuple[Literal["glb", "obj", "ply", "gif", "mp4", "geometry"], ...] = ("glb", "obj", "ply")
    """Meshes (glb, obj, ply), turntables (gif, mp4), geometry (the 8 views' albedo, textureless shading, normals,
    depth, opacity)."""
    resolution: int = 128
    """Marching-cubes grid side over the scene box [-1, 1]^3."""
    size: int | None = None
    """Pixels a side of turntables and geometry (default: the run's view resolution; geometry twice that, >= 64)."""
    frames: int = 36
    """Turntable frames (one turn, front first)."""


@dataclass(frozen=True)
class EvaluateArgs:
    """Evaluate a saved NeRF run against the toy world's ground truth: prints a table, writes RUN/eval.json."""

    run: Annotated[Path, tyro.conf.Positional]
    """A result folder of `diffrep sample --rep nerf` on a toy-world prompt."""
    reference_n: int = 10_000
    """Toy-world images the nearest-image labeller compares renders with (the default prior's data set)."""
    seed: int = 0
    """Seed of the held-out cameras and of the ground-truth instances."""


@dataclass(frozen=True)
class BenchArgs:
    """Run a benchmark suite; writes bench/results/SUITE.json (with machine info)."""

    suite: Annotated[str, tyro.conf.Positional, helped(SUITE_HELP)]
    quick: bool = False
    """A short version of the suite (under 2 minutes)."""
    results: Path = Path("bench/results")
    """Folder for the JSON results."""
    prior: str | None = None
    """Run a suite that samples (table1, diversity, speed, panorama, prior-quality) on this prior
    (toyworld, tiny, ...) instead of its default; results go to SUITE-PRIOR.json."""
    prior_path: str | None = None
    """tiny prior only: trained weights (default: the shipped ones)."""
    device: str | None = None
    """sd-cost and nerf3d: run on this device (cuda: sd-cost in fp16); results go to SUITE-cuda.json."""
    section: str | None = None
    """Run one section of a suite that has them (lmc: synthesis, diversity, editing; nerf3d: default-prior, extra, camera-prior, lmc-sds) and update
    its existing results JSON in place."""
    shard: str | None = None
    """I/K: run the I-th of K interleaved parts of a cached suite's runs (nerf3d), one process a part, into its
    cache; then run the suite without --shard to write the JSON from the cache."""


@dataclass(frozen=True)
class TrainPriorArgs(TrainConfig):
    """Train the learned tiny prior on a fresh toy-world set (needs diffrep[tiny]); writes OUT/tiny.safetensors."""

    resume: bool = False
    """Continue from OUT's last checkpoint."""


@dataclass(frozen=True)
class TrainCorrectiveArgs(CorrectiveTrainConfig):
    """Train LMC-SDS's corrective b̂ for a prior on its clean data, or on a folder of images (--data DIR: needed for sd and
    if); writes OUT/corrective.safetensors + corrective.json."""

    resume: bool = False
    """Continue from OUT's last checkpoint."""


@dataclass(frozen=True)
class TrainTranslatorArgs(TranslatorTrainConfig):
    """Train an amortised translator (LMC-SDS's "cats to others"): toy-world images of the source kind become each
    target kind at the same colour and view, by a distillation loss from the prior plus a cosine-scheduled L2 anchor;
    writes OUT/translator.safetensors + translator.json."""

    resume: bool = False
    """Continue from OUT's last checkpoint."""


@dataclass(frozen=True)
class TranslateArgs:
    """Translate an image with a trained translator (diffrep train-translator); writes OUT/samples.png, run.json."""

    weights: Path
    """The translator's folder (translator.safetensors + translator.json) or its .safetensors file."""
    image: Path
    """Input image (PNG/JPEG) of the translator's source kind, resized to its resolution."""
    to: str
    """Target kind: one of the translator's targets (translator.json)."""
    out: Path
    """Output folder (must be empty or new, unless --overwrite)."""
    prior: str | None = None
    """Refuse weights trained with another prior than this one (default: take the weights' prior)."""
    overwrite: bool = False
    """Replace an output folder that diffrep wrote before (never a folder holding anything else)."""


@dataclass(frozen=True)
class EditArgs:
    """Edit an image towards a prompt with a mode-seeking method: a pixels rep starts at the image and is optimised
    with the method's gradient plus an L2 anchor to the input; writes OUT/samples.png, run.json."""

    image: Path
    """Input image (PNG/JPEG), resized to the prior's resolution (a latent prior's: its VAE's, then encoded)."""
    out: Path
    """Output folder (must be empty or new, unless --overwrite)."""
    prompt: str = ""
    """Target prompt (empty = unconditional)."""
    prior: Prior = PriorArgs()
    method: Annotated[str, helped(
        f"Method, one that optimises a rep: {', '.join(edit_methods())}; lmc-sds takes --corrective (default: the one "
        "shipped for toyworld and tiny), dds needs --source-prompt.")] = "lmc-sds"
    source_prompt: str | None = None
    """dds: the prompt describing the input image."""
    corrective: str | None = None
    """lmc-sds: a shipped corrective (clean, the default; perturbed, trained off the data) or the folder of one trained
    for this prior (diffrep train-corrective)."""
    anchor: float = 0.03
    """Weight λ of the L2 anchor λ/2 ‖x - x_in‖² (0: none)."""
    iters: int = 200
    """Optimisation iterations."""
    lr: float = 0.1
    """Adam learning rate (cosine decay)."""
    t_range: tuple[float, float] = (0.02, 0.98)
    """Range of t as fractions of T."""
    guidance_scale: float = 7.5
    """Classifier-free guidance scale ω."""
    n: int = 1
    """Number of edits (different seeds of t and ε)."""
    seed: int = 0
    """Random seed."""
    overwrite: bool = False
    """Replace an output folder that diffrep wrote before (never a folder holding anything else)."""


COMMANDS = {"sample": SampleArgs, "sdedit": SdeditArgs, "inpaint": InpaintArgs, "toyworld": ToyworldArgs,
            "export": ExportArgs, "evaluate": EvaluateArgs, "bench": BenchArgs, "train-prior": TrainPriorArgs,
            "train-corrective": TrainCorrectiveArgs, "edit": EditArgs, "train-translator": TrainTranslatorArgs,
            "translate": TranslateArgs}


def parse(argv: list[str] | None) -> object:
    """tyro's parse; its parse errors (a boxed panel on stderr) become one ``InputError`` line.

    ``sample`` is parsed with a class built for the chosen rep and method (``sample_class``)."""
    import io

    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and argv[0] in COMMANDS else None
    panel = io.StringIO()
    try:
        with contextlib.redirect_stderr(panel):
            if command is None:
                return tyro.extras.subcommand_cli_from_dict(
                    COMMANDS, args=argv, prog="diffrep",
                    description="diffrep: sample differentiable representations with a diffusion prior.")
            cls = sample_class(argv[1:]) if command == "sample" else COMMANDS[command]
            return tyro.cli(cls, args=argv[1:], prog=f"diffrep {command}")
    except SystemExit as e:
        if e.code in (0, None):
            sys.stderr.write(panel.getvalue())
            raise
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
    message = " ".join(" ".join(block).split()) or "could not parse the arguments"
    meant = [line.split()[0] for b in blocks if b[0].startswith("Perhaps you meant") for line in b[1:]
             if line.startswith("--")]
    return message + (f"; did you mean {' or '.join(dict.fromkeys(meant[:3]))}?" if meant else "")


def advice_shown(show):
    """``warnings.showwarning`` for the CLI: an ``AdviceWarning`` as one line, anything else as ``show`` shows it."""

    def shown(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, AdviceWarning):
            print(f"diffrep: note: {message}", file=sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    return shown


COMMAND: contextvars.ContextVar[str | None] = contextvars.ContextVar("COMMAND", default=None)
"""The command line being run (``main``'s), which results record in ``run.json`` as ``command``."""


def command_record() -> dict[str, str]:
    """``{"command": "diffrep sample ..."}`` inside ``main``, shell-quoted to be pasted again (threestudio's cmd.txt)."""
    command = COMMAND.get()
    return {} if command is None else {"command": command}


def save_result(result, a, inputs: dict[str, str] | None = None, extra: dict[str, bytes] | None = None) -> Path:
    """Write ``result`` to ``a.out``, its run.json recording what the command line adds to the library's record: the
    prior as named and loaded (``a.prior``, where the command takes one), the ``inputs`` (image paths), the command."""
    if isinstance(getattr(a, "prior", None), PriorArgs):
        result.info["config"] |= {"prior": a.prior.prior} | (inputs or {}) | prior_record(a.prior)
    result.info |= command_record()
    return result.save(a.out, a.overwrite, extra=extra)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler stopping the job, ``timeout``, ``kill``), raised where the run is, so it unwinds as
    Ctrl-C does: the output's lock released, the checkpoint named; exit status 143 (128 + 15)."""


def _terminated(signum, frame) -> None:
    raise Terminated


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """Turn SIGTERM into ``Terminated`` while a command runs (the main thread only; the handler is restored)."""
    import signal

    try:
        previous = signal.signal(signal.SIGTERM, _terminated)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    token = COMMAND.set(shlex.join(["diffrep", *(sys.argv[1:] if argv is None else argv)]))
    try:
        with sigterm_unwinds():
            return _main(argv)
    finally:
        COMMAND.reset(token)


def _main(argv: list[str] | None) -> int:
    try:
        args = parse(argv)
        with warnings.catch_warnings():  # restores showwarning when the command returns
            warnings.showwarning = advice_shown(warnings.showwarning)
            return next(RUNNERS[c] for c in type(args).__mro__ if c in RUNNERS)(args)
    except InputError as e:
        print(f"diffrep: error: {e}", file=sys.stderr)
        return 2
    except RunError as e:
        print(f"diffrep: stopped: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        stopped = "terminated" if isinstance(e, Terminated) else "interrupted"
        print(f"diffrep: {stopped}" + (f"; {e}" if str(e) else ""), file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130
    except BrokenPipeError:  # stdout closed early (`diffrep sample --help | head`): stop quietly, as the reader asked
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # and no second error when Python flushes it
        return 141  # a shell's status for a command that SIGPIPE stopped (128 + 13)


class Progress:
    """Progress on stderr, fed by the library's callback dicts: a tqdm bar on a terminal; anywhere else
    (a log file, a pipe) a plain line every ``every`` of the run and at its end, with the step, the
    time elapsed, the ETA and the loss where there is one (DDRep's: its pullback's fit; the mode-seeking methods',
    whose surrogate loss means nothing, the norm of their gradient ``|g|``), on the bar too."""

    def __init__(self, desc: str, every: float = 0.05):
        import time

        from tqdm import tqdm

        self.bar = tqdm(desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True, disable=None)
        self.desc, self.every, self.start, self.next = desc, every, time.perf_counter(), every
        self.plain = self.bar.disable  # tqdm turns itself off when stderr is not a terminal

    def __call__(self, d: dict) -> None:
        self.count(d["step"], d["steps"], d.get("loss"), d.get("grad_norm"))

    def count(self, done: int, total: int, loss: float | None = None, grad_norm: float | None = None) -> None:
        import time

        shown = (f", loss {loss:.4g}" if loss is not None else f", |g| {grad_norm:.4g}" if grad_norm is not None
                 else "")
        if shown and not self.plain:
            self.bar.set_postfix_str(shown[2:], refresh=False)
        self.bar.total = total
        self.bar.update(done - self.bar.n)
        if not self.plain or not total or (done / total < self.next and done != total):
            return
        elapsed = time.perf_counter() - self.start
        eta = elapsed / max(done, 1) * (total - done)
        print(f"{self.desc}: {done}/{total} ({100 * done / total:.0f} %){shown}, {elapsed:.0f} s elapsed, "
              f"ETA {eta:.0f} s", file=sys.stderr, flush=True)
        self.next = done / total + self.every

    def close(self) -> None:
        self.bar.close()


def prior_options(a: PriorArgs) -> dict:
    """The load options ``a`` gives its prior; an option the prior does not take is an ``InputError``."""
    from diffrep.checks import check_choice
    from diffrep.priors import split_prior

    def prior_fields(name: str) -> set[str]:
        return {f.name for f in fields(PRIORS[name].config)}

    name = check_choice("prior", split_prior(a.prior)[0], PRIORS)  # sd:PATH names prior sd (prior_config checks PATH)
    given = {flag: getattr(a, flag) for flag in PRIOR_FIELDS if getattr(a, flag) is not None and getattr(a, flag) is not False}
    takes = prior_fields(name)
    for flag in given:
        if PRIOR_FIELDS[flag] not in takes:
            users = [p for p in PRIORS if PRIOR_FIELDS[flag] in prior_fields(p)]
            raise InputError(f"option --{flag.replace('_', '-')} is for the {' or '.join(users)} prior; "
                             f"this run uses prior {a.prior!r}")
    return {PRIOR_FIELDS[flag]: value for flag, value in given.items()}


def prior_record(a: PriorArgs) -> dict:
    """What run.json records of the prior's options, beside its name: those the command line gave."""
    options = prior_options(a)
    return {"prior_options": options} if options else {}


def check_prior(a: PriorArgs, prompt: str, method: str, *, image: bool, rep: str | None = None, options=None,
                rep_options=None, n: int | None = None, memory_rep=None):
    """The prior's validated config, the method and rep it runs with (``check_run``: sd --rgb takes no image-space
    method, no panorama; a rep that does not fit the prior's resolution), the prompt as far as the prior can
    check it unloaded, and (given ``n``) the run's memory where the config tells the prior's image shape, before
    anything is loaded (``memory_rep``: the options of a rep the method builds itself, edit's anchored pixels)."""
    from diffrep.priors import check_prompt, prior_config
    from diffrep.spec import check_run

    config = prior_config(a.prior, **prior_options(a))
    check_run(config, method, image=image, rep=rep, options=options, rep_options=rep_options)
    check_prompt(config, prompt)
    if n is not None:
        from diffrep.api import check_memory_unloaded, views_per_step

        check_memory_unloaded(config, n, memory_rep or rep_options, views_per_step(options), own_rep=memory_rep is not None)
    return config


def load_prior(config):
    """Load the prior of a validated config (``check_prior``), with a progress bar while toy-world data is generated."""
    from diffrep.priors import load_config, prior_name

    bar = Progress(f"{prior_name(config)} prior (first use of a data set generates it, then it is cached)")
    try:
        return load_config(config, progress=bar.count)
    finally:
        bar.close()


def run_sample(a: SampleArgs) -> int:
    from diffrep.export import check_output_dir, output_lock

    check_output_dir(a.out, a.overwrite)  # first, and before torch is imported: a bad --out is reported at once
    from diffrep.methods import Sampling
    from diffrep.priors import check_prompt
    from diffrep.spec import prepare

    image = METHODS[a.method].image
    run = dict(rep=a.rep if image else getattr(a, a.rep), method=getattr(a, a.method.replace("-", "_")), n=a.n, seed=a.seed,
               prompt=a.prompt)
    if not image:
        run |= {"checkpoint": a.out.with_name(a.out.name + ".checkpoint"), "checkpoint_every": a.checkpoint_every,
                "resume": a.resume}
    elif a.resume or a.checkpoint_every:
        run |= {"checkpoint_every": a.checkpoint_every or 0, "resume": a.resume}
    previews = previews_for(a, image)
    sampling = dict(steps=a.steps, guidance_scale=a.guidance_scale, eta=a.eta)
    spec, _ = prepare(sampling=Sampling(**sampling), **run)  # the rep, the method, their options: still no torch
    prior_config = check_prior(a.prior, a.prompt, a.method, image=image, rep=spec.rep, options=spec.options,
                               rep_options=None if image else spec.rep_options, n=a.n)  # all before the prior loads
    # The view prompts of the rep's views (a NeRF's camera bank needs torch), and the default prompt: a rep whose
    # views add view words of their own takes it without its view.
    labels = () if image else REPS[spec.rep].labels(spec.rep_options)
    run["prompt"] = ("a red mug" if labels else "a red mug, front view") if a.prompt is None else a.prompt
    if run["prompt"]:
        check_prompt(prior_config, run["prompt"], labels)
    import diffrep

    with output_lock(a.out):
        prior = load_prior(prior_config)
        bar = Progress(f"{a.method} {a.rep}")
        try:
            hear = bar if previews is None else previews.listening(bar, prior)
            result = diffrep.sample(prior, callback=hear, keep_checkpoint=not image, **sampling, **run)
        except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: say what is kept and how to go on
            raise type(e)(resume_hint(None if image else run["checkpoint"] / "state.json")) from None
        finally:
            bar.close()
        out = save_result(result, a, extra=None if previews is None else previews.files())
        if previews is not None:
            previews.remove()
        return _report(out, result.info)


def resume_hint(state: Path | None) -> str:
    """What an interrupted run leaves to resume from (``state``: its checkpoint's JSON record, which holds its
    ``step``; ``None``: a command without checkpoints, nothing to say): the checkpoint's step and folder, or that none
    was written yet."""
    if state is None:
        return ""
    try:
        step = json.loads(state.read_text())["step"]
    except (OSError, ValueError, KeyError, TypeError):
        return "no checkpoint was written yet"
    return f"the checkpoint of step {step} is kept in {state.parent}/; the same command with --resume continues from it"


def previews_for(a: SampleArgs, image: bool) -> Previews | None:
    """``--preview-every``'s previews of a diffrep method's run (``None``: 0, or an image method, which runs in
    seconds and has no rep to preview until it ends); a bad value is refused before the work."""
    from diffrep.checks import check_count

    if a.preview_every is not None:
        check_count("preview_every", a.preview_every)
        if image and a.preview_every:
            raise InputError(f"previews are drawn by the diffrep methods, not by {a.method!r}, which runs in seconds")
    return None if image or a.preview_every == 0 else Previews(a.out, a.preview_every, a.resume)


class Previews:
    """The reps as they are every ``every`` steps (``None``: a tenth of the run), as ``samples.png`` shows them:
    ``OUT.previews/step-NNNNNN.png`` while the run lasts (each written atomically; kept across a kill and
    ``--resume``, cleared by a fresh run), moved into the result as ``preview-NNNNNN.png`` when it is saved."""

    def __init__(self, out: Path, every: int | None, resume: bool):
        self.folder, self.every, self.resume = out.with_name(out.name + ".previews"), every, resume

    def listening(self, callback, prior) -> object:
        """``callback``, then a preview when one is due (the callback dicts carry ``step``, ``steps`` and ``rep``).
        Called once the run holds its output's lock: a fresh run clears an earlier, unfinished one's previews."""
        from diffrep.api import preview_image

        if not self.resume:
            self.remove()

        def hear(d: dict) -> None:
            callback(d)
            if d["step"] % (self.every or max(1, d["steps"] // 10)) == 0:
                part = self.folder / f".step-{d['step']:06d}.png"
                try:
                    self.folder.mkdir(exist_ok=True)
                    preview_image(prior, d["rep"]).save(part)
                    part.replace(self.folder / part.name[1:])
                except OSError as e:  # a full disk: one line, and the run's checkpoint is still there to resume
                    raise RunError(f"cannot write the preview {str(self.folder / part.name[1:])!r} ({e.strerror or e}); "
                                   "the run stopped: --resume continues it from its last checkpoint, --preview-every 0 "
                                   "runs it without previews") from None

        return hear

    def files(self) -> dict[str, bytes]:
        """The previews as the result's files (``preview-NNNNNN.png``; ``Result.save`` writes them and run.json lists them)."""
        return {f"preview-{p.name[5:]}": p.read_bytes() for p in sorted(self.folder.glob("step-*.png"))}

    def remove(self) -> None:
        """Delete the previews, and the folder if nothing else is in it (a folder of the user's is never deleted)."""
        for path in [*self.folder.glob("step-*.png"), *self.folder.glob(".step-*.png")]:
            path.unlink()
        with contextlib.suppress(OSError):
            self.folder.rmdir()


def run_sdedit(a: SdeditArgs) -> int:
    from diffrep.export import check_input_image, check_output_dir, load_image

    check_output_dir(a.out, a.overwrite)
    check_input_image(a.image)  # a wrong path at once, before torch is imported
    from diffrep.methods import Sampling
    from diffrep.spec import check_strength

    Sampling(a.steps, a.guidance_scale, a.eta), check_strength(a.strength)
    prior_config = check_prior(a.prior, a.prompt, "sdedit", image=True, n=a.n)
    import diffrep

    load_image(a.image)  # fail on a bad file before loading the prior
    prior = load_prior(prior_config)
    bar = Progress("sdedit")
    try:
        result = diffrep.sdedit(prior, a.image, prompt=a.prompt, strength=a.strength, n=a.n, seed=a.seed,
                                steps=a.steps, guidance_scale=a.guidance_scale, eta=a.eta, callback=bar)
    finally:
        bar.close()
    return _report(save_result(result, a, {"image": str(a.image)}), result.info)


def run_inpaint(a: InpaintArgs) -> int:
    from diffrep.export import check_input_image, check_output_dir, load_image

    check_output_dir(a.out, a.overwrite)
    check_input_image(a.image), check_input_image(a.mask)  # a wrong path at once, before torch is imported
    from diffrep.checks import check_positive_int
    from diffrep.methods import Sampling

    Sampling(a.steps, a.guidance_scale, a.eta), check_positive_int("rounds", a.rounds)
    prior_config = check_prior(a.prior, a.prompt, "inpaint", image=True, n=a.n)
    import diffrep

    load_image(a.image), load_image(a.mask)  # fail on a bad file before loading the prior
    prior = load_prior(prior_config)
    bar = Progress("repaint")
    try:
        result = diffrep.inpaint(prior, a.image, a.mask, prompt=a.prompt, rounds=a.rounds, n=a.n, seed=a.seed,
                                 steps=a.steps, guidance_scale=a.guidance_scale, eta=a.eta, callback=bar)
    finally:
        bar.close()
    return _report(save_result(result, a, {"image": str(a.image), "mask": str(a.mask)}), result.info)


def run_toyworld(a: ToyworldArgs) -> int:
    from diffrep.checks import check_positive_int
    from diffrep.export import check_output_dir

    check_output_dir(a.out, a.overwrite)
    check_positive_int("n", a.n)
    if a.res not in (32, 64):
        raise InputError(f"res={a.res} is not allowed; the toy world renders 32 or 64")
    scene_options = {"min_objects": a.min_objects, "max_objects": a.max_objects, "kinds": a.kinds, "colours": a.colours}
    if a.scenes:
        return run_toyworld_scenes(a, {k: v for k, v in scene_options.items() if v is not None})
    if given := [k for k, v in scene_options.items() if v is not None]:
        raise InputError(f"option --{given[0].replace('_', '-')} is for scenes; add --scenes")
    from diffrep import toyworld as tw

    bar = Progress("rendering")
    try:
        ds = tw.generate(tw.ToyWorldConfig(n=a.n, res=a.res, seed=a.seed), progress=bar.count)
    finally:
        bar.close()
    tw.write_dataset(ds, a.out, overwrite=a.overwrite)
    print(f"wrote {len(ds)} images and metadata.json to {a.out}")
    return 0


def run_toyworld_scenes(a: ToyworldArgs, options: dict) -> int:
    from diffrep.toyworld.scene_text import SceneConfig

    config = SceneConfig(n=a.n, res=a.res, seed=a.seed, **options)  # validates, before torch is imported
    from diffrep.toyworld.scenes import generate_scenes, write_scenes

    bar = Progress("rendering scenes")
    try:
        ds = generate_scenes(config, progress=bar.count)
    finally:
        bar.close()
    write_scenes(ds, a.out, overwrite=a.overwrite)
    print(f"wrote {len(ds)} panoramas and scenes.json to {a.out}")
    return 0


def run_export(a: ExportArgs) -> int:
    from diffrep.nerf_runs import export_run  # it checks the folder and the numbers before torch is imported

    for name, path in export_run(a.run, a.format, resolution=a.resolution, size=a.size, frames=a.frames).items():
        print(f"{name.split('-')[0]}: {path}")
    return 0


def run_evaluate(a: EvaluateArgs) -> int:
    import json as json_module

    from diffrep.export import add_to_folder
    from diffrep.nerf_runs import evaluate  # it checks the folder and --reference-n before torch is imported

    bar = Progress("toy-world reference images (first use, then cached)")
    try:
        results = evaluate(a.run, reference_n=a.reference_n, seed=a.seed, progress=bar.count)
    finally:
        bar.close()
    from diffrep.evaluate3d import format_table

    print(format_table(results))
    add_to_folder(a.run, {"eval.json": json_module.loads(json_module.dumps(results, default=str))})
    print(f"evaluation: {a.run / 'eval.json'}")
    return 0


def run_bench(a: BenchArgs) -> int:
    from diffrep.bench import run_suite
    from diffrep.export import check_writable

    check_writable(a.results, "results folder")  # not at the end of a run of minutes
    path = run_suite(a.suite, quick=a.quick, results=a.results, log=lambda s: print(s, file=sys.stderr),
                     prior=a.prior, prior_path=a.prior_path, device=a.device, section=a.section, shard=a.shard)
    if a.shard is not None:
        print(f"shard {a.shard} done, its runs in {path}; `diffrep bench {a.suite}` without --shard writes the JSON")
        return 0
    print(f"results: {path}")
    return 0


def run_train_prior(a: TrainPriorArgs) -> int:
    from diffrep.export import check_writable

    check_writable(a.out, "output folder")  # before torch is imported (the folder may hold a run to resume)
    from diffrep.training.tiny import check_config, train

    config = TrainConfig(**{k: v for k, v in asdict(a).items() if k != "resume"})
    check_config(config)  # before the run folder exists: bad input leaves nothing behind
    return run_training(train, config, a.out, a.resume, "tiny prior", show_loss=True)


def run_train_corrective(a: TrainCorrectiveArgs) -> int:
    from diffrep.export import check_writable

    check_writable(a.out, "output folder")  # before torch is imported (the folder may hold a run to resume)
    from diffrep.training.config import check_corrective_config

    config = CorrectiveTrainConfig(**{k: v for k, v in asdict(a).items() if k != "resume"})
    check_corrective_config(config)  # before the run folder exists, and before torch is imported
    from diffrep.training.corrective import train

    return run_training(train, config, a.out, a.resume, "corrective", f" for prior {a.prior}")


def run_train_translator(a: TrainTranslatorArgs) -> int:
    from diffrep.export import check_writable

    check_writable(a.out, "output folder")  # before torch is imported (the folder may hold a run to resume)
    config = TranslatorTrainConfig(**{k: v for k, v in asdict(a).items() if k != "resume"})
    check_translator_config(config)  # before the run folder exists, and before torch is imported
    from diffrep.training.translator import train  # warns (AdviceWarning) before its prior loads

    return run_training(train, config, a.out, a.resume, "translator", f" ({a.loss}, prior {a.prior})")


def run_translate(a: TranslateArgs) -> int:
    from diffrep.export import check_input_image, check_output_dir
    from diffrep.methods.translator_meta import translator_record

    check_output_dir(a.out, a.overwrite)
    check_input_image(a.image)
    translator_record(a.weights, to=a.to, prior=a.prior)  # a missing sidecar, another prior, an unknown kind: no torch
    import diffrep

    result = diffrep.translate(a.weights, a.image, to=a.to, prior=a.prior)
    save_result(result, a)
    print(f"translated ({a.image} -> {a.to}): {a.out / 'samples.png'}")
    print(f"tensors and run record: {a.out / 'samples.safetensors'}, {a.out / 'run.json'}")
    return 0


def run_training(train, config, out: Path, resume: bool, what: str, detail: str = "", show_loss: bool = False) -> int:
    """A trainer's run (``train(config, resume=, callback=)``) under the output lock, with a progress bar and
    the run's log: one JSON line every 50 steps, at checkpoints and at the end, in ``OUT/train_log.jsonl``."""
    from diffrep.export import output_lock

    bar = Progress(f"training the {what}{detail}")
    out.mkdir(parents=True, exist_ok=True)
    log = (out / "train_log.jsonl").open("a")

    def report(d: dict) -> None:
        bar(d)
        if show_loss:
            bar.bar.set_postfix(loss=f"{d['loss']:.4f}")
        if d["step"] % 50 == 0 or "checkpoint" in d or d["step"] == d["steps"]:
            log.write(json.dumps({k: (round(v, 5) if isinstance(v, float) else str(v)) for k, v in d.items()}) + "\n")
            log.flush()

    try:
        with output_lock(out):
            weights = train(config, resume=resume, callback=report)
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: say what is kept and how to go on
        raise type(e)(resume_hint(out / "checkpoint.json")) from None
    finally:
        bar.close()
        log.close()
    print(f"{what} weights: {weights}")
    return 0


def run_edit(a: EditArgs) -> int:
    from diffrep.checks import check_choice
    from diffrep.export import check_input_image, check_output_dir, load_image

    check_output_dir(a.out, a.overwrite)
    check_input_image(a.image)  # a wrong path at once, before torch is imported
    if a.method not in METHODS:  # a typo: the nearest of those edit takes (edit_options refuses the others)
        check_choice("method", a.method, edit_methods())
    from diffrep.spec import edit_options
    from diffrep.methods import Sampling

    options = edit_options(a.method, iters=a.iters, lr=a.lr, t_range=a.t_range, source_prompt=a.source_prompt,
                           corrective=a.corrective, anchor=a.anchor,
                           sampling=Sampling(guidance_scale=a.guidance_scale))  # bad options: one line, before any work
    prior_config = check_prior(a.prior, a.prompt, a.method, image=False, rep="pixels", options=options,
                               n=a.n, memory_rep=REPS["pixels"].config())
    import diffrep

    load_image(a.image)  # fail on a bad file before loading the prior
    prior = load_prior(prior_config)
    bar = Progress(f"edit ({a.method})")
    try:
        result = diffrep.edit(prior, a.image, prompt=a.prompt, method=options, anchor=a.anchor, n=a.n, seed=a.seed,
                              guidance_scale=a.guidance_scale, callback=bar)
    finally:
        bar.close()
    return _report(save_result(result, a, {"image": str(a.image)}), result.info)


def _report(out: Path, info: dict) -> int:
    evals, secs = info["prior_evaluations"], info["timings"]["sampling_s"]
    print(f"{evals} prior evaluations in {secs:.2f} s")
    print(f"samples: {out / 'samples.png'}")
    if (out / "views.png").exists():
        print(f"views: {out / 'views.png'}")
    if previews := sorted(out.glob("preview-*.png")):
        print(f"previews: {previews[0]} ... {previews[-1].name} ({len(previews)})")
    for kind, pattern in (("turntable", "turntable-*.gif"), ("geometry", "geometry-*.png"), ("mesh", "mesh-*.glb")):
        for path in sorted(out.glob(pattern)):
            print(f"{kind}: {path}")
    extra = ", rep.safetensors (weights)" if (out / "rep.safetensors").exists() else ""
    print(f"tensors and run record: {out / 'samples.safetensors'}, {out / 'run.json'}{extra}")
    return 0


RUNNERS = {SampleArgs: run_sample, SdeditArgs: run_sdedit, InpaintArgs: run_inpaint, ToyworldArgs: run_toyworld,
           ExportArgs: run_export, EvaluateArgs: run_evaluate, BenchArgs: run_bench, TrainPriorArgs: run_train_prior,
           TrainCorrectiveArgs: run_train_corrective, EditArgs: run_edit, TrainTranslatorArgs: run_train_translator,
           TranslateArgs: run_translate}


if __name__ == "__main__":
    sys.exit(main())
