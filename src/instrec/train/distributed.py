"""Training in several processes at once with PyTorch DistributedDataParallel (DDP).

torchrun (``python -m torch.distributed.run``) starts the processes and describes them in their
environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``);
:func:`init_from_env` joins them into one process group, over gloo on the CPU and NCCL on CUDA
GPUs (one a process, the ``LOCAL_RANK``-th). :func:`~instrec.train.fit_network` then trains with
DDP on every process of the group; without a group, everything here is a no-op and a process is
rank 0 of 1. :func:`launch` is torchrun itself, run from a command (``instrec train --nproc N``).
"""

from __future__ import annotations

import atexit
import functools
import os
import signal
import sys
import uuid
from contextlib import contextmanager
from datetime import timedelta
from typing import Iterator, Sequence

import torch
import torch.distributed as dist
from torch import nn

from ..devices import resolve_device
from ..errors import InstrecError, ParameterError

# rank 0 may extract every feature while the others wait at a barrier: gloo's 30 minutes are too few
TIMEOUT = timedelta(hours=6)
# the exit code of a process that stopped because another did: the launcher reports the other's
PEER_LOST = 75
# set by launch() for the processes it starts: on Ctrl-C they stop silently, the launcher speaks
LAUNCHER_ENV = "INSTREC_NPROC_LAUNCHER"
# what gloo's errors say when the process at the other end is gone
_PEER_WORDS = ("Connection reset by peer", "Connection closed by peer", "Broken pipe")


class PeerLost(InstrecError):
    """Another process of the group stopped (killed, out of memory, its own error): this one cannot go on."""

    exit_code = PEER_LOST


def stops_with_its_peers(fn):
    """Make a collective's failure in a group, the mark of another process gone, :class:`PeerLost`:
    one line, where it was a page of gloo traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RuntimeError as e:
            lost = getattr(dist, "DistNetworkError", ())  # newer PyTorch's name for it
            if world()[1] > 1 and (isinstance(e, lost) or any(w in str(e) for w in _PEER_WORDS)):
                raise PeerLost("another training process stopped (killed, out of memory, or its own error), so "
                               "this one stops too; continue the run with --resume") from e
            raise

    return wrapper


def launched() -> bool:
    """Whether this process is one of several that torchrun started (its ``WORLD_SIZE`` > 1)."""
    return _env_int("WORLD_SIZE", 1) > 1


def env_rank() -> int:
    """This process's rank as torchrun set it (0 when torchrun did not start it); known before
    :func:`init_from_env`."""
    return _env_int("RANK", 0) if launched() else 0


def init_from_env(device: str = "auto") -> tuple[int, int]:
    """Join the process group torchrun's environment describes, once; return :func:`world`.

    Parameters
    ----------
    device : str
        ``auto``, ``cpu`` or ``cuda``, as training will resolve it: CUDA means the NCCL backend
        and the GPU ``LOCAL_RANK`` for this process, the CPU the gloo backend.

    Returns
    -------
    tuple of int
        ``(rank, world_size)``; ``(0, 1)`` outside torchrun, where nothing is initialised.

    Raises
    ------
    ParameterError
        When the environment is incomplete, or there are fewer GPUs than processes.
    """
    if not launched() or (dist.is_available() and dist.is_initialized()):
        return world()
    if not dist.is_available():
        raise ParameterError("this PyTorch build has no torch.distributed: train in one process")
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise ParameterError(f"WORLD_SIZE is set but {', '.join(missing)} is not: start the processes with torchrun")
    dev = resolve_device(device)
    if dev.type == "cuda":
        local, gpus = _env_int("LOCAL_RANK", 0), torch.cuda.device_count()
        if local >= gpus:
            raise ParameterError(f"{_env_int('LOCAL_WORLD_SIZE', local + 1)} processes on this machine need as many "
                                 f"GPUs; PyTorch sees {gpus} (--nproc {gpus}, or --device cpu)")
        torch.cuda.set_device(local)  # "cuda" then means this process's own GPU
    dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", timeout=TIMEOUT)
    atexit.register(_shutdown)
    return world()


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialised process group; ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """Whether this process is rank 0, the one that writes files and prints (True without a group)."""
    return world()[0] == 0


def barrier() -> None:
    """Wait until every process of the group gets here (nothing without a group)."""
    if world()[1] > 1:
        dist.barrier()


@contextmanager
def main_first() -> Iterator[None]:
    """Run the block on rank 0 first, then on the others (after it, they find what it wrote,
    such as the feature cache). Without a group, just the block."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def all_sum(t: torch.Tensor) -> torch.Tensor:
    """The sum of ``t`` over every process, on the CPU (``t`` itself without a group)."""
    if world()[1] == 1:
        return t
    buf = t.detach().to(_collective_device(), copy=True)
    dist.all_reduce(buf)
    return buf.cpu()


def gather_strided(t: torch.Tensor, n: int) -> torch.Tensor:
    """Reassemble rows sharded by position: rank ``r`` holds ``t`` = rows ``r::world_size`` of
    ``n``; every process gets all ``n`` in their order (``t`` itself without a group)."""
    size = world()[1]
    if size == 1:
        return t
    width = -(-n // size)  # all_gather wants equal shapes: each shard padded to the longest
    pad = t.new_zeros((width, *t.shape[1:]))
    pad[: len(t)] = t
    pad = pad.to(_collective_device())
    parts = [torch.empty_like(pad) for _ in range(size)]
    dist.all_gather(parts, pad)
    out = t.new_empty((n, *t.shape[1:]))
    for r, part in enumerate(parts):
        out[r::size] = part[: len(range(r, n, size))].cpu()
    return out


def broadcast_buffers(net: nn.Module) -> None:
    """Give every process rank 0's buffers (batch-norm statistics, each process's own since the
    last forward pass), so that all score and keep one network."""
    if world()[1] == 1:
        return
    for b in net.buffers():
        dist.broadcast(b.data, 0)


def quiet_other_ranks() -> None:
    """In a process of rank > 0 that torchrun started, send stdout and stderr to the null device:
    rank 0 prints for the run (its output, its progress, its one-line errors). Tracebacks of
    unexpected exceptions still reach the real stderr.

    Started by :func:`launch` (``--nproc``), every process, rank 0 too, stops silently on Ctrl-C:
    a terminal sends SIGINT to them all, and the launcher says so, once."""
    if os.environ.get(LAUNCHER_ENV) == "1":
        signal.signal(signal.SIGINT, _stop_silently)
    if env_rank() == 0:
        return
    import traceback

    def to_real_stderr(kind, value, tb):
        traceback.print_exception(kind, value, tb, file=sys.__stderr__)

    sys.stdout = sys.stderr = open(os.devnull, "w", encoding="utf-8")
    sys.excepthook = to_real_stderr


def _stop_silently(signum, frame):
    raise SystemExit(128 + signum)  # not KeyboardInterrupt, which the command line reports


def check_nproc(nproc: int) -> None:
    """Refuse more processes than this machine has CPUs (``os.cpu_count()``): each would get less
    than a core, slower than fewer. ParameterError naming ``--nproc``."""
    cpus = os.cpu_count() or 1
    if nproc < 1:
        raise ParameterError(f"the number of processes must be at least 1; got {nproc}")
    if nproc > cpus:
        raise ParameterError(f"--nproc {nproc}: more processes than this machine's {cpus} CPUs; at most --nproc {cpus}")


def launch(nproc: int, args: Sequence[str], *, threads: int | None = None) -> int:
    """Run ``python ARGS`` in ``nproc`` processes, as ``torchrun --standalone --nproc-per-node
    NPROC`` does (the same launcher, in this process), and wait for them.

    Parameters
    ----------
    nproc : int
        How many processes: 1 to the machine's CPU count (:func:`check_nproc`).
    args : sequence of str
        The Python command line of each, e.g. ``["-m", "instrec", "train", ...]``.
    threads : int, optional
        ``OMP_NUM_THREADS`` of each (torch's intra-op threads); default: the cores this process
        may use divided among the processes, at least 1. An ``OMP_NUM_THREADS`` already set wins.

    Returns
    -------
    int
        0, or the exit code of the process that failed (rank 0's when it failed of itself, not
        stopped by the launcher; 128 + N for one killed by signal N).
    """
    import logging

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    check_nproc(nproc)
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()),
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.1,
                          start_method="spawn")
    saved = os.environ.get("OMP_NUM_THREADS")
    if saved is None:
        os.environ["OMP_NUM_THREADS"] = str(threads or max(1, _cores() // nproc))
    os.environ[LAUNCHER_ENV] = "1"  # its processes stop silently on Ctrl-C; this one says it (quiet_other_ranks)
    # the launcher logs each worker's failure and signal (each module its own logger, its own
    # level): the workers' one-line errors say what went wrong
    loggers = [logging.getLogger(name) for name in list(logging.Logger.manager.loggerDict)
               if name.startswith(("torch.distributed.elastic", "torch.distributed.launcher"))]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        with _stderr_as_fd2():
            elastic_launch(config, sys.executable)("-u", *args)
    except ChildFailedError as e:
        line = killed_line(e.failures, nproc)
        if line:  # a killed process printed nothing of itself
            print(f"instrec: error: {line}", file=sys.stderr, flush=True)
        return exit_code(e.failures)
    except SignalException as e:  # the launcher stopped the processes when it got a signal (Ctrl-C: SIGINT)
        if e.sigval == signal.SIGINT:
            raise KeyboardInterrupt from None
        return 128 + int(e.sigval)
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
        if saved is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        os.environ.pop(LAUNCHER_ENV, None)
    return 0


def exit_code(failures: dict) -> int:
    """The exit code of a failed run from its processes' failures (rank -> torchrun's
    ``ProcessFailure``). A process the launcher stopped because another failed (SIGTERM) says
    nothing: a failure of its own (an exit code, or another signal: SIGKILL when out of memory,
    SIGSEGV) comes first, rank 0's where it has one, else the earliest."""
    failure = failures[_first_failure(failures)]
    return failure.exitcode if failure.exitcode >= 0 else 128 - failure.exitcode


def killed_line(failures: dict, nproc: int) -> str | None:
    """What to say of a run whose first failure (:func:`exit_code`'s) is a process killed by a
    signal, which leaves no word of its own; None where it failed of itself (it said why)."""
    rank = _first_failure(failures)
    code = failures[rank].exitcode
    if code >= 0:
        return None
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    why = " (out of memory?)" if -code == signal.SIGKILL else ""
    return f"training process {rank} of {nproc} was killed by {name}{why}; continue the run with --resume"


def _first_failure(failures: dict) -> int:
    """The rank whose failure is the run's (see :func:`exit_code`)."""
    own = {rank: f for rank, f in failures.items() if f.exitcode not in (-signal.SIGTERM, PEER_LOST)}
    if 0 in own:
        return 0
    if own:
        return min(own, key=lambda r: own[r].timestamp)
    return 0 if 0 in failures else next(iter(failures))


@contextmanager
def _stderr_as_fd2() -> Iterator[None]:
    """Let the processes started in the block inherit ``sys.stderr`` as their file descriptor 2,
    which the command line points at /dev/null (it hides C libraries' messages)."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # not a file (a test's capture): leave fd 2 as it is
        fd = 2
    if fd == 2:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(fd, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _collective_device() -> torch.device:
    """Where a collective's tensors must be: NCCL's on this process's GPU, gloo's anywhere (the CPU)."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        raise ParameterError(f"${name} must be an integer; got {os.environ[name]!r}") from None


def _shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
