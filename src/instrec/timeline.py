"""Windows and who plays when: a long recording's windows (:func:`window_spans`), which are
silent, their runs of one label (:func:`merge_segments`) and a multi-label model's instruments'
runs (:func:`tracks`), and predictions turned into frames (what frame-level scores compare with an
activity table).

Overlapping windows tile the recording by their centres: a window stands for the stretch from
halfway to the previous window's centre to halfway to the next one's (the first from 0, the last
to the end), so that every instant belongs to exactly one window. Next to a silent window the cut
moves to that window's edge (never past its neighbour's centre): all of a silent window is quiet,
so the sound of its neighbour lies outside it. Segments and tracks both cut there, so they say the
same times for the same windows.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from .data.activity import activity_matrix
from .errors import AudioError, ParameterError
from .results import Prediction, Segment, Track, Window

# A window this far (dB RMS) below the loudest window of the recording counts as silent.
SILENCE_DB = 50.0
# A timeline's most windows: each answer holds ~2.5 kB (and as much again printed), so 100,000 stay
# within the ~1 GB any call takes; a day at the shipped model's default hop (1.5 s) is 57,600
MAX_WINDOWS = 100_000


def window_spans(n: int, *, sr: int, window: float, hop: float) -> list[tuple[int, int]]:
    """Sample ranges ``[a, b)`` of windows of ``window`` s every ``hop`` s over ``n`` samples.

    Windows lie inside the recording; when the hops do not land on its end, a last window ends
    exactly there, so the tail is analysed too. A recording shorter than one window is one window.
    """
    w, h = max(1, int(round(window * sr))), max(1, int(round(hop * sr)))
    if n <= w:
        return [(0, n)]
    starts = list(range(0, n - w + 1, h))
    if starts[-1] + w < n:
        starts.append(n - w)
    return [(a, a + w) for a in starts]


def check_window_count(seconds: float, window: float, hop: float, *, path: str | None) -> None:
    """Refuse a timeline of more than :data:`MAX_WINDOWS` windows of ``window`` s every ``hop`` s
    over ``seconds``, before any is predicted: a tiny hop on a long file would not fit in memory."""
    count = max(0, math.ceil((seconds - window) / hop)) + 1
    if count > MAX_WINDOWS:
        raise too_many_windows(f"{count:,}", window=window, hop=hop, path=path)


def too_many_windows(count: str, *, window: float, hop: float, path: str | None) -> AudioError:
    """The error of a timeline that would take ``count`` windows, over :data:`MAX_WINDOWS`."""
    return AudioError(path or "<array>", f"would take {count} windows of {window:g} s every {hop:g} s (at most "
                      f"{MAX_WINDOWS:,}): give a longer hop, or cut the recording")


def silent_windows(chunks: Sequence[np.ndarray], *, below_db: float = SILENCE_DB) -> np.ndarray:
    """True for each chunk whose RMS is ``below_db`` dB under the loudest chunk's (or has no signal)."""
    rms = np.array([math.sqrt(float(np.mean(np.square(c, dtype=np.float64)))) if len(c) else 0.0 for c in chunks])
    peak = np.array([float(np.max(np.abs(c))) if len(c) else 0.0 for c in chunks])
    return silent_levels(rms, peak, below_db=below_db)


def silent_levels(rms: np.ndarray, peak: np.ndarray, *, below_db: float = SILENCE_DB) -> np.ndarray:
    """:func:`silent_windows` from the chunks' RMS and peak values."""
    from .audio import SILENCE_PEAK

    if not len(rms):
        return np.zeros(0, bool)
    with np.errstate(divide="ignore"):
        db = 20 * np.log10(np.maximum(rms, 1e-12))
    return (peak < SILENCE_PEAK) | (db < db.max() - below_db)


def merge_segments(windows: Sequence[Window], *, duration: float) -> list[Segment]:
    """Runs of adjacent same-label windows, each from its first window's tile to its last one's
    (:func:`window_tiles`), so that segments tile ``[0, duration]`` and cut where tracks do."""
    tiles = tiles_of(windows, duration)
    segments: list[Segment] = []
    first = 0
    for i, w in enumerate(windows):
        if i + 1 < len(windows) and windows[i + 1].label == w.label:
            continue
        run = windows[first : i + 1]
        probs = [v.probabilities[v.label] for v in run if v.probabilities and v.label in v.probabilities]
        # an answer from doubt (the likeliest class under min_confidence: unknown) has no probability,
        # though the model may have an `unknown` class: that one's would read as the answer's confidence
        doubt = any(v.probabilities[v.label] < max(v.probabilities.values()) for v in run
                    if v.probabilities and v.label in v.probabilities)
        segments.append(Segment(float(tiles[first, 0]), float(tiles[i, 1]), w.label,
                                float(np.mean(probs)) if probs and not doubt else None))
        first = i + 1
    return segments


def window_tiles(spans: Sequence[tuple[float, float]], duration: float,
                 silent: Sequence[bool] | None = None) -> np.ndarray:
    """``(n, 2)`` start and end (s) of the stretch each window of ``spans`` (``(start, end)``
    seconds, in order) stands for; together they tile ``[0, duration]``.

    Windows are cut halfway between their centres, except between a silent window (``silent``)
    and a sounding one: all of the silent window is quiet, so the cut lies at its edge (the
    sounding window's centre at the farthest), and silence is not said to be sound for up to a
    hop's length. A sounding window between two silent ones that would be left no time keeps its
    halfway cuts."""
    if not len(spans):
        return np.zeros((0, 2))
    bounds = np.array(spans, dtype=np.float64).reshape(-1, 2)
    centres = bounds.mean(axis=1)
    mid = (centres[:-1] + centres[1:]) / 2
    cuts = mid.copy()
    if silent is not None and len(spans) > 1:
        quiet = np.asarray(silent, dtype=bool)
        into = ~quiet[:-1] & quiet[1:]  # sound, then silence: the cut at the silent window's start
        cuts[into] = np.clip(bounds[1:, 0], centres[:-1], mid)[into]
        out = quiet[:-1] & ~quiet[1:]  # silence, then sound: the cut at the silent window's end
        cuts[out] = np.clip(bounds[:-1, 1], mid, centres[1:])[out]
        # a sounding window squeezed to nothing by silence on both sides keeps its halfway cuts
        starts, ends = cuts[:-1], cuts[1:]
        squeezed = np.flatnonzero((ends <= starts) & ~quiet[1:-1]) + 1
        cuts[squeezed - 1], cuts[squeezed] = mid[squeezed - 1], mid[squeezed]
    return np.stack([np.concatenate([[0.0], cuts]), np.concatenate([cuts, [float(duration)]])], axis=1)


def tiles_of(windows: Sequence[Window], duration: float) -> np.ndarray:
    """:func:`window_tiles` of a timeline's ``windows``, their silence included."""
    return window_tiles([(w.start, w.end) for w in windows], duration, [w.silent for w in windows])


def runs(active: Sequence[bool], tiles: np.ndarray) -> list[tuple[float, float]]:
    """``(start, end)`` of each run of consecutive active windows, from their tiles."""
    out: list[tuple[float, float]] = []
    first = None
    for i, on in enumerate(list(active) + [False]):
        if on and first is None:
            first = i
        elif not on and first is not None:
            out.append((float(tiles[first, 0]), float(tiles[i - 1, 1])))
            first = None
    return out


def tracks(windows: Sequence[Window], classes: Sequence[str], family_of: Mapping[str, str],
           duration: float) -> list[Track]:
    """One :class:`Track` per class active in any of ``windows`` (their ``active`` lists), the
    likeliest first: its segments, and its highest probability over the windows."""
    tiles = tiles_of(windows, duration)
    out = []
    for c in classes:
        on = [bool(w.active) and c in w.active for w in windows]
        if any(on):
            p = max(w.probabilities[c] for w, a in zip(windows, on) if a)
            out.append(Track(c, family_of.get(c, c), float(p), runs(on, tiles)))
    return sorted(out, key=lambda t: -t.probability)


def frames(prediction: Prediction, classes: Sequence[str], *, hop_seconds: float, n_frames: int) -> np.ndarray:
    """``(n_frames, len(classes))`` 0/1: which classes a multi-label prediction says play at the
    centre of each frame of ``hop_seconds``, from its instruments' segments, by the rule of
    :func:`instrec.data.activity.activity_matrix` (what it is compared with)."""
    if not prediction.is_multilabel:
        raise ParameterError("frames come from a multi-label prediction (one with instruments)")
    spans: dict[str, list] = {}
    for t in prediction.instruments:
        spans.setdefault(t.label, []).extend(t.segments)
    return activity_matrix(spans, classes, n_frames=n_frames, hop_seconds=hop_seconds)
