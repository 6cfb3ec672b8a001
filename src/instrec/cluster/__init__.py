"""Beyond one machine: batch tagging, rendering and the feature cache's fill step on a Ray cluster.

``ray_session(address)`` connects (or starts a local Ray on 127.0.0.1 for the run); the modules
here hand instrec's own functions to Ray's workers, so a cluster computes exactly what one
process would. Training on several processes (DDP) lives with the training loop
(:mod:`instrec.train.distributed`); its launcher is ``instrec train --nproc``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import sys
import threading

from ..errors import InstrecError, ParameterError

__all__ = ["ray_session", "cluster_cpus"]

RAY_CLIENT_PORT = 10001  # 'ray start --head' starts its Ray Client server there
PROBE_SECONDS = 3.0  # a cluster's head answers a connection at once; a dead address must not hang a run for minutes
_NOTHING = "nothing answers there (start one with 'ray start --head', or leave out the address for a Ray of this machine's own)"


@contextlib.contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None):
    """Connect to the Ray cluster at ``address`` for the block, then disconnect.

    ``None`` or ``"local"``: start a Ray of this machine's own for the run (head on 127.0.0.1,
    ``num_cpus`` workers' worth of CPUs, default all), stopped at the end. ``"auto"``: the
    cluster ``ray start`` started on this machine (or ``RAY_ADDRESS``). ``host:port`` or
    ``ray://host:port``: that cluster (``"auto"`` with ``RAY_ADDRESS=local``: as ``"local"``). Already connected (a ``ray job submit`` script that called
    ``ray.init``): that connection, left open.
    """
    if address == "auto" and os.environ.get("RAY_ADDRESS", "").strip() == "local":  # Ray's 'auto' would start one
        address = "local"
    if address in (None, "", "local"):
        # a Ray of this machine stays on 127.0.0.1: Ray otherwise puts its node on the network address
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    if ray.is_initialized():
        yield ray
        return
    if num_cpus is not None and (isinstance(num_cpus, bool) or not isinstance(num_cpus, int) or num_cpus < 1):
        raise ParameterError(f"num_cpus must be a positive number of CPUs; got {num_cpus!r}")
    quiet = {"logging_level": logging.WARNING, "log_to_driver": False, "configure_logging": True}
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    if address in (None, "", "local"):
        kwargs = dict(address="local", include_dashboard=False, _node_ip_address="127.0.0.1", num_cpus=num_cpus)
        # Ray >= 2.5x: a new Ray enables token authentication and says so, inviting to opt out: nothing
        # to act on for a Ray of this machine's own, started and stopped for the run
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    else:
        if num_cpus is not None:
            raise ParameterError("num_cpus applies to a local Ray started for the run; a cluster has its own")
        _check_reachable(address)
        _check_client(address)
        kwargs = dict(address=address)
    try:
        with _ctrl_c_after():
            ray.init(**kwargs, **quiet)
    except ConnectionError as e:
        ray.shutdown()  # whatever a failed start left running
        raise ParameterError(f"cannot reach the Ray cluster at {address!r}: {_first_line(e)}"
                             + (f" ({_reason(e.__cause__)})" if e.__cause__ is not None else "")
                             + (_TOKEN_HINT if "InvalidAuthToken" in str(e.__cause__) else "")) from None
    except (ValueError, RuntimeError) as e:
        ray.shutdown()
        if address in (None, "", "local"):
            raise
        # an address Ray cannot use (http://, a scheme of no Ray module): its words, one line
        raise ParameterError(f"cannot connect to the Ray cluster at {address!r}: {' '.join(str(e).split())}") from None
    except BaseException:
        ray.shutdown()
        raise
    _quiet_data()
    with _stdout_to_stderr():  # until Ray has stopped: its last notices come as it shuts down
        try:
            yield ray
        finally:
            ray.shutdown()


def _check_reachable(address: str) -> None:
    """Fail at once, with one line, where no cluster answers at ``address``: ``ray.init`` itself
    would retry for minutes, printing only its own C++ warnings.

    ``"auto"`` is resolved as Ray resolves it (``RAY_ADDRESS``, else the record of the last ``ray
    start`` here, else a cluster's process running here); a ``host:port`` (a head's GCS) or
    ``ray://host:port`` (a Ray Client server) must take a TCP connection within a few seconds;
    anything else of those forms is a ParameterError. Another ``scheme://`` is left to Ray."""
    shown, found_by = address, ""
    if address == "auto":
        resolved = _resolve_auto()
        if resolved is None:  # Ray's own resolution unavailable: it decides in ray.init
            return
        if resolved == "local":  # RAY_ADDRESS=local: ray.init starts one
            return
        found_by = " (RAY_ADDRESS)" if os.environ.get("RAY_ADDRESS") else " (the last 'ray start' on this machine)"
        address = shown = resolved
    scheme, sep, rest = address.rpartition("://")
    if scheme.lower() in ("http", "https"):  # the dashboard's or the job server's: ray.init cannot use it
        raise ParameterError(f"{shown!r}{found_by} is a web address (a dashboard's, a job server's); a Ray address is "
                             "the head's host:port (6379 unless told otherwise) or ray://host:port")
    if sep and scheme != "ray":
        return
    target = rest if sep else address
    host, colon, port = target.rpartition(":")
    host = host.strip("[]")  # [::1]:6379
    if sep and (not colon or not port.isdigit()) and target and not target.startswith(":"):
        raise ParameterError(f"a Ray Client address is ray://host:port (its server's port, {RAY_CLIENT_PORT} "
                             f"unless told otherwise); got {shown!r}")
    if not colon or not host or not port.isdigit():
        raise ParameterError(f"a Ray address is host:port, ray://host:port, 'auto' or 'local'; got {shown!r}")
    try:
        socket.create_connection((host, int(port)), timeout=PROBE_SECONDS).close()
    except socket.gaierror:
        raise ParameterError(f"cannot reach the Ray cluster at {shown!r}{found_by}: no such host {host!r}") from None
    except (socket.timeout, TimeoutError):
        raise ParameterError(f"cannot reach the Ray cluster at {shown!r}{found_by}: nothing answered within "
                             f"{PROBE_SECONDS:g} s (a firewall, or no cluster there)") from None
    except (OSError, OverflowError, ValueError):  # refused, unreachable network, port out of range
        raise ParameterError(f"cannot reach the Ray cluster at {shown!r}{found_by}: {_NOTHING}") from None


def _check_client(address: str) -> None:
    """A ``ray://`` address needs Ray Client (grpc, of ``ray[client]``): one line where it is
    missing, not ray.init's traceback."""
    if not address.startswith("ray://"):
        return
    try:
        from ray._private.utils import get_ray_client_dependency_error
    except ImportError:  # another Ray: ray.init says it
        return
    if get_ray_client_dependency_error() is not None:
        raise InstrecError(f"{address!r} is a Ray Client address, which needs Ray's [client] extra: "
                           "pip install 'ray[client]' (or give the head's host:port instead)")


@contextlib.contextmanager
def _ctrl_c_after():
    """Hold a Ctrl-C that comes while ``ray.init`` connects, and raise it when it returns: one that
    landed inside it could crash the driver (a segmentation fault, 2 tries in 12 on 2026-12-07).
    It then goes to the handler there was (Python's raises KeyboardInterrupt).
    Only the handler of this process changes: Ray's own processes block SIGINT themselves."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        signal.raise_signal(signal.SIGINT)  # to the handler there was: KeyboardInterrupt, or nothing where ignored


_TOKEN_HINT = "; the cluster wants a token: set RAY_AUTH_MODE=token here (the token in ~/.ray/auth_token, or RAY_AUTH_TOKEN)"


def _reason(e: BaseException) -> str:
    """The cause behind ray.init's 'Failed to connect': its first line, or where that opens a
    traceback Ray put in the text, the traceback's last line (the error itself), its first sentence."""
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    if not lines or not lines[0].endswith("Traceback (most recent call last):"):
        return _first_line(e)
    last = lines[-1].split(": ", 1)[-1] if re.match(r"[\w.]+Error: ", lines[-1]) else lines[-1]
    return last.split(". ")[0]


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def _resolve_auto() -> str | None:
    """The address ``ray.init(address="auto")`` would connect to; ``None`` where this Ray does not
    say (ray.init then resolves it itself)."""
    try:
        from ray._private.services import get_ray_address_from_environment
    except ImportError:
        return None
    try:
        return get_ray_address_from_environment("auto", None)
    except ConnectionError:
        raise ParameterError("cannot reach the Ray cluster at 'auto': no Ray cluster is running on this machine "
                             "('ray start --head' starts one, or leave out the address for a Ray of this machine's own)") from None
    except TypeError:  # another signature in another Ray
        return None


@contextlib.contextmanager
def _stdout_to_stderr():
    """Ray's own notices (a worker that died, a task retried), printed from its threads and its C++
    core alike, go to stderr: stdout is the results'. File descriptor 1 itself is pointed at 2."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no stdout at all: nothing to keep clean
        yield
        return
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def cluster_cpus() -> int:
    """The CPUs of the connected cluster (at least 1)."""
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _quiet_data() -> None:
    """Ray Data's progress bars and per-run banners would bury instrec's own output."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)
