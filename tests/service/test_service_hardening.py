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
from instrec.service.guard import ApiKeyGuard, check_api_key, check_origins  # noqa: E402
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
        status, headers, body = raw(url, b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n"
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


def test_an_upload_in_progress_holds_its_place_until_its_time_is_up(model, tmp_path):
    """max_queue=0, one worker: a stalled upload holds the only place; others get 503 until the
    stalled one's time limit (1 s) frees it."""
    limits = Limits(max_concurrent=1, max_queue=0, request_timeout_s=1.0)
    with running(create_app(model, limits=limits, tmp_dir=tmp_path)) as url, httpx.Client(base_url=url) as c:
        with connect(url) as stalled:
            stalled.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n"
                            b"Content-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\n")
            wait_for(lambda: c.get("/v1/health").json()["load"]["in_flight"] == 1)
            assert_error(post(c), 503, "busy")
            status, _, body = read_response(stalled)
            assert status == 503 and "1 s limit" in json.loads(body)["error"]
        assert post(c).status_code == 200


# ---------------------------------------------------------------------------------------------
# CORS: closed unless origins are named


PREFLIGHT = {"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "x-api-key"}


def test_cors_closed_by_default(open_server):
    for method, path in (("GET", "/v1/health"), ("GET", "/v1/model"), ("GET", "/"), ("GET", "/static/app.js")):
        r = open_server.request(method, path, headers={"Origin": "https://elsewhere.example"})
        assert r.status_code == 200
        assert not any(h.startswith("access-control-") for h in r.headers), r.headers
    r = post(open_server, headers={"Origin": "https://elsewhere.example"})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
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
    for path in ("/", "/static/app.js", "/docs", "/openapi.json"):
        assert keyed.get(path).status_code == 200, path
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
    status, headers, body = raw(str(keyed.base_url), b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n"
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
           "--max-queue", "3", "--cors-origin", "https://a.example", "--cors-origin", "https://b.example"]
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
        assert info.headers["access-control-allow-origin"] == "https://b.example"
        assert "access-control-allow-origin" not in httpx.get(url + "/v1/health", headers={"Origin": "https://c.example"}).headers
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    r = subprocess.run([sys.executable, "-m", "instrec", "serve", "--port", str(port), "--api-key", "two words"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "API key" in r.stderr and "two words" not in r.stderr


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
    status, headers, body = raw(str(open_server.base_url), f"GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
    assert status in (400, 404), (target, status)
    assert b"root:" not in body and b"create_app" not in body and b"import" not in body


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
