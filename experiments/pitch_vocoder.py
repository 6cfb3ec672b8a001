"""Does a vectorised phase vocoder speed up mfcc-stats' pitch-shifted copies? (2026-12-08)

Training mfcc-stats shifts every clip 8 times with ``librosa.effects.pitch_shift``, whose phase
vocoder steps through the output frames one at a time. This script's :func:`phase_vocoder` computes
the magnitudes, phase differences and phasors of all frames at once (only the phase accumulation,
which rounds to the STFT's precision at every frame, stays a loop) and gives librosa's samples
exactly. It times both on the same decoded clips, alternating, one core, best of ``--repeat``.

Answer: 1.24x on the shift alone (the arctangents and phasors, not the loop, are most of the
vocoder's time), about 8% of a shifted copy's features with its decoding and MFCCs: not adopted.

    python -m experiments.pitch_vocoder [--data DIR] [--every 4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_common import REAL_DATA, describe, machine, one_thread, save

_BLOCK = 256  # output frames at a time: the frame-wide arrays stay a few MB whatever the length


def phase_vocoder(D: np.ndarray, *, rate: float, hop_length: int | None = None, n_fft: int | None = None) -> np.ndarray:
    """``librosa.phase_vocoder(D, rate=rate, ...)`` of a one-channel STFT ``D`` ``(1 + n_fft/2, t)``."""
    import librosa

    n_fft = 2 * (D.shape[-2] - 1) if n_fft is None else n_fft
    hop_length = int(n_fft // 4) if hop_length is None else hop_length
    steps = np.arange(0, D.shape[-1], rate, dtype=np.float64)
    advance = hop_length * librosa.fft_frequencies(sr=2 * np.pi, n_fft=n_fft)
    D = np.pad(D, [(0, 0), (0, 2)], mode="constant")
    out = np.zeros_like(D, shape=(D.shape[0], len(steps)))
    phase = np.angle(D[:, 0])
    for a in range(0, len(steps), _BLOCK):
        step = steps[a : a + _BLOCK]
        left = step.astype(np.int64)
        cols = D[:, left[0] : left[-1] + 2]  # the input frames this block reads
        left -= left[0]
        mag, angle = np.abs(cols), np.angle(cols)
        alpha = np.mod(step, 1.0)
        weighted = (1.0 - alpha) * mag[:, left] + alpha * mag[:, left + 1]
        dphase = angle[:, left + 1] - angle[:, left] - advance[:, None]
        dphase = dphase - 2.0 * np.pi * np.round(dphase / (2.0 * np.pi))
        dphase += advance[:, None]
        acc = np.empty((D.shape[0], len(step)), dtype=phase.dtype)
        for t in range(len(step)):  # sequential: the sum rounds to the phase's dtype at every frame
            acc[:, t] = phase
            phase += dphase[:, t]
        out[:, a : a + len(step)] = librosa.util.phasor(acc, mag=weighted)
    return out


def pitch_shift(y: np.ndarray, *, sr: float, n_steps: float) -> np.ndarray:
    """``librosa.effects.pitch_shift(y, sr=sr, n_steps=n_steps)`` of mono ``y`` (its defaults:
    12 steps an octave, ``soxr_hq``, no rescaling), the same samples."""
    import librosa

    rate = 2.0 ** (-float(n_steps) / 12)
    stretched = librosa.istft(phase_vocoder(librosa.stft(y), rate=rate), dtype=y.dtype,
                              length=int(round(y.shape[-1] / rate)))
    shifted = librosa.resample(stretched, orig_sr=float(sr) / rate, target_sr=sr, res_type="soxr_hq", scale=False)
    return librosa.util.fix_length(shifted, size=y.shape[-1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REAL_DATA)
    ap.add_argument("--every", type=int, default=4, help="every Nth clip of the folder")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        raise SystemExit(f"no data at {args.data} (--data DIR: a labelled folder)")
    import librosa

    from instrec.audio import load
    from instrec.data import load_dataset
    from instrec.recipes import get_recipe

    info = machine()
    recipe = get_recipe("mfcc-stats")
    sr, shifts = recipe.feature.sr, recipe.train.pitch_shifts
    clips = [load(c.path, sr=sr)[0] for c in load_dataset(args.data).clips[:: args.every]]
    ways = {"librosa": lambda y, s: librosa.effects.pitch_shift(y, sr=sr, n_steps=s),
            "vectorised": lambda y, s: pitch_shift(y, sr=sr, n_steps=s)}
    for y in clips[:2]:  # the first calls pay numba's and the FFT's set-up
        for way in ways.values():
            way(y, shifts[0])
    for y in clips:
        for s in shifts:
            assert np.array_equal(ways["librosa"](y, s), ways["vectorised"](y, s)), "the samples differ"
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    with one_thread():
        for _ in range(args.repeat):
            for name, way in ways.items():
                t0 = time.perf_counter()
                for y in clips:
                    for s in shifts:
                        way(y, s)
                seconds[name].append(time.perf_counter() - t0)
                print(name, f"{seconds[name][-1]:.2f} s", flush=True)
    n = len(clips) * len(shifts)
    best = {name: min(v) for name, v in seconds.items()}
    ratio = best["librosa"] / best["vectorised"]
    print(f"{describe(info)}\n{len(clips)} clips x {len(shifts)} shifts, one core: librosa "
          f"{1000 * best['librosa'] / n:.2f} ms a copy, vectorised {1000 * best['vectorised'] / n:.2f} ms: {ratio:.2f}x; "
          "samples identical")
    save("pitch_vocoder", {"machine": info, "data": str(args.data), "every": args.every, "clips": len(clips),
                         "shifts": list(shifts), "seconds": seconds, "best_seconds": best, "ratio": ratio,
                         "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}, Path(__file__).parent / "results")


if __name__ == "__main__":
    main()
