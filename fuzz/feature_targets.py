"""Features: ``features.compute`` with each kind's defaults and with random parameters, and
``FeatureConfig`` built from odd values and types.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from fuzz.generators import AMPLITUDES, SR, as_float32, make_signal, signals
from fuzz.harness import Context, check_refusal, violated
from instrec.audio import MIN_SECONDS
from instrec.errors import InstrecError, ParameterError


# ---------------------------------------------------------------------------------------------
# compute() on audio: each kind's defaults, then random parameters


def feature_default_cases(amps=AMPLITUDES):
    """A feature kind and finite audio of 20 ms to 5 s."""
    return st.fixed_dictionaries({
        "kind": st.sampled_from(["mfcc", "image", "waveform"]),
        "signal": signals(max_samples=5 * SR, min_samples=int(MIN_SECONDS * SR), finite=True, amps=amps),
    })


FEATURE_DEFAULTS = feature_default_cases()


@st.composite
def feature_params(draw):
    """FeatureConfig parameters in ranges that keep a computation small (every value valid or a
    plain out-of-range one)."""
    sr = draw(st.sampled_from([8000, 16000, 22050, 44100]))
    fmin = draw(st.sampled_from([0.0, 0.0, 20.0, 30.0, 1000.0]))
    return {
        "kind": draw(st.sampled_from(["mfcc", "image", "waveform"])),
        "sr": sr,
        "n_fft": draw(st.sampled_from([16, 64, 256, 512, 1024, 2048, 4096])),
        "hop_length": draw(st.sampled_from([1, 64, 128, 512, 2048, 8192])),
        "n_mels": draw(st.sampled_from([1, 2, 16, 40, 64, 128, 256])),
        "top_db": draw(st.sampled_from([1.0, 40.0, 80.0, 120.0])),
        "n_mfcc": draw(st.sampled_from([1, 13, 20, 40, 128])),
        "width": draw(st.sampled_from([1, 2, 16, 64, 200])),
        "height": draw(st.sampled_from([1, 2, 16, 48, 150])),
        "image_mode": draw(st.sampled_from(["gray", "rgb"])),
        "seconds": draw(st.sampled_from([0.05, 0.5, 1.0, 3.0])),
        "fmin": fmin,
        "fmax": draw(st.sampled_from([None, None, sr / 2, 4000.0])),
    }


FEATURE_PARAMS = st.fixed_dictionaries({
    "params": feature_params(),
    "signal": signals(max_samples=3 * 22050, min_samples=int(MIN_SECONDS * 44100), finite=True).map(
        lambda r: {**r, "amp": min(r["amp"], 1e4)}),
})


def check_feature_vector(v, config) -> None:
    """A finite float32 vector of ``config.dim`` (image pixels in [0, 1])."""
    if not isinstance(v, np.ndarray) or v.dtype != np.float32:
        violated(f"compute returned {type(v).__name__} {getattr(v, 'dtype', '')}, not float32")
    if v.shape != (config.dim,):
        violated(f"compute returned shape {v.shape}, config.dim is {config.dim}")
    if not np.all(np.isfinite(v)):
        violated(f"compute({config.kind}) returned {int(np.sum(~np.isfinite(v)))} non-finite values")
    if config.kind == "image" and (v.min() < 0 or v.max() > 1):
        violated(f"image pixels outside [0, 1]: {v.min()}..{v.max()}")


def _compute(y: np.ndarray, config) -> None:
    """compute(y, config) gives a good vector or refuses in one line."""
    from instrec.features import compute

    try:
        v = compute(y, config)
    except InstrecError as e:
        check_refusal(e)
        return
    check_feature_vector(v, config)


def check_feature_defaults(case: dict, ctx: Context) -> None:
    """compute(y, FeatureConfig(kind)) of finite audio is a finite float32 vector of config.dim."""
    from instrec.features import FeatureConfig

    _compute(as_float32(make_signal(case["signal"])), FeatureConfig(kind=case["kind"]))


def check_feature_params(case: dict, ctx: Context) -> None:
    """Any FeatureConfig that constructs computes a finite vector of its dim (or refuses)."""
    from instrec.features import FeatureConfig

    try:
        config = FeatureConfig(**case["params"])
    except ParameterError as e:
        check_refusal(e)
        return
    _compute(as_float32(make_signal(case["signal"])), config)


# ---------------------------------------------------------------------------------------------
# FeatureConfig built from odd values and types


ODD_VALUES = st.one_of(
    st.integers(-2**70, 2**70), st.sampled_from([0, -1, 1, 2**31, 2**63, True, False]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([math.nan, math.inf, -0.0, 1e-300]),
    st.none(), st.text(max_size=8), st.sampled_from(["mfcc", "image", "waveform", "gray", "rgb", "3", ""]),
    st.lists(st.integers(), max_size=2),
)
FEATURE_CONFIG = st.fixed_dictionaries({
    "params": st.dictionaries(st.sampled_from(["kind", "sr", "n_fft", "hop_length", "n_mels", "top_db", "n_mfcc",
                                               "width", "height", "image_mode", "seconds", "fmin", "fmax"]),
                              ODD_VALUES, max_size=5),
    "from_dict": st.booleans(),
    "extra": st.one_of(st.none(), st.none(), st.sampled_from(["nfft", "kind ", "window"])),
})

# The annotated type of each FeatureConfig field: a value of another type may raise TypeError
# (the Python convention for a wrong type); a value of the right type must construct or raise
# ParameterError.
_FEATURE_TYPES = {"kind": str, "image_mode": str, "sr": int, "n_fft": int, "hop_length": int, "n_mels": int,
                  "n_mfcc": int, "width": int, "height": int, "top_db": (int, float), "seconds": (int, float),
                  "fmin": (int, float), "fmax": (int, float, type(None))}


def check_feature_config(case: dict, ctx: Context) -> None:
    """FeatureConfig(**random params): a config (whose dim is a positive int) or ParameterError;
    TypeError only for a value of the wrong type."""
    from instrec.features import FeatureConfig

    params = dict(case["params"])
    if case["extra"]:
        params[case["extra"]] = 1
    wrong_type = any(not isinstance(v, _FEATURE_TYPES[k]) for k, v in case["params"].items())
    try:
        c = FeatureConfig.from_dict(params) if case["from_dict"] else FeatureConfig(**params)
    except ParameterError as e:
        check_refusal(e)
        return
    except TypeError:
        if wrong_type or (case["extra"] and not case["from_dict"]):
            return
        raise
    if not isinstance(c.dim, int) or c.dim <= 0:
        violated(f"FeatureConfig {c} has dim {c.dim!r}")
    if not 0.05 <= c.seconds <= 600:
        violated(f"FeatureConfig accepted seconds={c.seconds!r}")
    if FeatureConfig.from_dict(c.to_dict()) != c:
        violated("FeatureConfig does not round-trip through to_dict/from_dict")
