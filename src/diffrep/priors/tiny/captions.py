"""Caption augmentation for the tiny prior: random captions of labelled toy-world images.

A caption names any subset of (kind, colour, view) through canonical names or synonyms
(``diffrep.priors.prompts``), in one of several templates; the empty caption is condition
dropout. ``HELD_OUT_TEMPLATES`` and ``HELD_OUT_COMBOS`` are never produced for training, so
generalisation to unseen phrasings and unseen (kind, colour) pairs can be measured.
"""

from __future__ import annotations

import random
import re

from diffrep.priors.prompts import COLOUR_SYNONYMS, KIND_SYNONYMS, VIEW_SYNONYMS
from diffrep.toyworld import COLOURS, KINDS, VIEWS, caption

# Templates by the labels they name; {k} kind, {c} colour, {v} view (placeholders filled by words).
TEMPLATES: dict[tuple[str, ...], tuple[str, ...]] = {
    ("kind", "colour", "view"): (
        "{a} {c} {k}, {v} view",
        "a {c} {k} seen from the {v}",
        "{v} view of a {c} {k}",
        "a {c} {k}, {v}",
        "the {k} is {c}, {v} view",
        "{c} {k} {v}",
        "a picture of a {c} {k} from the {v}",
        "a {k} in {c}, viewed from the {v}",
        "a render of a {c} {k}, {v} angle",
    ),
    ("kind", "colour"): ("{a} {c} {k}", "the {k} is {c}", "a {k}, {c}", "{c} {k}", "a {k} in {c}", "a {c} toy {k}"),
    ("kind", "view"): ("a {k}, {v} view", "{v} view of a {k}", "a {k} seen from the {v}", "{k} {v}"),
    ("colour", "view"): ("something {c}, {v} view", "a {c} object seen from the {v}", "{c} {v}"),
    ("kind",): ("a {k}", "{k}", "a photo of a {k}", "the {k}"),
    ("colour",): ("{c}", "something {c}", "a {c} object", "{c} toy"),
    ("view",): ("{v} view", "seen from the {v}", "a {v} shot"),
}
HELD_OUT_TEMPLATES: frozenset[str] = frozenset({
    "a picture of a {c} {k} from the {v}",
    "a {k} in {c}, viewed from the {v}",
    "a {k} in {c}",
    "a photo of a {k}",
})
# (kind, colour) index pairs never shown to the model in training (6 of the combinations).
HELD_OUT_COMBOS: frozenset[tuple[int, int]] = frozenset({(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 0)})
# Relative weight of each label subset among the non-empty captions.
SUBSETS: tuple[tuple[tuple[str, ...], float], ...] = (
    (("kind", "colour", "view"), 0.45), (("kind", "colour"), 0.15), (("kind", "view"), 0.06),
    (("colour", "view"), 0.04), (("kind",), 0.06), (("colour",), 0.06), (("view",), 0.04),
)
P_EMPTY = 0.12
P_CANONICAL = 0.3  # of full captions: exactly ``toyworld.caption``
P_SYNONYM = 0.35  # per word: a synonym instead of the canonical name


def training_templates(labels: tuple[str, ...]) -> tuple[str, ...]:
    """Templates naming exactly ``labels`` that training may use."""
    return tuple(t for t in TEMPLATES[labels] if t not in HELD_OUT_TEMPLATES)


def word(names: tuple[str, ...], synonyms: dict[str, tuple[str, ...]], index: int, rng: random.Random) -> str:
    """The canonical name of label ``index``, or with probability ``P_SYNONYM`` an unambiguous synonym."""
    name = names[index]
    options = [w for w in synonyms.get(name, ()) if w not in names]
    return rng.choice(options) if options and rng.random() < P_SYNONYM else name


def fill(template: str, kind: int, colour: int, view: int, rng: random.Random) -> str:
    """Fill a template with (possibly synonym) words for the labels."""
    k = word(KINDS, KIND_SYNONYMS, kind, rng)
    c = word(COLOURS, COLOUR_SYNONYMS, colour, rng)
    v = word(VIEWS, VIEW_SYNONYMS, view, rng)
    return re.sub(r"\ba (?=[aeiou])", "an ", template.format(k=k, c=c, v=v, a="a"))


def random_caption(kind: int, colour: int, view: int, rng: random.Random, *, held_out: bool = False) -> str:
    """One random caption of an image labelled ``(kind, colour, view)``; ``""`` is dropout.

    ``held_out=True`` draws full captions from the held-out templates only (for evaluation)."""
    return named_caption(kind, colour, view, rng, held_out=held_out)[0]


def named_caption(kind: int, colour: int, view: int, rng: random.Random, *,
                  held_out: bool = False) -> tuple[str, tuple[str, ...]]:
    """``random_caption`` and the labels it names, e.g. ``("a crimson mug", ("kind", "colour"))``."""
    if held_out:
        pool = [t for t in TEMPLATES[("kind", "colour", "view")] if t in HELD_OUT_TEMPLATES]
        return fill(rng.choice(pool), kind, colour, view, rng), ("kind", "colour", "view")
    if rng.random() < P_EMPTY:
        return "", ()
    labels = rng.choices([s for s, _ in SUBSETS], weights=[p for _, p in SUBSETS])[0]
    if len(labels) == 3 and rng.random() < P_CANONICAL:
        return caption(kind, colour, view), labels
    return fill(rng.choice(training_templates(labels)), kind, colour, view, rng), labels


def is_held_out_combo(kind: int, colour: int) -> bool:
    return (kind, colour) in HELD_OUT_COMBOS
