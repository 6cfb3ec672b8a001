"""The service's endpoints: health, the model's description, and predicting an upload.

Each handler reads what the app holds (``request.app.state``: the model, limits, admission queue,
executor, temporary folder), set up once by :func:`instrec.service.app.create_app`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect

from .._version import __version__
from ..errors import AudioError, InstrecError, ParameterError
from ..inference import Model, check_window
from .upload import ServiceError, audio_suffix, display_name

DEFAULT_TOP_K = 3
FILE_FIELD = "file"

router = APIRouter()


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


@router.get("/v1/health", tags=["service"], summary="Is the service up?")
def health(request: Request) -> dict:
    st = request.app.state
    info = st.model.info
    return {"status": "ok", "model": info["recipe"], "engine": info["engine"], "classes": st.model.classes,
            "uptime_s": round(time.time() - st.started, 1), "version": __version__,
            "api_key_required": st.api_key_required, "load": st.admission.state()}

@router.get("/v1/model", tags=["service"], summary="The model: classes, recipe, training and measured figures")
def model_info(request: Request) -> dict:
    st = request.app.state
    d = dict(st.model.info)
    d["source"] = Path(d["source"]).name if d.get("source") else None
    return {**d, "limits": st.limits.to_dict(), "version": __version__}

@router.post(
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
    st = request.app.state
    model, limits, admission = st.model, st.limits, st.admission
    if not admission.enter():
        wait = admission.retry_after(most=limits.request_timeout_s)
        return error_response(503, f"the service is busy: {admission.in_flight} requests are being predicted or "
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
                                    upload.content_type, tmp_dir=st.tmp_dir, max_duration=limits.max_duration_s,
                                    **params)
            future = st.executor.submit(job)
            result = await asyncio.wrap_future(future)
        return JSONResponse(result)
    except TimeoutError:
        return error_response(503, f"the request took longer than the {limits.request_timeout_s:g} s limit",
                      {"Connection": "close"})
    finally:
        admission.leave(time.monotonic() - t0)
        if form is not None:
            if future is None or future.done() or future.cancel():
                _close_form(form)
            else:  # still running in its thread: close the upload when it is done
                future.add_done_callback(lambda _f, form=form: _close_form(form))


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


def error_response(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    message = " ".join(str(message).split())  # one line
    return JSONResponse({"error": message}, status_code=status, headers=headers)
