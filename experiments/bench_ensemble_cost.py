"""What a shipped ensemble of four cnn networks would cost per prediction (issue 3 against issue 5).

    python -m experiments.bench_ensemble_cost [--warm 200]

Four seeds of the shipped recipe, their probabilities averaged, score 73.33% on the 600 real
clips against 69.00% for the shipped network (benchmarks/RESULTS.md, "Seven instruments, four
seeds"). Issue 5 asks for a warm prediction of one 3-s clip in at most 5 ms. The time a network
takes does not depend on its weight values, so four copies of the shipped network stand in for
the four seeds. Measured on one 3-s clip, median of ``--warm`` calls, default threads:

* ``Model.predict`` with the shipped model (decoded audio → features → network): the baseline;
* the network alone (front end, band norm, body, pooling, head): one network, four in turn,
  and the four fused into one network whose convolutions are grouped (one kernel call per layer
  for the four; outputs checked against the four in turn);
* the estimate for an ensemble's ``Model.predict``: the baseline plus what the network part adds.

Writes experiments/results/bench_ensemble_cost.json.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks import bench_common as bc

RESULTS = Path(__file__).resolve().parent / "results"


def median_ms(fn, n: int) -> float:
    fn()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def fused_bodies(bodies):
    """The bodies of several networks as one, each convolution grouped by network."""
    import torch
    from torch import nn

    k, blocks = len(bodies), []
    for block_set in zip(*bodies):
        layers = []
        for parts in zip(*block_set):
            first = parts[0]
            if isinstance(first, nn.Conv2d):
                conv = nn.Conv2d(first.in_channels * k, first.out_channels * k, first.kernel_size,
                                 padding=first.padding, groups=k, bias=True)
                conv.weight.data.copy_(torch.cat([p.weight.data for p in parts]))
                conv.bias.data.copy_(torch.cat([p.bias.data for p in parts]))
                layers.append(conv)
            else:  # ReLU, max pooling: the same for every network
                layers.append(first)
        blocks.append(nn.Sequential(*layers))
    return nn.Sequential(*blocks).to(memory_format=torch.channels_last).eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--warm", type=int, default=200)
    args = ap.parse_args()

    import soundfile as sf
    import torch

    import instrec
    from instrec.classifier import InstrumentClassifier
    from instrec.assets import SHIPPED_MODEL

    clip = bc.rendered(1, seconds=3.0)[0]
    y, sr = sf.read(str(clip), dtype="float32")
    model = instrec.load_model()
    clf = InstrumentClassifier.load(SHIPPED_MODEL)
    nets = []
    for k in range(4):  # four copies with different weights, so nothing can be shared by accident
        net = copy.deepcopy(clf.net_)
        with torch.no_grad():
            for p in net.parameters():
                p.mul_(1 + 0.01 * k)
        nets.append(net.for_inference())
    x = torch.from_numpy(np.ascontiguousarray(y[: int(model.feature.seconds * sr)]))[None]
    fused = fused_bodies([n.body for n in nets])

    def fused_run():
        mel = nets[0].frontend(x)  # the front end has no weights: the same for every network
        h = fused(torch.cat([n.norm(mel).unsqueeze(1) for n in nets], dim=1))
        c = h.shape[1] // len(nets)
        probs = []
        for i, n in enumerate(nets):
            part = h[:, i * c:(i + 1) * c]
            probs.append(torch.softmax(n.head(torch.cat([part.mean(dim=(2, 3)), part.amax(dim=(2, 3))], dim=1)), 1))
        return torch.stack(probs).mean(0)

    with torch.inference_mode():
        in_turn = torch.stack([torch.softmax(n.classify(x), 1) for n in nets]).mean(0)
        agree = float((fused_run() - in_turn).abs().max())
        t = {
            "model_predict_one_network": median_ms(lambda: model.predict(y, sr), args.warm),
            "network_one": median_ms(lambda: nets[0].classify(x), args.warm),
            "networks_four_in_turn": median_ms(lambda: [n.classify(x) for n in nets], args.warm),
            "networks_four_fused": median_ms(fused_run, args.warm),
        }
    extra = min(t["networks_four_in_turn"], t["networks_four_fused"]) - t["network_one"]
    result = {
        "machine": bc.machine(),
        "clip": f"one 3-s FluidR3 render at {sr} Hz ({clip.name})",
        "torch_threads": torch.get_num_threads(),
        "calls": args.warm,
        "ms": t,
        "fused_vs_in_turn_max_abs_difference": agree,
        "estimate_ms": {"model_predict_four_networks": t["model_predict_one_network"] + extra},
        "ratio_four_fused_over_one": t["networks_four_fused"] / t["network_one"],
        "target_warm_cnn_ms": 5.0,
    }
    bc.save("bench_ensemble_cost", result, RESULTS)
    print(f"Model.predict, one network: {t['model_predict_one_network']:.2f} ms; networks alone: one "
          f"{t['network_one']:.2f} ms, four in turn {t['networks_four_in_turn']:.2f} ms, four fused "
          f"{t['networks_four_fused']:.2f} ms (agree within {agree:.1e}); an ensemble's Model.predict: about "
          f"{result['estimate_ms']['model_predict_four_networks']:.1f} ms (issue 5's target: <= 5 ms)")


if __name__ == "__main__":
    main()
