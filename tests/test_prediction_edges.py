"""A hostile or careless caller's inputs to prediction and its outputs: odd arrays and rates, and
tables on a narrow terminal."""

from __future__ import annotations

import numpy as np
import pytest
from test_inference import CLASSES, FixedEngine, _tone

from instrec.errors import AudioError, ParameterError, InstrecError


def _model():
    from instrec.inference import Model

    return Model(FixedEngine(CLASSES, [[0.40, 0.35, 0.20, 0.05]]))


@pytest.mark.parametrize("y", [_tone().astype(np.complex64), np.array(["0.1", "0.2"] * 4000), _tone() > 0,
                               np.array([object()] * 8000)])
def test_arrays_that_are_not_samples_are_refused_not_cast(y):
    """Complex samples lost their imaginary part, booleans became a DC signal and strings a bare ValueError."""
    with pytest.raises(AudioError, match="not audio samples"):
        _model().predict(y, 8000)


@pytest.mark.parametrize("y", [(_tone() * 32767).astype(np.int16), _tone().astype(np.float64),
                               np.stack([_tone()] * 2, 1), np.stack([_tone()] * 2)])
def test_integer_double_and_stereo_arrays_are_heard(y):
    assert _model().predict(y, 8000).label == "cello"


@pytest.mark.parametrize("sr", [8000.0, np.float64(8000), np.float32(8000)])
def test_a_whole_sampling_rate_given_as_a_float_is_taken(sr):
    """sr=8000.0 was refused as 'must be between 1000 and 768000; got 8000.0'."""
    r = _model().predict(_tone(), sr)
    assert r.label == "cello" and r.duration == pytest.approx(0.5)


@pytest.mark.parametrize("sr", [8000.5, float("nan"), float("inf"), True, 0, 1, -8000, "8000", None])
def test_a_sampling_rate_that_is_no_rate_is_refused(sr):
    with pytest.raises(ParameterError, match="sr must be"):
        _model().predict(_tone(), sr)


@pytest.mark.parametrize("kw", [{"window": True}, {"hop": True}, {"window": 1.0, "hop": False}])
def test_a_boolean_window_or_hop_is_refused(kw):
    """window=True was taken as a 1-s window."""
    with pytest.raises(ParameterError, match="window|hop"):
        _model().predict(np.tile(_tone(), 4), 8000, **kw)


def test_every_refusal_is_an_instrec_error():
    """A caller catching InstrecError catches them all, whatever the array."""
    for y in (np.array(["a"]), np.zeros((2, 2, 2)), np.zeros(0), np.full(8000, np.nan)):
        with pytest.raises(InstrecError):
            _model().predict(y, 8000)


def _results():
    from instrec.inference import Model

    rows = [[0.02, 0.03, 0.05, 0.9]] * 3 + [[0.1, 0.1, 0.1, 0.7]] * 3
    model = Model(FixedEngine(["english-horn", "glockenspiel", "double-bass", "vibraphone"], rows))
    return [model.predict(_tone(), 8000, path="a-rather-long-name.wav"),
            model.predict(np.tile(_tone(), 6), 8000, window=1.0, hop=0.5, path="long.wav")]


def _columns(table: str) -> list[str]:
    """Each column of a rich table's first body, its wrapped lines joined, spaces left out."""
    body = table.split("┡", 1)[1].split("└", 1)[0]
    lines = [line.split("│")[1:-1] for line in body.splitlines() if line.startswith("│")]
    return ["".join(cells[i] for cells in lines).replace(" ", "") for i in range(len(lines[0]))]


@pytest.mark.parametrize("width", [40, 60, 80])
def test_a_narrow_terminal_wraps_the_answers_never_cuts_them(monkeypatch, width):
    """At COLUMNS=40 the answer read 'vibr…' and its probability '(14.…'."""
    from instrec import display

    monkeypatch.setattr(display, "terminal_width", lambda: width)
    for k in (1, 3, 4):
        out = display.format_predictions(_results(), "table", k)
        assert "…" not in out and max(map(len, out.splitlines())) <= width
        columns = _columns(out)
        assert columns[1] == "vibraphone(90.0%)vibraphone(78.0%)" and columns[2].startswith("pitched-percussion")
        if k > 1:
            assert columns[-1].startswith("double-bass(5.0%)")
        segments = _columns(out.split("windows of", 1)[1])
        assert segments == ["0.00", "3.00", "vibraphone", "78.0%"]


def test_many_alternatives_share_one_column_each_whole(monkeypatch):
    """--top-k 32 drew 32 columns three characters wide: every name cut to one letter and '…'."""
    from instrec import display

    monkeypatch.setattr(display, "terminal_width", lambda: 80)
    out = display.format_predictions(_results()[:1], "table", 4)
    assert "…" not in out and max(map(len, out.splitlines())) <= 80 and "#2-#4" in out
    assert _columns(out)[-1] == "double-bass(5.0%),glockenspiel(3.0%),english-horn(2.0%)"
    monkeypatch.setattr(display, "terminal_width", lambda: 160)  # where they fit, one column each as before
    assert _columns(display.format_predictions(_results()[:1], "table", 4))[3:] == [
        "double-bass(5.0%)", "glockenspiel(3.0%)", "english-horn(2.0%)"]


def _few_windows(monkeypatch, n):
    import instrec.inference
    import instrec.timeline

    for module in (instrec.timeline, instrec.inference):
        monkeypatch.setattr(module, "MAX_WINDOWS", n)


def test_a_tiny_hop_on_a_long_array_is_refused_before_any_window(monkeypatch):
    """--hop 0.1 on a day-long file made 864,000 windows (~2.2 GB of answers, hours): no bound held."""
    from instrec.inference import Model

    _few_windows(monkeypatch, 40)
    model = Model(FixedEngine(CLASSES, [[0.40, 0.35, 0.20, 0.05]]))
    with pytest.raises(AudioError, match=r"51 windows of 1 s every 0\.1 s \(at most 40\)"):
        model.predict(np.tile(_tone(), 12), 8000, window=1.0, hop=0.1)
    assert model.engine.calls == 0
    _few_windows(monkeypatch, 51)
    assert len(model.predict(np.tile(_tone(), 12), 8000, window=1.0, hop=0.1).windows) == 51


def test_a_tiny_hop_on_a_long_file_is_refused_from_its_header_or_as_it_decodes(monkeypatch, tmp_path):
    import soundfile as sf

    import instrec.audio
    from instrec.inference import Model

    path = tmp_path / "six.wav"
    sf.write(path, np.tile(_tone(), 12), 8000)
    _few_windows(monkeypatch, 40)
    model = Model(FixedEngine(CLASSES, [[0.40, 0.35, 0.20, 0.05]]))
    with pytest.raises(AudioError, match="51 windows"):
        model.predict_file(path, window=1.0, hop=0.1)
    assert model.engine.calls == 0  # refused before decoding
    monkeypatch.setattr(instrec.audio, "header_seconds", lambda p: 1.0)  # a header that understates the length
    with pytest.raises(AudioError, match="more than 40 windows"):
        model.predict_file(path, window=1.0, hop=0.1)
    assert model.engine.calls <= 40


def test_a_narrow_terminal_wraps_a_multilabel_table_never_cuts_it(monkeypatch):
    from instrec import display
    from instrec.inference import Model
    from test_inference import MULTI

    rows = [[0.9, 0.8, 0.1, 0.7]]
    model = Model(FixedEngine(["english-horn", "glockenspiel", "double-bass", "vibraphone"], rows, **MULTI))
    results = [model.predict(np.tile(_tone(), 6), 8000, window=1.0, hop=0.5, path="duet.wav")]
    monkeypatch.setattr(display, "terminal_width", lambda: 40)
    out = display.format_predictions(results, "table", 3)
    assert "…" not in out and max(map(len, out.splitlines())) <= 40
    assert _columns(out)[1] == "english-hornglockenspielvibraphone"
    assert _columns(out.split("windows of", 1)[1])[2] == "english-horn,glockenspiel,vibraphone"
