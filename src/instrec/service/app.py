"""The HTTP service: one loaded model behind a small JSON API and a web page.

Endpoints
---------
``POST /v1/predict``  multipart upload (field ``file``; optional ``window``, ``hop``, ``top_k``,
                      ``spectrogram``) -> the JSON ``instrec predict --format json`` prints for one
                      file, with ``path`` set to the uploaded file's name
``GET /v1/health``    liveness and the model's name
``GET /v1/model``     classes, recipe, training and measured figures, the service's limits
``GET /``             the web page (``static/``); ``/docs`` and ``/openapi.json``: the API's description

Every error a client can cause is a 4xx with ``{"error": "one line"}``: 400 a malformed request or a
missing ``file`` field, 401 a missing or wrong API key (only when the service has one), 413 a body
over the size limit (refused while it streams in, see :class:`~instrec.service.upload.BodyLimit`),
415 a file that is not wav/flac/ogg/mp3 audio, 422 audio that cannot be used (undecodable, empty,
silent, NaN, too long) or bad parameters. 404, 405 and the rest are JSON too, never a stack trace.

Under pressure (:mod:`instrec.service.guard`): a request over the time limit gets 503; at most
``max_concurrent`` predictions run at once and ``max_queue`` more requests wait (an upload in
progress counts), and beyond that a request gets 503 with ``Retry-After`` at once, before its body
is read. No path on the server comes from a request: uploads are written to fresh temp files
(``tmp_dir``), the client's file name is only shown back (:func:`~instrec.service.upload.display_name`).
CORS is closed unless origins are named (``cors_origins``); with ``api_key`` set, everything under
``/v1/`` but ``/v1/health`` needs it (``X-API-Key`` or ``Authorization: Bearer``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from .._version import __version__
from ..errors import AudioError, InstrecError, ParameterError
from ..inference import Model, check_window, load_model
from .guard import Admission, ApiKeyGuard, add_cors, check_api_key, check_origins
from .upload import BodyLimit, ServiceError, audio_suffix, display_name, format_bytes

log = logging.getLogger("instrec.service")

STATIC = Path(__file__).resolve().parent / "static"
DEFAULT_TOP_K = 3
FILE_FIELD = "file"


def _default_concurrency() -> int:
    return max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the service.

    max_upload_bytes : largest request body (the upload and its form fields), refused with 413
        as soon as it is passed, while the body streams in
    max_duration_s : longest recording, read from the file's header before decoding (422)
    request_timeout_s : longest a request may take from the start of its upload to its answer (503)
    max_concurrent : predictions run at once in worker threads; more requests wait their turn
        (inside their time limit)
    max_queue : requests that may wait (or still be uploading) beside the ``max_concurrent`` at
        work; one more is answered 503 with ``Retry-After`` at once (default: 4 x max_concurrent,
        at least 16; 0: none wait)
    """

    max_upload_bytes: int = 20_000_000
    max_duration_s: float = 600.0
    request_timeout_s: float = 60.0
    max_concurrent: int = field(default_factory=_default_concurrency)
    max_queue: int | None = None

    def __post_init__(self):
        for name in ("max_upload_bytes", "max_concurrent"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ParameterError(f"{name} must be a positive integer; got {v!r}")
        if self.max_queue is None:
            object.__setattr__(self, "max_queue", max(16, 4 * self.max_concurrent))
        q = self.max_queue
        if isinstance(q, bool) or not isinstance(q, int) or q < 0:
            raise ParameterError(f"max_queue must be an integer of 0 or more; got {q!r}")
        for name in ("max_duration_s", "request_timeout_s"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ParameterError(f"{name} must be a positive number of seconds; got {v!r}")

    def to_dict(self) -> dict:
        return asdict(self)


class ErrorBody(BaseModel):
    """What every refused request gets."""

    error: str


_ERRORS = {
    400: "malformed request, or no `file` field",
    401: "the API key is missing or wrong (only when the service has one)",
    413: "the request body is over the upload size limit",
    415: "the file is not wav, flac, ogg or mp3 audio (by name or content)",
    422: "the audio cannot be used (undecodable, empty, silent, NaN, too long) or a parameter is out of range",
    503: "the service is busy (too many requests held: see Retry-After), or the request took longer "
         "than the time limit",
}

_PREDICT_FORM = {
    "type": "object",
    "required": [FILE_FIELD],
    "properties": {
        FILE_FIELD: {"type": "string", "format": "binary",
                     "description": "the recording: .wav, .flac, .ogg or .mp3"},
        "window": {"type": "number", "minimum": 0.1, "maximum": 600,
                   "description": "analyse in sliding windows of this many seconds (default: recordings "
                                  "longer than 1.5 model windows are windowed at the model's window)"},
        "hop": {"type": "number", "minimum": 0.1, "maximum": 600,
                "description": "step between windows in seconds (default: half the window)"},
        "top_k": {"type": "integer", "minimum": 1, "default": DEFAULT_TOP_K,
                  "description": "how many classes to list in `top`"},
        "spectrogram": {"type": "boolean", "default": False,
                        "description": "also return the mel spectrogram as a base64 PNG (`spectrogram.png`)"},
        "classes": {"type": "string", "example": "flute,viola,cello",
                    "description": "answer among these of the model's classes only, comma-separated "
                                   "(their probabilities, rescaled to sum to 1)"},
    },
}

_PREDICT_EXAMPLE = {
    "path": "flute.wav", "label": "flute",
    "probabilities": {"cello": 0.001, "flute": 0.97, "oboe": 0.02, "saxophone": 0.004, "trumpet": 0.003, "viola": 0.002},
    "duration": 3.0, "top": [["flute", 0.97], ["oboe", 0.02], ["saxophone", 0.004]],
}


def create_app(model: Model | str | os.PathLike | None = None, *, limits: Limits | None = None,
               engine: str = "auto", tmp_dir: str | os.PathLike | None = None, api_key: str | None = None,
               cors_origins: Iterable[str] | None = None) -> FastAPI:
    """The service's ASGI app, with ``model`` loaded once, now.

    model : a loaded :class:`~instrec.inference.Model`, a model folder or ``.onnx`` file, or ``None``
        for the shipped model
    limits : upload size, duration, time, concurrency and queue limits (:class:`Limits` defaults)
    engine : ``"auto"``, ``"torch"`` or ``"onnx"`` when ``model`` is a path or None (see :func:`instrec.inference.open_engine`)
    tmp_dir : where uploads are written while they are predicted (default: the system's temp folder)
    api_key : None: an open service; else every request under ``/v1/`` but ``/v1/health`` needs it
        (``X-API-Key`` or ``Authorization: Bearer``), or gets 401
    cors_origins : origins (``https://host[:port]``, or ``*``) whose pages may call the API from a
        browser; none (the default): no CORS headers at all
    """
    limits = limits or Limits()
    api_key = check_api_key(api_key)
    cors_origins = check_origins(cors_origins)
    if not isinstance(model, Model):
        model = load_model(model, engine=engine)
    _warm_up(model)
    if tmp_dir is not None:
        Path(tmp_dir).mkdir(parents=True, exist_ok=True)
    tmp_dir = str(tmp_dir) if tmp_dir is not None else None
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=limits.max_concurrent,
                                                     thread_name_prefix="instrec-predict")
    admission = Admission(limits.max_concurrent, limits.max_queue)
    started = time.time()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        executor.shutdown(wait=False, cancel_futures=True)

    info = model.info
    app = FastAPI(
        title="instrec",
        version=__version__,
        summary="Tell which musical instrument plays in a recording.",
        description=(f"Model: **{info['recipe']}**, classes: {', '.join(model.classes)}. "
                     f"Upload a recording to `POST /v1/predict`. The web page is at [/](/). "
                     f"Limits: uploads up to {format_bytes(limits.max_upload_bytes)}, recordings up to "
                     f"{limits.max_duration_s / 60:g} min, {limits.request_timeout_s:g} s per request."
                     + (" Every request under `/v1/` but `/v1/health` needs the service's API key, in the "
                        "`X-API-Key` header (or `Authorization: Bearer KEY`)." if api_key is not None else "")),
        lifespan=lifespan,
    )
    app.state.model = model
    app.state.limits = limits
    app.state.executor = executor
    app.state.admission = admission
    app.state.cors_origins = cors_origins
    app.state.api_key_required = api_key is not None
    # Outermost last: CORS (also on refusals), then the API key, then the size limit.
    app.add_middleware(BodyLimit, max_bytes=limits.max_upload_bytes)
    if api_key is not None:
        app.add_middleware(ApiKeyGuard, api_key=api_key)
    add_cors(app, cors_origins)
    _add_error_handlers(app)

    @app.get("/v1/health", tags=["service"], summary="Is the service up?")
    def health() -> dict:
        return {"status": "ok", "model": info["recipe"], "engine": info["engine"], "classes": model.classes,
                "uptime_s": round(time.time() - started, 1), "version": __version__,
                "api_key_required": api_key is not None, "load": admission.state()}

    @app.get("/v1/model", tags=["service"], summary="The model: classes, recipe, training and measured figures")
    def model_info() -> dict:
        d = dict(info)
        d["source"] = Path(d["source"]).name if d.get("source") else None
        return {**d, "limits": limits.to_dict(), "version": __version__}

    @app.post(
        "/v1/predict", tags=["predict"], summary="Which instrument plays in the uploaded recording?",
        description=("Multipart upload with the recording in the `file` field. Answers the JSON that "
                     "`instrec predict --format json` prints for one file (`path` is the uploaded file's "
                     "name); recordings longer than 1.5 model windows, or any with `window` set, also get "
                     "`windows` and `segments`."),
        openapi_extra={"requestBody": {"required": True,
                                       "content": {"multipart/form-data": {"schema": _PREDICT_FORM}}}},
        responses={200: {"description": "the prediction", "content": {"application/json": {"example": _PREDICT_EXAMPLE}}},
                   **{code: {"model": ErrorBody, "description": text} for code, text in _ERRORS.items()}},
    )
    async def predict(request: Request) -> JSONResponse:
        if not admission.enter():
            wait = admission.retry_after(most=limits.request_timeout_s)
            return _error(503, f"the service is busy: {admission.in_flight} requests are being predicted or "
                               f"wait their turn, the most it holds; try again in {wait} s",
                          {"Retry-After": str(wait)})  # the unread body is discarded by the server
        t0 = time.monotonic()
        form = None
        future: concurrent.futures.Future | None = None
        try:
            async with asyncio.timeout(limits.request_timeout_s):
                form = await _read_form(request)
                upload, params = _parse_form(form)
                job = functools.partial(_predict_job, _restricted(model, params.pop("classes")), upload.file, display_name(upload.filename),
                                        upload.content_type, tmp_dir=tmp_dir, max_duration=limits.max_duration_s,
                                        **params)
                future = executor.submit(job)
                result = await asyncio.wrap_future(future)
            return JSONResponse(result)
        except TimeoutError:
            return _error(503, f"the request took longer than the {limits.request_timeout_s:g} s limit",
                          {"Connection": "close"})
        finally:
            admission.leave(time.monotonic() - t0)
            if form is not None:
                if future is None or future.done() or future.cancel():
                    _close_form(form)
                else:  # still running in its thread: close the upload when it is done
                    future.add_done_callback(lambda _f, form=form: _close_form(form))

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


# ---------------------------------------------------------------------------------------------
# Requests


async def _read_form(request: Request):
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "multipart/form-data":
        raise ServiceError(f"send the recording as multipart/form-data in a field named '{FILE_FIELD}' "
                           f"(got content type {ctype or 'none'})", 415)
    try:
        return await request.form(max_files=1, max_fields=16, max_part_size=64 * 1024)
    except ClientDisconnect:
        raise ServiceError("the client disconnected during the upload", 400) from None


def _parse_form(form) -> tuple[UploadFile, dict]:
    upload = form.get(FILE_FIELD)
    if upload is None:
        raise ServiceError(f"no '{FILE_FIELD}' field: upload the recording in a multipart field named "
                           f"'{FILE_FIELD}'", 400)
    if not isinstance(upload, UploadFile):
        raise ServiceError(f"the '{FILE_FIELD}' field must be a file upload, not text", 400)
    window = _number(form, "window")
    hop = _number(form, "hop")
    try:
        window, hop = check_window(window, hop)
    except ParameterError as e:
        raise ServiceError(str(e), 422) from None
    top_k = _number(form, "top_k", kind=int)
    if top_k is None:
        top_k = DEFAULT_TOP_K
    elif top_k < 1:
        raise ServiceError(f"top_k must be at least 1; got {top_k}", 422)
    spectrogram = _flag(form, "spectrogram")
    return upload, {"window": window, "hop": hop, "top_k": top_k, "spectrogram": spectrogram,
                    "classes": _text(form, "classes")}


def _restricted(model: Model, classes: str | None) -> Model:
    if classes is None:
        return model
    try:
        return model.restrict(classes)
    except ParameterError as e:
        raise ServiceError(str(e), 422) from None


def _text(form, name: str) -> str | None:
    v = form.get(name)
    if v is None:
        return None
    if isinstance(v, UploadFile):
        raise ServiceError(f"the '{name}' field must be text, not a file", 400)
    v = v.strip()
    return v or None


def _number(form, name: str, *, kind=float):
    v = _text(form, name)
    if v is None:
        return None
    try:
        x = kind(v)
    except ValueError:
        what = "an integer" if kind is int else "a number of seconds"
        raise ServiceError(f"{name} must be {what}; got {v[:40]!r}", 422) from None
    if kind is float and not math.isfinite(x):
        raise ServiceError(f"{name} must be a finite number of seconds; got {v[:40]!r}", 422)
    return x


def _flag(form, name: str) -> bool:
    v = _text(form, name)
    if v is None:
        return False
    if v.lower() in ("1", "true", "yes", "on"):
        return True
    if v.lower() in ("0", "false", "no", "off"):
        return False
    raise ServiceError(f"{name} must be true or false; got {v[:40]!r}", 422)


def _close_form(form) -> None:
    for _, v in form.multi_items():
        if isinstance(v, UploadFile):
            with contextlib.suppress(Exception):
                v.file.close()


# ---------------------------------------------------------------------------------------------
# The work of one prediction (runs in a worker thread)


def _predict_job(model: Model, fileobj, name: str, content_type: str | None, *, window, hop, top_k: int,
                 spectrogram: bool, tmp_dir: str | None, max_duration: float) -> dict:
    """Check the upload's type, write it to a temp file, predict it; the temp file is always removed."""
    fileobj.seek(0)
    head = fileobj.read(16)
    fileobj.seek(0)
    suffix = audio_suffix(name, content_type, head)
    fd, path = tempfile.mkstemp(prefix="instrec-upload-", suffix=suffix, dir=tmp_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(fileobj, out, 1 << 20)
        try:
            pred = model.predict_file(path, window=window, hop=hop, max_duration=max_duration)
            result = {**pred.to_dict(), "top": [[c, p] for c, p in pred.top(top_k)]}
            result["path"] = name
            if spectrogram:
                from ..audio import load
                from .spectrogram import spectrogram_json

                y, _ = load(path, sr=model.feature.sr)
                result["spectrogram"] = spectrogram_json(y, model.feature)
        except AudioError as e:
            raise ServiceError(f"{name}: {e.problem}", 422) from None
        except InstrecError as e:
            raise ServiceError(str(e).replace(path, name), 422) from None
        return result
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _warm_up(model: Model) -> None:
    """One prediction at start-up, so the first request does not pay for lazy initialisation."""
    import numpy as np

    sr = model.feature.sr
    y = 0.1 * np.sin(2 * np.pi * 440 * np.arange(sr) / sr).astype(np.float32)
    model.predict(y, sr)


# ---------------------------------------------------------------------------------------------
# Errors: always {"error": "..."}


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    message = " ".join(str(message).split())  # one line
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError):
        headers = {"Connection": "close"} if exc.status in (413, 503) else None
        return _error(exc.status, exc.message, headers)

    @app.exception_handler(InstrecError)
    async def instrec_error(request: Request, exc: InstrecError):
        return _error(422, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return _error(exc.status_code, detail, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(422, f"{where}: {first.get('msg', 'invalid request')}" if where else "invalid request")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, f"internal error ({type(exc).__name__}); this is a bug in instrec")
