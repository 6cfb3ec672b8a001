"""A recipe is data: a feature configuration, a model configuration and a training configuration.

Recipes differ only by configuration; one training loop serves them all.
"""

from __future__ import annotations

import math

from dataclasses import asdict, dataclass, field, fields, replace

from .errors import ParameterError
from .features import FeatureConfig
from .models import ModelConfig, drop_removed

# Options of earlier versions, removed when their experiments rejected them (experiments/README.md),
# with the value that meant "off": bundles that wrote them so still load.
REMOVED_TRAIN = {"distill_weight": 0.5, "distill_temperature": 2.0, "adversary": 0.0}


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 20
    batch_size: int = 32  # Keras' default, the tutorial's
    lr: float = 1e-3  # Adam's default in Keras
    eps: float = 1e-7  # Keras' Adam epsilon (PyTorch's default is 1e-8)
    # "adam": minibatch Adam, every option below. "lbfgs": full-batch L-BFGS with a strong-Wolfe
    # line search, for small convex problems (a linear classifier on summary features), which it
    # solves to the minimum in a second: ``epochs`` is then its most iterations, ``lr`` its first
    # step, ``batch_size`` only how many rows a forward pass holds; no mixup, validation split,
    # or schedule.
    optimizer: str = "adam"
    weight_decay: float = 0.0
    schedule: str = "constant"  # or "cosine"
    mixup: float = 0.0  # Beta(alpha, alpha) of mixup; 0 = off
    val_fraction: float = 0.0  # held out of the training rows for early stopping; 0 = none
    patience: int = 0  # epochs without validation improvement before stopping; 0 = never
    # No validation split when it would hold fewer clips than this per class on average: the epoch
    # is then chosen on a handful of clips, which cost fine-tuning on 5-20 clips a class 2-13 points
    # (benchmarks/RESULTS.md, "A few recordings per instrument"); all epochs are trained and the
    # last weights kept. 0 = split whatever the size.
    min_val_per_class: int = 0
    # Semitones: the pipeline (train_model, cross_validate, crossval) adds to the training rows a
    # copy of every training clip shifted by each, so that a network trained on a few pitches
    # learns what does not move with pitch. Test clips are never shifted.
    pitch_shifts: tuple[float, ...] = ()
    # Which weights training changes: "all", or "output", the output layer only (the rest frozen,
    # batch-norm statistics included). Fine-tuning on a handful of clips can then re-weight what a
    # trained network hears without moving the network itself.
    trainable: str = "all"

    def __post_init__(self):
        try:
            shifts = tuple(float(s) for s in self.pitch_shifts)
        except (TypeError, ValueError):
            raise ParameterError(f"pitch_shifts must be a list of semitones; got {self.pitch_shifts!r}") from None
        if any(not 0 < abs(s) <= 12 for s in shifts) or len(set(shifts)) != len(shifts):
            raise ParameterError(f"pitch_shifts must be distinct, non-zero and within ±12 semitones; got {self.pitch_shifts!r}")
        object.__setattr__(self, "pitch_shifts", shifts)
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ParameterError(f"epochs must be a positive integer; got {self.epochs!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ParameterError(f"batch_size must be a positive integer; got {self.batch_size!r}")
        for name in ("lr", "eps"):  # not "<= 0": NaN passes that test
            if not 0 < getattr(self, name) < math.inf:
                raise ParameterError(f"{name} must be positive and finite; got {getattr(self, name)!r}")
        if self.schedule not in ("constant", "cosine"):
            raise ParameterError(f"schedule must be constant or cosine; got {self.schedule!r}")
        if not 0 <= self.val_fraction < 1:
            raise ParameterError(f"val_fraction must be in [0, 1); got {self.val_fraction!r}")
        if not (0 <= self.mixup < math.inf and 0 <= self.weight_decay < math.inf) or self.patience < 0:
            # Beta(nan, nan) or Beta(inf, inf) draws nan, which every weight then becomes
            raise ParameterError(f"mixup and weight_decay must be finite and not negative, patience not negative; got "
                                 f"mixup {self.mixup!r}, weight_decay {self.weight_decay!r}, patience {self.patience!r}")
        if not isinstance(self.min_val_per_class, int) or self.min_val_per_class < 0:
            raise ParameterError(f"min_val_per_class must be a non-negative integer; got {self.min_val_per_class!r}")
        if self.trainable not in ("all", "output"):
            raise ParameterError(f"trainable must be all or output; got {self.trainable!r}")
        if self.optimizer not in ("adam", "lbfgs"):
            raise ParameterError(f"optimizer must be adam or lbfgs; got {self.optimizer!r}")
        if self.optimizer == "lbfgs" and (self.mixup or self.val_fraction or self.schedule != "constant"):
            raise ParameterError("optimizer lbfgs trains on the whole batch to the minimum: it takes no mixup, "
                                 "val_fraction or cosine schedule")


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    feature: FeatureConfig = field(default_factory=FeatureConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "feature": self.feature.to_dict(),
            "model": self.model.to_dict(),
            "train": asdict(self.train),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Recipe":
        try:
            train = drop_removed(d["train"], REMOVED_TRAIN, "training")
            train_known = {f.name for f in fields(TrainConfig)}
            return cls(
                name=str(d["name"]),
                description=str(d.get("description", "")),
                feature=FeatureConfig.from_dict(d["feature"]),
                model=ModelConfig.from_dict(d["model"]),
                train=TrainConfig(**{k: v for k, v in train.items() if k in train_known}),
            )
        except (KeyError, TypeError) as e:
            raise ParameterError(f"recipe description is incomplete or malformed: {e}") from None

    def with_overrides(self, *, epochs=None, hidden=None, activation=None, image_mode=None) -> "Recipe":
        """The same recipe with the CLI's ``--epochs``, ``--hidden``, ``--activation``, ``--image-mode`` applied.

        An option the recipe does not use (``--image-mode`` without spectrogram images, ``--hidden``
        or ``--activation`` with a cnn, ``--activation`` with no hidden layer) raises ParameterError:
        ignored, it would leave a report naming a setting that never ran."""
        if image_mode is not None and self.feature.kind != "image":
            raise ParameterError(f"--image-mode applies to spectrogram-image recipes (seed-spectrogram); "
                                 f"{self.name} reads {self.feature.kind} features")
        for option, value in (("--hidden", hidden), ("--activation", activation)):
            if value is not None and self.model.arch != "mlp":
                raise ParameterError(f"{option} shapes an MLP's hidden layers; {self.name} is a {self.model.arch}")
        if activation is not None and not (self.model.hidden if hidden is None else hidden):
            raise ParameterError(f"--activation applies between hidden layers; {self.name} with no hidden layer has none "
                                 "(give --hidden too)")
        r = self
        if epochs is not None:
            r = replace(r, train=replace(r.train, epochs=epochs))
        if hidden is not None or activation is not None:
            r = replace(r, model=replace(r.model, hidden=r.model.hidden if hidden is None else hidden,
                                         activation=activation or r.model.activation))
        if image_mode is not None:
            r = replace(r, feature=replace(r.feature, image_mode=image_mode))
        return r


# mfcc-stats' summary of a clip (87 values); mfcc-linear reads the very same feature, and so the
# same feature cache.
MFCC_SUMMARY = FeatureConfig(kind="mfcc", n_mfcc=40, stats="mean+std+contrast")

RECIPES: dict[str, Recipe] = {
    "seed-spectrogram": Recipe(
        name="seed-spectrogram",
        description="tutorial: 640x480 grayscale mel-spectrogram image, flattened → MLP 64-32 (relu) → softmax",
        feature=FeatureConfig(kind="image"),
        model=ModelConfig(hidden=(64, 32), activation="relu"),
        train=TrainConfig(epochs=20),
    ),
    "seed-mfcc": Recipe(
        name="seed-mfcc",
        description="tutorial: 40 MFCCs averaged over time, standardised → MLP 64-32-16 (relu) → softmax",
        feature=FeatureConfig(kind="mfcc", n_mfcc=40),
        model=ModelConfig(hidden=(64, 32, 16), activation="relu", standardize=True),
        train=TrainConfig(epochs=500),
    ),
    "mfcc-stats": Recipe(
        name="mfcc-stats",
        description="40 MFCCs' means and standard deviations over time + spectral contrast (87 values), standardised "
                    "→ MLP 128-64 (relu) → softmax; trained also on copies of every clip shifted by ±1-4 semitones",
        feature=MFCC_SUMMARY,
        model=ModelConfig(hidden=(128, 64), activation="relu", standardize=True),
        train=TrainConfig(epochs=100, weight_decay=1e-3, pitch_shifts=(-4, -3, -2, -1, 1, 2, 3, 4)),
    ),
    # The richer summary in a linear classifier: fewer parameters than the tutorial's MLP and no
    # pitch-shifted copies, so it matches near-copies of the notes it heard best (the tutorial's
    # random split) and names unheard pitches less well than mfcc-stats (benchmarks/RESULTS.md).
    # The L2 weight is scikit-learn's default C=1 at the tutorial's 480 training clips. The problem
    # is convex, so L-BFGS solves it to its minimum, as scikit-learn does; Adam (500 epochs at
    # 1e-2, the recipe until 2026-12-04) stopped short of it and gave 0.14 points away on the
    # tutorial's kind of split (benchmarks/tutorial_ceiling.py).
    "mfcc-linear": Recipe(
        name="mfcc-linear",
        description="40 MFCCs' means and standard deviations over time + spectral contrast (87 values), standardised "
                    "→ one linear layer → softmax (multinomial logistic regression, L2)",
        feature=MFCC_SUMMARY,
        model=ModelConfig(hidden=(), standardize=True),
        train=TrainConfig(epochs=500, lr=1.0, optimizer="lbfgs", weight_decay=1 / 480),
    ),
    "cnn": Recipe(
        name="cnn",
        description="log-mel (64 bands) of a 3-s window → 8-layer CNN with global pooling; augmented, mixup, early stopping",
        feature=FeatureConfig(kind="waveform", sr=22050, n_fft=2048, hop_length=512, n_mels=64, fmin=30.0, seconds=3.0),
        model=ModelConfig(arch="cnn", channels=(16, 32, 64, 128), dropout=0.3, augment=True),
        train=TrainConfig(epochs=40, batch_size=32, lr=2e-3, eps=1e-8, weight_decay=1e-4, schedule="cosine",
                          mixup=0.2, val_fraction=0.15, patience=10),
    ),
    # The cnn's front end and body with one sigmoid per instrument: which instruments play in a
    # window, several at once; a clip labelled 'unknown' (no instrument) has every target 0.
    "cnn-multi": Recipe(
        name="cnn-multi",
        description="log-mel (64 bands) of a 3-s window → 8-layer CNN with global pooling → one sigmoid per instrument "
                    "(several at once); augmented, mixup, early stopping",
        feature=FeatureConfig(kind="waveform", sr=22050, n_fft=2048, hop_length=512, n_mels=64, fmin=30.0, seconds=3.0),
        model=ModelConfig(arch="cnn", channels=(16, 32, 64, 128), dropout=0.3, augment=True, output="sigmoid"),
        train=TrainConfig(epochs=40, batch_size=32, lr=2e-3, eps=1e-8, weight_decay=1e-4, schedule="cosine",
                          mixup=0.2, val_fraction=0.15, patience=10),
    ),
}


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; an unknown name raises ParameterError listing the known ones."""
    try:
        return RECIPES[name]
    except KeyError:
        raise ParameterError(f"unknown recipe {name!r}; choose one of: {', '.join(RECIPES)}") from None


def same_network(trained: Recipe, recipe: Recipe) -> bool:
    """Whether a model trained with ``trained`` can start one of ``recipe``: the same features and
    network, the output's squashing aside (a single-label cnn starts a multi-label cnn-multi)."""
    return trained.feature == recipe.feature and replace(trained.model, output=recipe.model.output) == recipe.model


def finetuning(recipe: Recipe, *, trainable: str = "all") -> Recipe:
    """The recipe that fine-tunes a model trained with ``recipe`` on new data: the same features,
    network and training settings, started from the trained weights (a warm start).

    A tenth of the learning rate and half the epochs, the usual transfer-learning step, underfit
    the 480 real training clips (validation accuracy stuck near 0.89); the base recipe's own
    schedule adapted best on both development folds (benchmarks/RESULTS.md, "Fine-tuning").
    One change: a validation split is made only if it holds at least 5 clips a class on average
    (``min_val_per_class``). With the 15% split and 5-20 clips a class, choosing the epoch on
    1-3 validation clips a class left the model 2-13 points below training every epoch.

    ``trainable="output"`` trains the output layer alone, everything else frozen, at lr 1e-2 for
    200 epochs (a single layer on 30 clips gets one Adam step an epoch; the recipe's 40 steps at
    its own rate left it short on the development folds). With 5 clips per instrument it ended
    above fine-tuning every weight in 8 runs of 8 (5 folds each); with 7, in 3 of 4; with 10, in 1 of 4
    (benchmarks/RESULTS.md, "Fine-tuning the output layer alone")."""
    # TrainConfig validates ``trainable``
    train = replace(recipe.train, min_val_per_class=max(recipe.train.min_val_per_class, 5), trainable=trainable)
    if trainable == "output" and train.optimizer == "adam":  # L-BFGS solves the layer to its minimum as it is
        train = replace(train, lr=1e-2, epochs=200)
    return replace(recipe, description=f"{recipe.description}; fine-tuned from a trained model"
                   + (", output layer only" if trainable == "output" else ""), train=train)


def parse_hidden(text: str | None) -> tuple[int, ...] | None:
    """``"64,32"`` → ``(64, 32)``; ``"none"`` → ``()``, no hidden layer (a linear classifier)."""
    if text is None:
        return None
    if text.strip().lower() == "none":
        return ()
    try:
        sizes = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise ParameterError(f"--hidden takes comma-separated layer sizes like 64,32, or none; got {text!r}") from None
    if not sizes or any(s <= 0 for s in sizes):
        raise ParameterError(f"--hidden takes positive layer sizes like 64,32, or none; got {text!r}")
    return sizes
