"""Peak memory: the seed-spectrogram recipe end to end, and streaming extraction of 1,000 vs 10,000 clips.

Targets (issue 5):

* the seed-spectrogram recipe (640x480 images, MLP) trained on the 600 clips, end to end
  (:func:`instrec.pipeline.train_model`: decoding, features, training, scoring): at most 1.5 GB;
* extracting 10,000 clips: flat memory, at most 1.2x the peak of extracting 1,000.

Every measurement runs in a fresh process (``python -m benchmarks.bench_memory --child ...``). Its memory is
sampled every 0.2 s as the sum of the proportional set size (PSS: shared pages split between the
processes sharing them) of the process and all its descendants, the worker pool included; the
process's own peak RSS (``VmHWM``) is recorded too; the peak is the larger of the two. The cache is
off.

The 10,000 "clips" are 1,000 distinct FluidSynth renders (3 s, 6 instruments) listed 10 times.
Extraction streams (:func:`instrec.features.iter_features`) into a running sum, for the cnn's
features (3-s waveform windows, 264 KB a row: 10,000 rows held at once would be 2.6 GB) and the
tutorial's images (1.2 MB a row); the seed-mfcc features (160 bytes a row) go through
:func:`instrec.features.extract`, which returns them all.

    python -m benchmarks.bench_memory [--data DIR] [--small 1000] [--large 10000] [--skip-train]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.bench_common import HERE, TreeMemory, clips, describe, high_water_mib, machine, rendered, save, tmpdir


def child(args) -> int:
    """The measured work; prints one JSON line."""
    t0 = time.perf_counter()
    out = {}
    if args.child == "train":
        from instrec.pipeline import DataOptions, train_model

        res = train_model(args.data, recipe="seed-spectrogram", options=DataOptions(cache=False), seed=0)
        out.update(accuracy=res.metrics["accuracy"], n=res.metrics["n"], extract_seconds=res.extract_seconds,
                   train_seconds=res.train_seconds)
    else:
        import numpy as np

        from instrec.features import extract, iter_features
        from instrec.recipes import get_recipe

        paths = [line for line in Path(args.list).read_text().splitlines() if line][: args.n]
        paths = (paths * (args.n // len(paths) + 1))[: args.n]
        config = get_recipe(args.recipe).feature
        if args.child == "stream":
            total, used = np.zeros(config.dim, np.float64), 0
            for _, row, _ in iter_features(paths, config, cache=False):
                if row is not None:
                    total += row
                    used += 1
            out.update(rows=used, checksum=float(total.sum()))
        else:
            X, ok, skipped = extract(paths, config, cache=False)
            out.update(rows=len(ok), checksum=float(X.sum(dtype=np.float64)))
    out.update(seconds=time.perf_counter() - t0, hwm_mib=high_water_mib())
    print(json.dumps(out))
    return 0


def measure(*child_args: str) -> dict:
    # run as a module from the repository root, where the benchmarks package is importable
    cmd = [sys.executable, "-m", "benchmarks.bench_memory", *child_args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=HERE.parent)
    with TreeMemory(proc.pid) as mem:
        stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(child_args)} failed:\n{stderr}")
    res = json.loads(stdout.strip().splitlines()[-1])
    res["peak_tree_pss_mib"] = round(mem.peak_mib, 1)
    res["hwm_mib"] = round(res["hwm_mib"], 1)
    # sampling can miss a short peak; the main process's own high-water mark cannot
    res["peak_mib"] = max(res["peak_tree_pss_mib"], res["hwm_mib"])
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--small", type=int, default=1000)
    ap.add_argument("--large", type=int, default=10000)
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--child", choices=["train", "stream", "extract"])
    ap.add_argument("--list")
    ap.add_argument("--n", type=int)
    ap.add_argument("--recipe")
    args = ap.parse_args()
    if args.child:
        return child(args)

    info = machine()
    result = {"benchmark": "peak memory (PSS of the process tree, sampled every 0.2 s), fresh process each",
              "machine": info}
    print(describe(info))
    met = True
    if not args.skip_train:
        paths, what = clips(args.data)
        data = paths[0].parents[1]
        r = measure("--child", "train", "--data", str(data.resolve()))
        ok = r["peak_mib"] <= 1.5 * 1024
        met &= ok
        result["seed_spectrogram_train"] = {"data": what, **r, "target_mib": 1536, "met": ok}
        print(f"seed-spectrogram, train_model on {what}: peak {r['peak_mib']:.0f} MiB (process tree PSS "
              f"{r['peak_tree_pss_mib']:.0f} MiB, main process peak RSS {r['hwm_mib']:.0f} MiB), "
              f"{r['seconds']:.0f} s; target <= 1.5 GB: "
              f"{'met' if ok else 'NOT met'}", flush=True)

    distinct = rendered(-(-args.small // 6), seconds=3.0)[: args.small]
    listing = tmpdir() / "clips.txt"
    listing.write_text("\n".join(map(str, distinct)) + "\n")
    result["streaming_data"] = f"{len(distinct)} distinct FluidSynth renders (3 s, seed 0), listed up to {args.large} times"
    for mode, recipe in (("stream", "cnn"), ("stream", "seed-spectrogram"), ("extract", "seed-mfcc")):
        runs = {}
        for n in (args.small, args.large):
            runs[n] = measure("--child", mode, "--list", str(listing), "--n", str(n), "--recipe", recipe)
        small, large = runs[args.small]["peak_mib"], runs[args.large]["peak_mib"]
        growth = large / small
        ok = growth <= 1.2
        met &= ok
        result[f"{mode}_{recipe}"] = {"small": {"n": args.small, **runs[args.small]},
                                      "large": {"n": args.large, **runs[args.large]},
                                      "growth": round(growth, 3), "met": ok}
        print(f"{mode} ({recipe}): {args.small} clips peak {small:.0f} MiB ({runs[args.small]['seconds']:.0f} s), "
              f"{args.large} clips peak {large:.0f} MiB ({runs[args.large]['seconds']:.0f} s): {growth:.2f}x; "
              f"target <= 1.2x: {'met' if ok else 'NOT met'}", flush=True)
    result["met"] = met
    out = save("bench_memory", result)
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
