"""The words train_model's summary gives (context), for train to print and reports to keep."""

from __future__ import annotations

import pytest

from instrec.pipeline.training import calibration_words


@pytest.mark.parametrize("cal", [
    {"validation_rows": 0, "temperature": 1.0, "min_confidence": None},
    {"validation_rows": 3, "temperature": 1.0, "min_confidence": None, "too_few_rows": True, "min_rows": 20},
    {"validation_rows": 0, "thresholds": {"flute": 0.5, "cello": 0.5}},
])
def test_an_uncalibrated_model_is_told_how_to_calibrate_it(cal):
    """'no min_confidence (answers unknown only for the class unknown)' made no sense for a model
    without that class, and said nothing of what to do: instrec calibrate on the user's recordings."""
    words = calibration_words(cal)
    assert "class unknown" not in words and "instrec calibrate MODEL DATA --out NEW, on recordings of yours" in words, words
