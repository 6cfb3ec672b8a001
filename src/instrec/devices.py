"""Which PyTorch device to use: ``auto`` picks a CUDA GPU when one is present, else the CPU."""

from __future__ import annotations

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
