"""Predict many files: every audio file named or found under some paths, resumable through a log."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from ..classifier import InstrumentClassifier
from ..data.folder import find_audio
from ..engines.torch_engine import TorchEngine
from ..errors import InstrecError, skip_entry
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
    short by the interruption is dropped.
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
                results.append(model.predict_file(f, window=window, hop=hop))
                if results_log:
                    results_log.append(results[-1])
            except InstrecError as e:
                skipped.append(skip_entry(e, f))
            if update:
                update(i + 1, len(todo))
    finally:
        if results_log:
            results_log.close()
    return results, skipped


class ResultsLog:
    """Append-only JSON Lines of predictions, each line flushed to disk when written.

    Opening it reads what an earlier run wrote: complete lines are kept (``done``: path →
    Prediction), and a torn last line (a run killed mid-write) is cut off the file.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.done: dict[str, Prediction] = {}
        good = 0
        if self.path.exists():
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
            if good < len(data):
                with open(self.path, "r+b") as fh:
                    fh.truncate(good)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "ab")

    def append(self, p: Prediction) -> None:
        self._fh.write((json.dumps(p.to_dict(), ensure_ascii=False) + "\n").encode("utf-8"))
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()
