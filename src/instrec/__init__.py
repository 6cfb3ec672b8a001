"""instrec: tell which musical instrument is playing in a recording."""

__version__ = "0.1.0"

# Heavy libraries (torch, librosa) are imported where used, so `instrec --help` starts fast.
from .errors import AudioError, BundleError, DataError, InstrecError, ParameterError  # noqa: E402


def load_model(path=None, *, engine: str = "torch"):
    """Load a model bundle folder, an exported ``.onnx`` file, or (``None``) the shipped model.

    Returns an :class:`instrec.inference.Model`: ``predict(y, sr)``, ``predict_file(path, window=None,
    hop=None)``, ``classes``, ``info``.
    """
    from .inference import load_model as _load_model

    return _load_model(path, engine=engine)


__all__ = ["load_model", "__version__", "InstrecError", "ParameterError", "AudioError", "DataError", "BundleError"]
