"""Discover audio files and their labels: by sub-folder, by file-name prefix, or by a CSV manifest.

A folder that ``instrec render`` wrote carries a ``manifest.csv``, so it is read back with its
labels and sources and no options.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from ..audio import is_audio_path
from ..errors import DataError, ParameterError
from .activity import LABEL_SEP, join_labels
# The tutorial data's folder says 'sax' while its file names say 'saxophone'.
from .instruments import DEFAULT_ALIASES, canonical_label

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
    paths : one folder, or several; clips of all are pooled, each keeping its source
    labels : ``auto`` (manifest if the folder has ``manifest.csv``, else sub-folders if audio lies
        in them, else the file-name prefix), ``folder``, ``filename`` or ``manifest``
    manifest : a CSV with columns path, label and optionally group, source (paths relative to
        the CSV's folder); implies ``labels="manifest"``. A label may name several instruments
        joined by ``;`` (a multi-label clip: ``cello;violin``)
    aliases : label → canonical label (e.g. ``{"sax": "saxophone"}``); defaults to
        :data:`DEFAULT_ALIASES`; pass ``{}`` for none

    Raises
    ------
    DataError : a path is missing, or no audio is found.
    ParameterError : unknown ``labels`` mode.
    """
    if labels not in LABEL_MODES:
        raise ParameterError(f"labels must be one of {', '.join(LABEL_MODES)}; got {labels!r}")
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise ParameterError("no data path given")
    aliases = DEFAULT_ALIASES if aliases is None else aliases
    clips: list[Clip] = []
    skipped: list[tuple[str, str]] = []
    modes = []
    for root in paths:
        root = Path(root)
        if not root.exists():
            raise DataError(f"{root}: no such file or folder")
        mode = "manifest" if manifest is not None else labels
        found, lost, mode = _load_root(root, mode, Path(manifest) if manifest else None, aliases)
        if not found:
            raise DataError(f"{root}: no audio files found (looked for .wav .flac .ogg .mp3)")
        clips += found
        skipped += lost
        modes.append(mode)
    return Dataset(clips=clips, roots=[Path(p).resolve() for p in paths], label_mode="+".join(dict.fromkeys(modes)), skipped=skipped)


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


def _load_root(root: Path, mode: str, manifest: Path | None, aliases: dict[str, str]):
    if mode == "auto":
        if root.is_dir() and (root / MANIFEST_NAME).is_file():
            mode, manifest = "manifest", root / MANIFEST_NAME
        elif root.is_dir() and any(p.parent != root for p in find_audio(root)):
            mode = "folder"
        else:
            mode = "filename"
    if mode == "manifest":
        manifest = manifest or root / MANIFEST_NAME
        clips, skipped = _from_manifest(manifest, aliases)
        return clips, skipped, mode
    clips = []
    for path in find_audio(root):
        if mode == "folder":
            rel = path.relative_to(root).parts
            raw = rel[0] if len(rel) > 1 else root.name
        else:
            raw = path.name.split("_", 1)[0] if "_" in path.name else path.stem
        clips.append(Clip(path=path, label=canonical_label(raw, aliases), source=root.name, group=""))
    return clips, [], mode


def _from_manifest(manifest: Path, aliases: dict[str, str]):
    if not manifest.is_file():
        raise DataError(f"{manifest}: manifest not found")
    try:
        with open(manifest, newline="", encoding="utf-8-sig") as fh:  # -sig: Excel's "CSV UTF-8" has a BOM
            return _manifest_rows(manifest, csv.DictReader(fh), aliases)
    except UnicodeDecodeError as e:
        raise DataError(f"{manifest}: not UTF-8 text (byte {e.start})") from None
    except csv.Error as e:
        raise DataError(f"{manifest}: not a readable CSV file ({_printable(str(e))})") from None


def _manifest_rows(manifest: Path, reader: csv.DictReader, aliases: dict[str, str]):
    base = manifest.parent
    clips, skipped = [], []
    cols = [c.strip().lower() for c in (reader.fieldnames or [])]
    if "path" not in cols or "label" not in cols:
        shown = ", ".join(_printable(c) for c in cols[:12]) or "none"
        raise DataError(f"{manifest}: needs the columns 'path' and 'label' (has: {shown})")
    for i, row in enumerate(reader, start=2):
        row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if isinstance(k, str) and k}
        path = Path(row.get("path", ""))
        path = path if path.is_absolute() else base / path
        label = _label(row.get("label", ""), aliases)
        try:
            exists = path.is_file()
        except OSError as e:  # a name too long, a path through a file...
            skipped.append((_printable(str(path)), f"listed in {manifest.name} line {i} but cannot be read ({e.strerror or e})"))
            continue
        if not label:
            skipped.append((f"{manifest}:{i}", "row has no label"))
        elif not row.get("path") or not exists:
            skipped.append((_printable(str(path)), f"listed in {manifest.name} line {i} but missing"))
        else:
            extra = {k: v for k, v in row.items() if k not in ("path", "label", "source", "group")}
            clips.append(Clip(path=path, label=label, source=row.get("source") or base.name,
                              group=row.get("group", ""), meta=extra))
    return clips, skipped


def _label(text: str, aliases: dict[str, str]) -> str:
    """A manifest label: one instrument, or several joined by ``;`` (each canonical, sorted)."""
    if LABEL_SEP in text:
        return join_labels(canonical_label(t, aliases) for t in text.split(LABEL_SEP) if t.strip())
    return canonical_label(text, aliases) if text else ""


def _printable(text: str, limit: int = 80) -> str:
    """``text`` on one line: control characters escaped, long text cut (for messages)."""
    out = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return out if len(out) <= limit else out[: limit - 1] + "…"


def parse_aliases(items: Iterable[str]) -> dict[str, str]:
    """``["sax=saxophone", ...]`` → dict, merged over the defaults."""
    out = dict(DEFAULT_ALIASES)
    for item in items:
        if "=" not in item:
            raise ParameterError(f"--alias takes NAME=LABEL, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip().lower()] = v.strip().lower()
    return out
