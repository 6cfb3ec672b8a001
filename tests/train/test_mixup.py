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
