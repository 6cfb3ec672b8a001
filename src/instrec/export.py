"""ONNX export of a trained model, checked against PyTorch before it is written.

The exported graph
------------------
* input ``features``: float32 ``(batch, dim)``, the batch dynamic; output ``probabilities``:
  float32 ``(batch, n_classes)``, softmax (a multi-label model: sigmoid) applied inside the graph.
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
  weights and of the classes+recipe it was exported from, input and output description) and, for
  a bundle folder that records one (``split.json``), the held-back test split of its training data
  (``held_back``: the data roots and the test clips' paths), so that ``instrec evaluate FILE.onnx``
  on the training folder scores the same held-back clips as the folder does.

The output is checked before any work: never a file among a model folder's own files (the source
bundle's ``model.onnx`` excepted), never the shipped model's folder, never a folder, and never an
existing file that is not an instrec ONNX export (:func:`check_onnx_out`).

A bundle folder's exported model lives beside its weights as ``model.onnx``
(:func:`onnx_path_for`); :func:`ensure_onnx` exports it when missing or stale.

The runtime that reads these files is :mod:`instrec.engines.onnx_engine` (no torch). This module
imports torch only inside the export functions: checking a bundle's export for staleness needs none.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import stat
import tempfile
from pathlib import Path

import numpy as np

from .bundle import SPLIT_FILE, check_finite, read_meta
from .engines.onnx_engine import (EXPORT_FORMAT_VERSION, EXPORT_KEY, INPUT_NAME, META_KEY, OUTPUT_NAME, OnnxEngine,
                                  bundle_stamp, is_current, spec_sha256, is_up_to_date, onnx_path_for)
from .errors import BundleError, ParameterError
from .features.config import FeatureConfig
from .fileio import write_bytes

HELD_BACK_KEY = "held_back"  # instrec_export: the source bundle's split.json ({"roots", "test"})
DEFAULT_OPSET = 17
MIN_OPSET = 13
MAX_OPSET = 20  # the highest torch's TorchScript-based exporter writes
_VERIFY_ATOL = 1e-4


def export_onnx(model, out_path: str | os.PathLike, *, opset: int = DEFAULT_OPSET) -> Path:
    """Export ``model`` (a bundle folder or an :class:`~instrec.classifier.InstrumentClassifier`)
    to the ONNX file ``out_path``, written atomically. Returns ``out_path``.

    The export is checked before the file is written: onnxruntime must reproduce the torch
    probabilities of a test batch within 1e-4. ``out_path`` is checked before any work
    (:func:`check_onnx_out`): ParameterError for an output that would damage a model or a file.
    """
    from .assets import model_path

    if isinstance(model, (str, os.PathLike)):
        model = model_path(model)  # "shipped" is the shipped model, never a folder of that name here
        if Path(model).suffix.lower() == ".onnx" and Path(model).is_file():
            raise ParameterError(f"{model}: is an ONNX export already (it has no torch weights to export); "
                                 "give the model folder it was exported from")
    resolved = _resolve(model)
    out = Path(out_path)
    check_onnx_out(out, model if isinstance(model, (str, os.PathLike)) else None)
    data = _export_bytes(*resolved, opset=opset, held_back=_held_back(model))
    return _write(out, data)


def check_onnx_out(out: str | os.PathLike, source: str | os.PathLike | None = None) -> None:
    """Refuse ``out`` as the file an export is written to (ParameterError, one line naming it):

    * a path inside the shipped model's folder (:data:`instrec.assets.SHIPPED_MODEL`): it is never
      written;
    * a path inside the ``source`` bundle folder other than its own ``model.onnx``
      (:func:`onnx_path_for`), or any file of another model folder (one holding ``model.json``):
      model.json, the weights or split.json would be replaced by the export;
    * an existing folder;
    * the bare name ``shipped``, which reads back as the shipped model;
    * an existing file that is not an instrec ONNX export (no valid ONNX protobuf carrying instrec's
      metadata); an earlier export is replaced, and so is an empty file.
    """
    from .assets import SHIPPED_MODEL, check_out_name
    from .bundle import META

    check_out_name(out, ".onnx file")
    out = Path(out)
    if not out.name or out.name in (".", ".."):
        raise ParameterError(f"{out}: name the .onnx file to write")
    landing = out.parent.resolve() / out.name  # where the file lands: a link there is replaced, not followed
    targets = {landing, out.resolve()}
    shipped = SHIPPED_MODEL.resolve()
    if any(t == shipped or t.is_relative_to(shipped) for t in targets):
        raise ParameterError(f"{out}: that is inside the shipped model's own folder, which is never written; "
                             "name a file elsewhere")
    if out.is_dir():
        raise ParameterError(f"{out}: is a folder; name the .onnx file to write (e.g. {out / 'model.onnx'})")
    if source is not None and Path(source).is_dir():
        bundle = Path(source).resolve()
        own = onnx_path_for(bundle)
        if any(t.is_relative_to(bundle) and t != own for t in targets):
            raise ParameterError(f"{out}: that is inside the model folder {source}, beside its own files; "
                                 f"write the export to {onnx_path_for(source)} or outside the folder")
    else:
        bundle = None
    for t in targets:
        if t.parent != bundle and (t.parent / META).is_file():
            raise ParameterError(f"{out}: that is inside another model folder ({t.parent}), among its own files; "
                                 "name a file outside it")
    if out.exists() and not _is_instrec_export(out):
        raise ParameterError(f"{out}: exists and is not an instrec ONNX export; it is not replaced: "
                             "name a new file, or remove it first")
    if out.suffix.lower() != ".onnx":  # review: x.txt was written, then read back as a model folder
        raise ParameterError(f"{out}: name the export FILE.onnx; instrec tells an export from a model folder by "
                             "its .onnx suffix")


def _is_instrec_export(path: Path) -> bool:
    """True for an empty file or an ONNX protobuf carrying instrec's model description; the
    weights are not read (no external data), nothing is run."""
    try:
        if not path.is_file():
            return False
        if path.stat().st_size == 0:
            return True  # nothing to lose
        import onnx

        proto = onnx.load_model(str(path), load_external_data=False)
    except Exception:  # not a protobuf, unreadable, not an ONNX model: onnx's own exception types
        return False
    return any(p.key == META_KEY for p in proto.metadata_props)


def _held_back(model) -> dict | None:
    """The held-back test split a bundle folder records (split.json: ``roots``, ``test``), or None."""

    if not isinstance(model, (str, os.PathLike)):
        return None
    try:
        record = json.loads((Path(model) / SPLIT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (not isinstance(record, dict) or not isinstance(record.get("roots"), list)
            or not isinstance(record.get("test"), list)
            or not all(isinstance(x, str) for x in [*record["roots"], *record["test"]])):
        return None
    return {"roots": record["roots"], "test": record["test"]}


def ensure_onnx(bundle_dir: str | os.PathLike, *, opset: int = DEFAULT_OPSET) -> Path:
    """The ONNX file of a bundle folder, exported first where needed.

    Returns ``<bundle>/model.onnx`` when it was exported from the bundle's present weights, classes
    and recipe. Otherwise exports it there; where the folder is not writable (an installed package,
    a read-only mount) the export goes to a per-user cache in the temporary folder instead, keyed by
    the weights' hash so it is made once.
    """
    bundle = Path(bundle_dir)
    stamp = bundle_stamp(bundle)
    target = onnx_path_for(bundle)
    if is_current(target, stamp):
        return target
    cached = _cache_path(bundle, stamp)
    if cached is not None and is_current(cached, stamp):
        return cached
    data = _export_bytes(*_resolve(bundle), opset=opset, held_back=_held_back(bundle))
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


def _resolve(model):
    """``(classifier, meta, stamp)`` of a bundle folder or a classifier."""
    from .classifier import InstrumentClassifier, bundle_meta  # here: checking an export needs no scikit-learn

    if isinstance(model, InstrumentClassifier):
        meta = bundle_meta(model)  # what save() writes to model.json
        return model, meta, {"weights_sha256": None, "spec_sha256": spec_sha256(meta)}
    if isinstance(model, (str, os.PathLike)):
        bundle = Path(model)
        clf = InstrumentClassifier.load(bundle)
        return clf, read_meta(bundle), bundle_stamp(bundle)
    raise ParameterError(f"export takes a model folder or an InstrumentClassifier; got {type(model).__name__}")


def _export_bytes(clf, meta: dict, stamp: dict, *, opset: int, held_back: dict | None = None) -> bytes:
    import copy
    import warnings

    import onnx
    import torch

    from ._version import __version__

    feature = clf.recipe.feature
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise ParameterError(f"opset must be an integer from {MIN_OPSET} to {MAX_OPSET}; got {opset!r}")

    check_finite(clf.net_.state_dict(), f"the {clf.recipe.name} model to export")
    net = copy.deepcopy(clf.net_).cpu().eval()  # never touch the caller's network
    wrapper = _with_output(net, clf.multilabel).eval()
    rng = np.random.default_rng(0)
    scale = 0.1 if feature.kind == "waveform" else 1.0
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
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": ["batch", len(clf.classes)],
                   "columns": list(clf.classes)},
        "exported_with": {"instrec": __version__, "torch": torch.__version__, "onnx": onnx.__version__},
        **({HELD_BACK_KEY: held_back} if held_back else {}),
    }
    del proto.metadata_props[:]
    for key, value in ((META_KEY, meta), (EXPORT_KEY, export_info)):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value, ensure_ascii=False)
    proto.doc_string = f"instrec {meta['recipe'].get('name', '')} model: {', '.join(clf.classes)}"
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()

    got = OnnxEngine(data).predict_proba(example.numpy())  # the export must reproduce torch
    diff = float(np.abs(got - expected).max())
    if not diff <= _VERIFY_ATOL:
        raise RuntimeError(f"the ONNX export disagrees with torch by {diff:.2e} (tolerance {_VERIFY_ATOL:g})")
    return data


def _row_description(feature: FeatureConfig) -> str:
    if feature.kind == "waveform":
        return (f"mono waveform at {feature.sr} Hz, zero-padded or cropped to {feature.dim} samples "
                "(instrec.features.compute); the log-mel front end is inside the graph")
    what = f"MFCC summaries over time ({feature.stats})" if feature.kind == "mfcc" else "flattened spectrogram picture"
    return f"{what} computed by instrec.features.compute(y, FeatureConfig.from_dict(recipe['feature']))"


def _with_output(net, multilabel: bool):
    """The network with softmax (a multi-label model: sigmoid) on top: the graph outputs
    probabilities, not logits."""
    import torch

    return torch.nn.Sequential(net, torch.nn.Sigmoid() if multilabel else torch.nn.Softmax(dim=1))


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
    write_bytes(path, data)
    return path


__all__ = ["export_onnx", "ensure_onnx", "check_onnx_out", "HELD_BACK_KEY", "is_up_to_date", "onnx_path_for", "DEFAULT_OPSET"]
