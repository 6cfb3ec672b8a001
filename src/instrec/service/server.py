"""Run the service with uvicorn: in the foreground (``serve``) or in a background thread (``running``)."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
from typing import Iterator

from ..inference import Model
from .app import Limits, create_app


def serve(model: Model | str | os.PathLike | None = None, *, host: str = "127.0.0.1", port: int = 8000,
          limits: Limits | None = None, engine: str = "torch", log_level: str = "info",
          tmp_dir: str | os.PathLike | None = None) -> None:
    """Load ``model`` (None: the shipped one), then serve it on ``host:port`` until interrupted.

    The web page is at ``/``, the API under ``/v1/`` and its description at ``/docs``.
    Raises :class:`~instrec.errors.BundleError` (no model) or :class:`~instrec.errors.ParameterError`
    before binding the port when the model or the limits are wrong.
    """
    import uvicorn

    app = create_app(model, limits=limits, engine=engine, tmp_dir=tmp_dir)
    if log_level in ("info", "debug"):
        shown = f"[{host}]" if ":" in host else host
        m = app.state.model
        print(f"instrec: serving the {m.info['recipe']} model ({', '.join(m.classes)}) on http://{shown}:{port}/ "
              f"- web page at /, API docs at /docs", file=sys.stderr, flush=True)
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
