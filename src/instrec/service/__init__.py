"""instrec as an HTTP service: a JSON API (``/v1/predict``, ``/v1/health``, ``/v1/model``) and a web page.

>>> from instrec.service import Limits, create_app, serve
>>> serve(None, host="127.0.0.1", port=8000, limits=Limits(max_upload_bytes=50_000_000))  # doctest: +SKIP

``create_app`` gives the ASGI app for any ASGI server; ``running`` serves one in a background
thread (tests, benchmarks). Under pressure: upload, time, concurrency and queue limits
(:class:`Limits`), an optional API key and CORS origins (``create_app(api_key=..., cors_origins=...)``,
see :mod:`instrec.service.guard`). Needs fastapi, uvicorn and python-multipart.
"""

from __future__ import annotations

from .app import Limits, create_app
from .server import running, serve

__all__ = ["Limits", "create_app", "serve", "running"]
