"""The Ray cluster the tests of this folder share."""

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import _free_port


def _descendants(pids: set[int]) -> set[int]:
    parent = {}
    for p in Path("/proc").iterdir():
        try:
            if p.name.isdigit():
                parent[int(p.name)] = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            pass
    found, frontier = set(), set(pids)
    while frontier:
        frontier = {c for c, pp in parent.items() if pp in frontier} - found
        found |= frontier
    return found


@pytest.fixture(scope="package")  # one for these modules, not the session: an idle Ray takes CPU from the tests after it
def ray_cluster(tmp_path_factory):
    """A real Ray cluster of this machine: a head on 127.0.0.1 with 2 CPUs, started by ``ray start``
    as a user would; yields its address (``127.0.0.1:PORT``). Stopped by killing what it started
    (everything naming its own temp folder), not by ``ray stop``, which stops every Ray of the user's."""
    import time

    # Ray puts a node on the machine's network address, 127.0.0.1 refused, unless told it is not
    # building a cluster of machines (read once, when ray is imported: set first); the head and its
    # clients authenticate with a token of the test's own (ray start does not make one; a fresh
    # machine has no ~/.ray/auth_token)
    saved = {k: os.environ.get(k) for k in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH")}
    pytest.importorskip("ray", reason="Ray is instrec's [cluster] extra")
    ray_bin = Path(sys.executable).with_name("ray")
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    token = Path(tmp_path_factory.mktemp("ray-token")) / "auth_token"
    token.write_text(secrets.token_hex(32))
    os.environ.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    log = tmp_path_factory.mktemp("ray") / "head.log"
    head = subprocess.Popen([str(ray_bin), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
                             "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)

    def stop():
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        # the head's processes name the temp folder; its workers (renamed ray::...) are their children
        ours = {int(p) for p in subprocess.run(["pgrep", "-f", temp], capture_output=True, text=True).stdout.split()}
        for pid in sorted(ours | _descendants(ours)):
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        head.kill()
        head.wait()
        shutil.rmtree(temp, ignore_errors=True)

    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while b"Ray runtime started" not in log.read_bytes():
        if head.poll() is not None or time.monotonic() > deadline:
            stop()
            pytest.fail(f"ray start did not start a head: {log.read_text()[-2000:]}")
        time.sleep(0.2)
    yield address
    stop()
