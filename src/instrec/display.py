"""Pictures of predictions: the mel spectrogram of a recording with its class probabilities over time."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .features import FeatureConfig
from .results import Prediction


def plot_timeline(y: np.ndarray, prediction: Prediction, feature: FeatureConfig, *, title: str | None = None) -> bytes:
    """PNG bytes: the dB mel spectrogram of ``y`` (sampled at ``feature.sr``) above the probability of
    each class per window (one line per class, silent windows left blank).

    A short recording without windows shows its probabilities as one bar per class instead.
    """
    import matplotlib

    matplotlib.use("Agg")
    import librosa.display
    import matplotlib.pyplot as plt

    from .features.mel import mel_spectrogram_db

    f = feature
    S_db = mel_spectrogram_db(y, sr=f.sr, n_fft=f.n_fft, hop_length=f.hop_length, n_mels=f.n_mels, top_db=f.top_db)
    classes = list(prediction.probabilities)
    duration = len(y) / f.sr
    fig, (ax_s, ax_p) = plt.subplots(2, 1, figsize=(10, 6), sharex=prediction.is_timeline,
                                     gridspec_kw={"height_ratios": [3, 2]}, constrained_layout=True)
    librosa.display.specshow(S_db, sr=f.sr, hop_length=f.hop_length, x_axis="time", y_axis="mel", ax=ax_s)
    name = Path(prediction.path).name if prediction.path else "recording"
    ax_s.set_title(title or f"{name}: {prediction.label}")
    ax_s.set_xlabel("")
    if prediction.is_timeline:
        centres = np.array([(w.start + w.end) / 2 for w in prediction.windows])
        for c in classes:
            p = np.array([w.probabilities[c] if w.probabilities else np.nan for w in prediction.windows])
            ax_p.plot(centres, p, marker=".", label=c)
        for s in prediction.segments:
            if s.label == "silence":
                ax_p.axvspan(s.start, s.end, color="0.9", zorder=0)
        ax_p.set_xlim(0, duration)
        ax_p.set_xlabel("time (s)")
        ax_p.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    else:
        ax_p.bar(classes, [prediction.probabilities[c] for c in classes], color="tab:blue")
        ax_p.tick_params(axis="x", labelrotation=30)
    ax_p.set_ylim(0, 1.02)
    ax_p.set_ylabel("probability")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
