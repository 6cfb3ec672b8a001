"""Training in 2 processes (DistributedDataParallel) vs 1: training rows a second of ``fit_network``.

Target (issue 28): 2 processes at least 1.6x the samples per second of 1. The same recipe is
trained on the same rows (features of rendered clips, computed once beforehand and read from a
file, so no extraction is timed) in fresh processes:

* 1 process, 1 torch thread: the baseline of the ratio;
* 2 processes, 1 thread each, under the launcher ``instrec train --nproc 2`` uses (torchrun's);
* 1 process, 2 threads: what this machine gives one process on both cores, for reference. On a
  2-core machine, 1 process with 2 threads and 2 processes with 1 use the same cores; the target
  compares like with like (one thread per process), and this line says what DDP adds beyond it.

A process trains ``--epochs`` epochs; the first is warm-up (allocations, DDP's buckets) and is not
counted: samples per second = training rows of an epoch / the median time of the others, an epoch's
validation scoring included. Configurations alternate, ``--repeat`` times, and each keeps its
best. The CNN recipe is the one that needs more than one core; ``mfcc-stats`` (a small MLP on
87 values a row) shows the other end, where an all-reduce per minibatch outweighs the arithmetic.

    python -m benchmarks.bench_ddp [--recipes cnn mfcc-stats] [--per-class 32] [--epochs N] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_common import describe, machine, save, tmpdir

ROOT = Path(__file__).resolve().parents[1]  # the repository root
TARGET = 1.6


def worker(spec: Path) -> None:
    """One training process (or one of two, under torchrun): train, write its timings (rank 0)."""
    from dataclasses import replace

    import torch

    from instrec import models
    from instrec.recipes import get_recipe
    from instrec.train import fit_network, seed_everything
    from instrec.train.distributed import init_from_env, is_main

    s = json.loads(spec.read_text())
    rank, size = init_from_env("cpu")
    data = np.load(s["rows"])
    X, y = data["X"], data["y"]
    recipe = get_recipe(s["recipe"])
    config = replace(recipe.train, epochs=s["epochs"], pitch_shifts=())
    seed_everything(0)
    net = models.build(recipe.model, recipe.feature, int(y.max()) + 1)
    ticks = [time.perf_counter()]
    h = fit_network(net, X, y, config, seed=0, device="cpu", on_epoch=lambda *_: ticks.append(time.perf_counter()))
    if is_main():
        Path(s["out"]).write_text(json.dumps({
            "processes": size, "threads": torch.get_num_threads(), "epoch_seconds": np.diff(ticks).round(4).tolist(),
            "train_rows": len(X) - h["validation_rows"], "final_loss": h["loss"][-1]}))


def run(rows: Path, recipe: str, epochs: int, processes: int, threads: int, work: Path) -> dict:
    """One configuration in fresh processes; its timings."""
    spec = work / f"{recipe}-{processes}x{threads}.json"
    out = spec.with_suffix(".out.json")
    spec.write_text(json.dumps({"rows": str(rows), "recipe": recipe, "epochs": epochs, "out": str(out)}))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if processes == 1:
        cmd = [sys.executable, "-m", "benchmarks.bench_ddp", "--worker", str(spec)]
    else:  # the launcher of instrec train --nproc N, in a process of its own
        cmd = [sys.executable, "-c", "import sys; from instrec.train.distributed import launch; "
               f"sys.exit(launch({processes}, ['-m', 'benchmarks.bench_ddp', '--worker', {str(spec)!r}]))"]
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)
    r = json.loads(out.read_text())
    timed = r["epoch_seconds"][1:] or r["epoch_seconds"]
    r["samples_per_second"] = round(r["train_rows"] / float(np.median(timed)), 2)
    return r


def features(recipe: str, per_class: int, work: Path) -> tuple[Path, int, str]:
    """Rows of the recipe's features for ``6 x per_class`` rendered clips, in a file."""
    from instrec.data import load_dataset
    from instrec.data.render import render
    from instrec.features import extract
    from instrec.recipes import get_recipe

    folder = work / f"renders-{per_class}"
    if not folder.exists():
        render(folder, per_class=per_class, seconds=3.0, seed=0)
    clips = load_dataset(folder).clips
    X, ok, _ = extract([c.path for c in clips], get_recipe(recipe).feature, cache=False)
    labels = [clips[i].label for i in ok]
    classes = sorted(set(labels))
    path = work / f"{recipe}.npz"
    np.savez(path, X=X, y=np.array([classes.index(c) for c in labels], dtype=np.int64))
    return path, len(X), f"{len(X)} FluidSynth renders (6 instruments x {per_class}, 3 s, seed 0)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipes", nargs="+", default=["cnn", "mfcc-stats"])
    ap.add_argument("--per-class", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=None, help="default: 4 for the cnn, 40 for an MLP (whose epochs take ms)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker)
        return 0

    info = machine()
    print(describe(info), flush=True)
    work = tmpdir("instrec-bench-ddp-")
    configs = [(1, 1), (2, 1), (1, 2)]  # (processes, threads each)
    results = {}
    for recipe in args.recipes:
        rows, n, what = features(recipe, args.per_class, work)
        epochs = args.epochs or (4 if recipe.startswith("cnn") else 40)
        runs: dict[str, list] = {f"{p}x{t}": [] for p, t in configs}
        for r in range(args.repeat):
            for p, t in configs if r % 2 == 0 else configs[::-1]:
                runs[f"{p}x{t}"].append(run(rows, recipe, epochs, p, t, work))
        best = {k: max(v, key=lambda x: x["samples_per_second"]) for k, v in runs.items()}
        sps = {k: b["samples_per_second"] for k, b in best.items()}
        ratio, vs_threads = sps["2x1"] / sps["1x1"], sps["2x1"] / sps["1x2"]
        results[recipe] = {"rows": what, "epochs": epochs, "train_rows": best["1x1"]["train_rows"], "samples_per_second": sps,
                           "ratio_2_processes_vs_1": round(ratio, 2), "ratio_2_processes_vs_1_process_2_threads":
                           round(vs_threads, 2), "runs": runs}
        print(f"{recipe} ({what}; {best['1x1']['train_rows']} training rows an epoch, {epochs} epochs, the "
              f"first not timed, best of {args.repeat}): 1 process x 1 thread {sps['1x1']:.1f} samples/s, 2 processes "
              f"x 1 thread {sps['2x1']:.1f} samples/s: {ratio:.2f}x (target >= {TARGET}x: "
              f"{'met' if ratio >= TARGET else 'NOT met'}); 1 process x 2 threads {sps['1x2']:.1f} samples/s "
              f"(2 processes give {vs_threads:.2f}x that); final losses "
              f"{best['1x1']['final_loss']:.4f} / {best['2x1']['final_loss']:.4f} / {best['1x2']['final_loss']:.4f}",
              flush=True)
    load_end = [round(x, 2) for x in os.getloadavg()]
    print(f"load average at the end: {load_end[0]}; threads are torch's intra-op threads (OMP_NUM_THREADS)")
    out = save("bench_ddp", {
        "benchmark": "fit_network samples/s: 1 process x 1 thread vs 2 DDP processes (gloo) x 1 thread, and 1 process "
                     f"x 2 threads; the first epoch not timed; best of {args.repeat}, alternating",
        "machine": info, "load_average_at_end": load_end, "recipes": results, "target": f">= {TARGET}x",
        "met": {k: v["ratio_2_processes_vs_1"] >= TARGET for k, v in results.items()},
    })
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
