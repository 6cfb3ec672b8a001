"""Metrics, the confusion matrix and reports."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from .fileio import write_bytes, write_json, write_text

# The figures a cross-validation averages over its folds.
SUMMARY_METRICS = ("accuracy", "macro_f1", "roc_auc_ovr_macro")


def compute_metrics(y_true: Sequence[str], proba: np.ndarray, classes: Sequence[str]) -> dict:
    """Accuracy, macro F1, one-vs-rest ROC AUC, per-class scores and the confusion matrix.

    ``proba`` has one column per entry of ``classes``. Clips whose true label is not among
    ``classes`` are not scored; they are counted under ``unknown_classes``.

    Macro averages run over the classes present in ``y_true`` (a class the data lacks has no
    recall to average). ROC AUC is one-vs-rest per present class, averaged; ``None`` when the
    data has fewer than two classes.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support, roc_auc_score

    classes = list(classes)
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
            macro_f1=float(np.mean([f[classes.index(c)] for c in present])),
            roc_auc_ovr_macro=float(np.mean(list(aucs.values()))) if len(present) >= 2 and aucs else None,
            per_class={
                c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i]),
                    "roc_auc": aucs.get(c)}
                for i, c in enumerate(classes)
            },
            confusion_matrix=confusion_matrix(y_true, y_pred, labels=classes).tolist(),
        )
    out["unknown_classes"] = dict(sorted(unknown.items()))
    return out


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
    lines += [
        "",
        "| accuracy | macro F1 | ROC AUC (one-vs-rest, macro) | clips scored |",
        "|---|---|---|---|",
        f"| {fmt_pct(metrics['accuracy'])} | {fmt_num(metrics['macro_f1'])} | {fmt_num(metrics['roc_auc_ovr_macro'])} | {metrics['n']} |",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
    ]
    for c, m in metrics["per_class"].items():
        lines.append(f"| {c} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |")
    lines += ["", "![confusion matrix](confusion_matrix.png)", ""]
    if metrics.get("unknown_classes"):
        lines += ["Classes in the data that the model does not know (not scored): "
                  + ", ".join(f"{c} ({n})" for c, n in metrics["unknown_classes"].items()), ""]
    if skipped:
        lines += [f"Skipped {len(skipped)} file(s):", ""] + [f"- `{p}`: {why}" for p, why in skipped] + [""]
    return "\n".join(lines)


def write_report(out_dir: str | Path, metrics: dict, *, title: str, context: dict, skipped=()) -> Path:
    """Write ``metrics.json``, ``confusion_matrix.png`` and ``report.md`` into ``out_dir``.

    Without matplotlib (the ``[plot]`` extra) the picture is left out and the report says so."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        write_bytes(out / "confusion_matrix.png", plot_confusion_matrix(metrics, title))
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] != "matplotlib":
            raise
        context = {**context, "confusion_matrix.png": "not drawn: install instrec[plot] for it"}
    write_json(out / "metrics.json", {**metrics, "context": context, "skipped": [list(s) for s in skipped]})
    write_text(out / "report.md", report_markdown(metrics, title=title, context=context, skipped=skipped))
    return out


def fmt_mean_std(mean, std, pct: bool = False) -> str:
    """``93.33% ± 4.71%`` or ``0.9333 ± 0.0471``; ``n/a`` when no fold had the figure."""
    f = fmt_pct if pct else fmt_num
    return "n/a" if mean is None else f"{f(mean)} ± {f(std)}"


def crossval_table(result: dict) -> str:
    """The folds of a cross-validation as a Markdown table, with a mean ± std row.

    Leave-one-source-out folds (with ``held_out``) get one row per held-out source and its
    training sources; k-fold folds one row per fold.
    """
    by_source = any("held_out" in f for f in result["folds"])
    if by_source:
        lines = ["| held-out source | train sources | clips train / test | accuracy | macro F1 | ROC AUC |",
                 "|---|---|---|---|---|---|"]
    else:
        lines = ["| fold | clips train / test | accuracy | macro F1 | ROC AUC |", "|---|---|---|---|---|"]
    for f in result["folds"]:
        first = [f["held_out"], ", ".join(f["train_sources"])] if by_source else [str(f["fold"])]
        lines.append("| " + " | ".join(first + [f"{f['n_train']} / {f['n_test']}", fmt_pct(f["accuracy"]),
                                                 fmt_num(f["macro_f1"]), fmt_num(f["roc_auc_ovr_macro"])]) + " |")
    m, s = result["mean"], result["std"]
    n_train = sum(f["n_train"] for f in result["folds"]) / max(1, len(result["folds"]))
    n_test = sum(f["n_test"] for f in result["folds"]) / max(1, len(result["folds"]))
    first = ["**mean ± std**", ""] if by_source else ["**mean ± std**"]
    lines.append("| " + " | ".join(first + [f"{n_train:.0f} / {n_test:.0f} (mean)",
                                             fmt_mean_std(m["accuracy"], s["accuracy"], pct=True),
                                             fmt_mean_std(m["macro_f1"], s["macro_f1"]),
                                             fmt_mean_std(m["roc_auc_ovr_macro"], s["roc_auc_ovr_macro"])]) + " |")
    return "\n".join(lines) + "\n"


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
    lines += ["Mean and std (population) are over the folds, each fold weighted equally.", ""]
    skipped = result.get("skipped") or []
    if skipped:
        lines += [f"Skipped {len(skipped)} file(s):", ""] + [f"- `{p}`: {why}" for p, why in skipped] + [""]
    return "\n".join(lines)
