"""The Python API behind every command: train, evaluate, predict, demo.

The CLI only parses arguments, calls these and prints; anything it does, Python code can do.
``progress`` arguments take a factory ``progress(description, total) -> update(done, total)``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .classifier import InstrumentClassifier, Prediction
from .data.folder import Dataset, find_audio, load_dataset
from .data.splits import split_indices
from .errors import DataError, InstrecError, skip_entry
from .evaluate import compute_metrics, write_report
from .features import extract
from .recipes import Recipe, get_recipe

Progress = Callable[[str, int], Callable[[int, int], None]]
SPLIT_FILE = "split.json"


def _bar(progress: Progress | None, text: str, total: int):
    return progress(text, total) if progress else None


@dataclass
class TrainResult:
    model: InstrumentClassifier
    model_dir: Path | None
    metrics: dict
    context: dict
    skipped: list[tuple[str, str]] = field(default_factory=list)
    extract_seconds: float = 0.0
    train_seconds: float = 0.0


def train_model(
    data: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    recipe: Recipe | str = "seed-mfcc",
    out: str | os.PathLike | None = None,
    split: str = "random",
    test_size: float = 0.2,
    seed: int = 0,
    labels: str = "auto",
    manifest: str | os.PathLike | None = None,
    aliases: dict[str, str] | None = None,
    report_dir: str | os.PathLike | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Load labelled audio, extract features, split, train, score the test split, save a bundle.

    The split defaults to the tutorial's: random 80/20 with ``random_state=seed`` (0).
    """
    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    ds = load_dataset(data, labels=labels, manifest=manifest, aliases=aliases)
    _need_two_classes(ds.labels, "the data")
    t0 = time.perf_counter()
    X, ok, bad = extract([c.path for c in ds.clips], recipe.feature, progress=_bar(progress, f"{recipe.name}: features", len(ds.clips)))
    extract_seconds = time.perf_counter() - t0
    skipped = ds.skipped + bad
    clips = [ds.clips[i] for i in ok]
    y = [c.label for c in clips]
    _need_two_classes(y, "the usable clips")
    tr, te = split_indices(y, method=split, test_size=test_size, seed=seed)
    _need_two_classes([y[i] for i in tr], "the training split")

    clf = InstrumentClassifier(recipe, seed=seed)
    bar = _bar(progress, f"{recipe.name}: training", recipe.train.epochs)
    clf.fit(X[tr], [y[i] for i in tr], on_epoch=(lambda e, n, loss: bar(e, n)) if bar else None)
    metrics = compute_metrics([y[i] for i in te], clf.predict_proba(X[te]), clf.classes)
    context = {
        "recipe": recipe.name,
        "data": ", ".join(str(r) for r in ds.roots),
        "evaluated on": f"held-back test split ({split}, test_size {test_size}, seed {seed})",
        "clips": f"{len(clips)} usable ({len(tr)} train, {len(te)} test), {len(skipped)} skipped",
        "sources": ", ".join(sorted({c.source for c in clips})),
        "seed": seed,
    }
    info = {
        "training": {
            "data": Dataset(clips, ds.roots, ds.label_mode).summary(),  # the usable clips
            "split": {"method": split, "test_size": test_size, "seed": seed, "n_train": len(tr), "n_test": len(te)},
            "skipped": len(skipped),
            "extract_seconds": round(extract_seconds, 3),
            "train_seconds": round(clf.history_["seconds"], 3),
            "final_loss": clf.history_["loss"][-1],
        },
        "metrics": {"test_split": {k: metrics[k] for k in ("accuracy", "macro_f1", "roc_auc_ovr_macro", "n")}},
    }
    clf.info.update(info)
    model_dir = None
    if out is not None:
        split_record = {"roots": [str(r) for r in ds.roots], "test": [str(clips[i].path.resolve()) for i in te]}
        model_dir = clf.save(out, extra_files={SPLIT_FILE: split_record})
    if report_dir is not None:
        write_report(report_dir, metrics, title=f"{recipe.name}: evaluation", context=context, skipped=skipped)
    return TrainResult(clf, model_dir, metrics, context, skipped, extract_seconds, clf.history_["seconds"])


def evaluate_model(
    model: InstrumentClassifier | str | os.PathLike,
    data: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    out: str | os.PathLike | None = None,
    labels: str = "auto",
    manifest: str | os.PathLike | None = None,
    aliases: dict[str, str] | None = None,
    progress: Progress | None = None,
) -> tuple[dict, list[tuple[str, str]]]:
    """Score a model on labelled data; on its own training data, only the held-back test split.

    Returns ``(metrics, skipped)`` and, with ``out``, writes metrics.json, confusion_matrix.png
    and report.md there.
    """
    model_dir = None
    if not isinstance(model, InstrumentClassifier):
        model_dir = Path(model)
        model = InstrumentClassifier.load(model_dir)
    ds = load_dataset(data, labels=labels, manifest=manifest, aliases=aliases)
    clips, scope = ds.clips, "the whole data set"
    test = _training_test_split(model_dir, ds)
    if test is not None:
        clips = [c for c in clips if str(c.path.resolve()) in test]
        split = model.info.get("training", {}).get("split", {})
        scope = f"held-back test split of the training data ({split.get('method')}, seed {split.get('seed')})"
    X, ok, bad = extract([c.path for c in clips], model.recipe.feature, progress=_bar(progress, "features", len(clips)))
    skipped = ds.skipped + bad
    truth = [clips[i].label for i in ok]
    metrics = compute_metrics(truth, model.predict_proba(X) if len(X) else np.zeros((0, len(model.classes))), model.classes)
    context = {
        "model": str(model_dir) if model_dir else model.recipe.name,
        "recipe": model.recipe.name,
        "data": ", ".join(str(r) for r in ds.roots),
        "evaluated on": scope,
        "clips": f"{len(ok)} scored of {len(clips)}, {len(skipped)} skipped",
        "sources": ", ".join(sorted({clips[i].source for i in ok})),
    }
    if out is not None:
        write_report(out, metrics, title=f"{model.recipe.name}: evaluation", context=context, skipped=skipped)
    return metrics, skipped


def _training_test_split(model_dir: Path | None, ds: Dataset) -> set[str] | None:
    """The training run's test files when ``ds`` is the data the model was trained on."""
    import json

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


def predict_paths(
    model: InstrumentClassifier,
    paths: Sequence[str | os.PathLike],
    *,
    progress: Progress | None = None,
) -> tuple[list[Prediction], list[tuple[str, str]]]:
    """Predict every audio file named or found (recursively) under ``paths``; bad files are skipped."""
    files, skipped = [], []
    for p in paths:
        p = Path(p)
        if not p.exists():
            skipped.append((str(p), "no such file or folder"))
        elif p.is_dir():
            found = find_audio(p)
            if not found:
                skipped.append((str(p), "no audio files found (looked for .wav .flac .ogg .mp3)"))
            files += found
        else:
            files.append(p)
    results = []
    bar = _bar(progress, "predicting", len(files))
    for i, f in enumerate(files):
        try:
            results.append(model.predict_file(f))
        except InstrecError as e:
            skipped.append(skip_entry(e, f))
        if bar:
            bar(i + 1, len(files))
    return results, skipped


def _need_two_classes(labels: Sequence[str], what: str) -> None:
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise DataError(f"{what} must have at least 2 classes to train; found {len(classes)} ({', '.join(classes) or 'none'})")
