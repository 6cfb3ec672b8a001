"""Train the model that ships with instrec, reproducibly, from rendered data only.

    python scripts/train_shipped_model.py [--seed 0] [--per-class 30] [--epochs 40]
        [--instruments flute,viola,...|wide] [--soundfont all|everything] [--negatives 36]
        [--phrases 450] [--merge saxophone=alto-sax,soprano-sax,...]

1. Renders ``--per-class`` clips per instrument (by default the 31 of ``WIDE_VOCABULARY``, what
   ships) from the sample libraries of ``--soundfont`` (by default ``everything``; ``all``:
   the SoundFonts FluidR3, MuseScore General and TimGM6mb and Debian's freepats patches;
   ``everything``: also the real recordings of the npm sampler packages, tonejs-instruments and the
   Salamander piano), each over the instrument's whole range, into ``--work``; and ``--negatives``
   clips of each kind of material that is no instrument (noise, speech, drums, synthesiser and
   effects programs), labelled ``unknown``; and solo phrases: ``--phrases`` excerpts of music21's
   corpus (3 s, at seeds S and S + 2, the works ``benchmarks/phrases.py`` does not test on) played
   on the same libraries by ``render-music --stems``, each part heard alone, labelled with its
   instrument, at most 100 an instrument (``benchmarks.phrases.render_side``, ``phrase_folder``).
   All are free to use (credits: samples/CREDITS.md); nothing with a non-commercial licence goes in.
2. Trains the ``cnn`` recipe on all of them (its own validation split picks the epoch, fits the
   calibration temperature and chooses the ``unknown`` threshold).
3. Measures it on the tutorial's 600 real Philharmonia clips where they are present, answering
   among all its classes and, if it knows more, among the tutorial's six. They are never trained
   on; only their dev half (``benchmarks/score_real.py``) has chosen between recipes.
4. Writes the bundle (safetensors + model.json, a few MB) to ``--out``, by default the package's
   ``src/instrec/assets/model``, with how it was trained and what it measured.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from instrec.assets import SHIPPED_MODEL
from instrec.calibration import calibrate
from instrec.classifier import InstrumentClassifier
from instrec.data import load_dataset
from instrec.data.credits import CREDITS as SOURCE_CREDITS
from instrec.data.instruments import DEFAULT_ALIASES, WIDE_VOCABULARY
from instrec.data.render import render
from instrec.data.splits import clip_groups
from instrec.evaluate import compute_metrics
from instrec.features import extract
from instrec.inference import class_columns, restrict_proba
from instrec.recipes import get_recipe

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks.phrases renders the solo phrases
REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "london_phill_dataset_multi"

# What ships (issue 26): the 31 instruments of WIDE_VOCABULARY and 'unknown', from every library
# (SoundFonts, freepats and the recorded notes of the npm sampler packages). The seven-instrument
# model it replaced is --instruments flute,viola,cello,oboe,trumpet,saxophone,violin --soundfont all
# --per-class 100 --negatives 0.
SHIPPED_INSTRUMENTS = WIDE_VOCABULARY


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-class", type=int, default=30)
    ap.add_argument("--negatives", type=int, default=36, help="clips of each kind and origin of non-instrument material")
    ap.add_argument("--soundfont", default="everything", help="the libraries to render (render's --soundfont)")
    ap.add_argument("--epochs", type=int, default=None, help="override the cnn recipe's epochs")
    ap.add_argument("--instruments", default=",".join(SHIPPED_INSTRUMENTS),
                    help="comma-separated labels, or 'wide': every instrument of WIDE_VOCABULARY (31)")
    ap.add_argument("--merge", action="append", default=[], metavar="LABEL=INSTR,INSTR,...",
                    help="render class LABEL as equal shares of several instruments, e.g. "
                         "saxophone=alto-sax,soprano-sax,tenor-sax,baritone-sax (repeatable)")
    ap.add_argument("--fmin", type=float, default=None, metavar="HZ",
                    help="override the cnn recipe's lowest mel frequency (training and prediction alike)")
    ap.add_argument("--phrases", type=int, default=450, metavar="N",
                    help="also train on solo phrases: N excerpts of music (3 s, the works benchmarks.phrases does not test "
                         "on) at two seeds, each part heard alone, at most 100 an instrument (0: none)")
    ap.add_argument("--extra", type=Path, action="append", default=[], metavar="DIR",
                    help="also train on this labelled folder (repeatable), e.g. real recordings of another "
                         "source; for measuring what they add: what ships is trained on renders alone")
    ap.add_argument("--jobs", type=int, default=0, help="rendering processes (0: one per core; the same files)")
    ap.add_argument("--work", type=Path, default=Path("build/shipped-model"))
    ap.add_argument("--out", type=Path, default=SHIPPED_MODEL)
    ap.add_argument("--real", type=Path, default=REAL, help="real clips to measure on (not trained on)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--trained", type=Path, default=None, metavar="MODEL_DIR",
                    help="skip rendering and training: take this bundle, trained by this script, and "
                         "redo the calibration and the figures")
    args = ap.parse_args()

    instruments = list(WIDE_VOCABULARY) if args.instruments == "wide" else [
        s.strip() for s in args.instruments.split(",") if s.strip()]
    merges = _merges(args.merge, instruments)
    recipe = get_recipe("cnn")
    if args.epochs:
        recipe = replace(recipe, train=replace(recipe.train, epochs=args.epochs))
    if args.fmin is not None:
        recipe = replace(recipe, feature=replace(recipe.feature, fmin=args.fmin))
    run = _Run(args, instruments, merges, recipe)
    if args.trained:
        clf = InstrumentClassifier.load(args.trained)
        before = json.loads((args.trained / "model.json").read_text())
        training = {**before["training"], "credits": list(CREDITS), "calibrated_by": " ".join(["python"] + sys.argv)}
        figures = {"validation_accuracy": before["metrics"].get("validation_accuracy")}
        clf.calibration_ = before["metrics"].get("calibration_on_renders") or before["metrics"].get("calibration") or {}
        clf.calibration_ = {k: v for k, v in clf.calibration_.items() if k != "on"}
    else:
        clf, ds, skipped = run.train(args.seed)
        training = run.record(args.seed, clf, ds, skipped)
        h = clf.history_
        figures = {"validation_accuracy": max(h["val_accuracy"]) if h["val_accuracy"] else None}
    figures["calibration"] = {**clf.calibration_, "on": "the validation split of the renders"}
    if args.real.is_dir():
        real = load_dataset(args.real)
        Xr, okr, _ = extract([c.path for c in real.clips], clf.recipe.feature)
        clips = [real.clips[i] for i in okr]
        truth = [c.label for c in clips]
        # Renders are not real recordings: a temperature and a doubt threshold fitted on the renders'
        # validation split are far too sure of real notes (ECE 0.24, a third of them answered
        # unknown). They are fitted on the dev half of the real clips instead (even pitches), never
        # trained on; the test half (odd pitches) reports them.
        half = _halves(clips)
        clf.calibrate(Xr[half["dev"]], [clf.classes.index(truth[i]) for i in half["dev"]])
        figures["calibration_on_renders"] = figures.pop("calibration")
        figures["calibration"] = {**clf.calibration_, "on": "the dev half of the real Philharmonia clips (even MIDI pitches)"}
        P = calibrate(clf.predict_proba(Xr), clf.temperature_)
        m = figures["philharmonia_600"] = _figures(truth, P, clf)
        print(f"real Philharmonia clips: accuracy {m['accuracy']:.4f}, family {m['family_accuracy']:.4f} on {m['n']}", flush=True)
        test = half["test"]
        m = figures["philharmonia_test_half"] = _figures([truth[i] for i in test], P[test], clf)
        print(f"test half ({m['n']}): ECE {m['ece']:.3f}, answered unknown {m['answered_unknown']}", flush=True)
        six = sorted(set(truth))
        if set(clf.classes) > set(six):
            # The tutorial's six-class mode: the likeliest of the six instruments the real clips hold.
            P6 = restrict_proba(P, class_columns(clf.classes, six))
            m = figures["philharmonia_600_six_class_mode"] = _figures(truth, P6, None, six)
            print(f"real Philharmonia clips, six-class mode: accuracy {m['accuracy']:.4f} on {m['n']}", flush=True)

    info = {"training": training, "metrics": figures}
    clf.save(args.out, info=info)
    print(f"saved {args.out}")
    return 0


class _Run:
    """Renders the libraries and trains the recipe on them at one seed."""

    def __init__(self, args, instruments: list[str], merges: dict[str, list[str]], recipe):
        self.args, self.instruments, self.merges, self.recipe = args, instruments, merges, recipe

    def render(self, seed: int) -> tuple[list[Path], dict[str, str]]:
        a, t0 = self.args, time.perf_counter()
        data = a.work / f"render-{a.soundfont}-seed{seed}-{a.per_class}-neg{a.negatives}"
        rep = render(data, soundfont=a.soundfont, instruments=[i for i in self.instruments if i not in self.merges],
                     per_class=a.per_class, seed=seed, negatives=a.negatives, jobs=a.jobs)
        print(f"rendered {rep.n_written} clips from {', '.join(rep.sources)} in {time.perf_counter() - t0:.0f} s", flush=True)
        roots, aliases = [data], dict(DEFAULT_ALIASES)
        for label, members in self.merges.items():
            # Each member gets an equal share of the class's clips, so the class stays as large as the others.
            share = -(-a.per_class // len(members))
            roots.append(a.work / f"merged-{label}-seed{seed}-{share}")
            rep = render(roots[-1], soundfont=a.soundfont, instruments=members, per_class=share, seed=seed, jobs=a.jobs)
            aliases.update({m: label for m in members})
            print(f"rendered {rep.n_written} clips of {label} as {', '.join(members)}", flush=True)
        phrases = self.phrases(seed) if a.phrases else None
        if phrases is not None:
            roots.append(phrases)
        return roots, aliases

    def phrases(self, seed: int) -> Path | None:
        """Solo phrases of the training works (benchmarks.phrases holds out the rest), as a labelled folder."""
        from benchmarks.phrases import phrase_folder, render_side

        a, t0, work = self.args, time.perf_counter(), self.args.work / f"phrases-seed{seed}"
        instruments = [i for i in self.instruments if i not in self.merges]
        sides = [render_side(work, "train", a.phrases, s, pieces_seed=seed, soundfont=a.soundfont, instruments=instruments,
                             jobs=a.jobs)
                 for s in (seed, seed + 2)]
        out = phrase_folder(work / "train-phrases", sides, seed)
        kept = sum(1 for _ in open(out / "manifest.csv")) - 1 if out else 0
        print(f"rendered {2 * a.phrases} excerpts of music: {kept} solo phrases in {time.perf_counter() - t0:.0f} s", flush=True)
        return out

    def train(self, seed: int):
        roots, aliases = self.render(seed)
        ds = load_dataset([*roots, *self.args.extra], aliases=aliases)
        X, ok, skipped = extract([c.path for c in ds.clips], self.recipe.feature)
        y = [ds.clips[i].label for i in ok]
        clf = InstrumentClassifier(self.recipe, seed=seed, device=self.args.device)
        clf.fit(X, y, on_epoch=lambda e, n, loss: print(f"epoch {e}/{n} loss {loss:.3f}", flush=True))
        h = clf.history_
        print(f"trained seed {seed} in {h['seconds']:.0f} s, "
              f"best epoch {h['best_epoch']} of {h['epochs_run']}", flush=True)
        return clf, ds, skipped

    def record(self, seed: int, clf, ds, skipped) -> dict:
        a, h = self.args, clf.history_
        return {
            "script": "scripts/train_shipped_model.py",
            "credits": list(CREDITS),
            "command": " ".join(["python"] + sys.argv),
            "data": {**ds.summary(), "roots": [f"<rendered: instrec render --soundfont {a.soundfont}>",
                                                      *([f"<solo phrases: render-music --stems, {2 * a.phrases} excerpts>"] if a.phrases else []),
                                                      *map(str, a.extra)]},
            "render": {"soundfont": a.soundfont, "per_class": a.per_class, "negatives": a.negatives, "seed": seed,
                       "phrases": a.phrases,
                       "instruments": self.instruments,
                       **({"merged": self.merges} if self.merges else {})},
            "split": {"method": "all rendered clips" + (" and the --extra folders" if a.extra else "")
                                + "; validation split inside training", "seed": seed},
            "epochs_run": h["epochs_run"], "best_epoch": h["best_epoch"], "train_seconds": round(h["seconds"], 1),
            "device": h["device"], "skipped": len(skipped),
        }


def _merges(specs: list[str], instruments: list[str]) -> dict[str, list[str]]:
    """``["saxophone=alto-sax,tenor-sax"]`` -> ``{"saxophone": ["alto-sax", "tenor-sax"]}``; each label must be trained."""
    out = {}
    for spec in specs:
        label, _, members = spec.partition("=")
        names = [m.strip() for m in members.split(",") if m.strip()]
        if label.strip() not in instruments or not names:
            raise SystemExit(f"--merge {spec!r}: want LABEL=INSTR,... with LABEL one of {', '.join(instruments)}")
        out[label.strip()] = names
    return out


# Whose recordings the model learnt from (samples/CREDITS.md has the packages' own words).
CREDITS = tuple(SOURCE_CREDITS.values())


def _halves(clips) -> dict[str, list[int]]:
    """The real clips' dev half (even MIDI pitches) and test half (odd), as benchmarks/score_real.py splits them."""
    pitch = [int(g) for g in clip_groups(clips, "pitch")]
    return {"dev": [i for i, p in enumerate(pitch) if p % 2 == 0], "test": [i for i, p in enumerate(pitch) if p % 2]}


def _figures(truth, proba, clf, classes=None) -> dict:
    """The figures model.json keeps; with ``clf``, also at family level and with its doubt threshold."""
    if clf is None:
        m = compute_metrics(truth, proba, classes)
        return {k: m[k] for k in ("accuracy", "macro_f1", "roc_auc_ovr_macro", "n", "confusion_matrix")}
    m = compute_metrics(truth, proba, clf.classes, families=clf.families_, min_confidence=clf.min_confidence_)
    out = {k: m[k] for k in ("accuracy", "macro_f1", "roc_auc_ovr_macro", "n", "ece")}
    out["family_accuracy"] = m["family"]["accuracy"]
    out["answered_unknown"] = m["doubt"]["answered_unknown"] if m.get("doubt") else 0
    return out


if __name__ == "__main__":
    sys.exit(main())
