"""Mixup in the training loop: one label a row mixes the losses; several labels a row, the mix is
labelled with what both rows play, and only where both are loud enough to be heard."""

import numpy as np
import torch
from torch import nn

from instrec.train.loop import MULTILABEL_MIX_FLOOR, _mix_weight, _mixed


def test_multilabel_mix_is_labelled_with_both_rows_instruments():
    logits = torch.tensor([[0.3, -1.0, 2.0], [-0.5, 1.5, 0.0]])
    own = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])  # the second row: no instrument
    partners = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    bce = nn.BCEWithLogitsLoss()
    union = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    # a blend (0.7 / 0.3 targets) would tell the network the partner is "30% present"
    assert torch.allclose(_mixed(bce, logits, own, (0.7, partners)), bce(logits, union))
    ce = nn.CrossEntropyLoss()
    y, yp = torch.tensor([0, 1]), torch.tensor([1, 2])
    assert torch.allclose(_mixed(ce, logits, y, (0.7, yp)), 0.7 * ce(logits, y) + 0.3 * ce(logits, yp))
    assert torch.equal(_mixed(ce, logits, y, None), ce(logits, y))


def test_multilabel_mix_weight_keeps_both_rows_audible():
    np.random.seed(0)
    multi = [_mix_weight(0.2, True) for _ in range(4000)]
    mixed = [w for w in multi if w is not None]
    assert mixed and len(mixed) < len(multi)
    assert min(min(w, 1 - w) for w in mixed) >= MULTILABEL_MIX_FLOOR
    np.random.seed(0)
    single = [_mix_weight(0.2, False) for _ in range(4000)]
    assert None not in single and min(single) < 0.05  # one label a row: any weight
    assert _mix_weight(0.0, False) is None and _mix_weight(0.0, True) is None


def test_a_mixup_alpha_that_is_not_a_number_is_refused_not_trained_into_nan_weights():
    # NaN fails "alpha < 0" as it fails "alpha > 0": Beta(nan, nan) drew lam = nan and every weight became nan
    import pytest

    from instrec.errors import ParameterError
    from instrec.recipes import TrainConfig

    for bad in ({"mixup": float("nan")}, {"mixup": float("inf")}, {"weight_decay": float("nan")},
                {"lr": float("inf")}, {"lr": float("nan")}, {"eps": float("inf")}):
        with pytest.raises(ParameterError, match=next(iter(bad))):
            TrainConfig(**bad)


def test_float_class_indices_train_as_their_integers():
    # y as float (0.0, 1.0, 2.0): the validation split's bincount raised a bare numpy TypeError
    import pytest

    from instrec.errors import ParameterError
    from instrec.models.mlp import MLP
    from instrec.recipes import TrainConfig
    from instrec.train import fit_network, seed_everything

    rng = np.random.default_rng(0)
    c = np.arange(30) % 3
    X = (rng.normal(size=(30, 5)) + c[:, None]).astype(np.float32)
    config = TrainConfig(epochs=3, batch_size=8, mixup=0.4, val_fraction=0.2)
    weights = []
    for y in (c, c.astype(np.float32)):
        seed_everything(1)
        net = MLP(5, (8,), 3)
        h = fit_network(net, X, y, config, seed=1, device="cpu")
        weights.append(net.state_dict())
        assert h["validation_rows"] == 6
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    with pytest.raises(ParameterError, match="class"):
        fit_network(MLP(5, (8,), 3), X, c + 0.5, config, seed=1, device="cpu")


def test_a_mixed_multilabel_rows_training_f1_is_scored_against_what_it_is_trained_on():
    """A network that names exactly both rows' instruments in every mix scores F1 1: the mixed row's
    truth is the union it is trained on, not its own row's labels (its partner's were false positives)."""
    from instrec.models.mlp import MLP
    from instrec.recipes import TrainConfig
    from instrec.train import fit_network

    y = np.zeros((40, 3), np.float32)
    y[np.arange(40), np.arange(40) % 3] = 1
    y[::4] = 0  # rows with no instrument too
    net = MLP(3, (), 3)
    with torch.no_grad():  # logit > 0 exactly where the (mixed, weight >= 0.2) input holds an instrument
        net.output().weight.copy_(100 * torch.eye(3))
        net.output().bias.fill_(-10.0)
    config = TrainConfig(epochs=3, batch_size=8, mixup=1.0, lr=1e-12)
    h = fit_network(net, y.copy(), y, config, seed=0, device="cpu")
    assert h["accuracy"] == [1.0, 1.0, 1.0]
