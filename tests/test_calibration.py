"""Temperature scaling and the doubt threshold chosen on validation rows (instrec.calibration)."""

import numpy as np
import pytest

from instrec.calibration import calibrate, choose_min_confidence, fit_temperature, nll


def _overconfident(n=400, k=4, seed=0):
    """Rows whose true class wins only 70% of the time, each answered with ~99% confidence."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    guess = np.where(rng.random(n) < 0.7, y, (y + rng.integers(1, k, n)) % k)
    logits = rng.normal(0, 0.5, (n, k))
    logits[np.arange(n), guess] += 6.0
    P = np.exp(logits - logits.max(1, keepdims=True))
    return (P / P.sum(1, keepdims=True)).astype(np.float32), y


def test_temperature_fit_reduces_nll_and_keeps_the_answers():
    P, y = _overconfident()
    t = fit_temperature(P, y)
    assert t > 1.5  # over-confident: the temperature softens
    assert nll(P, y, t) < nll(P, y) - 0.3
    Q = calibrate(P, t)
    assert np.array_equal(Q.argmax(1), P.argmax(1)) and np.allclose(Q.sum(1), 1, atol=1e-5)
    assert Q.max(1).mean() < P.max(1).mean()
    assert Q.dtype == np.float32 and np.isfinite(Q).all()


def test_temperature_one_or_none_changes_nothing():
    P, y = _overconfident(50)
    assert calibrate(P, None) is P and calibrate(P, 1.0) is P
    assert fit_temperature(P[:0], y[:0]) == 1.0
    # well calibrated already (labels drawn from the probabilities): T stays near 1
    rng = np.random.default_rng(1)
    P = rng.dirichlet(np.ones(3), size=4000)
    y = np.array([rng.choice(3, p=p) for p in P])
    assert fit_temperature(P, y) == pytest.approx(1.0, abs=0.1)


def test_zero_probabilities_stay_finite():
    P = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32)
    Q = calibrate(P, 3.0)
    assert np.isfinite(Q).all() and np.array_equal(Q.argmax(1), [0, 1])


def test_threshold_rejects_at_most_five_percent_of_known_rows():
    classes = ["a", "b", "unknown"]
    top = np.linspace(0.55, 0.99, 40)  # 40 known rows: 5% is 2
    P = np.stack([top, 1 - top, np.zeros(40)], axis=1)
    y = np.zeros(40, dtype=int)
    t, n = choose_min_confidence(P, y, classes)
    assert n == 40 and t == pytest.approx(top[2])  # the largest rejecting 2 rows: the 3rd lowest top probability
    assert (P.max(1) < t).sum() == 2
    # rows answered 'unknown' by the class spend the budget first; unknown rows are not counted
    P2 = np.concatenate([P, [[0.1, 0.1, 0.8]], [[0.0, 0.1, 0.9]] * 5])
    y2 = np.concatenate([y, [0], [2] * 5])
    t2, n2 = choose_min_confidence(P2, y2, classes)
    assert n2 == 41 and t2 == pytest.approx(top[1])
    # fewer than 20 known rows: no threshold
    assert choose_min_confidence(P[:19], y[:19], classes) == (None, 19)
    assert choose_min_confidence(P[:0], y[:0], classes) == (None, 0)
