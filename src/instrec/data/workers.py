"""Rendering on this machine's cores: ``render(jobs=N)`` and ``render_music(jobs=N)``.

Each worker process builds one stateful callable (``factory(*args)``: its libraries opened once, its
scores read once) and calls it on the items it is handed; the results come back in the items' order,
so the caller writes and lists them exactly as a run in one process does. Workers are spawned (no
copy of the caller's open synthesisers or threads) and ignore Ctrl-C: the caller stops them.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Callable, Iterable, Iterator

IN_FLIGHT = 8  # items handed out per worker ahead of the one awaited: excerpts take 0.3-10 s (a chorale, a quartet), and a slow one must not leave the other workers idle

_state: Callable | None = None  # the worker's callable, made by _start


def _start(factory: Callable, args: tuple) -> None:
    global _state
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's to handle: it stops the pool
    _state = factory(*args)


def _call(item):
    return _state(item)


def ordered_map(factory: Callable, args: tuple, items: Iterable, *, jobs: int) -> Iterator:
    """``factory(*args)(item)`` for each item, in ``jobs`` spawned processes, in the items' order.

    At most ``IN_FLIGHT * jobs`` items are handed out ahead of the one awaited, so memory stays
    bounded however many there are. An item's exception is raised here, as it was raised there.
    Closing the iterator early (Ctrl-C here, an exception) stops the workers at once: when it
    returns, none is running (so the caller may clean up what they left half-written).
    """
    items = iter(items)
    pending: deque[Future] = deque()
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_start,
                               initargs=(factory, args))
    try:
        for item in items:
            pending.append(pool.submit(_call, item))
            if len(pending) >= IN_FLIGHT * jobs:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        if pending:  # stopped early: what runs is not waited for
            _terminate(pool)
        pool.shutdown(wait=True, cancel_futures=True)


def _terminate(pool: ProcessPoolExecutor) -> None:
    stop = getattr(pool, "terminate_workers", None)  # Python >= 3.14
    if stop is not None:
        stop()
        return
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        process.terminate()
    for process in processes:
        process.join()
