"""Four cheap ideas for the gaps of issue 3, each measured once (2026-12-03).

    python -m experiments.cross_source_probes [--probes source-norm range-prior tta ensemble harmonics]

None trains a cnn, so each takes seconds to minutes on two cores:

- ``source-norm``: standardise every source's features by its own mean and std (the renders per
  library, the real clips by their own): unsupervised adaptation to a recording source. mfcc-stats
  features without pitch-shifted copies, scikit-learn classifiers; renders → the 600 real clips.
- ``range-prior``: multiply the shipped model's probabilities by each instrument's playing range
  as the renders draw it (1 inside, 1e-3 outside, a margin of 0/2/4 semitones), given the real
  clips' true pitch from their file names: an upper bound for any pitch-range cue.
- ``tta``: test-time augmentation, the shipped model's probabilities averaged over pitch-shifted
  copies of each real clip (±1, ±2 semitones).
- ``ensemble``: the tutorial protocol over 15 stratified folds of the real clips (5 folds × fold
  seeds 0/1/2, as `benchmarks/pitch_generalization.py`'s random folds): seed-mfcc, mfcc-stats, and the average
  of their probabilities.
- ``harmonics`` (2026-12-04): a timbre descriptor with the pitch taken out, the level of harmonics
  1-20 relative to the strongest (librosa.yin's f0, librosa.f0_harmonics), median and spread over a
  clip's loud frames; alone and beside mfcc-stats, scored leave-one-library-out on the renders and
  renders → real clips.

The real clips are split into `benchmarks/score_real.py`'s dev and test halves where a probe scores the shipped
model. Results: experiments/results/cross_source_probes.json.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import platform
import sys
from dataclasses import replace
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

from benchmarks.score_real import REAL, halves

HERE = Path(__file__).resolve().parent

SHIPPED = HERE.parent / "src" / "instrec" / "assets" / "model"


def _scores(pred, y, parts) -> dict:
    return {name: round(float(np.mean(pred[idx] == y[idx])), 4) for name, idx in parts.items()}


def source_norm(real, renders) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    feature = get_recipe("mfcc-stats").feature
    Xr, okr, _ = extract([c.path for c in real.clips], feature, compact=True)
    Xs, oks, _ = extract([c.path for c in renders.clips], feature, compact=True)
    yr = np.array([real.clips[i].label for i in okr])
    ys = np.array([renders.clips[i].label for i in oks])
    src = np.array([renders.clips[i].source for i in oks])

    def per_source(X, groups, scale=True):
        X = X.copy()
        for g in set(groups):
            m = groups == g
            X[m] -= X[m].mean(0)
            if scale:
                X[m] /= X[m].std(0) + 1e-6
        return X

    variants = {"global (training statistics)": (Xs, Xr),
                "per source: mean and std": (per_source(Xs, src), per_source(Xr, np.zeros(len(Xr)))),
                "per source: mean only": (per_source(Xs, src, False), per_source(Xr, np.zeros(len(Xr)), False))}
    out = {}
    for name, (A, B) in variants.items():
        scaler = StandardScaler().fit(A)
        A, B = scaler.transform(A), scaler.transform(B)
        for cname, clf in (("logistic regression", LogisticRegression(max_iter=3000, C=0.1)),
                           ("MLP 128-64", MLPClassifier((128, 64), alpha=1e-2, max_iter=400, random_state=0))):
            out[f"{name}, {cname}"] = round(float(np.mean(clf.fit(A, ys).predict(B) == yr)), 4)
            print(f"source-norm: {name}, {cname}: {out[f'{name}, {cname}']:.4f}", flush=True)
    return out


@functools.lru_cache(maxsize=1)
def _shipped() -> InstrumentClassifier:
    return InstrumentClassifier.load(SHIPPED)


def _shipped_proba(real, shift=0.0):
    clf = _shipped()
    feature = replace(clf.recipe.feature, pitch_shift=float(shift)) if shift else clf.recipe.feature
    X, ok, _ = extract([c.path for c in real.clips], feature)
    if len(ok) != len(real.clips):
        raise SystemExit("a real clip failed to decode")
    return clf.predict_proba(X), np.array(clf.classes)


def range_prior(real, renders) -> dict:
    P, classes = _shipped_proba(real)
    y = np.array([c.label for c in real.clips])
    pitch = np.array([int(p) for p in clip_groups(real.clips, "pitch")])
    with open(renders.roots[0] / "manifest.csv", newline="") as f:
        drawn: dict[str, list[int]] = {}
        for row in csv.DictReader(f):
            drawn.setdefault(row["label"], []).append(int(row["pitch"]))
    parts = {"all": np.arange(len(y)), **{k: np.asarray(v) for k, v in halves(real.clips).items()}}
    out = {"shipped model": _scores(classes[P.argmax(1)], y, parts)}
    for margin in (0, 2, 4):
        inside = np.array([[min(drawn[c]) - margin <= p <= max(drawn[c]) + margin for c in classes] for p in pitch])
        out[f"range prior, margin {margin}"] = _scores(classes[(P * np.where(inside, 1.0, 1e-3)).argmax(1)], y, parts)
    for k, v in out.items():
        print(f"range-prior: {k}: {v}", flush=True)
    return out


def tta(real, renders) -> dict:
    y = np.array([c.label for c in real.clips])
    parts = {"all": np.arange(len(y)), **{k: np.asarray(v) for k, v in halves(real.clips).items()}}
    P = {}
    for s in (0, -2, -1, 1, 2):
        P[s], classes = _shipped_proba(real, s)
    rows = {f"shifted {s:+d} only": P[s] for s in P}
    rows["average of 0, ±1"] = P[0] + P[1] + P[-1]
    rows["average of 0, ±1, ±2"] = sum(P.values())
    out = {k: _scores(classes[Q.argmax(1)], y, parts) for k, Q in rows.items()}
    for k, v in out.items():
        print(f"tta: {k}: {v}", flush=True)
    return out


def ensemble(real, renders) -> dict:
    names = ("seed-mfcc", "mfcc-stats")
    recipes = {n: get_recipe(n) for n in names}
    X = {n: extract([c.path for c in real.clips], r.feature, compact=True)[0] for n, r in recipes.items()}
    labels = [c.label for c in real.clips]
    y = np.array(labels)
    shifted = shifted_features(real.clips, recipes["mfcc-stats"], np.arange(len(labels)))
    acc: dict[str, list[float]] = {n: [] for n in (*names, "average of the two")}
    for seed in (0, 1, 2):
        for tr, te in kfold_indices(labels, 5, seed=seed):
            P = {}
            for n, r in recipes.items():
                Xt, yt = training_rows(X[n], labels, tr, shifted) if r.train.pitch_shifts else (X[n][tr], [labels[i] for i in tr])
                clf = InstrumentClassifier(r, seed=seed).fit(Xt, yt)
                P[n], classes = clf.predict_proba(X[n][te]), np.array(clf.classes)
                acc[n].append(float(np.mean(classes[P[n].argmax(1)] == y[te])))
            acc["average of the two"].append(float(np.mean(classes[sum(P.values()).argmax(1)] == y[te])))
        print(f"ensemble: fold seed {seed}: " + ", ".join(f"{k} {np.mean(v[-5:]):.4f}" for k, v in acc.items()), flush=True)
    return {k: {"mean": round(float(np.mean(v)), 4), "folds": [round(a, 4) for a in v]} for k, v in acc.items()}


N_HARMONICS = 20


def harmonic_envelope(path, *, sr=22050, n_fft=4096, hop_length=512, fmin=40.0, fmax=2100.0):
    """41 values: median and std over the loud frames of harmonics 1-20's level (dB below the
    frame's strongest, floored at -80), and the median log2 f0. Dividing by the strongest harmonic
    removes loudness; indexing by harmonic number instead of frequency removes the pitch, leaving
    the shape of the harmonic series that tells, say, a clarinet's odd harmonics from an oboe's."""
    import librosa

    from instrec.audio import load

    y, sr = load(path, sr=sr)
    f0 = librosa.yin(y, fmin=fmin, fmax=fmax, sr=sr, frame_length=n_fft, hop_length=hop_length)
    S = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop_length))
    n = min(S.shape[1], len(f0))
    S, f0 = S[:, :n], f0[:n]
    H = librosa.f0_harmonics(S, f0=f0, freqs=librosa.fft_frequencies(sr=sr, n_fft=n_fft),
                             harmonics=np.arange(1, N_HARMONICS + 1))
    rms = librosa.feature.rms(S=S, frame_length=n_fft)[0]
    loud = 20 * np.log10(rms + 1e-12) >= 20 * np.log10(rms.max() + 1e-12) - 30
    H = H[:, loud]
    db = np.maximum(20 * np.log10(H + 1e-12) - 20 * np.log10(H.max(0, keepdims=True) + 1e-12), -80.0)
    return np.concatenate([np.median(db, 1), db.std(1), [np.median(np.log2(f0[loud]))]]).astype(np.float32)


def harmonics(real, renders) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    from benchmarks.generalization import LIBRARIES

    def envelopes(clips):
        return np.stack([harmonic_envelope(c.path) for c in clips])

    feature = get_recipe("mfcc-stats").feature
    Xr, okr, _ = extract([c.path for c in real.clips], feature, compact=True)
    Xs, oks, _ = extract([c.path for c in renders.clips], feature, compact=True)
    if len(okr) != len(real.clips) or len(oks) != len(renders.clips):
        raise SystemExit("a clip failed to decode")
    Hr, Hs = envelopes(real.clips), envelopes(renders.clips)
    yr = np.array([c.label for c in real.clips])
    ys = np.array([c.label for c in renders.clips])
    lib = np.array([LIBRARIES.get(c.source, c.source) for c in renders.clips])
    def f0_check(H, clips):  # how often yin's median f0 is the note played, within a semitone
        nominal = np.array([int(p) for p in clip_groups(clips, "pitch")])
        return round(float(np.mean(np.abs(12 * H[:, -1] + 69 - 12 * np.log2(440.0) - nominal) <= 1.0)), 4)

    sets = {"mfcc-stats": (Xs, Xr), "harmonics": (Hs, Hr),
            "mfcc-stats + harmonics": (np.hstack([Xs, Hs]), np.hstack([Xr, Hr]))}
    classifiers = {"logistic regression": lambda: LogisticRegression(max_iter=3000, C=0.1),
                   "MLP 128-64": lambda: MLPClassifier((128, 64), alpha=1e-2, max_iter=400, random_state=0)}
    parts = {"all": np.arange(len(yr)), **{k: np.asarray(v) for k, v in halves(real.clips).items()}}

    def fit_score(A, ya, B, yb, make):
        scaler = StandardScaler().fit(A)
        return make().fit(scaler.transform(A), ya).predict(scaler.transform(B))

    out = {"f0_within_a_semitone": {"renders": f0_check(Hs, renders.clips), "real": f0_check(Hr, real.clips)},
           "n_renders": len(ys), "n_real": len(yr)}
    for sname, (A, B) in sets.items():
        for cname, make in classifiers.items():
            folds = {g: round(float(np.mean(fit_score(A[lib != g], ys[lib != g], A[lib == g], ys[lib == g], make) == ys[lib == g])), 4)
                     for g in sorted(set(lib))}
            real_scores = _scores(fit_score(A, ys, B, yr, make), yr, parts)
            row = {"lolo_mean": round(float(np.mean(list(folds.values()))), 4), "lolo_folds": folds, "real": real_scores}
            out[f"{sname}, {cname}"] = row
            print(f"harmonics: {sname}, {cname}: {row}", flush=True)
    return out


PROBES = {"source-norm": source_norm, "range-prior": range_prior, "tta": tta, "ensemble": ensemble,
          "harmonics": harmonics}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--probes", nargs="+", choices=list(PROBES), default=list(PROBES))
    ap.add_argument("--rendered", type=Path, default=Path("build/bench-generalization/render-all-100-seed0"))
    args = ap.parse_args()
    if not REAL.is_dir() or not (args.rendered / "manifest.csv").is_file():
        print(f"needs the real clips at {REAL} and a `render --soundfont all --per-class 100 --seed 0` folder at {args.rendered}",
              file=sys.stderr)
        return 1
    real, renders = load_dataset(REAL), load_dataset(args.rendered)
    path = HERE / "results" / "cross_source_probes.json"
    out = {"machine": f"{platform.machine()}, {platform.system()}, python {platform.python_version()}",
           "date": date.today().isoformat(), "n_real": len(real.clips), "n_rendered": len(renders.clips),
           "rendered": str(args.rendered), "shipped_model": str(SHIPPED.relative_to(HERE.parent)), "probes": {}}
    if path.is_file():  # a run of some probes keeps the others' last results
        out["probes"] = json.loads(path.read_text(encoding="utf-8")).get("probes", {})
    for name in args.probes:
        out["probes"][name] = PROBES[name](real, renders)
        write_json(path, out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
