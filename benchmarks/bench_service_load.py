"""Load on the HTTP service (issue 4/6): concurrent clients on loopback, each sending a 3-s clip.

    python -m benchmarks.bench_service_load [--requests 640] [--clients 8] [--max-concurrent N]

Starts ``instrec serve`` (uvicorn, the shipped model) in a subprocess on a free
loopback port, renders one 3-s FluidSynth clip, warms the server up, then sends ``--requests``
``POST /v1/predict`` uploads from ``--clients`` threads (one keep-alive httpx client each).
Any answer but a 200 with the expected label counts as an error. Prints and writes
benchmarks/results/service_load.json: requests, errors, requests/s, latency p50/p90/p99/max,
machine, date.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import httpx
import numpy as np

from benchmarks.bench_common import free_port, machine, wait_ready

from instrec.data.render import render
from instrec.fileio import write_json

OUT = Path(__file__).resolve().parent / "results" / "service_load.json"








def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=640, help="requests in all (at least 500 for the record)")
    ap.add_argument("--clients", type=int, default=8, help="concurrent client threads")
    ap.add_argument("--max-concurrent", type=int, default=None, help="the server's worker threads (default: its own)")
    ap.add_argument("--work", type=Path, default=Path("build/bench-service"))
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    clip_dir = args.work / "clip"
    render(clip_dir, soundfont="fluidr3", instruments=("flute",), per_class=1, seconds=3.0, seed=0)
    clip = sorted(clip_dir.glob("*.wav"))[0]
    payload = clip.read_bytes()

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "instrec", "serve", "--port", str(port), "--log-level", "warning"]
    if args.max_concurrent:
        cmd += ["--max-concurrent", str(args.max_concurrent)]
    proc = subprocess.Popen(cmd)
    try:
        wait_ready(url, proc)
        info = httpx.get(url + "/v1/model").json()
        expected = httpx.post(url + "/v1/predict", files={"file": (clip.name, payload, "audio/wav")}).json()["label"]
        with httpx.Client(base_url=url) as c:  # warm-up, not counted
            for _ in range(10):
                c.post("/v1/predict", files={"file": (clip.name, payload, "audio/wav")})

        per_client = [args.requests // args.clients + (i < args.requests % args.clients) for i in range(args.clients)]
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        start = threading.Barrier(args.clients + 1)

        def client(n: int) -> None:
            mine, bad = [], []
            with httpx.Client(base_url=url, timeout=120) as c:
                start.wait()
                for _ in range(n):
                    t0 = time.perf_counter()
                    try:
                        r = c.post("/v1/predict", files={"file": (clip.name, payload, "audio/wav")})
                        ok = r.status_code == 200 and r.json()["label"] == expected
                        if not ok:
                            bad.append(f"{r.status_code}: {r.text[:200]}")
                    except httpx.HTTPError as e:
                        bad.append(repr(e))
                    mine.append(time.perf_counter() - t0)
            with lock:
                latencies.extend(mine)
                errors.extend(bad)

        threads = [threading.Thread(target=client, args=(n,)) for n in per_client]
        for t in threads:
            t.start()
        start.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()

    lat = np.array(latencies) * 1000
    result = {
        "machine": machine(),
        "date": date.today().isoformat(),
        "server": f"instrec serve (uvicorn, 1 process, {info['limits']['max_concurrent']} prediction threads), "
                  f"model {info['recipe']} ({info['engine']})",
        "clip": f"{clip.name}: {len(payload)} bytes, 3.0 s, 22050 Hz 16-bit WAV (FluidSynth render, seed 0)",
        "clients": args.clients,
        "requests": len(latencies),
        "errors": len(errors),
        "error_examples": errors[:5],
        "wall_s": round(wall, 2),
        "requests_per_s": round(len(latencies) / wall, 1),
        "latency_ms": {"p50": round(float(np.percentile(lat, 50)), 1), "p90": round(float(np.percentile(lat, 90)), 1),
                       "p99": round(float(np.percentile(lat, 99)), 1), "max": round(float(lat.max()), 1),
                       "mean": round(float(lat.mean()), 1)},
    }
    write_json(args.out, result)
    print(f"{result['requests']} requests from {args.clients} clients in {result['wall_s']} s: "
          f"{result['requests_per_s']} req/s, {result['errors']} errors; latency p50 "
          f"{result['latency_ms']['p50']} ms, p99 {result['latency_ms']['p99']} ms (max {result['latency_ms']['max']} ms)")
    print(f"written: {args.out}")
    return 0 if not errors and len(latencies) >= 500 else 1


if __name__ == "__main__":
    sys.exit(main())
