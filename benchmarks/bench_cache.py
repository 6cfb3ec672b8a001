"""The feature cache: a second ``instrec train`` on the same data vs the first.

Target (issue 5): the second run's feature extraction at least 10x faster than the first's.
``instrec train DATA --recipe R --epochs 1`` runs as a user runs it, each time in a fresh process,
twice per recipe with a fresh cache folder (``$INSTREC_CACHE``); the extraction time each run
records in its model.json (``training.extract_seconds``: decoding and features, or reading the
cache, and starting the worker pool where one is needed) is compared. Training is cut to 1 epoch:
it is not what is measured. A third run with ``--no-cache`` shows the cost without the cache. The
three runs must give the same test metrics.

    python -m benchmarks.bench_cache [--data DIR] [--recipes seed-mfcc seed-spectrogram cnn] [--jobs N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.bench_common import clips, describe, machine, save, tmpdir


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--recipes", nargs="+", default=["seed-mfcc", "seed-spectrogram", "cnn"])
    ap.add_argument("--jobs", type=int, default=None, help="extraction processes (default: all cores)")
    args = ap.parse_args()

    import json
    import os
    import subprocess

    paths, what = clips(args.data)
    data = paths[0].parents[1]  # the labelled folder (class sub-folders)
    info = machine()
    print(f"{what}; {describe(info)}")
    results = {}
    work = tmpdir("instrec-cache-")
    for name in args.recipes:
        cache = work / f"cache-{name}"
        env = {**os.environ, "INSTREC_CACHE": str(cache)}
        runs = {}
        for label, extra in (("first", []), ("second", []), ("no_cache", ["--no-cache"])):
            model = work / f"{name}-{label}"
            cmd = [sys.executable, "-m", "instrec", "train", str(data), "--recipe", name, "--epochs", "1",
                   "--seed", "0", "--out", str(model), *extra]
            if args.jobs:
                cmd += ["--jobs", str(args.jobs)]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                return 1
            meta = json.loads((model / "model.json").read_text())
            runs[label] = {"extract_seconds": meta["training"]["extract_seconds"],
                           "accuracy": meta["metrics"]["test_split"]["accuracy"]}
        assert runs["first"]["accuracy"] == runs["second"]["accuracy"] == runs["no_cache"]["accuracy"], (name, runs)
        ratio = runs["first"]["extract_seconds"] / runs["second"]["extract_seconds"]
        results[name] = {**runs, "ratio_first_over_second": round(ratio, 1), "cache_mib": round(_size(cache) / 2**20, 1)}
        print(f"{name}: extraction first {runs['first']['extract_seconds']:.2f} s, second (cache) "
              f"{runs['second']['extract_seconds']:.3f} s: {ratio:.1f}x; without cache {runs['no_cache']['extract_seconds']:.2f} s; "
              f"cache {results[name]['cache_mib']} MiB", flush=True)
    worst = min(r["ratio_first_over_second"] for r in results.values())
    met = worst >= 10
    print(f"target >= 10x: {'met' if met else 'NOT met'} (lowest {worst:.1f}x)")
    out = save("bench_cache", {
        "benchmark": "instrec train twice on the same data with one cache folder (fresh processes); "
                     "training.extract_seconds of each run",
        "machine": info, "data": what, "clips": len(paths), "jobs": args.jobs or "all cores",
        "recipes": results, "target": ">= 10x", "met": met,
    })
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
