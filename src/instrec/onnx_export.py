"""ONNX export, and an onnxruntime engine that predicts without torch.

The exported graph
------------------
* input ``features``: float32 ``(batch, dim)``, the batch dynamic; output ``probabilities``:
  float32 ``(batch, n_classes)``, softmax applied inside the graph.
* The rows are what :func:`instrec.features.compute` makes (numpy and librosa, no torch) with the
  model's :class:`~instrec.features.FeatureConfig`. For the cnn that is the raw waveform window
  (mono, ``sr`` Hz, zero-padded or cropped to ``dim`` samples): the whole log-mel front end is inside
  the graph (framing, the STFT as real matrix products -- see
  :meth:`instrec.features.frontend.LogMel.mel_by_matmul` --, mel matrix, dB, band normalisation).
  For the MLP recipes the row is the MFCC means or the flattened spectrogram picture, computed by
  that shared function; the input standardisation is inside the graph.
* ``metadata_props`` make the file self-describing: ``instrec`` holds the model description
  (``model.json``: classes, recipe with the feature configuration, training information, metrics)
  as JSON; ``instrec_export`` holds how the file was made (format version, opset, the SHA-256 of the
  weights and of the classes+recipe it was exported from, input and output description).

A bundle folder's exported model lives beside its weights as ``model.onnx``
(:func:`onnx_path_for`); :func:`ensure_onnx` exports it when missing or stale.

This module imports torch only inside the export functions: :class:`OnnxEngine` needs numpy and
onnxruntime alone, so ``instrec predict --engine onnx`` starts fast.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import stat
import tempfile
from pathlib import Path

import numpy as np

from .bundle import FORMAT
from .errors import BundleError, ParameterError
from .features import FeatureConfig

ONNX_FILE = "model.onnx"
META_KEY = "instrec"  # metadata_props: the model description (model.json) as JSON
EXPORT_KEY = "instrec_export"  # metadata_props: how the file was made, as JSON
EXPORT_FORMAT_VERSION = 1
INPUT_NAME = "features"
OUTPUT_NAME = "probabilities"
DEFAULT_OPSET = 17
MIN_OPSET = 13
MAX_OPSET = 20  # the highest torch's TorchScript-based exporter writes
_VERIFY_ATOL = 1e-4


def onnx_path_for(bundle_dir: str | os.PathLike) -> Path:
    """Where a bundle folder's exported model lives: ``<bundle>/model.onnx``."""
    return Path(bundle_dir) / ONNX_FILE


# -- export (needs torch) ------------------------------------------------------------------------
def export_onnx(model, out_path: str | os.PathLike, *, opset: int = DEFAULT_OPSET) -> Path:
    """Export ``model`` (a bundle folder or an :class:`~instrec.classifier.InstrumentClassifier`)
    to the ONNX file ``out_path``, written atomically. Returns ``out_path``.

    The export is checked before the file is written: onnxruntime must reproduce the torch
    probabilities of a test batch within 1e-4.
    """
    data = _export_bytes(*_resolve(model), opset=opset)
    return _write(Path(out_path), data)


def ensure_onnx(bundle_dir: str | os.PathLike, *, opset: int = DEFAULT_OPSET) -> Path:
    """The ONNX file of a bundle folder, exported first where needed.

    Returns ``<bundle>/model.onnx`` when it was exported from the bundle's present weights, classes
    and recipe. Otherwise exports it there; where the folder is not writable (an installed package,
    a read-only mount) the export goes to a per-user cache in the temporary folder instead, keyed by
    the weights' hash so it is made once.
    """
    bundle = Path(bundle_dir)
    stamp = _bundle_stamp(bundle)
    target = onnx_path_for(bundle)
    if _is_current(target, stamp):
        return target
    cached = _cache_path(bundle, stamp)
    if cached is not None and _is_current(cached, stamp):
        return cached
    data = _export_bytes(*_resolve(bundle), opset=opset)
    try:
        return _write(target, data)
    except OSError:
        pass
    if cached is None:  # no private cache folder: a fresh temporary file
        fd, name = tempfile.mkstemp(prefix="instrec-", suffix=".onnx")
        os.close(fd)
        cached = Path(name)
    try:
        return _write(cached, data)
    except OSError as e:
        raise BundleError(f"{bundle}: cannot write the exported model to {target} or {cached} ({e.strerror or e})") from None


def is_up_to_date(onnx_path: str | os.PathLike, bundle_dir: str | os.PathLike) -> bool:
    """True when ``onnx_path`` was exported from the bundle's present weights, classes and recipe."""
    return _is_current(Path(onnx_path), _bundle_stamp(Path(bundle_dir)))


def _resolve(model):
    """``(classifier, meta, stamp)`` of a bundle folder or a classifier."""
    from .bundle import FORMAT, FORMAT_VERSION, read_meta
    from .classifier import InstrumentClassifier

    if isinstance(model, InstrumentClassifier):
        model._check_fitted()
        meta = {  # what InstrumentClassifier.save would write to model.json
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "classes": list(model.classes_),
            "recipe": model.recipe.to_dict(),
            "in_dim": model.recipe.feature.dim,
            "seed": model.seed,
            **model.info,
        }
        if "versions" not in meta:
            from .classifier import _versions

            meta["versions"] = _versions()
        return model, meta, {"weights_sha256": None, "spec_sha256": _spec_sha256(meta)}
    if isinstance(model, (str, os.PathLike)):
        bundle = Path(model)
        clf = InstrumentClassifier.load(bundle)
        return clf, read_meta(bundle), _bundle_stamp(bundle)
    raise ParameterError(f"export takes a model folder or an InstrumentClassifier; got {type(model).__name__}")


def _export_bytes(clf, meta: dict, stamp: dict, *, opset: int) -> bytes:
    import copy
    import warnings

    import onnx
    import torch

    from . import __version__

    feature = clf.recipe.feature
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise ParameterError(f"opset must be an integer from {MIN_OPSET} to {MAX_OPSET}; got {opset!r}")

    net = copy.deepcopy(clf.net_).cpu().eval()  # never touch the caller's network
    wrapper = _with_softmax(net).eval()
    rng = np.random.default_rng(0)
    scale = 0.1 if feature.kind == "logmel" else 1.0
    example = torch.from_numpy((scale * rng.standard_normal((3, feature.dim))).astype(np.float32))
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # deprecation notes and constant-folding remarks
        torch.onnx.export(
            wrapper, (example,), buf, dynamo=False, opset_version=opset, input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME], dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            do_constant_folding=True,
        )
        expected = wrapper(example).numpy()

    proto = onnx.load_from_string(buf.getvalue())
    export_info = {
        "format_version": EXPORT_FORMAT_VERSION,
        **stamp,
        "opset": opset,
        "input": {
            "name": INPUT_NAME, "dtype": "float32", "shape": ["batch", feature.dim],
            "rows": _row_description(feature),
        },
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": ["batch", len(clf.classes_)],
                   "columns": list(clf.classes_)},
        "exported_with": {"instrec": __version__, "torch": torch.__version__, "onnx": onnx.__version__},
    }
    del proto.metadata_props[:]
    for key, value in ((META_KEY, meta), (EXPORT_KEY, export_info)):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value, ensure_ascii=False)
    proto.doc_string = f"instrec {meta['recipe'].get('name', '')} model: {', '.join(clf.classes_)}"
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()

    got = OnnxEngine(data).predict_proba(example.numpy())  # the export must reproduce torch
    diff = float(np.abs(got - expected).max())
    if not diff <= _VERIFY_ATOL:
        raise RuntimeError(f"the ONNX export disagrees with torch by {diff:.2e} (tolerance {_VERIFY_ATOL:g})")
    return data


def _row_description(feature: FeatureConfig) -> str:
    if feature.kind == "logmel":
        return (f"mono waveform at {feature.sr} Hz, zero-padded or cropped to {feature.dim} samples "
                "(instrec.features.compute); the log-mel front end is inside the graph")
    what = f"MFCC summaries over time ({feature.stats})" if feature.kind == "mfcc" else "flattened spectrogram picture"
    return f"{what} computed by instrec.features.compute(y, FeatureConfig.from_dict(recipe['feature']))"


def _with_softmax(net):
    """The network with softmax on top: the graph outputs probabilities, not logits."""
    import torch

    return torch.nn.Sequential(net, torch.nn.Softmax(dim=1))


# -- staleness -----------------------------------------------------------------------------------
def _spec_sha256(meta: dict) -> str:
    spec = {"classes": meta.get("classes"), "recipe": meta.get("recipe")}
    return hashlib.sha256(json.dumps(spec, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def _bundle_stamp(bundle: Path) -> dict:
    """What an export of ``bundle`` depends on: the weights and the classes and recipe."""
    from .bundle import WEIGHTS, read_meta

    if not bundle.is_dir():
        raise BundleError(f"{bundle}: no such model folder")
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
    return {"weights_sha256": h.hexdigest(), "spec_sha256": _spec_sha256(meta)}


def _is_current(path: Path, stamp: dict) -> bool:
    if not path.is_file():
        return False
    try:
        _, export_info = _read_props(_session(path), path)
    except BundleError:
        return False
    return (export_info.get("format_version") == EXPORT_FORMAT_VERSION
            and all(export_info.get(k) == v for k, v in stamp.items()))


def _cache_path(bundle: Path, stamp: dict) -> Path | None:
    """``<tmp>/instrec-<uid>/<bundle>-<hash>.onnx`` in a folder only this user can write; None
    where no such folder can be had."""
    try:
        uid = os.getuid()
    except AttributeError:  # Windows: the temporary folder is per user already
        uid = None
    folder = Path(tempfile.gettempdir()) / (f"instrec-{uid}" if uid is not None else "instrec")
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        st = folder.lstat()
        if not stat.S_ISDIR(st.st_mode) or (uid is not None and st.st_uid != uid) or st.st_mode & 0o022:
            return None
    except OSError:
        return None
    key = hashlib.sha256(f"{stamp['weights_sha256']}{stamp['spec_sha256']}".encode()).hexdigest()[:16]
    return folder / f"{bundle.resolve().name}-{key}.onnx"


def _write(path: Path, data: bytes) -> Path:
    from .fileio import write_bytes

    write_bytes(path, data)
    return path


# -- the onnxruntime engine (no torch) -------------------------------------------------------------
def _session(source, threads: int | None = None):
    """An onnxruntime CPU session of a file path or serialized bytes."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only: no chatter on the CLI's stderr
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.inter_op_num_threads = 1
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
    """The CPUs this process may use, at most 4: the network is small, more threads only contend."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, min(4, n))


def _read_props(session, path) -> tuple[dict, dict]:
    """``(meta, export_info)`` from an instrec ONNX file's metadata, validated."""
    props = session.get_modelmeta().custom_metadata_map or {}
    if META_KEY not in props:
        raise BundleError(f"{path}: not an instrec model (no {META_KEY!r} metadata); "
                          "export one with: instrec export MODEL --onnx OUT.onnx")
    try:
        meta = json.loads(props[META_KEY])
        export_info = json.loads(props.get(EXPORT_KEY, "{}"))
    except json.JSONDecodeError as e:
        raise BundleError(f"{path}: the instrec metadata is not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(export_info, dict):
        raise BundleError(f"{path}: the instrec metadata is not an instrec model description")
    version = export_info.get("format_version")
    if version != EXPORT_FORMAT_VERSION:
        raise BundleError(f"{path}: ONNX export format {version!r} is not supported "
                          f"(expected {EXPORT_FORMAT_VERSION}); export the model again")
    from .bundle import validate_meta

    validate_meta(meta, f"{path} (instrec metadata)")  # the same schema as model.json
    return meta, export_info


class OnnxEngine:
    """Run an exported model with onnxruntime; imports no torch.

    ``OnnxEngine(path)`` takes an ``.onnx`` file from :func:`export_onnx` (or a bundle folder with
    an exported ``model.onnx``). ``predict_proba(X)`` maps feature rows ``(n, feature.dim)`` (from
    :func:`instrec.features.compute` with :attr:`feature`) to probabilities ``(n, len(classes))``.

    Raises :class:`~instrec.errors.BundleError` (one line, naming the file) for a missing, corrupt
    or foreign ``.onnx`` file.
    """

    name = "onnx"

    def __init__(self, path: str | os.PathLike | bytes, *, threads: int | None = None):
        if isinstance(path, (bytes, bytearray)):  # the export's own check
            label = "<exported model>"
        else:
            path = Path(path)
            if path.is_dir():
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
        # the cnn's activations grow with the batch: run large inputs in slices
        self._batch = 64 if self.feature.kind == "logmel" else 4096

    @property
    def info(self) -> dict:
        """The model description without classes and recipe (training, metrics, versions...)."""
        return {k: v for k, v in self.meta.items()
                if k not in ("format", "format_version", "classes", "recipe", "in_dim", "seed")}

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n, len(classes))`` of feature rows ``X`` ``(n, feature.dim)``."""
        X = np.asarray(X, dtype=np.float32)
        if X.ndim == 1:
            X = X[None]
        if X.ndim != 2 or X.shape[1] != self.feature.dim:
            raise ParameterError(f"X must have shape (n, {self.feature.dim}); got {X.shape}")
        out = [self._session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(X[s : s + self._batch])})[0]
               for s in range(0, len(X), self._batch)]
        return np.concatenate(out).astype(np.float32, copy=False) if out else np.zeros((0, len(self.classes)), np.float32)

    def __repr__(self) -> str:
        return f"OnnxEngine({str(self.path) if self.path else '<bytes>'!r}, classes={self.classes})"


__all__ = ["export_onnx", "ensure_onnx", "is_up_to_date", "onnx_path_for", "OnnxEngine", "ONNX_FILE"]
