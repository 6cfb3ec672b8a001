"""Features of many files: in this process or a pool of worker processes, streamed, in order.

:func:`iter_compact` is the one loop behind :func:`instrec.features.extract` and
:func:`instrec.features.iter_features`. Files go to the workers in chunks; a bounded number of
chunks is in flight at a time and their results come back in input order, so memory holds a few
chunks' rows whatever the number of files. Each worker decodes a file, computes its feature (or
reads it from the cache, keyed by the file's content) and writes it in its compact form (the
tutorial's image as uint8 pixels, a quarter of the float32 row) into its chunk's slot of a buffer
shared with the parent (a file in ``/dev/shm`` mapped by both), so rows are not pickled and a
decoded recording never leaves the process that decoded it. :func:`extract_compact` goes one
step further: the shared buffer is the result matrix itself, each worker writes its rows where they
end up, and the parent copies nothing (for the cnn's 264-KB waveform windows the parent's copying
was as much work as decoding). Small jobs (fewer than
``_MIN_FILES_PER_WORKER`` files to compute per extra worker, counting cached ones as free) run in
this process: starting a pool costs a few hundred milliseconds. A worker that dies (a file
crashing the decoder, the OOM killer) loses the chunks in flight: their files are run again one at a
time in a fresh pool, and a file whose worker dies again is skipped, not the whole run.

The pool (kept warm between calls, freed by :func:`release_pool`) and the shared buffers are
:mod:`instrec.features.pool`'s. Everything a worker runs here is a module-level function of this
module, so it works under ``spawn`` and ``forkserver``.
"""

from __future__ import annotations

import itertools
import math
import os
from collections import deque
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from typing import Iterator, Sequence

import numpy as np

from ..audio import load
from ..devices import cpu_count, resolve_jobs
from ..errors import InstrecError, ParameterError, printable, skip_entry
from ..memory import keep_heap
from .compute import compact_dtype, compute_compact
from .config import FeatureConfig
from .cache import FeatureCache, config_digest, read_entry
from .pool import _lease, _one_blas_thread, _SlotBuffer, release_pool

__all__ = ["iter_compact", "extract_compact", "compute_compact_file", "fill_entry", "cpu_count", "resolve_jobs",
           "resolve_cache", "chunk_size", "release_pool"]

_CHUNK_BYTES = 8 << 20  # at most about this much feature data per chunk
_MAX_CHUNK = 32
# Starting a pool costs a few hundred ms (a forkserver importing numpy, scipy, soundfile, soxr);
# below this many files per extra worker, one process is faster.
_MIN_FILES_PER_WORKER = 48
_IN_FLIGHT = 2  # chunks queued per worker


def resolve_cache(cache) -> FeatureCache | None:
    """``False``/``None``: no cache; ``True``: the default folder; a path or a FeatureCache."""
    if cache is None or cache is False:
        return None
    if cache is True:
        return FeatureCache()
    if isinstance(cache, FeatureCache):
        return cache
    if isinstance(cache, (str, os.PathLike)):
        return FeatureCache(cache)
    raise ParameterError(f"cache must be True, False, a folder or a FeatureCache; got {cache!r}")


def chunk_size(n: int, jobs: int, config: FeatureConfig) -> int:
    """Files per task: enough to amortise the round trip, few enough to balance the workers and keep
    a chunk's rows within ~8 MB."""
    row_bytes = config.dim * np.dtype(compact_dtype(config)).itemsize
    by_bytes = max(1, _CHUNK_BYTES // row_bytes)
    balanced = max(1, math.ceil(n / (jobs * 8)))
    return max(1, min(_MAX_CHUNK, by_bytes, balanced))


def iter_compact(
    paths: Sequence[str | os.PathLike],
    config: FeatureConfig,
    *,
    jobs: int | None = None,
    cache=False,
    chunksize: int | None = None,
) -> Iterator[tuple[int, np.ndarray | None, tuple[str, str] | None]]:
    """``(index, compact row, None)`` or ``(index, None, (path, problem))`` for each path, in order.

    A row may be a view into the shared buffer, valid until the next item is asked for: copy it
    (:func:`instrec.features.expand` does) to keep it.
    """
    plan = _plan(paths, config, jobs, cache, chunksize)
    try:
        yield from _serial(paths, config, *plan) if plan[-1] <= 1 else _ring(paths, config, *plan)
    finally:
        if plan[0] is not None:
            plan[0].save_digests()


def _serial(paths, config, store, key, digests, size, workers, out=None):
    """In this process; with ``out`` (all zeros), the k-th usable file's row is written into ``out[k]``."""
    keep_heap()
    k = 0
    for i, path in enumerate(paths):
        row, skip = _one(path, config, store, key, digests[i], None if out is None else out[k], out is not None)
        if row is not None:
            k += 1
        elif out is not None and k < len(out):
            out[k] = 0  # a damaged entry may have been read into it before the file failed
        yield i, row, skip


def _ring(paths, config, store, key, digests, size, workers):
    with _SlotBuffer.create(workers * _IN_FLIGHT, size, config.dim, compact_dtype(config)) as slots:
        yield from _pooled(paths, digests, config, store, size, workers, slots, recycle=True)


def extract_compact(
    paths: Sequence[str | os.PathLike],
    config: FeatureConfig,
    *,
    jobs: int | None = None,
    cache=False,
    progress=None,
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """``(X, ok, skipped)`` as :func:`instrec.features.extract` with ``compact=True`` returns them.

    With a pool, ``X`` is a buffer in ``/dev/shm`` that the workers fill directly, row by row, in
    input order (a skipped file's row is closed up afterwards); with one process, or where
    ``/dev/shm`` lacks room, the rows are copied into an ordinary array as they come.
    """
    n = len(paths)
    dtype = compact_dtype(config)
    plan = _plan(paths, config, jobs, cache, None)
    store, _, digests, size, workers = plan
    cores = resolve_jobs(jobs)
    slots = _SlotBuffer.create(-(-n // size), size, config.dim, dtype, shared_only=True) if workers > 1 else None
    # Where each usable row lands: at its index (the workers' shared matrix: closed up after a
    # skipped file), at the count of usable rows so far (this process writes it there), or
    # wherever the recycled slots hold it (copied).
    if slots is not None:
        X, lands = slots.array.reshape(-1, config.dim), "index"
        items = _pooled(paths, digests, config, store, size, workers, slots, recycle=False)
    elif workers <= 1 and store is not None and cores > 1 and config.dim * dtype.itemsize >= _BIG_ROW:
        # All (or nearly all) cached: threads read the entries. Into fresh zero pages, as every
        # route here: what an entry leaves out (the cnn's padding) is never written.
        X, lands = _zero_pages((n, config.dim), dtype), "index"
        items = _threaded_hits(paths, config, store, plan[1], digests, X, cores)
    elif workers <= 1:
        X, lands = _zero_pages((n, config.dim), dtype), "count"
        items = _serial(paths, config, *plan, out=X)
    else:
        X, lands = np.empty((n, config.dim), dtype=dtype), "copy"
        items = _ring(paths, config, *plan)
    ok, skipped = [], []
    try:
        for done, (i, row, skip) in enumerate(items, 1):
            if row is None:
                skipped.append(skip)
            else:
                if lands == "copy" or (lands == "index" and len(ok) != i):
                    X[len(ok)] = row
                ok.append(i)
            if progress:
                progress(done, n)
    finally:
        if slots is not None:
            slots.release()  # the file goes; X keeps the memory mapped
        if store is not None:
            store.save_digests()
    return np.asarray(X[: len(ok)]), np.asarray(ok, dtype=np.int64), skipped


def _plan(paths, config: FeatureConfig, jobs, cache, chunksize):
    """``(store, key, digests, chunk size, workers)`` for extracting ``paths``: how many processes
    are worth starting, given what the cache already holds."""
    n = len(paths)
    jobs = resolve_jobs(jobs)
    store = resolve_cache(cache)
    key = config_digest(config) if store is not None else None
    digests = [None] * n
    to_compute = n
    if store is not None and jobs > 1:
        # Hash the files here (fast) and see which entries exist: a pool is worth starting only for
        # the features that are not cached yet; the workers get the digests along.
        # SHA-256 releases the GIL, but for small files two threads only fight over it
        big = sum(_size(p) for p in paths) >= len(paths) * _BIG_FILE
        digests = _in_threads(store.file_key, paths, jobs if big else 1)
        to_compute = sum(d is None or not os.path.isfile(store.entry_name(key, d)) for d in digests)
    size = chunksize or chunk_size(n, jobs, config)
    workers = min(jobs, math.ceil(n / size), max(1, to_compute // _MIN_FILES_PER_WORKER))
    if workers > 1 and _importing_main():
        # multiprocessing's own test: without it this worker would make a buffer, start workers of
        # its own and be killed holding them
        raise InstrecError("a worker process that was importing the script that started it was asked to start "
                           "workers: call instrec under 'if __name__ == \"__main__\":' in that script")
    return store, key, digests, size, workers


def _importing_main() -> bool:
    """True in a worker process still importing its parent's main script (``spawn``, ``forkserver``)."""
    import multiprocessing

    return bool(getattr(multiprocessing.current_process(), "_inheriting", False))


def _zero_pages(shape: tuple[int, int], dtype) -> np.ndarray:
    """A zero matrix in anonymous memory of 4-KB pages, none touched yet. Not ``np.zeros``: numpy
    asks for huge pages, and one row written into a 2-MB page makes the kernel clear all of it,
    which for the cnn's mostly-zero windows is three times the memory the entries fill."""
    import mmap

    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if nbytes == 0:
        return np.zeros(shape, dtype=dtype)
    return np.frombuffer(mmap.mmap(-1, nbytes), dtype=dtype).reshape(shape)


def _size(path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _in_threads(fn, items: Sequence, threads: int) -> list:
    """``[fn(x) for x in items]`` on ``threads`` threads (for work that releases the GIL), a few
    runs of consecutive items per thread: a task per item costs more than hashing a small file."""
    if threads <= 1 or len(items) < 2 * _THREAD_RUN:
        return [fn(x) for x in items]
    from concurrent.futures import ThreadPoolExecutor

    runs = [items[s : s + _THREAD_RUN] for s in range(0, len(items), _THREAD_RUN)]
    with ThreadPoolExecutor(threads) as pool:
        return [y for run in pool.map(lambda run: [fn(x) for x in run], runs) for y in run]


_THREAD_RUN = 32  # files per thread task
# Threads pay off for bytes, not for files: hashing files of at least this size on average, and
# reading cache entries of rows at least this big (a 160-byte MFCC row is faster in one thread).
_BIG_FILE = 512 << 10
_BIG_ROW = 64 << 10
_RUNS_AHEAD = 4  # thread tasks queued per thread, ahead of the consumer


def _threaded_hits(paths, config, store: FeatureCache, key: str, digests: list, out: np.ndarray, threads: int):
    """In this process, with the cache: the entries read by ``threads`` threads (reading a file,
    its CRC-32 and the row's page faults all run without the GIL, so they overlap), the files not
    cached computed here one by one. Row ``i`` lands in ``out[i]``, which must be all zeros: what
    an entry leaves out (trailing zeros) is then already there and is not written again."""
    from concurrent.futures import ThreadPoolExecutor

    dtype = compact_dtype(config)

    def read(i):
        digest = digests[i] or store.file_key(paths[i])
        if digest is None:  # missing or unreadable: computing it says why
            return None, "missing"
        entry = store.entry_name(key, digest)
        return entry, read_entry(entry, shape=(config.dim,), dtype=dtype, out=out[i], out_zeroed=True)[1]

    def read_run(start):
        return [read(i) for i in range(start, min(start + _THREAD_RUN, len(paths)))]

    keep_heap()
    starts = iter(range(0, len(paths), _THREAD_RUN))
    with ThreadPoolExecutor(threads) as pool:
        ahead = deque(pool.submit(read_run, s) for s in itertools.islice(starts, threads * _RUNS_AHEAD))
        i = 0
        while ahead:
            found = ahead.popleft().result()
            nxt = next(starts, None)
            if nxt is not None:
                ahead.append(pool.submit(read_run, nxt))
            for entry, status in found:
                if entry is None:
                    store.misses += 1
                else:
                    store.count(status, entry)
                if status == "hit":
                    yield i, out[i], None
                else:  # not there, or damaged (then ``out[i]`` may hold part of it: overwritten whole)
                    yield (i, *_compute(paths[i], config, store, entry, out[i], status == "missing"))
                i += 1


def _pooled(paths, digests, config, store, size, workers, slots, *, recycle: bool):
    """The pool's loop. ``slots`` (None: rows come back pickled) holds the rows: with ``recycle``,
    ``workers * _IN_FLIGHT`` slots taken in turn, each reused once its rows are consumed; without,
    one slot per chunk, chunk ``k`` in slot ``k`` (the buffer is then the whole result)."""
    n = len(paths)
    root = None if store is None else str(store.root)
    tasks = ((s, [os.fspath(p) for p in paths[s : s + size]], digests[s : s + size]) for s in range(0, n, size))
    cfg = config.to_dict()
    cwd = os.getcwd()  # relative paths are the caller's: warm workers keep the folder they started in
    where = None if slots is None else slots.path
    lease = _lease(workers, config)
    with lease:
        pending = deque()

        def submit(slot):
            task = next(tasks, None)
            if task is not None:
                slot = slot if recycle else task[0] // size
                try:
                    future = lease.pool.submit(_run_chunk, *task, cfg, root, where, slot, size, not recycle, cwd)
                except BrokenProcessPool as e:  # broke meanwhile: the task is redone with the others lost
                    future = Future()
                    future.set_exception(e)
                pending.append((slot, task, future))

        def fill():
            for slot in range(workers * _IN_FLIGHT):
                submit(slot)

        try:
            fill()
            crashed = 0
            while pending:
                slot, task, future = pending.popleft()
                try:
                    start, results, stats = future.result()
                except BrokenProcessPool:
                    # A worker died (a file crashing the decoder, the OOM killer, a kill): every chunk
                    # in flight is lost. Their files again, one at a time, to find the one to skip.
                    redo = [(slot, task)] + [(s, t) for s, t, _ in pending]
                    pending.clear()
                    for s, (start, chunk, sums) in redo:
                        for k, (path, digest) in enumerate(zip(chunk, sums)):
                            row, skip, crashed = _alone(lease, path, digest, cfg, root, cwd, store, crashed)
                            if row is not None and slots is not None and not recycle:
                                slots.rows(s)[k] = row  # the result matrix: a pickled row goes in its place
                                row = slots.rows(s)[k]
                            yield start + k, row, skip
                    fill()
                    continue
                if store is not None:
                    store.add_stats(stats)
                for k, (row, skip) in enumerate(results):
                    if skip is None and row is None:  # written into the slot
                        row = slots.rows(slot)[k]
                    yield start + k, row, skip
                submit(slot)  # only now: the consumer has seen the slot's rows
        finally:
            for _, _, f in pending:
                f.cancel()


_MAX_CRASHES = 8  # files whose worker died before a run gives up: workers dying that often is not the files


def _alone(lease, path, digest, cfg, root, cwd, store, crashed):
    """``(row, skip, crashed)``: one file of a chunk lost to a dead worker, alone in a fresh pool (a
    row pickled back); skipped when its worker dies again."""
    if getattr(lease.pool, "_broken", False):
        lease.renew()
    try:
        _, [(row, skip)], stats = lease.pool.submit(_run_chunk, 0, [path], [digest], cfg, root, None, 0, 1,
                                                    False, cwd).result()
    except BrokenProcessPool:
        crashed += 1
        if crashed >= _MAX_CRASHES:
            raise InstrecError(f"feature worker processes died on {crashed} files (the last: {printable(path)}): short "
                               "of memory, or a script that calls instrec outside 'if __name__ == \"__main__\":' (each "
                               "worker imports the script again); guard it, or try fewer jobs") from None
        return None, (path, "its worker process died while decoding it (a crash in the decoder, or killed)"), crashed
    if store is not None:
        store.add_stats(stats)
    return row, skip, crashed


_mapped: dict = {}  # a worker's view of the parent's slot buffer, by (path, inode, size)


def _run_chunk(start: int, paths: list[str], digests: list, cfg: dict, root: str | None, where: str | None,
               slot: int, size: int, zeroed: bool = False, cwd: str | None = None):
    """A worker's task: the compact features of ``paths`` (the files from ``start`` on), written
    into slot ``slot`` of the shared buffer at ``where`` (or returned, without one); ``zeroed``: the
    slot is fresh memory, all zeros (the result matrix itself), so zeros need not be written;
    ``cwd``: the parent's working folder, which relative paths and cache folders are relative to."""
    if cwd is not None and cwd != os.getcwd():
        os.chdir(cwd)
    config = FeatureConfig.from_dict(cfg)
    store = FeatureCache(root) if root is not None else None
    key = config_digest(config) if store is not None else None
    rows = None
    if where is not None:
        st = os.stat(where)
        mapping = (where, st.st_ino, st.st_size)  # a warm worker outlives buffers: never a stale one
        if mapping not in _mapped:
            _mapped.clear()
            dtype = compact_dtype(config)
            n_slots = st.st_size // (size * config.dim * dtype.itemsize)
            _mapped[mapping] = np.memmap(where, dtype=dtype, mode="r+", shape=(n_slots, size, config.dim))
        rows = _mapped[mapping][slot]
    results = []
    for k, (path, digest) in enumerate(zip(paths, digests)):
        # Into the shared buffer at once: holding a chunk's rows until its end grew each new
        # worker's heap by megabytes, page fault by page fault.
        row, skip = _one(path, config, store, key, digest, None if rows is None else rows[k], zeroed)
        if rows is not None:
            row = None  # written into the slot
        results.append((row, skip))
    return start, results, (store.stats if store is not None else {})


def _one(path, config: FeatureConfig, store: FeatureCache | None, key: str | None, digest: str | None = None,
         out: np.ndarray | None = None, out_zeroed: bool = False):
    """``(compact row, None)`` or ``(None, (path, problem))`` for one file, through the cache
    (``digest``: the file's, when already known; ``out``: where to put the row, then returned;
    ``out_zeroed``: ``out`` is all zeros, so zeros need not be written)."""
    entry = None
    if store is not None:
        digest = digest or store.file_key(path)
        if digest is None:  # missing or unreadable: computing it says why
            store.misses += 1
        else:
            entry = store.entry_name(key, digest)
            row, status = read_entry(entry, shape=(config.dim,), dtype=compact_dtype(config), out=out,
                                     out_zeroed=out_zeroed)
            store.count(status, entry)
            if row is not None:
                return row, None
            out_zeroed = out_zeroed and status == "missing"  # a damaged entry may have been read into it
    return _compute(path, config, store, entry, out, out_zeroed)


def fill_entry(path, config: FeatureConfig, cache: FeatureCache, digest: str | None = None) -> tuple[str, str] | None:
    """Make sure ``cache`` holds ``path``'s entry for ``config``: read it, or compute and store it
    exactly as :func:`extract` does (``digest``: the file's, when known). None, or ``(path,
    problem)`` for a file that cannot be used; ``cache``'s counters say what happened."""
    return _one(path, config, cache, config_digest(config), digest)[1]


def _compute(path, config: FeatureConfig, store: FeatureCache | None, entry: str | None, out: np.ndarray | None,
             out_zeroed: bool = False):
    """:func:`_one` past the cache: compute the row (into ``out``), and store it at ``entry``."""
    try:
        with _one_blas_thread():
            row = compute_compact_file(path, config, out=out, out_zeroed=out_zeroed)
    except InstrecError as e:
        return None, skip_entry(e, path)
    if entry is not None:
        store.store(entry, row, config)
    return row, None


def compute_compact_file(path, config: FeatureConfig, *, out: np.ndarray | None = None,
                         out_zeroed: bool = False) -> np.ndarray:
    y, _ = load(path, sr=config.sr)
    return compute_compact(y, config, out=out, out_zeroed=out_zeroed)
