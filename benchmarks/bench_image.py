"""The tutorial's spectrogram-image feature: instrec's direct route vs the tutorial's figure pipeline.

Target (issue 5): at least 20x faster on the same clips, correlation >= 0.99 with the figure route.

* baseline, the tutorial's code per clip: ``librosa.feature.melspectrogram`` + ``power_to_db(ref=
  np.max)``, ``plt.figure()``, ``librosa.display.specshow``, ``plt.savefig`` to a PNG file,
  ``plt.close``, then ``PIL.Image.open(png).convert("L")`` and ``reshape(-1) / 255``;
* instrec: :func:`instrec.features.compute` with the seed-spectrogram recipe's configuration (its
  mel spectrogram, the picture computed directly by :func:`~instrec.features.image.spectrogram_image`,
  ``/ 255``).

Both start from the same decoded audio (decoding is timed separately); BLAS is held to one thread.
Besides the correlation, the benchmark counts the clips whose feature vectors are identical.

    python -m benchmarks.bench_image [--data DIR] [--clips 60] [--repeat 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_common import clips, describe, machine, one_thread, save, tmpdir


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--clips", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import librosa
    import librosa.display
    import matplotlib.pyplot as plt
    from PIL import Image

    from instrec.audio import load
    from instrec.features import compute
    from instrec.recipes import get_recipe

    config = get_recipe("seed-spectrogram").feature
    paths, what = clips(args.data)
    paths = paths[:: max(1, len(paths) // args.clips)][: args.clips]
    t0 = time.perf_counter()
    ys = [load(p, sr=config.sr)[0] for p in paths]
    decode = (time.perf_counter() - t0) / len(ys)
    png_dir = tmpdir()
    info = machine()
    print(f"{len(ys)} clips ({what}); {describe(info)}")

    def tutorial(y, k):
        S = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=config.sr), ref=np.max)
        fig = plt.figure()
        librosa.display.specshow(S)
        png = png_dir / f"{k}.png"
        plt.savefig(png)
        plt.close(fig)
        return np.asarray(Image.open(png).convert("L")).reshape(-1) / 255.0

    with matplotlib.style.context("default"), one_thread():
        ref = [tutorial(y, k) for k, y in enumerate(ys)]
        mine = [compute(y, config) for y in ys]
        corr = [float(np.corrcoef(a, b)[0, 1]) for a, b in zip(ref, mine)]
        identical = sum(bool(np.array_equal(a.astype(np.float32), b)) for a, b in zip(ref, mine))
        max_diff = max(float(np.abs(a - b).max()) for a, b in zip(ref, mine))
        timings = {"tutorial_figure": [], "instrec": []}
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            for k, y in enumerate(ys):
                tutorial(y, k)
            timings["tutorial_figure"].append((time.perf_counter() - t0) / len(ys))
            t0 = time.perf_counter()
            for y in ys:
                compute(y, config)
            timings["instrec"].append((time.perf_counter() - t0) / len(ys))
    best = {k: min(v) for k, v in timings.items()}
    ratio = best["tutorial_figure"] / best["instrec"]
    ratio_with_decode = (best["tutorial_figure"] + decode) / (best["instrec"] + decode)
    print(f"tutorial figure pipeline: {1e3 * best['tutorial_figure']:.1f} ms per clip")
    print(f"instrec direct image:     {1e3 * best['instrec']:.2f} ms per clip")
    print(f"ratio {ratio:.1f}x (decoding included in both, {1e3 * decode:.2f} ms per clip: {ratio_with_decode:.1f}x)")
    print(f"correlation with the figure route: min {min(corr):.6f}; identical vectors: {identical}/{len(ys)}; "
          f"max |difference| {max_diff:.4f}")
    met = ratio >= 20 and min(corr) >= 0.99
    print(f"target >= 20x, correlation >= 0.99: {'met' if met else 'NOT met'}")
    out = save("bench_image", {
        "benchmark": "tutorial spectrogram image (640x480 gray) from decoded audio: figure + PNG route vs instrec",
        "machine": info, "data": what, "clips": len(ys),
        "ms_per_clip": {k: round(1e3 * v, 3) for k, v in best.items()},
        "all_runs_ms_per_clip": {k: [round(1e3 * x, 3) for x in v] for k, v in timings.items()},
        "decode_ms_per_clip": round(1e3 * decode, 3),
        "ratio": round(ratio, 1), "ratio_including_decode": round(ratio_with_decode, 1),
        "correlation_min": min(corr), "correlation_mean": float(np.mean(corr)),
        "identical_vectors": identical, "max_abs_diff": max_diff,
        "target": ">= 20x, correlation >= 0.99", "met": met,
    })
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
