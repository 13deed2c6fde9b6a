"""Prompts of the toy world: parse free text into labels (kind, colour, view), with synonyms.

The synonym tables are also the caption-augmentation vocabulary of the learned prior.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from diffrep.checks import suggestion
from diffrep.errors import InputError

KIND_SYNONYMS: dict[str, tuple[str, ...]] = {
    "ball": ("sphere", "orb", "globe"),
    "sphere": ("ball", "orb", "globe"),
    "cube": ("box", "block", "crate"),
    "box": ("cube", "block", "crate"),
    "mug": ("cup",),
    "cup": ("mug",),
    "duck": ("duckling", "bird"),
    "chair": ("seat",),
    "house": ("home", "cottage", "hut"),
    "car": ("automobile", "vehicle"),
    "teapot": ("kettle",),
    "torus": ("donut", "doughnut", "ring"),
    "donut": ("torus", "doughnut", "ring"),
    "cone": ("pyramid",),
    "table": ("desk",),
    "lamp": ("light",),
    "tree": ("pine",),
    "bottle": ("flask",),
    "snowman": ("snowmen",),
    "mushroom": ("toadstool",),
    "rocket": ("spaceship",),
    "cylinder": ("can", "tube", "pillar"),
    "capsule": ("pill",),
    "fish": (),
    "bed": (),
    "boat": ("ship",),
    "sofa": ("couch",),
}

COLOUR_SYNONYMS: dict[str, tuple[str, ...]] = {
    "red": ("crimson", "scarlet", "ruby", "cherry"),
    "green": ("emerald", "lime", "verdant"),
    "blue": ("azure", "navy", "cobalt", "sapphire"),
    "yellow": ("golden", "gold", "lemon"),
    "purple": ("violet", "magenta", "lilac"),
    "orange": ("amber", "tangerine"),
    "white": ("ivory", "snowy"),
    "cyan": ("turquoise", "teal", "aqua"),
    "pink": ("rose",),
    "black": ("ebony",),
    "brown": ("chocolate",),
    "grey": ("gray", "silver"),
}

VIEW_SYNONYMS: dict[str, tuple[str, ...]] = {
    "front": ("frontal", "facing"),
    "side": ("profile", "sideways", "left", "right", "lateral"),
    "back": ("rear", "behind", "backside"),
    "overhead": ("top", "above", "aerial", "topdown", "bird's-eye"),
}

STOPWORDS = frozenset(
    "a an the of view from seen shown photo picture image render rendering toy object model "
    "in on with and at its it looking shot angle small little big large".split()
)
LABELS = ("kind", "colour", "view")


@dataclass(frozen=True)
class LabelQuery:
    """A condition of the toy world: any subset of labels (indices into the vocabularies)."""

    kind: int | None = None
    colour: int | None = None
    view: int | None = None

    def items(self) -> list[tuple[str, int]]:
        return [(name, getattr(self, name)) for name in LABELS if getattr(self, name) is not None]


def build_lexicon(kinds: tuple[str, ...], colours: tuple[str, ...], views: tuple[str, ...]) -> dict[str, tuple[str, int]]:
    """Word -> (label, index) for canonical names and the synonyms that are unambiguous."""
    lexicon: dict[str, tuple[str, int]] = {}
    for label, names, synonyms in (("kind", kinds, KIND_SYNONYMS), ("colour", colours, COLOUR_SYNONYMS), ("view", views, VIEW_SYNONYMS)):
        for i, name in enumerate(names):
            for word in synonyms.get(name, ()):
                if word not in names:
                    lexicon.setdefault(word, (label, i))
        for i, name in enumerate(names):
            lexicon[name] = (label, i)
    return lexicon


def parse_prompt(text: str, kinds: tuple[str, ...], colours: tuple[str, ...], views: tuple[str, ...]) -> LabelQuery | None:
    """``"a crimson ball, from behind"`` -> ``LabelQuery(kind=ball, colour=red, view=back)``.

    Empty text is unconditional (``None``); a word the world does not know is an ``InputError``
    listing the vocabulary."""
    lexicon = build_lexicon(kinds, colours, views)
    found: dict[str, tuple[int, str]] = {}
    for word in re.findall(r"[a-z][a-z'\-]*", text.lower()):
        if word in STOPWORDS:
            continue
        hit = lexicon.get(word) or (lexicon.get(word[:-1]) if word.endswith("s") else None)
        if hit is None:
            raise InputError(
                f"unknown word {word!r} in prompt {text!r}{suggestion(word, lexicon)}; the toy world knows kinds: "
                f"{', '.join(kinds)}; "
                f"colours: {', '.join(colours)}; views: {', '.join(views)} (and synonyms)"
            )
        label, index = hit
        if label in found and found[label][0] != index:
            raise InputError(f"prompt {text!r} names two {label}s: {found[label][1]!r} and {word!r}; give at most one")
        found[label] = (index, word)
    if not found:
        return None
    return LabelQuery(**{label: index for label, (index, _) in found.items()})


def check_toyworld_prompt(config, text: str) -> None:
    """The words of ``text`` against the toy world's vocabulary, as the toy-world prior's ``encode_prompt``
    parses them, before the prior (or torch) is loaded; whether a data image matches is checked later."""
    from diffrep.toyworld.vocabulary import COLOURS, KINDS, VIEWS

    parse_prompt(text, KINDS, COLOURS, VIEWS)


def view_text(prompt: str, label: str) -> str:
    """``cameras.view_prompt``'s form, ``"a red mug, back view"``, for checks that must not import torch
    (that module does; a test holds the two equal)."""
    return f"{prompt}, {label} view"


def with_view(use: Callable[[str], Any], prompt: str, label: str) -> Any:
    """``use(view_text(prompt, label))``: a rep's view prompt checked or encoded. Where ``use`` refuses it but
    takes ``prompt`` itself, the prompt names a view of its own, and the error says so rather than quoting a
    prompt the user did not write."""
    try:
        return use(view_text(prompt, label))
    except InputError:
        use(prompt)  # refused too: its own error
        raise InputError(f"prompt {prompt!r} names a view, and the rep conditions each view on its camera's own "
                         f"({view_text(prompt, label)!r}, ...): leave the view out of the prompt, or turn view "
                         "prompts off (--nerf.no-view-prompts; view_prompts=False in Python)") from None
