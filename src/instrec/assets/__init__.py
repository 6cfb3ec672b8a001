"""Files shipped inside the package: the default model (``model/``), trained by
``scripts/train_shipped_model.py`` on FluidSynth renders only (license-clean)."""

from __future__ import annotations

from pathlib import Path

from ..errors import BundleError

SHIPPED_MODEL = Path(__file__).resolve().parent / "model"


def shipped_model_path() -> Path:
    """The folder of the model that ships with instrec."""
    if not (SHIPPED_MODEL / "model.json").is_file():
        raise BundleError(f"the shipped model is missing from {SHIPPED_MODEL}; "
                          "run scripts/train_shipped_model.py or pass a model folder")
    return SHIPPED_MODEL
