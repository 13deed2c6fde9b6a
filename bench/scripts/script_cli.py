"""The probe scripts' command lines, checked before any work as the CLI's are.

A script names its verbs and how many arguments each takes (``{None: (least, most)}`` for a script without verbs);
``command`` gives back the verb and its arguments, or refuses the command line in one line on stderr (an unknown or
missing verb with the verbs allowed; a wrong number of arguments with the script's own usage line for that verb, from
its docstring) and exits 2. ``parse`` converts the arguments' values, refusing one that does not parse the same way;
``script_main`` runs the work and turns the bad input diffrep's own checks find on the way (an ``InputError``) into
one line and exit 2 as well. A verb that writes committed results from the runs a machine has cached refuses when
there are none (``cached``) and keeps the committed rows it did not rerun (``merged``)."""

import sys
from pathlib import Path
from typing import NoReturn

MANY = 1 << 30
"""``most`` for a verb that takes any number of arguments (``FOLDER...``)."""


def refuse(message: str, name: str | None = None) -> NoReturn:
    """``message`` after the script's name (``name``, else the running script's) on stderr, and exit 2."""
    print(f"{name or Path(sys.argv[0]).name}: {message}", file=sys.stderr)
    raise SystemExit(2)


def usage_line(doc: str, name: str, verb: str | None) -> str | None:
    """The docstring's first command line for ``verb``, from the script's name on (``nerf3d_probe.py run PROMPT ...``),
    its trailing ``# comment`` dropped."""
    head = name if verb is None else f"{name} {verb}"
    for line in doc.splitlines():
        if (at := line.find(head)) >= 0 and line[at + len(head):at + len(head) + 1] in ("", " "):
            return line[at:].split("  #")[0].split("#")[0].rstrip()
    return None


def command(doc: str, arities: dict[str | None, tuple[int, int]], argv: list[str] | None = None,
            name: str | None = None) -> tuple[str | None, list[str]]:
    """``argv`` (default ``sys.argv[1:]``) as ``(verb, arguments)`` when the verb is one of ``arities`` and its
    arguments number ``least`` to ``most``; otherwise one line and exit 2. ``name``: the script's (default the
    running one's), as its usage lines spell it."""
    argv = sys.argv[1:] if argv is None else argv
    name = name or Path(sys.argv[0]).name
    if None in arities:
        verb, args = None, argv
    elif not argv or argv[0] not in arities:
        refuse(f"{'unknown verb ' + repr(argv[0]) if argv else 'no verb given'}; allowed: {', '.join(arities)}", name)
    else:
        verb, args = argv[0], argv[1:]
    least, most = arities[verb]
    if not least <= len(args) <= most:
        count = f"{least}" if least == most else f"{least} or more" if most == MANY else f"{least} to {most}"
        refuse(f"usage: {usage_line(doc, name, verb) or (name + ' ' + (verb or '')).strip()} "
               f"({count} argument{'' if count == '1' else 's'}, got {len(args)})", name)
    return verb, args


def cached(path: Path, first: str) -> None:
    """Before a verb that writes results from the runs cached at ``path`` (a file of rows or a folder of runs): one
    line and exit 2 when it holds none, as in a fresh checkout, so that the committed results are not rewritten from
    nothing; ``first`` names the verb that makes them."""
    empty = (not path.exists() or (path.is_dir() and not any(path.iterdir()))
             or (path.is_file() and not path.read_text().strip()))
    if empty:
        refuse(f"no runs cached at {path} (a fresh checkout has none): {first} first; the committed results are left "
               "as they are")


def merged(path: Path, rows_of, fresh: list[dict], key) -> list[dict]:
    """The rows a ``write`` verb writes to ``path``: the rows committed there (``rows_of(record)``), each replaced in
    place by the cache's row of the same ``key(row)`` where the cache has one, then the cache's other rows in their
    order. A write from a partial cache (a fresh checkout that ran one more cell) keeps every row it did not rerun."""
    import json

    fresh_by = {key(r): r for r in fresh}
    committed = rows_of(json.loads(path.read_text())) if path.exists() else []
    return [fresh_by.pop(key(r), r) for r in committed] + list(fresh_by.values())


def parse(make, what: str = ""):
    """``make()``: the command line's values converted (``int``, ``float``, ``json.loads``); a value that does not
    parse is one line naming ``what`` and exit 2."""
    try:
        return make()
    except ValueError as e:
        refuse(f"{what + ': ' if what else ''}{e}")


def script_main(fn, *args, **kwargs) -> None:
    """``fn(*args, **kwargs)``; the bad input diffrep's own checks find (``InputError``: an option, a prompt, a path)
    is one line and exit 2. Any other error keeps its traceback: it is a fault, not the input."""
    from diffrep.errors import InputError

    try:
        fn(*args, **kwargs)
    except InputError as e:
        refuse(str(e))
