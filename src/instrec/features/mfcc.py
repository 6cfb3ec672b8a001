"""MFCCs averaged over time: the tutorial's 40-value summary of a clip's timbre.

``librosa.feature.mfcc`` is the DCT-II (orthonormal) of ``power_to_db(melspectrogram(y))`` along
the mel axis, its first ``n_mfcc`` rows kept. Here the mel spectrogram comes from the shared fast
route (:func:`instrec.features.mel.mel_power`) and the DCT is a cached matrix. The mean over frames
of a linear transform is the transform of the mean, so :func:`mfcc_mean` averages the dB mel
spectrogram first and applies the DCT to one column.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..errors import ParameterError
from .config import MFCC_STATS
from .mel import _check, mel_power, power_to_db

__all__ = ["mfcc", "mfcc_mean", "mfcc_stats", "dct_matrix"]


def mfcc(
    y: np.ndarray,
    *,
    sr: int = 22050,
    n_mfcc: int = 20,
    n_fft: int = 2048,
    hop_length: int = 512,
    n_mels: int = 128,
    top_db: float | None = 80.0,
    fmin: float = 0.0,
    fmax: float | None = None,
) -> np.ndarray:
    """``librosa.feature.mfcc(y=y, sr=sr, n_mfcc=n_mfcc, n_fft=..., hop_length=..., n_mels=...)``
    (DCT type 2, orthonormal, no lifter): float32 ``(n_mfcc, n_frames)``.

    Parameters
    ----------
    y : np.ndarray
        Mono audio, 1-D, finite.
    n_mfcc : int
        Coefficients kept, at most ``n_mels``.
    top_db : float or None
        The log-mel floor below its maximum, before the DCT (librosa's default 80).
    sr, n_fft, hop_length, n_mels, fmin, fmax
        The mel power spectrogram's (:func:`~instrec.features.mel.mel_power`).
    """
    S_db = _log_mel(y, sr, n_mfcc, n_fft, hop_length, n_mels, top_db, fmin, fmax)
    return (dct_matrix(n_mfcc, n_mels) @ S_db).astype(np.float32)


def mfcc_mean(
    y: np.ndarray,
    *,
    sr: int = 22050,
    n_mfcc: int = 40,
    n_fft: int = 2048,
    hop_length: int = 512,
    n_mels: int = 128,
    top_db: float | None = 80.0,
    fmin: float = 0.0,
    fmax: float | None = None,
) -> np.ndarray:
    """``librosa.feature.mfcc(y=y, sr=sr, n_mfcc=n_mfcc, ...)`` averaged over frames; float32 ``(n_mfcc,)``:
    the tutorial's feature (40 coefficients). Parameters as :func:`mfcc`."""
    S_db = _log_mel(y, sr, n_mfcc, n_fft, hop_length, n_mels, top_db, fmin, fmax)
    return (dct_matrix(n_mfcc, n_mels) @ S_db.mean(axis=1, dtype=np.float64)).astype(np.float32)


def mfcc_stats(
    y: np.ndarray,
    *,
    sr: int = 22050,
    n_mfcc: int = 40,
    n_fft: int = 2048,
    hop_length: int = 512,
    n_mels: int = 128,
    stats: str = "mean+std+contrast",
    top_db: float | None = 80.0,
    fmin: float = 0.0,
    fmax: float | None = None,
) -> np.ndarray:
    """Summaries over time of a clip's MFCCs and spectral contrast, in the order ``stats`` names them.

    ``stats`` joins some of ``mean`` (the MFCCs' means, as :func:`mfcc_mean`), ``std`` (their
    standard deviations: how the timbre moves during the note, e.g. an attack or vibrato) and
    ``contrast`` (``librosa.feature.spectral_contrast`` averaged over time: peak-to-valley
    contrast in 7 octave bands, which tells harmonic from noisy spectra) with ``+``.
    float32 ``(n_mfcc * (mean + std) + 7 * contrast,)``. The other parameters are :func:`mfcc`'s
    (the contrast uses ``sr``, ``n_fft`` and ``hop_length``).
    """
    parts = stats.split("+")
    if not parts or any(p not in MFCC_STATS for p in parts):
        raise ParameterError(f"stats must join some of {', '.join(MFCC_STATS)} with '+'; got {stats!r}")
    checked = _check(y, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)  # review: librosa's contrast took no list
    y = y if isinstance(y, np.ndarray) and y.dtype.kind == "f" else checked  # float64 stays float64 for the contrast
    M = (mfcc(y, sr=sr, n_mfcc=n_mfcc, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, top_db=top_db, fmin=fmin,
              fmax=fmax) if {"mean", "std"} & set(parts) else None)
    pieces = {"mean": lambda: M.mean(axis=1), "std": lambda: M.std(axis=1),
              "contrast": lambda: _contrast_mean(y, sr, n_fft, hop_length)}
    return np.concatenate([pieces[p]() for p in parts]).astype(np.float32)


def _contrast_mean(y, sr, n_fft, hop_length) -> np.ndarray:
    import warnings

    import librosa

    with warnings.catch_warnings():  # a clip shorter than n_fft is padded, as the MFCCs' STFT pads it
        warnings.filterwarnings("ignore", message="n_fft=.* is too large", category=UserWarning)
        return librosa.feature.spectral_contrast(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length).mean(axis=1)


@lru_cache(maxsize=16)
def dct_matrix(n_mfcc: int, n_mels: int) -> np.ndarray:
    """The first ``n_mfcc`` rows of the orthonormal DCT-II of size ``n_mels`` (``scipy.fft.dct(x,
    type=2, norm="ortho")`` is ``dct_matrix(n, n) @ x``), float64, read-only."""
    k = np.arange(n_mfcc)[:, None]
    n = np.arange(n_mels)[None, :]
    D = np.cos(np.pi * k * (2 * n + 1) / (2 * n_mels)) * np.sqrt(2.0 / n_mels)
    D[0] /= np.sqrt(2.0)
    D.flags.writeable = False
    return D


def _log_mel(y, sr, n_mfcc, n_fft, hop_length, n_mels, top_db, fmin, fmax) -> np.ndarray:
    if not isinstance(n_mfcc, (int, np.integer)) or n_mfcc <= 0:
        raise ParameterError(f"n_mfcc must be a positive integer, got {n_mfcc!r}")
    if n_mfcc > n_mels:
        raise ParameterError(f"n_mfcc ({n_mfcc}) cannot exceed n_mels ({n_mels})")
    S = mel_power(y, sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, fmin=fmin, fmax=fmax)
    return power_to_db(S, ref=1.0, top_db=top_db)
