"""MFCC extraction on a GPU (``extract(..., device="cuda")``) vs the CPU route (worker processes on
every core), the same files, no cache.

Issue 5 asks that extraction can run on a GPU where one is present. Both routes decode on the CPU
(the GPU route with threads, the CPU route in its workers); the GPU route then computes the MFCCs of
64 clips at a time on the device. The script reports both times, their ratio, and the largest
difference between the two routes' rows relative to their range. Without a CUDA GPU it runs the
device route on the CPU device instead, which says only that the route works, not how fast a GPU is.

    python -m benchmarks.bench_device [--data DIR] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from benchmarks.bench_common import best_of, clips, describe, machine, save


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    import torch

    from instrec.features import FeatureConfig, extract
    from instrec.models.device_features import extract_on_device

    paths, what = clips(args.data)
    config = FeatureConfig(kind="mfcc", n_mfcc=40)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    info = machine()
    info["torch"] = torch.__version__
    info["device"] = torch.cuda.get_device_name(0) if device == "cuda" else "no CUDA GPU: the CPU device"
    print(f"{what}; {describe(info)}; device route on {info['device']}")

    X_cpu = extract(paths, config)[0]  # warms the worker pool
    X_dev = extract_on_device(paths, config, device=device)[0]  # warms the device (CUDA context, kernels)
    t_cpu, runs_cpu = best_of(lambda: extract(paths, config), args.repeat)
    t_dev, runs_dev = best_of(lambda: extract_on_device(paths, config, device=device), args.repeat)
    diff = float(np.abs(X_dev - X_cpu).max() / (X_cpu.max() - X_cpu.min()))
    ratio = t_cpu / t_dev
    print(f"CPU route (all cores): {t_cpu:.3f} s; device route ({device}): {t_dev:.3f} s; "
          f"CPU / device = {ratio:.2f}x; max difference {diff:.1e} of the range")
    out = save("bench_device", {
        "benchmark": "MFCC means of every clip: extract() on the CPU (worker processes) vs on a device",
        "machine": info, "data": what, "clips": len(paths), "device": device,
        "cpu_seconds": t_cpu, "device_seconds": t_dev, "runs_cpu": runs_cpu, "runs_device": runs_dev,
        "ratio_cpu_over_device": round(ratio, 2), "max_abs_diff_over_range": diff,
    })
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
