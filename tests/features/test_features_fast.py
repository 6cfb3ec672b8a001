"""Fast features (issue 5): the fast routes give the reference values; parallel extraction gives
what serial extraction gives; the feature cache hits, misses and heals as it should."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import librosa
import numpy as np
import pytest

from conftest import SR, real_data_or_skip, run_cli, tone, write
from instrec.data.folder import find_audio
from instrec.features import FeatureConfig, compute, compute_file, extract, iter_features
from instrec.features import parallel, pool
from instrec.features.cache import FeatureCache, config_digest, file_digest
from instrec.features.image import flatten_image, spectrogram_image
from instrec.features.mel import mel_filters, mel_power, mel_spectrogram_db, power_to_db
from instrec.features.mfcc import mfcc, mfcc_mean, mfcc_stats

MFCC = FeatureConfig(kind="mfcc")


def _clips(folder: Path) -> list[Path]:
    return sorted(find_audio(folder))


def _librosa_mfcc(y, n_mfcc=40, **kw):
    return librosa.feature.mfcc(y=y, sr=SR, n_mfcc=n_mfcc, **kw)


def _close(mine, ref, *, rel=1e-3):
    """max |mine - ref| <= rel x the range of ref (the issue's tolerance)."""
    assert mine.shape == ref.shape
    span = float(ref.max() - ref.min())
    assert float(np.abs(mine - ref).max()) <= rel * span, (float(np.abs(mine - ref).max()), span)


# --------------------------------------------------------------------------------------------
# the fast routes against librosa


@pytest.mark.parametrize("sr,n_fft,n_mels,fmin,fmax", [
    (22050, 2048, 128, 0.0, None), (22050, 2048, 64, 30.0, None), (16000, 1024, 40, 20.0, 7000.0),
    (44100, 4096, 128, 0.0, None), (22050, 1023, 96, 0.0, 8000.0),
])
def test_mel_filters_are_librosas(sr, n_fft, n_mels, fmin, fmax):
    np.testing.assert_array_equal(mel_filters(sr, n_fft, n_mels, fmin, fmax),
                                  librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax))


@pytest.mark.parametrize("seconds", [0.02, 0.3, 1.0, 3.0, 30.0])
@pytest.mark.parametrize("n_fft,hop", [(2048, 512), (1024, 256), (1023, 300)])
def test_mel_db_matches_librosa(seconds, n_fft, hop):
    y = tone("saw", 311.0, seconds=seconds, seed=3)
    ref = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=SR, n_fft=n_fft, hop_length=hop),
                              ref=np.max, top_db=80.0)
    exact = mel_spectrogram_db(y, n_fft=n_fft, hop_length=hop)
    fast = mel_spectrogram_db(y, n_fft=n_fft, hop_length=hop, exact=False)
    assert exact.dtype == np.float32 and exact.shape == ref.shape
    np.testing.assert_array_equal(exact, ref)  # librosa's arithmetic: the same floats
    assert np.abs(fast - ref).max() <= 1e-2  # dB, out of 80


def test_mfcc_matches_librosa_on_tones():
    for kind, f0, seconds in (("sine", 440.0, 3.0), ("square", 97.0, 1.0), ("saw", 1250.0, 0.1)):
        y = tone(kind, f0, seconds=seconds)
        ref = _librosa_mfcc(y)
        _close(mfcc(y, n_mfcc=40), ref)
        _close(mfcc_mean(y), ref.mean(axis=1))
    y = tone("saw", 220.0, seconds=2.0)
    _close(mfcc_mean(y, n_mfcc=13, n_mels=40, n_fft=1024, hop_length=256),
           _librosa_mfcc(y, n_mfcc=13, n_mels=40, n_fft=1024, hop_length=256).mean(axis=1))


def test_fast_features_match_reference_on_rendered_clips(rendered_data):
    from instrec.audio import load

    for path in _clips(rendered_data)[::2]:
        y, _ = load(path)
        ref = _librosa_mfcc(y)
        _close(compute(y, MFCC), ref.mean(axis=1))
        _close(mfcc(y, n_mfcc=40), ref)
        S_ref = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=SR), ref=np.max)
        np.testing.assert_array_equal(mel_spectrogram_db(y), S_ref)
        np.testing.assert_array_equal(compute(y, FeatureConfig(kind="image")), flatten_image(spectrogram_image(S_ref)))


@pytest.mark.realdata
def test_fast_features_match_reference_on_real_clips():
    from instrec.audio import load

    files = _clips(real_data_or_skip())[::20]
    for path in files:
        y, _ = load(path)
        ref = _librosa_mfcc(y)
        _close(mfcc_mean(y), ref.mean(axis=1))
        S_ref = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=SR), ref=np.max)
        np.testing.assert_array_equal(mel_spectrogram_db(y), S_ref)


# --------------------------------------------------------------------------------------------
# parallel, streaming extraction


@pytest.fixture(scope="module")
def files_with_bad(rendered_data, tmp_path_factory):
    """24 rendered clips with an unreadable and a missing file in the middle."""
    files = _clips(rendered_data)
    bad = tmp_path_factory.mktemp("bad") / "text.wav"
    bad.write_text("not audio\n" * 50)
    return files[:9] + [bad] + files[9:17] + [bad.parent / "missing.wav"] + files[17:]


@pytest.fixture
def small_pools(monkeypatch):
    """Let a handful of files use the pool (normally tiny lists stay in one process)."""
    monkeypatch.setattr(parallel, "_MIN_FILES_PER_WORKER", 1)


@pytest.mark.parametrize("kind", ["mfcc", "waveform"])
def test_parallel_extract_equals_serial(files_with_bad, small_pools, kind):
    config = FeatureConfig(kind=kind, seconds=1.0)
    X1, ok1, sk1 = extract(files_with_bad, config, jobs=1)
    X2, ok2, sk2 = extract(files_with_bad, config, jobs=2)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(ok1, ok2)
    assert sk1 == sk2 and len(sk1) == 2
    assert [p for p, _ in sk1] == [str(files_with_bad[9]), str(files_with_bad[18])]
    assert 9 not in ok1 and 18 not in ok1 and len(ok1) == len(files_with_bad) - 2
    assert X1.shape == (len(files_with_bad) - 2, config.dim)


def test_workers_write_the_result_in_place_or_fall_back(files_with_bad, small_pools, monkeypatch):
    """With a pool, extract's matrix is the shared buffer the workers wrote (nothing copied); where
    /dev/shm has no room for it, the rows come through the recycled slots: the same rows either way."""
    config = FeatureConfig(kind="image", width=64, height=48)
    X1, ok1, sk1 = extract(files_with_bad, config, jobs=1, compact=True)
    X2, ok2, sk2 = extract(files_with_bad, config, jobs=2, compact=True)
    assert isinstance(X2.base, np.memmap) and X2.dtype == np.uint8
    create = parallel._SlotBuffer.create
    monkeypatch.setattr(parallel._SlotBuffer, "create",
                        classmethod(lambda cls, *a, shared_only=False: None if shared_only else create(*a)))
    X3, ok3, sk3 = extract(files_with_bad, config, jobs=2, compact=True)
    assert not isinstance(X3.base, np.memmap)
    for X, ok, sk in ((X2, ok2, sk2), (X3, ok3, sk3)):
        np.testing.assert_array_equal(X, X1)
        np.testing.assert_array_equal(ok, ok1)
        assert sk == sk1 and len(sk) == 2
    assert not list(Path("/dev/shm").glob(f"instrec-rows-{os.getpid()}-*"))  # the buffers' files are gone


def _workers() -> set[int]:
    return set(pool._pool[1]._processes) if pool._pool is not None else set()


def test_the_pool_stays_warm_between_calls_and_goes_when_idle(files_with_bad, small_pools, monkeypatch):
    import signal
    import time

    parallel.release_pool()
    X1, _, _ = extract(files_with_bad, MFCC, jobs=2)
    first = _workers()
    assert len(first) == 2
    X2, _, _ = extract(files_with_bad, MFCC, jobs=2)
    assert _workers() == first  # the same warm processes
    np.testing.assert_array_equal(X1, X2)
    os.kill(next(iter(first)), signal.SIGKILL)  # a worker dies between calls: the next call starts afresh
    time.sleep(0.2)
    X3, _, _ = extract(files_with_bad, MFCC, jobs=2)
    np.testing.assert_array_equal(X1, X3)
    assert len(_workers()) == 2 and _workers() != first
    parallel.release_pool()
    assert pool._pool is None
    monkeypatch.setattr(pool, "POOL_IDLE_SECONDS", 0.3)
    extract(files_with_bad, MFCC, jobs=2)
    pids = _workers()
    time.sleep(1.5)
    assert pool._pool is None  # shut down by its idle timer
    for pid in pids:  # and its processes are gone
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_iter_features_streams_in_order(files_with_bad, small_pools):
    config = FeatureConfig(kind="image", width=64, height=48)
    X, ok, skipped = extract(files_with_bad, config, jobs=1)
    seen = list(iter_features(files_with_bad, config, jobs=2))
    assert [i for i, _, _ in seen] == list(range(len(files_with_bad)))
    rows = [row for _, row, _ in seen if row is not None]
    np.testing.assert_array_equal(np.stack(rows), X)
    assert [s for _, row, s in seen if row is None] == skipped


def test_jobs_must_be_sensible(files_with_bad):
    from instrec.errors import ParameterError

    with pytest.raises(ParameterError):
        extract(files_with_bad[:2], MFCC, jobs=-1)
    with pytest.raises(ParameterError):
        extract(files_with_bad[:2], MFCC, cache=3.5)
    assert extract([], MFCC, jobs=2)[0].shape == (0, 40)


# --------------------------------------------------------------------------------------------
# the feature cache


@pytest.fixture
def small_data(rendered_data, tmp_path):
    """6 clips copied (so they may be changed) and a bad file."""
    folder = tmp_path / "data"
    folder.mkdir()
    files = []
    for p in _clips(rendered_data)[:6]:
        files.append(folder / p.name)
        files[-1].write_bytes(p.read_bytes())
    bad = folder / "bad.wav"
    bad.write_text("nope")
    return files[:3] + [bad] + files[3:]


def _entries(root: Path) -> list[Path]:
    return sorted(root.rglob("*.feat"))


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and (p.name.startswith(".") or p.suffix == ".tmp")]


def test_cache_hits_second_time_without_recomputing(small_data, tmp_path, monkeypatch):
    cache = FeatureCache(tmp_path / "cache")
    X1, ok1, sk1 = extract(small_data, MFCC, jobs=1, cache=cache)
    assert cache.stats == {"hits": 0, "misses": 7, "stored": 6, "corrupt": 0, "errors": 0}  # 7 files, 1 bad
    assert len(_entries(cache.root)) == 6 and len(sk1) == 1  # failures are not cached

    def boom(*a, **k):
        raise AssertionError("recomputed a cached feature")

    monkeypatch.setattr(parallel, "compute_compact_file", boom)
    again = FeatureCache(cache.root)
    with pytest.raises(AssertionError):  # the bad file is tried again: it is not in the cache
        extract(small_data, MFCC, jobs=1, cache=again)
    X2, ok2, sk2 = extract([p for p in small_data if p.name != "bad.wav"], MFCC, jobs=1, cache=again)
    assert again.hits >= 6 and again.stored == 0
    np.testing.assert_array_equal(X1, X2)
    assert not _leftovers(cache.root)
    meta = json.loads(next(cache.root.glob("*/config.json")).read_text())
    assert meta["feature"] == MFCC.to_dict()


def test_cache_misses_on_other_parameters_or_content(small_data, tmp_path):
    root = tmp_path / "cache"
    extract(small_data, MFCC, jobs=1, cache=root)
    other = FeatureCache(root)
    X20, _, _ = extract(small_data, FeatureConfig(kind="mfcc", n_mfcc=20), jobs=1, cache=other)
    assert other.hits == 0 and other.stored == 6 and X20.shape == (6, 20)

    # change one file's content (same name, same size): only that one misses
    changed = small_data[1]
    y = tone("square", 330.0, seconds=1.5)
    write(changed, y)
    c = FeatureCache(root)
    X, ok, _ = extract(small_data, MFCC, jobs=1, cache=c)
    assert c.hits == 5 and c.stored == 1
    fresh, _, _ = extract(small_data, MFCC, jobs=1, cache=False)
    np.testing.assert_array_equal(X, fresh)
    np.testing.assert_array_equal(X[1], compute_file(changed, MFCC))


@pytest.mark.parametrize("jobs", [1, 2])
def test_cache_remembers_the_digests_of_settled_files(small_data, tmp_path, monkeypatch, jobs):
    """A second run does not hash the audio again: each file's SHA-256 is remembered by its stamp
    (device, inode, size, mtime). A file whose stamp changed is hashed again and misses; a file
    modified in the last two seconds is not remembered; a damaged digests file is ignored."""
    from instrec.features import cache as cache_module

    good = [p for p in small_data if p.name != "bad.wav"]
    hour_ago = time.time() - 3600
    for f in good[:4]:
        os.utime(f, (hour_ago, hour_ago))  # settled; good[4:] were just written
    hashed = []
    real = cache_module.file_digest
    monkeypatch.setattr(cache_module, "file_digest", lambda path: hashed.append(Path(path).name) or real(path))
    root = tmp_path / "cache"
    X1, ok1, _ = extract(small_data, MFCC, jobs=jobs, cache=FeatureCache(root))
    assert len(hashed) == len(small_data)
    hashed.clear()
    c = FeatureCache(root)
    X2, _, _ = extract(small_data, MFCC, jobs=jobs, cache=c)
    assert c.hits == len(good) and sorted(hashed) == sorted([good[4].name, good[5].name, "bad.wav"])  # the new ones
    np.testing.assert_array_equal(X1, X2)
    # one settled file rewritten: same size, new content, a new modification time
    changed = good[1]
    write(changed, tone("square", 330.0, seconds=1.5))
    hashed.clear()
    c = FeatureCache(root)
    X3, _, _ = extract(small_data, MFCC, jobs=jobs, cache=c)
    assert changed.name in hashed and c.stored == 1 and c.hits == len(good) - 1
    np.testing.assert_array_equal(X3[1], compute_file(changed, MFCC))
    # the digests file damaged: ignored, the files hashed again, the entries still found
    for f in (root / "digests").glob("*.json"):
        f.write_text("{not json")
    hashed.clear()
    c = FeatureCache(root)
    X4, _, _ = extract(small_data, MFCC, jobs=jobs, cache=c)
    assert len(hashed) == len(small_data) and c.hits == len(good)
    np.testing.assert_array_equal(X3, X4)
    assert not _leftovers(root)


@pytest.mark.parametrize("jobs", [1, 2])  # 2: few files, so one process whose threads read the cache
@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty", "header"])
def test_corrupt_entry_is_detected_and_recomputed(small_data, tmp_path, damage, jobs):
    root = tmp_path / "cache"
    X, _, _ = extract(small_data, MFCC, jobs=1, cache=root)
    entry = FeatureCache(root).entry_path(config_digest(MFCC), file_digest(small_data[0]))
    data = bytearray(entry.read_bytes())
    if damage == "truncate":
        data = data[:-7]
    elif damage == "flip":
        data[-3] ^= 0x40
    elif damage == "garbage":
        data = bytearray(os.urandom(len(data)))
    elif damage == "empty":
        data = bytearray()
    else:  # a valid-looking entry for another shape
        data = data.replace(b'"shape": [40]', b'"shape": [41]')
    entry.write_bytes(bytes(data))
    c = FeatureCache(root)
    X2, _, _ = extract(small_data, MFCC, jobs=jobs, cache=c)
    assert c.corrupt == 1 and c.stored == 1 and c.hits == 5
    np.testing.assert_array_equal(X, X2)
    c3 = FeatureCache(root)
    extract(small_data, MFCC, jobs=jobs, cache=c3)
    assert c3.hits == 6 and c3.corrupt == 0  # replaced by a whole entry
    assert not _leftovers(root)


@pytest.mark.parametrize("jobs", [1, 2])
def test_cache_keeps_trailing_zeros_out_of_its_entries(small_data, tmp_path, jobs, monkeypatch):
    """A cnn window is a short note padded with silence: the entry holds the note only, and reading
    it back gives the whole window, bit for bit (a -0.0 included)."""
    config = FeatureConfig(kind="waveform", n_mels=64, seconds=3.0)
    short = tmp_path / "short.wav"
    y = tone("saw", 440.0, seconds=0.5, seed=1)
    y[3], y[-1] = -0.0, 0.25
    write(short, y, subtype="FLOAT")
    root = tmp_path / "cache"
    X1, _, _ = extract([short], config, jobs=1, cache=root)
    entry = FeatureCache(root).entry_path(config_digest(config), file_digest(short))
    assert X1.shape == (1, config.dim) and not X1[0, len(y):].any()
    assert entry.stat().st_size < 0.3 * config.dim * 4  # the 0.5-s note, not the 3-s window
    calls = []
    threaded = parallel._threaded_hits
    monkeypatch.setattr(parallel, "_threaded_hits", lambda *a: calls.append(a) or threaded(*a))
    c = FeatureCache(root)
    X2, _, _ = extract([short], config, jobs=jobs, cache=c)
    assert c.hits == 1 and X2.tobytes() == X1.tobytes()
    assert len(calls) == (jobs > 1)  # with more than one core, threads read the entries
    # a header claiming more stored values than the row has is damage, not a row
    data = entry.read_bytes()
    assert f'"stored": {len(y)}'.encode() in data
    entry.write_bytes(data.replace(f'"stored": {len(y)}'.encode(), f'"stored": {config.dim + 1}'.encode()))
    c = FeatureCache(root)
    X3, _, _ = extract([short], config, jobs=jobs, cache=c)
    assert c.corrupt == 1 and X3.tobytes() == X1.tobytes()


def test_cache_with_workers(files_with_bad, small_pools, tmp_path):
    config = FeatureConfig(kind="image", width=64, height=48)
    c1 = FeatureCache(tmp_path / "cache")
    X1, ok1, sk1 = extract(files_with_bad, config, jobs=2, cache=c1)
    assert c1.stored == len(ok1) and c1.hits == 0
    c2 = FeatureCache(tmp_path / "cache")
    X2, ok2, sk2 = extract(files_with_bad, config, jobs=2, cache=c2)  # all cached: no pool started
    assert c2.hits == len(ok1) and c2.stored == 0
    np.testing.assert_array_equal(X1, X2)
    for entry in _entries(c1.root)[::5]:  # some missing: a pool, whose workers read the others
        entry.unlink()
    c3 = FeatureCache(tmp_path / "cache")
    X3, ok3, sk3 = extract(files_with_bad, config, jobs=2, cache=c3)
    assert c3.stored == 5 and c3.hits == len(ok1) - 5
    np.testing.assert_array_equal(X1, X3)
    np.testing.assert_array_equal(X1, extract(files_with_bad, config, jobs=1)[0])
    assert sk1 == sk2 and ok1.tolist() == ok2.tolist()
    assert not _leftovers(c1.root)


@pytest.mark.parametrize("run", [1, 3, 32])
def test_threads_read_the_cache_in_order(files_with_bad, tmp_path, monkeypatch, run):
    """All cached, one process: threads read the entries ahead of the consumer, a few files per
    task. Every file comes back once, in order, the bad ones skipped, a damaged or missing entry
    recomputed, and a short note's padding zero (those pages are never written)."""
    config = FeatureConfig(kind="waveform", n_mels=64, seconds=3.0)
    monkeypatch.setattr(parallel, "_THREAD_RUN", run)
    monkeypatch.setattr(parallel, "_RUNS_AHEAD", 1)
    reference = extract(files_with_bad, config, jobs=1, compact=True)
    c1 = FeatureCache(tmp_path / "cache")
    extract(files_with_bad, config, jobs=1, cache=c1, compact=True)
    entries = sorted(_entries(c1.root))
    entries[0].write_bytes(entries[0].read_bytes()[:-5])
    entries[1].unlink()
    calls = []
    threaded = parallel._threaded_hits
    monkeypatch.setattr(parallel, "_threaded_hits", lambda *a: calls.append(a) or threaded(*a))
    c2 = FeatureCache(tmp_path / "cache")
    X, ok, skipped = extract(files_with_bad, config, jobs=2, cache=c2, compact=True)
    assert len(calls) == 1
    assert (c2.hits, c2.corrupt, c2.stored) == (len(reference[1]) - 2, 1, 2)
    np.testing.assert_array_equal(X, reference[0])
    np.testing.assert_array_equal(ok, reference[1])
    assert skipped == reference[2] and len(skipped) == 2


def test_padding_left_unwritten_is_zero_on_every_route(tmp_path, small_pools):
    """Windows longer than their notes: every route writes only the note into fresh zero memory.
    A damaged entry longer than the note it is recomputed for, a bad file in between, a slot
    reused: the padding must still read zero, as in the one-file reference."""
    config = FeatureConfig(kind="waveform", n_mels=64, seconds=3.0)
    files = []
    for k, seconds in enumerate([2.5, 0.4, 1.0, 0.2, 2.9, 0.7, 1.6, 0.3]):
        files.append(write(tmp_path / f"n{k}.wav", tone("saw", 220.0 * (1 + k / 4), seconds=seconds, seed=k)))
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio\n" * 50)
    files = files[:3] + [bad] + files[3:]
    reference = np.stack([compute_file(f, config) for f in files if f != bad])

    def check(X, ok, skipped):
        np.testing.assert_array_equal(X, reference)
        assert len(ok) == len(files) - 1 and [p for p, _ in skipped] == [str(bad)]

    for jobs in (1, 2):
        check(*extract(files, config, jobs=jobs, compact=True))
    root = tmp_path / "cache"
    extract(files, config, jobs=1, cache=root)
    # the 0.2-s note's entry replaced by the 2.9-s note's under its name, one byte flipped: the
    # long payload is read into the row before its CRC-32 fails
    long_entry = FeatureCache(root).entry_path(config_digest(config), file_digest(files[6]))
    short_entry = FeatureCache(root).entry_path(config_digest(config), file_digest(files[4]))
    data = bytearray(long_entry.read_bytes().replace(file_digest(files[6]).encode(), file_digest(files[4]).encode()))
    data[-5] ^= 0x10
    short_entry.write_bytes(bytes(data))
    for jobs in (1, 2):
        c = FeatureCache(root)
        check(*extract(files, config, jobs=jobs, cache=c, compact=True))
        assert c.corrupt == 1
        short_entry.write_bytes(data)  # damaged again for the next route
    for f in files[:2]:  # two more to compute: a pool, whose workers read the rest from the cache
        FeatureCache(root).entry_path(config_digest(config), file_digest(f)).unlink()
    c = FeatureCache(root)
    check(*extract(files, config, jobs=2, cache=c, compact=True))
    assert c.corrupt == 1 and c.stored == 3


def test_no_cache_touches_nothing(small_data, tmp_path, monkeypatch):
    monkeypatch.setenv("INSTREC_CACHE", str(tmp_path / "cache"))
    extract(small_data, MFCC, jobs=1, cache=False)
    assert not (tmp_path / "cache").exists()
    extract(small_data, MFCC, jobs=1, cache=True)
    assert len(_entries(tmp_path / "cache")) == 6


# --------------------------------------------------------------------------------------------
# the command line


def test_cli_train_jobs_and_cache(tone_data, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("INSTREC_CACHE", str(cache))
    r = run_cli("train", tone_data, "--recipe", "seed-mfcc", "--epochs", "20", "--out", tmp_path / "m1",
                "--jobs", "2", "--no-cache")
    assert r.returncode == 0, r.stderr
    assert not cache.exists()
    r = run_cli("train", tone_data, "--recipe", "seed-mfcc", "--epochs", "20", "--out", tmp_path / "m2", "-j", "1")
    assert r.returncode == 0, r.stderr
    assert len(_entries(cache)) == 30
    reports = {}
    for jobs in ("1", "2"):  # without the cache, so that the workers really compute the features
        r = run_cli("evaluate", tmp_path / "m2", tone_data, "--out", tmp_path / f"rep{jobs}", "--jobs", jobs, "--no-cache")
        assert r.returncode == 0, r.stderr
        reports[jobs] = json.loads((tmp_path / f"rep{jobs}" / "metrics.json").read_text())
    assert reports["1"]["n"] == 6 and reports["1"] == reports["2"]  # its own data: the held-back 20% only
    assert reports["1"]["accuracy"] == json.loads((tmp_path / "m2" / "model.json").read_text())["metrics"]["test_split"]["accuracy"]
    meta1 = json.loads((tmp_path / "m1" / "model.json").read_text())
    meta2 = json.loads((tmp_path / "m2" / "model.json").read_text())
    assert meta1["metrics"] == meta2["metrics"]  # same features, same seed: same model


# --------------------------------------------------------------------------------------------
# extraction on a PyTorch device (run here on the CPU device; on CUDA where a GPU is present)


def _device_cases():
    import torch

    yield "cpu"
    if torch.cuda.is_available():
        yield "cuda"


@pytest.mark.parametrize("device", list(_device_cases()))
def test_mfcc_on_a_device_matches_the_cpu_route(tmp_path, device):
    """Clips of many lengths in one batch (padded to the longest), a bad file among them: the
    device's rows equal the CPU route's within float32 rounding, in order, the bad file skipped."""
    from instrec.models.device_features import extract_on_device

    config = FeatureConfig(kind="mfcc", n_mfcc=40)
    files = [write(tmp_path / f"c{k}.wav", tone(kind, 110.0 * (k + 1), seconds=s, seed=k))
             for k, (kind, s) in enumerate([("saw", 0.1), ("square", 3.0), ("sine", 0.03), ("saw", 1.37),
                                            ("square", 0.5), ("sine", 2.2)])]
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio\n" * 50)
    files.insert(2, bad)
    ref, ok_ref, sk_ref = extract(files, config, jobs=1)
    X, ok, skipped = extract_on_device(files, config, device=device, threads=2)
    np.testing.assert_array_equal(ok, ok_ref)
    assert skipped == sk_ref and [p for p, _ in skipped] == [str(bad)]
    span = ref.max() - ref.min()
    assert np.abs(X - ref).max() <= 1e-4 * span  # the bar for a fast MFCC is 1e-3 of the range
    # top_db floors each clip at its own maximum: a quiet clip beside a loud one is unchanged
    loud = write(tmp_path / "loud.wav", 0.9 * tone("saw", 220.0, seconds=1.0))
    quiet = write(tmp_path / "quiet.wav", 0.001 * tone("saw", 220.0, seconds=2.0, seed=3))
    Xq, _, _ = extract_on_device([loud, quiet], config, device=device)
    np.testing.assert_allclose(Xq[1], compute_file(quiet, config), atol=1e-4 * span)


def test_device_route_shares_the_cache_with_the_cpu_route(small_data, tmp_path):
    from instrec.models.device_features import extract_on_device

    config = FeatureConfig(kind="mfcc", n_mfcc=40)
    root = tmp_path / "cache"
    c1 = FeatureCache(root)
    X1, ok1, sk1 = extract_on_device(small_data, config, device="cpu", cache=c1)
    assert c1.stored == len(ok1) == len(small_data) - 1 and c1.hits == 0 and len(sk1) == 1  # bad.wav
    c2 = FeatureCache(root)
    X2, ok2, _ = extract(small_data, config, jobs=1, cache=c2)  # the CPU route reads what it wrote
    assert c2.hits == len(ok1) and c2.stored == 0
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(ok1, ok2)
    c3 = FeatureCache(root)
    X3, ok3, sk3 = extract_on_device(small_data, config, device="cpu", cache=c3)
    assert c3.hits == len(ok1) and c3.stored == 0 and sk3 == sk1
    np.testing.assert_array_equal(X1, X3)


def test_feature_device_choice():
    import torch

    from instrec.errors import ParameterError
    from instrec.models.device_features import extract as extract_on
    from instrec.models.device_features import resolve_feature_device

    mfcc, image, logmel = (FeatureConfig(kind=k) for k in ("mfcc", "image", "waveform"))
    assert resolve_feature_device(None, mfcc) is None and resolve_feature_device("cpu", mfcc) is None
    assert resolve_feature_device("auto", image) is None and resolve_feature_device("auto", logmel) is None
    with pytest.raises(ParameterError, match="auto, cpu or cuda"):
        resolve_feature_device("gpu", mfcc)
    if torch.cuda.is_available():
        assert resolve_feature_device("auto", mfcc).type == "cuda"
    else:
        assert resolve_feature_device("auto", mfcc) is None  # no GPU: the CPU route
        with pytest.raises(ParameterError, match="no CUDA GPU"):
            resolve_feature_device("cuda", mfcc)
        with pytest.raises(ParameterError, match="no CUDA GPU"):
            extract_on([], mfcc, device="cuda")


def test_equal_settings_written_as_int_or_float_are_one_feature():
    """Review: seconds=3 and seconds=3.0 (pitch_shift 0 and 0.0...) made two cache keys for one feature."""
    from instrec.errors import ParameterError
    from instrec.features.cache import config_digest

    a = FeatureConfig(kind="waveform", seconds=3, top_db=80, fmin=0, fmax=8000, pitch_shift=0)
    b = FeatureConfig(kind="waveform", seconds=3.0, top_db=80.0, fmin=0.0, fmax=8000.0, pitch_shift=0.0)
    assert a == b and config_digest(a) == config_digest(b) and a.to_dict() == b.to_dict()
    with pytest.raises(ParameterError, match="seconds"):
        FeatureConfig(seconds=True)


def test_mfcc_features_honour_top_db_fmin_and_fmax():
    """Review: an MFCC feature ignored top_db, fmin and fmax (librosa's defaults were always used)."""
    y = tone("saw", 220.0, seconds=1.0) * np.linspace(1.0, 1e-4, SR).astype(np.float32)  # a wide dynamic range
    base = compute(y, FeatureConfig(kind="mfcc"))
    assert np.array_equal(base, mfcc_mean(y, sr=SR, n_mfcc=40))  # the tutorial's feature, unchanged
    for change in ({"top_db": 30.0}, {"fmin": 300.0}, {"fmax": 4000.0}):
        for stats in ("mean", "mean+std"):
            c = FeatureConfig(kind="mfcc", stats=stats, **change)
            assert not np.allclose(compute(y, c), compute(y, FeatureConfig(kind="mfcc", stats=stats))), (change, stats)
    np.testing.assert_array_equal(compute(y, FeatureConfig(kind="mfcc", top_db=30.0)), mfcc_mean(y, sr=SR, n_mfcc=40, top_db=30.0))


@pytest.mark.parametrize("call, words", [
    (lambda y: mel_power(list(y)), None),  # a list is audio too, as numpy reads it
    (lambda y: mel_power(np.full(4096, np.nan)), "finite"),
    (lambda y: mel_power(y.astype(str)), "numbers"),
    (lambda y: mel_power(y, n_fft=True), "n_fft"),
    (lambda y: mel_power(y, power=0), "power"),
    (lambda y: mel_power(y, power=float("nan")), "power"),
    (lambda y: mel_power(y, fmin=-100.0), "fmin"),
    (lambda y: mel_power(y, fmin=5000.0, fmax=1000.0), "fmin"),
    (lambda y: mel_power(y, sr=8000, fmin=5000.0), "fmin"),
    (lambda y: mel_power(y, fmax=float("inf")), "fmax"),
    (lambda y: mfcc(list(y)), None),
    (lambda y: mfcc(np.full(4096, np.inf)), "finite"),
    (lambda y: mfcc_stats(list(y), stats="contrast"), None),
    (lambda y: mfcc_stats((y * 1000).astype(np.int16), stats="contrast"), None),
    (lambda y: compute(y, "mfcc"), "FeatureConfig"),
    (lambda y: power_to_db(np.ones((3, 3)), top_db=float("nan")), "top_db"),
    (lambda y: power_to_db(np.ones((0, 3))), "empty"),
])
def test_feature_functions_refuse_bad_arguments_in_one_line(call, words):
    """Review: a list y raised AttributeError, NaN audio, fmin > fmax, a negative fmin, power 0 and
    top_db NaN gave NaN or meaningless spectrograms without a word, n_fft=True a TypeError, an
    empty S numpy's ValueError: each a ParameterError naming the parameter (librosa's way)."""
    from instrec.errors import ParameterError

    y = np.random.default_rng(0).standard_normal(4096).astype(np.float32)
    if words is None:  # accepted: the values of the array
        np.testing.assert_array_equal(call(y), call(y.copy()))
        return
    with pytest.raises(ParameterError, match=words):
        call(y)


@pytest.mark.parametrize("params, words", [
    ({"top_db": -5.0}, "top_db"), ({"top_db": float("nan")}, "top_db"), ({"top_db": "80"}, "top_db"),
    ({"fmin": -1.0}, "fmin"), ({"fmin": 5000.0, "fmax": 100.0}, "fmin"), ({"fmin": float("nan")}, "fmin"),
    ({"fmax": 20000.0}, "fmax"), ({"sr": 8000, "fmin": 4000.0}, "fmin"),
])
def test_feature_config_checks_top_db_fmin_and_fmax(params, words):
    """Review: FeatureConfig took a negative or NaN top_db and fmin > fmax (a mel bank of empty
    triangles: features of silence); a negative top_db is outside model.schema.json's bounds."""
    from instrec.errors import ParameterError

    with pytest.raises(ParameterError, match=words):
        FeatureConfig(kind="mfcc", **params)
    assert FeatureConfig(kind="mfcc", fmin=30.0, fmax=8000.0).fmax == 8000.0
