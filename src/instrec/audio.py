"""Audio in: decode with soundfile (libsndfile: wav, flac, ogg, mp3), resample with soxr, mono.

Every failure a user can cause becomes an :class:`~instrec.errors.AudioError` that names the file
and the problem in one line.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import AudioError, ParameterError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
DEFAULT_SR = 22050  # librosa.load's default, the tutorial's rate
SILENCE_PEAK = 1e-6  # below this a clip has no signal to classify (about -120 dBFS)


def is_audio_path(path: str | os.PathLike) -> bool:
    """True when the file name has one of the audio extensions instrec reads."""
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


def load(
    path: str | os.PathLike,
    *,
    sr: int | None = DEFAULT_SR,
    mono: bool = True,
    duration: float | None = None,
) -> tuple[np.ndarray, int]:
    """Decode an audio file to float32 samples.

    Parameters
    ----------
    path : path to a wav, flac, ogg or mp3 file
    sr : target sampling rate; ``None`` keeps the file's own rate
    mono : average the channels (librosa.load's behaviour)
    duration : read at most this many seconds from the start (``None``: all)

    Returns
    -------
    y : np.ndarray, float32, shape ``(n,)`` when mono else ``(channels, n)``
    sr : the sampling rate of ``y``

    Raises
    ------
    AudioError
        missing, unreadable, empty, truncated, non-finite or silent audio.
    """
    path = Path(path)
    if sr is not None and (not isinstance(sr, (int, np.integer)) or sr <= 0):
        raise ParameterError(f"sr must be a positive integer, got {sr!r}")
    if not path.exists():
        raise AudioError(path, "no such file")
    if path.is_dir():
        raise AudioError(path, "is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    try:
        with sf.SoundFile(str(path)) as f:
            native_sr = f.samplerate
            promised = f.frames
            frames = -1 if duration is None else min(promised, int(round(duration * native_sr)))
            y = f.read(frames=frames, dtype="float32", always_2d=True)
        if frames == -1 and (lost := _truncation(path, promised, y.shape[0])):
            raise AudioError(path, f"truncated: the header promises {lost} samples, only {y.shape[0]} could be decoded")
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise AudioError(path, f"not readable as audio ({_short(e)})") from None
    except OSError as e:
        raise AudioError(path, f"cannot be read ({e.strerror or e})") from None
    if y.shape[0] == 0:
        raise AudioError(path, "contains no audio samples (empty or truncated)")
    y = y.T  # (channels, n)
    if mono:
        y = y.mean(axis=0)
    check_samples(y, path)
    if sr is not None and sr != native_sr:
        y = resample(y, orig_sr=native_sr, target_sr=sr)
        native_sr = sr
    return np.ascontiguousarray(y, dtype=np.float32), int(native_sr)


def check_samples(y: np.ndarray, path: str | os.PathLike = "<array>") -> None:
    """Raise AudioError when ``y`` is empty, holds NaN/inf or is silent."""
    if y.size == 0:
        raise AudioError(path, "contains no audio samples")
    if not np.all(np.isfinite(y)):
        raise AudioError(path, "contains NaN or infinite samples")
    if float(np.max(np.abs(y))) < SILENCE_PEAK:
        raise AudioError(path, "is silent (all samples are zero)")


def resample(y: np.ndarray, *, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample along the last axis with soxr (high quality, librosa's default 'soxr_hq')."""
    import soxr

    if orig_sr == target_sr:
        return y
    if y.ndim == 1:
        return soxr.resample(y, orig_sr, target_sr, quality="HQ").astype(np.float32)
    return np.stack([soxr.resample(ch, orig_sr, target_sr, quality="HQ") for ch in y]).astype(np.float32)


def fix_length(y: np.ndarray, *, size: int) -> np.ndarray:
    """Pad with zeros or crop at the end so that ``len(y) == size``."""
    if len(y) >= size:
        return y[:size]
    return np.pad(y, (0, size - len(y)))


def _short(e: Exception) -> str:
    msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
    # libsndfile prefixes its messages with the path we already print.
    if msg.startswith("Error opening"):
        msg = msg.split(": ", 1)[-1]
    # ...and says this of an existing file whose format it cannot recognise.
    if "does not exist or is not a regular file" in msg:
        msg = "unrecognised or corrupt format"
    return msg.rstrip(".")


def _truncation(path: Path, promised: int, decoded: int) -> int | None:
    """The number of frames the header promised when far fewer could be decoded, else None."""
    wav = _wav_promised_frames(path)
    if wav is not None:
        return wav if decoded < wav else None
    # An mp3's length in its header is an estimate: whole real files decode up to ~8,000 samples
    # short of it (encoder delay and padding). Call it truncated only when far more is missing.
    missing = promised - decoded
    return promised if missing > 12_000 and missing > 0.25 * promised else None


def _wav_promised_frames(path: Path) -> int | None:
    """Frames a RIFF/WAVE header declares: libsndfile quietly shortens a truncated WAV."""
    if path.suffix.lower() != ".wav":
        return None
    import struct

    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
            if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            block = None
            while True:
                chunk = fh.read(8)
                if len(chunk) < 8:
                    return None
                cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if cid == b"fmt ":
                    fmt = fh.read(size + (size & 1))
                    channels, bits = struct.unpack("<H", fmt[2:4])[0], struct.unpack("<H", fmt[14:16])[0]
                    block = max(1, channels * ((bits + 7) // 8))
                elif cid == b"data":
                    # 0 and 0xFFFFFFFF mean "unknown length" (streamed WAV): nothing promised.
                    return size // block if block and 0 < size < 0xFFFFFFFF else None
                else:
                    fh.seek(size + (size & 1), 1)
    except (OSError, struct.error):
        return None
