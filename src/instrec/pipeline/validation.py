"""Cross-validation: features once, a fresh model for each fold of a splitter, mean ± std of every metric."""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from ..classifier import InstrumentClassifier
from ..data.splits import KFold, LeaveOneSourceOut, check_seed
from ..errors import DataError, ParameterError
from ..evaluate import crossval_fold_counts, crossval_markdown, summary_metrics
from ..fileio import write_json, write_text, writing
from ..recipes import RECIPES, Recipe
from .common import (DataOptions, Progress, absent_classes, bar, base_training_rows, check_keep_classes, data_options,
                     dataset_features, fit_and_score, init_record, load_base_model, need_two_classes,
                     read_families, resolve_recipe, shifted_features)

Splitter = KFold | LeaveOneSourceOut


def cross_validate(
    data: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    recipe: Recipe | str | None = None,
    cv: int | Splitter = 5,
    seed: int = 0,
    options: DataOptions | None = None,
    out: str | os.PathLike | None = None,
    device: str = "auto",
    init: InstrumentClassifier | str | os.PathLike | None = None,
    keep_classes: bool = False,
    families=None,
    progress: Progress | None = None,
) -> dict:
    """Train a fresh model on the training side of each fold of ``cv`` and score it on the test side.

    ``cv``: a splitter, :class:`~instrec.data.splits.KFold` (stratified or, with ``group_by``,
    grouped folds) or :class:`~instrec.data.splits.LeaveOneSourceOut` (each source, a folder's
    name or the manifest's ``source`` column, held out in turn); an integer ``k`` means
    ``KFold(k, seed=seed)``. Features are computed once; every fold's model is seeded with
    ``seed``. Classes of a test side that its training side never saw are not scored; each fold
    lists them under ``unknown_classes``. ``init``: every fold fine-tunes this trained model (see
    :func:`~instrec.pipeline.train_model`, also for ``keep_classes``). Without ``recipe`` (and
    ``init``), :data:`~instrec.pipeline.DEFAULT_RECIPE`. ``families``: as for
    :func:`~instrec.pipeline.train_model` (each fold also reports family-level figures).

    Returns ``{"folds": [...], "mean": {...}, "std": {...}, "n_folds": {...}, "split": {...},
    "context": {...}, "recipe": {...}, "skipped": [...]}``: each fold is :func:`~instrec.evaluate.compute_metrics`' dict plus
    ``n_train``, ``n_test`` and what the splitter says of it (``fold``, or ``held_out`` and
    ``train_sources``); ``mean``/``std`` hold accuracy, macro F1 and ROC AUC over the folds
    (population std, numpy's default), each over the folds that have it (``n_folds``: how many);
    ``recipe`` is the recipe run, every setting (``context``'s ``recipe`` names it with the settings
    that differ from the named recipe's: ``mfcc-stats (epochs 1, hidden none)``). A multi-label
    recipe's folds are :func:`~instrec.evaluate.multilabel_metrics`' dicts, and ``mean``/``std`` hold mAP, micro and
    macro F1 (clip level: the activity tables' frame-level F1 is ``evaluate``'s). With ``out``, writes the splitter's JSON file (``cv.json``
    or ``crossval.json``) and ``report.md`` there; a file or an unwritable folder fails before
    any feature is computed (ParameterError, WriteError).
    """
    seed = check_seed(seed)  # every fold's network's seed (and the folds' with an integer cv)
    options = data_options(options)
    families = read_families(families)
    if not isinstance(cv, (KFold, LeaveOneSourceOut)) and (isinstance(cv, bool) or not isinstance(cv, (int, np.integer))):
        raise ParameterError(f"cv must be a number of folds, instrec's KFold or LeaveOneSourceOut "
                             f"(instrec.data.splits); got {type(cv).__name__}")  # a scikit-learn splitter lacks groups by pitch and source
    splitter = KFold(cv, seed=seed) if not isinstance(cv, (KFold, LeaveOneSourceOut)) else cv
    init = load_base_model(init)
    recipe = resolve_recipe(recipe, init)
    check_keep_classes(keep_classes, init, recipe)
    if out is not None:
        check_report_dir(out)
    ds = options.load(data)
    need_two_classes(ds.labels, "the data", ds.skipped)
    splitter.check(ds.clips)  # fail before the features are computed
    X, clips, skipped = dataset_features(ds, recipe, options, progress, device)
    y = [c.label for c in clips]
    folds = list(splitter.split(clips))
    base = np.asarray(base_training_rows(init, clips), dtype=int)
    if len(base):  # clips the starting model trained on are never a fold's test clips: they train
        folds = [(name, np.union1d(tr, np.intersect1d(te, base)), np.setdiff1d(te, base), facts)
                 for name, tr, te, facts in folds]
        if not any(len(te) for _, _, te, _ in folds):
            raise DataError(f"all {len(clips)} clips are ones the model it starts from was trained on: "
                            "cross-validate on other recordings")
        folds = [f for f in folds if len(f[2])]
    for name, tr, _, _ in folds:
        need_two_classes([y[j] for j in tr], f"the training side of {name}")
    shifted = shifted_features(clips, recipe, np.arange(len(clips)), options, progress)
    results = []
    for name, tr, te, facts in folds:
        _, metrics = fit_and_score(recipe, seed, X, y, tr, te, bar(progress, f"{recipe.name}: {name}", recipe.train.epochs),
                                   device=device, shifted=shifted, init=init, keep_classes=keep_classes,
                                   families=families)
        results.append({"n_train": int(len(tr)), "n_test": int(len(te)), **metrics, **facts})
    sources = Counter(c.source for c in clips)
    context = {
        "recipe": recipe_label(recipe),
        "data": ", ".join(str(r) for r in ds.roots),
        "evaluated on": splitter.describe(clips),
        "clips": f"{len(clips)} usable, {len(skipped)} skipped",
        "sources": ", ".join(f"{s} ({n})" for s, n in sorted(sources.items())),
        "classes": ", ".join(f"{c} ({n})" for c, n in sorted(Counter(y).items())),
        "seed": seed,
    }
    if init is not None:
        context["fine-tuned from"] = init_record(init)["model"]
        context.update(absent_classes(init, y, keep_classes))
        if len(base):
            context["kept out of every test side"] = f"{len(base)} clips the model it starts from was trained on"
    result = _cv_result(results, context, skipped, split={**splitter.record(clips), "model_seed": seed})
    result["recipe"] = recipe.to_dict()
    if out is not None:
        _write_cv(out, splitter.report_file, result, title=f"{context['recipe']}: {splitter.title()}")
    return result


def _cv_result(folds: list[dict], context: dict, skipped, split: dict) -> dict:
    mean, std = {}, {}
    for key, _, _ in summary_metrics(any(f.get("multilabel") for f in folds)):
        values = [f[key] for f in folds if f.get(key) is not None]
        mean[key] = float(np.mean(values)) if values else None
        std[key] = float(np.std(values)) if values else None
    result = {"folds": folds, "mean": mean, "std": std, "split": split, "context": context,
              "skipped": [list(s) for s in skipped]}
    result["n_folds"] = crossval_fold_counts(result)[1]
    return result


def recipe_label(recipe: Recipe) -> str:
    """``mfcc-stats (epochs 1, hidden none)``: the recipe's name with the settings the CLI overrides
    (epochs, hidden, activation, image mode) where they differ from the named recipe's."""
    named = RECIPES.get(recipe.name)
    if named is None:
        return recipe.name
    changed = []
    if recipe.train.epochs != named.train.epochs:
        changed.append(f"epochs {recipe.train.epochs}")
    if recipe.model.hidden != named.model.hidden:
        changed.append(f"hidden {','.join(map(str, recipe.model.hidden)) or 'none'}")
    if recipe.model.activation != named.model.activation:
        changed.append(f"activation {recipe.model.activation}")
    if recipe.feature.image_mode != named.feature.image_mode:
        changed.append(f"image mode {recipe.feature.image_mode}")
    return f"{recipe.name} ({', '.join(changed)})" if changed else recipe.name


def check_report_dir(out: str | os.PathLike) -> None:
    """Fail before any work where the report could not be written: ``out`` is a file
    (ParameterError), or the folder cannot be made or written in (WriteError naming it).
    Folders made for the test are removed again."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ParameterError(f"{out}: is a file, not a folder; name a folder for the report")
    made = [p for p in [out, *out.parents] if not p.exists()]
    try:
        with writing(out):
            out.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=out):
                pass
    finally:
        for p in made:  # innermost first: the report, when written, makes them again
            try:
                p.rmdir()
            except OSError:
                break


def _write_cv(out: str | os.PathLike, json_name: str, result: dict, *, title: str) -> Path:
    out = Path(out)
    with writing(out):  # a full disk or a read-only folder: one line naming it (WriteError)
        out.mkdir(parents=True, exist_ok=True)
    write_json(out / json_name, result)
    write_text(out / "report.md", crossval_markdown(result, title=title))
    return out
