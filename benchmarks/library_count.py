"""How accuracy on unheard recordings grows with the number of sample libraries trained on.

    python -m benchmarks.library_count [--renders build/shipped7/render-seed0-100] [--seed 0]

Issue 3's cross-source targets (renders → real clips ≥ 90%) wait on more recording sources. How
many? This trains the shipped recipe (``cnn``, the six instruments and the violin) on every
non-empty subset of three sample libraries that play different recordings -- FluidR3, TimGM6mb
and freepats (MuseScore General is left out: it plays FluidR3's recordings for most instruments,
``results/sample_provenance.json``) -- and scores each network

* on the 600 real Philharmonia clips in the tutorial's six-class mode (never trained on), and
* on the renders of each library it was not trained on (leave-libraries-out).

The renders are those ``scripts/train_shipped_model.py`` makes (``render --soundfont all
--per-class 100``); freepats has no viola, so a network trained on it alone never names one.
Descriptive: nothing is chosen on it. One network seed; seeds alone move these figures by 2-4
points (RESULTS.md), so the trend over subsets of one size matters more than any one subset.

Writes benchmarks/results/library_count.json after every network.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np

from instrec.classifier import InstrumentClassifier
from instrec.data import load_dataset
from instrec.features import extract
from instrec.fileio import write_json
from instrec.inference import class_columns, restrict_proba
from instrec.recipes import get_recipe

from benchmarks import bench_common as bc
from benchmarks.score_real import REAL

HERE = Path(__file__).resolve().parent

LIBRARIES = ("fluidr3", "timgm6mb", "freepats")


def accuracy(truth, P, classes) -> float:
    return float(np.mean(np.array(classes)[P.argmax(1)] == np.array(truth)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--renders", type=Path, default=Path("build/shipped7/render-seed0-100"),
                    help="a folder `render --soundfont all` wrote (train_shipped_model.py's --work/render-seed<S>-<N>)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--real", type=Path, default=REAL)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "library_count.json")
    args = ap.parse_args()
    for path in (args.renders, args.real):
        if not path.is_dir():
            raise SystemExit(f"{path}: not there (render with scripts/train_shipped_model.py first)")

    recipe = get_recipe("cnn")
    if args.epochs:
        recipe = recipe.with_overrides(epochs=args.epochs)
    renders = load_dataset(args.renders)
    clips = [c for c in renders.clips if c.source in LIBRARIES]
    X, ok, _ = extract([c.path for c in clips], recipe.feature)
    clips = [clips[i] for i in ok]
    y, src = np.array([c.label for c in clips]), np.array([c.source for c in clips])
    real = load_dataset(args.real)
    Xr, okr, _ = extract([c.path for c in real.clips], recipe.feature)
    truth = [real.clips[i].label for i in okr]
    six = sorted(set(truth))

    out = {"machine": bc.machine(), "recipe": recipe.name,
           "renders": str(args.renders), "seed": args.seed, "libraries": list(LIBRARIES),
           "clips": {lib: int((src == lib).sum()) for lib in LIBRARIES}, "real": len(truth), "runs": []}
    for k in (1, 2, 3):
        for subset in itertools.combinations(LIBRARIES, k):
            train = np.isin(src, subset)
            t0 = time.perf_counter()
            clf = InstrumentClassifier(recipe, seed=args.seed).fit(X[train], list(y[train]))
            # six-class mode among the six this network knows (trained on freepats alone, it knows
            # no viola: every real viola then counts as wrong)
            cols = class_columns(clf.classes, [c for c in six if c in clf.classes])
            P6 = restrict_proba(clf.predict_proba(Xr), cols)
            pred = np.array([clf.classes[cols[i]] for i in P6.argmax(1)])
            right = pred == np.array(truth)
            row = {"libraries": list(subset), "n_libraries": k, "n_train": int(train.sum()),
                   "real_six_class_accuracy": float(right.mean()),
                   "real_recall": {c: float(right[np.array(truth) == c].mean()) for c in six},
                   "held_out": {}, "seconds": round(time.perf_counter() - t0, 1),
                   "best_epoch": clf.history_["best_epoch"], "epochs_run": clf.history_["epochs_run"]}
            for lib in LIBRARIES:
                if lib not in subset:
                    m = src == lib
                    # the classes this network knows, of the held-out library's clips
                    known = m & np.isin(y, clf.classes)
                    row["held_out"][lib] = accuracy(y[known], clf.predict_proba(X[known]), clf.classes)
            out["runs"].append(row)
            write_json(args.out, out)
            print(f"{'+'.join(subset):28s} {row['n_train']:5d} clips  real (six-class) {row['real_six_class_accuracy']:.2%}  "
                  + "  ".join(f"{lib} {a:.2%}" for lib, a in row["held_out"].items())
                  + f"  ({row['seconds']:.0f} s)", flush=True)
    for k in (1, 2, 3):
        accs = [r["real_six_class_accuracy"] for r in out["runs"] if r["n_libraries"] == k]
        print(f"{k} librar{'y' if k == 1 else 'ies'}: real clips {np.mean(accs):.2%} (mean of {len(accs)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
