"""Instrument names, General MIDI programs, playing ranges and note names.

Labels are file-name prefixes (``flute_G5_1.5_forte_fluidr3_017.wav``): the label is everything
before the first ``_``, so labels are lowercase words joined by ``-`` and never contain ``_``.

A user may name an instrument by a friendly label (``"saxophone"``, ``"double-bass"``), by any of
the 128 General MIDI program names (``"Acoustic Guitar (nylon)"``) or by an alias (``"sax"``);
case, spaces and underscores do not matter. :func:`resolve_instrument` turns the name into an
:class:`Instrument`: the label the files get, the GM program that plays it and the MIDI pitch
range to draw notes from.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Mapping

from ..errors import ParameterError

# The 128 General MIDI level 1 program names (index = 0-based program number), written as labels.
GM_PROGRAMS: tuple[str, ...] = (
    # 0-7 piano
    "acoustic-grand-piano", "bright-acoustic-piano", "electric-grand-piano", "honky-tonk-piano",
    "electric-piano-1", "electric-piano-2", "harpsichord", "clavinet",
    # 8-15 chromatic percussion
    "celesta", "glockenspiel", "music-box", "vibraphone",
    "marimba", "xylophone", "tubular-bells", "dulcimer",
    # 16-23 organ
    "drawbar-organ", "percussive-organ", "rock-organ", "church-organ",
    "reed-organ", "accordion", "harmonica", "tango-accordion",
    # 24-31 guitar
    "acoustic-guitar-nylon", "acoustic-guitar-steel", "electric-guitar-jazz", "electric-guitar-clean",
    "electric-guitar-muted", "overdriven-guitar", "distortion-guitar", "guitar-harmonics",
    # 32-39 bass
    "acoustic-bass", "electric-bass-finger", "electric-bass-pick", "fretless-bass",
    "slap-bass-1", "slap-bass-2", "synth-bass-1", "synth-bass-2",
    # 40-47 strings
    "violin", "viola", "cello", "contrabass",
    "tremolo-strings", "pizzicato-strings", "orchestral-harp", "timpani",
    # 48-55 ensemble
    "string-ensemble-1", "string-ensemble-2", "synth-strings-1", "synth-strings-2",
    "choir-aahs", "voice-oohs", "synth-voice", "orchestra-hit",
    # 56-63 brass
    "trumpet", "trombone", "tuba", "muted-trumpet",
    "french-horn", "brass-section", "synth-brass-1", "synth-brass-2",
    # 64-71 reed
    "soprano-sax", "alto-sax", "tenor-sax", "baritone-sax",
    "oboe", "english-horn", "bassoon", "clarinet",
    # 72-79 pipe
    "piccolo", "flute", "recorder", "pan-flute",
    "blown-bottle", "shakuhachi", "whistle", "ocarina",
    # 80-87 synth lead
    "lead-1-square", "lead-2-sawtooth", "lead-3-calliope", "lead-4-chiff",
    "lead-5-charang", "lead-6-voice", "lead-7-fifths", "lead-8-bass-lead",
    # 88-95 synth pad
    "pad-1-new-age", "pad-2-warm", "pad-3-polysynth", "pad-4-choir",
    "pad-5-bowed", "pad-6-metallic", "pad-7-halo", "pad-8-sweep",
    # 96-103 synth effects
    "fx-1-rain", "fx-2-soundtrack", "fx-3-crystal", "fx-4-atmosphere",
    "fx-5-brightness", "fx-6-goblins", "fx-7-echoes", "fx-8-sci-fi",
    # 104-111 ethnic
    "sitar", "banjo", "shamisen", "koto",
    "kalimba", "bagpipe", "fiddle", "shanai",
    # 112-119 percussive
    "tinkle-bell", "agogo", "steel-drums", "woodblock",
    "taiko-drum", "melodic-tom", "synth-drum", "reverse-cymbal",
    # 120-127 sound effects
    "guitar-fret-noise", "breath-noise", "seashore", "bird-tweet",
    "telephone-ring", "helicopter", "applause", "gunshot",
)

# Friendly label -> (GM program, lowest MIDI note, highest MIDI note): the concert-pitch range a
# player reaches in practice (C4 = 60), so rendered notes sound like the real instrument rather
# than a sample stretched octaves beyond its recording.
INSTRUMENTS: dict[str, tuple[int, int, int]] = {
    # woodwinds
    "piccolo": (72, 74, 108),  # D5-C8
    "flute": (73, 60, 96),  # C4-C7
    "recorder": (74, 72, 98),  # soprano recorder C5-D7
    "oboe": (68, 58, 93),  # Bb3-A6
    "english-horn": (69, 52, 84),  # E3-C6 (written B3-G6, in F)
    "clarinet": (71, 50, 94),  # D3-Bb6 (written E3-C7, in Bb)
    "bassoon": (70, 34, 76),  # Bb1-E5
    "saxophone": (65, 49, 80),  # alto sax Db3-Ab5 (written Bb3-F6, in Eb)
    "soprano-sax": (64, 56, 87),  # Ab3-Eb6
    "alto-sax": (65, 49, 80),  # Db3-Ab5
    "tenor-sax": (66, 44, 75),  # Ab2-Eb5
    "baritone-sax": (67, 37, 68),  # Db2-Ab4
    # brass
    "trumpet": (56, 52, 86),  # E3-D6 (written F#3-E6, in Bb)
    "french-horn": (60, 35, 77),  # B1-F5
    "trombone": (57, 40, 77),  # E2-F5
    "tuba": (58, 26, 65),  # D1-F4
    # strings
    "violin": (40, 55, 105),  # G3-A7
    "viola": (41, 48, 88),  # C3-E6
    "cello": (42, 36, 81),  # C2-A5
    "double-bass": (43, 28, 67),  # E1-G4 (sounding)
    "harp": (46, 23, 104),  # Cb1-G#7
    # keyboards and tuned percussion
    "piano": (0, 21, 108),  # A0-C8
    "harpsichord": (6, 29, 89),  # F1-F6
    "organ": (19, 36, 96),  # church organ, C2-C7 manual range
    "celesta": (8, 60, 108),  # C4-C8 (sounds an octave above written)
    "glockenspiel": (9, 79, 108),  # G5-C8
    "vibraphone": (11, 53, 89),  # F3-F6
    "marimba": (12, 36, 96),  # C2-C7
    "xylophone": (13, 65, 108),  # F4-C8
    "timpani": (47, 38, 60),  # D2-C4 over a set of four drums
    # guitars
    "guitar": (24, 40, 83),  # classical guitar E2-B5
    "electric-guitar": (27, 40, 86),  # E2-D6
    "bass-guitar": (33, 28, 67),  # 4-string bass E1-G4
    "banjo": (105, 48, 81),  # 5-string banjo C3-A5
    # keyboards and reeds
    "accordion": (21, 53, 93),  # right-hand manual F3-A6
    # voice
    "choir": (52, 40, 81),  # bass to soprano, E2-A5
}

# Every friendly instrument in one family: when the instrument is uncertain its family often is
# not (woodwinds, brass, bowed strings, plucked strings, keyboards, pitched percussion, voice).
FAMILIES: dict[str, tuple[str, ...]] = {
    "woodwinds": ("piccolo", "flute", "recorder", "oboe", "english-horn", "clarinet", "bassoon",
                  "saxophone", "soprano-sax", "alto-sax", "tenor-sax", "baritone-sax"),
    "brass": ("trumpet", "french-horn", "trombone", "tuba"),
    "bowed-strings": ("violin", "viola", "cello", "double-bass"),
    "plucked-strings": ("harp", "guitar", "electric-guitar", "bass-guitar", "banjo"),
    "keyboards": ("piano", "harpsichord", "organ", "accordion"),
    "pitched-percussion": ("celesta", "glockenspiel", "vibraphone", "marimba", "xylophone", "timpani"),
    "voice": ("choir",),
}

# Any GM program without a range of its own plays in the middle of the keyboard, C3-C6, where
# every General MIDI SoundFont has samples.
GENERIC_RANGE: tuple[int, int] = (48, 84)

# Other names users type -> canonical label. "bass" alone is left out on purpose: it could mean
# the double bass, a bass guitar or a synth bass.
DEFAULT_ALIASES: dict[str, str] = {
    "sax": "saxophone",
    "horn": "french-horn",
    "contrabass": "double-bass",
    "string-bass": "double-bass",
    "upright-bass": "double-bass",
    "cor-anglais": "english-horn",
    "bari-sax": "baritone-sax",
    "grand-piano": "piano",
    "vibes": "vibraphone",
    "glock": "glockenspiel",
    "choir-aahs": "choir",
    "voice": "choir",
    "chorus": "choir",
    "squeezebox": "accordion",
}

DEFAULT_INSTRUMENTS: tuple[str, ...] = ("flute", "viola", "cello", "oboe", "trumpet", "saxophone")

# The instruments that at least two sample libraries play with recordings of their own
# (benchmarks/results/sample_provenance.json; tonejs counted for the xylophone): the shipped model's
# vocabulary. Left out: marimba (one recording behind three GM libraries, none in freepats); the
# saxophones are one class, as in the tutorial. TimGM6mb's viola plays its violin's samples.
WIDE_VOCABULARY: tuple[str, ...] = (
    "piccolo", "flute", "recorder", "oboe", "english-horn", "clarinet", "bassoon", "saxophone",
    "trumpet", "french-horn", "trombone", "tuba",
    "violin", "viola", "cello", "double-bass",
    "harp", "guitar", "electric-guitar", "bass-guitar", "banjo",
    "piano", "harpsichord", "organ", "accordion",
    "celesta", "glockenspiel", "vibraphone", "xylophone", "timpani",
    "choir",
)

# Sharps are written "s" (As4 = A#4) as in the tutorial data's file names: "#" is awkward in
# file names and shell commands.
NOTE_NAMES: tuple[str, ...] = ("C", "Cs", "D", "Ds", "E", "F", "Fs", "G", "Gs", "A", "As", "B")
_PITCH_CLASS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_ACCIDENTAL = {"": 0, "s": 1, "#": 1, "\u266f": 1, "b": -1, "\u266d": -1}
_NOTE_RE = re.compile(r"^([A-Ga-g])(s|#|\u266f|b|\u266d)?(-?\d+)$")


@dataclass(frozen=True)
class Instrument:
    """An instrument to render: its label, the GM program that plays it and its pitch range.

    Attributes
    ----------
    label : str
        Canonical label, the file-name prefix (lowercase, words joined by ``-``).
    program : int
        General MIDI program number, 0-based (0-127).
    low, high : int
        Lowest and highest MIDI note (inclusive) that notes are drawn from.
    """

    label: str
    program: int
    low: int
    high: int

    @property
    def gm_name(self) -> str:
        """The General MIDI name of :attr:`program`, e.g. ``"alto-sax"`` for ``saxophone``."""
        return GM_PROGRAMS[self.program]


def normalise_label(name: str) -> str:
    """Lowercase ``name`` and join its words with ``-``.

    Parameters
    ----------
    name : str
        Any spelling: ``"French Horn"``, ``"french_horn"``, ``"Acoustic Guitar (nylon)"``.

    Returns
    -------
    str
        ``"french-horn"``, ``"acoustic-guitar-nylon"``: runs of anything but letters and digits
        (of any script: ``"Flûte"`` → ``"flûte"``, ``"クラリネット"`` stays) become one ``-``, so the
        result never contains ``_``.
    """
    if not isinstance(name, str):
        raise ParameterError(f"instrument name must be a string, got {name!r}")
    return re.sub(r"[\W_]+", "-", name.strip().lower()).strip("-")


def canonical_label(name: str, aliases: Mapping[str, str] | None = None) -> str:
    """The label a name stands for: normalised, then looked up in the aliases.

    Parameters
    ----------
    name : str
        An instrument name in any spelling (see :func:`normalise_label`).
    aliases : mapping, optional
        Alias -> label; ``None`` uses :data:`DEFAULT_ALIASES`, ``{}`` turns aliases off. Keys and
        values are normalised too.

    Returns
    -------
    str
        ``canonical_label("Sax") == "saxophone"``; an unknown name comes back normalised, not
        rejected (it may be a label of the user's own data set).
    """
    label = normalise_label(name)
    table = DEFAULT_ALIASES if aliases is None else aliases
    for alias, target in table.items():
        if normalise_label(alias) == label:
            return normalise_label(target)
    return label


def resolve_instrument(name: str) -> Instrument:
    """Turn a friendly label, GM program name or alias into an :class:`Instrument`.

    Parameters
    ----------
    name : str
        ``"flute"``, ``"French Horn"``, ``"sax"``, ``"Acoustic Guitar (nylon)"``, ...

    Returns
    -------
    Instrument
        Friendly labels get their real playing range; a GM name shares the range of a friendly
        label on the same program (``alto-sax`` plays like ``saxophone``) or else gets
        :data:`GENERIC_RANGE`.

    Raises
    ------
    ParameterError
        Unknown name; the message lists the closest known names.
    """
    label = canonical_label(name)
    if label in INSTRUMENTS:
        return Instrument(label, *INSTRUMENTS[label])
    if label in GM_PROGRAMS:
        program = GM_PROGRAMS.index(label)
        return Instrument(label, program, *_range_for_program(program))
    raise ParameterError(_unknown_instrument_message(name, label))


def family_of(label: str) -> str | None:
    """The family of an instrument in :data:`FAMILIES` (``"cello"`` -> ``"bowed-strings"``), by
    any name :func:`canonical_label` knows; None for a label outside the table (a user's own)."""
    label = canonical_label(label)
    for family, members in FAMILIES.items():
        if label in members:
            return family
    return None


def known_labels() -> list[str]:
    """Every name :func:`resolve_instrument` accepts, normalised (friendly, GM, aliases)."""
    names = dict.fromkeys([*INSTRUMENTS, *GM_PROGRAMS, *DEFAULT_ALIASES])
    return list(names)


def _range_for_program(program: int) -> tuple[int, int]:
    # Reuse a friendly entry's real range where one plays the same program.
    for prog, low, high in INSTRUMENTS.values():
        if prog == program:
            return low, high
    return GENERIC_RANGE


def _unknown_instrument_message(name: str, label: str) -> str:
    close = difflib.get_close_matches(label, known_labels(), n=5, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else (
        f"; use one of {', '.join(INSTRUMENTS)} or a General MIDI program name"
    )
    return f"unknown instrument {name!r}{hint}"


def note_name(midi: int) -> str:
    """The name of a MIDI note, sharps written ``s``: 60 -> ``"C4"``, 70 -> ``"As4"``.

    Parameters
    ----------
    midi : int
        MIDI note number 0-127 (C4 = 60, so 0 is ``"C-1"``).

    Raises
    ------
    ParameterError
        Not an integer in 0-127.
    """
    if isinstance(midi, bool) or not isinstance(midi, int) or not 0 <= midi <= 127:
        raise ParameterError(f"MIDI note must be an integer in 0..127, got {midi!r}")
    return f"{NOTE_NAMES[midi % 12]}{midi // 12 - 1}"


def parse_note_name(name: str) -> int:
    """The MIDI number of a note name: ``"As4"``, ``"A#4"`` and ``"Bb4"`` -> 70.

    Parameters
    ----------
    name : str
        Letter A-G (either case), optional accidental (``s``/``#`` sharp, ``b`` flat), octave
        (C4 = 60; may be ``-1``).

    Raises
    ------
    ParameterError
        Not a note name, or outside MIDI 0-127.
    """
    match = _NOTE_RE.match(name.strip()) if isinstance(name, str) else None
    if match is None:
        raise ParameterError(f"not a note name (like 'G5' or 'As4'): {name!r}")
    letter, accidental, octave = match.groups()
    midi = (int(octave) + 1) * 12 + _PITCH_CLASS[letter.upper()] + _ACCIDENTAL[accidental or ""]
    if not 0 <= midi <= 127:
        raise ParameterError(f"note {name!r} is outside MIDI 0..127")
    return midi
