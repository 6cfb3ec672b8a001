"""A feature cache on disk: a second ``train`` or ``evaluate`` on the same files skips extraction.

An entry is keyed by

* the SHA-256 of the audio file's bytes (renaming or touching a file keeps its entry; changing a
  single byte misses), and
* a hash of the feature parameters (:meth:`FeatureConfig.to_dict`), the entry format and the
  version of the feature code (:data:`FEATURE_CODE_VERSION`): changing any parameter misses.

Layout: ``<root>/<config key>/<2 hex>/<file key>.feat``, beside a ``config.json`` per config key
naming its parameters (so a person can tell the folders apart and delete old ones).

Hashing a collection of audio each time would cost as much reading as the features save (a second
run on 10 GB of wav files would read all 10 GB), so the cache remembers each file's SHA-256 by
where it is and its stamp, device, inode, size and modification time in ns, in
``<root>/digests/<hash of the folder>.json``, as git's index does: a file whose stamp changed is
hashed again. Only files settled for two seconds are remembered (a file rewritten within the tick
of its clock would keep its stamp). A tool that rewrites a file and then sets its old modification
time back, keeping its size and inode, defeats this; ``--no-cache`` is the remedy there. The root is
``$INSTREC_CACHE`` or ``$XDG_CACHE_HOME/instrec/features`` (``~/.cache/instrec/features``).

An entry is a small header (magic, format version, JSON with dtype, shape, keys, the number of
values stored and the CRC-32 of the payload) and the raw array without its trailing zeros: the
cnn's waveform windows are mostly padding (a 1-s note in a 3-s window), and an entry a third the
size is a third the reading and checking. It is written to a temporary file in the same folder and renamed
into place, so processes sharing a cache see either no entry or a whole one. An entry that does not
check out (truncated, flipped bytes, another shape or dtype, foreign keys) is removed and the
feature recomputed. Entries are not fsynced: after a power cut a damaged entry fails the check and
is recomputed, which is all a cache needs.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .config import FeatureConfig

__all__ = ["FeatureCache", "default_cache_dir", "CACHE_ENV", "FORMAT_VERSION", "FEATURE_CODE_VERSION"]

CACHE_ENV = "INSTREC_CACHE"
FORMAT_VERSION = 3  # 3: trailing zeros are not stored
# Bump when the code computing a feature changes its values for the same parameters.
FEATURE_CODE_VERSION = 2  # 2: MFCC features honour top_db, fmin and fmax (1 computed the defaults)
_MAGIC = b"INSTRECF"
_PREFIX = struct.Struct("<8sII")  # magic, format version, header length
_SUFFIX = ".feat"
_DIGESTS = "digests"
_SETTLED_NS = 2_000_000_000  # a file is remembered once its modification time is this far behind
_READ_BLOCK = 1 << 20


def default_cache_dir() -> Path:
    """``$INSTREC_CACHE``, else ``$XDG_CACHE_HOME/instrec/features``, else ``~/.cache/instrec/features``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(base).expanduser() / "instrec" / "features"


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_READ_BLOCK):
            h.update(block)
    return h.hexdigest()


def config_digest(config: "FeatureConfig") -> str:
    """A short hash of the feature parameters, the entry format and the feature code version."""
    blob = json.dumps({"format": FORMAT_VERSION, "code": FEATURE_CODE_VERSION, "feature": config.to_dict()},
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]


class FeatureCache:
    """Feature rows on disk, by file content and feature parameters.

    ``hits``, ``misses``, ``stored``, ``corrupt`` (entries found damaged, removed and recomputed) and
    ``errors`` (entries that could not be written) count what happened, in this process and, for
    :func:`instrec.features.extract` with several jobs, in its workers.
    """

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        self._root = os.fspath(self.root)
        self.hits = self.misses = self.stored = self.corrupt = self.errors = 0
        self._announced: set[str] = set()
        self._known: dict[str, dict] = {}  # folder -> {name: [dev, inode, size, mtime_ns, sha256]}
        self._changed: set[str] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.root)!r})"

    # -- counters ----------------------------------------------------------------------------
    @property
    def stats(self) -> dict:
        return {"hits": self.hits, "misses": self.misses, "stored": self.stored, "corrupt": self.corrupt,
                "errors": self.errors}

    def add_stats(self, stats: dict) -> None:
        for k, v in stats.items():
            setattr(self, k, getattr(self, k) + v)

    # -- what a file is ------------------------------------------------------------------------
    def file_key(self, path: str | os.PathLike) -> str | None:
        """The SHA-256 of ``path``'s bytes, the key of its entries; None when it cannot be read.
        Remembered by the file's stamp (see the module); :meth:`save_digests` keeps what was learnt."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        folder, name = os.path.split(os.path.abspath(path))
        known = self._folder(folder)
        stamp = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]
        seen = known.get(name)
        if isinstance(seen, list) and len(seen) == 5 and seen[:4] == stamp and _is_digest(seen[4]):
            return seen[4]
        try:
            digest = file_digest(path)
        except OSError:
            return None
        if time.time_ns() - st.st_mtime_ns > _SETTLED_NS:
            known[name] = stamp + [digest]
            self._changed.add(folder)
        return digest

    def save_digests(self) -> None:
        """Write the digests learnt since the last call (atomically, merged with what another
        process may have written meanwhile); failures are ignored: the files are hashed again."""
        with self._lock:
            changed, self._changed = self._changed, set()
        from ..fileio import write_text

        for folder in changed:
            target = self._digests_path(folder)
            merged = {**_read_json(target), **self._known[folder]}
            try:
                write_text(target, json.dumps({"folder": folder, "files": merged}, separators=(",", ":")))
            except OSError:
                pass

    def _folder(self, folder: str) -> dict:
        known = self._known.get(folder)
        if known is None:
            with self._lock:
                known = self._known.get(folder)
                if known is None:
                    known = self._known[folder] = _read_json(self._digests_path(folder))
        return known

    def _digests_path(self, folder: str) -> str:
        name = hashlib.sha256(os.fsencode(folder)).hexdigest()[:32]
        return os.path.join(self._root, _DIGESTS, name + ".json")

    # -- entries -----------------------------------------------------------------------------
    def entry_path(self, config_key: str, file_key: str) -> Path:
        return Path(self.entry_name(config_key, file_key))

    def entry_name(self, config_key: str, file_key: str) -> str:
        """:meth:`entry_path` as a string (plain joins: a cache hit of a small row is cheap enough
        that building three pathlib objects per file showed in the profile)."""
        return os.path.join(self._root, config_key, file_key[:2], file_key + _SUFFIX)

    def load(self, entry: str | os.PathLike, *, shape: tuple[int, ...], dtype, out: np.ndarray | None = None,
             out_zeroed: bool = False) -> np.ndarray | None:
        """The array stored at ``entry`` (written into ``out`` when given, and ``out`` returned);
        None when there is none or it is damaged (then removed; ``out`` may then hold anything).
        ``out_zeroed``: ``out`` is known to be all zeros, so the values an entry leaves out need
        not be written."""
        row, status = read_entry(entry, shape=tuple(shape), dtype=np.dtype(dtype), out=out, out_zeroed=out_zeroed)
        self.count(status, entry)
        return row

    def count(self, status: str, entry: str | os.PathLike) -> None:
        """Count what :func:`read_entry` found (``"hit"``, ``"missing"`` or ``"corrupt"``), removing
        a corrupt entry. Kept apart from reading so that threads can read and one thread count."""
        if status == "hit":
            self.hits += 1
            return
        self.misses += 1
        if status == "corrupt":
            self.corrupt += 1
            try:
                os.unlink(entry)
            except OSError:
                pass

    def store(self, entry: str | os.PathLike, row: np.ndarray, config: "FeatureConfig | None" = None) -> None:
        """Write ``row`` at ``entry`` atomically (temporary file + rename); failures only count."""
        entry = Path(entry)
        row = np.ascontiguousarray(row)
        payload = row.reshape(-1)[: _stored_length(row)].tobytes()
        header = json.dumps({"dtype": row.dtype.str, "shape": list(row.shape),
                             "stored": len(payload) // row.dtype.itemsize, "crc32": zlib.crc32(payload),
                             "config": entry.parent.parent.name, "file": entry.stem}).encode("utf-8")
        tmp = None
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            if config is not None:
                self._describe(entry.parent.parent, config)
            fd, tmp = tempfile.mkstemp(prefix=f".{entry.name}.", suffix=".tmp", dir=entry.parent)
            with os.fdopen(fd, "wb") as fh:
                fh.write(_PREFIX.pack(_MAGIC, FORMAT_VERSION, len(header)))
                fh.write(header)
                fh.write(payload)
            os.replace(tmp, entry)
            tmp = None
            self.stored += 1
        except OSError:
            self.errors += 1
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass

    def _describe(self, folder: Path, config: "FeatureConfig") -> None:
        """``config.json`` in a config folder: which parameters its entries hold (once per process)."""
        if folder.name in self._announced:
            return
        self._announced.add(folder.name)
        target = folder / "config.json"
        if target.exists():
            return
        text = json.dumps({"format": FORMAT_VERSION, "code": FEATURE_CODE_VERSION, "feature": config.to_dict()},
                          indent=2, sort_keys=True) + "\n"
        fd, tmp = tempfile.mkstemp(prefix=".config.json.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def read_entry(entry: str | os.PathLike, *, shape: tuple[int, ...], dtype: np.dtype,
               out: np.ndarray | None = None, out_zeroed: bool = False) -> tuple[np.ndarray | None, str]:
    """``(row, "hit")``, ``(None, "missing")`` or ``(None, "corrupt")`` for the entry at ``entry``.

    The payload is read straight into its row (``out``, or a new array): no buffer of its own to
    fill and copy again, which for the tutorial's 300-KB images was most of a hit. Reading and the
    CRC release the GIL, so several threads can read entries at once. Touches nothing but ``out``.
    """
    try:
        fh = _open_regular(entry)
    except OSError:  # none there (the usual miss), or unreadable
        return None, "missing"
    if fh is None:  # a FIFO or a device in the cache's place: never read (a FIFO would block forever)
        return None, "corrupt"
    with fh:
        try:
            total = os.fstat(fh.fileno()).st_size
            prefix = fh.read(_PREFIX.size)
            if len(prefix) != _PREFIX.size:
                return None, "corrupt"
            magic, version, n_header = _PREFIX.unpack(prefix)
            if magic != _MAGIC or version != FORMAT_VERSION or _PREFIX.size + n_header > total:
                return None, "corrupt"
            header = _header(fh.read(n_header), entry, shape, dtype)
            if header is None:
                return None, "corrupt"
            crc, stored = header
            size = int(np.prod(shape))
            if not 0 <= stored <= size or total - _PREFIX.size - n_header != stored * dtype.itemsize:
                return None, "corrupt"
            row = out if out is not None else np.empty(shape, dtype=dtype)
            flat = row.reshape(-1)  # a view: ``out`` is one contiguous row
            payload = memoryview(flat[:stored].view(np.uint8))
            if _read_exactly(fh, payload) != len(payload) or fh.read(1):  # shorter or longer: changed meanwhile
                return None, "corrupt"
        except OSError:
            return None, "corrupt"
    if zlib.crc32(payload) != crc:  # flipped bytes (the length caught truncation)
        return None, "corrupt"
    if stored < size and not (out is not None and out_zeroed):
        flat[stored:] = 0
    return row, "hit"


def _header(blob: bytes, entry, shape: tuple[int, ...], dtype: np.dtype) -> tuple[int, int] | None:
    """``(crc32, values stored)`` from an entry's header, or None when it is not this entry's."""
    try:
        header = json.loads(blob.decode("utf-8"))
        ok = (header["dtype"] == dtype.str and tuple(header["shape"]) == shape
              and header["config"] == os.path.basename(os.path.dirname(os.path.dirname(entry)))
              and header["file"] == os.path.basename(entry)[: -len(_SUFFIX)])
        return (int(header["crc32"]), int(header["stored"])) if ok else None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _read_exactly(fh, view: memoryview) -> int:
    """Fill ``view`` from ``fh`` (reads of regular files may come back short); the bytes read."""
    done = 0
    while done < len(view):
        got = fh.readinto(view[done:])
        if not got:
            break
        done += got
    return done


def _open_regular(path):
    """``path`` opened to read, unbuffered; None when it is not a regular file (opened without
    blocking, so that a FIFO does not hang the reader)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        return open(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise


def _is_digest(text) -> bool:
    """A SHA-256 in hex: what a digests file holds must not steer entry paths out of the cache."""
    return isinstance(text, str) and len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def _read_json(path: str) -> dict:
    """The ``files`` of a digests file; empty when there is none or it is damaged."""
    try:
        fh = _open_regular(path)
        if fh is None:
            return {}
        with fh:
            files = json.loads(fh.read().decode("utf-8")).get("files", {})
        return files if isinstance(files, dict) else {}
    except (OSError, ValueError, AttributeError):  # ValueError: not JSON, or not UTF-8
        return {}


def _stored_length(row: np.ndarray) -> int:
    """How many values of ``row`` (flattened) an entry stores: all but its trailing zeros."""
    flat = row.reshape(-1)
    if flat.dtype.itemsize in (1, 2, 4, 8):  # the bits, so that a -0.0 is kept as it is
        flat = flat.view(f"u{flat.dtype.itemsize}")
    nonzero = np.flatnonzero(flat[-1:])  # the usual case, a row that does not end in zeros: O(1)
    if nonzero.size:
        return flat.size
    nonzero = np.flatnonzero(flat)
    return int(nonzero[-1]) + 1 if nonzero.size else 0
