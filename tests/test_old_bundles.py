"""Bundles written before the library was reorganised (2026-12-05) load and predict as they did.

``fixtures/old_bundle_*`` were saved by the code of that day: their recipes name the feature kind
``logmel`` and options since removed (vibrato, rumble, compression, distillation, the source
adversary), all at their "off" values. ``old_bundles_expected.json`` holds what they predicted then.
"""

import json
from pathlib import Path

import numpy as np
import pytest

import instrec
from instrec.classifier import InstrumentClassifier
from instrec.features import compute

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _probe(f0: float) -> np.ndarray:
    t = np.arange(int(8000 * 0.5)) / 8000
    return (0.3 * np.sin(2 * np.pi * f0 * t) + 0.1 * np.sin(2 * np.pi * 2 * f0 * t) * np.exp(-t)).astype(np.float32)


@pytest.mark.parametrize("name", ["old_bundle_cnn", "old_bundle_mlp"])
def test_old_bundle_loads_and_predicts_identically(name, tmp_path):
    expected = np.array(json.loads((FIXTURES / "old_bundles_expected.json").read_text())["probabilities"][name])
    clf = InstrumentClassifier.load(FIXTURES / name)
    X = np.stack([compute(_probe(f), clf.recipe.feature) for f in (300.0, 700.0)])
    assert np.abs(clf.predict_proba(X) - expected).max() < 1e-6
    # the same through the public API, and through ONNX after an export of the old bundle
    model = instrec.load_model(FIXTURES / name, engine="torch")
    assert np.abs(model.predict_proba(X) - expected).max() < 1e-6
    from instrec.export import export_onnx

    onnx = instrec.load_model(export_onnx(FIXTURES / name, tmp_path / "m.onnx"))
    assert np.abs(onnx.predict_proba(X) - expected).max() < 1e-4


def test_old_cnn_bundle_reads_logmel_as_the_waveform_window():
    clf = InstrumentClassifier.load(FIXTURES / "old_bundle_cnn")
    assert clf.recipe.feature.kind == "waveform" and clf.recipe.feature.dim == 4000


@pytest.mark.parametrize("name", ["old_bundle_cnn", "old_bundle_mlp"])
def test_old_bundles_get_the_default_families_and_no_calibration(name, tmp_path):
    """Saved before families, temperature and min_confidence: the defaults, and answers as before."""
    model = instrec.load_model(FIXTURES / name, engine="torch")
    assert model.families == {"high": ["high"], "low": ["low"]}  # not in the table: each its own family
    assert model.temperature is None and model.min_confidence == 0 and model.info["temperature"] == 1.0
    clf = InstrumentClassifier.load(FIXTURES / name)
    assert (clf.families_, clf.temperature_, clf.min_confidence_) == (None, None, None)
    saved = json.loads((clf.save(tmp_path / "again") / "model.json").read_text())
    assert not {"families", "temperature", "min_confidence"} & set(saved)  # saved again as it was
