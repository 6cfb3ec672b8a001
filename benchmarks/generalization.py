"""How well do the recipes hold up on recordings they never heard? (issue 3's table)

    python -m benchmarks.generalization [--recipes seed-mfcc cnn] [--per-class 100] [--seed 0]
                                        [--rows tutorial pitch loso rendered2real shipped]

Rows:
- tutorial:      random 80/20 split of the 600 real clips (random_state=seed), as the tutorial does
- pitch:         real clips, group split by pitch (no pitch on both sides), 20% of the pitches held back
- loso:          leave-one-source-out on rendered data (`render --soundfont all`: FluidR3, MuseScore,
                 TimGM6mb and, since 2026-12-02, freepats), mean of the folds
- lolo:          leave-one-library-out: the same, but FluidR3 and MuseScore, which play the same
                 recordings of five of the six instruments (results/sample_provenance.json), are
                 held out together, so no fold tests on recordings its training heard
- rendered2real: trained on rendered data from every source of `render --soundfont all`, tested on
                 the 600 real clips
- shipped:       the model bundled with the package, on the 600 real clips
- tutorial+renders, pitch+renders: the same test clips as tutorial and pitch, but trained on the
                 real training clips plus every rendered clip (what `instrec train REAL RENDERS`
                 gives a user who has a few recordings of their own)

The real clips are the tutorial's Philharmonia notes (read from ../shared, skipped where absent).
Results go to benchmarks/results/generalization.json and are printed as a Markdown table.
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
from instrec.data.render import render
from instrec.data.splits import clip_groups, split_indices
from instrec.evaluate import compute_metrics
from instrec.features import extract
from instrec.fileio import write_json
from instrec.pipeline import (DataOptions, LeaveOneSourceOut, cross_validate, evaluate_model, shifted_features,
                              train_model, training_rows)
from instrec.recipes import get_recipe

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "london_phill_dataset_multi"
ROWS = ("tutorial", "pitch", "loso", "lolo", "rendered2real", "shipped", "tutorial+renders", "pitch+renders")
# Sources that play the same recordings (benchmarks/sample_provenance.py): one library.
LIBRARIES = {"fluidr3": "fluidr3+musescore", "musescore": "fluidr3+musescore"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipes", nargs="+", default=["seed-mfcc", "cnn"])
    ap.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS)
    ap.add_argument("--per-class", type=int, default=100, help="rendered clips per instrument and SoundFont")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path("build/bench-generalization"))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "generalization.json")
    args = ap.parse_args()
    have_real = REAL.is_dir()
    if not have_real:
        print(f"note: the real clips are not at {REAL}; rows that need them are skipped")
    rendered = args.work / f"render-all-{args.per_class}-seed{args.seed}"
    if {"loso", "lolo", "rendered2real", "tutorial+renders", "pitch+renders"} & set(args.rows):
        rep = render(rendered, soundfont="all", per_class=args.per_class, seed=args.seed)
        print(f"rendered {rep.n_written} clips into {rendered}", flush=True)

    out = {"machine": f"{platform.machine()}, {platform.system()}, python {platform.python_version()}",
           "date": date.today().isoformat(), "seed": args.seed, "per_class_rendered": args.per_class, "rows": {}}
    for row in args.rows:
        out["rows"][row] = {}
        for name in (args.recipes if row != "shipped" else ["shipped"]):
            t0 = time.perf_counter()
            res = run_row(row, name, args.seed, rendered, args.work, have_real)
            if res is None:
                continue
            res["seconds"] = round(time.perf_counter() - t0, 1)
            out["rows"][row][name] = res
            print(f"{row:14s} {name:16s} accuracy {res['accuracy']:.4f}  ({res['how']})", flush=True)
            write_json(args.out, out)
    print()
    print(table(out))
    return 0


def run_row(row: str, name: str, seed: int, rendered: Path, work: Path, have_real: bool) -> dict | None:
    if row not in ("loso", "lolo") and not have_real:
        return None
    if row.endswith("+renders"):
        return with_renders(row, name, seed, rendered)
    if row == "tutorial":
        r = train_model(REAL, recipe=name, split="random", seed=seed)
        return {"accuracy": r.metrics["accuracy"], "n_test": r.metrics["n"], "how": r.context["evaluated on"]}
    if row == "pitch":
        r = train_model(REAL, recipe=name, split="group", group_by="pitch", seed=seed)
        return {"accuracy": r.metrics["accuracy"], "n_test": r.metrics["n"], "how": r.context["evaluated on"]}
    if row == "loso":
        r = cross_validate(rendered, recipe=name, cv=LeaveOneSourceOut(), seed=seed)
        return {"accuracy": r["mean"]["accuracy"], "std": r["std"]["accuracy"],
                "folds": {f["held_out"]: f["accuracy"] for f in r["folds"]},
                "how": "leave-one-source-out on rendered clips, mean of the folds"}
    if row == "lolo":
        r = cross_validate(rendered, recipe=name, cv=LeaveOneSourceOut(), seed=seed,
                           options=DataOptions(manifest=library_manifest(rendered)))
        return {"accuracy": r["mean"]["accuracy"], "std": r["std"]["accuracy"],
                "folds": {f["held_out"]: f["accuracy"] for f in r["folds"]},
                "how": "leave-one-library-out on rendered clips (FluidR3 and MuseScore held out together), mean of the folds"}
    if row == "rendered2real":
        recipe = get_recipe(name)
        ds = load_dataset(rendered)
        X, ok, _ = extract([c.path for c in ds.clips], recipe.feature)
        clips = [ds.clips[i] for i in ok]
        every = np.arange(len(clips))
        X, labels = training_rows(X, [c.label for c in clips], every, shifted_features(clips, recipe, every))
        clf = InstrumentClassifier(recipe, seed=seed).fit(X, labels)
        m, _ = evaluate_model(clf, REAL)
        return {"accuracy": m["accuracy"], "n_test": m["n"], "n_train": len(ok),
                "how": f"trained on {len(ok)} rendered clips ({', '.join(sorted({c.source for c in ds.clips}))}), tested on the real clips"}
    from instrec.assets import shipped_model_path

    m, _ = evaluate_model(shipped_model_path(), REAL)
    return {"accuracy": m["accuracy"], "n_test": m["n"], "how": "the shipped model, on the real clips"}


def library_manifest(rendered: Path) -> Path:
    """``rendered``'s manifest with each clip's source replaced by its library (LIBRARIES)."""
    import csv

    with open(rendered / "manifest.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    out = rendered / "libraries.csv"
    with open(out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "label", "source"])
        writer.writeheader()
        writer.writerows({"path": r["path"], "label": r["label"], "source": LIBRARIES.get(r["source"], r["source"])}
                         for r in rows)
    return out


def with_renders(row: str, name: str, seed: int, rendered: Path) -> dict:
    """Split the real clips exactly as the row without renders does; train on the real training
    clips plus every rendered clip; test on the real test clips only."""
    recipe = get_recipe(name)
    real, renders = load_dataset(REAL), load_dataset(rendered)
    group_by = "pitch" if row.startswith("pitch") else None
    Xr, okr, _ = extract([c.path for c in real.clips], recipe.feature, compact=True)
    clips = [real.clips[i] for i in okr]
    y = [c.label for c in clips]
    groups = clip_groups(clips, group_by) if group_by else None
    tr, te = split_indices(y, method="group" if group_by else "random", test_size=0.2, seed=seed, groups=groups)
    Xs, oks, _ = extract([c.path for c in renders.clips], recipe.feature, compact=True)
    made = [renders.clips[i] for i in oks]
    every = np.arange(len(made))
    # the recipe's pitch-shifted copies (if any) of the real training clips and of every render
    Xr_train, yr_train = training_rows(Xr, y, tr, shifted_features(clips, recipe, tr))
    Xs_train, ys_train = training_rows(Xs, [c.label for c in made], every, shifted_features(made, recipe, every))
    X = np.concatenate([Xr_train, Xs_train])
    labels = yr_train + ys_train
    clf = InstrumentClassifier(recipe, seed=seed).fit(X, labels)
    m = compute_metrics([y[i] for i in te], clf.predict_proba(Xr[te]), clf.classes)
    return {"accuracy": m["accuracy"], "n_test": m["n"], "n_train": len(labels),
            "how": f"trained on {len(tr)} real + {len(oks)} rendered clips (and their pitch-shifted copies where the "
                   f"recipe makes them), tested on {len(te)} real clips "
                   f"({'group split by pitch' if group_by else 'random 80/20'}, seed {seed})"}


def table(out: dict) -> str:
    lines = ["| measure | " + " | ".join(sorted({n for r in out["rows"].values() for n in r})) + " |"]
    names = sorted({n for r in out["rows"].values() for n in r})
    lines.append("|---|" + "---|" * len(names))
    for row, res in out["rows"].items():
        cells = [f"{100 * res[n]['accuracy']:.2f}%" if n in res else "" for n in names]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
