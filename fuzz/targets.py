"""The registry of fuzz targets (``TARGETS``, in the long run's order), and one import point for
``tests/test_fuzz.py``: every strategy, check and input tier it uses, from the module it lives in.

(No ``__all__``: hypothesis draws text from the string constants of local modules, and a list of
names here would change the examples the derandomized tests draw.)
"""

from __future__ import annotations

# Besides what the registry needs, the names tests/test_fuzz.py uses as ``T.<name>``.
from fuzz.audio_targets import (CHECK_SAMPLES, LOAD_BYTES, LOAD_MUTATED, check_check_samples,  # noqa: F401
                                check_load_bytes, check_load_float_wav, check_load_mutated, check_samples_cases,
                                float_wav_cases)
from fuzz.bundle_targets import MODEL_JSON, check_model_json
from fuzz.feature_targets import (FEATURE_CONFIG, FEATURE_DEFAULTS, FEATURE_PARAMS, check_feature_config,  # noqa: F401
                                  check_feature_defaults, check_feature_params, feature_default_cases)
from fuzz.generators import (AMPLITUDES_HUGE, AMPLITUDES_ORDINARY, DTYPES_ORDINARY, SPECIALS_ORDINARY, SR,  # noqa: F401
                             signals)
from fuzz.harness import Context, Target, memory_headroom  # noqa: F401
from fuzz.inference_targets import (CHECK_WINDOW, MERGE, PREDICT, WINDOW_SPANS, check_check_window,  # noqa: F401
                                    check_merge_segments, check_predict, check_prediction, check_window_spans,
                                    predict_cases)
from fuzz.manifest_targets import MANIFEST, check_manifest, manifest_cases  # noqa: F401
from fuzz.service_targets import (SERVICE, SERVICE_RAW, check_service, check_service_raw, service_cases,  # noqa: F401
                                  upload_cases)

# weight: a target's share of a long run's time (the pure helpers need less)
TARGETS: dict[str, Target] = {t.name: t for t in [
    Target("load_bytes", LOAD_BYTES, check_load_bytes, "audio.load on arbitrary bytes (magic-prefixed) with an audio extension", 1.5),
    Target("load_float_wav", float_wav_cases(), check_load_float_wav, "audio.load on float/double wavs with any finite samples (up to 3.4e38)", 1.0),
    Target("load_mutated", LOAD_MUTATED, check_load_mutated, "audio.load on mutated valid wav/flac/ogg/mp3/rf64/w64/aiff files", 2.0),
    Target("check_samples", CHECK_SAMPLES, check_check_samples, "audio.check_samples on arrays of any dtype vs a float64 reference", 0.5),
    Target("predict_array", PREDICT, check_predict, "Model.predict on arrays: dtypes, NaN/inf, DC, huge values, odd rates, windows", 1.5),
    Target("feature_defaults", FEATURE_DEFAULTS, check_feature_defaults, "features.compute with each kind's defaults on finite audio"),
    Target("feature_params", FEATURE_PARAMS, check_feature_params, "features.compute with random (bounded) FeatureConfig parameters"),
    Target("feature_config", FEATURE_CONFIG, check_feature_config, "FeatureConfig / from_dict with odd values and types", 0.5),
    Target("window_spans", WINDOW_SPANS, check_window_spans, "inference.window_spans covers [0, n)", 0.5),
    Target("merge_segments", MERGE, check_merge_segments, "inference.merge_segments tiles [0, duration]", 0.5),
    Target("check_window", CHECK_WINDOW, check_check_window, "inference.check_window accepts exactly the valid values", 0.5),
    Target("model_json", MODEL_JSON, check_model_json, "load_model on a bundle with a mutated model.json", 1.5),
    Target("manifest", MANIFEST, check_manifest, "data.load_dataset with a fuzzed manifest CSV", 1.0),
    Target("service", SERVICE, check_service, "POST /v1/predict: random uploads, file names, content types, form fields", 2.0),
    Target("service_raw", SERVICE_RAW, check_service_raw, "the service on hand-made multipart bodies and content types", 1.0),
]}
