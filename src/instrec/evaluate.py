"""Metrics, the confusion matrix, calibration (expected calibration error, reliability diagram) and reports.

Multi-label clips (several instruments at once, one independent probability per class):
:func:`multilabel_metrics` per clip, :func:`frame_scores` per frame of an activity matrix
(:func:`instrec.data.activity.activity_matrix`), :func:`multilabel_markdown_lines` for reports.
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .decision import UNKNOWN, family_lookup, family_matrix
from .errors import ParameterError
from .fileio import write_bytes, write_json, write_text

# The figures a cross-validation averages over its folds: (key, name, as a percentage), for
# single-label and for multi-label models.
SUMMARY_METRICS = (("accuracy", "accuracy", True), ("macro_f1", "macro F1", False), ("roc_auc_ovr_macro", "ROC AUC", False))
MULTILABEL_SUMMARY = (("map", "mAP", False), ("micro_f1", "micro F1", False), ("macro_f1", "macro F1", False))


def summary_metrics(multilabel: bool) -> tuple[tuple[str, str, bool], ...]:
    """The figures a cross-validation of a single-label or a multi-label model summarises."""
    return MULTILABEL_SUMMARY if multilabel else SUMMARY_METRICS
ECE_BINS = 15


def calibration_bins(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> dict:
    """The expected calibration error of top-class ``confidence`` values and whether each answer
    was ``correct``, over ``bins`` equal-width bins of [0, 1] (``[0, 1/bins)``, ..., the last one
    closed): ``ece = Σ n_b / n · |accuracy_b − mean confidence_b|``.

    Returns ``{"ece", "bins", "count", "accuracy", "confidence"}``, one entry per bin in the
    lists (None for an empty bin); ``ece`` is None without clips.
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    count = np.bincount(which, minlength=bins)
    acc = np.bincount(which, weights=correct, minlength=bins)
    conf = np.bincount(which, weights=confidence, minlength=bins)
    ece = float(np.abs(acc - conf).sum() / len(confidence)) if len(confidence) else None
    return {"ece": ece, "bins": bins, "count": count.tolist(),
            "accuracy": [float(a / n) if n else None for a, n in zip(acc, count)],
            "confidence": [float(c / n) if n else None for c, n in zip(conf, count)]}


def compute_metrics(y_true: Sequence[str], proba: np.ndarray, classes: Sequence[str], *,
                    families: Mapping[str, Sequence[str]] | None = None, min_confidence: float | None = None) -> dict:
    """Accuracy, macro F1, one-vs-rest ROC AUC, per-class scores, the confusion matrix and the
    expected calibration error (``ece``, with ``reliability``: see :func:`calibration_bins`).

    ``proba`` has one row per clip and one column per entry of ``classes`` (ParameterError
    otherwise, or when a value is not finite). Clips whose true label is not among
    ``classes`` are not scored; they are counted under ``unknown_classes``. The scores are those
    of the likeliest class; with ``min_confidence`` (or an ``unknown`` class), ``doubt`` says how
    many clips the model answers ``unknown`` and how right the other answers are.

    Macro F1 averages the classes in ``y_true`` or answered (scikit-learn's ``f1_score(...,
    average="macro")``): answers into a class the data lacks count against it. ROC AUC is
    one-vs-rest per class in ``y_true``, averaged; ``None`` when the data has fewer than two classes.

    ``families`` (family → member classes, each class in one, see
    :func:`instrec.decision.resolve_families`): the same figures at family level, under ``family``
    (its ``classes`` are the families).
    """
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support, roc_auc_score

    classes = list(classes)
    # NaN would make scikit-learn fail, or the ECE bins, half-way; and JSON has no NaN
    proba = _indicator("proba", proba, (len(y_true), len(classes)), binary=False)
    known = np.array([t in classes for t in y_true], dtype=bool)
    unknown = Counter(t for t, k in zip(y_true, known) if not k)
    y_true = [t for t, k in zip(y_true, known) if k]
    proba = np.asarray(proba)[known]
    y_pred = [classes[i] for i in proba.argmax(1)] if len(proba) else []
    present = [c for c in classes if c in set(y_true)]
    out: dict = {"classes": classes, "n": len(y_true)}
    if not y_true:
        out.update(accuracy=None, macro_f1=None, roc_auc_ovr_macro=None, per_class={}, confusion_matrix=[])
    else:
        p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=classes, zero_division=0)
        aucs = {}
        for c in present:
            pos = np.array([t == c for t in y_true])
            if 0 < pos.sum() < len(pos):
                aucs[c] = float(roc_auc_score(pos, proba[:, classes.index(c)]))
        out.update(
            accuracy=float(accuracy_score(y_true, y_pred)),
            macro_f1=float(np.mean([f[i] for i, c in enumerate(classes) if c in set(present) | set(y_pred)])),
            roc_auc_ovr_macro=float(np.mean(list(aucs.values()))) if len(present) >= 2 and aucs else None,
            per_class={
                c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i]),
                    "roc_auc": aucs.get(c)}
                for i, c in enumerate(classes)
            },
            confusion_matrix=_confusion(y_true, y_pred, classes),
        )
    top = proba.max(axis=1) if len(proba) else np.zeros(0)
    right = np.array([p == t for p, t in zip(y_pred, y_true)], dtype=bool)
    cal = calibration_bins(top, right)
    out["ece"] = cal.pop("ece")
    out["reliability"] = cal
    if min_confidence or UNKNOWN in classes:
        out["doubt"] = _doubt(y_true, y_pred, top, min_confidence or 0.0)
    if families is not None:
        names, M = family_matrix(classes, families)
        owner = family_lookup(families)
        out["family"] = compute_metrics([owner[t] for t in y_true], np.asarray(proba, dtype=np.float64) @ M, names,
                                        min_confidence=min_confidence)
    out["unknown_classes"] = dict(sorted(unknown.items()))
    return out


def _confusion(y_true, y_pred, classes: list[str]) -> list[list[int]]:
    """scikit-learn's confusion matrix over ``classes``, without its warning for one class: the
    matrix is still right, and the report says how many classes were scored."""
    import warnings

    from sklearn.metrics import confusion_matrix

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="A single label was found", category=UserWarning)
        return confusion_matrix(y_true, y_pred, labels=classes).tolist()


def _doubt(y_true, y_pred, top: np.ndarray, min_confidence: float) -> dict:
    """How many clips are answered ``unknown`` (likeliest class ``unknown``, or below the
    threshold), how many of the clips of known classes, and the accuracy of the other answers."""
    answers = [UNKNOWN if p == UNKNOWN or c < min_confidence else p for p, c in zip(y_pred, top)]
    known = [t != UNKNOWN for t in y_true]
    kept = [a != UNKNOWN for a in answers]
    n_known = sum(known)
    return {
        "min_confidence": min_confidence,
        "answered_unknown": sum(not k for k in kept),
        "known_answered_unknown": sum(1 for k, a in zip(known, kept) if k and not a),
        "known_clips": n_known,
        "accuracy_of_other_answers": (float(np.mean([a == t for a, t, k in zip(answers, y_true, kept) if k]))
                                      if any(kept) else None),
    }


def _indicator(name: str, M, shape: tuple[int, int] | None = None, *, binary: bool = True) -> np.ndarray:
    """``M`` as a 2-D float64 matrix, checked: of ``shape`` (when given), finite, and 0/1 when ``binary``."""
    M = np.asarray(M, dtype=np.float64)
    if M.ndim != 2 or (shape is not None and M.shape != shape):
        want = f"{shape}" if shape is not None else "(rows, classes)"
        raise ParameterError(f"{name} must be a matrix of shape {want}, got shape {M.shape}")
    if not np.isfinite(M).all():
        raise ParameterError(f"{name} has values that are not finite (NaN or inf)")
    if binary and not np.isin(M, (0.0, 1.0)).all():
        raise ParameterError(f"{name} must hold only 0 and 1")
    return M


def _ratio(a, b):
    """``a / b``, 0 where ``b`` is 0 (scikit-learn's ``zero_division=0``)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.divide(a, b, out=np.zeros_like(a), where=b > 0)


def _prf(Y: np.ndarray, pred: np.ndarray):
    """Per-class (precision, recall, f1, support) and micro (precision, recall, f1) of 0/1 matrices,
    0 where undefined; micro None when no cell is true or predicted (nothing to score), and None
    without rows. Counted here: scikit-learn takes a one-column matrix for a binary task of 0 and 1."""
    if not len(Y):
        return None
    tp, fp, fn = (Y * pred).sum(axis=0), ((1 - Y) * pred).sum(axis=0), (Y * (1 - pred)).sum(axis=0)
    per = (_ratio(tp, tp + fp), _ratio(tp, tp + fn), _ratio(2 * tp, 2 * tp + fp + fn), Y.sum(axis=0).astype(np.int64))
    T, F, N = tp.sum(), fp.sum(), fn.sum()
    if not T + F + N:
        return per, (None, None, None)
    return per, (float(_ratio(T, T + F)), float(_ratio(T, T + N)), float(_ratio(2 * T, 2 * T + F + N)))


def multilabel_metrics(Y_true, P, classes: Sequence[str], thresholds=None) -> dict:
    """Clip-level scores of independent per-class probabilities ``P`` against 0/1 labels ``Y_true``
    (both ``(n_clips, len(classes))``, see :func:`instrec.data.activity.label_matrix`).

    A clip is given a class when its probability reaches (``>=``) the class's entry of
    ``thresholds`` (one per class, or one for all; None: 0.5 each).

    Returns plain Python values: ``n``, ``classes``, ``average_precision`` (class → AP over the
    ranking of ``P``, threshold-free; None for a class without a positive or without a negative
    clip), ``map`` (mean of the defined APs; None if none), ``micro_precision``, ``micro_recall``,
    ``micro_f1`` (over all clip × class cells; None when no cell is true or predicted), ``macro_f1`` (mean F1 over the classes with at least
    one positive clip in ``Y_true`` or one clip given them: false alarms of a class the data lacks
    count against it, as in :func:`compute_metrics`; a class neither present nor given has no F1; None if none),
    ``per_class`` (class → ``precision, recall, f1, support, threshold``; 0 where undefined),
    ``exact_match`` (share of clips whose predicted set is exactly the true set) and ``thresholds``.
    The F1 figures and ``exact_match`` are None without clips.

    Raises ParameterError when the shapes disagree, ``Y_true`` is not 0/1 or ``P`` is not finite.
    """
    from sklearn.metrics import average_precision_score

    classes = [str(c) for c in classes]
    Y = _indicator("Y_true", Y_true)
    n, k = Y.shape
    if k != len(classes):
        raise ParameterError(f"Y_true has {k} columns but there are {len(classes)} classes")
    P = _indicator("P", P, (n, k), binary=False)
    t = np.asarray(0.5 if thresholds is None else thresholds, dtype=np.float64)
    t = np.full(k, float(t)) if t.ndim == 0 else t
    if t.shape != (k,) or not np.isfinite(t).all():
        raise ParameterError(f"thresholds must be {k} finite numbers (one per class), got shape {t.shape}")
    pred = (P >= t).astype(np.float64)
    ap = {c: (float(average_precision_score(Y[:, j], P[:, j])) if 0 < Y[:, j].sum() < n else None)
          for j, c in enumerate(classes)}
    defined = [a for a in ap.values() if a is not None]
    out = {"multilabel": True, "n": n, "classes": classes, "average_precision": ap, "map": float(np.mean(defined)) if defined else None}
    scores = _prf(Y, pred)
    if scores is None:
        out.update(micro_f1=None, macro_f1=None, micro_precision=None, micro_recall=None, exact_match=None,
                   per_class={c: {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0, "threshold": float(t[j])}
                              for j, c in enumerate(classes)})
    else:
        (p, r, f, s), (mp, mr, mf) = scores
        present = (s > 0) | (pred.sum(axis=0) > 0)
        out.update(
            micro_f1=mf, macro_f1=float(f[present].mean()) if present.any() else None,
            micro_precision=mp, micro_recall=mr, exact_match=float((pred == Y).all(axis=1).mean()),
            per_class={c: {"precision": float(p[j]), "recall": float(r[j]), "f1": float(f[j]), "support": int(s[j]),
                           "threshold": float(t[j])} for j, c in enumerate(classes)},
        )
    out["thresholds"] = [float(x) for x in t]
    return out


def frame_scores(A_true, A_pred, *, classes: Sequence[str] | None = None) -> dict:
    """Frame-level scores of a predicted 0/1 activity matrix ``A_pred`` against the true one
    ``A_true`` (both ``(frames, classes)``, possibly many clips' frames stacked; see
    :func:`instrec.data.activity.activity_matrix`).

    Returns ``frames``, micro ``precision``, ``recall`` and ``f1`` over all frame × class cells
    (0 where undefined, None without frames or when no class is active or predicted in any frame) and ``per_class`` (column index, or name from
    ``classes``, → F1; None for a class neither active nor predicted in any frame: nothing to score).

    Raises ParameterError when the shapes disagree or a matrix is not 0/1.
    """
    A = _indicator("A_true", A_true)
    B = _indicator("A_pred", A_pred, A.shape)
    names = list(range(A.shape[1])) if classes is None else [str(c) for c in classes]
    if len(names) != A.shape[1]:
        raise ParameterError(f"A_true has {A.shape[1]} columns but there are {len(names)} classes")
    scores = _prf(A, B)
    if scores is None:
        return {"frames": 0, "precision": None, "recall": None, "f1": None, "per_class": {c: None for c in names}}
    (_, _, f, _), (mp, mr, mf) = scores
    seen = (A + B).sum(axis=0) > 0
    return {"frames": int(A.shape[0]), "precision": mp, "recall": mr, "f1": mf,
            "per_class": {c: float(f[j]) if seen[j] else None for j, c in enumerate(names)}}


def multilabel_markdown_lines(metrics: dict) -> list[str]:
    """The figures of :func:`multilabel_metrics` as Markdown lines for a report: a summary table
    (mAP, micro and macro F1, exact match) and one row per class (AP, F1, threshold, support)."""
    lines = [
        "| mAP | micro F1 | macro F1 | exact match | clips scored |",
        "|---|---|---|---|---|",
        f"| {fmt_num(metrics['map'])} | {fmt_num(metrics['micro_f1'])} | {fmt_num(metrics['macro_f1'])} "
        f"| {fmt_pct(metrics['exact_match'])} | {metrics['n']} |",
        "",
        "| class | AP | F1 | threshold | support |",
        "|---|---|---|---|---|",
    ]
    for c, m in metrics["per_class"].items():
        lines.append(f"| {c} | {fmt_num(metrics['average_precision'].get(c))} | {fmt_num(m['f1'])} "
                     f"| {m['threshold']:.3f} | {m['support']} |")
    lines += ["", "A clip has a class when its probability reaches the class's threshold. AP (threshold-free) is "
              "n/a for a class without positive or negative clips; macro F1 averages the classes with a positive clip or a clip given them (false alarms count)."]
    return lines


def plot_reliability(metrics: dict, title: str = "") -> bytes:
    """The reliability diagram as a PNG: accuracy against mean top-class confidence per bin, the
    diagonal of perfect calibration, and how many clips each bin holds."""
    from matplotlib.figure import Figure

    r = metrics["reliability"]
    k = r["bins"]
    edges = np.linspace(0, 1, k + 1)
    fig = Figure(figsize=(5.2, 5.6), dpi=100)
    ax, ax_n = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [4, 1]})
    acc = [np.nan if a is None else a for a in r["accuracy"]]
    ax.bar(edges[:-1], acc, width=1 / k, align="edge", edgecolor="black", color="tab:blue", label="accuracy")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    conf = [(c, a) for c, a in zip(r["confidence"], r["accuracy"]) if c is not None]
    if conf:
        ax.plot(*zip(*conf), "o", color="tab:orange", label="mean confidence")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.legend(loc="upper left", fontsize="small")
    ece = metrics.get("ece")
    ax.set_title((title + "\n" if title else "") + f"expected calibration error {fmt_num(ece)}")
    ax_n.bar(edges[:-1], r["count"], width=1 / k, align="edge", color="0.6")
    ax_n.set_xlabel("top-class confidence")
    ax_n.set_ylabel("clips")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def plot_confusion_matrix(metrics: dict, title: str = "") -> bytes:
    """The confusion matrix as a PNG (rows true, columns predicted)."""
    from matplotlib.figure import Figure

    cm = np.asarray(metrics["confusion_matrix"], dtype=float)
    classes = metrics["classes"]
    k = len(classes)
    fig = Figure(figsize=(1.2 + 0.75 * k, 1.0 + 0.7 * k), dpi=100)
    ax = fig.add_subplot()
    ax.imshow(cm if cm.size else np.zeros((k, k)), cmap="Blues")
    ax.set_xticks(range(k), classes, rotation=45, ha="right")
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    peak = cm.max() if cm.size else 0
    for i in range(cm.shape[0] if cm.size else 0):
        for j in range(k):
            ax.text(j, i, int(cm[i, j]), ha="center", va="center", color="white" if cm[i, j] > peak / 2 else "black")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def fmt_pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def fmt_num(x) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def report_markdown(metrics: dict, *, title: str, context: dict, skipped: Sequence[tuple[str, str]] = ()) -> str:
    """A human-readable report: how the figure was obtained, the figures, and what was skipped."""
    lines = [f"# {title}", ""]
    lines += [f"- **{k}**: {v}" for k, v in context.items()]
    if metrics.get("multilabel"):
        lines += ["", *multilabel_markdown_lines(metrics), ""]
        frames = metrics.get("frames")
        if frames:
            lines += ["## Who plays when", "", f"Frame-level F1 of the timelines against the activity tables: "
                      f"{fmt_num(frames['f1'])} (precision {fmt_num(frames['precision'])}, recall "
                      f"{fmt_num(frames['recall'])}) over {frames['frames']} frames of {frames['hop_seconds']:g} s "
                      f"in {frames['clips']} recordings.", ""]
        lines += _unscored_lines(metrics)
        if skipped:
            lines += [f"Skipped {len(skipped)} file(s):", ""] + [f"- `{p}`: {why}" for p, why in skipped] + [""]
        return "\n".join(lines)
    lines += ["", *_score_lines(metrics, "class"), "", "![confusion matrix](confusion_matrix.png)", ""]
    if metrics.get("reliability"):
        lines += ["Expected calibration error (15 equal-width bins of top-class confidence): "
                  f"{fmt_num(metrics.get('ece'))}.", "", "![reliability diagram](reliability.png)", ""]
    lines += _doubt_lines(metrics)
    family = metrics.get("family")
    if family:
        lines += ["## Family level", "", "Each family's probability is the sum of its classes'; the answer is the "
                  "likeliest family.", "", *_score_lines(family, "family"), "",
                  "![family confusion matrix](family_confusion_matrix.png)", "", *_doubt_lines(family)]
    lines += _unscored_lines(metrics)
    if skipped:
        lines += [f"Skipped {len(skipped)} file(s):", ""] + [f"- `{p}`: {why}" for p, why in skipped] + [""]
    return "\n".join(lines)


def _doubt_lines(metrics: dict) -> list[str]:
    """How many clips are answered unknown (``doubt``), and that the figures above ignore it."""
    doubt = metrics.get("doubt")
    if not doubt:
        return []
    return [f"Answered unknown (the class unknown, or below min_confidence {doubt['min_confidence']:.3f}): "
            f"{doubt['answered_unknown']} of {metrics['n']} clips, {doubt['known_answered_unknown']} of the "
            f"{doubt['known_clips']} clips of known classes; accuracy of the other answers "
            f"{fmt_pct(doubt['accuracy_of_other_answers'])}. Accuracy, F1, ROC AUC, ECE and the confusion matrix "
            "score the likeliest class of every clip, answered unknown or not.", ""]


def _unscored_lines(metrics: dict) -> list[str]:
    """The classes in the data not scored: left out by the classes chosen, or unknown to the model."""
    chosen = metrics.get("left_out_by_classes") or {}
    unknown = {c: n for c, n in (metrics.get("unknown_classes") or {}).items() if c not in chosen}
    lines = []
    for what, table in (("left out by the classes chosen", chosen), ("that the model does not know", unknown)):
        if table:
            lines += [f"Classes in the data {what} (not scored): " + ", ".join(f"{c} ({n})" for c, n in table.items()), ""]
    return lines


def _score_lines(metrics: dict, what: str) -> list[str]:
    lines = [
        "| accuracy | macro F1 | ROC AUC (one-vs-rest, macro) | ECE | clips scored |",
        "|---|---|---|---|---|",
        f"| {fmt_pct(metrics['accuracy'])} | {fmt_num(metrics['macro_f1'])} | {fmt_num(metrics['roc_auc_ovr_macro'])} "
        f"| {fmt_num(metrics.get('ece'))} | {metrics['n']} |",
        "",
        f"| {what} | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
    ]
    for c, m in metrics["per_class"].items():
        lines.append(f"| {c} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |")
    return lines


def write_report(out_dir: str | Path, metrics: dict, *, title: str, context: dict, skipped=()) -> Path:
    """Write ``metrics.json``, ``confusion_matrix.png`` (and ``family_confusion_matrix.png`` with
    family metrics), ``reliability.png`` and ``report.md`` into ``out_dir``.

    Without matplotlib (the ``[plot]`` extra) the pictures are left out and the report says so."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pictures = {} if metrics.get("multilabel") else {"confusion_matrix.png": lambda: plot_confusion_matrix(metrics, title)}
    if metrics.get("family"):
        pictures["family_confusion_matrix.png"] = lambda: plot_confusion_matrix(metrics["family"], f"{title}: families")
    if metrics.get("reliability"):
        pictures["reliability.png"] = lambda: plot_reliability(metrics, title)
    for name, draw in pictures.items():
        try:
            write_bytes(out / name, draw())
        except ModuleNotFoundError as e:
            if (e.name or "").split(".")[0] != "matplotlib":
                raise
            context = {**context, name: "not drawn: install instrec[plot] for it"}
    write_json(out / "metrics.json", {**metrics, "context": context, "skipped": [list(s) for s in skipped]})
    write_text(out / "report.md", report_markdown(metrics, title=title, context=context, skipped=skipped))
    return out


def fmt_mean_std(mean, std, pct: bool = False) -> str:
    """``93.33% ± 4.71%`` or ``0.9333 ± 0.0471``; ``n/a`` when no fold had the figure."""
    f = fmt_pct if pct else fmt_num
    return "n/a" if mean is None else f"{f(mean)} ± {f(std)}"


def crossval_fold_counts(result: dict) -> tuple[list[dict], dict[str, int]]:
    """The folds scored at all (their first figure, accuracy or mAP, is not ``None``: a test side
    with a class its training side knows) and, for each figure, how many folds its mean covers."""
    figures = summary_metrics(any(f.get("multilabel") for f in result["folds"]))
    scored = [f for f in result["folds"] if f.get(figures[0][0]) is not None]
    return scored, {k: sum(f.get(k) is not None for f in result["folds"]) for k, _, _ in figures}


def crossval_table(result: dict) -> str:
    """The folds of a cross-validation as a Markdown table, with a mean ± std row.

    Leave-one-source-out folds (with ``held_out``) get one row per held-out source and its
    training sources; k-fold folds one row per fold. The figures: accuracy, macro F1 and ROC AUC,
    or for a multi-label model mAP, micro and macro F1 (:func:`summary_metrics`). The mean row's
    clip counts are of the scored folds; a figure whose mean covers fewer says how many.
    """
    by_source = any("held_out" in f for f in result["folds"])
    figures = summary_metrics(any(f.get("multilabel") for f in result["folds"]))
    names = [name for _, name, _ in figures]
    if by_source:
        lines = ["| " + " | ".join(["held-out source", "train sources", "clips train / test", *names]) + " |"]
    else:
        lines = ["| " + " | ".join(["fold", "clips train / test", *names]) + " |"]
    lines.append("|" + "---|" * (len(names) + (3 if by_source else 2)))
    for f in result["folds"]:
        first = [f["held_out"], ", ".join(f["train_sources"])] if by_source else [str(f["fold"])]
        lines.append("| " + " | ".join(first + [f"{f['n_train']} / {f['n_test']}"]
                                       + [fmt_pct(f.get(k)) if pct else fmt_num(f.get(k)) for k, _, pct in figures]) + " |")
    m, s = result["mean"], result["std"]
    scored, counts = crossval_fold_counts(result)
    n_train = sum(f["n_train"] for f in scored) / max(1, len(scored))
    n_test = sum(f["n_test"] for f in scored) / max(1, len(scored))
    first = ["**mean ± std**", ""] if by_source else ["**mean ± std**"]
    cells = [fmt_mean_std(m.get(k), s.get(k), pct=pct) + (f" ({counts[k]} folds)" if 0 < counts[k] != len(scored) else "")
             for k, _, pct in figures]
    lines.append("| " + " | ".join(first + [f"{n_train:.0f} / {n_test:.0f} (mean of {len(scored)} folds)"] + cells) + " |")
    return "\n".join(lines) + "\n"


def crossval_summary(result: dict) -> str:
    """``accuracy 93.33% ± 4.71%, macro F1 ..., ROC AUC ... (mean ± std of 5 folds)`` (or a
    multi-label model's figures) in a line; where the figures' means cover different numbers of
    folds, each says how many (``ROC AUC 0.9 ± 0.1 (4 of 6 folds)``)."""
    figures = summary_metrics(any(f.get("multilabel") for f in result["folds"]))
    m, s = result["mean"], result["std"]
    _, counts = crossval_fold_counts(result)
    n = len(result["folds"])
    if all(c == n for c in counts.values()):
        return ", ".join(f"{name} {fmt_mean_std(m.get(k), s.get(k), pct=pct)}" for k, name, pct in figures) + \
            f" (mean ± std of {n} folds)"
    return ", ".join(f"{name} {fmt_mean_std(m.get(k), s.get(k), pct=pct)} ({counts[k]} of {n} folds)" for k, name, pct in figures)


def _fold_count_line(result: dict) -> str:
    """``accuracy and macro F1: mean of 3 folds; ROC AUC: mean of 2`` (of the folds, which have none)."""
    figures = summary_metrics(any(f.get("multilabel") for f in result["folds"]))
    _, counts = crossval_fold_counts(result)
    by_count: dict[int, list[str]] = {}
    for k, name, _ in figures:
        by_count.setdefault(counts[k], []).append(name)
    parts = [f"{' and '.join(names)}: " + (f"mean of {c}" + (" folds" if i == 0 else "") if c else "no fold")
             for i, (c, names) in enumerate(sorted(by_count.items(), reverse=True))]
    return "; ".join(parts)


def crossval_markdown(result: dict, *, title: str) -> str:
    """A cross-validation report: how it was run, the table of folds, what was not scored or skipped."""
    lines = [f"# {title}", ""]
    lines += [f"- **{k}**: {v}" for k, v in result["context"].items()]
    lines += ["", crossval_table(result)]
    notes = []
    for f in result["folds"]:
        if f.get("unknown_classes"):
            where = f"held-out {f['held_out']}" if "held_out" in f else f"fold {f['fold']}"
            notes.append(f"- {where}: " + ", ".join(f"{c} ({n})" for c, n in f["unknown_classes"].items()))
    if notes:
        lines += ["Classes in a test side that its training side lacks (not scored):", ""] + notes + [""]
    n = len(result["folds"])
    _, counts = crossval_fold_counts(result)
    if all(c == n for c in counts.values()):
        lines += [f"Mean and std (population) are over the {n} folds, each fold weighted equally.", ""]
    else:  # a fold without a scorable class, or with one class only (no ROC AUC), has no figure to average
        lines += [f"Mean and std (population) are over the folds that have the figure, each weighted equally "
                  f"({_fold_count_line(result)}, of {n}); the mean clip counts are of the scored folds.", ""]
    skipped = result.get("skipped") or []
    if skipped:
        lines += [f"Skipped {len(skipped)} file(s):", ""] + [f"- `{p}`: {why}" for p, why in skipped] + [""]
    return "\n".join(lines)
