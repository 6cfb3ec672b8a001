"""The end of training: temperature and doubt threshold fitted on the loop's validation rows,
saved in model.json with the families, and used by every prediction."""

import json
from dataclasses import replace

import numpy as np
import pytest

import instrec
from conftest import run_cli, tone, write
from instrec.classifier import InstrumentClassifier
from instrec.recipes import get_recipe


def _recipe(val_fraction):
    r = get_recipe("seed-mfcc").with_overrides(epochs=15)
    return replace(r, train=replace(r.train, val_fraction=val_fraction))


@pytest.fixture(scope="module")
def data():
    """Two instruments and 'unknown' negatives, 50 rows each, overlapping a little."""
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(m, 1.0, (50, 40)) for m in (0.0, 1.0, -1.0)]).astype(np.float32)
    return X, ["cello"] * 50 + ["flute"] * 50 + ["unknown"] * 50


@pytest.fixture(scope="module")
def calibrated(data, tmp_path_factory):
    X, y = data
    clf = InstrumentClassifier(_recipe(0.3), seed=0).fit(X, y)
    return clf, clf.save(tmp_path_factory.mktemp("cal") / "model")


def test_fit_calibrates_on_the_validation_rows(calibrated):
    clf, _ = calibrated
    cal = clf.calibration_
    assert cal["validation_rows"] == 45 and cal["known_rows"] == 30 and cal["unknown_rows"] == 15
    assert 0.05 <= clf.temperature_ <= 20 and cal["nll_after"] <= cal["nll_before"]
    # the class unknown answers some known rows: they spend the 5% budget (1 of 30) first
    assert clf.min_confidence_ is not None and 0 <= clf.min_confidence_ <= 1
    assert clf.families_ == {"bowed-strings": ["cello"], "woodwinds": ["flute"], "unknown": ["unknown"]}
    assert "validation_index" not in clf.history_


def test_the_threshold_rejects_at_most_five_percent_of_known_validation_rows(data):
    X, y = data
    clf = InstrumentClassifier(_recipe(0.3), seed=0).fit(X[:100], y[:100])  # no class unknown
    cal = clf.calibration_
    assert cal["known_rows"] == 30 and clf.min_confidence_ > 0.5
    assert cal["known_rejected"] <= 1  # 5% of 30


def test_calibration_travels_in_model_json_and_applies(calibrated, data):
    clf, path = calibrated
    meta = json.loads((path / "model.json").read_text())
    assert meta["temperature"] == clf.temperature_ and meta["min_confidence"] == clf.min_confidence_
    assert meta["families"] == clf.families_
    again = InstrumentClassifier.load(path)
    assert (again.temperature_, again.min_confidence_, again.families_) == (clf.temperature_, clf.min_confidence_,
                                                                              clf.families_)
    model = instrec.load_model(path, engine="torch")
    X, _ = data
    raw = clf.predict_proba(X[:5])
    P = model.predict_proba(X[:5])
    assert np.array_equal(P.argmax(1), raw.argmax(1))
    q = raw.astype(np.float64) ** (1 / clf.temperature_)
    assert P == pytest.approx(q / q.sum(1, keepdims=True), abs=1e-5)
    assert model.min_confidence == clf.min_confidence_ and model.info["temperature"] == clf.temperature_


def test_without_validation_rows_temperature_one_and_no_threshold(data, tmp_path):
    X, y = data
    clf = InstrumentClassifier(_recipe(0.0), seed=0).fit(X, y)
    assert clf.temperature_ == 1.0 and clf.min_confidence_ is None and clf.calibration_["validation_rows"] == 0
    meta = json.loads((clf.save(tmp_path / "m") / "model.json").read_text())
    assert meta["temperature"] == 1.0 and "min_confidence" not in meta


def test_cli_train_families_file_and_summary(tone_data, tmp_path):
    fams = write(tmp_path / "x.wav", tone("sine", 220)).with_name("families.csv")
    fams.write_text("instrument,family\nsine,smooth\nsquare,edgy\nsaw,edgy\n")
    r = run_cli("train", tone_data, "--recipe", "seed-mfcc", "--epochs", "5", "--out", tmp_path / "m", "--families", fams)
    assert r.returncode == 0, r.stderr
    assert "calibration: none: the recipe held no validation rows back" in r.stdout
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["families"] == {"edgy": ["saw", "square"], "smooth": ["sine"]} and meta["temperature"] == 1.0
    assert meta["training"]["calibration"]["validation_rows"] == 0
    assert meta["metrics"]["test_split"]["family_accuracy"] is not None
    fams.write_text("sine,a\nsine,b\n")
    r = run_cli("train", tone_data, "--recipe", "seed-mfcc", "--epochs", "5", "--out", tmp_path / "m2", "--families", fams)
    assert r.returncode == 1 and "two families" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "m2").exists()


def test_too_few_validation_rows_to_calibrate_give_temperature_one(data):
    """A temperature fitted on a handful of rows is noise: under calibrate's minimum (MIN_ROWS),
    training keeps temperature 1 and says so."""
    from instrec.calibration import MIN_ROWS
    from instrec.pipeline.common import fit_and_score
    from instrec.pipeline.training import calibration_words

    X, y = data
    rows = np.r_[0:10, 50:60]  # 20 rows, a 15% split: 3 validation rows
    clf, _ = fit_and_score(_recipe(0.15), 0, X, y, rows, np.r_[10:15, 60:65])
    cal = clf.calibration_
    assert 0 < cal["validation_rows"] < MIN_ROWS and cal["too_few_rows"]
    assert clf.temperature_ == 1.0 and clf.min_confidence_ is None
    assert calibration_words(cal).startswith(f"too few validation rows ({cal['validation_rows']}) to calibrate")
    # 45 rows are enough: fitted as before
    enough, _ = fit_and_score(_recipe(0.3), 0, X, y, np.arange(150), np.arange(3))
    assert enough.calibration_["validation_rows"] == 45 and "too_few_rows" not in enough.calibration_


def test_the_training_line_says_which_instruments_got_thresholds_of_their_own():
    """Review: 3 validation rows read 'a threshold per instrument chosen ... (0.50-0.50)', though none was."""
    from instrec.pipeline.training import calibration_words

    none = {"validation_rows": 3, "thresholds": {"a": 0.5, "b": 0.5}, "positives": {"a": 2, "b": 1}}
    assert calibration_words(none).startswith("none chosen: no instrument has 5 positive rows among the 3")
    some = {"validation_rows": 40, "thresholds": {"a": 0.31, "b": 0.5, "c": 0.62}, "positives": {"a": 12, "b": 2, "c": 9}}
    words = calibration_words(some)
    assert "for 2 of 3 (0.31-0.62)" in words and "the others, with fewer than 5 positive rows" in words
    every = {"validation_rows": 40, "thresholds": {"a": 0.31, "c": 0.62}, "positives": {"a": 12, "c": 9}}
    assert calibration_words(every).endswith("for 2 of 2 (0.31-0.62)")
