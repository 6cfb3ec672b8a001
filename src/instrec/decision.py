"""From class probabilities to an answer: instrument families, and ``unknown`` when in doubt.

A model's **families** map each family to its member classes (``{"bowed-strings": ["cello",
"viola"], ...}``); every class is in exactly one. The default is
:data:`instrec.data.instruments.FAMILIES` restricted to the model's classes; a class the table
does not know (a user's own label, ``unknown``) is a family of its own, named as the class. A
family's probability is the sum of its members'.

The **answer** is the likeliest class, unless it is ``unknown`` (a class learnt from negative
material: noise, speech, drums...) or its probability is below ``min_confidence``: then the answer
is ``unknown``. ``min_confidence`` 0 answers the likeliest class always.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .data.instruments import canonical_label, family_of, normalise_label
from .errors import DataError, ParameterError

UNKNOWN = "unknown"  # the class of negative material, and the answer when in doubt
SILENCE = "silence"  # a quiet window's label (never a class's family)
LEVELS = ("instrument", "family")


def default_families(classes: Sequence[str]) -> dict[str, list[str]]:
    """:data:`~instrec.data.instruments.FAMILIES` restricted to ``classes``; any other class is a
    family of its own (``family = label``). Families in the order of their first class."""
    return resolve_families(classes, None)


def resolve_families(classes: Sequence[str], table: Mapping[str, Sequence[str]] | None) -> dict[str, list[str]]:
    """The families of a model of ``classes``: ``table`` (family → members) restricted to them.

    Members are matched as labels are (``"Cello"``, ``"sax"``); members that are not classes are
    left out; a class that no family of ``table`` names is a family of its own. ``None``: the
    default table (:func:`default_families`). The ``unknown`` class is always its own family.

    Raises
    ------
    ParameterError
        A class in two families, a family named ``unknown`` or ``silence`` holding another class,
        or a table that is not a mapping of names to lists of names.
    """
    classes = [str(c) for c in classes]
    owner: dict[str, str] = {}
    if table is not None:
        if not isinstance(table, Mapping):
            raise ParameterError(f"families must map family names to lists of classes; got {type(table).__name__}")
        for family, members in table.items():
            name = normalise_label(str(family))
            if not name or isinstance(members, str) or not isinstance(members, Sequence):
                raise ParameterError(f"family {family!r} must be a name with a list of classes")
            for m in members:
                label = canonical_label(str(m))
                if label not in classes and str(m) in classes:
                    label = str(m)
                if label not in classes:
                    continue
                if label in owner and owner[label] != name:
                    raise ParameterError(f"class {label!r} is in two families: {owner[label]} and {name}")
                if name in (UNKNOWN, SILENCE) and label != name:
                    raise ParameterError(f"the family name {name!r} is reserved; {label!r} needs another family")
                if label == UNKNOWN and name != UNKNOWN:
                    raise ParameterError(f"the class {UNKNOWN!r} is a family of its own, not one of {name!r}")
                owner[label] = name
    out: dict[str, list[str]] = {}
    for c in classes:
        family = owner.get(c) or (family_of(c) if table is None and c != UNKNOWN else None) or c
        out.setdefault(family, []).append(c)
    return out


def read_families_csv(path: str | os.PathLike) -> dict[str, list[str]]:
    """A taxonomy from a CSV file of ``instrument,family`` rows (a header row of those two words,
    blank lines and lines starting with ``#`` are allowed).

    Raises
    ------
    DataError
        A missing or unreadable file, a row without two fields, an instrument given two families.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: no such families file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot be read as a text CSV file ({e})") from None
    table: dict[str, list[str]] = {}
    seen: dict[str, str] = {}
    for n, row in enumerate(csv.reader(text.splitlines()), start=1):
        cells = [c.strip() for c in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if len(cells) != 2 or not all(cells):
            raise DataError(f"{path}:{n}: expected two fields, instrument,family; got {','.join(cells)[:80]!r}")
        if n == 1 and [c.lower() for c in cells] == ["instrument", "family"]:
            continue
        label, family = canonical_label(cells[0]), normalise_label(cells[1])
        if not label or not family:
            raise DataError(f"{path}:{n}: an instrument or family name without letters or digits")
        if seen.get(label, family) != family:
            raise DataError(f"{path}:{n}: {label!r} is in two families, {seen[label]} and {family}")
        if label not in seen:
            seen[label] = family
            table.setdefault(family, []).append(label)
    if not table:
        raise DataError(f"{path}: no instrument,family rows")
    return table


def family_matrix(classes: Sequence[str], families: Mapping[str, Sequence[str]]) -> tuple[list[str], np.ndarray]:
    """``(family names, M)``: ``P @ M`` turns class probabilities ``P`` (columns in the order of
    ``classes``) into family probabilities. ``families`` must cover each class once
    (:func:`resolve_families`' result)."""
    names = list(families)
    index = {c: i for i, c in enumerate(classes)}
    M = np.zeros((len(classes), len(names)), np.float64)
    for j, f in enumerate(names):
        for c in families[f]:
            M[index[c], j] = 1.0
    return names, M


def family_lookup(families: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Class → its family; ``unknown`` and ``silence`` are their own."""
    out = {c: f for f, members in families.items() for c in members}
    out.setdefault(UNKNOWN, UNKNOWN)
    out.setdefault(SILENCE, SILENCE)
    return out


def check_min_confidence(value) -> float | None:
    """``value`` as a threshold in [0, 1] (None stays None)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 <= value <= 1:
        raise ParameterError(f"min_confidence must be a number from 0 to 1 (0: never answer unknown for doubt); got {value!r}")
    return float(value)


def check_level(level: str) -> str:
    if level not in LEVELS:
        raise ParameterError(f"level must be one of {', '.join(LEVELS)}; got {level!r}")
    return level


def decide(probabilities: Mapping[str, float], min_confidence: float = 0.0) -> str:
    """The answer for one set of probabilities (class → p): the likeliest class, or ``unknown``
    when that is the ``unknown`` class or its probability is below ``min_confidence``."""
    best = max(probabilities, key=probabilities.__getitem__)
    if best == UNKNOWN or probabilities[best] < min_confidence:
        return UNKNOWN
    return best
