"""Multi-label models (issue 27): cnn-multi trained on labels joined by ';', thresholds per
instrument, save/load, ONNX, who plays when, and multi-label evaluation with frame scores."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import instrec
from instrec.classifier import InstrumentClassifier
from instrec.data import load_dataset
from instrec.errors import BundleError, DataError
from instrec.pipeline import evaluate_model
from instrec.recipes import get_recipe

from conftest import error_lines, run_cli


@pytest.fixture(scope="module")
def loaded(multilabel_model):
    return InstrumentClassifier.load(multilabel_model)


def test_the_model_is_multilabel_with_a_threshold_per_instrument(loaded, multilabel_model):
    assert loaded.multilabel and loaded.classes == ["saw", "sine", "square"]
    assert set(loaded.thresholds_) == {"saw", "sine", "square"}
    assert all(0.05 <= t <= 0.95 for t in loaded.thresholds_.values())
    meta = json.loads((multilabel_model / "model.json").read_text())
    assert meta["recipe"]["model"]["output"] == "sigmoid" and meta["thresholds"] == loaded.thresholds_
    assert meta["metrics"]["test_split"]["map"] is not None  # the run scored its held-back mixtures


def test_probabilities_are_each_instruments_own(loaded, mixture_data):
    from instrec.features import compute_file

    paths = sorted(mixture_data.glob("*.wav"))[:12]
    X = np.stack([compute_file(p, loaded.recipe.feature) for p in paths])
    P = loaded.predict_proba(X)
    assert P.shape == (12, 3) and ((P >= 0) & (P <= 1)).all()
    assert not np.allclose(P.sum(axis=1), 1.0)  # sigmoids, not a softmax
    labels = loaded.predict(X)
    for label, row in zip(labels, P):
        named = set(label.split(";")) - {"unknown"}
        assert named == {c for c, p in zip(loaded.classes, row) if p >= loaded.thresholds_[c]}


def test_a_single_label_recipe_refuses_labels_of_several_instruments():
    X = np.zeros((4, get_recipe("mfcc-stats").feature.dim), np.float32)
    with pytest.raises(DataError, match="several instruments.*cnn-multi"):
        InstrumentClassifier("mfcc-stats").fit(X, ["a", "a;b", "b", "b"])


def test_manifest_labels_of_several_instruments_are_canonical(tmp_path, mixture_data):
    for name in ("x.wav", "y.wav"):
        shutil.copy(next(mixture_data.glob("*.wav")), tmp_path / name)
    (tmp_path / "manifest.csv").write_text("path,label\nx.wav,Violin; Sax\ny.wav,cello\n")
    assert [c.label for c in load_dataset(tmp_path).clips] == ["saxophone;violin", "cello"]


def test_thresholds_on_a_single_label_model_are_refused(multilabel_model, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(multilabel_model, bad)
    meta = json.loads((bad / "model.json").read_text())
    meta["thresholds"] = {"saw": 0.5}  # not every class
    (bad / "model.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="thresholds"):
        InstrumentClassifier.load(bad)


def test_who_plays_when_in_a_duet(multilabel_model, duet_recording):
    p = instrec.load_model(multilabel_model, engine="torch").predict_file(duet_recording)
    assert p.is_multilabel and p.is_timeline
    heard = {t.label: t for t in p.instruments}
    assert "sine" in heard and "saw" in heard
    for t in p.instruments:
        assert all(0 <= a < b <= 12.0 for a, b in t.segments)
        assert t.probability == pytest.approx(max(w.probabilities[t.label] for w in p.windows))
    assert heard["sine"].segments[0][0] == 0.0  # the sine opens the recording
    assert p.windows[0].active is not None and "sine" in p.windows[0].active
    # the file's probabilities are each instrument's best window, never their average
    for c in ("saw", "sine", "square"):
        assert p.probabilities[c] == pytest.approx(max(w.probabilities[c] for w in p.windows))
    again = instrec.results.Prediction.from_dict(json.loads(json.dumps(p.to_dict())))
    assert again.instruments == p.instruments and again.windows[3].active == p.windows[3].active


def test_onnx_export_answers_as_torch(multilabel_model, tmp_path, duet_recording):
    from instrec.export import ensure_onnx

    folder = tmp_path / "m"
    shutil.copytree(multilabel_model, folder)
    ensure_onnx(folder)
    a = instrec.load_model(folder, engine="torch").predict_file(duet_recording)
    b = instrec.load_model(folder, engine="onnx").predict_file(duet_recording)
    assert b.instruments is not None and [t.label for t in a.instruments] == [t.label for t in b.instruments]
    for wa, wb in zip(a.windows, b.windows):
        assert max(abs(wa.probabilities[c] - wb.probabilities[c]) for c in wa.probabilities) < 1e-4


def test_restricting_keeps_each_probability(multilabel_model, duet_recording):
    model = instrec.load_model(multilabel_model, engine="torch")
    full = model.predict_file(duet_recording)
    two = model.restrict("sine,saw").predict_file(duet_recording)
    for wf, wt in zip(full.windows, two.windows):
        assert wt.probabilities == {c: wf.probabilities[c] for c in ("saw", "sine")}
    # one instrument is a question too: "is there a saw?" (a softmax model needs two to choose among)
    one = model.restrict("saw").predict_file(duet_recording)
    assert [w.probabilities for w in one.windows] == [{"saw": w.probabilities["saw"]} for w in full.windows]


def test_evaluate_scores_clips_and_frames(multilabel_model, mixture_data, tmp_path):
    metrics, skipped = evaluate_model(multilabel_model, mixture_data, out=tmp_path / "report")
    assert skipped == [] and metrics["multilabel"]
    # the model's own data: only the test split it held back is scored
    split = json.loads((multilabel_model / "split.json").read_text())
    assert metrics["n"] == len(split["test"])
    assert 0 <= metrics["map"] <= 1 and metrics["frames"]["frames"] == 30 * metrics["n"]
    report = (tmp_path / "report" / "report.md").read_text()
    assert "mAP" in report and "Frame-level F1" in report


def test_a_model_that_hears_nothing_scores_no_frames_right(multilabel_model, mixture_data, tmp_path):
    """Frame scores can fail: thresholds of 1.0 hear nothing, so recall and F1 are 0."""
    deaf = tmp_path / "deaf"
    shutil.copytree(multilabel_model, deaf)
    meta = json.loads((deaf / "model.json").read_text())
    meta["thresholds"] = {c: 1.0 for c in meta["classes"]}
    (deaf / "model.json").write_text(json.dumps(meta))
    (deaf / "split.json").unlink()  # score every clip
    metrics, _ = evaluate_model(instrec.load_model(deaf, engine="torch"), mixture_data)
    assert metrics["frames"]["recall"] == 0 and metrics["micro_f1"] == 0 and metrics["n"] == 60


def test_cli_mix_train_group_split_and_evaluate(tone_data, tmp_path):
    r = run_cli("mix", tone_data, tmp_path / "mix", "--n", "30", "--min", "1", "--max", "2")
    assert r.returncode == 0, r.stderr
    assert "wrote 30 mixtures" in r.stdout
    r = run_cli("mix", tone_data, tmp_path / "x", "--min", "3", "--max", "2")
    assert r.returncode == 2 and "--min" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("train", tmp_path / "mix", "--recipe", "cnn-multi", "--epochs", "1", "--split", "group",
                "--out", tmp_path / "model")
    assert r.returncode == 0, r.stderr
    assert "test mAP" in r.stdout and "group by group" in r.stdout
    r = run_cli("evaluate", tmp_path / "model", tmp_path / "mix", "--out", tmp_path / "rep")
    assert r.returncode == 0, r.stderr
    assert "mAP" in r.stdout and "frame-level F1" in r.stdout


def test_crossval_of_a_multilabel_recipe_scores_every_fold(mixture_data, tmp_path):
    r = run_cli("train", mixture_data, "--recipe", "cnn-multi", "--epochs", "2", "--cv", "3", "--report", tmp_path / "cv")
    assert r.returncode == 0, r.stderr
    assert "| fold | clips train / test | mAP | micro F1 | macro F1 |" in r.stdout
    assert "cnn-multi (epochs 2): 3-fold cross-validation: mAP " in r.stdout and "accuracy" not in r.stdout
    res = json.loads((tmp_path / "cv" / "cv.json").read_text())
    folds = res["folds"]
    assert len(folds) == 3 and sum(f["n_test"] for f in folds) == 60  # each clip tested once
    for f in folds:  # stratified by each clip's rarest instrument: every instrument in every test side
        assert f["multilabel"] and 0.0 <= f["map"] <= 1.0 and f["micro_f1"] is not None
        assert all(f["per_class"][c]["support"] > 0 for c in ("saw", "sine", "square"))
    assert set(res["mean"]) == {"map", "micro_f1", "macro_f1"}
    assert res["mean"]["map"] == pytest.approx(float(np.mean([f["map"] for f in folds])))
    assert "| fold | clips train / test | mAP | micro F1 | macro F1 |" in (tmp_path / "cv" / "report.md").read_text()


def test_cli_multilabel_model_from_the_shipped_single_label_one(mixture_data, tmp_path):
    import csv

    # the mixtures of two or three, their tones named as instruments the shipped model knows
    names = {"saw": "trumpet", "sine": "flute", "square": "oboe"}
    with open(mixture_data / "manifest.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if ";" in r["label"]]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "manifest.csv").write_text("path,label\n" + "".join(
        f"{mixture_data / r['path']},{';'.join(sorted(names[c] for c in r['label'].split(';')))}\n" for r in rows))
    r = run_cli("train", tmp_path / "data", "--from", "shipped", "--recipe", "cnn-multi", "--epochs", "1", "--out", tmp_path / "m")
    assert r.returncode == 0, r.stderr
    info = json.loads((tmp_path / "m" / "model.json").read_text())
    assert info["recipe"]["model"]["output"] == "sigmoid" and info["classes"] == ["flute", "oboe", "trumpet"]
    shipped = json.loads((instrec.assets.shipped_model_path() / "model.json").read_text())["classes"]
    # dropped: the shipped classes the data lacks, by instrument, not by the mixtures' joined labels
    assert info["training"]["fine_tuned_from"]["dropped_classes"] == sorted(set(shipped) - {"flute", "oboe", "trumpet"})
    # keeping the classes the data lacks would keep softmax rows as sigmoids: refused before any work
    r = run_cli("train", tmp_path / "data", "--from", "shipped", "--recipe", "cnn-multi", "--keep-classes",
                "--out", tmp_path / "k")
    assert r.returncode == 2 and error_lines(r.stderr) == [
        "instrec: error: keep_classes keeps output rows as they were, and a softmax model's rows mean nothing to a "
        "sigmoid one: train on data of every class you want kept, without keep_classes"]
    assert not (tmp_path / "k").exists()
