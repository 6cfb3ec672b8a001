"""Audio in: decode with soundfile (libsndfile: wav, flac, ogg, mp3), resample with soxr, mono.

Every failure a user can cause becomes an :class:`~instrec.errors.AudioError` that names the file
and the problem in one line. Files are decoded block by block, mixed and resampled as they go, and
what a header promises is bounded before decoding: a small file that claims gigabytes of samples
costs neither the memory nor the time.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Callable

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
BLOCK_SAMPLES = 1 << 20  # samples (all channels together) decoded at once: 4 MiB of float32
# frames x channels at the file's rate, checked from the header: bounds the decoding time (about 1 h
# of 6 channels at 96 kHz); a 10-min 8-channel FLAC at 655,350 Hz (3.1 billion) is refused
MAX_DECODE_SAMPLES = 1 << 31
# samples held after mixing and resampling: 512 MiB of float32 (1 h 41 min mono at 22,050 Hz)
MAX_RESULT_SAMPLES = 1 << 27


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
    deadline: float | Callable[[], bool] | None = None,
) -> tuple[np.ndarray, int]:
    """Decode an audio file to float32 samples, block by block.

    Memory holds the result (at the target rate, mixed to mono unless ``mono=False``) and one block
    of the file, whatever the file's length, rate or channels: blocks are mixed and resampled as they
    are decoded. What a file would decode to is bounded from its header, before decoding.

    Parameters
    ----------
    path : path to a wav, flac, ogg or mp3 file
    sr : target sampling rate; ``None`` keeps the file's own rate
    mono : average the channels (librosa.load's behaviour)
    duration : read at most this many seconds from the start (``None``: all)
    max_duration : refuse a file whose header says it is longer (``None``: no limit); checked
        before anything is decoded, so a header that claims days of audio costs nothing
    deadline : stop decoding when it passes: a :func:`time.monotonic` instant, or a callable that
        returns True once the work should stop (``None``: no time limit)

    Returns
    -------
    y : np.ndarray, float32, shape ``(n,)`` when mono else ``(channels, n)``
    sr : the sampling rate of ``y``

    Raises
    ------
    AudioError
        missing, unreadable, empty, truncated, non-finite or silent audio; a file that would decode
        to more than :data:`MAX_DECODE_SAMPLES` samples or hold more than :data:`MAX_RESULT_SAMPLES`;
        a decode stopped by ``deadline``.
    ParameterError
        a bad ``sr``, ``duration`` or ``deadline``.
    """
    y, out_sr = _load(path, sr=sr, mono=mono, duration=duration, max_duration=max_duration, deadline=deadline)
    return y, out_sr


def header_seconds(path: str | os.PathLike) -> float | None:
    """The length its header gives a file (s), or None where it cannot be read (the decoder then says why)."""
    try:
        info = sf.info(_native(path))
        return info.frames / info.samplerate if info.samplerate > 0 else None
    except Exception:  # libsndfile's errors, a missing file...: left to load to report
        return None


def decode_blocks(
    path: str | os.PathLike,
    put: Callable[[np.ndarray], None],
    *,
    sr: int = DEFAULT_SR,
    max_duration: float | None = MAX_DURATION,
    deadline: float | Callable[[], bool] | None = None,
) -> int:
    """Decode an audio file as :func:`load` does (mono, at ``sr``: the same samples, checks and
    errors), handing each block to ``put`` as it is decoded instead of holding the whole: memory
    holds one block, however long the file. ``put(y)`` gets float32 arrays of shape ``(n,)``; the
    checks that need every sample (silent, NaN, truncated) raise after the last block.

    Returns the number of samples handed over."""
    if sr is None:
        raise ParameterError("decode_blocks needs a target rate sr")
    _, n = _load(path, sr=sr, mono=True, duration=None, max_duration=max_duration, deadline=deadline, put=put)
    return n


def _native(path) -> str | bytes:
    """The path as the operating system spells it: bytes on POSIX, where a name that is not UTF-8
    (``bad\\xff.wav``) cannot be encoded back from Python's str for libsndfile."""
    return os.fsencode(path) if os.name == "posix" else str(path)


def _load(path, *, sr, mono, duration, max_duration, deadline, put=None):
    """:func:`load`'s work: ``(y, sr)``; with ``put``, the blocks go to it: ``(None, samples handed over)``."""
    path = Path(path)
    if sr is not None and (isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0):
        raise ParameterError(f"sr must be a positive integer, got {sr!r}")
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, (int, float, np.number))
                                 or not (math.isfinite(duration) and duration > 0)):
        raise ParameterError(f"duration must be a positive number of seconds, got {duration!r}")
    time_up = as_deadline(deadline)
    _check_file(path)
    _stop_if_late(path, time_up, 0.0)
    try:
        with sf.SoundFile(_native(path)) as f:
            native_sr, promised, channels = f.samplerate, f.frames, f.channels
            _check_header(path, native_sr, promised, channels, max_duration)
            frames = promised if duration is None else min(promised, int(round(duration * native_sr)))
            out_sr = int(sr or native_sr)
            _check_size(path, frames, channels, native_sr, out_sr, 1 if mono else channels, held=put is None)
            y, decoded, stats = _decode(f, path, frames=None if duration is None else frames, mono=mono,
                                        out_sr=out_sr, max_duration=max_duration, time_up=time_up, put=put)
        if duration is None and (lost := _truncation(path, promised, decoded)):
            raise AudioError(path, f"truncated: the header promises {lost} samples, only {decoded} could be decoded")
    except _PutError as e:
        raise e.__cause__ from None
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise AudioError(path, f"not readable as audio ({_short(e)})") from None
    except MemoryError:
        raise AudioError(path, "too large to decode in the memory available") from None
    except OSError as e:
        raise AudioError(path, f"cannot be read ({e.strerror or e})") from None
    if decoded == 0:
        raise AudioError(path, "contains no audio samples (empty or truncated)")
    # judged on the decoded samples at the file's rate, as check_samples would judge them
    _judge(path, *stats, n=decoded, sr=native_sr)
    if put is not None:
        return None, y
    return (y[0] if mono else y), out_sr


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


def _fmt_count(n: int) -> str:
    return f"{n / 1e9:.3g} billion" if n >= 1e9 else f"{n / 1e6:.3g} million" if n >= 1e6 else str(n)


def _fmt_bytes(b: int) -> str:
    return f"{b / 2**30:.3g} GiB" if b >= 2**30 else f"{b / 2**20:.3g} MiB"


def as_deadline(deadline: float | Callable[[], bool] | None) -> Callable[[], bool] | None:
    """A function telling whether ``deadline`` has passed (None when there is no deadline).

    Parameters
    ----------
    deadline : a :func:`time.monotonic` instant, a callable returning True once work should stop
        (e.g. ``threading.Event().is_set``), or None

    Raises
    ------
    ParameterError
        anything else.
    """
    if deadline is None or callable(deadline):
        return deadline
    if isinstance(deadline, bool) or not isinstance(deadline, (int, float, np.integer, np.floating)) \
            or math.isnan(deadline):
        raise ParameterError(f"deadline must be a time.monotonic() instant or a callable; got {deadline!r}")
    at = float(deadline)
    return lambda: time.monotonic() >= at


def _stop_if_late(path: Path, time_up: Callable[[], bool] | None, seconds: float) -> None:
    if time_up is not None and time_up():
        done = f" after {_fmt_seconds(seconds)} of audio" if seconds else ""
        raise AudioError(path, f"decoding stopped{done}: its time limit passed")


def _check_size(path: Path, frames: int, channels: int, native_sr: int, out_sr: int, out_channels: int,
                held: bool = True) -> None:
    """Refuse, from the header, a file whose decoding is too much work or (``held``) whose result
    is too large to hold."""
    if frames * channels > MAX_DECODE_SAMPLES:
        raise AudioError(path, f"would decode to {_fmt_count(frames * channels)} samples ({channels} channels x "
                               f"{_fmt_seconds(frames / native_sr)} at {native_sr} Hz); at most "
                               f"{_fmt_count(MAX_DECODE_SAMPLES)} are decoded")
    if not held:
        return
    held = _resampled_length(frames, native_sr, out_sr) * out_channels
    if held > MAX_RESULT_SAMPLES:
        raise AudioError(path, f"would decode to {_fmt_bytes(4 * held)} of samples at {out_sr} Hz; at most "
                               f"{_fmt_bytes(4 * MAX_RESULT_SAMPLES)} are held (read a part with duration=, "
                               f"or mono at a lower rate)")


def _resampled_length(frames: int, native_sr: int, out_sr: int) -> int:
    """An upper bound of the samples soxr makes of ``frames`` (it rounds the exact length)."""
    return -(-frames * out_sr // native_sr) + 1


class _PutError(Exception):
    """Carries (as its cause) an exception raised by :func:`decode_blocks`' ``put``."""


def _decode(f: "sf.SoundFile", path: Path, *, frames: int | None, mono: bool, out_sr: int,
            max_duration: float | None, time_up: Callable[[], bool] | None, put=None):
    """Decode ``frames`` frames (None: to the end) block by block: each block is mixed to mono
    (``mono``) and streamed through soxr into one preallocated ``(channels, n)`` float32 array,
    or with ``put`` (mono), handed to it.

    Returns the array (with ``put``: the samples handed over), the frames decoded at the file's
    rate and the decoded samples' statistics ``(finite, low, high)``, so that they are judged
    without another pass over the result."""
    import soxr

    native_sr, channels = f.samplerate, f.channels
    out_ch = 1 if mono else channels
    stream = soxr.ResampleStream(native_sr, out_sr, out_ch, dtype="float32", quality="HQ") \
        if out_sr != native_sr else None
    want = f.frames if frames is None else frames
    out = np.empty((out_ch, 0 if put is not None else _resampled_length(max(want, 0), native_sr, out_sr)), np.float32)
    filled = decoded = 0
    finite, low, high = True, math.inf, -math.inf
    block = max(1024, BLOCK_SAMPLES // channels)  # a block's samples, all channels together, stay bounded

    def hold(z: np.ndarray) -> None:  # z: (n,) or (n, channels)
        nonlocal out, filled
        if filled + len(z) > out.shape[1]:  # the file holds more than its header said (an mp3's estimate)
            grown = max(filled + len(z), out.shape[1] + out.shape[1] // 8 + 1024)
            if filled + len(z) > MAX_RESULT_SAMPLES // out_ch:
                raise AudioError(path, f"decodes to more than {_fmt_bytes(4 * MAX_RESULT_SAMPLES)} of samples "
                                       f"(more than its header says)")
            bigger = np.empty((out_ch, min(grown, MAX_RESULT_SAMPLES // out_ch)), np.float32)
            bigger[:, :filled] = out[:, :filled]
            out = bigger
        out[:, filled : filled + len(z)] = z.T
        filled += len(z)

    def hand_over(z: np.ndarray) -> None:
        nonlocal filled
        if len(z):
            try:
                put(z)
            except BaseException as e:  # the caller's own error: not to be taken for a decoder's
                raise _PutError() from e
            filled += len(z)

    give = hold if put is None else hand_over

    while frames is None or decoded < frames:
        _stop_if_late(path, time_up, decoded / native_sr)
        x = f.read(frames=block if frames is None else min(block, frames - decoded), dtype="float32", always_2d=True)
        if len(x) == 0:
            break
        decoded += len(x)
        # a header may understate the length: hold the decoded audio to the same limits
        if max_duration is not None and decoded > max_duration * native_sr:
            raise AudioError(path, f"is longer than the {_fmt_seconds(max_duration)} limit (its header claims "
                                   f"{_fmt_seconds(f.frames / native_sr)})")
        if decoded * channels > MAX_DECODE_SAMPLES:
            raise AudioError(path, f"decodes to more than {_fmt_count(MAX_DECODE_SAMPLES)} samples, the limit "
                                   f"(its header claims {_fmt_count(f.frames * channels)})")
        if mono:
            x = _mix(x)
        lo, hi = float(x.min()), float(x.max())  # NaN propagates through min and max
        finite = finite and math.isfinite(lo) and math.isfinite(hi)
        low, high = min(low, lo), max(high, hi)
        give(stream.resample_chunk(x) if stream is not None else x)
    if stream is not None:
        give(stream.resample_chunk(np.zeros((0,) if mono else (0, out_ch), np.float32), last=True))
    return (filled if put is not None else _trim(out, filled)), decoded, (finite, low, high)


def _mix(x: np.ndarray) -> np.ndarray:
    """The mean of the channels of a ``(frames, channels)`` block, equal to ``x.mean(axis=1)``."""
    channels = x.shape[1]
    if channels == 1:
        return x[:, 0]
    if channels >= 8:  # numpy sums 8 or more values pairwise: keep its order, and so its rounding
        return x.mean(axis=1)
    # below 8 numpy adds in order, as this does, column by column: the same values, 5-10x faster
    total = x[:, 0].copy()
    for c in range(1, channels):
        total += x[:, c]
    total /= channels
    return total


def _trim(out: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` columns of ``out`` as a C-contiguous array, moved in place (no second copy)."""
    if n == out.shape[1] or out.shape[0] == 1:
        return out[:, :n]
    flat = out.reshape(-1)
    for c in range(1, out.shape[0]):  # rows move forward only, so none is overwritten before it moves
        flat[c * n : (c + 1) * n] = out[c, :n]
    return flat[: out.shape[0] * n].reshape(out.shape[0], n)


def check_samples(y: np.ndarray, path: str | os.PathLike = "<array>", *, sr: int | None = None) -> None:
    """Refuse samples that are not usable audio.

    Parameters
    ----------
    y : samples, any shape (the last axis is time)
    path : what to name in the error
    sr : their sampling rate, to refuse audio shorter than :data:`MIN_SECONDS` (None: not checked)

    Raises
    ------
    AudioError
        ``y`` is empty, holds NaN/inf, is silent, too large for audio, constant (DC only) or too short.
    """
    y = np.asarray(y)
    if y.size == 0:
        raise AudioError(path, "contains no audio samples")
    if y.dtype.kind not in "fiu":
        raise AudioError(path, f"holds {y.dtype} values, not audio samples")
    # min and max only: NaN propagates through both, and no temporary as large as y is made
    low, high = float(np.min(y)), float(np.max(y))
    _judge(path, math.isfinite(low) and math.isfinite(high), low, high, n=y.shape[-1], sr=sr)


def _judge(path, finite: bool, low: float, high: float, *, n: int, sr: int | None) -> None:
    """check_samples' verdict from the samples' extremes (``finite``: none is NaN or infinite)."""
    if not finite:
        raise AudioError(path, "contains NaN or infinite samples")
    peak = max(abs(low), abs(high))
    if peak < SILENCE_PEAK:
        # review: a clip of tiny non-zero samples was said to be all zeros
        raise AudioError(path, "is silent (all samples are zero)" if peak == 0 else
                         f"is silent (its loudest sample, {peak:.1e}, is below {SILENCE_PEAK:g}, about -120 dBFS)")
    if peak > MAX_PEAK:
        raise AudioError(path, f"has samples up to {peak:.3g}, too large for audio (expected within ±1)")
    if high - low < SILENCE_PEAK:
        raise AudioError(path, "is a constant signal (a DC offset, no sound)")
    if sr is not None and n < MIN_SECONDS * sr:
        raise AudioError(path, f"is too short ({1000 * n / sr:.3g} ms; at least {1000 * MIN_SECONDS:g} ms are needed)")


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


_STREAMED_DATA_SIZE = 0x7FFF0000


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
                    # a size of 2 GiB or more (0xFFFFFFFF...) is how writers to a pipe mark a length
                    # they could not know: nothing promised, the file's end is the audio's
                    return size // block if block and 0 < size < _STREAMED_DATA_SIZE else None
                else:
                    fh.seek(size + (size & 1), 1)
    except (OSError, struct.error):
        return None
