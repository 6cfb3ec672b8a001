"""Where a model fails on the 600 real clips: by dynamic, by confusion, and what their noise floor holds.

    python -m benchmarks.real_error_analysis [MODEL_DIR] [--highpass 120]

For a model (the shipped one by default) in the tutorial's six-class mode:

* accuracy by the dynamic and the articulation in each file name
  (``saxophone_Gs3_025_forte_normal.mp3``), and the commonest confusions with their dynamic;
* the noise floor of the real clips: the mean power spectrum of each clip's quietest 10% of frames,
  as shares of four bands; and, for comparison, how far below their loudest frames the quietest
  frames of a sample of renders lie (renders end in digital silence);
* a diagnostic, not a remedy: the same model on the clips high-passed at ``--highpass`` Hz
  (4th-order Butterworth, zero phase), on all 600 and on ``score_real.py``'s dev half.

The real clips are only measured here. An idea taken from this analysis has seen the test half of
``score_real.py``, and experiments/LOG.md says so where one was tried.

Writes benchmarks/results/real_error_analysis.json.
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

import numpy as np

from benchmarks import bench_common as bc
from benchmarks.score_real import REAL, halves

HERE = Path(__file__).resolve().parent

SIX = "flute,viola,cello,oboe,trumpet,saxophone"
BANDS = ((0, 200), (200, 1000), (1000, 4000), (4000, 11025))


def frame_power(y: np.ndarray) -> np.ndarray:
    import librosa

    return np.abs(librosa.stft(y, n_fft=2048, hop_length=512)) ** 2  # (bins, frames)


def quiet_frames(S: np.ndarray) -> tuple[float, np.ndarray] | None:
    """dB from the loudest quarter of frames down to the quietest tenth, and that tenth's spectrum."""
    e = S.sum(0)
    if len(e) < 4:
        return None
    order = np.argsort(e)
    quiet, loud = order[: max(1, len(e) // 10)], order[-max(1, len(e) // 4):]
    depth = 10 * np.log10(e[loud].mean() / max(e[quiet].mean(), 1e-20))
    return float(depth), S[:, quiet].mean(1)


def by_parts(clips, labels) -> dict:
    acc, confusions = collections.defaultdict(list), collections.Counter()
    for c, got in zip(clips, labels):
        parts = c.path.stem.split("_")
        dynamic, articulation = parts[3], "_".join(parts[4:])
        ok = got == c.label
        acc[f"dynamic {dynamic}"].append(ok)
        acc[f"articulation {articulation}"].append(ok)
        if not ok:
            confusions[f"{c.label} ({dynamic}) as {got}"] += 1
    return {"accuracy": {k: {"n": len(v), "accuracy": round(float(np.mean(v)), 4)} for k, v in sorted(acc.items())},
            "confusions": dict(confusions.most_common(15))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default=None, help="model bundle (default: the shipped model)")
    ap.add_argument("--highpass", type=float, default=120.0)
    ap.add_argument("--renders", type=Path, default=HERE.parent / "build" / "shipped7" / "render-seed0-100",
                    help="a render folder to compare noise floors with (skipped if absent)")
    args = ap.parse_args()

    import librosa
    from scipy.signal import butter, sosfiltfilt

    from instrec import load_model
    from instrec.audio import load
    from instrec.data import load_dataset

    ds = load_dataset(REAL)
    model = load_model(args.model).restrict(SIX)
    audio = [load(c.path, sr=model.feature.sr)[0] for c in ds.clips]
    sr = model.feature.sr
    labels = [model.predict(y, sr).label for y in audio]
    result = {"machine": bc.machine(), "model": args.model or "shipped", "clips": len(ds.clips),
              "overall": round(float(np.mean([l == c.label for l, c in zip(labels, ds.clips)])), 4),
              **by_parts(ds.clips, labels)}

    f = librosa.fft_frequencies(sr=sr, n_fft=2048)
    floors = [q for q in (quiet_frames(frame_power(y)) for y in audio) if q is not None]
    spectrum = np.mean([s / s.sum() for _, s in floors], axis=0)
    result["noise_floor"] = {
        "real_band_shares": {f"{lo}-{hi} Hz": round(float(spectrum[(f >= lo) & (f < hi)].sum()), 4) for lo, hi in BANDS},
        "real_quiet_frames_below_loud_dB": {p: round(float(np.percentile([d for d, _ in floors], q)), 1)
                                            for p, q in (("p10", 10), ("median", 50), ("p90", 90))},
    }
    renders = sorted(args.renders.glob("*/*.wav"))[::10]
    if renders:
        depths = [q[0] for q in (quiet_frames(frame_power(load(p, sr=sr)[0])) for p in renders) if q is not None]
        result["noise_floor"]["renders_quiet_frames_below_loud_dB"] = {
            "clips": len(depths), "median": round(float(np.median(depths)), 1)}

    sos = butter(4, args.highpass, "highpass", fs=sr, output="sos")
    filtered = [model.predict(sosfiltfilt(sos, y).astype(np.float32), sr).label for y in audio]
    dev = halves(ds.clips)["dev"]
    score = lambda got, rows: round(float(np.mean([got[i] == ds.clips[i].label for i in rows])), 4)  # noqa: E731
    everything = range(len(ds.clips))
    result["highpass_at_test_time"] = {
        "cutoff_hz": args.highpass,
        "all": {"without": score(labels, everything), "with": score(filtered, everything)},
        "dev": {"without": score(labels, dev), "with": score(filtered, dev)},
    }
    bc.save("real_error_analysis", result)
    for k, v in result["accuracy"].items():
        if k.startswith("dynamic"):
            print(f"{k}: {v['accuracy']:.1%} of {v['n']}")
    print("noise floor band shares:", result["noise_floor"]["real_band_shares"])
    print("high-pass at test time:", result["highpass_at_test_time"])


if __name__ == "__main__":
    main()
