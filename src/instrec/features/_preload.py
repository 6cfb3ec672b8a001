"""Imported once by the extraction pool's forkserver (see :mod:`instrec.features.pool`).

What every worker needs is loaded and warmed here, before the server forks the workers, so that
each worker starts in milliseconds, with FFT plans, filter banks and resampler code ready, instead
of importing numpy, scipy, soundfile and soxr and warming them on its own.
"""

import numpy as np
import scipy.fft  # noqa: F401
import scipy.sparse  # noqa: F401
import soxr

from .compute import compute_compact
from .config import FeatureConfig
from . import parallel  # noqa: F401  the workers' tasks, imported once here rather than in each worker
from .pool import init_worker

init_worker()  # the malloc settings, inherited by every worker forked from here
_y = (0.1 * np.sin(np.arange(22050) * 0.05)).astype(np.float32)
compute_compact(_y, FeatureConfig(kind="mfcc"))  # float32 FFT plan, mel bank, DCT
soxr.resample(np.concatenate([_y, _y]), 44100, 22050, quality="HQ")
