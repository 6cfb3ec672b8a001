"""MFCCs averaged over time: the tutorial's 40-value summary of a clip's timbre."""

from __future__ import annotations

import numpy as np

from .mel import _check


def mfcc_mean(
    y: np.ndarray,
    *,
    sr: int = 22050,
    n_mfcc: int = 40,
    n_fft: int = 2048,
    hop_length: int = 512,
    n_mels: int = 128,
) -> np.ndarray:
    """``librosa.feature.mfcc(y=y, sr=sr, n_mfcc=n_mfcc)`` averaged over frames; shape ``(n_mfcc,)``."""
    import librosa

    _check(y, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)
    M = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=n_mfcc, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)
    return M.mean(axis=1).astype(np.float32)
