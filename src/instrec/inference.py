"""Predict: one loaded model, recordings of any length, on either engine (PyTorch or onnxruntime).

A short recording (up to one and a half model windows) gets one result, as the tutorial's clips do.
A longer one is cut into sliding windows: each window gets its own probabilities, quiet windows are
marked silent, and adjacent windows of the same instrument are merged into segments.

Every answer goes through :meth:`Model.predict_proba`, whichever engine runs the network: there the
model's temperature (``model.json``'s ``temperature``, see :mod:`instrec.calibration`) is applied,
and :func:`instrec.decision.decide` turns the probabilities into a label, its family, or
``unknown`` when in doubt. Both engines take the same feature rows (:func:`instrec.features.compute`).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .calibration import calibrate
from .decision import (SILENCE, UNKNOWN, check_level, check_min_confidence, decide, family_lookup, family_matrix,
                       resolve_families)
from .engines import (Engine, RestrictedEngine, class_columns, is_multilabel_meta,  # noqa: F401 (restrict_proba: re-exported)
                      restrict_proba)
from .errors import AudioError, BundleError, InstrecError, NotAModel, ParameterError, skip_entry
from .features import FeatureConfig
from .features.compute import compute_windows
from .results import Prediction, Track, Window
from .timeline import (MAX_WINDOWS, SILENCE_DB, check_window_count, merge_segments, silent_levels,  # noqa: F401
                       silent_windows, too_many_windows, tracks, window_spans)

ENGINES = ("auto", "torch", "onnx")
# model.json's keys that turn probabilities into answers: read from the folder's model.json even
# when its model.onnx runs the network, so that changing them needs no new export
DECISION_KEYS = ("families", "temperature", "min_confidence", "thresholds")
DEFAULT_WINDOW = 3.0  # the seed recipes' window: the tutorial's clips are about 3 s long
MIN_WINDOW = 0.1
WINDOW_BATCH = 16  # feature rows (a window longer than a waveform model's: several) predicted together
# predict_file's default cap (s): its memory holds a block and the windows' answers (~3 kB each),
# not the recording, so a day of audio costs ~0.2 GB and a few minutes
MAX_TIMELINE_DURATION = 24 * 3600.0
MAX_WINDOW = 600.0


def open_engine(path: str | os.PathLike, engine: str = "auto") -> Engine:
    """The engine for a model folder or ``.onnx`` file.

    ``auto``: onnxruntime where the folder carries an export of its present weights (``model.onnx``,
    a fast start and no torch), else PyTorch. ``torch``: PyTorch (ParameterError for an ``.onnx``
    file, which has no torch weights). ``onnx``: onnxruntime, exporting
    the folder's ``model.onnx`` first when it is missing or stale (that needs torch once).
    """
    from .engines.onnx_engine import OnnxEngine, is_up_to_date, onnx_path_for

    if engine not in ENGINES:
        raise ParameterError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    path = Path(path)
    if path.suffix.lower() == ".onnx" and path.is_file():
        if engine == "torch":  # an exported graph has no torch weights: say so rather than run onnxruntime
            raise ParameterError("an .onnx file runs on onnxruntime; use --engine onnx or auto, "
                                 "or give the model folder for torch")
        return OnnxEngine(path)
    if engine == "auto":
        onnx = onnx_path_for(path)
        engine = "onnx" if onnx.is_file() and is_up_to_date(onnx, path) else "torch"
        if engine == "onnx":
            return _bundle_decisions(OnnxEngine(onnx), path)
    if engine == "onnx":
        from .export import ensure_onnx

        return _bundle_decisions(OnnxEngine(ensure_onnx(path)), path)
    from .engines.torch_engine import TorchEngine

    return TorchEngine.load(path)


def _bundle_decisions(engine, bundle: Path):
    """The engine of a folder's model.onnx, with the folder's model.json's :data:`DECISION_KEYS`."""
    from .bundle import read_meta

    meta = read_meta(bundle)
    for k in DECISION_KEYS:
        if k in meta:
            engine.meta[k] = meta[k]
        else:
            engine.meta.pop(k, None)
    return engine


# ---------------------------------------------------------------------------------------------
# The model users hold


class Model:
    """A loaded instrument recognizer: ``predict(y, sr)``, ``predict_file(path)``, ``classes``, ``info``.

    Get one with :func:`instrec.load_model`.

    Parameters
    ----------
    engine : what runs the network (:mod:`instrec.engines`)
    source : the model's folder or file, for messages
    min_confidence : answer ``unknown`` when the likeliest class's probability is below this
        (0: never for doubt); None: the model's own (``model.json``'s ``min_confidence``, else 0).
        A multi-label model: a floor under its thresholds (active iff p >= max(threshold, this))
    level : ``instrument`` (the default) or ``family``: answer with the likeliest family

    A multi-label model (``recipe.model.output == "sigmoid"``) says for each instrument whether it
    plays, against its own threshold (``model.json``'s ``thresholds``, else 0.5): its predictions
    carry ``instruments`` (:class:`~instrec.results.Track`: who plays when) and, per window, the
    ``active`` set. Its single answer (``label``) is the likeliest instrument over its threshold,
    else ``unknown``; a family's probability is its likeliest member's.
    """

    def __init__(self, engine: Engine, *, source: str | None = None, min_confidence: float | None = None,
                 level: str = "instrument"):
        self.engine = engine
        self.source = source
        meta = engine.meta
        self.temperature: float | None = meta.get("temperature")
        try:
            self.families = resolve_families(self.classes, meta.get("families"))
            own = check_min_confidence(meta.get("min_confidence"))
        except ParameterError as e:
            raise BundleError(f"{source or 'the model'}: {e}") from None
        chosen = check_min_confidence(min_confidence)
        self.min_confidence: float = chosen if chosen is not None else (own or 0.0)
        self.level = check_level(level)
        self._family_names, self._to_families = family_matrix(self.classes, self.families)
        self._family_of = family_lookup(self.families)
        self.multilabel = is_multilabel_meta(meta)
        try:
            self.thresholds = _thresholds(self.classes, meta.get("thresholds") if self.multilabel else None)
        except ParameterError as e:
            raise BundleError(f"{source or 'the model'}: {e}") from None

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
        return float(f.seconds) if f.kind == "waveform" else DEFAULT_WINDOW

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
            "families": self.families,
            "temperature": 1.0 if self.temperature is None else float(self.temperature),
            "min_confidence": self.min_confidence,
            "level": self.level,
            "multilabel": self.multilabel,
            **({"thresholds": dict(zip(self.classes, self.thresholds.tolist()))} if self.multilabel else {}),
        }

    @property
    def settings(self) -> dict:
        """What its answers depend on, for a resumed ``predict --log``: a digest of the model (classes,
        families, decisions, training card: one for both engines), ``level``, ``min_confidence``."""
        meta = self.engine.meta
        card = {k: meta.get(k) for k in ("classes", "families", "temperature", "thresholds", "training", "metrics")}
        digest = hashlib.sha256(json.dumps(card, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8"))
        return {"model": digest.hexdigest()[:16], "level": self.level, "min_confidence": self.min_confidence}

    def __repr__(self) -> str:
        return f"Model(recipe={self.info['recipe']!r}, classes={self.classes}, engine={self.engine.name!r})"

    def restrict(self, classes: Sequence[str] | str) -> "Model":
        """The same network answering among ``classes`` only (see :class:`RestrictedEngine`),
        e.g. ``model.restrict("flute,viola,cello,oboe,trumpet,saxophone")``."""
        engine = self.engine.engine if isinstance(self.engine, RestrictedEngine) else self.engine
        return Model(RestrictedEngine(engine, classes), source=self.source, min_confidence=self.min_confidence,
                     level=self.level)

    def with_options(self, *, min_confidence: float | None = None, level: str | None = None) -> "Model":
        """The same model answering with another ``min_confidence`` and/or at another ``level``
        (None keeps this one's); itself when nothing changes."""
        if (min_confidence is None or min_confidence == self.min_confidence) and level in (None, self.level):
            return self
        other = copy.copy(self)
        if min_confidence is not None:
            other.min_confidence = check_min_confidence(min_confidence)
        if level is not None:
            other.level = check_level(level)
        return other

    @property
    def active_thresholds(self) -> np.ndarray:
        """A multi-label model's bar for each class: its threshold, raised to ``min_confidence``."""
        return np.maximum(self.thresholds, self.min_confidence)

    # -- prediction ---------------------------------------------------------------------------
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for feature rows ``X`` (see :func:`instrec.features.compute`):
        the engine's, at the model's temperature (:func:`instrec.calibration.calibrate`)."""
        return calibrate(self.engine.predict_proba(np.asarray(X, dtype=np.float32)), self.temperature)

    def family_proba(self, P: np.ndarray) -> np.ndarray:
        """Family probabilities (columns: :attr:`families`' order) of class probabilities ``P``:
        the sum of the family's classes (a multi-label model: the likeliest of them)."""
        P = np.asarray(P, dtype=np.float64)
        if self.multilabel:
            return np.max(P[:, :, None] * self._to_families[None], axis=1)
        return P @ self._to_families

    def predict(self, y: np.ndarray, sr: int, *, window: float | None = None, hop: float | None = None,
                path: str | None = None) -> Prediction:
        """Predict audio ``y`` sampled at ``sr``; long audio is analysed in sliding windows.

        Parameters
        ----------
        y : float array: mono ``(n,)``, or several channels, averaged to mono, as ``(channels, n)``
            or as ``(n, channels)`` (what ``soundfile.read`` returns); the channel axis is the short
            one, of at most :data:`instrec.audio.MAX_CHANNELS`
        sr : its sampling rate; the audio is resampled to the model's
        window, hop : window length and step in seconds; default: one result for audio up to 1.5
            model windows long, else windows of the model's length with a hop of half of it. A
            waveform model hears audio longer than its own window in pieces of it that cover the
            audio, their probabilities combined (:meth:`_combine`)
        path : the name to give the prediction and errors

        Raises
        ------
        ParameterError
            a bad ``sr``, ``window`` or ``hop`` (a hop longer than the window, the model's when
            ``window`` is None: see :func:`check_window`); an array of more than 2 dimensions, or a
            2-D one whose channel axis cannot be told (square, or both axes longer than MAX_CHANNELS).
        AudioError
            audio that cannot be used (empty, NaN, silent, constant, too short).
        """
        from .audio import SR_RANGE, check_samples, resample

        y = np.asarray(y)
        if y.dtype.kind not in "fiu":  # cast, complex would lose its imaginary part, and text raise a bare ValueError
            raise AudioError(path or "<array>", f"holds {y.dtype} values, not audio samples")
        y = to_mono(y.astype(np.float32, copy=False))
        # a whole rate given as a float (44100.0) is a rate; 44100.5 or True is not
        whole = isinstance(sr, (int, float, np.integer, np.floating)) and not isinstance(sr, bool) and float(sr).is_integer()
        if not whole or not SR_RANGE[0] <= sr <= SR_RANGE[1]:
            raise ParameterError(f"sr must be a whole sampling rate in Hz between {SR_RANGE[0]} and {SR_RANGE[1]}; got {sr!r}")
        window, hop = check_window(window, hop, model_window=self.window)
        check_samples(y, path or "<array>", sr=int(sr))
        y = resample(y, orig_sr=int(sr), target_sr=self.feature.sr)
        return self._predict(y, path, window, hop)

    def predict_file(self, path: str | os.PathLike, *, window: float | None = None,
                     hop: float | None = None, max_duration: float | None = None,
                     deadline: float | Callable[[], bool] | None = None) -> Prediction:
        """Decode ``path`` and predict it (see :meth:`predict`).

        Parameters
        ----------
        path : a wav, flac, ogg or mp3 file
        window, hop : as for :meth:`predict`
        max_duration : refuse longer files (s) from their header, before decoding them (default:
            :data:`MAX_TIMELINE_DURATION`, a day: a long recording is never held whole)
        deadline : stop, with an AudioError, once it passes: a :func:`time.monotonic` instant or a
            callable returning True when the work should stop (see :func:`instrec.audio.load`)
        """
        from .audio import as_deadline, decode_blocks, header_seconds

        window, hop = check_window(window, hop, model_window=self.window)
        time_up = as_deadline(deadline)
        sr = self.feature.sr
        max_duration = MAX_TIMELINE_DURATION if max_duration is None else max_duration
        # too many windows refused from the header, read only where the hop is short enough to make them
        # (a file too long is decode_blocks' to refuse; so is a FIFO, whose header read would block)
        w, h = self._steps(window, hop)
        if (max_duration - w) / h + 1 > MAX_WINDOWS and Path(path).is_file() and (seconds := header_seconds(path)):
            if seconds <= max_duration and self._windowed(seconds, window):
                check_window_count(seconds, w, h, path=str(path))
        # a recording longer than this is a timeline: its windows are predicted as it is decoded,
        # so memory holds a block and a window, not the whole recording
        long = max(1.5 * self.window, window or 0.0) * sr
        head: list[np.ndarray] = []
        held = 0
        timeline: _Timeline | None = None

        def put(z: np.ndarray) -> None:
            nonlocal held, timeline
            if not np.isfinite(z).all():  # load's own words, before any window sees them
                raise AudioError(path, "contains NaN or infinite samples")
            if timeline is not None:
                timeline.feed(z)
                return
            head.append(z)
            held += len(z)
            if held > long:
                timeline = _Timeline(self, str(path), w, h, time_up)
                timeline.feed(np.concatenate(head))
                head.clear()

        decode_blocks(path, put, sr=sr, max_duration=max_duration, deadline=time_up)
        if timeline is not None:
            return timeline.finish()
        return self._predict(np.concatenate(head), str(path), window, hop, time_up=time_up)

    def predict_files(self, paths: Sequence[str | os.PathLike], **kwargs) -> list[Prediction]:
        return [self.predict_file(p, **kwargs) for p in paths]

    def _predict(self, y: np.ndarray, path: str | None, window: float | None, hop: float | None,
                 *, time_up: Callable[[], bool] | None = None) -> Prediction:
        sr = self.feature.sr
        duration = len(y) / sr
        if not self._windowed(duration, window):
            p = self._combine(self.predict_proba(compute_windows(y, self.feature)))
            label, probs, family, families = self._answer(p)
            heard = None
            if self.multilabel:
                heard = sorted((Track(c, self._family_of.get(c, c), float(v), [(0.0, duration)])
                                for c, v, on in zip(self.classes, p, p >= self.active_thresholds) if on),
                               key=lambda t: -t.probability)
            return Prediction(path, label, probs, duration=duration, family=family, family_probabilities=families,
                              level=self.level, instruments=heard)
        window, hop = self._steps(window, hop)
        check_window_count(duration, window, hop, path=path)
        return self._timeline(y, path, window, hop, time_up=time_up)

    def _windowed(self, seconds: float, window: float | None) -> bool:
        """Whether a recording of ``seconds`` is answered as a timeline (a window asked for, or long)."""
        return window is not None or seconds > 1.5 * self.window

    def _steps(self, window: float | None, hop: float | None) -> tuple[float, float]:
        """A timeline's windows: ``window`` s (default: the model's) every ``hop`` s (default: half a window)."""
        return (window := window or self.window), hop or window / 2

    def _timeline(self, y: np.ndarray, path: str | None, window: float, hop: float,
                  *, time_up: Callable[[], bool] | None = None) -> Prediction:
        timeline = _Timeline(self, path, window, hop, time_up)
        timeline.feed(y)
        return timeline.finish()

    def _assemble(self, spans: list[tuple[int, int]], silent: np.ndarray, P: np.ndarray, path: str | None,
                  n: int, window: float, hop: float) -> Prediction:
        """The timeline's prediction from its windows' spans, which are silent, and the
        probabilities of the others (rows of ``P``, in order)."""
        sr = self.feature.sr
        loud = [i for i in range(len(spans)) if not silent[i]]
        none = [] if self.multilabel else None
        windows = [Window(a / sr, b / sr, SILENCE, None, True, SILENCE, active=none) for a, b in spans]
        for row, i in zip(P, loud):
            label, probs, family, families = self._answer(row)
            active = [c for c, on in zip(self.classes, row >= self.active_thresholds) if on] if self.multilabel else None
            windows[i] = Window(spans[i][0] / sr, spans[i][1] / sr, label, probs, False, family, families, active)
        duration = n / sr
        # a multi-label file holds each instrument heard anywhere: its best window, never an average
        label, probs, family, families = self._answer(P.max(axis=0) if self.multilabel else P.mean(axis=0))
        heard = None
        if self.multilabel:  # from the instruments' probabilities, whatever level the windows answer at
            rows = dict(zip(loud, P))
            own = [dataclasses.replace(w, probabilities=dict(zip(self.classes, map(float, rows[i])))) if i in rows else w
                   for i, w in enumerate(windows)]
            heard = tracks(own, self.classes, self._family_of, duration)
        return Prediction(path, label, probs, duration=duration,
                          windows=windows, segments=merge_segments(windows, duration=duration),
                          window=window, hop=hop, family=family, family_probabilities=families, level=self.level,
                          instruments=heard)

    def _combine(self, P: np.ndarray) -> np.ndarray:
        """One window's probabilities from those of its pieces (:func:`compute_windows`): their mean;
        a multi-label model's best, as an instrument heard in any piece plays in the window."""
        return P.max(axis=0) if self.multilabel else P.mean(axis=0)

    def _batch(self, X: np.ndarray, path: str | None, time_up: Callable[[], bool] | None) -> np.ndarray:
        if time_up is not None and time_up():  # a long recording's windows stop with its time limit too
            raise AudioError(path or "<array>", "prediction stopped: its time limit passed")
        return self.predict_proba(X)

    def _answer(self, p: np.ndarray) -> tuple[str, dict[str, float], str, dict[str, float]]:
        """``(label, probabilities, family, family probabilities)`` of one row of class
        probabilities, at the model's level (at ``family`` level the classes are the families)."""
        if not np.isfinite(p).all():  # never hand NaN on: JSON has no NaN, and no answer is better than a wrong one
            raise BundleError(f"{self.source or 'the model'}: the network answered non-finite probabilities")
        probs = {c: float(v) for c, v in zip(self.classes, p)}
        families = {f: float(v) for f, v in zip(self._family_names, self.family_proba(p[None])[0])}
        if self.multilabel:  # the likeliest instrument that plays, or none: unknown
            top = int(np.argmax(p))
            label = self.classes[top] if p[top] >= self.active_thresholds[top] and self.classes[top] != UNKNOWN else UNKNOWN
            family = self._family_of[label]
            return (family, families, family, families) if self.level == "family" else (label, probs, family, families)
        if self.level == "family":
            label = decide(families, self.min_confidence)
            return label, families, label, families
        label = decide(probs, self.min_confidence)
        return label, probs, self._family_of[label], families


def _thresholds(classes: Sequence[str], table) -> np.ndarray:
    """A multi-label model's threshold of each of ``classes`` from model.json's ``thresholds``
    (0.5 for a class it lacks, or for every class without a table)."""
    if table is None:
        return np.full(len(classes), 0.5)
    if not isinstance(table, dict) or not all(isinstance(v, (int, float)) and 0 <= v <= 1 for v in table.values()):
        raise ParameterError("thresholds must map each class to a probability from 0 to 1")
    return np.array([float(table.get(c, 0.5)) for c in classes])


def load_model(path: str | os.PathLike | None = None, *, engine: str = "auto",
               classes: Sequence[str] | str | None = None, min_confidence: float | None = None,
               level: str = "instrument") -> Model:
    """Load a model: a bundle folder written by ``instrec train``, an exported ``.onnx`` file, or
    ``None`` or ``"shipped"`` for the model shipped with instrec (always: a folder of that name is
    reached by another spelling, see :func:`instrec.assets.model_path`).

    ``engine``: ``auto`` (onnxruntime where the folder carries a current ``model.onnx``, as the
    shipped model does; else PyTorch), ``torch`` or ``onnx`` (see :func:`open_engine`).
    ``classes``: answer among these of the model's classes only (:meth:`Model.restrict`).
    ``min_confidence``, ``level``: see :class:`Model` (None: the model's own threshold).
    """
    from .assets import model_path

    path = model_path(path)
    if not path.exists():
        raise NotAModel(f"{path}: no such model folder or file")
    check_min_confidence(min_confidence)
    check_level(level)
    model = Model(open_engine(path, engine), source=str(path), min_confidence=min_confidence, level=level)
    return model if classes is None else model.restrict(classes)


# ---------------------------------------------------------------------------------------------
# The windows of a long recording (window_spans, merge_segments...: instrec.timeline)


class _Timeline:
    """The windows of one recording (:func:`window_spans`), its samples fed in blocks (``feed``,
    then ``finish``): each window is predicted once its samples are in, a few at a time, and the
    samples no later window needs are let go, so a recording of any length holds a block and a
    window. Which windows are silent depends on the loudest (:func:`silent_windows`), known at the
    end: every window with signal is predicted, and the quiet ones' rows dropped then."""

    def __init__(self, model: Model, path: str | None, window: float, hop: float, time_up):
        sr = model.feature.sr
        self.model, self.path, self.window, self.hop, self.time_up = model, path, window, hop, time_up
        self.w, self.h = max(1, int(round(window * sr))), max(1, int(round(hop * sr)))
        self.buf, self.base = np.zeros(0, np.float32), 0  # samples from index ``base`` on
        self.next, self.last = 0, None  # the next window's start; the last one's
        self.spans: list[tuple[int, int]] = []
        self.rms: list[float] = []
        self.peak: list[float] = []
        self.rows: dict[int, np.ndarray] = {}
        self.errors: dict[int, AudioError] = {}  # windows whose samples no feature can be made of
        self.pending: list[tuple[int, np.ndarray]] = []  # windows and their feature rows, not yet predicted
        self.pending_rows = 0

    def feed(self, z: np.ndarray) -> None:
        keep = self.buf[(self.last or 0) - self.base:]
        self.buf = z if not len(keep) else np.concatenate([keep, z])
        self.base = self.last or 0
        while self.next + self.w <= self.base + len(self.buf):
            self._window(self.next, self.next + self.w)
            self.last, self.next = self.next, self.next + self.h

    def finish(self) -> Prediction:
        n = self.base + len(self.buf)
        if n < self.w:  # shorter than a window: one window, all of it
            self._window(0, n)
        elif self.last is not None and self.last + self.w < n:  # the hops missed the end: a last window ends there
            self._window(n - self.w, n)
        self._flush()
        silent = silent_levels(np.array(self.rms), np.array(self.peak))
        if silent.all():
            raise AudioError(self.path or "<array>", "is silent in every window")
        loud = [i for i in range(len(self.spans)) if not silent[i]]
        for i in loud:
            if i in self.errors:
                raise self.errors[i]
        P = np.stack([self.rows[i] for i in loud])
        return self.model._assemble(self.spans, silent, P, self.path, n, self.window, self.hop)

    def _window(self, a: int, b: int) -> None:
        from .audio import SILENCE_PEAK

        chunk = self.buf[a - self.base : b - self.base]
        if len(self.spans) == MAX_WINDOWS:  # a header that understated the length: held to the same bound
            raise too_many_windows(f"more than {MAX_WINDOWS:,}", window=self.window, hop=self.hop, path=self.path)
        self.spans.append((a, b))
        self.rms.append(math.sqrt(float(np.mean(np.square(chunk, dtype=np.float64)))) if len(chunk) else 0.0)
        # a constant window (a DC offset: no sound) is silent, however far from zero it sits
        constant = not len(chunk) or float(np.max(chunk)) - float(np.min(chunk)) < SILENCE_PEAK
        self.peak.append(0.0 if constant else float(np.max(np.abs(chunk))))
        if self.peak[-1] < SILENCE_PEAK:  # silent whatever the loudest window: not predicted
            return
        i = len(self.spans) - 1
        try:
            X = compute_windows(chunk, self.model.feature)
        except AudioError as e:  # it matters only if the window is not silent; then it names the file
            self.errors[i] = AudioError(self.path or "<array>", f"{e.problem} from {a / self.model.feature.sr:.1f} "
                                        f"to {b / self.model.feature.sr:.1f} s")
            return
        self.pending.append((i, X))
        self.pending_rows += len(X)
        if self.pending_rows >= WINDOW_BATCH:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            P = self.model._batch(np.concatenate([X for _, X in self.pending]), self.path, self.time_up)
            cuts = np.cumsum([len(X) for _, X in self.pending])[:-1]
            self.rows.update((i, self.model._combine(part)) for (i, _), part in zip(self.pending, np.split(P, cuts)))
        self.pending, self.pending_rows = [], 0


def to_mono(y: np.ndarray) -> np.ndarray:
    """``y`` as mono audio: a 1-D array as it is, a 2-D one averaged over its channel axis.

    The channel axis is the short one, of at most :data:`instrec.audio.MAX_CHANNELS`, so that both
    ``(channels, n)`` and soundfile's ``(n, channels)`` are read right.

    Raises
    ------
    ParameterError
        more than 2 dimensions, or 2 whose channel axis cannot be told.
    """
    from .audio import MAX_CHANNELS

    if y.ndim == 1:
        return y
    if y.ndim == 2:
        rows, cols = y.shape
        if rows <= MAX_CHANNELS and cols > rows:
            return y.mean(axis=0)
        if cols <= MAX_CHANNELS and rows > cols:
            return y.mean(axis=1)
        raise ParameterError(f"y of shape {y.shape} is ambiguous: give mono audio of shape (n,), or channels "
                             f"first, (channels, n), or last, (n, channels), with at most {MAX_CHANNELS} "
                             f"channels and more samples than channels")
    raise ParameterError(f"y must be mono audio of shape (n,), or (channels, n) or (n, channels); got shape {y.shape}")


def predict_or_skip(model: Model, path: str | os.PathLike, *, window: float | None = None,
                    hop: float | None = None) -> Prediction | tuple[str, str]:
    """One file's prediction, or ``(file, problem)`` where it cannot be used: a batch goes on."""
    try:
        return model.predict_file(path, window=window, hop=hop)
    except InstrecError as e:
        return skip_entry(e, path)


_worker_model: Model | None = None  # a pool worker's copy (instrec.pipeline.predict_paths with jobs)


def start_worker(model: Model) -> None:
    """A prediction pool's worker setup: one BLAS/onnxruntime thread (the pool fills the cores), the model."""
    global _worker_model
    from .features.pool import init_worker

    init_worker()
    _worker_model = model


def predict_in_worker(path: str, window: float | None, hop: float | None) -> Prediction | tuple[str, str]:
    return predict_or_skip(_worker_model, path, window=window, hop=hop)


def check_window(window, hop, *, model_window: float | None = None) -> tuple[float | None, float | None]:
    """``(window, hop)`` as floats (None stays None), checked: each from MIN_WINDOW to MAX_WINDOW s,
    and a hop no longer than the window, which is ``model_window`` (:attr:`Model.window`) when
    ``window`` is None and ``model_window`` is given: a longer hop would leave audio unheard.

    Raises
    ------
    ParameterError
        a value out of range or not a number, or a hop longer than the window.
    """
    for name, v in (("window", window), ("hop", hop)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v) or not MIN_WINDOW <= v <= MAX_WINDOW):
            raise ParameterError(f"{name} must be between {MIN_WINDOW} and {MAX_WINDOW:g} seconds; got {v!r}")
    if window is not None and hop is not None and hop > window:
        raise ParameterError(f"hop ({hop:g} s) must not be longer than the window ({window:g} s)")
    if window is None and hop is not None and model_window is not None and hop > model_window:
        raise ParameterError(f"hop ({hop:g} s) must not be longer than the window ({model_window:g} s, the model's: "
                             f"set a longer window too)")
    return (None if window is None else float(window)), (None if hop is None else float(hop))
