"""Audio decoding: ``audio.load`` on arbitrary, mutated and float files, and ``audio.check_samples``
on arrays of any dtype against a float64 reference.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

from fuzz.generators import (AMPLITUDES, DTYPES, MAGIC, SR, as_float32, make_signal, mutated_file, realise_file,
                             signal_array, signals)
from fuzz.harness import Context, check_refusal, violated
from instrec.audio import AUDIO_EXTENSIONS, MAX_CHANNELS, MIN_SECONDS, SILENCE_PEAK, SR_RANGE, check_samples, load
from instrec.errors import AudioError


# ---------------------------------------------------------------------------------------------
# Audio files: load() on arbitrary, mutated and float files


LOAD_OPTIONS = st.fixed_dictionaries({
    "sr": st.sampled_from([None, 8000, 22050, 44100]),
    "mono": st.booleans(),
    "duration": st.one_of(st.none(), st.none(), st.floats(0.001, 10.0)),
    "max_duration": st.sampled_from([None, 3600.0, 3600.0, 1.0, 0.05]),
})

LOAD_BYTES = st.fixed_dictionaries({
    "ext": st.sampled_from(AUDIO_EXTENSIONS + (".WAV", ".Mp3")),
    "data": st.tuples(st.sampled_from(MAGIC), st.binary(max_size=4096)).map(lambda t: t[0] + t[1]),
    "options": LOAD_OPTIONS,
})

LOAD_MUTATED = st.fixed_dictionaries({"file": mutated_file(), "options": LOAD_OPTIONS})


def check_load(path: Path, options: dict) -> None:
    """load() returns finite float32 (mono 1-D, else (channels, n)) at the rate asked, within the
    duration asked; or refuses with an AudioError naming the file in one line."""
    try:
        y, sr = load(path, **options)
    except AudioError as e:
        check_refusal(e, names=str(path))
        return
    if not isinstance(y, np.ndarray) or y.dtype != np.float32:
        violated(f"load returned {type(y).__name__} of dtype {getattr(y, 'dtype', None)}, not float32")
    want_sr = options.get("sr")
    if want_sr is not None and sr != want_sr:
        violated(f"load returned rate {sr}, asked for {want_sr}")
    if want_sr is None and not SR_RANGE[0] <= sr <= SR_RANGE[1]:
        violated(f"load returned an implausible native rate {sr}")
    if options.get("mono", True):
        if y.ndim != 1:
            violated(f"mono load returned shape {y.shape}")
    elif y.ndim != 2 or not 1 <= y.shape[0] <= MAX_CHANNELS:
        violated(f"multichannel load returned shape {y.shape}")
    n = y.shape[-1]
    if n == 0:
        violated("load returned no samples")
    if not np.all(np.isfinite(y)):
        violated("load returned NaN or infinite samples")
    seconds = n / sr
    # resampling may add a few samples; mp3 frames are 1152 samples
    slack = 0.05 + 1152 / min(sr, 8000)
    if options.get("duration") is not None and seconds > options["duration"] + slack:
        violated(f"load(duration={options['duration']}) returned {seconds:.3f} s")
    if options.get("max_duration") is not None and seconds > options["max_duration"] + slack:
        violated(f"load(max_duration={options['max_duration']}) returned {seconds:.3f} s")


def check_load_bytes(case: dict, ctx: Context) -> None:
    """load() of arbitrary bytes written under an audio extension."""
    path = ctx.write("input" + case["ext"], case["data"])
    check_load(path, case["options"])


def check_load_mutated(case: dict, ctx: Context) -> None:
    """load() of a valid seed file after bit flips, truncations and overwritten header fields."""
    data, ext = realise_file(case["file"], ctx)
    path = ctx.write("input" + ext, data)
    check_load(path, case["options"])


def float_wav_cases(*, amps=AMPLITUDES):
    """A float/double wav made from a signal recipe: its samples can be any finite value."""
    return st.fixed_dictionaries({
        "signal": signals(max_samples=SR, min_samples=1000, amps=amps, specials=[0.0]),
        "subtype": st.sampled_from(["FLOAT", "DOUBLE"]),
        "file_sr": st.sampled_from([8000, 22050, 44100, 96000]),
        "channels": st.sampled_from([1, 2]),
        "options": st.fixed_dictionaries({"sr": st.sampled_from([None, 8000, 22050, 44100]), "mono": st.booleans(),
                                          "duration": st.none(), "max_duration": st.just(3600.0)}),
    })


def check_load_float_wav(case: dict, ctx: Context) -> None:
    """load() of a float/double wav written from a signal recipe."""
    import soundfile as sf

    y = make_signal(case["signal"])
    y = np.stack([y] * case["channels"], axis=1)
    if case["subtype"] == "FLOAT":
        y = as_float32(y)
    buf = io.BytesIO()
    sf.write(buf, y, case["file_sr"], format="WAV", subtype=case["subtype"])
    path = ctx.write("input.wav", buf.getvalue())
    check_load(path, case["options"])


# ---------------------------------------------------------------------------------------------
# check_samples, and the float64 reference that Model.predict and the service are held to too


def reference_refusal(y: np.ndarray, sr: int | None) -> str | None:
    """What check_samples should say of ``y``, computed in float64 (None: the audio is usable;
    ``"either"``: refusing and accepting are both right, as for a bool array)."""
    import instrec.audio

    if np.asarray(y).size == 0:
        return "empty"
    if np.asarray(y).dtype.kind not in "fiu":
        return "either"
    x = np.asarray(y, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        return "non-finite"
    peak = float(np.max(np.abs(x)))
    if peak < SILENCE_PEAK:
        return "silent"
    max_peak = getattr(instrec.audio, "MAX_PEAK", None)  # the library's bound, where it has one
    if max_peak is not None and peak > max_peak:
        return "too large"
    if float(np.ptp(x)) < SILENCE_PEAK:
        return "constant"
    if sr is not None and x.shape[-1] < MIN_SECONDS * sr:
        return "short"
    return None


def check_samples_cases(dtypes=DTYPES):
    """Arrays for check_samples: a signal recipe cast to one of ``dtypes``, 1-D or 1-2 channels."""
    return st.fixed_dictionaries({
        "signal": signals(max_samples=4000),
        "dtype": st.sampled_from(dtypes),
        "channels": st.sampled_from([0, 0, 0, 1, 2]),  # 0: 1-D
        "sr": st.sampled_from([None, 1, 1000, 22050, 200_000]),
    })


CHECK_SAMPLES = check_samples_cases()


def check_check_samples(case: dict, ctx: Context) -> None:
    """check_samples refuses exactly what the float64 reference refuses, with an AudioError."""
    y = signal_array(case)
    want = reference_refusal(y, case["sr"])
    try:
        check_samples(y, "<fuzz>", sr=case["sr"])
    except AudioError as e:
        check_refusal(e, names="<fuzz>")
        if want is None:
            violated(f"check_samples refused usable {y.dtype} audio ({e.problem}); the float64 reference accepts it")
        return
    if want not in (None, "either"):
        violated(f"check_samples accepted {y.dtype} audio the float64 reference calls {want}")
