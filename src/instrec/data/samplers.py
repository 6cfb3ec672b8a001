"""Sample libraries of real recordings, one file per note, played like a SoundFont.

Two libraries come as npm packages (``samples/package.json`` pins them; ``./run`` installs them
into ``.samples/`` or ``$INSTREC_SAMPLES``):

- ``tonejs``: the ``tonejs-instrument-<name>-{wav,mp3}`` packages of tonejs-instruments (samples
  from VSCO-2, Karoryfer, the University of Iowa and Freesound; ``samples/CREDITS.md``), one
  recording per note for every few notes, files named by note (``As2.wav``).
- ``salamander``: the Salamander Grand Piano V3 (``@audio-samples/piano-mp3-velocity<k>``: one
  package per velocity layer, ``audio/D#4v8.mp3``), every third semitone.

:class:`Sampler` has the interface of :class:`~.synth.SoundFont` (``synth_for``, ``play``,
``close``, ``source``, ``synth_sr``), so :mod:`.render` renders it the same way. Playing a note:
the nearest recorded note (at most :data:`MAX_SHIFT` semitones away; none nearer: silence, and
render draws another pitch), resampled by the ratio ``2 ** (semitones / 12)`` (pitch and speed
change together, as in any sampler without time-stretching), the velocity as a gain and, for a
library with one dynamic, a low-pass whose cutoff falls with the velocity (soft notes are darker);
a library with velocity layers (Salamander) plays the layer nearest the velocity instead. The
note sounds for its held length, then fades out over :data:`RELEASE_SECONDS`. A recording shorter
than that is not looped (no loop points are known, and a loop without them clicks): the note ends
with the recording, faded over the last :data:`END_FADE_SECONDS`.
"""

from __future__ import annotations

import math
import os
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..audio import load as load_audio
from ..errors import AudioError, RenderError
from .instruments import parse_note_name
from .notes import Note

SAMPLES_ENV = "INSTREC_SAMPLES"
MAX_SHIFT = 7  # semitones a recording is shifted at most; farther notes are not played
RELEASE_SECONDS = 0.2  # fade after the note-off
END_FADE_SECONDS = 0.01  # fade where a recording ends before the note does
CACHE_BYTES = 256 * 2**20  # decoded recordings kept per process

# tonejs-instruments package -> the General MIDI programs it plays (the first one is its label's).
# guitar-acoustic is a steel-string guitar: it plays "guitar" (24, nylon) beside guitar-nylon, as
# the classical guitar label stands for acoustic guitars here, and "acoustic-guitar-steel" (25).
# The harmonium is a reed organ: General MIDI's Reed Organ (20), not the church organ (19, what
# the "organ" label plays) nor the accordion (21).
TONEJS: dict[str, tuple[int, ...]] = {
    "bass-electric": (33,),  # bass-guitar
    "bassoon": (70,),
    "cello": (42,),
    "clarinet": (71,),
    "contrabass": (43,),  # double-bass
    "flute": (73,),
    "french-horn": (60,),
    "guitar-acoustic": (24, 25),  # guitar, acoustic-guitar-steel
    "guitar-electric": (27,),  # electric-guitar
    "guitar-nylon": (24,),  # guitar
    "harmonium": (20,),  # reed-organ
    "harp": (46,),
    "organ": (19,),
    "piano": (0,),
    "saxophone": (65,),
    "trombone": (57,),
    "trumpet": (56,),
    "tuba": (58,),
    "violin": (40,),
    "xylophone": (13,),
}
SALAMANDER_LAYERS = range(1, 17)  # @audio-samples/piano-mp3-velocity1 .. velocity16
SAMPLER_NAMES = ("tonejs", "salamander")

_NOTE_FILE = re.compile(r"^([A-Ga-g](?:s|#|b)?-?\d)(?:v(\d+))?\.(wav|mp3|flac|ogg)$")


# ---------------------------------------------------------------------------------------------
# where the packages are


def samples_dir(folder: str | os.PathLike | None = None) -> Path:
    """The folder the sampler packages are installed in.

    ``folder`` when given, else ``$INSTREC_SAMPLES``, else ``.samples`` in the repository (the
    folder above ``src/``), where ``./run`` installs them.
    """
    if folder is not None:
        return Path(folder)
    if os.environ.get(SAMPLES_ENV):
        return Path(os.environ[SAMPLES_ENV])
    return Path(__file__).resolve().parents[3] / ".samples"


def _package_dir(root: Path, name: str) -> Path | None:
    """Where npm put package ``name`` under ``root`` (``root/node_modules/name`` or ``root/name``)."""
    for base in (root / "node_modules", root):
        if (base / name / "package.json").is_file():
            return base / name
    return None


@dataclass
class Bank:
    """One package's recordings: MIDI pitch -> file; ``layer`` its velocity layer (0: only one)."""

    name: str
    notes: dict[int, Path]
    layer: int = 0


def find_banks(source: str, root: str | os.PathLike | None = None) -> dict[int, list[Bank]]:
    """General MIDI program -> the installed banks of library ``source`` that play it."""
    root = samples_dir(root)
    banks: dict[int, list[Bank]] = {}
    if source == "tonejs":
        for stem, programs in TONEJS.items():
            for ext in ("wav", "mp3"):  # the lossless package where both are there
                folder = _package_dir(root, f"tonejs-instrument-{stem}-{ext}")
                if folder is not None:
                    bank = Bank(stem, _note_files(folder))
                    if bank.notes:
                        for program in programs:
                            banks.setdefault(program, []).append(bank)
                    break
    elif source == "salamander":
        for layer in SALAMANDER_LAYERS:
            folder = _package_dir(root, f"@audio-samples/piano-mp3-velocity{layer}")
            if folder is not None and (notes := _note_files(folder / "audio")):
                banks.setdefault(0, []).append(Bank(f"salamander-v{layer}", notes, layer))
    else:
        raise RenderError(f"unknown sampler library {source!r}: use one of {', '.join(SAMPLER_NAMES)}")
    return banks


def _note_files(folder: Path) -> dict[int, Path]:
    """Pitch -> file for the files of ``folder`` named by a note (``As2.wav``, ``D#4v8.mp3``);
    other files (``F2 v2.wav``, an alternative take) are left out."""
    out: dict[int, Path] = {}
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            match = _NOTE_FILE.match(path.name)
            if match:
                out.setdefault(parse_note_name(match.group(1)), path)
    return out


def installed_samplers(root: str | os.PathLike | None = None) -> dict[str, Path]:
    """The sampler libraries with at least one package installed under ``root``: name -> root."""
    folder = samples_dir(root)
    return {name: folder for name in SAMPLER_NAMES if find_banks(name, folder)}


def missing_message(name: str, root: str | os.PathLike | None = None) -> str:
    """Why library ``name`` cannot be played, and how to install it."""
    return (f"sample library {name!r} is not installed in {samples_dir(root)}: run ./run setup "
            f"(npm ci of samples/package.json there) or set {SAMPLES_ENV} to the folder holding node_modules")


# ---------------------------------------------------------------------------------------------
# decoded recordings, cached per process


class _Cache:
    """Decoded recordings (float32 mono at the file's rate), the least recently used dropped first
    once they pass ``limit`` bytes."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0
        self.items: OrderedDict[Path, tuple[np.ndarray, int]] = OrderedDict()

    def get(self, path: Path) -> tuple[np.ndarray, int]:
        if path in self.items:
            self.items.move_to_end(path)
            return self.items[path]
        y, sr = _decode(path)
        self.items[path] = (y, sr)
        self.used += y.nbytes
        while self.used > self.limit and len(self.items) > 1:
            _, (old, _) = self.items.popitem(last=False)
            self.used -= old.nbytes
        return y, sr


def _decode(path: Path) -> tuple[np.ndarray, int]:
    """One recording, mono float32 at its own rate; a bad file is a RenderError naming it."""
    try:
        y, sr = load_audio(path, sr=None, mono=True, max_duration=120.0)
    except AudioError as e:
        raise RenderError(f"sample file {e.path}: {e.problem}") from None
    return np.ascontiguousarray(y, dtype=np.float32), int(sr)


_CACHE = _Cache(CACHE_BYTES)


# ---------------------------------------------------------------------------------------------
# playing


@dataclass
class SamplerVoice:
    """What :meth:`Sampler.synth_for` hands out: the banks of one program. Banks without velocity
    layers (tonejs guitar: nylon and steel) take turns, note by note."""

    program: int
    banks: list[Bank]
    turn: int = field(default=0)

    def delete(self) -> None:
        pass


class Sampler:
    """A library of recorded notes (``tonejs`` or ``salamander``), played like a SoundFont.

    Parameters
    ----------
    source : str
        ``"tonejs"`` or ``"salamander"``: the library, and the source name clips get.
    root : path, optional
        Folder holding the npm packages (``node_modules`` in it); default :func:`samples_dir`.
    synth_sr : int
        Rate of the samples :meth:`play` returns (any rate: the recordings are resampled).
    """

    def __init__(self, source: str, root: str | os.PathLike | None = None, synth_sr: int = 22050):
        self.source, self.path, self.synth_sr = source, samples_dir(root), int(synth_sr)
        self._banks = find_banks(source, self.path)
        if not self._banks:
            raise RenderError(missing_message(source, self.path))

    def close(self) -> None:
        pass

    @property
    def programs(self) -> list[int]:
        """The General MIDI programs the installed packages play."""
        return sorted(self._banks)

    def has_program(self, program: int) -> bool:
        """An installed package plays ``program``."""
        return program in self._banks

    def synth_for(self, program: int) -> SamplerVoice | None:
        """A player of ``program``, or None where no installed package plays it."""
        banks = self._banks.get(program)
        return SamplerVoice(program, list(banks)) if banks else None

    def play(self, synth: SamplerVoice, note: Note, n_samples: int) -> np.ndarray:
        """Play ``note`` (held ``note.duration`` s, then released): ``n_samples`` mono float32 samples.

        Silence (all zeros) where no recording lies within :data:`MAX_SHIFT` semitones of the pitch.

        Raises
        ------
        RenderError
            A recording cannot be decoded (the message names the file).
        """
        bank = _choose_bank(synth, note.velocity)
        recorded = nearest_recording(bank.notes, note.pitch)
        out = np.zeros(n_samples, dtype=np.float32)
        if recorded is None or n_samples == 0:
            return out
        y, file_sr = _CACHE.get(bank.notes[recorded])
        release = round(RELEASE_SECONDS * self.synth_sr)
        hold = round(note.duration * self.synth_sr)
        n_out = min(n_samples, hold + release)
        z = shift(y, file_sr, self.synth_sr, note.pitch - recorded, n_out)
        if not bank.layer:
            z = darken(z, self.synth_sr, note.velocity)
        z = z * np.float32(velocity_gain(note.velocity))
        if hold < len(z):  # the note-off: a half-cosine release (cut where the clip or recording ends)
            fall = 0.5 * (1.0 + np.cos(np.linspace(0.0, np.pi, release, dtype=np.float32)))
            z[hold:] *= fall[: len(z) - hold]
        if len(z) < n_out:  # the recording ended first: fade its last moment rather than click
            _fade_out(z, round(END_FADE_SECONDS * self.synth_sr))
        out[: len(z)] = z
        return out


def nearest_recording(pitches, pitch: int) -> int | None:
    """The recorded pitch to play ``pitch`` from: the nearest (a tie: the lower one, shifted up),
    None where it is more than :data:`MAX_SHIFT` semitones away."""
    recorded = min(pitches, key=lambda p: (abs(p - pitch), p))
    return recorded if abs(recorded - pitch) <= MAX_SHIFT else None


def _choose_bank(voice: SamplerVoice, velocity: int) -> Bank:
    layered = [b for b in voice.banks if b.layer]
    if layered:  # the velocity layer nearest the velocity (layers 1-16 spread over 1-127)
        target = velocity / 127 * len(SALAMANDER_LAYERS)
        return min(layered, key=lambda b: (abs(b.layer - target), b.layer))
    bank = voice.banks[voice.turn % len(voice.banks)]
    voice.turn += 1
    return bank


def shift(y: np.ndarray, file_sr: int, sr: int, semitones: int, n_out: int) -> np.ndarray:
    """The first ``n_out`` samples (fewer where the recording ends) of ``y`` played ``semitones``
    higher at rate ``sr``: resampled by ``2 ** (semitones / 12) * file_sr / sr`` with soxr."""
    import soxr

    ratio = 2.0 ** (semitones / 12)
    step = file_sr * ratio / sr  # input samples per output sample
    need = min(len(y), math.ceil(n_out * step) + 256)  # a margin for the filter's delay
    if ratio == 1.0 and file_sr == sr:
        return y[:n_out].astype(np.float32)
    z = soxr.resample(y[:need].astype(np.float64), file_sr * ratio, sr)
    whole = math.floor(len(y) / step)  # output samples the whole recording makes
    return z[: min(n_out, whole, len(z))].astype(np.float32)


def velocity_gain(velocity: int) -> float:
    """Gain of a MIDI velocity: ``(velocity / 127) ** 2`` (velocity 20: -32 dB)."""
    return (max(1, min(127, velocity)) / 127) ** 2


def darken(z: np.ndarray, sr: int, velocity: int) -> np.ndarray:
    """A one-pole low-pass whose cutoff falls with the velocity: 16 kHz at 127, 2.8 kHz at 20
    (3 octaves lower at velocity 0); none where the cutoff passes 0.45 ``sr``."""
    from scipy.signal import lfilter

    cutoff = 16000.0 * 2.0 ** (-3.0 * (1.0 - max(0, min(127, velocity)) / 127))
    if cutoff >= 0.45 * sr or len(z) == 0:
        return z
    a = math.exp(-2.0 * math.pi * cutoff / sr)
    return lfilter([1.0 - a], [1.0, -a], z).astype(np.float32)


def _fade_out(z: np.ndarray, n: int) -> None:
    """Half-cosine fade over the last ``n`` samples of ``z`` (in place)."""
    n = min(n, len(z))
    if n > 0:
        z[-n:] *= (0.5 * (1.0 + np.cos(np.linspace(0.0, np.pi, n)))).astype(z.dtype)

