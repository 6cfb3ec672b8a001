"""What a prediction returns: :class:`Prediction` for a recording, its :class:`Window` s and :class:`Segment` s,
and, from a multi-label model, a :class:`Track` per instrument heard (when it plays).

Each carries the answer (``label``: a class, or ``unknown`` when in doubt, see
:func:`instrec.decision.decide`), its ``family`` and the probabilities of classes and families.
"""

from __future__ import annotations

from dataclasses import dataclass

@dataclass
class Window:
    """One analysis window of a long recording (times in seconds)."""

    start: float
    end: float
    label: str
    probabilities: dict[str, float] | None  # None for a silent window
    silent: bool = False
    family: str | None = None  # the family of ``label`` ("silence" for a silent window)
    family_probabilities: dict[str, float] | None = None
    active: list[str] | None = None  # a multi-label model's: the instruments over their thresholds

    def to_dict(self) -> dict:
        d = {"start": round(self.start, 4), "end": round(self.end, 4), "label": self.label}
        if self.family is not None:
            d["family"] = self.family
        if self.active is not None:
            d["active"] = self.active
        d.update(silent=self.silent, probabilities=self.probabilities)
        if self.family is not None:
            d["family_probabilities"] = self.family_probabilities
        return d


@dataclass
class Segment:
    """A run of adjacent windows with the same label (``"silence"`` for quiet ones)."""

    start: float
    end: float
    label: str
    probability: float | None  # mean probability of ``label`` over the run's windows

    def to_dict(self) -> dict:
        return {"start": round(self.start, 4), "end": round(self.end, 4), "label": self.label,
                "probability": self.probability}


@dataclass
class Track:
    """One instrument a multi-label model hears in a recording: where it plays.

    ``probability``: its highest probability over the recording's windows; ``segments``:
    ``(start, end)`` seconds, each a run of windows where it is over its threshold."""

    label: str
    family: str
    probability: float
    segments: list[tuple[float, float]]

    def to_dict(self) -> dict:
        return {"label": self.label, "family": self.family, "probability": self.probability,
                "segments": [{"start": round(a, 4), "end": round(b, 4)} for a, b in self.segments]}

    @classmethod
    def from_dict(cls, d: dict) -> "Track":
        return cls(str(d["label"]), str(d["family"]), float(d["probability"]),
                   [(float(s["start"]), float(s["end"])) for s in d["segments"]])


@dataclass
class Prediction:
    """The result for one recording: top label and every class's probability.

    For a long recording (``windows`` not None) the probabilities are the mean over its
    non-silent windows, and ``segments`` summarises the timeline. ``family`` is the family of
    ``label`` (``unknown`` for ``unknown``); ``family_probabilities`` sum the probabilities of each
    family's classes. At ``level="family"`` the classes are the families: ``label`` and
    ``probabilities`` are the family's.

    A multi-label model also says which instruments it hears and when (``instruments``, one
    :class:`Track` each, the likeliest first; ``[]`` when it hears none). Its ``probabilities``
    are then each instrument's own (they need not sum to 1), for a long recording their maximum
    over the windows, and ``label`` the likeliest instrument heard, or ``unknown``.
    """

    path: str | None
    label: str
    probabilities: dict[str, float]
    duration: float | None = None
    windows: list[Window] | None = None
    segments: list[Segment] | None = None
    window: float | None = None
    hop: float | None = None
    family: str | None = None
    family_probabilities: dict[str, float] | None = None
    level: str = "instrument"
    instruments: list[Track] | None = None

    @property
    def is_multilabel(self) -> bool:
        return self.instruments is not None

    @property
    def is_timeline(self) -> bool:
        return self.windows is not None

    def top(self, k: int) -> list[tuple[str, float]]:
        return sorted(self.probabilities.items(), key=lambda kv: -kv[1])[:k]

    @classmethod
    def from_dict(cls, d: dict) -> "Prediction":
        """Inverse of :meth:`to_dict` (extra keys such as ``top`` are ignored)."""
        windows = [Window(w["start"], w["end"], w["label"], w["probabilities"], w.get("silent", False),
                          w.get("family"), w.get("family_probabilities"), w.get("active"))
                   for w in d["windows"]] if d.get("windows") is not None else None
        segments = [Segment(s["start"], s["end"], s["label"], s.get("probability"))
                    for s in d["segments"]] if d.get("segments") is not None else None
        return cls(d["path"], d["label"], {str(k): float(v) for k, v in d["probabilities"].items()},
                   duration=d.get("duration"), windows=windows, segments=segments,
                   window=d.get("window"), hop=d.get("hop"), family=d.get("family"),
                   family_probabilities=_floats(d.get("family_probabilities")), level=d.get("level", "instrument"),
                   instruments=[Track.from_dict(t) for t in d["instruments"]] if d.get("instruments") is not None else None)

    def to_row(self, k: int) -> dict:
        """What ``instrec predict --format json`` lists for the file: :meth:`to_dict` and ``top``,
        the ``k`` likeliest classes as ``[class, probability]`` pairs."""
        return {**self.to_dict(), "top": [[c, p] for c, p in self.top(k)]}

    def to_dict(self) -> dict:
        d = {"path": self.path, "label": self.label}
        if self.family is not None:
            d["family"] = self.family
        if self.level != "instrument":
            d["level"] = self.level
        d["probabilities"] = self.probabilities
        if self.family_probabilities is not None:
            d["family_probabilities"] = self.family_probabilities
        if self.instruments is not None:
            d["instruments"] = [t.to_dict() for t in self.instruments]
        if self.duration is not None:
            d["duration"] = round(self.duration, 4)
        if self.is_timeline:
            d.update(window=self.window, hop=self.hop, windows=[w.to_dict() for w in self.windows],
                     segments=[s.to_dict() for s in self.segments])
        return d


def _floats(d: dict | None) -> dict[str, float] | None:
    return None if d is None else {str(k): float(v) for k, v in d.items()}
