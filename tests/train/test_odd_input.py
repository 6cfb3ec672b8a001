"""Training given what a careless or hostile user gives it: one clear line, never a traceback or a wrong result."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import error_lines, run_cli, write
from instrec.errors import DataError, ParameterError
from instrec.recipes import get_recipe


def test_the_run_key_tells_apart_data_that_differs_in_any_row():
    """A checkpoint of data with one clip re-recorded is another run's: --resume must refuse it."""
    from instrec.train.checkpoint import run_key

    config = get_recipe("mfcc-linear").train
    X = np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32)
    y = np.arange(200) % 2
    for row in range(5):  # the old key read every third row of 200: rows 1, 2, 4 went unseen
        other = X.copy()
        other[row, 0] += 1.0
        assert run_key("r", X, y, config, 0) != run_key("r", other, y, config, 0), row
    assert run_key("r", X, y, config, 0) == run_key("r", X.copy(), y, config, 0)


def test_the_run_key_tells_apart_label_matrices_that_differ_below_one():
    """Soft multi-label targets were cast to int: 0.3 and 0 present made one key, and --resume mixed the runs."""
    from instrec.train.checkpoint import run_key

    config = get_recipe("mfcc-linear").train
    X = np.zeros((4, 3), np.float32)
    Y = np.eye(4, 2, dtype=np.float32)
    soft = Y.copy()
    soft[2, 1] = 0.3
    assert run_key("r", X, Y, config, 0) != run_key("r", X, soft, config, 0)
    assert run_key("r", X, Y, config, 0) == run_key("r", X, Y.astype(np.float64), config, 0)
    assert run_key("r", X, np.zeros(4, np.int64), config, 0) != run_key("r", X, np.zeros((4, 1)), config, 0)


@pytest.mark.parametrize("fraction, y", [(0.7, [0, 0, 1, 1, 2, 2]), (0.9, [0, 1, 0, 1])])
def test_a_large_validation_fraction_never_fails_nor_empties_the_training_side(fraction, y):
    from instrec.train.loop import _validation_split

    tr, va = _validation_split(np.array(y), fraction, 0)
    assert len(tr) >= 1 and len(tr) + len(va) == len(y)
    assert not set(tr.tolist()) & set(va.tolist())


def test_the_checkpoint_is_beside_the_folder_named(tmp_path, monkeypatch):
    from instrec.pipeline.training import checkpoint_path

    (tmp_path / "a" / "b").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "a" / "b")
    assert checkpoint_path("..") == tmp_path / "a.checkpoint"  # not "...checkpoint" inside the model folder
    assert checkpoint_path(".") == tmp_path / "a" / "b.checkpoint"
    assert checkpoint_path("m/") == tmp_path / "a" / "b" / "m.checkpoint"
    with pytest.raises(ParameterError):
        checkpoint_path("/")


def test_cli_train_out_the_current_folder_is_one_line(tone_data, tmp_path):
    """The model folder is replaced whole on save: the current folder cannot be, so say so before any work."""
    here = tmp_path / "empty"
    here.mkdir()
    r = run_cli("train", tone_data, "--recipe", "mfcc-linear", "--out", ".", cwd=here)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    lines = error_lines(r.stderr)
    assert len(lines) == 1 and "current folder" in lines[0], r.stderr
    assert not any(here.iterdir()) and not (tmp_path / "empty.checkpoint").exists()


def test_all_clips_silent_says_why(tmp_path):
    from instrec.pipeline import train_model

    for kind in ("sine", "square"):
        for i in range(2):
            write(tmp_path / "data" / kind / f"{kind}{i}.wav", np.zeros(22050, dtype=np.float32))
    with pytest.raises(DataError, match="skipped.*silent"):
        train_model(tmp_path / "data", recipe="mfcc-linear")
    from instrec.pipeline import KFold, cross_validate

    with pytest.raises(DataError, match="4 listed files were skipped.*silent"):  # cross-validation says it too
        cross_validate(tmp_path / "data", recipe="mfcc-linear", cv=KFold(2))


def test_resume_without_a_model_folder_fails_before_any_feature(tone_data, monkeypatch):
    import instrec.pipeline.training as training
    from instrec.pipeline import train_model

    def no_features(*a, **k):
        raise AssertionError("features computed before the options were checked")

    monkeypatch.setattr(training, "extract_rows", no_features)
    with pytest.raises(ParameterError, match="--out"):
        train_model(tone_data, recipe="mfcc-linear", resume=True)


def test_a_folder_named_like_the_checkpoint_is_never_removed(tone_data, tmp_path):
    """mfcc-linear writes no checkpoint, yet the end of the run removed ``<out>.checkpoint``, whatever it held."""
    from instrec.pipeline import train_model

    mine = tmp_path / "m.checkpoint"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(ParameterError, match="not a training checkpoint"):
        train_model(tone_data, recipe="mfcc-linear", out=tmp_path / "m")
    assert (mine / "notes.txt").read_text() == "mine" and not (tmp_path / "m").exists()


def test_a_class_whose_every_clip_is_skipped_is_a_warning(tmp_path):
    from conftest import tone
    from instrec.pipeline import train_model

    for kind in ("sine", "square"):
        for i in range(3):
            write(tmp_path / "data" / kind / f"{kind}{i}.wav", tone(kind, 220.0 + 40 * i, seed=i))
    (tmp_path / "data" / "saw").mkdir()
    for i in range(2):
        (tmp_path / "data" / "saw" / f"saw{i}.wav").write_bytes(b"RIFF, but no audio" * 8)
    res = train_model(tmp_path / "data", recipe="mfcc-linear")
    assert res.model.classes == ["sine", "square"]
    assert "no usable clip of saw" in res.context["warning"]
