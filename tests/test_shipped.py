"""The model that ships inside the package: present, small, documented, and right out of the box."""

import json

from instrec.assets import shipped_model_path
from instrec.classifier import InstrumentClassifier
from instrec.data.render import render

from conftest import run_cli

SIX = {"flute", "viola", "cello", "oboe", "trumpet", "saxophone"}


def test_shipped_bundle_is_small_and_says_how_it_was_made():
    path = shipped_model_path()
    size = sum(f.stat().st_size for f in path.iterdir())
    assert size < 10 * 2**20
    meta = json.loads((path / "model.json").read_text())
    assert meta["recipe"]["name"] == "cnn" and SIX <= set(meta["classes"])
    t = meta["training"]
    assert t["render"]["soundfont"] == "all" and "seed" in t["render"] and t["script"] == "scripts/train_shipped_model.py"
    assert "philharmonia_600" in meta["metrics"] or "validation_accuracy" in meta["metrics"]


def test_predict_with_no_model_argument(tmp_path):
    # Fresh clips (another seed) from two SoundFonts: the shipped model must name most of them.
    render(tmp_path / "a", soundfont="timgm6mb", per_class=2, seed=12345)
    render(tmp_path / "b", soundfont="fluidr3", per_class=2, seed=12345)
    r = run_cli("predict", tmp_path, "--format", "json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert len(res) == 24
    right = sum(x["label"] == x["path"].rsplit("/", 1)[-1].split("_")[0] for x in res)
    assert right >= 18, f"only {right}/24 right"


def test_python_loads_the_shipped_model():
    clf = InstrumentClassifier.load(shipped_model_path())
    assert SIX <= set(clf.classes)
