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


@pytest.fixture(scope="module")
def other_mixtures(tone_data, tmp_path_factory):
    """60 other mixtures of tone_data's tones: clips multilabel_model was not trained on."""
    from conftest import SR
    from instrec.data.mixtures import mix_clips

    root = tmp_path_factory.mktemp("other-mixtures")
    mix_clips(load_dataset(tone_data).clips, root, n=60, min_instruments=1, max_instruments=3, seconds=3.0, sr=SR,
              seed=1)
    return root


@pytest.fixture(scope="module")
def tone_model(tone_data, tmp_path_factory):
    """A seed-mfcc model folder trained on tone_data with 21 of its 30 clips held back (split.json)."""
    from instrec.pipeline import train_model
    from instrec.recipes import get_recipe

    out = tmp_path_factory.mktemp("tone-model") / "m"
    train_model(tone_data, recipe=get_recipe("seed-mfcc").with_overrides(epochs=40), out=out, seed=0, test_size=0.7)
    return out


def test_a_multilabel_model_gets_the_thresholds_of_the_data(multilabel_model, other_mixtures, tmp_path):
    cal, skipped = calibrate_model(multilabel_model, other_mixtures, out=tmp_path / "m")
    assert not skipped and cal["clips"] == 60 and cal["left_out"] == {}
    clf = InstrumentClassifier.load(multilabel_model)
    clips = load_dataset(other_mixtures).clips
    X, ok, _ = extract([c.path for c in clips], clf.recipe.feature)
    Y = label_matrix([clips[i].label for i in ok], clf.classes)
    expected = choose_thresholds(Y, clf.predict_proba(X))  # what the data says, computed here
    info = json.loads((tmp_path / "m" / "model.json").read_text())
    assert info["thresholds"] == {c: float(t) for c, t in zip(clf.classes, expected)}
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


def test_an_instrument_the_clips_lack_keeps_its_threshold(multilabel_model, other_mixtures, tmp_path):
    data = _subset(other_mixtures, lambda label: "saw" not in label.split(";"), tmp_path / "no-saw")
    model = InstrumentClassifier.load(multilabel_model)
    model.thresholds_ = {**model.thresholds_, "saw": 0.37}  # not the default 0.5: kept, not reset
    model.save(tmp_path / "start")
    cal, _ = calibrate_model(tmp_path / "start", data, out=tmp_path / "m")
    assert cal["kept"] == ["saw"]
    now = json.loads((tmp_path / "m" / "model.json").read_text())["thresholds"]
    assert now["saw"] == 0.37
    r = run_cli("calibrate", tmp_path / "start", data, "--out", tmp_path / "m2")
    assert r.returncode == 0 and "kept for 1 with too few clips" in r.stdout and "saw" not in r.stdout, r.stdout


def test_a_handful_of_mixtures_is_refused_in_words(multilabel_model, other_mixtures, tmp_path):
    """Review: the message read 'no instrument has 5 of the 4 clips with it and one without'."""
    seen = []
    data = _subset(other_mixtures, lambda label: len(seen) < 4 and not seen.append(label), tmp_path / "four")
    r = run_cli("calibrate", multilabel_model, data, "--out", tmp_path / "m")
    assert r.returncode == 1 and error_lines(r.stderr) == [
        "instrec: error: too few clips to choose a threshold on: an instrument needs 5 clips with it and one without, "
        "and none has them among these 4"], r.stderr


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


def test_calibrating_on_the_training_folder_fits_on_its_held_back_split(tone_model, tone_data, tmp_path):
    """The clips a model was trained on say nothing of its confidence (they made T 0.07 and 'unknown'
    below 1.00): on its training folder calibrate fits on the held-back test split, as evaluate
    scores it; elsewhere in that folder the training clips are left out, and none left is an error."""
    import shutil

    from instrec.errors import DataError

    r = run_cli("calibrate", tone_model, tone_data, "--out", tmp_path / "m2")
    assert r.returncode == 0, r.stderr
    assert "chosen on 21 clips" in r.stdout
    assert error_lines(r.stderr) == ["calibrated on the held-back test split of the model's training data: 21 of the 30 "
                                     "clips; the other 9 were left out (the model may have been trained on them)"]
    record = json.loads((tmp_path / "m2" / "model.json").read_text())["metrics"]["calibration"]
    assert record["clips"] == 21 and record["training_clips"] == {"n": 9, "of": 30, "held_back": True}
    assert record["model"] == str(tone_model.resolve())

    # a part of the training folder: its training clips left out, too few left
    test = set(json.loads((tone_model / "split.json").read_text())["test"])
    parts = [tone_data / "sine", tone_data / "saw"]
    held = sum(str(p.resolve()) in test for d in parts for p in d.glob("*.wav"))
    with pytest.raises(DataError, match=f"{held} clips of classes the model knows: too few .*; {20 - held} more were "
                                        "left out, clips the model may have been trained on"):
        calibrate_model(tone_model, parts, out=tmp_path / "m3")

    # no record of the held-back split: every clip of the training folder may have been trained on
    bare = tmp_path / "bare"
    shutil.copytree(tone_model, bare)
    (bare / "split.json").unlink()
    r = run_cli("calibrate", bare, tone_data, "--out", tmp_path / "m4")
    assert r.returncode == 1 and error_lines(r.stderr) == [
        f"instrec: error: {tone_data}: all 30 clips lie in the folder the model was trained on, and the model carries "
        "no record of its held-back test split: calibrate it on other recordings"]
    assert not (tmp_path / "m4").exists()


def test_a_fit_that_cannot_tell_confidence_from_certainty_is_warned(tone_data, tmp_path):
    """Copies of the training clips (not known as such): a perfect fit drives T to the bottom of its
    range; one line says the data cannot tell the model's confidence from certainty."""
    import shutil

    from instrec.calibration import T_RANGE
    from instrec.pipeline import train_model
    from instrec.recipes import get_recipe

    train_model(tone_data, recipe=get_recipe("seed-mfcc").with_overrides(epochs=40), out=tmp_path / "m", seed=0)
    shutil.copytree(tone_data, tmp_path / "copy")
    r = run_cli("calibrate", tmp_path / "m", tmp_path / "copy", "--out", tmp_path / "m2")
    assert r.returncode == 0, r.stderr
    t = json.loads((tmp_path / "m2" / "model.json").read_text())["temperature"]
    assert t == pytest.approx(T_RANGE[0], rel=1e-3)
    assert [l for l in error_lines(r.stderr) if l.startswith("warning:")] == [
        "warning: the temperature is the lowest searched (0.05): these clips cannot tell the model's confidence from "
        "certainty (were they trained on?); calibrate on recordings the model has not heard"]


def test_the_name_shipped_always_means_the_shipped_model(tone_model, tone_data, rendered_data, tmp_path):
    """A local folder named shipped is never read nor written for the name 'shipped' (a report
    said 'model: shipped' of it, and calibrate shipped --out shipped overwrote it); its own path
    still reaches it, and reports name the real path."""
    import shutil

    local = tmp_path / "shipped"
    shutil.copytree(tone_model, local)
    before = {p.name: p.read_bytes() for p in local.iterdir()}
    note = (f"warning: 'shipped' names the shipped model; the folder ./shipped here was not used "
            f"(name it {local} to use it)")
    taken = "that name means the shipped model; choose another name for the"
    for args in (("calibrate", "shipped", rendered_data), ("calibrate", tone_model, tone_data),
                 ("train", rendered_data, "--recipe", "mfcc-stats")):
        r = run_cli(*args, "--out", "shipped", cwd=tmp_path)
        assert r.returncode == 2 and error_lines(r.stderr) == [f"instrec: error: shipped: {taken} model folder"], r.stderr
    r = run_cli("export", tone_model, "--onnx", "shipped", cwd=tmp_path)
    assert r.returncode == 2 and error_lines(r.stderr) == [f"instrec: error: shipped: {taken} .onnx file"], r.stderr
    r = run_cli("calibrate", local, tone_data, "--out", local)
    assert r.returncode == 2 and "another folder than the model's own" in r.stderr
    assert {p.name: p.read_bytes() for p in local.iterdir()} == before

    r = run_cli("calibrate", "shipped", rendered_data, "--out", "new", cwd=tmp_path)
    assert r.returncode == 0 and error_lines(r.stderr)[0] == note, r.stderr  # then: renders like its own, too sure
    info = json.loads((tmp_path / "new" / "model.json").read_text())
    assert info["classes"] == InstrumentClassifier.load(shipped_model_path()).classes
    assert info["metrics"]["calibration"]["model"] == "shipped"
    r = run_cli("evaluate", "shipped", rendered_data, "--out", "rep", cwd=tmp_path)
    assert r.returncode == 0 and note in error_lines(r.stderr), r.stderr
    assert json.loads((tmp_path / "rep" / "metrics.json").read_text())["context"]["model"] == str(shipped_model_path())
    clip = next(rendered_data.rglob("*.wav"))
    plain, named = (run_cli("predict", *m, clip, "--format", "json", cwd=tmp_path) for m in ((), ("shipped",)))
    assert named.returncode == 0 and json.loads(named.stdout) == json.loads(plain.stdout)
    assert error_lines(named.stderr) == [note]

    r = run_cli("evaluate", ".", tone_data, "--out", tmp_path / "rep2", cwd=local)
    assert r.returncode == 0, r.stderr  # its own folder by another spelling: read, and named by its real path
    assert json.loads((tmp_path / "rep2" / "metrics.json").read_text())["context"]["model"] == str(local)
    assert {p.name: p.read_bytes() for p in local.iterdir()} == before
