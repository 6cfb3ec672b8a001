"""instrec: tell which musical instrument is playing in a recording."""

__version__ = "0.1.0"

# Heavy libraries (torch, librosa) are imported where used, so `instrec --help` starts fast.
from .errors import AudioError, BundleError, DataError, InstrecError, ParameterError  # noqa: E402

__all__ = ["__version__", "InstrecError", "ParameterError", "AudioError", "DataError", "BundleError"]
