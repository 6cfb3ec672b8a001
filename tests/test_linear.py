"""No hidden layer: the mfcc-linear recipe is multinomial logistic regression on the mfcc-stats
summary. Real features, real training, and scikit-learn's own solver as the reference."""

import json

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from conftest import SR, labelled_features, real_data_or_skip, run_cli, tone, write
from instrec.classifier import InstrumentClassifier
from instrec.errors import ParameterError
from instrec.models import ModelConfig, build
from instrec.pipeline import train_model
from instrec.recipes import Recipe, get_recipe, parse_hidden


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
    """Trained by instrec's loop, the linear recipe lands where scikit-learn's solver does for the
    same L2 weight: weight decay w on the mean loss is C = 1 / (w n) on the summed one."""
    # 15 rows make one minibatch an epoch: the recipe's 500 epochs are 500 steps, too few to settle
    # here (at 480 rows they are 7,500); give the same objective the steps it needs.
    recipe = get_recipe("mfcc-linear").with_overrides(epochs=5000)
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
    # scikit-learn's is the minimum; ours is within 3% of it (Adam in minibatches, and the bias is
    # decayed too, which scikit-learn leaves free), and both answer alike on unseen clips but for at
    # most one that lies near a boundary
    assert best - 1e-6 <= ours <= 1.03 * best, (ours, best)
    agree = np.mean(np.array(clf.predict(X[te])) == ref.predict(scaler.transform(X[te])))
    assert agree >= 14 / 15, agree


def test_mfcc_linear_trains_saves_and_predicts(tone_data, tmp_path):
    res = train_model(tone_data, recipe="mfcc-linear", out=tmp_path / "m", seed=0, jobs=1, cache=tmp_path / "cache")
    assert res.metrics["n"] == 6 and res.metrics["accuracy"] >= 5 / 6
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["recipe"]["model"]["hidden"] == []
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
    """The tutorial's random 80/20 split of the 600 real clips (seed 0): 118 of 120, as measured
    (benchmarks/RESULTS.md). Issue 3's target there is 99.5%; over 25 stratified folds this recipe
    gives 99.47%, on this one split 98.33% (seed-mfcc: 99.17%)."""
    real = real_data_or_skip()
    res = train_model(real, recipe="mfcc-linear", seed=0)
    assert res.metrics["n"] == 120
    assert res.metrics["accuracy"] >= 118 / 120, res.metrics["accuracy"]
