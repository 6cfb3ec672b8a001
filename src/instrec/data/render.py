"""Render labelled single-note clips from General MIDI sample libraries, and write them.

Each clip is one note of one instrument: a random pitch inside the instrument's playing range, a
random dynamic (velocity) and a random held length, followed by the note's release, cut to a
fixed clip length. Files are named like the tutorial data (``flute_G5_1.5_forte_fluidr3_017.wav``:
label, note, held seconds, dynamic, source, index) and listed in a ``manifest.csv``.

This module is the entry point (:func:`render`) and the writing: file names, normalising, atomic
writes, manifests, and resuming a run that was interrupted. The synthesisers and the libraries
they play are in :mod:`.synth` and :mod:`.samplers` (recorded notes), the random notes in
:mod:`.notes`, the ``unknown`` clips (``negatives=N``: noise, speech, drums, synthesisers, sound
effects) in :mod:`.negatives`.

Determinism: the same arguments and seed give byte-identical files. The random draws of one
instrument come from a generator seeded by (seed, source, label), and each instrument is rendered
by a synthesizer of its own, so adding or removing an instrument changes no other instrument's
files (FluidSynth keeps a little state from one note to the next, see :class:`.synth.SoundFont`). So
an instrument of a library is a unit of work (:func:`render_unit`) that another process may do:
``jobs`` (this machine's cores) and ``map_units`` (:func:`instrec.cluster.tasks.render_on_ray`: Ray's
workers) write the same bytes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Callable, Iterable, NamedTuple

import numpy as np
import soundfile as sf

from ..devices import resolve_jobs
from ..errors import ParameterError
from ..fileio import atomic_path, write_csv
from .credits import write_credits
from .folder import MANIFEST_NAME
from .instruments import DEFAULT_INSTRUMENTS, Instrument, note_name, resolve_instrument
from .negatives import LABEL as NEGATIVE_LABEL
from .negatives import NegativeClip, NegativeJob, negative_jobs, render_job
from .notes import DYNAMICS, Note, draw_note, dynamic_for_velocity, note_rng
from .outdir import STAMP_NAME, claim, out_path
from .samplers import Sampler
# the limits and checks are re-exported: music, mixtures and the CLI take them from here
from .settings import (ARGUMENT_NAMES, FORMATS, MAX_COUNT, MAX_SECONDS, MAX_SR, MIN_SECONDS, MIN_SR, MP3_RATES,
                       _is_int, _Settings, check_arguments)
from .workers import ordered_map
from .synth import (
    SOUNDFONTS,
    PatchSet,
    SoundFont,
    SoundFontInfo,
    import_fluidsynth,
    installed_soundfonts,
    is_all,
    needs_fluidsynth,
    open_library,
    resolve_soundfonts,
    select_soundfonts,
)

__all__ = [
    "ARGUMENT_NAMES", "DYNAMICS", "MANIFEST_COLUMNS", "MANIFEST_NAME", "MAX_COUNT", "RENDER_VERSION", "SOUNDFONTS",
    "STAMP_NAME", "RenderReport", "RenderUnit", "SoundFontInfo", "UnitDone", "check_arguments", "clip_name",
    "dynamic_for_velocity", "import_fluidsynth",
    "installed_soundfonts", "normalise", "render", "render_unit", "resolve_soundfonts", "write_audio",
]

# Bump when the same arguments render different audio. A folder's stamp (outdir.STAMP_NAME) records it
# with the settings, so that clips an older instrec left there are never taken for this one's.
RENDER_VERSION = 1

MANIFEST_COLUMNS = ("path", "label", "source", "pitch", "note", "velocity", "dynamic", "duration", "seconds", "sr")
# A folder with negatives adds what each clip is: "instrument", or the negative's kind and detail
# ("noise-pink", "speech-de", "drums-jazz", "synth-pad-2-warm", "effects-seashore").
KIND_COLUMN = "kind"

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
        Clips an earlier run of the same render (same folder and settings) had written (kept as they are).
    previous : str
        ``""`` (the folder was new or empty), ``"interrupted"`` or ``"complete"``: the earlier run found there.
    per_class : dict
        Label -> files written, summed over sources.
    sources : list of str
        Sources (SoundFonts) rendered from.
    manifests : list of Path
        Every ``manifest.csv`` written (per source folder, then the top-level one for ``all``).
    skipped : list of (name, reason)
        What could not be rendered: an instrument a SoundFont lacks, a SoundFont that ``all``
        found missing, a kind of negative that cannot be made here.
    n_negatives, n_negatives_by_source : int, dict
        ``unknown`` clips written (``negatives``), in all and per source (counted in ``n_written``).
    retried : int
        Notes that came out silent and were drawn again at another pitch.
    elapsed : float
        Seconds the whole render took.
    """

    out_dir: Path
    n_written: int = 0
    n_reused: int = 0
    previous: str = ""
    per_class: dict[str, int] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    manifests: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    retried: int = 0
    elapsed: float = 0.0
    n_negatives: int = 0
    n_negatives_by_source: dict[str, int] = field(default_factory=dict)


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
    negatives: int = 0,
    map_units: Callable | None = None,
    jobs: int = 1,
) -> RenderReport:
    """Render ``per_class`` one-note clips of each instrument from one or all SoundFonts.

    Parameters
    ----------
    out_dir : path
        Folder for the clips and ``manifest.csv`` (created). With ``soundfont="all"`` each source
        gets a sub-folder ``out_dir/<source>/`` and ``out_dir/manifest.csv`` lists every clip. It must
        be new, empty, or an earlier render with the same settings (:mod:`.outdir`), which is resumed:
        the clips it wrote are kept, the rest written.
    soundfont : str or path
        ``"fluidr3"``, ``"musescore"``, ``"timgm6mb"``, ``"freepats"``, ``"all"`` (every one of
        those installed), a path to an ``.sf2``/``.sf3`` file or a TiMidity++ ``.cfg`` (source
        name: its lowercased stem); or recorded notes (:mod:`.samplers`): ``"tonejs"``,
        ``"salamander"``, a folder holding their npm packages (each library found is a source),
        ``"everything"`` (``all`` and the installed sampler libraries).
    instruments : iterable of str
        Friendly labels, General MIDI names or aliases (see
        :func:`~instrec.data.instruments.resolve_instrument`).
    per_class : int
        Clips per instrument and source, 1 to :data:`MAX_COUNT`.
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
    negatives : int
        Also write this many ``unknown`` clips of each kind (:mod:`.negatives`) and origin: noise,
        speech (espeak-ng), and drums, synthesiser and sound-effect notes from each General MIDI
        library of the render (every installed one when it has none). Their ``source`` is their
        origin (``noise``, ``espeak``, ``fluidr3``...); with several sources each has a folder.
        The manifest then gets a ``kind`` column.
    map_units : callable, optional
        Runs the work elsewhere: ``map_units(render_unit, units)`` yields :func:`render_unit`'s
        results in the order of ``units``, as ``map`` does (a :class:`RenderUnit` is picklable: one
        instrument of one library, or the negatives of one origin); same files wherever it runs,
        which must see the libraries and ``out_dir``; ``progress`` then moves a unit at a time.
        Default: in this process. :func:`instrec.cluster.tasks.render_on_ray` uses Ray's workers.
    jobs : int
        Processes rendering at once on this machine (0: one per core; at most one per unit), the
        same files; ``progress`` then moves a unit at a time. Ignored with ``map_units``.

    Returns
    -------
    RenderReport

    Raises
    ------
    ParameterError
        A bad argument: unknown SoundFont name or instrument, out-of-range number, unknown format; an
        ``out_dir`` that holds anything but an earlier render of these settings.
    RenderError
        FluidSynth or a named SoundFont is not installed (the message names the apt package), or
        FluidSynth fails.
    """
    started = time.perf_counter()
    out_dir = out_path(out_dir)
    settings = check_arguments(per_class, seconds, sr, fmt, seed, negatives)
    if progress is not None and not callable(progress):
        raise ParameterError(f"progress must be callable or None, got {progress!r}")
    if map_units is not None and not callable(map_units):
        raise ParameterError(f"map_units must be callable like map, or None; got {map_units!r}")
    workers = resolve_jobs(jobs)
    insts = _resolve_instruments(instruments)
    fonts, missing = select_soundfonts(soundfont)
    jobs, cannot = negative_jobs(fonts) if negatives else ([], [])
    paths = [*fonts.values(), *(job.path for job in jobs if job.path is not None)]
    fluidsynth = import_fluidsynth() if any(needs_fluidsynth(p) for p in paths) else None
    nested = is_all(soundfont) or len(fonts) > 1
    run = claim(out_dir, "render", _what_decides(fonts, insts, jobs, negatives, settings, nested))
    settings = replace(settings, reuse=bool(run.previous))
    report = RenderReport(out_dir=out_dir, skipped=list(missing) + cannot, sources=list(fonts), previous=run.previous)
    counter = _Counter(progress, len(fonts) * len(insts) * settings.per_class + sum(len(j.kinds) for j in jobs) * negatives)
    rows: dict[str, list[dict]] = {source: [] for source in [*fonts, *(j.source for j in jobs)]}  # its manifest rows
    units = _units(fonts, insts, jobs, negatives, settings, out_dir, nested)
    serial = _SerialUnits(fluidsynth, counter)  # the default: here, progress after each clip
    workers = min(workers, len(units))
    if map_units is None and workers > 1:
        map_units = partial(_map_locally, workers=workers, fluidsynth=fluidsynth is not None)
    mapped = map(serial, units) if map_units is None else map_units(render_unit, units)
    try:
        for done in mapped:
            _merge(report, rows, done)
            if map_units is not None:  # progress: the clips the unit did elsewhere
                counter.step(done.steps)
    except BaseException:
        getattr(mapped, "close", lambda: None)()  # the workers stop first: none writes after the clean-up
        # a Ctrl-C between a temporary file's making and its writer's clean-up can leave it: none stays
        for tmp in Path(out_dir).rglob(".*.part.*"):
            tmp.unlink(missing_ok=True)
        run.release()  # a run that failed before its first file leaves the folder as it found it
        raise
    finally:
        serial.close()
        getattr(mapped, "close", lambda: None)()  # a mapper's generator cleans up now (cancels, disconnects)
    report.n_negatives = sum(report.n_negatives_by_source.values())
    _write_manifests(out_dir, rows, nested, report)
    write_credits(out_dir, [source for source, source_rows in rows.items() if source_rows])  # whose clips are there
    run.finish()
    report.elapsed = time.perf_counter() - started
    return report


def _write_manifests(out_dir: Path, rows: dict[str, list[dict]], nested: bool, report: RenderReport) -> None:
    """One manifest per source folder and a top-level one listing all (nested), or one for all."""
    if not nested:
        report.manifests.append(_write_manifest(out_dir / MANIFEST_NAME, [r for rs in rows.values() for r in rs]))
        return
    for source, source_rows in rows.items():
        report.manifests.append(_write_manifest(out_dir / source / MANIFEST_NAME, source_rows))
    every = [{**row, "path": f"{source}/{row['path']}"} for source, source_rows in rows.items() for row in source_rows]
    report.manifests.append(_write_manifest(out_dir / MANIFEST_NAME, every))


# ---------------------------------------------------------------------------------------------
# arguments


def _what_decides(fonts, insts, jobs, negatives, settings: _Settings, nested: bool) -> dict:
    """The settings that determine a render's files, as its folder's stamp records them."""
    return {"render-version": RENDER_VERSION, "soundfonts": list(fonts), "instruments": [i.label for i in insts],
            "per-class": settings.per_class, "seconds": settings.seconds, "sample-rate": settings.sr,
            "format": settings.fmt, "seed": settings.seed, "negatives": int(negatives),
            "unknown-origins": [f"{j.source}:{'+'.join(j.kinds)}" for j in jobs],
            "libraries": [str(Path(p).absolute()) for p in fonts.values()], "folder-per-source": nested}


def _resolve_instruments(names: Iterable[str] | str) -> list[Instrument]:
    """Resolve every name; names that land on the same label are rendered once, two labels of one program refused."""
    if isinstance(names, str):  # one name, not its letters
        names = [names]
    resolved: dict[str, Instrument] = {}
    for name in names:
        inst = resolve_instrument(name)
        resolved.setdefault(inst.label, inst)
        twin = next((i for i in resolved.values() if i.program == inst.program and i.label != inst.label), None)
        if twin is not None:  # one sound under two labels: classes no model can tell apart
            raise ParameterError(f"instruments: {twin.label} and {inst.label} are both General MIDI program "
                                 f"{inst.program} ({inst.gm_name}), one sound under two labels; name one of them")
    if not resolved:
        raise ParameterError("instruments is empty; name at least one instrument")
    return list(resolved.values())


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


@dataclass(frozen=True)
class RenderUnit:
    """One unit of :func:`render`'s work, picklable: the clips of ``inst`` from the library at ``path``,
    or (``inst`` None) the negatives ``jobs`` of origin ``source``, ``negatives`` of each kind; into ``folder``."""

    source: str
    path: Path | None
    folder: Path
    settings: _Settings
    inst: Instrument | None = None
    jobs: tuple[NegativeJob, ...] = ()
    negatives: int = 0


class UnitDone(NamedTuple):
    """What :func:`render_unit` did: the unit's manifest rows and its part of the report (written,
    kept, retried, per label, skipped, negatives per source); ``steps``: clips it accounts for."""

    source: str
    rows: list[dict]
    report: RenderReport
    steps: int


def render_unit(unit: RenderUnit, *, font=None, counter: _Counter | None = None) -> UnitDone:
    """Render and write one unit of :func:`render`'s work. The library is opened here, unless
    ``font`` is the unit's library already open (a unit's clips depend only on the unit: a fresh
    process writes the same bytes); ``counter``: stepped after each clip."""
    counter = counter or _Counter(None, 0)
    part, before = RenderReport(out_dir=unit.folder), counter.done
    if unit.inst is None:
        return UnitDone(unit.source, _render_negatives(unit, part, counter), part, counter.done - before)
    own = font is None
    if own:
        font = open_library(import_fluidsynth() if needs_fluidsynth(unit.path) else None, unit.source, unit.path,
                            unit.settings.sr)
    try:
        rows = _render_instrument(font, unit.inst, unit.settings, unit.folder, part, counter)
    finally:
        if own:
            font.close()
    return UnitDone(unit.source, rows, part, counter.done - before)


def _units(fonts, insts, jobs, negatives, settings, out_dir, nested) -> list[RenderUnit]:
    """The units of a render, in the order the files are numbered and listed. Every folder is readied
    (stale parts removed) first: once units run in several processes, one may be writing while the
    next source's is asked for."""
    folder_of = {source: (out_dir / source if nested else out_dir) for source in [*fonts, *(j.source for j in jobs)]}
    for folder in dict.fromkeys(folder_of.values()):
        _remove_stale_parts(folder)
    units = [RenderUnit(source, Path(path).absolute(), folder_of[source].absolute(), settings, inst)
             for source, path in fonts.items() for inst in insts]
    for source in dict.fromkeys(job.source for job in jobs):  # negatives: numbered per source, whatever their kind
        group = tuple(replace(j, path=j.path and Path(j.path).absolute()) for j in jobs if j.source == source)
        units.append(RenderUnit(source, None, folder_of[source].absolute(), settings, jobs=group, negatives=negatives))
    return units


def _map_locally(render_unit, units, *, workers: int, fluidsynth: bool):
    """``map_units`` on this machine's cores: ``workers`` processes, each keeping a library open for its units."""
    return ordered_map(_worker_units, (fluidsynth,), units, jobs=workers)


def _worker_units(fluidsynth: bool) -> _SerialUnits:
    return _SerialUnits(import_fluidsynth() if fluidsynth else None, None)


class _SerialUnits:
    """The units in this process, one after another: a library opened once for its instruments."""

    def __init__(self, fluidsynth, counter: _Counter | None):
        self.fluidsynth, self.counter, self.font, self.key = fluidsynth, counter, None, None

    def __call__(self, unit: RenderUnit) -> UnitDone:
        if self.key != (unit.source, unit.path, unit.inst is None):
            self.close()
            if unit.inst is not None:
                self.font = open_library(self.fluidsynth, unit.source, unit.path, unit.settings.sr)
            self.key = (unit.source, unit.path, unit.inst is None)
        return render_unit(unit, font=self.font, counter=self.counter)

    def close(self) -> None:
        font, self.font, self.key = self.font, None, None
        if font is not None:
            font.close()


def _merge(report: RenderReport, rows: dict[str, list[dict]], done: UnitDone) -> None:
    """Add what one unit did to the render's report and manifest rows."""
    part = done.report
    rows[done.source] += done.rows
    report.skipped += part.skipped
    for name in ("n_written", "n_reused", "retried"):
        setattr(report, name, getattr(report, name) + getattr(part, name))
    for mine, theirs in ((report.per_class, part.per_class),
                         (report.n_negatives_by_source, part.n_negatives_by_source)):
        for key, n in theirs.items():
            mine[key] = mine.get(key, 0) + n


def _render_negatives(unit: RenderUnit, part: RenderReport, counter: _Counter) -> list[dict]:
    """The ``unknown`` clips of one origin, numbered from 0, whatever their kind."""
    rows: list[dict] = []
    fluidsynth = import_fluidsynth() if any(j.path and needs_fluidsynth(j.path) for j in unit.jobs) else None
    for job in unit.jobs:
        clips = render_job(job, unit.negatives, seconds=unit.settings.seconds, sr=unit.settings.sr,
                           seed=unit.settings.seed, fluidsynth=fluidsynth,
                           skip=lambda name, why: part.skipped.append((name, why)))
        start = len(rows)
        for clip in clips:
            row, written = _save_negative(unit.folder, clip, len(rows), unit.settings)
            rows.append(row)
            part.n_written += written
            part.n_reused += not written
            counter.step()
        # what could not be rendered, so that a progress bar still ends full
        counter.step(len(job.kinds) * unit.negatives - (len(rows) - start))
    if rows:
        part.n_negatives_by_source[unit.source] = part.per_class[NEGATIVE_LABEL] = len(rows)
    return rows


def _render_instrument(font: SoundFont | PatchSet | Sampler, inst: Instrument, settings: _Settings, folder: Path,
                       report: RenderReport, counter: _Counter) -> list[dict]:
    """Render ``per_class`` clips of one instrument (or skip it where the library lacks it)."""
    synth = font.synth_for(inst.program)
    if synth is None:
        lacks = "sample library has no recordings of" if isinstance(font, Sampler) else "SoundFont has no"
        return _skip(report, counter, font.source, inst, settings.per_class,
                     f"{lacks} General MIDI program {inst.program} ({inst.gm_name})")
    rng = note_rng(settings.seed, font.source, inst.label)
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
    """Report what could not be rendered and why; no manifest rows."""
    report.skipped.append((f"{source}/{inst.label}", reason))
    counter.step(n_left)  # so a progress bar still ends full
    return []


def _render_clip(font, synth, rng, inst, settings, report, folder, k) -> tuple[Note, np.ndarray | None] | None:
    """Draw a note and render it; draw again where the SoundFont has no sample at that pitch.

    A clip that an interrupted run of the same render already wrote is kept (samples ``None``):
    the draws are the same, so it is the very file this run would write. Its note is still
    played, because FluidSynth's state after a note (measured: it is not fully reset by cutting
    the voices) shapes the next one; playing is cheap, encoding and writing are what is saved.
    """
    for _ in range(MAX_TRIES):
        note = draw_note(rng, inst, settings.seconds)
        y = font.play(synth, note, round(settings.seconds * font.synth_sr))
        if _is_audible(y):
            if _already_written(folder / _clip_file_name(inst, note, font.source, k, settings), settings):
                return note, None
            return note, _finish(y, font.synth_sr, settings)
        report.retried += 1
    return None


def _is_audible(y: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(y))) and float(np.max(np.abs(y))) >= SILENT_PEAK


# ---------------------------------------------------------------------------------------------
# writing


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
    return normalise(np.pad(y, (0, max(0, settings.n_samples - len(y))))[: settings.n_samples], settings.sr)


def normalise(y: np.ndarray, sr: int) -> np.ndarray:
    """``y`` with its peak at :data:`PEAK` and the cut at its end faded out, as float32."""
    y = np.asarray(y, dtype=np.float64) * (PEAK / max(float(np.max(np.abs(y))), 1e-12))
    fade = min(round(FADE_SECONDS * sr), len(y) // 4)
    if fade > 0:
        y[-fade:] *= 0.5 * (1.0 + np.cos(np.linspace(0.0, np.pi, fade)))
    return y.astype(np.float32)


def write_audio(path: Path, y: np.ndarray, sr: int, fmt: str) -> None:
    """Write mono ``y`` atomically in ``fmt`` (a key of :data:`FORMATS`)."""
    kind, subtype = FORMATS[fmt]
    with atomic_path(path) as tmp:
        sf.write(tmp, np.asarray(y, dtype=np.float32), sr, format=kind, subtype=subtype)


def clip_name(label: str, note: str, duration: float, dynamic: str, source: str, k: int, fmt: str) -> str:
    """``flute_G5_1.5_forte_fluidr3_017.wav``: label, note, held seconds, dynamic, source, index."""
    return f"{label}_{note}_{duration:g}_{dynamic}_{source}_{k:03d}.{fmt}"


def _clip_file_name(inst: Instrument, note: Note, source: str, k: int, settings: _Settings) -> str:
    return clip_name(inst.label, note_name(note.pitch), note.duration, note.dynamic, source, k, settings.fmt)


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


def _save_clip(folder: Path, source: str, inst: Instrument, k: int, note: Note, y: np.ndarray | None,
               settings: _Settings) -> dict:
    """Write one clip atomically (``y`` None: it is there already) and return its manifest row."""
    name = _clip_file_name(inst, note, source, k, settings)
    if y is not None:
        write_audio(folder / name, y, settings.sr, settings.fmt)
    return {
        "path": name, "label": inst.label, "source": source, "pitch": note.pitch,
        "note": note_name(note.pitch), "velocity": note.velocity, "dynamic": note.dynamic,
        "duration": f"{note.duration:g}", "seconds": f"{settings.seconds:g}", "sr": settings.sr,
    }


def _save_negative(folder: Path, clip: NegativeClip, k: int, settings: _Settings) -> tuple[dict, bool]:
    """Normalise and write one ``unknown`` clip (unless an earlier run of this render wrote it); its
    manifest row, and whether it was written. Its file name's note field is the note where it has
    one, else the kind and detail (``unknown_noise-pink_1.5_piano_noise_003.wav``)."""
    what = f"{clip.kind}-{clip.detail}"
    note = note_name(clip.pitch) if clip.pitch is not None else ""
    name = clip_name(NEGATIVE_LABEL, note or what, clip.duration, clip.dynamic, clip.source, k, settings.fmt)
    written = not _already_written(folder / name, settings)
    if written:
        write_audio(folder / name, _finish(clip.y, clip.sr, settings), settings.sr, settings.fmt)
    return {
        "path": name, "label": NEGATIVE_LABEL, "source": clip.source, "pitch": "" if clip.pitch is None else clip.pitch,
        "note": note, "velocity": clip.velocity, "dynamic": clip.dynamic, "duration": f"{clip.duration:g}",
        "seconds": f"{settings.seconds:g}", "sr": settings.sr, KIND_COLUMN: what,
    }, written


def _write_manifest(path: Path, rows: list[dict]) -> Path:
    columns = MANIFEST_COLUMNS
    if any(KIND_COLUMN in row for row in rows):  # negatives: say what every clip is
        columns = (*MANIFEST_COLUMNS, KIND_COLUMN)
        rows = [{KIND_COLUMN: "instrument", **row} for row in rows]
    return write_csv(path, columns, rows)
