"""Discover audio files and their labels: by sub-folder, by file-name prefix, or by a CSV manifest.

A folder that ``instrec render`` wrote carries a ``manifest.csv``, so it is read back with its
labels and sources and no options.
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from ..audio import is_audio_path
from ..errors import DataError, ParameterError
from .activity import LABEL_SEP, join_labels
# The tutorial data's folder says 'sax' while its file names say 'saxophone'.
from .instruments import DEFAULT_ALIASES, canonical_label, normalise_label

LABEL_MODES = ("auto", "folder", "filename", "manifest")
MANIFEST_NAME = "manifest.csv"


@dataclass
class Clip:
    """One labelled audio file. ``group`` is what a group split keeps on one side."""

    path: Path
    label: str
    source: str = ""
    group: str = ""
    meta: dict = field(default_factory=dict)


@dataclass
class Dataset:
    """Clips found under one or more roots, plus what was skipped and why."""

    clips: list[Clip]
    roots: list[Path]
    label_mode: str
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return [c.label for c in self.clips]

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.labels))

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(self.labels).items()))

    def summary(self) -> dict:
        """What a report or a bundle records about the data (no per-file lists)."""
        return {
            "roots": [str(r) for r in self.roots],
            "label_mode": self.label_mode,
            "n": len(self.clips),
            "classes": self.counts(),
            "sources": dict(sorted(Counter(c.source for c in self.clips).items())),
        }


def load_dataset(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    labels: str = "auto",
    manifest: str | os.PathLike | None = None,
    aliases: dict[str, str] | None = None,
) -> Dataset:
    """Find labelled audio under each path (recursively).

    Parameters
    ----------
    paths : one folder, or several; clips of all are pooled, each keeping its source. A file
        found twice (the same folder given twice, nested folders, a manifest row listed twice;
        compared by its real path) is read once and the repeats are listed in ``skipped``; the
        same file with two different labels is an error
    labels : ``auto`` (manifest if the folder has ``manifest.csv``, else sub-folders if audio lies
        in them, else the file-name prefix), ``folder``, ``filename`` or ``manifest``. With
        sub-folders, audio directly in the folder is skipped (not in a class folder)
    manifest : a CSV with columns path, label and optionally group, source (paths relative to
        the CSV's folder; ``\\`` separators of a CSV made on Windows are accepted); read once.
        It labels the paths it lies in or lists files of; any other path is read by ``labels``
        (a manifest that lists files of none of the paths stands for all of them). A label may
        name several instruments joined by ``;`` (a multi-label clip: ``cello;violin``)
    aliases : label → canonical label (e.g. ``{"sax": "saxophone"}``); defaults to
        :data:`DEFAULT_ALIASES`; pass ``{}`` for none

    Raises
    ------
    DataError : a path is missing, no audio is found, a manifest names no existing file, a
        file has two labels, or two labels that differ in more than case, spaces, ``_`` and ``-``
        would become one class (``C#`` and ``C`` are both ``c``).
    ParameterError : unknown ``labels`` mode.
    """
    if labels not in LABEL_MODES:
        raise ParameterError(f"labels must be one of {', '.join(LABEL_MODES)}; got {labels!r}")
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise ParameterError("no data path given")
    aliases = _Labeller(DEFAULT_ALIASES if aliases is None else check_aliases(aliases))
    roots: list[Path] = []
    skipped: list[tuple[str, str]] = []
    for given in paths:
        root = Path(given)
        if not root.exists():
            raise DataError(f"{root}: no such file or folder")
        same = next((r for r in roots if os.path.samefile(r, root)), None)
        if same is not None:
            skipped.append((_printable(os.fspath(given)), f"the same path as {same}, given twice; read once"))
        else:
            roots.append(root)
    seen = _Seen()
    clips: list[Clip] = []
    modes = []
    owned: set[int] = set()
    if manifest is not None:
        manifest = Path(manifest)
        found, rows, lost = _from_manifest(manifest, aliases, roots)
        owned = {i for i, r in enumerate(roots) if _covers(r, manifest, found)} or set(range(len(roots)))
        clips += seen.add(found, str(manifest), skipped, rows)
        skipped += lost
        modes.append("manifest")
    for i, root in enumerate(roots):
        if i in owned:
            continue
        found, lost, mode = _load_root(root, labels, aliases)
        if not found:
            raise DataError(f"{root}: no audio files found (looked for .wav .flac .ogg .mp3)")
        clips += seen.add(found, str(root), skipped)
        skipped += lost
        modes.append(mode)
    return Dataset(clips=clips, roots=[r.resolve() for r in roots], label_mode="+".join(dict.fromkeys(modes)),
                   skipped=skipped)


class _Seen:
    """The files already taken, by real path: a repeat is skipped and listed, a second label refused."""

    def __init__(self):
        self.first: dict[str, tuple[Clip, str, int | None]] = {}

    def add(self, clips: list[Clip], where: str, skipped: list, lines: Sequence[int] | None = None) -> list[Clip]:
        """The clips of ``clips`` not taken yet; ``where``: their root or manifest (``lines``: their rows)."""
        out = []
        for k, clip in enumerate(clips):
            key = os.path.realpath(clip.path)
            line = lines[k] if lines is not None else None
            if key not in self.first:
                self.first[key] = (clip, where, line)
                out.append(clip)
                continue
            old, there, old_line = self.first[key]
            same_manifest = there == where and line is not None and old_line is not None
            if old.label != clip.label:
                if same_manifest:
                    raise DataError(f"{where}: lines {old_line} and {line} name the same file ({_printable(str(clip.path))}) "
                                    f"with different labels ({old.label!r}, {clip.label!r})")
                raise DataError(f"{_printable(str(clip.path))}: labelled {old.label!r} by {_place(there, old_line)} and "
                                f"{clip.label!r} by {_place(where, line)}; give each file one label")
            why = (f"listed again in {Path(where).name} line {line} (first on line {old_line}); read once" if same_manifest
                   else f"also found under {_place(there, old_line)}; read once")
            skipped.append((_printable(str(clip.path)), why))
        return out


def _place(where: str, line: int | None) -> str:
    return where if line is None else f"{where} line {line}"


def _covers(root: Path, manifest: Path, clips: list[Clip]) -> bool:
    """Whether ``manifest`` lies in ``root`` or lists a file under it."""
    top = root.resolve()
    if top.is_file():
        return any(os.path.realpath(c.path) == str(top) for c in clips)
    return manifest.resolve().is_relative_to(top) or any(Path(os.path.realpath(c.path)).is_relative_to(top) for c in clips)


def find_audio(root: str | os.PathLike) -> list[Path]:
    """Audio files under ``root`` (or ``root`` itself), sorted, symlink loops not followed."""
    root = Path(root)
    if root.is_file():
        return [root] if is_audio_path(root) else []
    out = []
    for dirpath, dirnames, filenames in os.walk(root):  # os.walk does not follow symlinked dirs
        dirnames.sort()
        out += [Path(dirpath) / f for f in sorted(filenames) if is_audio_path(f) and not f.startswith(".")]
    return out


class _Labeller:
    """Raw labels → classes (:func:`canonical_label`) for one data set, refusing two raw labels that
    normalise alike but are not one name spelt otherwise: ``C#`` and ``C`` (both ``c``) are two instruments."""

    def __init__(self, aliases: dict[str, str]):
        self.aliases = aliases
        self.seen: dict[str, tuple[str, str, str]] = {}  # normalised -> (spelling, raw, where)

    def __call__(self, raw: str, where: str) -> str:
        label = canonical_label(raw, self.aliases)
        if not label:
            return label
        plain = normalise_label(raw)
        # Case, spaces, '_' and '-' are spelling; any other character ('#', ',', '+') tells labels apart.
        spelling = re.sub(r"[\s_-]+", "-", raw.strip().lower()).strip("-")
        first = self.seen.setdefault(plain, (spelling, raw, where))
        if first[0] != spelling:
            raise DataError(f"labels {_printable(first[1])!r} ({_printable(first[2], 200)}) and {_printable(raw)!r} "
                            f"({_printable(where, 200)}) would both be class {label!r}: a label keeps only letters "
                            f"and digits, so rename one of them")
        return label


def _load_root(root: Path, mode: str, aliases: _Labeller):
    found = find_audio(root)
    nested = root.is_dir() and any(p.parent != root for p in found)
    if mode == "auto":
        if root.is_dir() and (root / MANIFEST_NAME).is_file():
            mode = "manifest"
        elif nested:
            mode = "folder"
        else:
            mode = "filename"
    if mode == "manifest":
        clips, rows, skipped = _from_manifest(root / MANIFEST_NAME, aliases, [root])
        dups: list[tuple[str, str]] = []
        clips = _Seen().add(clips, str(root / MANIFEST_NAME), dups, rows)
        return clips, dups + skipped, mode
    name = Path(os.path.abspath(root)).name  # "." has no name of its own (a link keeps its own name)
    clips, skipped = [], []
    for path in found:
        if mode == "folder":
            rel = path.relative_to(root).parts
            if nested and len(rel) == 1:
                skipped.append((_printable(str(path)), "not in a class folder"))
                continue
            raw = rel[0] if len(rel) > 1 else name
            where = str(root / rel[0]) if len(rel) > 1 else str(root)
        else:
            raw = path.name.split("_", 1)[0] if "_" in path.name else path.stem
            where = str(path)
        label = aliases(raw, where)
        if not label:  # '???' has no letter or digit: listed now, not refused after feature extraction
            skipped.append((_printable(str(path)), f"{'folder' if mode == 'folder' else 'file'} name gives no label"))
            continue
        clips.append(Clip(path=path, label=label, source=name, group=""))
    if mode == "filename":
        _check_numbered_stems(clips)
    return clips, skipped, mode


def _check_numbered_stems(clips: list[Clip]) -> None:
    """Refuse file-name labels taken from whole names that differ only in a number at the end
    (``flute-01.wav``, ``flute-02.wav``: classes ``flute-01`` and ``flute-02``, one clip each):
    the label is the part before the first ``_``, so these were meant as takes of one class."""
    first: dict[str, Clip] = {}
    for clip in clips:
        if "_" in clip.path.name:
            continue
        base = re.sub(r"[\s_-]*\d+$", "", clip.label)
        if not base or base == clip.label:
            continue
        other = first.setdefault(base, clip)
        if other.label != clip.label:
            raise DataError(f"{_printable(other.path.name)} and {_printable(clip.path.name)} would be two classes, "
                            f"{other.label!r} and {clip.label!r}: a file-name label is the part before the first '_' "
                            f"({base}_01{clip.path.suffix}); rename them, put them in a sub-folder {base}/, or list "
                            "them in a manifest.csv")


def _from_manifest(manifest: Path, aliases: _Labeller, roots: Sequence[Path] = ()):
    if not manifest.is_file():
        raise DataError(f"{manifest}: manifest not found")
    try:
        with open(manifest, newline="", encoding="utf-8-sig") as fh:  # -sig: Excel's "CSV UTF-8" has a BOM
            clips, rows, skipped, n, missing = _manifest_rows(manifest, csv.DictReader(fh), aliases)
    except UnicodeDecodeError as e:
        raise DataError(f"{manifest}: not UTF-8 text (byte {e.start})") from None
    except csv.Error as e:
        raise DataError(f"{manifest}: not a readable CSV file ({_printable(str(e))})") from None
    if not clips:
        if not n:
            raise DataError(f"{manifest}: no rows under its header (nothing to read)")
        if missing:
            given, looked = missing[0]
            hint = next((f"; it is at {r / given}, but paths are relative to the manifest's folder, not the data folder"
                         for r in roots if _is_file(r / given)), "; paths are relative to the manifest's folder")
            raise DataError(f"{manifest}: none of its {n} rows names an existing file (the first: {_printable(given)}, "
                            f"looked for at {_printable(_absolute(looked))}{_printable(hint, 400)})")
        raise DataError(f"{manifest}: none of its {n} rows can be used (the first: {skipped[0][0]}: {skipped[0][1]})")
    return clips, rows, skipped


def _manifest_rows(manifest: Path, reader: csv.DictReader, aliases: _Labeller):
    """``(clips, their lines, skipped, number of rows, [(given path, where looked)] of the missing ones)``."""
    base = manifest.parent
    source = Path(os.path.abspath(manifest)).parent.name  # "m.csv" has a parent "." with no name of its own
    clips, lines, skipped, missing = [], [], [], []
    n = 0
    cols = [c.strip().lower() for c in (reader.fieldnames or [])]
    if "path" not in cols or "label" not in cols:
        shown = ", ".join(_printable(c) for c in cols[:12]) or "none"
        sep = next((f" ({name}-separated? columns must be separated by commas)" for ch, name in ((";", "semicolon"), ("\t", "tab"))
                    if len(cols) == 1 and ch in cols[0]), "")
        raise DataError(f"{manifest}: needs the columns 'path' and 'label' (has: {shown}){sep}")
    twice = next((c for c in cols if c and cols.count(c) > 1), None)
    if twice is not None:  # csv.DictReader would keep the last one's value without a word
        raise DataError(f"{manifest}: column {_printable(twice)!r} appears twice in its header; keep one")
    for i, row in enumerate(reader, start=2):
        row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if isinstance(k, str) and k}
        n += 1
        given = row.get("path", "")
        label = _label(row.get("label", ""), aliases, f"{manifest} line {i}")
        try:
            path = _manifest_path(base, given)
            exists = path.is_file()
        except OSError as e:  # a name too long, a path through a file...
            skipped.append((_printable(str(base / given)), f"listed in {manifest.name} line {i} but cannot be read ({e.strerror or e})"))
            continue
        if not label:
            skipped.append((f"{manifest}:{i}", "row has no label"))
        elif not given or not exists:
            skipped.append((_printable(str(path)), f"listed in {manifest.name} line {i} but missing"))
            if given:
                missing.append((given, path))
        else:
            extra = {k: v for k, v in row.items() if k not in ("path", "label", "source", "group")}
            clips.append(Clip(path=path, label=label, source=row.get("source") or source,
                              group=row.get("group", ""), meta=extra))
            lines.append(i)
    return clips, lines, skipped, n, missing


def _manifest_path(base: Path, given: str) -> Path:
    """A manifest row's file: ``given`` relative to the manifest's folder; where that is no file and
    ``given`` has backslashes (a CSV made on Windows), the same with ``/`` if that is one."""
    path = Path(given)
    path = path if path.is_absolute() else base / path
    if "\\" in given and os.sep == "/" and not _is_file(path):
        alt = Path(given.replace("\\", "/"))
        alt = alt if alt.is_absolute() else base / alt
        if _is_file(alt):
            return alt
    return path


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long, a NUL byte...
        return False


def _absolute(path: Path) -> str:
    try:
        return str(path.resolve())
    except (OSError, ValueError):
        return os.path.abspath(path)


def _label(text: str, aliases: _Labeller, where: str) -> str:
    """A manifest label: one instrument, or several joined by ``;`` (each canonical, sorted)."""
    if LABEL_SEP in text:
        return join_labels(aliases(t, where) for t in text.split(LABEL_SEP) if t.strip())
    return aliases(text, where) if text else ""


def _printable(text: str, limit: int = 300) -> str:
    """``text`` on one line (for messages): control characters escaped; text longer than ``limit``
    cut in the middle, so that a path keeps its start and its file name."""
    out = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    if len(out) <= limit:
        return out
    head = (limit - 1) // 3
    return out[:head] + "…" + out[head - limit + 1 :]


def check_aliases(aliases: Mapping[str, str]) -> Mapping[str, str]:
    """``aliases`` if it maps names to labels, both naming a label; else ParameterError (``{"flute": ""}``
    would have made every flute a clip of no class)."""
    for k, v in aliases.items() if isinstance(aliases, Mapping) else [(aliases, None)]:
        if not (isinstance(k, str) and isinstance(v, str) and normalise_label(k) and normalise_label(v)):
            raise ParameterError(f"aliases must map names to labels, both naming a label ({{'sax': 'saxophone'}}); "
                                 f"got {_printable(repr(k))}: {_printable(repr(v))}")
    return aliases


def parse_aliases(items: Iterable[str]) -> dict[str, str]:
    """``["sax=saxophone", ...]`` → dict, merged over the defaults.

    Raises
    ------
    ParameterError : an item without ``=``, or with a side that names nothing (``flute=``).
    """
    out = dict(DEFAULT_ALIASES)
    for item in items:
        k, eq, v = str(item).partition("=")
        if not eq or not normalise_label(k) or not normalise_label(v):
            raise ParameterError(f"--alias takes NAME=LABEL, both naming a label (like sax=saxophone), got {_printable(str(item))!r}")
        out[k.strip().lower()] = v.strip().lower()
    return out
