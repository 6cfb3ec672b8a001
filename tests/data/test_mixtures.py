"""Mixtures of single-instrument clips (data.mixtures): labels, onsets, activity, determinism, errors."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from instrec.data import mixtures as X
from instrec.data.activity import read_activity
from instrec.data.folder import Clip, load_dataset
from instrec.data.render import FADE_SECONDS, PEAK
from instrec.errors import DataError, ParameterError

SR = 8000
SECONDS = 1.0
HOP = X.HOP_LENGTH / SR
# file name -> (tone frequency, seconds of tone before the silence)
TONES = {"flute_0.wav": (880.0, 0.5), "flute_1.wav": (990.0, 0.25), "cello_0.wav": (220.0, 0.3),
         "cello_1.wav": (247.0, 0.6), "oboe_0.wav": (440.0, 0.7), "oboe_1.wav": (494.0, 0.4)}


def _tone(f0: float, tone_s: float, total_s: float = SECONDS) -> np.ndarray:
    """A sine of ``tone_s`` seconds that stops dead, padded with silence to ``total_s``."""
    t = np.arange(round(tone_s * SR)) / SR
    return np.pad(0.5 * np.sin(2 * np.pi * f0 * t), (0, round(total_s * SR) - len(t))).astype(np.float32)


@pytest.fixture
def clips_dir(tmp_path) -> Path:
    root = tmp_path / "notes"
    root.mkdir()
    for name, (f0, tone_s) in TONES.items():
        sf.write(root / name, _tone(f0, tone_s), SR)
    rng = np.random.default_rng(1)
    sf.write(root / "unknown_0.wav", (0.1 * rng.standard_normal(SR)).astype(np.float32), SR)  # left out
    return root


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _mix(clips_dir: Path, out: Path, **kw) -> X.MixReport:
    kw = {"n": 8, "seconds": SECONDS, "sr": SR, **kw}
    return X.mix_clips(load_dataset(clips_dir, labels="filename").clips, out, **kw)


def test_manifest_labels_files_and_audio(clips_dir, tmp_path):
    calls = []
    report = _mix(clips_dir, tmp_path / "mix", progress=lambda done, total: calls.append((done, total)))
    assert report.written == 8 and report.skipped == [] and calls[-1] == (8, 8) and len(calls) == 8
    assert set(report.labels) <= {"cello", "flute", "oboe"} and "unknown" not in report.labels
    rows = _rows(tmp_path / "mix" / "manifest.csv")
    assert len(rows) == 8 and list(rows[0])[:4] == ["path", "label", "source", "group"]
    assert len({r["group"] for r in rows}) == 8
    sizes = set()
    for row in rows:
        parts = row["parts"].split("|")
        labels = [p.split("_")[0] for p in parts]
        sizes.add(len(parts))
        assert 2 <= len(parts) <= 3 and len(set(labels)) == len(parts)  # distinct instruments
        assert row["label"] == ";".join(sorted(labels)) and row["path"].endswith("+".join(sorted(labels)) + ".wav")
        assert row["sr"] == str(SR) and float(row["seconds"]) == SECONDS
        onsets = [float(x) for x in row["onsets"].split("|")]
        assert onsets[0] == 0.0 and all(0 <= o < SECONDS / 2 for o in onsets)
        y, sr = sf.read(tmp_path / "mix" / row["path"], dtype="float32")
        assert sr == SR and y.shape == (round(SECONDS * SR),)
        assert abs(np.max(np.abs(y)) - PEAK) < 1e-3
        # rebuild the mix from its members, onsets and gains: the file is that sum, normalised and faded
        want = np.zeros(len(y))
        for part, onset, gain in zip(parts, onsets, row["gains"].split("|")):
            member = sf.read(clips_dir / part, dtype="float32")[0]
            start = round(onset * SR)
            member = member[: len(y) - start] / np.max(np.abs(member)) * 10 ** (float(gain) / 20)
            want[start : start + len(member)] += member
        want *= PEAK / np.max(np.abs(want))
        fade = round(FADE_SECONDS * SR)
        want[-fade:] *= 0.5 * (1 + np.cos(np.linspace(0, np.pi, fade)))
        assert np.max(np.abs(y - want)) < 0.01
    assert sizes == {2, 3}  # both sizes are drawn
    assert len({r["parts"].split("_")[0] for r in rows}) > 1  # so is which instrument starts at 0


def test_activity_starts_at_the_onsets_and_ends_with_the_tones(clips_dir, tmp_path):
    _mix(clips_dir, tmp_path / "mix", n=10, min_instruments=1)
    activity = read_activity(tmp_path / "mix" / "activity.csv")
    rows = _rows(tmp_path / "mix" / "manifest.csv")
    assert set(activity) == {r["path"] for r in rows}
    for row in rows:
        spans = activity[row["path"]]
        parts = row["parts"].split("|")
        assert sorted(spans) == sorted(p.split("_")[0] for p in parts)
        for part, onset in zip(parts, map(float, row["onsets"].split("|"))):
            [(start, end)] = spans[part.split("_")[0]]
            tone_end = min(SECONDS, onset + TONES[part][1])
            assert abs(start - onset) <= 0.001
            assert tone_end - 0.001 <= end <= tone_end + HOP + 0.001, (part, onset, end)


def test_a_clip_that_starts_with_silence_is_labelled_where_it_sounds(tmp_path):
    root = tmp_path / "late"
    root.mkdir()
    sf.write(root / "flute_0.wav", _tone(880.0, 0.1), SR)
    sf.write(root / "cello_0.wav", _tone(220.0, 0.2)[::-1].copy(), SR)  # 0.8 s of silence, then the tone
    _mix(root, tmp_path / "mix", n=6)
    activity = read_activity(tmp_path / "mix" / "activity.csv")
    for row in _rows(tmp_path / "mix" / "manifest.csv"):
        y = sf.read(tmp_path / "mix" / row["path"], dtype="float32")[0]
        assert np.max(np.abs(y[: round(HOP * SR)])) > 0.1  # a mixture never starts silent
        for label, [(start, end)] in activity[row["path"]].items():
            first = round(start * SR)  # each labelled part is heard where its span starts, within a frame
            assert np.max(np.abs(y[first : first + X.FRAME_LENGTH])) > 0.1, (row["path"], label, start)


def test_sound_end_of_a_cut_tone_and_a_decay():
    y = _tone(440.0, 0.3)
    end = X.sound_end(y) / SR
    assert 0.3 <= end <= 0.3 + HOP
    sr = 22050  # a decay that falls 40 dB in 0.5 s: frames of a pure exponential fall as it does
    t = np.arange(sr) / sr
    decay = np.sin(2 * np.pi * 440 * t) * 10 ** (-40 / 20 * t / 0.5)
    assert 0.5 - 1 / sr <= X.sound_end(decay) / sr <= 0.5 + X.HOP_LENGTH / sr
    assert X.sound_end(np.ones(100)) == 100  # shorter than a frame: all of it


def test_same_seed_same_bytes_other_seed_other_files(clips_dir, tmp_path):
    def files(folder: Path) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}

    _mix(clips_dir, tmp_path / "a", seed=3)
    _mix(clips_dir, tmp_path / "b", seed=3)
    _mix(clips_dir, tmp_path / "c", seed=4)
    a, b, c = files(tmp_path / "a"), files(tmp_path / "b"), files(tmp_path / "c")
    assert a == b and len(a) == 8 + 4  # the mixtures, manifest.csv, activity.csv, CREDITS.md and the folder's stamp
    assert a["manifest.csv"] != c["manifest.csv"] and a["activity.csv"] != c["activity.csv"]


def test_a_member_that_cannot_be_decoded_is_skipped_and_reported(clips_dir, tmp_path):
    (clips_dir / "flute_bad.wav").write_bytes(b"RIFF not really a wave file")
    (clips_dir / "harp_bad.wav").write_bytes(b"")  # the only harp: the label drops out
    report = _mix(clips_dir, tmp_path / "mix", n=20)
    skipped = {Path(p).name: why for p, why in report.skipped}
    assert set(skipped) == {"flute_bad.wav", "harp_bad.wav"} and len(report.skipped) == 2
    assert all(skipped.values()) and "empty" in skipped["harp_bad.wav"]
    rows = _rows(tmp_path / "mix" / "manifest.csv")
    assert report.written == len(rows) == 20
    assert not any("bad" in r["parts"] for r in rows) and "harp" not in report.labels


def test_a_member_of_mere_quantisation_noise_is_skipped_not_amplified(clips_dir, tmp_path):
    tone = np.sin(2 * np.pi * 880 * np.arange(SR) / SR)
    sf.write(clips_dir / "harp_0.wav", np.stack([tone, -tone], axis=1) * 0.5, SR)  # mono: 16-bit rounding, -96 dBFS
    report = _mix(clips_dir, tmp_path / "mix", n=12)
    assert [Path(p).name for p, _ in report.skipped] == ["harp_0.wav"] and "silent" in report.skipped[0][1]
    assert "harp" not in report.labels and not any("harp" in r["label"] for r in _rows(tmp_path / "mix" / "manifest.csv"))


def test_too_few_decodable_labels_is_a_data_error(clips_dir, tmp_path):
    """Review item 3: the error said "see the skipped clips" but took them with it, and left an
    empty manifest.csv. Now the error carries the report (the skipped clips), and no tables."""
    (clips_dir / "harp_bad.wav").write_bytes(b"junk")
    clips = [c for c in load_dataset(clips_dir, labels="filename").clips if c.label in ("harp", "flute")]
    with pytest.raises(DataError, match="min_instruments is 2") as err:
        X.mix_clips(clips, tmp_path / "mix", n=3, max_instruments=2, sr=SR, seconds=SECONDS)
    assert isinstance(err.value, X.NotEnoughLabels) and err.value.report.written == 0
    assert [Path(p).name for p, _ in err.value.report.skipped] == ["harp_bad.wav"]
    assert not (tmp_path / "mix").exists()  # nothing written: no tables, no stamp, no folder


def test_clips_with_several_labels_are_left_out(clips_dir, tmp_path):
    clips = load_dataset(clips_dir, labels="filename").clips
    duet = Clip(path=clips_dir / "flute_0.wav", label="cello;flute")
    report = X.mix_clips([*clips, duet], tmp_path / "mix", n=2, sr=SR, seconds=SECONDS)
    assert report.written == 2 and [Path(p).name for p, _ in report.skipped] == ["flute_0.wav"]


@pytest.mark.parametrize("kw, match", [
    ({"n": 0}, "n must be"), ({"n": 2.0}, "n must be"),
    ({"min_instruments": 0}, "min_instruments"), ({"min_instruments": 3, "max_instruments": 2}, "min_instruments"),
    ({"max_instruments": 4}, "max_instruments is 4 but the clips have only 3 distinct"),
    ({"min_instruments": 4}, "min_instruments is 4 but the clips have only 3 distinct"),
    ({"n": 100_001, "min_instruments": 5}, "n must be an integer from 1 to 100000"),  # --min 5: never 100001 files
    ({"seconds": 0}, "seconds"), ({"seconds": float("nan")}, "seconds"),
    ({"sr": 100}, "sr must be"), ({"seed": -1}, "seed"), ({"level_db": (0.0, -12.0)}, "level_db"),
    ({"level_db": "loud"}, "level_db"), ({"fmt": "ogg"}, "fmt"), ({"fmt": "mp3", "sr": 9000}, "mp3"),
    ({"progress": 3}, "progress"),
])
def test_bad_arguments_raise_one_line(clips_dir, tmp_path, kw, match):
    with pytest.raises(ParameterError, match=match) as err:
        _mix(clips_dir, tmp_path / "mix", **kw)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "mix").exists()  # refused before anything is written


def test_max_not_given_is_as_many_as_the_clips_have(clips_dir, tmp_path):
    """Review item 4: max_instruments defaulted to 3 and was refused, by its Python name, on clips of
    two instruments; not given, it is now 3 or as many as the clips have (at least min)."""
    two = [c for c in load_dataset(clips_dir, labels="filename").clips if c.label in ("flute", "cello")]
    report = X.mix_clips(two, tmp_path / "mix", n=4, sr=SR, seconds=SECONDS)
    assert report.written == 4 and all(r["label"] == "cello;flute" for r in _rows(tmp_path / "mix" / "manifest.csv"))
    with pytest.raises(ParameterError, match="^--min is 3 but the clips have only 2 distinct"):
        X.mix_clips(two, tmp_path / "x", n=4, min_instruments=3, names={"min_instruments": "--min"})
    with pytest.raises(ParameterError, match="^--sample-rate must be an integer in 8000..192000"):
        X.mix_clips(two, tmp_path / "x", n=4, sr=100, names={"sr": "--sample-rate"})
    assert not (tmp_path / "x").exists()


def test_out_dir_in_the_inputs_or_blank_is_refused(clips_dir, tmp_path, monkeypatch):
    """Review items 1 and 5: mixing into an input folder added the mixtures to its clips (and
    replaced its manifest); '' meant the current folder."""
    clips = load_dataset(clips_dir, labels="filename").clips
    for out, inputs in ((clips_dir, ()), (clips_dir / "mixes", ()), (tmp_path / "data" / "mixes", [tmp_path / "data"])):
        (tmp_path / "data").mkdir(exist_ok=True)
        with pytest.raises(ParameterError, match="is inside the input .*name a folder outside the inputs"):
            _mix(clips_dir, out, inputs=inputs)
    assert not (clips_dir / "mixes").exists() and not (clips_dir / "manifest.csv").exists()
    monkeypatch.chdir(tmp_path / "data")
    with pytest.raises(ParameterError, match="out_dir is empty"):
        X.mix_clips(clips, "", n=2)
    assert list((tmp_path / "data").iterdir()) == []


def test_a_rerun_is_up_to_date_or_resumed_and_other_settings_are_refused(clips_dir, tmp_path):
    """Review item 1: a rerun with a smaller n left the other mixtures on disk, unlisted."""
    import json

    out = tmp_path / "mix"
    first = _mix(clips_dir, out, n=4)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    again = _mix(clips_dir, out, n=4)  # complete: nothing to do
    assert (first.previous, again.previous, again.written) == ("", "complete", 0)
    with pytest.raises(ParameterError, match=r"holds a mix with other settings \(n: 4 there, 3 now\)"):
        _mix(clips_dir, out, n=3)
    oboe, kept = clips_dir / "oboe_0.wav", (clips_dir / "oboe_0.wav").read_bytes()
    when = oboe.stat().st_mtime_ns
    oboe.write_bytes((clips_dir / "oboe_1.wav").read_bytes())  # an input changed: other mixtures
    with pytest.raises(ParameterError, match="clips: 7 clips #[0-9a-f]{8} there, 7 clips #[0-9a-f]{8} now"):
        _mix(clips_dir, out, n=4)
    oboe.write_bytes(kept)
    os.utime(oboe, ns=(when, when))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    stamp = json.loads((out / ".instrec-run.json").read_text())
    (out / ".instrec-run.json").write_text(json.dumps({**stamp, "complete": False}))  # as a killed run leaves it
    resumed = _mix(clips_dir, out, n=4)
    assert (resumed.previous, resumed.written) == ("interrupted", 4)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_folder_of_mixtures_is_refused_saying_its_clips_name_several_instruments(clips_dir, tmp_path):
    """Mixing a mix folder said 'the clips have only 0 distinct instrument label(s)' and nothing of
    the clips it left out: they are mixtures themselves."""
    _mix(clips_dir, tmp_path / "mix")
    with pytest.raises(ParameterError, match=r"only 0 distinct .*8 clip\(s\) left out as naming several instruments"):
        X.mix_clips(load_dataset(tmp_path / "mix").clips, tmp_path / "again", n=2, seconds=SECONDS, sr=SR)


def test_a_resumed_mix_removes_the_temporary_files_a_killed_run_left(clips_dir, tmp_path):
    """A mix killed (SIGKILL) while writing a mixture left ``.mix_....part.wav`` in the folder; the rerun
    that did the mix again kept it, so the folder differed from an uninterrupted mix's."""
    import json

    out = tmp_path / "mix"
    _mix(clips_dir, out, n=3)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    stamp = json.loads((out / ".instrec-run.json").read_text())
    (out / ".instrec-run.json").write_text(json.dumps({**stamp, "complete": False}))  # as a killed run leaves it
    (out / ".mix_00002_cello+flute.wav.abcd1234.part.wav").write_bytes(b"RIFF half a file")
    resumed = _mix(clips_dir, out, n=3)
    assert (resumed.previous, resumed.written) == ("interrupted", 3)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_complete_mix_missing_a_mixture_is_done_again_not_up_to_date(clips_dir, tmp_path):
    """A mixture of a complete mix deleted (or cut short): the rerun said 'up to date, nothing written'
    while manifest.csv listed a file that was not there; render and render-music write what is missing."""
    out = tmp_path / "mix"
    _mix(clips_dir, out, n=3)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    gone = sorted(p for p in out.iterdir() if p.name.startswith("mix_"))[1]
    gone.unlink()
    again = _mix(clips_dir, out, n=3)
    assert (again.previous, again.written) == ("complete", 3)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    gone.write_bytes(before[gone.name][:100])  # cut short
    assert _mix(clips_dir, out, n=3).written == 3
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert _mix(clips_dir, out, n=3).written == 0  # whole: up to date


def test_a_mix_credits_the_sources_of_its_members(clips_dir, tmp_path):
    """Mixing CC-BY notes dropped the attribution render writes beside them."""
    from instrec.data.credits import credits_of

    _mix(clips_dir, tmp_path / "mix", n=6)
    sources = {s for r in _rows(tmp_path / "mix" / "manifest.csv") for s in r["source"].split("+") if s}
    text = (tmp_path / "mix" / "CREDITS.md").read_text()
    assert sources and all(line in text for line in credits_of(sources)), text
