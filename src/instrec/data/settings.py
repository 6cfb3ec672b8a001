"""The scalar arguments of :func:`.render.render` (and :func:`.mixtures.mix_clips`), checked: counts,
clip length, sampling rate, format and seed, each mistake one line naming the argument."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError
from .splits import check_seed

__all__ = ["ARGUMENT_NAMES", "FORMATS", "MAX_COUNT", "MP3_RATES", "check_arguments"]

FORMATS: dict[str, tuple[str, str]] = {  # fmt -> (libsndfile format, subtype)
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)  # what MPEG audio allows

MIN_SECONDS, MAX_SECONDS = 0.05, 60.0
MIN_SR, MAX_SR = 8000, 192000
MAX_COUNT = 100_000  # clips per instrument (mix: mixtures); more is a typo, not a data set
# What the arguments are called in messages; the command line passes its options' names.
ARGUMENT_NAMES = {"per_class": "per_class", "seconds": "seconds", "sr": "sr", "fmt": "fmt", "seed": "seed",
                  "negatives": "negatives"}


@dataclass(frozen=True)
class _Settings:
    """The validated scalar arguments of one render."""

    per_class: int
    seconds: float
    sr: int
    fmt: str
    seed: int
    reuse: bool = False  # keep the complete clips an earlier run of this same render left

    @property
    def n_samples(self) -> int:
        return round(self.seconds * self.sr)


def check_arguments(per_class=100, seconds=3.0, sr=22050, fmt="wav", seed=0, negatives=0, *,
                    names: dict[str, str] | None = None, count: str = "per_class") -> _Settings:
    """The scalar arguments of :func:`render`, checked; a mistake raises ParameterError, one line naming
    the argument as ``names`` calls it (default :data:`ARGUMENT_NAMES`; the command line passes its
    options) with the values it takes. ``count``: the key of ``names`` that the count is called by."""
    name = {**ARGUMENT_NAMES, **(names or {})}
    for value, key, low in ((per_class, count, 1), (negatives, "negatives", 0)):
        if not _is_int(value) or not low <= value <= MAX_COUNT:
            raise ParameterError(f"{name[key]} must be an integer from {low} to {MAX_COUNT}, got {value!r}")
    seconds, sr, fmt, seed = check_audio_arguments(seconds, sr, fmt, seed, name)
    return _Settings(int(per_class), seconds, sr, fmt, seed)


def check_audio_arguments(seconds, sr, fmt, seed, name: dict[str, str], *, seconds_range=(MIN_SECONDS, MAX_SECONDS),
                          sr_range=(MIN_SR, MAX_SR)) -> tuple[float, int, str, int]:
    """Length, rate, format and seed of a command that writes audio (render, render-music), checked:
    ``(seconds, sr, fmt, seed)``; ParameterError naming each as ``name`` calls it, with its range."""
    (low_s, high_s), (low_sr, high_sr) = seconds_range, sr_range
    is_number = isinstance(seconds, (int, float, np.integer, np.floating)) and not isinstance(seconds, bool)
    if not is_number or not low_s <= seconds <= high_s:
        raise ParameterError(f"{name['seconds']} must be a number of seconds in {low_s:g}..{high_s:g}, got {seconds!r}")
    if not _is_int(sr) or not low_sr <= sr <= high_sr:
        raise ParameterError(f"{name['sr']} must be an integer in {low_sr}..{high_sr} (Hz), got {sr!r}")
    fmt = fmt.lower().lstrip(".") if isinstance(fmt, str) else fmt
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise ParameterError(f"{name['fmt']} must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "mp3" and sr not in MP3_RATES:
        raise ParameterError(f"{name['sr']} must be one of {', '.join(map(str, MP3_RATES))} (Hz) for mp3, got {sr!r}")
    return float(seconds), int(sr), fmt, int(check_seed(seed, name["seed"]))


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
