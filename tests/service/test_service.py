"""The HTTP service (issue 4): a real uvicorn server on loopback, driven with httpx and raw sockets."""

from __future__ import annotations

import io
import json
import select
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from conftest import SR, real_data_or_skip, run_cli, write  # noqa: E402

from instrec.errors import ParameterError  # noqa: E402
from instrec.service import Limits, create_app, running  # noqa: E402
from instrec.service.upload import UnsupportedType, audio_suffix, display_name  # noqa: E402


# ---------------------------------------------------------------------------------------------
# Fixtures: one loaded model, two servers (default limits; small limits)


@pytest.fixture(scope="module")
def model():
    import instrec

    return instrec.load_model()


@pytest.fixture(scope="module")
def upload_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("uploads")


@pytest.fixture(scope="module")
def server(model, upload_dir):
    with running(create_app(model, tmp_dir=upload_dir)) as url:
        with httpx.Client(base_url=url, timeout=60) as client:
            yield client


SMALL = Limits(max_upload_bytes=300_000, max_duration_s=2.0, request_timeout_s=1.0, max_concurrent=2)


@pytest.fixture(scope="module")
def small_server(model, upload_dir):
    """Limits a test can pass cheaply: 300 kB, 2 s of audio, 1 s per request."""
    with running(create_app(model, limits=SMALL, tmp_dir=upload_dir)) as url:
        yield url


@pytest.fixture(scope="module")
def clips(rendered_data, model) -> dict[str, Path]:
    """One rendered clip per instrument that the shipped model gets right."""
    out = {}
    for p in sorted(rendered_data.glob("*.wav")):
        label = p.name.split("_")[0]
        if label not in out and model.predict_file(p).label == label:
            out[label] = p
    assert out, "the shipped model gets no rendered clip right"
    return out


@pytest.fixture(scope="module")
def long_clip(rendered_data, tmp_path_factory) -> Path:
    """About 9 s: three flute clips, then three cello clips."""
    parts = [sf.read(str(p), dtype="float32")[0] for label in ("flute", "cello")
             for p in sorted(rendered_data.glob(f"{label}_*.wav"))[:3]]
    return write(tmp_path_factory.mktemp("long") / "flute_then_cello.wav", np.concatenate(parts))


def post(client, data: bytes | Path, name: str = "clip.wav", ctype: str = "audio/wav", **fields):
    content = data.read_bytes() if isinstance(data, Path) else data
    return client.post("/v1/predict", files={"file": (name, content, ctype)},
                       data={k: str(v) for k, v in fields.items()})


def assert_error(r, status: int, *words: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert list(body) == ["error"] and body["error"] and "\n" not in body["error"]
    for w in words:
        assert w in body["error"], body["error"]
    return body["error"]


def wav_bytes(y: np.ndarray, sr: int = SR, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="WAV", subtype=subtype)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# Health, model, docs


def test_health(server):
    r = server.get("/v1/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["model"] == "cnn"
    assert "flute" in body["classes"]


def test_model_info(server, model):
    body = server.get("/v1/model").json()
    assert body["classes"] == model.classes
    assert body["recipe"] == model.info["recipe"]
    assert body["metrics"] == model.info["metrics"]
    assert body["limits"] == Limits().to_dict()
    assert body["limits"]["max_upload_bytes"] == 20_000_000 and body["limits"]["max_duration_s"] == 600
    assert "/" not in (body["source"] or "")  # no server paths
    assert body["families"] == model.families and body["families"]["bowed-strings"] == ["cello", "double-bass", "viola", "violin"]
    assert body["temperature"] == model.info["temperature"] != 1.0 and 0 < body["min_confidence"] == model.info["min_confidence"]
    from instrec.display import SHOWN_CLASSES

    assert body["display"] == {"shown_classes": SHOWN_CLASSES}  # the page's timeline draws as many as --plot


def test_docs_and_openapi(server):
    # no Swagger UI or ReDoc: FastAPI's would load its script from a CDN, blank offline
    for path in ("/docs", "/redoc"):
        assert_error(server.get(path), 404, "/openapi.json")
    spec = server.get("/openapi.json").json()
    post_op = spec["paths"]["/v1/predict"]["post"]
    schema = post_op["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert schema["required"] == ["file"] and {"window", "hop", "top_k", "spectrogram"} <= set(schema["properties"])
    assert {"200", "400", "413", "415", "422", "503"} <= set(post_op["responses"])
    assert {"/v1/health", "/v1/model"} <= set(spec["paths"])


def test_unknown_path_is_json(server):
    assert_error(server.get("/v1/nope"), 404)


def test_a_trailing_slash_is_named_not_redirected_in_silence(server, clips):
    """``curl -F file=@a.wav http://host/v1/predict/`` got a 307 with an empty body: curl printed
    nothing and exited 0."""
    with open(next(iter(clips.values())), "rb") as fh:
        r = server.post("/v1/predict/", files={"file": ("a.wav", fh, "audio/wav")})
    assert_error(r, 404, "/v1/predict/", "/v1/predict")


def test_wrong_method_says_which_to_use(server):
    # curl http://host/v1/predict (a GET) is what a new user tries first
    r = server.get("/v1/predict")
    assert_error(r, 405, "Method Not Allowed", "GET", "/v1/predict", "POST", "'file'")
    assert r.headers["allow"] == "POST"
    assert_error(server.post("/v1/health"), 405, "POST", "/v1/health", "GET")


def test_head_answers_like_get(server):
    # uptime checks and curl -I probe with HEAD
    for path in ("/", "/v1/health"):
        r = server.head(path)
        assert r.status_code == 200 and r.content == b"", (path, r.status_code)
        assert r.headers["content-type"] == server.get(path).headers["content-type"]


# ---------------------------------------------------------------------------------------------
# Predictions


def test_predict_matches_cli_json(server, clips):
    label, path = next(iter(clips.items()))
    r = post(server, path, name=path.name)
    assert r.status_code == 200, r.text
    got = r.json()
    cli = run_cli("predict", "--format", "json", path)
    assert cli.returncode == 0, cli.stderr
    want = json.loads(cli.stdout)[0]
    assert got["path"] == path.name and want["path"] == str(path)
    assert list(got) == list(want)  # same keys, same order
    del got["path"], want["path"]
    assert got == want
    assert got["label"] == label and len(got["top"]) == 3 and got["top"][0][0] == label


def test_predict_each_instrument(server, clips, model):
    for label, path in clips.items():
        body = post(server, path, name=path.name).json()
        assert body["label"] == label
        assert body["probabilities"] == pytest.approx(model.predict_file(path).probabilities, abs=1e-6)


def test_path_is_the_sanitised_upload_name(server, clips, upload_dir):
    path = next(iter(clips.values()))
    body = post(server, path, name="../../etc/some\x07 dir/My Flute.wav").json()
    assert body["path"] == "My Flute.wav"
    assert str(upload_dir) not in json.dumps(body)


def test_long_file_windows_and_segments(server, long_clip, model):
    body = post(server, long_clip, name=long_clip.name, window=3, hop=1.5).json()
    want = model.predict_file(long_clip, window=3, hop=1.5).to_dict()
    assert body["window"] == 3 and body["hop"] == 1.5
    assert len(body["windows"]) == len(want["windows"]) >= 5
    assert [s["label"] for s in body["segments"]] == [s["label"] for s in want["segments"]]
    assert body["segments"][0]["start"] == 0 and body["segments"][-1]["end"] == pytest.approx(body["duration"])
    assert {"start", "end", "label", "silent", "probabilities"} <= set(body["windows"][0])
    # Without window/hop a recording this long is windowed at the model's window anyway.
    default = post(server, long_clip, name=long_clip.name).json()
    assert default["window"] == model.window and "segments" in default


def test_top_k_and_spectrogram(server, clips, model):
    path = next(iter(clips.values()))
    plain = post(server, path).json()
    one = post(server, path, top_k=1).json()
    assert one["top"] == plain["top"][:1]
    every = post(server, path, top_k=50).json()
    assert len(every["top"]) == len(model.classes)
    spec = post(server, path, spectrogram="true").json()
    img = spec.pop("spectrogram")
    assert spec == plain  # the option only adds a key
    from PIL import Image
    import base64

    png = Image.open(io.BytesIO(base64.b64decode(img["png"])))
    assert png.format == "PNG" and png.size[1] == model.feature.n_mels and png.size[0] > 10
    assert img["duration"] == pytest.approx(plain["duration"])


def test_real_mp3(server, model):
    root = real_data_or_skip()
    mp3 = sorted((root / "flute").glob("*.mp3"))[0]
    body = post(server, mp3, name=mp3.name, ctype="audio/mpeg").json()
    assert body["path"] == mp3.name
    assert body["label"] == model.predict_file(mp3).label


def test_name_without_extension_uses_content(server, clips):
    path = next(iter(clips.values()))
    r = post(server, path, name="blob", ctype="application/octet-stream")
    assert r.status_code == 200 and r.json()["path"] == "blob"


def test_concurrent_requests(server, clips):
    """16 requests at once, different clips: each answer is the one its own clip gets alone
    (no request sees another's audio or result)."""
    items = list(clips.items())
    alone = {label: post(server, path, name=path.name).json() for label, path in items}
    answers, errors = [], []

    def worker(k):
        try:
            with httpx.Client(base_url=str(server.base_url), timeout=60) as c:
                for j in range(2):
                    label, path = items[(k + j) % len(items)]
                    r = post(c, path, name=path.name)
                    answers.append((label, r.status_code, r.json()))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(answers) == 16
    assert len({label for label, _, _ in answers}) == len(items) > 1
    for label, status, body in answers:
        assert status == 200 and body["label"] == label, (label, body)
        assert body["probabilities"] == pytest.approx(alone[label]["probabilities"], abs=1e-6)


# ---------------------------------------------------------------------------------------------
# Refusals: always 4xx with {"error": "..."}


def test_missing_file_field(server):
    r = server.post("/v1/predict", files={"audio": ("a.wav", b"RIFF", "audio/wav")})
    assert_error(r, 400, "'file'")
    r = server.post("/v1/predict", files={"other": ("a.wav", b"RIFF", "audio/wav")}, data={"file": "text"})
    assert_error(r, 400, "file upload")


def test_file_field_without_a_file_says_so(server):
    # what a browser form sends when no file was chosen: a part named file with an empty file name
    assert_error(server.post("/v1/predict", files={"file": ("", b"", "application/octet-stream")}), 400,
                 "no file was chosen")
    body = (b'--b\r\nContent-Disposition: form-data; name="file"; filename=""\r\n'
            b'Content-Type: application/octet-stream\r\n\r\n\r\n--b--\r\n')  # Chromium's, byte for byte
    r = server.post("/v1/predict", content=body, headers={"content-type": "multipart/form-data; boundary=b"})
    assert_error(r, 400, "no file was chosen")
    # curl -F file=clip.wav (without the @): the name as text
    assert_error(server.post("/v1/predict", files={"top_k": (None, "3")}, data={"file": "clip.wav"}), 400,
                 "file upload", "-F file=@clip.wav")


def test_not_multipart(server):
    assert_error(server.post("/v1/predict", json={"file": "a.wav"}), 415, "multipart/form-data")
    assert_error(server.post("/v1/predict"), 415, "multipart/form-data")


def test_wrong_type(server):
    assert_error(post(server, b"hello there", name="notes.txt", ctype="text/plain"), 415, "notes.txt", ".txt")
    assert_error(post(server, b"just some text, not audio", name="fake.wav"), 415, "fake.wav", "text")
    png = b"\x89PNG\r\n\x1a\n" + bytes(100)
    assert_error(post(server, png, name="picture.mp3"), 415, "PNG")
    assert_error(post(server, b"\x1aE\xdf\xa3" + bytes(50), name="rec.webm", ctype="audio/webm"), 415, ".webm")


def test_bad_audio(server, tmp_path):
    y = 0.3 * np.sin(2 * np.pi * 440 * np.arange(SR) / SR).astype(np.float32)
    good = wav_bytes(y)
    assert_error(post(server, good[: len(good) // 2], name="cut.wav"), 422, "cut.wav", "truncated")
    assert_error(post(server, b"", name="empty.wav"), 422, "empty.wav", "empty")
    assert_error(post(server, good[:44], name="header.wav"), 422, "header.wav")
    garbage = b"RIFF" + (1000).to_bytes(4, "little") + b"WAVE" + np.random.default_rng(0).bytes(1000)
    assert_error(post(server, garbage, name="garbage.wav"), 422, "garbage.wav")
    assert_error(post(server, wav_bytes(np.zeros(SR, np.float32)), name="quiet.wav"), 422, "quiet.wav", "silent")
    nan = y.copy()
    nan[100:200] = np.nan
    assert_error(post(server, wav_bytes(nan, subtype="FLOAT"), name="nan.wav"), 422, "nan.wav", "NaN")
    flac = io.BytesIO()
    sf.write(flac, y, SR, format="FLAC")
    assert_error(post(server, flac.getvalue()[:200], name="cut.flac"), 422, "cut.flac")


def test_classes_restricts_the_answer(server, clips, model):
    path = clips.get("cello") or next(iter(clips.values()))
    full = post(server, path).json()
    two = post(server, path, classes="viola, Cello").json()
    assert set(two["probabilities"]) == {"viola", "cello"} and [c for c, _ in two["top"]] == sorted(
        ["viola", "cello"], key=lambda c: -two["probabilities"][c])
    total = full["probabilities"]["viola"] + full["probabilities"]["cello"]
    assert two["probabilities"]["cello"] == pytest.approx(full["probabilities"]["cello"] / total, rel=1e-4)
    assert_error(post(server, path, classes="viola,sitar"), 422, "does not know sitar", "its classes")
    assert_error(post(server, path, classes="viola"), 422, "at least two")


def test_family_and_doubt(server, clips, model):
    label, path = next(iter(clips.items()))
    body = post(server, path).json()
    fams = {m: f for f, members in model.families.items() for m in members}
    assert body["family"] == fams[label]
    assert body["family_probabilities"][body["family"]] == pytest.approx(
        sum(p for c, p in body["probabilities"].items() if fams.get(c) == body["family"]), abs=1e-6)
    p = body["probabilities"][label]
    if p < 1.0:  # a threshold above the answer's probability: unknown, probabilities still given
        doubt = (p + 1) / 2
        for r in (post(server, path, min_confidence=doubt),
                  server.post(f"/v1/predict?min_confidence={doubt}", files={"file": ("a.wav", path.read_bytes(), "audio/wav")})):
            assert r.status_code == 200 and r.json()["label"] == r.json()["family"] == "unknown"
            assert r.json()["probabilities"] == pytest.approx(body["probabilities"])
    assert post(server, path, min_confidence=0).json()["label"] == label
    fam = post(server, path, level="family").json()
    assert fam["label"] == fam["family"] == body["family"] and fam["level"] == "family"
    assert set(fam["probabilities"]) == set(body["family_probabilities"])
    assert_error(post(server, path, min_confidence=2), 422, "min_confidence")
    assert_error(post(server, path, min_confidence="nan"), 422, "min_confidence")
    assert_error(post(server, path, level="genus"), 422, "level")


def test_bad_parameters(server, clips):
    path = next(iter(clips.values()))
    assert_error(post(server, path, window="abc"), 422, "window", "number")
    assert_error(post(server, path, window="0.01"), 422, "window", "between")
    assert_error(post(server, path, window="nan"), 422, "window")
    assert_error(post(server, path, window=2, hop=3), 422, "hop")
    assert_error(post(server, path, top_k=0), 422, "top_k")
    assert_error(post(server, path, top_k="x"), 422, "top_k")
    assert_error(post(server, path, spectrogram="maybe"), 422, "spectrogram")
    # An empty field (what an HTML form sends for an empty input) means "not given".
    assert post(server, path, window="", hop="").status_code == 200


def post_query(client, path: Path, query: str, **fields):
    return client.post(f"/v1/predict?{query}", files={"file": (path.name, path.read_bytes(), "audio/wav")},
                       data={k: str(v) for k, v in fields.items()})


def test_query_options_take_effect(server, clips, long_clip):
    path = next(iter(clips.values()))
    fam = post_query(server, path, "level=family")
    assert fam.status_code == 200 and fam.json()["level"] == "family", fam.text
    assert fam.json() == post(server, path, name=path.name, level="family").json()
    timeline = post_query(server, long_clip, "window=2&hop=1&top_k=1")
    assert timeline.status_code == 200 and timeline.json()["window"] == 2 and timeline.json()["hop"] == 1
    assert len(timeline.json()["top"]) == 1
    # the same value both ways is no conflict
    assert post_query(server, path, "level=family", level="family").json()["level"] == "family"


def test_unknown_query_parameter_is_refused(server, clips):
    path = next(iter(clips.values()))
    assert_error(post_query(server, path, "levle=family"), 422, "levle", "level", "window", "min_confidence")


def test_unknown_form_field_is_refused(server, clips):
    path = next(iter(clips.values()))
    assert_error(post(server, path, levle="family"), 422, "levle", "level", "window", "min_confidence")


def test_bad_query_values_get_the_form_messages(server, clips):
    path = next(iter(clips.values()))
    for query, field in (("window=abc", {"window": "abc"}), ("top_k=0", {"top_k": 0}),
                         ("level=genus", {"level": "genus"}), ("spectrogram=maybe", {"spectrogram": "maybe"}),
                         ("classes=viola,sitar", {"classes": "viola,sitar"})):
        by_query = post_query(server, path, query)
        assert_error(by_query, 422, query.split("=")[0])
        assert by_query.json() == post(server, path, **field).json()


def test_form_and_query_that_differ_are_refused(server, clips):
    path = next(iter(clips.values()))
    assert_error(post_query(server, path, "level=family", level="instrument"), 422, "level", "both")
    assert_error(post_query(server, path, "window=2", window=3), 422, "window", "both")


def test_form_field_given_twice_with_different_values_is_refused(server, clips):
    """As in the query: two values of one option are ambiguous, not 'the last one wins'."""
    path = next(iter(clips.values()))
    files = {"file": (path.name, path.read_bytes(), "audio/wav")}
    r = server.post("/v1/predict", files=files, data={"top_k": ["1", "5"]})
    assert_error(r, 422, "top_k", "more than once")
    r = server.post("/v1/predict", files=files, data={"level": ["family", "instrument"]})
    assert_error(r, 422, "level", "more than once")
    same = server.post("/v1/predict", files=files, data={"top_k": ["2", " 2"]})
    assert same.status_code == 200 and len(same.json()["top"]) == 2


def test_hop_longer_than_the_default_window_is_refused(server, clips, long_clip, model):
    assert model.window == 3
    for r in (post_query(server, long_clip, "hop=5"), post(server, long_clip, hop=5)):
        assert_error(r, 422, "hop", "window")
    assert post(server, long_clip, hop=3).status_code == 200


def test_openapi_documents_the_query_parameters(server):
    op = server.get("/openapi.json").json()["paths"]["/v1/predict"]["post"]
    form = op["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    query = {p["name"]: p for p in op["parameters"] if p["in"] == "query"}
    assert set(query) == set(form) - {"file"}
    assert all(query[name]["schema"] == {k: v for k, v in form[name].items() if k != "description"} for name in query)


def test_duration_limit(small_server, clips, tmp_path):
    long = write(tmp_path / "three_seconds.wav", 0.3 * np.sin(2 * np.pi * 330 * np.arange(3 * SR) / SR))
    with httpx.Client(base_url=small_server) as c:
        assert_error(post(c, long, name=long.name), 422, "three_seconds.wav", "limit is")
        path = next(iter(clips.values()))  # 1.5 s: under the limit
        assert post(c, path).status_code == 200


def test_upload_limit_content_length(small_server):
    with httpx.Client(base_url=small_server) as c:
        r = post(c, b"RIFF" + bytes(400_000), name="big.wav")
    assert_error(r, 413, "300 kB")


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def _host(url: str) -> bytes:
    """The Host header's value for ``url`` (the service answers only to its own address)."""
    return url.removeprefix("http://").encode()


def _read_response(sock: socket.socket, already: bytes = b"") -> tuple[int, dict, bytes]:
    data = already
    sock.settimeout(10)
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            break
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    length = int(headers.get("content-length", 0))
    while len(body) < length:
        more = sock.recv(65536)
        if not more:
            break
        body += more
    return int(lines[0].split()[1]), headers, body


def test_upload_limit_refused_before_reading_a_declared_length(small_server):
    """A Content-Length over the limit is answered at once: no byte of the body is sent."""
    with _connect(small_server) as s:
        s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: " + _host(small_server) + b"\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                  b"Content-Length: 500000000\r\n\r\n")
        status, headers, body = _read_response(s)
    assert status == 413 and json.loads(body)["error"].startswith("the upload is larger")


def test_upload_limit_holds_while_a_chunked_upload_streams(small_server):
    """A chunked upload (no length) of 200 MB: the server answers 413 after little more than the
    300 kB limit (plus what the sockets' buffers hold) and stops reading."""
    total, sent, reply = 200_000_000, 0, b""
    boundary = "instrec-test"
    with _connect(small_server) as s:
        s.sendall(f"POST /v1/predict HTTP/1.1\r\nHost: {_host(small_server).decode()}\r\nTransfer-Encoding: chunked\r\n"
                  f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode())
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="huge.wav"\r\n'
                f"Content-Type: audio/wav\r\n\r\nRIFF").encode()
        chunk = bytes(64 * 1024)

        def frame(b: bytes) -> bytes:
            return f"{len(b):x}\r\n".encode() + b + b"\r\n"

        pending = frame(head)
        s.setblocking(False)
        deadline = time.monotonic() + 30
        while sent < total and time.monotonic() < deadline:
            readable, writable, _ = select.select([s], [s], [], 5)
            if readable:
                reply = s.recv(65536)
                break
            if writable:
                try:
                    n = s.send(pending)
                except (BrokenPipeError, ConnectionResetError):
                    break
                sent += n
                pending = pending[n:] or frame(chunk)
        s.setblocking(True)
        status, headers, body = _read_response(s, reply)
    assert status == 413, (status, body)
    assert json.loads(body) == {"error": "the upload is larger than the 300 kB limit"}
    assert headers.get("connection") == "close"
    assert sent < 40_000_000, f"the client could send {sent} bytes before the server refused"


def test_request_time_limit(small_server):
    """An upload that stalls is answered 503 when the request's time is up (1 s here)."""
    with _connect(small_server) as s:
        s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: " + _host(small_server) + b"\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                  b"Content-Length: 5000\r\n\r\n--b\r\n")
        t0 = time.monotonic()
        status, _, body = _read_response(s)
    assert status == 503 and "1 s limit" in json.loads(body)["error"]
    assert 0.9 < time.monotonic() - t0 < 5


def test_request_time_limit_during_prediction(model, clips, tmp_path):
    """A prediction that runs past the time limit: 503 at once; its thread finishes on its own
    and the upload's temp file is removed then."""
    from instrec.inference import Model

    class SlowModel(Model):
        def predict_file(self, path, **kwargs):
            time.sleep(1.5)
            return super().predict_file(path, **kwargs)

    slow = SlowModel(model.engine, source=model.source)
    limits = Limits(request_timeout_s=0.5, max_concurrent=1)
    with running(create_app(slow, limits=limits, tmp_dir=tmp_path)) as url, httpx.Client(base_url=url) as c:
        t0 = time.monotonic()
        assert_error(post(c, next(iter(clips.values()))), 503, "0.5 s limit")
        assert time.monotonic() - t0 < 1.4
        assert len(list(tmp_path.iterdir())) == 1  # still being predicted
        time.sleep(1.5)
        assert list(tmp_path.iterdir()) == []


def test_more_than_one_file(server, clips):
    path = next(iter(clips.values()))
    r = server.post("/v1/predict", files=[("file", ("a.wav", path.read_bytes())), ("file", ("b.wav", path.read_bytes()))])
    assert_error(r, 400, "files")


def test_temp_files_removed(server, small_server, clips, upload_dir):
    path = next(iter(clips.values()))
    assert post(server, path).status_code == 200
    assert post(server, b"", name="empty.wav").status_code == 422
    assert post(server, b"text", name="x.wav").status_code == 415
    assert post(server, path, window="abc").status_code == 422
    assert list(upload_dir.iterdir()) == []


def test_no_room_for_the_upload_is_503_not_a_bug(model, clips, tmp_path, monkeypatch):
    """A full disk, or an upload folder removed under the running service: the client is told to
    retry (503), not that instrec has a bug (500), and no partial temp file is left."""
    import errno
    import shutil

    from instrec.service import routes

    path = next(iter(clips.values()))
    upload_dir = tmp_path / "uploads"

    def disk_full(src, dst, length=0):
        dst.write(b"RIFF")
        raise OSError(errno.ENOSPC, "No space left on device")

    with running(create_app(model, tmp_dir=upload_dir)) as url, httpx.Client(base_url=url, timeout=60) as c:
        with monkeypatch.context() as m:
            m.setattr(routes.shutil, "copyfileobj", disk_full)
            msg = assert_error(post(c, path), 503, "No space left on device", "try again")
            assert str(upload_dir) not in msg
        assert list(upload_dir.iterdir()) == []
        shutil.rmtree(upload_dir)
        msg = assert_error(post(c, path), 503, "could not store the upload")
        assert str(upload_dir) not in msg and str(tmp_path) not in msg


# ---------------------------------------------------------------------------------------------
# Pieces


def test_limits_validate():
    assert Limits().max_upload_bytes == 20_000_000
    for bad in ({"max_upload_bytes": 0}, {"max_duration_s": -1}, {"request_timeout_s": float("nan")},
                {"max_concurrent": 0}):
        with pytest.raises(ParameterError):
            Limits(**bad)


def test_display_name():
    assert display_name("C:\\Users\\me\\flute.wav") == "flute.wav"
    assert display_name("../../x/\x00a\nb.mp3") == "ab.mp3"
    assert display_name("") == display_name(None) == "upload"
    assert len(display_name("a" * 500 + ".wav")) == 200 and display_name("a" * 500 + ".wav").endswith(".wav")


def test_audio_suffix():
    wav = b"RIFF\x00\x00\x00\x00WAVEfmt "
    assert audio_suffix("a.WAV", None, wav) == ".wav"
    assert audio_suffix("rec", "audio/flac", b"fLaC\x00") == ".flac"
    assert audio_suffix("rec", None, b"ID3\x03") == ".mp3"
    assert audio_suffix("a.ogg", None, b"") == ".ogg"  # empty: left to the decoder
    for name, head in (("a.txt", wav), ("a.wav", b"hello"), ("rec", b"hello")):
        with pytest.raises(UnsupportedType):
            audio_suffix(name, None, head)
