"""Cross-validation and leave-one-source-out on real audio: tones and FluidSynth renders, real training."""

import json

import pytest

from conftest import error_lines, run_cli
from instrec.errors import DataError
from instrec.pipeline import KFold, LeaveOneSourceOut, cross_validate
from instrec.recipes import get_recipe

RECIPE = get_recipe("seed-mfcc").with_overrides(epochs=30)
METRICS = {"accuracy", "macro_f1", "roc_auc_ovr_macro"}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Two small source folders: fluidr3 (flute, cello) and timgm6mb (flute, cello, trumpet)."""
    from instrec.data.render import render

    root = tmp_path_factory.mktemp("sources")
    render(root / "fluidr3", soundfont="fluidr3", instruments=("flute", "cello"), per_class=4, seconds=1.0)
    render(root / "timgm6mb", soundfont="timgm6mb", instruments=("flute", "cello", "trumpet"), per_class=4, seconds=1.0)
    return root / "fluidr3", root / "timgm6mb"


def test_cross_validate_three_folds(tone_data, tmp_path):
    res = cross_validate(tone_data, recipe=RECIPE.with_overrides(epochs=300), cv=KFold(3), seed=0, out=tmp_path / "cv")
    assert len(res["folds"]) == 3
    assert [f["fold"] for f in res["folds"]] == [1, 2, 3]
    assert sum(f["n_test"] for f in res["folds"]) == 30 and all(f["n_train"] == 20 for f in res["folds"])
    assert set(res["mean"]) == set(res["std"]) == METRICS
    accs = [f["accuracy"] for f in res["folds"]]
    assert res["mean"]["accuracy"] == pytest.approx(sum(accs) / 3)
    assert res["mean"]["accuracy"] >= 0.6  # three timbres; chance is 1/3
    assert "3-fold" in res["context"]["evaluated on"] and res["context"]["seed"] == 0
    saved = json.loads((tmp_path / "cv" / "cv.json").read_text())
    assert saved["mean"] == res["mean"] and len(saved["folds"]) == 3
    report = (tmp_path / "cv" / "report.md").read_text()
    assert "| fold | clips train / test | accuracy | macro F1 | ROC AUC |" in report
    assert "mean ± std" in report and "seed" in report and "sources" in report
    assert not list((tmp_path / "cv").glob(".*part*"))  # atomic writes leave nothing behind


def test_leave_one_source_out(sources, tmp_path):
    fluid, tim = sources
    res = cross_validate([fluid, tim], recipe=RECIPE, cv=LeaveOneSourceOut(), seed=0, out=tmp_path / "rep")
    folds = {f["held_out"]: f for f in res["folds"]}
    assert set(folds) == {"fluidr3", "timgm6mb"}
    assert folds["fluidr3"]["n_test"] == 8 and folds["fluidr3"]["n_train"] == 12
    assert folds["timgm6mb"]["n_test"] == 12 and folds["timgm6mb"]["n_train"] == 8
    assert folds["fluidr3"]["train_sources"] == ["timgm6mb"]
    # trumpet is only in timgm6mb: reported, not scored, not a crash
    assert folds["timgm6mb"]["unknown_classes"] == {"trumpet": 4} and folds["timgm6mb"]["n"] == 8
    assert folds["fluidr3"]["unknown_classes"] == {}
    assert set(res["mean"]) == METRICS
    assert "fluidr3 (8)" in res["context"]["sources"] and "timgm6mb (12)" in res["context"]["sources"]
    assert json.loads((tmp_path / "rep" / "crossval.json").read_text())["mean"] == res["mean"]
    report = (tmp_path / "rep" / "report.md").read_text()
    assert "| held-out source | train sources | clips train / test | accuracy | macro F1 | ROC AUC |" in report
    assert "| fluidr3 | timgm6mb | 12 / 8 |" in report and "| timgm6mb | fluidr3 | 8 / 12 |" in report
    assert "mean ± std" in report and "trumpet (4)" in report


def test_crossval_needs_two_sources(sources):
    with pytest.raises(DataError, match="at least 2 sources; found 1"):
        cross_validate(sources[0], recipe=RECIPE, cv=LeaveOneSourceOut())


def test_cli_crossval_prints_the_table(sources, tmp_path):
    r = run_cli("crossval", *sources, "--recipe", "seed-mfcc", "--epochs", "10", "--out", tmp_path / "R")
    assert r.returncode == 0, r.stderr
    assert "| held-out source |" in r.stdout and "mean ± std" in r.stdout
    # one row per fold, each with its own sources and counts
    assert "| fluidr3 | timgm6mb | 12 / 8 |" in r.stdout and "| timgm6mb | fluidr3 | 8 / 12 |" in r.stdout
    assert "trumpet" in r.stderr  # not scored, said so
    assert (tmp_path / "R" / "report.md").is_file() and (tmp_path / "R" / "crossval.json").is_file()
    r = run_cli("crossval", sources[0], "--epochs", "2")
    assert r.returncode == 1 and "at least 2 sources" in r.stderr and len(error_lines(r.stderr)) == 1


def test_cli_train_cv_prints_mean_std(tone_data, tmp_path):
    r = run_cli("train", tone_data, "--cv", "3", "--recipe", "seed-mfcc", "--epochs", "10", "--report", tmp_path / "rep")
    assert r.returncode == 0, r.stderr
    assert "3-fold cross-validation" in r.stdout and "±" in r.stdout
    assert "| 3 | 20 / 10 |" in r.stdout
    assert json.loads((tmp_path / "rep" / "cv.json").read_text())["split"]["k"] == 3
    assert not (tmp_path / "model").exists()


def test_cli_group_split_records_group_by(sources, tmp_path):
    out = tmp_path / "m"
    r = run_cli("train", sources[1], "--recipe", "seed-mfcc", "--split", "group", "--group-by", "pitch", "--epochs", "10", "--out", out,
                "--report", tmp_path / "rep")
    assert r.returncode == 0, r.stderr
    split = json.loads((out / "model.json").read_text())["training"]["split"]
    assert split["method"] == "group" and split["group_by"] == "pitch" and split["n_train"] + split["n_test"] == 12
    assert split["n_groups_test"] >= 1
    ctx = json.loads((tmp_path / "rep" / "metrics.json").read_text())["context"]
    assert ctx["evaluated on"] == "held-back test split (group by pitch, test_size 0.2, seed 0)"


@pytest.mark.parametrize(
    "args, code, words",
    [
        (["train", "{d}", "--cv", "3", "--out", "{tmp}/m"], 2, ["--cv", "--out"]),
        (["train", "{d}"], 2, ["--out"]),
        # --split group alone keeps the manifest's groups together: clips without one are named
        (["train", "{d}", "--split", "group", "--out", "{tmp}/m"], 1, ["group", ".wav"]),
        (["train", "{d}", "--cv", "1"], 2, ["k ≥ 2"]),
        (["train", "{d}", "--group-by", "player", "--out", "{tmp}/m"], 1, ["player", ".wav"]),
    ],
    ids=["cv-with-out", "no-out", "group-without-groups", "cv-1", "missing-column"],
)
def test_cli_errors_are_one_line(sources, tmp_path, capsys, args, code, words):
    from instrec.cli import main

    with pytest.raises(SystemExit) as e:
        main([a.format(d=sources[0], tmp=tmp_path) for a in args])
    assert e.value.code == code
    err = capsys.readouterr().err
    assert err.startswith("instrec: error: ") and len(error_lines(err)) == 1
    for w in words:
        assert w in err
