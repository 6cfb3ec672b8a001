"""Mix single-instrument clips into multi-label clips: several instruments at once, from real recordings.

Rendered music (:mod:`.music`) plays scores through sample libraries; this is the cheaper proxy
that works on any labelled folder of single notes or solo clips (``instrec render``, the
Philharmonia samples, the user's own). Each mixture:

- draws how many instruments play, ``k``, uniformly in ``min_instruments..max_instruments``, then
  ``k`` distinct labels uniformly, one after the other, and one clip of each label;
- cuts each clip's leading silence (the samples before its first within :data:`ACTIVE_DB` of its peak),
  places the first drawn clip at 0 s (a mixture never starts silent) and each other one at an
  onset drawn uniformly in ``[0, seconds/2)``, so every part sounds from its onset inside the mixture;
- peak-normalises each clip, scales it by a gain drawn uniformly in ``level_db`` (dB), sums,
  cuts to ``seconds``, normalises the mix's peak to :data:`.render.PEAK` and fades out the cut
  like :mod:`.render` does.

Activity (``activity.csv``, :mod:`.activity`): a part plays from its onset to where its sound
ends, :func:`sound_end`: the end of the first hop of the last frame (``FRAME_LENGTH`` samples,
``HOP_LENGTH`` apart, from the clip's start) whose RMS is within :data:`ACTIVE_DB` of the clip's
loudest frame; cut at the mixture's end.

``manifest.csv`` (:data:`MIX_COLUMNS`): ``label`` the instruments joined (sorted), ``source`` the
members' sources, ``parts`` the members' file names, ``onsets`` (s, to the sample) and ``gains``
(dB), in draw order, joined by ``|``. ``group`` is the mixture's own (``mix00017``): mixtures that share a member
clip are *not* kept on one side of a group split. For a leak-free evaluation split the single
clips first and mix each side on its own.

Clips labelled ``unknown`` are left out (a mixture of them would add no label); clips with several
labels are left out and reported. A member that cannot be decoded, or is silent (its first
``seconds`` peak under :data:`.render.SILENT_PEAK`, -80 dBFS), is reported in ``skipped`` and
another clip of its label is drawn. Same clips (in the same order) and seed, byte-identical files:
mixture ``k`` draws from a generator seeded by ``(seed, k)``.

The output folder must be new, empty, or an earlier mix of the same clips (unchanged) and settings
(:mod:`.outdir`): an interrupted one is done again, a complete one left as it is (done again
when a mixture its manifest lists is missing or cut short). A folder of the
inputs, or one inside them, is refused: its mixtures would be read as clips of the input.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..audio import load
from ..errors import AudioError, DataError, ParameterError, printable, skip_entry
from ..fileio import write_csv
from .activity import ACTIVITY_NAME, NO_INSTRUMENT, join_labels, split_labels, write_activity
from .credits import write_credits
from .folder import MANIFEST_NAME, Clip
from .outdir import COMPLETE, claim, out_path
from .render import SILENT_PEAK, _remove_stale_parts, normalise, write_audio
from .settings import _is_int, check_arguments

__all__ = ["ACTIVE_DB", "ARGUMENT_NAMES", "DEFAULT_MAX", "FRAME_LENGTH", "HOP_LENGTH", "MIX_COLUMNS", "MixReport",
           "NotEnoughLabels", "mix_clips", "sound_end", "sound_start"]

ACTIVE_DB = 40.0  # a frame this far below the clip's loudest frame no longer counts as sound
FRAME_LENGTH, HOP_LENGTH = 2048, 512  # samples, at the mixture's rate
MIX_COLUMNS = ("path", "label", "source", "group", "parts", "onsets", "gains", "seconds", "sr")
CACHE_CLIPS = 64  # decoded members kept in memory (the most recently used)
DEFAULT_MAX = 3  # instruments in a mixture at most, when max_instruments is not given (fewer if the clips have fewer)
# What the arguments are called in messages; the command line passes its options' names.
ARGUMENT_NAMES = {"n": "n", "min_instruments": "min_instruments", "max_instruments": "max_instruments",
                  "seconds": "seconds", "sr": "sr", "fmt": "fmt", "seed": "seed", "level_db": "level_db",
                  "out_dir": "out_dir"}

Progress = Callable[[int, int], None]


@dataclass
class MixReport:
    """What :func:`mix_clips` wrote.

    Attributes
    ----------
    out_dir : Path
        The folder of the mixtures, ``manifest.csv`` and ``activity.csv``.
    written : int
        Mixtures written.
    skipped : list of (path, reason)
        Member clips that could not be decoded, and clips with several labels.
    labels : dict
        Label -> mixtures it plays in (sorted by label).
    previous : str
        ``""`` (the folder was new or empty), ``"interrupted"`` (an earlier run of this mix, done
        again) or ``"complete"`` (a complete one: nothing written, unless a mixture it lists was missing or
        cut short: then all done again).
    """

    out_dir: Path
    written: int = 0
    previous: str = ""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    labels: dict[str, int] = field(default_factory=dict)


class NotEnoughLabels(DataError):
    """Fewer labels than ``min_instruments`` have a clip that decodes; ``report``: what was written and skipped."""

    def __init__(self, message: str, report: MixReport):
        super().__init__(message)
        self.report = report


def _active_frames(y: np.ndarray) -> np.ndarray:
    """Indices of the frames (``FRAME_LENGTH`` long, every ``HOP_LENGTH``, zeros past the end) within
    :data:`ACTIVE_DB` of the loudest."""
    n_frames = max(1, -(-len(y) // HOP_LENGTH))
    padded = np.zeros(n_frames * HOP_LENGTH + FRAME_LENGTH)
    padded[: len(y)] = np.square(y, dtype=np.float64)
    energy = np.concatenate(([0.0], np.cumsum(padded)))
    starts = np.arange(n_frames) * HOP_LENGTH
    energy = np.maximum(energy[starts + FRAME_LENGTH] - energy[starts], 0.0)
    return np.flatnonzero(energy >= energy.max() * 10 ** (-ACTIVE_DB / 10))


def sound_end(y: np.ndarray) -> int:
    """Samples from the start of ``y`` to where its sound ends (see the module's docstring).

    Frames start every :data:`HOP_LENGTH` samples (zeros past the end); the sound lasts to the end
    of the first hop of the last frame within :data:`ACTIVE_DB` of the loudest, at most ``len(y)``.
    """
    return int(min(len(y), (_active_frames(y)[-1] + 1) * HOP_LENGTH))


def sound_start(y: np.ndarray) -> int:
    """Samples of silence that ``y`` starts with: those before its first within :data:`ACTIVE_DB` of its peak,
    less one (the sound rises from that one, a click if cut)."""
    level = np.abs(y)
    return max(0, int(np.argmax(level >= level.max() * 10 ** (-ACTIVE_DB / 20))) - 1)


def mix_clips(clips: Sequence[Clip], out_dir, *, n: int, min_instruments: int = 2, max_instruments: int | None = None,
              seconds: float = 3.0, sr: int = 22050, seed: int = 0, level_db: tuple[float, float] = (-12.0, 0.0),
              fmt: str = "wav", progress: Progress | None = None, inputs: Sequence = (),
              names: dict[str, str] | None = None) -> MixReport:
    """Write ``n`` mixtures of single-instrument ``clips`` with ``manifest.csv`` and ``activity.csv``.

    Parameters
    ----------
    clips : sequence of Clip
        One instrument each (``load_dataset(...).clips``); ``unknown`` ones are left out.
    out_dir : path
        Folder for the mixtures (``mix_00017_cello+flute.wav``) and the tables (created): new, empty,
        or an earlier mix of the same clips and settings; not inside a folder of ``clips`` or ``inputs``.
    n : int
        Mixtures to write, 1 to :data:`.settings.MAX_COUNT`.
    min_instruments, max_instruments : int
        Instruments per mixture, ``1 <= min <= max <= distinct labels of clips``; ``max`` not given:
        :data:`DEFAULT_MAX`, or as many as the clips have labels when fewer (``min`` at least).
    seconds : float
        Mixture length, 0.05-60 s; every file has exactly ``round(seconds * sr)`` samples.
    sr : int
        Sampling rate, 8000-192000 Hz (mp3: one of the MPEG rates); members are resampled to it.
    seed : int
        Same clips and seed, same files.
    level_db : (float, float)
        Range of each member's gain in dB after peak normalisation, ``low <= high``.
    fmt : str
        ``"wav"`` (16-bit PCM), ``"flac"`` or ``"mp3"``.
    progress : callable, optional
        ``progress(done, n)``, called after each mixture.
    inputs : sequence of path
        The folders ``clips`` were read from (the command line's DATA): ``out_dir`` may not be inside one.
    names : dict, optional
        What the arguments are called in messages (default :data:`ARGUMENT_NAMES`; the command line
        passes its options).

    Returns
    -------
    MixReport

    Raises
    ------
    ParameterError
        A bad argument (one line naming it); an ``out_dir`` that holds anything else.
    NotEnoughLabels
        A DataError: fewer than ``min_instruments`` labels have a clip that can be decoded (the
        mixtures written until then are listed in the tables; none written, no tables).
    """
    called = {**ARGUMENT_NAMES, **(names or {})}
    report = MixReport(out_dir=out_path(out_dir, called["out_dir"]))
    pool: dict[str, list[Clip]] = {}
    for clip in clips:
        heard = split_labels(clip.label)
        if len(heard) > 1:
            report.skipped.append((str(clip.path), f"has several labels ({clip.label}), not one instrument"))
        elif heard:
            pool.setdefault(heard[0], []).append(clip)
    pool = dict(sorted(pool.items()))
    try:
        fmt, max_instruments = _validate(n, min_instruments, max_instruments, len(pool), seconds, sr, seed, level_db,
                                         fmt, progress, called)
    except ParameterError as e:  # "only 0 labels" from a folder of mixtures: say why they do not count
        if report.skipped and "distinct instrument label" in str(e):
            raise ParameterError(f"{e}; {len(report.skipped)} clip(s) left out as naming several instruments "
                                 "(mixtures): mix clips of one instrument each") from None
        raise
    _check_not_inside(report.out_dir, [*inputs, *{c.path.parent for c in clips}])
    run = claim(report.out_dir, "mix", {
        "clips": _fingerprint(clips), "n": int(n), "min": int(min_instruments), "max": max_instruments,
        "seconds": float(seconds), "sample-rate": int(sr), "format": fmt, "seed": int(seed),
        "level-db": [float(x) for x in level_db]})
    report.previous = run.previous
    if run.previous == COMPLETE and _all_there(report.out_dir, n, round(seconds * sr), sr):
        run.finish()  # the same clips and settings: the same files, there already
        return report
    _remove_stale_parts(report.out_dir)  # a killed run's temporary files: never complete mixtures
    n_out = round(seconds * sr)
    cache: OrderedDict[Path, tuple[np.ndarray, int]] = OrderedDict()
    rows: list[dict] = []  # manifest.csv
    spans: list[dict] = []  # activity.csv
    try:
        for k in range(n):
            rng = np.random.default_rng([seed, k])
            parts = _draw(rng, pool, min_instruments, max_instruments, sr, seconds, cache, report, called["min_instruments"])
            mix = np.zeros(n_out)
            for i, part in enumerate(parts):
                part["onset"] = 0 if i == 0 else int(rng.integers(0, n_out // 2))
                part["gain"] = float(rng.uniform(*level_db))
                y, end = part.pop("y"), part.pop("end")
                y = y[: n_out - part["onset"]] * (10 ** (part["gain"] / 20) / np.max(np.abs(y)))
                mix[part["onset"] : part["onset"] + len(y)] += y
                part["end"] = min(n_out, part["onset"] + end)
            labels = sorted(p["label"] for p in parts)
            name = f"mix_{k:05d}_{'+'.join(re.sub(r'[^A-Za-z0-9-]+', '-', lab) for lab in labels)}.{fmt}"
            write_audio(report.out_dir / name, normalise(mix, sr), sr, fmt)
            rows.append({
                "path": name, "label": join_labels(labels), "group": f"mix{k:05d}",
                "source": "+".join(sorted({p["clip"].source for p in parts if p["clip"].source})),
                "parts": "|".join(p["clip"].path.name for p in parts),
                "onsets": "|".join(f"{p['onset'] / sr:.6f}" for p in parts),
                "gains": "|".join(f"{p['gain']:.2f}" for p in parts), "seconds": f"{seconds:g}", "sr": sr})
            spans += [{"path": name, "label": p["label"], "start": p["onset"] / sr, "end": p["end"] / sr}
                      for p in sorted(parts, key=lambda p: p["label"])]
            report.written += 1
            report.labels.update({lab: report.labels.get(lab, 0) + 1 for lab in labels})
            if progress is not None:
                progress(k + 1, n)
    except DataError as e:
        raise NotEnoughLabels(str(e), report) from None
    finally:
        report.labels = dict(sorted(report.labels.items()))
        if rows:  # the tables list what was written; no mixture, no (empty) tables
            write_csv(report.out_dir / MANIFEST_NAME, MIX_COLUMNS, rows)
            write_activity(report.out_dir / ACTIVITY_NAME, spans)
            # whose recordings the mixtures are made of: CC-BY attribution travels with what is made of them
            write_credits(report.out_dir, sorted({s for r in rows for s in r["source"].split("+") if s}))
        else:
            run.release()
    run.finish()
    return report


def _all_there(out: Path, n: int, n_samples: int, sr: int) -> bool:
    """The ``n`` mixtures the folder's manifest lists are all there and whole (a complete mix missing
    one, deleted or cut short, is done again: its files are the same)."""
    import csv

    import soundfile as sf

    try:
        with open(out / MANIFEST_NAME, newline="", encoding="utf-8") as fh:
            names = [row.get("path") or "" for row in csv.DictReader(fh)]
        infos = [sf.info(str(out / name)) for name in names]
    except Exception:  # no manifest, or a listed file absent or unreadable
        return False
    return len(names) == n and all(i.samplerate == sr and i.frames == n_samples for i in infos)


def _check_not_inside(out: Path, folders) -> None:
    """Refuse ``out`` when it is, or is inside, a folder the clips come from: its mixtures would be read as clips."""
    where = out.resolve()
    for folder in dict.fromkeys(Path(f) for f in folders):
        if folder.is_dir() and (where == folder.resolve() or folder.resolve() in where.parents):
            raise ParameterError(f"{printable(str(out))}: is inside the input {printable(str(folder))}, whose clips "
                                 "it would join; name a folder outside the inputs")


def _fingerprint(clips: Sequence[Clip]) -> str:
    """What the mixtures are made of: how many clips, and their paths, labels, sizes and times of change hashed."""
    h = hashlib.sha256()
    for clip in clips:
        try:
            st = os.stat(clip.path)
            size, changed = st.st_size, st.st_mtime_ns
        except OSError:
            size = changed = -1
        h.update(f"{Path(clip.path).absolute()}\t{clip.label}\t{size}\t{changed}\n".encode("utf-8", "backslashreplace"))
    return f"{len(clips)} clips #{h.hexdigest()[:8]}"


def _validate(n, lo, hi, n_labels, seconds, sr, seed, level_db, fmt, progress, name: dict) -> tuple[str, int]:
    """Check the arguments (render's checks, and the mixture's own); one clear line per mistake naming
    the argument as ``name`` calls it. Returns the format's name as :data:`.settings.FORMATS` has it, and ``max``."""
    fmt = check_arguments(n, seconds, sr, fmt, seed, names=name, count="n").fmt
    if progress is not None and not callable(progress):
        raise ParameterError(f"progress must be callable or None, got {progress!r}")
    given = hi is not None
    if not given and _is_int(lo):  # as many as asked for, as the clips allow
        hi = max(lo, min(DEFAULT_MAX, n_labels))
    low_name, high_name = name["min_instruments"], name["max_instruments"]
    if not (_is_int(lo) and _is_int(hi)) or not 1 <= lo <= hi:
        raise ParameterError(f"need integers 1 <= {low_name} <= {high_name}, got {lo!r} and {hi!r}")
    if hi > n_labels:
        which = f"{high_name} is {hi}" if given else f"{low_name} is {lo}"
        raise ParameterError(f"{which} but the clips have only {n_labels} distinct instrument label(s) "
                             f"(not counting {NO_INSTRUMENT!r})")
    try:
        low, high = (float(x) for x in level_db)
    except (TypeError, ValueError):
        raise ParameterError(f"{name['level_db']} must be a pair of numbers (low, high) in dB, got {level_db!r}") from None
    if not (np.isfinite(low) and np.isfinite(high) and low <= high):
        raise ParameterError(f"{name['level_db']} must be finite dB with low <= high, got {level_db!r}")
    return fmt, int(hi)


def _draw(rng, pool: dict[str, list[Clip]], lo: int, hi: int, sr: int, seconds: float, cache: OrderedDict,
          report: MixReport, min_name: str = "min_instruments") -> list[dict]:
    """Draw ``k`` distinct labels and a decodable clip of each. A clip that cannot be decoded is
    reported and dropped from ``pool``, a label without clips left too; with fewer than ``k``
    labels left a mixture takes what is there, with fewer than ``lo`` it is a DataError."""
    k = int(rng.integers(lo, hi + 1))
    parts: list[dict] = []
    while len(parts) < k:
        free = [lab for lab in pool if lab not in {p["label"] for p in parts}]
        if not free and len(parts) >= lo:
            break
        if not free:
            raise DataError(f"only {len(pool)} instrument label(s) have clips that can be decoded; "
                            f"{min_name} is {lo} (see the skipped clips)")
        label = free[int(rng.integers(len(free)))]
        members = pool[label]
        clip = members[int(rng.integers(len(members)))]
        try:
            y, end = _decode(clip.path, sr, seconds, cache)
        except AudioError as e:
            report.skipped.append(skip_entry(e, clip.path))
            members.remove(clip)
            if not members:
                del pool[label]
            continue
        parts.append({"label": label, "clip": clip, "y": y, "end": end})
    return parts


def _decode(path: Path, sr: int, seconds: float, cache: OrderedDict) -> tuple[np.ndarray, int]:
    """The first ``seconds`` of ``path`` at ``sr``, mono, from its :func:`sound_start` on, and its :func:`sound_end` (cached)."""
    if path in cache:
        cache.move_to_end(path)
        return cache[path]
    y, _ = load(path, sr=sr, duration=seconds)
    peak = float(np.max(np.abs(y)))
    if not peak >= SILENT_PEAK:  # peak-normalised, a file of quantisation noise would be labelled as its instrument
        raise AudioError(path, f"is silent (its loudest sample, {peak:.1e}, is below {SILENT_PEAK:g}, -80 dBFS)")
    y = y[sound_start(y):]  # a member placed at its onset sounds from there: no silent, still-labelled part
    cache[path] = (y, sound_end(y))
    if len(cache) > CACHE_CLIPS:
        cache.popitem(last=False)
    return cache[path]

