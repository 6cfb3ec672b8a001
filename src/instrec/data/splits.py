"""Train/test splits. The tutorial's is a random 80/20 split with ``random_state=0``."""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np

from ..errors import DataError, ParameterError

SPLIT_METHODS = ("random", "stratified")


def split_indices(
    labels: Sequence[str],
    *,
    method: str = "random",
    test_size: float = 0.2,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training and test clips.

    ``random`` is ``sklearn.model_selection.train_test_split(..., test_size, random_state=seed)``,
    exactly the tutorial's call; ``stratified`` keeps class proportions on both sides.
    """
    from sklearn.model_selection import train_test_split

    if method not in SPLIT_METHODS:
        raise ParameterError(f"split must be one of {', '.join(SPLIT_METHODS)}; got {method!r}")
    if not 0.0 < test_size < 1.0:
        raise ParameterError(f"test_size must be between 0 and 1, got {test_size}")
    n = len(labels)
    idx = np.arange(n)
    n_test = int(np.ceil(test_size * n))
    if n_test < 1 or n - n_test < 1:
        raise DataError(f"{n} clips are too few to split {1 - test_size:.0%}/{test_size:.0%}")
    stratify = None
    if method == "stratified":
        least = min(Counter(labels).values())
        if least < 2:
            raise DataError("a stratified split needs at least 2 clips of every class")
        stratify = list(labels)
    train, test = train_test_split(idx, test_size=test_size, random_state=seed, stratify=stratify)
    return np.asarray(train), np.asarray(test)
