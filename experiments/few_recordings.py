"""A user with a few recordings per instrument: fine-tune the shipped cnn, or train mfcc-stats from scratch?

    python -m experiments.few_recordings [--per-class 5 10 20] [--fold-seed 20] [--group-by pitch] [--val-fraction F]
                                        [--trainable output] [--lr LR] [--epochs E] [--folds 1 ...]

The 600 real Philharmonia clips are cut into 5 folds (stratified; grouped with ``--group-by``, so
no pitch of a test fold is in its training side). From each fold's training side, ``n`` clips per
instrument are drawn at random (seeded by fold seed, fold and ``n``); three ways to use them are
then scored on the whole test fold (about 120 clips), in the tutorial's six-class mode:

* ``shipped``: the shipped model as it is, trained on renders only, none of the ``n`` used;
* ``fine-tuned``: the shipped model fine-tuned on the ``n`` clips a class
  (``instrec train DATA --from shipped``: the cnn recipe from its weights, network seed = fold seed);
* ``mfcc-stats``: the recipe README recommends to users with real recordings, from scratch on
  the ``n`` clips a class, with its pitch-shifted copies (the same network seed).

Fine-tuning holds out 15% of the clips for early stopping only if that is at least 5 clips a
class on average (``TrainConfig.min_val_per_class``, since 2026-12-04), so at these ``n`` it trains
every epoch and keeps the last weights. ``--val-fraction F`` holds out that share whatever the
number of clips (F = 0.15 is the rule before 2026-12-04, which chose the epoch on 1-3 clips a
class; F = 0, none). ``--trainable output`` fine-tunes the output layer only, the rest frozen
(``instrec train --from shipped --trainable output``: lr 1e-2, 200 epochs); ``--lr`` and
``--epochs`` change the fine-tuning schedule (the result file's name then says so); ``--folds``
runs only those folds (development runs).

Results: experiments/results/few_recordings-<split>-<fold seed>.json, and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks import bench_common as bc
from benchmarks.score_real import REAL

HERE = Path(__file__).resolve().parent


def draw(y: list[str], rows: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` of ``rows`` per class (all of a class's rows if it has fewer), at random."""
    rng = np.random.default_rng(seed)
    out = []
    for c in sorted(set(y)):
        mine = [i for i in rows if y[i] == c]
        out += list(rng.choice(mine, size=min(n, len(mine)), replace=False))
    return np.sort(np.array(out, dtype=np.int64))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-class", nargs="+", type=int, default=[5, 10, 20])
    ap.add_argument("--fold-seed", type=int, default=20)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--group-by", default=None, help="e.g. pitch: no group on both sides of a fold")
    ap.add_argument("--val-fraction", type=float, default=None,
                    help="hold out this share for early stopping whatever the number of clips (default: the recipe's rule)")
    ap.add_argument("--trainable", choices=("all", "output"), default="all",
                    help="which weights fine-tuning changes: all, or the output layer only")
    ap.add_argument("--lr", type=float, default=None, help="fine-tuning learning rate (default: the recipe's)")
    ap.add_argument("--epochs", type=int, default=None, help="fine-tuning epochs (default: the recipe's)")
    ap.add_argument("--folds", nargs="+", type=int, default=None, help="run only these folds (1-based)")
    args = ap.parse_args()

    import torch

    from instrec.assets import shipped_model_path
    from instrec.classifier import InstrumentClassifier
    from instrec.data import load_dataset
    from instrec.data.splits import clip_groups, kfold_indices
    from instrec.evaluate import compute_metrics
    from instrec.features import extract
    from instrec.inference import class_columns, restrict_proba
    from instrec.pipeline import shifted_features, training_rows
    from instrec.recipes import finetuning, get_recipe

    torch.set_num_threads(2)
    shipped = InstrumentClassifier.load(shipped_model_path())
    stats = get_recipe("mfcc-stats")
    ds = load_dataset(REAL)
    X_cnn, ok, bad = extract([c.path for c in ds.clips], shipped.recipe.feature)
    X_st, ok2, bad2 = extract([c.path for c in ds.clips], stats.feature)
    assert not bad and not bad2 and list(ok) == list(ok2)
    clips = ds.clips
    y = [c.label for c in clips]
    six = sorted(set(y))
    shipped_six = restrict_proba(shipped.predict_proba(X_cnn), class_columns(shipped.classes, six))
    groups = clip_groups(clips, args.group_by) if args.group_by else None
    folds = kfold_indices(y, args.k, seed=args.fold_seed, groups=groups)
    tune = finetuning(shipped.recipe, trainable=args.trainable)
    if args.val_fraction is not None:
        tune = replace(tune, train=replace(tune.train, val_fraction=args.val_fraction, min_val_per_class=0))
    changes = {k: v for k, v in (("lr", args.lr), ("epochs", args.epochs)) if v is not None}
    tune = replace(tune, train=replace(tune.train, **changes))

    rows = []
    for f, (tr, te) in enumerate(folds, 1):
        if args.folds and f not in args.folds:
            continue
        yt = [y[i] for i in te]
        base = compute_metrics(yt, shipped_six[te], six)["accuracy"]
        for n in args.per_class:
            pick = draw(y, tr, n, seed=args.fold_seed * 1000 + f * 100 + n)
            row = {"fold": f, "per_class": n, "n_train": len(pick), "n_test": len(te), "shipped": base}
            t = time.perf_counter()
            ft = InstrumentClassifier(tune, seed=args.fold_seed).fit(
                X_cnn[pick], [y[i] for i in pick], init=shipped)
            row["fine-tuned"] = compute_metrics(yt, ft.predict_proba(X_cnn[te]), ft.classes)["accuracy"]
            row["fine-tuned seconds"] = round(time.perf_counter() - t, 1)
            t = time.perf_counter()
            shifted = shifted_features(clips, stats, pick)
            st = InstrumentClassifier(stats, seed=args.fold_seed).fit(*training_rows(X_st, y, pick, shifted))
            row["mfcc-stats"] = compute_metrics(yt, st.predict_proba(X_st[te]), st.classes)["accuracy"]
            row["mfcc-stats seconds"] = round(time.perf_counter() - t, 1)
            rows.append(row)
            print({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}, flush=True)

    methods = ("shipped", "fine-tuned", "mfcc-stats")
    summary = {n: {m: round(float(np.mean([r[m] for r in rows if r["per_class"] == n])), 4) for m in methods}
               for n in args.per_class}
    split = f"grouped by {args.group_by}" if args.group_by else "stratified"
    name = f"few_recordings-{args.group_by or 'stratified'}-{args.fold_seed}"
    if args.val_fraction is not None:
        name += f"-val{args.val_fraction:g}"
    if args.trainable != "all":
        name += f"-{args.trainable}"
    if args.lr is not None or args.epochs is not None:
        name += f"-lr{tune.train.lr:g}-e{tune.train.epochs}"
    if args.folds:
        name += "-folds" + "".join(map(str, args.folds))
    bc.save(name, {"machine": bc.machine(), "split": split, "k": args.k, "fold_seed": args.fold_seed,
                   "fine_tuning_val_fraction": tune.train.val_fraction,
                   "fine_tuning_min_val_per_class": tune.train.min_val_per_class,
                   "fine_tuning_trainable": tune.train.trainable, "fine_tuning_lr": tune.train.lr,
                   "fine_tuning_epochs": tune.train.epochs, "folds_run": args.folds or list(range(1, args.k + 1)),
                   "clips": len(clips), "rows": rows, "mean_accuracy": summary}, HERE / "results")
    print(f"\n{args.k} folds {split}, fold seed {args.fold_seed}; mean accuracy on the test folds\n")
    print("| clips per class | " + " | ".join(methods) + " |")
    print("|---|" + "---|" * len(methods))
    for n, s in summary.items():
        print(f"| {n} | " + " | ".join(f"{s[m]:.2%}" for m in methods) + " |")


if __name__ == "__main__":
    main()
