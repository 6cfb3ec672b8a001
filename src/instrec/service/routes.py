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
import re
import shutil
import tempfile
import time
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.datastructures import QueryParams, UploadFile
from starlette.requests import ClientDisconnect

from .. import memory
from .._version import __version__
from ..display import SHOWN_CLASSES
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
    403: "a cross-origin request from a page the service does not allow (--cors-origin)",
    408: "the upload arrived slower than the minimum rate (stalled or trickling)",
    413: "the request body is over the upload size limit",
    415: "the file is not wav, flac, ogg or mp3 audio (by name or content)",
    421: "the Host header does not name this service (--allowed-host)",
    422: "the audio cannot be used (undecodable, empty, silent, NaN, too long), or an option is out of range, "
         "unknown (a query parameter) or given twice with different values",
    503: "the service is busy (too many requests held: see Retry-After), the request took longer "
         "than the time limit, or the server had no room to store the upload",
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
                                   "(a single-label model's probabilities are rescaled to sum to 1)"},
        "min_confidence": {"type": "number", "minimum": 0, "maximum": 1,
                           "description": "answer `unknown` when the likeliest class's probability is below this "
                                          "(default: the model's own; 0: never for doubt). "
                                          "A multi-label model uses its own per-instrument thresholds instead"},
        "level": {"type": "string", "enum": ["instrument", "family"], "default": "instrument",
                  "description": "answer with the instrument, or with its family (`label` and `probabilities` "
                                 "are then the families')"},
    },
}

# Every option is a form field or a query parameter of the same name, read and checked alike.
OPTIONS = tuple(name for name in _PREDICT_FORM["properties"] if name != FILE_FIELD)

_PREDICT_QUERY = [{"name": name, "in": "query", "required": False,
                   "schema": {k: v for k, v in prop.items() if k != "description"},
                   "description": f"{prop['description']}; also the form field `{name}`"}
                  for name, prop in _PREDICT_FORM["properties"].items() if name != FILE_FIELD]

_PREDICT_EXAMPLE = {
    "path": "flute.wav", "label": "flute", "family": "woodwinds",
    "probabilities": {"cello": 0.001, "flute": 0.97, "oboe": 0.02, "saxophone": 0.004, "trumpet": 0.003, "viola": 0.002},
    "family_probabilities": {"bowed-strings": 0.003, "woodwinds": 0.994, "brass": 0.003},
    "duration": 3.0, "top": [["flute", 0.97], ["oboe", 0.02], ["saxophone", 0.004]],
}

# A multi-label model (GET /v1/model: "multilabel": true) also says who plays when.
_PREDICT_MULTILABEL_EXAMPLE = {
    "path": "duet.wav", "label": "flute", "family": "woodwinds",
    "probabilities": {"cello": 0.91, "flute": 0.97, "trumpet": 0.03},
    "family_probabilities": {"bowed-strings": 0.91, "woodwinds": 0.97, "brass": 0.03},
    "instruments": [{"label": "flute", "family": "woodwinds", "probability": 0.97,
                     "segments": [{"start": 0.0, "end": 6.75}]},
                    {"label": "cello", "family": "bowed-strings", "probability": 0.91,
                     "segments": [{"start": 3.75, "end": 9.0}]}],
    "duration": 9.0, "window": 3.0, "hop": 1.5,
    "windows": [{"start": 0.0, "end": 3.0, "label": "flute", "family": "woodwinds", "active": ["flute"],
                 "silent": False, "probabilities": {"cello": 0.08, "flute": 0.97, "trumpet": 0.01},
                 "family_probabilities": {"bowed-strings": 0.08, "woodwinds": 0.97, "brass": 0.01}}],
    "segments": [{"start": 0.0, "end": 9.0, "label": "flute", "probability": 0.9}],
    "top": [["flute", 0.97], ["cello", 0.91], ["trumpet", 0.03]],
}


@router.head("/v1/health", include_in_schema=False)  # uptime checks probe with HEAD
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
    # display.shown_classes: how many classes the page's timeline draws, as `instrec predict --plot` does
    return {**public_model_info(st.model.info), "limits": st.limits.to_dict(), "version": __version__,
            "display": {"shown_classes": SHOWN_CLASSES}}


# What /v1/model shows of model.json's "training": figures and settings, never the command line,
# the data's folders or other paths of the machine that trained the model.
_TRAINING_KEYS = ("summary", "script", "epochs_run", "best_epoch", "train_seconds", "extract_seconds", "final_loss",
                  "lbfgs_iterations", "validation_rows", "device", "skipped", "split", "render", "data",
                  "fine_tuned_from", "calibration")
_DATA_KEYS = ("label_mode", "n", "classes", "sources")
_FINE_TUNED_KEYS = ("classes", "weights_sha256", "test_split")
_ABSOLUTE_PATH = re.compile(r"""(?:(?<![\w.:/~])/|~/|\b[A-Za-z]:[\\/]|\\\\)[^\s"'<>|,;]*""")


def public_model_info(info: dict) -> dict:
    """The model's description for anyone who can reach the service: classes, recipe, window,
    sample rate, feature, figures, and how it was trained in words (``training.summary``) and
    numbers; no command line, data folder or other path of the machine that trained it (any
    absolute path left in a text is replaced by ``<path>``)."""
    d = {k: info.get(k) for k in ("engine", "recipe", "classes", "all_classes", "window", "sample_rate", "feature",
                                  "families", "temperature", "min_confidence")}
    # a page or client must know whether to expect `instruments`, and at what each one counts as heard
    d["multilabel"] = bool(info.get("multilabel", False))
    if d["multilabel"] and info.get("thresholds") is not None:
        d["thresholds"] = dict(info["thresholds"])
    d["source"] = _model_name(info.get("source"))
    training = info.get("training") or {}
    public = {"summary": training_summary(info)}
    for k in _TRAINING_KEYS[1:]:
        if k in training:
            public[k] = training[k]
    if isinstance(public.get("data"), dict):
        public["data"] = {k: v for k, v in public["data"].items() if k in _DATA_KEYS}
    if isinstance(public.get("fine_tuned_from"), dict):
        public["fine_tuned_from"] = {k: v for k, v in public["fine_tuned_from"].items() if k in _FINE_TUNED_KEYS}
    if isinstance(public.get("script"), str) and (_ABSOLUTE_PATH.search(public["script"]) or ".." in public["script"]):
        public["script"] = Path(public["script"].replace("\\", "/")).name
    d["training"] = public
    d["metrics"] = info.get("metrics") or {}
    return _strip_paths(d)


def _model_name(source) -> str | None:
    if not source:
        return None
    return Path(str(source).replace("\\", "/")).name or None


def training_summary(info: dict) -> str:
    """How the model was trained, in words and without paths, e.g. "cnn trained on 2700 clips of 7
    classes (sources: fluidr3, freepats), rendered with SoundFont all, 100 clips a class; 40 epochs
    (best 35) in 1029 s on cpu"."""
    t = info.get("training") or {}
    data = t.get("data") if isinstance(t.get("data"), dict) else {}
    text = str(info.get("recipe") or "a model")
    n, classes, sources = data.get("n"), data.get("classes"), data.get("sources")
    if not isinstance(n, int):
        return f"{text}: no training record"
    text += f" trained on {n} clips"
    if isinstance(classes, dict) and classes:
        text += f" of {len(classes)} classes"
    if isinstance(sources, dict) and sources:
        text += f" (sources: {', '.join(map(str, sources))})"
    render = t.get("render")
    if isinstance(render, dict) and render.get("soundfont"):
        text += f", rendered with SoundFont {render['soundfont']}"
        if isinstance(render.get("per_class"), int):
            text += f", {render['per_class']} clips a class"
    ft = t.get("fine_tuned_from")
    if isinstance(ft, dict):
        text += f", fine-tuned from a model of {len(ft.get('classes') or [])} classes"
    run = ""
    if isinstance(t.get("epochs_run"), int):
        run = f"{t['epochs_run']} epochs" + (f" (best {t['best_epoch']})" if isinstance(t.get("best_epoch"), int) else "")
    if isinstance(t.get("train_seconds"), (int, float)):
        run += f" in {t['train_seconds']:.0f} s" + (f" on {t['device']}" if isinstance(t.get("device"), str) else "")
    return f"{text}; {run.strip()}" if run else text


def _strip_paths(x):
    """``x`` with every absolute path inside its texts (and keys) replaced by ``<path>``."""
    if isinstance(x, str):
        return _ABSOLUTE_PATH.sub("<path>", x)
    if isinstance(x, dict):
        return {_strip_paths(k) if isinstance(k, str) else k: _strip_paths(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_strip_paths(v) for v in x]
    return x

@router.post(
    "/v1/predict", tags=["predict"], summary="Which instrument plays in the uploaded recording?",
    description=("Multipart upload with the recording in the `file` field. Answers the JSON that "
                 "`instrec predict --format json` prints for one file (`path` is the uploaded file's "
                 "name); recordings longer than 1.5 model windows, or any with `window` set, also get "
                 "`windows` and `segments`. A multi-label model's answer (`GET /v1/model`: `multilabel`) "
                 "also holds `instruments`: each instrument heard, the likeliest first, with its best "
                 "probability and the `segments` (`start`, `end` in seconds) where it plays (`[]` when "
                 "none is heard); each window then lists the instruments over their thresholds in `active`. "
                 "Each option is a form field or a query parameter of the same name (given both ways, the "
                 "values must agree); an unknown query parameter is refused (422)."),
    openapi_extra={"parameters": _PREDICT_QUERY, "requestBody": {"required": True,
                                   "content": {"multipart/form-data": {"schema": _PREDICT_FORM}}}},
    responses={200: {"description": "the prediction", "content": {"application/json": {"examples": {
                   "single-label": {"summary": "one instrument", "value": _PREDICT_EXAMPLE},
                   "multi-label": {"summary": "who plays when (a multi-label model)",
                                   "value": _PREDICT_MULTILABEL_EXAMPLE}}}}},
               **{code: {"model": ErrorBody, "description": text} for code, text in _ERRORS.items()}},
)
async def predict(request: Request) -> JSONResponse:
    st = request.app.state
    model, limits, admission = st.model, st.limits, st.admission
    if admission.full():  # refused before its body is read: the unread body is discarded by the server
        return _busy(admission, limits)
    check_query(request.query_params)  # before the upload is read: a misspelt option would be ignored
    t0 = 0.0
    deadline = time.monotonic() + limits.request_timeout_s  # decoding in the worker thread stops then too
    form = None
    entered = False
    future: concurrent.futures.Future | None = None
    try:
        async with asyncio.timeout(limits.request_timeout_s):
            # The upload holds no place in the line while it arrives (a slow client cannot fill
            # it): the connection cap, the minimum upload rate and the size and time limits bound it.
            form = await _read_form(request)
            upload, params = _parse_form(form, request.query_params, default_window=model.window)
            if not admission.enter():
                return _busy(admission, limits)
            entered, t0 = True, time.monotonic()
            answering = _restricted(model, params.pop("classes")).with_options(
                min_confidence=params.pop("min_confidence"), level=params.pop("level"))
            job = functools.partial(_predict_job, answering, upload.file, display_name(upload.filename),
                                    upload.content_type, tmp_dir=st.tmp_dir, max_duration=limits.max_duration_s,
                                    deadline=deadline, **params)
            future = st.executor.submit(job)
            result = await asyncio.wrap_future(future)
        return JSONResponse(result)
    except TimeoutError:
        return error_response(503, f"the request took longer than the {limits.request_timeout_s:g} s limit",
                      {"Connection": "close"})
    finally:
        if entered:
            admission.leave(time.monotonic() - t0)
        if form is not None:
            if future is None or future.done() or future.cancel():
                _close_form(form)
            else:  # still running in its thread: close the upload when it is done
                future.add_done_callback(lambda _f, form=form: _close_form(form))


def _busy(admission, limits) -> JSONResponse:
    wait = admission.retry_after(most=limits.request_timeout_s)
    return error_response(503, f"the service is busy: {admission.in_flight} requests are being predicted or "
                               f"wait their turn, the most it holds; try again in {wait} s",
                          {"Retry-After": str(wait)})


async def _read_form(request: Request):
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "multipart/form-data":
        raise ServiceError(f"send the recording as multipart/form-data in a field named '{FILE_FIELD}' "
                           f"(got content type {ctype or 'none'})", 415)
    try:
        return await request.form(max_files=1, max_fields=16, max_part_size=64 * 1024)
    except ClientDisconnect:
        raise ServiceError("the client disconnected during the upload", 400) from None


def check_query(query: QueryParams) -> None:
    """Refuse a query parameter that is not one of :data:`OPTIONS`, naming it and the accepted ones."""
    unknown = [name for name in query.keys() if name not in OPTIONS]
    if unknown:
        raise ServiceError(f"unknown query parameter {unknown[0][:40]!r}; the accepted ones are "
                           f"{', '.join(OPTIONS)}", 422)


def _options(form, query: QueryParams) -> dict[str, str]:
    """The options given, each from the form or the query; one given both ways must have one value."""
    given = {}
    for name in OPTIONS:
        in_form = _form_text(form, name)
        in_query = {v.strip() for v in query.getlist(name)} - {""}
        if len(in_query) > 1:
            raise ServiceError(f"the query gives {name} more than once, with different values", 422)
        in_query = next(iter(in_query), None)
        if in_form is not None and in_query is not None and in_form != in_query:
            raise ServiceError(f"{name} is given in both the form ({in_form[:40]!r}) and the query "
                               f"({in_query[:40]!r}) with different values; give it once", 422)
        if in_form is not None or in_query is not None:
            given[name] = in_form if in_form is not None else in_query
    return given


def _form_text(form, name: str) -> str | None:
    """The form's one value of ``name`` (None: not given); two different values are refused, as in the query."""
    texts = {_clean(name, v) for v in form.getlist(name)} - {None}
    if len(texts) > 1:
        raise ServiceError(f"the form gives {name} more than once, with different values", 422)
    return next(iter(texts), None)


def _parse_form(form, query: QueryParams | None = None, *, default_window: float | None = None
                ) -> tuple[UploadFile, dict]:
    """The upload and the request's options (:data:`OPTIONS`, from the form or ``query``), checked;
    ``default_window`` is the model's, which a ``hop`` must not exceed when ``window`` is not given."""
    upload = form.get(FILE_FIELD)
    if upload is None:
        raise ServiceError(f"no '{FILE_FIELD}' field: upload the recording in a multipart field named "
                           f"'{FILE_FIELD}'", 400)
    if not isinstance(upload, UploadFile):
        if not upload.strip():  # a browser's form with no file chosen sends an empty part
            raise ServiceError(f"the '{FILE_FIELD}' field is empty: no file was chosen", 400)
        shown = display_name(upload[:200]) if len(upload) <= 200 else "recording.wav"
        raise ServiceError(f"the '{FILE_FIELD}' field must be a file upload, not text (with curl: "
                           f"-F {FILE_FIELD}=@{shown[:60]}, with the @)", 400)
    if not upload.filename and not upload.size:  # what a browser sends for a file input left empty
        raise ServiceError(f"the '{FILE_FIELD}' field is empty: no file was chosen", 400)
    check_query(query := query or QueryParams(""))
    unknown = [name for name in form.keys() if name not in OPTIONS and name != FILE_FIELD]
    if unknown:  # a misspelt option would be ignored without a word
        raise ServiceError(f"unknown form field {unknown[0][:40]!r}; the accepted ones are {FILE_FIELD}, "
                           f"{', '.join(OPTIONS)}", 422)
    given = _options(form, query)
    window = _number(given, "window")
    hop = _number(given, "hop")
    try:
        window, hop = check_window(window, hop, model_window=default_window)
    except ParameterError as e:
        raise ServiceError(str(e), 422) from None
    top_k = _number(given, "top_k", kind=int)
    if top_k is None:
        top_k = DEFAULT_TOP_K
    elif top_k < 1:
        raise ServiceError(f"top_k must be at least 1; got {top_k}", 422)
    spectrogram = _flag(given, "spectrogram")
    min_confidence = _number(given, "min_confidence", what="a number from 0 to 1")
    if min_confidence is not None and not 0 <= min_confidence <= 1:
        raise ServiceError(f"min_confidence must be a number from 0 to 1; got {min_confidence:g}", 422)
    level = _text(given, "level") or "instrument"
    if level not in ("instrument", "family"):
        raise ServiceError(f"level must be instrument or family; got {level[:40]!r}", 422)
    return upload, {"window": window, "hop": hop, "top_k": top_k, "spectrogram": spectrogram,
                    "classes": _text(given, "classes"), "min_confidence": min_confidence, "level": level}


def _restricted(model: Model, classes: str | None) -> Model:
    if classes is None:
        return model
    try:
        return model.restrict(classes)
    except ParameterError as e:
        raise ServiceError(str(e), 422) from None


def _text(form, name: str) -> str | None:
    return _clean(name, form.get(name))


def _clean(name: str, v) -> str | None:
    """A form field's text, stripped (None: not given or blank); a file there is refused."""
    if v is None:
        return None
    if isinstance(v, UploadFile):
        raise ServiceError(f"the '{name}' field must be text, not a file", 400)
    v = v.strip()
    return v or None


def _number(form, name: str, *, kind=float, what: str = "a number of seconds"):
    v = _text(form, name)
    if v is None:
        return None
    what = "an integer" if kind is int else what
    try:
        x = kind(v)
    except ValueError:
        raise ServiceError(f"{name} must be {what}; got {v[:40]!r}", 422) from None
    if kind is float and not math.isfinite(x):
        raise ServiceError(f"{name} must be {what}, finite; got {v[:40]!r}", 422)
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
                 spectrogram: bool, tmp_dir: str | None, max_duration: float, deadline: float | None = None) -> dict:
    """Check the upload's type, write it to a temp file, predict it; the temp file is always removed.

    Parameters
    ----------
    model : the model to predict with
    fileobj, name, content_type : the upload, its display name and its declared type
    window, hop, top_k, spectrogram : the request's options
    tmp_dir : where the upload is written while it is predicted
    max_duration : longest recording (s), refused from its header
    deadline : the request's time limit, a :func:`time.monotonic` instant (the handler's start plus
        ``limits.request_timeout_s``): decoding and prediction stop when it passes, so that a request
        the handler has already answered 503 frees its worker thread and memory

    Raises
    ------
    ServiceError
        415 for what is not audio, 422 for unusable audio or parameters, 503 once ``deadline`` passed.
    """
    def late() -> bool:
        return deadline is not None and time.monotonic() >= deadline

    def too_late() -> ServiceError:
        return ServiceError("the request took longer than its time limit", 503)

    if late():  # it waited its turn past its limit: the handler has answered already
        raise too_late()
    fileobj.seek(0)
    head = fileobj.read(16)
    fileobj.seek(0)
    suffix = audio_suffix(name, content_type, head)
    try:
        fd, path = tempfile.mkstemp(prefix="instrec-upload-", suffix=suffix, dir=tmp_dir)
    except OSError as e:
        raise _no_room(e) from None
    try:
        try:
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(fileobj, out, 1 << 20)
        except OSError as e:
            raise _no_room(e) from None
        try:
            pred = model.predict_file(path, window=window, hop=hop, max_duration=max_duration, deadline=deadline)
            result = {**pred.to_dict(), "top": [[c, p] for c, p in pred.top(top_k)]}
            result["path"] = name
            if spectrogram:
                from ..audio import load
                from .spectrogram import spectrogram_json

                y, _ = load(path, sr=model.feature.sr, max_duration=max_duration, deadline=deadline)
                result["spectrogram"] = spectrogram_json(y, model.feature)
        except AudioError as e:
            if late():  # stopped by the time limit, not by the audio
                raise too_late() from None
            raise ServiceError(f"{name}: {e.problem}", 422) from None
        except InstrecError as e:
            raise ServiceError(str(e).replace(path, name), 422) from None
        return result
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        memory.give_back()  # glibc keeps freed blocks; one long upload would leave it larger


def _no_room(e: OSError) -> ServiceError:
    """The server's fault, not the client's (a full disk, a missing upload folder): 503, without the path."""
    return ServiceError(f"the server could not store the upload ({e.strerror or type(e).__name__}); "
                        f"try again later", 503)


def error_response(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    message = " ".join(str(message).split())  # one line
    return JSONResponse({"error": message}, status_code=status, headers=headers)
