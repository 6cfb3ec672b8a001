"""Features: plain numpy functions, one implementation each, shared by train, evaluate and predict.

A :class:`FeatureConfig` says everything needed to recompute a feature exactly; a model bundle
stores it, so a model is never fed features computed differently from its training.

Many files: :func:`extract` (all rows in one matrix) and :func:`iter_features` (one row at a time,
flat memory) decode and compute in a pool of worker processes (``jobs``) and can keep what they
compute in a cache on disk keyed by each file's content and the parameters (``cache``, see
:mod:`instrec.features.cache`). The image's mel spectrogram and the MFCC share one STFT/mel
implementation (:mod:`instrec.features.mel`) that gives librosa's values several times faster.
"""

from .compute import compact_dtype, compute, compute_compact, compute_file, expand
from .config import CONTRAST_BANDS, FEATURE_KINDS, IMAGE_MODES, MFCC_STATS, FeatureConfig
from .extract import extract, iter_features

__all__ = ["FeatureConfig", "FEATURE_KINDS", "IMAGE_MODES", "MFCC_STATS", "CONTRAST_BANDS", "compute", "compute_file",
           "compute_compact", "compact_dtype", "expand", "extract", "iter_features"]
