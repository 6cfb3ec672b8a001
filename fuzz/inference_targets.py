"""Inference: ``Model.predict`` on arrays, and its window helpers (``window_spans``,
``merge_segments``, ``check_window``). ``check_prediction`` is the property every answer keeps.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from fuzz.audio_targets import reference_refusal
from fuzz.generators import AMPLITUDES, DTYPES, SPECIALS, SR, signal_array, signals
from fuzz.harness import Context, check_refusal, violated
from instrec.audio import SR_RANGE
from instrec.errors import InstrecError, ParameterError

# Kept small so a run stays bounded on a shared 2-core machine: the property is about
# answering and refusing, not about big inputs.
MAX_ARRAY_SECONDS = 60.0  # Model.predict: audio longer than this (at its own rate) is not drawn


# ---------------------------------------------------------------------------------------------
# Model.predict on arrays


SAMPLE_RATES = st.one_of(
    st.sampled_from([0, -1, -22050, 1, 2, 999, 1000, 8000, 16000, 22050, 44100, 96000, 768_000, 10**6, 10**9,
                     2**63 - 1, 22050.0, 22050.5, "22050", None, True]),
    st.integers(1, 200_000),
)


def predict_cases(*, amps=AMPLITUDES, specials=SPECIALS, dtypes=DTYPES, rates=SAMPLE_RATES):
    """Arrays of any dtype, channel count and rate, with odd window and hop values."""
    return st.fixed_dictionaries({
        "signal": signals(max_samples=6 * SR, amps=amps, specials=specials),
        "dtype": st.sampled_from(dtypes),
        "channels": st.sampled_from([0, 0, 0, 1, 2, 3]),
        "sr": rates,
        "window": st.one_of(st.none(), st.none(), st.sampled_from([0.0, 0.05, 0.1, 0.5, 1.0, 3.0, 700.0, math.nan]),
                            st.floats(0.1, 10.0)),
        "hop": st.one_of(st.none(), st.none(), st.sampled_from([0.1, 0.5, 2.0]), st.floats(0.1, 10.0)),
    })


PREDICT = predict_cases()


def check_prediction(pred, classes: list[str], *, duration: float | None = None) -> None:
    """A Prediction: a known label, one finite probability per class summing to 1; a timeline's
    windows inside the recording and its segments tiling it."""
    from instrec.inference import SILENCE

    if pred.label not in classes:
        violated(f"label {pred.label!r} is not one of the model's classes")
    p = pred.probabilities
    if list(p) != list(classes):
        violated(f"probabilities are for {list(p)}, not the model's classes")
    values = np.array(list(p.values()), dtype=np.float64)
    if not np.all(np.isfinite(values)) or np.any(values < 0) or np.any(values > 1 + 1e-6):
        violated(f"probabilities are not finite numbers in [0, 1]: {p}")
    if abs(values.sum() - 1) > 1e-4:
        violated(f"probabilities sum to {values.sum()}")
    if pred.label != max(p, key=p.get) and p[pred.label] < max(values) - 1e-6:
        violated(f"label {pred.label} is not the most probable class")
    if duration is not None and pred.duration is not None and abs(pred.duration - duration) > 0.01 + 1e-3 * duration:
        violated(f"duration {pred.duration} but the audio lasts {duration}")
    if pred.windows is not None:
        if not pred.windows or not pred.segments:
            violated("a timeline without windows or segments")
        d = pred.duration
        for w in pred.windows:
            if not (0 <= w.start < w.end <= d + 1e-6):
                violated(f"window {w.start}-{w.end} outside 0-{d}")
            if w.silent != (w.label == SILENCE) or (w.probabilities is None) != w.silent:
                violated(f"window {w} is inconsistently silent")
        check_tiling(pred.segments, 0.0, d)


def check_tiling(segments, start: float, end: float) -> None:
    """Segments run from ``start`` to ``end`` without gap, and adjacent ones differ in label."""
    if abs(segments[0].start - start) > 1e-9 or abs(segments[-1].end - end) > 1e-9:
        violated(f"segments span {segments[0].start}-{segments[-1].end}, not {start}-{end}")
    for a, b in zip(segments, segments[1:]):
        if a.end != b.start:
            violated(f"segments {a} and {b} do not meet")
        if a.label == b.label:
            violated(f"adjacent segments share the label {a.label}")
    for s in segments:
        if not s.start <= s.end:
            violated(f"segment {s} ends before it starts")
        if s.probability is not None and not (0 <= s.probability <= 1 + 1e-6):
            violated(f"segment probability {s.probability}")


def predict_duration_ok(case: dict) -> bool:
    """Keep the fuzz bounded: audio whose duration at its rate is absurd is not run (Model.predict
    resamples it to the model's rate first; see the report's finding on tiny rates)."""
    sr = case["sr"]
    if isinstance(sr, (int, float, np.integer, np.floating)) and sr > 0:  # True is 1 Hz; 22050.0 is a rate too
        return case["signal"]["n"] / sr <= MAX_ARRAY_SECONDS
    return True


def windows_ok(window, hop) -> bool:
    """Whether check_window takes ``window`` and ``hop`` (predict must then not refuse them)."""
    from instrec.inference import check_window

    try:
        check_window(window, hop)
    except InstrecError:
        return False
    return True


def check_predict(case: dict, ctx: Context) -> None:
    """Model.predict on any array: a valid Prediction or an InstrecError, and never a refusal of
    audio that is usable as it is given (a plain rate in range, default windows)."""
    if not predict_duration_ok(case):
        return
    y = signal_array(case)
    model = ctx.model
    sr = case["sr"]
    usable = (type(sr) is int and SR_RANGE[0] <= sr <= SR_RANGE[1] and reference_refusal(y, sr) is None
              and windows_ok(case["window"], case["hop"]))
    try:
        pred = model.predict(y, sr, window=case["window"], hop=case["hop"])
    except InstrecError as e:
        check_refusal(e)
        # resampling to the model's rate may leave nothing of a signal above its Nyquist frequency
        if usable and not (sr != model.feature.sr and "silent" in str(e)):
            violated(f"predict refused usable {y.dtype} audio at {sr} Hz: {e}")
        return
    check_prediction(pred, model.classes, duration=y.shape[-1] / sr)


# ---------------------------------------------------------------------------------------------
# Windows and segments


WINDOW_SPANS = st.fixed_dictionaries({
    "n": st.one_of(st.integers(0, 100), st.integers(0, 10**7)),
    "sr": st.one_of(st.sampled_from([1, 8000, 22050, 44100, 96000]), st.integers(1, 200_000)),
    "window": st.floats(0.1, 600.0),
    "hop_ratio": st.floats(0.0, 1.0),
})


def spans_of(case: dict):
    """window_spans of a case, with the window and hop in samples (all None when too many)."""
    from instrec.inference import MIN_WINDOW, window_spans

    hop = max(MIN_WINDOW, case["window"] * case["hop_ratio"])
    w, h = max(1, round(case["window"] * case["sr"])), max(1, round(hop * case["sr"]))
    if case["n"] // h > 200_000:  # keep the list small: the property does not change with it
        return None, None, None, None
    return window_spans(case["n"], sr=case["sr"], window=case["window"], hop=hop), w, h, hop


def check_window_spans(case: dict, ctx: Context) -> None:
    """Windows lie inside [0, n), start at 0, end at n, step by the hop, leave no gap."""
    spans, w, h, _ = spans_of(case)
    if spans is None:
        return
    n = case["n"]
    if not spans:
        violated("no windows")
    if n <= w:
        if spans != [(0, n)]:
            violated(f"a recording no longer than one window ({n} <= {w}) gives {spans[:3]}")
        return
    if spans[0][0] != 0 or spans[-1][1] != n:
        violated(f"windows span {spans[0][0]}..{spans[-1][1]}, not 0..{n}")
    for a, b in spans:
        if not (0 <= a < b <= n) or b - a != w:
            violated(f"window ({a}, {b}) is not a window of {w} inside 0..{n}")
    for (a0, b0), (a1, _) in zip(spans, spans[1:]):
        if not a0 < a1 <= b0:
            violated(f"windows starting at {a0} and {a1} overlap badly or leave a gap (hop {h}, window {w})")
    for (a0, _), (a1, _) in zip(spans[:-2], spans[1:-1]):
        if a1 - a0 != h:
            violated(f"windows at {a0}, {a1} are not one hop ({h}) apart")


MERGE = st.fixed_dictionaries({
    "spans": WINDOW_SPANS,
    "labels": st.lists(st.sampled_from(["a", "b", "c", "silence"]), min_size=1, max_size=400),
    "probs": st.lists(st.floats(0, 1), min_size=1, max_size=50),
})


def check_merge_segments(case: dict, ctx: Context) -> None:
    """Segments tile [0, duration]: the first starts at the first window, each ends where the next
    starts, the last ends at the duration; adjacent segments differ in label."""
    from instrec.inference import SILENCE, Window, merge_segments

    spans, _, _, _ = spans_of(case["spans"])
    if spans is None:
        return
    sr, n = case["spans"]["sr"], case["spans"]["n"]
    labels, probs = case["labels"], case["probs"]
    windows = []
    for i, (a, b) in enumerate(spans[:400]):
        label = labels[i % len(labels)]
        if label == SILENCE:
            windows.append(Window(a / sr, b / sr, SILENCE, None, True))
        else:
            p = probs[i % len(probs)]
            windows.append(Window(a / sr, b / sr, label, {label: p, "other": 1 - p}, False))
    duration = max(n / sr, windows[-1].end)
    segments = merge_segments(windows, duration=duration)
    if not segments:
        violated("no segments for non-empty windows")
    check_tiling(segments, windows[0].start, duration)
    if segments[0].start != 0:
        violated("the first segment does not start at 0")
    if len(segments) > len(windows):
        violated("more segments than windows")
    if merge_segments([], duration=1.0) != []:
        violated("segments of no windows")


CHECK_WINDOW_VALUES = st.one_of(
    st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 1000),
    st.sampled_from([0.1, 600, 600.0000001, 0.0999999, True, False, "1", b"1", [1]]),
)
CHECK_WINDOW = st.fixed_dictionaries({"window": CHECK_WINDOW_VALUES, "hop": CHECK_WINDOW_VALUES})


def check_check_window(case: dict, ctx: Context) -> None:
    """check_window accepts exactly None or a finite number in [0.1, 600] for each (not a bool), hop <= window."""
    from instrec.inference import MAX_WINDOW, MIN_WINDOW, check_window

    def ok(v):
        return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                             and MIN_WINDOW <= v <= MAX_WINDOW)

    window, hop = case["window"], case["hop"]
    accept = ok(window) and ok(hop) and not (window is not None and hop is not None and hop > window)
    try:
        w, h = check_window(window, hop)
    except ParameterError as e:
        check_refusal(e)
        if accept:
            violated(f"check_window refused window={window!r} hop={hop!r}")
        return
    if not accept:
        violated(f"check_window accepted window={window!r} hop={hop!r}")
    for got, given in ((w, window), (h, hop)):
        if (given is None) != (got is None) or (got is not None and (type(got) is not float or got != float(given))):
            violated(f"check_window turned {given!r} into {got!r}")
