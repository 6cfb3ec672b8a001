"""Files shipped inside the package: the default model (``model/``), trained by
``scripts/train_shipped_model.py`` on FluidSynth renders only (license-clean)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..errors import BundleError, ParameterError

SHIPPED_MODEL = Path(__file__).resolve().parent / "model"
SHIPPED_NAME = "shipped"  # wherever a model is read, this bare name is the shipped model


def shipped_model_path() -> Path:
    """The folder of the model that ships with instrec."""
    if not (SHIPPED_MODEL / "model.json").is_file():
        raise BundleError(f"the shipped model is missing from {SHIPPED_MODEL}; "
                          "run scripts/train_shipped_model.py or pass a model folder")
    return SHIPPED_MODEL


def names_shipped(path) -> bool:
    """True when ``path`` is the bare relative name ``shipped`` (``./shipped`` and ``shipped/`` too: the
    command line's paths arrive so spelt), which always means the shipped model."""
    return isinstance(path, (str, os.PathLike)) and Path(os.fspath(path)) == Path(SHIPPED_NAME)


def model_path(path: str | os.PathLike | None) -> Path:
    """The model folder or file ``path`` names: the shipped model's folder for ``None`` or ``shipped``
    (:func:`names_shipped`), else ``path``. A folder or file named ``shipped`` here is not read for
    that name: one line on stderr says so and how to reach it (its absolute path)."""
    if path is None or names_shipped(path):
        here = Path(SHIPPED_NAME)
        if path is not None and here.exists():
            kind = "folder" if here.is_dir() else "file"
            print(f"warning: 'shipped' names the shipped model; the {kind} ./{SHIPPED_NAME} here was not used "
                  f"(name it {here.absolute()} to use it)", file=sys.stderr)
        return shipped_model_path()
    return Path(path)


def check_out_name(out: str | os.PathLike, what: str) -> None:
    """Refuse the bare name ``shipped`` for a model written (``what``: "model folder", ".onnx file"):
    read back by that name it would be the shipped model, not this one (ParameterError)."""
    if names_shipped(out):
        raise ParameterError(f"{out}: that name means the shipped model; choose another name for the {what}")
