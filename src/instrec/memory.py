"""glibc malloc settings, in one place: each does nothing where the C library is not glibc.

Extraction keeps freed scratch memory in the heap (:func:`keep_heap`); a long-running service
limits the number of malloc arenas (:func:`limit_arenas`) and hands freed memory back after each
job (:func:`give_back`).
"""

from __future__ import annotations

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

_libc = None
_heap_kept = False


def _glibc():
    """glibc through ctypes, or ``False`` where the C library is another."""
    global _libc
    if _libc is None:
        try:
            import ctypes

            _libc = ctypes.CDLL("libc.so.6")
            _libc.mallopt  # noqa: B018 (another C library: AttributeError)
            _libc.malloc_trim  # noqa: B018
        except (ImportError, OSError, AttributeError):  # no ctypes, no libc.so.6, or not glibc
            _libc = False
    return _libc


def keep_heap() -> None:
    """Keep freed memory in the heap, once per process: a feature's scratch arrays (a few MB)
    would otherwise be mapped and unmapped, page fault by page fault, for every file (one MFCC:
    1.8 ms instead of 1.0). At most 64 MB of freed memory is kept."""
    global _heap_kept
    libc = _glibc()
    if _heap_kept or not libc:
        return
    _heap_kept = True
    libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)  # blocks up to 32 MB come from the heap
    libc.mallopt(_M_TRIM_THRESHOLD, 64 << 20)  # keep up to 64 MB free at its top


def limit_arenas(n: int = 1) -> bool:
    """Let at most ``n`` malloc arenas exist from now on (glibc's default is 8 a core).

    A service decodes and predicts in several threads; each thread that allocates while another
    holds an arena gets an arena of its own, and glibc never gives an arena's high-water mark back
    whole. Under the soak benchmark's decode bombs the service grew 59% with the default, 26% with
    two arenas and 7% with one (benchmarks/RESULTS.md). Returns whether the setting took.
    """
    libc = _glibc()
    return bool(libc) and libc.mallopt(_M_ARENA_MAX, int(n)) == 1


def give_back() -> None:
    """Hand memory that was freed back to the system (glibc keeps freed blocks in each arena)."""
    libc = _glibc()
    if libc:
        libc.malloc_trim(0)
