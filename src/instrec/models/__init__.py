"""Networks only: they know nothing of files, the CLI or the service.

``build(config, in_dim, n_classes)`` turns a model configuration (plain data, stored in a bundle)
into an ``nn.Module`` that maps a batch of feature vectors to class logits.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ..errors import ParameterError

ARCHS = ("mlp", "cnn")
ACTIVATIONS = ("relu", "selu", "tanh")
COMPRESSIONS = ("db", "pcen")


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
    # Share of training clips given a random vibrato (augment.WaveAugment.vibrato); 0 = none.
    vibrato: float = 0.0
    # Share of training clips given low-frequency room noise (augment.WaveAugment.rumble); 0 = none.
    rumble: float = 0.0
    # How mel power becomes the network's input: "db" (log-mel in dB re each clip's maximum) or
    # "pcen" (per-channel energy normalisation: gain control per band, see features.frontend.PCEN).
    compression: str = "db"

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ParameterError(f"model arch must be one of {', '.join(ARCHS)}; got {self.arch!r}")
        if self.activation not in ACTIVATIONS:
            raise ParameterError(f"activation must be one of {', '.join(ACTIVATIONS)}; got {self.activation!r}")
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        if not self.channels or any(c <= 0 for c in self.channels):
            raise ParameterError(f"channels must be positive, e.g. 16,32,64,128; got {self.channels!r}")
        if not 0 <= self.dropout < 1:
            raise ParameterError(f"dropout must be in [0, 1); got {self.dropout!r}")
        if self.compression not in COMPRESSIONS:
            raise ParameterError(f"compression must be one of {', '.join(COMPRESSIONS)}; got {self.compression!r}")
        for name in ("vibrato", "rumble"):
            if not 0 <= getattr(self, name) <= 1:
                raise ParameterError(f"{name} must be a share of clips in [0, 1]; got {getattr(self, name)!r}")
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
        known = {f.name for f in fields(cls)}
        if set(d) - known:
            raise ParameterError(f"unknown model parameters: {', '.join(sorted(set(d) - known))}")
        return cls(**d)


def build(config: ModelConfig, feature, n_classes: int):
    """The network for ``config`` fed by ``feature`` (a FeatureConfig); logits out.

    Softmax is applied by ``predict_proba``.
    """
    if n_classes < 2:
        raise ParameterError(f"need at least 2 classes; got {n_classes}")
    if config.arch == "cnn":
        from .cnn import CNN

        if feature.kind != "logmel":
            raise ParameterError(f"the cnn takes logmel features, not {feature.kind}")
        f = feature
        # each of the conv blocks halves the bands and the frames: both must survive them all
        need = 2 ** len(config.channels)
        frames = 1 + int(round(f.seconds * f.sr)) // f.hop_length
        if f.n_mels < need or frames < need:
            raise ParameterError(f"the cnn's {len(config.channels)} pooling blocks need at least {need} mel bands and "
                                 f"{need} frames; the feature gives {f.n_mels} bands and {frames} frames")
        return CNN(n_classes, sr=f.sr, n_fft=f.n_fft, hop_length=f.hop_length, n_mels=f.n_mels, fmin=f.fmin,
                   fmax=f.fmax, top_db=f.top_db, channels=config.channels, dropout=config.dropout,
                   augment=config.augment, vibrato=config.vibrato, rumble=config.rumble,
                   compression=config.compression)
    from .mlp import MLP

    return MLP(feature.dim, config.hidden, n_classes, activation=config.activation, standardize=config.standardize)
