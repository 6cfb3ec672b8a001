"""What the pipeline's steps share: the data options, features of a data set, the recipe and the
model a run starts from, and the one step that trains a model on some rows and scores it on others."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from ..classifier import InstrumentClassifier
from .progress import Progress, bar  # noqa: F401 (re-exported: the pipeline's modules take them from here)
from ..data.folder import Dataset, load_dataset
from ..errors import DataError, ParameterError, counted
from ..evaluate import compute_metrics
from ..models.device_features import extract
from ..recipes import Recipe, finetuning, get_recipe, same_network

# ``progress(description, total) -> update(done, total)``: how a step reports progress

# The recipe of a run that names none: the one the README recommends for a user's own recordings
# (the tutorial's seed-mfcc is the weakest on real recordings of pitches it has not heard).
DEFAULT_RECIPE = "mfcc-stats"


@dataclass(frozen=True)
class DataOptions:
    """How labelled audio is read and its features computed, shared by every step.

    ``labels``: ``auto``, ``folder``, ``filename`` or ``manifest``; ``manifest``: a CSV of
    ``path,label[,group,source]``; ``aliases``: label → label merges, a mapping (``{"sax": "saxophone"}``,
    used as it is) or ``NAME=LABEL`` strings as the command line's ``--alias`` takes them
    (``["sax=saxophone"]``, merged over the built-in ones likewise); ``jobs``: feature-extraction
    processes (``None``: one per core); ``cache``: the feature cache (``True``: its default folder,
    a folder, or ``False``: off; see :func:`instrec.features.extract`); ``fill``: called
    ``fill(paths, config, cache=..., progress=...)`` before each extraction with the cache on, to
    compute the missing entries elsewhere (the command line's ``--ray``:
    :func:`instrec.cluster.tasks.fill_cache_on_ray`); the extraction then reads them.
    """

    labels: str = "auto"
    manifest: str | os.PathLike | None = None
    aliases: Mapping[str, str] | None = None
    jobs: int | None = None
    cache: bool | str | os.PathLike = True
    fill: Callable | None = None

    def __post_init__(self):
        object.__setattr__(self, "aliases", _check_aliases(self.aliases))

    def load(self, data) -> Dataset:
        return load_dataset(data, labels=self.labels, manifest=self.manifest, aliases=dict(self.aliases or {}))


def data_options(options) -> "DataOptions":
    """``options`` as the pipeline takes it: a :class:`DataOptions`, or None (the defaults); else ParameterError."""
    if options is None:
        return DataOptions()
    if not isinstance(options, DataOptions):  # review: a dict reached 'dict' object has no attribute 'load'
        raise ParameterError(f"options must be a DataOptions (instrec.pipeline.DataOptions(jobs=2, ...)); "
                             f"got {type(options).__name__}")
    return options


def _check_aliases(aliases) -> Mapping[str, str] | None:
    """:attr:`DataOptions.aliases` as a mapping: NAME=LABEL strings parsed as the command line
    parses ``--alias`` (:func:`~instrec.data.folder.parse_aliases`); else ParameterError."""
    from ..data.folder import check_aliases, parse_aliases

    if aliases is None:
        return None
    if isinstance(aliases, Mapping):
        try:
            return check_aliases(aliases)
        except ParameterError:
            pass  # said below, with both forms
    else:
        items = [aliases] if isinstance(aliases, str) else aliases
        try:
            items = list(items)
        except TypeError:
            items = None
        if items is not None and all(isinstance(x, str) and "=" in x and all(p.strip() for p in x.split("=", 1))
                                     for x in items):
            return parse_aliases(items)
    raise ParameterError(f"aliases must map names to labels ({{'sax': 'saxophone'}}) or list NAME=LABEL strings "
                         f"(['sax=saxophone']); got {aliases!r}")


def extract_rows(clips, feature, options: DataOptions, progress: Progress | None, what: str, device: str | None = None,
                 *, keep_pool: bool = False):
    """Compact feature rows of ``clips`` (on ``device`` where it has work for one): ``(X, ok, skipped)``.
    The extraction workers are let go at once: training or scoring comes next and needs their
    memory more than a warm pool. ``keep_pool``: another extraction comes next (the pitch-shifted
    copies), which takes the warm workers (a new one's first clip costs ~3 s of imports)."""
    from ..features.parallel import release_pool

    paths = [c.path for c in clips]
    if options.fill is not None and options.cache is not False:
        options.fill(paths, feature, cache=options.cache, progress=bar(progress, f"{what} (filling the cache)", len(clips)))
    try:
        return extract(paths, feature, jobs=options.jobs, cache=options.cache, compact=True,
                       progress=bar(progress, what, len(clips)), device=device)
    finally:
        if not keep_pool:
            release_pool()


def dataset_features(ds: Dataset, recipe: Recipe, options: DataOptions, progress: Progress | None,
                     device: str | None = None):
    """Features of every clip of ``ds`` once: ``(X, usable clips, skipped)`` (the workers are kept
    for :func:`shifted_features` when the recipe has pitch shifts)."""
    X, ok, bad = extract_rows(ds.clips, recipe.feature, options, progress, f"{recipe.name}: features", device,
                              keep_pool=bool(recipe.train.pitch_shifts))
    clips = [ds.clips[i] for i in ok]
    need_two_classes([c.label for c in clips], "the usable clips", ds.skipped + bad)  # all skipped: say why
    return X, clips, ds.skipped + bad


def shifted_features(clips, recipe: Recipe, rows, options: DataOptions | None = None,
                     progress: Progress | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Features of the clips at ``rows``, pitch-shifted by each of the recipe's ``pitch_shifts``.

    One ``(X_shift, where)`` per shift: ``where[i]`` is clip ``i``'s row in ``X_shift``, or -1
    (not asked for, or a clip the shift could not use). Computed on the CPU, and cached like
    any feature (the shift is one of the feature's parameters). No shifts in the recipe: ``[]``.

    Whoever trains a recipe outside :func:`train_model` and :func:`cross_validate` passes these to
    :func:`training_rows`, or the recipe is not the recipe."""
    from ..features.parallel import release_pool

    options = data_options(options)
    out = []
    rows = np.asarray(rows, dtype=np.int64)
    try:
        for s in recipe.train.pitch_shifts:  # one set of warm workers for every shift
            feature = replace(recipe.feature, pitch_shift=s)
            Xs, ok, _ = extract_rows([clips[i] for i in rows], feature, options, progress,
                                     f"{recipe.name}: pitch-shifted copies, {s:+g} semitones", keep_pool=True)
            where = np.full(len(clips), -1, dtype=np.int64)
            where[rows[ok]] = np.arange(len(ok))
            out.append((Xs, where))
    finally:
        release_pool()
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


def check_model_out(out: str | os.PathLike | None) -> None:
    """Refuse ``out`` when it is the shipped model's own folder, inside instrec's installation (a
    model written there would silently replace the shipped model for every later run), the bare name
    ``shipped`` or a folder that is not a model folder (:func:`~instrec.bundle.check_dest`)."""
    from ..assets import SHIPPED_MODEL
    from ..bundle import META, check_dest

    if out is None:
        return
    if Path(out).resolve() == SHIPPED_MODEL.resolve():
        raise ParameterError(f"{out}: that is the shipped model's own folder; write the new model to another folder")
    check_dest(out, marker=META, what="model folder")  # before any work: a folder of recordings is never replaced


def load_base_model(init) -> InstrumentClassifier | None:
    """The model to fine-tune: an :class:`InstrumentClassifier` as it is, a model folder loaded, or
    ``"shipped"`` for the model that ships with instrec (always, see :func:`instrec.assets.model_path`)."""
    from ..assets import model_path

    if init is None or isinstance(init, InstrumentClassifier):
        return init
    if not isinstance(init, (str, os.PathLike)):  # review: an int or a list reached pathlib's TypeError
        raise ParameterError(f"init must be a trained InstrumentClassifier, a model folder or 'shipped'; "
                             f"got {type(init).__name__}")
    if not str(init).strip():  # review: '' read as '.', the current folder
        raise ParameterError("the model to start from (--from, init) is an empty name: give a model folder, or shipped")
    path = model_path(init)
    if path.suffix == ".onnx":
        raise ParameterError(f"{init}: an ONNX export cannot be trained or recalibrated; give its model folder "
                             "(weights + model.json)")
    return InstrumentClassifier.load(path)


def resolve_recipe(recipe: Recipe | str | None, init: InstrumentClassifier | None, *, trainable: str = "all") -> Recipe:
    """The recipe asked for; without one, the fine-tuning recipe of ``init``'s (``trainable``: all
    its weights or its output layer only, see :func:`~instrec.recipes.finetuning`), or
    :data:`DEFAULT_RECIPE` (mfcc-stats). A recipe named with ``init``: the fine-tuning recipe of
    that one, which must have ``init``'s network (:func:`~instrec.recipes.same_network`: cnn-multi
    from a cnn); a :class:`Recipe` is used as it is."""
    if recipe is None:
        return finetuning(init.recipe, trainable=trainable) if init is not None else get_recipe(DEFAULT_RECIPE)
    if not isinstance(recipe, str):
        return recipe
    named = get_recipe(recipe)
    if init is None:
        return named
    if not same_network(init.recipe, named):
        raise ParameterError(f"the model to start from was trained with {init.recipe.name}, whose features or network "
                             f"differ from {named.name}'s: leave the recipe out to fine-tune with its own")
    return finetuning(named, trainable=trainable)


def check_keep_classes(keep_classes: bool, init: InstrumentClassifier | None, recipe: Recipe) -> None:
    """Refuse ``keep_classes`` without a model to keep the classes of, or when ``recipe`` squashes
    its output otherwise (a single-label model's softmax rows, frozen, would say nothing as
    sigmoids: a multi-label model so made heard its kept instruments in a plain sine), before any work."""
    if keep_classes and init is None:
        raise ParameterError("keep_classes keeps the classes of the model fine-tuning starts from: give init")
    if keep_classes and init.recipe.model.output != recipe.model.output:
        raise ParameterError(f"keep_classes keeps output rows as they were, and a {init.recipe.model.output} model's "
                             f"rows mean nothing to a {recipe.model.output} one: train on data of every class you "
                             "want kept, without keep_classes")


# The settings a CLI option overrides, by the option, and how a recipe holds each
NETWORK_OPTIONS = (
    ("--hidden", lambda r: f"hidden {','.join(map(str, r.model.hidden)) or 'none'}"),
    ("--activation", lambda r: f"activation {r.model.activation}"),
    ("--image-mode", lambda r: f"image mode {r.feature.image_mode}"),
)


def check_same_network(init: InstrumentClassifier | None, recipe: Recipe) -> None:
    """Refuse, before any work, a fine-tuning ``recipe`` whose features or network differ from
    ``init``'s (:func:`~instrec.recipes.same_network`), naming the CLI option that changed them."""
    if init is None or same_network(init.recipe, recipe):
        return
    for option, words in NETWORK_OPTIONS:
        if words(init.recipe) != words(recipe):
            raise ParameterError(f"{option}: fine-tuning keeps the network of the model it starts from "
                                 f"({words(init.recipe)}); leave it out")
    raise ParameterError(f"the model to start from was trained with {init.recipe.name}, whose features or network "
                         f"differ from {recipe.name}'s: fine-tune with its own (leave the recipe out)")


def base_training_rows(init: InstrumentClassifier | None, clips) -> list[int]:
    """Indices of those of ``clips`` that ``init`` (the model a run fine-tunes) may have been trained
    on: in a folder it was trained on and not in its held-back test split (see
    :func:`~instrec.pipeline.heldback.training_clips`). None of them may be a test clip of the run."""
    from .heldback import held_back_record, training_clips

    if init is None:
        return []
    found = {id(c) for c in training_clips(clips, init.info, held_back_record(init.path_))}
    return [i for i, c in enumerate(clips) if id(c) in found]


def inherited_families(init: InstrumentClassifier | None, families, labels: Sequence[str]):
    """The taxonomy of a run: ``families`` where given, else that of the model it fine-tunes (its
    classes keep their families; a class it lacks joins its default family), else None (the default)."""
    from ..data.instruments import family_of
    from ..decision import UNKNOWN

    if families is not None or init is None or not init.families_:
        return families
    table = {f: list(m) for f, m in init.families_.items()}
    for c in classes_of(labels):
        if c not in init.classes and c != UNKNOWN and family_of(c):
            table.setdefault(family_of(c), []).append(c)
    return table


# A run's context: the classes of the model it fine-tuned that its training data lacks
ABSENT_DROPPED = "dropped classes (known to the model it started from, absent from the training data)"
ABSENT_KEPT = "kept classes without training data (output rows frozen at the start's)"


def absent_classes(init: InstrumentClassifier, labels: Sequence[str], keep_classes: bool) -> dict[str, str]:
    """What a run's context says of the classes of the model it fine-tunes that ``labels`` (its
    training data) lack: dropped, or (``keep_classes``) kept with their output rows frozen."""
    absent = sorted(set(init.classes) - set(classes_of(labels)))
    if not absent:
        return {}
    return {ABSENT_KEPT if keep_classes else ABSENT_DROPPED: ", ".join(absent)}


def init_record(init: InstrumentClassifier) -> dict:
    """What model.json and reports say of the model a run fine-tuned."""
    from ..classifier import fingerprint

    where = init.path_.resolve() if init.path_ is not None else f"an unsaved {init.recipe.name} model"
    return {"model": str(where), "classes": init.classes, "weights_sha256": fingerprint(init.net_),
            "trained": init.info.get("training", {}).get("command", "")}


def fit_and_score(recipe: Recipe, seed: int, X: np.ndarray, y: Sequence[str], tr, te, progress_bar=None, *,
                  device="auto", checkpoint=None, resume: bool = False, shifted=(),
                  init: InstrumentClassifier | None = None, keep_classes: bool = False,
                  families: Mapping[str, Sequence[str]] | None = None):
    """Train a fresh classifier on rows ``tr`` (and their pitch-shifted copies, see
    :func:`shifted_features`), score it on rows ``te``: ``(classifier, metrics)``.

    The one training step of train_model and cross_validate. ``families``: the model's taxonomy
    (None: the default, see :func:`instrec.decision.resolve_families`). The scores are those of its
    calibrated probabilities, at instrument and at family level.
    """
    from ..calibration import calibrate

    X_train, y_train = training_rows(X, y, tr, shifted)
    families = inherited_families(init, families, y_train)
    clf = InstrumentClassifier(recipe, seed=seed, device=device, families=families)
    if keep_classes and init is not None and init.thresholds_:
        # a kept class has no rows to choose its threshold on: it keeps the base's, as its output row
        clf.thresholds_ = {c: t for c, t in init.thresholds_.items() if c not in classes_of(y_train)}
    clf.fit(X_train, y_train, on_epoch=(lambda e, n, loss: progress_bar(e, n)) if progress_bar else None,
            checkpoint=checkpoint, resume=resume, init=init, keep_classes=keep_classes)
    too_few_to_calibrate(clf)
    proba = clf.predict_proba(X[te]) if len(te) else np.zeros((0, len(clf.classes)), np.float32)
    if clf.multilabel:
        return clf, score_multilabel([y[i] for i in te], proba, clf.classes, clf.thresholds_)
    return clf, compute_metrics([y[i] for i in te], calibrate(proba, clf.temperature_), clf.classes,
                                families=clf.families_, min_confidence=clf.min_confidence_)


def too_few_to_calibrate(clf: InstrumentClassifier) -> None:
    """Undo the temperature a single-label ``clf`` fitted on fewer validation rows than
    :data:`~instrec.calibration.MIN_ROWS` (as ``instrec calibrate`` refuses them): temperature 1,
    no min_confidence, and ``calibration_["too_few_rows"]`` says why."""
    from ..calibration import MIN_ROWS

    n = (clf.calibration_ or {}).get("validation_rows", 0)
    if clf.multilabel or not 0 < n < MIN_ROWS:
        return
    # a temperature from a handful of rows is noise (3 rows gave T 2.3)
    clf.temperature_, clf.min_confidence_ = 1.0, None
    clf.calibration_ = {"validation_rows": n, "temperature": 1.0, "min_confidence": None, "too_few_rows": True,
                        "min_rows": MIN_ROWS}


def score_multilabel(labels: Sequence[str], proba: np.ndarray, classes: Sequence[str],
                     thresholds: Mapping[str, float] | None) -> dict:
    """:func:`~instrec.evaluate.multilabel_metrics` of a multi-label model's probabilities on clips
    labelled ``labels`` (instruments joined by ``;``), at its thresholds. Instruments the model does
    not know are not scored (``unknown_classes`` counts their clips)."""
    from ..data.activity import join_labels, label_matrix, split_labels
    from ..evaluate import multilabel_metrics

    known = set(classes)
    unknown = Counter(c for label in labels for c in split_labels(label) if c not in known)
    Y = label_matrix([join_labels(c for c in split_labels(label) if c in known) for label in labels], classes)
    t = [float((thresholds or {}).get(c, 0.5)) for c in classes]
    metrics = multilabel_metrics(Y, proba, classes, t)
    if unknown:
        metrics["unknown_classes"] = dict(sorted(unknown.items()))
    return metrics


def read_families(families) -> dict[str, list[str]] | None:
    """A taxonomy as the pipeline takes it: a mapping (family → classes) as it is, a CSV file of
    ``instrument,family`` rows read (:func:`instrec.decision.read_families_csv`), or None."""
    from ..decision import read_families_csv

    if families is None or isinstance(families, Mapping):
        return None if families is None else {str(k): list(v) for k, v in families.items()}
    if not isinstance(families, (str, os.PathLike)):  # review: an int reached pathlib's TypeError
        raise ParameterError(f"families must map family names to lists of classes, or name a CSV file; "
                             f"got {type(families).__name__}")
    return read_families_csv(families)


def classes_of(labels: Sequence[str]) -> list[str]:
    """The classes clips labelled ``labels`` hold: the labels, or where any names several
    instruments (``cello;violin``), the instruments named (``unknown``, none, is then no class)."""
    from ..data.activity import is_multilabel, split_labels

    return sorted({c for l in labels for c in split_labels(l)} if is_multilabel(labels) else set(labels))


def need_two_classes(labels: Sequence[str], what: str, skipped: Sequence[tuple[str, str]] = ()) -> None:
    """DataError unless ``labels`` hold 2 classes; ``skipped`` (file, why): named too, as they may be the cause."""
    classes = classes_of(labels)
    if len(classes) < 2:
        lost = (f"; {counted(len(skipped), 'listed file')} {'was' if len(skipped) == 1 else 'were'} skipped, the first: "
                f"{skipped[0][0]}: {skipped[0][1]}" if skipped else "")
        raise DataError(f"{what} must have at least 2 classes to train; found {len(classes)} ({', '.join(classes) or 'none'}){lost}")


def split_words(method, group_by) -> str:
    return f"group by {group_by}" if method == "group" and group_by else str(method)
