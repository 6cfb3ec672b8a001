"""The service under pressure: a bounded line of requests, an optional API key, closed-by-default CORS.

:class:`Admission` counts the prediction requests the service holds (being uploaded, waiting for a
worker thread, or being predicted); past its capacity a request is answered 503 with
``Retry-After`` at once, before any of its body is read, so a burst of clients cannot make the
service hold more than ``capacity`` uploads.

:class:`ApiKeyGuard` is an ASGI middleware: when the service has an API key, every request under
``/v1/`` but ``/v1/health`` must carry it (``X-API-Key: KEY`` or ``Authorization: Bearer KEY``), or
gets 401 before its body is read (uvicorn then discards the body, for at most its keep-alive
timeout, so that the client reads the answer rather than a reset connection). Keys are compared as SHA-256 digests with
:func:`hmac.compare_digest`, so the comparison takes the same time whatever the key sent.

:class:`JsonCORSMiddleware` is Starlette's CORS middleware answering refused preflights in JSON. The
service adds it only for origins named explicitly (:func:`check_origins`); without them no response
carries ``Access-Control-Allow-Origin``, and browsers keep other sites' pages from reading it.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from collections.abc import Iterable

from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response

from ..errors import ParameterError
from .upload import _send_error

API_KEY_ENV = "INSTREC_API_KEY"
API_KEY_HEADER = "X-API-Key"
OPEN_PATHS = frozenset({"/v1/health"})
PROTECTED_PREFIX = "/v1/"


# ---------------------------------------------------------------------------------------------
# A bounded line of requests


class Admission:
    """At most ``running + waiting`` requests held at once; the next one is turned away.

    Used from the event loop's thread only (no lock). ``retry_after()`` estimates, from the mean
    time of recent requests, how long until the line has room again.
    """

    def __init__(self, running: int, waiting: int):
        self.running = running
        self.waiting = waiting
        self.capacity = running + waiting
        self.in_flight = 0
        self.refused = 0
        self._mean_s = 0.5  # a first guess until requests have been timed

    def enter(self) -> bool:
        if self.in_flight >= self.capacity:
            self.refused += 1
            return False
        self.in_flight += 1
        return True

    def leave(self, seconds: float) -> None:
        self.in_flight -= 1
        if math.isfinite(seconds) and seconds >= 0:
            self._mean_s += 0.2 * (seconds - self._mean_s)

    def retry_after(self, most: float = 60) -> int:
        """Whole seconds, at least 1: the time for the requests held now to be worked off."""
        rounds = self.in_flight / self.running
        return int(max(1, min(most, math.ceil(self._mean_s * rounds))))

    def state(self) -> dict:
        return {"in_flight": self.in_flight, "capacity": self.capacity, "refused": self.refused}


# ---------------------------------------------------------------------------------------------
# API key

_KEY_CHARS = re.compile(r"[\x21-\x7e]+")  # visible ASCII: what any client can put in a header


def check_api_key(key: str | None) -> str | None:
    """``key`` as the service will expect it, or None for no key; :class:`ParameterError` for a key
    no client could send (empty, spaces, non-ASCII)."""
    if key is None:
        return None
    if not isinstance(key, str):
        raise ParameterError(f"the API key must be text; got {type(key).__name__}")
    if not key.strip():
        raise ParameterError(f"the API key is empty (--api-key or ${API_KEY_ENV}); leave it unset for an open service")
    if not _KEY_CHARS.fullmatch(key):
        raise ParameterError("the API key must be visible ASCII characters without spaces "
                             "(clients send it in an HTTP header)")
    return key


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The key a request carries: ``X-API-Key``, else ``Authorization: Bearer``; None if neither."""
    bearer = None
    for name, value in headers:
        if name == b"x-api-key":
            return value.strip()
        if name == b"authorization" and bearer is None:
            scheme, _, token = value.strip().partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                bearer = token.strip()
    return bearer


def needs_key(path: str) -> bool:
    return path.startswith(PROTECTED_PREFIX) and path not in OPEN_PATHS


class ApiKeyGuard:
    """ASGI middleware: requests under ``/v1/`` (but ``/v1/health``) need the API key, or get 401."""

    def __init__(self, app, api_key: str):
        self.app = app
        self._digest = _digest(check_api_key(api_key).encode("ascii"))

    def allows(self, headers) -> bool | None:
        """True for the right key, False for a wrong one, None when none was sent."""
        given = presented_key(headers)
        if given is None:
            return None
        return hmac.compare_digest(_digest(given), self._digest)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not needs_key(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        ok = self.allows(scope.get("headers", []))
        if ok:
            await self.app(scope, receive, send)
            return
        if ok is None:
            message = (f"this service needs an API key: send it in the {API_KEY_HEADER} header "
                       f"(or Authorization: Bearer KEY)")
        else:
            message = "the API key is wrong"
        # No "Connection: close": the server discards the unread body (for at most its keep-alive
        # timeout) so that the client reads this answer; closing with the body unread would reset
        # the connection and lose it.
        await _send_error(send, 401, message, extra=[(b"www-authenticate", b'Bearer realm="instrec"')])


# ---------------------------------------------------------------------------------------------
# CORS

_ORIGIN = re.compile(r"https?://[^/\s?#@]+")


def check_origins(origins: Iterable[str] | None) -> tuple[str, ...]:
    """The origins to allow, normalised (lower case, no trailing slash); ``*`` means any.
    :class:`ParameterError` for anything but ``scheme://host[:port]``."""
    out = []
    for o in origins or ():
        o = str(o).strip().rstrip("/").lower()
        if o != "*" and not _ORIGIN.fullmatch(o):
            raise ParameterError(f"a CORS origin is scheme://host[:port], like https://example.org; got {o!r}")
        if o not in out:
            out.append(o)
    return tuple(out)


class JsonCORSMiddleware(CORSMiddleware):
    """Starlette's CORS middleware; a refused preflight gets ``{"error": ...}`` instead of plain text."""

    def preflight_response(self, request_headers) -> Response:
        r = super().preflight_response(request_headers)
        if r.status_code < 400:
            return r
        keep = {k: v for k, v in r.headers.items() if k.lower().startswith("access-control-") or k.lower() == "vary"}
        text = bytes(r.body).decode("utf-8", "replace")
        return JSONResponse({"error": f"{text} (this service allows cross-origin requests only from the origins "
                                      f"it was started with, --cors-origin)"}, status_code=400, headers=keep)


def add_cors(app, origins: tuple[str, ...]) -> None:
    """Allow cross-origin GET and POST from ``origins`` (with the API key headers); none: add nothing."""
    if not origins:
        return
    app.add_middleware(JsonCORSMiddleware, allow_origins=list(origins), allow_methods=["GET", "POST"],
                       allow_headers=[API_KEY_HEADER, "Authorization"], allow_credentials=False,
                       expose_headers=["Retry-After"], max_age=600)
