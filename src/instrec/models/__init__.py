"""Networks only: they know nothing of files, the CLI or the service.

``build(config, in_dim, n_classes)`` turns a model configuration (plain data, stored in a bundle)
into an ``nn.Module`` that maps a batch of feature vectors to class logits.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ..errors import ParameterError

ARCHS = ("mlp", "cnn")
# Options of earlier versions, removed when their experiments rejected them (experiments/README.md),
# with the value that meant "off": bundles that wrote them so still load.
REMOVED_MODEL = {"vibrato": 0.0, "rumble": 0.0, "compression": "db"}
ACTIVATIONS = ("relu", "selu", "tanh")
# How logits become probabilities: one answer among the classes (softmax), or for each class
# whether it is present, several at once (sigmoid; trained with binary cross-entropy).
OUTPUTS = ("softmax", "sigmoid")


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "mlp"
    hidden: tuple[int, ...] = (64, 32)
    activation: str = "relu"
    # Standardise inputs with the training set's mean and std (sklearn's StandardScaler, kept
    # inside the network so prediction can never forget it).
    standardize: bool = False
    # cnn only
    channels: tuple[int, ...] = (16, 32, 64, 128)
    dropout: float = 0.3
    augment: bool = True
    output: str = "softmax"

    @property
    def multilabel(self) -> bool:
        return self.output == "sigmoid"

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ParameterError(f"model arch must be one of {', '.join(ARCHS)}; got {self.arch!r}")
        if self.activation not in ACTIVATIONS:
            raise ParameterError(f"activation must be one of {', '.join(ACTIVATIONS)}; got {self.activation!r}")
        if self.output not in OUTPUTS:
            raise ParameterError(f"model output must be one of {', '.join(OUTPUTS)}; got {self.output!r}")
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        if not self.channels or any(c <= 0 for c in self.channels):
            raise ParameterError(f"channels must be positive, e.g. 16,32,64,128; got {self.channels!r}")
        if not 0 <= self.dropout < 1:
            raise ParameterError(f"dropout must be in [0, 1); got {self.dropout!r}")
        # No hidden layer at all is allowed: one linear layer and softmax, i.e. multinomial
        # logistic regression, the field's first baseline on summary features.
        if any(h <= 0 for h in self.hidden):
            raise ParameterError(f"hidden must be positive layer sizes, e.g. 64,32 (or none); got {self.hidden!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = drop_removed(d, REMOVED_MODEL, "model")
        known = {f.name for f in fields(cls)}
        if set(d) - known:
            raise ParameterError(f"unknown model parameters: {', '.join(sorted(set(d) - known))}")
        return cls(**d)


def drop_removed(d: dict, removed: dict, what: str) -> dict:
    """``d`` without the removed options in ``removed``; one set to anything but its "off" value
    describes a model this version cannot rebuild, and is refused."""
    for name, off in removed.items():
        if name in d and d[name] != off:
            raise ParameterError(f"the {what} option {name}={d[name]!r} was removed from instrec (rejected by its "
                                 f"experiments); this version cannot rebuild such a model")
    return {k: v for k, v in d.items() if k not in removed}


def build(config: ModelConfig, feature, n_classes: int):
    """The network for ``config`` fed by ``feature`` (a FeatureConfig); logits out.

    Softmax or sigmoid (``config.output``) is applied by ``predict_proba``.
    """
    if n_classes < 2:
        raise ParameterError(f"need at least 2 classes; got {n_classes}")
    if config.arch == "cnn":
        from .cnn import CNN

        if feature.kind != "waveform":
            raise ParameterError(f"the cnn takes a waveform window (feature kind waveform), not {feature.kind}")
        f = feature
        # each of the conv blocks halves the bands and the frames: both must survive them all
        need = 2 ** len(config.channels)
        frames = 1 + int(round(f.seconds * f.sr)) // f.hop_length
        if f.n_mels < need or frames < need:
            raise ParameterError(f"the cnn's {len(config.channels)} pooling blocks need at least {need} mel bands and "
                                 f"{need} frames; the feature gives {f.n_mels} bands and {frames} frames")
        return CNN(n_classes, sr=f.sr, n_fft=f.n_fft, hop_length=f.hop_length, n_mels=f.n_mels, fmin=f.fmin,
                   fmax=f.fmax, top_db=f.top_db, channels=config.channels, dropout=config.dropout,
                   augment=config.augment, multilabel=config.multilabel)
    from .mlp import MLP

    return MLP(feature.dim, config.hidden, n_classes, activation=config.activation, standardize=config.standardize)
