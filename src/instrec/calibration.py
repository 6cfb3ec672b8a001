"""Calibration chosen at the end of training, on the validation rows the training loop held back.

**Temperature scaling**: one number ``T`` divides the network's logits, ``softmax(z / T)``, chosen
to minimise the negative log-likelihood of the validation rows. Since ``log p = z - logsumexp(z)``,
``p ∝ p_raw ** (1 / T)`` is the same thing computed from probabilities, so it applies to either
engine's output (PyTorch's softmax, an ONNX graph's) without touching the network. The order of
the classes, and so the answer, does not change.

**min_confidence**: the doubt threshold (see :func:`instrec.decision.decide`), the largest that
rejects at most ``max_rejected`` (5%) of the validation clips of known classes, counting those
whose likeliest class is ``unknown`` too; none is chosen on fewer than 20 such clips (5% of them
would be less than one clip: the threshold would be the least confident clip's probability).

**Per-class thresholds** (multi-label models, one sigmoid per instrument): :func:`choose_thresholds`
gives each class the decision threshold that maximises its F1 on the validation rows, within
:data:`THRESHOLD_RANGE`; classes with too few positives keep the default.

Numpy and scipy only: prediction with onnxruntime uses :func:`calibrate` without torch.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .decision import UNKNOWN
from .errors import ParameterError

# Temperatures searched, and allowed in model.json (assets/model.schema.json says the same).
T_RANGE = (0.05, 20.0)
MAX_REJECTED = 0.05  # known-class validation clips a threshold may reject
MIN_ROWS = 20  # known-class validation clips needed to choose a threshold
THRESHOLD_RANGE = (0.05, 0.95)  # per-class thresholds are clipped to it
MIN_POSITIVES = 5  # positive validation rows a class needs for its own threshold
_TINY = np.finfo(np.float32).tiny  # a float32 softmax's smallest positive value


def _log(proba: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(np.asarray(proba, dtype=np.float64), _TINY))


def calibrate(proba: np.ndarray, temperature: float | None) -> np.ndarray:
    """Probabilities ``(n, k)`` at ``temperature``: rows ``∝ proba ** (1 / T)``, as float32.

    ``None`` or 1 returns ``proba`` untouched (bit for bit: models without a temperature answer as
    they always did)."""
    if temperature is None or temperature == 1.0 or not len(proba):
        return proba
    z = _log(proba) / float(temperature)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def nll(proba: np.ndarray, y: Sequence[int], temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the true classes ``y`` (column indices) at ``temperature``."""
    z = _log(proba) / temperature
    z -= z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(z)), np.asarray(y, dtype=np.int64)].mean())


def fit_temperature(proba: np.ndarray, y: Sequence[int]) -> float:
    """The temperature in :data:`T_RANGE` that minimises :func:`nll` of ``y`` under ``proba``
    (bounded Brent search on log T; 1.0 when nothing beats it, or without rows)."""
    from scipy.optimize import minimize_scalar

    proba = np.asarray(proba)
    if not len(proba):
        return 1.0
    res = minimize_scalar(lambda s: nll(proba, y, math.exp(s)), bounds=tuple(math.log(t) for t in T_RANGE),
                          method="bounded", options={"xatol": 1e-4})
    # Brent stops xatol short of a bound; a minimum at the bound (separable or near-random rows) is the bound
    t = min((float(math.exp(res.x)), *T_RANGE), key=lambda c: nll(proba, y, c))
    return t if nll(proba, y, t) < nll(proba, y, 1.0) else 1.0


def choose_min_confidence(proba: np.ndarray, y: Sequence[int], classes: Sequence[str],
                          max_rejected: float = MAX_REJECTED, min_rows: int = MIN_ROWS) -> tuple[float | None, int]:
    """The largest threshold that answers ``unknown`` for at most ``max_rejected`` of the rows of
    known classes (``y`` not ``unknown``): ``(threshold, rows of known classes)``.

    A known row is rejected when its likeliest class is ``unknown`` or its top probability is
    below the threshold; the threshold is the top probability of the first row beyond the budget,
    so exactly the budget's rows (or fewer) lie below it. ``(None, n)`` with fewer than ``min_rows``
    known rows; 0.0 when the ``unknown`` class alone spends the budget.
    """
    classes = list(classes)
    proba = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    known = np.array([classes[i] != UNKNOWN for i in y], dtype=bool) if len(y) else np.zeros(0, bool)
    n = int(known.sum())
    if not n or n < min_rows:
        return None, n
    P = proba[known]
    top = P.argmax(axis=1)
    as_unknown = np.array([classes[i] == UNKNOWN for i in top], dtype=bool)
    budget = int(math.floor(max_rejected * n + 1e-9)) - int(as_unknown.sum())
    if budget < 0:
        return 0.0, n
    confident = np.sort(P.max(axis=1)[~as_unknown])
    return float(confident[min(budget, len(confident) - 1)]), n


def rejected(proba: np.ndarray, classes: Sequence[str], min_confidence: float) -> np.ndarray:
    """True for each row whose answer is ``unknown`` (see :func:`instrec.decision.decide`)."""
    proba = np.asarray(proba)
    top = proba.argmax(axis=1)
    return (np.asarray(classes)[top] == UNKNOWN) | (proba.max(axis=1) < min_confidence)


def has_own_threshold(Y, *, min_positives: int = MIN_POSITIVES) -> np.ndarray:
    """For each class (column of the 0/1 matrix ``Y``), whether its rows choose a threshold of its
    own: at least ``min_positives`` positive rows and one negative."""
    Y = np.asarray(Y, dtype=np.float64)
    pos = Y.sum(axis=0)
    return (pos >= max(1, min_positives)) & (pos < len(Y))


def choose_thresholds(Y, P, *, min_positives: int = MIN_POSITIVES, default=0.5) -> np.ndarray:
    """Per-class decision thresholds ``(k,)`` for independent probabilities ``P`` and 0/1 labels
    ``Y`` (both ``(n, k)``, validation rows): a row has class ``j`` when ``P[:, j] >= threshold[j]``.

    Each class gets the cut that maximises its F1 among the midpoints between its distinct
    probabilities (and its lowest probability: every row positive), so the threshold sits in a gap
    rather than on a row's value; on a tie the highest such cut wins (fewer false positives for
    the same F1). The result is clipped to :data:`THRESHOLD_RANGE`. A class with fewer than
    ``min_positives`` positive rows, or without a negative row, gets ``default`` (unclipped): one
    threshold for all, or one per class (a model's own, kept where the rows cannot choose).
    :func:`has_own_threshold` tells which classes the rows chose for.

    Raises ParameterError when the shapes disagree, ``Y`` is not 0/1 or ``P`` is not finite.
    """
    Y = np.asarray(Y, dtype=np.float64)
    P = np.asarray(P, dtype=np.float64)
    if Y.ndim != 2 or P.shape != Y.shape:
        raise ParameterError(f"Y and P must be matrices of one shape (rows, classes), got {Y.shape} and {P.shape}")
    if not np.isfinite(P).all() or not np.isin(Y, (0.0, 1.0)).all():
        raise ParameterError("P must be finite and Y must hold only 0 and 1")
    n, k = Y.shape
    out = np.array(np.broadcast_to(np.asarray(default, dtype=np.float64), (k,)))
    for j in np.flatnonzero(has_own_threshold(Y, min_positives=min_positives)):
        pos = int(Y[:, j].sum())
        order = np.argsort(P[:, j], kind="stable")
        p, y = P[order, j], Y[order, j]
        u = np.unique(p)
        cuts = np.concatenate([u[:1], (u[:-1] + u[1:]) / 2])
        first = np.searchsorted(p, cuts, side="left")  # rows from here on are predicted positive
        tp = pos - np.concatenate([[0.0], np.cumsum(y)])[first]
        f1 = 2 * tp / ((n - first) + pos)
        best = len(cuts) - 1 - int(np.argmax(f1[::-1]))  # the last maximum: the highest cut
        out[j] = float(np.clip(cuts[best], *THRESHOLD_RANGE))
    return out
