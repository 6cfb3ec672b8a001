"""The torch and onnxruntime engines answer alike for every recipe, and the onnxruntime engine takes
and refuses the same feature rows as the torch engine; a folder's stale model.onnx is refused."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from instrec.classifier import InstrumentClassifier
from instrec.engines.onnx_engine import OnnxEngine
from instrec.engines.torch_engine import TorchEngine
from instrec.errors import BundleError, ParameterError
from instrec.export import export_onnx, is_up_to_date, onnx_path_for
from instrec.recipes import RECIPES, get_recipe

# max abs difference of probabilities, torch vs onnxruntime (see test_onnx.TOL)
TOL = 1e-3


def _small(name: str):
    """Recipe ``name`` trained briefly; the image recipe on a small picture (its 640x480 is only
    more of the same rows), every other feature as the recipe has it."""
    r = get_recipe(name)
    r = replace(r, train=replace(r.train, epochs=2, val_fraction=0.0, patience=0, pitch_shifts=()))
    if r.feature.kind == "image":
        r = replace(r, feature=replace(r.feature, width=32, height=24))
    return r


def _rows(recipe, n: int = 12) -> np.ndarray:
    rng = np.random.default_rng(0)
    dim = recipe.feature.dim
    if recipe.feature.kind == "image":
        return rng.integers(0, 256, (n, dim)).astype(np.float32) / np.float32(255)
    if recipe.feature.kind == "waveform":
        return (0.3 * rng.standard_normal((n, dim))).astype(np.float32)
    return rng.normal(0, 5, (n, dim)).astype(np.float32)


def _bundle(name: str, folder):
    recipe = _small(name)
    X = _rows(recipe)
    labels = ["a", "b;c", "a;c", "c"] * 3 if recipe.model.multilabel else ["a", "b", "c"] * 4
    clf = InstrumentClassifier(recipe, seed=0).fit(X, labels)
    return clf.save(folder / "bundle"), clf, X


@pytest.mark.parametrize("name", list(RECIPES))
def test_both_engines_give_the_same_probabilities_and_answers(name, tmp_path):
    bundle, clf, X = _bundle(name, tmp_path)
    torch_engine, onnx_engine = TorchEngine.load(bundle), OnnxEngine(export_onnx(bundle, tmp_path / "m.onnx"))
    assert onnx_engine.classes == torch_engine.classes == clf.classes
    assert onnx_engine.feature == torch_engine.feature
    p_torch, p_onnx = torch_engine.predict_proba(X), onnx_engine.predict_proba(X)
    assert p_onnx.shape == p_torch.shape == (len(X), 3)
    assert float(np.abs(p_torch - p_onnx).max()) < TOL
    if clf.multilabel:  # each class present where its probability reaches the threshold
        t = np.array([(clf.thresholds_ or {}).get(c, 0.5) for c in clf.classes])
        assert np.array_equal(p_onnx >= t, p_torch >= t)
        assert onnx_engine.meta["recipe"]["model"]["output"] == "sigmoid"
    else:
        assert np.array_equal(p_onnx.argmax(1), p_torch.argmax(1))
        assert np.allclose(p_onnx.sum(1), 1, atol=1e-5)


@pytest.fixture(scope="module")
def mfcc(tmp_path_factory):
    """A seed-mfcc bundle and its export."""
    folder = tmp_path_factory.mktemp("mfcc")
    bundle, clf, X = _bundle("seed-mfcc", folder)
    return bundle, OnnxEngine(export_onnx(bundle, folder / "m.onnx")), X


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e39])
def test_non_finite_rows_are_refused_by_both_engines(mfcc, bad):
    """onnxruntime answered NaN probabilities for a NaN row where the torch engine refuses it."""
    bundle, onnx_engine, X = mfcc
    rows = X[:3].astype(np.float64)
    rows[1, 4] = bad
    for engine in (TorchEngine.load(bundle), onnx_engine):
        with pytest.raises(ParameterError, match=r"NaN or infinity .* in 1 row\(s\), the first row 1"):
            engine.predict_proba(rows)


def test_rows_that_are_not_numbers_are_one_line_errors(mfcc):
    _, onnx_engine, _ = mfcc
    with pytest.raises(ParameterError, match="must hold numbers"):
        onnx_engine.predict_proba(np.array([["x"] * 40]))


def test_compact_image_pixels_are_read_as_the_torch_engine_reads_them(tmp_path):
    """The image's uint8 pixels (what extract(compact=True) returns): torch reads pixels / 255,
    onnxruntime read the raw 0-255 values and answered otherwise."""
    bundle, clf, X = _bundle("seed-spectrogram", tmp_path)
    pixels = np.round(X * 255).astype(np.uint8)
    onnx_engine = OnnxEngine(export_onnx(bundle, tmp_path / "m.onnx"))
    p_torch = TorchEngine.load(bundle).predict_proba(pixels)
    assert float(np.abs(onnx_engine.predict_proba(pixels) - p_torch).max()) < TOL
    assert float(np.abs(onnx_engine.predict_proba(X) - p_torch).max()) < TOL  # the same rows as floats


def test_a_folder_with_a_stale_model_onnx_is_refused(mfcc, tmp_path):
    """OnnxEngine(folder) ran whatever model.onnx the folder held: after the weights changed (a
    fine-tuning saved over the folder) it answered for the old model under the folder's name."""
    bundle, _, X = mfcc
    clf = InstrumentClassifier.load(bundle)
    folder = clf.save(tmp_path / "m")
    export_onnx(folder, onnx_path_for(folder))
    assert float(np.abs(OnnxEngine(folder).predict_proba(X) - clf.predict_proba(X)).max()) < TOL
    old = onnx_path_for(folder).read_bytes()
    with torch.no_grad():
        clf.net_.net[-1].bias[0] += 5.0  # one class's bias: the softmax changes
    clf.save(folder)
    onnx_path_for(folder).write_bytes(old)
    assert not is_up_to_date(onnx_path_for(folder), folder)
    with pytest.raises(BundleError, match="model.onnx: is stale: .*export it again") as e:
        OnnxEngine(folder)
    assert "\n" not in str(e.value)
    OnnxEngine(onnx_path_for(folder))  # the file itself still runs: it describes its own model
    export_onnx(folder, onnx_path_for(folder))
    assert float(np.abs(OnnxEngine(folder).predict_proba(X) - clf.predict_proba(X)).max()) < TOL


def _with_meta(engine: OnnxEngine, path, edit):
    """A copy of ``engine``'s file whose instrec metadata is ``edit(text)``."""
    import onnx

    from instrec.engines.onnx_engine import META_KEY

    proto = onnx.load(str(engine.path))
    entry = next(p for p in proto.metadata_props if p.key == META_KEY)
    entry.value = edit(entry.value)
    onnx.save(proto, str(path))
    return path


@pytest.mark.parametrize("edit,words", [
    (lambda t: t[:-1] + ', "training": ' + "[" * 100000 + "]" * 100000 + "}", "not valid JSON .*nested too deeply"),
    (lambda t: t.replace('"classes": ["a", "b", "c"]', '"classes": ["a", "b\\u001b[2J", "c"]'), "U[+]001B"),
    (lambda t: t[:-1] + ', "thresholds": {"a": 0.5, "b": 0.5, "zzz": 0.5}}', "thresholds must give each class"),
])
def test_hostile_onnx_metadata_is_a_one_line_bundle_error(mfcc, tmp_path, edit, words):
    """The .onnx file's model description is checked as model.json is: deep nesting ended in a
    RecursionError traceback, a class name with ESC and thresholds of unknown classes loaded."""
    _, onnx_engine, _ = mfcc
    bad = _with_meta(onnx_engine, tmp_path / "bad.onnx", edit)
    with pytest.raises(BundleError, match=words) as e:
        OnnxEngine(bad)
    assert str(bad) in str(e.value) and "\n" not in str(e.value)
