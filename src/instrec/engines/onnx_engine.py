"""The onnxruntime engine: runs an exported model with numpy and onnxruntime alone, never torch.

An instrec ``.onnx`` file (written by :mod:`instrec.export`) is self-describing: input
``features`` float32 ``(batch, dim)``, output ``probabilities``; ``metadata_props`` hold the model
description (``instrec``: model.json as JSON, validated against the same schema) and how the file
was made (``instrec_export``). A bundle folder's export lives beside its weights as ``model.onnx``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np

from ..bundle import FORMAT, META, WEIGHTS, loads_finite, read_meta, validate_meta
from ..errors import BundleError, NotAModel, ParameterError
from ..features.config import FeatureConfig

ONNX_FILE = "model.onnx"
META_KEY = "instrec"  # metadata_props: the model description (model.json) as JSON
EXPORT_KEY = "instrec_export"  # metadata_props: how the file was made, as JSON
EXPORT_FORMAT_VERSION = 1
INPUT_NAME = "features"
OUTPUT_NAME = "probabilities"


def onnx_path_for(bundle_dir: str | os.PathLike) -> Path:
    """Where a bundle folder's exported model lives: ``<bundle>/model.onnx``."""
    return Path(bundle_dir) / ONNX_FILE


def is_up_to_date(onnx_path: str | os.PathLike, bundle_dir: str | os.PathLike) -> bool:
    """True when ``onnx_path`` was exported from the bundle's present weights, classes and recipe."""
    return is_current(Path(onnx_path), bundle_stamp(Path(bundle_dir)))


def spec_sha256(meta: dict) -> str:
    spec = {"classes": meta.get("classes"), "recipe": meta.get("recipe")}
    return hashlib.sha256(json.dumps(spec, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def bundle_stamp(bundle: Path) -> dict:
    """What an export of ``bundle`` depends on: the weights and the classes and recipe."""
    if not bundle.is_dir():
        raise NotAModel(f"{bundle}: no such model folder")
    meta = read_meta(bundle)
    h = hashlib.sha256()
    try:
        with open(bundle / WEIGHTS, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except FileNotFoundError:
        raise BundleError(f"{bundle}: {WEIGHTS} is missing") from None
    except OSError as e:
        raise BundleError(f"{bundle / WEIGHTS}: cannot be read ({e.strerror or e})") from None
    return {"weights_sha256": h.hexdigest(), "spec_sha256": spec_sha256(meta)}


def is_current(path: Path, stamp: dict) -> bool:
    if not path.is_file():
        return False
    try:
        _, export_info = _read_props(_session(path), path)
    except BundleError:
        return False
    return (export_info.get("format_version") == EXPORT_FORMAT_VERSION
            and all(export_info.get(k) == v for k, v in stamp.items()))


# waveform windows (the cnn's) a session run: one, so a window's probabilities never depend on its
# batch's other rows (onnxruntime's kernels differ by batch size, in the 7th digit)
WAVEFORM_SLICE = 1


def _session(source, threads: int | None = None):
    """An onnxruntime CPU session of a file path or serialized bytes."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only: no chatter on the CLI's stderr
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.inter_op_num_threads = 1
    # no arena: it keeps the largest batch's activations for good (a 4-min upload left a service
    # 200 MB larger); plain allocations cost nothing measurable here (2.5 ms a 3-s clip either way)
    opts.enable_cpu_mem_arena = False
    opts.intra_op_num_threads = threads if threads else _default_threads()
    where = source if isinstance(source, (bytes, bytearray)) else str(source)
    try:
        return ort.InferenceSession(where, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's own exception types (InvalidProtobuf, Fail, ...)
        label = "<exported model>" if isinstance(source, (bytes, bytearray)) else source
        raise BundleError(f"{label}: not a valid ONNX model ({_ort_reason(e)})") from None


def _ort_reason(e: Exception) -> str:
    """onnxruntime's message without its code prefix and the path the caller already names."""
    lines = str(e).strip().splitlines()
    text = lines[-1] if lines else type(e).__name__
    text = re.sub(r"^\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*\w+\s*:\s*", "", text)
    text = re.sub(r"^Load model from .*? failed:\s*", "", text)
    text = text.strip().rstrip(".")
    return (text[:1].lower() + text[1:])[:200] or type(e).__name__


def _default_threads() -> int:
    """The CPUs this process may use, at most 4: the network is small, more threads only contend.
    ``OMP_NUM_THREADS``, where set, caps it: a pool's workers (and Ray's, which sets it to a
    worker's CPUs) already fill the cores."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    cap = os.environ.get("OMP_NUM_THREADS", "")
    if cap.isdigit() and int(cap) > 0:
        n = min(n, int(cap))
    return max(1, min(4, n))


def _read_props(session, path) -> tuple[dict, dict]:
    """``(meta, export_info)`` from an instrec ONNX file's metadata, validated."""
    props = session.get_modelmeta().custom_metadata_map or {}
    if META_KEY not in props:
        raise BundleError(f"{path}: not an instrec model (no {META_KEY!r} metadata); "
                          "export one with: instrec export MODEL --onnx OUT.onnx")
    try:
        meta = loads_finite(props[META_KEY])
        export_info = loads_finite(props.get(EXPORT_KEY, "{}"))
    except ValueError as e:
        raise BundleError(f"{path}: the instrec metadata is not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(export_info, dict):
        raise BundleError(f"{path}: the instrec metadata is not an instrec model description")
    version = export_info.get("format_version")
    if version != EXPORT_FORMAT_VERSION:
        raise BundleError(f"{path}: ONNX export format {version!r} is not supported "
                          f"(expected {EXPORT_FORMAT_VERSION}); export the model again")
    validate_meta(meta, f"{path} (instrec metadata)")  # the same schema as model.json
    return meta, export_info


class OnnxEngine:
    """Run an exported model with onnxruntime; imports no torch.

    ``OnnxEngine(path)`` takes an ``.onnx`` file from :func:`export_onnx` (or a bundle folder with
    a ``model.onnx`` exported from its present weights and recipe; a stale one is refused).
    ``predict_proba(X)`` maps feature rows ``(n, feature.dim)`` (from :func:`instrec.features.compute`
    with :attr:`feature`; the image's uint8 pixels too, as the torch engine reads them) to
    probabilities ``(n, len(classes))``; rows holding NaN or infinity raise ParameterError.

    Raises :class:`~instrec.errors.BundleError` (one line, naming the file) for a missing, corrupt
    or foreign ``.onnx`` file.
    """

    name = "onnx"

    def __init__(self, path: str | os.PathLike | bytes, *, threads: int | None = None):
        bundle = None
        if isinstance(path, (bytes, bytearray)):  # the export's own check
            label = "<exported model>"
        else:
            path = Path(path)
            if path.is_dir():
                bundle = path if (path / META).is_file() else None
                if not (path / ONNX_FILE).is_file():
                    raise BundleError(f"{path}: has no exported {ONNX_FILE}; "
                                      f"make one with: instrec export {path} --onnx {path / ONNX_FILE}")
                path = path / ONNX_FILE
            elif not path.is_file():
                raise BundleError(f"{path}: no such ONNX model file")
            label = str(path)
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ParameterError(f"threads must be a positive integer; got {threads!r}")
        self.path = None if isinstance(path, (bytes, bytearray)) else path
        self._bytes = bytes(path) if isinstance(path, (bytes, bytearray)) else None
        self._threads = threads
        self._session = _session(path, threads)
        self.meta, self.export_info = _read_props(self._session, label)
        try:
            self.classes = [str(c) for c in self.meta["classes"]]
            self.feature = FeatureConfig.from_dict(self.meta["recipe"]["feature"])
            self.recipe_name = str(self.meta["recipe"].get("name", ""))
        except (KeyError, TypeError, AttributeError, ParameterError) as e:
            raise BundleError(f"{label}: the instrec metadata is incomplete or malformed ({e})") from None
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes):
            raise BundleError(f"{label}: the instrec metadata must list at least 2 distinct classes")
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if ([i.name for i in inputs] != [INPUT_NAME] or [o.name for o in outputs] != [OUTPUT_NAME]
                or list(inputs[0].shape)[1:] != [self.feature.dim] or list(outputs[0].shape)[1:] != [len(self.classes)]):
            raise BundleError(f"{label}: the graph's inputs and outputs do not match its instrec metadata")
        if bundle is not None and not all(self.export_info.get(k) == v for k, v in bundle_stamp(bundle).items()):
            # a model.onnx left from before the folder's weights or recipe changed (fine-tuning,
            # a save over the folder) would answer for the old model under the folder's name
            raise BundleError(f"{label}: is stale: it was not exported from {bundle}'s present weights and recipe; "
                              f"export it again with: instrec export {bundle} --onnx {label}")
        # the cnn's activations grow with the batch, and without the arena each run allocates them
        # afresh: 1 window a run predicted a long recording about twice as fast as 16 (benchmarks/RESULTS.md)
        self._batch = WAVEFORM_SLICE if self.feature.kind == "waveform" else 4096
        # weights holding NaN or infinity answer NaN to everything: refuse them now, not per request
        if not np.isfinite(self.predict_proba(np.zeros((1, self.feature.dim), np.float32))).all():
            raise BundleError(f"{label}: the network answers non-finite probabilities (NaN or infinite weights); "
                              "the model is damaged")

    def __getstate__(self) -> dict:
        """Pickled (to a pool's or a cluster's worker) as the graph's bytes, not the session: the
        worker, maybe on another machine, opens its own."""
        state = {k: v for k, v in self.__dict__.items() if k != "_session"}
        if state["_bytes"] is None:
            state["_bytes"] = Path(self.path).read_bytes()
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._session = _session(self._bytes, self._threads)
        if self.path is not None:
            self._bytes = None  # the file is there to read again, should this engine travel on

    @property
    def info(self) -> dict:
        """The model description without classes and recipe (training, metrics, versions...)."""
        return {k: v for k, v in self.meta.items()
                if k not in ("format", "format_version", "classes", "recipe", "in_dim", "seed")}

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n, len(classes))`` of feature rows ``X`` ``(n, feature.dim)``."""
        X = np.asarray(X)
        if X.dtype.kind not in "biuf":
            raise ParameterError(f"X must hold numbers; got an array of {X.dtype}")
        if X.ndim == 1:
            X = X[None]
        if X.ndim != 2 or X.shape[1] != self.feature.dim:
            raise ParameterError(f"X must have shape (n, {self.feature.dim}); got {X.shape}")
        if X.dtype == np.uint8 and self.feature.kind == "image":
            # the image's compact uint8 pixels: the torch engine reads them as pixels / 255 too
            X = np.divide(X, np.float32(255.0), dtype=np.float32)
        with np.errstate(over="ignore"):  # a float64 beyond float32's range: refused below, as infinity
            X = np.asarray(X, dtype=np.float32)
        bad = ~np.isfinite(X).all(axis=1)
        if bad.any():  # onnxruntime would answer NaN; the torch engine refuses them the same way
            raise ParameterError(f"X contains NaN or infinity (or a value too large for float32) in {int(bad.sum())} "
                                 f"row(s), the first row {int(np.argmax(bad))}: features must be finite numbers")
        out = [self._session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(X[s : s + self._batch])})[0]
               for s in range(0, len(X), self._batch)]
        return np.concatenate(out).astype(np.float32, copy=False) if out else np.zeros((0, len(self.classes)), np.float32)

    def __repr__(self) -> str:
        return f"OnnxEngine({str(self.path) if self.path else '<bytes>'!r}, classes={self.classes})"
