"""Draw the notes that rendered clips play: pitch, dynamic (velocity) and held length.

The draws of one instrument come from a generator of its own, seeded by (seed, source, label), so
adding or removing an instrument or a source changes no other instrument's notes.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from .instruments import Instrument

# Dynamic word -> velocity band. A clip draws the word uniformly (balanced dynamics), then a
# velocity inside its band. Velocities below 20 are left out: FluidSynth attenuates them by more
# than 35 dB and some SoundFonts have no layer for them.
DYNAMICS: tuple[tuple[str, int, int], ...] = (
    ("pianissimo", 20, 39),
    ("piano", 40, 55),
    ("mezzo-piano", 56, 71),
    ("mezzo-forte", 72, 87),
    ("forte", 88, 103),
    ("fortissimo", 104, 127),
)

DURATION_STEP = 0.05  # held lengths are rounded to this, so file names stay short
RELEASE_ROOM = 0.5  # seconds left after the note-off for the release, when the clip allows it
MIN_HOLD = 0.25


@dataclass(frozen=True)
class Note:
    """The random draws of one clip."""

    pitch: int
    velocity: int
    dynamic: str
    duration: float  # held seconds, before the note-off


def note_rng(seed: int, source: str, label: str) -> np.random.Generator:
    """The generator of one instrument's draws from one source."""
    # crc32, not hash(): Python salts str hashes per process, and the draws must not change.
    return np.random.default_rng([seed, zlib.crc32(source.encode()), zlib.crc32(label.encode())])


def draw_note(rng: np.random.Generator, inst: Instrument, seconds: float) -> Note:
    """A pitch in the instrument's range, a dynamic and a velocity in its band, a held length.

    The order of the draws is part of the output: changing it changes every rendered file.
    """
    pitch = int(rng.integers(inst.low, inst.high + 1))
    dynamic, lo, hi = DYNAMICS[int(rng.integers(len(DYNAMICS)))]
    velocity = int(rng.integers(lo, hi + 1))
    return Note(pitch, velocity, dynamic, draw_duration(rng, seconds))


def draw_duration(rng: np.random.Generator, seconds: float) -> float:
    """Held seconds in MIN_HOLD..seconds-RELEASE_ROOM (shorter clips: squeezed to fit)."""
    high = max(seconds - RELEASE_ROOM, min(MIN_HOLD, seconds))
    low = min(MIN_HOLD, high)
    held = round(rng.uniform(low, high) / DURATION_STEP) * DURATION_STEP
    return round(min(max(held, DURATION_STEP), seconds), 2)


def dynamic_for_velocity(velocity: int) -> str:
    """The dynamic word of a MIDI velocity (below 20 counts as pianissimo)."""
    for word, _, hi in DYNAMICS:
        if velocity <= hi:
            return word
    return DYNAMICS[-1][0]
