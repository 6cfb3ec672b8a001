"""Every instrument, its family and "none of these": leave-one-library-out over every source (issue 26).

    python -m benchmarks.vocabulary --data DIR [DIR ...] [--recipe mfcc-stats] [--seed 0]
                                    [--model MODEL_DIR] [--folds LIBRARY ...]

``--data``: rendered folders with a manifest (``instrec render --soundfont all``, the sampler
sources, ``--negatives``), as ``scripts/train_shipped_model.py`` renders them. Rows:

- lolo: each library held out in turn (FluidR3 and MuseScore General, which play the same
  recordings of most instruments, together; each sampler source alone); a model of ``--recipe``
  trained on the rest is scored on the held-out library's clips of the instruments the training
  side has: instrument accuracy (the likeliest instrument) and family accuracy (the family whose
  members' probabilities sum highest). Clips labelled ``unknown`` are trained on like any class;
  folds that hold out only such material (noise, speech) score how much of it is rejected.
- real: ``--model`` (default: the shipped model) on the tutorial's 600 Philharmonia notes, never
  trained on: six-class mode, family level, and how many are wrongly answered ``unknown``.

Writes ``results/vocabulary.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

from instrec import calibration
from instrec.calibration import calibrate
from instrec.classifier import InstrumentClassifier
from instrec.data import load_dataset
from instrec.data.instruments import DEFAULT_INSTRUMENTS
from instrec.decision import UNKNOWN, family_lookup, family_matrix, resolve_families
from instrec.features import extract
from instrec.fileio import write_json
from instrec.pipeline import LeaveOneSourceOut
from instrec.recipes import get_recipe

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "london_phill_dataset_multi"
# Sources that play the same recordings (benchmarks/sample_provenance.py): one library.
LIBRARIES = {"fluidr3": "fluidr3+musescore", "musescore": "fluidr3+musescore"}


def score(truth: list[str], P: np.ndarray, classes: list[str], threshold: float | None = None) -> dict:
    """Instrument and family accuracy on the clips of known instruments, and the open-set rates."""
    known = [j for j, c in enumerate(classes) if c != UNKNOWN]
    inst = [classes[j] for j in known]
    rows = [i for i, t in enumerate(truth) if t in inst]
    neg = [i for i, t in enumerate(truth) if t == UNKNOWN]
    out: dict = {"n_known": len(rows), "n_negative": len(neg)}
    rejected = calibration.rejected(P, classes, threshold or 0.0)
    if rows:
        Pk = P[rows][:, known]
        pred = [inst[j] for j in Pk.argmax(1)]
        out["instrument_accuracy"] = float(np.mean([p == truth[i] for p, i in zip(pred, rows)]))
        families = resolve_families(inst, None)
        fams, M = family_matrix(inst, families)
        fpred = [fams[j] for j in (Pk @ M).argmax(1)]
        owner = family_lookup(families)
        out["family_accuracy"] = float(np.mean([p == owner[truth[i]] for p, i in zip(fpred, rows)]))
        out["known_rejected"] = float(rejected[rows].mean())
    if neg:
        out["negatives_rejected"] = float(rejected[neg].mean())
    return out


def lolo(data: list[Path], recipe_name: str, seed: int, only: list[str] | None = None) -> dict:
    recipe = get_recipe(recipe_name)
    ds = load_dataset(data)
    t0 = time.perf_counter()
    X, ok, skipped = extract([c.path for c in ds.clips], recipe.feature)
    clips = [ds.clips[i] for i in ok]
    print(f"features of {len(clips)} clips in {time.perf_counter() - t0:.0f} s ({len(skipped)} skipped)", flush=True)
    labels = np.array([c.label for c in clips])
    folds = []
    for name, tr, te, info in LeaveOneSourceOut(LIBRARIES).split(clips):
        if only and info["held_out"] not in only:
            continue
        t0 = time.perf_counter()
        clf = InstrumentClassifier(recipe, seed=seed).fit(X[tr], labels[tr].tolist())
        P = calibrate(clf.predict_proba(X[te]), clf.temperature_)
        threshold = clf.min_confidence_
        res = {"held_out": info["held_out"], "n_train": len(tr), "n_test": len(te),
               "classes_tested": sorted(set(labels[te]) & set(clf.classes)),
               **score(labels[te].tolist(), P, list(clf.classes), threshold),
               "seconds": round(time.perf_counter() - t0, 1)}
        folds.append(res)
        print(f"  {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in res.items() if isinstance(v, float)), flush=True)
    if only and len(folds) != len(set(only)):
        raise SystemExit(f"--folds: no such library among {sorted(set(only) - {f['held_out'] for f in folds})}")
    inst = [f for f in folds if f.get("n_known")]
    mean = {k: float(np.mean([f[k] for f in inst])) for k in ("instrument_accuracy", "family_accuracy")}
    return {"recipe": recipe_name, "seed": seed, "data": [str(d) for d in data], "n": len(clips),
            "classes": sorted(set(labels)), "folds": folds, "mean_over_libraries": mean}


def real(model_dir: str | None) -> dict | None:
    if not REAL.is_dir():
        print(f"note: the real clips are not at {REAL}; the real row is skipped")
        return None
    from instrec.inference import load_model

    model = load_model(model_dir)
    ds = load_dataset(REAL)
    preds = model.predict_files([c.path for c in ds.clips])
    truth = [c.label for c in ds.clips]
    classes = list(model.classes)
    P = np.array([[p.probabilities.get(c, 0.0) for c in classes] for p in preds])
    six = [classes.index(c) for c in DEFAULT_INSTRUMENTS if c in classes]
    P6 = P[:, six] / P[:, six].sum(1, keepdims=True)
    out = {"model": model_dir or "shipped", "n": len(truth), "classes": len(classes),
           "six_class_accuracy": float(np.mean([DEFAULT_INSTRUMENTS[j] == t for j, t in zip(P6.argmax(1), truth)]))}
    out.update({f"all_classes_{k}": v for k, v in score(truth, P, classes).items()})
    out["answered_unknown"] = float(np.mean([p.label == UNKNOWN for p in preds]))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, nargs="+", required=True)
    ap.add_argument("--recipe", default="mfcc-stats")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default=None, help="model for the real row (default: the shipped model)")
    ap.add_argument("--rows", nargs="+", default=["lolo", "real"], choices=["lolo", "real"])
    ap.add_argument("--folds", nargs="+", default=None, metavar="LIBRARY",
                    help="hold out only these libraries (a cnn fold takes about 20 minutes on 2 cores)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "vocabulary.json")
    args = ap.parse_args()
    out = {"machine": f"{platform.node()}, {platform.machine()}, python {platform.python_version()}",
           "date": date.today().isoformat()}
    if "lolo" in args.rows:
        out["lolo"] = lolo(args.data, args.recipe, args.seed, args.folds)
    if "real" in args.rows:
        out["real"] = real(args.model)
    write_json(args.out, out)
    if "lolo" in out:
        print("\n| held out | clips | instrument | family | known rejected | negatives rejected |\n|---|---|---|---|---|---|")
        for f in out["lolo"]["folds"]:
            cell = lambda k: f"{f[k]:.1%}" if k in f else "—"  # noqa: E731
            print(f"| {f['held_out']} | {f['n_test']} | {cell('instrument_accuracy')} | {cell('family_accuracy')} | "
                  f"{cell('known_rejected')} | {cell('negatives_rejected')} |")
        m = out["lolo"]["mean_over_libraries"]
        print(f"| mean over libraries | | {m['instrument_accuracy']:.1%} | {m['family_accuracy']:.1%} | | |")
    if out.get("real"):
        print(out["real"])
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
