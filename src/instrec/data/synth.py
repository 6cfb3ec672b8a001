"""The sample libraries clips are rendered from, and the synthesisers that play them.

Two kinds of General MIDI library: SoundFonts (``.sf2``/``.sf3``) played by FluidSynth through
pyfluidsynth, and GUS patch sets (a TiMidity++ ``.cfg``) played by the ``timidity`` program; and
libraries of recorded notes (:mod:`.samplers`: ``tonejs``, ``salamander``). All are opened with
:func:`open_library` and share one interface (``synth_for``, ``play``, ``close``), so rendering
does not care which kind it plays. Also here: the libraries instrec knows by name and
how a ``soundfont`` argument resolves to files.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import math
import os
import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf

from ..errors import ParameterError, RenderError
from .notes import Note
from .samplers import SAMPLER_NAMES, Sampler, installed_samplers, missing_message, samples_dir


class SoundFontInfo(NamedTuple):
    """Where Debian packages install a sample library, and the packages' names."""

    path: Path
    package: str

    def is_installed(self) -> bool:
        """The file is there and, for a TiMidity++ patch set (``.cfg``), so is ``timidity``."""
        return self.path.is_file() and (self.path.suffix.lower() != ".cfg" or shutil.which("timidity") is not None)


# The General MIDI sample libraries instrec knows by name (also the order of ``soundfont="all"``):
# three SoundFonts played by FluidSynth and Debian's freepats, GUS patches played by TiMidity++
# (recordings of their own, unrelated to the SoundFonts'; it has no viola).
SOUNDFONTS: dict[str, SoundFontInfo] = {
    "fluidr3": SoundFontInfo(Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"), "fluid-soundfont-gm"),
    "musescore": SoundFontInfo(Path("/usr/share/sounds/sf3/MuseScore_General.sf3"), "musescore-general-soundfont"),
    "timgm6mb": SoundFontInfo(Path("/usr/share/sounds/sf2/TimGM6mb.sf2"), "timgm6mb-soundfont"),
    "freepats": SoundFontInfo(Path("/etc/timidity/freepats.cfg"), "timidity freepats"),
}
FLUIDSYNTH_PACKAGES = "apt-get install fluidsynth libfluidsynth3"
TIMIDITY_PACKAGES = "apt-get install timidity freepats"

MAX_SYNTH_SR = 96000  # FluidSynth refuses higher rates; above it we resample with soxr
BLOCK = 64  # FluidSynth renders in blocks of 64 frames (FLUID_BUFSIZE) and starts notes on a block
DRUM_CHANNEL = 9  # General MIDI's channel 10, the percussion channel


# ---------------------------------------------------------------------------------------------
# which libraries


def installed_soundfonts() -> dict[str, Path]:
    """The known sample libraries that are installed, name -> path, in :data:`SOUNDFONTS` order."""
    return {name: info.path for name, info in SOUNDFONTS.items() if info.is_installed()}


def resolve_soundfonts(soundfont) -> dict[str, Path]:
    """Source name -> SoundFont file for a ``soundfont`` argument of :func:`~instrec.data.render.render`.

    Raises
    ------
    ParameterError
        Unknown name, or a file that is not ``.sf2``/``.sf3``.
    RenderError
        The SoundFont file is missing (the message names the package that installs it).
    """
    return select_soundfonts(soundfont)[0]


# ``all``: every General MIDI library installed; ``everything``: those and the recorded-note
# libraries (:mod:`.samplers`). ``all`` stays the four GM libraries, so that renders, benchmarks
# and the shipped model made with it do not change when the sampler packages are installed.
EVERYTHING = "everything"


def is_all(soundfont) -> bool:
    """``soundfont`` asks for every installed library (each then renders into a folder of its own)."""
    return isinstance(soundfont, str) and soundfont.strip().lower() in ("all", EVERYTHING)


def is_library_folder(soundfont) -> bool:
    """``soundfont`` is a folder (of sampler packages), not a file or a name."""
    return isinstance(soundfont, (str, os.PathLike)) and Path(soundfont).is_dir() and (
        not isinstance(soundfont, str) or _looks_like_path(soundfont))


def select_soundfonts(soundfont) -> tuple[dict[str, Path], list[tuple[str, str]]]:
    """Resolve the argument to sources; for ``all`` also list the missing ones as skipped."""
    if not isinstance(soundfont, (str, os.PathLike)):
        raise ParameterError(f"soundfont must be a name or a path to an .sf2/.sf3 file, got {soundfont!r}")
    if is_all(soundfont):
        return _all_soundfonts(soundfont.strip().lower() == EVERYTHING)
    if isinstance(soundfont, str) and "," in soundfont:  # several libraries: "fluidr3,freepats,tonejs"
        fonts, missing = {}, []
        for name in (s.strip() for s in soundfont.split(",")):
            if name:
                found, lost = select_soundfonts(name)
                fonts.update(found)
                missing += lost
        if not fonts:
            raise ParameterError(f"soundfont {soundfont!r} names no library")
        return fonts, missing
    if isinstance(soundfont, str) and not _looks_like_path(soundfont):
        name = _known_name(soundfont)
        if name in SAMPLER_NAMES:
            if name not in installed_samplers():
                raise RenderError(missing_message(name))
            return {name: samples_dir()}, []
        return {name: _known_path(name)}, []
    if is_library_folder(soundfont):
        found = installed_samplers(soundfont)
        if not found:
            raise RenderError(f"{soundfont}: no sampler package found there (npm packages of "
                              f"{', '.join(SAMPLER_NAMES)}, in node_modules/ or the folder itself)")
        return found, []
    return dict([_soundfont_file(Path(soundfont))]), []


def _all_soundfonts(everything: bool = False) -> tuple[dict[str, Path], list[tuple[str, str]]]:
    fonts = installed_soundfonts()
    missing = [(name, _missing_message(name)) for name in SOUNDFONTS if name not in fonts]
    if everything:
        samplers = installed_samplers()
        fonts.update(samplers)
        missing += [(name, missing_message(name)) for name in SAMPLER_NAMES if name not in samplers]
    if not fonts:
        packages = " ".join(info.package for info in SOUNDFONTS.values())
        raise RenderError(f"no SoundFont installed for soundfont='all': apt-get install {packages}")
    return fonts, missing


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or Path(text).suffix.lower() in (".sf2", ".sf3", ".cfg")


def _known_name(name: str) -> str:
    key = name.strip().lower()
    if key not in SOUNDFONTS and key not in SAMPLER_NAMES:
        valid = ", ".join([*SOUNDFONTS, "all", *SAMPLER_NAMES, EVERYTHING])
        raise ParameterError(f"unknown soundfont {name!r}: use one of {valid}, a path to an .sf2/.sf3/.cfg file "
                             "or a folder of sampler packages")
    return key


def _known_path(name: str) -> Path:
    info = SOUNDFONTS[name]
    if not info.is_installed():
        raise RenderError(_missing_message(name))
    return info.path


def _missing_message(name: str) -> str:
    info = SOUNDFONTS[name]
    if info.path.is_file():  # a patch set whose player is missing
        return f"sample library {name!r} needs TiMidity++: apt-get install {info.package}"
    return f"SoundFont {name!r} not found at {info.path}: apt-get install {info.package}"


def _soundfont_file(path: Path) -> tuple[str, Path]:
    """Source name and path of a SoundFont given as a file."""
    if path.suffix.lower() not in (".sf2", ".sf3", ".cfg"):
        raise ParameterError(f"soundfont must be a known name, an .sf2/.sf3 file or a TiMidity++ .cfg, got {str(path)!r}")
    if not path.is_file():
        raise RenderError(f"soundfont file not found: {path}")
    for name, info in SOUNDFONTS.items():  # a known file keeps its short name
        if info.path.is_file() and info.path.resolve() == path.resolve():
            return name, path
    # '_' separates the fields of a file name, so it must not appear in the source.
    source = re.sub(r"[^a-z0-9]+", "-", path.stem.lower()).strip("-") or "soundfont"
    return source, path


def needs_fluidsynth(path: Path) -> bool:
    """The library at ``path`` is a SoundFont, played by FluidSynth."""
    return Path(path).suffix.lower() in (".sf2", ".sf3")


def open_library(fluidsynth, source: str, path: Path, sr: int) -> "SoundFont | PatchSet | Sampler":
    """A player of the library at ``path``: a :class:`~.samplers.Sampler` for a folder of sampler
    packages, TiMidity++ for a ``.cfg`` patch set, else FluidSynth (``fluidsynth``: the module).

    It synthesises at ``sr`` capped at MAX_SYNTH_SR (its ``synth_sr``); the caller resamples.
    A sampler plays at ``sr`` itself.
    """
    if Path(path).is_dir():
        return Sampler(source, path, sr)
    synth_sr = min(sr, MAX_SYNTH_SR)
    if path.suffix.lower() == ".cfg":
        return PatchSet(source, path, synth_sr)
    return SoundFont(fluidsynth, source, path, synth_sr)


# ---------------------------------------------------------------------------------------------
# FluidSynth


def import_fluidsynth():
    """The ``fluidsynth`` module (pyfluidsynth), or a RenderError saying what to install."""
    try:
        # pyfluidsynth prints where it found the library when the CI variable is set; that
        # line must not end up in stdout, which carries reports and JSON.
        with contextlib.redirect_stdout(io.StringIO()):
            import fluidsynth
    except (ImportError, OSError) as exc:  # OSError: libfluidsynth found but cannot be loaded
        raise RenderError(
            f"FluidSynth is not available ({exc}): {FLUIDSYNTH_PACKAGES} (and pip install pyfluidsynth)"
        ) from exc
    return fluidsynth


def _write_float_function(fluidsynth):
    """ctypes binding of ``fluid_synth_write_float``, which pyfluidsynth does not wrap.

    pyfluidsynth only offers 16-bit output, which FluidSynth dithers and clips; float output
    keeps the full resolution and lets us normalise without clipping.
    """
    lib = getattr(fluidsynth, "_fl", None) or ctypes.CDLL(fluidsynth.find_libfluidsynth())
    func = lib.fluid_synth_write_float
    func.argtypes = [ctypes.c_void_p, ctypes.c_int] + [ctypes.c_void_p, ctypes.c_int, ctypes.c_int] * 2
    func.restype = ctypes.c_int
    return func


def _whole_blocks(frames: int) -> int:
    """``frames`` rounded up to whole FluidSynth blocks (at least one)."""
    return max(1, math.ceil(frames / BLOCK)) * BLOCK


class SoundFont:
    """One SoundFont loaded once, and fresh synthesizers that play it.

    FluidSynth carries a little state from one note into the next: the first 64-frame block of
    a note differs slightly (up to about 1e-3) depending on what its voice played before, even
    after all sounds off. One synth shared by all instruments would thus make an instrument's
    files depend on which instruments came before. Each instrument
    therefore gets a new synth. Loading is cheap: a synth reads only the samples of the presets it
    selects (dynamic sample loading), and ``self._holder`` keeps the SoundFont's structure open
    for :meth:`has_program`.
    """

    def __init__(self, fluidsynth, source: str, path: Path, synth_sr: int):
        self._fs = fluidsynth
        self._write_float = _write_float_function(fluidsynth)
        self.source, self.path, self.synth_sr = source, path, synth_sr
        self._holder, self._sfid = self._load()

    def close(self) -> None:
        self._holder.delete()

    def has_program(self, program: int, bank: int = 0) -> bool:
        """The SoundFont has a preset for ``program`` in ``bank`` (128: the drum kits)."""
        return self._holder.sfpreset_name(self._sfid, bank, program) is not None

    def _load(self):
        # Dry output: reverb and chorus would smear the note and add a tail no clip length fits.
        # Gain 1.0: float output is not clipped, and render.SILENT_PEAK is then plain dBFS.
        # Samples loaded as a preset is chosen, not the whole file at once: MuseScore General's
        # Ogg-compressed samples took 14 s to decode for every render (2026-12-07, AMD EPYC).
        settings = {"synth.reverb.active": 0, "synth.chorus.active": 0, "synth.dynamic-sample-loading": 1}
        synth = self._fs.Synth(gain=1.0, samplerate=float(self.synth_sr), **settings)
        if synth.get_setting("synth.sample-rate") != float(self.synth_sr):
            synth.delete()
            raise RenderError(f"FluidSynth cannot render at {self.synth_sr} Hz")
        sfid = synth.sfload(str(self.path))
        if sfid < 0:
            synth.delete()
            raise RenderError(f"FluidSynth cannot load SoundFont {self.path} (source {self.source!r})")
        return synth, sfid

    def synth_for(self, program: int):
        """A fresh synth with ``program`` on channel 0, or None where the SoundFont lacks it."""
        synth, sfid = self._load()
        if synth.sfpreset_name(sfid, 0, program) is None or synth.program_select(0, sfid, 0, program) != 0:
            synth.delete()
            return None
        return synth

    def play(self, synth, note: Note, n_samples: int) -> np.ndarray:
        """Hold ``note`` for its duration, release it, and return ``n_samples`` mono samples."""
        total = _whole_blocks(n_samples)
        hold = min(_whole_blocks(round(note.duration * self.synth_sr)), total)
        synth.noteon(0, note.pitch, note.velocity)
        parts = [self._write(synth, hold)]
        synth.noteoff(0, note.pitch)
        if total > hold:
            parts.append(self._write(synth, total - hold))
        self._silence(synth)
        return np.concatenate(parts)[:n_samples]

    def drum_synth(self, kit: int):
        """A fresh synth with drum kit ``kit`` (bank 128) on the percussion channel (9), or None."""
        synth, sfid = self._load()
        if synth.sfpreset_name(sfid, 128, kit) is None or synth.program_select(DRUM_CHANNEL, sfid, 128, kit) != 0:
            synth.delete()
            return None
        return synth

    def play_hits(self, synth, hits: list[tuple[float, int, int]], n_samples: int) -> np.ndarray:
        """Strike percussion keys on the drum channel: ``hits`` are (seconds, key, velocity), each
        started on the FluidSynth block at or after its time and left to ring out (drum samples end
        by themselves). Returns ``n_samples`` mono samples."""
        total, parts, at = _whole_blocks(n_samples), [], 0
        for seconds, key, velocity in sorted(hits):
            frame = min(_whole_blocks(round(seconds * self.synth_sr)) if seconds > 0 else 0, total)
            if frame > at:
                parts.append(self._write(synth, frame - at))
                at = frame
            if at < total:
                synth.noteon(DRUM_CHANNEL, key, velocity)
        if total > at:
            parts.append(self._write(synth, total - at))
        self._silence(synth, DRUM_CHANNEL)
        return np.concatenate(parts)[:n_samples]

    def _write(self, synth, frames: int) -> np.ndarray:
        # Whole blocks only, so every note starts on a block boundary, i.e. at sample 0.
        buf = np.zeros(2 * frames, dtype=np.float32)
        ptr = buf.ctypes.data
        if self._write_float(synth.synth, frames, ptr, 0, 2, ptr, 1, 2) != 0:
            raise RenderError(f"FluidSynth failed to render ({self.source})")
        stereo = buf.reshape(-1, 2)
        return (stereo[:, 0] + stereo[:, 1]) * np.float32(0.5)

    def _silence(self, synth, channel: int = 0) -> None:
        """Cut every voice so nothing of this note sounds in the next clip."""
        synth.all_sounds_off(channel)
        for _ in range(1000):  # voices end at the next block; the bound is only a safety net
            if synth.get_active_voice_count() == 0:
                return
            self._write(synth, BLOCK)
        raise RenderError(f"FluidSynth voices do not stop ({self.source})")


# ---------------------------------------------------------------------------------------------
# TiMidity++


class PatchSet:
    """A set of GUS patches (``.pat``) played by TiMidity++: another kind of sample library.

    Debian's ``freepats`` is one: sample recordings of its own, unrelated to the SoundFonts, so a
    fourth "recording source" (it has no viola). ``path`` is a TiMidity++ configuration file such
    as ``/etc/timidity/freepats.cfg``. Each clip is a one-note MIDI file rendered by the
    ``timidity`` program, dry (no reverb or chorus), mono, at the clip's rate; the same interface
    as :class:`SoundFont`, so the rest of rendering is shared.
    """

    def __init__(self, source: str, path: Path, synth_sr: int):
        self.source, self.path, self.synth_sr = source, path, synth_sr
        self._timidity = shutil.which("timidity")
        if self._timidity is None:
            raise RenderError(f"TiMidity++ is not installed, needed for {path}: {TIMIDITY_PACKAGES}")
        self._programs = _patch_programs(path)

    def close(self) -> None:
        pass

    def has_program(self, program: int) -> bool:
        """The patch set maps ``program`` (bank 0) to a patch."""
        return program in self._programs

    def synth_for(self, program: int):
        """A player of ``program``, or None where the patch set lacks it."""
        return PatchPlayer(program) if program in self._programs else None

    def play(self, synth: "PatchPlayer", note: Note, n_samples: int) -> np.ndarray:
        """``note`` held for its duration, then released: ``n_samples`` mono samples."""
        tail = max(0.0, n_samples / self.synth_sr - note.duration) + 0.1
        with tempfile.TemporaryDirectory(prefix="instrec-timidity-") as tmp:
            mid, wav = os.path.join(tmp, "note.mid"), os.path.join(tmp, "note.wav")
            with open(mid, "wb") as fh:
                fh.write(_one_note_midi(synth.program, note.pitch, note.velocity, note.duration, tail))
            cmd = [self._timidity, "-c", str(self.path), "-Ow", "--output-mono", "--output-24bit",
                   "-s", str(self.synth_sr), "-EFreverb=d", "-EFchorus=d", "-idq", "-o", wav, mid]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            if done.returncode != 0 or not os.path.isfile(wav):
                raise RenderError(f"timidity failed on {self.source}: {(done.stderr or done.stdout).strip()[:200]}")
            y, sr = sf.read(wav, dtype="float32", always_2d=True)
        if sr != self.synth_sr:
            raise RenderError(f"timidity rendered at {sr} Hz, not {self.synth_sr} ({self.source})")
        y = y.mean(axis=1)
        return np.pad(y, (0, max(0, n_samples - len(y))))[:n_samples]


@dataclass(frozen=True)
class PatchPlayer:
    """What :meth:`PatchSet.synth_for` hands out: the program to play (nothing to free)."""

    program: int

    def delete(self) -> None:
        pass


def _patch_programs(path: Path) -> set[int]:
    """The General MIDI programs of bank 0 that a TiMidity++ configuration maps to a patch."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise RenderError(f"cannot read TiMidity++ configuration {path}: {exc}") from exc
    programs, in_bank0 = set(), False
    for line in lines:
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if words[0] in ("bank", "drumset"):
            in_bank0 = words[0] == "bank" and len(words) > 1 and words[1] == "0"
        elif in_bank0 and words[0].isdigit() and len(words) > 1:
            programs.add(int(words[0]))
    if not programs:
        raise RenderError(f"{path} maps no instrument of bank 0: not a TiMidity++ patch set")
    return programs


def _one_note_midi(program: int, pitch: int, velocity: int, held: float, tail: float) -> bytes:
    """A standard MIDI file (format 0, 960 ticks a second): ``program``, one note held ``held``
    seconds, then ``tail`` seconds for its release."""

    def vlq(n: int) -> bytes:
        out = [n & 0x7F]
        n >>= 7
        while n:
            out.append(0x80 | (n & 0x7F))
            n >>= 7
        return bytes(reversed(out))

    track = (b"\x00" + bytes([0xC0, program]) + b"\x00" + bytes([0x90, pitch, velocity])
             + vlq(round(held * 960)) + bytes([0x80, pitch, 0]) + vlq(round(tail * 960)) + b"\xff\x2f\x00")
    # 480 ticks a quarter note at the default tempo (120 bpm) is 960 ticks a second
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480) + b"MTrk" + struct.pack(">I", len(track)) + track

