"""Batch tagging on Ray (issue 28): ``predict --ray`` with 2 actors vs 1, and vs local ``predict --jobs``.

    python -m benchmarks.bench_ray [--files 2000] [--workers 2]

2,000 FluidSynth renders (3 s, seed 0; made first, not timed) are tagged by the shipped model:
1. locally, ``predict_paths(jobs=1)`` and ``jobs=2`` (the process pool of ``predict --jobs``);
2. on a Ray of this machine (head on 127.0.0.1, 2 CPUs, started once and not timed), with the
   actor pool of ``predict --ray`` at 1 and 2 actors. Each timed run starts its own actors (one
   model load each), as a ``predict --ray`` run does; one untimed run first warms Ray's worker
   processes.
Every run's predictions must equal the local single process's (every field).

Targets: Ray 2 actors vs 1 at least 1.8x, read against the machine's own 2-core calibration
(:func:`benchmarks.bench_jobs.calibrate`: fixed CPU work on 1 vs 2 processes, which says what
2 processes can get here at the time); Ray at 2 actors at most 15% slower than ``--jobs 2``.
Writes benchmarks/results/bench_ray.json.
"""

from __future__ import annotations

import argparse
import os
import time

from benchmarks import bench_common as bc
from benchmarks.bench_jobs import calibrate


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    from instrec.cluster import ray_session
    from instrec.cluster.tagging import ray_runner
    from instrec.inference import load_model
    from instrec.pipeline import predict_paths

    info = bc.machine()
    paths = bc.rendered(-(-args.files // 6))[: args.files]
    model = load_model()
    n = len(paths)
    print(f"{n} files, shipped model ({model.engine.recipe_name}, {model.engine.name}); {bc.describe(info)}", flush=True)
    cal = calibrate(args.workers)
    print(f"calibration (fixed CPU work, 1 vs {args.workers} processes): {cal['ratio']}x", flush=True)

    def check(results, what):
        if [r.to_dict() for r in results] != reference:
            raise AssertionError(f"{what}: predictions differ from the local single process's")

    t_local1, (res, skipped) = _timed(lambda: predict_paths(model, paths, jobs=1))
    assert not skipped, skipped
    reference = [r.to_dict() for r in res]
    t_local2, (res, _) = _timed(lambda: predict_paths(model, paths, jobs=args.workers))
    check(res, f"--jobs {args.workers}")
    print(f"local: 1 process {t_local1:.1f} s, {args.workers} processes {t_local2:.1f} s", flush=True)
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    t0 = time.perf_counter()
    with ray_session(None, num_cpus=args.workers):
        start = time.perf_counter() - t0
        predict_paths(model, paths[:40], runner=ray_runner(workers=args.workers))  # Ray's worker processes up
        t_ray1, (res, _) = _timed(lambda: predict_paths(model, paths, runner=ray_runner(workers=1)))
        check(res, "ray, 1 actor")
        t_ray2, (res, _) = _timed(lambda: predict_paths(model, paths, runner=ray_runner(workers=args.workers)))
        check(res, f"ray, {args.workers} actors")
    speedup = t_ray1 / t_ray2
    overhead = t_ray2 / t_local2 - 1
    print(f"ray: start {start:.1f} s (not timed); 1 actor {t_ray1:.1f} s, {args.workers} actors {t_ray2:.1f} s", flush=True)
    print(f"ray {args.workers} actors vs 1: {speedup:.2f}x (target >= 1.8x; this machine's calibration {cal['ratio']}x, "
          f"so {speedup / cal['ratio']:.0%} of what {args.workers} processes get here)")
    print(f"ray vs local --jobs {args.workers}: {overhead:+.1%} (target <= +15%)")
    print("predictions: identical in every run")
    bc.save("bench_ray", {
        "machine": info, "files": n, "model": model.engine.recipe_name, "workers": args.workers, "calibration": cal,
        "seconds": {"local_1": round(t_local1, 2), f"local_{args.workers}": round(t_local2, 2),
                    "ray_1": round(t_ray1, 2), f"ray_{args.workers}": round(t_ray2, 2), "ray_start": round(start, 2)},
        "ray_speedup": round(speedup, 2), "ray_overhead_vs_local": round(overhead, 3), "identical": True,
    })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
