"""``instrec spectrograms``: the tutorial's spectrogram images written as PNG files."""

from __future__ import annotations

import io
import os
from pathlib import Path

from .data.folder import find_audio
from .errors import DataError, InstrecError, skip_entry
from .fileio import write_bytes


def write_spectrograms(data: str | os.PathLike, out: str | os.PathLike, *, mode: str = "gray", config=None, progress=None):
    """One PNG per audio file under ``data`` into ``out`` (mirroring sub-folders).

    Returns ``(n_written, skipped)``; a bad file is skipped and listed, the rest go on.
    """
    from PIL import Image

    from .audio import load
    from .features import FeatureConfig
    from .features.image import spectrogram_image
    from .features.mel import mel_spectrogram_db

    c = config or FeatureConfig(kind="image", image_mode=mode)
    data, out = Path(data), Path(out)
    if not data.exists():
        raise DataError(f"{data}: no such file or folder")
    files = find_audio(data)
    if not files:
        raise DataError(f"{data}: no audio files found (looked for .wav .flac .ogg .mp3)")
    base = data if data.is_dir() else data.parent
    bar = progress("spectrograms", len(files)) if progress else None
    written, skipped = 0, []
    for i, f in enumerate(files):
        try:
            y, _ = load(f, sr=c.sr)
            S = mel_spectrogram_db(y, sr=c.sr, n_fft=c.n_fft, hop_length=c.hop_length, n_mels=c.n_mels, top_db=c.top_db)
            img = spectrogram_image(S, width=c.width, height=c.height, mode=mode)
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG")
            write_bytes(out / f.relative_to(base).with_suffix(".png"), buf.getvalue())
            written += 1
        except InstrecError as e:
            skipped.append(skip_entry(e, f))
        if bar:
            bar(i + 1, len(files))
    return written, skipped
