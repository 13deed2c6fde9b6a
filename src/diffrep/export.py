"""Writing results: image grids, tensors, run records, all atomically; reading input images.

Torch is imported inside the functions that need it: the output checks (``check_output_dir``,
``output_lock``) run before the command line imports it."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from diffrep.errors import InputError

if TYPE_CHECKING:
    from torch import Tensor


def to_uint8(images: Tensor) -> Tensor:
    """``[N, C, H, W]`` in [-1, 1] -> uint8 ``[N, H, W, C]`` (clipped)."""
    import torch

    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu()


def image_grid(images: Tensor, nrow: int | None = None, scale: int = 1, pad: int = 1) -> "PIL.Image.Image":  # noqa: F821
    """Tile ``[N, C, H, W]`` images in [-1, 1] into one PIL image (white padding, nearest upscaling)."""
    import torch
    from PIL import Image

    n, c, h, w = images.shape
    nrow = nrow or min(n, 8)
    rows = (n + nrow - 1) // nrow
    canvas = torch.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, 3), 255, dtype=torch.uint8)
    tiles = to_uint8(images)
    tiles = tiles.expand(-1, -1, -1, 3) if c == 1 else tiles[..., :3]
    for i, tile in enumerate(tiles):
        r, q = divmod(i, nrow)
        canvas[pad + r * (h + pad): pad + r * (h + pad) + h, pad + q * (w + pad): pad + q * (w + pad) + w] = tile
    img = Image.fromarray(canvas.numpy())
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST) if scale > 1 else img


def check_input_image(path: str | Path) -> Path:
    """``path`` as a ``Path``, or an ``InputError`` if it is not a file (no torch: the command line calls it first)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"input image {str(path)!r} does not exist or is not a file")
    return path


def load_image(path: str | Path, size: tuple[int, int] | None = None) -> Tensor:
    """Read a PNG/JPEG as ``[1, 3, H, W]`` in [-1, 1], resized (bicubic) to ``size = (H, W)``."""
    import torch
    from PIL import Image, UnidentifiedImageError

    path = check_input_image(path)
    try:
        with Image.open(path) as img:
            img = to_rgb8(img)
            if size is not None and img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), Image.BICUBIC)
            data = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(img.height, img.width, 3)
    except (UnidentifiedImageError, OSError) as e:
        raise InputError(f"input {str(path)!r} is not a readable image (PNG or JPEG): {e}") from None
    return data.permute(2, 0, 1)[None].float() / 127.5 - 1


def to_rgb8(img: "PIL.Image.Image") -> "PIL.Image.Image":  # noqa: F821
    """8-bit RGB of any PNG/JPEG mode: 16-bit and 32-bit greyscale scaled (PIL's ``convert`` would clip
    them to white), transparency composited over white."""
    import numpy as np
    from PIL import Image

    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        top = 65535.0 if img.mode.startswith("I;16") or np.asarray(img).max() > 255 else 255.0
        grey = (np.asarray(img, dtype=np.float64) / top * 255.0).round().clip(0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def load_mask(path: str | Path, size: tuple[int, int]) -> Tensor:
    """A mask image as ``[1, 1, H, W]`` in {0, 1}: white (> 50 %) = known."""
    return (load_image(path, size).mean(1, keepdim=True) > 0).float()


MARKERS: tuple[str, ...] = ("run.json", "metadata.json")
"""The record diffrep writes into every output folder: ``run.json`` (results) or ``metadata.json``
(toy-world data sets). It lists the folder's other files."""


def diffrep_files(folder: Path) -> set[str] | None:
    """The names a folder written by diffrep holds (its record and the files it lists), or ``None``
    if ``folder`` holds no readable diffrep record."""
    for marker in MARKERS:
        try:
            record = json.loads((folder / marker).read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict):
            continue
        if isinstance(record.get("outputs"), list):  # run.json
            return {marker, *map(str, record["outputs"])}
        if isinstance(record.get("images"), list):  # a toy-world data set
            return {marker, *(f"{i:05d}.png" for i in range(len(record["images"])))}
    return None


def check_replaceable(out: Path) -> None:
    """``--overwrite`` only ever replaces a folder that diffrep wrote: never the working folder or one
    of its parents, never a folder holding anything diffrep did not write."""
    owned = diffrep_files(out)
    names = {p.name for p in out.iterdir()}
    if owned is None:
        raise InputError(f"output folder {str(out)!r} is not empty and was not written by diffrep (no run.json); "
                         "--overwrite only replaces diffrep's own output folders: choose a new or empty folder")
    if foreign := sorted(names - owned):
        raise InputError(f"output folder {str(out)!r} holds {foreign[0]!r}, which diffrep did not write; "
                         "--overwrite only replaces a folder holding nothing but diffrep's outputs")


def check_output_dir(out: str | Path, overwrite: bool) -> Path:
    """Fail early, before any work, if ``out`` cannot take a new result.

    A non-empty folder is refused unless ``overwrite``, and even then unless diffrep wrote it
    (``check_replaceable``): a user's files are never deleted."""
    out = Path(out)
    here, target = Path.cwd().resolve(), out.resolve()
    if target == here or target in here.parents or target == Path(target.anchor) or target == Path.home().resolve():
        raise InputError(f"output folder {str(out)!r} is the working folder, one of its parents or the home "
                         "folder; results go into a folder of their own (which --overwrite may later replace): "
                         "choose a new folder")
    if out.exists() and not out.is_dir():
        raise InputError(f"output {str(out)!r} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise InputError(f"output folder {str(out)!r} is not empty; pass --overwrite or choose another folder")
        check_replaceable(out)
    return check_writable(out, "output folder", parent=True)


def check_writable(out: str | Path, what: str, *, parent: bool = False) -> Path:
    """``out`` (a folder) can be created or written into: its nearest existing folder (its parent's,
    with ``parent``) takes a real file. Permissions alone do not say that /proc or a read-only mount
    refuses files."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{what} {str(out)!r} exists and is not a folder")
    folder = out.resolve().parent if parent else out.resolve()
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"{what} {str(out)!r} is not writable: {str(folder)!r} is a file")
    try:
        fd, probe = tempfile.mkstemp(prefix=".diffrep-probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise InputError(f"{what} {str(out)!r} is not writable: cannot create files in {str(folder)!r} "
                         f"({e.strerror})") from None
    return out


def run_record(folder: str | Path, *, rep: str | None = None) -> dict[str, Any]:
    """The ``run.json`` of a result folder that holds a diffrep's weights; ``rep`` names the rep the
    caller needs (an ``InputError`` otherwise). No torch: the command line checks a folder with it first."""
    from diffrep.checks import check_choice
    from diffrep.reps import REPS

    folder = Path(folder)
    try:
        record = json.loads((folder / "run.json").read_text())
        config = record["config"]
        if missing := {"rep", "rep_options", "image_shape", "n"} - set(config):
            raise KeyError(min(missing))
        name = config["rep"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"{str(folder)!r} is not a diffrep result folder with a readable run.json ({e})") from None
    if rep is not None and name != rep:
        raise InputError(f"{str(folder)!r} holds a {name!r} run; this needs a {rep!r} run")
    if not (folder / "rep.safetensors").is_file():
        raise InputError(f"{str(folder)!r} has no rep.safetensors (image-space runs keep no diffrep)")
    check_choice("rep", name, REPS)
    return record


@contextmanager
def output_lock(out: str | Path) -> Iterator[None]:
    """Hold ``OUT.lock`` (created exclusively, holding the PID) while a run writes ``out`` and its
    checkpoints: a second run on the same folder is refused; a lock left by a dead process is taken over."""
    lock = Path(out).with_name(Path(out).name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            pid = _lock_pid(lock)
            if pid is not None and _alive(pid):
                raise InputError(f"another diffrep run (pid {pid}) is writing {str(out)!r}; wait for it or choose "
                                 f"another folder (or remove {str(lock)!r} if that run is gone)") from None
            lock.unlink(missing_ok=True)  # stale: its process is gone
        except OSError as e:
            raise InputError(f"cannot lock {str(out)!r}: {e.strerror} ({str(lock)!r})") from None
    else:
        raise InputError(f"cannot lock {str(out)!r}: {str(lock)!r} keeps reappearing")
    try:
        os.write(fd, f"{os.getpid()}\n".encode())
        os.close(fd)
        yield
    finally:
        lock.unlink(missing_ok=True)


def _lock_pid(lock: Path) -> int | None:
    try:
        return int(lock.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_folder(out: str | Path, files: dict[str, Any], overwrite: bool) -> Path:
    """Write ``files`` (name -> bytes, PIL image, tensor dict or JSON-able dict) into ``out``
    atomically: everything goes to a temporary sibling folder that replaces ``out`` at the end.

    The folder is checked again just before it is replaced (``check_output_dir``), so a folder
    that gained a user's file during the run is never deleted."""
    out = check_output_dir(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; an output folder is an ordinary folder
        for name, value in files.items():
            _write_one(tmp / name, value)
        check_output_dir(out, overwrite)
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def replace_dir(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``; an existing ``dst`` is moved aside first and deleted only afterwards."""
    if not dst.exists():
        os.replace(src, dst)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.old.", dir=dst.parent))
    os.replace(dst, old / dst.name)
    os.replace(src, dst)
    shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_one(path: Path, value: Any) -> None:
    from safetensors.torch import save_file

    if isinstance(value, (bytes, bytearray)):
        path.write_bytes(value)
    elif hasattr(value, "save") and hasattr(value, "mode"):  # a PIL image
        value.save(path)
    elif path.suffix == ".safetensors":
        save_file({k: v.detach().contiguous().cpu() for k, v in value.items()}, path)
        os.chmod(path, 0o666 & ~_umask())  # save_file leaves 0600
    else:
        path.write_text(json.dumps(value, indent=2, default=str) + "\n")


def add_to_folder(folder: str | Path, files: dict[str, Any]) -> Path:
    """Add (or replace) ``files`` in a result folder diffrep wrote, each atomically, and list them in
    its ``run.json``, so ``--overwrite`` still knows every file in it (``diffrep export``, ``evaluate``)."""
    folder = Path(folder)
    record_path = folder / "run.json"
    if diffrep_files(folder) is None or not record_path.is_file():
        raise InputError(f"{str(folder)!r} is not a result folder written by diffrep (no run.json)")
    record = json.loads(record_path.read_text())
    for name, value in files.items():
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=f"-{name}", dir=folder)  # keeps the extension
        os.close(fd)
        try:
            _write_one(Path(tmp), value)
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, folder / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    record["outputs"] = sorted(set(record.get("outputs", [])) | set(files))
    atomic_write_text(record_path, json.dumps(record, indent=2, default=str) + "\n")
    return folder


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a text file via a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
