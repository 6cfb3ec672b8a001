"""The model that ships inside the package: present, small, documented, and right out of the box."""

import json
from pathlib import Path

import numpy as np
import pytest

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
    assert t["render"]["soundfont"] == "everything" and "seed" in t["render"] and t["script"] == "scripts/train_shipped_model.py"
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


def _training_script():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / "train_shipped_model.py"
    spec = importlib.util.spec_from_file_location("train_shipped_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_bundle_is_what_the_script_trains_by_default():
    # "one command": the bundle's instruments are the script's default ones, and it knows the six
    script = _training_script()
    meta = json.loads((shipped_model_path() / "model.json").read_text())
    assert meta["training"]["render"]["instruments"] == list(script.SHIPPED_INSTRUMENTS)
    assert f"--negatives {meta['training']['render']['negatives']}" in script.__doc__
    assert sorted(meta["classes"]) == sorted([*script.SHIPPED_INSTRUMENTS, "unknown"]) and len(meta["classes"]) >= 25
    six = meta["metrics"]["philharmonia_600_six_class_mode"]
    assert six["n"] == 600 and np.array(six["confusion_matrix"]).shape == (6, 6)


def test_merge_option_parses_and_refuses_bad_specs():
    families = _training_script()._merges
    six = ["flute", "saxophone"]
    assert families(["saxophone=alto-sax, tenor-sax"], six) == {"saxophone": ["alto-sax", "tenor-sax"]}
    assert families([], six) == {}
    for bad in ("violin=violin", "saxophone=", "saxophone"):
        with pytest.raises(SystemExit, match="--merge"):
            families([bad], six)


def test_script_renders_trains_and_writes_a_bundle(tmp_path):
    """The one command end to end, tiny: renders every library, trains, writes a bundle saying how."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "scripts" / "train_shipped_model.py"
    cmd = [sys.executable, str(script), "--per-class", "1", "--negatives", "1", "--epochs", "1", "--instruments", "flute,cello",
           "--seed", "1", "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out"),
           "--real", str(tmp_path / "no-real-clips"), "--phrases", "1", "--jobs", "1"]  # tiny: a pool would cost more
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    assert "trained seed 1 in" in first.stdout
    meta = json.loads((tmp_path / "out" / "model.json").read_text())
    assert meta["training"]["render"]["seed"] == 1 and sorted(meta["classes"]) == ["cello", "flute", "unknown"]
    # solo phrases: parts of music of the training works heard alone, only on the instruments trained
    phrases = list((tmp_path / "work" / "phrases-seed1" / "train-phrases").glob("*.wav"))
    renders = list((tmp_path / "work").glob("render-*/*/*.wav"))
    assert phrases and {p.stem.rsplit("_", 1)[1] for p in phrases} <= {"flute", "cello"}
    assert meta["training"]["render"]["phrases"] == 1 and meta["training"]["data"]["n"] == len(renders) + len(phrases)
    assert meta["families"]["woodwinds"] == ["flute"] and meta["families"]["unknown"] == ["unknown"]
    assert "distill_weight" not in meta["recipe"]["train"] and "vibrato" not in meta["recipe"]["model"]
