"""One clip's feature: :func:`compute` (float32 row) and its compact form (what workers send and the cache stores)."""

from __future__ import annotations

import os

import numpy as np

from .config import FeatureConfig

def compute(y: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """The feature vector of mono audio ``y`` sampled at ``config.sr`` (float32, ``(config.dim,)``)."""
    from ..audio import check_samples
    from ..errors import ParameterError

    if not isinstance(config, FeatureConfig):
        raise ParameterError(f"config must be a FeatureConfig; got {type(config).__name__}")
    check_samples(np.asarray(y), "<array>")  # finite, audible, bounded: the features are then finite
    row = compute_compact(y, config)
    return expand(row, config) if config.kind == "image" else row


def compute_windows(y: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """The feature rows ``(k, config.dim)`` that together hear all of ``y``: one row (:func:`compute`),
    except for a waveform feature of audio longer than its window, cut into windows of its length
    that cover ``y`` (the last one ends at the end of ``y``, overlapping the one before).

    Windows with no signal (all zero, or constant) are left out unless every one is: they say
    nothing of what plays. Combine the rows' probabilities to answer for ``y``.
    """
    from ..audio import SILENCE_PEAK, check_samples

    y = np.asarray(y)
    dim = config.dim
    if config.kind != "waveform" or len(y) <= dim:
        return compute(y, config)[None]
    check_samples(y, "<array>")
    starts = list(range(0, len(y) - dim + 1, dim))
    if starts[-1] + dim < len(y):
        starts.append(len(y) - dim)
    rows = np.stack([compute_compact(y[a : a + dim], config) for a in starts])
    heard = (rows.max(axis=1) - rows.min(axis=1)) >= SILENCE_PEAK
    return rows[heard] if heard.any() else rows


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
    if c.kind == "waveform":
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

        mel = dict(sr=c.sr, n_mfcc=c.n_mfcc, n_fft=c.n_fft, hop_length=c.hop_length, n_mels=c.n_mels, top_db=c.top_db,
                   fmin=c.fmin, fmax=c.fmax)  # review: top_db, fmin and fmax were ignored (the defaults always)
        if c.stats == "mean":  # the tutorial's feature, bit for bit as it always was
            return mfcc_mean(y, **mel)
        return mfcc_stats(y, stats=c.stats, **mel)
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
