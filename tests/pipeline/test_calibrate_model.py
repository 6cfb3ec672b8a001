"""``instrec calibrate`` / ``calibrate_model``: a trained model's decision chosen on a user's own
recordings (temperature and 'unknown' threshold, or a multi-label model's thresholds), its weights
kept."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from conftest import error_lines, run_cli
from instrec.assets import shipped_model_path
from instrec.calibration import choose_thresholds, fit_temperature
from instrec.classifier import InstrumentClassifier
from instrec.data import load_dataset
from instrec.data.activity import label_matrix
from instrec.features import extract
from instrec.pipeline import calibrate_model


def test_a_multilabel_model_gets_the_thresholds_of_the_data(multilabel_model, mixture_data, tmp_path):
    cal, skipped = calibrate_model(multilabel_model, mixture_data, out=tmp_path / "m")
    assert not skipped and cal["clips"] == 60 and cal["left_out"] == {}
    clf = InstrumentClassifier.load(multilabel_model)
    clips = load_dataset(mixture_data).clips
    X, ok, _ = extract([c.path for c in clips], clf.recipe.feature)
    Y = label_matrix([clips[i].label for i in ok], clf.classes)
    expected = choose_thresholds(Y, clf.predict_proba(X))  # what the data says, computed here
    info = json.loads((tmp_path / "m" / "model.json").read_text())
    assert info["thresholds"] == {c: round(float(t), 4) for c, t in zip(clf.classes, expected)}
    assert info["metrics"]["calibration"]["before"]["thresholds"] == clf.thresholds_
    assert info["metrics"]["calibration"]["clips"] == 60
    new, old = load_file(tmp_path / "m" / "model.safetensors"), load_file(multilabel_model / "model.safetensors")
    assert all(np.array_equal(new[k], old[k]) for k in old)  # the network is kept


def test_cli_recalibrates_the_shipped_model_on_recordings_it_knows(rendered_data, tone_data, tmp_path):
    r = run_cli("calibrate", "shipped", rendered_data, "--out", tmp_path / "m")
    assert r.returncode == 0, r.stderr
    assert "temperature" in r.stdout and "chosen on 24 clips" in r.stdout and f"model in {tmp_path / 'm'}" in r.stdout
    shipped = InstrumentClassifier.load(shipped_model_path())
    clips = load_dataset(rendered_data).clips
    X, ok, _ = extract([c.path for c in clips], shipped.recipe.feature)
    t = fit_temperature(shipped.predict_proba(X), [shipped.classes.index(clips[i].label) for i in ok])
    info = json.loads((tmp_path / "m" / "model.json").read_text())
    assert info["temperature"] == pytest.approx(t, rel=1e-6)
    assert info["metrics"]["calibration"]["before"]["temperature"] == shipped.temperature_
    r = run_cli("predict", tmp_path / "m", next(rendered_data.rglob("*.wav")), "--format", "json")
    assert r.returncode == 0, r.stderr

    # recordings of classes it does not know: nothing to calibrate on, one line
    r = run_cli("calibrate", "shipped", tone_data, "--out", tmp_path / "x")
    assert r.returncode == 1 and error_lines(r.stderr) == [
        "instrec: error: none of the clips is of a class the model knows (saw, sine, square)"]
    r = run_cli("calibrate", tmp_path / "m", rendered_data, "--out", tmp_path / "m")
    assert r.returncode == 2 and "another folder than the model's own" in r.stderr


def test_the_shipped_models_own_folder_is_never_written(rendered_data, tmp_path, monkeypatch):
    import shutil

    import instrec.assets

    own = tmp_path / "installed" / "model"  # a copy stands in for the installed package's folder
    shutil.copytree(shipped_model_path(), own)
    monkeypatch.setattr(instrec.assets, "SHIPPED_MODEL", own)
    before = {p.name: p.read_bytes() for p in own.iterdir()}
    for args in (("calibrate", "shipped", rendered_data), ("train", rendered_data, "--from", "shipped")):
        r = run_cli(*args, "--out", own)
        assert r.returncode == 2 and error_lines(r.stderr) == [
            f"instrec: error: {own}: that is the shipped model's own folder; write the new model to another folder"]
    assert {p.name: p.read_bytes() for p in own.iterdir()} == before


def _subset(folder, keep, out):
    """A folder whose manifest lists the clips of ``folder``'s manifest that ``keep(label)`` keeps."""
    import csv

    rows = [r for r in csv.DictReader(open(folder / "manifest.csv", encoding="utf-8")) if keep(r["label"])]
    out.mkdir()
    with open(out / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["path", "label"])
        w.writerows([(str((folder / r["path"]).resolve()), r["label"]) for r in rows])
    return out


def test_an_instrument_the_clips_lack_keeps_its_threshold(multilabel_model, mixture_data, tmp_path):
    data = _subset(mixture_data, lambda label: "saw" not in label.split(";"), tmp_path / "no-saw")
    cal, _ = calibrate_model(multilabel_model, data, out=tmp_path / "m")
    assert cal["kept"] == ["saw"]
    was = InstrumentClassifier.load(multilabel_model).thresholds_
    now = json.loads((tmp_path / "m" / "model.json").read_text())["thresholds"]
    assert now["saw"] == was["saw"] and now["saw"] != 0.5
    r = run_cli("calibrate", multilabel_model, data, "--out", tmp_path / "m2")
    assert r.returncode == 0 and "kept for 1 with too few clips" in r.stdout and "saw" not in r.stdout, r.stdout


def test_a_handful_of_clips_is_refused(rendered_data, tmp_path):
    import shutil

    for label in ("flute", "cello", "trumpet"):  # 12 clips, 4 of each: fewer than a decision needs
        (tmp_path / "few" / label).mkdir(parents=True)
        for f in sorted(rendered_data.rglob(f"{label}_*.wav"))[:4]:
            shutil.copy(f, tmp_path / "few" / label)
    r = run_cli("calibrate", "shipped", tmp_path / "few", "--out", tmp_path / "m")
    assert r.returncode == 1 and error_lines(r.stderr) == [
        "instrec: error: 12 clips of classes the model knows: too few to choose its decision on (at least 20)"]
    assert not (tmp_path / "m").exists()


def test_out_at_the_data_folder_loses_nothing(rendered_data, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(rendered_data, data)
    before = sorted(p.name for p in data.rglob("*"))
    for args in (("calibrate", "shipped", data), ("train", data, "--recipe", "mfcc-stats")):
        r = run_cli(*args, "--out", data)
        assert r.returncode == 2 and error_lines(r.stderr) == [
            f"instrec: error: {data}: holds other files (it is not a model folder): name a new or empty folder"]
    assert sorted(p.name for p in data.rglob("*")) == before
