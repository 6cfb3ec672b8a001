"""One exception family for everything a user can cause.

The CLI turns an :class:`InstrecError` into one line and an exit code; the service (later) into a
4xx JSON body. Anything else escaping is a bug in instrec.
"""

from __future__ import annotations

import os


class InstrecError(Exception):
    """Base class of errors a user can cause (bad file, bad argument, bad bundle)."""

    exit_code = 1


class ParameterError(InstrecError, ValueError):
    """An argument is out of range or of the wrong kind (librosa's name for it)."""

    exit_code = 2


class AudioError(InstrecError):
    """A file cannot be used as audio: unreadable, empty, truncated, silent or not finite."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class DataError(InstrecError):
    """A data set cannot be used: no audio, one class, a manifest row without its file."""


class RenderError(InstrecError):
    """FluidSynth or a SoundFont is missing or fails."""


class WriteError(InstrecError, OSError):
    """An output cannot be written (a full disk, a read-only folder, no permission): one line
    naming the file. Still an ``OSError``, so code that falls back on one keeps doing so."""

    def __init__(self, path: str | os.PathLike, error: OSError):
        super().__init__(error.errno, error.strerror or str(error), str(path))

    def __str__(self) -> str:
        return f"cannot write {self.filename}: {self.strerror}"


class BundleError(InstrecError):
    """A model bundle is missing, incomplete or does not validate."""


class NotAModel(BundleError):
    """A path named as a model is not there, or is not a model at all: a usage error, like a
    mistyped model name (a damaged bundle stays a :class:`BundleError`, exit 1)."""

    exit_code = 2


def counted(n: int, noun: str) -> str:
    """``"1 clip"``, ``"3 clips"``: a count and its noun, in the singular for one."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def printable(text: str) -> str:
    """``text`` shown on one line as it is: control characters (newline, tab, DEL, C1), invisible
    format characters (bidirectional overrides such as U+202E) and lone surrogates escaped
    (``\\n``, ``\\u202e``), so a file's name cannot split a line or pose as another."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii") for c in text)


def skip_entry(error: InstrecError, path) -> tuple[str, str]:
    """``(file, problem)`` for a batch command's list of skipped files."""
    if isinstance(error, AudioError):
        return error.path, error.problem
    return str(path), str(error)


# The optional parts of instrec and the packages each brings (pyproject.toml's extras).
EXTRAS = {"torch": "train", "safetensors": "train", "onnx": "train", "fluidsynth": "render", "music21": "render", "fastapi": "serve",
          "uvicorn": "serve", "starlette": "serve", "multipart": "serve", "python_multipart": "serve",
          "matplotlib": "plot", "ray": "cluster", "pyarrow": "cluster"}


def missing_extra(error: ImportError) -> str | None:
    """One line naming the extra to install when ``error`` is a missing optional package, else None."""
    name = (getattr(error, "name", None) or "").split(".")[0]
    extra = EXTRAS.get(name)
    if extra is None:
        return None
    return f"this needs the package {name!r}, which instrec's [{extra}] extra installs: pip install 'instrec[{extra}]'"
