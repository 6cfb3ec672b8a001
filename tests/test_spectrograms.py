"""``instrec spectrograms`` (write_spectrograms): the PNG files hold the direct route's pixels exactly,
whether this process or the worker pool computed them; bad files are skipped and listed in order."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import tone, write

from instrec.audio import load
from instrec.errors import ParameterError
from instrec.features.image import spectrogram_image
from instrec.features.mel import mel_spectrogram_db
from instrec.spectrograms import encode_png, write_spectrograms

SR = 22050


def expected(path: Path, mode: str = "gray") -> np.ndarray:
    y, _ = load(path, sr=SR)
    return spectrogram_image(mel_spectrogram_db(y), mode=mode)


def make_folder(root: Path, n: int, *, bad: tuple[int, ...] = ()) -> list[Path]:
    """``n`` short tones in two sub-folders; the files numbered in ``bad`` are not audio."""
    files = []
    for k in range(n):
        path = root / ("low" if k % 2 else "high") / f"clip_{k:03d}.wav"
        if k in bad:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"RIFF not really a wave file")
        else:
            write(path, tone(("sine", "square", "saw")[k % 3], 150 + 7 * k, seconds=0.4 + 0.01 * (k % 5), seed=k))
        files.append(path)
    return files


# --------------------------------------------------------------------------------------------
# the PNG encoder


@pytest.mark.parametrize("shape", [(480, 640), (1, 1), (7, 1), (1, 9), (480, 640, 3), (2, 3, 3)])
@pytest.mark.parametrize("content", ["random", "constant", "ramp"])
def test_encode_png_round_trips_exactly(shape, content):
    rng = np.random.default_rng(0)
    if content == "random":
        img = rng.integers(0, 256, shape, dtype=np.uint8)
    elif content == "constant":
        img = np.full(shape, 200, dtype=np.uint8)
    else:
        img = (np.arange(int(np.prod(shape))) % 256).astype(np.uint8).reshape(shape)
    png = encode_png(img)
    back = Image.open(io.BytesIO(png))
    assert back.mode == ("L" if img.ndim == 2 else "RGB") and back.size == (shape[1], shape[0])
    np.testing.assert_array_equal(np.asarray(back), img)


def test_encode_png_of_the_tutorials_picture_is_small():
    img = spectrogram_image(mel_spectrogram_db(tone("saw", 220, seconds=3.0)))
    png = encode_png(img)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), img)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")  # Pillow's default settings
    assert len(png) < 1.5 * len(buf.getvalue())


@pytest.mark.parametrize("img", [np.zeros((4, 4), dtype=np.float32), np.zeros((4, 4, 4), dtype=np.uint8),
                                 np.zeros(16, dtype=np.uint8), np.zeros((0, 4), dtype=np.uint8)])
def test_encode_png_refuses_what_is_not_a_picture(img):
    with pytest.raises(ParameterError):
        encode_png(img)


# --------------------------------------------------------------------------------------------
# the command


@pytest.mark.parametrize("mode", ["gray", "rgb"])
def test_pictures_are_the_direct_routes_in_this_process(tmp_path, mode):
    files = make_folder(tmp_path / "data", 6, bad=(3,))
    written, skipped, renamed = write_spectrograms(tmp_path / "data", tmp_path / "png", mode=mode, jobs=1)
    assert written == 5 and [p for p, _ in skipped] == [str(files[3])] and renamed == []
    for k, f in enumerate(files):
        png = tmp_path / "png" / f.parent.name / f"{f.stem}.png"
        assert png.exists() == (k != 3)
        if k != 3:
            img = Image.open(png)
            assert img.mode == ("L" if mode == "gray" else "RGB")
            np.testing.assert_array_equal(np.asarray(img), expected(f, mode))
    assert not list((tmp_path / "png").rglob("*.part*"))  # atomic writes leave nothing behind


@pytest.mark.slow
def test_pictures_are_the_direct_routes_with_the_pool(tmp_path):
    """Enough files for the worker pool (rows handed over in shared memory, PNG files written by
    threads): every file written once with the right pixels, the skipped ones listed in order."""
    bad = (5, 60, 118)
    files = make_folder(tmp_path / "data", 120, bad=bad)
    seen = []
    written, skipped, _ = write_spectrograms(tmp_path / "data", tmp_path / "png", jobs=2,
                                          progress=lambda name, n: lambda done, total: seen.append((done, total)))
    assert written == 117
    assert [p for p, _ in skipped] == [str(files[k]) for k in sorted(bad, key=lambda k: str(files[k]))]
    assert all("clip_" in p and why for p, why in skipped)
    assert seen[-1] == (120, 120) and [d for d, _ in seen] == list(range(1, 121))
    pngs = sorted((tmp_path / "png").rglob("*.png"))
    assert len(pngs) == 117
    for f in files[::7]:
        png = tmp_path / "png" / f.parent.name / f"{f.stem}.png"
        if f in [files[k] for k in bad]:
            assert not png.exists()
        else:
            np.testing.assert_array_equal(np.asarray(Image.open(png)), expected(f))
    for f in (files[0], files[-1], files[59], files[61]):  # the two ends, around a chunk's edge
        png = tmp_path / "png" / f.parent.name / f"{f.stem}.png"
        np.testing.assert_array_equal(np.asarray(Image.open(png)), expected(f))


@pytest.mark.parametrize("jobs, n, pooled", [(None, 3, False), (0, 3, False), (2, 3, True), (None, 600, True)])
def test_the_pool_only_where_it_pays(tmp_path, monkeypatch, jobs, n, pooled):
    """With every core asked for, a folder under ``_POOL_MIN_FILES`` files is computed in this process
    (the pool's start-up outweighs what it gains, benchmarks/RESULTS.md); a number asked for is kept."""
    import instrec.features.parallel as parallel

    asked = []

    def spy(paths, config, *, jobs=None, **kw):
        asked.append(jobs)
        yield from ()  # the files themselves are not the point here

    monkeypatch.setattr(parallel, "iter_compact", spy)
    data = tmp_path / "data"
    data.mkdir()
    for k in range(n):
        (data / f"{k}.wav").touch()  # only listed: the spy computes nothing
    write_spectrograms(data, tmp_path / "png", jobs=jobs)
    assert (asked[0] != 1) == pooled


def test_png_files_are_small(tmp_path):
    """Run-length matching at zlib level 1 keeps the files no larger than Pillow's default level's."""
    img = expected(make_folder(tmp_path / "data", 1)[0])
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    assert len(encode_png(img)) <= 1.05 * len(buf.getvalue())


def test_a_failed_write_stops_the_command(tmp_path):
    """A file that cannot be written (here a folder stands where a picture goes) is not a bad input:
    the command stops with the error (an OSError naming the file) instead of listing every file as skipped."""
    make_folder(tmp_path / "data", 4)
    (tmp_path / "png" / "high" / "clip_000.png").mkdir(parents=True)
    with pytest.raises(OSError, match="clip_000.png"):
        write_spectrograms(tmp_path / "data", tmp_path / "png", jobs=1)


def test_an_out_that_is_a_file_is_refused_before_any_work(tmp_path):
    """Review: OUT naming an existing file failed at the first picture ("cannot write
    OUT/high/clip_000.png: File exists", exit 1); it is a usage error naming OUT (exit 2)."""
    make_folder(tmp_path / "data", 2)
    (tmp_path / "png").write_text("a file where the folder should be")
    with pytest.raises(ParameterError, match="png: is a file, not a folder"):
        write_spectrograms(tmp_path / "data", tmp_path / "png", jobs=1)
    assert (tmp_path / "png").read_text() == "a file where the folder should be"


def test_files_whose_stems_meet_keep_a_picture_each(tmp_path):
    """Review item 2: a.wav and a.flac both became a.png, the count said 3 for 2 files. Where stems
    meet in a folder, the pictures are named after the whole file name (a.wav.png, a.flac.png), and a
    whole name that meets another stem (a.wav.flac -> a.wav.png) is renamed the same way."""
    data = tmp_path / "data"
    for k, name in enumerate(["a.wav", "a.flac", "a.wav.flac", "b.wav", "sub/a.wav"]):
        write(data / name, tone(("sine", "square", "saw")[k % 3], 200 + 50 * k, seconds=0.4), format=Path(name).suffix[1:].upper())
    result = write_spectrograms(data, tmp_path / "png", jobs=1)
    pngs = sorted(str(p.relative_to(tmp_path / "png")) for p in (tmp_path / "png").rglob("*.png"))
    assert pngs == ["a.flac.png", "a.wav.flac.png", "a.wav.png", "b.png", "sub/a.png"]
    assert result.written == len(pngs) == 5 and result.skipped == []
    assert sorted(Path(p).name for p in result.renamed) == ["a.flac", "a.wav", "a.wav.flac"]
    for name in ("a.wav", "a.flac", "a.wav.flac"):
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "png" / f"{name}.png")), expected(data / name))


def test_a_blank_out_is_refused_not_the_current_folder(tmp_path, monkeypatch):
    make_folder(tmp_path / "data", 2)
    monkeypatch.chdir(tmp_path / "data")
    with pytest.raises(ParameterError, match="out is empty"):
        write_spectrograms(tmp_path / "data", "", jobs=1)
    assert not list((tmp_path / "data").rglob("*.png"))
