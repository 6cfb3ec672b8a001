"""A small file that claims gigabytes of samples (issue 25, item 1): decoding is bounded from the
header, streams block by block into a mono resampled result, and stops at a caller's deadline."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import soundfile as sf

from instrec.audio import MAX_DECODE_SAMPLES, MAX_RESULT_SAMPLES, load
from instrec.errors import AudioError, ParameterError

from conftest import ROOT

BOMB_SR, BOMB_CHANNELS, BOMB_SECONDS = 655_350, 8, 60  # FLAC's highest rate, its most channels
GB = 1 << 30


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    """60 s of 8 channels at 655,350 Hz, constant in 65,536-frame steps: 343 KB of FLAC that
    decodes to 1.26 GB of float32 at the file's rate."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.flac"
    rng = np.random.default_rng(0)
    with sf.SoundFile(str(path), "w", samplerate=BOMB_SR, channels=BOMB_CHANNELS, format="FLAC",
                      subtype="PCM_16") as f:
        for start in range(0, BOMB_SECONDS * BOMB_SR, 1 << 16):
            n = min(1 << 16, BOMB_SECONDS * BOMB_SR - start)
            f.write(np.broadcast_to(rng.integers(-20000, 20000, BOMB_CHANNELS).astype(np.int16), (n, BOMB_CHANNELS)).copy())
    assert path.stat().st_size < 500_000
    return path


def _claiming(bomb, tmp_path, seconds: float):
    """The bomb with its STREAMINFO's total-samples field rewritten to claim ``seconds``."""
    data = bytearray(bomb.read_bytes())
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # the first metadata block is STREAMINFO
    (word,) = struct.unpack(">Q", data[18:26])  # rate (20 bits), channels, depth, total samples (36)
    data[18:26] = struct.pack(">Q", (word & ~((1 << 36) - 1)) | int(seconds * BOMB_SR))
    path = tmp_path / f"claims_{seconds:g}s.flac"
    path.write_bytes(bytes(data))
    return path


# VmHWM, not ru_maxrss: Linux folds the parent's peak (a large pytest process) into a child's
# ru_maxrss at exec, while VmHWM belongs to the child's own memory map.
_CHILD = """
import json, sys
import instrec
from instrec.audio import load

def peak_kb():
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))

y, sr = load(sys.argv[1])
peak_load = peak_kb()
r = instrec.load_model().predict_file(sys.argv[1])
print(json.dumps({"n": len(y), "sr": sr, "label": r.label, "duration": r.duration, "load_kb": peak_load,
                  "predict_kb": peak_kb()}))
"""


def test_a_decompression_bomb_decodes_in_bounded_memory(bomb):
    """Decoded in one piece, every channel at the file's rate, the bomb took 1.4 GB to load; streamed
    into a mono 22,050-Hz result it needs tens of MB (the model's own working set aside)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    r = subprocess.run([sys.executable, "-c", _CHILD, str(bomb)], capture_output=True, text=True, timeout=120,
                       env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["sr"] == 22050 and out["n"] == BOMB_SECONDS * 22050 and out["duration"] == pytest.approx(BOMB_SECONDS)
    assert out["load_kb"] * 1024 < GB / 4, out  # the old decode: 1.38 GB
    assert out["predict_kb"] * 1024 < GB, out


def test_what_a_header_claims_is_bounded_before_decoding(bomb, tmp_path):
    # 599 s claimed: 3.1 billion samples to decode (12.6 GB of float32), refused from the header
    claims = _claiming(bomb, tmp_path, 599)
    t0 = time.perf_counter()
    with pytest.raises(AudioError, match=r"would decode to 3.14 billion samples \(8 channels x 9.98 min at 655350 Hz\)"):
        load(claims)
    assert time.perf_counter() - t0 < 0.5
    assert 599 * BOMB_SR * BOMB_CHANNELS > MAX_DECODE_SAMPLES > BOMB_SECONDS * BOMB_SR * BOMB_CHANNELS
    # every channel kept at the file's rate: 1.17 GiB to hold, more than the result may take
    t0 = time.perf_counter()
    with pytest.raises(AudioError, match=r"would decode to 1.17 GiB of samples at 655350 Hz; at most 512 MiB"):
        load(bomb, sr=None, mono=False)
    assert time.perf_counter() - t0 < 0.5
    assert 4 * MAX_RESULT_SAMPLES == 512 << 20
    # a part of it is fine
    y, sr = load(bomb, sr=None, mono=False, duration=1.0)
    assert sr == BOMB_SR and y.shape == (BOMB_CHANNELS, BOMB_SR) and y.flags.c_contiguous


@pytest.mark.parametrize("kind", ["instant", "callable"])
def test_a_deadline_stops_a_decode(bomb, kind):
    t0 = time.monotonic()
    if kind == "instant":
        deadline = t0 + 0.2
    else:
        stop = threading.Event()
        threading.Timer(0.2, stop.set).start()
        deadline = stop.is_set
    with pytest.raises(AudioError, match="decoding stopped after .* of audio: its time limit passed"):
        load(bomb, deadline=deadline)
    assert time.monotonic() - t0 < 1.0  # a whole decode takes about 2 s


def test_a_passed_deadline_decodes_nothing_and_a_bad_one_is_a_parameter_error(bomb):
    with pytest.raises(AudioError, match="^[^\n]*bomb.flac: decoding stopped: its time limit passed$"):
        load(bomb, deadline=time.monotonic())
    for bad in ("soon", float("nan"), True):
        with pytest.raises(ParameterError, match="deadline"):
            load(bomb, deadline=bad)
    for bad in (0, -1.0, float("inf"), "1"):
        with pytest.raises(ParameterError, match="duration"):
            load(bomb, duration=bad)


def test_the_service_job_stops_at_its_request_deadline(bomb, tmp_path):
    """The worker thread of a request whose time limit passed stops decoding (the handler has
    answered 503 already) and removes its temporary file."""
    pytest.importorskip("fastapi")
    import instrec
    from instrec.service.routes import _predict_job
    from instrec.service.upload import ServiceError

    model = instrec.load_model()
    for delay in (0.0, 0.3):  # waited its turn past the limit; ran out of time while decoding
        t0 = time.monotonic()
        with open(bomb, "rb") as upload, pytest.raises(ServiceError) as e:
            _predict_job(model, upload, "bomb.flac", "audio/flac", window=None, hop=None, top_k=3,
                         spectrogram=False, tmp_dir=str(tmp_path), max_duration=600.0, deadline=t0 + delay)
        assert e.value.status == 503 and "time limit" in e.value.message
        assert time.monotonic() - t0 < delay + 1.0
        assert not list(tmp_path.iterdir())


def test_block_mixing_is_numpy_mean_to_the_bit():
    """The column-by-column mix of a block is x.mean(axis=1), bit for bit, for any channel count:
    streamed decoding gives the values the one-piece decode gave."""
    from instrec.audio import _mix

    rng = np.random.default_rng(1)
    for channels in range(1, 12):
        for n in (1, 7, 1000, 100_001):
            x = (rng.standard_normal((n, channels)) * rng.uniform(1e-3, 3)).astype(np.float32)
            np.testing.assert_array_equal(_mix(x), x.T.mean(axis=0))
