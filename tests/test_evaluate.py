import json

import numpy as np
import pytest

from instrec.errors import ParameterError
from instrec.evaluate import (compute_metrics, frame_scores, multilabel_markdown_lines, multilabel_metrics,
                              write_report)


def test_metrics_known_example():
    classes = ["a", "b", "c"]
    y = ["a", "a", "b", "b", "c", "c"]
    p = np.array([[.8, .1, .1], [.4, .5, .1], [.1, .8, .1], [.2, .7, .1], [.1, .1, .8], [.3, .3, .4]])
    m = compute_metrics(y, p, classes)
    assert m["n"] == 6
    assert m["accuracy"] == 5 / 6
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [0, 0, 2]]
    assert m["per_class"]["a"] == {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2, "roc_auc": 1.0}
    assert abs(m["macro_f1"] - np.mean([2 / 3, 0.8, 1.0])) < 1e-12
    # every clip of each class scores that class higher than any other clip does: AUC exactly 1
    assert m["roc_auc_ovr_macro"] == 1.0


def test_auc_counts_ranked_pairs():
    """One-vs-rest AUC by hand: the share of (positive, negative) pairs ranked the right way."""
    classes = ["a", "b", "c"]
    y = ["a", "a", "b", "b", "c", "c"]
    p = np.array([[.6, .3, .1], [.2, .5, .3], [.3, .4, .3], [.5, .4, .1], [.1, .1, .8], [.3, .3, .4]])
    m = compute_metrics(y, p, classes)
    # a: positives .6 .2 against .3 .5 .1 .3 -> 4 + 1 of 8; b: .4 .4 against .3 .5 .1 .3 -> 3 + 3 of 8
    assert [m["per_class"][c]["roc_auc"] for c in classes] == [5 / 8, 6 / 8, 1.0]
    assert abs(m["roc_auc_ovr_macro"] - (5 / 8 + 6 / 8 + 1.0) / 3) < 1e-12
    assert m["accuracy"] == 4 / 6 and m["confusion_matrix"] == [[1, 1, 0], [1, 1, 0], [0, 0, 2]]


def test_unknown_classes_are_reported_not_scored():
    m = compute_metrics(["a", "b", "zither"], np.array([[.9, .1], [.2, .8], [.5, .5]]), ["a", "b"])
    assert m["n"] == 2 and m["accuracy"] == 1.0 and m["unknown_classes"] == {"zither": 1}


def test_one_class_data_has_no_auc_but_no_crash():
    m = compute_metrics(["a", "a"], np.array([[.9, .1], [.4, .6]]), ["a", "b"])
    assert m["accuracy"] == 0.5 and m["roc_auc_ovr_macro"] is None


def test_write_report(tmp_path):
    m = compute_metrics(["a", "b"], np.array([[.9, .1], [.2, .8]]), ["a", "b"])
    write_report(tmp_path / "r", m, title="t", context={"split": "x"}, skipped=[("f.wav", "silent")])
    saved = json.loads((tmp_path / "r" / "metrics.json").read_text())
    for key in ("accuracy", "macro_f1", "roc_auc_ovr_macro", "per_class", "confusion_matrix", "classes", "n"):
        assert key in saved
    assert (tmp_path / "r" / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (tmp_path / "r" / "report.md").read_text()
    assert "f.wav" in md and "silent" in md and "100.00%" in md
    assert not [p for p in (tmp_path / "r").iterdir() if p.name.startswith(".")]  # no temp files left


def test_expected_calibration_error_known_example():
    from instrec.evaluate import calibration_bins

    # bin [0.6, 0.667): confidences .6 .6 (one right): |0.5 - 0.6| ; bin [0.933, 1]: .95 1.0 (both right): |1 - .975|
    r = calibration_bins(np.array([0.6, 0.6, 0.95, 1.0]), np.array([True, False, True, True]))
    assert r["ece"] == pytest.approx((2 * 0.1 + 2 * 0.025) / 4)
    assert r["bins"] == 15 and sum(r["count"]) == 4 and r["count"][9] == 2 and r["count"][14] == 2
    assert r["accuracy"][9] == 0.5 and r["confidence"][14] == pytest.approx(0.975) and r["accuracy"][0] is None
    m = compute_metrics(["a", "b"], np.array([[.9, .1], [.2, .8]]), ["a", "b"])
    assert m["ece"] == pytest.approx(((1 - .9) + (1 - .8)) / 2)
    assert calibration_bins(np.zeros(0), np.zeros(0))["ece"] is None


def test_family_level_metrics_and_doubt():
    classes = ["cello", "flute", "oboe", "viola"]
    fams = {"bowed-strings": ["cello", "viola"], "woodwinds": ["flute", "oboe"]}
    y = ["cello", "viola", "flute", "oboe"]
    p = np.array([[.3, .2, .1, .4], [.6, .1, .1, .2], [.1, .3, .5, .1], [.1, .45, .45, 0.]])
    m = compute_metrics(y, p, classes, families=fams, min_confidence=0.5)
    assert m["accuracy"] == 0.0  # every instrument wrong, every family right
    f = m["family"]
    assert f["classes"] == ["bowed-strings", "woodwinds"] and f["accuracy"] == 1.0
    assert f["confusion_matrix"] == [[2, 0], [0, 2]] and f["n"] == 4 and "ece" in f
    # answered unknown below 0.5: cello's clip (.4) and oboe's (.45)
    assert m["doubt"]["answered_unknown"] == 2 and m["doubt"]["known_answered_unknown"] == 2
    assert "doubt" not in compute_metrics(y, p, classes)  # no threshold, no class unknown


def test_write_report_draws_families_and_reliability(tmp_path):
    m = compute_metrics(["a", "b", "c"], np.array([[.9, .1, 0], [.2, .7, .1], [.1, .1, .8]]), ["a", "b", "c"],
                        families={"ab": ["a", "b"], "c": ["c"]})
    write_report(tmp_path / "r", m, title="t", context={})
    for name in ("confusion_matrix.png", "family_confusion_matrix.png", "reliability.png"):
        assert (tmp_path / "r" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    md = (tmp_path / "r" / "report.md").read_text()
    assert "## Family level" in md and "reliability.png" in md and "ECE" in md
    saved = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert saved["family"]["accuracy"] == 1.0 and len(saved["reliability"]["count"]) == 15


# Four clips, three classes; c has no positive clip.
ML_CLASSES = ["a", "b", "c"]
ML_Y = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
ML_P = np.array([[.9, .2, .1], [.8, .6, .7], [.7, .4, .2], [.1, .3, .3]])


def test_multilabel_average_precision_by_hand():
    m = multilabel_metrics(ML_Y, ML_P, ML_CLASSES)
    # a ranks + - + -: precision 1 at the first positive, 2/3 at the second; b ranks + + - -: 1
    assert m["average_precision"]["a"] == pytest.approx(5 / 6, abs=1e-12)
    assert m["average_precision"]["b"] == 1.0
    assert m["average_precision"]["c"] is None  # no positive clip: undefined, and left out of the mean
    assert m["map"] == pytest.approx(11 / 12, abs=1e-12)
    assert m["n"] == 4 and m["classes"] == ML_CLASSES and m["thresholds"] == [0.5, 0.5, 0.5]
    assert json.loads(json.dumps(m)) == m and type(m["per_class"]["a"]["support"]) is int
    # no negative clip: undefined too; no AP at all gives no mean
    assert multilabel_metrics(np.ones((2, 1)), np.array([[.2], [.9]]), ["a"])["map"] is None


def test_multilabel_f1_at_one_half_by_hand():
    m = multilabel_metrics(ML_Y, ML_P, ML_CLASSES)
    # predicted at 0.5: a {0,1,2} (tp 2 fp 1), b {1} (tp 1 fn 1), c {1} (fp 1)
    assert m["per_class"]["a"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2,
                                                 "threshold": 0.5}, abs=1e-12)
    assert m["per_class"]["b"]["f1"] == pytest.approx(2 / 3, abs=1e-12)
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0, "threshold": 0.5}
    # micro: tp 3, fp 2, fn 1; macro over a, b and c: c has no positive clip, but a false alarm (F1 0)
    assert m["micro_precision"] == pytest.approx(3 / 5, abs=1e-12)
    assert m["micro_recall"] == pytest.approx(3 / 4, abs=1e-12)
    assert m["micro_f1"] == pytest.approx(2 / 3, abs=1e-12)
    assert m["macro_f1"] == pytest.approx((0.8 + 2 / 3 + 0) / 3, abs=1e-12)
    assert m["exact_match"] == 0.5  # clips 0 and 3


def test_multilabel_macro_f1_counts_false_alarms_of_an_instrument_the_data_lacks():
    """Review: an instrument absent from the data but heard in half the clips was left out of
    macro F1, which read 1.0 beside a micro F1 of 0.5; single-label macro F1 (scikit-learn's) and
    the frames' per-class F1 count such a class, with F1 0. One neither present nor heard has none."""
    Y = np.array([[1, 0, 0], [1, 0, 0], [0, 0, 0], [0, 0, 0]])
    P = np.array([[.9, .1, .1], [.9, .1, .1], [.1, .9, .1], [.1, .9, .1]])  # b heard twice, never there; c silent
    m = multilabel_metrics(Y, P, ["a", "b", "c"])
    assert m["micro_f1"] == pytest.approx(2 / 3) and m["macro_f1"] == pytest.approx(0.5)  # (1 + 0) / 2
    from sklearn.metrics import f1_score

    assert m["macro_f1"] == pytest.approx(f1_score(Y[:, :2], P[:, :2] >= .5, average="macro", zero_division=0))


def test_multilabel_thresholds_change_the_answers():
    m = multilabel_metrics(ML_Y, ML_P, ML_CLASSES, thresholds=[0.85, 0.35, 0.8])
    # a {0} (tp 1 fn 1), b {1,2} (both right), c none
    assert m["per_class"]["a"]["f1"] == pytest.approx(2 / 3, abs=1e-12) and m["per_class"]["b"]["f1"] == 1.0
    assert m["micro_f1"] == pytest.approx(6 / 7, abs=1e-12)  # tp 3, fp 0, fn 1
    assert m["macro_f1"] == pytest.approx(5 / 6, abs=1e-12)
    assert m["exact_match"] == 0.75 and m["thresholds"] == [0.85, 0.35, 0.8]
    assert m["per_class"]["b"]["threshold"] == 0.35
    assert m["average_precision"] == multilabel_metrics(ML_Y, ML_P, ML_CLASSES)["average_precision"]  # threshold-free
    # a probability equal to the threshold counts as the class
    assert multilabel_metrics(ML_Y, ML_P, ML_CLASSES, thresholds=0.9)["per_class"]["a"]["precision"] == 1.0


def test_multilabel_bad_input_is_a_parameter_error():
    with pytest.raises(ParameterError, match="shape"):
        multilabel_metrics(ML_Y, ML_P[:, :2], ML_CLASSES)
    with pytest.raises(ParameterError, match="columns"):
        multilabel_metrics(ML_Y, ML_P, ["a", "b"])
    P = ML_P.copy()
    P[1, 2] = np.nan
    with pytest.raises(ParameterError, match="not finite"):
        multilabel_metrics(ML_Y, P, ML_CLASSES)
    with pytest.raises(ParameterError, match="0 and 1"):
        multilabel_metrics(ML_Y * 2, ML_P, ML_CLASSES)
    with pytest.raises(ParameterError, match="thresholds"):
        multilabel_metrics(ML_Y, ML_P, ML_CLASSES, thresholds=[0.5, 0.5])


def test_multilabel_without_clips():
    m = multilabel_metrics(np.zeros((0, 2)), np.zeros((0, 2)), ["a", "b"])
    assert m["n"] == 0 and m["map"] is None and m["micro_f1"] is None and m["exact_match"] is None


def test_frame_scores_by_hand():
    A = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]])
    B = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
    s = frame_scores(A, B)
    # class 0: tp 1 fp 1 fn 1; class 1: both frames right; class 2: never active nor predicted
    assert s == {"frames": 4, "precision": 0.75, "recall": 0.75, "f1": 0.75, "per_class": {0: 0.5, 1: 1.0, 2: None}}
    assert frame_scores(A, B, classes=["x", "y", "z"])["per_class"] == {"x": 0.5, "y": 1.0, "z": None}
    assert frame_scores(A, np.zeros_like(A))["f1"] == 0.0
    with pytest.raises(ParameterError, match="shape"):
        frame_scores(A, B[:3])
    with pytest.raises(ParameterError, match="columns"):
        frame_scores(A, B, classes=["x"])
    with pytest.raises(ParameterError, match="0 and 1"):
        frame_scores(A, B * 0.5)


def test_multilabel_markdown_lines():
    lines = multilabel_markdown_lines(multilabel_metrics(ML_Y, ML_P, ML_CLASSES))
    # macro F1 0.4889: (0.8 + 0.6667 + 0) / 3, c heard once but never there
    assert lines[2] == "| 0.9167 | 0.6667 | 0.4889 | 50.00% | 4 |"
    assert "| a | 0.8333 | 0.8000 | 0.500 | 2 |" in lines and "| c | n/a | 0.0000 | 0.500 | 0 |" in lines


def test_macro_f1_counts_answers_into_classes_the_data_lacks():
    """Wrong answers into a class absent from the data lower macro F1, as scikit-learn's does (it
    once averaged the data's classes only: 0.73 against accuracy 60%)."""
    from sklearn.metrics import f1_score

    classes = ["cello", "flute", "trumpet"]
    y = ["cello", "cello", "trumpet", "trumpet", "cello"]
    pred = ["cello", "flute", "trumpet", "flute", "cello"]
    proba = np.array([[0.9 if c == p else 0.05 for c in classes] for p in pred])
    m = compute_metrics(y, proba, classes)
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"), abs=1e-12)
    assert m["macro_f1"] < m["accuracy"]


def test_evaluate_a_loaded_model_finds_its_held_back_split(tone_data, tmp_path):
    """A Model loaded from a folder scores the folder's held-back split on its training data, as
    the folder's path does; a classifier in memory (no record of the split) is scored on every clip
    and the figures are said to include training clips; so is a subfolder of the training data."""
    from instrec import load_model
    from instrec.pipeline import evaluate_model, train_model
    from instrec.recipes import get_recipe

    result = train_model(tone_data, recipe=get_recipe("seed-mfcc").with_overrides(epochs=40), out=tmp_path / "m", seed=0)
    by_path, _ = evaluate_model(tmp_path / "m", tone_data)
    loaded, _ = evaluate_model(load_model(tmp_path / "m"), tone_data, out=tmp_path / "rep")
    assert by_path["n"] == loaded["n"] == 6 and loaded["accuracy"] == by_path["accuracy"]
    context = json.loads((tmp_path / "rep" / "metrics.json").read_text())["context"]
    assert context["evaluated on"].startswith("held-back test split") and context["model"] == str(tmp_path / "m")
    restricted, _ = evaluate_model(load_model(tmp_path / "m", classes="sine,square"), tone_data)
    assert restricted["n"] + sum(restricted["left_out_by_classes"].values()) == 6
    assert restricted["unknown_classes"] == {} and "training_clips" not in restricted

    whole, _ = evaluate_model(result.model, tone_data, out=tmp_path / "rep2")
    assert whole["n"] == 30 and whole["training_clips"] == {"n": 30, "of": 30, "held_back_record": False}
    context = json.loads((tmp_path / "rep2" / "metrics.json").read_text())["context"]
    assert "30 of its 30 clips lie in the folder the model was trained on" in context["evaluated on"]
    assert "the figures include training clips" in context["evaluated on"]
    test = set(json.loads((tmp_path / "m" / "split.json").read_text())["test"])
    sines = [p for p in (tone_data / "sine").glob("*.wav")]
    part, _ = evaluate_model(tmp_path / "m", [tone_data / "sine", tone_data / "saw"])
    held = sum(str(p.resolve()) in test for p in [*sines, *(tone_data / "saw").glob("*.wav")])
    assert part["training_clips"] == {"n": 20 - held, "of": 20, "held_back_record": True}


def test_training_clips_are_found_in_a_folder_of_links(tone_data, tmp_path):
    """Review: in a folder of symbolic links (how data that may not be copied is used) no clip was
    found to lie where the model trained: evaluate and calibrate on a subfolder said nothing."""
    from instrec.pipeline import evaluate_model, train_model
    from instrec.recipes import get_recipe

    links = tmp_path / "links"
    for f in sorted(tone_data.rglob("*.wav")):
        (links / f.parent.name).mkdir(parents=True, exist_ok=True)
        (links / f.parent.name / f.name).symlink_to(f.resolve())
    train_model(links, recipe=get_recipe("mfcc-linear"), out=tmp_path / "m", seed=0)
    test = set(json.loads((tmp_path / "m" / "split.json").read_text())["test"])
    held = sum(str(p.resolve()) in test for p in (links / "sine").glob("*.wav"))
    part, _ = evaluate_model(tmp_path / "m", [links / "sine"])
    assert part["training_clips"] == {"n": 10 - held, "of": 10, "held_back_record": True}


def test_evaluate_data_without_a_class_the_model_knows_is_a_data_error(tone_data, tmp_path):
    import shutil

    from instrec.errors import DataError
    from instrec.pipeline import evaluate_model, train_model
    from instrec.recipes import get_recipe

    clf = train_model(tone_data, recipe=get_recipe("seed-mfcc").with_overrides(epochs=5), seed=0).model
    odd = tmp_path / "odd" / "violin"
    odd.mkdir(parents=True)
    for p in sorted((tone_data / "sine").glob("*.wav"))[:3]:
        shutil.copy(p, odd / p.name)
        (tmp_path / "sines" / "sine").mkdir(parents=True, exist_ok=True)
        shutil.copy(p, tmp_path / "sines" / "sine" / p.name)
    with pytest.raises(DataError, match="no clip of .* has a class the model knows") as e:
        evaluate_model(clf, tmp_path / "odd", out=tmp_path / "rep")
    assert "violin" in str(e.value) and "saw, sine, square" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(DataError, match="has one of the classes chosen"):
        evaluate_model(clf, odd.parent.parent / "sines", classes="saw,square")
    assert not (tmp_path / "rep").exists()


def test_evaluate_counts_only_scored_clips_and_lists_each_unscored_class_once(tone_data, tmp_path):
    """A clip of a class known but left out by ``classes``, and one of a class the model does not
    know, are each listed once (left_out_by_classes, unknown_classes) and not counted as scored."""
    import shutil

    from instrec.pipeline import evaluate_model, train_model
    from instrec.recipes import get_recipe

    clf = train_model(tone_data, recipe=get_recipe("seed-mfcc").with_overrides(epochs=2), seed=0).model
    data = tmp_path / "data"
    for kind, n in (("sine", 2), ("saw", 1)):
        for p in sorted((tone_data / kind).glob("*.wav"))[:n]:
            (data / kind).mkdir(parents=True, exist_ok=True)
            shutil.copy(p, data / kind / p.name)
    (data / "kazoo").mkdir()
    shutil.copy(sorted((tone_data / "square").glob("*.wav"))[0], data / "kazoo" / "k.wav")
    m, _ = evaluate_model(clf, data, classes="sine,square", out=tmp_path / "rep")
    assert m["n"] == 2 and m["left_out_by_classes"] == {"saw": 1} and m["unknown_classes"] == {"kazoo": 1}
    context = json.loads((tmp_path / "rep" / "metrics.json").read_text())["context"]
    assert context["clips"] == ("2 scored of 4: 1 of a class the model does not know, "
                                "1 left out by the classes chosen (--classes), 0 skipped")
    whole, _ = evaluate_model(clf, data, out=tmp_path / "rep2")
    assert whole["n"] == 3 and whole["unknown_classes"] == {"kazoo": 1} and "left_out_by_classes" not in whole
    context = json.loads((tmp_path / "rep2" / "metrics.json").read_text())["context"]
    assert context["clips"] == "3 scored of 4: 1 of a class the model does not know, 0 skipped"


def test_single_class_data_gives_no_scikit_learn_warning(recwarn):
    """One family holds every class: scikit-learn warned "A single label was found" on the family
    confusion matrix; the report says what holds, the warning only repeated it."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = compute_metrics(["a", "a"], np.array([[0.9, 0.1], [0.8, 0.2]]), ["a", "b"], families={"f": ["a", "b"]})
    assert m["family"]["confusion_matrix"] == [[2]] and m["family"]["accuracy"] == 1.0
    one = compute_metrics(["a", "a"], np.array([[1.0], [1.0]]), ["a"])
    assert one["confusion_matrix"] == [[2]] and not [w for w in recwarn if "single label" in str(w.message)]


def test_evaluate_a_multilabel_model_lists_instruments_left_out_by_classes_once(multilabel_model, mixture_data, tmp_path):
    """A multi-label model scored among two of its three instruments: the third is left out by
    ``classes``, not also an instrument the model does not know."""
    from instrec.pipeline import evaluate_model

    m, skipped = evaluate_model(multilabel_model, mixture_data, classes="sine,square", out=tmp_path / "rep")
    assert set(m["left_out_by_classes"]) == {"saw"} and not m.get("unknown_classes")
    context = json.loads((tmp_path / "rep" / "metrics.json").read_text())["context"]
    assert context["clips"] == f"{m['n']} scored of {m['n'] + len(skipped)}, {len(skipped)} skipped"


def test_non_finite_or_misshapen_probabilities_are_a_parameter_error():
    """Review: a NaN probability failed half-way with scikit-learn's ValueError ("Input contains
    NaN"), or numpy's from the ECE bins ("must have no negative elements"), not a ParameterError."""
    with pytest.raises(ParameterError, match="not finite"):
        compute_metrics(["a", "b", "a"], np.array([[np.nan, np.nan], [.5, .5], [.9, .1]]), ["a", "b"])
    with pytest.raises(ParameterError, match="not finite"):
        compute_metrics(["a", "a"], np.array([[np.nan, np.nan], [.9, .1]]), ["a", "b"])
    with pytest.raises(ParameterError, match="shape"):
        compute_metrics(["a", "b"], np.array([[.5, .5]]), ["a", "b"])
