"""Predict: one loaded model, recordings of any length, two engines (PyTorch or onnxruntime).

A short recording (up to one and a half model windows) gets one result, as the tutorial's clips do.
A longer one is cut into sliding windows: each window gets its own probabilities, quiet windows are
marked silent, and adjacent windows of the same instrument are merged into segments.

Both engines take the same feature rows (:func:`instrec.features.compute`), so features are
computed by one code path whichever engine runs the network.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from .errors import AudioError, ParameterError
from .features import FeatureConfig, compute

ENGINES = ("torch", "onnx")
SILENCE = "silence"
# The windows of the seed recipes: the tutorial's clips are about 3 s long.
DEFAULT_WINDOW = 3.0
# A window this far (dB RMS) below the loudest window of the recording counts as silent.
SILENCE_DB = 50.0
MIN_WINDOW = 0.1
WINDOW_BATCH = 16  # windows whose features are computed and predicted together
MAX_WINDOW = 600.0


class Engine(Protocol):
    """What runs a network: feature rows ``(n, feature.dim)`` in, probabilities out."""

    name: str
    classes: list[str]
    feature: FeatureConfig
    meta: dict

    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...


# ---------------------------------------------------------------------------------------------
# Results


@dataclass
class Window:
    """One analysis window of a long recording (times in seconds)."""

    start: float
    end: float
    label: str
    probabilities: dict[str, float] | None  # None for a silent window
    silent: bool = False

    def to_dict(self) -> dict:
        return {"start": round(self.start, 4), "end": round(self.end, 4), "label": self.label,
                "silent": self.silent, "probabilities": self.probabilities}


@dataclass
class Segment:
    """A run of adjacent windows with the same label (``"silence"`` for quiet ones)."""

    start: float
    end: float
    label: str
    probability: float | None  # mean probability of ``label`` over the run's windows

    def to_dict(self) -> dict:
        return {"start": round(self.start, 4), "end": round(self.end, 4), "label": self.label,
                "probability": self.probability}


@dataclass
class Prediction:
    """The result for one recording: top label and every class's probability.

    For a long recording (``windows`` not None) the probabilities are the mean over its
    non-silent windows, and ``segments`` summarises the timeline.
    """

    path: str | None
    label: str
    probabilities: dict[str, float]
    duration: float | None = None
    windows: list[Window] | None = None
    segments: list[Segment] | None = None
    window: float | None = None
    hop: float | None = None

    @property
    def is_timeline(self) -> bool:
        return self.windows is not None

    def top(self, k: int) -> list[tuple[str, float]]:
        return sorted(self.probabilities.items(), key=lambda kv: -kv[1])[:k]

    @classmethod
    def from_dict(cls, d: dict) -> "Prediction":
        """Inverse of :meth:`to_dict` (extra keys such as ``top`` are ignored)."""
        windows = [Window(w["start"], w["end"], w["label"], w["probabilities"], w.get("silent", False))
                   for w in d["windows"]] if d.get("windows") is not None else None
        segments = [Segment(s["start"], s["end"], s["label"], s.get("probability"))
                    for s in d["segments"]] if d.get("segments") is not None else None
        return cls(d["path"], d["label"], {str(k): float(v) for k, v in d["probabilities"].items()},
                   duration=d.get("duration"), windows=windows, segments=segments,
                   window=d.get("window"), hop=d.get("hop"))

    def to_dict(self) -> dict:
        d = {"path": self.path, "label": self.label, "probabilities": self.probabilities}
        if self.duration is not None:
            d["duration"] = round(self.duration, 4)
        if self.is_timeline:
            d.update(window=self.window, hop=self.hop, windows=[w.to_dict() for w in self.windows],
                     segments=[s.to_dict() for s in self.segments])
        return d


# ---------------------------------------------------------------------------------------------
# Engines


class TorchEngine:
    """The PyTorch network of a model bundle (:class:`~instrec.classifier.InstrumentClassifier`)."""

    name = "torch"

    def __init__(self, classifier):
        self.classifier = classifier
        self.classes = classifier.classes
        self.feature = classifier.recipe.feature
        self.meta = {"classes": self.classes, "recipe": classifier.recipe.to_dict(), **classifier.info}
        net = classifier.net_
        self._net = net.for_inference() if hasattr(net, "for_inference") else net

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TorchEngine":
        from .classifier import InstrumentClassifier

        return cls(InstrumentClassifier.load(path))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.classifier.predict_proba(X, net=self._net)


class RestrictedEngine:
    """Another engine's answers among some of its classes only, probabilities renormalised.

    What a user who knows the recording is one of a few instruments wants, and how a model that
    knows more classes is scored in the tutorial's six-class mode: the answer is the likeliest of
    the classes kept.
    """

    def __init__(self, engine: Engine, classes: Sequence[str]):
        self.engine = engine
        self.columns = class_columns(engine.classes, classes)
        self.name = engine.name
        self.classes = [engine.classes[i] for i in self.columns]
        self.feature = engine.feature
        self.meta = {**engine.meta, "classes": self.classes, "all_classes": list(engine.classes)}

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return restrict_proba(self.engine.predict_proba(X), self.columns)


def class_columns(classes: Sequence[str], keep: Sequence[str] | str) -> list[int]:
    """Columns of ``classes`` named by ``keep`` (a list, or one comma-separated string), in the
    model's order; names are matched as labels are (``"Sax"`` is ``saxophone``).

    Raises :class:`~instrec.errors.ParameterError` for a name the model does not know, or for
    fewer than two distinct classes (one class would always win).
    """
    from .data.instruments import canonical_label

    names = keep.split(",") if isinstance(keep, str) else list(keep)
    wanted = {canonical_label(n) for n in names if str(n).strip()}
    unknown = sorted(wanted - set(classes))
    if unknown:
        raise ParameterError(f"the model does not know {', '.join(unknown)}; its classes: {', '.join(classes)}")
    if len(wanted) < 2:
        raise ParameterError(f"name at least two classes to choose among; got {', '.join(sorted(wanted)) or 'none'}")
    return [i for i, c in enumerate(classes) if c in wanted]


def restrict_proba(proba: np.ndarray, columns: Sequence[int]) -> np.ndarray:
    """``proba``'s ``columns``, each row rescaled to sum to 1."""
    P = np.asarray(proba)[:, list(columns)]
    total = P.sum(axis=1, keepdims=True)
    # A row whose kept classes all got probability 0 (underflow) stays 0 rather than NaN.
    return np.divide(P, total, out=np.zeros_like(P), where=total > 0)


def _open_engine(path: Path, engine: str) -> Engine:
    if engine not in ENGINES:
        raise ParameterError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    if path.suffix.lower() == ".onnx" and path.is_file():
        from .onnx_export import OnnxEngine

        return OnnxEngine(path)
    if engine == "onnx":
        from .onnx_export import OnnxEngine, ensure_onnx

        return OnnxEngine(ensure_onnx(path))
    return TorchEngine.load(path)


# ---------------------------------------------------------------------------------------------
# The model users hold


class Model:
    """A loaded instrument recognizer: ``predict(y, sr)``, ``predict_file(path)``, ``classes``, ``info``.

    Get one with :func:`instrec.load_model`.
    """

    def __init__(self, engine: Engine, *, source: str | None = None):
        self.engine = engine
        self.source = source

    # -- what the model is --------------------------------------------------------------------
    @property
    def classes(self) -> list[str]:
        return list(self.engine.classes)

    @property
    def feature(self) -> FeatureConfig:
        return self.engine.feature

    @property
    def window(self) -> float:
        """The length (s) of audio the network looks at at once."""
        f = self.feature
        return float(f.seconds) if f.kind == "logmel" else DEFAULT_WINDOW

    @property
    def info(self) -> dict:
        """Recipe, classes, engine, how the model was trained and its measured figures."""
        meta = self.engine.meta
        recipe = meta.get("recipe", {})
        return {
            "source": self.source,
            "engine": self.engine.name,
            "recipe": recipe.get("name"),
            "classes": self.classes,
            "all_classes": meta.get("all_classes", self.classes),
            "window": self.window,
            "sample_rate": self.feature.sr,
            "feature": self.feature.to_dict(),
            "training": meta.get("training", {}),
            "metrics": meta.get("metrics", {}),
        }

    def __repr__(self) -> str:
        return f"Model(recipe={self.info['recipe']!r}, classes={self.classes}, engine={self.engine.name!r})"

    def restrict(self, classes: Sequence[str] | str) -> "Model":
        """The same network answering among ``classes`` only (see :class:`RestrictedEngine`),
        e.g. ``model.restrict("flute,viola,cello,oboe,trumpet,saxophone")``."""
        engine = self.engine.engine if isinstance(self.engine, RestrictedEngine) else self.engine
        return Model(RestrictedEngine(engine, classes), source=self.source)

    # -- prediction ---------------------------------------------------------------------------
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probabilities for feature rows ``X`` (see :func:`instrec.features.compute`)."""
        return self.engine.predict_proba(np.asarray(X, dtype=np.float32))

    def predict(self, y: np.ndarray, sr: int, *, window: float | None = None, hop: float | None = None,
                path: str | None = None) -> Prediction:
        """Predict mono audio ``y`` sampled at ``sr``; long audio is analysed in sliding windows.

        Parameters
        ----------
        y : 1-D float array (a 2-D ``(channels, n)`` array is averaged to mono)
        sr : its sampling rate; the audio is resampled to the model's
        window, hop : window length and step in seconds; default: one result for audio up to 1.5
            model windows long, else windows of the model's length with a hop of half of it
        """
        from .audio import check_samples, resample

        y = np.asarray(y, dtype=np.float32)
        if y.ndim == 2:
            y = y.mean(axis=0)
        if y.ndim != 1:
            raise ParameterError(f"y must be mono audio of shape (n,) or (channels, n); got shape {y.shape}")
        from .audio import SR_RANGE

        if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or not SR_RANGE[0] <= sr <= SR_RANGE[1]:
            raise ParameterError(f"sr must be a sampling rate in Hz between {SR_RANGE[0]} and {SR_RANGE[1]}; got {sr!r}")
        window, hop = check_window(window, hop)
        check_samples(y, path or "<array>", sr=int(sr))
        y = resample(y, orig_sr=int(sr), target_sr=self.feature.sr)
        return self._predict(y, path, window, hop)

    def predict_file(self, path: str | os.PathLike, *, window: float | None = None,
                     hop: float | None = None, max_duration: float | None = None) -> Prediction:
        """Decode ``path`` and predict it (see :meth:`predict`).

        ``max_duration`` (s) refuses longer files from their header, before decoding them
        (default: :data:`instrec.audio.MAX_DURATION`, one hour).
        """
        from .audio import MAX_DURATION, load

        window, hop = check_window(window, hop)
        y, _ = load(path, sr=self.feature.sr, max_duration=MAX_DURATION if max_duration is None else max_duration)
        return self._predict(y, str(path), window, hop)

    def predict_files(self, paths: Sequence[str | os.PathLike], **kwargs) -> list[Prediction]:
        return [self.predict_file(p, **kwargs) for p in paths]

    def _predict(self, y: np.ndarray, path: str | None, window: float | None, hop: float | None) -> Prediction:
        sr = self.feature.sr
        duration = len(y) / sr
        if window is None and duration <= 1.5 * self.window:
            p = self.predict_proba(compute(y, self.feature)[None])[0]
            return Prediction(path, self.classes[int(np.argmax(p))], self._probs(p), duration=duration)
        window = window or self.window
        hop = hop or window / 2
        return self._timeline(y, path, window, hop)

    def _timeline(self, y: np.ndarray, path: str | None, window: float, hop: float) -> Prediction:
        sr = self.feature.sr
        spans = window_spans(len(y), sr=sr, window=window, hop=hop)
        chunks = [y[a:b] for a, b in spans]
        silent = silent_windows(chunks)
        if silent.all():
            raise AudioError(path or "<array>", "is silent in every window")
        loud = [i for i in range(len(chunks)) if not silent[i]]
        # a few windows at a time: memory stays bounded however long the recording and small the hop
        P = np.concatenate([self.predict_proba(np.stack([compute(chunks[i], self.feature) for i in loud[b : b + WINDOW_BATCH]]))
                            for b in range(0, len(loud), WINDOW_BATCH)])
        windows = [Window(a / sr, b / sr, SILENCE, None, True) for a, b in spans]
        for row, i in zip(P, loud):
            windows[i] = Window(spans[i][0] / sr, spans[i][1] / sr, self.classes[int(np.argmax(row))],
                                self._probs(row), False)
        mean = P.mean(axis=0)
        return Prediction(path, self.classes[int(np.argmax(mean))], self._probs(mean), duration=len(y) / sr,
                          windows=windows, segments=merge_segments(windows, duration=len(y) / sr),
                          window=window, hop=hop)

    def _probs(self, p: np.ndarray) -> dict[str, float]:
        return {c: float(v) for c, v in zip(self.classes, p)}


def load_model(path: str | os.PathLike | None = None, *, engine: str = "torch",
               classes: Sequence[str] | str | None = None) -> Model:
    """Load a model: a bundle folder written by ``instrec train``, an exported ``.onnx`` file, or
    ``None`` for the model shipped with instrec.

    ``engine="onnx"`` runs the network with onnxruntime (no PyTorch needed at prediction time).
    ``classes``: answer among these of the model's classes only (:meth:`Model.restrict`).
    """
    if path is None:
        from .assets import shipped_model_path

        path = shipped_model_path()
    path = Path(path)
    if not path.exists():
        from .errors import BundleError

        raise BundleError(f"{path}: no such model folder or file")
    model = Model(_open_engine(path, engine), source=str(path))
    return model if classes is None else model.restrict(classes)


# ---------------------------------------------------------------------------------------------
# Windows and segments (plain functions, tested on their own)


def window_spans(n: int, *, sr: int, window: float, hop: float) -> list[tuple[int, int]]:
    """Sample ranges ``[a, b)`` of windows of ``window`` s every ``hop`` s over ``n`` samples.

    Windows lie inside the recording; when the hops do not land on its end, a last window ends
    exactly there, so the tail is analysed too. A recording shorter than one window is one window.
    """
    w, h = max(1, int(round(window * sr))), max(1, int(round(hop * sr)))
    if n <= w:
        return [(0, n)]
    starts = list(range(0, n - w + 1, h))
    if starts[-1] + w < n:
        starts.append(n - w)
    return [(a, a + w) for a in starts]


def silent_windows(chunks: Sequence[np.ndarray], *, below_db: float = SILENCE_DB) -> np.ndarray:
    """True for each chunk whose RMS is ``below_db`` dB under the loudest chunk's (or has no signal)."""
    from .audio import SILENCE_PEAK

    rms = np.array([math.sqrt(float(np.mean(np.square(c, dtype=np.float64)))) if len(c) else 0.0 for c in chunks])
    peak = np.array([float(np.max(np.abs(c))) if len(c) else 0.0 for c in chunks])
    with np.errstate(divide="ignore"):
        db = 20 * np.log10(np.maximum(rms, 1e-12))
    return (peak < SILENCE_PEAK) | (db < db.max() - below_db)


def merge_segments(windows: Sequence[Window], *, duration: float) -> list[Segment]:
    """Runs of adjacent same-label windows. With overlapping windows a run lasts from its first
    window's start to the next run's first window's start, so segments tile the recording."""
    runs: list[list[Window]] = []
    for w in windows:
        if runs and runs[-1][-1].label == w.label:
            runs[-1].append(w)
        else:
            runs.append([w])
    segments = []
    for i, run in enumerate(runs):
        end = runs[i + 1][0].start if i + 1 < len(runs) else duration
        probs = [w.probabilities[w.label] for w in run if w.probabilities]
        segments.append(Segment(run[0].start, end, run[0].label, float(np.mean(probs)) if probs else None))
    return segments


def check_window(window, hop) -> tuple[float | None, float | None]:
    for name, v in (("window", window), ("hop", hop)):
        if v is not None and (not isinstance(v, (int, float)) or not math.isfinite(v) or not MIN_WINDOW <= v <= MAX_WINDOW):
            raise ParameterError(f"{name} must be between {MIN_WINDOW} and {MAX_WINDOW:g} seconds; got {v!r}")
    if window is not None and hop is not None and hop > window:
        raise ParameterError(f"hop ({hop:g} s) must not be longer than the window ({window:g} s)")
    return (None if window is None else float(window)), (None if hop is None else float(hop))
