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


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Tones from sources a, b, c (sine, square, saw; 3 clips each) and negatives: sources noise
    (3 'unknown' clips) and espeak (2), as render --negatives writes them (a 'kind' column)."""
    import numpy as np

    from conftest import tone, write

    root = tmp_path_factory.mktemp("mixed")
    rows = ["path,label,source,kind"]
    for s, source in enumerate("abc"):
        for kind in ("sine", "square", "saw"):
            for k in range(3):
                name = f"{source}/{kind}_{k}.wav"
                write(root / name, tone(kind, 220.0 * (1 + k + s / 3), seed=10 * s + k))
                rows.append(f"{name},{kind},{source},instrument")
    rng = np.random.default_rng(0)
    for source, n in (("noise", 3), ("espeak", 2)):
        for k in range(n):
            name = f"{source}/unknown_{k}.wav"
            write(root / name, (0.1 * rng.standard_normal(22050)).astype("float32"))
            rows.append(f"{name},unknown,{source},noise-white")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


def test_with_overrides_refuses_options_the_recipe_does_not_use():
    from instrec.errors import ParameterError

    with pytest.raises(ParameterError, match="--image-mode.*mfcc-stats"):
        get_recipe("mfcc-stats").with_overrides(image_mode="rgb")
    with pytest.raises(ParameterError, match="--hidden.*cnn"):
        get_recipe("cnn").with_overrides(hidden=(8,))
    with pytest.raises(ParameterError, match="--activation.*cnn"):
        get_recipe("cnn").with_overrides(activation="selu")
    with pytest.raises(ParameterError, match="--activation.*no hidden layer"):
        get_recipe("mfcc-linear").with_overrides(activation="selu")
    with pytest.raises(ParameterError, match="--activation.*no hidden layer"):
        get_recipe("mfcc-stats").with_overrides(hidden=(), activation="selu")
    assert get_recipe("seed-spectrogram").with_overrides(image_mode="rgb").feature.image_mode == "rgb"
    assert get_recipe("mfcc-linear").with_overrides(hidden=(8,), activation="selu").model.activation == "selu"
    assert get_recipe("cnn").with_overrides(epochs=2).train.epochs == 2


def test_crossval_checks_out_before_any_feature(sources, tmp_path, monkeypatch, capsys):
    from instrec.cli import main
    from instrec.errors import ParameterError, WriteError
    from instrec.pipeline import validation

    def no_features(*a, **k):
        raise AssertionError("features computed before --out was checked")

    monkeypatch.setattr(validation, "dataset_features", no_features)
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ParameterError, match="afile"):
        cross_validate(list(sources), recipe=RECIPE, cv=LeaveOneSourceOut(), out=afile)
    with pytest.raises(WriteError, match="afile"):
        cross_validate(list(sources), recipe=RECIPE, cv=LeaveOneSourceOut(), out=afile / "sub")
    for out, code in ((afile, 2), (afile / "sub", 1)):
        with pytest.raises(SystemExit) as e:
            main(["crossval", *map(str, sources), "--epochs", "1", "--out", str(out)])
        assert e.value.code == code
        err = capsys.readouterr().err
        assert len(error_lines(err)) == 1 and "afile" in err
    with pytest.raises(SystemExit) as e:  # train --cv --report: the same check
        main(["train", str(sources[0]), "--cv", "2", "--epochs", "1", "--report", str(afile)])
    assert e.value.code == 2 and len(error_lines(capsys.readouterr().err)) == 1
    assert afile.read_text() == "x"
    # a new folder is checked without being left behind
    with pytest.raises(AssertionError, match="features computed"):
        cross_validate(list(sources), recipe=RECIPE, cv=LeaveOneSourceOut(), out=tmp_path / "new" / "rep")
    assert not (tmp_path / "new").exists()


def test_sources_of_negatives_only_always_train():
    from types import SimpleNamespace

    clips = ([SimpleNamespace(source=s, label=l) for s in "ab" for l in ("x", "y", "unknown")]
             + [SimpleNamespace(source="noise", label="unknown")] * 2 + [SimpleNamespace(source="espeak", label="unknown")])
    cv = LeaveOneSourceOut()
    folds = list(cv.split(clips))
    assert [f[3]["held_out"] for f in folds] == ["a", "b"]
    for _, tr, te, info in folds:
        assert {clips[i].source for i in tr} >= {"noise", "espeak"} and len(tr) + len(te) == len(clips)
        assert info["train_sources"] == sorted({"a", "b"} - {info["held_out"]}) + ["espeak", "noise"]
    assert cv.record(clips)["train_only"] == ["espeak", "noise"] and "train_only" not in cv.record()
    assert "espeak, noise" in cv.describe(clips) and "always" in cv.describe(clips)
    with pytest.raises(DataError, match="at least 2 sources"):
        cv.check(clips[:3] + clips[6:])  # one source of instruments and the negatives


def test_fold_means_say_how_many_folds_they_cover():
    from instrec.evaluate import crossval_markdown, crossval_summary, crossval_table

    def fold(name, n_train, n_test, acc, auc):
        return {"held_out": name, "train_sources": ["x"], "n_train": n_train, "n_test": n_test,
                "accuracy": acc, "macro_f1": acc, "roc_auc_ovr_macro": auc, "unknown_classes": {}}

    folds = [fold("a", 10, 10, 0.5, 0.6), fold("b", 10, 20, 0.7, 0.8), fold("c", 10, 30, 0.9, None),
             fold("d", 40, 100, None, None)]
    res = {"folds": folds, "mean": {"accuracy": 0.7, "macro_f1": 0.7, "roc_auc_ovr_macro": 0.7},
           "std": {"accuracy": 0.1, "macro_f1": 0.1, "roc_auc_ovr_macro": 0.1}, "context": {}}
    table = crossval_table(res)
    mean_row = table.splitlines()[-1]
    assert "10 / 20 (mean of 3 folds)" in mean_row  # d, never scored, is not in the counts
    assert "0.7000 ± 0.1000 (2 folds)" in mean_row and "70.00% ± 10.00% |" in mean_row
    summary = crossval_summary(res)
    assert "accuracy 70.00% ± 10.00% (3 of 4 folds)" in summary and "ROC AUC 0.7000 ± 0.1000 (2 of 4 folds)" in summary
    report = crossval_markdown(res, title="t")
    assert "accuracy and macro F1: mean of 3 folds; ROC AUC: mean of 2" in report
    every = {**res, "folds": folds[:2]}
    assert crossval_summary(every).endswith("(mean ± std of 2 folds)")


def test_crossval_negatives_overrides_and_joins(mixed, tmp_path):
    out = tmp_path / "R"
    r = run_cli("crossval", mixed, "--recipe", "seed-mfcc", "--epochs", "2", "--hidden", "none", "--join", "a+b",
                "--out", out)
    assert r.returncode == 0, r.stderr
    saved = json.loads((out / "crossval.json").read_text())
    assert [f["held_out"] for f in saved["folds"]] == ["a+b", "c"]  # noise and espeak never held out
    assert saved["folds"][1]["train_sources"] == ["a+b", "espeak", "noise"]
    assert saved["context"]["recipe"] == "seed-mfcc (epochs 2, hidden none)"
    assert saved["recipe"]["train"]["epochs"] == 2 and saved["recipe"]["model"]["hidden"] == []
    assert saved["split"]["libraries"] == {"a": "a+b", "b": "a+b"} and saved["split"]["train_only"] == ["espeak", "noise"]
    report = (out / "report.md").read_text()
    assert "seed-mfcc (epochs 2, hidden none)" in report and "espeak, noise" in report
    assert "seed-mfcc (epochs 2, hidden none): leave-one-library-out: accuracy" in r.stdout
    r = run_cli("crossval", mixed, "--recipe", "seed-mfcc", "--image-mode", "rgb")
    assert r.returncode == 2 and "--image-mode" in r.stderr and len(error_lines(r.stderr)) == 1
    for join, code, word in (("a", 2, "+"), ("a+nosuch", 1, "nosuch"), ("a+b+c", 1, "at least 2")):
        r = run_cli("crossval", mixed, "--epochs", "1", "--join", join)
        assert r.returncode == code and word in r.stderr and len(error_lines(r.stderr)) == 1, (join, r.stderr)
    r = run_cli("crossval", mixed, "--epochs", "1", "--join", "a+b", "--join", "b+c")
    assert r.returncode == 2 and "b" in r.stderr and len(error_lines(r.stderr)) == 1


@pytest.mark.parametrize("run", ["cross_validate", "train_model"])
@pytest.mark.parametrize("kwargs, words", [({"options": {"jobs": 2}}, "options must be a DataOptions"),
                                           ({"families": 3}, "families must map")])
def test_options_and_families_of_the_wrong_type_are_one_parameter_error(tmp_path, run, kwargs, words):
    """Review: options={"jobs": 2} raised AttributeError ('dict' object has no attribute 'load'),
    families=3 pathlib's TypeError: each is now a ParameterError naming it, before any work."""
    import instrec.pipeline as pipeline
    from instrec.errors import ParameterError

    with pytest.raises(ParameterError, match=words):
        getattr(pipeline, run)(tmp_path / "absent", recipe="mfcc-linear", **kwargs)


def test_a_scikit_learn_splitter_is_named_as_such(tmp_path):
    """cv=sklearn.model_selection.KFold(3) said 'cross-validation needs k ≥ 2 folds; got KFold(n_splits=3, ...)'."""
    from sklearn.model_selection import KFold as SkKFold

    from instrec.errors import ParameterError
    from instrec.pipeline import cross_validate

    with pytest.raises(ParameterError, match="cv must be a number of folds, instrec's KFold or LeaveOneSourceOut"):
        cross_validate(tmp_path / "absent", recipe="mfcc-linear", cv=SkKFold(3))


@pytest.mark.parametrize("run", ["evaluate_model", "calibrate_model"])
def test_evaluate_and_calibrate_name_options_of_the_wrong_type(tmp_path, run):
    import instrec.pipeline as pipeline
    from instrec.errors import ParameterError

    with pytest.raises(ParameterError, match="options must be a DataOptions"):
        extra = {"out": tmp_path / "m"} if run == "calibrate_model" else {}
        getattr(pipeline, run)("shipped", tmp_path / "absent", options={"jobs": 2}, **extra)
