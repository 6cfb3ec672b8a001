"""Engines run a model's network: feature rows ``(n, feature.dim)`` in, class probabilities out.

Two kinds: :class:`~instrec.engines.torch_engine.TorchEngine` (a trained classifier, needs torch)
and :class:`~instrec.engines.onnx_engine.OnnxEngine` (an exported graph, needs onnxruntime only).
This package's ``__init__`` imports neither, so the onnxruntime route never loads torch.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from ..errors import ParameterError
from ..features.config import FeatureConfig

class Engine(Protocol):
    """What runs a network: feature rows ``(n, feature.dim)`` in, probabilities out."""

    name: str
    classes: list[str]
    feature: FeatureConfig
    meta: dict

    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...


class RestrictedEngine:
    """Another engine's answers among some of its classes only, probabilities renormalised (a
    multi-label model's are kept as they are).

    What a user who knows the recording is one of a few instruments wants, and how a model that
    knows more classes is scored in the tutorial's six-class mode: the answer is the likeliest of
    the classes kept.
    """

    def __init__(self, engine: Engine, classes: Sequence[str]):
        self.engine = engine
        # one instrument is a question a multi-label model answers ("is there a piano?"): its
        # probabilities are each class's own; a softmax's one class would always win
        self.columns = class_columns(engine.classes, classes, least=1 if is_multilabel_meta(engine.meta) else 2)
        self.name = engine.name
        self.classes = [engine.classes[i] for i in self.columns]
        self.feature = engine.feature
        self.meta = {**engine.meta, "classes": self.classes, "all_classes": list(engine.classes)}

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        P = self.engine.predict_proba(X)
        # a multi-label model's probabilities are each class's own: nothing to renormalise
        return P[:, self.columns] if is_multilabel_meta(self.meta) else restrict_proba(P, self.columns)


def is_multilabel_meta(meta: dict) -> bool:
    """Whether a model description (model.json, an engine's ``meta``) is a multi-label model's."""
    model = (meta.get("recipe") or {}).get("model") or {}
    return model.get("output") == "sigmoid"


def class_columns(classes: Sequence[str], keep: Sequence[str] | str, *, least: int = 2) -> list[int]:
    """Columns of ``classes`` named by ``keep`` (a list, or one comma-separated string), in the
    model's order; names are matched as labels are (``"Sax"`` is ``saxophone``).

    Raises :class:`~instrec.errors.ParameterError` for a name the model does not know, or for
    fewer than ``least`` distinct classes (one class of a softmax would always win).
    """
    from ..data.instruments import canonical_label

    names = keep.split(",") if isinstance(keep, str) else list(keep)
    names = [str(n) for n in names if str(n).strip()]
    blank = next((n for n in names if not canonical_label(n)), None)
    if blank is not None:
        raise ParameterError(f"{blank.strip()!r} names no class (no letter or digit); the model's classes: {', '.join(classes)}")
    wanted = {canonical_label(n) for n in names}
    unknown = sorted(wanted - set(classes))
    if unknown:
        raise ParameterError(f"the model does not know {', '.join(unknown)}; its classes: {', '.join(classes)}")
    if len(wanted) < least:
        raise ParameterError(f"name at least {'two classes to choose among' if least == 2 else 'one class'}; "
                             f"got {', '.join(sorted(wanted)) or 'none'}")
    return [i for i, c in enumerate(classes) if c in wanted]


def restrict_proba(proba: np.ndarray, columns: Sequence[int]) -> np.ndarray:
    """``proba``'s ``columns``, each row rescaled to sum to 1."""
    P = np.asarray(proba)[:, list(columns)]
    total = P.sum(axis=1, keepdims=True)
    # A row whose kept classes all got probability 0 (underflow) stays 0 rather than NaN.
    return np.divide(P, total, out=np.zeros_like(P), where=total > 0)
