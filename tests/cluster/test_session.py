"""``ray_session`` where no Ray cluster answers: one line at once (a ParameterError, exit 2 from the
CLI), not ``ray.init``'s minutes of retries. No cluster is needed: each address here is a port
nothing listens on. Each call runs in a process of its own, killed if it hangs, with Ray's
temp folder (where ``ray start`` records its cluster) and ``RAY_ADDRESS`` its own."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import _free_port, run_cli, tone, write

pytest.importorskip("ray", reason="Ray is instrec's [cluster] extra")

FAST = 10.0  # seconds: Ray alone retries for minutes

SCRIPT = """
import sys
{patch}
from instrec.cluster import ray_session
from instrec.errors import ParameterError
try:
    with ray_session({address!r}) as ray:
        connected = ray.is_initialized()  # (its stdout is stderr until it ends)
    print("CONNECTED" if connected else "NOT CONNECTED")
except ParameterError as e:
    print("PARAMETER_ERROR", e)
"""


def _session(address: str, tmp_path: Path, env: dict[str, str] | None = None, patch: str = "") -> tuple[str, float]:
    """``ray_session(address)`` in a fresh process: (its last stdout line, seconds it took)."""
    import os

    full = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    full.update(RAY_TMPDIR=str(tmp_path), **(env or {}))  # Ray's record of 'ray start': tmp_path/ray/ray_current_cluster
    t = time.monotonic()
    r = subprocess.run([sys.executable, "-c", SCRIPT.format(address=address, patch=patch)], capture_output=True,
                       text=True, timeout=60, env=full)
    took = time.monotonic() - t
    lines = r.stdout.strip().splitlines()
    assert r.returncode == 0 and lines, r.stderr[-3000:]
    return lines[-1], took


NO_RUNNING_CLUSTER = "import ray._private.services as s; s.find_gcs_addresses = lambda: frozenset()"


def test_a_dead_host_port_fails_fast_with_one_line(tmp_path):
    port = _free_port()
    line, took = _session(f"127.0.0.1:{port}", tmp_path)
    assert line == (f"PARAMETER_ERROR cannot reach the Ray cluster at '127.0.0.1:{port}': nothing answers there "
                    "(start one with 'ray start --head', or leave out the address for a Ray of this machine's own)")
    assert took < FAST


def test_a_dead_ray_client_address_fails_fast(tmp_path):
    port = _free_port()
    line, took = _session(f"ray://127.0.0.1:{port}", tmp_path)
    assert line.startswith(f"PARAMETER_ERROR cannot reach the Ray cluster at 'ray://127.0.0.1:{port}': nothing answers there")
    assert took < FAST


def test_auto_with_ray_address_pointing_nowhere_fails_fast(tmp_path):
    port = _free_port()
    line, took = _session("auto", tmp_path, env={"RAY_ADDRESS": f"127.0.0.1:{port}"})
    assert line.startswith(f"PARAMETER_ERROR cannot reach the Ray cluster at '127.0.0.1:{port}' (RAY_ADDRESS): nothing answers there")
    assert took < FAST


def test_auto_with_a_stale_record_of_ray_start_fails_fast(tmp_path):
    port = _free_port()
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{port}\n")  # what 'ray start' left, its cluster gone
    # Ray prefers a cluster's process running here (this folder's test cluster, say) to the record
    line, took = _session("auto", tmp_path, patch=NO_RUNNING_CLUSTER)
    assert line.startswith(f"PARAMETER_ERROR cannot reach the Ray cluster at '127.0.0.1:{port}' "
                           "(the last 'ray start' on this machine): nothing answers there")
    assert took < FAST


def test_auto_with_no_cluster_at_all_says_so(tmp_path):
    # no record, no RAY_ADDRESS, and (whatever else runs on this machine, another test's cluster
    # included) no cluster process found: Ray's last resort for 'auto' is looking for one
    line, took = _session("auto", tmp_path, patch=NO_RUNNING_CLUSTER)
    assert line.startswith("PARAMETER_ERROR cannot reach the Ray cluster at 'auto': no Ray cluster is running on this machine "
                           "('ray start --head' starts one")
    assert took < FAST


def test_a_malformed_address_is_a_parameter_error(tmp_path):
    line, _ = _session("headnode", tmp_path)
    assert line == "PARAMETER_ERROR a Ray address is host:port, ray://host:port, 'auto' or 'local'; got 'headnode'"


def test_an_address_that_answers_passes_the_check():
    from instrec.cluster import _check_reachable

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        _check_reachable(f"127.0.0.1:{port}")  # no error: ray.init's to connect
        _check_reachable(f"ray://127.0.0.1:{port}")


def test_auto_still_connects_to_the_live_cluster_ray_start_recorded(ray_cluster, tmp_path):
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "ray_current_cluster").write_text(f"{ray_cluster}\n")
    line, _ = _session("auto", tmp_path)
    assert line == "CONNECTED"


def test_predict_with_an_unreachable_cluster_exits_2_with_one_line(tmp_path):
    clip = write(tmp_path / "clip.wav", tone("saw", 220.0))
    port = _free_port()
    t = time.monotonic()
    r = run_cli("predict", "shipped", clip, "--ray", f"127.0.0.1:{port}", process=True, timeout=60)
    took = time.monotonic() - t
    assert r.returncode == 2, r.stderr[-3000:]
    assert r.stderr.strip().splitlines() == [
        f"instrec: error: cannot reach the Ray cluster at '127.0.0.1:{port}': nothing answers there "
        "(start one with 'ray start --head', or leave out the address for a Ray of this machine's own)"]
    assert r.stdout == ""
    assert took < 30  # the CLI's own start (imports, the model) included


ADDRESSES = """
import os
import socket
import ray
import ray._private.utils as ray_utils
from instrec.cluster import ray_session
from instrec.errors import InstrecError

def attempt(address):
    try:
        with ray_session(address):
            return "CONNECTED"
    except InstrecError as e:
        return f"{type(e).__name__} {e.exit_code} {e}"
    except BaseException as e:  # a traceback at the command line
        return f"UNCAUGHT {type(e).__name__} {' '.join(str(e).split())}"

server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen()
port = server.getsockname()[1]
for address in ("ray://", "ray://127.0.0.1", f"ray://127.0.0.1:x{port}", "http://127.0.0.1:8265", "nosuchmodule://x"):
    print(attempt(address))
ray_utils.get_ray_client_dependency_error = lambda: ImportError("No module named 'grpc'")  # Ray without [client]
print(attempt(f"ray://127.0.0.1:{port}"))
def refused(**kwargs):  # what ray.init raises when the cluster wants another token
    raise ConnectionError("Failed to connect to Ray cluster at x") from RuntimeError("RPC error: InvalidAuthToken: token missing")
ray.init = refused
print(attempt(f"127.0.0.1:{port}"))
os.environ["RAY_ADDRESS"] = "local"  # 'auto' then starts a Ray of this machine: on 127.0.0.1 as any
ray.init = lambda **kwargs: print("INIT", sorted(kwargs.items()))
print(attempt("auto"))
"""


def test_addresses_ray_cannot_use_are_one_line_and_auto_local_stays_on_127_0_0_1(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    r = subprocess.run([sys.executable, "-c", ADDRESSES], capture_output=True, text=True, timeout=60,
                       env={**env, "RAY_TMPDIR": str(tmp_path)})
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "ParameterError 2 a Ray address is host:port, ray://host:port, 'auto' or 'local'; got 'ray://'"
    assert lines[1] == ("ParameterError 2 a Ray Client address is ray://host:port (its server's port, 10001 unless told "
                        "otherwise); got 'ray://127.0.0.1'")
    assert lines[2].startswith("ParameterError 2 a Ray Client address is ray://host:port")
    assert lines[3].startswith("ParameterError 2 'http://127.0.0.1:8265' is a web address")
    assert lines[4].startswith("ParameterError 2 cannot connect to the Ray cluster at 'nosuchmodule://x': Module: nosuchmodule")
    assert lines[5].startswith("InstrecError 1 'ray://127.0.0.1:") and "pip install 'ray[client]'" in lines[5]
    # the reason Ray hides behind its 'Failed to connect' is said
    assert lines[6].endswith("Failed to connect to Ray cluster at x (RPC error: InvalidAuthToken: token missing); "
                             "the cluster wants a token: set RAY_AUTH_MODE=token here (the token in ~/.ray/auth_token, or RAY_AUTH_TOKEN)")
    assert lines[7].startswith("INIT [('_node_ip_address', '127.0.0.1'), ('address', 'local'), ")
    assert lines[8] == "CONNECTED" and len(lines) == 9


TOKEN = """
import logging
import socket
import ray
from instrec.cluster import ray_session
from instrec.errors import InstrecError

server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen()
port = server.getsockname()[1]
def refused(**kwargs):  # ray.init's own words, as Ray 2.5x says them, when a head of 'ray start' wants a token
    cause = RuntimeError("Failed to connect to GCS. Last connection error: Traceback (most recent call last):\\n"
                         "  File \\"ray/_private/node.py\\", line 996, in _init_gcs_client\\n"
                         "ray.exceptions.AuthenticationError: RPC error: InvalidAuthToken: Authentication token is "
                         "missing or incorrect. Note: RAY_AUTH_MODE is currently 'disabled' (not 'token').")
    raise ConnectionError(f"Failed to connect to Ray cluster at 127.0.0.1:{port}") from cause
ray.init = refused
try:
    with ray_session(f"127.0.0.1:{port}"):
        pass
except InstrecError as e:
    print(type(e).__name__, e)
def local(**kwargs):  # what a new local Ray says as it starts: nothing a user could act on
    logging.getLogger("ray._private.authentication.authentication_token_setup").warning("Token authentication is enabled")
ray.init = local
with ray_session():
    pass
print("LOCAL")  # (stdout is stderr in the block)
"""


def test_a_cluster_that_wants_a_token_is_one_line_that_says_how(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    r = subprocess.run([sys.executable, "-c", TOKEN], capture_output=True, text=True, timeout=60,
                       env={**env, "RAY_TMPDIR": str(tmp_path)})
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[1] == "LOCAL", r.stdout
    assert lines[0].startswith("ParameterError cannot reach the Ray cluster at '127.0.0.1:"), lines[0]
    assert "Traceback" not in lines[0] and "InvalidAuthToken" in lines[0]
    assert lines[0].endswith("the cluster wants a token: set RAY_AUTH_MODE=token here (the token in ~/.ray/auth_token, "
                             "or RAY_AUTH_TOKEN)"), lines[0]
    assert "Token authentication" not in r.stderr, r.stderr  # a Ray of this machine's own: its notice kept back


def test_ctrl_c_while_ray_starts_is_raised_when_it_has_started_and_ray_stops():
    """A Ctrl-C that landed inside ray.init crashed the driver at times (a segmentation fault): it
    is held until ray.init returns, then raised as KeyboardInterrupt, and Ray is shut down."""
    import os
    import signal

    import ray

    from instrec.cluster import ray_session

    calls = []

    def init(**kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, half-way through connecting
        time.sleep(0.05)
        calls.append("init returned")

    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # a suite started with & ignores SIGINT
    patch = pytest.MonkeyPatch()
    patch.setattr(ray, "is_initialized", lambda: False)
    patch.setattr(ray, "init", init)
    patch.setattr(ray, "shutdown", lambda: calls.append("shutdown"))
    try:
        with pytest.raises(KeyboardInterrupt):
            with ray_session(None):
                calls.append("body")
        assert calls == ["init returned", "shutdown"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler put back
    finally:
        patch.undo()
        signal.signal(signal.SIGINT, before)
