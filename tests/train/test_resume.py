"""Interrupted work continues where it stopped, with the same result as an uninterrupted run."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from instrec.classifier import InstrumentClassifier
from instrec.errors import DataError, ParameterError
from instrec.recipes import get_recipe


@pytest.fixture(autouse=True)
def checkpoint_every_epoch(monkeypatch):
    """A checkpoint after every epoch, as INSTREC_CHECKPOINT_SECONDS=0 asks, so that a run stopped
    after a few epochs has one; the processes the tests start inherit it."""
    monkeypatch.setenv("INSTREC_CHECKPOINT_SECONDS", "0")


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


def test_checkpoints_come_at_most_once_an_interval(tmp_path, monkeypatch):
    """A checkpoint after every epoch had doubled the training of a small network (500 epochs of
    seed-mfcc: 7.9 s of 15 s writing): by default one comes only when INSTREC_CHECKPOINT_SECONDS
    (30 s) have passed since the start or the last, never after the last epoch."""
    import time

    import instrec.train.loop as loop

    saved = []
    real = loop.save_checkpoint
    when = []
    monkeypatch.setattr(loop, "save_checkpoint", lambda path, key, epoch, *a: (
        saved.append(epoch), when.append(time.perf_counter()), real(path, key, epoch, *a)))
    X, y = _data()
    r = replace(_mlp_recipe(), train=replace(_mlp_recipe().train, patience=0, epochs=6))
    monkeypatch.delenv("INSTREC_CHECKPOINT_SECONDS")
    _fit(r, X, y, tmp_path / "default")
    assert saved == [] and loop.checkpoint_seconds() == loop.CHECKPOINT_SECONDS == 30
    monkeypatch.setenv("INSTREC_CHECKPOINT_SECONDS", "0")
    _fit(r, X, y, tmp_path / "zero")
    assert saved == [1, 2, 3, 4, 5]  # the last epoch's state is the model itself
    saved.clear()
    when.clear()
    monkeypatch.setenv("INSTREC_CHECKPOINT_SECONDS", "0.25")
    clf = InstrumentClassifier(r, seed=3)
    start = time.perf_counter()
    clf.fit(X, y, on_epoch=lambda *_: time.sleep(0.15), checkpoint=tmp_path / "timed")
    # epochs of 0.15 s and more: the first after 0.25 s, then none within 0.25 s of the one before
    assert saved and saved[0] >= 2 and len(saved) < 5
    assert all(b - a >= 0.25 for a, b in zip([start] + when, when)), (saved, when)
    for bad in ("-1", "soon", "nan", "inf"):
        monkeypatch.setenv("INSTREC_CHECKPOINT_SECONDS", bad)
        with pytest.raises(ParameterError, match="INSTREC_CHECKPOINT_SECONDS must be a number of seconds >= 0"):
            _fit(r, X, y, tmp_path / "bad")


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


@pytest.mark.slow
def test_resumed_cnn_equals_uninterrupted(tmp_path):
    """Batch-norm statistics, the cosine schedule, mixup's draws and the augmentation's random
    stream are all in the checkpoint: a resumed cnn ends with the uninterrupted run's weights."""
    r = get_recipe("cnn")
    r = replace(r, feature=replace(r.feature, seconds=0.5), model=replace(r.model, channels=(4, 8)),
                train=replace(r.train, epochs=4, batch_size=8, val_fraction=0.0, patience=0))
    rng = np.random.default_rng(2)
    X = (0.1 * rng.normal(size=(24, r.feature.dim))).astype(np.float32)
    y = ["a", "b"] * 12
    whole = _fit(r, X, y, tmp_path / "a")
    with pytest.raises(Interrupt):
        _fit(r, X, y, tmp_path / "b", stop_after=2)
    resumed = _fit(r, X, y, tmp_path / "b", resume=True)
    assert _same_weights(whole, resumed)
    assert resumed.history_["loss"] == whole.history_["loss"]


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


def test_batch_prediction_log_resumes(tone_data, tmp_path):
    """A killed `predict --log` run leaves complete lines and maybe a torn one; the next run drops
    the torn line, predicts only the files not yet listed, and ends with every file once."""
    from conftest import run_cli

    from instrec.classifier import InstrumentClassifier
    from instrec.data import load_dataset
    from instrec.features import extract
    from instrec.pipeline import predict_paths

    recipe = get_recipe("seed-mfcc").with_overrides(epochs=20)
    ds = load_dataset(tone_data)
    X, ok, _ = extract([c.path for c in ds.clips], recipe.feature)
    from instrec.engines.torch_engine import TorchEngine
    from instrec.inference import Model

    model = Model(TorchEngine(InstrumentClassifier(recipe).fit(X, [ds.clips[i].label for i in ok])))

    full, _ = predict_paths(model, [tone_data])
    log = tmp_path / "out.jsonl"
    predict_paths(model, [tone_data], log=log)
    lines = log.read_bytes().splitlines(keepends=True)
    assert len(lines) == len(full) == 30
    log.write_bytes(b"".join(lines[:12]) + lines[12][:40])  # killed while writing line 13

    calls = []
    original = model.predict_file
    model.predict_file = lambda f, **kw: calls.append(f) or original(f, **kw)
    again, skipped = predict_paths(model, [tone_data], log=log)
    assert len(calls) == 18 and not skipped
    assert sorted(r.path for r in again) == sorted(r.path for r in full)
    after = [json.loads(l) for l in log.read_text().splitlines()]
    assert sorted(d["path"] for d in after) == sorted(r.path for r in full)  # each file once
    by_path = {r.path: r for r in full}
    assert all(by_path[d["path"]].probabilities == pytest.approx(d["probabilities"]) for d in after)

    bundle = InstrumentClassifier(recipe).fit(X, [ds.clips[i].label for i in ok]).save(tmp_path / "m")
    r = run_cli("predict", "--model", bundle, tone_data, "--log", tmp_path / "cli.jsonl", "--format", "csv")
    assert r.returncode == 0, r.stderr
    assert len((tmp_path / "cli.jsonl").read_text().splitlines()) == 30


def test_cli_train_killed_then_resumed_gives_the_same_model(tone_data, tmp_path):
    """SIGKILL `instrec train` mid-way; `--resume` finishes it with the weights an uninterrupted run
    makes, and the checkpoint is gone once the model is saved."""
    import signal
    import subprocess
    import sys
    import time

    from conftest import run_cli
    from safetensors.numpy import load_file

    from instrec.bundle import recover_dir

    args = [sys.executable, "-m", "instrec", "train", str(tone_data), "--recipe", "seed-mfcc", "--epochs", "200", "--seed", "2"]
    # the uninterrupted run and the resumed one in this process (a process costs seconds of imports);
    # only the killed run needs a process of its own
    whole = run_cli(*args[3:], "--out", tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr

    out = tmp_path / "killed"
    ckpt = tmp_path / "killed.checkpoint" / "checkpoint.json"
    proc = subprocess.Popen(args + ["--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if json.loads(ckpt.read_text())["epoch"] >= 20:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # killed between moving the old checkpoint aside and renaming the new one in, the checkpoint
    # is in its aside copy; --resume puts it back, and so does this
    recover_dir(ckpt.parent)
    epoch = json.loads(ckpt.read_text())["epoch"]
    assert 20 <= epoch < 200 and not out.exists()

    r = run_cli(*args[3:], "--out", out, "--resume")
    assert r.returncode == 0, r.stderr
    a, b = load_file(str(tmp_path / "whole" / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert not (tmp_path / "killed.checkpoint").exists()
    assert r.stdout.split("model saved")[0].split("test accuracy")[1] == whole.stdout.split("model saved")[0].split("test accuracy")[1]


_EXTRACT = """
import sys
from pathlib import Path
from instrec.features import FeatureConfig, extract
from instrec.features.cache import FeatureCache
paths = sorted(Path(sys.argv[1]).rglob('*.wav'))
cache = FeatureCache(sys.argv[2])
X, ok, skipped = extract(paths, FeatureConfig(kind='image'), jobs=1, cache=cache)
print(cache.hits, cache.stored, len(ok))
"""


def _wavs(root, n=40):
    from conftest import tone, write

    for i in range(n):
        write(root / f"c{i:02d}.wav", tone(("sine", "saw", "square")[i % 3], 110.0 + 7 * i, seconds=1.0))
    return root


def test_two_runs_sharing_a_cache_at_once_do_not_corrupt_it(tmp_path):
    """Two processes extract the same files into one cache at the same time; afterwards every entry
    is whole (a third run hits them all) and equals a fresh computation."""
    import subprocess
    import sys

    from instrec.features import FeatureConfig, extract
    from instrec.features.cache import FeatureCache

    data, cache = _wavs(tmp_path / "data"), tmp_path / "cache"
    procs = [subprocess.Popen([sys.executable, "-c", _EXTRACT, str(data), str(cache)], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    third = FeatureCache(cache)
    paths = sorted(data.rglob("*.wav"))
    X, ok, _ = extract(paths, FeatureConfig(kind="image"), jobs=1, cache=third)
    assert third.hits == len(paths) and third.corrupt == 0 and len(ok) == len(paths)
    fresh, _, _ = extract(paths, FeatureConfig(kind="image"), jobs=1, cache=False)
    assert np.array_equal(X, fresh)


def test_killed_extraction_is_finished_by_the_next_run(tmp_path):
    """SIGKILL an extraction part-way: the next run reuses every entry the first one finished and
    computes only the rest."""
    import signal
    import subprocess
    import sys
    import time

    from instrec.features.cache import FeatureCache

    data, cache = _wavs(tmp_path / "data", n=60), tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, "-c", _EXTRACT, str(data), str(cache)], stdout=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(cache.rglob("*.feat"))) < 10:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = list(cache.rglob("*.feat"))  # entries appear whole (renamed into place) or not at all
    assert 10 <= len(done) < 60
    r = subprocess.run([sys.executable, "-c", _EXTRACT, str(data), str(cache)], capture_output=True, text=True, timeout=300)
    hits, stored, n_ok = map(int, r.stdout.split())
    assert n_ok == 60 and hits == len(done) and stored == 60 - len(done)
