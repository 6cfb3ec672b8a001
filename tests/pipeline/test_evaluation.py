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
