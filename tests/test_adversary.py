"""Source-adversarial training (``TrainConfig.adversary``): a gradient-reversed source classifier
removes what tells the sources apart from the embedding, and leaves no trace in the model."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from torch import nn

from instrec.classifier import InstrumentClassifier
from instrec.errors import DataError, ParameterError
from instrec.recipes import TrainConfig, get_recipe
from instrec.train import _GradientReversal, fit_network

from conftest import labelled_features


class Toy(nn.Module):
    """The shape the training loop needs: augment, embed, head."""

    def __init__(self):
        super().__init__()
        self.augment = nn.Identity()
        self.body = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 8))
        self.head = nn.Sequential(nn.Linear(8, 2))

    def embed(self, x):
        return self.body(x)

    def classify(self, x):
        return self.head(self.embed(x))

    def forward(self, x):
        return self.classify(self.augment(x))


def toy_data(n=400, seed=0):
    """Column 0 carries the class; column 2 the source, loudly; the two are independent."""
    rng = np.random.default_rng(seed)
    c, s = rng.integers(0, 2, n), rng.integers(0, 2, n)
    X = rng.normal(0, 1, (n, 4))
    X[:, 0] += 3 * c
    X[:, 2] = 4 * s + 0.1 * X[:, 2]
    return X.astype(np.float32), c, s


def source_probe(net, X, s) -> float:
    """How well a linear classifier tells the sources apart from the embedding (5-fold CV)."""
    with torch.no_grad():
        Z = net.embed(torch.from_numpy(X)).numpy()
    return float(cross_val_score(LogisticRegression(max_iter=2000), Z, s, cv=5).mean())


def test_gradient_reversal_flips_and_scales_the_gradient():
    x = torch.tensor([1.0, -2.0], requires_grad=True)
    (_GradientReversal.apply(x, 0.5) * torch.tensor([3.0, 4.0])).sum().backward()
    assert x.grad.tolist() == [-1.5, -2.0]


def test_the_adversary_takes_source_information_out_of_the_embedding():
    """Trained from the same start with and without the adversary, at three seeds: a linear probe
    tells the sources apart from the plain network's embedding almost perfectly, and clearly less
    well from the adversarial one's, while the class is learnt as well. (Gradient reversal lowers
    what the embedding says of the source; it does not reliably bring it to chance.)"""
    torch.set_num_threads(1)
    config = TrainConfig(epochs=200, batch_size=32, lr=1e-3)
    probes = []
    for seed in range(3):
        X, c, s = toy_data(seed=seed)
        torch.manual_seed(seed)
        plain = Toy()
        adv = Toy()
        adv.load_state_dict(plain.state_dict())
        fit_network(plain, X, c, config, seed=seed, device="cpu")
        h = fit_network(adv, X, c, replace(config, adversary=1.0), seed=seed, device="cpu", domains=s)
        probes.append((source_probe(plain, X, s), source_probe(adv, X, s)))
        for net in (plain, adv):
            with torch.no_grad():
                assert (net(torch.from_numpy(X)).argmax(1).numpy() == c).mean() > 0.9
        assert len(h["source_accuracy"]) == 200 and 0 <= min(h["source_accuracy"]) <= max(h["source_accuracy"]) <= 1
        assert not hasattr(adv, "source_head") and set(adv.state_dict()) == set(plain.state_dict())
    assert all(p > 0.95 and a < p - 0.05 for p, a in probes), probes
    assert np.mean([p - a for p, a in probes]) > 0.08, probes


def test_adversary_arguments_are_checked():
    X, c, s = toy_data(40)
    config = TrainConfig(epochs=1, adversary=1.0)
    with pytest.raises(ParameterError, match="source"):
        fit_network(Toy(), X, c, config, device="cpu")
    with pytest.raises(DataError, match="at least 2 sources"):
        fit_network(Toy(), X, c, config, device="cpu", domains=np.zeros(40, np.int64))
    with pytest.raises(ParameterError, match="one per row"):
        fit_network(Toy(), X, c, config, device="cpu", domains=s[:10])
    with pytest.raises(ParameterError, match="augment, embed and head"):
        fit_network(nn.Linear(4, 2), X, c, config, device="cpu", domains=s)
    with pytest.raises(ParameterError, match="adversary"):
        TrainConfig(adversary=-1)
    mfcc = get_recipe("seed-mfcc")
    mfcc = replace(mfcc, train=replace(mfcc.train, adversary=1.0))
    rows = np.random.default_rng(0).normal(size=(20, 40)).astype(np.float32)
    with pytest.raises(ParameterError, match="give each row's source"):
        InstrumentClassifier(mfcc).fit(rows, ["a", "b"] * 10)
    with pytest.raises(ParameterError, match="augment, embed and head"):
        InstrumentClassifier(mfcc).fit(rows, ["a", "b"] * 10, sources=["x", "y"] * 10)


def test_cnn_trains_against_its_sources_and_saves_a_plain_bundle(rendered_data, tmp_path):
    r = get_recipe("cnn")
    r = replace(r, feature=replace(r.feature, seconds=1.0), train=replace(r.train, epochs=2, adversary=1.0))
    X, y, _, _ = labelled_features(rendered_data, r.feature)
    sources = ["even" if i % 2 else "odd" for i in range(len(y))]  # two made-up sources
    clf = InstrumentClassifier(r, seed=0).fit(X, y, sources=sources)
    assert len(clf.history_["source_accuracy"]) == clf.history_["epochs_run"]
    back = InstrumentClassifier.load(clf.save(tmp_path / "m"))
    assert back.recipe.train.adversary == 1.0
    np.testing.assert_allclose(back.predict_proba(X), clf.predict_proba(X), atol=1e-6)
