"""Hostile and odd audio, in the loader, the Python API, the CLI and the service: each case is
handled correctly or refused with one clear line, quickly, and never with a traceback or a 5xx."""

from __future__ import annotations

import json
import os
import struct
import time

import numpy as np
import pytest
import soundfile as sf

import instrec
from instrec.audio import load
from instrec.errors import AudioError

from conftest import SR, error_lines, run_cli, tone, write

NOTE = tone("saw", 440.0, seconds=1.0)


def _wav_with_header(path, *, sr=SR, channels=1, bits=16, data_bytes=None, body=b"\x01\x00" * 2000):
    """A hand-made RIFF/WAVE whose header may lie about the rate or the length."""
    size = len(body) if data_bytes is None else data_bytes
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, sr, sr * block, block, bits)
    path.write_bytes(b"RIFF" + struct.pack("<I", 36 + size) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
                     + b"data" + struct.pack("<I", size) + body)
    return path


@pytest.fixture(scope="module")
def model():
    return instrec.load_model()


# -- formats a user really has: all of them load and predict ---------------------------------


@pytest.mark.parametrize("sr,subtype,channels", [
    (8000, "PCM_16", 1), (96000, "PCM_24", 1), (44100, "PCM_32", 2), (48000, "FLOAT", 6),
    (22050, "DOUBLE", 1), (16000, "PCM_U8", 1),
])
def test_rates_depths_and_channels_load_and_predict(tmp_path, model, sr, subtype, channels):
    import soxr

    y = soxr.resample(NOTE, SR, sr).astype(np.float32)
    path = write(tmp_path / f"note_{sr}_{subtype}.wav", np.stack([y] * channels, axis=1), sr, subtype=subtype)
    z, out_sr = load(path, sr=SR)
    assert out_sr == SR and abs(len(z) - SR) <= 2  # 1 s at 22,050 Hz, whatever it was stored as
    band_limited = soxr.resample(y, sr, SR)  # what survives the file's own rate
    n = min(len(z), len(band_limited))
    assert np.corrcoef(z[:n], band_limited[:n])[0, 1] > 0.99
    r = model.predict_file(path)
    assert abs(sum(r.probabilities.values()) - 1) < 1e-5
    # the file's answer is the answer to the audio it holds: nothing lost to its format or channels
    ref = model.predict(z, SR).probabilities
    assert r.probabilities == pytest.approx(ref, abs=1e-5) and r.label == max(ref, key=ref.get)


def test_clipping_and_odd_names_are_fine(tmp_path, model):
    clipped = np.clip(8 * NOTE, -1, 1)
    path = write(tmp_path / "flûte à bec ♪ (take 1) 'x'.wav", clipped)
    r = run_cli("predict", path, "--format", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["path"] == str(path)


# -- refused, with one line naming the file and the problem ----------------------------------


def _cases(tmp_path):
    cases = {}
    (tmp_path / "empty.wav").write_bytes(b"")
    cases["empty"] = (tmp_path / "empty.wav", "empty file")
    (tmp_path / "text.mp3").write_text("not audio at all\n" * 50)
    cases["text"] = (tmp_path / "text.mp3", "not readable as audio")
    cases["truncated"] = (_wav_with_header(tmp_path / "cut.wav", data_bytes=4_000_000), "truncated")
    cases["hours"] = (_wav_with_header(tmp_path / "hours.wav", sr=8000, data_bytes=0x7FFF0000 - 2), "truncated")
    cases["rate"] = (_wav_with_header(tmp_path / "rate.wav", sr=3), "implausible sampling rate")
    cases["silent"] = (write(tmp_path / "silent.wav", np.zeros(SR, np.float32)), "silent")
    cases["dc"] = (write(tmp_path / "dc.wav", np.full(SR, 0.25, np.float32), subtype="FLOAT"), "constant signal")
    nan = NOTE.copy()
    nan[100] = np.nan
    cases["nan"] = (write(tmp_path / "nan.wav", nan, subtype="FLOAT"), "NaN")
    inf = NOTE.copy()
    inf[5] = np.inf
    cases["inf"] = (write(tmp_path / "inf.wav", inf, subtype="FLOAT"), "NaN or infinite")
    cases["short"] = (write(tmp_path / "short.wav", NOTE[:200]), "too short")
    (tmp_path / "loop_a.wav").symlink_to(tmp_path / "loop_b.wav")
    (tmp_path / "loop_b.wav").symlink_to(tmp_path / "loop_a.wav")
    cases["symlink loop"] = (tmp_path / "loop_a.wav", "cannot be opened")
    (tmp_path / "dangling.wav").symlink_to(tmp_path / "nowhere.wav")
    cases["dangling"] = (tmp_path / "dangling.wav", "broken symbolic link")
    os.mkfifo(tmp_path / "pipe.wav")
    cases["fifo"] = (tmp_path / "pipe.wav", "not a regular file")
    (tmp_path / "folder.wav").mkdir()
    cases["folder"] = (tmp_path / "folder.wav", "is a folder")
    return cases


def test_each_hostile_file_is_one_clear_error(tmp_path, model):
    for name, (path, words) in _cases(tmp_path).items():
        t0 = time.perf_counter()
        with pytest.raises(AudioError) as e:
            model.predict_file(path)
        assert words in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value), (name, str(e.value))
        assert time.perf_counter() - t0 < 5, f"{name} took too long"


def test_duration_cap_applies_before_decoding(tmp_path):
    path = write(tmp_path / "long.flac", np.tile(NOTE, 30), subtype="PCM_16")  # 30 s
    with pytest.raises(AudioError, match="is 30 s long; the limit is 10 s"):
        load(path, max_duration=10)
    assert len(load(path, max_duration=None)[0]) == 30 * SR


def test_files_stream_block_by_block(tmp_path, monkeypatch):
    """Every file is mixed and resampled block by block; the result is the one-shot decode's
    (soundfile's whole read, averaged, resampled at once by soxr), sample for sample."""
    import soxr

    import instrec.audio as A

    y = np.tile(NOTE, 12)
    path = write(tmp_path / "stereo48k.wav", np.stack([y, -0.5 * y], axis=1), SR, subtype="FLOAT")
    x, file_sr = sf.read(path, dtype="float32", always_2d=True)
    whole = soxr.resample(x.T.mean(axis=0), file_sr, 16000, quality="HQ")
    monkeypatch.setattr(A, "BLOCK_SAMPLES", 5000)  # dozens of blocks
    streamed, _ = load(path, sr=16000)
    assert abs(len(streamed) - len(whole)) <= 1
    n = min(len(streamed), len(whole))
    assert np.max(np.abs(streamed[100 : n - 100] - whole[100 : n - 100])) < 1e-3
    np.testing.assert_array_equal(streamed, whole)  # soxr's stream is its one-shot resampler, chunked
    channels, _ = load(path, sr=16000, mono=False)
    np.testing.assert_array_equal(channels, np.stack([soxr.resample(c, file_sr, 16000, quality="HQ") for c in x.T]))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file(tmp_path, model):
    path = write(tmp_path / "locked.wav", NOTE)
    path.chmod(0)
    with pytest.raises(AudioError, match="permission denied"):
        model.predict_file(path)


def test_cli_batch_skips_every_hostile_file_and_predicts_the_rest(tmp_path):
    cases = _cases(tmp_path)
    good = write(tmp_path / "good.wav", NOTE)
    del cases["folder"]  # inside a folder, a folder named x.wav is only a folder
    r = run_cli("predict", tmp_path, "--format", "json", timeout=120)
    assert r.returncode == 0, r.stderr
    assert [d["path"] for d in json.loads(r.stdout)] == [str(good)]
    lines = error_lines(r.stderr)
    assert "Traceback" not in r.stderr
    # the skip list and nothing else (no decoder chatter): each case, and loop_b.wav, the loop's other end
    assert lines[0] == f"skipped {len(cases) + 1} file(s):" and len(lines) == len(cases) + 2, r.stderr
    for name, (path, words) in cases.items():
        assert any(str(path) in l and words in l for l in lines), (name, r.stderr)


def test_service_answers_4xx_to_every_hostile_upload(tmp_path, model):
    from fastapi.testclient import TestClient

    from instrec.service import create_app

    client = TestClient(create_app(model, tmp_dir=tmp_path / "uploads"))
    for name, (path, words) in _cases(tmp_path).items():
        if not path.is_file() or path.is_symlink():
            continue  # pipes, folders and links are not uploads
        r = client.post("/v1/predict", files={"file": (path.name, path.read_bytes(), "audio/wav")})
        assert 400 <= r.status_code < 500, (name, r.status_code, r.text)
        assert list(r.json()) == ["error"]
    assert not list((tmp_path / "uploads").iterdir())  # no upload left behind
