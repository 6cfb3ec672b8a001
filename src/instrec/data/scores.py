"""Scores to play: music21's bundled corpus in named sets, or the user's own files, read into parts
of notes (:func:`read_piece`), each with the instrument its name gives (None: a voice)."""

from __future__ import annotations

import re
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DataError, ParameterError, RenderError
from .instruments import resolve_instrument

__all__ = ["PIECE_SETS", "SCORE_SUFFIXES", "Part", "Piece", "list_pieces", "part_instrument", "read_piece", "work_of"]

# Named piece sets: corpus folders (relative to music21's corpus) whose files are the pieces.
PIECE_SETS: dict[str, tuple[str, ...]] = {
    "ensembles": ("beethoven", "haydn", "mozart", "schumann_clara", "schumann_robert", "corelli"),
    "chorales": ("bach",),
    "palestrina": ("palestrina",),
}
SCORE_SUFFIXES = (".mxl", ".musicxml", ".xml", ".mid", ".midi", ".krn", ".abc")

# Part names of the corpus that are instruments under another name; the rest go through
# resolve_instrument after ordinals and keys are stripped ("1st Violin", "Clarinet in Bb").
PART_NAMES = {"violoncello": "cello", "violino": "violin", "violine": "violin", "flauto": "flute",
              "fagotto": "bassoon", "corno": "french-horn", "tromba": "trumpet", "clarinetto": "clarinet",
              "contrabasso": "double-bass", "pianoforte": "piano", "cembalo": "harpsichord"}
_ORDINALS = re.compile(r"\b(\d+(st|nd|rd|th)?|[iv]+|in [a-g][b#s]?|solo|primo|secondo)\b\.?", re.IGNORECASE)


@dataclass(frozen=True)
class Part:
    """One part of a score: its name, the instrument it names (None: a voice) and its notes, rows of
    ``(onset, length, midi pitch, staccato)`` in quarter notes."""

    name: str
    instrument: str | None
    notes: np.ndarray


@dataclass(frozen=True)
class Piece:
    id: str
    group: str
    parts: tuple[Part, ...]
    length: float  # quarter notes


def _music21():
    try:
        import music21
    except ImportError as exc:
        raise RenderError(f"music21 is not installed ({exc}): pip install 'instrec[render]'") from exc
    return music21


def list_pieces(pieces: str | Sequence[str]) -> list[tuple[str, list[tuple[str, Path]]]]:
    """The piece sets of ``pieces``: ``[(set name, [(piece id, path), ...]), ...]``.

    ``pieces``: ``"all"`` (every named set), names of :data:`PIECE_SETS`, or paths of score files or
    folders of them (each folder or file is a set of its own), comma-separated or a list.

    A piece's id is its path without the suffix: in the corpus (``bach/bwv66.6``), or in a folder
    named with it (``scores/op1/movement2``; a file named alone: its folder's name and its own).
    Every file of the run gets an id of its own: where two would share one, the suffix stays
    (``x.mid``, ``x.xml``: one work, :func:`work_of`) or more of their folders' names are put before.
    """
    names = [p.strip() for p in (pieces.split(",") if isinstance(pieces, str) else pieces) if str(p).strip()]
    if not names:
        raise ParameterError("pieces is empty: name a set (all, " + ", ".join(PIECE_SETS) + ") or score files")
    if names == ["all"]:
        names = list(PIECE_SETS)
    out: list[tuple[str, list[tuple[Path, int]]]] = []  # (set, [(path, names its id has at least)])
    for name in names:
        if name in PIECE_SETS:
            root = Path(_music21().__file__).parent / "corpus"
            found = [p for d in PIECE_SETS[name] for p in sorted((root / d).rglob("*")) if p.suffix.lower() in SCORE_SUFFIXES]
            out.append((name, [(p, len(p.relative_to(root).parts)) for p in found]))
        elif Path(name).exists():
            path = Path(name)
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in SCORE_SUFFIXES) if path.is_dir() else [path]
            if not found:
                raise ParameterError(f"{name}: no score files ({', '.join(SCORE_SUFFIXES)}) in it")
            # the folder's name, then the path in it: nested works keep their movements together
            out.append((name, [(p, len(p.relative_to(path).parts) + 1 if path.is_dir() else 2) for p in found]))
        else:
            raise ParameterError(f"pieces: {name!r} is neither a set ({', '.join(['all', *PIECE_SETS])}) nor a path")
    ids = _piece_ids([item for _, found in out for item in found])
    return [(name, [(ids[p.resolve()], p) for p, _ in found]) for name, found in out]


def _piece_ids(files: list[tuple[Path, int]]) -> dict[Path, str]:
    """An id for each file (by its resolved path), made of at least its given number of trailing
    names, the last without its suffix unless another file differs from it only by that; files
    whose ids would be one get a folder's name more, until none is shared."""
    depth: dict[Path, int] = {}
    for path, names in files:
        key = path.resolve()
        depth[key] = max(depth.get(key, 0), names)
    stems = Counter(key.with_suffix("") for key in depth)
    parts = {key: (key if stems[key.with_suffix("")] > 1 else key.with_suffix("")).parts for key in depth}
    while True:
        ids = {key: "/".join(parts[key][-depth[key]:]).replace("//", "/") for key in depth}
        owners: dict[str, list[Path]] = {}
        for key, pid in ids.items():
            owners.setdefault(pid, []).append(key)
        shared = [key for keys in owners.values() if len(keys) > 1 for key in keys]
        grown = False
        for key in shared:
            if depth[key] < len(parts[key]):
                depth[key] += 1
                grown = True
            elif parts[key] != key.parts:  # its whole path, suffix and all: no other file has it
                parts[key] = key.parts
                grown = True
        if not grown:
            return ids


def part_instrument(name: str) -> str | None:
    """The instrument label a part's name gives (``"2nd Violin"`` → ``violin``), or None (a voice)."""
    text = _ORDINALS.sub(" ", name or "").strip().lower()
    text = PART_NAMES.get(text, text)
    if not text:
        return None
    try:
        return resolve_instrument(text).label
    except ParameterError:
        return None


def read_piece(path: str | Path, piece_id: str | None = None) -> Piece:
    """Read a score with music21 (never its pickle cache) into parts of notes; ties are joined,
    chords give a note per pitch, grace notes and unpitched notes are left out."""
    m21 = _music21()
    path = Path(path)
    try:
        with warnings.catch_warnings():  # its remarks on a score (an overfull measure) are not the user's business
            warnings.simplefilter("ignore")
            score = m21.converter.parse(str(path), forceSource=True)
    except Exception as exc:  # music21 raises many kinds on a bad file
        raise DataError(f"{path}: not a score music21 can read ({type(exc).__name__}: {str(exc)[:120]})") from None
    if isinstance(score, m21.stream.Opus):
        score = score.scores[0] if score.scores else None
    parts = []
    for part in getattr(score, "parts", []) or []:
        rows = []
        part.stripTies(inPlace=True)  # the score is this function's own: no deep copy (a third of the time)
        for n in part.flatten().notes:
            length = float(n.quarterLength)
            pitches = getattr(n, "pitches", ())
            if length <= 0 or not pitches:
                continue
            staccato = any(type(a).__name__ in ("Staccato", "Staccatissimo") for a in n.articulations)
            rows += [(float(n.offset), length, p.midi, float(staccato)) for p in pitches]
        if rows:
            name = part.partName or getattr(part.getInstrument(), "instrumentName", None) or ""
            parts.append(Part(name, part_instrument(name), np.array(sorted(rows), dtype=np.float64)))
    if not parts:
        raise DataError(f"{path}: no parts with notes")
    pid = piece_id or path.with_suffix("").name
    return Piece(pid, work_of(pid), tuple(parts), max(float((p.notes[:, 0] + p.notes[:, 1]).max()) for p in parts))


def work_of(piece_id: str) -> str:
    """The work a piece belongs to (a manifest's ``group``): its id without a suffix it kept and
    without ``/movementN``, so that a work's movements, and its files in two formats, stay together."""
    stem, suffix = piece_id.rsplit(".", 1) if "." in piece_id.rsplit("/", 1)[-1] else (piece_id, "")
    if "." + suffix.lower() in SCORE_SUFFIXES:
        piece_id = stem
    return re.sub(r"/movement\w*$", "", piece_id)
