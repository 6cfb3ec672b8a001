"""Several instruments at once (issue 27): train cnn-multi on rendered music, note mixtures and
single notes, then score it where it was not trained.

    python -m benchmarks.multilabel --notes DIR [--work build/multilabel] [--held-out musescore] [--init shipped] [--name NAME]

* **Pieces held out**: the works of music21's corpus (ensembles, chorales, Palestrina) are split by
  a hash of the work's name (one in five to the test side), before anything is rendered.
* **A library held out**: training renders use every library but ``--held-out``; the test music is
  rendered on it alone.
* Training data: 3-s music excerpts (training works, training libraries); with ``--phrases``, the
  parts of more such excerpts heard alone (solo phrases, ``benchmarks.phrases``); mixtures of 1-3
  single notes and single notes of ``--notes`` (a folder ``instrec render --soundfont everything
  --negatives N`` wrote; the held-out library's notes are dropped) with its 'unknown' clips as
  "no instrument". The recipe is cnn-multi as shipped in instrec; its thresholds are chosen on its
  own validation rows (training data), never on anything scored here.
* Scored: held-out music (10-s excerpts, held-out works on the held-out library): clip-level mAP,
  micro/macro F1, and frame-level F1 of the timelines against activity.csv (``instrec evaluate``);
  mixtures of 2-3 real Philharmonia notes (never trained on) scored on the six instruments; the 600
  real notes in the tutorial's six-class mode (``--classes``); a 1-hour recording's timeline time.

Writes benchmarks/results/multilabel.json; every step's output under --work is reused by a rerun.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks import bench_common as bc

SIX = ("flute", "viola", "cello", "oboe", "trumpet", "saxophone")
LIBRARIES = ("fluidr3", "musescore", "timgm6mb", "freepats")
REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "london_phill_dataset_multi"


def is_test_work(work: str) -> bool:
    return int(hashlib.sha1(work.encode()).hexdigest(), 16) % 5 == 0


def piece_folders(work: Path, per_set: int, seed: int) -> tuple[list[Path], list[Path]]:
    """Folders of links to the training and test pieces, one folder per set (a set each)."""
    from instrec.data.scores import list_pieces, work_of

    rng = np.random.default_rng(seed)
    sides = {"train": [], "test": []}
    for name, found in list_pieces("all"):
        for side in sides:
            keep = [(pid, p) for pid, p in found if is_test_work(work_of(pid)) == (side == "test")]
            keep = [keep[i] for i in sorted(rng.permutation(len(keep))[: per_set if side == "train" else per_set // 3])]
            folder = work / "pieces" / side / name
            for pid, p in keep:
                link = folder / f"{pid}{p.suffix}"
                link.parent.mkdir(parents=True, exist_ok=True)
                if not link.exists():
                    link.symlink_to(p)
            sides[side].append(folder)
    return sides["train"], sides["test"]


def once(folder: Path, make) -> Path:
    """Run ``make(folder)`` unless the folder already holds a manifest."""
    if not (folder / "manifest.csv").is_file():
        t0 = time.perf_counter()
        make(folder)
        print(f"{folder.name}: {time.perf_counter() - t0:.0f} s", flush=True)
    return folder


def note_manifest(notes: Path, out: Path, held_out: str, singles: int, seed: int) -> Path:
    """A manifest of ``notes`` without the held-out library: ``singles`` instrument notes and every
    'unknown' clip (paths absolute)."""
    import csv

    from instrec.fileio import write_csv

    rows = [r for r in csv.DictReader(open(notes / "manifest.csv", encoding="utf-8")) if r["source"] != held_out]
    inst = [r for r in rows if r["label"] != "unknown"]
    rng = np.random.default_rng(seed)
    keep = [inst[i] for i in sorted(rng.permutation(len(inst))[:singles])] + [r for r in rows if r["label"] == "unknown"]
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "manifest.csv", ("path", "label", "source"),
              [{"path": str((notes / r["path"]).resolve()), "label": r["label"], "source": r["source"]} for r in keep])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--notes", type=Path, required=True, help="a folder instrec render --soundfont everything wrote")
    ap.add_argument("--work", type=Path, default=Path("build/multilabel"))
    ap.add_argument("--held-out", default="musescore", choices=LIBRARIES)
    ap.add_argument("--pieces-per-set", type=int, default=45)
    ap.add_argument("--music", type=int, default=1000, help="3-s training excerpts")
    ap.add_argument("--mixtures", type=int, default=1200)
    ap.add_argument("--singles", type=int, default=800)
    ap.add_argument("--test-music", type=int, default=120, help="10-s held-out excerpts")
    ap.add_argument("--real-mixtures", type=int, default=300)
    ap.add_argument("--phrases", type=int, default=0, metavar="N", help="also train on solo phrases: N 3-s excerpts "
                    "of the training works at seeds S and S + 2 on the training libraries, each part heard alone "
                    "(benchmarks.phrases, at most 100 an instrument)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=0, help="rendering processes (0: one per core; the same files)")
    ap.add_argument("--timeline-only", action="store_true", help="only time the 1-hour timeline of the trained model")
    ap.add_argument("--real-thresholds", action="store_true", help="only score the trained model on real-note mixtures "
                    "with thresholds chosen on mixtures of the other half of the real notes")
    ap.add_argument("--init", default=None, metavar="MODEL", help="start from this trained model ('shipped': instrec's); "
                    "its model folder and results file are named after it")
    ap.add_argument("--name", default=None, help="the results file and model folder's name (default: from --init); "
                    "another name trains another model on the same renders")
    args = ap.parse_args()

    from instrec.data import load_dataset
    from instrec.data.mixtures import mix_clips
    from instrec.data.music import render_music
    from instrec.inference import load_model
    from instrec.pipeline import evaluate_model, train_model
    from instrec.recipes import get_recipe

    work = args.work
    train_libs = ",".join(l for l in LIBRARIES if l != args.held_out) + ",tonejs,salamander"
    train_pieces, test_pieces = piece_folders(work, args.pieces_per_set, args.seed)
    music = once(work / "music-train", lambda d: render_music(d, pieces=[str(p) for p in train_pieces], soundfont=train_libs,
                                                            n=args.music, seconds=3.0, seed=args.seed, jobs=args.jobs))
    test_music = once(work / f"music-test-{args.held_out}", lambda d: render_music(
        d, pieces=[str(p) for p in test_pieces], soundfont=args.held_out, n=args.test_music, seconds=10.0, seed=args.seed + 1, jobs=args.jobs))
    notes = note_manifest(args.notes, work / "notes", args.held_out, args.singles, args.seed)
    all_notes = [c for c in load_dataset(args.notes).clips if c.source != args.held_out and c.label != "unknown"]
    mixtures = once(work / "mixtures", lambda d: mix_clips(all_notes, d, n=args.mixtures, min_instruments=1,
                                                          max_instruments=3, seed=args.seed))
    roots = [music, mixtures, notes]
    if args.phrases:
        from benchmarks.phrases import phrase_folder, render_side

        sides = [render_side(work / "phrases", "train", args.phrases, s, pieces_seed=args.seed, soundfont=train_libs,
                             jobs=args.jobs)
                 for s in (args.seed, args.seed + 2)]
        phrases = phrase_folder(work / "phrases" / "train-phrases", sides, args.seed)
        if phrases is not None:  # none where no part sounded long enough
            roots.append(phrases)
    name = args.name or ("multilabel" if args.init is None else f"multilabel-from-{Path(args.init).name}")
    model_dir = work / ("model" if name == "multilabel" else f"model-{name.removeprefix('multilabel-')}")
    again = (("real_mixtures_real_thresholds", lambda: real_thresholds(model_dir, work, args.real_mixtures, args.seed))
             if args.real_thresholds else ("timeline_hour", lambda: hour_timeline(model_dir, work)) if args.timeline_only
             else None)
    if again:  # one measure of the trained model again, into its results file
        key, measure = again
        saved = json.loads((Path(__file__).parent / "results" / f"{name}.json").read_text())
        saved[key] = measure()
        print(f"{key}: {saved[key]}", flush=True)
        bc.save(name, saved)
        return
    init = None
    if args.init is not None:
        from instrec.pipeline import load_base_model

        init = load_base_model(args.init)
    recipe = get_recipe("cnn-multi")
    recipe = replace(recipe, train=replace(recipe.train, epochs=args.epochs))
    result: dict = {"machine": bc.machine(), "date": time.strftime("%Y-%m-%d"), "seed": args.seed,
                    "held_out_library": args.held_out, "args": {k: str(v) for k, v in vars(args).items()}}
    if not (model_dir / "model.json").is_file():
        t0 = time.perf_counter()
        res = train_model(roots, recipe=recipe, out=model_dir, seed=args.seed, test_size=0.05, init=init)
        result["train_seconds"] = time.perf_counter() - t0
        result["training_clips"] = res.context["clips"]
        print(f"trained in {result['train_seconds']:.0f} s: {res.context['clips']}", flush=True)
    m, _ = evaluate_model(model_dir, test_music, out=work / f"report-music-{model_dir.name}")
    result["held_out_music"] = {k: m[k] for k in ("n", "map", "micro_f1", "macro_f1", "exact_match")}
    result["held_out_music"]["frames"] = m.get("frames")
    result["held_out_music"]["average_precision"] = m["average_precision"]
    print(f"held-out music: mAP {m['map']:.3f}, micro F1 {m['micro_f1']:.3f}, frame F1 {m['frames']['f1']:.3f}", flush=True)
    if REAL.is_dir():
        real = once(work / "real-mixtures", lambda d: mix_clips(load_dataset(REAL).clips, d, n=args.real_mixtures,
                                                               min_instruments=2, max_instruments=3, seed=args.seed))
        m, _ = evaluate_model(load_model(model_dir).restrict(SIX), real, out=work / f"report-real-mixtures-{model_dir.name}")
        result["real_mixtures"] = {k: m[k] for k in ("n", "map", "micro_f1", "macro_f1", "exact_match")}
        print(f"real mixtures: micro F1 {m['micro_f1']:.3f}, mAP {m['map']:.3f}", flush=True)
        six = load_model(model_dir).restrict(SIX)
        P, truth = [], []
        for clip in load_dataset(REAL).clips:
            p = six.predict_file(clip.path)
            P.append(max(p.probabilities, key=p.probabilities.get))
            truth.append(clip.label)
        result["six_class_real_notes"] = {"n": len(truth), "accuracy": float(np.mean([a == b for a, b in zip(P, truth)]))}
        print(f"600 real notes, six-class: {result['six_class_real_notes']['accuracy']:.3%}", flush=True)
    else:
        print(f"skipping the real-note figures: the Philharmonia data is not at {REAL}")
    result["timeline_hour"] = hour_timeline(model_dir, work)
    print(f"1-hour timeline: {result['timeline_hour']}", flush=True)
    bc.save(name, result)


def real_thresholds(model_dir: Path, work: Path, n: int, seed: int) -> dict:
    """The model's thresholds for the six instruments chosen (``choose_thresholds``, best F1 each)
    on ``n`` mixtures of 2-3 real notes of the dev half (even MIDI pitches,
    ``benchmarks.score_real.halves``), then scored on ``n`` mixtures of the test half (odd
    pitches): with those thresholds, and with the model's own (chosen on renders)."""
    from benchmarks.score_real import halves
    from instrec.calibration import choose_thresholds
    from instrec.data import load_dataset
    from instrec.data.activity import label_matrix
    from instrec.data.mixtures import mix_clips
    from instrec.evaluate import multilabel_metrics
    from instrec.inference import load_model

    clips = load_dataset(REAL).clips
    half = halves(clips)
    six = load_model(model_dir).restrict(SIX)
    out = {}
    for name, s in (("dev", seed), ("test", seed + 1)):
        folder = once(work / f"real-mixtures-{name}", lambda d: mix_clips([clips[i] for i in half[name]], d, n=n,
                                                                         min_instruments=2, max_instruments=3, seed=s))
        mixes = load_dataset(folder).clips
        P = np.array([[six.predict_file(c.path).probabilities[k] for k in six.classes] for c in mixes])
        out[name] = (label_matrix([c.label for c in mixes], six.classes), P)
    chosen = choose_thresholds(*out["dev"])
    Y, P = out["test"]
    own = multilabel_metrics(Y, P, six.classes, six.thresholds)
    real = multilabel_metrics(Y, P, six.classes, chosen)
    keys = ("n", "map", "micro_f1", "macro_f1", "micro_precision", "micro_recall")
    return {"classes": six.classes, "thresholds_chosen_on_dev": [round(float(t), 4) for t in chosen],
            "test_with_own_thresholds": {k: own[k] for k in keys}, "test_with_dev_thresholds": {k: real[k] for k in keys}}


def hour_timeline(model_dir: Path, work: Path) -> dict:
    """Seconds to predict a 1-hour recording's timeline (the training music looped), and the peak
    memory of a fresh process doing only that, against one doing the same for the first 6 minutes:
    memory that does not grow with the length is flat."""
    import soundfile as sf

    path = work / "hour.flac"
    if not path.is_file():
        parts = [sf.read(p, dtype="float32")[0] for p in sorted((work / "music-train").glob("*.wav"))[:400]]
        y = np.concatenate(parts)
        y = np.tile(y, int(np.ceil(3600 * 22050 / len(y))))[: 3600 * 22050]
        sf.write(path, y, 22050)
    short = work / "hour-first-6-min.flac"
    if not short.is_file():
        sf.write(short, sf.read(path, dtype="float32", frames=360 * 22050)[0], 22050)
    hour, six = _timeline_process(model_dir, path), _timeline_process(model_dir, short)
    return {**hour, "real_time_factor": 3600 / hour["seconds"], "peak_rss_mb_6_min": six["peak_rss_mb"],
            "threads": os.cpu_count()}


def _timeline_process(model_dir: Path, path: Path) -> dict:
    """``predict_file`` of one recording in a fresh process: its seconds, windows and peak RSS."""
    import subprocess
    import sys

    # the child's own peak (VmHWM): ru_maxrss carries the parent's over fork and exec, and a benchmark
    # that has just trained holds gigabytes
    code = (
        "import json, sys, time\n"
        "from benchmarks.bench_common import high_water_mib\n"
        "from instrec.inference import load_model\n"
        "model = load_model(sys.argv[1]); t0 = time.perf_counter(); p = model.predict_file(sys.argv[2])\n"
        "print(json.dumps({'engine': model.engine.name, 'seconds': time.perf_counter() - t0, 'windows': len(p.windows),\n"
        "                  'peak_rss_mb': high_water_mib()}))\n"
    )
    r = subprocess.run([sys.executable, "-c", code, str(model_dir), str(path)], capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
