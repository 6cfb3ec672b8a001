"""Predict many files: every audio file named or found under some paths, resumable through a log."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import json
import os
from pathlib import Path
from typing import Callable, Iterator, Sequence

from ..data.folder import find_audio
from ..errors import ParameterError
from ..errors import WriteError
from ..features.parallel import resolve_jobs
from ..fileio import json_utf8, writing
from ..inference import Model, check_window, predict_in_worker, predict_or_skip, start_worker
from ..results import Prediction
from .progress import Progress, bar


Outcome = tuple[int, "Prediction | tuple[str, str]"]  # a file's index in the batch, and its prediction or (file, problem)
Runner = Callable[["Model", Sequence[str], "float | None", "float | None"], Iterator[Outcome]]


def predict_paths(
    model: Model | "InstrumentClassifier",
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    window: float | None = None,
    hop: float | None = None,
    log: str | os.PathLike | None = None,
    progress: Progress | None = None,
    jobs: int = 1,
    runner: Runner | None = None,
) -> tuple[list[Prediction], list[tuple[str, str]]]:
    """Predict every audio file named or found (recursively) under ``paths``; bad files are skipped.

    ``window`` / ``hop`` (s): sliding-window analysis (see :meth:`instrec.inference.Model.predict`).
    ``log``: a JSON Lines file that gets one line per file as soon as it is predicted; files it
    already lists (from an earlier, interrupted run, however it spelt their paths) are not
    predicted again, and a last line cut
    short by the interruption is dropped. A log that cannot be written (a full disk, a read-only
    folder) raises :class:`~instrec.errors.WriteError`, its earlier lines intact.
    ``jobs``: processes predicting at once (0: one per core), each with its own copy of the model.
    ``runner``: who predicts the files instead (``runner(model, files, window, hop)`` yields
    ``(index, Prediction or (file, problem))`` in any order; :mod:`instrec.cluster` runs them on a
    Ray cluster). The results come back in the order of the files, whoever predicted them.
    """
    if not isinstance(model, Model):  # an InstrumentClassifier (imported only then: predicting needs no scikit-learn)
        from ..classifier import InstrumentClassifier
        from ..engines.torch_engine import TorchEngine

        if not isinstance(model, InstrumentClassifier):
            raise ParameterError(f"model must be a Model or an InstrumentClassifier; got {type(model).__name__}")
        model = Model(TorchEngine(model))
    # a usage error once, before any file: each file's predict_file would skip it as that file's problem
    window, hop = check_window(window, hop, model_window=model.window)
    files, skipped = collect_files(paths)
    run = {**model.settings, "window": window, "hop": hop}
    results_log = ResultsLog(log, run) if log is not None else None
    done = results_log.done if results_log else {}
    # matched on the file itself (d3/a.wav, ./d3/a.wav, $PWD/d3/a.wav), answered as spelt this time
    results = [dataclasses.replace(done[resolved(f)], path=f) for f in files if resolved(f) in done]
    todo = [f for f in files if resolved(f) not in done]
    update = bar(progress, "predicting", len(todo))
    if runner is None:
        runner = _in_pool if resolve_jobs(jobs) > 1 and len(todo) > 1 else _here
        runner = functools.partial(runner, jobs=resolve_jobs(jobs)) if runner is _in_pool else runner
    seen = set()
    try:
        for n, (i, r) in enumerate(runner(model, todo, window, hop), 1):
            if i in seen:  # a runner that retried a lost worker's files may answer one twice
                continue
            seen.add(i)
            if isinstance(r, Prediction):
                results.append(r)
                if results_log:  # outside the skip: a log that cannot be written stops the batch (WriteError)
                    results_log.append(r)
            else:
                skipped.append(r)
            if update:
                update(len(seen), len(todo))
    finally:
        if results_log:
            results_log.close()
    order = {f: k for k, f in enumerate(files)}
    results.sort(key=lambda r: order.get(r.path, len(order)))
    return results, skipped


def collect_files(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> tuple[list[str], list[tuple[str, str]]]:
    """The audio files named or found (recursively) under ``paths``, each once, and ``(path,
    problem)`` for a path that is not there or a folder without audio."""
    if isinstance(paths, (str, os.PathLike)):  # one path, not a sequence of its characters ("/" among them)
        paths = [paths]
    files, skipped = [], []
    for p in paths:
        if "://" in str(p):  # a URL: only a runner that reads them (the cluster's) can
            files.append(str(p))
            continue
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
    # a file named twice (or also found in a folder, or spelt another way) once, as first spelt
    first: dict[str, str] = {}
    for f in files:
        first.setdefault(resolved(f), str(f))
    return list(first.values()), skipped


def resolved(path: str | os.PathLike) -> str:
    """The absolute, symlink-free path of a file (a URL as it is): how a file is known whatever its spelling."""
    # os.path.realpath, not Path.resolve: a symlink loop must stay a file to skip, not raise
    return str(path) if "://" in str(path) else os.path.realpath(path)


def check_output(path: str | os.PathLike, option: str, *, append: bool = False) -> None:
    """Fail before any work where ``path`` could not be written: a folder (ParameterError), or a
    file whose folder cannot be made or written in, or (``append``) an existing file that cannot
    be opened for appending (WriteError naming it). Nothing is left behind."""
    import tempfile

    path = Path(path)
    if path.is_dir():
        raise ParameterError(f"{option} {path}: is a folder; name a file")
    with writing(path):
        if append and path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND))  # opened, nothing written
            return
        folder = next(p for p in path.absolute().parents if p.exists() or p.is_symlink())  # made when written
        if not folder.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, f"{folder} is not a folder")
        with tempfile.TemporaryFile(dir=folder):  # the probe a read-only disk or /proc refuses
            pass


def _here(model: Model, files: Sequence[str], window, hop) -> Iterator[Outcome]:
    for i, f in enumerate(files):
        yield i, predict_or_skip(model, f, window=window, hop=hop)


def _in_pool(model: Model, files: Sequence[str], window, hop, *, jobs: int) -> Iterator[Outcome]:
    """The files predicted by ``jobs`` processes, each loading the model once; in order."""
    from concurrent.futures import ProcessPoolExecutor

    from ..features.pool import pool_context

    workers = min(jobs, len(files))
    chunk = max(1, min(16, len(files) // (workers * 8)))
    with ProcessPoolExecutor(workers, mp_context=pool_context(), initializer=start_worker, initargs=(model,)) as pool:
        yield from enumerate(pool.map(predict_in_worker, files, [window] * len(files), [hop] * len(files),
                                      chunksize=chunk))


_LINE_START = b'{"path": '  # how every line of a log begins (Prediction.to_dict's first key)


RESULT_SUFFIXES = (".jsonl", ".parquet")


def write_results(results: Sequence[Prediction], path: str | os.PathLike, *, top_k: int = 3) -> Path:
    """Write predictions to ``path`` atomically, one row per file with the fields of ``predict
    --format json`` (``top``: the ``top_k`` likeliest classes): JSON Lines (``.jsonl``) or Parquet
    (``.parquet``, needs pyarrow, which the [cluster] extra brings; nested fields stay nested, and
    ``top``'s pairs are structs of ``class`` and ``probability``)."""
    from ..fileio import atomic_path, json_utf8, write_bytes

    path = Path(path)
    rows = [r.to_row(top_k) for r in results]
    if path.suffix.lower() == ".jsonl":
        write_bytes(path, json_utf8("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in rows)))
    elif path.suffix.lower() == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        for d in rows:  # Arrow's lists hold one type: a pair becomes a struct
            d["top"] = [{"class": c, "probability": p} for c, p in d["top"]]
        keys = list(dict.fromkeys(k for d in rows for k in d)) or ["path", "label", "probabilities"]
        table = pa.table({k: [d.get(k) for d in rows] for k in keys}) if rows else pa.table({k: pa.array([], pa.string()) for k in keys})
        with atomic_path(path) as tmp, writing(path):
            pq.write_table(table, tmp)
    else:
        raise ParameterError(f"{path}: results are written as {' or '.join(RESULT_SUFFIXES)} (by the file's suffix)")
    return path


class ResultsLog:
    """Append-only JSON Lines of predictions, each line flushed to disk when written.

    ``run``: the settings the predictions depend on (:attr:`instrec.inference.Model.settings`,
    window and hop), written into every line as ``"run"``. Opening the log reads what an earlier
    run wrote: its lines are kept (``done``: resolved path → Prediction, see :func:`resolved`)
    when they were made with the same ``run`` (and each line records its file's resolved path as
    ``"resolved"``), and a torn last line (a run killed mid-write) is cut off the file. A file that is not
    such a log (a line that is no prediction), or one written with another model or other settings,
    is refused with :class:`~instrec.errors.ParameterError` and left as it is: predicting again
    under old answers, or over a file of the user's, would lose something. A line that cannot be
    written (a full disk) is cut off again before :class:`~instrec.errors.WriteError` is raised,
    so the file holds the complete lines before it and nothing else.
    """

    def __init__(self, path: str | os.PathLike, run: dict | None = None):
        self.path = Path(path)
        self.run = run
        self.done: dict[str, Prediction] = {}  # by the file's resolved path (see resolved())
        good, data = 0, b""
        if self.path.is_file():  # anything else (a folder) is refused by the open below, in one line
            data = self.path.read_bytes()
            for n, line in enumerate(data.splitlines(keepends=True), 1):
                if not line.endswith(b"\n") and (line.startswith(_LINE_START) or _LINE_START.startswith(line)):
                    break  # torn by an interrupted write: dropped below
                self._check_run(self._read(line, n), n)
                good += len(line)
        with writing(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
            if good < len(data):
                os.ftruncate(self._fd, good)

    def _read(self, line: bytes, n: int) -> dict:
        try:
            d = json.loads(line)
            # a line without "resolved" (an older log) resolves its path from here
            self.done[str(d.get("resolved") or resolved(d["path"]))] = Prediction.from_dict(d)
            return d
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ParameterError(f"{self.path}: not a prediction log (line {n} is not a prediction); name another "
                                 "--log file") from None

    def _check_run(self, d: dict, n: int) -> None:
        if self.run is None or d.get("run") == self.run:
            return
        was = d.get("run") if isinstance(d.get("run"), dict) else {}
        changed = [k for k in self.run if was.get(k) != self.run[k]] or ["settings"]
        what = ", ".join("another model" if k == "model" else f"{k} {was.get(k)!r}" for k in changed)
        raise ParameterError(f"{self.path}: line {n} was predicted with {what}; resume with the same model and "
                             "settings, or name another --log file")

    def append(self, p: Prediction) -> None:
        d = {**p.to_dict(), "resolved": resolved(p.path)} if p.path is not None else p.to_dict()
        d = d if self.run is None else {**d, "run": self.run}
        line = memoryview(json_utf8(json.dumps(d, ensure_ascii=False) + "\n"))
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
