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
from .common import DataOptions, Progress, bar, extract_rows, score_multilabel, split_words
from .training import SPLIT_FILE

FRAME_SECONDS = 0.1  # the frames timelines are scored in against activity tables


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
    if model.multilabel:
        metrics, ok, bad = _score_multilabel(model, clips, ds.roots, progress)
    else:
        X, ok, bad = extract_rows(clips, model.feature, options, progress, "features")
        truth = [clips[i].label for i in ok]
        metrics = compute_metrics(truth, _proba(model, X), model.classes, families=model.families,
                                  min_confidence=model.min_confidence)
    skipped = ds.skipped + bad
    context = {
        "model": str(model_dir) if model_dir else info["recipe"],
        "recipe": info["recipe"],
        **({"answers among": f"{len(model.classes)} of the model's {len(all_classes)} classes: {', '.join(model.classes)}"}
           if classes is not None else {}),
        "data": ", ".join(str(r) for r in ds.roots),
        "evaluated on": scope,
        "clips": f"{len(ok)} scored of {len(clips)}, {len(skipped)} skipped",
        "sources": ", ".join(sorted({clips[i].source for i in ok})),
        "calibration": "a threshold per instrument (model.json's thresholds)" if model.multilabel else (f"temperature {model.info['temperature']:.3g}" if model.temperature is not None
                        else "none (a model from before calibration: temperature 1)")
                       + (f", min_confidence {model.min_confidence:.3g}" if model.min_confidence else ", no min_confidence"),
    }
    if out is not None:
        with writing(out):  # a full disk or a read-only folder: one line naming it (WriteError)
            write_report(out, metrics, title=f"{info['recipe']}: evaluation", context=context, skipped=skipped)
    return metrics, skipped


def _score_multilabel(model: Model, clips, roots, progress: Progress | None):
    """A multi-label model's scores: each clip predicted whole (a long one window by window, each
    instrument's file-level probability its best window's), scored against the clips' labels
    (:func:`score_multilabel`); where the data has ``activity.csv``, also frame-level F1 of the
    timelines against it, in frames of :data:`FRAME_SECONDS`. Returns ``(metrics, ok, skipped)``."""
    from ..data.activity import ACTIVITY_NAME, activity_matrix, read_activity
    from ..errors import InstrecError
    from ..evaluate import frame_scores
    from ..timeline import frames

    spans = {}
    for root in roots:
        if (Path(root) / ACTIVITY_NAME).is_file():
            spans.update({str((Path(root) / p).resolve()): v for p, v in read_activity(Path(root) / ACTIVITY_NAME).items()})
    update = bar(progress, "predicting", len(clips))
    ok, skipped, P, true_frames, pred_frames = [], [], [], [], []
    for i, clip in enumerate(clips):
        try:
            pred = model.predict_file(clip.path)
        except InstrecError as e:
            skipped.append((str(clip.path), str(e).removeprefix(f"{clip.path}: ")))
        else:
            ok.append(i)
            P.append([pred.probabilities[c] for c in model.classes])
            key = str(clip.path.resolve())
            if key in spans:
                n = int(np.ceil(pred.duration / FRAME_SECONDS))
                true_frames.append(activity_matrix(spans[key], model.classes, n_frames=n, hop_seconds=FRAME_SECONDS))
                pred_frames.append(frames(pred, model.classes, hop_seconds=FRAME_SECONDS, n_frames=n))
        if update:
            update(i + 1, len(clips))
    P = np.array(P, dtype=np.float64).reshape(len(ok), len(model.classes))
    metrics = score_multilabel([clips[i].label for i in ok], P, model.classes, model.info["thresholds"])
    if true_frames:
        metrics["frames"] = {**frame_scores(np.concatenate(true_frames), np.concatenate(pred_frames),
                                            classes=model.classes),
                             "hop_seconds": FRAME_SECONDS, "clips": len(true_frames)}
    return metrics, ok, skipped


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
