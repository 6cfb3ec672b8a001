"""Solo phrases: does a single-label model name an instrument playing music, not just a note?

    python -m benchmarks.phrases render [--work build/phrases]
    python -m benchmarks.phrases score MODEL_DIR|shipped ... [--work build/phrases]

Solo phrases are parts of rendered music heard alone: ``instrec render-music --stems`` on every
library (``everything``) writes 3-s excerpts and each part's audio; a stem, labelled with its
part's instrument, is kept where it sounds over half the excerpt (samples above 1% of its peak).
music21's works are split by a hash of the work (one in five to the test side, as
``benchmarks.multilabel``), up to 200 pieces a set on the training side, 66 on the test side.

``render``: the test works' phrases (200 excerpts, seed 1) and 156 non-instrument clips
(``instrec render --negatives 12 --seed 1``: the kinds the shipped model trains on, another seed).
``scripts/train_shipped_model.py --phrases N`` renders the training side with :func:`render_side`
and :func:`phrase_folder` (N excerpts at seeds S and S + 2, at most 100 phrases an instrument).

``score``: for each model, the test works' phrases (top-1, family, answered ``unknown``), the
non-instrument clips answered ``unknown``, and the real Philharmonia halves in six-class mode
(``benchmarks.score_real``). Writes ``benchmarks/results/phrases.json``.
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from benchmarks.multilabel import piece_folders

HERE = Path(__file__).resolve().parent
PIECES_PER_SET = 200
TEST_SEED, TEST_EXCERPTS = 1, 200
CAP = 100  # phrases an instrument at most: violin, piano and cello parts outnumber the rest 5-20 to 1
SOUNDING = 0.5  # share of the excerpt a stem must sound in


def render_side(work: Path, side: str, n: int, seed: int, pieces_seed: int = 0, *, soundfont: str = "everything",
                instruments=None, jobs: int = 0) -> Path:
    """``n`` excerpts of the ``side`` ("train" or "test") works at ``seed`` (pieces drawn at
    ``pieces_seed``) on ``soundfont`` and ``instruments`` (default: the 31 of WIDE_VOCABULARY) with
    their stems, into ``work/music-SIDE-SEED``, on ``jobs`` processes (0: one per core; the same files);
    the stems kept are listed in its ``phrases.csv``."""
    from instrec.data.instruments import WIDE_VOCABULARY
    from instrec.data.music import render_music

    train, test = piece_folders(work, PIECES_PER_SET, pieces_seed)
    out, made = work / f"music-{side}-{seed}", work / f"music-{side}-{seed}" / "manifest.csv"
    # always: render_music keeps what an earlier run of these settings finished and renders the rest
    # (a killed run's manifest lists only the excerpts it got to)
    render_music(out, pieces=[str(p) for p in (train if side == "train" else test)], soundfont=soundfont,
                 instruments=instruments or WIDE_VOCABULARY, n=n, seconds=3.0, seed=seed, stems=True, jobs=jobs)
    # no manifest where no piece could be played on these instruments
    source = {r["path"].split("_")[0]: r["source"] for r in csv.DictReader(open(made))} if made.is_file() else {}
    rows = []
    for st in sorted((out / "stems").glob("*.wav")) if source else []:
        y, _ = sf.read(st, dtype="float32")
        y = y.mean(1) if y.ndim > 1 else y
        peak = float(np.abs(y).max())
        if peak < 1e-3 or (np.abs(y) > 0.01 * peak).mean() < SOUNDING:
            continue
        rows.append((f"stems/{st.name}", st.stem.split("_", 2)[2], source[st.name.split("_")[0]]))
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "phrases.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "source"])
        w.writerows(rows)
    print(f"{out}: {len(rows)} phrases kept", flush=True)
    return out


def phrase_folder(out: Path, sides: list[Path], seed: int = 0) -> Path | None:
    """A labelled folder (``manifest.csv`` and links) of the phrases of ``sides``, at most
    :data:`CAP` an instrument, drawn at ``seed``; None where there are none."""
    rows = [(d / r["path"], r["label"], r["source"]) for d in sides for r in csv.DictReader(open(d / "phrases.csv"))]
    if not rows:
        return None
    by = collections.defaultdict(list)
    for r in rows:
        by[r[1]].append(r)
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "source"])
        for label in sorted(by):
            for i in sorted(rng.permutation(len(by[label]))[:CAP]):
                path, _, source = by[label][i]
                name = f"{path.parent.parent.name}_{path.name}"
                if not (out / name).exists():
                    (out / name).symlink_to(path.resolve())
                w.writerow([name, label, source])
    return out


def score_phrases(model, folder: Path) -> dict:
    from instrec.data.instruments import family_of

    rows = list(csv.DictReader(open(folder / "phrases.csv")))
    preds = model.predict_files([folder / r["path"] for r in rows])
    truth = [r["label"] for r in rows]
    labels = [p.label for p in preds]
    per = collections.defaultdict(lambda: [0, 0])
    for t, p in zip(truth, labels):
        per[t][0] += t == p
        per[t][1] += 1
    return {"n": len(rows), "accuracy": float(np.mean([t == p for t, p in zip(truth, labels)])),
            "family_accuracy": float(np.mean([p != "unknown" and family_of(p) == family_of(t) for t, p in zip(truth, labels)])),
            "answered_unknown": float(np.mean([p == "unknown" for p in labels])),
            "recall": {k: f"{a}/{b}" for k, (a, b) in sorted(per.items())}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=["render", "score"])
    ap.add_argument("models", nargs="*")
    ap.add_argument("--work", type=Path, default=Path("build/phrases"))
    args = ap.parse_args()
    neg = args.work / "negatives-seed1"
    if args.action == "render":
        render_side(args.work, "test", TEST_EXCERPTS, TEST_SEED)
        if not (neg / "manifest.csv").is_file():
            subprocess.run([sys.executable, "-m", "instrec", "render", str(neg), "--soundfont", "everything", "--instruments",
                            "flute", "--per-class", "1", "--negatives", "12", "--seed", "1"], check=True)
        return 0
    from instrec.inference import load_model

    out = HERE / "results" / "phrases.json"
    results = json.loads(out.read_text()) if out.is_file() else {}
    for name in args.models:
        model = load_model(None if name == "shipped" else name)
        r = {"phrases_of_test_works": score_phrases(model, args.work / f"music-test-{TEST_SEED}")}
        negs = [r_ for r_ in csv.DictReader(open(neg / "manifest.csv")) if r_["label"] == "unknown"]
        r["non_instruments_unknown"] = float(np.mean([p.label == "unknown" for p in model.predict_files([neg / x["path"] for x in negs])]))
        real = subprocess.run([sys.executable, "-m", "benchmarks.score_real", "src/instrec/assets/model" if name == "shipped" else name,
                               "--jsonl", "/dev/null"], capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        r["real_six_class"] = {k: v["accuracy"] for k, v in json.loads(real).items() if k in ("all", "dev", "test")}
        results[name] = r
        print(name, json.dumps(r), flush=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
