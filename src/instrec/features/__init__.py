"""Features: one implementation each, shared by train, evaluate and predict.

A :class:`FeatureConfig` says everything needed to recompute a feature exactly; a model bundle
stores it, so a model is never fed features computed differently from its training.

Many files: :func:`extract` (all rows in one matrix) and :func:`iter_features` (one row at a time,
flat memory) decode and compute in a pool of worker processes (``jobs``) and can keep what they
compute in a cache on disk keyed by each file's content and the parameters (``cache``, see
:mod:`instrec.features.cache`). The image's mel spectrogram and the MFCC share one STFT/mel
implementation (:mod:`instrec.features.mel`) that gives librosa's values several times faster.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from typing import Callable, Iterator, Sequence

import numpy as np

from ..errors import ParameterError

# image: the tutorial's spectrogram picture; mfcc: MFCC means; logmel: a fixed-length waveform
# window whose log-mel spectrogram the network computes itself (features.frontend.LogMel).
FEATURE_KINDS = ("image", "mfcc", "logmel")
IMAGE_MODES = ("gray", "rgb")
# mfcc: what summarises the MFCC matrix over time, joined by "+" ("mean": the tutorial's 40
# values; "mean+std+contrast": their means and standard deviations plus librosa's spectral
# contrast, 7 octave bands, averaged over time)
MFCC_STATS = ("mean", "std", "contrast")
CONTRAST_BANDS = 7  # librosa.feature.spectral_contrast's n_bands=6 gives 6 + 1 rows


@dataclass(frozen=True)
class FeatureConfig:
    """Parameters of a feature, named as librosa names them."""

    kind: str = "mfcc"
    sr: int = 22050
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    top_db: float = 80.0
    n_mfcc: int = 40
    width: int = 640
    height: int = 480
    image_mode: str = "gray"
    seconds: float = 3.0  # logmel: window length; shorter clips are padded with silence
    fmin: float = 0.0
    fmax: float | None = None
    stats: str = "mean"  # mfcc: see MFCC_STATS
    # semitones the audio is shifted by before the feature is computed: training makes
    # pitch-shifted copies of its clips with it (TrainConfig.pitch_shifts); a model is always
    # served with 0
    pitch_shift: float = 0.0

    def __post_init__(self):
        if self.kind not in FEATURE_KINDS:
            raise ParameterError(f"feature kind must be one of {', '.join(FEATURE_KINDS)}; got {self.kind!r}")
        if self.image_mode not in IMAGE_MODES:
            raise ParameterError(f"image_mode must be gray or rgb; got {self.image_mode!r}")
        for name in ("sr", "n_fft", "hop_length", "n_mels", "n_mfcc", "width", "height"):
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0:
                raise ParameterError(f"{name} must be a positive integer; got {v!r}")
        if not isinstance(self.seconds, (int, float)) or not 0.05 <= self.seconds <= 600:
            raise ParameterError(f"seconds must be between 0.05 and 600; got {self.seconds!r}")
        parts = self.stat_names if isinstance(self.stats, str) else []
        if not parts or any(p not in MFCC_STATS for p in parts) or len(set(parts)) != len(parts):
            raise ParameterError(f"stats must join some of {', '.join(MFCC_STATS)} with '+', e.g. mean+std; got {self.stats!r}")
        if "contrast" in parts and self.sr <= 12800:  # the top octave band starts at 6,400 Hz
            raise ParameterError(f"spectral contrast needs sr above 12800; got {self.sr}")
        if isinstance(self.pitch_shift, bool) or not isinstance(self.pitch_shift, (int, float)) or not abs(self.pitch_shift) <= 12:
            raise ParameterError(f"pitch_shift must be between -12 and 12 semitones; got {self.pitch_shift!r}")
        # more than 2,000 frames a second is no spectrogram but a memory bomb (hop_length 1: a
        # 3-s window would need half a gigabyte)
        if self.hop_length * 2000 < self.sr:
            raise ParameterError(f"hop_length must be at least sr / 2000 = {-(-self.sr // 2000)}; got {self.hop_length}")
        if self.kind == "logmel":  # a fixed window: bound the spectrogram one clip makes (about 200 MB)
            cells = (1 + self.dim // self.hop_length) * (self.n_fft // 2 + 1)
            if cells > 50_000_000:
                raise ParameterError(f"a logmel window of {self.seconds:g} s with n_fft {self.n_fft} and hop_length "
                                     f"{self.hop_length} makes {cells:,} spectrogram cells; at most 50,000,000")

    @property
    def stat_names(self) -> list[str]:
        """``stats`` split into its parts: ``"mean+std"`` → ``["mean", "std"]``."""
        return self.stats.split("+")

    @property
    def dim(self) -> int:
        """Length of the flat feature vector."""
        if self.kind == "image":
            return self.width * self.height * (3 if self.image_mode == "rgb" else 1)
        if self.kind == "logmel":
            return int(round(self.seconds * self.sr))
        parts = self.stat_names
        return self.n_mfcc * (("mean" in parts) + ("std" in parts)) + CONTRAST_BANDS * ("contrast" in parts)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ParameterError(f"unknown feature parameters: {', '.join(sorted(unknown))}")
        return cls(**d)


def compute(y: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """The feature vector of mono audio ``y`` sampled at ``config.sr`` (float32, ``(config.dim,)``)."""
    from ..audio import check_samples

    check_samples(np.asarray(y), "<array>")  # finite, audible, bounded: the features are then finite
    row = compute_compact(y, config)
    return expand(row, config) if config.kind == "image" else row


def compute_file(path: str | os.PathLike, config: FeatureConfig) -> np.ndarray:
    """Decode ``path`` at ``config.sr`` (mono) and compute its feature."""
    from ..audio import load

    y, _ = load(path, sr=config.sr)
    return compute(y, config)


def compact_dtype(config: FeatureConfig) -> np.dtype:
    """dtype of :func:`compute_compact`'s result: uint8 pixels for the image, else float32."""
    return np.dtype(np.uint8 if config.kind == "image" else np.float32)


def compute_compact(y: np.ndarray, config: FeatureConfig, *, out: np.ndarray | None = None,
                    out_zeroed: bool = False) -> np.ndarray:
    """The feature in its compact form, ``(config.dim,)``: what workers send and the cache stores.

    The image as its uint8 pixels (:func:`expand` makes the tutorial's ``/ 255`` floats of them),
    the other kinds as their float32 row. A new array holding no reference to ``y``, or ``out``
    filled with it; ``out_zeroed``: ``out`` is all zeros, so the padding of a window longer than
    the note is not written (fresh pages that are never touched cost nothing).
    """
    c = config
    if c.pitch_shift:
        import librosa

        y = librosa.effects.pitch_shift(y, sr=c.sr, n_steps=float(c.pitch_shift)).astype(np.float32, copy=False)
    if c.kind == "logmel":
        if out is None:
            out, out_zeroed = np.zeros(c.dim, dtype=np.float32), True
        n = min(len(y), c.dim)  # the window: the clip's start, padded with zeros (fix_length)
        out[:n] = y[:n]
        if not out_zeroed:
            out[n:] = 0
        return out
    row = _compute_dense(y, c)
    if out is None:
        return row
    out[...] = row
    return out


def _compute_dense(y: np.ndarray, c: FeatureConfig) -> np.ndarray:
    if c.kind == "mfcc":
        from .mfcc import mfcc_mean, mfcc_stats

        if c.stats == "mean":  # the tutorial's feature, bit for bit as it always was
            return mfcc_mean(y, sr=c.sr, n_mfcc=c.n_mfcc, n_fft=c.n_fft, hop_length=c.hop_length, n_mels=c.n_mels)
        return mfcc_stats(y, sr=c.sr, n_mfcc=c.n_mfcc, n_fft=c.n_fft, hop_length=c.hop_length, n_mels=c.n_mels,
                          stats=c.stats)
    from .image import spectrogram_image
    from .mel import mel_spectrogram_db

    S_db = mel_spectrogram_db(y, sr=c.sr, n_fft=c.n_fft, hop_length=c.hop_length, n_mels=c.n_mels, top_db=c.top_db)
    return spectrogram_image(S_db, width=c.width, height=c.height, mode=c.image_mode).reshape(-1)


def expand(row: np.ndarray, config: FeatureConfig, out: np.ndarray | None = None) -> np.ndarray:
    """The float32 feature row of a compact one (into ``out`` when given)."""
    if out is None:
        out = np.empty(config.dim, dtype=np.float32)
    if config.kind == "image":
        # flatten_image: uint8 -> float32, then / 255 in float32
        np.divide(row, np.float32(255.0), out=out, dtype=np.float32)
    else:
        out[...] = row
    return out


def iter_features(
    paths: Sequence[str | os.PathLike],
    config: FeatureConfig,
    *,
    jobs: int | None = None,
    cache=False,
) -> Iterator[tuple[int, np.ndarray | None, tuple[str, str] | None]]:
    """Features of many files, one at a time, in the order of ``paths``: memory stays flat.

    Yields ``(index, row, None)`` for each usable file (``row``: float32 ``(config.dim,)``) and
    ``(index, None, (path, problem))`` for each file that could not be used. ``jobs`` and ``cache``
    as for :func:`extract`.
    """
    from .parallel import iter_compact

    for i, row, skip in iter_compact(paths, config, jobs=jobs, cache=cache):
        yield i, (None if row is None else expand(row, config)), skip


def extract(
    paths: Sequence[str | os.PathLike],
    config: FeatureConfig,
    *,
    jobs: int | None = None,
    cache=False,
    compact: bool = False,
    progress: Callable[[int, int], None] | None = None,
    device: str | None = None,
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """Features of many files; a file that fails is skipped and reported, the rest go on.

    Parameters
    ----------
    jobs : worker processes; ``None`` or ``0``: one per core, ``1``: in this process
    cache : ``True``: the feature cache in its default folder (see :mod:`instrec.features.cache`);
        a folder or a :class:`~instrec.features.cache.FeatureCache`; ``False``: none
    compact : return the rows in :func:`compact_dtype` (the image's uint8 pixels: a quarter of the
        memory; :class:`~instrec.classifier.InstrumentClassifier` takes them as they are)
    progress : called ``progress(done, total)`` as files are done
    device : ``None``/``"cpu"``: worker processes on the CPU; ``"auto"``: a CUDA GPU when PyTorch
        sees one; ``"cuda"``: that GPU. On a GPU, threads decode and the MFCCs are computed in
        batches there (:mod:`instrec.features.device`); the image and the cnn's waveform window
        have nothing to move and take the CPU route whatever the device.

    Returns
    -------
    X : float32 (or, with ``compact``, :func:`compact_dtype`) array ``(n_ok, config.dim)``, rows in
        the order of ``paths``; with worker processes, the shared memory they wrote the rows into
        (an ordinary writable array to the caller, freed with it)
    ok : indices into ``paths`` of the rows of ``X``
    skipped : ``(path, problem)`` for each file that could not be used
    """
    from .parallel import extract_compact, iter_compact

    if device is not None:
        from .device import extract_on_device, resolve_feature_device

        on = resolve_feature_device(device, config)
        if on is not None:
            return extract_on_device(paths, config, device=on, cache=cache, progress=progress)
    if compact or compact_dtype(config) == np.float32:  # the compact rows are the result
        return extract_compact(paths, config, jobs=jobs, cache=cache, progress=progress)
    X = np.empty((len(paths), config.dim), dtype=np.float32)
    ok, skipped = [], []
    for done, (i, row, skip) in enumerate(iter_compact(paths, config, jobs=jobs, cache=cache), 1):
        if row is None:
            skipped.append(skip)
        else:
            expand(row, config, out=X[len(ok)])
            ok.append(i)
        if progress:
            progress(done, len(paths))
    return X[: len(ok)], np.asarray(ok, dtype=np.int64), skipped
