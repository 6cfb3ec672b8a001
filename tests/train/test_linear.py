"""No hidden layer: the mfcc-linear recipe is multinomial logistic regression on the mfcc-stats
summary. Real features, real training, and scikit-learn's own solver as the reference."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from conftest import SR, labelled_features, real_data_or_skip, run_cli, tone, write
from instrec.classifier import InstrumentClassifier
from instrec.errors import ParameterError
from instrec.models import ModelConfig, build
from instrec.pipeline import DataOptions, train_model
from instrec.recipes import Recipe, TrainConfig, finetuning, get_recipe, parse_hidden


def test_no_hidden_layer_is_one_linear_layer():
    recipe = get_recipe("mfcc-linear")
    net = build(recipe.model, recipe.feature, 6)
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 1 and linears[0].in_features == 87 and linears[0].out_features == 6
    assert sum(p.numel() for p in net.parameters()) == 87 * 6 + 6
    assert recipe.train.pitch_shifts == ()  # it matches near-copies; mfcc-stats is the one for unheard pitches
    assert Recipe.from_dict(json.loads(json.dumps(recipe.to_dict()))) == recipe


def test_hidden_none_on_the_command_line():
    assert parse_hidden("none") == () and parse_hidden(" None ") == ()
    assert parse_hidden("64,32") == (64, 32)
    r = get_recipe("seed-mfcc").with_overrides(hidden=())
    assert r.model.hidden == ()  # an empty override is not "no override"
    assert get_recipe("seed-mfcc").with_overrides(activation="tanh").model.hidden == (64, 32, 16)
    for bad in ("", "0", "64,-1", "sixty"):
        with pytest.raises(ParameterError, match="or none"):
            parse_hidden(bad)
    with pytest.raises(ParameterError, match="or none"):
        ModelConfig(hidden=(64, 0))


def test_it_is_scikit_learns_logistic_regression(tone_data):
    """Trained by instrec's loop (full-batch L-BFGS), the linear recipe lands where scikit-learn's
    solver does for the same L2 weight: weight decay w on the mean loss is C = 1 / (w n) on the
    summed one, the bias left free in both."""
    recipe = get_recipe("mfcc-linear")
    assert recipe.train.optimizer == "lbfgs"
    X, y, _, _ = labelled_features(tone_data, recipe.feature, jobs=1)
    tr, te = np.arange(0, 30, 2), np.arange(1, 30, 2)
    labels = [y[i] for i in tr]
    clf = InstrumentClassifier(recipe, seed=0, device="cpu").fit(X[tr], labels)
    scaler = StandardScaler().fit(X[tr])
    wd = recipe.train.weight_decay
    ref = LogisticRegression(C=1 / (wd * len(tr)), max_iter=10_000, tol=1e-10).fit(scaler.transform(X[tr]), labels)
    assert list(ref.classes_) == clf.classes

    def objective(proba, weights):  # mean cross-entropy + (wd / 2) |W|^2, the bias left out
        picked = proba[np.arange(len(tr)), np.searchsorted(clf.classes, labels)]
        return -np.log(picked).mean() + 0.5 * wd * float((weights ** 2).sum())

    (linear,) = [m for m in clf.net_.modules() if isinstance(m, torch.nn.Linear)]
    ours = objective(clf.predict_proba(X[tr]), linear.weight.detach().numpy())
    best = objective(ref.predict_proba(scaler.transform(X[tr])), ref.coef_)
    # the same minimum (float32 against float64), and the same answers on unseen clips
    assert ours == pytest.approx(best, rel=1e-3), (ours, best)
    assert list(clf.predict(X[te])) == list(ref.predict(scaler.transform(X[te])))
    assert clf.history_["optimizer"] == "lbfgs" and 0 < clf.history_["iterations"] <= recipe.train.epochs


def test_lbfgs_is_deterministic_and_refuses_what_it_cannot_do(tone_data):
    """A convex problem solved to its minimum: the network seed does not matter. Options that need
    minibatches or changing rows get one clear error."""
    recipe = get_recipe("mfcc-linear")
    X, y, _, _ = labelled_features(tone_data, recipe.feature, jobs=1)
    a = InstrumentClassifier(recipe, seed=0, device="cpu").fit(X, y)
    b = InstrumentClassifier(recipe, seed=7, device="cpu").fit(X, y)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), atol=1e-4)
    for bad in ({"mixup": 0.2}, {"val_fraction": 0.1}, {"schedule": "cosine"}):
        with pytest.raises(ParameterError, match="lbfgs"):
            TrainConfig(optimizer="lbfgs", **bad)
    with pytest.raises(ParameterError, match="adam or lbfgs"):
        TrainConfig(optimizer="sgd")
    # the cnn augments every clip differently at each step: L-BFGS's line search needs fixed rows
    cnn = get_recipe("cnn")
    cnn = replace(cnn, train=replace(cnn.train, optimizer="lbfgs", mixup=0.0, val_fraction=0.0, schedule="constant", epochs=1))
    with pytest.raises(ParameterError, match="same function"):
        InstrumentClassifier(cnn, seed=0, device="cpu").fit(np.zeros((4, cnn.feature.dim), np.float32), ["a", "b", "a", "b"])
    # with no weight decay and hidden layers, it is plain full-batch training of an MLP
    mlp = replace(recipe, model=replace(recipe.model, hidden=(8,)), train=replace(recipe.train, weight_decay=0.0, epochs=50))
    clf = InstrumentClassifier(mlp, seed=0, device="cpu").fit(X, y)
    assert clf.history_["iterations"] > 0 and clf.history_["accuracy"][-1] == 1.0
    # fine-tuning a linear model re-solves it; it keeps the solver's own step and iterations
    tuned = finetuning(recipe, trainable="output")
    assert (tuned.train.optimizer, tuned.train.lr, tuned.train.epochs) == ("lbfgs", recipe.train.lr, recipe.train.epochs)


def test_mfcc_linear_trains_saves_and_predicts(tone_data, tmp_path):
    res = train_model(tone_data, recipe="mfcc-linear", out=tmp_path / "m", seed=0,
                      options=DataOptions(jobs=1, cache=tmp_path / "cache"))
    assert res.metrics["n"] == 6 and res.metrics["accuracy"] >= 5 / 6
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["recipe"]["model"]["hidden"] == [] and meta["recipe"]["train"]["optimizer"] == "lbfgs"
    assert 0 < meta["training"]["lbfgs_iterations"] <= 500  # how far the solver went is on record
    clip = write(tmp_path / "new.wav", tone("square", 300.0, sr=SR))
    torch_out = run_cli("predict", str(clip), "--model", str(tmp_path / "m"), "--format", "json")
    assert torch_out.returncode == 0, torch_out.stderr
    # one linear layer exports and serves through ONNX like any network, with the same answer
    assert run_cli("export", str(tmp_path / "m"), "--onnx", str(tmp_path / "m.onnx")).returncode == 0
    onnx_out = run_cli("predict", str(clip), "--model", str(tmp_path / "m.onnx"), "--format", "json")
    assert onnx_out.returncode == 0, onnx_out.stderr
    ours, theirs = json.loads(torch_out.stdout)[0], json.loads(onnx_out.stdout)[0]
    assert ours["label"] == theirs["label"] and set(ours["probabilities"]) == {"sine", "square", "saw"}
    for label, p in ours["probabilities"].items():
        assert theirs["probabilities"][label] == pytest.approx(p, abs=1e-4)


def test_cli_trains_any_recipe_without_a_hidden_layer(tone_data, tmp_path):
    out = run_cli("train", str(tone_data), "--recipe", "seed-mfcc", "--hidden", "none", "--epochs", "50",
                  "--out", str(tmp_path / "m"), "--no-cache", "--jobs", "1")
    assert out.returncode == 0, out.stderr
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["recipe"]["model"]["hidden"] == []
    bad = run_cli("train", str(tone_data), "--hidden", "0", "--out", str(tmp_path / "x"))
    assert bad.returncode != 0 and "or none" in bad.stderr and "Traceback" not in bad.stderr


def test_real_clips_tutorial_split():
    """The tutorial's random 80/20 split of the 600 real clips (seed 0): 119 of 120, as measured
    (benchmarks/RESULTS.md). Issue 3's target there is 99.5%; over 30 fold seeds of stratified
    5-fold this recipe gives 99.43%, the model solved by scikit-learn 99.45%."""
    real = real_data_or_skip()
    res = train_model(real, recipe="mfcc-linear", seed=0)
    assert res.metrics["n"] == 120
    assert res.metrics["accuracy"] >= 119 / 120, res.metrics["accuracy"]
