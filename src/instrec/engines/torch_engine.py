"""The PyTorch engine: a trained :class:`~instrec.classifier.InstrumentClassifier` runs the network."""

from __future__ import annotations

import os

import numpy as np

from ..classifier import InstrumentClassifier, decision_meta


class TorchEngine:
    """The PyTorch network of a model bundle (:class:`~instrec.classifier.InstrumentClassifier`)."""

    name = "torch"

    def __init__(self, classifier: InstrumentClassifier):
        self.classifier = classifier
        self.classes = classifier.classes
        self.feature = classifier.recipe.feature
        self.meta = {"classes": self.classes, "recipe": classifier.recipe.to_dict(), **classifier.info,
                     **decision_meta(classifier)}
        net = classifier.net_
        self._net = net.for_inference() if hasattr(net, "for_inference") else net

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TorchEngine":
        return cls(InstrumentClassifier.load(path))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.classifier.predict_proba(X, net=self._net)
