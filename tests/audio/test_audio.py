import numpy as np
import pytest
import soundfile as sf

from instrec.audio import fix_length, load
from instrec.errors import AudioError, ParameterError

from conftest import SR, tone, write


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "mp3"])
def test_load_every_format_resamples_to_22050_mono(tmp_path, ext):
    y = tone("saw", 440, seconds=1.0, sr=44100)
    f = write(tmp_path / f"a.{ext}", np.stack([y, 0.5 * y], axis=1), sr=44100)
    x, sr = load(f)
    assert sr == SR and x.ndim == 1 and x.dtype == np.float32
    assert abs(len(x) - SR) < 2000  # mp3 adds encoder padding
    # the mono mix of the two channels is 0.75 y; check the level survived decoding/resampling
    assert 0.3 < np.abs(x).max() < 0.5


def test_load_keeps_native_rate_and_channels(tmp_path):
    y = np.stack([tone("sine", 300, sr=8000), tone("square", 300, sr=8000)], axis=1)
    x, sr = load(write(tmp_path / "st.wav", y, sr=8000), sr=None, mono=False)
    assert sr == 8000 and x.shape == (2, 8000)


def test_duration_reads_only_the_start(tmp_path):
    x, _ = load(write(tmp_path / "a.wav", tone("sine", 440, seconds=2.0)), duration=0.5)
    assert len(x) == SR // 2


@pytest.mark.parametrize(
    "make, problem",
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_text("this is not audio at all\n" * 20), "not readable as audio"),
        (lambda p: sf.write(str(p), np.zeros(SR, np.float32), SR), "silent (all samples are zero)"),
        (lambda p: sf.write(str(p), np.full(SR, 3e-7, np.float32), SR, subtype="FLOAT"),
         "silent (its loudest sample, 3.0e-07, is below 1e-06"),
        (lambda p: sf.write(str(p), np.full(SR, np.nan, np.float32), SR, subtype="FLOAT"), "NaN"),
    ],
    ids=["missing", "empty", "not-audio", "silent", "near-silent", "nan"],
)
def test_bad_files_raise_one_clear_audio_error(tmp_path, make, problem):
    p = tmp_path / "bad.wav"
    make(p)
    with pytest.raises(AudioError) as e:
        load(p)
    msg = str(e.value)
    assert str(p) in msg and problem in msg and "\n" not in msg


def test_truncated_wav_and_mp3_are_refused(tmp_path):
    for ext in ("wav", "mp3"):
        whole = write(tmp_path / f"whole.{ext}", tone("saw", 220, seconds=3.0))
        data = whole.read_bytes()
        cut = tmp_path / f"cut.{ext}"
        cut.write_bytes(data[: len(data) // 2])
        with pytest.raises(AudioError, match="truncated"):
            load(cut)
        load(whole)  # the whole file is fine


def test_a_wav_streamed_to_a_pipe_loads_to_its_end(tmp_path):
    """Writers to a pipe cannot go back to fill in the data size: they leave 0xFFFFFFFF or a
    near-2-GiB placeholder (sox, ffmpeg). Such a file is its audio up to the end, not truncated."""
    import struct

    whole = write(tmp_path / "whole.wav", tone("saw", 220, seconds=2.0))
    y, _ = load(whole)
    data = bytearray(whole.read_bytes())
    at = data.find(b"data") + 4
    for size in (0x7FFFF000, 0x7FFFFFFF, 0xFFFFFFFF):  # (0: libsndfile reads no samples)
        data[at:at + 4] = struct.pack("<I", size)
        (tmp_path / "piped.wav").write_bytes(data)
        z, _ = load(tmp_path / "piped.wav")
        assert np.array_equal(y, z), hex(size)


def test_folder_is_not_a_file(tmp_path):
    with pytest.raises(AudioError, match="folder"):
        load(tmp_path)


def test_bad_sr_is_a_parameter_error(tmp_path):
    with pytest.raises(ParameterError, match="sr"):
        load(write(tmp_path / "a.wav", tone("sine", 440)), sr=-5)


def test_fix_length():
    assert len(fix_length(np.ones(10), size=4)) == 4
    assert fix_length(np.ones(2), size=4).tolist() == [1, 1, 0, 0]
