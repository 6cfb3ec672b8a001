"""The 'unknown' clips: noise, espeak-ng speech, drum kits, synthesiser and sound-effect notes."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
import soundfile as sf

from conftest import run_cli
from instrec.data import negatives as N
from instrec.data import render as R
from instrec.data import synth as S

SR = 16000
SECONDS = 0.5
HAVE_ESPEAK = shutil.which("espeak-ng") is not None
TIMGM = S.SOUNDFONTS["timgm6mb"]
needs_timgm = pytest.mark.skipif(not TIMGM.is_installed(), reason="needs FluidSynth and TimGM6mb (timgm6mb-soundfont)")
needs_espeak = pytest.mark.skipif(not HAVE_ESPEAK, reason="needs espeak-ng (apt-get install espeak-ng)")


def clips(job, n=3, seed=0, seconds=SECONDS):
    import fluidsynth

    return list(N.render_job(job, n, seconds=seconds, sr=SR, seed=seed, fluidsynth=fluidsynth))


def check(clip_list, kinds, n_each):
    assert [c.kind for c in clip_list] == [k for k in kinds for _ in range(n_each)]
    for c in clip_list:
        assert len(c.y) == round(SECONDS * c.sr) and c.y.dtype == np.float32
        assert np.all(np.isfinite(c.y)) and np.max(np.abs(c.y)) > 1e-3, (c.kind, c.detail)


def same(a, b) -> bool:
    return len(a) == len(b) and all(x.detail == y.detail and np.array_equal(x.y, y.y) for x, y in zip(a, b))


def test_noise_clips_are_audible_and_deterministic():
    job = N.NegativeJob(("noise",), "noise")
    a = clips(job, n=6)
    check(a, ["noise"], 6)
    assert {c.detail for c in a} <= set(N.NOISE_COLOURS) and all(c.source == "noise" and c.pitch is None for c in a)
    assert same(a, clips(job, n=6)) and not same(a, clips(job, n=6, seed=1))
    assert same(a[:3], clips(job, n=3))  # clip k does not depend on how many follow


def test_noise_colours_tilt_the_spectrum():
    rng = np.random.default_rng(0)
    centroid = {}
    for colour, exponent in N.NOISE_COLOURS.items():
        power = np.abs(np.fft.rfft(N.coloured_noise(rng, SR, SR, exponent))) ** 2
        f = np.fft.rfftfreq(SR, 1 / SR)
        centroid[colour] = float(np.sum(f * power) / np.sum(power))
        slope = np.polyfit(np.log(f[20:]), np.log(power[20:] + 1e-20), 1)[0]
        assert slope == pytest.approx(exponent, abs=0.15), colour
    assert sorted(centroid, key=centroid.get) == ["brown", "pink", "white", "blue", "violet"]


@needs_espeak
def test_speech_from_espeak():
    job = N.NegativeJob(("speech",), "espeak")
    a = clips(job, n=2)
    check(a, ["speech"], 2)
    assert {c.detail for c in a} <= set(N.WORDS) and all(c.source == "espeak" for c in a)
    assert same(a, clips(job, n=2))


def test_missing_espeak_is_one_line(monkeypatch):
    monkeypatch.setattr(N.shutil, "which", lambda name: None)
    jobs, skipped = N.negative_jobs({})
    assert not [j for j in jobs if "speech" in j.kinds]
    assert ("espeak/unknown", "speech negatives need espeak-ng: apt-get install espeak-ng") in skipped


@needs_timgm
def test_drums_synth_and_effects_from_a_soundfont():
    job = N.NegativeJob(("drums", "synth", "effects"), "timgm6mb", TIMGM.path)
    a = clips(job, n=2)
    check(a, ["drums", "synth", "effects"], 2)
    assert all(c.source == "timgm6mb" for c in a)
    assert {a[0].detail, a[1].detail} <= set(N.DRUM_KITS.values()) and a[0].pitch is None
    for c in a[2:]:
        assert c.pitch is not None and c.detail in [N.GM_PROGRAMS[p] for p in (*N.SYNTH_PROGRAMS, *N.EFFECT_PROGRAMS)]
    assert same(a, clips(job, n=2))


def test_drum_patterns_keep_time_and_velocity():
    hits = N.drum_pattern(np.random.default_rng(3), 2.0, 90)
    assert hits and all(0 <= t < 2.0 and 27 <= key <= 81 and 1 <= v <= 127 for t, key, v in hits)
    assert any(key in (35, 36) for _, key, _ in hits)  # a kick


@needs_timgm
def test_render_writes_negatives_beside_the_instruments(tmp_path):
    kw = dict(soundfont="timgm6mb", instruments=["flute"], per_class=1, seconds=SECONDS, sr=SR, negatives=1)
    report = R.render(tmp_path / "a", **kw)
    R.render(tmp_path / "b", **kw)
    kinds = 2 + 3 if HAVE_ESPEAK else 1 + 3
    assert report.n_negatives == kinds and report.n_written == 1 + kinds and report.per_class["unknown"] == kinds
    with open(tmp_path / "a" / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == [*R.MANIFEST_COLUMNS, "kind"] and rows[0]["kind"] == "instrument"
    unknown = [r for r in rows if r["label"] == "unknown"]
    assert {r["source"] for r in unknown} == {"noise", "timgm6mb"} | ({"espeak"} if HAVE_ESPEAK else set())
    assert {r["kind"].split("-")[0] for r in unknown} == {"noise", "drums", "synth", "effects"} | (
        {"speech"} if HAVE_ESPEAK else set())
    for row in rows:
        path = tmp_path / "a" / row["path"]
        label, _, _, dynamic, source, k = path.stem.split("_")
        assert (label, source, dynamic) == (row["label"], row["source"], row["dynamic"])
        y, sr = sf.read(path)
        assert sr == SR and len(y) == round(SECONDS * SR) and np.max(np.abs(y)) > 0.5
        assert path.read_bytes() == (tmp_path / "b" / row["path"]).read_bytes()
    timgm = [r["path"] for r in unknown if r["source"] == "timgm6mb"]
    assert [p.rsplit("_", 1)[1] for p in timgm] == ["000.wav", "001.wav", "002.wav"]  # numbered per source


@needs_timgm
def test_nested_render_puts_each_origin_in_its_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "SOUNDFONTS", {"timgm6mb": TIMGM})
    monkeypatch.setattr(N.shutil, "which", lambda name: None)  # no espeak: said, not fatal
    report = R.render(tmp_path, soundfont="all", instruments=["cello"], per_class=1, seconds=SECONDS, sr=SR, negatives=1)
    assert ("espeak/unknown", "speech negatives need espeak-ng: apt-get install espeak-ng") in report.skipped
    with open(tmp_path / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["source"] for r in rows] == ["timgm6mb"] * 4 + ["noise"]
    assert all(r["path"].startswith(r["source"] + "/") and (tmp_path / r["path"]).is_file() for r in rows)
    assert (tmp_path / "noise" / "manifest.csv").is_file() and len(report.manifests) == 3


@needs_timgm
def test_cli_negatives(tmp_path):
    r = run_cli("render", tmp_path, "--soundfont", "timgm6mb", "--instruments", "flute", "--per-class", "1",
                "--seconds", "0.3", "--negatives", "1")
    assert r.returncode == 0, r.stderr
    assert "of them 'unknown'" in r.stdout
    assert len(list(tmp_path.glob("unknown_*.wav"))) >= 4
    r = run_cli("render", tmp_path, "--negatives", "-1")
    assert r.returncode == 2
