"""Train one model: load labelled audio, compute features, split, train, score the test split, save."""

from __future__ import annotations

import functools
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..bundle import SPLIT_FILE
from ..classifier import InstrumentClassifier
from ..data.folder import Dataset
from ..data.splits import check_seed, clip_groups, split_indices
from ..errors import DataError, ParameterError
from ..evaluate import fmt_pct, write_report
from ..fileio import writing
from ..recipes import Recipe
from .common import (DataOptions, Progress, absent_classes, bar, base_training_rows, check_keep_classes,
                     check_model_out, check_same_network, classes_of, data_options, extract_rows, fit_and_score, inherited_families,
                     init_record, load_base_model, need_two_classes, read_families, resolve_recipe, shifted_features,
                     split_words)
from .validation import recipe_label



@dataclass
class TrainResult:
    model: InstrumentClassifier
    model_dir: Path | None
    metrics: dict
    context: dict
    skipped: list[tuple[str, str]] = field(default_factory=list)
    extract_seconds: float = 0.0
    train_seconds: float = 0.0


def _peers(fn):
    """:func:`~instrec.train.distributed.stops_with_its_peers`, imported when training runs (it needs
    torch, which the pipeline's other steps do not): under torchrun another process gone is one line."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from ..train.distributed import stops_with_its_peers

        return stops_with_its_peers(fn)(*args, **kwargs)

    return wrapper


@_peers
def train_model(
    data: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    recipe: Recipe | str | None = None,
    out: str | os.PathLike | None = None,
    split: str = "random",
    group_by: str | None = None,
    test_size: float = 0.2,
    seed: int = 0,
    options: DataOptions | None = None,
    report_dir: str | os.PathLike | None = None,
    device: str = "auto",
    resume: bool = False,
    init: InstrumentClassifier | str | os.PathLike | None = None,
    keep_classes: bool = False,
    families: Mapping[str, Sequence[str]] | str | os.PathLike | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Load labelled audio, extract features, split, train, score the test split, save a bundle.

    The split defaults to the tutorial's: random 80/20 with ``random_state=seed`` (0).
    ``split="group"`` with ``group_by`` (``pitch``, ``pitch_class``, ``source``, ``group`` or a
    manifest column, see :func:`~instrec.data.splits.clip_groups`; default ``group``, the
    manifest's column, which for ``instrec render-music`` is the piece) keeps every group on one
    side and holds back ``test_size`` of the groups.

    ``options``: how the data is read and its features computed (:class:`DataOptions`).

    With ``out``, the training state is saved every 30 s or so (at the end of an epoch;
    ``$INSTREC_CHECKPOINT_SECONDS``) in ``<out>.checkpoint`` (removed once the model is saved); ``resume=True`` continues an interrupted run from it, ending with the
    model an uninterrupted run would have made.

    ``init``: fine-tune this trained model (an :class:`InstrumentClassifier`, its folder, or
    ``"shipped"``) instead of starting from random weights. Its weights and input statistics are
    the start; output rows are matched by class name (a new class starts from a fresh row). Without
    ``recipe`` its own is used (:func:`~instrec.recipes.finetuning`); without either,
    :data:`~instrec.pipeline.DEFAULT_RECIPE` (``mfcc-stats``, as ``instrec train``).
    ``model.json`` records the model it started from (``training.fine_tuned_from``). A class
    of ``init`` that the training clips lack is dropped (``context`` says which), unless
    ``keep_classes``: then the model keeps it, its output row frozen at ``init``'s (see
    :meth:`InstrumentClassifier.fit`).
    The clips ``init`` was trained on (its ``split.json`` and data roots, see
    :mod:`~instrec.pipeline.heldback`) stay on the training side: the test split is drawn from the
    others (``training.split.base_training_kept_in_training``), or where they are too few, the
    plain split, with ``context["warning"]`` and ``metrics["training_clips"]`` counting them. The
    start is scored beside the new model on the test clips of the classes both know, each choosing
    among those (``fine_tuned_from.test_split``). Without ``families``, ``init``'s; a multi-label
    ``init``'s kept classes keep its thresholds. A recipe of another network than ``init``'s is
    refused before any work.

    ``families``: the model's taxonomy, family → classes, or a CSV file of ``instrument,family``
    rows; None: the default table (see :func:`instrec.decision.resolve_families`). It is saved in
    model.json. Training ends by calibrating the model on its validation rows (a temperature and
    a doubt threshold, see :mod:`instrec.calibration`); ``context["calibration"]`` says how, or
    that the recipe held none back, or too few (under :data:`~instrec.calibration.MIN_ROWS`: temperature 1).
    ``context["recipe"]`` and model.json's ``training.recipe_label`` name the recipe with its
    overridden settings (:func:`~instrec.pipeline.validation.recipe_label`).

    Started by torchrun (``WORLD_SIZE`` > 1 in the environment), every process trains its share
    of each minibatch (see :func:`instrec.train.fit_network`; ``instrec train --nproc N``). Rank 0
    computes the features first and the others then read them from the feature cache (with
    ``options.cache`` off, each computes them); rank 0 alone writes the model folder, the report
    and removes the checkpoint, and every process returns the same result once the model is saved.
    """
    from ..decision import resolve_families
    from ..train.distributed import barrier, init_from_env, is_main, main_first

    seed = check_seed(seed)  # before anything: the split's random_state and the network's seed
    init_from_env(device)  # under torchrun: join the other processes (a no-op otherwise)
    options = data_options(options)
    families = read_families(families)
    check_model_out(out)
    _check_out_not_here(out)
    if resume and out is None:  # before the features, which may take hours
        raise ParameterError("--resume continues the training of a model folder: give --out")
    if out is not None:
        _check_checkpoint_dest(checkpoint_path(out))
    init = load_base_model(init)
    if out is not None and getattr(init, "path_", None) is not None and Path(out).resolve() == Path(init.path_).resolve():
        raise ParameterError(f"--out {out} is the model training starts from (--from): it would be replaced; "
                             "give another folder")
    recipe = resolve_recipe(recipe, init)
    check_keep_classes(keep_classes, init, recipe)
    check_same_network(init, recipe)  # before the features: a network override cannot start from init
    group_by = _check_group_by(split, group_by)
    ds = options.load(data)
    need_two_classes(ds.labels, "the data", ds.skipped)
    # a bad table fails before the features are computed
    resolve_families(classes_of(ds.labels), inherited_families(init, families, ds.labels))
    if group_by:
        clip_groups(ds.clips, group_by)  # a clip without a group fails before the features are computed
    t0 = time.perf_counter()
    with main_first():  # rank 0 fills the feature cache; the others find every row there
        X, ok, bad = extract_rows(ds.clips, recipe.feature, options, progress, f"{recipe.name}: features", device,
                                  keep_pool=bool(recipe.train.pitch_shifts))
    extract_seconds = time.perf_counter() - t0
    skipped = ds.skipped + bad
    clips = [ds.clips[i] for i in ok]
    y = [c.label for c in clips]
    need_two_classes(y, "the usable clips", skipped)  # every clip of a class skipped: say why
    groups = clip_groups(clips, group_by) if group_by else None
    tr, te, base_split = _split_around_base(y, split, test_size, seed, groups, base_training_rows(init, clips))
    split_record = {"method": split, "test_size": test_size, "seed": seed, "n_train": len(tr), "n_test": len(te),
                    **base_split}
    if groups is not None:
        shared = {groups[i] for i in tr} & {groups[i] for i in te}
        if shared:  # a bug in the splitter, never the user's data
            raise AssertionError(f"group split leaked groups onto both sides: {sorted(shared)[:5]}")
        split_record.update(group_by=group_by, n_groups_train=len({groups[i] for i in tr}),
                            n_groups_test=len({groups[i] for i in te}))
    need_two_classes([y[i] for i in tr], "the training split")

    checkpoint = checkpoint_path(out) if out is not None else None
    with main_first():
        shifted = shifted_features(clips, recipe, tr, options, progress)
    clf, metrics = fit_and_score(recipe, seed, X, y, tr, te, bar(progress, f"{recipe.name}: training", recipe.train.epochs),
                                 device=device, checkpoint=checkpoint, resume=resume, shifted=shifted, init=init,
                                 keep_classes=keep_classes, families=families)
    label = recipe_label(recipe)
    context = {
        "recipe": label,
        "data": ", ".join(str(r) for r in ds.roots),
        "evaluated on": f"held-back test split ({split_words(split, group_by)}, test_size {test_size}, seed {seed})",
        "clips": f"{len(clips)} usable ({len(tr)} train, {len(te)} test), {len(skipped)} skipped",
        "sources": ", ".join(sorted({c.source for c in clips})),
        "seed": seed,
        "calibration": calibration_words(clf.calibration_),
    }
    info = {
        "training": {
            "recipe_label": label,  # the recipe with the settings overridden, for reports
            "data": Dataset(clips, ds.roots, ds.label_mode).summary(),  # the usable clips
            "split": split_record,
            "skipped": len(skipped),
            "extract_seconds": round(extract_seconds, 3),
            "train_seconds": round(clf.history_["seconds"], 3),
            "final_loss": clf.history_["loss"][-1],
            "epochs_run": clf.history_["epochs_run"],
            "best_epoch": clf.history_["best_epoch"],
            "validation_rows": clf.history_["validation_rows"],
            "calibration": {**clf.calibration_, "summary": context["calibration"]},
            **({"lbfgs_iterations": clf.history_["iterations"]} if "iterations" in clf.history_ else {}),
        },
        "metrics": {"test_split": test_split_summary(metrics)},
    }
    if recipe.train.val_fraction > 0 and not clf.history_["validation_rows"]:
        n = clf.history_["epochs_run"]
        context["validation"] = (f"none: too few clips to choose an epoch on (fewer than {recipe.train.min_val_per_class} "
                                 f"a class); trained {n} epoch{'s' if n != 1 else ''}, the last weights kept")
    if init is not None:
        start = info["training"]["fine_tuned_from"] = init_record(init)
        context["fine-tuned from"] = start["model"]
        trained = [y[i] for i in tr]  # the labels fit() saw; the base's other classes are dropped or kept
        start["kept_classes" if keep_classes else "dropped_classes"] = sorted(set(init.classes) - set(classes_of(trained)))
        context.update(absent_classes(init, trained, keep_classes))
        if families is None and init.families_:
            context["families"] = "those of the model it started from"
        if base_split.get("base_training_kept_in_training"):
            context["split"] = (f"{base_split['base_training_kept_in_training']} clips the model it started from "
                                "trained on kept on the training side; the test split is drawn from the other "
                                f"{base_split['drawn_from']}")
        elif base_split.get("base_training_in_test"):
            n = base_split["base_training_in_test"]
            context["warning"] = (f"{n} of the {len(te)} test clips are clips the model it started from trained on "
                                  f"(they could not be kept out: {base_split['why']}), so the figures include them")
            # as evaluate records clips a model may have trained on
            metrics["training_clips"] = info["metrics"]["test_split"]["training_clips"] = {
                "n": n, "of": len(te), "held_back_record": True}
        start["test_split"] = _score_start(init, clf, X, y, te)
        if start["test_split"] is not None:
            context["the model it started from"] = start_words(start["test_split"])
    lost = sorted(set(classes_of(ds.labels)) - set(classes_of(y)))
    if lost:  # the skipped list may be long: a class gone whole is said on its own
        words = (f"no usable clip of {', '.join(lost)} (every one was skipped): the model does not know "
                 f"{'it' if len(lost) == 1 else 'them'}")
        context["warning"] = f"{context['warning']}; {words}" if "warning" in context else words
    clf.info.update(info)
    model_dir = None
    if out is not None and not is_main():
        model_dir = Path(out)  # rank 0's to write
    elif out is not None:
        test_record = {"roots": [str(r) for r in ds.roots], "test": [str(clips[i].path.resolve()) for i in te]}
        with writing(out):  # a full disk or a read-only folder: one line naming it (WriteError)
            model_dir = clf.save(out, extra_files={SPLIT_FILE: test_record})
        if _is_checkpoint(checkpoint):  # the model is safe: the checkpoint has done its job
            shutil.rmtree(checkpoint, ignore_errors=True)
    if report_dir is not None and is_main():
        with writing(report_dir):
            write_report(report_dir, metrics, title=f"{label}: evaluation", context=context, skipped=skipped)
    barrier()  # every process returns once the model is saved
    return TrainResult(clf, model_dir, metrics, context, skipped, extract_seconds, clf.history_["seconds"])


def test_split_summary(metrics: dict) -> dict:
    """What model.json keeps of the test split's scores."""
    if metrics.get("multilabel"):
        return {k: metrics[k] for k in ("map", "micro_f1", "macro_f1", "exact_match", "n")}
    return {**{k: metrics[k] for k in ("accuracy", "macro_f1", "roc_auc_ovr_macro", "ece", "n")},
            "family_accuracy": metrics["family"]["accuracy"]}


def calibration_words(cal: dict) -> str:
    """What a run's calibration did, in words (the training summary's line); where it chose
    nothing, the command that would."""
    fix = "; instrec calibrate MODEL DATA --out NEW, on recordings of yours, chooses "
    if "thresholds" in cal:  # a multi-label model's
        if not cal.get("validation_rows"):
            return "none: the recipe held no validation rows back, so every instrument's threshold is 0.5" + fix + "them"
        from ..calibration import MIN_POSITIVES

        n, pos = cal["validation_rows"], cal.get("positives") or {}
        # as choose_thresholds decides: enough positive rows, and a negative one
        chosen = [t for c, t in cal["thresholds"].items() if MIN_POSITIVES <= pos.get(c, MIN_POSITIVES) < n]
        rest = (f"the others, with fewer than {MIN_POSITIVES} positive rows (or no negative one), keep theirs "
                "(0.5 in a new model)")
        if not chosen:
            return f"none chosen: no instrument has {MIN_POSITIVES} positive rows among the {n} validation rows; {rest}"
        return (f"a threshold per instrument chosen on {n} validation rows for the best F1, for {len(chosen)} of "
                f"{len(cal['thresholds'])} ({min(chosen):.2f}-{max(chosen):.2f})" + ("" if len(chosen) == len(cal["thresholds"]) else f"; {rest}"))
    if cal.get("too_few_rows"):
        return (f"too few validation rows ({cal['validation_rows']}) to calibrate (at least {cal['min_rows']}): "
                "temperature 1 and no min_confidence" + fix + "both")
    if not cal.get("validation_rows"):
        return "none: the recipe held no validation rows back, so temperature 1 and no min_confidence" + fix + "both"
    text = (f"temperature {cal['temperature']:.3f} fitted on {cal['validation_rows']} validation rows "
            f"(negative log-likelihood {cal['nll_before']:.3f} → {cal['nll_after']:.3f})")
    if cal.get("min_confidence") is None:
        return text + f"; no min_confidence (fewer than 20 validation rows of known classes: {cal['known_rows']})"
    text += (f"; min_confidence {cal['min_confidence']:.3f}, which answers unknown for {cal['known_rejected']} of "
             f"the {cal['known_rows']} validation rows of known classes")
    if cal.get("unknown_rows"):
        text += f" and for {cal['unknown_rejected']} of the {cal['unknown_rows']} of the class unknown"
    return text


def _score_start(init: InstrumentClassifier, clf: InstrumentClassifier, X: np.ndarray, y: Sequence[str],
                 te) -> dict | None:
    """The model a run fine-tuned and the model it made, scored alike on the run's test clips (so a
    user sees whether fine-tuning helped): over the test clips of the classes both know, each
    answering among those classes alone. ``{"accuracy", "accuracy_new", "n", "classes"}``;
    ``None`` if they share fewer than two of the test split's classes."""
    from ..engines import restrict_proba

    known = sorted({y[i] for i in te} & set(init.classes) & set(clf.classes))
    if len(known) < 2:
        return None
    rows = [i for i in te if y[i] in known]

    def accuracy(model):
        P = restrict_proba(model.predict_proba(X[rows]), [model.classes.index(c) for c in known])
        return float(np.mean([known[j] == y[i] for i, j in zip(rows, P.argmax(axis=1))]))

    return {"accuracy": accuracy(init), "accuracy_new": accuracy(clf), "n": len(rows), "classes": known}


def start_words(score: dict) -> str:
    """The line comparing the model a run fine-tuned with the one it made (see :func:`_score_start`)."""
    return (f"accuracy {fmt_pct(score['accuracy'])}, this model {fmt_pct(score['accuracy_new'])}, on the {score['n']} "
            f"test clips of the {len(score['classes'])} classes both know, each choosing among those alone "
            f"({', '.join(score['classes'])})")


def _split_around_base(y, split, test_size, seed, groups, base_rows):
    """:func:`split_indices`, with the clips the model a run fine-tunes was trained on (``base_rows``)
    kept on the training side: the test split, as many clips (groups) as ``test_size`` asks of all,
    is drawn from the other clips (the other groups with a group split), all of them where they are
    no more. Where they are too few to split, the plain split, and the record says how many of its
    test clips the base trained on. ``(train, test, record)``."""
    if not base_rows:
        tr, te = split_indices(y, method=split, test_size=test_size, seed=seed, groups=groups)
        return tr, te, {}
    n, base = len(y), set(base_rows)
    blocked = {groups[i] for i in base} if groups is not None else set()
    free = np.array([i for i in range(n) if i not in base and (groups is None or groups[i] not in blocked)],
                    dtype=np.int64)
    units = len(set(groups)) if groups is not None else n
    free_units = len({groups[i] for i in free}) if groups is not None else len(free)
    want = int(np.ceil(test_size * units))  # split_indices's own count, of all the clips (groups)
    try:
        if not free_units:
            raise DataError("every clip is one it trained on" + (" or shares a group with one" if groups is not None else ""))
        if want >= free_units:
            te = free
        else:  # a hair under want/free_units, so that the split's ceil() gives want, not want + 1
            _, te_free = split_indices([y[i] for i in free], method=split, test_size=want / free_units - 1e-9, seed=seed,
                                       groups=[groups[i] for i in free] if groups is not None else None)
            te = np.sort(free[te_free])
    except DataError as e:  # too few clips it never saw to split: the plain split, said
        tr, te = split_indices(y, method=split, test_size=test_size, seed=seed, groups=groups)
        return tr, te, {"base_training_in_test": len(base & set(te.tolist())), "why": str(e)}
    tr = np.setdiff1d(np.arange(n), te)
    return tr, te, {"base_training_kept_in_training": len(base), "drawn_from": len(free)}


def checkpoint_path(out: str | os.PathLike) -> Path:
    """Where training for the model folder ``out`` keeps its checkpoint: ``<out>.checkpoint``, beside it."""
    out = Path(os.path.abspath(out))  # ".", "..", "m/..": the folder they name, never one inside it
    if not out.name:
        raise ParameterError(f"{out}: name a folder to write the model folder to, not the root")
    return out.with_name(out.name + ".checkpoint")


def _check_out_not_here(out: str | os.PathLike | None) -> None:
    """Refuse a model folder that is the current folder or holds it: the folder is replaced whole
    on save (after all the training), which cannot be done to the folder a process stands in."""
    if out is None:
        return
    here, target = Path.cwd().resolve(), Path(out).resolve()
    if target == here or target in here.parents:
        raise ParameterError(f"--out {out}: is the current folder or holds it; name a new folder for the model")


def _is_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a checkpoint folder, or an empty folder: what a run may remove."""
    from ..train.checkpoint import CKPT_JSON

    return path.is_dir() and ((path / CKPT_JSON).is_file() or not any(path.iterdir()))


def _check_checkpoint_dest(path: Path) -> None:
    """Refuse, before any work, a ``<out>.checkpoint`` that is not a checkpoint: a run replaces it
    as it trains and removes it at the end, and a user's folder of that name would go with it."""
    from ..train.checkpoint import checkpoint_exists

    checkpoint_exists(path)  # puts back one a killed run left aside
    if path.exists() and not _is_checkpoint(path):
        raise ParameterError(f"{path}: is not a training checkpoint, but training would replace it (the checkpoint "
                             "of a model folder goes beside it): move it, or name another model folder")


def _check_group_by(split: str, group_by: str | None) -> str | None:
    if split == "group" and not group_by:
        return "group"  # the manifest's own column (render-music's: the piece)
    if group_by and split != "group":
        raise ParameterError(f"--group-by applies to --split group (or --cv); the split is {split!r}")
    return group_by or None
