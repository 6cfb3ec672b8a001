"""Networks only: they know nothing of files, the CLI or the service.

``build(config, in_dim, n_classes)`` turns a model configuration (plain data, stored in a bundle)
into an ``nn.Module`` that maps a batch of feature vectors to class logits.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ..errors import ParameterError

ARCHS = ("mlp",)
ACTIVATIONS = ("relu", "selu", "tanh")


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "mlp"
    hidden: tuple[int, ...] = (64, 32)
    activation: str = "relu"
    # Standardise inputs with the training set's mean and std (sklearn's StandardScaler, kept
    # inside the network so prediction can never forget it).
    standardize: bool = False

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ParameterError(f"model arch must be one of {', '.join(ARCHS)}; got {self.arch!r}")
        if self.activation not in ACTIVATIONS:
            raise ParameterError(f"activation must be one of {', '.join(ACTIVATIONS)}; got {self.activation!r}")
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if not self.hidden or any(h <= 0 for h in self.hidden):
            raise ParameterError(f"hidden must be positive layer sizes, e.g. 64,32; got {self.hidden!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        if set(d) - known:
            raise ParameterError(f"unknown model parameters: {', '.join(sorted(set(d) - known))}")
        return cls(**d)


def build(config: ModelConfig, in_dim: int, n_classes: int):
    """The network for ``config`` (logits out; softmax is applied by ``predict_proba``)."""
    from .mlp import MLP

    if in_dim <= 0 or n_classes < 2:
        raise ParameterError(f"need in_dim > 0 and at least 2 classes; got {in_dim}, {n_classes}")
    return MLP(in_dim, config.hidden, n_classes, activation=config.activation, standardize=config.standardize)
