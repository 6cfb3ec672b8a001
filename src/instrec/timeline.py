"""Who plays when: a multi-label model's windows turned into each instrument's segments, and
predictions turned into frames (what frame-level scores compare with an activity table).

Overlapping windows tile the recording by their centres: a window stands for the stretch from
halfway to the previous window's centre to halfway to the next one's (the first from 0, the last
to the end), so that every instant belongs to exactly one window.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .errors import ParameterError
from .results import Prediction, Track, Window


def window_tiles(spans: Sequence[tuple[float, float]], duration: float) -> np.ndarray:
    """``(n, 2)`` start and end (s) of the stretch each window of ``spans`` (``(start, end)``
    seconds, in order) stands for; together they tile ``[0, duration]``."""
    if not len(spans):
        return np.zeros((0, 2))
    centres = np.array([(a + b) / 2 for a, b in spans], dtype=np.float64)
    cuts = (centres[:-1] + centres[1:]) / 2
    return np.stack([np.concatenate([[0.0], cuts]), np.concatenate([cuts, [float(duration)]])], axis=1)


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
    tiles = window_tiles([(w.start, w.end) for w in windows], duration)
    out = []
    for c in classes:
        on = [bool(w.active) and c in w.active for w in windows]
        if any(on):
            p = max(w.probabilities[c] for w, a in zip(windows, on) if a)
            out.append(Track(c, family_of.get(c, c), float(p), runs(on, tiles)))
    return sorted(out, key=lambda t: -t.probability)


def frames(prediction: Prediction, classes: Sequence[str], *, hop_seconds: float, n_frames: int) -> np.ndarray:
    """``(n_frames, len(classes))`` 0/1: which classes a multi-label prediction says play at the
    centre of each frame of ``hop_seconds`` (frame ``t`` covers ``[t*hop, (t+1)*hop)``), from its
    instruments' segments. Compare with :func:`instrec.data.activity.activity_matrix` at the same
    hop."""
    if not prediction.is_multilabel:
        raise ParameterError("frames come from a multi-label prediction (one with instruments)")
    if n_frames < 0 or not hop_seconds > 0:
        raise ParameterError("frames needs n_frames >= 0 and hop_seconds > 0")
    centres = (np.arange(n_frames) + 0.5) * float(hop_seconds)
    index = {c: j for j, c in enumerate(classes)}
    A = np.zeros((n_frames, len(classes)), dtype=np.float32)
    for t in prediction.instruments:
        if t.label in index:
            for a, b in t.segments:
                A[(centres >= a) & (centres < b), index[t.label]] = 1.0
    return A
