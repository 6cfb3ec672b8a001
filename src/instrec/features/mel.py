"""Mel spectrogram in dB, as the tutorial computes it (librosa parameter names throughout)."""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError


def mel_spectrogram_db(
    y: np.ndarray,
    *,
    sr: int = 22050,
    n_fft: int = 2048,
    hop_length: int = 512,
    n_mels: int = 128,
    power: float = 2.0,
    top_db: float | None = 80.0,
) -> np.ndarray:
    """Mel power spectrogram in dB relative to its maximum (``librosa.power_to_db(S, ref=np.max)``).

    Returns
    -------
    np.ndarray, float32, shape ``(n_mels, 1 + len(y) // hop_length)``; values in ``[-top_db, 0]``.
    """
    import librosa

    _check(y, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)
    S = librosa.feature.melspectrogram(
        y=y, sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, power=power
    )
    return librosa.power_to_db(S, ref=np.max, top_db=top_db).astype(np.float32)


def _check(y: np.ndarray, *, n_fft: int, hop_length: int, n_mels: int) -> None:
    if y.ndim != 1:
        raise ParameterError(f"y must be mono (1-D), got shape {y.shape}")
    for name, v in (("n_fft", n_fft), ("hop_length", hop_length), ("n_mels", n_mels)):
        if not isinstance(v, (int, np.integer)) or v <= 0:
            raise ParameterError(f"{name} must be a positive integer, got {v!r}")
