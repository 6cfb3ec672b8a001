"""Real clips plus every render in training, tested on real clips only, over many folds (issue 3).

    python -m experiments.real_plus_renders [--recipe mfcc-stats] [--split random|pitch] [--fold-seeds 0 1 2]

What a user with a few real recordings gets from `instrec train REAL RENDERS`, measured over K
folds of the 600 Philharmonia clips instead of one split: each fold's real test clips are scored
by a model trained on the other real clips plus all the renders of `render --soundfont all`
(`--rendered`), with the recipe's pitch-shifted copies of both (instrec.pipeline.training_rows).
`--split random`: stratified folds, the tutorial's kind of split; `--split pitch`: grouped by
pitch, no pitch on both sides. Beside it, the same folds without the renders.

Results: experiments/results/real_plus_renders-<recipe>-<split>.json, and a line per fold seed.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

from instrec.classifier import InstrumentClassifier
from instrec.data import load_dataset
from instrec.data.splits import clip_groups, kfold_indices
from instrec.features import extract
from instrec.fileio import write_json
from instrec.pipeline import shifted_features, training_rows
from instrec.recipes import get_recipe

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "london_phill_dataset_multi"
HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="mfcc-stats")
    ap.add_argument("--split", choices=("random", "pitch"), default="random")
    ap.add_argument("--fold-seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--rendered", type=Path, default=Path("build/bench-generalization/render-all-100-seed0"))
    args = ap.parse_args()
    if not REAL.is_dir() or not (args.rendered / "manifest.csv").is_file():
        print(f"needs the real clips at {REAL} and a `render --soundfont all` folder at {args.rendered}", file=sys.stderr)
        return 1
    recipe = get_recipe(args.recipe)
    real, renders = load_dataset(REAL), load_dataset(args.rendered)
    Xr, okr, _ = extract([c.path for c in real.clips], recipe.feature, compact=True)
    clips = [real.clips[i] for i in okr]
    y = [c.label for c in clips]
    Xs, oks, _ = extract([c.path for c in renders.clips], recipe.feature, compact=True)
    made = [renders.clips[i] for i in oks]
    every = np.arange(len(made))
    Xs_train, ys_train = training_rows(Xs, [c.label for c in made], every, shifted_features(made, recipe, every))
    shifted_real = shifted_features(clips, recipe, np.arange(len(clips)))
    groups = clip_groups(clips, "pitch") if args.split == "pitch" else None
    out = {"machine": f"{platform.machine()}, {platform.system()}, python {platform.python_version()}",
           "date": date.today().isoformat(), "recipe": recipe.to_dict(), "split": args.split, "k": args.k,
           "n_real": len(clips), "n_rendered": len(made), "sources": sorted({c.source for c in made}),
           "network_seed": "the fold seed", "fold_seeds": {}}
    path = HERE / "results" / f"real_plus_renders-{args.recipe}-{args.split}.json"
    for seed in args.fold_seeds:
        t0 = time.perf_counter()
        row = {"with_renders": [], "real_only": [], "n_test": []}
        for tr, te in kfold_indices(y, args.k, seed=seed, groups=groups):
            X_real, y_real = training_rows(Xr, y, tr, shifted_real)
            for key, (X, labels) in (("with_renders", (np.concatenate([X_real, Xs_train]), y_real + ys_train)),
                                     ("real_only", (X_real, y_real))):
                clf = InstrumentClassifier(recipe, seed=seed).fit(X, labels)
                row[key].append(float(np.mean(np.array(clf.predict(Xr[te])) == np.array([y[i] for i in te]))))
            row["n_test"].append(int(len(te)))
        row["seconds"] = round(time.perf_counter() - t0, 1)
        out["fold_seeds"][str(seed)] = row
        write_json(path, out)
        print(f"fold seed {seed}: with renders {np.mean(row['with_renders']):.4f} {np.round(row['with_renders'], 4).tolist()}, "
              f"real only {np.mean(row['real_only']):.4f} {np.round(row['real_only'], 4).tolist()}", flush=True)
    for key in ("with_renders", "real_only"):
        out[f"{key}_mean"] = float(np.mean([np.mean(r[key]) for r in out["fold_seeds"].values()]))
    write_json(path, out)
    print(f"mean over fold seeds: with renders {out['with_renders_mean']:.4f}, real only {out['real_only_mean']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
