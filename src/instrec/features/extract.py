"""Features of many files: all rows in one matrix (:func:`extract`) or one row at a time (:func:`iter_features`)."""

from __future__ import annotations

import os
from typing import Callable, Iterator, Sequence

import numpy as np

from .compute import compact_dtype, expand
from .config import FeatureConfig

def iter_features(
    paths: Sequence[str | os.PathLike],
    config: FeatureConfig,
    *,
    jobs: int | None = None,
    cache=False,
) -> Iterator[tuple[int, np.ndarray | None, tuple[str, str] | None]]:
    """Features of many files, one at a time, in the order of ``paths``: memory stays flat.

    Yields ``(index, row, None)`` for each usable file (``row``: float32 ``(config.dim,)``) and
    ``(index, None, (path, problem))`` for each file that could not be used. ``jobs`` and ``cache``
    as for :func:`extract`.
    """
    from .parallel import iter_compact

    for i, row, skip in iter_compact(paths, config, jobs=jobs, cache=cache):
        yield i, (None if row is None else expand(row, config)), skip


def extract(
    paths: Sequence[str | os.PathLike],
    config: FeatureConfig,
    *,
    jobs: int | None = None,
    cache=False,
    compact: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """Features of many files; a file that fails is skipped and reported, the rest go on.

    Parameters
    ----------
    jobs : worker processes; ``None`` or ``0``: one per core, ``1``: in this process
    cache : ``True``: the feature cache in its default folder (see :mod:`instrec.features.cache`);
        a folder or a :class:`~instrec.features.cache.FeatureCache`; ``False``: none
    compact : return the rows in :func:`compact_dtype` (the image's uint8 pixels: a quarter of the
        memory; :class:`~instrec.classifier.InstrumentClassifier` takes them as they are)
    progress : called ``progress(done, total)`` as files are done

    Returns
    -------
    X : float32 (or, with ``compact``, :func:`compact_dtype`) array ``(n_ok, config.dim)``, rows in
        the order of ``paths``; with worker processes, the shared memory they wrote the rows into
        (an ordinary writable array to the caller, freed with it)
    ok : indices into ``paths`` of the rows of ``X``
    skipped : ``(path, problem)`` for each file that could not be used
    """
    from .parallel import extract_compact, iter_compact

    if compact or compact_dtype(config) == np.float32:  # the compact rows are the result
        return extract_compact(paths, config, jobs=jobs, cache=cache, progress=progress)
    X = np.empty((len(paths), config.dim), dtype=np.float32)
    ok, skipped = [], []
    for done, (i, row, skip) in enumerate(iter_compact(paths, config, jobs=jobs, cache=cache), 1):
        if row is None:
            skipped.append(skip)
        else:
            expand(row, config, out=X[len(ok)])
            ok.append(i)
        if progress:
            progress(done, len(paths))
    return X[: len(ok)], np.asarray(ok, dtype=np.int64), skipped
