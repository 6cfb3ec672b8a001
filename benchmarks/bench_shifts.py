"""The features mfcc-stats trains on (its clips and 8 pitch-shifted copies of each): one set of
extraction workers for all nine extractions vs a fresh set for each (the code before 2026-12-07,
which let the workers go after every extraction; emulated here by ``keep_pool=False``).

Each run is a fresh process doing what :func:`instrec.pipeline.train_model` does before training
(2 workers, no cache); runs alternate, the best of ``--repeat`` counts, and the rows are checked
to be identical.

    python -m benchmarks.bench_shifts [--data DIR] [--every 2] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.bench_common import REAL_DATA, describe, machine, save

_CHILD = """
import hashlib, json, sys, time
import numpy as np
import instrec.pipeline.common as common
from instrec.data import load_dataset
from instrec.pipeline import DataOptions
from instrec.recipes import get_recipe

data, every, fresh = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "fresh"
if fresh:  # the old behaviour: every extraction lets its workers go
    keep = common.extract_rows
    common.extract_rows = lambda *a, keep_pool=False, **k: keep(*a, keep_pool=False, **k)
clips = load_dataset(data).clips[::every]
recipe, options = get_recipe("mfcc-stats"), DataOptions(jobs=2, cache=False)
t0 = time.perf_counter()
X, ok, _ = common.extract_rows(clips, recipe.feature, options, None, "features", keep_pool=True)
shifted = common.shifted_features([clips[i] for i in ok], recipe, np.arange(len(ok)), options)
seconds = time.perf_counter() - t0
h = hashlib.sha256(np.ascontiguousarray(X).tobytes())
for Xs, where in shifted:
    h.update(np.ascontiguousarray(Xs).tobytes()); h.update(where.tobytes())
print(json.dumps({"seconds": seconds, "clips": len(ok), "rows": h.hexdigest()}))
"""


def _run(data: Path, every: int, mode: str) -> dict:
    r = subprocess.run([sys.executable, "-c", _CHILD, str(data), str(every), mode], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(r.stderr[-3000:])
    return json.loads(r.stdout.splitlines()[-1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REAL_DATA)
    ap.add_argument("--every", type=int, default=2, help="every Nth clip of the folder")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        raise SystemExit(f"no data at {args.data} (--data DIR: a labelled folder)")
    info = machine()
    runs = {"fresh": [], "one": []}
    for _ in range(args.repeat):
        for mode in runs:
            runs[mode].append(_run(args.data, args.every, mode))
            print(mode, runs[mode][-1], flush=True)
    assert len({r["rows"] for rs in runs.values() for r in rs}) == 1, "the rows differ"
    best = {mode: min(r["seconds"] for r in rs) for mode, rs in runs.items()}
    ratio = best["fresh"] / best["one"]
    clips = runs["one"][0]["clips"]
    print(f"{describe(info)}\n{clips} clips x 9 extractions, 2 workers: a fresh pool each {best['fresh']:.1f} s, "
          f"one pool {best['one']:.1f} s: {ratio:.2f}x; rows identical")
    save("bench_shifts", {"machine": info, "data": str(args.data), "every": args.every, "clips": clips,
                          "runs": runs, "best_seconds": best, "ratio": ratio, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())})


if __name__ == "__main__":
    main()
