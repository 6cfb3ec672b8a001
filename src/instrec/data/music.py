"""Render music, not notes: excerpts of real scores played part by part, with who plays when.

The scores come from music21's bundled corpus (BSD): string quartets and trios whose parts keep
their instruments (Beethoven, Haydn, Mozart, Clara and Robert Schumann, Corelli), Bach's four-part
chorales and Palestrina's masses and motets, whose voices get instruments; or from the user's own
MusicXML, MIDI, Humdrum or ABC files. Each excerpt (``seconds`` long, default 10 s) is one piece,
one sample library (every source :func:`~.synth.select_soundfonts` knows: SoundFonts, freepats, the
recorded notes of the samplers) and random choices:

- which parts play: each is left out with probability ``DROP_PART`` (at least one stays), so
  excerpts hold one to all parts;
- instruments: a part whose name is an instrument of the vocabulary keeps it; any other part (a
  voice) gets an instrument of the vocabulary whose range holds the part's notes, shifted by whole
  octaves where needed (the smallest shift that fits);
- tempo (``TEMPO_BPM``), the excerpt's place in the piece, a dynamic per part with a little
  variation per note, expressive timing (onsets moved by ``TIMING_JITTER`` s), articulation (each
  part holds its notes for a drawn fraction of their value; staccato notes for less), mix level
  per part (``LEVEL_DB``) and one room for the excerpt (an exponentially decaying noise reverb,
  ``RT60``, ``WET``).

Each note is played on its own by the library's player (like the single-note renders), and
placed at its onset: the activity table gets the note from its onset to its note-off, where the
part's own sound (its stem, in the mix) is heard: stretches where the stem lies more than
``SILENCE_DB`` below the mix's peak (a long xylophone note long decayed, a note struck before the
excerpt that has died away) are cut out, in cells of ``TRIM_HOP`` s (:func:`sounding_spans`), and
a part left with no stretch at all is left out of the excerpt. Written:
the mix (peak-normalised), optionally the stems (``stems/``; they add up to the mix),
``manifest.csv`` (``label``: the instruments heard, ``group``: the piece's work, so a group split
keeps works whole) and ``activity.csv`` (:mod:`.activity`). Same arguments and seed, same files:
excerpt ``k`` draws from a generator of its own, seeded by ``(seed, k)``; so a run of the same
settings resumes an interrupted one, and any other folder is refused (:mod:`.music_folder`).
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from ..devices import resolve_jobs
from ..errors import DataError, ParameterError
from .activity import join_labels, merge_spans, split_labels
from .instruments import WIDE_VOCABULARY, Instrument, resolve_instrument
from .music_folder import MUSIC_COLUMNS, MusicFolder, music_settings
from .notes import Note, dynamic_for_velocity
from .credits import write_credits
from .outdir import out_path
from .render import PEAK, SILENT_PEAK, _is_int, write_audio
from .settings import check_audio_arguments
from .render import MIN_SR as _RENDER_MIN_SR
from .scores import PIECE_SETS, Piece, list_pieces, read_piece
from .synth import MAX_SYNTH_SR, import_fluidsynth, needs_fluidsynth, open_library, select_soundfonts
from .workers import ordered_map

__all__ = ["MUSIC_COLUMNS", "PIECE_SETS", "MusicReport", "Piece", "check_arguments", "list_pieces", "read_piece",
           "render_music", "sounding_spans"]

DROP_PART = 0.2
TEMPO_BPM = (56.0, 132.0)
TIMING_JITTER = 0.012  # s, standard deviation
LEGATO = (0.8, 1.0)  # fraction of a note's value it is held
STACCATO = 0.45
LEVEL_DB = (-9.0, 0.0)
RT60 = (0.2, 1.2)  # s
WET = (0.0, 0.35)
RELEASE = 1.0  # s rendered after each note-off
LEAD_IN = 4.0  # s: notes that start this long before the excerpt may still sound in it
MAX_SHIFT = 2  # octaves a voice may be moved to fit an instrument
PIECE_CACHE = 256  # parsed scores kept: notes only, a few kB each; parsing is most of an excerpt's time
VOICE_EXCLUDE = frozenset({"timpani"})  # plays only where a part names it: no melody line fits a drum
MIN_SECONDS, MAX_SECONDS = 1.0, 60.0  # an excerpt shorter than a second holds hardly a phrase
MIN_SR, MAX_SR = _RENDER_MIN_SR, MAX_SYNTH_SR  # the libraries synthesise at 96 kHz at most: music is not upsampled
SILENCE_DB = 60.0  # a stem this far under the mix's peak has died away: the 60 dB decay by which RT60 counts it gone
TRIM_HOP = 0.01  # s: the cells activity is trimmed in (the table is written to 1 ms, scored in 0.1 s frames)
TRIM_WINDOW = 5  # cells (50 ms, centred) a cell's level is measured over: two periods of the lowest notes (E1, 41 Hz)
# What each argument of render_music is called in messages; the command line passes its options' names.
ARGUMENT_NAMES = {"n": "n", "seconds": "seconds", "sr": "sr", "fmt": "fmt", "seed": "seed"}

Progress = Callable[[int, int], None]


@dataclass
class MusicReport:
    """What :func:`render_music` wrote."""

    out_dir: Path
    n_written: int = 0  # excerpts this run wrote
    n_reused: int = 0  # excerpts an earlier run of the same settings had written, kept as they are
    previous: str = ""  # the earlier run found in the folder: "" (none), "interrupted" or "complete"
    sources: list[str] = field(default_factory=list)
    per_class: dict[str, int] = field(default_factory=dict)  # excerpts each instrument is heard in
    skipped: list[tuple[str, str]] = field(default_factory=list)
    elapsed: float = 0.0
    trimmed: int = 0  # a part's note spans cut where its stem is silent (shortened, split or removed)
    silent_parts: int = 0  # parts left out of their excerpt: silent in every span they had


def check_arguments(n, seconds, sr, fmt, seed, names: dict[str, str] | None = None) -> tuple[int, float, int, str, int]:
    """:func:`render_music`'s count, length, rate, format and seed, checked: ``(n, seconds, sr, fmt,
    seed)``. A mistake raises ParameterError, one line naming the argument as ``names`` calls it
    (default :data:`ARGUMENT_NAMES`; the command line passes its options) and the values it takes."""
    name = {**ARGUMENT_NAMES, **(names or {})}
    if not _is_int(n) or n < 1:
        raise ParameterError(f"{name['n']} must be an integer >= 1, got {n!r}")
    seconds, sr, fmt, seed = check_audio_arguments(seconds, sr, fmt, seed, name, seconds_range=(MIN_SECONDS, MAX_SECONDS),
                                                   sr_range=(MIN_SR, MAX_SR))
    return int(n), seconds, sr, fmt, seed


def render_music(
    out_dir,
    *,
    pieces: str | Sequence[str] = "all",
    soundfont: str = "fluidr3",
    instruments: Iterable[str] | str = WIDE_VOCABULARY,
    n: int = 100,
    seconds: float = 10.0,
    sr: int = 22050,
    fmt: str = "wav",
    seed: int = 0,
    stems: bool = False,
    progress: Progress | None = None,
    jobs: int = 1,
    map_excerpts: Callable | None = None,
) -> MusicReport:
    """Render ``n`` excerpts of music with their per-instrument activity.

    Parameters
    ----------
    out_dir : path
        Folder for the excerpts, ``manifest.csv``, ``activity.csv`` (and ``stems/``): new, empty, or
        an earlier render-music of the same settings, whose complete excerpts are kept (anything
        else: ParameterError, nothing written). The tables list what was written, Ctrl-C included.
    pieces : str or list
        ``"all"``, sets of :data:`PIECE_SETS`, or score files / folders (see :func:`list_pieces`).
        Excerpt ``k`` comes from set ``k mod (number of sets)``, so every set is heard.
    soundfont : str
        The sample libraries, as :func:`~.render.render` takes them; excerpts take turns.
    instruments : iterable of str
        The vocabulary: parts naming another instrument are played as voices.
    n : int
        Excerpts, >= 1.
    seconds : float
        Excerpt length, 1-60 s.
    sr, fmt, seed
        Sampling rate (8000-96000 Hz; mp3: an MPEG rate up to 48000), ``wav``/``flac``/``mp3``, and
        the seed (>= 0): same seed, same files.
    stems : bool
        Also write each part's audio (as it is in the mix) to ``stems/``.
    progress : callable, optional
        ``progress(done, n)`` after each excerpt.
    jobs : int
        Processes drawing and playing excerpts at once (0: one per core): the same files; this
        process writes them, in order.
    map_excerpts : callable, optional
        Draws and plays elsewhere: ``map_excerpts(factory, args, indices)`` yields
        ``factory(*args)(k)`` for each ``k`` in order, each place making one ``factory(*args)``
        (picklable; its paths absolute) and calling it on many indices, as
        :func:`~.workers.ordered_map` does. :func:`instrec.cluster.tasks.render_music_on_ray` uses
        Ray actors. ``jobs`` is then not used.

    Returns
    -------
    MusicReport
        ``n_written`` (new) and ``n_reused`` (kept) may both be 0 (every draw failed: the reasons
        are in ``skipped``; then no table is written, nor a folder made).
    """
    started = time.perf_counter()
    out_dir = out_path(out_dir)
    n, seconds, sr, fmt, seed = check_arguments(n, seconds, sr, fmt, seed)
    if progress is not None and not callable(progress):
        raise ParameterError(f"progress must be callable or None, got {progress!r}")
    names = [s.strip() for s in instruments.split(",")] if isinstance(instruments, str) else list(instruments)
    vocab = {inst.label: inst for inst in (resolve_instrument(x) for x in names if x)}
    if not vocab:
        raise ParameterError("instruments is empty")
    sets = [(name, found) for name, found in list_pieces(pieces) if found]
    if not sets:
        raise ParameterError(f"pieces {pieces!r}: no score files found")
    fonts, missing = select_soundfonts(soundfont)
    given = [name if name in PIECE_SETS else str(Path(name).resolve()) for name, _ in sets]
    # refused (a folder of other data or settings) before a library is opened
    folder = MusicFolder(out_dir, music_settings(pieces=given, sets=sets, fonts=fonts, instruments=list(vocab), n=n,
                                                 seconds=seconds, sr=sr, fmt=fmt, seed=seed, stems=stems))
    report = MusicReport(out_dir=out_dir, skipped=list(missing), sources=list(fonts), previous=folder.previous)
    if any(needs_fluidsynth(p) for p in fonts.values()):
        import_fluidsynth()  # missing: one line before anything is written
    source_of = [list(fonts)[(k // len(sets)) % len(fonts)] for k in range(n)]
    todo = [k for k in range(n) if folder.kept(k, source_of[k]) is None]
    workers = min(resolve_jobs(jobs), len(todo))
    if map_excerpts is not None and not callable(map_excerpts):
        raise ParameterError(f"map_excerpts must be callable like ordered_map, or None; got {map_excerpts!r}")
    plan = ([(name, [(pid, Path(path).absolute()) for pid, path in found]) for name, found in sets],
            {source: Path(path).absolute() for source, path in fonts.items()}, list(vocab.values()), seed, seconds, sr)
    here = _Excerpts(*plan) if map_excerpts is None and workers <= 1 else None
    if here is not None:
        for source in fonts if todo else ():  # a library that cannot be opened: said before anything is written
            here.library(source)
        drawn = iter(map(here, todo))
    elif map_excerpts is not None:
        drawn = iter(map_excerpts(_Excerpts, plan, todo) if todo else ())
    else:
        drawn = ordered_map(_Excerpts, plan, todo, jobs=workers)
    said = set(report.skipped)
    try:
        for k in range(n):
            if k in folder.rows:
                done = folder.rows[k]
                report.n_reused += 1
            else:
                excerpt, tally = next(drawn)
                report.skipped += [s for s in tally.skipped if s not in said]  # a bad score: said once, by any worker
                said.update(tally.skipped)
                report.trimmed, report.silent_parts = report.trimmed + tally.trimmed, report.silent_parts + tally.silent_parts
                done = None
                if excerpt is not None:
                    folder.before_write()
                    done = _write_excerpt(folder.path, k, source_of[k], *excerpt, seconds, sr, fmt, stems)
                    folder.add(k, *done)
                    report.n_written += 1
            if done is None:
                report.skipped.append((f"excerpt {k}", f"no playable piece of {sets[k % len(sets)][0]!r} found in 10 "
                                                       f"draws on {source_of[k]}"))
            else:
                for label in split_labels(done[0]["label"]):
                    report.per_class[label] = report.per_class.get(label, 0) + 1
            folder.save()
            if progress:
                progress(k + 1, n)
    finally:
        try:  # what was written is listed, however the run ends (Ctrl-C included)
            folder.save(now=True)
            if report.n_written or report.n_reused:  # a run that wrote nothing leaves no folder
                played = {row['source'] for row, _ in folder.rows.values()}  # the libraries heard in the excerpts there
                write_credits(out_dir, [source for source in fonts if source in played])
        finally:
            getattr(drawn, "close", lambda: None)()  # the workers stop
            if here is not None:
                here.close()
    folder.finish()
    report.per_class = dict(sorted(report.per_class.items()))
    report.elapsed = time.perf_counter() - started
    return report


@dataclass
class _Tally:
    """What drawing one excerpt found besides it: scores that could not be read, parts trimmed or silent."""

    skipped: list[tuple[str, str]] = field(default_factory=list)
    trimmed: int = 0
    silent_parts: int = 0


class _Excerpts:
    """Draws and plays excerpts by index (``self(k)``), each from a generator of its own, so any
    process makes the same; its libraries are opened when first played, its scores read once."""

    def __init__(self, sets, fonts: dict, instruments: list[Instrument], seed: int, seconds: float, sr: int):
        self.sets, self.fonts, self.vocab = sets, fonts, {inst.label: inst for inst in instruments}
        self.seed, self.seconds, self.sr = seed, seconds, sr
        self.libraries: dict = {}
        self.cache: OrderedDict[Path, Piece | None] = OrderedDict()

    def __call__(self, k: int) -> tuple[tuple[str, str, dict] | None, _Tally]:
        """Excerpt ``k`` mixed down, as ``(piece id, its group, the excerpt)``, or None when no piece
        drawn could be played (10 draws); and the tally."""
        found = self.sets[k % len(self.sets)][1]
        library = self.library(list(self.fonts)[(k // len(self.sets)) % len(self.fonts)])
        tally, rng = _Tally(), np.random.default_rng([self.seed, k])
        for _ in range(10):  # a piece that cannot be read or played here: draw another
            pid, path = found[int(rng.integers(len(found)))]
            piece = _cached_piece(self.cache, pid, path, tally)
            excerpt = None if piece is None else _excerpt(library, piece, self.vocab, rng, self.seconds, self.sr)
            excerpt = None if excerpt is None else _mixdown(excerpt, self.seconds, self.sr, tally)
            if excerpt is not None:
                return (piece.id, piece.group, excerpt), tally
        return None, tally

    def library(self, source: str):
        """The library ``source``'s player, opened the first time it is asked for."""
        if source not in self.libraries:
            fluidsynth = import_fluidsynth() if needs_fluidsynth(self.fonts[source]) else None
            self.libraries[source] = open_library(fluidsynth, source, self.fonts[source], self.sr)
        return self.libraries[source]

    def close(self) -> None:
        for lib in self.libraries.values():
            lib.close()
        self.libraries = {}


def _cached_piece(cache: OrderedDict, pid: str, path: Path, report: _Tally) -> Piece | None:
    key = Path(path).resolve()  # by the file: two scores may share a name, never a file
    if key not in cache:
        try:
            cache[key] = read_piece(path, pid)
        except DataError as exc:
            cache[key] = None
            report.skipped.append((str(path), str(exc).removeprefix(f"{path}: ")))
        if len(cache) > PIECE_CACHE:
            cache.popitem(last=False)
    return cache[key]


def _fit(inst: Instrument, low: int, high: int) -> int | None:
    """The octave shift (semitones, smallest first) that puts ``low..high`` in the instrument's range."""
    for octaves in sorted(range(-MAX_SHIFT, MAX_SHIFT + 1), key=abs):
        if inst.low <= low + 12 * octaves and high + 12 * octaves <= inst.high:
            return 12 * octaves
    return None


def _excerpt(library, piece: Piece, vocab: dict[str, Instrument], rng, seconds: float, sr: int) -> dict | None:
    """Draw and play one excerpt of ``piece`` on ``library``: the parts' audio and spans, or None."""
    spq = 60.0 / rng.uniform(*TEMPO_BPM)
    start = rng.uniform(0.0, max(0.0, piece.length * spq - seconds))
    keep = rng.random(len(piece.parts)) >= DROP_PART
    keep[int(rng.integers(len(piece.parts)))] = True
    n_out = round(seconds * library.synth_sr)
    parts = []
    for part, kept in zip(piece.parts, keep):
        onsets = part.notes[:, 0] * spq - start
        inside = (onsets < seconds) & (onsets + part.notes[:, 1] * spq > -LEAD_IN / 2) & (onsets > -LEAD_IN)
        if not kept or not inside.any():
            continue
        notes = part.notes[inside]
        low, high = int(notes[:, 2].min()), int(notes[:, 2].max())
        inst = vocab.get(part.instrument or "")
        if inst is not None and library.has_program(inst.program) and _fit(inst, low, high) is not None:
            shift = _fit(inst, low, high)
        else:  # a voice, or an instrument this library cannot play: any instrument that fits
            fits = [(i, _fit(i, low, high)) for i in vocab.values()
                    if i.label not in VOICE_EXCLUDE and library.has_program(i.program)]
            fits = [(i, s) for i, s in fits if s is not None]
            if not fits:
                continue
            inst, shift = fits[int(rng.integers(len(fits)))]
        y, spans = _play_part(library, inst, notes, onsets[inside], shift, spq, rng, seconds, n_out)
        if spans and float(np.max(np.abs(y))) >= SILENT_PEAK:
            parts.append({"label": inst.label, "name": part.name, "y": y, "spans": spans})
    if not parts:
        return None
    return {"parts": parts, "tempo": 60.0 / spq, "offset": start, "synth_sr": library.synth_sr,
            "gains_db": rng.uniform(*LEVEL_DB, size=len(parts)), "rt60": rng.uniform(*RT60), "wet": rng.uniform(*WET),
            "room": rng.integers(2**31)}


def _play_part(library, inst: Instrument, notes: np.ndarray, onsets: np.ndarray, shift: int, spq: float,
               rng, seconds: float, n_out: int) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Play a part's notes one by one into a buffer; their sounding spans inside the excerpt."""
    srate = library.synth_sr
    synth = library.synth_for(inst.program)
    base = int(rng.integers(40, 111))
    legato = rng.uniform(*LEGATO)
    y = np.zeros(n_out, dtype=np.float64)
    spans, played = [], {}
    try:
        for (_, length, pitch, staccato), onset in zip(notes, onsets):
            onset = onset + rng.normal(0.0, TIMING_JITTER)
            held = max(0.05, round(length * spq * (STACCATO if staccato else legato) / 0.05) * 0.05)
            velocity = int(np.clip(base + rng.normal(0.0, 6.0), 20, 127))
            note = Note(int(pitch) + shift, velocity, dynamic_for_velocity(velocity), held)
            if note not in played:  # a repeated note sounds the same: play it once
                played[note] = library.play(synth, note, round((held + RELEASE) * srate)).astype(np.float64)
            z, at = played[note], round(onset * srate)
            lo, hi = max(0, at), min(n_out, at + len(z))
            if hi > lo:
                y[lo:hi] += z[lo - at:hi - at]
            if onset < seconds and onset + held > 0:
                spans.append((max(0.0, onset), min(seconds, onset + held)))
    finally:
        synth.delete()
    return y, merge_spans(spans)


def sounding_spans(y: np.ndarray, sr: int, spans: Iterable[tuple[float, float]], floor: float) -> list[tuple[float, float]]:
    """The parts of ``spans`` (seconds) where ``y`` sounds: the cells of :data:`TRIM_HOP` s whose
    level, the RMS of ``y`` over :data:`TRIM_WINDOW` cells centred on the cell, is at least ``floor``.
    A span is cut to those cells (split where they are not contiguous); one with none disappears."""
    hop = max(1, round(TRIM_HOP * sr))
    n_cells = max(1, -(-len(y) // hop))
    squares = np.zeros(n_cells * hop)
    squares[: len(y)] = np.square(y, dtype=np.float64)
    counts = np.minimum(np.maximum(len(y) - np.arange(n_cells) * hop, 0), hop).astype(np.float64)
    kernel = np.ones(TRIM_WINDOW)
    energy = np.convolve(squares.reshape(n_cells, hop).sum(axis=1), kernel, mode="same")
    samples = np.convolve(counts, kernel, mode="same")
    loud = energy >= floor**2 * np.maximum(samples, 1.0)
    out = []
    for start, end in merge_spans(spans):
        c0, c1 = int(start * sr // hop), min(n_cells, int(np.ceil(end * sr / hop)))
        cells = np.concatenate(([False], loud[c0:c1], [False])).astype(np.int8)
        edges = np.flatnonzero(np.diff(cells))  # rises and falls: runs of loud cells [a, b)
        for a, b in zip(edges[::2], edges[1::2]):
            s, e = max(start, (c0 + a) * hop / sr), min(end, (c0 + b) * hop / sr)
            if e > s:
                out.append((s, e))
    return merge_spans(out)


def _mixdown(ex: dict, seconds: float, sr: int, report: _Tally) -> dict | None:
    """The excerpt's parts as they are in the mix (level, room, at ``sr``: ``"audio"``), each part's
    spans trimmed to where its own audio sounds (:data:`SILENCE_DB` below the mix's peak); parts left
    with no span are left out. None when no part is heard."""
    from scipy.signal import fftconvolve

    srate, n_out = ex["synth_sr"], round(seconds * sr)
    ir = _room(int(ex["room"]), float(ex["rt60"]), srate)
    audio = []
    for part, gain_db in zip(ex["parts"], ex["gains_db"]):
        y = part["y"] / (np.sqrt(np.mean(part["y"] ** 2)) + 1e-12) * 10 ** (gain_db / 20)
        y = y + ex["wet"] * fftconvolve(y, ir)[: len(y)]
        if srate != sr:
            import soxr

            y = soxr.resample(y, srate, sr)
        audio.append(np.pad(y, (0, max(0, n_out - len(y))))[:n_out])
    peak = float(np.max(np.abs(np.sum(audio, axis=0))))
    if not peak > 0:
        return None
    floor = peak * 10 ** (-SILENCE_DB / 20)
    parts, trimmed, silent = [], 0, 0
    for part, y in zip(ex["parts"], audio):
        spans = sounding_spans(y, sr, part["spans"], floor)
        trimmed += sum(1 for a, b in part["spans"] if [(s, e) for s, e in spans if s < b and e > a] != [(a, b)])
        if spans:
            parts.append({"label": part["label"], "name": part["name"], "audio": y, "spans": spans})
        else:
            silent += 1
    if not parts:
        return None
    report.trimmed += trimmed
    report.silent_parts += silent
    return {**ex, "parts": parts}


def _room(rng_seed: int, rt60: float, srate: int) -> np.ndarray:
    """A room's impulse response: noise decaying by 60 dB over ``rt60`` s, unit energy."""
    rng = np.random.default_rng(rng_seed)
    t = np.arange(round(rt60 * srate)) / srate
    ir = rng.standard_normal(len(t)) * np.exp(-6.91 * t / rt60)
    return ir / np.sqrt(np.sum(ir**2))


def _write_excerpt(out_dir: Path, k: int, source: str, piece_id: str, group: str, ex: dict, seconds: float, sr: int,
                   fmt: str, stems: bool) -> tuple[dict, list[dict]]:
    """Write a mixed-down excerpt (:func:`_mixdown`): the mix, its stems; its manifest row and activity."""
    audio = [p["audio"] for p in ex["parts"]]
    mix = np.sum(audio, axis=0)
    scale = PEAK / max(float(np.max(np.abs(mix))), 1e-12)
    slug = re.sub(r"[^a-z0-9]+", "-", piece_id.lower()).strip("-")[:48]
    name = f"{k:05d}_{slug}_{source}.{fmt}"
    files = [(out_dir / name, mix)]
    if stems:
        files += [(out_dir / "stems" / f"{k:05d}_{i}_{part['label']}.{fmt}", y)
                  for i, (part, y) in enumerate(zip(ex["parts"], audio))]
    try:
        for i, (path, y) in enumerate(files):
            write_audio(path, y * scale, sr, fmt)
    except BaseException:  # Ctrl-C or a full disk halfway: no mix without its stems, nothing unlisted
        for path, _ in files[:i]:
            path.unlink(missing_ok=True)
        raise
    labels = [p["label"] for p in ex["parts"]]
    row = {"path": name, "label": join_labels(labels), "source": source, "group": group, "piece": piece_id,
           "parts": "|".join(f"{p['label']}={p['name']}" for p in ex["parts"]), "offset": f"{ex['offset']:.2f}",
           "tempo": f"{ex['tempo']:.1f}", "rt60": f"{ex['rt60']:.2f}", "seconds": f"{seconds:g}", "sr": sr}
    merged: dict[str, list] = {}
    for p in ex["parts"]:
        merged.setdefault(p["label"], []).extend(p["spans"])
    activity = [{"path": name, "label": lab, "start": s, "end": e}
                for lab in sorted(merged) for s, e in merge_spans(merged[lab])]
    return row, activity

