"""Score a model on labelled audio: on its own training data, only the test split it held back."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..classifier import InstrumentClassifier
from ..data.folder import Dataset
from ..engines.torch_engine import TorchEngine
from ..evaluate import compute_metrics, write_report
from ..features import compact_dtype, expand
from ..fileio import writing
from ..inference import Model, load_model
from .common import DataOptions, Progress, extract_rows, split_words
from .training import SPLIT_FILE


def evaluate_model(
    model: Model | InstrumentClassifier | str | os.PathLike,
    data: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    out: str | os.PathLike | None = None,
    options: DataOptions | None = None,
    classes: Sequence[str] | str | None = None,
    progress: Progress | None = None,
) -> tuple[dict, list[tuple[str, str]]]:
    """Score a model on labelled data; on its own training data, only the held-back test split.

    ``model``: a loaded :class:`~instrec.inference.Model` (either engine), a trained
    :class:`InstrumentClassifier`, a model folder or ``.onnx`` file, or ``"shipped"``.
    ``classes``: score the model's answers among these of its classes only (probabilities
    renormalised; see :class:`instrec.engines.RestrictedEngine`), e.g. the tutorial's six for a
    model that knows more. Returns ``(metrics, skipped)`` and, with ``out``, writes metrics.json,
    confusion_matrix.png, family_confusion_matrix.png, reliability.png and report.md there
    (:func:`~instrec.evaluate.write_report`): the figures at instrument and at family level, and the
    expected calibration error of the model's (calibrated) probabilities.
    """
    options = options or DataOptions()
    model_dir = None
    if isinstance(model, InstrumentClassifier):
        model = Model(TorchEngine(model))
    elif not isinstance(model, Model):
        model = load_model(model)
        model_dir = Path(model.source)
    all_classes = model.classes
    if classes is not None:
        model = model.restrict(classes)  # bad names fail before any work
    info = model.info
    ds = options.load(data)
    clips, scope = ds.clips, "the whole data set"
    test = _training_test_split(model_dir, ds)
    if test is not None:
        clips = [c for c in clips if str(c.path.resolve()) in test]
        split = info.get("training", {}).get("split", {})
        words = split_words(split.get("method"), split.get("group_by"))
        scope = f"held-back test split of the training data ({words}, seed {split.get('seed')})"
    X, ok, bad = extract_rows(clips, model.feature, options, progress, "features")
    skipped = ds.skipped + bad
    truth = [clips[i].label for i in ok]
    metrics = compute_metrics(truth, _proba(model, X), model.classes, families=model.families,
                              min_confidence=model.min_confidence)
    context = {
        "model": str(model_dir) if model_dir else info["recipe"],
        "recipe": info["recipe"],
        **({"answers among": f"{len(model.classes)} of the model's {len(all_classes)} classes: {', '.join(model.classes)}"}
           if classes is not None else {}),
        "data": ", ".join(str(r) for r in ds.roots),
        "evaluated on": scope,
        "clips": f"{len(ok)} scored of {len(clips)}, {len(skipped)} skipped",
        "sources": ", ".join(sorted({clips[i].source for i in ok})),
        "calibration": (f"temperature {model.info['temperature']:.3g}" if model.temperature is not None
                        else "none (a model from before calibration: temperature 1)")
                       + (f", min_confidence {model.min_confidence:.3g}" if model.min_confidence else ", no min_confidence"),
    }
    if out is not None:
        with writing(out):  # a full disk or a read-only folder: one line naming it (WriteError)
            write_report(out, metrics, title=f"{info['recipe']}: evaluation", context=context, skipped=skipped)
    return metrics, skipped


def _proba(model: Model, X: np.ndarray, batch: int = 256) -> np.ndarray:
    """The model's probabilities of compact feature rows (the image's uint8 pixels are expanded a batch at a time)."""
    if not len(X):
        return np.zeros((0, len(model.classes)), np.float32)
    if compact_dtype(model.feature) == np.float32:
        return model.predict_proba(X)
    return np.concatenate([model.predict_proba(np.stack([expand(r, model.feature) for r in X[s : s + batch]]))
                           for s in range(0, len(X), batch)])


def _training_test_split(model_dir: Path | None, ds: Dataset) -> set[str] | None:
    """The training run's test files when ``ds`` is the data the model was trained on."""
    if model_dir is None or not (model_dir / SPLIT_FILE).is_file():
        return None
    try:
        record = json.loads((model_dir / SPLIT_FILE).read_text(encoding="utf-8"))
        roots, test = record["roots"], record["test"]
    except (ValueError, KeyError, TypeError):
        return None
    if sorted(roots) != sorted(str(r) for r in ds.roots):
        return None
    return set(test)
