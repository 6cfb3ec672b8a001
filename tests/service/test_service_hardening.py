"""The service under pressure (issue 6, item 5): a bounded line of requests (503 + Retry-After),
CORS closed by default, an optional API key, no server path from a request, JSON errors without
stack traces, and the upload limit on hostile multipart bodies. A real uvicorn server on loopback."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from conftest import SR, tone  # noqa: E402

from instrec.audio import AUDIO_EXTENSIONS  # noqa: E402
from instrec.errors import ParameterError  # noqa: E402
from instrec.service import Limits, create_app, running  # noqa: E402
from instrec.service import guard  # noqa: E402
from instrec.service.guard import ApiKeyGuard, check_api_key, check_hosts, check_origins  # noqa: E402
from instrec.service.upload import display_name  # noqa: E402

KEY = "s3cret-Key_0123456789"
BOUNDARY = "instrec-hardening"


# ---------------------------------------------------------------------------------------------
# Helpers


@pytest.fixture(scope="module")
def model():
    import instrec

    return instrec.load_model()


def wav_bytes(y: np.ndarray, sr: int = SR, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="WAV", subtype=subtype)
    return buf.getvalue()


GOOD = wav_bytes(tone("saw", 440.0, seconds=1.0))


def post(client, data: bytes = GOOD, name: str = "clip.wav", ctype: str = "audio/wav", headers=None, **fields):
    return client.post("/v1/predict", files={"file": (name, data, ctype)}, headers=headers,
                       data={k: str(v) for k, v in fields.items()})


def multipart(*parts: tuple[bytes, bytes]) -> bytes:
    """A multipart body from (raw part headers, content) pairs, byte for byte as given."""
    out = b""
    for head, content in parts:
        out += f"--{BOUNDARY}\r\n".encode() + head + b"\r\n\r\n" + content + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def file_part(filename: bytes, content: bytes = GOOD, ctype: bytes = b"audio/wav") -> tuple[bytes, bytes]:
    return (b'Content-Disposition: form-data; name="file"; filename="' + filename + b'"\r\nContent-Type: ' + ctype,
            content)


def field_part(name: str, value: bytes) -> tuple[bytes, bytes]:
    return (f'Content-Disposition: form-data; name="{name}"'.encode(), value)


MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def assert_error(r, status: int, *words: str) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert list(body) == ["error"] and body["error"] and "\n" not in body["error"]
    assert "Traceback" not in r.text and 'File "' not in r.text
    for w in words:
        assert w in body["error"], body["error"]
    return body["error"]


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def read_response(sock: socket.socket) -> tuple[int, dict, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            break
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    while len(body) < int(headers.get("content-length", 0)):
        more = sock.recv(65536)
        if not more:
            break
        body += more
    return int(lines[0].split()[1]), headers, body


def host(url: str) -> bytes:
    """The Host header's value for ``url`` (the service answers only to its own address)."""
    return str(url).removeprefix("http://").rstrip("/").encode()


def raw(url: str, request: bytes) -> tuple[int, dict, bytes]:
    with connect(url) as s:
        s.sendall(request)
        return read_response(s)


@pytest.fixture(scope="module")
def open_server(model, tmp_path_factory):
    """Default limits, no key, no CORS origins."""
    with running(create_app(model, tmp_dir=tmp_path_factory.mktemp("open"))) as url:
        with httpx.Client(base_url=url, timeout=60) as client:
            yield client


# ---------------------------------------------------------------------------------------------
# A bounded line: 503 with Retry-After instead of holding ever more requests


def test_limits_max_queue():
    assert Limits(max_concurrent=2).max_queue == 16 and Limits(max_concurrent=8).max_queue == 32
    assert Limits(max_queue=0).max_queue == 0 and Limits(max_queue=3).to_dict()["max_queue"] == 3
    for bad in (-1, 1.5, True, "4"):
        with pytest.raises(ParameterError, match="max_queue"):
            Limits(max_queue=bad)


class GatedModel:
    """Wraps a model: predictions wait for ``gate``; counts those started."""

    def __new__(cls, model):
        from instrec.inference import Model

        class Gated(Model):
            gate = threading.Event()
            started = 0

            def predict_file(self, path, **kwargs):
                type(self).started += 1
                assert type(self).gate.wait(30)
                return super().predict_file(path, **kwargs)

        return Gated(model.engine, source=model.source)


def wait_for(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def test_queue_overflow_gets_503_with_retry_after(model, tmp_path):
    gated = GatedModel(model)
    limits = Limits(max_concurrent=1, max_queue=1, request_timeout_s=30)
    app = create_app(gated, limits=limits, tmp_dir=tmp_path)
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        results: list[int] = []
        threads = [threading.Thread(target=lambda: results.append(post(httpx.Client(base_url=url, timeout=30)).status_code))
                   for _ in range(2)]
        for t in threads:
            t.start()
        # one prediction at work, one waiting for the worker thread
        wait_for(lambda: c.get("/v1/health").json()["load"]["in_flight"] == 2 and type(gated).started == 1)
        t0 = time.monotonic()
        r = post(c)
        msg = assert_error(r, 503, "busy", "try again")
        assert time.monotonic() - t0 < 2
        assert int(r.headers["retry-after"]) >= 1
        assert str(int(r.headers["retry-after"])) in msg
        # refused before its body is read: a declared 10 MB that never comes is answered at once
        status, headers, body = raw(url, b"POST /v1/predict HTTP/1.1\r\nHost: " + host(url) + b"\r\nContent-Length: 10000000\r\n"
                                         b"Content-Type: multipart/form-data; boundary=b\r\n\r\n")
        assert status == 503 and "retry-after" in headers and json.loads(body)["error"].startswith("the service is busy")
        assert c.get("/v1/health").json()["load"]["refused"] == 2
        type(gated).gate.set()
        for t in threads:
            t.join(30)
        assert results == [200, 200]
        wait_for(lambda: c.get("/v1/health").json()["load"]["in_flight"] == 0)
        assert post(c).status_code == 200  # room again
        assert list(tmp_path.iterdir()) == []


def test_a_stalled_upload_holds_no_place(model, tmp_path):
    """max_queue=0, one worker: a stalled upload does not hold the only place (issue 25, item 5);
    a good request is answered meanwhile, and the stalled one gets 503 when its time (1 s) is up."""
    limits = Limits(max_concurrent=1, max_queue=0, request_timeout_s=1.0)
    with running(create_app(model, limits=limits, tmp_dir=tmp_path)) as url, httpx.Client(base_url=url) as c:
        with connect(url) as stalled:
            stalled.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: " + host(url) + b"\r\nContent-Length: 5000\r\n"
                            b"Content-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\n")
            time.sleep(0.2)
            assert c.get("/v1/health").json()["load"]["in_flight"] == 0
            assert post(c).status_code == 200
            status, _, body = read_response(stalled)
            assert status == 503 and "1 s limit" in json.loads(body)["error"]
        assert post(c).status_code == 200


# ---------------------------------------------------------------------------------------------
# Slow clients (issue 25, item 5): header timeout, minimum upload rate, connection cap, keep-alive


def slow_upload_head(url: str, length: int = 100_000) -> bytes:
    return (b"POST /v1/predict HTTP/1.1\r\nHost: " + host(url) + b"\r\nContent-Length: " + str(length).encode()
            + b"\r\nContent-Type: multipart/form-data; boundary=" + BOUNDARY.encode() + b"\r\n\r\n")


class Trickler:
    """Sockets that each get one more byte every ``every`` s from a background thread, until
    the block ends (at most ``most`` s)."""

    def __init__(self, socks: list[tuple[socket.socket, bytes]], every: float = 1.0, most: float = 60.0):
        self.socks = [[s, data] for s, data in socks]
        self.every, self.most = every, most
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.cut = 0  # sockets the server closed

    def run(self):
        deadline = time.monotonic() + self.most
        while not self.stop.wait(self.every) and time.monotonic() < deadline:
            for item in self.socks:
                s, data = item
                if s is None or not data:
                    continue
                try:
                    s.send(data[:1])
                    item[1] = data[1:]
                except OSError:
                    item[0] = None
                    self.cut += 1

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)


def open_sockets(url: str, n: int) -> list[socket.socket]:
    return [connect(url) for _ in range(n)]


def test_slow_clients_do_not_starve_good_ones(model, tmp_path):
    """32 clients trickling their bodies at 1 byte/s and 16 never finishing their headers, against
    a line of 3 (one worker, two waiting): good requests still get 200, each within 5 s. Before
    issue 25 the uploads in progress filled the line and every other request got 503."""
    limits = Limits(max_concurrent=1, max_queue=2, request_timeout_s=60)
    body = multipart(file_part(b"slow.wav", GOOD * 2))
    with running(create_app(model, limits=limits, tmp_dir=tmp_path)) as url, httpx.Client(base_url=url, timeout=10) as c:
        bodies = open_sockets(url, 32)
        heads = open_sockets(url, 16)
        try:
            for s in bodies:
                s.sendall(slow_upload_head(url, len(body)) + body[:10])
            head = slow_upload_head(url, len(body))
            for s in heads:
                s.sendall(head[:5])
            with Trickler([(s, body[10:]) for s in bodies] + [(s, head[5:]) for s in heads], every=1.0):
                time.sleep(1.5)  # every slow client has started
                for _ in range(3):
                    t0 = time.monotonic()
                    r = post(c)
                    assert r.status_code == 200, r.text
                    assert time.monotonic() - t0 < 5
                    time.sleep(0.5)
                load = c.get("/v1/health").json()["load"]
                assert load["in_flight"] == 0 and load["refused"] == 0
        finally:
            for s in bodies + heads:
                s.close()
    assert list(tmp_path.iterdir()) == []


def poll_closed(s: socket.socket, timeout: float) -> tuple[float | None, bytes]:
    """Wait up to ``timeout`` s for the server to close ``s``: (seconds it took, or None; bytes read)."""
    t0 = time.monotonic()
    s.settimeout(min(0.05, timeout))
    got = b""
    while time.monotonic() - t0 < timeout:
        try:
            more = s.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - t0, got
        if not more:
            return time.monotonic() - t0, got
        got += more
    return None, got


def test_slow_clients_are_cut_off(model, tmp_path):
    """header_timeout 1 s, at least 1 kB/s, keep-alive 0.5 s: a trickling body gets 408, a head
    that never ends gets 408, an idle connection and an idle kept-alive one are closed; a body
    that takes longer than 1 s at a good rate is answered 200."""
    limits = Limits(header_timeout_s=1.0, min_upload_rate=1000, keep_alive_s=0.5)
    body = multipart(file_part(b"slow.wav", GOOD))
    with running(create_app(model, limits=limits, tmp_dir=tmp_path)) as url:
        slow_body, slow_head, idle, kept, answered = open_sockets(url, 5)
        slow_body.sendall(slow_upload_head(url, len(body)) + body[:10])
        head = slow_upload_head(url, len(body))
        slow_head.sendall(head[:5])
        kept.sendall(b"GET /v1/health HTTP/1.1\r\nHost: " + host(url) + b"\r\n\r\n")
        status, _, _ = read_response(kept)
        assert status == 200
        # answered (404) before its body is read: the body the client goes on sending is discarded for 1 s at most
        answered.sendall(b"POST /v1/nope HTTP/1.1\r\nHost: " + host(url) + b"\r\nContent-Length: 100000\r\n\r\nx")
        status, _, _ = read_response(answered)
        assert status == 404
        t0 = time.monotonic()
        with Trickler([(slow_body, body[10:]), (slow_head, head[5:]), (answered, bytes(100_000))], every=0.1, most=10):
            for s, most in ((kept, 2.5), (idle, 2.5), (answered, 2.5), (slow_head, 3), (slow_body, 4)):
                took, got = poll_closed(s, most - (time.monotonic() - t0))
                assert took is not None, (s, got[:200])
                if s is slow_body:
                    assert got.startswith(b"HTTP/1.1 408"), got[:200]
                    assert b'"the upload arrived too slowly' in got
                elif s is slow_head:
                    assert got.startswith(b"HTTP/1.1 408") and b"headers did not arrive within 1 s" in got, got
                else:
                    assert got == b""
        took = time.monotonic() - t0
        assert 0.9 < took < 4.5
        for s in (slow_body, slow_head, idle, kept, answered):
            s.close()
        # 44 kB at about 40 kB/s: longer than the 1 s allowance, fast enough
        with connect(url) as s:
            s.sendall(slow_upload_head(url, len(body)))
            t0 = time.monotonic()
            for i in range(0, len(body), 4000):
                s.sendall(body[i:i + 4000])
                time.sleep(0.1)
            status, _, answer = read_response(s)
            assert status == 200, answer
            assert time.monotonic() - t0 > 1
    assert list(tmp_path.iterdir()) == []


def test_connection_cap(model, tmp_path):
    """At 8 connections, each new one closes the one idle longest; when all 8 have a request in
    progress, a new connection gets 503 and is closed."""
    limits = Limits(max_connections=8, header_timeout_s=30)
    with running(create_app(model, limits=limits, tmp_dir=tmp_path)) as url:
        idle = []
        for _ in range(20):
            idle.append(connect(url))
            time.sleep(0.02)
        time.sleep(0.3)
        closed = [poll_closed(s, 0.1)[0] is not None for s in idle]
        assert closed == [True] * 12 + [False] * 8, closed
        with httpx.Client(base_url=url, timeout=10) as c:
            assert post(c).status_code == 200  # closes another idle one
        for s in idle:
            s.close()
        # every connection busy uploading: the ninth is refused
        busy = open_sockets(url, 8)
        for s in busy:
            s.sendall(slow_upload_head(url) + b"--")
        time.sleep(0.3)
        with connect(url) as s:
            status, headers, body = read_response(s)
            assert status == 503 and headers["connection"] == "close" and "8 connections" in json.loads(body)["error"]
        for s in busy:
            s.close()
        with httpx.Client(base_url=url, timeout=10) as c:
            wait_for(lambda: post(c).status_code == 200)
    # the defaults: of 300 idle connections, at most 256 are kept
    with running(create_app(model, tmp_dir=tmp_path)) as url:
        idle = open_sockets(url, 300)
        time.sleep(0.5)
        closed = sum(poll_closed(s, 0.005)[0] is not None for s in idle)
        assert closed == 300 - Limits().max_connections, closed
        with httpx.Client(base_url=url, timeout=10) as c:
            assert post(c).status_code == 200
        for s in idle:
            s.close()


def test_limits_connection_fields():
    lim = Limits()
    assert (lim.header_timeout_s, lim.min_upload_rate, lim.max_connections, lim.keep_alive_s) == (10.0, 10_000.0, 256, 5.0)
    assert Limits(min_upload_rate=0).min_upload_rate == 0
    for bad in ({"header_timeout_s": 0}, {"keep_alive_s": float("inf")}, {"min_upload_rate": -1},
                {"min_upload_rate": float("nan")}, {"max_connections": 0}, {"max_connections": 2.5}):
        with pytest.raises(ParameterError, match=next(iter(bad))):
            Limits(**bad)


# ---------------------------------------------------------------------------------------------
# CORS: closed unless origins are named


PREFLIGHT = {"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "x-api-key"}


def test_cors_closed_by_default(open_server):
    for method, path in (("GET", "/v1/health"), ("GET", "/v1/model"), ("GET", "/"), ("GET", "/static/app.js")):
        r = open_server.request(method, path, headers={"Origin": "https://elsewhere.example"})
        assert r.status_code == 200
        assert not any(h.startswith("access-control-") for h in r.headers), r.headers
    r = post(open_server, headers={"Origin": "https://elsewhere.example"})  # a form post from another site
    assert_error(r, 403, "cross-origin POST from https://elsewhere.example refused")
    assert "access-control-allow-origin" not in r.headers
    r = open_server.options("/v1/predict", headers=PREFLIGHT)
    assert_error(r, 405)
    assert not any(h.startswith("access-control-") for h in r.headers)


def test_cors_opt_in_allows_exactly_the_named_origins(model, tmp_path):
    app = create_app(model, tmp_dir=tmp_path, cors_origins=["https://app.example", "http://localhost:5173/"])
    with running(app) as url, httpx.Client(base_url=url) as c:
        for origin in ("https://app.example", "http://localhost:5173"):
            r = c.options("/v1/predict", headers={**PREFLIGHT, "Origin": origin})
            assert r.status_code == 200 and r.headers["access-control-allow-origin"] == origin
            assert "POST" in r.headers["access-control-allow-methods"]
            assert "x-api-key" in r.headers["access-control-allow-headers"].lower()
            r = c.get("/v1/health", headers={"Origin": origin})
            assert r.headers["access-control-allow-origin"] == origin and "Origin" in r.headers["vary"]
            r = post(c, headers={"Origin": origin})
            assert r.status_code == 200 and r.headers["access-control-allow-origin"] == origin
        for origin in ("https://elsewhere.example", "https://app.example.evil.example", "http://app.example",
                       "null"):
            r = c.options("/v1/predict", headers={**PREFLIGHT, "Origin": origin})
            assert_error(r, 400, "origin")
            assert "access-control-allow-origin" not in r.headers
            r = c.get("/v1/health", headers={"Origin": origin})
            assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
        # refusals carry the header too, so the page of an allowed origin can read the error
        r = post(c, b"", name="empty.wav", headers={"Origin": "https://app.example"})
        assert r.status_code == 422 and r.headers["access-control-allow-origin"] == "https://app.example"


# ---------------------------------------------------------------------------------------------
# Host and Origin (issue 25, item 6): no DNS rebinding, no cross-site form posts


def get_with_host(url: str, host_value: bytes | None, path: str = "/v1/health", version: bytes = b"1.1"):
    head = b"GET " + path.encode() + b" HTTP/" + version + b"\r\n"
    if host_value is not None:
        head += b"Host: " + host_value + b"\r\n"
    return raw(url, head + b"Connection: close\r\n\r\n")


def test_host_header_must_name_the_service(open_server):
    url = str(open_server.base_url).rstrip("/")
    port = url.rsplit(":", 1)[1].encode()
    for ok in (b"127.0.0.1:" + port, b"localhost:" + port, b"LocalHost:" + port, b"[::1]:" + port, b"localhost.:" + port):
        status, _, body = get_with_host(url, ok)
        assert status == 200, (ok, body)
    for bad in (b"evil.example:" + port, b"evil.example", b"127.0.0.1", b"localhost:1" + port, b"127.0.0.2:" + port,
                b"127.0.0.1.evil.example:" + port, b"localhost:" + port + b"@evil.example", b"*.example:" + port,
                b"[::2]:" + port, b"\xff\xfe:" + port):
        status, headers, body = get_with_host(url, bad)
        assert status == 421, (bad, status, body)
        assert headers["content-type"] == "application/json"
        msg = json.loads(body)["error"]
        assert "--allowed-host" in msg and "\n" not in msg
    for path in ("/", "/v1/model", "/docs", "/static/app.js"):
        assert get_with_host(url, b"rebound.example:" + port, path)[0] == 421
    status, _, body = get_with_host(url, None, version=b"1.0")
    assert status == 400 and "Host" in json.loads(body)["error"]
    # what browsers, curl and httpx send
    assert open_server.get("/v1/health").status_code == 200
    with httpx.Client(base_url=f"http://localhost:{port.decode()}") as c:
        assert c.get("/v1/health").status_code == 200
    r = open_server.get("/v1/health", headers={"Host": "attacker.example"})
    assert_error(r, 421, "attacker.example")


def test_allowed_hosts(model, tmp_path):
    app = create_app(model, tmp_dir=tmp_path, allowed_hosts=["Instrec.Example", "*.lan", "box.example:8443"])
    with running(app) as url:
        port = url.rsplit(":", 1)[1].encode()
        for ok in (b"instrec.example", b"instrec.example:" + port, b"studio.lan:" + port, b"a.b.lan", b"box.example:8443",
                   b"127.0.0.1:" + port):
            assert get_with_host(url, ok)[0] == 200, ok
        for bad in (b"lan", b"evil.example", b"box.example:" + port, b"box.example", b"instrec.example.evil:" + port):
            assert get_with_host(url, bad)[0] == 421, bad
    with running(create_app(model, tmp_dir=tmp_path, allowed_hosts=["*"])) as url:
        assert get_with_host(url, b"anything.example")[0] == 200


def test_check_hosts():
    assert check_hosts(None) == ()
    assert check_hosts(["A.example", "a.example", "*.lan", "10.0.0.2:8000", "[::1]:80", "*", "my_box"]) == (
        "a.example", "*.lan", "10.0.0.2:8000", "[::1]:80", "*", "my_box")
    for bad in ("http://a.example", "a.example/x", "a b", "a.example:0", "a.example:99999", "[::1", "[nope]", "",
                "a.*.example", "user@a.example"):
        with pytest.raises(ParameterError, match="allowed host"):
            check_hosts([bad])


def test_cross_origin_requests_that_change_state_are_refused(open_server):
    url = str(open_server.base_url).rstrip("/")
    port = url.rsplit(":", 1)[1]
    for origin in ("https://elsewhere.example", "null", f"http://127.0.0.1.evil.example:{port}", f"http://127.0.0.1:{int(port) + 1}",
                   f"http://localhost:{port}", "file://", f"ftp://127.0.0.1:{port}", "garbage"):
        r = post(open_server, headers={"Origin": origin})
        assert_error(r, 403, "cross-origin POST")
        assert "access-control-allow-origin" not in r.headers
    for method in ("PUT", "DELETE", "PATCH"):
        assert_error(open_server.request(method, "/v1/predict", headers={"Origin": "https://elsewhere.example"}), 403)
    # a browser's cross-site request without Origin (old browsers): refused too
    assert_error(post(open_server, headers={"Sec-Fetch-Site": "cross-site"}), 403)
    # the service's own page (same origin), curl and scripts (no Origin), safe methods: answered
    assert post(open_server, headers={"Origin": url, "Sec-Fetch-Site": "same-origin"}).status_code == 200
    assert post(open_server, headers={"Origin": url.upper() + "/"}).status_code == 200
    assert post(open_server).status_code == 200
    assert open_server.get("/v1/model", headers={"Origin": "https://elsewhere.example"}).status_code == 200
    with httpx.Client(base_url=f"http://localhost:{port}", timeout=30) as c:
        assert post(c, headers={"Origin": f"http://localhost:{port}"}).status_code == 200
        assert_error(post(c, headers={"Origin": f"http://127.0.0.1:{port}"}), 403)  # another origin


def test_check_origins():
    assert check_origins(None) == ()
    assert check_origins(["HTTPS://A.example:8443/", "https://a.example:8443", "*"]) == ("https://a.example:8443", "*")
    for bad in ("a.example", "ftp://a.example", "https://a.example/path", "https://", "https://a.example?x=1",
                "https://user@a.example"):
        with pytest.raises(ParameterError, match="CORS origin"):
            check_origins([bad])


# ---------------------------------------------------------------------------------------------
# API key


@pytest.fixture(scope="module")
def keyed(model, tmp_path_factory):
    with running(create_app(model, api_key=KEY, tmp_dir=tmp_path_factory.mktemp("keyed"))) as url:
        with httpx.Client(base_url=url, timeout=60) as client:
            yield client


def test_api_key_open_paths(keyed):
    r = keyed.get("/v1/health")
    assert r.status_code == 200 and r.json()["api_key_required"] is True
    for path in ("/", "/static/app.js", "/openapi.json"):
        assert keyed.get(path).status_code == 200, path
    assert keyed.get("/docs").status_code == 404  # not served at all (no Swagger UI), not 401
    assert KEY not in keyed.get("/openapi.json").text and KEY not in keyed.get("/").text


def test_api_key_required_under_v1(keyed):
    for path in ("/v1/model", "/v1/nope", "/v1/model/"):
        r = keyed.get(path)
        assert_error(r, 401, "X-API-Key")
        assert r.headers["www-authenticate"].startswith("Bearer")
    assert_error(post(keyed), 401, "API key")  # its body is not read: the connection stays usable
    for wrong in ({"X-API-Key": KEY[:-1]}, {"X-API-Key": KEY + "x"}, {"X-API-Key": "x"},
                  {"Authorization": f"Bearer {KEY}x"}, {"Authorization": f"Basic {KEY}"}, {"X-API-Key": KEY.lower()}):
        msg = assert_error(keyed.get("/v1/model", headers=wrong), 401)
        assert KEY[:6] not in msg.lower() and KEY not in msg
        assert_error(post(keyed, headers=wrong), 401)


def test_api_key_accepted(keyed):
    for right in ({"X-API-Key": KEY}, {"Authorization": f"Bearer {KEY}"}, {"authorization": f"bearer  {KEY}"}):
        r = keyed.get("/v1/model", headers=right)
        assert r.status_code == 200 and KEY not in r.text
        assert post(keyed, headers=right).status_code == 200
    assert_error(keyed.get("/v1/nope", headers={"X-API-Key": KEY}), 404)


def test_api_key_refuses_before_reading_the_body(keyed):
    status, headers, body = raw(str(keyed.base_url), b"POST /v1/predict HTTP/1.1\r\nHost: " + host(keyed.base_url) + b"\r\nContent-Length: 10000000\r\n"
                                                     b"Content-Type: multipart/form-data; boundary=b\r\n\r\n")
    assert status == 401 and "API key" in json.loads(body)["error"]


def test_api_key_compared_in_constant_time(monkeypatch):
    calls = []
    real = guard.hmac.compare_digest

    def spy(a, b):
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(guard.hmac, "compare_digest", spy)
    g = ApiKeyGuard(None, KEY)
    assert g.allows([(b"x-api-key", KEY.encode())]) is True
    assert g.allows([(b"x-api-key", b"short")]) is False
    assert g.allows([(b"authorization", b"Bearer " + KEY.encode())]) is True
    assert g.allows([(b"authorization", b"Basic abc")]) is None and g.allows([]) is None
    assert calls == [(32, 32)] * 3  # digests: the same length whatever was sent


def test_check_api_key():
    assert check_api_key(None) is None and check_api_key(KEY) == KEY
    for bad in ("", "   ", "two words", "kéy", "tab\tkey"):
        with pytest.raises(ParameterError, match="API key"):
            check_api_key(bad)


def test_cli_serve_options(tmp_path):
    """`instrec serve` with $INSTREC_API_KEY, --cors-origin (twice) and --max-queue, as a user runs it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "INSTREC_API_KEY": KEY}
    cmd = [sys.executable, "-m", "instrec", "serve", "--port", str(port), "--log-level", "warning", "--max-concurrent", "1",
           "--max-queue", "3", "--cors-origin", "https://a.example", "--cors-origin", "https://b.example",
           "--header-timeout", "7", "--min-upload-rate", "2.5", "--max-connections", "64", "--keep-alive", "3",
           "--allowed-host", "instrec.example", "--allowed-host", "*.lan"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            try:
                health = httpx.get(url + "/v1/health", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert health.json()["api_key_required"] is True
        assert_error(httpx.get(url + "/v1/model"), 401)
        info = httpx.get(url + "/v1/model", headers={"X-API-Key": KEY, "Origin": "https://b.example"})
        assert info.json()["limits"]["max_queue"] == 3 and info.json()["limits"]["max_concurrent"] == 1
        assert {k: info.json()["limits"][k] for k in ("header_timeout_s", "min_upload_rate", "max_connections", "keep_alive_s")} == {
            "header_timeout_s": 7, "min_upload_rate": 2500, "max_connections": 64, "keep_alive_s": 3}
        for name, status in (("instrec.example", 200), ("box.lan", 200), (f"localhost:{port}", 200), ("evil.example", 421)):
            assert httpx.get(url + "/v1/health", headers={"Host": name}).status_code == status, name
        assert info.headers["access-control-allow-origin"] == "https://b.example"
        assert "access-control-allow-origin" not in httpx.get(url + "/v1/health", headers={"Origin": "https://c.example"}).headers
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    r = subprocess.run([sys.executable, "-m", "instrec", "serve", "--port", str(port), "--api-key", "two words"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "API key" in r.stderr and "two words" not in r.stderr


def test_cli_serve_on_port_0_names_the_port_it_listens_on():
    """Port 0 lets the system choose: the first line said ':0/', a URL nobody could open."""
    import re

    proc = subprocess.Popen([sys.executable, "-m", "instrec", "serve", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stderr.readline()
        found = re.search(r"on http://127\.0\.0\.1:(\d+)/ ", first)
        assert found and found.group(1) != "0", first
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None
            try:
                assert httpx.get(f"http://127.0.0.1:{found.group(1)}/v1/health", timeout=2).status_code == 200
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


# ---------------------------------------------------------------------------------------------
# No server path from a request


HOSTILE_NAMES = {
    b"../../etc/passwd.wav": "passwd.wav",
    b"/etc/passwd": "passwd",
    b"C:\\\\x.wav": "x.wav",
    b"..\\\\..\\\\evil.wav": "evil.wav",
    b"a\x00b\x00.wav": "ab.wav",
    b"..": "..",
    b"": "upload",
    b"/": "upload",
    b"%2e%2e%2fescape.wav": "%2e%2e%2fescape.wav",
    b"x" * 2000 + b".wav": "x" * 196 + ".wav",
    b"../../" + "flûte ✓.wav".encode(): "flûte ✓.wav",
    # bidirectional overrides and isolates, other format characters, C1 controls (issue 25, item 8)
    "invoice\u202egnp.exe.wav".encode(): "invoice\ufffdgnp.exe.wav",
    "a\u2066b\u2069\u200bc\ufeff.wav".encode(): "a\ufffdb\ufffd\ufffdc\ufffd.wav",
    "x\u0085y\u009b[31m.wav".encode(): "xy[31m.wav",
    "line\u2028break.wav".encode(): "line\ufffdbreak.wav",
    "👩\u200d🎤 ستار\u200c.wav".encode(): "👩\u200d🎤 ستار\u200c.wav",
}


def test_upload_names_are_only_shown(model, tmp_path, monkeypatch):
    import tempfile

    upload_dir = tmp_path / "a" / "b" / "uploads"
    calls = []
    real_mkstemp = tempfile.mkstemp

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", spy)
    with running(create_app(model, tmp_dir=upload_dir)) as url, httpx.Client(base_url=url, timeout=60) as c:
        for raw_name, shown in HOSTILE_NAMES.items():
            r = c.post("/v1/predict", content=multipart(file_part(raw_name)), headers=MULTIPART)
            assert r.status_code == 200, (raw_name[:40], r.text)
            assert r.json()["path"] == shown, raw_name[:40]
            assert shown == display_name(raw_name.decode("utf-8").replace("\\\\", "\\"))
        # the same names on audio that is refused: the message names the upload, never the temp file
        for raw_name, shown in list(HOSTILE_NAMES.items())[:5]:
            r = c.post("/v1/predict", content=multipart(file_part(raw_name, GOOD[:100])), headers=MULTIPART)
            msg = assert_error(r, 422, shown)
            assert str(upload_dir) not in msg and "instrec-upload-" not in msg and "/tmp" not in msg
        # a name over the 4 kB a part's headers may hold: refused by the multipart parser
        r = c.post("/v1/predict", content=multipart(file_part(b"../" * 2000 + b"x.wav")), headers=MULTIPART)
        assert_error(r, 400, "multipart")
        httpx_named = post(c, name="../../../../tmp/instrec-owned.wav")
        assert httpx_named.status_code == 200 and httpx_named.json()["path"] == "instrec-owned.wav"
    assert len(calls) == len(HOSTILE_NAMES) + 5 + 1  # one temp file per upload that is decoded
    for kw in calls:
        assert kw["dir"] == str(upload_dir) and kw["prefix"] == "instrec-upload-" and kw["suffix"] in AUDIO_EXTENSIONS
    # nothing was written anywhere but the upload folder, and it is empty again
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["a", "a/b", "a/b/uploads"]
    assert not Path("/tmp/instrec-owned.wav").exists()


@pytest.mark.parametrize("target", ["/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fapp.py",
                                    "/static/%2e%2e%2f%2e%2e%2fupload.py", "/static//etc/passwd", "/static/../../../../etc/passwd",
                                    "/../../etc/passwd"])
def test_static_files_stay_in_static(open_server, target):
    status, headers, body = raw(str(open_server.base_url), f"GET {target} HTTP/1.1\r\nHost: {host(open_server.base_url).decode()}\r\nConnection: close\r\n\r\n".encode())
    assert status in (400, 404), (target, status)
    assert b"root:" not in body and b"create_app" not in body and b"import" not in body


def test_display_name_neutralises_controls_and_bidi():
    assert display_name("evil\u202egnp.exe") == "evil\ufffdgnp.exe"
    for ch in ("\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069",
               "\u200e", "\u200f", "\u061c", "\u200b", "\u2060", "\ufeff", "\u2028", "\u2029", "\ud800"):
        assert display_name(f"a{ch}b.wav") == "a\ufffdb.wav", ascii(ch)
    for ch in [chr(c) for c in range(0x20)] + ["\x7f"] + [chr(c) for c in range(0x80, 0xa0)]:
        assert display_name(f"a{ch}b.wav") == "ab.wav", ascii(ch)
    assert display_name("\u202e") == "\ufffd" and display_name("\x00\x1b") == "upload"
    for name in ("flûte ✓.wav", "日本語.mp3", "a\u200db.wav", "résumé (1).flac", "a\u00a0b.wav"):
        assert display_name(name) == name


# ---------------------------------------------------------------------------------------------
# What /v1/model shows (issue 25, item 8): no path of the machine that trained the model


def test_model_info_shows_no_local_paths(model, tmp_path):
    from instrec.inference import Model

    secret = "/home/alice/secret-project"
    base = model.info

    class Described(Model):
        @property
        def info(self):
            d = dict(base)
            d["source"] = f"{secret}/models/my-model"
            d["training"] = {
                **base["training"],
                "command": f"instrec train {secret}/data --out {secret}/models/my-model --work /scratch/alice/work",
                "script": f"{secret}/scripts/train.py",
                "work": "/scratch/alice/work",
                "data": {**base["training"]["data"], "roots": [f"{secret}/data", "C:\\Users\\alice\\clips"]},
                "fine_tuned_from": {"model": f"{secret}/models/base", "classes": ["flute", "cello"],
                                    "weights_sha256": "ab" * 32, "trained": f"python x.py --out {secret}/base",
                                    "test_split": {"accuracy": 0.5, "n": 10}},
                "split": {**base["training"].get("split", {}), "note": f"test list in {secret}/split.json"},
            }
            d["metrics"] = {**base["metrics"], f"{secret}/holdout": {"accuracy": 0.9}}
            return d

    described = Described(model.engine, source=model.source)
    with running(create_app(described, tmp_dir=tmp_path)) as url, httpx.Client(base_url=url) as c:
        r = c.get("/v1/model")
        assert r.status_code == 200
        text = r.text
        for leak in ("/home", "alice", "secret-project", "/scratch", "C:\\\\", "Users", "--out", "--work", "instrec train"):
            assert leak not in text, leak
        d = r.json()
        assert d["classes"] == model.classes and d["recipe"] == base["recipe"] and d["window"] == base["window"]
        assert d["sample_rate"] == base["sample_rate"] and d["feature"] == base["feature"]
        assert d["source"] == "my-model" and d["training"]["script"] == "train.py"
        t = d["training"]
        assert "command" not in t and "work" not in t and "roots" not in t["data"]
        assert t["data"]["n"] == base["training"]["data"]["n"] and t["epochs_run"] == base["training"]["epochs_run"]
        assert t["fine_tuned_from"] == {"classes": ["flute", "cello"], "weights_sha256": "ab" * 32,
                                        "test_split": {"accuracy": 0.5, "n": 10}}
        assert t["summary"].startswith(f"{base['recipe']} trained on {base['training']['data']['n']} clips")
        assert "fine-tuned from a model of 2 classes" in t["summary"]
        assert t["split"]["note"] == "test list in <path>" and "<path>" in d["metrics"]
        assert d["metrics"]["philharmonia_600"] == base["metrics"]["philharmonia_600"]
        assert d["limits"]["max_queue"] == Limits().max_queue


def test_shipped_model_info_shows_no_local_paths(open_server):
    import instrec

    text = open_server.get("/v1/model").text
    root = str(Path(instrec.__file__).resolve().parents[2])
    assert root not in text and "/work/" not in text and '"command"' not in text and "--out" not in text
    summary = open_server.get("/v1/model").json()["training"]["summary"]
    assert "trained on" in summary and "epochs" in summary and " /" not in summary


# ---------------------------------------------------------------------------------------------
# Errors are JSON, without stack traces


def test_default_errors_are_json_without_traces(model, tmp_path):
    app = create_app(model, tmp_dir=tmp_path)

    def boom():
        raise RuntimeError(f"secret detail at {tmp_path}")

    app.add_api_route("/v1/boom", boom)
    with running(app, log_level="critical") as url, httpx.Client(base_url=url) as c:
        assert_error(c.get("/nope"), 404, "Not Found")
        assert_error(c.get("/v1/nope/../../etc/passwd"), 404)
        r = c.get("/v1/predict")
        assert_error(r, 405, "Method Not Allowed")
        assert r.headers["allow"] == "POST"
        assert_error(c.delete("/v1/health"), 405)
        assert_error(c.put("/v1/predict", content=b"x"), 405)
        r = c.get("/v1/boom")
        assert_error(r, 500, "RuntimeError")
        assert "secret" not in r.text and str(tmp_path) not in r.text


# ---------------------------------------------------------------------------------------------
# The upload limit on hostile multipart bodies


def test_many_parts_and_big_fields_refused(open_server):
    too_many = multipart(file_part(b"a.wav"), *[field_part(f"f{i}", b"1") for i in range(100)])
    assert_error(open_server.post("/v1/predict", content=too_many, headers=MULTIPART), 400, "Too many fields")
    files = multipart(*[file_part(f"{i}.wav".encode()) for i in range(3)])
    assert_error(open_server.post("/v1/predict", content=files, headers=MULTIPART), 400, "Too many files")
    # 5 MB of text in one field: under the 20 MB body limit, over the 64 kB a text field may hold
    big = multipart(field_part("window", b"1" * 5_000_000), file_part(b"a.wav"))
    assert_error(open_server.post("/v1/predict", content=big, headers=MULTIPART), 400, "exceeded maximum size")
    # a part's headers: at most 4 kB (python-multipart), whatever the body limit
    huge_header = multipart((b'Content-Disposition: form-data; name="file"; filename="' + b"a" * 1_000_000 + b'.wav"', GOOD))
    assert_error(open_server.post("/v1/predict", content=huge_header, headers=MULTIPART), 400, "multipart")
    many_headers = multipart((b"\r\n".join([b'Content-Disposition: form-data; name="file"; filename="a.wav"']
                                            + [f"X-{i}: y".encode() for i in range(50)]), GOOD))
    assert_error(open_server.post("/v1/predict", content=many_headers, headers=MULTIPART), 400, "multipart")
    garbage = np.random.default_rng(0).bytes(50_000)
    assert_error(open_server.post("/v1/predict", content=garbage, headers=MULTIPART), 400)
    assert_error(open_server.post("/v1/predict", content=b"x", headers={"Content-Type": "multipart/form-data"}), 400,
                 "boundary")


def test_upload_limit_holds_for_any_shape_of_body(model, tmp_path):
    """300 kB limit, bodies sent chunked (no length): many small parts, text fields
    each under the 64 kB a field may hold, a big file. All 413, the size counted while they stream in."""
    limits = Limits(max_upload_bytes=300_000)
    shapes = {
        "many parts": multipart(*[field_part(f"f{i}", b"1" * 30_000) for i in range(15)]),
        "fields just under 64 kB": multipart(*[field_part(f"f{i}", b"9" * 60_000) for i in range(8)]),
        "big file": multipart(file_part(b"big.wav", GOOD[:44] + bytes(2_000_000))),
    }
    with running(create_app(model, limits=limits, tmp_dir=tmp_path)) as url:
        for what, body in shapes.items():
            def chunks(body=body):
                for i in range(0, len(body), 16_384):
                    yield body[i:i + 16_384]

            with httpx.Client(base_url=url, timeout=30) as c:
                r = c.post("/v1/predict", content=chunks(), headers=MULTIPART)
                assert_error(r, 413, "300 kB")
                assert r.headers["connection"] == "close", what
        with httpx.Client(base_url=url) as c:
            assert post(c).status_code == 200
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# The web page with a key


def test_webpage_asks_for_the_key(model, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    chromium = Path(os.environ.get("INSTREC_CHROMIUM", "/usr/bin/chromium"))
    if not chromium.exists():
        pytest.skip(f"no Chromium at {chromium}")
    clip = tmp_path / "tone.wav"
    clip.write_bytes(GOOD)
    with running(create_app(model, api_key=KEY)) as url, sync_api.sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=str(chromium), headless=True,
                                        args=["--headless", "--no-sandbox", "--disable-gpu"])
        except Exception as e:
            pytest.skip(f"Chromium does not start: {str(e).splitlines()[0]}")
        try:
            page = browser.new_page()
            page.set_default_timeout(30_000)
            page.goto(url + "/")
            page.wait_for_selector("#key-form:not([hidden])")
            assert "API key" in page.text_content("#model-info")
            page.fill("#key-input", "wrong")
            page.click("#key-form button")
            page.wait_for_function("document.getElementById('error').textContent.includes('wrong')")
            page.fill("#key-input", KEY)
            page.click("#key-form button")
            page.wait_for_function("document.getElementById('model-info').textContent.startsWith('Model')")
            assert page.is_hidden("#key-form") and page.is_hidden("#error")
            assert page.evaluate("sessionStorage.getItem('instrec-api-key')") == KEY
            page.set_input_files("#file-input", str(clip))
            page.wait_for_selector("#result:not([hidden])")
            assert page.text_content("#result-label") in model.classes
        finally:
            browser.close()


def test_serving_beyond_this_machine_without_a_key_is_warned():
    """Review: --host 0.0.0.0 with no API key said nothing of who could then use the service."""
    from instrec.service.server import exposure_warning

    for host in ("0.0.0.0", "::", "192.168.1.5", "myhost.example"):
        assert "without an API key" in exposure_warning(host, False), host
    for host, key in (("127.0.0.1", False), ("::1", False), ("localhost", False), ("127.0.0.2", False), ("0.0.0.0", True)):
        assert exposure_warning(host, key) is None, host
