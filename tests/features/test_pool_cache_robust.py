"""The worker pool and the feature cache under hostile conditions: a changed working folder, a
worker that dies, a damaged digests file, a cache folder that cannot be written."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import tone, write
from instrec.features import FeatureConfig, extract, iter_features
from instrec.features import cache as cache_module
from instrec.features import parallel, pool
from instrec.features.cache import FeatureCache

MFCC = FeatureConfig(kind="mfcc")


@pytest.fixture
def small_pools(monkeypatch):
    """Let a handful of files use the pool (normally tiny lists stay in one process)."""
    monkeypatch.setattr(parallel, "_MIN_FILES_PER_WORKER", 1)
    yield
    parallel.release_pool()


def _tones(folder: Path, n: int, octave: float = 1.0) -> list[Path]:
    return [write(folder / f"c{k:02d}.wav", tone("saw", 220.0 * octave * (1 + k / 4), seconds=0.5, seed=k))
            for k in range(n)]


def test_relative_paths_follow_the_callers_working_folder(tmp_path, small_pools, monkeypatch):
    """Warm workers were forked in the folder the pool started in: after a chdir, relative paths must
    still name the caller's files (they used to give the first folder's features, silently)."""
    _tones(tmp_path / "a", 6)
    _tones(tmp_path / "b", 6, octave=2.0)
    rel = [f"c{k:02d}.wav" for k in range(6)]
    monkeypatch.chdir(tmp_path / "a")
    Xa, _, _ = extract(rel, MFCC, jobs=2)
    monkeypatch.chdir(tmp_path / "b")
    Xb, _, skipped = extract(rel, MFCC, jobs=2, cache="cache")  # a relative cache folder too
    assert not skipped
    np.testing.assert_array_equal(Xb, extract(rel, MFCC, jobs=1)[0])
    assert not np.array_equal(Xa, Xb)
    assert len(list((tmp_path / "b" / "cache").rglob("*.feat"))) == 6
    assert not (tmp_path / "a" / "cache").exists()


@pytest.fixture
def crashing_decoder(tmp_path, monkeypatch, small_pools):
    """Workers forked from this process, whose decoder kills its process on files named crash*."""
    monkeypatch.setenv(pool.START_ENV, "fork")
    real = parallel.compute_compact_file

    def decode(path, config, **kw):
        if Path(path).name.startswith("crash"):
            os._exit(139)  # as a segfault in a native decoder would
        return real(path, config, **kw)

    monkeypatch.setattr(parallel, "compute_compact_file", decode)
    files = _tones(tmp_path / "data", 14)
    files[5] = write(tmp_path / "data" / "crash.wav", tone("sine", 300.0, seconds=0.5))
    return files


@pytest.mark.parametrize("route", ["extract", "iter"])
def test_a_file_that_kills_its_worker_is_skipped_not_the_run(crashing_decoder, tmp_path, route):
    files = crashing_decoder
    good = [f for f in files if f.name != "crash.wav"]
    reference = extract(good, MFCC, jobs=1)[0]
    cache = FeatureCache(tmp_path / "cache")
    if route == "extract":
        X, ok, skipped = extract(files, MFCC, jobs=2, cache=cache)
    else:
        seen = list(iter_features(files, MFCC, jobs=2, cache=cache))
        assert [i for i, _, _ in seen] == list(range(len(files)))
        X = np.stack([r for _, r, _ in seen if r is not None])
        ok = [i for i, r, _ in seen if r is not None]
        skipped = [s for _, r, s in seen if r is None]
    assert [p for p, _ in skipped] == [str(files[5])] and "worker process died" in skipped[0][1]
    assert list(ok) == [i for i in range(len(files)) if i != 5]
    np.testing.assert_array_equal(X, reference)
    # no shared buffer left behind (this process makes them; the other test process has its own)
    assert not list(Path("/dev/shm").glob(f"instrec-rows-{os.getpid()}-*"))
    again = FeatureCache(tmp_path / "cache")
    extract(good, MFCC, jobs=1, cache=again)
    assert again.hits == len(good)  # what the workers computed was kept


def test_workers_that_keep_dying_stop_the_run_with_one_line(crashing_decoder, tmp_path, monkeypatch):
    from instrec.errors import InstrecError

    monkeypatch.setattr(parallel, "_MAX_CRASHES", 2)
    files = crashing_decoder
    files[9] = write(tmp_path / "data" / "crash2.wav", tone("sine", 400.0, seconds=0.5))
    with pytest.raises(InstrecError, match="worker processes died on 2 files"):
        extract(files, MFCC, jobs=2)


def test_a_script_without_a_main_guard_is_told_what_to_do(tmp_path):
    """Workers import the user's script again: one that extracts at its top level kills each of
    them at start-up. The error names the guard, not only memory."""
    import subprocess
    import sys

    files = [write(tmp_path / "data" / f"t{i:03d}.wav", tone("sine", 300.0 + i, seconds=0.1)) for i in range(100)]
    script, pids = tmp_path / "unguarded.py", tmp_path / "pids"
    # every process that runs the script's top level (it and each worker) notes its process id
    script.write_text(f"import os\nopen({str(pids)!r}, 'a').write(f'{{os.getpid()}}\\n')\n"
                      "from instrec.features import FeatureConfig, extract\n"
                      f"extract({[str(f) for f in files]!r}, FeatureConfig(kind='mfcc'), jobs=2)\n")
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert "if __name__ == \"__main__\":" in r.stderr and "worker processes died" in r.stderr
    # the workers refuse at once, before making buffers of their own (they were killed holding them)
    assert "was asked to start workers" in r.stderr
    started = pids.read_text().split()
    assert len(started) >= 2  # the script and its workers
    assert not [b for pid in started for b in Path("/dev/shm").glob(f"instrec-rows-{pid}-*")]


def test_a_damaged_digests_file_cannot_steer_entries_out_of_the_cache(tmp_path):
    """The remembered SHA-256 names the entry's file: anything but 64 hex digits is not one."""
    f = write(tmp_path / "data" / "a.wav", tone("saw", 220.0, seconds=0.5))
    os.utime(f, (1e9, 1e9))  # settled: its digest is remembered
    root = tmp_path / "x" / "cache"
    X, _, _ = extract([f], MFCC, jobs=1, cache=root)
    [digests] = (root / "digests").glob("*.json")
    data = json.loads(digests.read_text())
    data["files"]["a.wav"][4] = "../escaped"
    digests.write_text(json.dumps(data))
    c = FeatureCache(root)
    X2, _, _ = extract([f], MFCC, jobs=1, cache=c)
    assert not list(tmp_path.rglob("escaped*"))
    assert c.hits == 1  # hashed again, and its entry found
    np.testing.assert_array_equal(X, X2)


def test_a_fifo_in_the_cache_is_not_read(tmp_path):
    """A FIFO where an entry or a digests file belongs (a shared cache folder): opening it to read
    used to block forever. Now it is damage: replaced by a whole entry."""
    import threading

    from instrec.features.cache import config_digest, file_digest

    f = write(tmp_path / "data" / "a.wav", tone("saw", 220.0, seconds=0.5))
    root = tmp_path / "cache"
    entry = FeatureCache(root).entry_path(config_digest(MFCC), file_digest(f))
    entry.parent.mkdir(parents=True)
    os.mkfifo(entry)
    digests = Path(FeatureCache(root)._digests_path(str(f.parent)))
    digests.parent.mkdir(parents=True)
    os.mkfifo(digests)
    c = FeatureCache(root)
    done = []
    worker = threading.Thread(target=lambda: done.append(extract([f], MFCC, jobs=1, cache=c)), daemon=True)
    worker.start()
    worker.join(60)  # a guard against the hang, not a timing: the work takes well under a second
    if worker.is_alive():
        for fifo in (digests, entry):  # a writer lets the blocked reader go
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        worker.join(10)
        pytest.fail("reading a FIFO in the cache blocked")
    np.testing.assert_array_equal(done[0][0], extract([f], MFCC, jobs=1)[0])
    assert c.corrupt == 1 and c.stored == 1 and entry.is_file()
