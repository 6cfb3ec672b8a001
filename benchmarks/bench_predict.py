"""Prediction speed (issue 5): cold start of `instrec predict one.wav` and warm prediction of one clip.

    python -m benchmarks.bench_predict [--repeat 7]

* **cold start**: wall time of a whole `instrec predict one.wav` process (imports, model load,
  decode, features, network, output) with the onnxruntime engine, against the PyTorch engine in the
  same run (the baseline). Target: ONNX ≤ 1.5 s.
* **warm prediction**: one 3-s clip through a loaded model (`Model.predict(y, sr)`: features and
  network; the audio already decoded; default threads), median of many calls, the PyTorch engine (target ≤ 5 ms)
  and onnxruntime; the baseline is the tutorial's route for one clip (librosa mel spectrogram drawn
  as a matplotlib figure, rasterised in memory -- cheaper than the tutorial's PNG file round trip --,
  made grayscale and fed to the seed-spectrogram MLP).

* **a long recording** (``--timeline``): ``predict_file`` of 6 minutes of rendered music (239 windows of
  3 s), warm, best of ``--timeline-repeat`` alternating runs: onnxruntime running 1 window a
  session run (instrec's ``WAVEFORM_SLICE``) against 16 (a whole window batch, as before
  2026-12-07), and the PyTorch engine; the hour's time is 10 times the figure.

Writes benchmarks/results/bench_predict.json.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import bench_common as bc


def cold_start(clip: Path, engine: str, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "instrec", "predict", str(clip), "--engine", engine, "--format", "json"],
                           capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if r.returncode != 0:
            raise SystemExit(f"instrec predict failed: {r.stderr}")
    return times


def warm(fn, n: int) -> list[float]:
    fn()  # first call: lazy imports, allocations
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def tutorial_route(y: np.ndarray, sr: int):
    """The tutorial's per-clip prediction: figure → PNG → grayscale → MLP (an untrained one: the
    cost, not the answer, is measured)."""
    import torch

    from instrec.features.image import spectrogram_image_figure
    from instrec.features.mel import mel_spectrogram_db
    from instrec.models.mlp import MLP

    net = MLP(640 * 480, (64, 32), 6).eval()

    def run():
        S = mel_spectrogram_db(y, sr=sr, n_fft=2048, hop_length=512, n_mels=128, top_db=80.0)
        img = spectrogram_image_figure(S, width=640, height=480, mode="gray")
        with torch.inference_mode():
            return torch.softmax(net(torch.from_numpy(img.reshape(1, -1).astype(np.float32))), 1)

    return run


def timeline(repeat: int) -> dict:
    """Seconds for a 6-minute recording's timeline, onnx at 1 and 16 windows a run and torch, alternating."""
    import soundfile as sf

    import instrec
    from instrec.data.music import render_music

    folder = bc.tmpdir("instrec-bench-timeline-")
    render_music(folder / "music", pieces="chorales,ensembles", n=24, seconds=15.0, seed=0, jobs=0)
    y = np.concatenate([sf.read(p, dtype="float32")[0] for p in sorted((folder / "music").glob("*.wav"))])
    path = folder / "six-minutes.flac"
    sf.write(path, y[: 360 * 22050], 22050)
    onnx, torch_model = instrec.load_model(engine="onnx"), instrec.load_model(engine="torch")
    slices = {"onnx_1_window_a_run": 1, "onnx_16_windows_a_run": 16}
    times: dict[str, list[float]] = {k: [] for k in [*slices, "torch"]}
    answers = {}
    for _ in range(repeat):
        for key in times:
            model = torch_model if key == "torch" else onnx
            if key in slices:
                onnx.engine._batch = slices[key]
            t0 = time.perf_counter()
            answers[key] = model.predict_file(path)
            times[key].append(round(time.perf_counter() - t0, 3))
    onnx.engine._batch = slices["onnx_1_window_a_run"]
    a, b = (np.array([list(w.probabilities.values()) for w in answers[k].windows]) for k in slices)
    best = {k: min(v) for k, v in times.items()}
    return {"seconds_6_min": times, "best": best, "windows": len(answers["torch"].windows),
            "ratio_16_over_1": round(best["onnx_16_windows_a_run"] / best["onnx_1_window_a_run"], 2),
            "max_probability_difference_1_vs_16": float(np.abs(a - b).max())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7, help="cold starts per engine")
    ap.add_argument("--warm", type=int, default=200, help="warm calls per engine")
    ap.add_argument("--timeline", action="store_true", help="only the 6-minute timeline, into results/bench_predict_timeline.json")
    ap.add_argument("--timeline-repeat", type=int, default=3)
    args = ap.parse_args()
    if args.timeline:
        result = {"machine": bc.machine(), **timeline(args.timeline_repeat)}
        bc.save("bench_predict_timeline", result)
        print(f"6-minute timeline ({result['windows']} windows), best of {args.timeline_repeat}: {result['best']}; "
              f"onnx 16 windows a run / 1: {result['ratio_16_over_1']}x; probabilities differ by "
              f"{result['max_probability_difference_1_vs_16']:.1e} at most")
        return

    import instrec

    clip = bc.rendered(1, seconds=3.0)[0]
    import soundfile as sf

    y, sr = sf.read(str(clip), dtype="float32")
    # cold start: alternate the engines so that both see the same machine load
    onnx_t, torch_t = [], []
    for _ in range(args.repeat):
        onnx_t += cold_start(clip, "onnx", 1)
        torch_t += cold_start(clip, "torch", 1)
    import torch

    # the threads a user gets by default (torch: one per core; onnxruntime: up to 4)
    engines = {e: instrec.load_model(engine=e) for e in ("torch", "onnx")}
    warm_t = {e: warm(lambda m=m: m.predict(y, sr), args.warm) for e, m in engines.items()}
    baseline = warm(tutorial_route(y, sr), max(10, args.warm // 20))
    med = {k: statistics.median(v) for k, v in warm_t.items()}
    result = {
        "machine": bc.machine(),
        "clip": f"one 3-s FluidR3 render at {sr} Hz ({clip.name})",
        "cold_start_s": {"onnx": statistics.median(onnx_t), "torch": statistics.median(torch_t),
                         "onnx_all": onnx_t, "torch_all": torch_t, "ratio_torch_over_onnx": statistics.median(torch_t) / statistics.median(onnx_t)},
        "warm_ms": {"torch": 1000 * med["torch"], "onnx": 1000 * med["onnx"],
                    "tutorial_figure_route": 1000 * statistics.median(baseline),
                    "ratio_tutorial_over_torch": statistics.median(baseline) / med["torch"],
                    "torch_threads": torch.get_num_threads(), "calls": args.warm},
        "targets": {"cold_start_onnx_s": 1.5, "warm_cnn_ms": 5.0},
    }
    result["met"] = {"cold_start_onnx": result["cold_start_s"]["onnx"] <= 1.5, "warm_cnn": result["warm_ms"]["torch"] <= 5.0}
    bc.save("bench_predict", result)
    c, w = result["cold_start_s"], result["warm_ms"]
    print(f"cold start, `instrec predict one.wav`: onnx {c['onnx']:.2f} s, torch {c['torch']:.2f} s "
          f"(torch/onnx {c['ratio_torch_over_onnx']:.1f}x; target onnx <= 1.5 s)")
    print(f"warm prediction of one 3-s clip: torch {w['torch']:.2f} ms, onnx {w['onnx']:.2f} ms, "
          f"tutorial figure route {w['tutorial_figure_route']:.0f} ms ({w['ratio_tutorial_over_torch']:.0f}x slower; target <= 5 ms)")


if __name__ == "__main__":
    main()
