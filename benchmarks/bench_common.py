"""Shared by the benchmarks and the experiments (``python -m benchmarks.NAME``); not a benchmark itself.

* :func:`machine` describes where a figure was measured (platform, CPU model, cores, load);
* :func:`clips` gives the tutorial's 600 Philharmonia clips where they are, else renders stand-ins
  with FluidSynth (6 instruments x 100, 3 s, seed 0) into a temporary folder;
* :func:`best_of` times a function; :func:`save` writes ``benchmarks/results/<name>.json`` (or
  into another ``results`` folder: the experiments keep theirs in ``experiments/results``);
* :class:`TreeMemory` samples the memory of a process and all its descendants (workers).

Timings on a shared machine are noisy: compare the ratio of a baseline and instrec measured in the
same run, alternating, rather than absolute figures across runs.
"""

from __future__ import annotations

import atexit
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
REAL_DATA = HERE.parents[1] / "shared" / "data" / "london_phill_dataset_multi"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    import numpy
    import scipy

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    info = {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cores": cores,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "date": date.today().isoformat(),
    }
    for mod in ("librosa", "torch"):
        if mod in sys.modules:
            info[mod] = sys.modules[mod].__version__
    try:
        info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    try:
        mem = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1]
        info["memory_gib"] = round(int(mem) / 2**20, 1)
    except (OSError, IndexError, ValueError):
        pass
    return info


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc, timeout: float = 180) -> None:
    """Wait until the instrec server ``proc`` at ``url`` answers /v1/health (SystemExit if it dies)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/v1/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("the server did not start")


def describe(info: dict) -> str:
    load = info.get("load_average_at_start")
    return (f"{info['cpu']}, {info['cores']} cores, {info['platform']}, python {info['python']}, {info['date']}"
            + (f", load average {load[0]} at start" if load else ""))


_tmp_dirs: list[str] = []


def _tmpdir(prefix: str) -> Path:
    d = tempfile.mkdtemp(prefix=prefix)
    if not _tmp_dirs:
        atexit.register(lambda: [shutil.rmtree(p, ignore_errors=True) for p in _tmp_dirs])
    _tmp_dirs.append(d)
    return Path(d)


def clips(data: Path | None = None, *, n_per_class: int = 100, seconds: float = 3.0, fmt: str = "wav") -> tuple[list[Path], str]:
    """``(paths, description)``: the real clips under ``data`` (default: the tutorial's data set)
    or, where absent, FluidSynth renders made now."""
    from instrec.data.folder import find_audio

    data = data or REAL_DATA
    if data.is_dir():
        paths = sorted(find_audio(data))
        if paths:
            return paths, f"{len(paths)} real clips under {data}"
    from instrec.data.render import render

    out = _tmpdir("instrec-bench-")
    render(out, per_class=n_per_class, seconds=seconds, fmt=fmt, seed=0)
    paths = sorted(find_audio(out))
    return paths, f"{len(paths)} FluidSynth renders ({seconds:g} s, {fmt}, seed 0; the real data set is absent)"


def rendered(n_per_class: int, *, seconds: float = 3.0, soundfont: str = "fluidr3", seed: int = 0) -> list[Path]:
    """``6 x n_per_class`` rendered clips in a temporary folder (removed at exit)."""
    from instrec.data.folder import find_audio
    from instrec.data.render import render

    out = _tmpdir("instrec-bench-")
    render(out, soundfont=soundfont, per_class=n_per_class, seconds=seconds, seed=seed)
    return sorted(find_audio(out))


def tmpdir(prefix: str = "instrec-bench-") -> Path:
    """A temporary folder removed at exit."""
    return _tmpdir(prefix)


def best_of(fn, repeat: int = 3) -> tuple[float, list[float]]:
    """``(best seconds, all seconds)`` of ``repeat`` calls of ``fn()``."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), times


def median(xs):
    return statistics.median(xs)


def save(name: str, result: dict, folder: Path = RESULTS) -> Path:
    from instrec.fileio import write_json

    path = folder / f"{name}.json"
    write_json(path, result)
    return path


def one_thread():
    """Limit BLAS/OpenMP pools to one thread (a context manager; a no-op without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits

        return threadpool_limits(limits=1)
    except ImportError:  # pragma: no cover
        import contextlib

        return contextlib.nullcontext()


# --------------------------------------------------------------------------------------------
# memory of a process tree


def high_water_mib() -> float:
    """This process's peak RSS: ``VmHWM`` (its own, where ``ru_maxrss`` carries over the peak of
    the process that started it, across exec), else ``ru_maxrss``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                out += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
            except OSError:
                pass
    except OSError:
        pass
    return out


def _pss_kib(pid: int) -> int:
    """Proportional set size (shared pages split between their users), else RSS, in KiB."""
    for path, key in ((f"/proc/{pid}/smaps_rollup", "Pss:"), (f"/proc/{pid}/status", "VmRSS:")):
        try:
            for line in Path(path).read_text().splitlines():
                if line.startswith(key):
                    return int(line.split()[1])
        except OSError:
            continue
    return 0


def tree_kib(pid: int) -> int:
    seen, stack, total = set(), [pid], 0
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        total += _pss_kib(p)
        stack += _children(p)
    return total


class TreeMemory:
    """Samples the PSS of ``pid`` and all its descendants every ``interval`` s; ``peak_mib``."""

    def __init__(self, pid: int, interval: float = 0.2):
        self.pid, self.interval, self.peak_kib = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, tree_kib(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def peak_mib(self) -> float:
        return self.peak_kib / 1024


if __name__ == "__main__":
    print(describe(machine()))
