"""instrec: tell which musical instrument is playing in a recording."""

from ._version import __version__

# Heavy libraries (torch, librosa) are imported where used, so `instrec --help` starts fast.
from .errors import AudioError, BundleError, DataError, InstrecError, ParameterError  # noqa: E402


def load_model(path=None, *, engine: str = "auto", classes=None, min_confidence=None, level: str = "instrument"):
    """Load a model bundle folder, an exported ``.onnx`` file, or (``None``) the shipped model.

    Returns an :class:`instrec.inference.Model`: ``predict(y, sr)``, ``predict_file(path, window=None,
    hop=None)``, ``classes``, ``families``, ``info``. See :func:`instrec.inference.load_model`.
    """
    from .inference import load_model as _load_model

    return _load_model(path, engine=engine, classes=classes, min_confidence=min_confidence, level=level)


__all__ = ["load_model", "__version__", "InstrecError", "ParameterError", "AudioError", "DataError", "BundleError"]
