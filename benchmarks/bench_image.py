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

Then the whole command (issue 25; target at least 20x on the machine's cores), each side a fresh
process run as a user runs it, alternately, on the same ``--command-clips`` clips:

* the tutorial's way: a Python script (``--tutorial-command``) that imports librosa and pyplot and,
  per clip, ``librosa.load`` + mel spectrogram + ``power_to_db``, ``plt.figure()``,
  ``librosa.display.specshow``, ``plt.savefig`` to a PNG file, ``plt.close``;
* ``instrec spectrograms DATA OUT`` (all cores: its worker pool, PNG files written by threads).

Both wall times include starting Python and the imports. The pictures are compared (the
tutorial's PNG converted to grey, as the tutorial's training code reads it, against instrec's PNG)
and the files' sizes reported, with instrec's pictures re-encoded at Pillow's default PNG settings
for comparison. Beside the ratio it prints the floor: what a clip costs in CPU step by step (decode,
mel spectrogram, picture, PNG; one thread) and the command's start-up (one file, fresh process),
and so the best ratio any schedule of these steps could reach on the machine's cores.

    python -m benchmarks.bench_image [--data DIR] [--clips 60] [--repeat 2] [--command-clips 300]
        [--command-repeat 2]
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_common import clips, describe, machine, one_thread, save, tmpdir

ROOT = Path(__file__).resolve().parents[1]


def tutorial_command(data: Path, out: Path) -> None:
    """The tutorial's way as a script: every audio file in ``data`` to ``out/<name>.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import librosa
    import librosa.display
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    with matplotlib.style.context("default"):  # whatever the user's matplotlibrc says
        for f in sorted(data.iterdir()):
            y, sr = librosa.load(f)
            S = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr), ref=np.max)
            fig = plt.figure()
            librosa.display.specshow(S)
            plt.savefig(out / f"{f.stem}.png")
            plt.close(fig)


def whole_command(paths: list[Path], repeat: int) -> dict:
    """``instrec spectrograms`` against the tutorial's script, fresh processes, alternately."""
    from PIL import Image

    data, work = tmpdir(), tmpdir()
    for k, p in enumerate(paths):  # one flat folder of links, the same for both
        (data / f"{k:04d}_{p.name}").symlink_to(p.resolve())
    commands = {
        "tutorial_script": [sys.executable, "-m", "benchmarks.bench_image", "--tutorial-command"],
        "instrec_spectrograms": [sys.executable, "-m", "instrec", "spectrograms"],
    }
    times: dict[str, list[float]] = {k: [] for k in commands}
    for r in range(repeat):
        for name, cmd in commands.items():
            out = work / f"{name}-{r}"
            t0 = time.perf_counter()
            done = subprocess.run([*cmd, str(data), str(out)], cwd=ROOT, capture_output=True, text=True)
            times[name].append(time.perf_counter() - t0)
            if done.returncode != 0:
                raise SystemExit(f"{name} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    n = len(paths)
    ref_dir, mine_dir = work / "tutorial_script-0", work / "instrec_spectrograms-0"
    identical, corr, sizes = 0, [], {"tutorial_script": [], "instrec_spectrograms": [], "instrec_pillow_default": []}
    for f in sorted(data.iterdir()):
        ref_png, mine_png = ref_dir / f"{f.stem}.png", mine_dir / f"{f.stem}.png"
        ref = np.asarray(Image.open(ref_png).convert("L"))
        mine = np.asarray(Image.open(mine_png))
        identical += bool(np.array_equal(ref, mine))
        corr.append(float(np.corrcoef(ref.ravel(), mine.ravel())[0, 1]))
        sizes["tutorial_script"].append(ref_png.stat().st_size)
        sizes["instrec_spectrograms"].append(mine_png.stat().st_size)
        buf = io.BytesIO()
        Image.fromarray(mine).save(buf, format="PNG")  # Pillow's default: level 6, default strategy
        sizes["instrec_pillow_default"].append(len(buf.getvalue()))
    best = {k: min(v) for k, v in times.items()}
    ratio = best["tutorial_script"] / best["instrec_spectrograms"]
    floor = command_floor(paths, data, work, repeat)
    # the best any schedule of these steps could do: start-up, then every core busy with nothing else
    floor_s = floor["startup_s"] + n * floor["cpu_ms_per_clip"]["total"] / 1e3 / floor["cores"]
    floor.update(seconds=round(floor_s, 3), ratio=round(best["tutorial_script"] / floor_s, 1))
    return {
        "clips": n, "seconds": {k: round(v, 3) for k, v in best.items()},
        "all_runs_seconds": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "ms_per_clip": {k: round(1e3 * v / n, 2) for k, v in best.items()},
        "ratio": round(ratio, 1),
        "identical_pictures": identical, "correlation_min": min(corr),
        "mean_png_bytes": {k: round(float(np.mean(v))) for k, v in sizes.items()},
        "target": ">= 20x", "met": ratio >= 20, "floor": floor,
    }


def command_floor(paths: list[Path], data: Path, work: Path, repeat: int) -> dict:
    """What a clip costs in CPU, step by step (one thread, in this process), and the command's start-up
    (``instrec spectrograms`` on one file, fresh process, best of ``repeat``)."""
    from instrec.audio import load
    from instrec.features import FeatureConfig
    from instrec.features.compute import compute_compact
    from instrec.features.mel import mel_spectrogram_db
    from instrec.spectrograms import encode_png

    c = FeatureConfig(kind="image")
    steps = {"decode": [], "mel": [], "picture": [], "png": []}
    with one_thread():
        for p in paths:
            t0 = time.process_time()
            y = load(p, sr=c.sr)[0]
            t1 = time.process_time()
            mel_spectrogram_db(y, sr=c.sr)
            t2 = time.process_time()
            img = compute_compact(y, c).reshape(c.height, c.width)
            t3 = time.process_time()
            encode_png(img)
            t4 = time.process_time()
            steps["decode"].append(t1 - t0)
            steps["mel"].append(t2 - t1)
            steps["picture"].append(t3 - t2 - (t2 - t1))  # compute_compact = mel + picture
            steps["png"].append(t4 - t3)
    ms = {k: round(1e3 * float(np.mean(v)), 3) for k, v in steps.items()}
    ms["total"] = round(sum(ms.values()), 3)
    one = next(iter(sorted(data.iterdir())))
    starts = []
    for r in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "instrec", "spectrograms", str(one), str(work / f"one-{r}")], cwd=ROOT,
                       capture_output=True, check=True)
        starts.append(time.perf_counter() - t0)
    from instrec.features.parallel import cpu_count

    return {"cpu_ms_per_clip": ms, "startup_s": round(min(starts), 3), "cores": cpu_count()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--clips", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--command-clips", type=int, default=300, help="clips for the whole command (0: skip it)")
    ap.add_argument("--command-repeat", type=int, default=2)
    ap.add_argument("--tutorial-command", nargs=2, type=Path, metavar=("DATA", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.tutorial_command:  # the baseline's own process (see whole_command)
        tutorial_command(*args.tutorial_command)
        return 0

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
    all_paths, what = clips(args.data)
    paths = all_paths[:: max(1, len(all_paths) // args.clips)][: args.clips]
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
    command = None
    if args.command_clips > 0:
        chosen = all_paths[:: max(1, len(all_paths) // args.command_clips)][: args.command_clips]
        load_before = [round(x, 2) for x in os.getloadavg()]
        command = whole_command(chosen, args.command_repeat)
        command["load_average_before_after"] = [load_before, [round(x, 2) for x in os.getloadavg()]]
        t, m = command["ms_per_clip"]["tutorial_script"], command["ms_per_clip"]["instrec_spectrograms"]
        sz = {k: v / 1e3 for k, v in command["mean_png_bytes"].items()}
        print(f"whole command, {command['clips']} clips to PNG files, fresh processes (best of "
              f"{args.command_repeat}; load average {load_before[0]} before, {command['load_average_before_after'][1][0]} after):")
        print(f"  tutorial script:       {command['seconds']['tutorial_script']:.2f} s = {t:.1f} ms per clip")
        print(f"  instrec spectrograms:  {command['seconds']['instrec_spectrograms']:.2f} s = {m:.2f} ms per clip")
        print(f"  ratio {command['ratio']:.1f}x (target >= 20x: {'met' if command['met'] else 'NOT met'}); pictures "
              f"identical: {command['identical_pictures']}/{command['clips']} (correlation min "
              f"{command['correlation_min']:.6f})")
        fl = command["floor"]
        steps = ", ".join(f"{k} {v:.2f}" for k, v in fl["cpu_ms_per_clip"].items())
        print(f"  floor: CPU per clip (ms, one thread) {steps}; start-up {fl['startup_s']:.2f} s; with every one of "
              f"{fl['cores']} cores busy from start-up on: {fl['seconds']:.2f} s, {fl['ratio']:.1f}x at best")
        print(f"  mean PNG size: tutorial {sz['tutorial_script']:.1f} kB (RGBA), instrec {sz['instrec_spectrograms']:.1f} kB, "
              f"instrec's pictures at Pillow's default settings {sz['instrec_pillow_default']:.1f} kB")
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
        "whole_command": command,
    })
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
