"""Real clips, no pitch on both sides: what the mfcc-stats recipe's two parts each give (issue 3).

    python -m benchmarks.pitch_generalization [--fold-seeds 0 1 2] [--k 5]

The 600 Philharmonia clips cover few pitches (five of the six instruments only A and G-sharp, in a
few octaves), so a random split puts near-copies of a note on both sides. Here every clip of a
pitch lies in one fold (``instrec train --cv 5 --group-by pitch``), for several fold
assignments (``--fold-seeds``), and the tutorial's stratified random folds are run beside them.

Variants, a 2 x 2 design plus the tutorial's recipe:
- seed-mfcc:                the tutorial's 40 MFCC means, MLP 64-32-16, 500 epochs
- mfcc-stats:               MFCC means + stds + spectral contrast, MLP 128-64, 100 epochs,
                            weight decay 1e-3, each training clip also shifted by ±1-4 semitones
- mfcc-stats, no shifts:    the same without the pitch-shifted copies
- means only, shifts:       mfcc-stats' network and shifts on the 40 MFCC means alone
- means only, no shifts:    neither
- mfcc-linear:              mfcc-stats' 87 values, no shifts, in a linear classifier (no hidden layer)

Results: benchmarks/results/pitch_generalization.json, and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np

from instrec.fileio import write_json
from instrec.pipeline import KFold, cross_validate
from instrec.recipes import get_recipe

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "london_phill_dataset_multi"
HERE = Path(__file__).resolve().parent


def variants() -> dict:
    stats = get_recipe("mfcc-stats")
    means = replace(stats.feature, stats="mean")
    return {
        "seed-mfcc": get_recipe("seed-mfcc"),
        "mfcc-stats": stats,
        "mfcc-stats, no shifts": replace(stats, train=replace(stats.train, pitch_shifts=())),
        "means only, shifts": replace(stats, feature=means),
        "means only, no shifts": replace(stats, feature=means, train=replace(stats.train, pitch_shifts=())),
        "mfcc-linear": get_recipe("mfcc-linear"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fold-seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--variants", nargs="+", default=list(variants()))
    ap.add_argument("--out", type=Path, default=HERE / "results" / "pitch_generalization.json")
    args = ap.parse_args()
    if not REAL.is_dir():
        print(f"the Philharmonia clips are not at {REAL}; nothing to measure", file=sys.stderr)
        return 1
    out = {"machine": f"{platform.machine()}, {platform.system()}, python {platform.python_version()}",
           "date": date.today().isoformat(), "data": str(REAL), "k": args.k, "fold_seeds": args.fold_seeds,
           "network_seed": "the fold seed", "variants": {}}
    table = ["| variant | grouped by pitch, mean of the fold seeds | per fold seed | stratified random folds |",
             "|---|---|---|---|"]
    for name in args.variants:
        recipe = variants()[name]
        row = {"recipe": recipe.to_dict(), "pitch": {}, "random": {}}
        t0 = time.perf_counter()
        for seed in args.fold_seeds:
            for split, group_by in (("pitch", "pitch"), ("random", None)):
                r = cross_validate(REAL, recipe=recipe, cv=KFold(args.k, group_by=group_by, seed=seed), seed=seed)
                row[split][str(seed)] = {"mean": r["mean"]["accuracy"], "std": r["std"]["accuracy"],
                                         "folds": [f["accuracy"] for f in r["folds"]],
                                         "n_test": [f["n_test"] for f in r["folds"]]}
                print(f"{name:24s} {split:6s} fold seed {seed}: {r['mean']['accuracy']:.4f} "
                      f"± {r['std']['accuracy']:.4f}", flush=True)
        row["seconds"] = round(time.perf_counter() - t0, 1)
        for split in ("pitch", "random"):
            row[f"{split}_mean"] = float(np.mean([v["mean"] for v in row[split].values()]))
        out["variants"][name] = row
        write_json(args.out, out)
        per_seed = " / ".join(f"{row['pitch'][str(s)]['mean']:.2%}" for s in args.fold_seeds)
        table.append(f"| {name} | {row['pitch_mean']:.2%} | {per_seed} | {row['random_mean']:.2%} |")
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
