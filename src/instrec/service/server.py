"""Run the service with uvicorn: in the foreground (``serve``) or in a background thread (``running``).

Both use :func:`uvicorn_config`: uvicorn's HTTP/1.1 protocol (h11) with the connection limits of
:class:`~instrec.service.app.Limits` that uvicorn lacks (:class:`GuardedH11Protocol`): a deadline for
each request head that trickling bytes do not push back, for the body of a request already answered
(which uvicorn otherwise discards for as long as the client sends it), and a cap on open
connections. The keep-alive timeout is uvicorn's own (``timeout_keep_alive``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import threading
import time
from typing import Iterable, Iterator

from .. import memory
from ..inference import Model
from .app import Limits, create_app
from .upload import error_body


def serve(model: Model | str | os.PathLike | None = None, *, host: str = "127.0.0.1", port: int = 8000,
          limits: Limits | None = None, engine: str = "auto", log_level: str = "info",
          tmp_dir: str | os.PathLike | None = None, api_key: str | None = None,
          cors_origins: Iterable[str] | None = None, allowed_hosts: Iterable[str] | None = None) -> None:
    """Load ``model`` (None: the shipped one), then serve it on ``host:port`` until interrupted.

    The web page is at ``/``, the API under ``/v1/`` and its description at ``/openapi.json``.
    ``api_key``, ``cors_origins`` and ``allowed_hosts``: see :func:`~instrec.service.app.create_app`.
    The process keeps to one malloc arena (:func:`instrec.memory.limit_arenas`) so that its
    memory stays flat over days of uploads.
    Raises :class:`~instrec.errors.BundleError` (no model) or :class:`~instrec.errors.ParameterError`
    before binding the port when the model, the limits, the key, the origins or the hosts are wrong,
    and :class:`OSError` where the port cannot be bound (in use, privileged).
    """
    import uvicorn

    memory.limit_arenas()  # before the model's and the executor's threads allocate
    app = create_app(model, limits=limits, engine=engine, tmp_dir=tmp_dir, api_key=api_key,
                     cors_origins=cors_origins, allowed_hosts=allowed_hosts)
    sock = bound_socket(host, port)  # before the lines below: with port 0 they name the port the system chose
    port = sock.getsockname()[1]
    if log_level in ("info", "debug"):
        shown = f"[{host}]" if ":" in host else host
        m = app.state.model
        lim = app.state.limits
        print(f"instrec: serving the {m.info['recipe']} model ({', '.join(m.classes)}) on http://{shown}:{port}/ "
              f"- web page at /, API description at /openapi.json", file=sys.stderr, flush=True)
        print(f"instrec: {lim.max_concurrent} predictions at once, {lim.max_queue} more may wait; "
              f"API key {'required' if app.state.api_key_required else 'not required'}; "
              f"cross-origin requests {'from ' + ', '.join(app.state.cors_origins) if app.state.cors_origins else 'refused'}",
              file=sys.stderr, flush=True)
        hosts = app.state.allowed_hosts
        print(f"instrec: answers to the address a client connects to"
              f"{' (and localhost)' if host in ('127.0.0.1', '::1', 'localhost', '0.0.0.0', '::') else ''}"
              f"{', ' + ', '.join(hosts) if hosts else ''} (--allowed-host adds names); at most "
              f"{lim.max_connections} connections, {lim.header_timeout_s:g} s for a request's headers, "
              + (f"uploads at {lim.min_upload_rate / 1000:g} kB/s or faster" if lim.min_upload_rate else "no minimum upload rate"),
              file=sys.stderr, flush=True)
    warning = exposure_warning(host, app.state.api_key_required)
    if warning and log_level not in ("error", "critical"):
        print(f"instrec: warning: {warning}", file=sys.stderr, flush=True)
    if log_level != "debug":  # one line per malformed upload ("Expected boundary character ..."): the client got a 400
        logging.getLogger("python_multipart").setLevel(logging.ERROR)
    config = uvicorn_config(app, host=host, port=port, log_level=log_level, access_log=log_level == "debug",
                            timeout_graceful_shutdown=5)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()


def bound_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (IPv4 or IPv6, as ``host`` resolves; port 0: a free one),
    bound as uvicorn binds (``SO_REUSEADDR``: a port in TIME_WAIT is free)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


def exposure_warning(host: str, api_key_required: bool) -> str | None:
    """What to tell the user who serves beyond this machine with no API key (None: nothing)."""
    import ipaddress

    if api_key_required or host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host.strip("[]")).is_loopback:
            return None
    except ValueError:  # a host name: it may be reached from elsewhere
        pass
    return (f"listening on {host} without an API key: anyone who reaches this address can use the service "
            "(set $INSTREC_API_KEY, or listen on 127.0.0.1)")


def uvicorn_config(app, **kwargs):
    """uvicorn's Config for ``app``, with the connection limits of ``app.state.limits``."""
    import uvicorn

    limits: Limits = app.state.limits
    protocol = type("InstrecH11Protocol", (guarded_h11_protocol(),), {"limits": limits})
    return uvicorn.Config(app, http=protocol, timeout_keep_alive=limits.keep_alive_s, **kwargs)


_PROTOCOL = None


def guarded_h11_protocol():
    """:class:`GuardedH11Protocol`, defined on first use (it needs uvicorn and h11)."""
    global _PROTOCOL
    if _PROTOCOL is None:
        _PROTOCOL = _define_protocol()
    return _PROTOCOL


def _define_protocol():
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        """uvicorn's h11 protocol with a deadline for each request head and a connection cap.

        A connection waits for a request head from the moment it opens, or from its first byte
        after an answer (until then uvicorn's keep-alive timeout applies). The head must be
        complete within ``limits.header_timeout_s``, however the bytes trickle in; else the
        connection is closed, with a 408 if part of a head had come. The same deadline closes a
        connection whose client still sends the body of a request already answered.

        At ``limits.max_connections``, a new connection closes the one waiting longest for a
        request head; when none is waiting (every connection has a request in progress), the new
        connection is answered 503 and closed.
        """

        limits: Limits  # set by uvicorn_config's subclass

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._head_timer: asyncio.TimerHandle | None = None
            self._head_bytes = 0
            self._waiting_since = time.monotonic()

        # -- state
        def waiting_for_head(self) -> bool:
            """No request in progress: idle, a head arriving, or an answered request's body."""
            return self.cycle is None or self.cycle.response_complete

        # -- connection
        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._waiting_since = time.monotonic()
            self._arm()
            self._enforce_cap()

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self.waiting_for_head():
                if self._head_timer is None:
                    self._arm()
                self._head_bytes += len(data)
            super().data_received(data)

        def handle_events(self) -> None:
            super().handle_events()
            if not self.waiting_for_head():
                self._disarm()
                self._head_bytes = 0

        def on_response_complete(self) -> None:
            self._waiting_since = time.monotonic()
            self._head_bytes = 0
            if self.conn.their_state is h11.SEND_BODY:  # answered before its body was read: discard it, briefly
                self._arm()
            super().on_response_complete()

        # -- the head deadline
        def _arm(self) -> None:
            self._disarm()
            self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self._head_timeout)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timeout(self) -> None:
            self._head_timer = None
            if self.transport.is_closing() or not self.waiting_for_head():
                return
            if self._head_bytes and self.conn.their_state is h11.IDLE:
                self._write_raw(408, f"the request's headers did not arrive within {self.limits.header_timeout_s:g} s")
            self._close()

        # -- the cap
        def _enforce_cap(self) -> None:
            if len(self.connections) <= self.limits.max_connections:
                return
            open_ = [c for c in self.connections if c.transport is not None and not c.transport.is_closing()]
            if len(open_) <= self.limits.max_connections:  # the rest are closing already
                return
            waiting = [c for c in open_ if c is not self and isinstance(c, GuardedH11Protocol) and c.waiting_for_head()]
            if waiting:
                min(waiting, key=lambda c: c._waiting_since)._close()
                return
            self._write_raw(503, f"the service holds {self.limits.max_connections} connections, the most it "
                                 f"keeps, each with a request in progress; try again later",
                            [(b"retry-after", b"5")])
            self._close()

        # -- helpers
        def _write_raw(self, status: int, message: str, extra=()) -> None:
            """An answer written before h11 has a request to answer (it would refuse to send one)."""
            body = error_body(message)
            reason = {408: b"Request Timeout", 503: b"Service Unavailable"}[status]
            head = [b"HTTP/1.1 %d %s" % (status, reason), b"content-type: application/json",
                    b"content-length: %d" % len(body), b"connection: close", *(k + b": " + v for k, v in extra)]
            self.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)

        def _close(self) -> None:
            self._disarm()
            if not self.transport.is_closing():
                with contextlib.suppress(h11.LocalProtocolError):
                    self.conn.send(h11.ConnectionClosed())
                self.transport.close()

    return GuardedH11Protocol


@contextlib.contextmanager
def running(app, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning",
            timeout: float = 30.0) -> Iterator[str]:
    """Serve ``app`` (from :func:`~instrec.service.app.create_app`) with uvicorn in a background
    thread, with the same connection limits as :func:`serve`; yields its base URL (``http://host:port``).

    ``port=0`` picks a free port. The server is stopped when the block ends.
    """
    import uvicorn

    sock = bound_socket(host, port)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app, log_level=log_level, timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="instrec-uvicorn")
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError(f"the server did not start on {host}:{port}")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
