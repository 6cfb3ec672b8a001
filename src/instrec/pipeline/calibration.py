"""Recalibrating a trained model on a user's own labelled recordings: its decision (temperature and
``unknown`` threshold, or a multi-label model's per-instrument thresholds) chosen there, the
network unchanged."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Sequence


from ..classifier import InstrumentClassifier
from ..errors import DataError, ParameterError
from .common import DataOptions, Progress, check_model_out, extract_rows, load_base_model


def calibrate_model(
    model: InstrumentClassifier | str | os.PathLike,
    data: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    out: str | os.PathLike,
    options: DataOptions | None = None,
    progress: Progress | None = None,
) -> tuple[dict, list[tuple[str, str]]]:
    """Choose ``model``'s decision on labelled ``data`` and save the model so decided to ``out``.

    Models trained on renders are too sure of real recordings, or (multi-label) not sure enough:
    their thresholds were chosen on renders. This refits them on recordings like those the model
    will hear (:meth:`InstrumentClassifier.calibrate`): a single-label model's temperature and
    ``unknown`` threshold (from at least :data:`~instrec.calibration.MIN_ROWS` clips), a multi-label
    model's threshold for each instrument (best F1 each) that :data:`~instrec.calibration.MIN_POSITIVES`
    clips have and one lacks. The weights are not changed. Use recordings that are not the ones you then evaluate on.

    ``model``: a model folder, ``"shipped"`` or an :class:`InstrumentClassifier`. Clips labelled
    with a class the model does not know are left out (counted in the result). Returns
    ``(calibration, skipped)``: :attr:`InstrumentClassifier.calibration_` plus ``clips``,
    ``left_out`` (class → clips), ``data`` and, multi-label, ``kept`` (the instruments with too few
    clips, with or without them, to choose for: their thresholds are kept); ``out`` gets the model with its new decision, its
    model.json recording the calibration (``metrics.calibration``) and what it was before.
    """
    from ..calibration import MIN_POSITIVES, MIN_ROWS, has_own_threshold
    from ..data.activity import label_matrix, split_labels

    options = options or DataOptions()
    check_model_out(out)
    clf = load_base_model(model)
    if clf is None:
        raise ParameterError("calibrate_model needs a model: a folder, 'shipped' or an InstrumentClassifier")
    if not isinstance(model, InstrumentClassifier) and str(model) != "shipped" and Path(out).resolve() == Path(model).resolve():
        raise ParameterError(f"{out}: write the recalibrated model to another folder than the model's own")
    ds = options.load(data)
    known = set(clf.classes)
    left_out = Counter()
    clips = []
    for c in ds.clips:
        names = split_labels(c.label) if clf.multilabel else (c.label,)
        if all(n in known for n in names):
            clips.append(c)
        else:
            left_out.update(n for n in names if n not in known)
    if not clips:
        raise DataError(f"none of the clips is of a class the model knows ({', '.join(sorted(left_out)) or 'no clips'})")
    X, ok, bad = extract_rows(clips, clf.recipe.feature, options, progress, "features")
    labels = [clips[i].label for i in ok]
    if not labels:
        raise DataError("no clip could be read: nothing to calibrate on")
    before = {k: v for k, v in (("temperature", clf.temperature_), ("min_confidence", clf.min_confidence_),
                                ("thresholds", clf.thresholds_)) if v is not None}
    kept = []
    if clf.multilabel:
        Y = label_matrix(labels, clf.classes)
        own = has_own_threshold(Y)
        if not own.any():
            raise DataError(f"no instrument has {MIN_POSITIVES} of the {len(labels)} clips with it and one without: "
                            "too few to choose a threshold on")
        kept = [c for c, o in zip(clf.classes, own) if not o]
        clf.calibrate(X, Y)
    else:
        # a temperature or threshold from a handful of clips is noise (12 clips gave T 0.05 and no 'unknown')
        if len(labels) < MIN_ROWS:
            others = len(ds.clips) - len(clips)
            raise DataError(f"{len(labels)} clips of classes the model knows: too few to choose its decision on "
                            f"(at least {MIN_ROWS})" + (f"; {others} more are of classes it does not know" if others else ""))
        clf.calibrate(X, [clf.classes.index(label) for label in labels])
    where = ", ".join(str(r) for r in ds.roots)
    record = {**clf.calibration_, "on": where, "clips": len(labels), "left_out": dict(sorted(left_out.items())),
              "before": before, **({"kept": kept} if clf.multilabel else {})}
    metrics = {**(clf.info.get("metrics") or {}), "calibration": record}
    clf.save(out, info={"metrics": metrics})
    skipped = ds.skipped + bad
    return {**record, "data": where}, skipped
