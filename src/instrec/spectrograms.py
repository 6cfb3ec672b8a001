"""``instrec spectrograms``: the tutorial's spectrogram images written as PNG files.

The pictures are computed by the feature extraction's worker processes
(:func:`instrec.features.parallel.iter_compact`: the image kind's compact row is the picture's
uint8 pixels, handed over in shared memory; with fewer than ~50 files per worker, in this
process), while a few threads of this process encode and write the PNG files (zlib, numpy and
the disk release the GIL), each atomically (:func:`instrec.fileio.write_bytes`).

The PNG files hold exactly the pixels of :func:`instrec.features.image.spectrogram_image`, written
by Pillow at zlib level 1 with run-length matching (``Z_RLE``) rather than its default level 6:
1.4 ms a grey picture instead of 3.3 ms, the same pixels, files no larger (9.4 kB a picture against
9.5 kB; benchmarks/RESULTS.md, the image section).

With every core asked for (``jobs`` ``None`` or 0), fewer than ``_POOL_MIN_FILES`` files are
computed in this process: the pool's start-up (~0.6 s) is worth ~200 files of work here, and on 2
cores, where this process's PNG threads take the second core anyway, the pool gains ~0.4 ms a file.

A picture is named after its file's stem (``a.wav`` -> ``a.png``); files whose stems meet in one
folder, case ignored (``a.wav`` and ``a.flac``), are named after their whole name instead
(``a.wav.png``, ``a.flac.png``), so that no picture overwrites another; :func:`write_spectrograms`
reports them.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .data.folder import find_audio
from .errors import DataError, ParameterError
from .fileio import write_bytes

_WRITES_AHEAD = 4  # pictures waiting to be encoded and written, per thread
_POOL_MIN_FILES = 600  # 2 cores, 300 files: 1.17 s in this process against 1.52 s with the pool


def encode_png(img: np.ndarray) -> bytes:
    """PNG bytes of a uint8 picture, ``(height, width)`` grey or ``(height, width, 3)`` RGB."""
    import io

    from PIL import Image

    img = np.ascontiguousarray(img)
    if img.dtype != np.uint8:
        raise ParameterError(f"a picture's pixels are uint8; got {img.dtype}")
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)) or min(img.shape[:2]) < 1:
        raise ParameterError(f"a picture is (height, width) or (height, width, 3) uint8 with pixels; got shape {img.shape}")
    import zlib

    buf = io.BytesIO()
    # level 1 with run-length matching: the same pixels, twice as fast as the default, files no larger
    Image.fromarray(img).save(buf, format="PNG", compress_level=1, compress_type=zlib.Z_RLE)
    return buf.getvalue()


def _write_png(path: Path, img) -> None:
    write_bytes(path, encode_png(img))  # atomic: a reader sees no half-written image


class Written(NamedTuple):
    """What :func:`write_spectrograms` did: PNG files written, ``(file, problem)`` skipped, and the
    files named after their whole name (``a.wav.png``) because their stem is another's too."""

    written: int
    skipped: list
    renamed: list


def picture_paths(files: list[Path], base: Path, out: Path) -> tuple[list[Path], list[Path]]:
    """Each file's PNG under ``out`` (its stem, or its whole name where stems meet), and the files renamed."""
    whole = [False] * len(files)
    while True:  # a whole-name picture (a.wav.png) may meet the stem of another (a.wav.flac): rename that one too
        targets = [out / f.relative_to(base).parent / (f.name if w else f.stem) for f, w in zip(files, whole)]
        seen: dict[str, list[int]] = {}
        for i, t in enumerate(targets):
            seen.setdefault(str(t).casefold(), []).append(i)  # casefold: a.WAV and a.wav meet on macOS and Windows
        clash = [i for group in seen.values() if len(group) > 1 for i in group if not whole[i]]
        if not clash:
            return [t.with_name(t.name + ".png") for t in targets], [f for f, w in zip(files, whole) if w]
        for i in clash:
            whole[i] = True


def write_spectrograms(data: str | os.PathLike, out: str | os.PathLike, *, mode: str = "gray", config=None,
                       progress=None, jobs: int | None = None):
    """One PNG per audio file under ``data`` into ``out`` (mirroring sub-folders).

    ``jobs``: processes computing the pictures (``None`` or 0: one per core; small jobs run in
    this process). Returns :class:`Written` ``(written, skipped, renamed)``; a bad file is skipped
    and listed, the rest go on. ``out`` may not be blank (``''`` would be the current folder).
    """
    from concurrent.futures import ThreadPoolExecutor

    from .features import FeatureConfig
    from .features.parallel import cpu_count, iter_compact, resolve_jobs

    c = FeatureConfig(kind="image", image_mode=mode) if config is None else \
        replace(config, kind="image", image_mode=mode, pitch_shift=0.0)
    if not str(out).strip():
        raise ParameterError("out is empty: name the folder to write the pictures to")
    data, out = Path(data), Path(out)
    if out.exists() and not out.is_dir():  # else every picture's write failed on it, exit 1, naming a.png
        raise ParameterError(f"{out}: is a file, not a folder; name a folder for the pictures")
    if not data.exists():
        raise DataError(f"{data}: no such file or folder")
    files = find_audio(data)
    if not files:
        raise DataError(f"{data}: no audio files found (looked for .wav .flac .ogg .mp3)")
    base = data if data.is_dir() else data.parent
    targets, renamed = picture_paths(files, base, out)
    shape = (c.height, c.width, 3) if mode == "rgb" else (c.height, c.width)
    bar = progress("spectrograms", len(files)) if progress else None
    written, skipped, done = 0, [], 0
    threads = min(resolve_jobs(jobs), cpu_count())
    if not jobs and len(files) < _POOL_MIN_FILES:
        jobs = 1  # the pool would not pay for its start-up (module docstring)
    pending: deque = deque()  # in the files' order: ("png", future) or ("skip", (path, problem))

    def finish_one():
        nonlocal written, done
        kind, value = pending.popleft()
        if kind == "skip":
            skipped.append(value)
        else:
            value.result()  # a write that failed raises here
            written += 1
        done += 1
        if bar:
            bar(done, len(files))

    items = iter_compact(files, c, jobs=jobs)
    with ThreadPoolExecutor(threads, thread_name_prefix="instrec-png") as pool:
        try:
            for i, row, skip in items:
                if row is None:
                    pending.append(("skip", skip))
                else:
                    # a copy: the row may be a view into the workers' shared buffer, reused next
                    img = row.reshape(shape).copy()
                    pending.append(("png", pool.submit(_write_png, targets[i], img)))
                while len(pending) > threads * _WRITES_AHEAD or (pending and pending[0][0] == "skip"):
                    finish_one()
            while pending:
                finish_one()
        finally:  # a write failed (or an interrupt): no more pictures, none waiting written
            items.close()
            for kind, value in pending:
                if kind == "png":
                    value.cancel()
    return Written(written, skipped, [str(f) for f in renamed])
