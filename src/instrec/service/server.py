"""Run the service with uvicorn: in the foreground (``serve``) or in a background thread (``running``)."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import threading
import time
from typing import Iterable, Iterator

from ..inference import Model
from .app import Limits, create_app


def serve(model: Model | str | os.PathLike | None = None, *, host: str = "127.0.0.1", port: int = 8000,
          limits: Limits | None = None, engine: str = "auto", log_level: str = "info",
          tmp_dir: str | os.PathLike | None = None, api_key: str | None = None,
          cors_origins: Iterable[str] | None = None) -> None:
    """Load ``model`` (None: the shipped one), then serve it on ``host:port`` until interrupted.

    The web page is at ``/``, the API under ``/v1/`` and its description at ``/docs``.
    ``api_key`` and ``cors_origins``: see :func:`~instrec.service.app.create_app`.
    Raises :class:`~instrec.errors.BundleError` (no model) or :class:`~instrec.errors.ParameterError`
    before binding the port when the model, the limits, the key or the origins are wrong.
    """
    import uvicorn

    app = create_app(model, limits=limits, engine=engine, tmp_dir=tmp_dir, api_key=api_key,
                     cors_origins=cors_origins)
    if log_level in ("info", "debug"):
        shown = f"[{host}]" if ":" in host else host
        m = app.state.model
        lim = app.state.limits
        print(f"instrec: serving the {m.info['recipe']} model ({', '.join(m.classes)}) on http://{shown}:{port}/ "
              f"- web page at /, API docs at /docs", file=sys.stderr, flush=True)
        print(f"instrec: {lim.max_concurrent} predictions at once, {lim.max_queue} more may wait; "
              f"API key {'required' if app.state.api_key_required else 'not required'}; "
              f"cross-origin requests {'from ' + ', '.join(app.state.cors_origins) if app.state.cors_origins else 'refused'}",
              file=sys.stderr, flush=True)
    if log_level != "debug":  # one line per malformed upload ("Expected boundary character ..."): the client got a 400
        logging.getLogger("python_multipart").setLevel(logging.ERROR)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=log_level == "debug",
                            timeout_graceful_shutdown=5)
    uvicorn.Server(config).run()


@contextlib.contextmanager
def running(app, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning",
            timeout: float = 30.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a background thread; yields its base URL (``http://host:port``).

    ``port=0`` picks a free port. The server is stopped when the block ends.
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=2))
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
