"""The Python API behind every command: train, evaluate, predict, cross-validate.

The CLI only parses arguments, calls these and prints; anything it does, Python code can do.
``progress`` arguments take a factory ``progress(description, total) -> update(done, total)``;
``options`` a :class:`DataOptions` (how labelled audio is read and its features computed).
"""

from ..data.splits import KFold, LeaveOneSourceOut
from .common import (DEFAULT_RECIPE, DataOptions, Progress, load_base_model, resolve_recipe, shifted_features,
                     training_rows)
from .calibration import calibrate_model
from .evaluation import evaluate_model
from .prediction import ResultsLog, predict_paths, write_results
from .training import SPLIT_FILE, TrainResult, checkpoint_path, train_model
from .validation import cross_validate

__all__ = ["DEFAULT_RECIPE", "DataOptions", "Progress", "KFold", "LeaveOneSourceOut", "train_model", "TrainResult",
           "evaluate_model", "calibrate_model", "predict_paths", "write_results", "ResultsLog", "cross_validate", "load_base_model", "resolve_recipe",
           "shifted_features", "training_rows", "checkpoint_path", "SPLIT_FILE"]
