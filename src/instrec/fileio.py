"""Atomic file writes: a reader sees the old file or the complete new one, never half of one."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import WriteError


@contextlib.contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Turn an ``OSError`` raised while writing ``path`` into a :class:`WriteError` naming it."""
    try:
        yield
    except WriteError:
        raise
    except OSError as e:
        raise WriteError(path, e) from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def public_mode(path: str | os.PathLike, *, folder: bool = False) -> None:
    """Give a temporary file (mkstemp: 0600) or folder (mkdtemp: 0700) the mode a plain
    ``open()`` or ``mkdir()`` would have given it, so atomic writes do not hide outputs."""
    os.chmod(path, (0o777 if folder else 0o666) & ~_umask())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed over ``path``.

    On any exception (including KeyboardInterrupt) the temporary file is removed, so an
    interrupted run leaves either the old file or nothing.

    An ``OSError`` of these steps (making the folder, the temporary file, the rename) is a
    :class:`WriteError` naming ``path``; what the caller's block raises passes as it is.
    """
    path = Path(path)
    tmp = None
    try:  # from the temporary file's making on: a Ctrl-C at any step leaves nothing behind
        with writing(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part" + path.suffix, dir=path.parent)
            tmp = Path(name)
            os.close(fd)
        yield tmp
        with writing(path):
            with open(tmp, "rb") as fh:  # flush to disk before the rename makes it visible
                os.fsync(fh.fileno())
            public_mode(tmp)
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):  # a failed clean-up must not hide why the write failed
            if tmp is not None:
                tmp.unlink(missing_ok=True)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically; a failed write raises :class:`WriteError`."""
    with atomic_path(path) as tmp, writing(path):
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def json_utf8(text: str) -> bytes:
    """UTF-8 bytes of JSON text. A lone surrogate (a file name that is not UTF-8, as Python reads
    it: ``bad\\udcff.wav``) can only be inside a JSON string: it is written as the escape
    ``\\udcff``, which reads back as the same name (strict UTF-8 could not write it at all)."""
    return text.encode("utf-8", "backslashreplace")


def write_json(path: str | os.PathLike, obj) -> None:
    write_bytes(path, json_utf8(json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False) + "\n"))


def write_csv(path: str | os.PathLike, columns, rows) -> Path:
    """Write dict ``rows`` as a CSV table with a header of ``columns``, atomically."""
    import csv

    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(columns))
            writer.writeheader()
            writer.writerows(rows)
    return path
