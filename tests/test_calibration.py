"""Temperature scaling and the doubt threshold chosen on validation rows (instrec.calibration)."""

import numpy as np
import pytest

from instrec.calibration import (THRESHOLD_RANGE, calibrate, choose_min_confidence, choose_thresholds, fit_temperature,
                                 has_own_threshold, nll)
from instrec.errors import ParameterError


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


def test_choose_thresholds_separates_separable_classes():
    # class 0 splits between .35 and .45; class 1 has two positives only; classes 2 and 3 split beyond the range
    Y = np.array([[0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 1], [0, 1, 0, 1], [1, 1, 0, 1],
                  [1, 0, 1, 0], [1, 0, 1, 0], [1, 0, 1, 0], [1, 0, 1, 0], [1, 0, 1, 0]])
    p0 = [.1, .2, .3, .35, .45, .5, .5, .7, .9, .9]
    P = np.stack([p0, np.linspace(0, 1, 10), [.97] * 5 + [.99] * 5, [.03] * 5 + [.01] * 5], axis=1)
    t = choose_thresholds(Y, P)
    assert t[0] == pytest.approx(0.4) and t[1] == 0.5
    assert t[2] == THRESHOLD_RANGE[1] and t[3] == THRESHOLD_RANGE[0]  # .98 and .02, clipped
    assert ((P[:, 0] >= t[0]) == Y[:, 0]).all()
    # allowed two positives (rows 3 and 4 of 0, 1/9, ..., 1), class 1 is best cut below them: F1 4/9
    assert choose_thresholds(Y, P, min_positives=2)[1] == pytest.approx(5 / 18)
    assert choose_thresholds(Y, P, min_positives=7, default=0.3).tolist() == [0.3] * 4  # class 0 has 6
    assert choose_thresholds(np.ones((6, 1)), np.full((6, 1), .8))[0] == 0.5  # no negative row
    # a threshold for each class that cannot choose: a model's own, kept
    assert choose_thresholds(Y, P, default=[.11, .22, .33, .44]).tolist() == [pytest.approx(0.4), .22,
                                                                                THRESHOLD_RANGE[1], THRESHOLD_RANGE[0]]
    assert has_own_threshold(Y).tolist() == [True, False, True, True]
    assert has_own_threshold(Y, min_positives=2).tolist() == [True, True, True, True]


def test_choose_thresholds_breaks_ties_toward_the_higher_cut():
    # + - - +: every row positive (cut .2) and only the top row (cut .7) both give F1 2/3
    t = choose_thresholds(np.array([[1], [0], [0], [1]]), np.array([[.2], [.4], [.6], [.8]]), min_positives=2)
    assert t.tolist() == [pytest.approx(0.7)]


def test_choose_thresholds_stays_in_range_and_checks_input():
    rng = np.random.default_rng(0)
    Y = (rng.random((200, 6)) < 0.3).astype(int)
    P = np.clip(0.6 * Y + rng.normal(0.2, 0.25, Y.shape), 0, 1)
    t = choose_thresholds(Y, P)
    assert t.shape == (6,) and ((t >= 0.05) & (t <= 0.95)).all()
    with pytest.raises(ParameterError):
        choose_thresholds(Y, P[:, :5])
    P[0, 0] = np.nan
    with pytest.raises(ParameterError):
        choose_thresholds(Y, P)


def test_temperature_is_the_grid_minimum_and_stays_bounded_on_edge_data():
    from instrec.calibration import T_RANGE

    grid = np.geomspace(*T_RANGE, 801)
    for seed, scale in ((0, 0.3), (1, 3.0), (2, 8.0)):  # under-, mildly and over-confident logits
        rng = np.random.default_rng(seed)
        y = rng.integers(0, 3, 200)
        L = rng.normal(0, scale, (200, 3))
        L[np.arange(200), y] += 1.0
        P = np.exp(L - L.max(1, keepdims=True))
        P /= P.sum(1, keepdims=True)
        best = min(nll(P, y, t) for t in grid)
        assert nll(P, y, fit_temperature(P, y)) <= best + 1e-6
    # all identical probabilities: nothing beats T = 1; perfectly separable: finite, within range, NLL ~ 0
    assert fit_temperature(np.full((10, 3), 1 / 3), np.arange(10) % 3) == 1.0
    P, y = np.eye(3)[[0, 1, 2, 0]] * 0.9 + 0.05, [0, 1, 2, 0]
    t = fit_temperature(P, y)
    assert T_RANGE[0] <= t < 1 and np.isfinite(t) and nll(P, y, t) < 1e-6
