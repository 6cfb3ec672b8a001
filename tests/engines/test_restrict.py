"""Answering among some of a model's classes only: ``--classes``, ``Model.restrict``, six-class mode."""

from __future__ import annotations

import json

import numpy as np
import pytest

import instrec
from instrec.errors import ParameterError
from instrec.features import extract
from instrec.inference import class_columns, restrict_proba
from instrec.pipeline import evaluate_model, train_model

from conftest import error_lines, run_cli


def test_restrict_proba_renormalises_the_kept_columns():
    P = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [0.0, 0.0, 1.0]])
    R = restrict_proba(P, [0, 1])
    np.testing.assert_allclose(R[:2], [[0.625, 0.375], [0.5, 0.5]])
    assert R[2].tolist() == [0.0, 0.0]  # nothing left to share: zeros, not NaN


def test_class_columns_follow_the_model_and_match_names_as_labels():
    classes = ["cello", "flute", "oboe", "saxophone", "trumpet", "viola"]
    assert class_columns(classes, "Viola, sax,flute") == [1, 3, 5]
    assert class_columns(classes, ["trumpet", "cello"]) == [0, 4]
    with pytest.raises(ParameterError, match="does not know banjo"):
        class_columns(classes, "flute,banjo")
    with pytest.raises(ParameterError, match="at least two"):
        class_columns(classes, "flute, Flute")


def test_restricted_model_predicts_among_the_kept_classes(rendered_data):
    model = instrec.load_model()
    clip = sorted(rendered_data.glob("trumpet_*.wav"))[0]
    full = model.predict_file(clip)
    kept = model.restrict("flute,cello")
    assert kept.classes == ["cello", "flute"] and kept.info["all_classes"] == model.classes
    part = kept.predict_file(clip)
    assert set(part.probabilities) == {"cello", "flute"}
    assert sum(part.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    total = full.probabilities["cello"] + full.probabilities["flute"]
    assert part.probabilities["flute"] == pytest.approx(full.probabilities["flute"] / total, rel=1e-4)
    # restricting again starts from all the model's classes, not from the previous choice
    assert kept.restrict("trumpet,oboe").classes == ["oboe", "trumpet"]


def test_evaluate_scores_the_answers_among_the_kept_classes(tone_data, tmp_path):
    clf = train_model(tone_data, recipe="seed-mfcc", out=tmp_path / "m", seed=0).model
    # the classifier itself, not its folder: every clip is scored, not only the training's test split
    full, _ = evaluate_model(clf, tone_data)
    two, _ = evaluate_model(clf, tone_data, classes="square,sine", out=tmp_path / "report")
    assert full["classes"] == ["saw", "sine", "square"] and two["classes"] == ["sine", "square"]
    assert two["n"] == 20 and two["left_out_by_classes"] == {"saw": 10} and two["unknown_classes"] == {}
    # the same answers as the full model's probabilities, restricted by hand
    files = sorted(p for p in tone_data.rglob("*.wav") if "saw" not in p.name)
    X, ok, _ = extract(files, clf.recipe.feature)
    P = clf.predict_proba(X)[:, [1, 2]]
    truth = np.array([1 if "square" in p.name else 0 for p in files])
    assert two["accuracy"] == pytest.approx(float(np.mean(P.argmax(1) == truth)))
    report = (tmp_path / "report" / "report.md").read_text()
    assert "2 of the model's 3 classes: sine, square" in report


def test_cli_predict_and_evaluate_with_classes(rendered_data, tmp_path):
    clip = sorted(rendered_data.glob("cello_*.wav"))[0]
    r = run_cli("predict", clip, "--classes", "viola,cello", "--format", "json")
    assert r.returncode == 0, r.stderr
    (res,) = json.loads(r.stdout)
    assert set(res["probabilities"]) == {"viola", "cello"}
    # the shipped network's own two probabilities, rescaled; the label is the larger
    ref = instrec.load_model().restrict("viola,cello").predict_file(clip).probabilities
    assert res["probabilities"] == pytest.approx(ref, abs=1e-4)
    assert res["label"] == max(ref, key=ref.get)

    r = run_cli("predict", clip, "--classes", "viola,sitar")
    assert r.returncode == 2
    lines = error_lines(r.stderr)
    assert len(lines) == 1 and "does not know sitar" in lines[0], r.stderr

    shipped = instrec.load_model().source
    r = run_cli("evaluate", shipped, rendered_data, "--out", tmp_path / "ev", "--classes", "flute,cello,trumpet")
    assert r.returncode == 0, r.stderr
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["classes"] == ["cello", "flute", "trumpet"] and metrics["n"] == 24


@pytest.mark.parametrize("keep", ["flute,???", ["flute", "--"]])
def test_class_name_with_no_letter_is_named_in_the_error(keep):
    # review: "flute,???" said "the model does not know ; its classes: ..." (an empty name)
    with pytest.raises(ParameterError, match=r"^'(\?\?\?|--)' names no class \(no letter or digit\); "
                                             r"the model's classes: flute, trumpet, violin$"):
        class_columns(["flute", "trumpet", "violin"], keep)
