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
MIN_SECONDS = 0.02  # shorter than this there is no note to hear (a 2048-point frame is 93 ms)
MAX_DURATION = 3600.0  # default cap (s): longer files are refused from their header, before decoding
SR_RANGE = (1000, 768_000)  # sampling rates outside this are a broken or hostile header
MAX_CHANNELS = 64
MAX_PEAK = 1e6  # larger samples are not audio (float audio is -1..1; int16 values as floats reach 32768)
STREAM_ABOVE = 600.0  # files longer than this (s) are decoded block by block (bounded memory)


def is_audio_path(path: str | os.PathLike) -> bool:
    """True when the file name has one of the audio extensions instrec reads."""
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


def load(
    path: str | os.PathLike,
    *,
    sr: int | None = DEFAULT_SR,
    mono: bool = True,
    duration: float | None = None,
    max_duration: float | None = MAX_DURATION,
) -> tuple[np.ndarray, int]:
    """Decode an audio file to float32 samples.

    Parameters
    ----------
    path : path to a wav, flac, ogg or mp3 file
    sr : target sampling rate; ``None`` keeps the file's own rate
    mono : average the channels (librosa.load's behaviour)
    duration : read at most this many seconds from the start (``None``: all)
    max_duration : refuse a file whose header says it is longer (``None``: no limit); checked
        before anything is decoded, so a header that claims days of audio costs nothing

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
    _check_file(path)
    try:
        with sf.SoundFile(str(path)) as f:
            native_sr, promised, channels = f.samplerate, f.frames, f.channels
            _check_header(path, native_sr, promised, channels, max_duration)
            frames = promised if duration is None else min(promised, int(round(duration * native_sr)))
            if mono and frames > STREAM_ABOVE * native_sr:
                y, decoded = _read_mono_blocks(f, frames, native_sr, sr)
                y, native_sr = y[None], sr or native_sr
            else:
                y = f.read(frames=-1 if duration is None else frames, dtype="float32", always_2d=True).T
                decoded = y.shape[1]
        if duration is None and (lost := _truncation(path, promised, decoded)):
            raise AudioError(path, f"truncated: the header promises {lost} samples, only {decoded} could be decoded")
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise AudioError(path, f"not readable as audio ({_short(e)})") from None
    except MemoryError:
        raise AudioError(path, "too large to decode in the memory available") from None
    except OSError as e:
        raise AudioError(path, f"cannot be read ({e.strerror or e})") from None
    if y.shape[1] == 0:
        raise AudioError(path, "contains no audio samples (empty or truncated)")
    if mono:
        y = y.mean(axis=0) if y.shape[0] > 1 else y[0]
    check_samples(y, path, sr=native_sr)
    if sr is not None and sr != native_sr:
        y = resample(y, orig_sr=native_sr, target_sr=sr)
        native_sr = sr
    return np.ascontiguousarray(y, dtype=np.float32), int(native_sr)


def _check_file(path: Path) -> None:
    """Refuse what is not a readable regular file before any decoder touches it."""
    import stat

    try:
        st = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise AudioError(path, "is a broken symbolic link (or a symlink loop)") from None
        raise AudioError(path, "no such file") from None
    except OSError as e:  # ELOOP, EACCES on a parent folder, a name too long...
        raise AudioError(path, f"cannot be opened ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise AudioError(path, "is a folder, not an audio file")
    if not stat.S_ISREG(st.st_mode):  # a FIFO would block a reader forever; a device never ends
        raise AudioError(path, "is not a regular file (a pipe, socket or device)")
    if st.st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise AudioError(path, "cannot be read (permission denied)")


def _check_header(path: Path, native_sr: int, frames: int, channels: int, max_duration: float | None) -> None:
    if not SR_RANGE[0] <= native_sr <= SR_RANGE[1]:
        raise AudioError(path, f"has an implausible sampling rate of {native_sr} Hz (a broken header?)")
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioError(path, f"has {channels} channels; at most {MAX_CHANNELS} are read")
    if max_duration is not None and frames / native_sr > max_duration:
        raise AudioError(path, f"is {_fmt_seconds(frames / native_sr)} long; the limit is {_fmt_seconds(max_duration)}")


def _fmt_seconds(s: float) -> str:
    if s >= 3600:
        return f"{s / 3600:.3g} h"
    return f"{s / 60:.3g} min" if s >= 60 else f"{s:.3g} s"


def _read_mono_blocks(f: "sf.SoundFile", frames: int, native_sr: int, sr: int | None) -> tuple[np.ndarray, int]:
    """Decode a long file block by block, mixing to mono and resampling as it goes, so memory holds
    only the result (at the target rate), never every channel at the file's rate.

    Returns the samples and the number of frames decoded (at the file's rate)."""
    import soxr

    stream = soxr.ResampleStream(native_sr, sr, 1, dtype="float32", quality="HQ") if sr and sr != native_sr else None
    parts, left, block = [], frames, 1 << 18
    while left > 0:
        x = f.read(frames=min(block, left), dtype="float32", always_2d=True)
        if len(x) == 0:
            break
        left -= len(x)
        x = x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]
        parts.append(stream.resample_chunk(x, last=left <= 0) if stream else x)
    if stream and left > 0:
        parts.append(stream.resample_chunk(np.zeros(0, np.float32), last=True))
    return (np.concatenate(parts) if parts else np.zeros(0, np.float32)), frames - left


def check_samples(y: np.ndarray, path: str | os.PathLike = "<array>", *, sr: int | None = None) -> None:
    """Raise AudioError when ``y`` is empty, holds NaN/inf, is silent or constant (DC only), or
    (given ``sr``) is shorter than :data:`MIN_SECONDS`."""
    y = np.asarray(y)
    if y.size == 0:
        raise AudioError(path, "contains no audio samples")
    if y.dtype.kind not in "fiu":
        raise AudioError(path, f"holds {y.dtype} values, not audio samples")
    if y.dtype.kind != "f":  # integer PCM: compare as floats, so that int8 -128..127 cannot wrap
        y = y.astype(np.float32)
    if not np.all(np.isfinite(y)):
        raise AudioError(path, "contains NaN or infinite samples")
    peak = float(np.max(np.abs(y)))
    if peak < SILENCE_PEAK:
        raise AudioError(path, "is silent (all samples are zero)")
    if peak > MAX_PEAK:
        raise AudioError(path, f"has samples up to {peak:.3g}, too large for audio (expected within ±1)")
    if float(np.max(y)) - float(np.min(y)) < SILENCE_PEAK:
        raise AudioError(path, "is a constant signal (a DC offset, no sound)")
    if sr is not None and y.shape[-1] < MIN_SECONDS * sr:
        raise AudioError(path, f"is too short ({1000 * y.shape[-1] / sr:.3g} ms; at least {1000 * MIN_SECONDS:g} ms are needed)")


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
