"""Score model bundles on the 600 real clips, in two fixed halves: dev (to choose) and test (to report).

Every variant tried before 2026-12-02 was scored on all 600 real clips, so none could be adopted
without tuning to them. From then on a change to the shipped recipe is chosen on the **dev** half
only and reported on the **test** half, which no choice looked at. The halves are fixed and split
by pitch, so near-copies of one note cannot sit on both: dev holds the clips of even MIDI pitches
(G-sharp, for the five instruments recorded at A and G-sharp only), test those of odd ones (A).

    python -m benchmarks.score_real MODEL_DIR [MODEL_DIR ...] [--ensemble] [--jsonl benchmarks/results/score_real.jsonl]

``--ensemble`` also scores the models together: the mean of their probabilities (each model in
six-class mode first, if it knows more instruments), one more line in the jsonl.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
REAL = HERE.parents[1] / "shared" / "data" / "london_phill_dataset_multi"


def halves(clips) -> dict[str, list[int]]:
    """Indices of the dev half (even MIDI pitches: the G-sharps, among others) and the test half
    (odd: the A's, among others)."""
    from instrec.data.splits import clip_groups

    pitch = [int(g) for g in clip_groups(clips, "pitch")]
    return {"dev": [i for i, p in enumerate(pitch) if p % 2 == 0], "test": [i for i, p in enumerate(pitch) if p % 2]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--ensemble", action="store_true", help="also score the mean of the models' probabilities")
    ap.add_argument("--jsonl", type=Path, default=HERE / "results" / "score_real.jsonl")
    args = ap.parse_args()
    if not REAL.is_dir():
        print(f"skipped: the real clips are not at {REAL}")
        return 0

    import numpy as np

    from instrec.classifier import InstrumentClassifier
    from instrec.data import load_dataset
    from instrec.evaluate import compute_metrics
    from instrec.features import extract
    from instrec.inference import class_columns, restrict_proba

    real = load_dataset(REAL)

    def score(line, clips, proba, classes):
        for name, idx in {"all": list(range(len(clips))), **halves(clips)}.items():
            m = compute_metrics([clips[i].label for i in idx], proba[np.asarray(idx)], classes)
            line[name] = {"n": m["n"], "accuracy": round(m["accuracy"], 4), "macro_f1": round(m["macro_f1"], 4),
                          "recall": {c: round(v["recall"], 2) for c, v in m["per_class"].items()}}
        print(json.dumps(line))
        with open(args.jsonl, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")

    members = []
    for path in args.models:
        clf = InstrumentClassifier.load(path)
        X, ok, _ = extract([c.path for c in real.clips], clf.recipe.feature)
        clips = [real.clips[i] for i in ok]
        proba, classes = clf.predict_proba(X), clf.classes
        line = {"date": date.today().isoformat(), "model": str(path), "trained_on": clf.info.get("training", {}).get("data", {}).get("sources")}
        six = sorted({c.label for c in clips})
        if set(classes) > set(six):  # a model that knows more instruments: the tutorial's six-class mode
            cols = class_columns(classes, six)
            proba, classes = restrict_proba(proba, cols), [classes[i] for i in cols]
            line["six_class_mode"] = f"answers among {len(six)} of its {len(clf.classes)} classes"
        score(line, clips, proba, classes)
        members.append((ok, proba, classes))
    if args.ensemble and len(members) > 1:
        ok, _, classes = members[0]
        if any(not np.array_equal(m[0], ok) or m[2] != classes for m in members):
            print("cannot ensemble: the models read different clips or answer among different classes", file=sys.stderr)
            return 1
        line = {"date": date.today().isoformat(), "model": "ensemble: mean probability of " + ", ".join(map(str, args.models))}
        score(line, [real.clips[i] for i in ok], np.mean([m[1] for m in members], axis=0), classes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
