"""Property-based tests (hypothesis) of the loaders, the feature functions, the window helpers,
model bundles, manifests and the service's request handling (issue 6, item 3).

The targets and their properties live in the ``fuzz`` package (``T`` is its registry,
``fuzz/targets.py``), shared with the long fuzz run (``python -m fuzz.fuzz_audio``). Here each
runs briefly and reproducibly (``derandomize``: the same examples on every run).
``INSTREC_FUZZ_SCALE=10`` multiplies the number of examples. Run from the repository root
(``python -m pytest``), which puts the ``fuzz`` package on the path.

The property everywhere: instrec answers correctly or refuses with an
:class:`~instrec.errors.InstrecError` in one clear line; nothing else escapes, the service never
answers 5xx. Where the fuzz found inputs that broke it (15 findings, all fixed), the inputs' region
has its own test with the reproducer as an explicit ``@example``: these are regression tests now.
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pytest

pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fuzz import targets as T  # noqa: E402
from instrec.errors import InstrecError  # noqa: E402

SCALE = float(os.environ.get("INSTREC_FUZZ_SCALE", "1"))


def fuzz(n: int):
    return settings(max_examples=max(1, int(n * SCALE)), deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


def check(fn, case, ctx, **kw):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        fn(case, ctx, **kw)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    c = T.Context(tmp_path_factory.mktemp("fuzz"))
    yield c
    c.close()


def sig(n=22050, kind="sine", amp=0.3, dc=0.0, seed=0, specials=()):
    """A signal recipe (see fuzz.generators.make_signal) for explicit examples."""
    return {"n": n, "kind": kind, "amp": amp, "dc": dc, "seed": seed, "specials": list(specials)}


OPTS = {"sr": 22050, "mono": True, "duration": None, "max_duration": 3600.0}
PCM16, MP3 = 0, 16  # indices into fuzz.generators.SEED_SPECS


# ---------------------------------------------------------------------------------------------
# audio.load


@fuzz(150)
@given(case=T.LOAD_BYTES)
@example(case={"ext": ".wav", "data": b"RIFF", "options": OPTS})
@example(case={"ext": ".mp3", "data": b"\xff\xfb\x90\x64" + bytes(400), "options": OPTS})
@example(case={"ext": ".flac", "data": b"fLaC" + bytes(60), "options": {**OPTS, "mono": False, "sr": None}})
def test_load_arbitrary_bytes(ctx, case):
    """Arbitrary bytes with an audio extension: finite float32 at the rate asked, or AudioError
    naming the file in one line."""
    check(T.check_load_bytes, case, ctx)


@fuzz(200)
@given(case=T.LOAD_MUTATED)
@example(case={"file": {"seed": PCM16, "ops": [("head", 100)], "ext": None}, "options": OPTS})  # truncated
@example(case={"file": {"seed": PCM16, "ops": [("set", 24, 0), ("set", 25, 0)], "ext": None}, "options": OPTS})  # 0 Hz
@example(case={"file": {"seed": PCM16, "ops": [("set", 22, 0)], "ext": None}, "options": OPTS})  # 0 channels
@example(case={"file": {"seed": PCM16, "ops": [("set", 40, 255), ("set", 41, 255), ("set", 42, 255), ("set", 43, 127)],
                        "ext": None}, "options": OPTS})  # a data chunk claiming 2 GB
@example(case={"file": {"seed": MP3, "ops": [], "ext": ".wav"}, "options": {**OPTS, "mono": False}})  # mp3 named .wav
def test_load_mutated_files(ctx, case):
    """Valid wav/flac/ogg/mp3 (and rf64, w64, aiff named .wav) with bit flips, truncations and
    overwritten header fields (rate, channels, sizes): loaded correctly or refused."""
    check(T.check_load_mutated, case, ctx)


@fuzz(60)
@given(case=T.float_wav_cases(amps=T.AMPLITUDES_ORDINARY))
def test_load_float_wav_files(ctx, case):
    """float and double wavs, any rate, mono or stereo, loaded at another rate: as above."""
    check(T.check_load_float_wav, case, ctx)


@fuzz(20)
@given(case=T.float_wav_cases(amps=T.AMPLITUDES_HUGE))
@example(case={"signal": sig(n=4000, amp=3.4e38), "subtype": "FLOAT", "file_sr": 8000, "channels": 1,
               "options": {**OPTS, "sr": 22050}})
def test_load_float_wav_files_with_huge_samples(ctx, case):
    check(T.check_load_float_wav, case, ctx)


# ---------------------------------------------------------------------------------------------
# audio.check_samples and Model.predict on arrays


@fuzz(150)
@given(case=T.check_samples_cases(dtypes=["float16", "float32", "float64"]))
def test_check_samples_float_arrays(ctx, case):
    """check_samples refuses (AudioError) exactly what a float64 reference calls empty,
    non-finite, silent, constant or too short."""
    check(T.check_check_samples, case, ctx)


@fuzz(60)
@given(case=T.check_samples_cases(dtypes=["int8", "int16", "int32", "uint8", "bool"]))
@example(case={"signal": sig(n=1000, kind="noise", amp=1.0), "dtype": "bool", "channels": 0, "sr": None})
@example(case={"signal": sig(n=1000, kind="square", amp=1e6), "dtype": "int16", "channels": 0, "sr": None})
def test_check_samples_integer_and_bool_arrays(ctx, case):
    check(T.check_check_samples, case, ctx)


@fuzz(40)
@given(case=T.predict_cases(amps=T.AMPLITUDES_ORDINARY, specials=T.SPECIALS_ORDINARY, dtypes=T.DTYPES_ORDINARY))
@example(case={"signal": sig(specials=[(5, math.nan)]), "dtype": "float32", "channels": 0, "sr": 22050, "window": None, "hop": None})
@example(case={"signal": sig(kind="dc", amp=0.0, dc=0.5), "dtype": "float32", "channels": 0, "sr": 22050, "window": None, "hop": None})
@example(case={"signal": sig(n=200), "dtype": "float32", "channels": 0, "sr": 22050, "window": None, "hop": None})
@example(case={"signal": sig(n=8 * 22050), "dtype": "int16", "channels": 3, "sr": 44100, "window": 1.0, "hop": 0.5})
@example(case={"signal": sig(n=2 * 22050, amp=10000.0), "dtype": "int16", "channels": 2, "sr": 44100, "window": None, "hop": None})
@example(case={"signal": sig(), "dtype": "float32", "channels": 0, "sr": 0, "window": None, "hop": None})
@example(case={"signal": sig(), "dtype": "float32", "channels": 0, "sr": "22050", "window": None, "hop": None})
@example(case={"signal": sig(), "dtype": "float32", "channels": 0, "sr": 22050, "window": 2.0, "hop": 3.0})
def test_predict_arrays(ctx, case):
    """Model.predict on arrays of any length, dtype, channel count and rate, with NaN/inf, DC,
    silence, clipping: a Prediction whose probabilities sum to 1, or an InstrecError.
    (Finite samples above 1e15 and audio over 60 s at its own rate: the two tests below.)"""
    check(T.check_predict, case, ctx)


@fuzz(20)
@given(case=T.predict_cases(amps=T.AMPLITUDES_HUGE, specials=[0.0], dtypes=["float32", "float64"],
                            rates=st.sampled_from([8000, 22050, 44100])))
@example(case={"signal": sig(amp=1e30), "dtype": "float32", "channels": 0, "sr": 22050, "window": None, "hop": None})
def test_predict_huge_finite_amplitudes(ctx, case):
    check(T.check_predict, case, ctx)


@fuzz(10)
@given(sr=st.integers(1, 999), n=st.integers(50, 100))
@example(sr=1, n=100)
def test_predict_rates_outside_the_loader_range_are_refused(ctx, sr, n):
    y = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    with pytest.raises(InstrecError):
        ctx.model.predict(y, sr)


class _UniformEngine:
    """An engine whose network costs nothing: what is left is Model's own work on the windows."""

    name = "uniform"

    def __init__(self, model):
        self.classes, self.feature, self.meta = model.classes, model.feature, {}

    def predict_proba(self, X):
        return np.full((len(X), len(self.classes)), 1 / len(self.classes), dtype=np.float32)


def test_predict_memory_does_not_grow_with_the_number_of_windows(ctx):
    from instrec.inference import Model

    model = Model(_UniformEngine(ctx.model))
    y = (0.3 * np.random.default_rng(0).standard_normal(300 * T.SR)).astype(np.float32)
    with T.memory_headroom(512 << 20):  # 2,900 windows of 3 s: 770 MB of features if held at once
        pred = model.predict(y, T.SR, window=3.0, hop=0.1)
    T.check_prediction(pred, model.classes)


# ---------------------------------------------------------------------------------------------
# Features


@fuzz(60)
@given(case=T.feature_default_cases(amps=T.AMPLITUDES_ORDINARY))
@example(case={"kind": "image", "signal": sig(n=441, kind="impulse", amp=1.0)})
@example(case={"kind": "mfcc", "signal": sig(kind="zeros")})
def test_features_of_finite_audio(ctx, case):
    """compute(y, FeatureConfig(kind)) for finite audio of 20 ms to 5 s: a finite float32 vector
    of config.dim (image pixels in [0, 1]), or an InstrecError."""
    check(T.check_feature_defaults, case, ctx)


@fuzz(20)
@given(case=T.feature_default_cases(amps=T.AMPLITUDES_HUGE))
@example(case={"kind": "mfcc", "signal": sig(amp=1e30)})
def test_features_of_huge_finite_audio(ctx, case):
    check(T.check_feature_defaults, case, ctx)


@fuzz(60)
@given(case=T.FEATURE_PARAMS)
def test_features_with_random_parameters(ctx, case):
    """Every FeatureConfig that constructs (n_fft 16..4096, hop 1..8192, 1..256 mels, fmin/fmax,
    tiny images) computes a finite vector of its dim, or refuses."""
    check(T.check_feature_params, case, ctx)


@fuzz(200)
@given(case=T.FEATURE_CONFIG)
@example(case={"params": {"seconds": math.nan}, "from_dict": False, "extra": None})
@example(case={"params": {"n_fft": 0}, "from_dict": True, "extra": None})
@example(case={"params": {"kind": "spectrogram"}, "from_dict": False, "extra": None})
@example(case={"params": {}, "from_dict": True, "extra": "nfft"})
def test_feature_config_parameters(ctx, case):
    """FeatureConfig with odd values: a valid config (positive dim, round-trips) or
    ParameterError (TypeError only for a value of the wrong type)."""
    check(T.check_feature_config, case, ctx)


# ---------------------------------------------------------------------------------------------
# Windows and segments


@fuzz(200)
@given(case=T.WINDOW_SPANS)
@example(case={"n": 0, "sr": 22050, "window": 3.0, "hop_ratio": 0.5})
@example(case={"n": 66151, "sr": 22050, "window": 3.0, "hop_ratio": 0.5})
@example(case={"n": 150_000, "sr": 1, "window": 600.0, "hop_ratio": 0.0})  # the shortest hop, many windows
def test_window_spans_cover_the_recording(ctx, case):
    check(T.check_window_spans, case, ctx)


@fuzz(150)
@given(case=T.MERGE)
def test_merge_segments_tile_the_recording(ctx, case):
    check(T.check_merge_segments, case, ctx)


@fuzz(300)
@given(case=T.CHECK_WINDOW)
@example(case={"window": math.nan, "hop": None})
@example(case={"window": 1, "hop": 2})
@example(case={"window": None, "hop": 600})
def test_check_window_accepts_exactly_the_valid_values(ctx, case):
    check(T.check_check_window, case, ctx)


# ---------------------------------------------------------------------------------------------
# model.json


def mj(*ops, bytes_ops=(), prefix=b""):
    return {"ops": list(ops), "bytes_ops": list(bytes_ops), "prefix": prefix, "indent": None}


@fuzz(40)
@given(case=T.MODEL_JSON)
@example(case=mj(("set", ["classes"], ["flute"])))
@example(case=mj(("set", ["classes"], ["flute", "flute", "oboe", "cello", "viola", "trumpet"])))
@example(case=mj(("set", ["format_version"], 2)))
@example(case=mj(("set", ["recipe", "feature", "sr"], 8000)))  # weights still fit: loads and predicts
@example(case=mj(("set", ["x"], 1), bytes_ops=[("head", 200)]))
@example(case=mj(("set", ["x"], 1), prefix=b"\xff\xfe"))
def test_model_json_mutations(ctx, case):
    """A tampered model.json beside the shipped weights: loads (and predicts) or an InstrecError.
    (Networks over 50 M parameters, and refusals that are not BundleError: the next tests.)"""
    check(T.check_model_json, case, ctx, ordinary=True, bundle_error=False)


@fuzz(5)
@given(kind=st.sampled_from(["mfcc", "image"]))
@example(kind="mfcc")
def test_model_json_refusals_are_bundle_errors(ctx, kind):
    check(T.check_model_json, mj(("set", ["recipe", "feature", "kind"], kind)), ctx)


@fuzz(10)
@given(channels=st.lists(st.integers(1024, 4096), min_size=8, max_size=16))
@example(channels=[4096] * 16)
@example(channels=[16, 32, 64, 4096])  # ~150 M parameters in one layer
def test_model_json_cannot_make_load_allocate_gigabytes(ctx, channels):
    check(T.check_model_json, mj(("set", ["recipe", "model", "channels"], channels)), ctx)


@fuzz(10)
@given(n_fft=st.integers(16384, 65536), hop=st.integers(1, 4))
@example(n_fft=65536, hop=1)
def test_model_json_cannot_make_predict_allocate_gigabytes(ctx, n_fft, hop):
    case = mj(("set", ["recipe", "feature", "n_fft"], n_fft), ("set", ["recipe", "feature", "hop_length"], hop))
    check(T.check_model_json, case, ctx)


@fuzz(10)
@given(seconds=st.floats(0.05, 0.7), hop=st.sampled_from([512, 2048, 8192, 65536]))
@example(seconds=0.3, hop=512)
def test_model_json_windows_too_short_for_the_cnn(ctx, seconds, hop):
    case = mj(("set", ["recipe", "feature", "seconds"], seconds), ("set", ["recipe", "feature", "hop_length"], hop))
    check(T.check_model_json, case, ctx)


# ---------------------------------------------------------------------------------------------
# Manifests


@fuzz(150)
@given(case=T.manifest_cases(hostile=False))
def test_manifest_csv(ctx, case):
    """A fuzzed UTF-8 manifest (odd headers, delimiters, newlines, paths, labels, missing files):
    a Dataset of existing files, or DataError/ParameterError. (Empty labels and multi-line
    refusals: the tests below.)"""
    check(T.check_manifest, case, ctx, tolerate=("empty-label", "multiline-message"))


def man(raw=None, rows=(), encoding="utf-8"):
    return {"header": ["path", "label"], "rows": [list(r) for r in rows], "delimiter": ",", "newline": "\n",
            "encoding": encoding, "raw": raw, "labels": "auto", "where": "root", "absolute": False}


@fuzz(40)
@given(case=T.manifest_cases(hostile=True))
@example(case=man(raw=b"path,label\nfl\xfbte_1.wav,fl\xfbte\n"))
@example(case=man(rows=[("x" * 256, "flute")]))
@example(case=man(rows=[("z" * 140_000, "flute")]))
def test_manifest_csv_hostile(ctx, case):
    check(T.check_manifest, case, ctx)


@fuzz(20)
@given(label=st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1, max_size=8))
@example(label="クラリネット")
@example(label="±")
def test_manifest_labels_are_never_empty(ctx, label):
    check(T.check_manifest, man(rows=[("flute_1.wav", label)]), ctx)


@fuzz(10)
@given(name=st.text(min_size=1, max_size=8).map(lambda t: t + "\r"))
@example(name="pa\rth")
def test_manifest_refusals_are_one_line(ctx, name):
    case = {**man(rows=[("flute_1.wav", "flute")]), "header": [name, "label"], "newline": "\n"}
    check(T.check_manifest, case, ctx)


def test_manifest_with_a_byte_order_mark_reads_like_without(ctx):
    from instrec.data.folder import load_dataset

    root = ctx.dataset
    (root / "manifest.csv").write_bytes("\ufeffpath,label\nflute_1.wav,flute\ncello_2.wav,cello\n".encode("utf-8"))
    try:
        ds = load_dataset(root)
    finally:
        (root / "manifest.csv").unlink()
    assert ds.labels == ["flute", "cello"]


# ---------------------------------------------------------------------------------------------
# The service


def svc(upload, filename="clip.wav", content_type="audio/wav", field="file", **fields):
    return {"upload": upload, "filename": filename, "content_type": content_type, "field": field, "fields": fields}


@fuzz(50)
@given(case=T.service_cases(uploads=T.upload_cases(amps=T.AMPLITUDES_ORDINARY, specials=T.SPECIALS_ORDINARY,
                                                    float_seeds=False)))
@example(case=svc({"kind": "signal", "signal": sig(), "subtype": "PCM_16", "sr": 22050}, top_k="2", spectrogram="true"))
@example(case=svc({"kind": "signal", "signal": sig(n=5 * 22050), "subtype": "PCM_16", "sr": 22050}, window="1", hop="0.5"))
@example(case=svc({"kind": "bytes", "data": b""}, filename="../../etc/passwd.wav"))
@example(case=svc({"kind": "bytes", "data": b"RIFF" + bytes(40)}, filename="noext", content_type=""))
@example(case=svc({"kind": "mutated", "file": {"seed": PCM16, "ops": [("head", 60)], "ext": None}}, field="two_files"))
@example(case=svc({"kind": "signal", "signal": sig(), "subtype": "PCM_16", "sr": 22050}, field="file_as_text"))
# usable audio behind a refused field: the plain upload of the same audio must be taken
@example(case=svc({"kind": "signal", "signal": sig(seed=3), "subtype": "PCM_U8", "sr": 48000}, top_k="abc"))
@example(case=svc({"kind": "signal", "signal": sig(seed=2, n=8000), "subtype": "FLOAT", "sr": 8000}, content_type="text/html"))
def test_service_uploads(ctx, case):
    """POST /v1/predict with random uploads (bytes, mutated files, signals), file names, content
    types and form fields: never 5xx; a 4xx body is {"error": one line}; a 200 is a valid
    prediction named after the upload; usable audio is taken when uploaded plainly. (Float files
    with huge samples: the next test.)"""
    check(T.check_service, case, ctx)


@fuzz(10)
@given(case=T.service_cases(uploads=st.fixed_dictionaries({
    "kind": st.just("signal"), "signal": T.signals(max_samples=2 * T.SR, min_samples=2000, amps=T.AMPLITUDES_HUGE,
                                                     specials=[0.0]),
    "subtype": st.sampled_from(["FLOAT", "DOUBLE"]), "sr": st.just(22050)})))
@example(case=svc({"kind": "signal", "signal": sig(amp=1e30), "subtype": "FLOAT", "sr": 22050}))
def test_service_huge_float_upload(ctx, case):
    check(T.check_service, case, ctx)


@fuzz(50)
@given(case=T.SERVICE_RAW)
def test_service_raw_bodies(ctx, case):
    """Hand-made multipart bodies (bad boundaries, headers, parts) and content types: never 5xx,
    errors as {"error": one line}."""
    check(T.check_service_raw, case, ctx)
