"""Soak test of the HTTP service (issue 6, item 5; issue 25): many clients for minutes, good and
bad uploads, slow clients and decode bombs.

    python -m benchmarks.soak_service [--minutes 3] [--clients 16] [--seed 0]
    python -m benchmarks.soak_service --minutes 0.5        # a quick check

Starts ``instrec serve`` (the shipped model) in a subprocess on a free loopback port, with a small
upload limit (``--max-upload-mb 4``), ``--max-concurrent 2``, the default line of waiting requests
(16, so 16 clients are never turned away), the default connection limits (header timeout 10 s,
uploads at 10 kB/s or faster, 256 connections, keep-alive 5 s) and an API key in
``$INSTREC_API_KEY``. Renders six 3-s FluidSynth clips (one per instrument), then runs
``--clients`` threads for ``--minutes``; each loops, half the time sending a good clip, half the
time one of the bad inputs below (chosen at random, seeded):

  empty file, text named .wav, truncated wav, wav of NaN floats, silent wav, a PNG, an upload 1 MB
  over the limit (declared length, and chunked), JSON instead of multipart, garbage multipart,
  multipart without a boundary, no ``file`` field, too many fields, a 200 kB text field, window too
  long, hop longer than the window, no API key, a wrong API key, a hostile file name
  (``../../etc/passwd.wav``, answered 200 with the name ``passwd.wav``), a file name with a
  bidirectional override (answered 200 with U+FFFD in its place), a cross-origin POST (403), a
  Host header naming another site (421, DNS rebinding), an unknown path, a wrong method, and an
  upload the client abandons half way (raw socket).

Beside them, all the run long:

* slow clients (``--slow-bodies``, ``--slow-heads``): connections that send their body, or their
  request headers, at 1 byte/s and never finish; each the server cuts off is replaced at once
  (a client that reconnects). The server must cut each off (408 or a close) within 3 header
  timeouts, and good requests must not suffer;
* a decode bomb every ``--bomb-every`` s from the end of the memory baseline on: an 8-channel
  655,350 Hz FLAC of ``--bomb-seconds`` (240: 1.26 billion samples to decode, 2.4 MB compressed),
  each channel constant for a second then stepping to another value. Any answer but a 5xx other
  than 503 is accepted (a prediction, a 422 refusal, or 503 at the time limit); its answers,
  times and the memory they cost are reported.

Every bad input has the answers it may get (a 4xx; for the oversize uploads also a connection the
server closes while the client still sends). The server's resident memory (VmRSS) is sampled every
2 s. Criteria, each must hold (else the exit status is 1):

* 0 answers of 5xx to bad inputs, and every bad input answered as expected; 0 answers of a 5xx
  other than 503 to a decode bomb;
* 0 good requests dropped: every one a 200 with the clip's label (a 503 from the line's bound, a
  time-out or a connection error counts as dropped);
* every slow client cut off by the server within 3 header timeouts, with 408 or a close;
* resident memory grows less than 10% from after the warm-up (the median of the samples in the
  15 s after the first 30 s; a quarter of the run when shorter) to the end (the median of the last
  15 s under load);
* the server is still up, logged no error, and left no upload temp file behind.

Writes benchmarks/results/soak_service.json (machine, date, duration, figures) and prints a summary.
"""

from __future__ import annotations

import argparse
import collections
import io
import os
import random
import secrets
import select
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

from benchmarks.bench_common import free_port, machine, wait_ready

from instrec.data.render import render
from instrec.fileio import write_json

OUT = Path(__file__).resolve().parent / "results" / "soak_service.json"
SR = 22050
CLOSED = "closed"        # the server closed the connection before the client read an answer
BIDI_NAME = "invoice\u202egnp.wav"  # shows as "invoicevaw.png" where the override is obeyed
BIDI_SHOWN = "invoice\ufffdgnp.wav"
NO_ANSWER = "no answer"  # the client gave up on purpose (abandoned upload)


# ---------------------------------------------------------------------------------------------
# Machine and server






def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None




# ---------------------------------------------------------------------------------------------
# Inputs


def wav_bytes(y: np.ndarray, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, SR, format="WAV", subtype=subtype)
    return buf.getvalue()


BOUNDARY = "soak-boundary"
MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def multipart(*parts: tuple[str, bytes]) -> bytes:
    out = b""
    for head, content in parts:
        out += f"--{BOUNDARY}\r\n{head}\r\n\r\n".encode() + content + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def decode_bomb(path: Path, seconds: float, sr: int = 655_350, channels: int = 8) -> bytes:
    """An 8-channel FLAC at 655,350 Hz, each channel constant for a second then stepping to another
    value (the encoder stores most blocks as constants: a few bytes each), ``seconds`` long; written
    once and kept in ``path``."""
    if not path.exists() or sf.info(str(path)).duration != seconds:
        tmp = path.with_suffix(".tmp.flac")
        rng = np.random.default_rng(0)
        step = sr
        with sf.SoundFile(str(tmp), "w", samplerate=sr, channels=channels, subtype="PCM_16", format="FLAC") as f:
            left = int(seconds * sr)
            while left > 0:
                n = min(step, left)
                f.write(np.repeat(rng.integers(-12000, 12000, (1, channels), dtype=np.int16), n, axis=0))
                left -= n
        tmp.replace(path)
    return path.read_bytes()


def bad_inputs(good: bytes, oversize_bytes: int) -> dict:
    """name -> (how to send it, the answers it may get). ``how`` is a dict of httpx.request
    arguments, or a callable(url) for what httpx cannot send."""
    t = np.arange(2 * SR) / SR
    y = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    nan = y.copy()
    nan[1000:3000] = np.nan
    big = good[:44] + bytes(oversize_bytes)

    def upload(data: bytes, name: str = "clip.wav", ctype: str = "audio/wav", **fields):
        return {"method": "POST", "url": "/v1/predict", "files": {"file": (name, data, ctype)},
                "data": {k: str(v) for k, v in fields.items()}}

    def chunked_big():
        body = multipart(('Content-Disposition: form-data; name="file"; filename="big.wav"\r\n'
                          'Content-Type: audio/wav', big))
        for i in range(0, len(body), 65536):
            yield body[i:i + 65536]

    def abandoned(url: str):
        host, port = url.removeprefix("http://").split(":")
        head = multipart(('Content-Disposition: form-data; name="file"; filename="cut.wav"', good))[:20_000]
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(f"POST /v1/predict HTTP/1.1\r\nHost: soak\r\nContent-Type: {MULTIPART['Content-Type']}\r\n"
                      f"Content-Length: {len(good) + 500}\r\n\r\n".encode() + head)
        return NO_ANSWER

    return {
        "empty file": (upload(b"", "empty.wav"), {422}),
        "text named .wav": (upload(b"this is not a recording, just some text\n" * 20, "notes.wav"), {415}),
        "truncated wav": (upload(good[: len(good) // 3], "cut.wav"), {422}),
        "NaN float wav": (upload(wav_bytes(nan, "FLOAT"), "nan.wav"), {422}),
        "silent wav": (upload(wav_bytes(np.zeros(2 * SR, np.float32)), "quiet.wav"), {422}),
        "PNG image": (upload(b"\x89PNG\r\n\x1a\n" + bytes(2000), "picture.png", "image/png"), {415}),
        "oversize (declared length)": (upload(big, "big.wav"), {413, CLOSED}),
        "oversize (chunked)": ({"method": "POST", "url": "/v1/predict", "content": chunked_big,
                                      "headers": MULTIPART}, {413, CLOSED}),
        "JSON, not multipart": ({"method": "POST", "url": "/v1/predict", "json": {"file": "clip.wav"}}, {415}),
        "garbage multipart": ({"method": "POST", "url": "/v1/predict", "headers": MULTIPART,
                               "content": random.Random(1).randbytes(30_000)}, {400}),
        "multipart without boundary": ({"method": "POST", "url": "/v1/predict", "content": b"--x\r\n",
                                        "headers": {"Content-Type": "multipart/form-data"}}, {400}),
        "no file field": ({"method": "POST", "url": "/v1/predict", "files": {"audio": ("a.wav", good, "audio/wav")}},
                          {400}),
        "too many fields": ({"method": "POST", "url": "/v1/predict", "headers": MULTIPART,
                             "content": multipart(*[(f'Content-Disposition: form-data; name="f{i}"', b"1")
                                                    for i in range(100)])}, {400}),
        "200 kB text field": (upload(good, window="1" * 200_000), {400}),
        "window too long": (upload(good, window=700), {422}),
        "hop longer than window": (upload(good, window=2, hop=3), {422}),
        "no API key": ({**upload(good), "bare": True}, {401}),
        "wrong API key": ({**upload(good), "headers": {"X-API-Key": "not-the-key"}}, {401}),
        "hostile file name": (upload(good, "../../etc/passwd.wav"), {200}),
        "bidi file name": (upload(good, BIDI_NAME), {200}),
        "cross-origin POST": ({**upload(good), "headers": {"Origin": "https://elsewhere.example"}}, {403}),
        "foreign Host (DNS rebinding)": ({"method": "GET", "url": "/v1/model", "headers": {"Host": "rebound.example:80"}},
                                         {421}),
        "unknown path": ({"method": "GET", "url": "/v1/nothing-here"}, {404}),
        "wrong method": ({"method": "GET", "url": "/v1/predict"}, {405}),
        "abandoned upload": (abandoned, {NO_ANSWER}),
    }


# ---------------------------------------------------------------------------------------------
# The run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=3.0, help="how long the clients run (0.5: a quick check)")
    ap.add_argument("--clients", type=int, default=16, help="concurrent client threads")
    ap.add_argument("--slow-bodies", type=int, default=24, help="connections trickling a body at 1 byte/s")
    ap.add_argument("--slow-heads", type=int, default=16, help="connections trickling their headers at 1 byte/s")
    ap.add_argument("--bomb-every", type=float, default=30.0, help="seconds between decode bombs (0: none)")
    ap.add_argument("--bomb-seconds", type=float, default=240.0, help="the decode bomb's duration (under 600 s)")
    ap.add_argument("--max-upload-mb", type=float, default=4.0, help="the server's upload limit (the bomb must fit)")
    ap.add_argument("--max-concurrent", type=int, default=2, help="the server's prediction threads")
    ap.add_argument("--good-share", type=float, default=0.5, help="share of requests that are good clips")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path("build/soak-service"))
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    duration = args.minutes * 60
    warmup = min(30.0, duration / 4)
    window = min(15.0, duration / 4)

    clip_dir = args.work / "clips"
    shutil.rmtree(clip_dir, ignore_errors=True)
    render(clip_dir, soundfont="fluidr3", instruments=("flute", "cello", "trumpet", "oboe", "saxophone", "viola"),
           per_class=1, seconds=3.0, seed=args.seed)
    clips = [(p.name, p.read_bytes()) for p in sorted(clip_dir.glob("*.wav"))]
    oversize = int(args.max_upload_mb * 1_000_000) + 1_000_000
    bad = bad_inputs(clips[0][1], oversize)
    bomb = decode_bomb(args.work / f"bomb-{args.bomb_seconds:g}s.flac", args.bomb_seconds) if args.bomb_every > 0 else b""
    if len(bomb) + 10_000 > args.max_upload_mb * 1_000_000:
        raise SystemExit(f"the decode bomb ({len(bomb)} bytes) does not fit the upload limit: raise --max-upload-mb "
                         f"or lower --bomb-seconds")
    bomb_info = {"seconds": args.bomb_seconds, "sample_rate": 655_350, "channels": 8, "bytes": len(bomb),
                 "samples_to_decode": int(args.bomb_seconds * 655_350 * 8)}

    upload_tmp = args.work / "server-tmp"
    shutil.rmtree(upload_tmp, ignore_errors=True)
    upload_tmp.mkdir(parents=True)
    log_path = args.work / "server.log"
    key = secrets.token_urlsafe(24)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "instrec", "serve", "--port", str(port), "--log-level", "warning",
           "--max-upload-mb", f"{args.max_upload_mb:g}", "--max-concurrent", str(args.max_concurrent)]
    env = {**os.environ, "INSTREC_API_KEY": key, "TMPDIR": str(upload_tmp.resolve())}
    mach = machine()
    started_at = datetime.now(timezone.utc)
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(url, proc)
        auth = {"X-API-Key": key}
        info = httpx.get(url + "/v1/model", headers=auth).json()
        expected = {}
        with httpx.Client(base_url=url, headers=auth, timeout=60) as c:
            for name, data in clips:  # warm-up and the label each clip gets, not counted
                r = c.post("/v1/predict", files={"file": (name, data, "audio/wav")})
                r.raise_for_status()
                expected[name] = r.json()["label"]
        print(f"server up (pid {proc.pid}, {info['limits']}); {args.clients} clients for {args.minutes:g} min ...",
              flush=True)

        lock = threading.Lock()
        good_latency: list[float] = []
        good_fail: collections.Counter = collections.Counter()
        good_fail_examples: list[str] = []
        bad_seen: dict[str, collections.Counter] = {k: collections.Counter() for k in bad}
        bad_examples: list[str] = []
        samples: list[tuple[float, int]] = []
        stop = threading.Event()
        t_start = time.monotonic()
        deadline = t_start + duration
        header_timeout = info["limits"]["header_timeout_s"]
        slow_seen: dict[str, collections.Counter] = {"body": collections.Counter(), "head": collections.Counter()}
        slow_life: dict[str, list[float]] = {"body": [], "head": []}
        slow_open_at_end: dict[str, list[float]] = {"body": [], "head": []}
        bomb_seen: collections.Counter = collections.Counter()
        bomb_times: list[float] = []
        bomb_at: list[float] = []  # when each was sent (s into the run)
        bomb_examples: list[str] = []

        def sampler():
            while not stop.is_set():
                kib = rss_kib(proc.pid)
                if kib is not None:
                    with lock:
                        samples.append((time.monotonic() - t_start, kib))
                stop.wait(2.0)

        def client(i: int):
            rng = random.Random(args.seed * 1000 + i)
            kinds = sorted(bad)
            with httpx.Client(base_url=url, headers=auth, timeout=90) as c, \
                    httpx.Client(base_url=url, timeout=90) as bare:
                k = i
                while time.monotonic() < deadline:
                    if rng.random() < args.good_share:
                        name, data = clips[k % len(clips)]
                        k += 1
                        t0 = time.perf_counter()
                        try:
                            r = c.post("/v1/predict", files={"file": (name, data, "audio/wav")})
                            if r.status_code == 200 and r.json().get("label") == expected[name]:
                                with lock:
                                    good_latency.append(time.perf_counter() - t0)
                                continue
                            why = f"{r.status_code}" if r.status_code != 200 else "wrong label"
                            detail = r.text[:200]
                        except httpx.HTTPError as e:
                            why, detail = "connection error", repr(e)[:200]
                        with lock:
                            good_fail[why] += 1
                            if len(good_fail_examples) < 10:
                                good_fail_examples.append(f"{name}: {why}: {detail}")
                        continue
                    kind = rng.choice(kinds)
                    how, allowed = bad[kind]
                    try:
                        if callable(how):
                            outcome = how(url)
                        else:
                            req = dict(how)
                            client_ = bare if req.pop("bare", False) else c
                            if callable(req.get("content")):
                                req["content"] = req["content"]()
                            r = client_.request(**req)
                            outcome = r.status_code
                            if kind == "hostile file name" and r.status_code == 200 and r.json().get("path") != "passwd.wav":
                                outcome = "200 with an unsanitised path"
                            elif kind == "bidi file name" and r.status_code == 200 and r.json().get("path") != BIDI_SHOWN:
                                outcome = "200 with the override in its path"
                            elif r.status_code >= 400:
                                body = r.json()
                                if list(body) != ["error"] or "Traceback" in r.text:
                                    outcome = f"{r.status_code} without a one-line JSON error"
                    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as e:
                        outcome = CLOSED
                        if CLOSED not in allowed:
                            outcome = f"connection error {type(e).__name__}"
                    except (httpx.HTTPError, OSError, ValueError) as e:
                        outcome = f"error {type(e).__name__}: {str(e)[:100]}"
                    with lock:
                        bad_seen[kind][outcome] += 1
                        if outcome not in allowed and len(bad_examples) < 10:
                            bad_examples.append(f"{kind}: {outcome}")

        host, port_ = url.removeprefix("http://").split(":")
        slow_body = multipart(('Content-Disposition: form-data; name="file"; filename="slow.wav"\r\n'
                               'Content-Type: audio/wav', clips[0][1]))
        slow_heads_of = {
            "body": (f"POST /v1/predict HTTP/1.1\r\nHost: {host}:{port_}\r\nX-API-Key: {key}\r\n"
                     f"Content-Type: {MULTIPART['Content-Type']}\r\nContent-Length: {len(slow_body)}\r\n\r\n").encode(),
            "head": (f"POST /v1/predict HTTP/1.1\r\nHost: {host}:{port_}\r\nX-API-Key: {key}\r\n"
                     f"Content-Type: {MULTIPART['Content-Type']}\r\nContent-Length: {len(slow_body)}\r\n"
                     + "".join(f"X-Slow-{i}: {'z' * 40}\r\n" for i in range(8)) + "\r\n").encode(),
        }

        def slow_clients():
            """``--slow-bodies`` connections sending their body at 1 byte/s, ``--slow-heads`` their
            headers; each one the server ends is replaced at once (a client that reconnects)."""
            conns: dict[socket.socket, list] = {}  # socket -> [kind, opened, bytes left to send, bytes read]
            want = {"body": args.slow_bodies, "head": args.slow_heads}

            def end(s: socket.socket, outcome=None):
                kind, opened, _, got = conns.pop(s)
                s.close()
                if outcome is None:
                    outcome = int(got.split(b" ", 2)[1]) if got.startswith(b"HTTP/1.1 ") else CLOSED
                with lock:
                    slow_seen[kind][outcome] += 1
                    slow_life[kind].append(time.monotonic() - opened)

            while time.monotonic() < deadline:
                for kind in want:
                    while sum(1 for c in conns.values() if c[0] == kind) < want[kind] and time.monotonic() < deadline:
                        s = socket.create_connection((host, int(port_)), timeout=10)
                        head = slow_heads_of[kind]
                        first, rest = (head + slow_body[:1], slow_body[1:]) if kind == "body" else (head[:1], head[1:])
                        s.sendall(first)
                        s.setblocking(False)
                        conns[s] = [kind, time.monotonic(), rest, b""]
                ready, _, _ = select.select(list(conns), [], [], 1.0)
                for s in ready:
                    try:
                        more = s.recv(65536)
                    except OSError:
                        more = b""
                    if more:
                        conns[s][3] += more
                    else:
                        end(s)
                for s, c in list(conns.items()):
                    if c[2]:
                        try:
                            s.send(c[2][:1])
                            c[2] = c[2][1:]
                        except BlockingIOError:
                            pass
                        except OSError:
                            end(s)
            now = time.monotonic()
            for s, c in list(conns.items()):
                slow_open_at_end[c[0]].append(now - c[1])
                s.close()

        def bomber():
            """A decode bomb every --bomb-every s, from the end of the memory baseline on."""
            if not bomb:
                return
            next_at = t_start + warmup + window
            with httpx.Client(base_url=url, headers=auth, timeout=180) as c:
                while not stop.wait(max(0.0, next_at - time.monotonic())):
                    if time.monotonic() >= deadline - 5:
                        return
                    next_at += args.bomb_every
                    t0 = time.perf_counter()
                    try:
                        r = c.post("/v1/predict", files={"file": ("bomb.flac", bomb, "audio/flac")})
                        outcome, detail = r.status_code, r.text[:200]
                    except httpx.HTTPError as e:
                        outcome, detail = f"connection error {type(e).__name__}", repr(e)[:200]
                    with lock:
                        bomb_seen[outcome] += 1
                        bomb_times.append(time.perf_counter() - t0)
                        bomb_at.append(round(time.monotonic() - t_start - bomb_times[-1], 1))
                        if len(bomb_examples) < 5:
                            bomb_examples.append(f"{outcome}: {detail}")

        sampler_thread = threading.Thread(target=sampler, daemon=True)
        sampler_thread.start()
        extra = [threading.Thread(target=slow_clients, daemon=True), threading.Thread(target=bomber, daemon=True)]
        for t in extra:
            t.start()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - t_start
        stop.set()
        for t in extra:
            t.join(200)
        sampler_thread.join()
        time.sleep(2)
        idle_rss = rss_kib(proc.pid)
        alive = proc.poll() is None
        health = None
        try:
            health = httpx.get(url + "/v1/health", timeout=10).json()
        except (httpx.HTTPError, ValueError):
            pass
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()

    # ---- figures
    leftovers = sorted(p.name for p in upload_tmp.glob("instrec-upload-*"))
    log_text = log_path.read_text(errors="replace")
    log_errors = [l for l in log_text.splitlines() if "ERROR" in l or "Traceback" in l or "Exception" in l]
    base = [kib for t, kib in samples if warmup <= t < warmup + window]
    end = [kib for t, kib in samples if t >= wall - window]
    rss_base = statistics.median(base) if base else None
    rss_end = statistics.median(end) if end else None
    growth = 100.0 * (rss_end - rss_base) / rss_base if rss_base and rss_end else None
    bad_total = sum(sum(c.values()) for c in bad_seen.values())
    bad_5xx = sum(n for c in bad_seen.values() for o, n in c.items() if isinstance(o, int) and o >= 500)
    bad_unexpected = sum(n for kind, c in bad_seen.items() for o, n in c.items() if o not in bad[kind][1])
    closed = sum(c[CLOSED] for c in bad_seen.values())
    slow_ended = {k: sum(c.values()) for k, c in slow_seen.items()}
    slow_bad = sum(n for c in slow_seen.values() for o, n in c.items() if o not in (408, CLOSED))
    slow_limit = 3 * header_timeout
    slow_longest = max([x for v in slow_life.values() for x in v] + [x for v in slow_open_at_end.values() for x in v]
                       + [0.0])
    bomb_5xx = sum(n for o, n in bomb_seen.items() if isinstance(o, int) and o >= 500 and o != 503)
    bomb_other = sum(n for o, n in bomb_seen.items() if not isinstance(o, int))
    bomb_rss = [kib for t, kib in samples if t >= warmup + window]
    good_ok = len(good_latency)
    good_dropped = sum(good_fail.values())
    lat = np.array(good_latency or [0.0]) * 1000
    criteria = {
        "0 5xx for bad input": bad_5xx == 0,
        "every bad input answered as expected": bad_unexpected == 0,
        "0 dropped good requests": good_dropped == 0,
        "slow clients cut off (408 or closed) within 3 header timeouts, never a 5xx":
            slow_bad == 0 and slow_longest <= slow_limit and (not (args.slow_bodies or args.slow_heads)
                                                               or sum(slow_ended.values()) > 0),
        "decode bombs: no 5xx but 503, no connection error": bomb_5xx == 0 and bomb_other == 0,
        "resident memory growth under 10%": growth is not None and growth < 10.0,
        "server up at the end, no error logged, no temp file left": alive and bool(health) and not log_errors
                                                                      and not leftovers,
    }
    result = {
        "machine": mach,
        "date": started_at.date().isoformat(),
        "started_utc": started_at.isoformat(timespec="seconds"),
        "command": "python -m benchmarks.soak_service " + " ".join(sys.argv[1:]),
        "server": {"command": " ".join(["instrec"] + cmd[3:]) + "  (INSTREC_API_KEY set)",
                   "limits": info["limits"], "model": f"{info['recipe']} ({info['engine']})"},
        "clients": args.clients,
        "duration_s": round(wall, 1),
        "requests": good_ok + good_dropped + bad_total,
        "requests_per_s": round((good_ok + good_dropped + bad_total) / wall, 1),
        "good": {"requests": good_ok + good_dropped, "ok": good_ok, "dropped": good_dropped,
                 "dropped_by_reason": dict(good_fail), "examples": good_fail_examples,
                 "clips": f"{len(clips)} FluidSynth renders, 3 s, 22050 Hz 16-bit WAV (seed {args.seed})",
                 "latency_ms": {"p50": round(float(np.percentile(lat, 50)), 1),
                                "p90": round(float(np.percentile(lat, 90)), 1),
                                "p99": round(float(np.percentile(lat, 99)), 1), "max": round(float(lat.max()), 1)}},
        "bad": {"tried": bad_total, "kinds": len(bad), "answered_5xx": bad_5xx, "unexpected": bad_unexpected,
                "connection_closed_by_server": closed, "examples": bad_examples,
                "by_kind": {k: {str(o): n for o, n in sorted(c.items(), key=lambda x: str(x[0]))}
                            for k, c in bad_seen.items()}},
        "slow_clients": {
            "trickling_bodies": args.slow_bodies, "trickling_heads": args.slow_heads, "rate": "1 byte/s",
            "header_timeout_s": header_timeout, "limit_s": slow_limit,
            "ended_by_server": slow_ended,
            "outcomes": {k: {str(o): n for o, n in c.items()} for k, c in slow_seen.items()},
            "lifetime_s": {k: {"median": round(statistics.median(v), 1) if v else None,
                               "max": round(max(v), 1) if v else None} for k, v in slow_life.items()},
            "open_at_end_longest_s": {k: round(max(v), 1) if v else None for k, v in slow_open_at_end.items()},
        },
        "decode_bomb": {**bomb_info, "every_s": args.bomb_every, "sent": sum(bomb_seen.values()),
                        "outcomes": {str(o): n for o, n in bomb_seen.items()},
                        "seconds_each": [round(x, 1) for x in bomb_times], "sent_at_s": bomb_at,
                        "examples": bomb_examples,
                        "rss_max_mib_after_first": round(max(bomb_rss) / 1024, 1) if bomb_rss else None},
        "memory": {"rss_after_warmup_mib": round(rss_base / 1024, 1) if rss_base else None,
                   "rss_end_mib": round(rss_end / 1024, 1) if rss_end else None,
                   "growth_percent": round(growth, 2) if growth is not None else None,
                   "rss_max_mib": round(max(k for _, k in samples) / 1024, 1) if samples else None,
                   "rss_idle_after_mib": round(idle_rss / 1024, 1) if idle_rss else None,
                   "samples": len(samples), "warmup_s": warmup, "window_s": window,
                   "timeline_mib": [[round(t), round(kib / 1024, 1)] for t, kib in samples[::5]],
                   "how": "VmRSS of the server process every 2 s; medians of the samples in "
                          f"[{warmup:g} s, {warmup + window:g} s) and in the last {window:g} s under load"},
        "server_after": {"alive": alive, "health": (health or {}).get("status"),
                         "load": (health or {}).get("load"), "errors_logged": len(log_errors),
                         "error_examples": log_errors[:5], "upload_temp_files_left": len(leftovers)},
        "criteria": criteria,
        "passed": all(criteria.values()),
    }
    write_json(args.out, result)

    print(f"{result['requests']} requests in {result['duration_s']} s from {args.clients} clients "
          f"({result['requests_per_s']}/s)")
    print(f"  good: {result['good']['requests']}, ok {good_ok}, dropped {good_dropped} {dict(good_fail) or ''}; "
          f"latency p50 {result['good']['latency_ms']['p50']} ms, p99 {result['good']['latency_ms']['p99']} ms")
    print(f"  bad inputs tried: {bad_total} ({len(bad)} kinds): 5xx {bad_5xx}, unexpected answers {bad_unexpected}, "
          f"connections closed by the server {closed}")
    sc = result["slow_clients"]
    print(f"  slow clients: {sum(slow_ended.values())} cut off by the server {sc['outcomes']}, lifetime "
          f"{sc['lifetime_s']}, longest {slow_longest:.1f} s (limit {slow_limit:g} s)")
    db = result["decode_bomb"]
    if bomb:
        print(f"  decode bombs ({db['bytes'] / 1e6:.1f} MB, {db['samples_to_decode'] / 1e9:.2f} G samples): {db['sent']} sent, "
              f"answers {db['outcomes']}, {db['seconds_each']} s; RSS max after the first {db['rss_max_mib_after_first']} MiB")
    m = result["memory"]
    print(f"  memory: {m['rss_after_warmup_mib']} MiB after warm-up -> {m['rss_end_mib']} MiB at the end "
          f"({m['growth_percent']}%), max {m['rss_max_mib']} MiB")
    print(f"  server after: alive {alive}, errors logged {len(log_errors)}, temp files left {len(leftovers)}")
    for name, ok in criteria.items():
        print(f"  [{'ok' if ok else 'FAIL'}] {name}")
    print(f"written: {args.out}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
