"""AdaBN: the cnn's batch-norm statistics re-estimated on the recordings it is to classify.

    python -m experiments.adabn_probe MODEL_DIR [MODEL_DIR ...]

Li et al. (2016), "Revisiting batch normalization for practical domain adaptation": a network
trained on one domain (here renders) keeps its weights, and each BatchNorm layer's running mean
and variance are recomputed on the target domain's unlabelled inputs (here the 600 real clips,
un-augmented). No label is used and nothing is trained. Two variants:

* ``A``: every BatchNorm2d's running statistics, a cumulative average over batches of 100 clips;
* ``B``: A, and the input's per-band normalisation (BandNorm) refitted on the real clips too.

Each model is scored in the tutorial's six-class mode on ``benchmarks/score_real.py``'s dev and test
halves and on all 600. The rule, written before the run (experiments/LOG.md): adopt A only if its dev accuracy
beats the unadapted model's at 3 or more of the models given and on average.

Writes experiments/results/adabn_probe.json.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np

from benchmarks import bench_common as bc
from benchmarks.score_real import REAL, halves

HERE = Path(__file__).resolve().parent


def adapted(net, X: np.ndarray, *, bandnorm: bool = False, batch: int = 100):
    """A copy of ``net`` whose BatchNorm statistics (and BandNorm's, with ``bandnorm``) are ``X``'s."""
    import torch

    net = copy.deepcopy(net).eval()
    Xt = torch.from_numpy(X)
    with torch.no_grad():
        if bandnorm:
            net.prepare(Xt)
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                # momentum None: a plain average over all batches, not an exponential one
                m.reset_running_stats()
                m.momentum = None
                m.train()
        for s in range(0, len(Xt), batch):
            net(Xt[s:s + batch])
    return net.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="cnn model bundles (e.g. build/cand7 build/cand7-seed1 ...)")
    args = ap.parse_args()

    from instrec.classifier import InstrumentClassifier
    from instrec.data import load_dataset
    from instrec.features import extract
    from instrec.inference import class_columns, restrict_proba

    real = load_dataset(REAL)
    rows = []
    for path in args.models:
        clf = InstrumentClassifier.load(path)
        X, ok, _ = extract([c.path for c in real.clips], clf.recipe.feature)
        clips = [real.clips[i] for i in ok]
        y = np.array([c.label for c in clips])
        six = sorted(set(y))
        parts = {"all": np.arange(len(y)), **{h: np.array(v) for h, v in halves(clips).items()}}
        for variant, net in (("none", clf.net_), ("A", adapted(clf.net_, X)), ("B", adapted(clf.net_, X, bandnorm=True))):
            P = restrict_proba(clf.predict_proba(X, net=net), class_columns(clf.classes, six))
            pred = np.array(six)[P.argmax(1)]
            acc = {k: round(float((pred[i] == y[i]).mean()), 4) for k, i in parts.items()}
            rows.append({"model": path, "variant": variant, **acc})
            print(f"{path} {variant}: dev {acc['dev']:.2%}, test {acc['test']:.2%}, all {acc['all']:.2%}", flush=True)
    bc.save("adabn_probe", {"machine": bc.machine(), "clips": len(real.clips), "rows": rows}, HERE / "results")


if __name__ == "__main__":
    main()
