"""The HTTP service: one loaded model behind a small JSON API and a web page.

Endpoints
---------
``POST /v1/predict``  multipart upload (field ``file``; optional ``window``, ``hop``, ``top_k``,
                      ``spectrogram``) -> the JSON ``instrec predict --format json`` prints for one
                      file, with ``path`` set to the uploaded file's name; a multi-label model's
                      also holds ``instruments`` (who plays when) and each window's ``active``
``GET /v1/health``    liveness and the model's name
``GET /v1/model``     classes, recipe, training and measured figures, the service's limits;
                      ``multilabel`` and, for a multi-label model, its ``thresholds``;
                      ``display.shown_classes``: how many classes the page's timeline draws
                      (:data:`instrec.display.SHOWN_CLASSES`, as ``instrec predict --plot``)
``GET /``             the web page (``static/``); ``/openapi.json``: the API's description (no Swagger UI
                      at ``/docs``: FastAPI's loads its script and style from a CDN, and the service
                      works offline; ``/docs`` and ``/redoc`` answer 404 pointing at ``/openapi.json``)

Every error a client can cause is a 4xx with ``{"error": "one line"}``: 400 a malformed request or a
missing ``file`` field, 401 a missing or wrong API key (only when the service has one), 403 a
cross-origin request that changes state, 408 an upload slower than the minimum rate, 413 a body
over the size limit (refused while it streams in, see :class:`~instrec.service.upload.BodyLimit`),
415 a file that is not wav/flac/ogg/mp3 audio, 421 a Host the service does not answer to, 422 audio
that cannot be used (undecodable, empty, silent, NaN, too long) or bad parameters. 404, 405 and the
rest are JSON too, never a stack trace.

Under pressure (:mod:`instrec.service.guard`, :mod:`instrec.service.server`): a request over the
time limit gets 503; at most ``max_concurrent`` predictions run at once and ``max_queue`` more
requests whose upload has arrived wait, and beyond that a request gets 503 with ``Retry-After``
(at once, before its body is read, when the line is full as it comes in). Uploads still arriving
do not hold a place: slow clients are bounded by the connection cap, the header timeout and the
minimum upload rate. No path on the server comes from a request: uploads are written to fresh temp
files (``tmp_dir``), the client's file name is only shown back
(:func:`~instrec.service.upload.display_name`), and ``/v1/model`` shows no path of the machine that
trained the model. CORS is closed unless origins are named (``cors_origins``); the Host header must
name the service (``allowed_hosts``); with ``api_key`` set, everything under ``/v1/`` but
``/v1/health`` needs it (``X-API-Key`` or ``Authorization: Bearer``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import math
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from .._version import __version__
from ..errors import InstrecError, ParameterError
from ..inference import Model, load_model
from .guard import Admission, ApiKeyGuard, HostOriginGuard, add_cors, check_api_key, check_hosts, check_origins
from .routes import error_response, router
from .upload import BodyLimit, ServiceError, format_bytes

log = logging.getLogger("instrec.service")

STATIC = Path(__file__).resolve().parent / "static"


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
    max_queue : requests whose upload has arrived that may wait beside the ``max_concurrent`` at
        work; one more is answered 503 with ``Retry-After`` (at once, before its body is read, when
        the line is already full as it comes in). Uploads still arriving do not count: a slow
        client cannot hold a place (default: 4 x max_concurrent, at least 16; 0: none wait)
    header_timeout_s : a connection must send a complete request head (request line and headers)
        within this many seconds of opening, or of its first byte after an answer; else it is
        closed (408 when part of a head had come). The same allowance bounds how far a body may
        fall behind ``min_upload_rate``, and how long the body of an already answered request is
        discarded
    min_upload_rate : bytes per second a request body must keep arriving at, on average; a body
        that stalls, or trickles slower, is cut off with 408 once it is ``header_timeout_s`` of
        data behind (a client sending at 1 byte/s: after about ``header_timeout_s``). 0: no minimum
        (the request time limit still holds)
    max_connections : open connections at most; at the cap a new connection closes the one that
        has waited longest for its next request (idle, or its head still arriving), and when every
        connection has a request in progress the new one is answered 503 and closed
    keep_alive_s : how long an idle connection is kept open after an answer, for the client's next
        request
    """

    max_upload_bytes: int = 20_000_000
    max_duration_s: float = 600.0
    request_timeout_s: float = 60.0
    max_concurrent: int = field(default_factory=_default_concurrency)
    max_queue: int | None = None
    header_timeout_s: float = 10.0
    min_upload_rate: float = 10_000.0
    max_connections: int = 256
    keep_alive_s: float = 5.0

    def __post_init__(self):
        for name in ("max_upload_bytes", "max_concurrent", "max_connections"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ParameterError(f"{name} must be a positive integer; got {v!r}")
        if self.max_queue is None:
            object.__setattr__(self, "max_queue", max(16, 4 * self.max_concurrent))
        q = self.max_queue
        if isinstance(q, bool) or not isinstance(q, int) or q < 0:
            raise ParameterError(f"max_queue must be an integer of 0 or more; got {q!r}")
        for name in ("max_duration_s", "request_timeout_s", "header_timeout_s", "keep_alive_s"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ParameterError(f"{name} must be a positive number of seconds; got {v!r}")
        r = self.min_upload_rate
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not math.isfinite(r) or r < 0:
            raise ParameterError(f"min_upload_rate must be a number of bytes per second, 0 or more; got {r!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def create_app(model: Model | str | os.PathLike | None = None, *, limits: Limits | None = None,
               engine: str = "auto", tmp_dir: str | os.PathLike | None = None, api_key: str | None = None,
               cors_origins: Iterable[str] | None = None, allowed_hosts: Iterable[str] | None = None) -> FastAPI:
    """The service's ASGI app, with ``model`` loaded once, now.

    model : a loaded :class:`~instrec.inference.Model`, a model folder or ``.onnx`` file, or ``None``
        for the shipped model
    limits : upload size, duration, time, concurrency and queue limits (:class:`Limits` defaults)
    engine : ``"auto"``, ``"torch"`` or ``"onnx"`` when ``model`` is a path or None (see :func:`instrec.inference.open_engine`)
    tmp_dir : where uploads are written while they are predicted (default: the system's temp folder)
    api_key : None: an open service; else every request under ``/v1/`` but ``/v1/health`` needs it
        (``X-API-Key`` or ``Authorization: Bearer``), or gets 401
    cors_origins : origins (``https://host[:port]``, or ``*``) whose pages may call the API from a
        browser; none (the default): no CORS headers at all, and a request that changes state
        (POST ...) from another origin's page gets 403
    allowed_hosts : ``Host`` values to answer besides the address a client connected to (and, on
        loopback, ``localhost``/``127.0.0.1``/``[::1]`` with the port): ``name``, ``name:port``,
        ``*.domain`` or ``*`` (any); other hosts get 421 (DNS rebinding)
    """
    limits = limits or Limits()
    api_key = check_api_key(api_key)
    cors_origins = check_origins(cors_origins)
    allowed_hosts = check_hosts(allowed_hosts)
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
        redirect_slashes=False,  # a 307 with an empty body: curl without -L printed nothing; a 404 says what to use
        # No Swagger UI / ReDoc: FastAPI's pages load their script and style from a CDN (nothing
        # installed ships them), so offline they would be blank. /openapi.json is the description.
        docs_url=None,
        redoc_url=None,
    )
    app.state.model = model
    app.state.limits = limits
    app.state.executor = executor
    app.state.admission = admission
    app.state.cors_origins = cors_origins
    app.state.allowed_hosts = allowed_hosts
    app.state.api_key_required = api_key is not None
    app.state.tmp_dir = tmp_dir
    app.state.started = started
    # Outermost last: Host and Origin, CORS (also on refusals), the API key, the size and rate limits.
    app.add_middleware(BodyLimit, max_bytes=limits.max_upload_bytes, min_rate=limits.min_upload_rate,
                       patience_s=limits.header_timeout_s)
    if api_key is not None:
        app.add_middleware(ApiKeyGuard, api_key=api_key)
    add_cors(app, cors_origins)
    app.add_middleware(HostOriginGuard, allowed_hosts=allowed_hosts, cors_origins=cors_origins)
    _add_error_handlers(app)

    app.include_router(router)

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/docs", include_in_schema=False)
    @app.get("/redoc", include_in_schema=False)
    def no_docs() -> None:
        raise StarletteHTTPException(404, "no API documentation page here (it would need the internet); "
                                          "the API's description is at /openapi.json")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _warm_up(model: Model) -> None:
    """One prediction at start-up, so the first request does not pay for lazy initialisation."""
    import numpy as np

    sr = model.feature.sr
    y = 0.1 * np.sin(2 * np.pi * 440 * np.arange(sr) / sr).astype(np.float32)
    model.predict(y, sr)


# ---------------------------------------------------------------------------------------------
# Errors: always {"error": "..."}


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError):
        headers = {"Connection": "close"} if exc.status in (408, 413, 503) else None
        return error_response(exc.status, exc.message, headers)

    @app.exception_handler(InstrecError)
    async def instrec_error(request: Request, exc: InstrecError):
        return error_response(422, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        headers = getattr(exc, "headers", None)
        allow = (headers or {}).get("Allow")
        if exc.status_code == 405 and allow:  # say what to send instead, not just "no"
            path = request.url.path if request.url.path.isprintable() else ascii(request.url.path)
            detail += f": {request.method[:20]} is not allowed on {path[:100]}; use {allow}"
            if request.url.path == "/v1/predict":
                detail += " with the recording in a multipart field named 'file'"
        path = request.url.path
        if exc.status_code == 404 and len(path) > 1 and path.endswith("/") and path.isprintable():
            detail += f": no {path[:100]} here; did you mean {path.rstrip('/')[:100]}?"
        return error_response(exc.status_code, detail, headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error_response(422, f"{where}: {first.get('msg', 'invalid request')}" if where else "invalid request")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, f"internal error ({type(exc).__name__}); this is a bug in instrec")
