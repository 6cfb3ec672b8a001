"""Render labelled single-note clips with FluidSynth from General MIDI SoundFonts.

Each clip is one note of one instrument: a random pitch inside the instrument's playing range, a
random dynamic (velocity) and a random held length, followed by the note's release, cut to a
fixed clip length. Files are named like the tutorial data (``flute_G5_1.5_forte_fluidr3_017.wav``:
label, note, held seconds, dynamic, source, index) and listed in a ``manifest.csv``.

Determinism: the same arguments and seed give byte-identical files. The random draws of one
instrument come from a generator seeded by (seed, source, label), and each instrument is rendered
by a synthesizer of its own, so adding or removing an instrument changes no other instrument's
files (FluidSynth keeps a little state from one note to the next, see :class:`_SoundFont`).
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import io
import json
import math
import os
import re
import time
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, NamedTuple

import numpy as np
import soundfile as sf

from ..errors import ParameterError, RenderError
from ..fileio import atomic_path, write_json
from .instruments import DEFAULT_INSTRUMENTS, Instrument, note_name, resolve_instrument


class SoundFontInfo(NamedTuple):
    """Where Debian packages install a sample library, and the packages' names."""

    path: Path
    package: str

    def is_installed(self) -> bool:
        """The file is there and, for a TiMidity++ patch set (``.cfg``), so is ``timidity``."""
        import shutil

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

FORMATS: dict[str, tuple[str, str]] = {  # fmt -> (libsndfile format, subtype)
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)  # what MPEG audio allows

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

# Bump when the same arguments render different audio. A folder's stamp (STAMP_NAME) records it,
# so that clips an older instrec left there are never taken for this one's when a run resumes.
RENDER_VERSION = 1
STAMP_NAME = ".instrec-render.json"

MANIFEST_NAME = "manifest.csv"
MANIFEST_COLUMNS = ("path", "label", "source", "pitch", "note", "velocity", "dynamic", "duration", "seconds", "sr")

MIN_SECONDS, MAX_SECONDS = 0.05, 60.0
MIN_SR, MAX_SR = 8000, 192000
MAX_SYNTH_SR = 96000  # FluidSynth refuses higher rates; above it we resample with soxr
BLOCK = 64  # FluidSynth renders in blocks of 64 frames (FLUID_BUFSIZE) and starts notes on a block
DURATION_STEP = 0.05  # held lengths are rounded to this, so file names stay short
RELEASE_ROOM = 0.5  # seconds left after the note-off for the release, when the clip allows it
MIN_HOLD = 0.25
SILENT_PEAK = 1e-4  # -80 dBFS at gain 1.0; real notes at velocity 20 peak above 5e-4
PEAK = 0.7  # -3 dBFS after normalising: headroom for the mp3 encoder's overshoot
FADE_SECONDS = 0.01  # fade at the cut: a tail cut mid-wave clicks, and real recordings do not
MAX_TRIES = 20  # pitches tried for one clip before the instrument counts as missing

Progress = Callable[[int, int], None]


@dataclass
class RenderReport:
    """What :func:`render` wrote.

    Attributes
    ----------
    out_dir : Path
        The folder given to :func:`render`.
    n_written : int
        Audio files written.
    n_reused : int
        Clips a previous, interrupted run of the same render had already written (kept as they are).
    per_class : dict
        Label -> files written, summed over sources.
    sources : list of str
        Sources (SoundFonts) rendered from.
    manifests : list of Path
        Every ``manifest.csv`` written (per source folder, then the top-level one for ``all``).
    skipped : list of (name, reason)
        What could not be rendered: an instrument a SoundFont lacks, a SoundFont that ``all``
        found missing.
    retried : int
        Notes that came out silent and were drawn again at another pitch.
    elapsed : float
        Seconds the whole render took.
    """

    out_dir: Path
    n_written: int = 0
    n_reused: int = 0
    per_class: dict[str, int] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    manifests: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    retried: int = 0
    elapsed: float = 0.0


@dataclass(frozen=True)
class _Settings:
    """The validated scalar arguments of one render."""

    per_class: int
    seconds: float
    sr: int
    fmt: str
    seed: int
    reuse: bool = True  # keep complete clips an interrupted run of this same render left

    @property
    def n_samples(self) -> int:
        return round(self.seconds * self.sr)


@dataclass(frozen=True)
class _Note:
    """The random draws of one clip."""

    pitch: int
    velocity: int
    dynamic: str
    duration: float  # held seconds, before the note-off


def render(
    out_dir,
    *,
    soundfont: str = "fluidr3",
    instruments: Iterable[str] | str = DEFAULT_INSTRUMENTS,
    per_class: int = 100,
    seconds: float = 3.0,
    sr: int = 22050,
    fmt: str = "wav",
    seed: int = 0,
    progress: Progress | None = None,
) -> RenderReport:
    """Render ``per_class`` one-note clips of each instrument from one or all SoundFonts.

    Parameters
    ----------
    out_dir : path
        Folder for the clips and ``manifest.csv`` (created). With ``soundfont="all"`` each source
        gets a sub-folder ``out_dir/<source>/`` and ``out_dir/manifest.csv`` lists every clip.
    soundfont : str or path
        ``"fluidr3"``, ``"musescore"``, ``"timgm6mb"``, ``"freepats"``, ``"all"`` (every one of
        those installed) or a path to an ``.sf2``/``.sf3`` file or a TiMidity++ ``.cfg`` (source
        name: its lowercased stem).
    instruments : iterable of str
        Friendly labels, General MIDI names or aliases (see
        :func:`~instrec.data.instruments.resolve_instrument`).
    per_class : int
        Clips per instrument and source, >= 1.
    seconds : float
        Clip length, 0.05-60 s; every file has exactly ``round(seconds * sr)`` samples.
    sr : int
        Sampling rate, 8000-192000 Hz (mp3: one of the MPEG rates up to 48000).
    fmt : str
        ``"wav"`` (16-bit PCM), ``"flac"`` or ``"mp3"``.
    seed : int
        Same seed, same files.
    progress : callable, optional
        ``progress(done, total)``, called after each clip.

    Returns
    -------
    RenderReport

    Raises
    ------
    ParameterError
        A bad argument: unknown SoundFont name or instrument, out-of-range number, unknown format.
    RenderError
        FluidSynth or a named SoundFont is not installed (the message names the apt package), or
        FluidSynth fails.
    """
    started = time.perf_counter()
    settings = _validate(per_class, seconds, sr, fmt, seed, progress)
    insts = _resolve_instruments(instruments)
    fonts, missing = _select_soundfonts(soundfont)
    fluidsynth = import_fluidsynth()
    out_dir = Path(out_dir)
    report = RenderReport(out_dir=out_dir, skipped=list(missing))
    nested = _is_all(soundfont)
    counter = _Counter(progress, len(fonts) * len(insts) * settings.per_class)
    all_rows: list[dict] = []
    for source, path in fonts.items():
        folder = out_dir / source if nested else out_dir
        _remove_stale_parts(folder)
        here = replace(settings, reuse=_stamp(folder, settings))
        rows = _render_source(fluidsynth, source, path, insts, here, folder, report, counter)
        report.manifests.append(_write_manifest(folder / MANIFEST_NAME, rows))
        all_rows += [{**row, "path": f"{source}/{row['path']}"} for row in rows]
        report.sources.append(source)
    if nested:
        report.manifests.append(_write_manifest(out_dir / MANIFEST_NAME, all_rows))
    report.elapsed = time.perf_counter() - started
    return report


# ---------------------------------------------------------------------------------------------
# arguments


def _validate(per_class, seconds, sr, fmt, seed, progress) -> _Settings:
    """Check the scalar arguments; one clear line per mistake."""
    if not _is_int(per_class) or per_class < 1:
        raise ParameterError(f"per_class must be an integer >= 1, got {per_class!r}")
    is_number = isinstance(seconds, (int, float, np.integer, np.floating)) and not isinstance(seconds, bool)
    if not is_number or not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise ParameterError(f"seconds must be a number in {MIN_SECONDS:g}..{MAX_SECONDS:g}, got {seconds!r}")
    if not _is_int(sr) or not MIN_SR <= sr <= MAX_SR:
        raise ParameterError(f"sr must be an integer in {MIN_SR}..{MAX_SR}, got {sr!r}")
    fmt = fmt.lower().lstrip(".") if isinstance(fmt, str) else fmt
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise ParameterError(f"fmt must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "mp3" and sr not in MP3_RATES:
        raise ParameterError(f"sr {sr} cannot be written as mp3; use one of {', '.join(map(str, MP3_RATES))}")
    if not _is_int(seed) or seed < 0:
        raise ParameterError(f"seed must be an integer >= 0, got {seed!r}")
    if progress is not None and not callable(progress):
        raise ParameterError(f"progress must be callable or None, got {progress!r}")
    return _Settings(int(per_class), float(seconds), int(sr), fmt, int(seed))


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _resolve_instruments(names: Iterable[str] | str) -> list[Instrument]:
    """Resolve every name; names that land on the same label are rendered once."""
    if isinstance(names, str):  # one name, not its letters
        names = [names]
    resolved: dict[str, Instrument] = {}
    for name in names:
        inst = resolve_instrument(name)
        resolved.setdefault(inst.label, inst)
    if not resolved:
        raise ParameterError("instruments is empty; name at least one instrument")
    return list(resolved.values())


def installed_soundfonts() -> dict[str, Path]:
    """The known sample libraries that are installed, name -> path, in :data:`SOUNDFONTS` order."""
    return {name: info.path for name, info in SOUNDFONTS.items() if info.is_installed()}


def resolve_soundfonts(soundfont) -> dict[str, Path]:
    """Source name -> SoundFont file for a ``soundfont`` argument of :func:`render`.

    Raises
    ------
    ParameterError
        Unknown name, or a file that is not ``.sf2``/``.sf3``.
    RenderError
        The SoundFont file is missing (the message names the package that installs it).
    """
    return _select_soundfonts(soundfont)[0]


def _is_all(soundfont) -> bool:
    return isinstance(soundfont, str) and soundfont.strip().lower() == "all"


def _select_soundfonts(soundfont) -> tuple[dict[str, Path], list[tuple[str, str]]]:
    """Resolve the argument to sources; for ``all`` also list the missing ones as skipped."""
    if not isinstance(soundfont, (str, os.PathLike)):
        raise ParameterError(f"soundfont must be a name or a path to an .sf2/.sf3 file, got {soundfont!r}")
    if _is_all(soundfont):
        return _all_soundfonts()
    if isinstance(soundfont, str) and not _looks_like_path(soundfont):
        return {_known_name(soundfont): _known_path(_known_name(soundfont))}, []
    return dict([_soundfont_file(Path(soundfont))]), []


def _all_soundfonts() -> tuple[dict[str, Path], list[tuple[str, str]]]:
    fonts = installed_soundfonts()
    missing = [(name, _missing_message(name)) for name in SOUNDFONTS if name not in fonts]
    if not fonts:
        packages = " ".join(info.package for info in SOUNDFONTS.values())
        raise RenderError(f"no SoundFont installed for soundfont='all': apt-get install {packages}")
    return fonts, missing


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or Path(text).suffix.lower() in (".sf2", ".sf3", ".cfg")


def _known_name(name: str) -> str:
    key = name.strip().lower()
    if key not in SOUNDFONTS:
        valid = ", ".join([*SOUNDFONTS, "all"])
        raise ParameterError(f"unknown soundfont {name!r}: use one of {valid} or a path to an .sf2/.sf3/.cfg file")
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


class _SoundFont:
    """One SoundFont loaded once, and fresh synthesizers that play it.

    FluidSynth carries a little state from one note into the next: the first 64-frame block of
    a note differs slightly (up to about 1e-3) depending on what its voice played before, even
    after all sounds off. One synth shared by all instruments would thus make an instrument's
    files depend on which instruments came before. Each instrument
    therefore gets a new synth. Loading is cheap after the first time: FluidSynth's sample cache
    shares the sample data of a file that is already loaded (MuseScore: 4 s first, 0.1 s again),
    which is why ``self._holder`` keeps the first load alive.
    """

    def __init__(self, fluidsynth, source: str, path: Path, synth_sr: int):
        self._fs = fluidsynth
        self._write_float = _write_float_function(fluidsynth)
        self.source, self.path, self.synth_sr = source, path, synth_sr
        self._holder, _ = self._load()

    def close(self) -> None:
        self._holder.delete()

    def _load(self):
        # Dry output: reverb and chorus would smear the note and add a tail no clip length fits.
        # Gain 1.0: float output is not clipped, and SILENT_PEAK is then plain dBFS.
        settings = {"synth.reverb.active": 0, "synth.chorus.active": 0}
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

    def play(self, synth, note: _Note, n_samples: int) -> np.ndarray:
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

    def _write(self, synth, frames: int) -> np.ndarray:
        # Whole blocks only, so every note starts on a block boundary, i.e. at sample 0.
        buf = np.zeros(2 * frames, dtype=np.float32)
        ptr = buf.ctypes.data
        if self._write_float(synth.synth, frames, ptr, 0, 2, ptr, 1, 2) != 0:
            raise RenderError(f"FluidSynth failed to render ({self.source})")
        stereo = buf.reshape(-1, 2)
        return (stereo[:, 0] + stereo[:, 1]) * np.float32(0.5)

    def _silence(self, synth) -> None:
        """Cut every voice so nothing of this note sounds in the next clip."""
        synth.all_sounds_off(0)
        for _ in range(1000):  # voices end at the next block; the bound is only a safety net
            if synth.get_active_voice_count() == 0:
                return
            self._write(synth, BLOCK)
        raise RenderError(f"FluidSynth voices do not stop ({self.source})")


TIMIDITY_PACKAGES = "apt-get install timidity freepats"


class _PatchSet:
    """A set of GUS patches (``.pat``) played by TiMidity++: another kind of sample library.

    Debian's ``freepats`` is one: sample recordings of its own, unrelated to the SoundFonts, so a
    fourth "recording source" (it has no viola). ``path`` is a TiMidity++ configuration file such
    as ``/etc/timidity/freepats.cfg``. Each clip is a one-note MIDI file rendered by the
    ``timidity`` program, dry (no reverb or chorus), mono, at the clip's rate; the same interface
    as :class:`_SoundFont`, so the rest of rendering is shared.
    """

    def __init__(self, source: str, path: Path, synth_sr: int):
        import shutil

        self.source, self.path, self.synth_sr = source, path, synth_sr
        self._timidity = shutil.which("timidity")
        if self._timidity is None:
            raise RenderError(f"TiMidity++ is not installed, needed for {path}: {TIMIDITY_PACKAGES}")
        self._programs = _patch_programs(path)

    def close(self) -> None:
        pass

    def synth_for(self, program: int):
        """A player of ``program``, or None where the patch set lacks it."""
        return _PatchPlayer(program) if program in self._programs else None

    def play(self, synth: "_PatchPlayer", note: _Note, n_samples: int) -> np.ndarray:
        """``note`` held for its duration, then released: ``n_samples`` mono samples."""
        import subprocess
        import tempfile

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
class _PatchPlayer:
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
    import struct

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


def _whole_blocks(frames: int) -> int:
    return max(1, math.ceil(frames / BLOCK)) * BLOCK


# ---------------------------------------------------------------------------------------------
# rendering


class _Counter:
    """Counts clips and calls the progress callback."""

    def __init__(self, progress: Progress | None, total: int):
        self.progress, self.total, self.done = progress, total, 0

    def step(self, n: int = 1) -> None:
        self.done += n
        if self.progress is not None:
            self.progress(self.done, self.total)


def _render_source(fluidsynth, source, path, insts, settings, folder, report, counter) -> list[dict]:
    """Render every instrument from one SoundFont into ``folder``; return the manifest rows."""
    rows: list[dict] = []
    if path.suffix.lower() == ".cfg":
        font = _PatchSet(source, path, min(settings.sr, MAX_SYNTH_SR))
    else:
        font = _SoundFont(fluidsynth, source, path, min(settings.sr, MAX_SYNTH_SR))
    try:
        for inst in insts:
            rows += _render_instrument(font, inst, settings, folder, report, counter)
    finally:
        font.close()
    return rows


def _render_instrument(font: _SoundFont, inst: Instrument, settings: _Settings, folder: Path,
                       report: RenderReport, counter: _Counter) -> list[dict]:
    synth = font.synth_for(inst.program)
    if synth is None:
        return _skip(report, counter, font.source, inst, settings.per_class,
                     f"SoundFont has no General MIDI program {inst.program} ({inst.gm_name})")
    rng = _rng(settings.seed, font.source, inst.label)
    rows: list[dict] = []
    try:
        for k in range(settings.per_class):
            clip = _render_clip(font, synth, rng, inst, settings, report, folder, k)
            if clip is None:
                return rows + _skip(report, counter, font.source, inst, settings.per_class - k,
                                    f"silent at {MAX_TRIES} pitches in {inst.low}..{inst.high}")
            rows.append(_save_clip(folder, font.source, inst, k, *clip, settings))
            if clip[1] is None:
                report.n_reused += 1
            else:
                report.n_written += 1
            report.per_class[inst.label] = report.per_class.get(inst.label, 0) + 1
            counter.step()
    finally:
        synth.delete()
    return rows


def _skip(report, counter, source, inst, n_left, reason) -> list[dict]:
    report.skipped.append((f"{source}/{inst.label}", reason))
    counter.step(n_left)  # so a progress bar still ends full
    return []


def _rng(seed: int, source: str, label: str) -> np.random.Generator:
    # crc32, not hash(): Python salts str hashes per process, and the draws must not change.
    return np.random.default_rng([seed, zlib.crc32(source.encode()), zlib.crc32(label.encode())])


def _render_clip(font, synth, rng, inst, settings, report, folder, k) -> tuple[_Note, np.ndarray | None] | None:
    """Draw a note and render it; draw again where the SoundFont has no sample at that pitch.

    A clip that an interrupted run of the same render already wrote is kept (samples ``None``):
    the draws are the same, so it is the very file this run would write. Its note is still
    played, because FluidSynth's state after a note (measured: it is not fully reset by cutting
    the voices) shapes the next one; playing is cheap, encoding and writing are what is saved.
    """
    for _ in range(MAX_TRIES):
        note = _draw_note(rng, inst, settings.seconds)
        y = font.play(synth, note, round(settings.seconds * font.synth_sr))
        if _is_audible(y):
            if _already_written(folder / _clip_file_name(inst, note, font.source, k, settings), settings):
                return note, None
            return note, _finish(y, font.synth_sr, settings)
        report.retried += 1
    return None


def _draw_note(rng: np.random.Generator, inst: Instrument, seconds: float) -> _Note:
    pitch = int(rng.integers(inst.low, inst.high + 1))
    dynamic, lo, hi = DYNAMICS[int(rng.integers(len(DYNAMICS)))]
    velocity = int(rng.integers(lo, hi + 1))
    return _Note(pitch, velocity, dynamic, _draw_duration(rng, seconds))


def _draw_duration(rng: np.random.Generator, seconds: float) -> float:
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


def _is_audible(y: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(y))) and float(np.max(np.abs(y))) >= SILENT_PEAK


def _finish(y: np.ndarray, synth_sr: int, settings: _Settings) -> np.ndarray:
    """Resample if needed, normalise the peak, fade out the cut; exactly n_samples long.

    The peak is normalised rather than kept at the SoundFont's level: velocity alone changes the
    level by 30 dB and SoundFonts differ by several dB, and a classifier should learn the
    instrument's sound, not how loud one SoundFont or dynamic happens to be. The dynamic still
    shapes the timbre (velocity layers and filters).
    """
    y = y.astype(np.float64)
    if synth_sr != settings.sr:
        import soxr

        y = soxr.resample(y, synth_sr, settings.sr)
    y = np.pad(y, (0, max(0, settings.n_samples - len(y))))[: settings.n_samples]
    y *= PEAK / np.max(np.abs(y))
    fade = min(round(FADE_SECONDS * settings.sr), len(y) // 4)
    if fade > 0:
        y[-fade:] *= 0.5 * (1.0 + np.cos(np.linspace(0.0, np.pi, fade)))
    return y.astype(np.float32)


def clip_name(label: str, note: str, duration: float, dynamic: str, source: str, k: int, fmt: str) -> str:
    """``flute_G5_1.5_forte_fluidr3_017.wav``: label, note, held seconds, dynamic, source, index."""
    return f"{label}_{note}_{duration:g}_{dynamic}_{source}_{k:03d}.{fmt}"


def _clip_file_name(inst: Instrument, note: _Note, source: str, k: int, settings: _Settings) -> str:
    return clip_name(inst.label, note_name(note.pitch), note.duration, note.dynamic, source, k, settings.fmt)


def _stamp(folder: Path, settings: _Settings) -> bool:
    """Stamp ``folder`` with this render's version and seed; True when it already bore that stamp,
    i.e. clips found there may be kept (an interrupted run of the same render wrote them)."""
    stamp = {"render_version": RENDER_VERSION, "seed": settings.seed}
    path = folder / STAMP_NAME
    try:
        same = json.loads(path.read_text(encoding="utf-8")) == stamp
    except (OSError, ValueError):
        same = False
    if not same:
        write_json(path, stamp)
    return same


def _already_written(path: Path, settings: _Settings) -> bool:
    """A complete clip with this render's rate and length is already there (files appear whole)."""
    if not settings.reuse:
        return False
    try:
        info = sf.info(str(path))
    except Exception:  # absent or unreadable: render it (again)
        return False
    return info.samplerate == settings.sr and info.frames == settings.n_samples


def _remove_stale_parts(folder: Path) -> None:
    """Temporary files a killed run left behind (``.name.XXXX.part.wav``): never complete clips."""
    if folder.is_dir():
        for f in folder.glob(".*.part.*"):
            f.unlink(missing_ok=True)


def _save_clip(folder: Path, source: str, inst: Instrument, k: int, note: _Note, y: np.ndarray | None,
               settings: _Settings) -> dict:
    """Write one clip atomically (``y`` None: it is there already) and return its manifest row."""
    name = _clip_file_name(inst, note, source, k, settings)
    fmt, subtype = FORMATS[settings.fmt]
    if y is not None:
        with atomic_path(folder / name) as tmp:
            sf.write(tmp, y, settings.sr, format=fmt, subtype=subtype)
    return {
        "path": name, "label": inst.label, "source": source, "pitch": note.pitch,
        "note": note_name(note.pitch), "velocity": note.velocity, "dynamic": note.dynamic,
        "duration": f"{note.duration:g}", "seconds": f"{settings.seconds:g}", "sr": settings.sr,
    }


def _write_manifest(path: Path, rows: list[dict]) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    return path
