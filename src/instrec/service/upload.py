"""Uploads: a request-body size limit that holds while the body streams in, file names, file types.

:class:`BodyLimit` is a plain ASGI middleware. It refuses a request whose ``Content-Length`` is over
the limit before reading any of its body, and counts the bytes of every other body (chunked
uploads have no length) as the application reads them: the read that passes the limit raises
:class:`UploadTooLarge`, so the server stops reading there and answers 413. With a minimum rate it
also times each read: a body that stalls or trickles (slowloris) raises :class:`UploadTooSlow`, 408.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import unicodedata

from ..audio import AUDIO_EXTENSIONS


class ServiceError(Exception):
    """An error the service answers with ``status`` and ``{"error": message}``."""

    status = 400

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class UploadTooLarge(ServiceError):
    status = 413


class UnsupportedType(ServiceError):
    status = 415


class UploadTooSlow(ServiceError):
    status = 408


def too_large_message(limit: int) -> str:
    return f"the upload is larger than the {format_bytes(limit)} limit"


def format_bytes(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:g} MB"
    if n >= 1_000:
        return f"{n / 1_000:g} kB"
    return f"{n} bytes"


def error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


class BodyLimit:
    """ASGI middleware: refuse HTTP request bodies larger than ``max_bytes`` with 413, and (with
    ``min_rate``) bodies that arrive slower than ``min_rate`` bytes/s with 408.

    ``Content-Length`` over the limit: answered at once, the body is never read. Otherwise the
    bytes are counted as the app receives them, and the message that passes the limit raises
    :class:`UploadTooLarge` inside the app's read (the app's error handler answers 413; should the
    exception reach this middleware before a response has started, it answers itself).

    The rate: the body starts with ``patience_s`` seconds of credit, each byte that comes adds
    ``1 / min_rate`` s, and the credit never exceeds ``patience_s``; a read that finds the credit
    spent raises :class:`UploadTooSlow`. A body at ``min_rate`` or faster is never cut off (the
    request's time limit still holds); one that stalls is cut off ``patience_s`` into the stall;
    one trickling at ``r < min_rate`` after ``patience_s / (1 - r / min_rate)`` s.
    """

    def __init__(self, app, max_bytes: int, min_rate: float = 0.0, patience_s: float = 10.0):
        self.app = app
        self.max_bytes = int(max_bytes)
        self.min_rate = float(min_rate)
        self.patience_s = float(patience_s)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        length = _content_length(scope)
        if length is not None and length > limit:
            await _send_error(send, 413, too_large_message(limit), close=True)
            return
        received = 0
        rate, patience = self.min_rate, self.patience_s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience  # when the body's credit runs out
        body_done = False

        async def limited_receive():
            nonlocal received, deadline, body_done
            if rate > 0 and not body_done:
                left = deadline - loop.time()
                try:
                    if left <= 0:
                        raise TimeoutError
                    async with asyncio.timeout(left):
                        message = await receive()
                except TimeoutError:
                    raise UploadTooSlow(too_slow_message(rate, received)) from None
            else:
                message = await receive()
            if message["type"] == "http.request":
                n = len(message.get("body", b""))
                received += n
                if received > limit:
                    raise UploadTooLarge(too_large_message(limit))
                if rate > 0:
                    deadline = min(loop.time() + patience, deadline + n / rate)
                if not message.get("more_body", False):
                    body_done = True
            else:
                body_done = True
            return message

        started = False

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except (UploadTooLarge, UploadTooSlow) as e:
            if started:
                raise
            await _send_error(send, e.status, e.message, close=True)


def too_slow_message(rate: float, received: int) -> str:
    return (f"the upload arrived too slowly (under {format_bytes(int(rate))}/s; {format_bytes(received)} "
            f"came): it was cut off")


def _content_length(scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_error(send, status: int, message: str, *, close: bool = False,
                      extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = error_body(message)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += extra or []
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# ---------------------------------------------------------------------------------------------
# File names and types

CONTENT_TYPES = {
    "audio/wav": ".wav", "audio/x-wav": ".wav", "audio/wave": ".wav", "audio/vnd.wave": ".wav",
    "audio/flac": ".flac", "audio/x-flac": ".flac",
    "audio/ogg": ".ogg", "application/ogg": ".ogg", "audio/vorbis": ".ogg",
    "audio/mpeg": ".mp3", "audio/mp3": ".mp3", "audio/mpeg3": ".mp3",
}
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1 controls: removed
_KEEP_FORMAT = frozenset("\u200c\u200d")  # zero-width (non-)joiner: needed to spell some scripts


def _neutral(ch: str) -> str:
    """Invisible characters that change how a name displays (bidirectional overrides and
    isolates such as U+202E, other format characters, line and paragraph separators, lone
    surrogates): U+FFFD, so that the reader sees something was there."""
    if ch in _KEEP_FORMAT:
        return ch
    if unicodedata.category(ch) in ("Cf", "Zl", "Zp", "Cs"):
        return "\ufffd"
    return ch


def display_name(filename: str | None) -> str:
    """The client's file name, for display only: its last path component, at most 200
    characters, without control characters (C0, DEL, C1: removed) and with bidirectional
    controls and other invisible format characters replaced by U+FFFD (a name like
    ``"evil\\u202egnp.exe"`` cannot pose as ``evilexe.png``). ``"upload"`` when there is none."""
    name = unicodedata.normalize("NFC", filename or "")
    name = re.split(r"[\\/]", name)[-1]
    name = _UNSAFE.sub("", name)
    name = "".join(_neutral(ch) if not ch.isprintable() else ch for ch in name).strip()
    if len(name) > 200:
        stem, ext = os.path.splitext(name)
        name = stem[: 200 - len(ext[:16])] + ext[:16]
    return name or "upload"


def audio_suffix(name: str, content_type: str | None, head: bytes) -> str:
    """The extension to decode an upload as, from its file name, declared content type and first
    bytes ``head``; :class:`UnsupportedType` when it is not audio the service reads.

    The file name's extension decides when it has one; a name without one falls back on the
    content type, then on the content. Non-empty content must start like wav, flac, ogg or mp3
    (an empty file is left to the decoder, which says it is empty).
    """
    ext = os.path.splitext(name)[1].lower()
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ext and ext not in AUDIO_EXTENSIONS:
        raise UnsupportedType(f"{name}: a {ext} file is not audio the service reads ({', '.join(AUDIO_EXTENSIONS)})")
    found = sniff_audio(head)
    if not ext:
        ext = CONTENT_TYPES.get(ctype) or (f".{found}" if found else "")
        if not ext:
            raise UnsupportedType(f"{name}: the file name has no audio extension and the content "
                                  f"({describe_content(head) if head else 'empty'}) is not audio the "
                                  f"service reads ({', '.join(AUDIO_EXTENSIONS)})")
    if head and found is None:
        raise UnsupportedType(f"{name}: the content is not wav, flac, ogg or mp3 audio "
                              f"(it looks like {describe_content(head)})")
    return ext


def sniff_audio(head: bytes) -> str | None:
    """The audio container the first bytes of a file announce (wav, flac, ogg, mp3), else None."""
    if len(head) >= 12 and head[:4] in (b"RIFF", b"RIFX", b"RF64", b"BW64") and head[8:12] in (b"WAVE", b"BW64"):
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"
    return None


def describe_content(head: bytes) -> str:
    """A few words on what non-audio content looks like, for the 415 message."""
    known = {b"\x89PNG": "a PNG image", b"%PDF": "a PDF document", b"PK\x03\x04": "a zip archive",
             b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image", b"\x1aE\xdf\xa3": "WebM/Matroska",
             b"FORM": "AIFF (not read here)"}
    for magic, what in known.items():
        if head.startswith(magic):
            return what
    if len(head) >= 8 and head[4:8] == b"ftyp":
        return "MP4/M4A (not read here)"
    if all(b >= 0x20 or b in b"\t\r\n" for b in head):
        return "text"
    return "unknown binary data"
