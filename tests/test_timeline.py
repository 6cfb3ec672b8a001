"""Who plays when (timeline): window tiles, runs, tracks and frames, on hand-checked examples."""

from __future__ import annotations

import numpy as np
import pytest

from instrec.errors import ParameterError
from instrec.results import Prediction, Track, Window
from instrec.timeline import frames, merge_segments, runs, tracks, window_tiles


def test_tiles_of_overlapping_windows_meet_halfway_between_centres():
    spans = [(0.0, 3.0), (1.5, 4.5), (3.0, 6.0), (4.0, 7.0)]  # the last ends the recording
    tiles = window_tiles(spans, 7.0)
    assert tiles.tolist() == [[0.0, 2.25], [2.25, 3.75], [3.75, 5.0], [5.0, 7.0]]
    assert window_tiles([(0.0, 2.0)], 2.0).tolist() == [[0.0, 2.0]]
    assert window_tiles([], 1.0).shape == (0, 2)


def test_runs_of_active_windows():
    tiles = np.array([[0, 1], [1, 2], [2, 3], [3, 4], [4, 5]], dtype=float)
    assert runs([True, True, False, True, False], tiles) == [(0.0, 2.0), (3.0, 4.0)]
    assert runs([False] * 5, tiles) == []
    assert runs([False, False, False, True, True], tiles) == [(3.0, 5.0)]


def _window(start, end, active, probs):
    return Window(start, end, "x", probs, False, active=active)


def test_tracks_name_each_instrument_with_its_runs_and_best_window():
    ws = [_window(0, 2, ["a"], {"a": 0.9, "b": 0.1}), _window(1, 3, ["a", "b"], {"a": 0.7, "b": 0.6}),
          _window(2, 4, ["b"], {"a": 0.2, "b": 0.8}),
          Window(3, 5, "silence", None, True, active=[])]
    out = tracks(ws, ["a", "b", "c"], {"a": "fa", "b": "fb"}, 5.0)
    # centres 1, 2, 3, 4: tiles [0, 1.5] [1.5, 2.5] [2.5, 3.5] [3.5, 5], but the silent window
    # [3, 5] is quiet throughout: b's sound lies before 3, where the cut moves
    assert out == [Track("a", "fa", 0.9, [(0.0, 2.5)]), Track("b", "fb", 0.8, [(1.5, 3.0)])]


def test_silence_is_cut_at_the_silent_windows_edges_not_halfway():
    # sound 0-20 s, silence 20-40 s, sound 40-60 s in 3-s windows every 1.5 s (what instrec computes)
    starts = np.arange(0, 57.1, 1.5)
    spans = [(float(a), float(a) + 3) for a in starts]
    silent = [b <= 40 and a >= 20 for a, b in spans]  # the windows wholly inside the silence
    tiles = window_tiles(spans, 60.0, silent)
    first, last = silent.index(True), len(silent) - 1 - silent[::-1].index(True)
    # the silent windows say 21-39 s is silent: no instrument claims any of it
    assert tiles[first, 0] == 21.0 and tiles[last, 1] == 39.0
    assert tiles[0, 0] == 0.0 and tiles[-1, 1] == 60.0 and np.all(tiles[1:, 0] == tiles[:-1, 1])
    assert np.all(tiles[:, 1] > tiles[:, 0])
    ws = [Window(a, b, "silence" if q else "flute", None if q else {"flute": 0.9}, q) for (a, b), q in zip(spans, silent)]
    assert [(s.start, s.end, s.label) for s in merge_segments(ws, duration=60.0)] == [
        (0.0, 21.0, "flute"), (21.0, 39.0, "silence"), (39.0, 60.0, "flute")]


def test_a_sounding_window_between_silent_ones_keeps_its_halfway_tile():
    # windows 0-3 and 3-6 silent overlap all of 1.5-4.5: its sound is at the threshold; it keeps its stretch
    spans = [(0.0, 3.0), (1.5, 4.5), (3.0, 6.0)]
    tiles = window_tiles(spans, 6.0, [True, False, True])
    assert tiles.tolist() == [[0.0, 2.25], [2.25, 3.75], [3.75, 6.0]]
    # no overlap (hop = window): the cuts are the windows' own edges either way
    assert window_tiles([(0, 2), (2, 4), (4, 6)], 6.0, [False, True, False]).tolist() == [[0, 2], [2, 4], [4, 6]]
    # short hops: the cut never passes the sounding window's centre
    spans = [(0.0, 3.0), (0.5, 3.5), (1.0, 4.0), (1.5, 4.5)]
    assert window_tiles(spans, 4.5, [False, False, True, True])[1].tolist() == [1.75, 2.0]


def test_an_unknown_segment_from_doubt_has_no_probability_even_with_an_unknown_class():
    """A window answered unknown because its likeliest class is under min_confidence has no
    probability for that answer: the `unknown` class's own (1% here) would read as the segment's
    confidence, as it did in the shipped model's segment table ("unknown  1.2%")."""
    doubt = {"cello": 0.45, "viola": 0.44, "unknown": 0.01}
    won = {"cello": 0.2, "viola": 0.1, "unknown": 0.7}
    ws = [Window(0, 3, "unknown", doubt), Window(1.5, 4.5, "unknown", doubt), Window(3, 6, "cello", won | {"cello": 0.8, "unknown": 0.0})]
    segs = merge_segments(ws, duration=6.0)
    assert [(s.label, s.probability) for s in segs] == [("unknown", None), ("cello", pytest.approx(0.8))]
    # where the unknown class wins, its probability is the answer's
    segs = merge_segments([Window(0, 3, "unknown", won), Window(1.5, 4.5, "unknown", won)], duration=4.5)
    assert [(s.label, s.probability) for s in segs] == [("unknown", pytest.approx(0.7))]


def test_frames_sample_segments_at_frame_centres():
    p = Prediction("x", "a", {"a": 0.9, "b": 0.8}, duration=1.0,
                   instruments=[Track("a", "a", 0.9, [(0.0, 0.5)]), Track("b", "b", 0.8, [(0.25, 1.0)]),
                                Track("z", "z", 0.7, [(0.0, 1.0)])])
    A = frames(p, ["a", "b"], hop_seconds=0.25, n_frames=4)
    assert A.tolist() == [[1, 0], [1, 1], [0, 1], [0, 1]]
    with pytest.raises(ParameterError):
        frames(Prediction("x", "a", {"a": 1.0}), ["a"], hop_seconds=0.1, n_frames=3)
    with pytest.raises(ParameterError):
        frames(p, ["a"], hop_seconds=0, n_frames=3)
