"""Recalibrating a trained model on a user's own labelled recordings: its decision (temperature and
``unknown`` threshold, or a multi-label model's per-instrument thresholds) chosen there, the
network unchanged."""

from __future__ import annotations

import math
import os
from collections import Counter
from pathlib import Path
from typing import Sequence


from ..classifier import InstrumentClassifier
from ..errors import DataError, ParameterError
from .common import DataOptions, Progress, check_model_out, data_options, extract_rows, load_base_model
from .heldback import held_back_record, training_clips, training_test_split

SURE = 0.99  # an 'unknown' threshold this high rejects all but certainties: the data saw nothing else


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

    Clips the model may have been trained on would make it certain of everything: on its own
    training data only the held-back test split its folder records (``split.json``) is used, as
    :func:`~instrec.pipeline.evaluate_model` scores it; elsewhere the clips that lie in a folder it
    was trained on, not held back, are left out (:mod:`instrec.pipeline.heldback`).

    ``model``: a model folder, ``"shipped"`` (always the shipped model) or an :class:`InstrumentClassifier`. Clips labelled
    with a class the model does not know are left out (counted in the result). Returns
    ``(calibration, skipped)``: :attr:`InstrumentClassifier.calibration_` plus ``clips``,
    ``left_out`` (class → clips), ``data``, ``model`` (the folder read, real path, or ``shipped``),
    ``training_clips`` (``n`` of ``of`` left out as trained on; ``held_back``: fitted on the held-back split),
    ``notes`` (lines for stderr: what was left out, and a warning when the data cannot tell the
    model's confidence from certainty) and, multi-label, ``kept`` (the instruments with too few
    clips, with or without them, to choose for: their thresholds are kept); ``out`` gets the model with its new decision, its
    model.json recording the calibration (``metrics.calibration``, less ``notes``) and what it was before.
    """
    from ..assets import SHIPPED_MODEL
    from ..calibration import MIN_POSITIVES, MIN_ROWS, has_own_threshold
    from ..data.activity import label_matrix, split_labels

    options = data_options(options)
    check_model_out(out)
    clf = load_base_model(model)
    if clf is None:
        raise ParameterError("calibrate_model needs a model: a folder, 'shipped' or an InstrumentClassifier")
    # the folder read, however named: its own name or another spelling of it is refused alike
    if clf.path_ is not None and Path(out).resolve() == clf.path_.resolve():
        raise ParameterError(f"{out}: write the recalibrated model to another folder than the model's own")
    ds = options.load(data)
    where = ", ".join(str(r) for r in ds.roots)
    fresh, trained = _untrained_clips(clf, ds, where)
    known = set(clf.classes)
    left_out = Counter()
    clips = []
    for c in fresh:
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
    lost = f"; {trained['n']} more were left out, clips the model may have been trained on" if trained and trained["n"] else ""
    before = {k: v for k, v in (("temperature", clf.temperature_), ("min_confidence", clf.min_confidence_),
                                ("thresholds", clf.thresholds_)) if v is not None}
    kept = []
    if clf.multilabel:
        Y = label_matrix(labels, clf.classes)
        own = has_own_threshold(Y)
        if not own.any():
            raise DataError(f"too few clips to choose a threshold on: an instrument needs {MIN_POSITIVES} clips with it "
                            f"and one without, and none has them among these {len(labels)}{lost}")
        kept = [c for c, o in zip(clf.classes, own) if not o]
        clf.calibrate(X, Y)
    else:
        # a temperature or threshold from a handful of clips is noise (12 clips gave T 0.05 and no 'unknown')
        if len(labels) < MIN_ROWS:
            others = len(fresh) - len(clips)
            raise DataError(f"{len(labels)} clips of classes the model knows: too few to choose its decision on "
                            f"(at least {MIN_ROWS})" + (f"; {others} more are of classes it does not know" if others else "")
                            + lost)
        clf.calibrate(X, [clf.classes.index(label) for label in labels])
    source = clf.path_ and ("shipped" if clf.path_.resolve() == SHIPPED_MODEL.resolve() else str(clf.path_.resolve()))
    record = {**clf.calibration_, "on": where, "clips": len(labels), "left_out": dict(sorted(left_out.items())),
              "before": before, **({"kept": kept} if clf.multilabel else {}), **({"model": source} if source else {}),
              **({"training_clips": trained} if trained else {})}
    metrics = {**(clf.info.get("metrics") or {}), "calibration": record}
    clf.save(out, info={"metrics": metrics})
    skipped = ds.skipped + bad
    notes = [*([_trained_words(trained)] if trained else []), *_certainty_warning(clf)]
    return {**record, "data": where, "notes": notes}, skipped


def _untrained_clips(clf: InstrumentClassifier, ds, where: str) -> tuple[list, dict | None]:
    """The clips of ``ds`` to calibrate on, and what was left out as trained on (``{"n", "of",
    "held_back"}``; None when nothing was): on the model's training data its held-back test split,
    elsewhere every clip but those in a folder it was trained on and not held back."""
    record = held_back_record(clf.path_)
    test = training_test_split(record, ds.roots)
    if test is not None:
        clips = [c for c in ds.clips if str(c.path.resolve()) in test]
        if not clips:
            raise DataError(f"{where}: none of the held-back test clips the model records is there any more; "
                            "calibrate it on other recordings")
    else:
        trained = {id(c) for c in training_clips(ds.clips, clf.info, record)}
        clips = [c for c in ds.clips if id(c) not in trained]
        if not clips and trained:
            raise DataError(f"{where}: all {len(trained)} clips lie in the folder the model was trained on, "
                            + ("and none is in its held-back test split" if record else
                               "and the model carries no record of its held-back test split")
                            + ": calibrate it on other recordings")
    n = len(ds.clips) - len(clips)
    return clips, ({"n": n, "of": len(ds.clips), "held_back": test is not None} if n or test is not None else None)


def _trained_words(t: dict) -> str:
    """The line saying which clips calibration left out as trained on."""
    if t["held_back"]:
        return (f"calibrated on the held-back test split of the model's training data: {t['of'] - t['n']} of the "
                f"{t['of']} clips" + (f"; the other {t['n']} were left out (the model may have been trained on them)"
                                      if t["n"] else ""))
    return (f"left out, {t['n']} of the {t['of']} clips: they lie in the folder the model was trained on, "
            "not in its held-back test split (it may have been trained on them)")


def _certainty_warning(clf: InstrumentClassifier) -> list[str]:
    """A warning line when the fit says the data cannot tell the model's confidence from certainty:
    the temperature at the bottom of its search range, or 'unknown' answered below :data:`SURE` or more."""
    from ..calibration import T_RANGE

    if clf.multilabel:  # its thresholds are kept within THRESHOLD_RANGE, no temperature
        return []
    t, mc = clf.temperature_, clf.min_confidence_
    why = [*([f"the temperature is the lowest searched ({T_RANGE[0]:g})"] if t and math.log(t / T_RANGE[0]) < 1e-3 else []),
           *([f"'unknown' is answered below {mc:.2f}"] if mc is not None and mc >= SURE else [])]
    if not why:
        return []
    return [f"warning: {' and '.join(why)}: these clips cannot tell the model's confidence from certainty "
            "(were they trained on?); calibrate on recordings the model has not heard"]
