"""MFCC: instrec's fast route vs ``librosa.feature.mfcc``, same decoded clips, one core.

Target (issue 5): at least 3x faster, same values (max abs difference <= 1e-3 x the range of
librosa's values). Two comparisons: the full MFCC matrix (``instrec.features.mfcc.mfcc`` vs
``librosa.feature.mfcc``), and the feature the seed-mfcc recipe uses, the mean over frames
(``mfcc_mean`` vs ``librosa.feature.mfcc(...).mean(axis=1)``). BLAS is held to one thread for both.

    python -m benchmarks.bench_mfcc [--data DIR] [--clips N] [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_common import clips, describe, machine, one_thread, save


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--clips", type=int, default=600)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    import librosa

    from instrec.audio import load
    from instrec.features.mfcc import mfcc, mfcc_mean

    paths, what = clips(args.data)
    paths = paths[:: max(1, len(paths) // args.clips)][: args.clips]
    ys = [load(p)[0] for p in paths]
    seconds_audio = sum(len(y) for y in ys) / 22050
    kw = dict(sr=22050, n_mfcc=40)
    info = machine()
    print(f"{len(ys)} clips ({what}), {seconds_audio:.0f} s of audio; {describe(info)}")

    with one_thread():
        # values first (and warm both: caches, imports)
        worst_mean = worst_full = 0.0
        for y in ys:
            ref = librosa.feature.mfcc(y=y, **kw)
            full = mfcc(y, **kw)
            worst_full = max(worst_full, float(np.abs(full - ref).max() / (ref.max() - ref.min())))
            r = ref.mean(axis=1)
            worst_mean = max(worst_mean, float(np.abs(mfcc_mean(y, **kw) - r).max() / (r.max() - r.min())))
        timings = {"librosa_full": [], "instrec_full": [], "librosa_mean": [], "instrec_mean": []}
        for _ in range(args.repeat):  # alternate, so that load from other work hits both alike
            for name, fn in (("librosa_full", lambda y: librosa.feature.mfcc(y=y, **kw)),
                             ("instrec_full", lambda y: mfcc(y, **kw)),
                             ("librosa_mean", lambda y: librosa.feature.mfcc(y=y, **kw).mean(axis=1)),
                             ("instrec_mean", lambda y: mfcc_mean(y, **kw))):
                t0 = time.perf_counter()
                for y in ys:
                    fn(y)
                timings[name].append((time.perf_counter() - t0) / len(ys))
    best = {k: min(v) for k, v in timings.items()}
    ratio_full = best["librosa_full"] / best["instrec_full"]
    ratio_mean = best["librosa_mean"] / best["instrec_mean"]
    print(f"full MFCC matrix: librosa {1e3 * best['librosa_full']:.3f} ms/clip, instrec {1e3 * best['instrec_full']:.3f} ms/clip, "
          f"ratio {ratio_full:.1f}x; max |diff| / range {worst_full:.2e}")
    print(f"MFCC means (seed-mfcc's feature): librosa {1e3 * best['librosa_mean']:.3f} ms/clip, "
          f"instrec {1e3 * best['instrec_mean']:.3f} ms/clip, ratio {ratio_mean:.1f}x; max |diff| / range {worst_mean:.2e}")
    ok = min(ratio_full, ratio_mean) >= 3 and max(worst_full, worst_mean) <= 1e-3
    print(f"target >= 3x and <= 1e-3 x range: {'met' if ok else 'NOT met'}")
    out = save("bench_mfcc", {
        "benchmark": "MFCC vs librosa.feature.mfcc (n_mfcc 40, n_fft 2048, hop 512, 128 mels), decoded audio, 1 BLAS thread",
        "machine": info, "data": what, "clips": len(ys), "audio_seconds": round(seconds_audio, 1),
        "ms_per_clip": {k: round(1e3 * v, 4) for k, v in best.items()},
        "all_runs_ms_per_clip": {k: [round(1e3 * x, 4) for x in v] for k, v in timings.items()},
        "ratio_full": round(ratio_full, 2), "ratio_mean": round(ratio_mean, 2),
        "max_abs_diff_over_range": {"full": worst_full, "mean": worst_mean},
        "target": ">= 3x, max abs diff <= 1e-3 x range", "met": ok,
    })
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
