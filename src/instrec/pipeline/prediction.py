"""Predict many files: every audio file named or found under some paths, resumable through a log."""

from __future__ import annotations

import contextlib
import errno
import json
import os
from pathlib import Path
from typing import Sequence

from ..classifier import InstrumentClassifier
from ..data.folder import find_audio
from ..engines.torch_engine import TorchEngine
from ..errors import InstrecError, skip_entry
from ..errors import WriteError
from ..fileio import writing
from ..inference import Model, check_window
from ..results import Prediction
from .common import Progress, bar


def predict_paths(
    model: Model | InstrumentClassifier,
    paths: Sequence[str | os.PathLike],
    *,
    window: float | None = None,
    hop: float | None = None,
    log: str | os.PathLike | None = None,
    progress: Progress | None = None,
) -> tuple[list[Prediction], list[tuple[str, str]]]:
    """Predict every audio file named or found (recursively) under ``paths``; bad files are skipped.

    ``window`` / ``hop`` (s): sliding-window analysis (see :meth:`instrec.inference.Model.predict`).
    ``log``: a JSON Lines file that gets one line per file as soon as it is predicted; files it
    already lists (from an earlier, interrupted run) are not predicted again, and a last line cut
    short by the interruption is dropped. A log that cannot be written (a full disk, a read-only
    folder) raises :class:`~instrec.errors.WriteError`, its earlier lines intact.
    """
    window, hop = check_window(window, hop)
    if isinstance(model, InstrumentClassifier):
        model = Model(TorchEngine(model))
    files, skipped = [], []
    for p in paths:
        p = Path(p)
        if not p.exists() and not p.is_symlink():  # a broken link or loop: load() says which
            skipped.append((str(p), "no such file or folder"))
        elif p.is_dir():
            found = find_audio(p)
            if not found:
                skipped.append((str(p), "no audio files found (looked for .wav .flac .ogg .mp3)"))
            files += found
        else:
            files.append(p)
    files = list(dict.fromkeys(files))  # a file named twice (or also found in a folder) once
    results_log = ResultsLog(log) if log is not None else None
    done = results_log.done if results_log else {}
    results = [done[str(f)] for f in files if str(f) in done]
    todo = [f for f in files if str(f) not in done]
    update = bar(progress, "predicting", len(todo))
    try:
        for i, f in enumerate(todo):
            try:
                r = model.predict_file(f, window=window, hop=hop)
            except InstrecError as e:
                skipped.append(skip_entry(e, f))
            else:
                results.append(r)
                if results_log:  # outside the skip: a log that cannot be written stops the batch (WriteError)
                    results_log.append(r)
            if update:
                update(i + 1, len(todo))
    finally:
        if results_log:
            results_log.close()
    return results, skipped


class ResultsLog:
    """Append-only JSON Lines of predictions, each line flushed to disk when written.

    Opening it reads what an earlier run wrote: complete lines are kept (``done``: path →
    Prediction), and a torn last line (a run killed mid-write) is cut off the file. A line that
    cannot be written (a full disk) is cut off again before :class:`~instrec.errors.WriteError`
    is raised, so the file holds the complete lines before it and nothing else.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.done: dict[str, Prediction] = {}
        good, data = 0, b""
        if self.path.is_file():  # anything else (a folder) is refused by the open below, in one line
            data = self.path.read_bytes()
            for line in data.splitlines(keepends=True):
                try:
                    if not line.endswith(b"\n"):
                        raise ValueError("torn line")
                    p = Prediction.from_dict(json.loads(line))
                except (ValueError, KeyError, TypeError, AttributeError):
                    break  # a torn or foreign line: keep what came before it
                self.done[p.path] = p
                good += len(line)
        with writing(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
            if good < len(data):
                os.ftruncate(self._fd, good)

    def append(self, p: Prediction) -> None:
        line = memoryview((json.dumps(p.to_dict(), ensure_ascii=False) + "\n").encode("utf-8"))
        before = os.fstat(self._fd).st_size
        try:
            while line:
                n = os.write(self._fd, line)  # unbuffered: nothing is left to fail later, at close
                if n <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                line = line[n:]
            os.fsync(self._fd)
        except OSError as e:
            with contextlib.suppress(OSError):  # the part written: the next run would drop it anyway
                os.ftruncate(self._fd, before)
            raise WriteError(self.path, e) from None

    def close(self) -> None:
        os.close(self._fd)
