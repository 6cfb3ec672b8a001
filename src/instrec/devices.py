"""Where work runs: which PyTorch device (``auto`` picks a CUDA GPU when one is present, else the
CPU), and how many local processes a ``jobs`` argument means."""

from __future__ import annotations

import os

from .errors import ParameterError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str = "auto"):
    """``auto`` → CUDA when a GPU is present, else the CPU; ``cuda`` without a GPU is an error."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda"):
        raise ParameterError(f"device must be auto, cpu or cuda; got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ParameterError("device cuda was asked for, but PyTorch sees no CUDA GPU (is a CUDA build installed?)")
    return torch.device(device)


def cpu_count() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def resolve_jobs(jobs: int | None) -> int:
    """``None`` or ``0``: every core; otherwise a positive number of processes."""
    if jobs is None or (isinstance(jobs, int) and not isinstance(jobs, bool) and jobs == 0):
        return cpu_count()
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 0:
        raise ParameterError(f"jobs must be a positive number of processes (0: all cores); got {jobs!r}")
    return jobs
