"""``InstrumentClassifier``: a recipe's network as a scikit-learn estimator.

``fit`` / ``predict`` / ``predict_proba`` work on feature rows (:func:`instrec.features.extract`);
``save`` / ``load`` write and read a bundle, whose model.json carries the exact feature
configuration, so a model is never fed features computed differently from its training.
Recordings of any length are predicted through :class:`instrec.inference.Model`.

``fit`` ends by calibrating the model on the validation rows the training loop held back (see
:mod:`instrec.calibration`): a temperature and a doubt threshold, saved in model.json beside the
model's families (:mod:`instrec.decision`).
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError

from .data.activity import LABEL_SEP, is_multilabel, join_labels, label_matrix, split_labels
from .bundle import check_class_names
from .data.splits import check_seed
from .errors import BundleError, DataError, ParameterError
from .recipes import RECIPES, Recipe, get_recipe, same_network

# model.json keys that describe the network itself; everything else is the model's ``info``
_SPEC_KEYS = ("format", "format_version", "classes", "recipe", "in_dim", "seed", "versions", "families", "temperature",
              "min_confidence", "thresholds", "label_values")


class NotTrainedError(ParameterError, NotFittedError):
    """A classifier used before ``fit`` or ``load``: a usage error (exit 2), and to scikit-learn's
    tools the :class:`~sklearn.exceptions.NotFittedError` they expect."""


class InstrumentClassifier(ClassifierMixin, BaseEstimator):
    """A trainable, savable instrument classifier (``clone`` and ``get_params`` work).

    The parameters are stored as given, as scikit-learn's ``clone`` and ``set_params`` need, and
    checked by ``fit``.

    Parameters
    ----------
    recipe : a :class:`~instrec.recipes.Recipe` or the name of one (``seed-mfcc``, ``mfcc-stats``, ``cnn`` ...);
        ``get_params`` gives it as given, the attribute ``recipe`` reads a known name as its Recipe
    seed : seeds weight initialisation and minibatch order: an integer from 0 to 2**32 - 1
    device : ``auto`` (a CUDA GPU when present), ``cpu`` or ``cuda``; training only
    families : family → member classes (see :func:`instrec.decision.resolve_families`); None: the
        default table (:data:`instrec.data.instruments.FAMILIES`, other classes each their own)

    Attributes
    ----------
    recipe_ : the :class:`~instrec.recipes.Recipe` the model was trained with (or loaded)
    classes_ : the classes as ``fit`` was given them, sorted, an ndarray: integer labels stay integers
        (sorted by value), names are str; ``predict`` answers with them, ``predict_proba``'s columns follow them
    class_names_ : the classes' names (str) in the same order, as model.json lists them (also :attr:`classes`)
    label_values_ : where ``fit`` was given integer labels, those of ``classes_`` (an array), which
        ``predict`` answers with; None for names (``predict`` answers with names) and loaded models
    n_features_in_ : the number of features a row has (the recipe's)
    families_ : the families of ``classes_``; None for a model saved before families existed
        (the default table applies)
    temperature_ : the calibration temperature fitted on the validation rows (1.0 without any;
        None for a model saved before calibration existed)
    min_confidence_ : the doubt threshold chosen on the validation rows, or None
    calibration_ : how the two were chosen (rows, negative log-likelihood before and after, rejections)
    thresholds_ : a multi-label model's (``recipe.model.output == "sigmoid"``) per-class decision
        thresholds, class → probability, chosen on the validation rows
        (:func:`instrec.calibration.choose_thresholds`); None for a single-label model

    A multi-label model's labels name the instruments of a row joined by ``;``
    (``"cello;violin"``; ``unknown``: none plays), and it learns one sigmoid per instrument.
    """

    def __init__(self, recipe: Recipe | str = "seed-mfcc", *, seed: int = 0, device: str = "auto",
                 families: dict | None = None):
        self.recipe = recipe  # as given (a name is resolved by fit): set_params and clone pass names too
        self.seed = seed
        self.device = device
        self.families = families
        self._forget()

    def _forget(self) -> None:
        """Drop everything learnt or loaded: a refit model must not carry the last one's data,
        bundle, thresholds or calibration."""
        self.recipe_: Recipe | None = None
        self.class_names_: list[str] | None = None
        self.label_values_: np.ndarray | None = None
        self.n_features_in_: int | None = None
        self.families_: dict[str, list[str]] | None = None
        self.temperature_: float | None = None
        self.min_confidence_: float | None = None
        self.calibration_: dict | None = None
        self.thresholds_: dict[str, float] | None = None
        self.net_ = None
        self.history_: dict | None = None
        self.path_: Path | None = None  # the bundle it was loaded from, if any
        self.info: dict = {}

    @property
    def classes_(self) -> np.ndarray | None:
        """The classes as ``fit`` was given them (see the class's Attributes); None before fit."""
        if self.class_names_ is None:
            return None
        if self.label_values_ is not None:
            return self.label_values_.copy()
        return np.array(self.class_names_, dtype=object)  # Python str, as predict answers

    @property
    def recipe(self):
        """The ``recipe`` parameter; a known recipe's name reads as that :class:`Recipe`
        (``get_params`` gives the name, as given)."""
        given = self._recipe_given
        return RECIPES[given] if isinstance(given, str) and given in RECIPES else given

    @recipe.setter
    def recipe(self, value) -> None:
        self._recipe_given = value

    def get_params(self, deep: bool = True) -> dict:
        return {**super().get_params(deep=deep), "recipe": self._recipe_given}

    def _resolved_recipe(self) -> Recipe:
        """The ``recipe`` parameter as a Recipe; a ParameterError naming the recipes for anything else."""
        given = self._recipe_given
        if isinstance(given, Recipe):
            return given
        if isinstance(given, str):
            return get_recipe(given)  # an unknown name: ParameterError listing the known ones
        raise ParameterError(f"recipe must be a Recipe or the name of one ({', '.join(RECIPES)}); got {given!r}")

    def __sklearn_is_fitted__(self) -> bool:
        return self.net_ is not None

    # -- training ---------------------------------------------------------------------------
    def fit(self, X: np.ndarray, labels: Sequence[str], *, on_epoch=None, checkpoint=None,
            resume: bool = False, init: "InstrumentClassifier | None" = None,
            keep_classes: bool = False) -> "InstrumentClassifier":
        """Train on feature rows ``X`` (from :func:`instrec.features.extract`) and their labels.

        ``checkpoint``: a folder where the training state is saved every 30 s or so;
        ``resume=True`` continues from it (see :func:`instrec.train.fit_network`).
        ``init``: a trained classifier to start from (fine-tuning, see
        :func:`instrec.recipes.finetuning`). It must take the same features through the same
        network; only its output may differ (a single-label model starts a multi-label one, its
        softmax rows becoming sigmoid rows). Every weight and its input statistics are copied; the output layer's row of each
        class it knows is copied too, and a class it does not know starts from a fresh row. The
        classes are those of ``labels``, as always: a class of ``init`` that ``labels`` lack is
        dropped, unless ``keep_classes``.

        ``keep_classes=True`` (with ``init``): the classes are those of ``labels`` and of ``init``.
        A class of ``init`` without rows here has nothing to learn from, so its output row stays
        ``init``'s, frozen through training; it still takes part in every softmax, so the other
        classes learn to beat it on their rows.

        Training ends with :meth:`calibrate` on the rows the loop held back for validation.

        Whatever the classifier had learnt or loaded before is forgotten (its ``info``, ``path_``,
        calibration and thresholds); a fine-tuned multi-label model starts from ``init``'s thresholds,
        kept for a class its validation rows cannot decide.
        """
        from . import models
        from .decision import resolve_families
        from .train import fit_network, seed_everything

        if init is self:  # fine-tuning itself: the start is the model as it is now
            init = copy.copy(self)
        recipe = self._resolved_recipe()
        seed = check_seed(self.seed)
        X = self._rows(X, recipe, fitted=False)
        labels, values = _check_labels(labels)
        if len(labels) != len(X):
            raise ParameterError(f"{len(X)} feature rows but {len(labels)} labels")
        multilabel = recipe.model.multilabel
        if multilabel and values is not None:
            raise ParameterError(f"the {recipe.name} recipe's labels are instrument names joined by {LABEL_SEP!r} "
                                 "(strings), not integers")
        if not multilabel and is_multilabel(labels):
            raise DataError(f"the labels name several instruments at once ({next(l for l in labels if LABEL_SEP in l)!r}); "
                            f"the {recipe.name} recipe gives one answer a clip: train a multi-label recipe (cnn-multi)")
        classes = (sorted({c for l in labels for c in split_labels(l)}) if multilabel
                   else sorted(set(labels), key=values.get if values is not None else None))
        if len(classes) < 2:
            raise DataError(f"training needs at least 2 classes; the data has {len(classes)} ({', '.join(classes) or 'none'})")
        frozen: list[str] = []
        if keep_classes:
            if init is None:
                raise ParameterError("keep_classes keeps the classes of the model fine-tuning starts from: give init")
            frozen = sorted(set(getattr(init, "class_names_", None) or ()) - set(classes))  # a bad init: _start_from says so
            start = getattr(init, "recipe_", None)
            if start is not None and start.model.output != recipe.model.output:  # as the pipeline's check_keep_classes
                raise ParameterError(f"keep_classes keeps output rows as they were, and a {start.model.output} model's "
                                     f"rows mean nothing to a {recipe.model.output} one: train on data of every class "
                                     "you want kept, without keep_classes")
            kept_values = getattr(init, "label_values_", None)
            if values is not None and kept_values is not None:  # integer labels: the kept ones keep their integers
                values = {**{c: int(v) for c, v in zip(init.class_names_, kept_values)}, **values}
            merged = set(classes) | set(frozen)
            classes = sorted(merged, key=values.get if values is not None and merged <= values.keys() else None)
        check_class_names(classes)  # names a bundle could not hold fail now, not at save
        families = resolve_families(classes, self.families)  # a bad table fails before training
        if multilabel:
            y = label_matrix(labels, classes)
        else:
            index = {c: i for i, c in enumerate(classes)}
            y = np.array([index[l] for l in labels], dtype=np.int64)
        seed_everything(seed)  # weight initialisation depends on it
        self._forget()
        self.net_, self.recipe_ = models.build(recipe.model, recipe.feature, len(classes)), recipe
        release = self._start_from(init, classes, frozen=frozen) if init is not None else None
        self.class_names_, self.n_features_in_ = classes, recipe.feature.dim
        self.label_values_ = (np.array([values[c] for c in classes])
                              if values is not None and all(c in values for c in classes) else None)
        if multilabel and init is not None and init.thresholds_:  # what the start knew, for a class too rare to choose
            self.thresholds_ = {c: v for c, v in init.thresholds_.items() if c in classes}
        run_key = json.dumps([recipe.to_dict(), classes, fingerprint(init.net_) if init is not None else None],
                             sort_keys=True)
        try:
            self.history_ = fit_network(self.net_, X, y, recipe.train, seed=seed, device=self.device,
                                        on_epoch=on_epoch, checkpoint=checkpoint, resume=resume, run_key=run_key,
                                        expand=_expander(X.dtype), prepare=init is None)
        finally:
            if release is not None:
                release()
        self.families_ = families
        val = self.history_.pop("validation_index", None)
        self.calibrate(X[val] if val is not None else X[:0], y[val] if val is not None else y[:0])
        return self

    @property
    def multilabel(self) -> bool:
        """Whether the model says, for each class, whether it is present (several at once)."""
        return (self.recipe_ or self._resolved_recipe()).model.multilabel

    def calibrate(self, X: np.ndarray, y: Sequence[int]) -> "InstrumentClassifier":
        """Fit :attr:`temperature_` and choose :attr:`min_confidence_` on held-back rows ``X``
        with true class indices ``y`` (see :mod:`instrec.calibration`); without rows, temperature
        1 and no threshold. :attr:`calibration_` records how.

        A multi-label model takes ``y`` as a 0/1 matrix ``(rows, classes)`` and chooses
        :attr:`thresholds_`; a class with too few rows to choose keeps its own (0.5 if it had none).
        Its temperature stays 1."""
        from .calibration import calibrate, choose_min_confidence, fit_temperature, nll, rejected
        from .decision import UNKNOWN

        self._check_fitted()
        if self.multilabel:
            return self._choose_thresholds(X, y)
        y = np.asarray(y, dtype=np.int64)
        if not len(y):
            self.temperature_, self.min_confidence_ = 1.0, None
            self.calibration_ = {"validation_rows": 0, "temperature": 1.0, "min_confidence": None}
            return self
        P = self.predict_proba(X)
        t = fit_temperature(P, y)
        Pc = calibrate(P, t)
        threshold, n_known = choose_min_confidence(Pc, y, self.class_names_)
        self.temperature_, self.min_confidence_ = t, threshold
        unknown = np.array([self.class_names_[i] == UNKNOWN for i in y], dtype=bool)
        out = rejected(Pc, self.class_names_, threshold or 0.0)
        self.calibration_ = {
            "validation_rows": int(len(y)), "temperature": t,
            "nll_before": nll(P, y), "nll_after": nll(P, y, t), "min_confidence": threshold,
            "known_rows": n_known, "known_rejected": int(out[~unknown].sum()),
            "unknown_rows": int(unknown.sum()), "unknown_rejected": int(out[unknown].sum()),
        }
        return self

    def _choose_thresholds(self, X: np.ndarray, Y) -> "InstrumentClassifier":
        from .calibration import choose_thresholds

        Y = np.asarray(Y, dtype=np.float32).reshape(-1, len(self.class_names_))
        P = self.predict_proba(X) if len(Y) else np.zeros_like(Y)
        # a class the rows cannot decide for keeps the threshold it had (0.5 if none)
        own = [float((self.thresholds_ or {}).get(c, 0.5)) for c in self.class_names_]
        t = choose_thresholds(Y, P, default=own)
        self.temperature_, self.min_confidence_ = 1.0, None
        self.thresholds_ = {c: float(v) for c, v in zip(self.class_names_, t)}  # rounding can move a cut across a row
        self.calibration_ = {"validation_rows": int(len(Y)), "temperature": 1.0, "min_confidence": None,
                             "thresholds": dict(self.thresholds_),
                             "positives": {c: int(v) for c, v in zip(self.class_names_, Y.sum(axis=0))}}
        return self

    def _start_from(self, base: "InstrumentClassifier", classes: list[str], *, frozen: Sequence[str] = ()):
        """Copy ``base``'s weights into the fresh ``self.net_`` (built for ``classes``).

        The output rows of the ``frozen`` classes (base classes the data lacks) are held at
        ``base``'s through training: returns ``release()``, which puts them back one last time
        and ends the hold (see :func:`_hold_rows`)."""
        import torch

        if not isinstance(base, InstrumentClassifier) or base.net_ is None:
            raise ParameterError("init must be a trained InstrumentClassifier (a loaded model)")
        if not same_network(base.recipe_, self.recipe_):
            raise ParameterError(f"init was trained with other features or another network ({base.recipe_.name}) than "
                                 f"this recipe ({self.recipe_.name}); fine-tune with instrec.recipes.finetuning(its recipe)")
        out = self.net_.output()
        head = _output_keys(self.net_)
        keep = {k: v for k, v in base.net_.state_dict().items() if k not in _output_keys(base.net_)}
        missing = self.net_.load_state_dict(keep, strict=False).missing_keys
        if set(missing) != head:  # a bug, not the user's: the two networks' layouts differ
            raise AssertionError(f"fine-tuning copied all but {missing}, expected all but {sorted(head)}")
        rows = base.net_.output()
        with torch.no_grad():
            for i, c in enumerate(classes):
                if c in base.class_names_:
                    j = base.class_names_.index(c)
                    out.weight[i] = rows.weight[j]
                    out.bias[i] = rows.bias[j]
        return _hold_rows(out, [classes.index(c) for c in frozen])

    # -- prediction ---------------------------------------------------------------------------
    @property
    def classes(self) -> list[str]:
        self._check_fitted()
        return list(self.class_names_)

    def predict_proba(self, X: np.ndarray, *, batch_size: int = 256, net=None) -> np.ndarray:
        """Class probabilities, shape ``(n, len(classes))``, columns in the order of ``classes``:
        the network's softmax (a multi-label model: each class's sigmoid, the probability that it
        is present). :class:`instrec.inference.Model` applies :attr:`temperature_` to them.

        ``net``: another copy of the network to run (e.g. :meth:`CNN.for_inference`'s)."""
        import torch

        self._check_fitted()
        net = self.net_ if net is None else net
        X = self._rows(X, self.recipe_, fitted=True, one_row=True)
        expand = _expander(X.dtype) or (lambda t: t)
        squash = torch.sigmoid if self.multilabel else (lambda z: torch.softmax(z, dim=1))
        out = []
        with torch.inference_mode():
            for s in range(0, len(X), batch_size):
                batch = expand(torch.from_numpy(np.ascontiguousarray(X[s : s + batch_size])))
                out.append(squash(net(batch)).numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.class_names_)), np.float32)

    def predict(self, X: np.ndarray) -> list[str] | np.ndarray:
        """The likeliest class of each row, a value of :attr:`classes_` (integer labels: an ndarray of
        them; names: a list of str); a multi-label model's: the classes over their thresholds joined
        by ``;`` (``unknown`` for none)."""
        P = self.predict_proba(X)
        if self.multilabel:
            t = np.array([(self.thresholds_ or {}).get(c, 0.5) for c in self.class_names_])
            return [join_labels(np.asarray(self.class_names_)[row >= t]) for row in P]
        if self.label_values_ is not None:  # integer labels: answered in their own type
            return self.label_values_[P.argmax(1)]
        return [self.class_names_[i] for i in P.argmax(1)]

    @staticmethod
    def _rows(X, recipe: Recipe, *, fitted: bool, one_row: bool = False) -> np.ndarray:
        """Feature rows ``(n_samples, n_features)`` of ``recipe``, finite: as given when they are its
        compact uint8 pixels, else float32 (``one_row``: a 1-D ``X`` is one row). Else ParameterError."""
        from .features import compact_dtype

        dim = recipe.feature.dim
        shape = (f"X must have shape (n_samples, n_features) with n_features = {dim} "
                 f"({'the number of features the model was fit on' if fitted else f'the {recipe.name} recipe'})")
        try:
            X = np.asarray(X)
        except (TypeError, ValueError):
            raise ParameterError(f"{shape}; got a ragged or unreadable {type(X).__name__}") from None
        if X.dtype.kind not in "biuf":
            raise ParameterError(f"X must hold numbers; got an array of {X.dtype}")
        if one_row and X.ndim == 1:
            X = X[None]
        if X.ndim != 2 or X.shape[1] != dim:
            raise ParameterError(f"{shape}; got shape {X.shape}")
        if X.dtype == np.uint8 and compact_dtype(recipe.feature) == np.uint8:
            return X
        with np.errstate(over="ignore"):  # a float64 beyond float32's range: refused below, as infinity
            X = np.asarray(X, dtype=np.float32)
        bad = ~np.isfinite(X).all(axis=1)
        if bad.any():
            raise ParameterError(f"X contains NaN or infinity (or a value too large for float32) in {int(bad.sum())} "
                                 f"row(s), the first row {int(np.argmax(bad))}: features must be finite numbers")
        return X

    def _check_fitted(self):
        if self.net_ is None:
            raise NotTrainedError("this classifier is not trained yet: call fit() or load a model")

    # -- persistence ------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, *, info: dict | None = None, extra_files: dict | None = None) -> Path:
        """Save as a bundle: safetensors weights + model.json (recipe, classes, ``info``)."""
        from .bundle import save_bundle

        self._check_fitted()
        self.info = {**self.info, **(info or {})}
        return save_bundle(path, self.net_.state_dict(), bundle_meta(self), extra_files)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "InstrumentClassifier":
        """Rebuild a classifier from a bundle folder, validating names, shapes and dtypes."""
        from . import models
        from .bundle import load_bundle

        meta, tensors = load_bundle(path)
        try:
            recipe = Recipe.from_dict(meta["recipe"])
            classes = [str(c) for c in meta["classes"]]
            seed = int(meta.get("seed", 0))
        except (KeyError, TypeError, ValueError, ParameterError) as e:
            raise BundleError(f"{path}: model.json is incomplete or malformed ({e})") from None
        if len(classes) < 2 or len(set(classes)) != len(classes):
            raise BundleError(f"{path}: model.json must list at least 2 distinct classes")
        if meta.get("in_dim") != recipe.feature.dim:  # review: a contradicting in_dim loaded unremarked
            raise BundleError(f"{path}: model.json's in_dim {meta.get('in_dim')!r} is not its recipe's feature size "
                              f"{recipe.feature.dim}")
        import torch

        try:
            # shapes first, on the meta device (no memory): a model.json describing a huge network
            # is refused by the weights it lacks, before anything that size is allocated
            with torch.device("meta"):
                expected = models.build(recipe.model, recipe.feature, len(classes)).state_dict()
            if set(tensors) != set(expected):
                raise BundleError(f"{path}: weights do not match the recipe (tensor names differ)")
            for k, v in expected.items():
                if tensors[k].shape != v.shape or tensors[k].dtype != v.dtype:
                    raise BundleError(f"{path}: tensor {k} has shape {tuple(tensors[k].shape)} {tensors[k].dtype}, expected {tuple(v.shape)} {v.dtype}")
            net = models.build(recipe.model, recipe.feature, len(classes))
        except ParameterError as e:  # a recipe no network can be built from
            raise BundleError(f"{path}: model.json describes no valid network ({e})") from None
        net.load_state_dict(tensors)
        net.eval()
        # a named recipe's own settings as its name, as given to a fresh classifier (get_params, clone, repr)
        self = cls(recipe.name if RECIPES.get(recipe.name) == recipe else recipe, seed=seed)
        self.recipe_, self.class_names_, self.net_, self.path_ = recipe, classes, net, Path(path)
        self.n_features_in_ = recipe.feature.dim
        self.families_, self.temperature_ = meta.get("families"), meta.get("temperature")
        self.min_confidence_ = meta.get("min_confidence")
        self.thresholds_ = meta.get("thresholds")
        values = meta.get("label_values")
        if values is not None:
            if len(values) != len(classes) or [str(v) for v in values] != classes:
                raise BundleError(f"{path}: model.json's label_values must give one integer per class, the class's own")
            self.label_values_ = np.array(values)
        if self.thresholds_ is not None and (not recipe.model.multilabel or not isinstance(self.thresholds_, dict)
                                             or set(self.thresholds_) != set(classes)):
            raise BundleError(f"{path}: model.json's thresholds must give each class of a multi-label model a probability")
        self.info = {k: v for k, v in meta.items() if k not in _SPEC_KEYS}
        self.info["versions"] = meta.get("versions", {})
        return self


def _check_labels(labels) -> tuple[list[str], dict[str, int] | None]:
    """One label per row, checked: ``(names, values)``, the names (str) and, where the labels are
    integers (numpy's too), each name's integer (else None). None, empty labels, floats, bools and a
    mix of names and integers raise ParameterError."""
    if labels is None or isinstance(labels, (str, bytes)) or not hasattr(labels, "__len__"):
        raise ParameterError(f"labels must be a sequence of one label per row; got {type(labels).__name__}")
    if isinstance(labels, np.ndarray) and labels.ndim != 1:
        raise ParameterError(f"labels must be one-dimensional (one label per row); got shape {labels.shape}")
    labels = list(labels)
    kinds = set()
    for i, label in enumerate(labels):
        if label is None:
            raise ParameterError(f"label {i} is None: every row needs a class name")
        if isinstance(label, str):
            if not label.strip():
                raise ParameterError(f"label {i} is empty: every row needs a class name")
            kinds.add(str)
        elif isinstance(label, (int, np.integer)) and not isinstance(label, bool):
            kinds.add(int)
        else:
            raise ParameterError(f"labels must be class names (strings) or integers; label {i} is {label!r}")
    if len(kinds) > 1:
        raise ParameterError("labels mix class names (strings) and integers: give one kind")
    if kinds == {int}:
        return [str(int(l)) for l in labels], {str(int(l)): int(l) for l in labels}
    return [str(l) for l in labels], None


def _expander(dtype):
    """For compact uint8 image rows: a batch's float32 values, ``pixels / 255`` exactly as
    :func:`instrec.features.expand` computes them; None for float rows."""
    if dtype != np.uint8:
        return None
    import torch

    return lambda t: t.to(torch.float32).div_(255.0)


def _hold_rows(layer, rows: list[int]):
    """Keep ``rows`` of a linear ``layer``'s weight and bias where they are while a training loop
    runs: their gradient is zeroed (L-BFGS and Adam's moments see nothing to move), and they are
    put back before every forward pass (Adam's weight decay moves them all the same). Returns
    ``release()``: put them back once more and stop."""
    import torch

    if not rows:
        return lambda: None
    idx = torch.tensor(rows, dtype=torch.long)
    saved = {name: getattr(layer, name).detach()[idx].clone() for name in ("weight", "bias")}

    def restore(*_):
        with torch.no_grad():
            for name, value in saved.items():
                p = getattr(layer, name)
                p[idx.to(p.device)] = value.to(p.device)

    def zero_rows(grad):
        grad = grad.clone()
        grad[idx.to(grad.device)] = 0
        return grad

    handles = [layer.register_forward_pre_hook(restore)]
    handles += [getattr(layer, name).register_hook(zero_rows) for name in saved]

    def release() -> None:
        restore()
        for h in handles:
            h.remove()

    return release


def _output_keys(net) -> set[str]:
    """State-dict names of the output layer's weight and bias."""
    name = next(n for n, m in net.named_modules() if m is net.output())
    return {f"{name}.weight", f"{name}.bias"}


def bundle_meta(clf: InstrumentClassifier) -> dict:
    """The model description a bundle's model.json holds (and an ONNX export's metadata)."""
    from .bundle import FORMAT, FORMAT_VERSION

    clf._check_fitted()
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "classes": list(clf.class_names_),
        "recipe": clf.recipe_.to_dict(),
        "in_dim": clf.recipe_.feature.dim,
        "seed": clf.seed,
        "versions": clf.info.get("versions") or _versions(),
        # integer labels: a loaded model answers 3, as the saved one did, not "3"
        **({"label_values": [int(v) for v in clf.label_values_]} if clf.label_values_ is not None else {}),
        **decision_meta(clf),
        **{k: v for k, v in clf.info.items() if k not in _SPEC_KEYS},
    }


def decision_meta(clf: InstrumentClassifier) -> dict:
    """model.json's ``families``, ``temperature``, ``min_confidence`` and ``thresholds`` of ``clf``:
    those it has (a model saved before they existed has none, and is saved again without them)."""
    return {k: v for k, v in (("families", clf.families_), ("temperature", clf.temperature_),
                              ("min_confidence", clf.min_confidence_), ("thresholds", clf.thresholds_))
            if v is not None}


def fingerprint(net) -> str:
    """SHA-256 of a network's weights: the identity of a model fine-tuning started from."""
    import hashlib

    h = hashlib.sha256()
    for k, v in sorted(net.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _versions() -> dict:
    import librosa
    import torch

    from ._version import __version__

    return {"instrec": __version__, "torch": torch.__version__, "librosa": librosa.__version__, "numpy": np.__version__}
