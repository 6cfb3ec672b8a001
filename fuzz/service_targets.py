"""The HTTP service: ``POST /v1/predict`` through a TestClient with random uploads, names, types
and form fields, and with hand-made (often malformed) multipart bodies.
"""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
from hypothesis import strategies as st

from fuzz.audio_targets import LOAD_BYTES, reference_refusal
from fuzz.generators import AMPLITUDES, MUTATION, SEED_SPECS, SPECIALS, SR, make_signal, realise_file, signals
from fuzz.harness import Context, service_limits, violated
from fuzz.inference_targets import check_prediction
from instrec.audio import AUDIO_EXTENSIONS


# ---------------------------------------------------------------------------------------------
# Requests: uploads, file names, content types, form fields; and raw multipart bodies


FIELD_TEXT = st.one_of(
    st.sampled_from(["", " ", "1", "3", "0.1", "0.0999", "600", "601", "2.5", "-1", "0", "nan", "inf", "-inf",
                     "1e309", "1e-400", "0x10", "1_0", " 3 ", "３", "٣", "true", "false", "yes", "off", "ON",
                     "maybe", "10000000000000000000000", "-0", "1.5e1", "None", "null"]),
    st.text(max_size=12),
)
FILENAME = st.one_of(
    st.sampled_from(["clip.wav", "clip.WAV", "a.mp3", "x.flac", "y.ogg", "noext", "", ".wav", "../../etc/passwd.wav",
                     "C:\\Users\\me\\a.wav", "a.txt", "a.wav.exe", "a.webm", "dir/", "flûte ♪.wav",
                     "a\x00b.wav", "a\r\nb.wav", '"quoted".wav', "x" * 300 + ".wav", "a;b=c.wav"]),
    st.tuples(st.text(max_size=24), st.sampled_from(list(AUDIO_EXTENSIONS) + ["", ".txt", ".WAV"])).map(
        lambda t: t[0] + t[1]),
)
CONTENT_TYPE = st.one_of(
    st.sampled_from(["audio/wav", "audio/x-wav", "audio/mpeg", "audio/flac", "audio/ogg", "application/ogg",
                     "application/octet-stream", "", "text/plain", "audio/wav; charset=binary", "image/png",
                     "AUDIO/WAV"]),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=20),
)
# Seeds whose samples are floats: a flipped exponent bit makes a huge finite sample (the "huge" region).
FLOAT_SEEDS = [i for i, spec in enumerate(SEED_SPECS) if spec[2] in ("FLOAT", "DOUBLE")]


def upload_cases(*, amps=AMPLITUDES, specials=SPECIALS, float_seeds: bool = True):
    """An upload: arbitrary bytes, a mutated seed file, or a wav written from a signal recipe."""
    seeds = list(range(len(SEED_SPECS))) if float_seeds else [i for i in range(len(SEED_SPECS)) if i not in FLOAT_SEEDS]
    return st.one_of(
        st.fixed_dictionaries({"kind": st.just("bytes"), "data": LOAD_BYTES.map(lambda c: c["data"])}),
        st.fixed_dictionaries({"kind": st.just("mutated"), "file": st.fixed_dictionaries({
            "seed": st.sampled_from(seeds), "ops": st.lists(MUTATION, max_size=4), "ext": st.none()})}),
        st.fixed_dictionaries({"kind": st.just("signal"), "signal": signals(max_samples=4 * SR, amps=amps, specials=specials),
                               "subtype": st.sampled_from(["PCM_16", "FLOAT", "DOUBLE", "PCM_U8"]),
                               "sr": st.sampled_from([8000, 22050, 48000])}),
    )


def service_cases(*, uploads=None):
    """A POST /v1/predict request: an upload under some name, content type, field and form fields."""
    return st.fixed_dictionaries({
        "upload": uploads if uploads is not None else upload_cases(),
        "filename": FILENAME,
        "content_type": CONTENT_TYPE,
        "field": st.sampled_from(["file", "file", "file", "file", "audio", "FILE", "file_as_text", "two_files"]),
        "fields": st.fixed_dictionaries({}, optional={
            "window": st.one_of(st.sampled_from(["", "1", "3", "0.5", "10"]), FIELD_TEXT),
            "hop": st.one_of(st.sampled_from(["", "0.25", "1", "2"]), FIELD_TEXT),
            "top_k": st.one_of(st.sampled_from(["1", "3", "6", "100", "0"]), FIELD_TEXT),
            "spectrogram": st.one_of(st.sampled_from(["true", "1", "false", "on"]), FIELD_TEXT),
            "other": FIELD_TEXT,
        }),
    })


SERVICE = service_cases()
SERVICE_RAW = st.fixed_dictionaries({
    "content_type": st.one_of(
        st.sampled_from(["multipart/form-data", "multipart/form-data; boundary=XyZ", "multipart/form-data; boundary=",
                         'multipart/form-data; boundary="a b"', "multipart/form-data; boundary=" + "b" * 100,
                         "MULTIPART/FORM-DATA; BOUNDARY=XyZ", "application/json", "", "multipart/mixed; boundary=XyZ",
                         "application/x-www-form-urlencoded"]),
        st.text(max_size=40)),
    "parts": st.lists(st.fixed_dictionaries({
        "headers": st.lists(st.sampled_from([
            b'Content-Disposition: form-data; name="file"; filename="a.wav"',
            b'Content-Disposition: form-data; name="file"', b'Content-Disposition: form-data; name="window"',
            b'Content-Disposition: form-data; name="top_k"', b'Content-Disposition: form-data; filename="a.wav"',
            b"Content-Disposition: attachment", b"Content-Type: audio/wav", b"Content-Type: text/plain; charset=utf-16",
            b'Content-Disposition: form-data; name="file"; filename*=UTF-8\'\'%C3%A9.wav',
            b'Content-Disposition: form-data; name="file"; filename="\xff\xfe.wav"',
            b"Content-Disposition: form-data; name=", b"X: " + b"y" * 200, b"no colon here"]), max_size=3),
        "body": st.one_of(st.binary(max_size=256), st.sampled_from([b"3", b"abc", b"RIFF"])),
    }), max_size=4),
    "boundary": st.sampled_from([b"XyZ", b"XyZ", b"other", b""]),
    "closing": st.sampled_from([True, True, False]),
    "junk": st.binary(max_size=32),
    "method_path": st.sampled_from([("POST", "/v1/predict"), ("POST", "/v1/predict"), ("PUT", "/v1/predict"),
                                    ("POST", "/v1/predict/"), ("GET", "/v1/predict"), ("POST", "/v1/model")]),
})


# ---------------------------------------------------------------------------------------------
# Checks


def upload_bytes(upload: dict, ctx: Context) -> bytes:
    """The bytes an upload case stands for."""
    if upload["kind"] == "bytes":
        return upload["data"]
    if upload["kind"] == "mutated":
        return realise_file(upload["file"], ctx)[0]
    import soundfile as sf

    y = make_signal(upload["signal"])
    if upload["subtype"] != "FLOAT" and upload["subtype"] != "DOUBLE":
        y = np.clip(np.nan_to_num(y), -1, 1)
    buf = io.BytesIO()
    if len(y) == 0:
        return b""
    sf.write(buf, y.astype(np.float64), upload["sr"], format="WAV", subtype=upload["subtype"])
    return buf.getvalue()


def check_response(r, *, classes: list[str], filename: str | None = None, fields: dict | None = None) -> None:
    """Never a 5xx; a 4xx is ``{"error": "one line"}``; a 200 is a valid prediction."""
    from instrec.service.upload import display_name

    if r.status_code >= 500:
        violated(f"HTTP {r.status_code}: {r.text[:300]}")
    try:
        body = r.json()
    except ValueError:
        violated(f"HTTP {r.status_code} with a body that is not JSON: {r.text[:200]!r}")
    if r.status_code >= 400:
        if not (isinstance(body, dict) and list(body) == ["error"] and isinstance(body["error"], str)
                and body["error"].strip() and "\n" not in body["error"]):
            violated(f"HTTP {r.status_code} body is not one error line: {body!r:.300}")
        return
    if r.status_code != 200:
        violated(f"HTTP {r.status_code}")
    from instrec.inference import Prediction

    try:
        pred = Prediction.from_dict(body)
    except (KeyError, TypeError, ValueError) as e:
        violated(f"200 body is not a prediction ({e!r}): {body!r:.300}")
    check_prediction(pred, classes)
    path = body["path"]
    if not isinstance(path, str) or not path or len(path) > 200 or re.search(r"[\x00-\x1f\x7f/\\\\]", path):
        violated(f"path {path!r} is not a safe display name")
    # httpx sends '"', '\\' and control characters of a file name escaped: compare the others
    if filename is not None and not re.search(r'["\\\\\x00-\x1f]', filename) and path != display_name(filename):
        violated(f"path {path!r} is not the sanitised upload name {display_name(filename)!r}")
    fields = fields or {}
    top = body.get("top")
    k = fields.get("top_k", "").strip()
    if isinstance(top, list) and k and k.isascii() and k.isdigit():
        if len(top) != min(int(k), len(classes)):
            violated(f"top_k={k} gave {len(top)} entries")
    if "spectrogram" in body:
        png = base64.b64decode(body["spectrogram"]["png"])
        if not png.startswith(b"\x89PNG"):
            violated("spectrogram is not a PNG")


def check_service(case: dict, ctx: Context) -> None:
    """POST /v1/predict with random uploads, names, types and form fields."""
    data = upload_bytes(case["upload"], ctx)
    ctx.write("upload.bin", data)
    ctx.write("request.json", json.dumps({k: v for k, v in case.items() if k != "upload"}, default=repr).encode())
    client = ctx.client
    fields = {k: v for k, v in case["fields"].items()}
    name, ctype, field = case["filename"], case["content_type"], case["field"]
    files: list = []
    if field == "file_as_text":
        fields["file"] = data.decode("latin-1")[:1000]
    elif field == "two_files":
        files = [("file", (name, data, ctype)), ("file", ("b.wav", data, ctype))]
    else:
        files = [(field, (name, data, ctype))]
    r = client.post("/v1/predict", files=files or None, data=fields)
    check_response(r, classes=ctx.model.classes, filename=name if field == "file" else None, fields=fields)
    if r.status_code >= 400 and usable_upload(case["upload"], data):
        # the refusal may be of the name, type or fields; the audio itself must be taken when it
        # comes as a plain upload (as in check_predict: resampling may silence a high signal)
        plain = client.post("/v1/predict", files=[("file", ("clip.wav", data, "audio/wav"))])
        check_response(plain, classes=ctx.model.classes, filename="clip.wav")
        high_silenced = case["upload"]["sr"] != ctx.model.feature.sr and "silent" in plain.text
        if plain.status_code != 200 and not high_silenced:
            violated(f"the service refused usable audio ({case['upload']['subtype']}, {case['upload']['sr']} Hz): "
                     f"HTTP {plain.status_code} {plain.text[:200]}")


def usable_upload(upload: dict, data: bytes) -> bool:
    """Whether ``data`` is a WAV whose audio the service must take: within its limits, and
    usable as decoded (not empty, silent, non-finite, too large or too short)."""
    import soundfile as sf

    limits = service_limits()
    if upload["kind"] != "signal" or not data or len(data) > limits.max_upload_bytes:
        return False
    y, sr = sf.read(io.BytesIO(data), dtype="float64", always_2d=True)
    return len(y) <= limits.max_duration_s * sr and reference_refusal(y.mean(axis=1), sr) is None


def raw_body(case: dict) -> bytes:
    """The multipart body a raw case stands for: its parts, the closing boundary, junk after."""
    b = case["boundary"]
    out = bytearray()
    for part in case["parts"]:
        out += b"--" + b + b"\r\n" + b"".join(h + b"\r\n" for h in part["headers"]) + b"\r\n" + part["body"] + b"\r\n"
    if case["closing"]:
        out += b"--" + b + b"--\r\n"
    return bytes(out) + case["junk"]


def check_service_raw(case: dict, ctx: Context) -> None:
    """Hand-made (often malformed) multipart bodies and content types."""
    body = raw_body(case)
    ctx.write("body.bin", body)
    ctx.write("request.json", json.dumps({"content_type": case["content_type"], "method_path": case["method_path"]}).encode())
    method, path = case["method_path"]
    try:
        r = ctx.client.request(method, path, content=body, headers={"content-type": case["content_type"]})
    except UnicodeEncodeError:
        return  # a header value httpx itself cannot send
    if r.status_code >= 500:
        violated(f"HTTP {r.status_code}: {r.text[:300]}")
    if path == "/v1/predict" and method == "POST" or r.status_code >= 400:
        check_response(r, classes=ctx.model.classes)
