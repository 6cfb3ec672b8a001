"""The Python API behind every command: train, evaluate, predict, demo.

The CLI only parses arguments, calls these and prints; anything it does, Python code can do.
``progress`` arguments take a factory ``progress(description, total) -> update(done, total)``.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .classifier import InstrumentClassifier
from .inference import Model, Prediction
from .data.folder import Dataset, find_audio, load_dataset
from .data.splits import clip_groups, kfold_indices, split_indices
from .errors import DataError, InstrecError, ParameterError, skip_entry
from .evaluate import SUMMARY_METRICS, compute_metrics, crossval_markdown, fmt_pct, write_report
from .fileio import write_json, write_text
from .models.device_features import extract
from .recipes import Recipe, finetuning, get_recipe

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
    recipe: Recipe | str | None = None,
    out: str | os.PathLike | None = None,
    split: str = "random",
    group_by: str | None = None,
    test_size: float = 0.2,
    seed: int = 0,
    labels: str = "auto",
    manifest: str | os.PathLike | None = None,
    aliases: dict[str, str] | None = None,
    report_dir: str | os.PathLike | None = None,
    device: str = "auto",
    jobs: int | None = None,
    cache: bool | str | os.PathLike = True,
    resume: bool = False,
    init: InstrumentClassifier | str | os.PathLike | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Load labelled audio, extract features, split, train, score the test split, save a bundle.

    The split defaults to the tutorial's: random 80/20 with ``random_state=seed`` (0).
    ``split="group"`` with ``group_by`` (``pitch``, ``pitch_class``, ``source``, ``group`` or a
    manifest column, see :func:`~instrec.data.splits.clip_groups`) keeps every group on one side
    and holds back ``test_size`` of the groups.

    ``jobs``: feature-extraction processes (``None``: one per core); ``cache``: the feature cache
    (``True``: its default folder, a folder, or ``False``: off); see :func:`instrec.features.extract`.

    With ``out``, the training state is saved after every epoch in ``<out>.checkpoint`` (removed
    once the model is saved); ``resume=True`` continues an interrupted run from it, ending with the
    model an uninterrupted run would have made.

    ``init``: fine-tune this trained model (an :class:`InstrumentClassifier`, its folder, or
    ``"shipped"``) instead of starting from random weights. Its weights and input statistics are
    the start; output rows are matched by class name (a new class starts from a fresh row). Without
    ``recipe`` its own is used (:func:`~instrec.recipes.finetuning`); without either, ``seed-mfcc``.
    ``model.json`` records the model it started from (``training.fine_tuned_from``).
    """
    init = load_base_model(init)
    recipe = resolve_recipe(recipe, init)
    group_by = _check_group_by(split, group_by)
    ds = load_dataset(data, labels=labels, manifest=manifest, aliases=aliases)
    _need_two_classes(ds.labels, "the data")
    if group_by:
        clip_groups(ds.clips, group_by)  # a clip without a group fails before the features are computed
    t0 = time.perf_counter()
    X, ok, bad = _extract(ds.clips, recipe.feature, jobs, cache, progress, f"{recipe.name}: features", device)
    extract_seconds = time.perf_counter() - t0
    skipped = ds.skipped + bad
    clips = [ds.clips[i] for i in ok]
    y = [c.label for c in clips]
    _need_two_classes(y, "the usable clips")
    groups = clip_groups(clips, group_by) if group_by else None
    tr, te = split_indices(y, method=split, test_size=test_size, seed=seed, groups=groups)
    split_record = {"method": split, "test_size": test_size, "seed": seed, "n_train": len(tr), "n_test": len(te)}
    if groups is not None:
        shared = {groups[i] for i in tr} & {groups[i] for i in te}
        if shared:  # a bug in the splitter, never the user's data
            raise AssertionError(f"group split leaked groups onto both sides: {sorted(shared)[:5]}")
        split_record.update(group_by=group_by, n_groups_train=len({groups[i] for i in tr}),
                            n_groups_test=len({groups[i] for i in te}))
    _need_two_classes([y[i] for i in tr], "the training split")

    checkpoint = checkpoint_path(out) if out is not None else None
    if resume and checkpoint is None:
        raise ParameterError("--resume continues the training of a model folder: give --out")
    shifted = shifted_features(clips, recipe, tr, jobs=jobs, cache=cache, progress=progress)
    bar = _bar(progress, f"{recipe.name}: training", recipe.train.epochs)
    clf, metrics = _fit_and_score(recipe, seed, X, y, tr, te, bar, device=device, checkpoint=checkpoint, resume=resume,
                                  shifted=shifted, init=init)
    context = {
        "recipe": recipe.name,
        "data": ", ".join(str(r) for r in ds.roots),
        "evaluated on": f"held-back test split ({_split_words(split, group_by)}, test_size {test_size}, seed {seed})",
        "clips": f"{len(clips)} usable ({len(tr)} train, {len(te)} test), {len(skipped)} skipped",
        "sources": ", ".join(sorted({c.source for c in clips})),
        "seed": seed,
    }
    info = {
        "training": {
            "data": Dataset(clips, ds.roots, ds.label_mode).summary(),  # the usable clips
            "split": split_record,
            "skipped": len(skipped),
            "extract_seconds": round(extract_seconds, 3),
            "train_seconds": round(clf.history_["seconds"], 3),
            "final_loss": clf.history_["loss"][-1],
            "epochs_run": clf.history_["epochs_run"],
            "best_epoch": clf.history_["best_epoch"],
            "validation_rows": clf.history_["validation_rows"],
            **({"lbfgs_iterations": clf.history_["iterations"]} if "iterations" in clf.history_ else {}),
        },
        "metrics": {"test_split": {k: metrics[k] for k in ("accuracy", "macro_f1", "roc_auc_ovr_macro", "n")}},
    }
    if recipe.train.val_fraction > 0 and not clf.history_["validation_rows"]:
        n = clf.history_["epochs_run"]
        context["validation"] = (f"none: too few clips to choose an epoch on (fewer than {recipe.train.min_val_per_class} "
                                 f"a class); trained {n} epoch{'s' if n != 1 else ''}, the last weights kept")
    if init is not None:
        start = info["training"]["fine_tuned_from"] = _init_record(init)
        context["fine-tuned from"] = start["model"]
        start["test_split"] = _score_start(init, X, y, te)
        if start["test_split"] is not None:
            context["the model it started from"] = (f"accuracy {fmt_pct(start['test_split']['accuracy'])} on the "
                                                    f"{start['test_split']['n']} test clips of classes it knows")
    clf.info.update(info)
    model_dir = None
    if out is not None:
        test_record = {"roots": [str(r) for r in ds.roots], "test": [str(clips[i].path.resolve()) for i in te]}
        model_dir = clf.save(out, extra_files={SPLIT_FILE: test_record})
        shutil.rmtree(checkpoint, ignore_errors=True)  # the model is safe: the checkpoint has done its job
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
    jobs: int | None = None,
    cache: bool | str | os.PathLike = True,
    classes: Sequence[str] | str | None = None,
    progress: Progress | None = None,
) -> tuple[dict, list[tuple[str, str]]]:
    """Score a model on labelled data; on its own training data, only the held-back test split.

    ``classes``: score the model's answers among these of its classes only (probabilities
    renormalised; see :class:`instrec.inference.RestrictedEngine`), e.g. the tutorial's six for a
    model that knows more. Returns ``(metrics, skipped)`` and, with ``out``, writes metrics.json,
    confusion_matrix.png and report.md there.
    """
    from .inference import class_columns, restrict_proba

    model_dir = None
    if not isinstance(model, InstrumentClassifier):
        model_dir = Path(model)
        model = InstrumentClassifier.load(model_dir)
    columns = None if classes is None else class_columns(model.classes, classes)  # bad names fail before any work
    ds = load_dataset(data, labels=labels, manifest=manifest, aliases=aliases)
    clips, scope = ds.clips, "the whole data set"
    test = _training_test_split(model_dir, ds)
    if test is not None:
        clips = [c for c in clips if str(c.path.resolve()) in test]
        split = model.info.get("training", {}).get("split", {})
        words = _split_words(split.get("method"), split.get("group_by"))
        scope = f"held-back test split of the training data ({words}, seed {split.get('seed')})"
    X, ok, bad = _extract(clips, model.recipe.feature, jobs, cache, progress, "features")
    skipped = ds.skipped + bad
    truth = [clips[i].label for i in ok]
    P = model.predict_proba(X) if len(X) else np.zeros((0, len(model.classes)))
    known = model.classes
    if columns is not None:
        P, known = restrict_proba(P, columns), [known[i] for i in columns]
    metrics = compute_metrics(truth, P, known)
    context = {
        "model": str(model_dir) if model_dir else model.recipe.name,
        "recipe": model.recipe.name,
        **({"answers among": f"{len(known)} of the model's {len(model.classes)} classes: {', '.join(known)}"}
           if columns is not None else {}),
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
    model: Model | InstrumentClassifier,
    paths: Sequence[str | os.PathLike],
    *,
    window: float | None = None,
    hop: float | None = None,
    log: str | os.PathLike | None = None,
    progress: Progress | None = None,
) -> tuple[list[Prediction], list[tuple[str, str]]]:
    """Predict every audio file named or found (recursively) under ``paths``; bad files are skipped.

    ``window`` / ``hop`` (s): sliding-window analysis (see :meth:`instrec.inference.Model.predict`).
    ``log``: a JSON Lines file that gets one line per file as soon as it is predicted; files it
    already lists (from an earlier, interrupted run) are not predicted again, and a last line cut
    short by the interruption is dropped.
    """
    from .inference import check_window

    window, hop = check_window(window, hop)
    if isinstance(model, InstrumentClassifier):
        from .engines.torch_engine import TorchEngine

        model = Model(TorchEngine(model))
    files, skipped = [], []
    for p in paths:
        p = Path(p)
        if not p.exists() and not p.is_symlink():  # a broken link or loop: load() says which
            skipped.append((str(p), "no such file or folder"))
        elif p.is_dir():
            found = find_audio(p)
            if not found:
                skipped.append((str(p), "no audio files found (looked for .wav .flac .ogg .mp3)"))
            files += found
        else:
            files.append(p)
    files = list(dict.fromkeys(files))  # a file named twice (or also found in a folder) once
    results_log = ResultsLog(log) if log is not None else None
    done = results_log.done if results_log else {}
    results = [done[str(f)] for f in files if str(f) in done]
    todo = [f for f in files if str(f) not in done]
    bar = _bar(progress, "predicting", len(todo))
    try:
        for i, f in enumerate(todo):
            try:
                results.append(model.predict_file(f, window=window, hop=hop))
                if results_log:
                    results_log.append(results[-1])
            except InstrecError as e:
                skipped.append(skip_entry(e, f))
            if bar:
                bar(i + 1, len(todo))
    finally:
        if results_log:
            results_log.close()
    return results, skipped


class ResultsLog:
    """Append-only JSON Lines of predictions, each line flushed to disk when written.

    Opening it reads what an earlier run wrote: complete lines are kept (``done``: path →
    Prediction), and a torn last line (a run killed mid-write) is cut off the file.
    """

    def __init__(self, path: str | os.PathLike):
        import json

        self.path = Path(path)
        self.done: dict[str, Prediction] = {}
        good = 0
        if self.path.exists():
            data = self.path.read_bytes()
            for line in data.splitlines(keepends=True):
                try:
                    if not line.endswith(b"\n"):
                        raise ValueError("torn line")
                    p = Prediction.from_dict(json.loads(line))
                except (ValueError, KeyError, TypeError, AttributeError):
                    break  # a torn or foreign line: keep what came before it
                self.done[p.path] = p
                good += len(line)
            if good < len(data):
                with open(self.path, "r+b") as fh:
                    fh.truncate(good)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "ab")

    def append(self, p: Prediction) -> None:
        import json

        self._fh.write((json.dumps(p.to_dict(), ensure_ascii=False) + "\n").encode("utf-8"))
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()


def cross_validate(
    data: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    recipe: Recipe | str | None = None,
    k: int = 5,
    seed: int = 0,
    group_by: str | None = None,
    labels: str = "auto",
    manifest: str | os.PathLike | None = None,
    aliases: dict[str, str] | None = None,
    out: str | os.PathLike | None = None,
    device: str = "auto",
    jobs: int | None = None,
    cache: bool | str | os.PathLike = True,
    init: InstrumentClassifier | str | os.PathLike | None = None,
    progress: Progress | None = None,
) -> dict:
    """K-fold cross-validation: features once, a fresh model per fold, mean ± std of every metric.

    Folds are stratified (``StratifiedKFold(k, shuffle=True, random_state=seed)``, every class
    needs at least ``k`` clips) or, with ``group_by``, grouped (``StratifiedGroupKFold``: every
    group lies in one test fold). Every fold's model is seeded with ``seed``.

    Returns ``{"folds": [...], "mean": {...}, "std": {...}, "context": {...}}``: each fold is
    :func:`~instrec.evaluate.compute_metrics`' dict plus ``fold``, ``n_train``, ``n_test``;
    ``mean``/``std`` hold ``accuracy``, ``macro_f1`` and ``roc_auc_ovr_macro`` over the folds
    (population std, numpy's default). With ``out``, writes ``cv.json`` and ``report.md`` there.
    ``init``: every fold fine-tunes this trained model (see :func:`train_model`).
    """
    init = load_base_model(init)
    recipe = resolve_recipe(recipe, init)
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ParameterError(f"--cv needs k ≥ 2 folds; got {k!r}")
    ds = load_dataset(data, labels=labels, manifest=manifest, aliases=aliases)
    _need_two_classes(ds.labels, "the data")
    if group_by:
        clip_groups(ds.clips, group_by)  # fail before the features are computed
    X, clips, skipped = _features(ds, recipe, progress, jobs=jobs, cache=cache, device=device)
    y = [c.label for c in clips]
    groups = clip_groups(clips, group_by) if group_by else None
    folds = kfold_indices(y, k, seed=seed, groups=groups)
    for i, (tr, _) in enumerate(folds):
        _need_two_classes([y[j] for j in tr], f"the training side of fold {i + 1}")
    named = [(f"fold {i + 1}/{k}", tr, te) for i, (tr, te) in enumerate(folds)]
    shifted = shifted_features(clips, recipe, np.arange(len(clips)), jobs=jobs, cache=cache, progress=progress)
    results = _run_folds(recipe, seed, X, y, named, progress, device=device, shifted=shifted, init=init)
    for i, (res, (tr, te)) in enumerate(zip(results, folds)):
        res.update(fold=i + 1)
        if groups is not None:
            shared = {groups[j] for j in tr} & {groups[j] for j in te}
            if shared:  # a bug in the splitter, never the user's data
                raise AssertionError(f"fold {i + 1} has groups on both sides: {sorted(shared)[:5]}")
            res["n_groups_test"] = len({groups[j] for j in te})
    how = f"grouped by {group_by}" if group_by else "stratified"
    context = {
        "recipe": recipe.name,
        "data": ", ".join(str(r) for r in ds.roots),
        "evaluated on": f"{k}-fold cross-validation ({how}, shuffled, seed {seed}); each clip tested once",
        "clips": f"{len(clips)} usable (about {len(clips) // k} test clips per fold), {len(skipped)} skipped",
        "sources": ", ".join(sorted({c.source for c in clips})),
        "classes": ", ".join(f"{c} ({n})" for c, n in sorted(Counter(y).items())),
        "seed": seed,
    }
    if init is not None:
        context["fine-tuned from"] = _init_record(init)["model"]
    result = _cv_result(results, context, skipped, split={"method": "kfold", "k": k, "group_by": group_by, "seed": seed})
    if out is not None:
        _write_cv(out, "cv.json", result, title=f"{recipe.name}: {k}-fold cross-validation")
    return result


def crossval(
    data_paths: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    recipe: Recipe | str = "seed-mfcc",
    seed: int = 0,
    labels: str = "auto",
    manifest: str | os.PathLike | None = None,
    aliases: dict[str, str] | None = None,
    out: str | os.PathLike | None = None,
    device: str = "auto",
    jobs: int | None = None,
    cache: bool | str | os.PathLike = True,
    progress: Progress | None = None,
) -> dict:
    """Leave-one-source-out: for each source, train on every other source and test on all of it.

    A clip's source is its folder's name or the manifest's ``source`` column (a folder written by
    ``instrec render --soundfont all`` lists fluidr3, musescore, timgm6mb, freepats). Classes of the held-out
    source that training never saw are not scored; each fold lists them under ``unknown_classes``.

    Returns ``{"folds": [...], "mean": {...}, "std": {...}, "context": {...}}``: each fold is
    :func:`~instrec.evaluate.compute_metrics`' dict plus ``held_out``, ``train_sources``,
    ``n_train`` and ``n_test`` (every usable clip of the held-out source). With ``out``, writes
    ``crossval.json`` and ``report.md`` there.

    Raises
    ------
    DataError : fewer than 2 sources, or leaving a source out leaves fewer than 2 classes.
    """
    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    ds = load_dataset(data_paths, labels=labels, manifest=manifest, aliases=aliases)
    _need_two_sources(ds.clips, "")
    X, clips, skipped = _features(ds, recipe, progress, jobs=jobs, cache=cache, device=device)
    _need_two_sources(clips, "usable ")
    y = [c.label for c in clips]
    sources = [c.source for c in clips]
    names = sorted(set(sources))
    named = []
    for s in names:
        tr = np.array([i for i, c in enumerate(sources) if c != s], dtype=np.int64)
        te = np.array([i for i, c in enumerate(sources) if c == s], dtype=np.int64)
        _need_two_classes([y[i] for i in tr], f"training without source {s!r}")
        named.append((f"held out {s}", tr, te))
    shifted = shifted_features(clips, recipe, np.arange(len(clips)), jobs=jobs, cache=cache, progress=progress)
    results = _run_folds(recipe, seed, X, y, named, progress, device=device, shifted=shifted)
    for s, res in zip(names, results):
        res.update(held_out=s, train_sources=[t for t in names if t != s])
    context = {
        "recipe": recipe.name,
        "data": ", ".join(str(r) for r in ds.roots),
        "evaluated on": f"leave-one-source-out: {len(names)} folds, each trains on every source but one and tests on all of that one",
        "clips": f"{len(clips)} usable, {len(skipped)} skipped",
        "sources": ", ".join(f"{s} ({sources.count(s)})" for s in names),
        "classes": ", ".join(f"{c} ({n})" for c, n in sorted(Counter(y).items())),
        "seed": seed,
    }
    result = _cv_result(results, context, skipped, split={"method": "leave-one-source-out", "seed": seed})
    if out is not None:
        _write_cv(out, "crossval.json", result, title=f"{recipe.name}: leave-one-source-out")
    return result


def _features(ds: Dataset, recipe: Recipe, progress: Progress | None, *, jobs: int | None = None, cache=True,
              device: str | None = None):
    """Features of every clip of ``ds`` once: ``(X, usable clips, skipped)``."""
    X, ok, bad = _extract(ds.clips, recipe.feature, jobs, cache, progress, f"{recipe.name}: features", device)
    clips = [ds.clips[i] for i in ok]
    _need_two_classes([c.label for c in clips], "the usable clips")
    return X, clips, ds.skipped + bad


def _extract(clips, feature, jobs, cache, progress, what: str, device: str | None = None):
    """:func:`extract` (compact rows) of a pipeline step, on ``device`` where it has work for one.
    The extraction workers are let go at once: training or scoring comes next and needs their
    memory more than a warm pool."""
    from .features.parallel import release_pool

    try:
        return extract([c.path for c in clips], feature, jobs=jobs, cache=cache, compact=True,
                       progress=_bar(progress, what, len(clips)), device=device)
    finally:
        release_pool()


def shifted_features(clips, recipe: Recipe, rows, *, jobs: int | None = None, cache=True,
                     progress: Progress | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Features of the clips at ``rows``, pitch-shifted by each of the recipe's ``pitch_shifts``.

    One ``(X_shift, where)`` per shift: ``where[i]`` is clip ``i``'s row in ``X_shift``, or -1
    (not asked for, or a clip the shift could not use). Computed on the CPU, and cached like
    any feature (the shift is one of the feature's parameters). No shifts in the recipe: ``[]``.

    Whoever trains a recipe outside :func:`train_model`, :func:`cross_validate` and
    :func:`crossval` passes these to :func:`training_rows`, or the recipe is not the recipe."""
    out = []
    rows = np.asarray(rows, dtype=np.int64)
    for s in recipe.train.pitch_shifts:
        feature = replace(recipe.feature, pitch_shift=s)
        Xs, ok, _ = _extract([clips[i] for i in rows], feature, jobs, cache, progress,
                             f"{recipe.name}: pitch-shifted copies, {s:+g} semitones")
        where = np.full(len(clips), -1, dtype=np.int64)
        where[rows[ok]] = np.arange(len(ok))
        out.append((Xs, where))
    return out


def training_rows(X: np.ndarray, y: Sequence[str], tr, shifted) -> tuple[np.ndarray, list[str]]:
    """The rows and labels a model trains on: clips ``tr``, then their pitch-shifted copies."""
    tr = np.asarray(tr, dtype=np.int64)
    rows, labels = [X[tr]], [y[i] for i in tr]
    for Xs, where in shifted:
        have = tr[where[tr] >= 0]
        rows.append(Xs[where[have]])
        labels += [y[i] for i in have]
    return (rows[0] if len(rows) == 1 else np.concatenate(rows)), labels


def load_base_model(init) -> InstrumentClassifier | None:
    """The model to fine-tune: an :class:`InstrumentClassifier` as it is, a model folder loaded, or
    ``"shipped"`` for the model that ships with instrec (unless a folder of that name exists)."""
    if init is None or isinstance(init, InstrumentClassifier):
        return init
    path = Path(init)
    if str(init) == "shipped" and not path.exists():
        from .assets import shipped_model_path

        path = shipped_model_path()
    if path.suffix == ".onnx":
        raise ParameterError(f"fine-tuning needs a model folder (weights + model.json), not an ONNX export: {init}")
    return InstrumentClassifier.load(path)


def resolve_recipe(recipe: Recipe | str | None, init: InstrumentClassifier | None, *, trainable: str = "all") -> Recipe:
    """The recipe asked for; without one, the fine-tuning recipe of ``init``'s (``trainable``: all
    its weights or its output layer only, see :func:`~instrec.recipes.finetuning`), or seed-mfcc."""
    if recipe is None:
        return finetuning(init.recipe, trainable=trainable) if init is not None else get_recipe("seed-mfcc")
    return get_recipe(recipe) if isinstance(recipe, str) else recipe


def _init_record(init: InstrumentClassifier) -> dict:
    """What model.json and reports say of the model a run fine-tuned."""
    from .classifier import fingerprint

    where = init.path_.resolve() if init.path_ is not None else f"an unsaved {init.recipe.name} model"
    return {"model": str(where), "classes": init.classes, "weights_sha256": fingerprint(init.net_),
            "trained": init.info.get("training", {}).get("command", "")}


def _score_start(init: InstrumentClassifier, X: np.ndarray, y: Sequence[str], te) -> dict | None:
    """The model a run fine-tuned, scored on the run's test clips (so a user sees whether
    fine-tuning helped): ``{"accuracy", "n"}`` over the test clips of classes it knows, answering
    among those classes; ``None`` if it knows fewer than two of them."""
    from .inference import restrict_proba

    known = sorted({y[i] for i in te} & set(init.classes))
    if len(known) < 2:
        return None
    rows = [i for i in te if y[i] in known]
    P = restrict_proba(init.predict_proba(X[rows]), [init.classes.index(c) for c in known])
    right = [known[j] == y[i] for i, j in zip(rows, P.argmax(axis=1))]
    return {"accuracy": float(np.mean(right)), "n": len(rows)}


def checkpoint_path(out: str | os.PathLike) -> Path:
    """Where training for the model folder ``out`` keeps its checkpoint: ``<out>.checkpoint``."""
    out = Path(out)
    return out.with_name(out.name + ".checkpoint")


def _fit_and_score(recipe: Recipe, seed: int, X: np.ndarray, y: Sequence[str], tr, te, bar=None, *, device="auto",
                   checkpoint=None, resume: bool = False, shifted=(), init: InstrumentClassifier | None = None):
    """Train a fresh classifier on rows ``tr`` (and their pitch-shifted copies, see
    :func:`shifted_features`), score it on rows ``te``: ``(classifier, metrics)``.

    The one training step of train_model, cross_validate and crossval.
    """
    clf = InstrumentClassifier(recipe, seed=seed, device=device)
    X_train, y_train = training_rows(X, y, tr, shifted)
    clf.fit(X_train, y_train, on_epoch=(lambda e, n, loss: bar(e, n)) if bar else None,
            checkpoint=checkpoint, resume=resume, init=init)
    proba = clf.predict_proba(X[te]) if len(te) else np.zeros((0, len(clf.classes)), np.float32)
    return clf, compute_metrics([y[i] for i in te], proba, clf.classes)


def _run_folds(recipe: Recipe, seed: int, X: np.ndarray, y: Sequence[str], folds, progress: Progress | None,
               *, device: str = "auto", shifted=(), init: InstrumentClassifier | None = None) -> list[dict]:
    """``folds`` is ``[(name, train rows, test rows)]``; one metrics dict per fold."""
    out = []
    for name, tr, te in folds:
        bar = _bar(progress, f"{recipe.name}: {name}", recipe.train.epochs)
        _, metrics = _fit_and_score(recipe, seed, X, y, tr, te, bar, device=device, shifted=shifted, init=init)
        out.append({"n_train": int(len(tr)), "n_test": int(len(te)), **metrics})
    return out


def _cv_result(folds: list[dict], context: dict, skipped, split: dict) -> dict:
    mean, std = {}, {}
    for key in SUMMARY_METRICS:
        values = [f[key] for f in folds if f.get(key) is not None]
        mean[key] = float(np.mean(values)) if values else None
        std[key] = float(np.std(values)) if values else None
    return {"folds": folds, "mean": mean, "std": std, "split": split, "context": context,
            "skipped": [list(s) for s in skipped]}


def _write_cv(out: str | os.PathLike, json_name: str, result: dict, *, title: str) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / json_name, result)
    write_text(out / "report.md", crossval_markdown(result, title=title))
    return out


def _check_group_by(split: str, group_by: str | None) -> str | None:
    if split == "group" and not group_by:
        raise ParameterError("a group split needs --group-by (pitch, pitch_class, source, group or a manifest column)")
    if group_by and split != "group":
        raise ParameterError(f"--group-by applies to --split group (or --cv); the split is {split!r}")
    return group_by or None


def _split_words(method, group_by) -> str:
    return f"group by {group_by}" if method == "group" and group_by else str(method)


def _need_two_sources(clips, what: str) -> None:
    counts = Counter(c.source for c in clips)
    if len(counts) < 2:
        found = ", ".join(f"{s or '(none)'} ({n} clips)" for s, n in sorted(counts.items())) or "none"
        raise DataError(f"crossval needs {what}clips from at least 2 sources; found {len(counts)}: {found}")


def _need_two_classes(labels: Sequence[str], what: str) -> None:
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise DataError(f"{what} must have at least 2 classes to train; found {len(classes)} ({', '.join(classes) or 'none'})")
