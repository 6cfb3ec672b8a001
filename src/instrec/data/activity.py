"""Who plays when: the labels of clips where several instruments sound at once.

A folder of multi-label clips (``instrec render-music``, note mixtures) carries two tables:

- ``manifest.csv``: one row per clip, its ``label`` the instruments heard anywhere in it joined by
  :data:`LABEL_SEP` (``"cello;viola;violin"``, sorted), or ``unknown`` where no instrument plays;
  ``group`` is what a group split keeps on one side (the piece);
- ``activity.csv``: one row per stretch of sound, ``path,label,start,end`` (seconds in the clip),
  from a note's onset to its note-off; overlapping stretches of one instrument are merged.

:func:`activity_matrix` turns the stretches into frames (what frame-level scores compare).
"""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..errors import DataError, ParameterError
from ..fileio import write_csv
from .instruments import canonical_label

ACTIVITY_NAME = "activity.csv"
ACTIVITY_COLUMNS = ("path", "label", "start", "end")
LABEL_SEP = ";"
NO_INSTRUMENT = "unknown"


def join_labels(labels: Iterable[str]) -> str:
    """The manifest ``label`` of a clip where ``labels`` play (sorted; ``unknown`` for none)."""
    names = sorted({str(x) for x in labels if x and x != NO_INSTRUMENT})
    return LABEL_SEP.join(names) if names else NO_INSTRUMENT


def split_labels(label: str) -> tuple[str, ...]:
    """The instruments of a manifest ``label`` (``()`` for ``unknown``)."""
    names = tuple(sorted({x.strip() for x in str(label).split(LABEL_SEP) if x.strip()} - {NO_INSTRUMENT}))
    return names


def is_multilabel(labels: Sequence[str]) -> bool:
    """Whether any of ``labels`` names several instruments."""
    return any(LABEL_SEP in str(x) for x in labels)


def label_matrix(labels: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """``(n, len(classes))`` 0/1 matrix of which classes each joined label names.

    Raises ParameterError naming the first label with an instrument not in ``classes``.
    """
    index = {c: j for j, c in enumerate(classes)}
    Y = np.zeros((len(labels), len(classes)), dtype=np.float32)
    for i, label in enumerate(labels):
        for name in split_labels(label):
            if name not in index:
                raise ParameterError(f"label {name!r} is not one of the classes ({', '.join(classes)})")
            Y[i, index[name]] = 1.0
    return Y


def merge_spans(spans: Iterable[tuple[float, float]], gap: float = 0.0) -> list[tuple[float, float]]:
    """Sorted, merged ``(start, end)`` spans; spans closer than ``gap`` seconds become one."""
    out: list[list[float]] = []
    for start, end in sorted((float(s), float(e)) for s, e in spans if e > s):
        if out and start <= out[-1][1] + gap:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(s, e) for s, e in out]


def write_activity(path: str | os.PathLike, rows: Iterable[dict]) -> Path:
    """Write ``activity.csv`` atomically: rows with ``path, label, start, end`` (seconds)."""
    return write_csv(path, ACTIVITY_COLUMNS, ({"path": r["path"], "label": r["label"], "start": f"{float(r['start']):.3f}",
                                               "end": f"{float(r['end']):.3f}"} for r in rows))


def read_activity(path: str | os.PathLike, aliases: Mapping[str, str] | None = None
                  ) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """``{clip path as written: {label: [(start, end), ...]}}`` from an ``activity.csv``.

    Labels are read as the manifest's are (:func:`~instrec.data.instruments.canonical_label` with
    ``aliases``; ``None``: the built-in ones), so ``Cello`` or ``sax`` there is the class ``cello``
    or ``saxophone``; a path's Windows ``\\`` separators become ``/``."""
    path = Path(path)
    out: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if not set(ACTIVITY_COLUMNS) <= {c.strip().lower() for c in reader.fieldnames or []}:
                raise DataError(f"{path}: needs the columns {', '.join(ACTIVITY_COLUMNS)}")
            for i, row in enumerate(reader, start=2):
                row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if isinstance(k, str)}
                try:
                    start, end = float(row["start"]), float(row["end"])
                except ValueError:
                    raise DataError(f"{path}: line {i}: start and end must be seconds") from None
                if not (np.isfinite(start) and np.isfinite(end)) or end < start or start < 0:
                    raise DataError(f"{path}: line {i}: not a span of time ({row['start']}..{row['end']})")
                label = canonical_label(row["label"], aliases) if row["label"] else ""
                out[row["path"].replace("\\", "/")][label].append((start, end))
    except FileNotFoundError:
        raise DataError(f"{path}: activity table not found") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start})") from None
    return {k: {lab: merge_spans(s) for lab, s in v.items()} for k, v in out.items()}


def activity_matrix(spans: Mapping[str, Iterable[tuple[float, float]]], classes: Sequence[str], *,
                    n_frames: int, hop_seconds: float) -> np.ndarray:
    """``(n_frames, len(classes))`` 0/1: frame ``t`` covers ``[t*hop, (t+1)*hop)`` seconds and is
    active for a class when the frame's centre lies in one of its spans (the rule a timeline's frames
    follow too, so a timeline exactly as the table scores F1 1). Labels not in ``classes`` are ignored."""
    if n_frames < 0 or not hop_seconds > 0:
        raise ParameterError("activity_matrix needs n_frames >= 0 and hop_seconds > 0")
    centres = (np.arange(n_frames) + 0.5) * float(hop_seconds)
    A = np.zeros((n_frames, len(classes)), dtype=np.float32)
    for j, name in enumerate(classes):
        for s, e in spans.get(name, ()):
            A[(centres >= s) & (centres < e), j] = 1.0
    return A
