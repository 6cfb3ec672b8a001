"""Rendering on 2 processes vs 1: ``render_music(jobs=N)`` and ``render(jobs=N)``, the same files.

Each command is run ``--repeat`` times at ``jobs=1`` and ``jobs=N``, alternating, into fresh
folders (the pool's start, spawned workers importing instrec and opening the libraries, counts:
it is what a user waits for); the ratio uses the best run of each. Every pooled folder is checked
byte for byte against the one-process folder. The reference for what the machine gives 2
processes at the time is bench_jobs's calibration (fixed numeric work split over 2 processes).

    python -m benchmarks.bench_render [--n 40] [--seconds 3] [--per-class 20] [--repeat 2] [--jobs 2]
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

from benchmarks.bench_common import describe, machine, save, tmpdir
from benchmarks.bench_jobs import calibrate


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def measure(name: str, run, jobs: int, repeat: int) -> dict:
    """``run(out, jobs)`` alternately at 1 and ``jobs``, each into a new folder; identical files checked."""
    root = tmpdir(f"instrec-bench-render-{name}-")
    times: dict[int, list[float]] = {1: [], jobs: []}
    reference = None
    for r in range(repeat):
        for j in (1, jobs) if r % 2 == 0 else (jobs, 1):
            out = root / f"{j}-{r}"
            t0 = time.perf_counter()
            run(out, j)
            times[j].append(time.perf_counter() - t0)
            files = _digest(out)
            reference = reference or files
            if files != reference:
                raise AssertionError(f"{name}: jobs={j} wrote other files")
    b1, bn = min(times[1]), min(times[jobs])
    return {"files": len(reference), "seconds_1": [round(x, 2) for x in times[1]],
            f"seconds_{jobs}": [round(x, 2) for x in times[jobs]], "ratio": round(b1 / bn, 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=40, help="render-music excerpts")
    ap.add_argument("--seconds", type=float, default=3.0, help="render-music excerpt length")
    ap.add_argument("--per-class", type=int, default=20, help="render: clips per instrument and library")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()

    from instrec.data.music import render_music
    from instrec.data.render import render

    info = machine()
    print(describe(info), flush=True)
    result = {"machine": info, "args": vars(args), "calibration": calibrate(args.jobs)}
    print(f"calibration (fixed work, {args.jobs} processes vs 1): {result['calibration']['ratio']}x", flush=True)
    result["render_music"] = measure("music", lambda out, j: render_music(
        out, pieces="chorales,ensembles", soundfont="fluidr3,timgm6mb", n=args.n, seconds=args.seconds, seed=0,
        stems=True, jobs=j), args.jobs, args.repeat)
    print(f"render-music, {args.n} excerpts of {args.seconds:g} s: {result['render_music']}", flush=True)
    result["render"] = measure("notes", lambda out, j: render(
        out, soundfont="fluidr3,timgm6mb", instruments=("flute", "violin", "cello", "trumpet"), per_class=args.per_class,
        seed=0, negatives=2, jobs=j), args.jobs, args.repeat)
    print(f"render, 4 instruments x 2 libraries x {args.per_class} + negatives: {result['render']}", flush=True)
    save("render_jobs", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
