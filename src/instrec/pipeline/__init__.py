"""The Python API behind every command: train, evaluate, predict, cross-validate.

The CLI only parses arguments, calls these and prints; anything it does, Python code can do.
``progress`` arguments take a factory ``progress(description, total) -> update(done, total)``;
``options`` a :class:`DataOptions` (how labelled audio is read and its features computed).
"""

import importlib

# Each name from its module when first used: predicting (prediction) imports no training code and
# no scikit-learn (a second to import, most of a prediction's start-up).
_WHERE = {
    "KFold": "..data.splits", "LeaveOneSourceOut": "..data.splits",
    "DEFAULT_RECIPE": ".common", "DataOptions": ".common", "load_base_model": ".common", "resolve_recipe": ".common",
    "shifted_features": ".common", "training_rows": ".common",
    "Progress": ".progress",
    "calibrate_model": ".calibration",
    "evaluate_model": ".evaluation",
    "ResultsLog": ".prediction", "predict_paths": ".prediction", "write_results": ".prediction",
    "SPLIT_FILE": ".training", "TrainResult": ".training", "checkpoint_path": ".training", "train_model": ".training",
    "cross_validate": ".validation",
}


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name], __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted([*globals(), *_WHERE])


__all__ = list(_WHERE)
