"""The extraction workers' pool and the memory they share with the parent.

The pool outlives an extraction: the next one in the process takes the same warm workers, and an
idle pool shuts itself down after ``POOL_IDLE_SECONDS`` (like joblib's reusable executor). A new
worker's first files are slow (its heap and buffers are new memory, faulted in page by page: about
100 ms on the 2-core machine of benchmarks/RESULTS.md), which a script extracting several data sets
pays once, not per call. :func:`release_pool` frees the workers at once; the pipeline does so before
training, so that idle workers do not hold memory the training needs.

Workers are started with ``forkserver`` where the platform has it, else ``spawn`` (never a bare
``fork`` of a process that may hold torch's or BLAS's threads); ``$INSTREC_MP_START`` overrides.
A worker's initializer is a module-level function of this module, so it works under ``spawn``.
What the workers run is in :mod:`instrec.features.parallel`.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import threading

import numpy as np

from ..errors import ParameterError
from ..memory import keep_heap
from .config import FeatureConfig

START_ENV = "INSTREC_MP_START"
POOL_IDLE_SECONDS = 60.0  # an unused pool is shut down after this long

_worker_limits = None  # a worker's threadpoolctl limiter, kept alive for the worker's life

_pool_lock = threading.Lock()
_pool = None  # (key, ProcessPoolExecutor): the warm pool, reused by the next extraction
_pool_timer = None


class _lease:
    """The warm pool for ``workers`` processes (a new one if there is none, or one of another size
    or start method); its idle timer is stopped while in use and restarted after."""

    def __init__(self, workers: int, config: FeatureConfig):
        self.workers, self.config = workers, config

    def __enter__(self):
        from concurrent.futures import ProcessPoolExecutor

        global _pool
        context = pool_context(self.config)
        key = (self.workers, context.get_start_method())
        with _pool_lock:
            _stop_timer()
            if _pool is not None and (_pool[0] != key or getattr(_pool[1], "_broken", False)):
                _shutdown(_pool[1])
                _pool = None
            if _pool is None:
                _pool = (key, ProcessPoolExecutor(max_workers=self.workers, mp_context=context,
                                                  initializer=init_worker))
            self.pool = _pool[1]
        return self.pool

    def renew(self):
        """A fresh pool in place of this lease's broken one (a worker died)."""
        self.__exit__()
        return self.__enter__()

    def __exit__(self, *exc):
        global _pool_timer
        with _pool_lock:
            if _pool is None or _pool[1] is not self.pool:
                return
            if getattr(self.pool, "_broken", False):  # a worker died: the next call starts afresh
                _release_locked()
            else:
                _pool_timer = threading.Timer(POOL_IDLE_SECONDS, _release_if_idle)
                _pool_timer.daemon = True
                _pool_timer.start()


def release_pool() -> None:
    """Shut the extraction workers down now (the next extraction starts new ones)."""
    with _pool_lock:
        _release_locked()


def _release_if_idle() -> None:
    # The timer's own call: skipped when a lease stopped or replaced this timer meanwhile.
    with _pool_lock:
        if _pool_timer is not None and _pool_timer.ident == threading.get_ident():
            _release_locked()


def _release_locked() -> None:
    global _pool
    _stop_timer()
    if _pool is not None:
        _shutdown(_pool[1])
        _pool = None


def _stop_timer() -> None:
    global _pool_timer
    if _pool_timer is not None:
        _pool_timer.cancel()
        _pool_timer = None


def _shutdown(pool) -> None:
    pool.shutdown(wait=True, cancel_futures=True)


atexit.register(release_pool)


class _SlotBuffer:
    """Shared memory for the workers' rows: ``n_slots`` slots of ``size`` compact rows, one per
    chunk in flight, in a file mapped by the parent and every worker (in ``/dev/shm`` where it has
    room, else the temporary folder). Rows then cross between processes without being pickled.
    """

    def __init__(self, path: str, n_slots: int, size: int, dim: int, dtype: np.dtype):
        self.path = path
        self.array = np.memmap(path, dtype=dtype, mode="r+", shape=(n_slots, size, dim))

    @classmethod
    def create(cls, n_slots: int, size: int, dim: int, dtype, *,
               shared_only: bool = False) -> "_SlotBuffer | _NoSlots | None":
        """``shared_only``: in ``/dev/shm`` or nowhere (None then), for a buffer that becomes the
        result: a file in the temporary folder would put the whole matrix on disk."""
        import tempfile

        nbytes = n_slots * size * dim * np.dtype(dtype).itemsize
        for folder in ("/dev/shm",) if shared_only else ("/dev/shm", None):
            try:
                if folder is not None:
                    st = os.statvfs(folder)
                    if st.f_bavail * st.f_frsize < 4 * nbytes:  # a small /dev/shm (containers): not there
                        continue
                # named after the process that makes it: a file left by a killed run says whose it was
                fd, path = tempfile.mkstemp(prefix=f"instrec-rows-{os.getpid()}-", suffix=".buf", dir=folder)
                try:
                    os.ftruncate(fd, nbytes)
                finally:
                    os.close(fd)
                try:
                    return cls(path, n_slots, size, dim, np.dtype(dtype))
                except Exception:
                    os.unlink(path)
                    raise
            except (OSError, ValueError):
                continue
        return None if shared_only else _NoSlots()

    def rows(self, slot: int) -> np.ndarray:
        return self.array[slot]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        mm = getattr(self.array, "_mmap", None)
        self.array = None
        if mm is not None:
            try:
                mm.close()
            except BufferError:  # a caller still holds a row view: the mapping goes with it
                pass
        self.release()

    def release(self) -> None:
        """Remove the file; the mapping stays for as long as an array uses it."""
        try:
            os.unlink(self.path)
        except OSError:
            pass


class _NoSlots:
    """No shared buffer could be made: rows come back pickled with the results."""

    path = None

    def __enter__(self):
        return None

    def __exit__(self, *exc):
        pass


def pool_context(config: FeatureConfig | None = None):
    method = os.environ.get(START_ENV)
    available = multiprocessing.get_all_start_methods()
    if method:
        if method not in available:
            raise ParameterError(f"${START_ENV} must be one of {', '.join(available)}; got {method!r}")
    else:
        method = "forkserver" if "forkserver" in available else "spawn"
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        # Import and warm the feature code once in the server; every worker forks from it ready to
        # go. (The server starts with the first pool of the process: that pool's kind decides.)
        image = config is not None and config.kind == "image"
        ctx.set_forkserver_preload(["instrec.features._preload_image" if image else "instrec.features._preload"])
    return ctx


def init_worker() -> None:
    """A worker's setup: one thread for BLAS/OpenMP (the pool already fills the cores) and the
    malloc settings of :func:`instrec.memory.keep_heap`."""
    global _worker_limits
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    try:
        from threadpoolctl import threadpool_limits

        _worker_limits = threadpool_limits(limits=1)
    except Exception:  # threadpoolctl missing or failing: only a little slower
        _worker_limits = None
    keep_heap()


_blas = None


def _one_blas_thread():
    """A context holding BLAS to one thread: computing one file's feature, more threads only wait
    on each other (the image's dense mel product runs 3x slower with 2 on a busy 2-core machine)."""
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController

            _blas = ThreadpoolController()
        except Exception:
            _blas = False
    if _blas is False:
        import contextlib

        return contextlib.nullcontext()
    return _blas.limit(limits=1, user_api="blas")
