"""Score a model on labelled audio: on its own training data, only the test split it held back."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..classifier import InstrumentClassifier
from ..engines.torch_engine import TorchEngine
from ..errors import BundleError, DataError, counted
from ..evaluate import compute_metrics, write_report
from ..features import compact_dtype, expand
from ..fileio import writing
from ..inference import Model, load_model
from .common import DataOptions, Progress, bar, data_options, extract_rows, score_multilabel, split_words
from .heldback import held_back_record, training_clips as may_be_trained_on, training_clips_words, training_test_split

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
    options = data_options(options)
    if isinstance(model, InstrumentClassifier):
        model = Model(TorchEngine(model))
    elif not isinstance(model, Model):
        model = load_model(model)
    source = model.source
    all_classes = list(model.info["all_classes"])  # a model restricted already: all the network's
    if classes is not None:
        model = model.restrict(classes)  # bad names fail before any work
    info = model.info
    ds = options.load(data)
    clips, scope = ds.clips, "the whole data set"
    record = _held_back_record(model)
    test = training_test_split(record, ds.roots)
    if test is not None:
        clips = [c for c in clips if str(c.path.resolve()) in test]
        split = info.get("training", {}).get("split", {})
        words = split_words(split.get("method"), split.get("group_by"))
        scope = f"held-back test split of the training data ({words}, seed {split.get('seed')})"
        if not clips:
            raise DataError(f"{_data_words(data)}: none of the held-back test clips the model records is there any more; "
                            "evaluate it on other data")
    training_clips = len(may_be_trained_on(clips, info, record))
    if training_clips:
        scope += f": {training_clips_words(training_clips, len(clips), record is not None)}"
    _need_known_classes(clips, data, model.classes, all_classes, model.classes != all_classes, model.multilabel)
    if model.multilabel:
        metrics, ok, bad = _score_multilabel(model, clips, ds.roots, progress, dict(options.aliases or {}))
    else:
        X, ok, bad = extract_rows(clips, model.feature, options, progress, "features")
        truth = [clips[i].label for i in ok]
        metrics = compute_metrics(truth, _proba(model, X), model.classes, families=model.families,
                                  min_confidence=model.min_confidence)
    skipped = ds.skipped + bad
    if not metrics["n"]:  # every clip the model could score was skipped: a report of n/a scores nothing
        first = f", the first: {bad[0][0]}: {bad[0][1]}" if bad else ""
        raise DataError(f"{_data_words(data)}: none of the clips of a class the model scores could be read "
                        f"({counted(len(bad), 'file')} skipped{first}): nothing to score")
    # each unscored class under one name: known to the model but not chosen, or not known at all
    unscored = metrics.get("unknown_classes", {})
    left_out = {c: n for c, n in unscored.items() if c in all_classes}
    if "unknown_classes" in metrics:
        metrics["unknown_classes"] = {c: n for c, n in unscored.items() if c not in all_classes}
    if left_out:
        metrics["left_out_by_classes"] = left_out  # known to the model, not among ``classes``
    if training_clips:  # clips that may have been trained on: the figures flatter the model
        metrics["training_clips"] = {"n": training_clips, "of": len(clips), "held_back_record": record is not None}
    context = {
        # the folder read, not its name: "shipped" or a relative name could be another folder later
        "model": (str(Path(source).resolve()) if Path(source).exists() else source) if source else info["recipe"],
        "recipe": _recipe_words(info),
        **({"answers among": f"{len(model.classes)} of the model's {len(all_classes)} classes: {', '.join(model.classes)}"}
           if classes is not None else {}),
        "data": ", ".join(str(r) for r in ds.roots),
        "evaluated on": scope,
        **({"left out by the classes chosen (not scored)": ", ".join(f"{c} ({counted(n, 'clip')})" for c, n in left_out.items())}
           if left_out else {}),
        "clips": _clips_words(metrics, len(clips), len(skipped)),
        "sources": ", ".join(sorted({clips[i].source for i in ok})),
        "calibration": "a threshold per instrument (model.json's thresholds)" if model.multilabel else (f"temperature {model.info['temperature']:.3g}" if model.temperature is not None
                        else "none (a model from before calibration: temperature 1)")
                       + (f", min_confidence {model.min_confidence:.3g}" if model.min_confidence else ", no min_confidence"),
    }
    if out is not None:
        with writing(out):  # a full disk or a read-only folder: one line naming it (WriteError)
            write_report(out, metrics, title=f"{_recipe_words(info)}: evaluation", context=context, skipped=skipped)
    return metrics, skipped


def _score_multilabel(model: Model, clips, roots, progress: Progress | None, aliases: dict | None = None):
    """A multi-label model's scores: each clip predicted whole (a long one window by window, each
    instrument's file-level probability its best window's), scored against the clips' labels
    (:func:`score_multilabel`); where the data has ``activity.csv``, also frame-level F1 of the
    timelines against it, in frames of :data:`FRAME_SECONDS`. Returns ``(metrics, ok, skipped)``."""
    from ..data.activity import ACTIVITY_NAME, activity_matrix, read_activity, split_labels
    from ..errors import InstrecError
    from ..evaluate import frame_scores
    from ..timeline import frames

    spans, tabled = {}, []  # tabled: the folders with an activity table
    for root in roots:
        if (Path(root) / ACTIVITY_NAME).is_file():
            tabled.append(Path(root).resolve())
            spans.update({str((Path(root) / p).resolve()): v for p, v in read_activity(Path(root) / ACTIVITY_NAME, aliases).items()})
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
            if key not in spans and not split_labels(clip.label) and any(r in clip.path.resolve().parents for r in tabled):
                spans[key] = {}  # no instrument plays: the table has no stretch of it, every frame is silent
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
        P = model.predict_proba(X)
    else:
        P = np.concatenate([model.predict_proba(np.stack([expand(r, model.feature) for r in X[s : s + batch]]))
                            for s in range(0, len(X), batch)])
    if not np.isfinite(P).all():  # as predict refuses them: no figure, and no NaN in metrics.json
        raise BundleError(f"{model.source or 'the model'}: the network answered non-finite probabilities "
                          f"for {counted(int((~np.isfinite(P)).any(axis=1).sum()), 'clip')}")
    return P


def _held_back_record(model: Model) -> dict | None:
    """The record of the held-back test split of the model's training data (:func:`held_back_record`):
    its folder's ``split.json``, or an ``.onnx`` export's copy."""
    from ..engines import RestrictedEngine

    engine = model.engine.engine if isinstance(model.engine, RestrictedEngine) else model.engine
    return held_back_record(model.source, getattr(engine, "export_info", None))


def _need_known_classes(clips, data, classes: Sequence[str], all_classes: Sequence[str], chosen: bool,
                        multilabel: bool = False) -> None:
    """DataError (one line) when no clip has a class the model scores (multi-label: no clip has an
    instrument it scores): nothing could be scored."""
    from ..data.activity import split_labels

    found = sorted({n for c in clips for n in (split_labels(c.label) if multilabel else (c.label,))})
    if set(found) & set(classes):
        return
    where = _data_words(data)
    if not clips:
        raise DataError(f"{where}: no clips to score")
    if chosen and set(found) & set(all_classes):
        raise DataError(f"no clip of {where} has one of the classes chosen ({', '.join(classes)}); "
                        f"its classes: {', '.join(found)}; the model's: {', '.join(all_classes)}")
    raise DataError(f"no clip of {where} has a class the model knows; its classes: {', '.join(found) or 'none'}; "
                    f"the model's: {', '.join(all_classes)}")


def _clips_words(metrics: dict, n_clips: int, n_skipped: int) -> str:
    """The report's clips line: how many of the clips were scored and why the others were not.

    A single-label clip of a class the model does not know, or left out by ``classes``, is not
    scored; a multi-label clip is scored on the instruments it has that are scored (its others are
    listed by instrument, not by clip).
    """
    parts = []
    if not metrics.get("multilabel"):
        for key, words in (("unknown_classes", "of a class the model does not know"),
                           ("left_out_by_classes", "left out by the classes chosen (--classes)")):
            if metrics.get(key):
                parts.append(f"{sum(metrics[key].values())} {words}")
    return f"{metrics['n']} scored of {n_clips}" + (": " if parts else ", ") + ", ".join([*parts, f"{n_skipped} skipped"])


def _data_words(data) -> str:
    return str(data) if isinstance(data, (str, os.PathLike)) else ", ".join(str(d) for d in data)


def _recipe_words(info: dict) -> str:
    """The recipe as training named it, with any setting changed (``mfcc-stats (epochs 1)``)."""
    return info.get("training", {}).get("recipe_label") or info["recipe"]
