"""The tutorial's dense networks: feature vector → Dense(64) → Dense(32) [→ Dense(16)] → classes."""

from __future__ import annotations

import torch
from torch import nn

_ACT = {"relu": nn.ReLU, "selu": nn.SELU, "tanh": nn.Tanh}


class Standardize(nn.Module):
    """``(x - mean) / std`` with statistics fitted on training data and saved with the weights."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def fit(self, X: torch.Tensor) -> None:
        self.mean.copy_(X.mean(dim=0))
        # A constant feature would divide by zero; leave it unscaled like StandardScaler does.
        std = X.std(dim=0, unbiased=False)
        self.std.copy_(torch.where(std > 0, std, torch.ones_like(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class MLP(nn.Module):
    """Dense layers with one activation between them; the output layer gives logits."""

    def __init__(self, in_dim: int, hidden, n_classes: int, *, activation: str = "relu", standardize: bool = False):
        super().__init__()
        self.scale = Standardize(in_dim) if standardize else nn.Identity()
        layers: list[nn.Module] = []
        prev = in_dim
        for h in hidden:
            layers += [nn.Linear(prev, h), _ACT[activation]()]
            prev = h
        layers.append(nn.Linear(prev, n_classes))
        self.net = nn.Sequential(*layers)
        self._keras_init()

    def _keras_init(self) -> None:
        # Keras Dense layers start from Glorot-uniform weights and zero biases; the tutorial's
        # results were obtained with that start, so use it rather than PyTorch's default.
        for m in self.net:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def wants_prepare(self) -> bool:
        return isinstance(self.scale, Standardize)

    @torch.no_grad()
    def prepare(self, X: torch.Tensor) -> None:
        """Fit the input standardisation (when the recipe asks for it) on the training rows."""
        if isinstance(self.scale, Standardize):
            self.scale.fit(X)

    def output(self) -> nn.Linear:
        """The layer that gives the logits, one row per class (fine-tuning maps its rows by class)."""
        return self.net[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.scale(x))
