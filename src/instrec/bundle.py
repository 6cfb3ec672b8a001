"""A model bundle is a folder: ``model.safetensors`` (weights) + ``model.json`` (everything else).

Loading never unpickles anything: weights come through safetensors, metadata through JSON.
The whole folder is written beside its destination and renamed into place, so an interrupted
save leaves the old bundle or none, never half of one.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import shutil
import tempfile
import unicodedata
from pathlib import Path

from .errors import BundleError, NotAModel, ParameterError, printable
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
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta}
    check_savable(meta, path)
    with atomic_dir(path, marker=META, what="model folder") as tmp:
        with writing(path):
            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp / WEIGHTS))
        public_mode(tmp / WEIGHTS)
        public_mode(tmp, folder=True)
        write_json(tmp / META, meta)
        for name, obj in (extra_files or {}).items():
            write_json(tmp / name, obj)
    return path


def check_savable(meta: dict, path: Path) -> None:
    """ParameterError naming ``path`` for a model description :func:`read_meta` would refuse (a class
    name too long or holding a control character, a non-finite number...): never write a bundle
    that does not load back."""
    try:
        validate_meta(loads_finite(json.dumps(meta, ensure_ascii=False)), META)
    except (BundleError, ValueError, TypeError) as e:  # TypeError: an object JSON cannot hold
        reason = str(e).removeprefix(f"{META}: ")
        raise ParameterError(f"{path}: the model is not saved: its {META} would not load back ({reason})") from None


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
    here = Path.cwd().resolve()
    if path.resolve() == here or path.resolve() in here.parents:  # replaced whole: not the folder a process stands in
        raise ParameterError(f"{path}: is the current folder or holds it; name a new folder for the {what}")
    if path.exists() and not path.is_dir():  # found only when saving, after all the work
        raise ParameterError(f"{path}: is a file, not a folder; name a folder for the {what}")
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
    """``json.loads`` that refuses ``NaN``, ``Infinity`` and ``-Infinity`` (Python's json takes them),
    numbers too large for a float (``1e400``, which Python reads as infinity), a key given twice in
    one object (readers disagree on which one counts) and nesting too deep to read; ValueError."""
    def refuse(constant):
        raise ValueError(f"the non-finite number {constant} is not allowed")

    def finite(text: str) -> float:
        x = float(text)
        if not math.isfinite(x):
            raise ValueError(f"the number {text[:40]} is too large (it reads as infinity)")
        return x

    def once(pairs: list) -> dict:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            twice = next(k for i, (k, _) in enumerate(pairs) if any(k == k2 for k2, _ in pairs[:i]))
            raise ValueError(f"the key {twice!r} is given twice in one object")
        return obj

    try:
        return json.loads(text, parse_constant=refuse, parse_float=finite, object_pairs_hook=once)
    except RecursionError:  # a hostile file of 100000 nested brackets: the decoder's recursion runs out
        raise ValueError("nested too deeply") from None


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
    families, thresholds = meta.get("families") or {}, meta.get("thresholds")
    for name in [*meta["classes"], *families, *(thresholds or {})]:
        problem = _unshowable(name)
        if problem:
            raise BundleError(f"{where}: {problem}")
    if thresholds is not None and (set(thresholds) != set(meta["classes"])
                                   or meta["recipe"]["model"].get("output") != "sigmoid"):
        raise BundleError(f"{where}: thresholds must give each class of a multi-label model a probability, "
                          "and only its classes")
    owner: dict[str, str] = {}
    for family, members in families.items():
        for c in members:
            if c not in meta["classes"]:
                raise BundleError(f"{where}: family {family!r} names {c!r}, which is not one of the model's classes")
            if c in owner:
                raise BundleError(f"{where}: class {c!r} is in two families, {owner[c]!r} and {family!r}")
            owner[c] = family


def _unshowable(name: str) -> str | None:
    """What is wrong with a name that cannot print as it is (None: nothing)."""
    bad = next((c for c in name if unicodedata.category(c) in _UNSHOWABLE), None)
    if bad is not None:
        return f"the name '{printable(name)[:80]}' holds the control or format character U+{ord(bad):04X}; names must print as they are"
    if name != name.strip():  # 'flute ' would print as 'flute', another class
        return f"the name '{printable(name)[:80]}' begins or ends with white space; names must print as they are"
    return None


def check_class_names(classes) -> None:
    """ParameterError, before any training, for classes a bundle cannot hold (too many, a name too
    long or that cannot print as it is): the model would not be saved."""
    spec = _validator().schema["properties"]["classes"]
    most, longest = spec["maxItems"], spec["items"]["maxLength"]
    if len(classes) > most:
        raise ParameterError(f"{len(classes)} classes: a model holds at most {most}")
    for name in classes:
        if len(name) > longest:
            raise ParameterError(f"the class name '{printable(name)[:80]}' is {len(name)} characters long: at most {longest}")
        problem = _unshowable(name)
        if problem:
            raise ParameterError(problem)


# control characters (newline, ESC...), format characters (bidirectional overrides), line and
# paragraph separators, lone surrogates: a name holding one splits a line, rewrites a terminal or
# poses as another, and a lone surrogate cannot even be written back as UTF-8
_UNSHOWABLE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


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
