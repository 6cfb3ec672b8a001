"""Batch tagging on a real Ray cluster (``predict --ray``): the same answers as a local run, bad
files reported, URLs read by the workers, and nothing lost or repeated when a worker or the
driver is killed half-way."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli, write

pytest.importorskip("ray", reason="Ray is instrec's [cluster] extra")


def _tones(folder: Path, n: int, seconds: float) -> Path:
    """``n`` distinct decaying square-ish tones of ``seconds`` each (longer ones get a timeline)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(n):
        t = np.arange(int(22050 * seconds)) / 22050
        y = 0.3 * np.tanh(4 * np.sin(2 * np.pi * (180 + 23 * i) * t)) * np.exp(-t / (1 + i % 4))
        write(folder / f"tone{i:03d}.wav", (y + 0.005 * rng.standard_normal(len(t))).astype(np.float32))
    return folder


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    root = _tones(tmp_path_factory.mktemp("archive") / "a", 10, 2.0)
    _tones(root / "long", 2, 8.0)  # windowed: a timeline each
    (root / "broken.wav").write_bytes(b"RIFF\x00\x00not audio at all")
    return root


@pytest.fixture(scope="module")
def local_json(archive) -> list[dict]:
    r = run_cli("predict", archive, "--format", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_ray_answers_as_local_predict(ray_cluster, archive, local_json, tmp_path):
    out = tmp_path / "tags.parquet"
    r = run_cli("predict", archive, "--ray", ray_cluster, "--format", "json", "--out", out, "--log", tmp_path / "log.jsonl", process=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout) == local_json  # every field, every probability, the same order
    assert "broken.wav: not readable as audio" in r.stderr
    import pyarrow.parquet as pq

    rows = pq.read_table(out).to_pylist()
    assert [row["path"] for row in rows] == [d["path"] for d in local_json]
    assert [row["probabilities"] for row in rows] == [d["probabilities"] for d in local_json]
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == len(local_json)


def test_urls_are_read_by_the_workers(ray_cluster, archive, local_json):
    r = run_cli("predict", f"file://{archive}", f"file://{archive}/missing.wav", "--ray", ray_cluster, "--format", "json", process=True)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout)
    assert [d["path"] for d in got] == [f"file://{d['path']}" for d in local_json]
    assert [d["probabilities"] for d in got] == [d["probabilities"] for d in local_json]
    assert f"file://{archive}/missing.wav: no such file or folder" in r.stderr
    assert f"file://{archive}/broken.wav: not readable as audio" in r.stderr


def test_urls_need_ray(archive):
    r = run_cli("predict", f"file://{archive}")
    assert r.returncode == 2 and "add --ray" in r.stderr


def _actors() -> list[int]:
    """PIDs of the tagging actors (Ray names a worker's process after what it runs)."""
    pids = []
    for p in Path("/proc").iterdir():
        try:
            if p.name.isdigit() and b"_Tagger" in (p / "cmdline").read_bytes():
                pids.append(int(p.name))
        except OSError:
            pass
    return pids


def _start(args: list, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "instrec", "predict", *map(str, args), "--log", str(log), "--format", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_for_lines(log: Path, n: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not (log.is_file() and len(log.read_bytes().splitlines()) >= n):
        assert proc.poll() is None, f"finished before {n} lines: {proc.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def big_archive(tmp_path_factory) -> tuple[Path, list[dict]]:
    """40 files of 6 s (a timeline each): long enough to kill something half-way."""
    root = _tones(tmp_path_factory.mktemp("big"), 40, 6.0)
    r = run_cli("predict", root, "--format", "json")
    assert r.returncode == 0, r.stderr
    return root, json.loads(r.stdout)


def _log_paths(log: Path) -> list[str]:
    return [json.loads(line)["path"] for line in log.read_text().splitlines()]


@pytest.mark.slow
def test_a_killed_worker_loses_and_repeats_nothing(ray_cluster, big_archive, tmp_path):
    root, expected = big_archive
    log = tmp_path / "log.jsonl"
    proc = _start([root, "--ray", ray_cluster, "--jobs", "2"], log)
    _wait_for_lines(log, 4, proc)
    victims = _actors()
    assert victims, "no tagging actor found to kill"
    os.kill(victims[0], signal.SIGKILL)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-3000:]
    assert out.startswith("["), (out[:1000], err[-3000:])
    assert json.loads(out) == expected
    paths = _log_paths(log)
    assert sorted(paths) == sorted(d["path"] for d in expected) and len(paths) == len(set(paths))


def test_relative_paths_are_the_drivers_not_the_workers(ray_cluster, archive, local_json):
    # the cluster's workers run in the folder 'ray start' ran in (here the tests'), not the driver's
    r = run_cli("predict", "a", "--ray", ray_cluster, "--format", "json", cwd=archive.parent, process=True)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout)
    assert [d["path"] for d in got] == [os.path.relpath(d["path"], archive.parent) for d in local_json]
    assert [d["probabilities"] for d in got] == [d["probabilities"] for d in local_json]
    assert "a/broken.wav: not readable as audio" in r.stderr


POISONED = """
import os, sys
from instrec.cluster.tagging import ray_runner
from instrec.errors import InstrecError

DRIVER = os.getpid()

def unpickle(pid):  # what a node without the model's engine does with the model
    if os.getpid() != pid:
        raise ModuleNotFoundError("No module named 'onnxruntime'", name="onnxruntime")
    return Model()

class Model:
    def __reduce__(self):
        return unpickle, (DRIVER,)

try:
    list(ray_runner(sys.argv[1], workers=1)(Model(), [sys.argv[2]], None, None))
except InstrecError as e:
    print("INSTREC_ERROR", e)
"""


def test_actors_that_cannot_start_are_one_line(ray_cluster, archive):
    r = subprocess.run([sys.executable, "-c", POISONED, ray_cluster, str(archive / "tone000.wav")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == (
        "INSTREC_ERROR the tagging actors could not start on the Ray cluster: ModuleNotFoundError: No module "
        "named 'onnxruntime' (each node needs instrec and its packages, as installed here)")
