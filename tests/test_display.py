"""What `instrec predict` shows, as a user sees it: the --plot picture of a long recording in
bounded memory, its time axis labelled as its ticks are written, and file names that cannot
split a row of the results table."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import ROOT, run_cli, tone, write

LONG_MINUTES, LONG_SR = 20, 8000
PLOT_BOUND_KB = 1_000_000  # the README's "about 1 GB" for any CLI call

# VmHWM, not ru_maxrss: Linux folds the parent's peak (a large pytest process) into a child's
# ru_maxrss at exec, while VmHWM belongs to the child's own memory map.
_CHILD = """
import json, sys
from instrec.cli import main

try:
    main(sys.argv[1:])
except SystemExit as e:
    code = e.code
with open("/proc/self/status") as fh:
    peak = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
print(json.dumps({"code": code, "peak_kb": peak}), file=sys.stderr)
"""


@pytest.fixture(scope="module")
def long_recording(tmp_path_factory):
    """20 min of a swelling 440-Hz tone, mono at 8 kHz: 9.6 million samples, 88 MB at the model's
    22,050 Hz, whose full-resolution mel spectrogram (complex STFT and powers) took over 1 GB."""
    path = tmp_path_factory.mktemp("long") / "long.flac"
    n = LONG_MINUTES * 60 * LONG_SR
    with sf.SoundFile(str(path), "w", samplerate=LONG_SR, channels=1, format="FLAC", subtype="PCM_16") as f:
        for s in range(0, n, 1 << 20):
            t = np.arange(s, min(s + (1 << 20), n)) / LONG_SR
            f.write((0.3 * np.sin(2 * np.pi * 440 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.1 * t))).astype(np.float32))
    return path


def test_plot_of_a_long_recording_stays_in_bounded_memory(long_recording, tmp_path):
    """Measured here: 1.5 GB for 20 min (1.7 GB for 25) when the picture's spectrogram was computed
    whole at full resolution; 0.55 GB now, the prediction's own peak, however long the file."""
    out = tmp_path / "long.png"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    r = subprocess.run([sys.executable, "-c", _CHILD, "predict", str(long_recording), "--plot", str(out)],
                       capture_output=True, text=True, timeout=180, env=env)
    result = json.loads(r.stderr.strip().splitlines()[-1])
    assert result["code"] in (0, None), r.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result["peak_kb"] < PLOT_BOUND_KB, f"--plot of {LONG_MINUTES} min peaked at {result['peak_kb'] / 1e6:.2f} GB"


def _drawn_figure(monkeypatch, seconds: float, sr: int = 22050, **feature):
    """The figure plot_timeline saves for ``seconds`` of noise and a two-window prediction."""
    from matplotlib.figure import Figure

    from instrec.display import plot_timeline
    from instrec.features import FeatureConfig
    from instrec.results import Prediction, Window

    saved = []
    real = Figure.savefig

    def keep(self, *args, **kwargs):
        saved.append(self)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    y = np.random.default_rng(0).standard_normal(int(seconds * sr)).astype(np.float32) * 0.1
    half = seconds / 2
    windows = [Window(0.0, half, "a", {"a": 0.7, "b": 0.3}), Window(half, seconds, "b", {"a": 0.2, "b": 0.8})]
    pred = Prediction("x.wav", "b", {"a": 0.45, "b": 0.55}, duration=seconds, windows=windows, segments=[],
                      window=half, hop=half)
    png = plot_timeline(y, pred, FeatureConfig(kind="image", sr=sr, **feature))
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(saved) == 1
    return saved[0]


@pytest.mark.parametrize("seconds, unit, tick", [(10, "s", r"\d+(\.\d+)?"), (90, "m:ss", r"\d+:\d\d"),
                                                 (4000, "h:mm:ss", r"\d+:\d\d:\d\d")])
def test_the_time_axis_label_says_how_its_ticks_are_written(monkeypatch, seconds, unit, tick):
    feature = {"sr": 2000, "n_fft": 512, "hop_length": 256, "n_mels": 32} if seconds > 1000 else {}
    fig = _drawn_figure(monkeypatch, seconds, **feature)
    spectrogram, probabilities = fig.axes[0], fig.axes[1]
    assert probabilities.get_xlabel() == f"time ({unit})"
    ticks = [t.get_text() for t in probabilities.get_xticklabels() if t.get_text()]
    assert len(ticks) >= 3 and all(re.fullmatch(tick, t) for t in ticks), ticks
    assert spectrogram.get_xlabel() == ""  # the panel below carries it


def test_a_control_character_in_a_name_cannot_split_a_table_row(tmp_path):
    name = "two\nlines\u202e.wav"
    path = write(tmp_path / name, np.tile(tone("sine", 440.0, 1.0), 8))  # 8 s: a timeline of windows
    r = run_cli("predict", path)
    assert r.returncode == 0, r.stderr
    table, timeline = r.stdout.split("\n\n", 1)
    rows = [line for line in table.splitlines() if line.startswith("│")]
    assert len(rows) == 1 and str(tmp_path / "two\\nlines\\u202e.wav") in rows[0], table
    assert timeline.startswith(f"{tmp_path / 'two'}\\nlines\\u202e.wav: ") and "windows of" in timeline.splitlines()[0]
    assert "\u202e" not in r.stdout


def test_an_answer_from_doubt_is_not_shown_with_the_unknown_class_probability():
    """The shipped model has an `unknown` class: a file answered unknown because its likeliest
    class is under min_confidence showed "unknown (1.1%)", the unknown class's own probability,
    which reads as the answer's confidence; the likeliest class is listed beside it."""
    from instrec.display import format_predictions
    from instrec.results import Prediction

    doubt = Prediction("a.wav", "unknown", {"brass": 0.477, "woodwinds": 0.281, "unknown": 0.011}, duration=3.0)
    won = Prediction("b.wav", "unknown", {"brass": 0.2, "woodwinds": 0.1, "unknown": 0.7}, duration=3.0)
    rows = [line for line in format_predictions([doubt, won], "table", 3).splitlines() if line.startswith("│")]
    assert "unknown (1.1%)" not in rows[0] and "unknown" in rows[0] and "brass (47.7%)" in rows[0], rows
    assert "unknown (70.0%)" in rows[1], rows  # the unknown class won: its probability is the answer's


def test_an_answer_from_doubt_says_so_beside_its_likeliest_class():
    """`predict --min-confidence 0.5` printed a bare "unknown" with the likeliest class under "#2",
    which read as the second guess after a confident "unknown"; the cell now says the model is unsure."""
    from instrec.display import format_predictions
    from instrec.results import Prediction

    doubt = Prediction("a.wav", "unknown", {"harp": 0.257, "celesta": 0.173, "unknown": 0.041}, duration=3.0)
    row = next(line for line in format_predictions([doubt], "table", 3).splitlines() if line.startswith("│"))
    assert "unknown (unsure)" in row and "harp (25.7%)" in row, row


def test_a_one_window_timeline_says_window():
    from instrec.display import format_predictions
    from instrec.results import Prediction, Segment, Window

    r = Prediction("a.wav", "flute", {"flute": 0.9, "oboe": 0.1}, duration=0.5, window=2.0, hop=1.0,
                   windows=[Window(0.0, 0.5, "flute", {"flute": 0.9, "oboe": 0.1})], segments=[Segment(0.0, 0.5, "flute", 0.9)])
    assert "a.wav: 1 window of 2 s, hop 1 s" in format_predictions([r], "table", 2)
