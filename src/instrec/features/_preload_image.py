"""The forkserver's extra warm-up when the pool computes the tutorial's images: matplotlib's colour
map (imported once here rather than in every worker), the float64 FFT plan and the image layout."""

import numpy as np

from .compute import compute_compact
from .config import FeatureConfig
from . import _preload  # noqa: F401

compute_compact((0.1 * np.sin(np.arange(22050) * 0.05)).astype(np.float32), FeatureConfig(kind="image"))
