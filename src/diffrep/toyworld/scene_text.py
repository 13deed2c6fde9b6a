"""The words of toy-world scenes, without torch: the scene generator's options, captions of a view
and their parser, so that the command line can refuse a bad option or prompt before anything heavy
is imported (``scenes.py`` renders; this module only names).

A view's caption lists the objects it sees from left to right and the floor:
``"a red mug and a blue duck on a green floor"``; the parser takes the synonyms of
``diffrep.priors.prompts`` (``"a crimson cup and an azure duckling on an emerald floor"``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from diffrep.checks import check_int, check_one_of
from diffrep.errors import InputError
from diffrep.priors.prompts import STOPWORDS, build_lexicon
from diffrep.toyworld.vocabulary import COLOURS, KINDS, VIEWS

MAX_OBJECTS: int = 6
"""The most objects a scene holds: six sectors of 60 degrees round the camera, one object each."""
VIEW_FOV_DEG: float = 60.0
"""Horizontal field of view of a view: a view is ``res`` columns of the ``res * 360 / 60``-column canvas."""
VIEW_BINS: int = 4
"""Where in a view an object stands: its centre's bearing in one of this many equal slices of the view
(left to right), the position a panorama's layout asks of a view (``SceneQuery.at``)."""


def view_offset(bearing: float, column: int, canvas_w: int) -> float:
    """Columns from the view starting at ``column`` to ``bearing`` (degrees, the canvas's column bearings),
    rightwards round the canvas: in ``[0, canvas_w)``."""
    return (bearing / 360.0 * canvas_w - column) % canvas_w


def view_bin(bearing: float, column: int, width: int, canvas_w: int) -> int:
    """The slice (``0 .. VIEW_BINS - 1``, left to right) of the view of columns ``column .. column + width - 1``
    (mod ``canvas_w``) holding ``bearing`` (degrees, the canvas's column bearings), or -1 outside the view."""
    offset = view_offset(bearing, column, canvas_w)
    return int(offset * VIEW_BINS // width) if offset < width else -1


PARTIAL_MARGIN: float = 1 / 8
"""How far outside a view (as a share of its width) an object's centre may stand and the view still see part
of it: a view sees an object holding 30 % of its pixels (``VISIBLE_FRACTION``), and of the data's views that
see an object with its centre outside, 99 % have it within 3.7 columns of the edge at 32 (4 columns = 1/8)."""


def near_view(bearing: float, column: int, width: int, canvas_w: int) -> bool:
    """Whether ``bearing`` (degrees) stands outside the view of columns ``column .. column + width - 1`` but
    within ``PARTIAL_MARGIN`` of its width from either edge: the view may see part of such an object."""
    offset = view_offset(bearing, column, canvas_w)
    return offset >= width and min(offset - width, canvas_w - offset) < PARTIAL_MARGIN * width


@dataclass(frozen=True)
class SceneConfig:
    """How to generate toy-world scenes: 360-degree rooms seen from a central camera."""

    n: int = 100
    """Number of scenes."""
    res: int = 32
    """View resolution, 32 or 64: the panorama canvas is res x (6 res), a view res x res."""
    seed: int = 0
    """Seed of the one torch.Generator all random choices come from."""
    min_objects: int | None = None
    """Fewest objects in a scene (default: 3, or max_objects if that is smaller)."""
    max_objects: int | None = None
    """Most objects in a scene: at most 6, and at most the number of kinds, as a scene's kinds are distinct
    (default: the most allowed)."""
    kinds: tuple[str, ...] = KINDS
    """The kinds objects are drawn from (synonyms allowed, e.g. cup for mug)."""
    colours: tuple[str, ...] = COLOURS
    """The colours objects and floors are drawn from (synonyms allowed)."""

    def __post_init__(self):
        check_int("n", self.n, minimum=0)
        check_one_of("res", self.res, (32, 64))
        check_int("seed", self.seed, minimum=0)
        object.__setattr__(self, "kinds", canonical_words("kind", self.kinds))
        object.__setattr__(self, "colours", canonical_words("colour", self.colours))
        most = min(MAX_OBJECTS, len(self.kinds))
        if self.max_objects is None:
            object.__setattr__(self, "max_objects", most)
        if self.min_objects is None:
            object.__setattr__(self, "min_objects", min(3, self.max_objects))
        check_int("min_objects", self.min_objects, minimum=1)
        check_int("max_objects", self.max_objects, minimum=1)
        if self.max_objects > most:
            why = f"a scene holds at most {MAX_OBJECTS}" if most == MAX_OBJECTS else f"a scene's kinds are distinct and {len(self.kinds)} are allowed"
            raise InputError(f"max_objects={self.max_objects} is not allowed; {why} (allowed: 1..{most})")
        if self.min_objects > self.max_objects:
            raise InputError(f"min_objects={self.min_objects} is not allowed; it must be at most max_objects={self.max_objects}")

    @property
    def canvas_shape(self) -> tuple[int, int, int]:
        """``(3, res, 6 res)``: the panorama canvas, the panorama rep's geometry at 60-degree views."""
        return (3, self.res, round(self.res * 360 / VIEW_FOV_DEG))


def canonical_words(label: str, words: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``words`` (kinds or colours, synonyms allowed) as the toy world's names, in the world's order, each once."""
    names = KINDS if label == "kind" else COLOURS
    if isinstance(words, str) or not words:
        raise InputError(f"{label}s={words!r} is not allowed; give one or more of: {', '.join(names)}")
    lexicon = build_lexicon(KINDS, COLOURS, VIEWS)
    picked = set()
    for word in words:
        hit = lexicon.get(str(word).lower())
        if hit is None or hit[0] != label:
            raise InputError(f"unknown {label} {word!r}; allowed: {', '.join(names)} (and synonyms)")
        picked.add(hit[1])
    return tuple(names[i] for i in sorted(picked))


def article(words: str) -> str:
    return f"{'an' if words[0] in 'aeiou' else 'a'} {words}"


def scene_caption(objects: list[tuple[int, int]], floor: int) -> str:
    """Caption of a view that sees ``objects`` (kind, colour) from left to right on a ``floor``-coloured floor.

    >>> scene_caption([(0, 0), (1, 2)], 1)
    'a red mug and a blue duck on a green floor'
    >>> scene_caption([], 5)
    'an orange floor'
    """
    floor_words = f"{COLOURS[floor]} floor"
    if not objects:
        return article(floor_words)
    names = [article(f"{COLOURS[c]} {KINDS[k]}") for k, c in objects]
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    return f"{listed} on {article(floor_words)}"


@dataclass(frozen=True)
class SceneQuery:
    """A condition on a scene view: objects it must see (each a kind and/or a colour) and the floor colour.

    ``only``: and no other object (a panorama's layout-conditioned view, ``ScenePrompt.view_queries``; with
    no objects, the bare floor and wall) but those of ``near``, which it may see in part (their centre just
    outside it, ``near_view``); ``at``: with ``only``, the slice of the view (``view_bin``) each object's
    centre stands in. The prior then takes the views holding the most of its objects where ``at``
    puts them, then anywhere, then its floor, then seeing nothing else (an exact match where the data have
    one; never refused)."""

    objects: tuple[tuple[int | None, int | None], ...] = ()
    floor: int | None = None
    only: bool = False
    at: tuple[int, ...] = ()
    near: tuple[tuple[int | None, int | None], ...] = ()


@dataclass(frozen=True)
class ScenePrompt:
    """A condition on a view through its scene (a panorama's prompt, docs/reps.md).

    Without a ``layout`` (set conditioning): the view is any view of a scene that holds the query's objects
    (anywhere around the 360 degrees) on its floor, whether it sees them or not. Where no scene holds them
    all, the scenes that hold the most of its items (objects and floor).

    With a ``layout`` (layout conditioning, the default of ``toyworld-scenes``): ``layout[i][j]`` is the
    bearing (degrees clockwise from +x, the canvas's column bearings) where instance ``i``'s scene has the
    query's object ``j``; each view is conditioned by ``view_queries`` on exactly the objects whose bearing
    falls in its field of view, on the floor (``SceneQuery(..., only=True)``)."""

    query: SceneQuery
    layout: tuple[tuple[float, ...], ...] | None = None

    def view_query(self, instance: int, column: int, width: int, canvas_w: int) -> SceneQuery:
        """The condition of instance ``instance``'s view of columns ``column .. column + width - 1`` (mod
        ``canvas_w``): the query's objects whose bearing ``b`` has ``(b / 360 canvas_w - column) mod canvas_w
        < width`` (in the query's order), each in its slice of the view (``view_bin``), the floor, and
        nothing else but the objects standing just outside it (``near_view``), which it may see in part: were
        those refused, the view holding part of one would erase it while the next view draws it."""
        bearings = self.layout[instance]
        bins = [view_bin(b, column, width, canvas_w) for b in bearings]
        inside = [(obj, k) for obj, k in zip(self.query.objects, bins) if k >= 0]
        near = tuple(obj for obj, b in zip(self.query.objects, bearings) if near_view(b, column, width, canvas_w))
        return SceneQuery(tuple(o for o, _ in inside), self.query.floor, only=True, at=tuple(k for _, k in inside),
                          near=near)

    def view_queries(self, columns: list[list[int]], width: int, canvas_w: int) -> list[SceneQuery]:
        """``view_query`` of every view ``columns[i][v]`` (start columns per instance), instance-major."""
        return [self.view_query(i, int(c), width, canvas_w) for i, row in enumerate(columns) for c in row]

    def layout_record(self) -> list[list[dict]]:
        """The layout, JSON-ready: per instance, each object's kind, colour and bearing (run.json)."""
        name = lambda names, i: None if i is None else names[i]
        return [[{"kind": name(KINDS, k), "colour": name(COLOURS, c), "bearing": round(b, 3)}
                 for (k, c), b in zip(self.query.objects, row)] for row in self.layout or ()]


def parse_scene_prompt(text: str) -> SceneQuery | None:
    """``"a red mug and a blue duck on a green floor"`` -> ``SceneQuery(((0, 0), (1, 2)), floor=1)``.

    Objects are separated by ``and`` or commas; ``"<colour> floor"`` names the floor. Synonyms as in
    ``diffrep.priors.prompts``; an unknown word, a view word or two kinds in one object is an
    ``InputError``. Empty text is unconditional (``None``)."""
    lexicon = build_lexicon(KINDS, COLOURS, VIEWS)
    words = re.findall(r"[a-z][a-z'\-]*|,", text.lower())
    floor, objects, current = None, [], {}
    for word in words:
        if word in (",", "and", "on"):  # separators: the next words describe another object, or the floor
            if current:
                objects.append(current)
                current = {}
            continue
        if word in STOPWORDS:
            continue
        if word == "floor":
            if "kind" in current or "colour" not in current or floor is not None:
                raise InputError(f"prompt {text!r}: say the floor once, as '<colour> floor'")
            floor = current.pop("colour")
            continue
        hit = lexicon.get(word) or (lexicon.get(word[:-1]) if word.endswith("s") else None)
        if hit is None or hit[0] == "view":
            raise InputError(f"unknown word {word!r} in scene prompt {text!r}; scenes know kinds: {', '.join(KINDS)}; "
                             f"colours: {', '.join(COLOURS)}; and the word floor (and synonyms)")
        if hit[0] in current:
            raise InputError(f"prompt {text!r} names two {hit[0]}s in one object; separate objects with 'and'")
        current[hit[0]] = hit[1]
    if current:
        objects.append(current)
    if not objects and floor is None:
        return None
    return SceneQuery(tuple((o.get("kind"), o.get("colour")) for o in objects), floor)


def check_scene_prompt(config, text: str) -> None:
    """The words of ``text`` as the scene prior parses them, before it (or torch) is loaded."""
    parse_scene_prompt(text)
