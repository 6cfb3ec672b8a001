"""The mel spectrogram the web page shows: a small PNG, drawn with numpy and Pillow (no figure).

One pixel row per mel band (low frequencies at the bottom), one column per frame; a long
recording's frames are averaged in groups so the image is at most ``max_width`` columns wide.
"""

from __future__ import annotations

import base64
import functools
import io

import numpy as np

from ..features import FeatureConfig

MAX_WIDTH = 1200


@functools.lru_cache(maxsize=1)
def _palette() -> np.ndarray:
    """256 RGB colours of matplotlib's 'magma' (what specshow shows for dB)."""
    import matplotlib

    return (matplotlib.colormaps["magma"](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)


def mel_image(y: np.ndarray, feature: FeatureConfig, *, max_width: int = MAX_WIDTH) -> np.ndarray:
    """The dB mel spectrogram of mono ``y`` (at ``feature.sr``) as an RGB array ``(n_mels, width, 3)``."""
    from ..features.mel import mel_spectrogram_db

    f = feature
    S = mel_spectrogram_db(np.asarray(y, dtype=np.float32), sr=f.sr, n_fft=f.n_fft, hop_length=f.hop_length,
                           n_mels=f.n_mels, top_db=f.top_db)
    n = S.shape[1]
    if n > max_width:
        group = int(np.ceil(n / max_width))
        pad = (-n) % group
        S = np.pad(S, ((0, 0), (0, pad)), mode="edge").reshape(S.shape[0], -1, group).mean(axis=2)
    top_db = float(f.top_db or 80.0)
    level = np.clip((S + top_db) / top_db, 0.0, 1.0)
    idx = np.nan_to_num(level * 255).round().astype(np.uint8)
    return _palette()[idx[::-1]]


def spectrogram_png(y: np.ndarray, feature: FeatureConfig, *, max_width: int = MAX_WIDTH) -> bytes:
    """PNG bytes of :func:`mel_image`."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(mel_image(y, feature, max_width=max_width)).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def spectrogram_json(y: np.ndarray, feature: FeatureConfig) -> dict:
    """What ``spectrogram=true`` adds to a prediction: the PNG (base64) and its axes."""
    return {
        "png": base64.b64encode(spectrogram_png(y, feature)).decode("ascii"),
        "duration": round(len(y) / feature.sr, 4),
        "sample_rate": feature.sr,
        "n_mels": feature.n_mels,
        "fmax": feature.sr / 2,
        "top_db": feature.top_db,
    }
