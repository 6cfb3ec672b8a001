"""evaluate_model on multi-label data: frame scores against the activity table."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import soundfile as sf

import instrec
from instrec.pipeline import evaluate_model


def test_a_clip_where_no_instrument_plays_is_scored_as_silent_frames(multilabel_model, mixture_data, tmp_path):
    """A clip labelled 'unknown' (none plays) has no row in activity.csv: its frames are all silent
    and count, so instruments heard there are false positives; they used to be left out unseen."""
    data = tmp_path / "data"
    shutil.copytree(mixture_data, data)
    rows = list(csv.DictReader(open(data / "manifest.csv", newline="")))
    sr = sf.info(data / rows[0]["path"]).samplerate
    sf.write(data / "noise.wav", (0.3 * np.random.default_rng(0).standard_normal(3 * sr)).astype(np.float32), sr)
    with open(data / "manifest.csv", "a", newline="") as fh:
        csv.DictWriter(fh, fieldnames=list(rows[0])).writerow({**{k: "" for k in rows[0]}, "path": "noise.wav",
                                                               "label": "unknown"})
    model = tmp_path / "model"
    shutil.copytree(multilabel_model, model)
    (model / "split.json").unlink()  # score every clip
    meta = json.loads((model / "model.json").read_text())
    meta["thresholds"] = {c: 0.0 for c in meta["classes"]}  # hears every instrument everywhere
    (model / "model.json").write_text(json.dumps(meta))
    metrics, skipped = evaluate_model(instrec.load_model(model, engine="torch"), data)
    assert skipped == [] and metrics["n"] == len(rows) + 1
    assert metrics["frames"]["clips"] == len(rows) + 1 and metrics["frames"]["frames"] == 30 * (len(rows) + 1)


def test_data_with_no_instrument_the_model_knows_is_refused(multilabel_model, mixture_data, tmp_path):
    """As for a single-label model: a report of n/a and 0.0000 scores nothing (exit 0 before)."""
    import pytest

    from instrec.errors import DataError

    for k, name in enumerate(("oboe", "trumpet")):
        (tmp_path / "data" / name).mkdir(parents=True)
        shutil.copy(sorted(mixture_data.glob("*.wav"))[k], tmp_path / "data" / name / "a.wav")
    with pytest.raises(DataError, match="no clip of .* has a class the model knows; its classes: oboe, trumpet"):
        evaluate_model(multilabel_model, tmp_path / "data", out=tmp_path / "report")
    assert not (tmp_path / "report").exists()


def test_a_timeline_exactly_as_the_activity_table_scores_frame_f1_one(multilabel_model, mixture_data):
    """Review: the table's frames were marked wherever a span overlapped them, the timeline's where
    a segment held their centre: a timeline exactly as activity.csv lost a frame at most span edges
    (recall 0.97, frame F1 0.98 on mixture_data)."""
    import soundfile as sf

    from instrec.data.activity import read_activity
    from instrec.results import Prediction, Track

    spans = {str((mixture_data / p).resolve()): v for p, v in read_activity(mixture_data / "activity.csv").items()}
    model = instrec.load_model(multilabel_model, engine="torch")

    def as_the_table(path, **_):
        heard = spans.get(str(path.resolve()), {})
        return Prediction(str(path), "unknown", {c: float(c in heard) for c in model.classes},
                          duration=sf.info(str(path)).duration,
                          instruments=[Track(c, c, 1.0, list(v)) for c, v in heard.items()])

    model.predict_file = as_the_table
    metrics, _ = evaluate_model(model, mixture_data)
    assert any(s % 0.1 > 1e-6 for v in spans.values() for r in v.values() for s, _ in r)  # spans off the frame grid
    f = metrics["frames"]
    assert (f["precision"], f["recall"], f["f1"]) == (1.0, 1.0, 1.0)
    assert set(f["per_class"].values()) == {1.0}


def _tone_model(tone_data):
    from instrec.pipeline import train_model
    from instrec.recipes import get_recipe

    return train_model(tone_data, recipe=get_recipe("seed-mfcc").with_overrides(epochs=2), seed=0).model


def test_data_whose_scorable_clips_are_all_unreadable_is_refused(tone_data, tmp_path):
    """Review: every clip of a known class unreadable wrote a report of n/a on 0 clips (exit 0),
    where data without a known class is refused with no report."""
    import pytest

    from instrec.errors import DataError

    for name in ("sine", "square"):
        (tmp_path / "data" / name).mkdir(parents=True)
        (tmp_path / "data" / name / "a.wav").write_text("not audio")
    with pytest.raises(DataError, match="none of the clips of a class the model scores could be read "
                                        r"\(2 files skipped, the first: .*a.wav: not readable"):
        evaluate_model(_tone_model(tone_data), tmp_path / "data", out=tmp_path / "report")
    assert not (tmp_path / "report").exists()


def test_non_finite_probabilities_are_refused_not_scored(tone_data, tmp_path):
    """Review: a network answering NaN failed with scikit-learn's "Input contains NaN" (a
    traceback); predict refuses such answers in one line, and so does evaluate now."""
    import pytest

    from instrec.errors import BundleError

    from instrec.engines.torch_engine import TorchEngine
    from instrec.inference import Model

    model = Model(TorchEngine(_tone_model(tone_data)))
    real = model.predict_proba
    model.predict_proba = lambda X: np.where(np.arange(len(X))[:, None] == 0, np.nan, real(X))
    with pytest.raises(BundleError, match="non-finite probabilities for 1 clip$"):
        evaluate_model(model, tone_data / "sine", out=tmp_path / "report")
    assert not (tmp_path / "report").exists()
