"""instrec.evaluate's figures against scikit-learn's and hand-computed ones, on random and on edge inputs."""

import json
import warnings

import numpy as np
import pytest
from sklearn.metrics import (accuracy_score, average_precision_score, confusion_matrix, f1_score,
                             precision_recall_fscore_support, roc_auc_score)

from instrec.evaluate import compute_metrics, frame_scores, multilabel_metrics, report_markdown, write_report


def _ece(conf, right, bins=15):
    """ECE by hand over [0, 1/bins), ..., [(bins-1)/bins, 1]."""
    conf, right = np.asarray(conf, float), np.asarray(right, float)
    e = 0.0
    for b in range(bins):
        m = (conf >= b / bins) & ((conf < (b + 1) / bins) if b < bins - 1 else (conf <= 1))
        e += m.sum() / len(conf) * abs(right[m].mean() - conf[m].mean()) if m.any() else 0.0
    return e


def test_single_label_figures_match_scikit_learn_on_random_and_tied_inputs():
    rng = np.random.default_rng(0)
    for it in range(80):
        k, n = int(rng.integers(1, 5)), int(rng.integers(1, 25))
        classes = [f"c{i}" for i in range(k - 1)] + ["unknown" if it % 4 == 0 else f"c{k - 1}"]
        # rows of exact 0/1, of ties (a row of zeros too), or random
        P = [np.eye(k)[rng.integers(0, k, n)], rng.integers(0, 3, (n, k)) / 2, rng.dirichlet(np.ones(k), n)][it % 3]
        y = list(rng.choice(classes + ["zither"], n))
        m = compute_metrics(y, P, classes, min_confidence=0.5 if it % 2 else None)
        keep = [t in classes for t in y]
        yt, Pk = [t for t in y if t in classes], P[keep]
        if not yt:
            assert m["accuracy"] is None and m["n"] == 0
            continue
        yp = [classes[i] for i in Pk.argmax(1)]  # the likeliest class, the first on a tie
        assert m["accuracy"] == accuracy_score(yt, yp)
        with warnings.catch_warnings():  # scikit-learn's "A single label was found": its matrix is still right
            warnings.simplefilter("ignore", UserWarning)
            assert m["confusion_matrix"] == confusion_matrix(yt, yp, labels=classes).tolist()
        assert m["macro_f1"] == pytest.approx(f1_score(yt, yp, average="macro", zero_division=0), abs=1e-12)
        present = sorted(set(yt))
        aucs = [roc_auc_score([t == c for t in yt], Pk[:, classes.index(c)]) for c in present if len(present) > 1]
        assert m["roc_auc_ovr_macro"] == (pytest.approx(np.mean(aucs), abs=1e-12) if aucs else None)
        assert m["ece"] == pytest.approx(_ece(Pk.max(1), np.array(yp) == np.array(yt)), abs=1e-12)
        assert m["unknown_classes"] == ({"zither": y.count("zither")} if "zither" in y else {})


def test_multilabel_and_frame_figures_match_scikit_learn_on_random_inputs():
    rng = np.random.default_rng(1)
    for it in range(80):
        k, n = int(rng.integers(2, 5)), int(rng.integers(1, 20))
        Y = (rng.random((n, k)) < rng.random()).astype(int)  # rows without an instrument among them
        P = rng.choice([0, .25, .5, .75, 1.0], (n, k)) if it % 2 else rng.random((n, k))  # ties, thresholds hit
        t = rng.choice([.25, .5, .75], k)
        pred = (P >= t).astype(int)
        m = multilabel_metrics(Y, P, [str(j) for j in range(k)], t)
        for j in range(k):
            want = average_precision_score(Y[:, j], P[:, j]) if 0 < Y[:, j].sum() < n else None
            assert m["average_precision"][str(j)] == (None if want is None else pytest.approx(want, abs=1e-12))
        p, r, f, s = precision_recall_fscore_support(Y, pred, average=None, zero_division=0)
        assert [m["per_class"][str(j)]["f1"] for j in range(k)] == pytest.approx(f, abs=1e-12)
        assert [m["per_class"][str(j)]["support"] for j in range(k)] == s.tolist()
        if Y.any() or pred.any():
            assert m["micro_f1"] == pytest.approx(f1_score(Y, pred, average="micro"), abs=1e-12)
            assert frame_scores(Y, pred)["f1"] == pytest.approx(m["micro_f1"], abs=1e-12)
        scored = (s > 0) | pred.any(axis=0)  # present or predicted: false alarms count, as in single-label
        assert m["macro_f1"] == (pytest.approx(f[scored].mean(), abs=1e-12) if scored.any() else None)
        assert m["exact_match"] == accuracy_score(Y, pred)


def test_one_instrument_is_scored_as_that_instrument_not_as_a_binary_task():
    """Review: a (clips, 1) matrix was taken by scikit-learn for a binary task of labels 0 and 1:
    the one instrument's "support" counted its absent clips and its F1 was that of absence."""
    Y, P = np.array([[1], [0], [0], [0]]), np.array([[.9], [.2], [.1], [.3]])
    m = multilabel_metrics(Y, P, ["cello"], thresholds=0.25)  # predicted: clips 0 and 3
    assert m["per_class"]["cello"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "support": 1,
                                       "threshold": 0.25}
    assert m["micro_f1"] == pytest.approx(2 / 3) and m["macro_f1"] == pytest.approx(2 / 3)
    s = frame_scores([[1], [1], [0]], [[0], [1], [1]], classes=["cello"])  # tp 1, fp 1, fn 1
    assert (s["precision"], s["recall"], s["f1"], s["per_class"]) == (0.5, 0.5, 0.5, {"cello": 0.5})


def test_nothing_active_nor_predicted_has_no_micro_score():
    """Review: silent frames, rightly predicted silent, scored F1 0.0 (with exact match 100%) while
    every class said "nothing to score"."""
    s = frame_scores(np.zeros((5, 2)), np.zeros((5, 2)))
    assert s["frames"] == 5 and s["f1"] is None and s["precision"] is None and s["per_class"] == {0: None, 1: None}
    m = multilabel_metrics(np.zeros((3, 2)), np.full((3, 2), .1), ["a", "b"])
    assert m["exact_match"] == 1.0 and m["micro_f1"] is None and m["macro_f1"] is None
    # a false alarm in silence is scored: F1 0
    assert frame_scores(np.zeros((2, 1)), [[0], [1]])["f1"] == 0.0


def test_multilabel_report_lists_what_was_not_scored(tmp_path):
    """Review: metrics.json of a multi-label evaluation named the instruments the model does not
    know; report.md left them out."""
    m = multilabel_metrics(np.array([[1, 0], [0, 1]]), np.array([[.9, .1], [.2, .8]]), ["a", "b"])
    m["unknown_classes"] = {"kazoo": 2}
    write_report(tmp_path / "r", m, title="t", context={})
    md = (tmp_path / "r" / "report.md").read_text()
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["unknown_classes"] == {"kazoo": 2}
    assert "that the model does not know (not scored): kazoo (2)" in md


def test_report_says_how_clips_answered_unknown_are_counted_at_both_levels():
    """Accuracy and the confusion matrix score the likeliest class of every clip; the report says
    so, and gives the family level's own count of unknown answers as metrics.json does."""
    classes, fams = ["cello", "viola", "flute"], {"strings": ["cello", "viola"], "winds": ["flute"]}
    m = compute_metrics(["cello", "viola", "flute"], np.array([[.4, .35, .25], [.3, .6, .1], [.1, .1, .8]]), classes,
                        families=fams, min_confidence=0.5)
    assert m["accuracy"] == 1.0 and m["doubt"]["answered_unknown"] == 1  # cello's clip: .4 < .5
    assert m["family"]["doubt"]["answered_unknown"] == 0  # strings .75
    md = report_markdown(m, title="t", context={})
    assert "likeliest class of every clip, answered unknown or not" in md
    family = md.split("## Family level")[1]
    assert "Answered unknown" in family and "0 of 3 clips" in family
