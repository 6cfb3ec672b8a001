"""Log-mel for the CNN: instrec's front end on decoded 3-s windows, one core, vs librosa.

Target (issue 5): at least 1,000x real time, i.e. at most 3 ms per 3-s clip, on one core.

* instrec: the cnn recipe's front end, :class:`instrec.models.frontend.LogMel` (an ``nn.Module``
  inside the network: torch.stft, mel matrix, dB relative to each clip's peak), on batches of
  windows, ``torch.set_num_threads(1)``, no gradients;
* also instrec's numpy route (:func:`instrec.features.mel.mel_spectrogram_db`, float32) per clip;
* baseline: ``librosa.power_to_db(librosa.feature.melspectrogram(...), ref=np.max, top_db=80)``
  per clip with the same parameters (BLAS held to one thread).

The windows are what the cnn recipe feeds the network: each clip decoded at 22,050 Hz and padded
or cut to 3 s (66,150 samples). Values are compared too (max |dB difference|).

    python -m benchmarks.bench_logmel [--data DIR] [--clips N] [--batch 64] [--repeat 5]
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
    ap.add_argument("--clips", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    import librosa
    import torch

    from instrec.audio import load
    from instrec.features import compute
    from instrec.models.frontend import LogMel
    from instrec.features.mel import mel_spectrogram_db
    from instrec.recipes import get_recipe

    torch.set_num_threads(1)
    c = get_recipe("cnn").feature
    paths, what = clips(args.data)
    paths = paths[:: max(1, len(paths) // args.clips)][: args.clips]
    windows = np.stack([compute(load(p, sr=c.sr)[0], c) for p in paths])  # (n, 66150) float32
    n = len(windows)
    clip_seconds = c.dim / c.sr
    info = machine()
    print(f"{n} windows of {clip_seconds:g} s ({what}); {describe(info)}; torch threads {torch.get_num_threads()}")

    front = LogMel(sr=c.sr, n_fft=c.n_fft, hop_length=c.hop_length, n_mels=c.n_mels, fmin=c.fmin, fmax=c.fmax,
                   top_db=c.top_db).eval()
    mel_kw = dict(sr=c.sr, n_fft=c.n_fft, hop_length=c.hop_length, n_mels=c.n_mels, fmin=c.fmin, fmax=c.fmax)

    def librosa_one(y):
        return librosa.power_to_db(librosa.feature.melspectrogram(y=y, **mel_kw), ref=np.max, top_db=c.top_db)

    def instrec_torch():
        with torch.inference_mode():
            for s in range(0, n, args.batch):
                front(torch.from_numpy(windows[s : s + args.batch]))

    def instrec_numpy():
        for y in windows:
            mel_spectrogram_db(y, top_db=c.top_db, exact=False, **mel_kw)

    def baseline():
        for y in windows:
            librosa_one(y)

    with one_thread():
        with torch.inference_mode():
            torch_db = torch.cat([front(torch.from_numpy(windows[s : s + args.batch])) for s in range(0, n, args.batch)]).numpy()
        ref = np.stack([librosa_one(y) for y in windows])
        np_db = np.stack([mel_spectrogram_db(y, top_db=c.top_db, exact=False, **mel_kw) for y in windows])
        diff_torch = float(np.abs(torch_db - ref).max())
        diff_numpy = float(np.abs(np_db - ref).max())
        timings = {"librosa": [], "instrec_torch": [], "instrec_numpy": []}
        for _ in range(args.repeat):  # alternate, so that load from other work hits all alike
            for name, fn in (("librosa", baseline), ("instrec_torch", instrec_torch), ("instrec_numpy", instrec_numpy)):
                t0 = time.perf_counter()
                fn()
                timings[name].append((time.perf_counter() - t0) / n)
    best = {k: min(v) for k, v in timings.items()}
    for k in best:
        print(f"{k:>14}: {1e3 * best[k]:.3f} ms per {clip_seconds:g}-s clip = {clip_seconds / best[k]:,.0f}x real time")
    ratio = best["librosa"] / best["instrec_torch"]
    print(f"instrec (LogMel, batch {args.batch}) vs librosa: {ratio:.1f}x; numpy route vs librosa: "
          f"{best['librosa'] / best['instrec_numpy']:.1f}x")
    print(f"max |dB difference| vs librosa: torch {diff_torch:.2e}, numpy {diff_numpy:.2e}")
    met = best["instrec_torch"] <= 3e-3
    print(f"target <= 3 ms per 3-s clip on one core: {'met' if met else 'NOT met'}")
    out = save("bench_logmel", {
        "benchmark": "log-mel of 3-s windows (cnn recipe: n_fft 2048, hop 512, 64 mels, fmin 30), one core",
        "machine": info, "data": what, "clips": n, "batch": args.batch, "torch": torch.__version__,
        "ms_per_clip": {k: round(1e3 * v, 4) for k, v in best.items()},
        "times_real_time": {k: round(clip_seconds / v) for k, v in best.items()},
        "all_runs_ms_per_clip": {k: [round(1e3 * x, 4) for x in v] for k, v in timings.items()},
        "ratio_torch_vs_librosa": round(ratio, 2),
        "ratio_numpy_vs_librosa": round(best["librosa"] / best["instrec_numpy"], 2),
        "max_abs_db_diff": {"torch": diff_torch, "numpy": diff_numpy},
        "target": "<= 3 ms per 3-s clip (>= 1000x real time), one core", "met": met,
    })
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
