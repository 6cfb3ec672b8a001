"""``instrec train --nproc N`` and Ctrl-C: a terminal sends SIGINT to its whole foreground process
group, the launcher and its training processes alike; the run stops with one line, as one process does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import tone, write

pytest.importorskip("torch")


def test_ctrl_c_stops_an_nproc_run_with_one_line(tmp_path):
    data = tmp_path / "data"
    for label, f in (("a", 220.0), ("b", 440.0), ("c", 660.0)):
        for i in range(8):
            write(data / label / f"{label}{i}.wav", tone("saw", f * (1 + i / 50)))
    out = tmp_path / "model"
    p = subprocess.Popen([sys.executable, "-m", "instrec", "train", str(data), "--recipe", "seed-mfcc", "--epochs", "100000",
                          "--nproc", "2", "--out", str(out), "--no-cache"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True, env={**os.environ, "INSTREC_CACHE": str(tmp_path / "cache"),
                                                            "INSTREC_CHECKPOINT_SECONDS": "0"})
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "model.checkpoint").exists() and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)  # the processes are training: they write a checkpoint every epoch (as asked)
        assert p.poll() is None, p.communicate()[1][-3000:]
        os.killpg(p.pid, signal.SIGINT)  # Ctrl-C
        t = time.monotonic()
        _, err = p.communicate(timeout=60)
        took = time.monotonic() - t
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == 130, err[-3000:]
    assert [ln for ln in err.splitlines() if ln.startswith("instrec:")] == ["instrec: interrupted"], err[-3000:]
    assert took < 20  # not the launcher's 30 s wait for processes that ignored the signal
