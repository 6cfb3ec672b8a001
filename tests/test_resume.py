"""Interrupted work continues where it stopped, with the same result as an uninterrupted run."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from instrec.classifier import InstrumentClassifier
from instrec.errors import DataError
from instrec.recipes import get_recipe


class Interrupt(Exception):
    pass


def _fit(recipe, X, y, checkpoint, *, stop_after=None, resume=False):
    clf = InstrumentClassifier(recipe, seed=3)

    def on_epoch(epoch, total, loss):
        if epoch == stop_after:
            raise Interrupt  # as if the process were killed right after this epoch's checkpoint

    clf.fit(X, y, on_epoch=on_epoch, checkpoint=checkpoint, resume=resume)
    return clf


def _same_weights(a, b) -> bool:
    sa, sb = a.net_.state_dict(), b.net_.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _mlp_recipe():
    r = get_recipe("seed-mfcc").with_overrides(epochs=8)
    # every stateful part on: mixup (numpy RNG), validation split, cosine schedule, early stopping
    return replace(r, train=replace(r.train, mixup=0.2, val_fraction=0.2, schedule="cosine", patience=5))


def _data(n=60, dim=40, classes=3):
    rng = np.random.default_rng(0)
    y = [f"c{i % classes}" for i in range(n)]
    X = rng.normal(size=(n, dim)).astype(np.float32) + np.array([int(l[1]) for l in y], np.float32)[:, None]
    return X, y


def test_resumed_mlp_equals_uninterrupted(tmp_path):
    X, y = _data()
    r = _mlp_recipe()
    whole = _fit(r, X, y, tmp_path / "a")
    with pytest.raises(Interrupt):
        _fit(r, X, y, tmp_path / "b", stop_after=3)
    meta = json.loads((tmp_path / "b" / "checkpoint.json").read_text())
    assert meta["epoch"] == 3 and len(meta["history"]["loss"]) == 3
    resumed = _fit(r, X, y, tmp_path / "b", resume=True)
    assert _same_weights(whole, resumed)
    assert resumed.history_["loss"] == whole.history_["loss"] and resumed.history_["best_epoch"] == whole.history_["best_epoch"]
    assert not list(tmp_path.glob(".*part"))  # no half-written checkpoint left


@pytest.mark.slow
def test_resumed_cnn_with_augmentation_equals_uninterrupted(tmp_path):
    r = get_recipe("cnn")
    r = replace(r, feature=replace(r.feature, seconds=0.5), model=replace(r.model, channels=(4, 8)),
                train=replace(r.train, epochs=4, batch_size=8))
    rng = np.random.default_rng(1)
    X = (0.1 * rng.normal(size=(24, r.feature.dim))).astype(np.float32)
    y = ["a", "b"] * 12
    whole = _fit(r, X, y, tmp_path / "a")
    with pytest.raises(Interrupt):
        _fit(r, X, y, tmp_path / "b", stop_after=2)
    assert _same_weights(whole, _fit(r, X, y, tmp_path / "b", resume=True))


def test_resume_refuses_another_runs_checkpoint(tmp_path):
    X, y = _data()
    r = _mlp_recipe()
    with pytest.raises(Interrupt):
        _fit(r, X, y, tmp_path / "ck", stop_after=2)
    with pytest.raises(DataError, match="another run"):
        _fit(r, X[:-3], y[:-3], tmp_path / "ck", resume=True)
    with pytest.raises(DataError, match="another run"):
        _fit(r.with_overrides(epochs=9), X, y, tmp_path / "ck", resume=True)


def test_damaged_checkpoint_is_a_clear_error(tmp_path):
    X, y = _data()
    r = _mlp_recipe()
    with pytest.raises(Interrupt):
        _fit(r, X, y, tmp_path / "ck", stop_after=2)
    (tmp_path / "ck" / "checkpoint.safetensors").write_bytes(b"garbage")
    with pytest.raises(DataError, match="cannot be read"):
        _fit(r, X, y, tmp_path / "ck", resume=True)


def test_resume_without_checkpoint_starts_afresh(tmp_path):
    X, y = _data()
    r = _mlp_recipe()
    a = _fit(r, X, y, tmp_path / "none", resume=True)
    b = _fit(r, X, y, None)
    assert _same_weights(a, b)
