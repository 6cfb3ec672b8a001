"""Feature extraction on a PyTorch device (a CUDA GPU): files decoded by threads here, their
features computed in batches on the device.

Only the MFCC summary has work worth moving. The cnn's compact row is the waveform window itself
(its log-mel runs inside the network, :class:`instrec.models.frontend.LogMel`, on whatever
device trains or serves it), and the tutorial's image is a drawing whose pixels must equal
matplotlib's, which the CPU route (:mod:`instrec.features.image`) reproduces exactly. So
:func:`extract_on_device` takes ``kind="mfcc"``; :func:`extract` sends the other kinds to the CPU
route (:func:`instrec.features.extract`) whatever the device.

The arithmetic is :class:`~instrec.models.frontend.MfccMean`: the same filters, ``top_db`` floor
and orthonormal DCT as :func:`instrec.features.mfcc.mfcc_mean`, in float32, within float32 rounding
of it (tests/features/test_features_fast.py, on the CPU device; no GPU was at hand to run it on CUDA).
The feature cache is used as on the CPU route: same entries, same keys, so either route reads what
the other wrote.
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

import numpy as np

from ..audio import load
from ..errors import InstrecError, ParameterError, skip_entry
from ..features.cache import config_digest, read_entry
from ..features.config import FeatureConfig

__all__ = ["extract", "extract_on_device", "resolve_feature_device"]

BATCH = 64  # clips per device call
_AHEAD = 4  # batches of files being decoded ahead of the device


def extract(paths: Sequence, config: FeatureConfig, *, device: str | None = None, jobs: int | None = None, cache=False,
            compact: bool = False, progress: Callable[[int, int], None] | None = None):
    """:func:`instrec.features.extract` on ``device`` (``None``/``"cpu"``, ``"auto"``, ``"cuda"``)
    where it has work for one (the MFCC means), else on the CPU: ``(X, ok, skipped)``."""
    from ..features import extract as extract_on_cpu

    on = resolve_feature_device(device, config)
    if on is not None:
        return extract_on_device(paths, config, device=on, cache=cache, progress=progress)
    return extract_on_cpu(paths, config, jobs=jobs, cache=cache, compact=compact, progress=progress)


def resolve_feature_device(device, config: FeatureConfig):
    """The torch device to compute ``config``'s features on, or None for the CPU route.

    ``None``, ``"cpu"``: the CPU route (worker processes; faster on a CPU than a batched torch
    route). ``"auto"``: a CUDA GPU when PyTorch sees one. ``"cuda"``: the GPU, an error when
    there is none (as for training: :func:`instrec.devices.resolve_device`). Kinds with nothing to compute on a device (see the module) get None.
    """
    if device is None or device == "cpu":
        return None
    if device == "auto" and (not _on_device(config) or not _may_have_cuda()):
        return None  # without importing torch (a second) to learn what is already known
    from ..devices import resolve_device  # the training's own choice and errors

    chosen = resolve_device(device)
    return chosen if chosen.type == "cuda" and _on_device(config) else None


def _on_device(config: FeatureConfig) -> bool:
    """The features a device computes: the MFCC means of unshifted audio."""
    return config.kind == "mfcc" and config.stats == "mean" and not config.pitch_shift


def _may_have_cuda() -> bool:
    """False where there can be no CUDA GPU: Linux without NVIDIA's device files (and torch not
    loaded yet, whose answer would be as cheap); True where only torch can tell."""
    import sys

    if "torch" in sys.modules or not sys.platform.startswith("linux"):
        return True
    return os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/nvidia0")


def extract_on_device(
    paths: Sequence[str | os.PathLike],
    config: FeatureConfig,
    *,
    device,
    cache=False,
    threads: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """``(X, ok, skipped)`` as :func:`instrec.features.extract` returns them, the features computed
    on ``device`` (a ``torch.device`` or its name; ``"cpu"`` runs this same route on the CPU).

    ``threads`` (default: every core) decode files and read cache entries; a batch of ``BATCH``
    decoded clips at a time goes to the device.
    """
    import torch

    from .frontend import MfccMean
    from ..features.parallel import cpu_count, resolve_cache

    if not _on_device(config):
        raise ParameterError(f"features of kind {config.kind!r} (stats {config.stats!r}, pitch_shift {config.pitch_shift!r}) "
                             "are computed on the CPU; only MFCC means on a device")
    c = config
    device = torch.device(device)
    # mfcc_mean's arguments exactly as the CPU route passes them
    module = MfccMean(sr=c.sr, n_mfcc=c.n_mfcc, n_fft=c.n_fft, hop_length=c.hop_length, n_mels=c.n_mels, fmin=c.fmin,
                      fmax=c.fmax, top_db=c.top_db).to(device)
    store = resolve_cache(cache)
    key = config_digest(config) if store is not None else None
    n = len(paths)
    X = np.zeros((n, config.dim), dtype=np.float32)

    def prepare(i):
        """``(entry, status, samples, skip)`` for file ``i``: its cached row read into ``X[i]``,
        else its decoded samples (or why it cannot be used)."""
        entry = status = None
        if store is not None:
            digest = store.file_key(paths[i])
            if digest is not None:
                entry = store.entry_name(key, digest)
                status = read_entry(entry, shape=(c.dim,), dtype=np.dtype(np.float32), out=X[i])[1]
                if status == "hit":
                    return entry, status, None, None
        try:
            y, _ = load(paths[i], sr=c.sr)
        except InstrecError as e:
            return entry, status, None, skip_entry(e, paths[i])
        return entry, status, y, None

    usable = np.zeros(n, dtype=bool)
    skipped: list[tuple[str, str]] = []
    batch: list[tuple[int, str | None, np.ndarray]] = []
    done = 0

    def compute(batch):
        rows = _run(module, [y for _, _, y in batch], device)
        for (i, entry, _), row in zip(batch, rows):
            X[i] = row
            usable[i] = True
            if entry is not None:
                store.store(entry, X[i], config)

    with ThreadPoolExecutor(threads or cpu_count()) as pool:
        todo = iter(range(n))
        ahead = deque((i, pool.submit(prepare, i)) for i in itertools.islice(todo, BATCH * _AHEAD))
        while ahead:
            i, future = ahead.popleft()
            nxt = next(todo, None)
            if nxt is not None:
                ahead.append((nxt, pool.submit(prepare, nxt)))
            entry, status, y, skip = future.result()
            if store is not None:
                if entry is None:
                    store.misses += 1
                else:
                    store.count(status, entry)
            if status == "hit":
                usable[i] = True
            elif skip is not None:
                skipped.append(skip)
            else:
                batch.append((i, entry, y))
                if len(batch) == BATCH:
                    compute(batch)
                    batch = []
            done += 1
            if progress:
                progress(done, n)
        if batch:
            compute(batch)
    if store is not None:
        store.save_digests()
    ok = np.flatnonzero(usable)
    return X[ok], ok.astype(np.int64), skipped


def _run(module, clips: list[np.ndarray], device) -> np.ndarray:
    """The module's rows for ``clips`` of any lengths: zero-padded to the longest, with lengths."""
    import torch

    longest = max(len(y) for y in clips)
    batch = np.zeros((len(clips), longest), dtype=np.float32)
    for k, y in enumerate(clips):
        batch[k, : len(y)] = y
    with torch.inference_mode():
        waves = torch.from_numpy(batch).to(device)
        lengths = torch.tensor([len(y) for y in clips], device=device)
        return module(waves, lengths).cpu().numpy()
