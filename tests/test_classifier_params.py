"""InstrumentClassifier at its boundary, as a scikit-learn estimator: parameters stored as given
(clone, set_params, GridSearchCV), checked by fit; X and labels checked by fit and predict, each
mistake one ParameterError line. The seed check is instrec.data.splits.check_seed (test_splits)."""

import re

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from instrec.classifier import InstrumentClassifier
from instrec.errors import ParameterError
from instrec.pipeline import DataOptions
from instrec.recipes import get_recipe

DIM = 87  # mfcc-linear's and mfcc-stats' features: the quickest recipes to train


def blobs(labels, n=60, seed=0):
    """``n`` rows of ``DIM`` features, one blob per class, and their labels (cycled from ``labels``)."""
    y = np.array([labels[i % len(labels)] for i in range(n)], dtype=object)
    centre = {c: k for k, c in enumerate(labels)}
    X = np.random.default_rng(seed).normal(size=(n, DIM)) + np.array([2.0 * centre[c] for c in y])[:, None]
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def fitted():
    X, y = blobs(["a", "b", "c"])
    return InstrumentClassifier("mfcc-linear").fit(X, list(y)), X


def test_integer_labels_train_and_are_answered_in_their_own_type():
    """Review: numpy integer labels failed with 'Object of type int64 is not JSON serializable'."""
    X, _ = blobs([0])
    y = np.array([0, 1, 2] * 20)
    X = X + 2.0 * y[:, None]
    clf = InstrumentClassifier("mfcc-linear").fit(X, y)
    assert clf.classes == ["0", "1", "2"]  # the model's class names (model.json)
    assert isinstance(clf.classes_, np.ndarray) and clf.classes_.tolist() == [0, 1, 2] and clf.classes_.dtype.kind == "i"
    pred = clf.predict(X)
    assert isinstance(pred, np.ndarray) and pred.dtype.kind == "i" and set(pred) <= {0, 1, 2}
    assert clf.score(X, y) > 0.9  # scikit-learn's scoring compares them with y
    assert InstrumentClassifier("mfcc-linear").fit(X, [int(v) for v in y]).predict(X[:3]).tolist() == pred[:3].tolist()
    # numpy strings are names like any other, answered as str
    Xs, ys = blobs(["cello", "flute"])
    named = InstrumentClassifier("mfcc-linear").fit(Xs, np.array(ys, dtype=str))
    assert named.classes_.tolist() == named.classes == ["cello", "flute"] and named.label_values_ is None
    assert all(type(p) is str for p in named.predict(Xs))


def test_integer_labels_sort_by_value():
    X, _ = blobs([0], n=66)
    y = np.array([2, 10, 1] * 22)
    clf = InstrumentClassifier("mfcc-linear").fit(X + y[:, None] / 5.0, y)
    assert clf.classes == ["1", "2", "10"] and clf.classes_.tolist() == clf.label_values_.tolist() == [1, 2, 10]


@pytest.mark.parametrize("labels, words", [
    ([None] * 30 + ["a"] * 30, "label 0 is None"),
    (["a", "", "b"] * 20, "label 1 is empty"),
    (["a", "  ", "b"] * 20, "label 1 is empty"),
    ([0.5, 1.5] * 30, "class names .strings. or integers; label 0 is 0.5"),
    ([True, False] * 30, "label 0 is True"),
    (["a", 1] * 30, "mix class names"),
    (np.array([["a"], ["b"]] * 30), "one-dimensional"),
    ("ab" * 30, "a sequence of one label per row"),
])
def test_bad_labels_are_one_parameter_error(labels, words):
    """Review: None labels raised TypeError."""
    X, _ = blobs(["a", "b"])
    with pytest.raises(ParameterError, match=words):
        InstrumentClassifier("mfcc-linear").fit(X, labels)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e300])
def test_fit_refuses_non_finite_features(bad):
    """Review: NaN rows were accepted and predict_proba answered NaN."""
    X, y = blobs(["a", "b"])
    X = X.astype(np.float64)
    X[7, 3] = bad
    with pytest.raises(ParameterError, match=r"X contains NaN or infinity .* the first row 7"):
        InstrumentClassifier("mfcc-linear").fit(X, y)


def test_predict_checks_the_shape_and_values_of_x(fitted):
    """Review: X[:, :10] gave a torch RuntimeError, X[None] a TypeError."""
    clf, X = fitted
    expected = r"X must have shape \(n_samples, n_features\) with n_features = 87 \(the number of features the model was fit on\)"
    for bad in (X[:, :10], X[None], np.zeros((2, 88), np.float32)):
        for method in (clf.predict, clf.predict_proba):
            with pytest.raises(ParameterError, match=expected + re.escape(f"; got shape {bad.shape}")):
                method(bad)
    with pytest.raises(ParameterError, match="must hold numbers"):
        clf.predict(np.full((2, DIM), "x"))
    Xn = X[:3].copy()
    Xn[1, 0] = np.nan
    with pytest.raises(ParameterError, match="NaN or infinity"):
        clf.predict_proba(Xn)
    assert clf.predict_proba(X[0]).shape == (1, 3)  # one row as a 1-D array, as before
    assert clf.predict_proba(X[:0]).shape == (0, 3)
    with pytest.raises(ParameterError, match="shape"):
        InstrumentClassifier("mfcc-linear").fit(X[:, :10], ["a", "b"] * 30)


def test_seed_is_stored_as_given_and_checked_by_fit():
    """Review: seed=np.int64(3) was refused, seed=True accepted."""
    X, y = blobs(["a", "b"])
    clf = InstrumentClassifier("mfcc-linear", seed=np.int64(3))
    assert clf.get_params()["seed"] == 3 and clone(clf).seed == 3
    a = clf.fit(X, y).predict_proba(X)
    assert np.array_equal(a, InstrumentClassifier("mfcc-linear", seed=3).fit(X, y).predict_proba(X))
    for bad in (True, -1, 2**32, 2.0, "3", None):
        clf = InstrumentClassifier("mfcc-linear", seed=bad)  # stored as given, as scikit-learn's clone needs
        with pytest.raises(ParameterError, match=rf"^seed must be an integer from 0 to 4294967295, got {bad!r}$"):
            clf.fit(X, y)
        with pytest.raises(ParameterError, match="seed must be"):
            InstrumentClassifier("mfcc-linear").set_params(seed=bad).fit(X, y)


def test_recipe_is_stored_as_given_and_resolved_by_fit():
    """Review: InstrumentClassifier(3) was accepted; set_params(recipe=name) stored a string that fit
    then failed on ('str' object has no attribute 'feature')."""
    X, y = blobs(["a", "b"])
    for bad in (3, None, "seed-banana"):
        clf = InstrumentClassifier(bad)
        with pytest.raises(ParameterError, match="mfcc-stats, mfcc-linear, cnn"):
            clf.fit(X, y)
    clf = InstrumentClassifier("seed-mfcc").set_params(recipe="mfcc-linear")
    assert clf.get_params()["recipe"] == "mfcc-linear" and clf.recipe is get_recipe("mfcc-linear")
    clf.fit(X, y)
    assert clf.recipe_ is get_recipe("mfcc-linear") and len(clf.predict(X)) == len(X)
    # a fitted model keeps the recipe it was trained with until fit again
    clf.set_params(recipe="seed-mfcc")
    assert clf.predict_proba(X).shape == (len(X), 2) and clf.recipe_.name == "mfcc-linear"


@pytest.mark.parametrize("recipe", ["mfcc-stats", get_recipe("mfcc-linear").with_overrides(epochs=3)])
def test_clone_and_params_round_trip(recipe):
    clf = InstrumentClassifier(recipe, seed=1, device="cpu", families={"strings": ["a"]})
    params = clf.get_params()
    assert params == {"recipe": recipe, "seed": 1, "device": "cpu", "families": {"strings": ["a"]}}
    twin = clone(clf)
    assert twin.get_params()["recipe"] == recipe and twin.get_params(deep=False).keys() == params.keys()
    assert twin.set_params(**params).get_params()["recipe"] is recipe
    assert clone(twin).net_ is None and twin.classes_ is None
    X, y = blobs(["a", "b"])
    fitted = clone(clf).set_params(recipe="mfcc-linear", families=None).fit(X, y)
    assert clone(fitted).net_ is None and clone(fitted).get_params()["recipe"] == "mfcc-linear"


def test_grid_search_over_recipe_names():
    """Review: GridSearchCV over {"recipe": [names]} failed every fit."""
    X, y = blobs(["a", "b", "c"], n=60)
    search = GridSearchCV(InstrumentClassifier("mfcc-linear"), {"recipe": ["mfcc-linear", "mfcc-stats"]}, cv=2,
                          error_score="raise").fit(X, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_params_["recipe"] in ("mfcc-linear", "mfcc-stats")
    assert search.best_estimator_.recipe_.name == search.best_params_["recipe"]


def test_data_options_take_alias_strings_as_the_command_line_does():
    """Review: DataOptions(aliases=["sax=saxophone"]) raised 'dictionary update sequence ...'."""
    from instrec.data.folder import parse_aliases

    assert DataOptions(aliases=["sax=saxophone", "Vln = Violin"]).aliases == parse_aliases(["sax=saxophone", "Vln = Violin"])
    assert DataOptions(aliases=["vln=violin"]).aliases["vln"] == "violin"
    assert DataOptions(aliases="vln=violin").aliases["vln"] == "violin"
    assert DataOptions(aliases={"vln": "violin"}).aliases == {"vln": "violin"}
    assert DataOptions().aliases is None
    # review: {"flute": ""} was taken, and made every flute a clip of no class
    for bad in (["sax"], ["=saxophone"], ["sax="], [("sax", "saxophone")], {"sax": 1}, 3, {"flute": ""}, {" ": "flute"}):
        with pytest.raises(ParameterError, match=r"aliases must map names to labels .* or list NAME=LABEL strings"):
            DataOptions(aliases=bad)
