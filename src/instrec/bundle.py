"""A model bundle is a folder: ``model.safetensors`` (weights) + ``model.json`` (everything else).

Loading never unpickles anything: weights come through safetensors, metadata through JSON.
The whole folder is written beside its destination and renamed into place, so an interrupted
save leaves the old bundle or none, never half of one.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import tempfile
from pathlib import Path

from .errors import BundleError, NotAModel, ParameterError
from .fileio import public_mode, write_json, writing

WEIGHTS = "model.safetensors"
META = "model.json"
SPLIT_FILE = "split.json"  # a model folder's record of its training data's held-back test clips
FORMAT = "instrec-model"
FORMAT_VERSION = 1


def save_bundle(path: str | os.PathLike, tensors: dict, meta: dict, extra_files: dict[str, object] | None = None) -> Path:
    """Write a bundle folder atomically. ``extra_files`` maps file names to JSON-able objects."""
    from safetensors.torch import save_file

    path = Path(path)
    with atomic_dir(path, marker=META, what="model folder") as tmp:
        with writing(path):
            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp / WEIGHTS))
        public_mode(tmp / WEIGHTS)
        public_mode(tmp, folder=True)
        write_json(tmp / META, {"format": FORMAT, "format_version": FORMAT_VERSION, **meta})
        for name, obj in (extra_files or {}).items():
            write_json(tmp / name, obj)
    return path


def check_dest(path: str | os.PathLike, *, marker: str, what: str) -> None:
    """Refuse ``path`` as the destination of a folder written whole (:func:`atomic_dir`) unless it
    is new, empty, or a ``what`` already (it holds ``marker``): the old folder is replaced, and a
    folder of recordings named by mistake would go with it. ParameterError naming ``path``; so is the
    bare name ``shipped``, which reads back as the shipped model (:func:`~instrec.assets.check_out_name`)."""
    from .assets import check_out_name

    check_out_name(path, what)
    path = Path(path)
    if not path.resolve().name:
        raise ParameterError(f"{path}: name a folder to write the {what} to, not the root")
    if path.is_dir() and not (path / marker).is_file() and any(path.iterdir()):
        raise ParameterError(f"{path}: holds other files (it is not a {what}): name a new or empty folder")


@contextlib.contextmanager
def atomic_dir(path: Path, *, marker: str, what: str):
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` (see
    :func:`_replace_dir`), on any error it is removed. ``path`` must pass :func:`check_dest`
    (``marker``, ``what``). Making it on a full or read-only disk raises WriteError naming ``path``."""
    check_dest(path, marker=marker, what=what)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent))
    try:
        yield tmp
        _replace_dir(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def load_bundle(path: str | os.PathLike) -> tuple[dict, dict]:
    """Read ``(meta, tensors)`` from a bundle folder; a missing or broken bundle raises BundleError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    recover_dir(path)
    if not path.is_dir():
        raise NotAModel(f"{path}: no such model folder")
    meta = read_meta(path)
    try:
        tensors = load_file(str(path / WEIGHTS))
    except FileNotFoundError:
        raise BundleError(f"{path}: {WEIGHTS} is missing") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise BundleError(f"{path / WEIGHTS}: not a valid safetensors file ({e})") from None
    check_finite(tensors, path / WEIGHTS)
    return meta, tensors


def check_finite(tensors: dict, where) -> None:
    """Refuse weights holding NaN or infinity: such a network answers NaN to everything."""
    import torch

    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise BundleError(f"{where}: tensor {name} holds non-finite values (NaN or infinity); the model is damaged")


def loads_finite(text: str):
    """``json.loads`` that refuses ``NaN``, ``Infinity`` and ``-Infinity`` (Python's json takes them)."""
    def refuse(constant):
        raise ValueError(f"the non-finite number {constant} is not allowed")

    return json.loads(text, parse_constant=refuse)


def read_meta(path: str | os.PathLike) -> dict:
    """``model.json`` of a bundle, checked for its format marker."""
    f = Path(path) / META
    try:
        meta = loads_finite(f.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotAModel(f"{Path(path)}: not a model bundle ({META} is missing)") from None
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, a non-finite number
        raise BundleError(f"{f}: not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise BundleError(f"{f}: not an instrec model description (format is not {FORMAT!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{f}: format_version {meta.get('format_version')!r} is not supported (expected {FORMAT_VERSION})")
    validate_meta(meta, f)
    return meta


def validate_meta(meta: dict, where: str | os.PathLike) -> None:
    """Check a model description against ``assets/model.schema.json``, and that its ``families``
    name each of its classes at most once; BundleError names the first problem."""
    import jsonschema

    error = jsonschema.exceptions.best_match(_validator().iter_errors(meta))
    if error is not None:
        at = "/".join(str(p) for p in error.absolute_path) or "the top level"
        raise BundleError(f"{where}: does not match the model schema at {at}: {error.message[:200]}")
    owner: dict[str, str] = {}
    for family, members in (meta.get("families") or {}).items():
        for c in members:
            if c not in meta["classes"]:
                raise BundleError(f"{where}: family {family!r} names {c!r}, which is not one of the model's classes")
            if c in owner:
                raise BundleError(f"{where}: class {c!r} is in two families, {owner[c]!r} and {family!r}")
            owner[c] = family


@functools.cache
def _validator():
    import jsonschema

    schema = json.loads((Path(__file__).parent / "assets" / "model.schema.json").read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def _replace_dir(new: Path, dest: Path) -> None:
    # os.replace cannot rename over a non-empty folder: move the old one aside first, so that at
    # every instant one complete bundle exists at ``dest`` or in its aside copy (which
    # recover_dir puts back if the writer was killed in between).
    old = None
    if dest.exists():
        if not dest.is_dir():
            raise BundleError(f"{dest}: exists and is not a folder")
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        os.replace(dest, old)
    os.replace(new, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def recover_dir(dest: str | os.PathLike) -> bool:
    """Put back the folder that :func:`_replace_dir` had moved aside when its process was killed
    before the new one took its place; ``True`` if one was put back.

    Only the copy of a process that no longer runs is taken: a live writer is between its two
    renames for microseconds, and will finish by itself."""
    dest = Path(dest)
    if dest.exists():
        return False
    for old in sorted(dest.parent.glob(f".{dest.name}.old-*"), key=lambda p: p.stat().st_mtime, reverse=True):
        pid = old.name.rsplit("-", 1)[-1]
        if not (pid.isdigit() and old.is_dir()) or _running(int(pid)):
            continue
        try:
            os.replace(old, dest)
        except OSError:  # another reader put one back first
            return dest.exists()
        return True
    return False


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        pass
    return True
