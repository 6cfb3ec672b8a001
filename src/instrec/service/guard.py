"""The service under pressure: a bounded line of requests, an optional API key, closed-by-default
CORS, and checks of the Host and Origin headers.

:class:`Admission` counts the prediction requests the service holds once their upload has arrived
(waiting for a worker thread, or being predicted); past its capacity a request is answered 503
with ``Retry-After``, at once and before any of its body is read when the line is full as the
request comes in. Uploads still arriving are not counted, so slow clients cannot fill the line;
they are bounded by the connection cap, the minimum upload rate and the size and time limits.

:class:`HostOriginGuard` is the outermost ASGI middleware: a request whose ``Host`` is not the
address the client connected to (or, on loopback, ``localhost``/``127.0.0.1``/``[::1]`` with that
port), nor one of the allowed hosts (:func:`check_hosts`), gets 421: a page on another site cannot
reach the service through DNS rebinding. A request that changes state (POST, PUT, ...) whose
``Origin`` is neither the service's own nor an allowed CORS origin gets 403: another site's page
cannot make a visitor's browser drive the service with a form post.

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
import ipaddress
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

    def full(self) -> bool:
        """True (and the refusal counted) when the line has no room now."""
        if self.in_flight >= self.capacity:
            self.refused += 1
            return True
        return False

    def enter(self) -> bool:
        if self.full():
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


# ---------------------------------------------------------------------------------------------
# Host and Origin: no DNS rebinding, no cross-site form posts

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?")
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def check_hosts(hosts: Iterable[str] | None) -> tuple[str, ...]:
    """The extra ``Host`` values to accept, normalised (lower case): ``name``, ``name:port``,
    ``*.domain`` (any sub-domain), an IP address (IPv6 in brackets), or ``*`` (any: no check).
    :class:`ParameterError` for anything else (a URL, a path, spaces)."""
    out = []
    for h in hosts or ():
        h = str(h).strip().lower()
        if h != "*" and _split_host(h, wildcard=True) is None:
            raise ParameterError(f"an allowed host is a name or address with an optional port, like "
                                 f"instrec.example.org, *.example.org, 192.168.1.20:8000 or [::1]; got {h!r}")
        if h not in out:
            out.append(h)
    return tuple(out)


def _split_host(value: str, *, wildcard: bool = False) -> tuple[str, int | None] | None:
    """``(host, port or None)`` of a Host header value (or, ``wildcard``, an allowed host, which may
    start with ``*.``), lower case; None if malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep:
            return None
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
        host = f"[{host}]"
        if not rest:
            return host, None
        if not rest.startswith(":"):
            return None
        port = rest[1:]
    else:
        host, sep, port = value.partition(":")
        if not sep:
            port = None
        if not _HOST_NAME.fullmatch(host.removeprefix("*.") if wildcard else host):
            return None
        host = host.rstrip(".")
    if port is None:
        return host, None
    if not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host, int(port)


def _host_form(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _is_loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address == "localhost"
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


class HostOriginGuard:
    """ASGI middleware: 421 for a ``Host`` the service does not answer to, 403 for a cross-origin
    request that changes state (see the module's description)."""

    def __init__(self, app, allowed_hosts: tuple[str, ...] = (), cors_origins: tuple[str, ...] = ()):
        self.app = app
        self.any_host = "*" in allowed_hosts
        self.allowed = [_split_host(h, wildcard=True) for h in allowed_hosts if h != "*"]
        self.any_origin = "*" in cors_origins
        self.cors_origins = frozenset(cors_origins)

    def host_allowed(self, host: tuple[str, int | None], server, scheme: str) -> bool:
        name, port = host
        if self.any_host:
            return True
        default = 443 if scheme in ("https", "wss") else 80
        if server is not None and server[0]:
            bound, bound_port = str(server[0]).lower(), server[1]
            names = {_host_form(bound)}
            try:
                mapped = ipaddress.ip_address(bound).ipv4_mapped  # ::ffff:127.0.0.1 on a dual-stack socket
            except (ValueError, AttributeError):
                mapped = None
            if mapped is not None:
                names.add(str(mapped))
            if _is_loopback(bound):
                names.update(LOOPBACK_NAMES)
            if name in names and (port if port is not None else default) == bound_port:
                return True
        for a_name, a_port in self.allowed:
            if a_port is not None and a_port != (port if port is not None else default):
                continue
            if a_name == name or (a_name.startswith("*.") and name.endswith(a_name[1:])):
                return True
        return False

    def origin_allowed(self, origin: str, host: tuple[str, int | None], scheme: str) -> bool:
        origin = origin.strip().lower().rstrip("/")
        if self.any_origin or origin in self.cors_origins:
            return True
        o_scheme, sep, rest = origin.partition("://")
        if not sep or o_scheme not in ("http", "https"):
            return False  # "null" (sandboxed frames, file: pages) and the like
        o = _split_host(rest)
        if o is None:
            return False
        o_port = o[1] if o[1] is not None else (443 if o_scheme == "https" else 80)
        name, port = host
        if o[0] != name:
            return False
        if port is not None:
            return o_port == port
        # no port in Host: the default port of the scheme the client used (behind a TLS proxy
        # the service may see http where the browser used https)
        return o_port in (80, 443)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        values = [v for n, v in scope.get("headers", []) if n == b"host"]
        scheme = scope.get("scheme", "http")
        if len(values) != 1:
            await _send_error(send, 400, "the request needs exactly one Host header")
            return
        raw = values[0].decode("latin-1")
        host = _split_host(raw)
        if host is None or not self.host_allowed(host, scope.get("server"), scheme):
            shown = raw if raw.isprintable() and len(raw) <= 100 else ascii(raw[:100])
            await _send_error(send, 421, f"this service does not answer to the host {shown}: use the address it "
                                         f"listens on, or start it with --allowed-host NAME")
            return
        method = scope.get("method", "GET")
        if method not in SAFE_METHODS:
            origin = next((v.decode("latin-1") for n, v in scope.get("headers", []) if n == b"origin"), None)
            fetch_site = next((v for n, v in scope.get("headers", []) if n == b"sec-fetch-site"), None)
            if origin is not None:
                refused = not self.origin_allowed(origin, host, scheme)
            else:  # no Origin (curl, scripts); a browser that says the request is cross-site is refused
                refused = fetch_site == b"cross-site" and not self.any_origin
            if refused:
                shown = origin if origin is not None and origin.isprintable() and len(origin) <= 100 else "another site"
                await _send_error(send, 403, f"cross-origin {method} from {shown} refused: only the service's own "
                                             f"pages and the origins it was started with (--cors-origin) may send it")
                return
        await self.app(scope, receive, send)
