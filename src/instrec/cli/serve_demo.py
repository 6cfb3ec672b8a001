"""The commands that run instrec as a whole: serve (the HTTP service and its web page) and demo (the main job)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..display import progress_bars as _progress
from .common import EngineName, _choice, _examples, _need, app

LogLevel = _choice("LogLevel", "critical", "error", "warning", "info", "debug")


@app.command(epilog=_examples(
    ("instrec serve", "the shipped model on http://127.0.0.1:8000 (the page at /)"),
    ("instrec serve model --host 0.0.0.0 --allowed-host music.example.org", "your model, to other machines"),
    ("INSTREC_API_KEY=secret instrec serve model.onnx --engine onnx", "/v1/ asks for the key (X-API-Key), without PyTorch"),
))
def serve(
    model: Optional[Path] = typer.Argument(None, help="model folder or .onnx file (default: the shipped model)"),
    host: str = typer.Option("127.0.0.1", help="address to listen on (0.0.0.0: every interface)"),
    port: int = typer.Option(8000, min=0, max=65535, help="TCP port"),
    engine: EngineName = typer.Option(EngineName.auto, "--engine", help="auto (onnxruntime where the model carries a current model.onnx, else torch), torch, or onnx"),
    max_upload_mb: float = typer.Option(20.0, "--max-upload-mb", help="largest upload in MB, enforced while it streams in"),
    max_duration: float = typer.Option(600.0, "--max-duration", help="longest recording in seconds, checked before decoding"),
    request_timeout: float = typer.Option(60.0, "--request-timeout", help="seconds per request before a 503"),
    max_concurrent: Optional[int] = typer.Option(None, "--max-concurrent", min=1, help="predictions at once (default: up to 4, one per core)"),
    max_queue: Optional[int] = typer.Option(None, "--max-queue", min=0, help="requests that may wait beside those at work; "
                                            "more get 503 with Retry-After (default: 4 x --max-concurrent, at least 16)"),
    header_timeout: float = typer.Option(10.0, "--header-timeout", help="seconds a connection has to send a request's "
                                         "headers (and the most an upload may fall behind --min-upload-rate); then it is closed"),
    min_upload_rate: float = typer.Option(10.0, "--min-upload-rate", min=0, help="kB/s an upload must keep up; a slower "
                                          "or stalled one is cut off with 408 (0: no minimum)"),
    max_connections: int = typer.Option(256, "--max-connections", min=1, help="open connections at most; at the cap "
                                        "the longest idle one is closed, or the new one gets 503"),
    keep_alive: float = typer.Option(5.0, "--keep-alive", help="seconds an idle connection is kept for the next request"),
    cors_origin: Optional[List[str]] = typer.Option(None, "--cors-origin", help="let pages from this origin "
                                                    "(https://host[:port], or *) call the API; repeatable (default: none)"),
    allowed_host: Optional[List[str]] = typer.Option(None, "--allowed-host", help="also answer requests for this host "
                                                     "name (name[:port], *.domain, or *: any); repeatable (default: the "
                                                     "address listened on, and localhost on loopback; others get 421)"),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="INSTREC_API_KEY", show_default=False,
                                          help="require this key (X-API-Key or Authorization: Bearer) under /v1/ "
                                               "but /v1/health; prefer $INSTREC_API_KEY, which ps does not show"),
    log_level: LogLevel = typer.Option(LogLevel.info, "--log-level", case_sensitive=False, help="critical, error, warning, info or debug"),
):
    """HTTP service and web page: POST /v1/predict, GET /v1/health, GET /v1/model, / (the page), /openapi.json."""
    for option, value in (("--max-upload-mb", max_upload_mb), ("--max-duration", max_duration),
                          ("--request-timeout", request_timeout), ("--header-timeout", header_timeout),
                          ("--keep-alive", keep_alive)):
        _check_positive(option, value)
    _need("fastapi", "uvicorn", "multipart")
    _check_listen(host, port)  # before the model loads: uvicorn would say it in four log lines and exit 3
    from ..service import Limits
    from ..service.server import serve as run_server

    limits = Limits(max_upload_bytes=int(max_upload_mb * 1_000_000), max_duration_s=max_duration,
                    request_timeout_s=request_timeout,
                    **({"max_concurrent": max_concurrent} if max_concurrent else {}),
                    **({"max_queue": max_queue} if max_queue is not None else {}),
                    header_timeout_s=header_timeout, min_upload_rate=min_upload_rate * 1000,
                    max_connections=max_connections, keep_alive_s=keep_alive)
    run_server(model, host=host, port=port, limits=limits, engine=engine.value, log_level=log_level.value,
               api_key=api_key, cors_origins=cors_origin, allowed_hosts=allowed_host)


def _check_positive(option: str, value: float) -> None:
    """A limit in seconds or MB: finite and above 0 (NaN would pass every comparison, inf overflow the byte count)."""
    import math

    from ..errors import ParameterError

    if not (math.isfinite(value) and value > 0):
        raise ParameterError(f"{option} {value:g}: give a positive number")


def _check_listen(host: str, port: int) -> None:
    """Refuse an address that is no address ('' would listen on every interface unseen), one that does not
    resolve, and a port that cannot be bound (in use, or privileged): one line, not uvicorn's log."""
    import socket

    from ..errors import InstrecError, ParameterError

    if not host.strip():
        raise ParameterError(f"--host {host!r}: name an address to listen on (127.0.0.1, or 0.0.0.0 for every interface)")
    from ..service.server import bound_socket

    try:
        bound_socket(host, port).close()
    except (socket.gaierror, UnicodeError) as e:
        raise ParameterError(f"--host {host!r}: not an address of this machine ({getattr(e, 'strerror', None) or e})") from None
    except OSError as e:
        raise InstrecError(f"cannot listen on {host}:{port} (--host, --port): {e.strerror or e}") from None


@app.command(epilog=_examples(
    ("instrec demo", "600 FluidR3 clips, both tutorial recipes, instrec-demo/report.md"),
    ("instrec demo --data my/recordings --out my-demo", "your own labelled folder instead of the renders"),
    ("instrec demo --soundfont musescore --per-class 20 --seed 1", "a smaller, different render"),
))
def demo(
    data: Optional[Path] = typer.Option(None, metavar="DIR", help="your own labelled folder instead of the built-in renders"),
    out: str = typer.Option("instrec-demo", metavar="DIR", help="where data, models and reports go"),
    per_class: int = typer.Option(100, "--per-class", min=2, metavar="N", help="rendered clips per instrument"),
    soundfont: str = typer.Option("fluidr3", metavar="NAME", help="SoundFont of the built-in data"),
    seed: int = typer.Option(0, metavar="N", help="seeds rendering, split and training"),
):
    """The main job: render → features → train both tutorial recipes → evaluate → report."""
    from ..data.outdir import out_path
    from .checks import check_demo_out

    out = out_path(out, "--out")  # typed as text: '' would be Path('.'), the current folder
    check_demo_out(out)
    _need("fluidsynth", "torch", "safetensors", "matplotlib")
    from ..demo import run_demo

    with _progress() as progress:
        report = run_demo(out, data=data, per_class=per_class, soundfont=soundfont, seed=seed, progress=progress,
                          log=lambda s: typer.echo(s, err=True))
    typer.echo(report.read_text())
