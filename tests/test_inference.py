"""Long recordings, the Python API and `instrec predict --window/--hop/--plot`."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import soundfile as sf

import instrec
from instrec.errors import AudioError, BundleError, ParameterError
from instrec.inference import Window, check_window, merge_segments, silent_windows, window_spans

from conftest import SR, error_lines, run_cli, write

GAP = 5.0  # seconds of silence between the two instruments: longer than a window plus a hop


@pytest.fixture(scope="module")
def model():
    return instrec.load_model()


@pytest.fixture(scope="module")
def long_recording(tmp_path_factory):
    """Three flute notes, 5 s of silence, three cello notes (FluidR3 renders, 3 s each): 23 s."""
    from instrec.data.render import render

    root = tmp_path_factory.mktemp("long")
    render(root / "notes", soundfont="fluidr3", instruments=("flute", "cello"), per_class=3, seconds=3.0, seed=2)
    notes = {c: [sf.read(p, dtype="float32")[0] for p in sorted((root / "notes").glob(f"{c}_*.wav"))]
             for c in ("flute", "cello")}
    y = np.concatenate(notes["flute"] + [np.zeros(int(GAP * SR), np.float32)] + notes["cello"])
    return write(root / "flute then cello.wav", y), len(y) / SR


# -- windows and segments -------------------------------------------------------------------


def test_window_spans_cover_the_recording():
    assert window_spans(100, sr=10, window=3.0, hop=1.5) == [(0, 30), (15, 45), (30, 60), (45, 75), (60, 90), (70, 100)]
    assert window_spans(60, sr=10, window=3.0, hop=1.5)[-1] == (30, 60)  # hops land on the end: no extra window
    assert window_spans(20, sr=10, window=3.0, hop=1.5) == [(0, 20)]  # shorter than a window


def test_segments_merge_runs_and_tile_the_recording():
    p = {"a": 0.9, "b": 0.1}
    q = {"a": 0.2, "b": 0.8}
    ws = [Window(0, 3, "a", p), Window(1.5, 4.5, "a", p), Window(3, 6, "silence", None, True),
          Window(4.5, 7.5, "b", q), Window(6, 9, "b", q)]
    segs = merge_segments(ws, duration=9.0)
    # cut halfway between window centres (1.5, 3, 4.5, 6, 7.5), as the instruments' tracks are;
    # next to a silent window, at its edge (all of it is quiet)
    assert [(s.start, s.end, s.label) for s in segs] == [(0, 3.0, "a"), (3.0, 6.0, "silence"), (6.0, 9.0, "b")]
    assert segs[0].probability == pytest.approx(0.9) and segs[1].probability is None


def test_silent_windows_are_relative_to_the_loudest():
    loud = 0.5 * np.sin(np.arange(1000) / 5.0)
    marks = silent_windows([loud, loud * 1e-4, np.zeros(1000), loud * 0.1])
    assert marks.tolist() == [False, True, True, False]  # -80 dB and zero are silent, -20 dB is not


@pytest.mark.parametrize("window,hop", [(0, None), (-1, None), (float("nan"), None), (700, None), (2.0, 3.0), (None, 0.01)])
def test_bad_window_or_hop_is_a_parameter_error(window, hop):
    with pytest.raises(ParameterError):
        check_window(window, hop)


def test_numpy_numbers_are_a_window_and_hop_too():
    """np.float32(2.0) (what arithmetic on arrays gives) is a window, as np.int64 is a rate;
    it was refused as 'must be between 0.1 and 600 seconds; got np.float32(2.0)'."""
    assert check_window(np.float32(2.0), np.int64(1)) == (2.0, 1.0)
    assert type(check_window(np.float32(2.0), None)[0]) is float
    for bad in (np.True_, np.float64("nan"), np.complex64(2)):
        with pytest.raises(ParameterError):
            check_window(bad, None)


def test_a_hop_alone_longer_than_the_models_window_is_refused():
    """--hop 5 with the default 3-s window would skip 2 s in every 5: refused as --window 3 --hop 5 is."""
    assert check_window(None, 3.0, model_window=3.0) == (None, 3.0)
    assert check_window(6.0, 5.0, model_window=3.0) == (6.0, 5.0)  # a window given: the hop is checked against it
    with pytest.raises(ParameterError, match=r"hop \(5 s\) must not be longer than the window \(3 s"):
        check_window(None, 5.0, model_window=3.0)


# -- the Python API ------------------------------------------------------------------------


def test_load_model_describes_itself(model):
    assert len(model.classes) >= 24 and {"cello", "flute", "oboe", "saxophone", "trumpet", "viola", "violin", "unknown"} <= set(model.classes)
    info = model.info
    assert info["recipe"] == "cnn" and info["engine"] == "onnx" and info["window"] == 3.0  # auto: the bundle carries model.onnx
    assert info["sample_rate"] == 22050 and info["metrics"]["philharmonia_600"]["n"] == 600
    with pytest.raises(BundleError, match="no such model"):
        instrec.load_model("/nonexistent/model")


def test_long_recording_timeline(model, long_recording):
    path, duration = long_recording
    r = model.predict_file(path)
    assert r.is_timeline and r.window == 3.0 and r.hop == 1.5
    assert r.duration == pytest.approx(duration)
    # windows tile the file; the last one ends at its end
    assert r.windows[0].start == 0 and r.windows[-1].end == pytest.approx(duration)
    # windows wholly inside the gap are silent, and only they
    in_gap = [w for w in r.windows if w.start >= 9.0 and w.end <= 9.0 + GAP]
    assert in_gap and all(w.silent and w.label == "silence" and w.probabilities is None for w in in_gap)
    assert not any(w.silent for w in r.windows if w.end <= 9.0 or w.start >= 9.0 + GAP)
    # the instruments are found where they play (the flute's C7 and C#6 pass for a recorder or a
    # piccolo at times: its family, the woodwinds, is what must hold)
    first = [w.family for w in r.windows if w.end <= 9.0]
    last = [w.label for w in r.windows if w.start >= 9.0 + GAP]
    assert first.count("woodwinds") > len(first) / 2 and last.count("cello") > len(last) / 2
    # segments tile [0, duration] and a silence segment sits in the gap
    segs = r.segments
    assert segs[0].start == 0 and segs[-1].end == pytest.approx(duration)
    assert all(a.end == b.start and a.label != b.label for a, b in zip(segs, segs[1:]))
    assert any(s.label == "silence" and s.start <= 9.0 + GAP / 2 <= s.end for s in segs)
    # overall probabilities are the mean over the non-silent windows
    loud = [w for w in r.windows if not w.silent]
    assert r.probabilities["flute"] == pytest.approx(np.mean([w.probabilities["flute"] for w in loud]), abs=1e-6)


def test_predict_array_resamples_and_accepts_stereo(model, long_recording):
    path, _ = long_recording
    y, sr = sf.read(path, dtype="float32")
    note = y[: 3 * sr]
    at_22k = model.predict(note, sr)
    # a flute's C7, at the top of its range, passes for a piccolo or a recorder: the family must hold
    assert not at_22k.is_timeline and at_22k.label in ("flute", "piccolo", "recorder") and at_22k.family == "woodwinds"
    import soxr

    at_44k = model.predict(soxr.resample(note, sr, 44100), 44100)
    assert at_44k.label == at_22k.label
    assert max(abs(at_44k.probabilities[c] - at_22k.probabilities[c]) for c in model.classes) < 0.05
    stereo = model.predict(np.stack([note, note]), sr)
    assert stereo.probabilities == pytest.approx(at_22k.probabilities, abs=1e-6)
    explicit = model.predict(note, sr, window=1.0, hop=0.5)  # an explicit window always gives a timeline
    assert explicit.is_timeline and len(explicit.windows) == 5


def test_predict_reads_either_channel_layout(model, long_recording):
    """soundfile.read's (n, channels) is read as such (issue 25, item 4): it used to be averaged over
    time and refused as a constant signal."""
    path, _ = long_recording
    y, sr = sf.read(path, dtype="float32")
    note = y[: 3 * sr]
    stereo = np.stack([note, 0.5 * note[::-1]], axis=1)  # (n, 2), two different channels
    frames_first = model.predict(stereo, sr)
    channels_first = model.predict(np.ascontiguousarray(stereo.T), sr)
    mono_mix = model.predict(stereo.mean(axis=1), sr)
    assert frames_first.probabilities == pytest.approx(channels_first.probabilities, abs=1e-6)
    assert frames_first.probabilities == pytest.approx(mono_mix.probabilities, abs=1e-6)
    assert frames_first.label == channels_first.label == mono_mix.label
    file_ = write(path.parent / "stereo note.wav", stereo, sr, subtype="FLOAT")
    assert model.predict(*sf.read(file_, dtype="float32")).probabilities == pytest.approx(
        model.predict_file(file_).probabilities, abs=1e-5)


@pytest.mark.parametrize("shape", [(2, 2), (100, 100), (65, 22050), (22050, 65), (2, 3, 22050)])
def test_predict_refuses_arrays_whose_layout_cannot_be_told(model, shape):
    y = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    with pytest.raises(ParameterError, match=r"\(channels, n\).*\(n, channels\)"):
        model.predict(y, SR)


def test_predict_refuses_bad_arrays(model):
    with pytest.raises(AudioError, match="NaN"):
        model.predict(np.full(SR, np.nan, np.float32), SR)
    with pytest.raises(AudioError, match="silent"):
        model.predict(np.zeros(SR, np.float32), SR)
    with pytest.raises(ParameterError, match="sr"):
        model.predict(np.ones(SR, np.float32), 0)


def test_max_duration_refuses_before_decoding(model, long_recording):
    path, _ = long_recording
    with pytest.raises(AudioError, match="is 23 s long; the limit is 15 s"):
        model.predict_file(path, max_duration=15)


# -- the command line ----------------------------------------------------------------------


def test_cli_predict_long_file_json_csv_table(long_recording, tmp_path):
    path, duration = long_recording
    r = run_cli("predict", path, "--format", "json")
    assert r.returncode == 0, r.stderr
    (res,) = json.loads(r.stdout)
    assert res["window"] == 3.0 and res["hop"] == 1.5 and len(res["windows"]) == len(window_spans(int(duration * SR), sr=SR, window=3, hop=1.5))
    assert {s["label"] for s in res["segments"]} >= {"flute", "silence", "cello"}

    r = run_cli("predict", path, "--format", "csv", "--window", "2", "--hop", "1")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == len(window_spans(int(duration * SR), sr=SR, window=2, hop=1))
    assert rows[0]["start"] == "0.000" and rows[0]["end"] == "2.000" and "p_flute" in rows[0]
    assert any(row["silent"] == "1" and row["p_flute"] == "" for row in rows)

    r = run_cli("predict", path)
    assert r.returncode == 0, r.stderr
    assert "windows of 3 s, hop 1.5 s" in r.stdout and "silence" in r.stdout


def test_cli_predict_plot(long_recording, tmp_path):
    path, _ = long_recording
    out = tmp_path / "timeline.png"
    r = run_cli("predict", path, "--plot", out)
    assert r.returncode == 0, r.stderr
    assert "Warning" not in r.stderr, r.stderr  # 32 classes' legend once collapsed the layout
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    from PIL import Image

    assert Image.open(out).size == (1000, 600)


def test_a_picture_draws_the_likeliest_classes(long_recording):
    from instrec.display import SHOWN_CLASSES, shown_classes
    from instrec.inference import load_model

    p = load_model().predict_file(long_recording[0])
    shown = shown_classes(p)
    assert len(shown) == SHOWN_CLASSES < len(p.probabilities)
    best = {c: max(w.probabilities[c] for w in p.windows if w.probabilities) for c in p.probabilities}
    assert min(best[c] for c in shown) >= max(best[c] for c in p.probabilities if c not in shown)


def test_cli_short_file_keeps_one_result(long_recording, tmp_path):
    path, _ = long_recording
    y, sr = sf.read(path, dtype="float32")
    short = write(tmp_path / "note.wav", y[: 3 * sr])
    r = run_cli("predict", short, "--format", "json")
    assert r.returncode == 0, r.stderr
    (res,) = json.loads(r.stdout)
    assert "windows" not in res and res["family"] == "woodwinds" and res["duration"] == pytest.approx(3.0)


@pytest.mark.parametrize("args,words", [
    (("--window", "0"), "window must be between"),
    (("--window", "2", "--hop", "3"), "must not be longer than the window"),
    (("--hop", "5"), "must not be longer than the window (3 s"),
])
def test_cli_bad_window_is_one_line(long_recording, args, words):
    path, _ = long_recording
    r = run_cli("predict", path, *args)
    assert r.returncode == 2
    lines = error_lines(r.stderr)
    assert len(lines) == 1 and words in lines[0], r.stderr


def test_cli_plot_needs_one_file(long_recording, tmp_path):
    path, _ = long_recording
    r = run_cli("predict", path, path, "--plot", tmp_path / "x.png")
    assert r.returncode == 2 and "one audio file" in r.stderr


def test_readme_prediction_example_runs(tmp_path):
    """The README's first Python example is real: it runs as printed."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = re.search(r"## Python\n.*?```python\n(.*?)```", readme, re.S).group(1)
    r = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "32 ['accordion', 'banjo', 'bass-guitar']"
    import json

    from instrec.assets import shipped_model_path

    figure = json.loads((shipped_model_path() / "model.json").read_text())["metrics"]["philharmonia_600"]["accuracy"]
    assert lines[1] == f"cnn 3.0 {figure}"
    assert any("silence" in l for l in lines[3:])


# -- families, doubt and calibration (issue 26) ----------------------------------------------


class FixedEngine:
    """An engine answering given probability rows, in turn (no network): the answer rule alone."""

    name = "fixed"

    def __init__(self, classes, rows, **meta):
        from instrec.features import FeatureConfig

        self.classes = list(classes)
        self.feature = FeatureConfig(kind="mfcc", sr=8000, n_fft=256, hop_length=128, n_mels=32, n_mfcc=8)
        self.meta = {"classes": self.classes, "recipe": {"name": "fixed"}, **meta}
        self.rows, self.calls = np.asarray(rows, np.float32), 0

    def predict_proba(self, X):
        out = np.stack([self.rows[(self.calls + i) % len(self.rows)] for i in range(len(X))])
        self.calls += len(X)
        return out


def _tone(seconds=0.5, sr=8000):
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


CLASSES = ["cello", "flute", "oboe", "viola"]


def test_every_prediction_carries_its_family_and_family_sums():
    from instrec.inference import Model

    model = Model(FixedEngine(CLASSES, [[0.40, 0.35, 0.20, 0.05], [0.1, 0.1, 0.1, 0.7]]))
    r = model.predict(_tone(), 8000)
    assert r.label == "cello" and r.family == "bowed-strings"  # the label's family, not the likeliest family
    assert r.family_probabilities == pytest.approx({"bowed-strings": 0.45, "woodwinds": 0.55})
    d = r.to_dict()
    assert list(d)[:5] == ["path", "label", "family", "probabilities", "family_probabilities"]
    long = model.predict(np.tile(_tone(), 4), 8000, window=1.0, hop=1.0)
    assert [w.family for w in long.windows] == ["bowed-strings", "bowed-strings"]
    for w in long.windows:
        assert sum(w.family_probabilities.values()) == pytest.approx(1.0, abs=1e-6)
        assert w.family_probabilities["woodwinds"] == pytest.approx(w.probabilities["flute"] + w.probabilities["oboe"])
    assert long.to_dict()["windows"][0]["family"] == "bowed-strings"


def test_level_family_answers_with_the_likeliest_family():
    from instrec.inference import Model

    r = Model(FixedEngine(CLASSES, [[0.40, 0.35, 0.20, 0.05]]), level="family").predict(_tone(), 8000)
    assert r.label == r.family == "woodwinds" and r.level == "family"
    assert r.probabilities == r.family_probabilities == pytest.approx({"bowed-strings": 0.45, "woodwinds": 0.55})
    assert r.to_dict()["level"] == "family" and r.top(1)[0][0] == "woodwinds"


def test_unknown_by_threshold_by_class_and_overrides():
    from instrec.inference import Model

    doubtful = FixedEngine(CLASSES, [[0.40, 0.35, 0.20, 0.05]], min_confidence=0.5)
    r = Model(doubtful).predict(_tone(), 8000)
    assert r.label == r.family == "unknown" and r.probabilities["cello"] == pytest.approx(0.40)  # still given
    assert Model(doubtful, min_confidence=0).predict(_tone(), 8000).label == "cello"  # 0 disables
    assert Model(doubtful).with_options(min_confidence=0.3).predict(_tone(), 8000).label == "cello"
    plain = Model(FixedEngine(CLASSES, [[0.40, 0.35, 0.20, 0.05]]))  # no threshold, no unknown class: as before
    assert plain.min_confidence == 0 and plain.predict(_tone(), 8000).label == "cello"
    assert plain.with_options(min_confidence=0.41).predict(_tone(), 8000).label == "unknown"
    negative = Model(FixedEngine(CLASSES + ["unknown"], [[0.2, 0.1, 0.1, 0.1, 0.5]]))
    r = negative.predict(_tone(), 8000)
    assert r.label == r.family == "unknown" and r.family_probabilities["unknown"] == pytest.approx(0.5)
    with pytest.raises(ParameterError, match="min_confidence"):
        Model(doubtful, min_confidence=1.5)
    with pytest.raises(ParameterError, match="level"):
        Model(doubtful, level="genus")


def test_unknown_windows_make_unknown_segments():
    from instrec.inference import Model

    rows = [[0.9, 0.05, 0.03, 0.02], [0.3, 0.3, 0.2, 0.2]]
    r = Model(FixedEngine(CLASSES, rows, min_confidence=0.5)).predict(np.tile(_tone(), 4), 8000, window=1.0, hop=1.0)
    assert [w.label for w in r.windows] == ["cello", "unknown"]
    assert [(s.label, s.probability) for s in r.segments] == [("cello", pytest.approx(0.9)), ("unknown", None)]
    assert r.label == "cello"  # the mean: 0.6


def test_the_temperature_is_applied_whatever_the_engine():
    from instrec.inference import Model

    row = [[0.90, 0.06, 0.03, 0.01]]
    hot = Model(FixedEngine(CLASSES, row, temperature=2.0)).predict(_tone(), 8000)
    p = np.array(row[0]) ** 0.5
    assert hot.label == "cello" and hot.probabilities["cello"] == pytest.approx(p[0] / p.sum(), abs=1e-6)
    assert Model(FixedEngine(CLASSES, row)).predict(_tone(), 8000).probabilities["cello"] == pytest.approx(0.9)


def test_restrict_keeps_families_and_threshold():
    from instrec.inference import Model

    model = Model(FixedEngine(CLASSES, [[0.40, 0.35, 0.20, 0.05]]), min_confidence=0.7).restrict("cello,viola")
    r = model.predict(_tone(), 8000)
    assert model.families == {"bowed-strings": ["cello", "viola"]} and r.label == "cello"  # 0.40 / 0.45
    assert model.with_options(min_confidence=0.95).predict(_tone(), 8000).label == "unknown"


class WaveEngine(FixedEngine):
    """A FixedEngine taking 1-s waveform windows at 8 kHz, as the cnn recipes take 3 s: it keeps the rows it is given."""

    def __init__(self, classes, rows, **meta):
        from instrec.features import FeatureConfig

        super().__init__(classes, rows, **meta)
        self.feature = FeatureConfig(kind="waveform", sr=8000, seconds=1.0)
        self.seen = []

    def predict_proba(self, X):
        self.seen.extend(np.asarray(X))
        return super().predict_proba(X)


MULTI = {"recipe": {"name": "fixed", "model": {"output": "sigmoid"}}}


def test_a_file_longer_than_a_waveform_window_is_heard_whole():
    """1.4 s on a 1-s waveform model (one answer, as a 4.2-s file on the shipped model): two
    windows, the file's first and last second, averaged; a multi-label model keeps each
    instrument's best (it plays in some part of the file)."""
    from instrec.inference import Model

    y = _tone(1.4)
    rows = [[0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.2, 0.6]]
    engine = WaveEngine(CLASSES, rows)
    r = Model(engine).predict(y, 8000)
    assert len(engine.seen) == 2 and np.array_equal(engine.seen[0], y[:8000]) and np.array_equal(engine.seen[1], y[-8000:])
    assert r.windows is None and r.probabilities == pytest.approx(dict(zip(CLASSES, np.mean(rows, axis=0))))
    multi = Model(WaveEngine(CLASSES, rows, **MULTI)).predict(y, 8000)
    assert multi.probabilities == pytest.approx(dict(zip(CLASSES, np.max(rows, axis=0))))
    assert [t.label for t in multi.instruments] == ["cello", "viola"]
    # a window of digital silence says nothing: the answer is the sounding one's
    quiet = np.concatenate([y[:3000], np.zeros(len(y) - 3000, np.float32)])
    engine = WaveEngine(CLASSES, rows)
    assert Model(engine).predict(quiet, 8000).probabilities == pytest.approx(dict(zip(CLASSES, rows[0])))
    assert len(engine.seen) == 1


def test_a_window_longer_than_a_waveform_model_hears_all_of_it():
    """--window 2.5 on a 1-s model: each window is heard in 1-s pieces covering it (the last
    overlapping its neighbour), their probabilities averaged (a multi-label model: the best)."""
    from instrec.inference import Model

    y = _tone(5.0)
    rows = [[0.7, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7]]
    engine = WaveEngine(CLASSES, rows)
    r = Model(engine).predict(y, 8000, window=2.5, hop=2.5)
    assert [(w.start, w.end) for w in r.windows] == [(0.0, 2.5), (2.5, 5.0)]
    seen = np.stack(engine.seen)
    assert len(seen) == 6 and np.array_equal(seen[2], y[12000:20000]) and np.array_equal(seen[5], y[-8000:])
    for w in r.windows:
        assert w.probabilities == pytest.approx(dict(zip(CLASSES, np.mean(rows, axis=0))))
    multi = Model(WaveEngine(CLASSES, rows, **MULTI)).predict(y, 8000, window=2.5, hop=2.5)
    assert all(w.active == ["cello", "flute", "viola"] for w in multi.windows)


def test_a_hop_alone_longer_than_the_models_window_is_refused_by_the_api(tmp_path):
    from instrec.inference import Model

    model = Model(WaveEngine(CLASSES, [[0.7, 0.1, 0.1, 0.1]]))
    with pytest.raises(ParameterError, match="hop"):
        model.predict(_tone(3.0), 8000, hop=1.5)
    with pytest.raises(ParameterError, match="hop"):
        model.predict_file(write(tmp_path / "t.wav", _tone(3.0), sr=8000), hop=1.5)
    assert len(model.predict(_tone(3.0), 8000, hop=1.0).windows) == 3


def test_multilabel_segments_say_the_times_the_tracks_say():
    """The label's runs (segments) and each instrument's runs (tracks) cut at the same instants."""
    from instrec.inference import Model

    cello, flute = [0.9, 0.1, 0.1, 0.1], [0.1, 0.9, 0.1, 0.1]
    rows = [cello] * 4 + [flute] * 4 + [cello] * 3  # 11 windows of 1 s every 0.5 s over 6 s
    r = Model(FixedEngine(CLASSES, rows, **MULTI)).predict(np.tile(_tone(), 12), 8000, window=1.0, hop=0.5)
    assert len(r.windows) == 11
    tracks = {t.label: t.segments for t in r.instruments}
    assert [s.label for s in r.segments] == ["cello", "flute", "cello"]
    for s in r.segments:
        assert (s.start, s.end) in tracks[s.label]
    assert sorted(tracks["cello"] + tracks["flute"]) == [(s.start, s.end) for s in r.segments]


def test_min_confidence_is_a_floor_under_a_multilabel_models_thresholds():
    """A multi-label model reports an instrument active iff p >= max(its threshold, min_confidence)."""
    from instrec.inference import Model

    rows = [[0.95, 0.7, 0.1, 0.2]]
    engine = FixedEngine(CLASSES, rows, **MULTI, thresholds={"cello": 0.5, "flute": 0.5, "oboe": 0.5, "viola": 0.5})
    plain = Model(engine)
    assert [t.label for t in plain.predict(_tone(), 8000).instruments] == ["cello", "flute"]
    floor = Model(engine, min_confidence=0.9)
    r = floor.predict(_tone(), 8000)
    assert [t.label for t in r.instruments] == ["cello"] and r.label == "cello"
    long = floor.predict(np.tile(_tone(), 4), 8000, window=1.0, hop=1.0)
    assert [w.active for w in long.windows] == [["cello"], ["cello"]] and [t.label for t in long.instruments] == ["cello"]
    none = plain.with_options(min_confidence=0.96).predict(_tone(), 8000)
    assert none.instruments == [] and none.label == "unknown" and none.probabilities["cello"] == pytest.approx(0.95)
    # a threshold above the floor still holds
    strict = FixedEngine(CLASSES, rows, **MULTI, thresholds={"cello": 0.97, "flute": 0.5, "oboe": 0.5, "viola": 0.5})
    assert Model(strict, min_confidence=0.6).predict(_tone(), 8000).instruments[0].label == "flute"
    assert Model(strict, min_confidence=0.6).info["thresholds"]["cello"] == 0.97


@pytest.fixture(scope="module")
def doubtful_bundle(tmp_path_factory):
    """The old two-class cnn (it answers about 0.5 for anything), with a family and a threshold."""
    import shutil

    from conftest import ROOT

    dst = tmp_path_factory.mktemp("doubt") / "model"
    shutil.copytree(ROOT / "tests" / "fixtures" / "old_bundle_cnn", dst)
    meta = json.loads((dst / "model.json").read_text())
    meta.update(families={"pitch": ["high", "low"]}, min_confidence=0.6, temperature=1.5)
    (dst / "model.json").write_text(json.dumps(meta))
    return dst, write(dst.parent / "probe.wav", _tone(), sr=8000)


def test_cli_min_confidence_and_level(doubtful_bundle):
    from instrec.display import format_predictions

    model, clip = doubtful_bundle
    r = instrec.load_model(model).predict_file(clip)  # the bundle's threshold, 0.6
    assert r.label == r.family == "unknown" and set(r.probabilities) == {"high", "low"}
    assert json.loads(format_predictions([r], "json", 2))[0]["label"] == "unknown"
    table = format_predictions([instrec.load_model(model, level="family").predict_file(clip)], "table", 3)
    assert "family" in table and "pitch (100" in table
    r = run_cli("predict", model, clip, "--format", "csv", "--min-confidence", "0")  # 0: never unknown for doubt
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert r.returncode == 0 and rows[0]["label"] in ("high", "low") and rows[0]["family"] == "pitch"
    assert float(rows[0]["pf_pitch"]) == pytest.approx(1.0, abs=1e-5)
    for bad in (("--min-confidence", "1.5"), ("--min-confidence", "x"), ("--level", "genus")):
        r = run_cli("predict", model, clip, *bad)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr


def test_a_long_file_is_predicted_as_it_is_decoded(tmp_path):
    """predict_file hands each decoded block to the timeline: the answer is that of the whole
    recording decoded first, window for window, and memory holds a block and a window, not the
    recording."""
    import tracemalloc

    from instrec.audio import load
    from instrec.inference import load_model

    model = load_model()
    # 40 s at 44.1 kHz in stereo (resampled and mixed on the way, several decoding blocks): 2 s of
    # zeros, a passage 60 dB down, then a tone; hops of 1.3 s miss the end
    sr = 44100
    t = np.arange(40 * sr) / sr
    tone_ = 0.3 * np.sin(2 * np.pi * 330 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.2 * t))
    tone_[: 2 * sr] = 0.0
    tone_[2 * sr : 6 * sr] *= 1e-3
    y = np.stack([tone_, 0.8 * tone_], axis=1).astype(np.float32)
    path = write(tmp_path / "long.flac", y, sr)
    streamed = model.predict_file(path, hop=1.3)
    whole, _ = load(path, sr=model.feature.sr)
    assert streamed.to_dict() == model.predict(whole, model.feature.sr, hop=1.3, path=str(path)).to_dict()
    assert streamed.windows[0].silent and not streamed.windows[-1].silent
    assert streamed.windows[-1].end == pytest.approx(40.0, abs=1e-3)

    # 6 minutes at the model's rate: 32 MiB decoded; the stream holds far less
    n = 360 * model.feature.sr
    six = write(tmp_path / "six.wav", np.tile(whole[-10 * model.feature.sr :], 36)[:n], model.feature.sr, subtype="PCM_16")
    tracemalloc.start()
    try:
        p = model.predict_file(six)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(p.windows) == 239
    assert peak < 0.75 * 4 * n, f"{peak / 2**20:.1f} MiB"  # 38 MiB when the recording is decoded whole first


def test_a_dc_offset_in_a_quiet_lead_in_is_silence_not_an_error(tmp_path):
    """A 16-bit file whose first 8 s are a 1-LSB offset: those windows are silent (50 dB under the
    music), as before predicting windows while decoding; none of them may stop the file."""
    from instrec.inference import load_model

    sr = 22050
    t = np.arange(20 * sr) / sr
    y = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    y[: 8 * sr] = 1 / 32768
    path = write(tmp_path / "lead-in.wav", y, sr, subtype="PCM_16")
    p = load_model().predict_file(path)
    assert [w.silent for w in p.windows][:4] == [True] * 4 and not p.windows[-1].silent


def test_a_constant_stretch_is_silence_however_far_from_zero(tmp_path):
    """5 s held at 0.1 (a DC offset as loud as the music, no sound), then a tone: the held windows
    are silent; a window's feature error would name the file, never '<array>'."""
    from instrec.inference import load_model

    sr = 22050
    t = np.arange(15 * sr) / sr
    y = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    y[: 5 * sr] = 0.1
    model = load_model()
    p = model.predict_file(write(tmp_path / "held.wav", y, sr))
    q = model.predict(y, sr)
    assert [w.silent for w in p.windows][:2] == [True, True] and not any(w.silent for w in p.windows[3:])
    assert [(w.start, w.label) for w in p.windows] == [(w.start, w.label) for w in q.windows]


def test_plot_refuses_a_recording_it_cannot_hold_before_predicting(tmp_path, monkeypatch):
    import instrec.audio

    path = write(tmp_path / "a.wav", (0.3 * np.sin(np.arange(3 * SR) / 10)).astype(np.float32))
    monkeypatch.setattr(instrec.audio, "MAX_DURATION", 2.0)
    r = run_cli("predict", path, "--plot", tmp_path / "x.png")
    assert r.returncode == 2 and "--plot draws recordings of up to" in r.stderr and "leave out --plot" in r.stderr
    assert r.stdout == "" and not (tmp_path / "x.png").exists()  # nothing predicted first
