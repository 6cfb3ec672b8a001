"""Who plays when (timeline): window tiles, runs, tracks and frames, on hand-checked examples."""

from __future__ import annotations

import numpy as np
import pytest

from instrec.errors import ParameterError
from instrec.results import Prediction, Track, Window
from instrec.timeline import frames, runs, tracks, window_tiles


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
    # centres 1, 2, 3, 4: tiles [0, 1.5] [1.5, 2.5] [2.5, 3.5] [3.5, 5]
    assert out == [Track("a", "fa", 0.9, [(0.0, 2.5)]), Track("b", "fb", 0.8, [(1.5, 3.5)])]


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
