"""Train/test splits and cross-validation folds.

The tutorial's split is a random 80/20 split with ``random_state=0``. A random split of single
notes puts the same pitch of the same instrument on both sides, so the test says little about a
note or a recording the model has never heard; a *group* split keeps every group (a pitch, a
source, a manifest column) on one side.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Mapping, Sequence

import numpy as np

from ..errors import DataError, ParameterError, counted
from .instruments import NOTE_NAMES, parse_note_name

SPLIT_METHODS = ("random", "stratified", "group")
# Group keys with a meaning of their own; any other key names a manifest column (Clip.meta).
GROUP_KEYS = ("pitch", "pitch_class", "source", "group")
# The largest seed numpy's and scikit-learn's random states take (2**32 - 1)
MAX_SEED = 2**32 - 1


def check_seed(seed, name: str = "seed") -> int:
    """``seed`` as an ``int``: an integer (a numpy one too, never a bool) from 0 to :data:`MAX_SEED`,
    the seeds numpy and scikit-learn take. The one check of a split's, a fold's and a model's seed
    (:class:`KFold`, :func:`instrec.pipeline.train_model`, :class:`instrec.classifier.InstrumentClassifier`).

    Raises
    ------
    ParameterError : one line, ``seed must be an integer from 0 to 4294967295, got -1``.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        shown = int(seed) if isinstance(seed, np.integer) else seed
        raise ParameterError(f"{name} must be an integer from 0 to {MAX_SEED}, got {shown!r}")
    return int(seed)


def clip_groups(clips: Sequence, group_by: str) -> list[str]:
    """The group of each clip, for a group split or grouped folds.

    Parameters
    ----------
    clips : :class:`~instrec.data.folder.Clip` objects
    group_by : ``pitch`` (MIDI number from the manifest's ``pitch`` column, else its ``note``
        column, else the note in the file name's second ``_`` field: ``flute_As4_05_forte_normal.mp3``
        → 70), ``pitch_class`` (the pitch's note name without octave: ``As``), ``source``,
        ``group`` (the manifest's ``group`` column) or the name of any other manifest column

    Raises
    ------
    ParameterError : empty ``group_by``.
    DataError : a clip whose group cannot be derived (the message names the file and the key).
    """
    if not isinstance(group_by, str) or not group_by.strip():
        raise ParameterError(f"group_by must name a key ({', '.join(GROUP_KEYS)} or a manifest column); got {group_by!r}")
    key = group_by.strip().lower()
    out = []
    for clip in clips:
        if key == "source":
            value = clip.source
        elif key == "group":
            value = clip.group
        elif key in ("pitch", "pitch_class"):
            pitch = _clip_pitch(clip)
            value = "" if pitch is None else (str(pitch) if key == "pitch" else NOTE_NAMES[pitch % 12])
        else:
            value = str(clip.meta.get(key, "")).strip()
        if not value:
            raise DataError(f"{clip.path}: cannot be grouped by {key}: {_why_missing(clip, key)}")
        out.append(value)
    return out


def _clip_pitch(clip) -> int | None:
    """MIDI pitch from the manifest (``pitch``, then ``note``), else from the file name."""
    raw = str(clip.meta.get("pitch", "")).strip()
    if raw:
        try:
            pitch = int(float(raw))
        except ValueError:
            return None
        return pitch if 0 <= pitch <= 127 else None
    candidates = [str(clip.meta.get("note", "")).strip()]
    parts = clip.path.name.split("_")
    if len(parts) > 1:
        candidates.append(parts[1])
    for text in candidates:
        if text:
            try:
                return parse_note_name(text)
            except ParameterError:
                continue
    return None


def _why_missing(clip, key: str) -> str:
    if key in ("pitch", "pitch_class"):
        if str(clip.meta.get("pitch", "")).strip():
            return f"the manifest's pitch {clip.meta['pitch']!r} is not a MIDI number 0-127"
        return ("no 'pitch' or 'note' manifest column, and the file name's second '_' field is not a note "
                "(like flute_As4_05_forte_normal.mp3)")
    if key == "source":
        return "the clip has no source"
    if key == "group":
        return "the manifest has no 'group' value for it"
    if key in clip.meta:
        return f"its manifest column {key!r} is empty"
    return f"no manifest column {key!r} (group by {', '.join(GROUP_KEYS)} or a manifest column)"


def split_indices(
    labels: Sequence[str],
    *,
    method: str = "random",
    test_size: float = 0.2,
    seed: int = 0,
    groups: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training and test clips.

    ``random`` is ``sklearn.model_selection.train_test_split(..., test_size, random_state=seed)``,
    exactly the tutorial's call; ``stratified`` keeps class proportions on both sides; ``group``
    is ``GroupShuffleSplit(n_splits=1, test_size, random_state=seed)`` on ``groups`` (one per
    clip, see :func:`clip_groups`): every group lies wholly on one side, and ``test_size`` is the
    fraction of *groups* held back.
    """
    from sklearn.model_selection import GroupShuffleSplit, train_test_split

    if method not in SPLIT_METHODS:
        raise ParameterError(f"split must be one of {', '.join(SPLIT_METHODS)}; got {method!r}")
    seed = check_seed(seed)
    if not 0.0 < test_size < 1.0:
        raise ParameterError(f"test_size must be between 0 and 1, got {test_size}")
    n = len(labels)
    idx = np.arange(n)
    if method == "group":
        groups = _check_groups(groups, n, "a group split")
        n_groups = len(set(groups))
        if n_groups < 2:
            raise DataError(f"a group split needs at least 2 groups; found {n_groups} ({', '.join(sorted(set(groups))) or 'none'})")
        n_test = int(np.ceil(test_size * n_groups))
        if n_groups - n_test < 1:
            raise DataError(f"{n_groups} groups are too few to hold back {test_size:.0%} of them and train on the rest")
        splitter = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
        train, test = next(splitter.split(idx, groups=groups))
        return np.asarray(train), np.asarray(test)
    n_test = int(np.ceil(test_size * n))
    stratify = None
    if method == "stratified":  # first: its message names the sizes that work
        single = sorted(c for c, m in Counter(labels).items() if m < 2)
        if single:
            raise DataError("a stratified split needs at least 2 clips of every class; "
                            + ", ".join(f"{c!r} has 1" for c in single))
        stratify = list(labels)
        _check_stratified_size(n, len(set(stratify)), n_test, test_size)
    if n_test < 1 or n - n_test < 1:
        raise DataError(f"{n} clips are too few to split {1 - test_size:.0%}/{test_size:.0%}")
    train, test = train_test_split(idx, test_size=test_size, random_state=seed, stratify=stratify)
    return np.asarray(train), np.asarray(test)


def _check_stratified_size(n: int, n_classes: int, n_test: int, test_size: float) -> None:
    """Refuse, in one line, a test size that leaves either side of a stratified split without a clip
    of every class (scikit-learn's ValueError would name neither the option nor a size that works)."""
    if n_classes <= n_test <= n - n_classes:
        return
    # Rounded inwards to thousandths, checked as scikit-learn counts (ceil(size * n), in floats),
    # so that both printed ends really work.
    lo = math.ceil(n_classes / n * 1000 - 1e-9)
    while math.ceil(lo / 1000 * n) < n_classes:
        lo += 1
    hi = math.floor((n - n_classes) / n * 1000 + 1e-9)
    while math.ceil(hi / 1000 * n) > n - n_classes:
        hi -= 1
    lo, hi = lo / 1000, hi / 1000
    side = "test" if n_test < n_classes else "training"
    held = n_test if side == "test" else n - n_test
    raise DataError(f"--test-size {test_size:g} leaves {held} of {n} clips on the {side} side, but a stratified split "
                    f"needs at least one clip of each of the {n_classes} classes on each side; use a --test-size "
                    f"from {lo:g} to {hi:g}")


def kfold_indices(
    labels: Sequence[str],
    k: int,
    *,
    seed: int = 0,
    groups: Sequence[str] | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` (train, test) index pairs; the test sides partition all clips.

    Without ``groups``: ``StratifiedKFold(k, shuffle=True, random_state=seed)``, so every class
    is spread over every fold. Multi-label clips (``cello;violin``) are stratified by their rarest
    instrument (:func:`stratum`), so that every instrument is spread over the folds too (as far as
    small strata allow). It needs at least ``k`` clips of every class (instrument) and raises
    :class:`DataError` otherwise (no silent fallback to unstratified folds: a fold missing a class
    would score a different task than its neighbours).

    With ``groups``: ``StratifiedGroupKFold(k, shuffle=True, random_state=seed)``: every group
    lies in exactly one test fold, class proportions are kept as far as the groups allow. It
    needs at least ``k`` groups.

    Raises
    ------
    ParameterError : ``k`` is not an integer ≥ 2, or ``groups`` has the wrong length.
    DataError : too few clips or groups for ``k`` folds.
    """
    import warnings

    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
        raise ParameterError(f"cross-validation needs k ≥ 2 folds; got {k!r}")
    k = int(k)
    seed = check_seed(seed)
    labels = list(labels)
    n = len(labels)
    if n < k:
        raise DataError(f"{n} clips are too few for {k} folds")
    idx = np.arange(n)
    if groups is None:
        counts = _class_counts(labels)
        small = sorted((c, m) for c, m in counts.items() if m < k)
        if small:
            raise DataError(f"{k}-fold cross-validation needs at least {k} clips of every class; "
                            + ", ".join(f"{c!r} has {m}" for c, m in small))
    labels = stratum(labels, min_size=k)
    if groups is None:
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        folds = splitter.split(idx, labels)
    else:
        groups = _check_groups(groups, n, "grouped folds")
        n_groups = len(set(groups))
        if n_groups < k:
            raise DataError(f"{k} grouped folds need at least {k} groups; found {n_groups}")
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        with warnings.catch_warnings():  # "least populated class has only m members": groups decide
            warnings.simplefilter("ignore", UserWarning)
            folds = list(splitter.split(idx, labels, groups=groups))
    out = [(np.sort(np.asarray(tr)), np.sort(np.asarray(te))) for tr, te in folds]
    for tr, te in out:
        if len(te) == 0 or len(tr) == 0:
            raise DataError(f"the groups cannot be dealt into {k} non-empty folds")
    return out


def stratum(labels: Sequence[str], *, min_size: int = 1) -> list[str]:
    """What clips labelled ``labels`` are stratified by: the labels themselves, or where any names
    several instruments, each clip's rarest instrument in ``labels`` (ties: by name; ``unknown``
    for none), so that few strata hold many clips, and every instrument is in some.

    A multi-label stratum of fewer than ``min_size`` clips (k folds need k) gives its clips to the
    next rarest of their instruments whose stratum is large enough, else to a shared one (``*``),
    itself joined to the largest if still too small."""
    from .activity import NO_INSTRUMENT, is_multilabel, split_labels

    labels = [str(x) for x in labels]
    if not is_multilabel(labels):
        return labels
    counts = Counter(c for label in labels for c in split_labels(label))
    ranked = [sorted(split_labels(label), key=lambda c: (counts[c], c)) or [NO_INSTRUMENT] for label in labels]
    out = [r[0] for r in ranked]
    size = Counter(out)
    for s in sorted((s for s, m in size.items() if m < min_size), key=lambda s: (size[s], s)):
        for i in [i for i, o in enumerate(out) if o == s]:
            out[i] = next((c for c in ranked[i][1:] if size[c] >= min_size), "*")
            size[s] -= 1
            size[out[i]] += 1
    if 0 < size["*"] < min_size:
        largest = max((s for s in size if s != "*"), key=lambda s: (size[s], s), default="*")
        out = [largest if o == "*" else o for o in out]
    return out


def _class_counts(labels: Sequence[str]) -> Counter:
    """Clips of each class; of each instrument where a label names several (``unknown``: none)."""
    from .activity import NO_INSTRUMENT, is_multilabel, split_labels

    labels = [str(x) for x in labels]
    if not is_multilabel(labels):
        return Counter(labels)
    return Counter(c for label in labels for c in (split_labels(label) or (NO_INSTRUMENT,)))


def _check_groups(groups, n: int, what: str) -> list[str]:
    if groups is None:
        raise ParameterError(f"{what} needs groups (one per clip)")
    groups = [str(g) for g in groups]
    if len(groups) != n:
        raise ParameterError(f"{what}: {n} clips but {len(groups)} groups")
    return groups


class KFold:
    """``n_splits`` folds whose test sides partition the clips: stratified by class or, with
    ``group_by`` (see :func:`clip_groups`), grouped so that every group lies in one test fold
    (:func:`kfold_indices`). A splitter for :func:`instrec.pipeline.cross_validate`."""

    report_file = "cv.json"

    def __init__(self, n_splits: int = 5, *, group_by: str | None = None, seed: int = 0):
        if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)) or n_splits < 2:
            raise ParameterError(f"cross-validation needs k ≥ 2 folds; got {n_splits!r}")
        self.n_splits, self.group_by, self.seed = int(n_splits), group_by or None, check_seed(seed)

    def check(self, clips: Sequence) -> None:
        """Fail on clips without a group before any feature is computed."""
        if self.group_by:
            clip_groups(clips, self.group_by)

    def split(self, clips: Sequence):
        """``(name, train rows, test rows, facts)`` for each fold."""
        labels = [c.label for c in clips]
        groups = clip_groups(clips, self.group_by) if self.group_by else None
        for i, (tr, te) in enumerate(kfold_indices(labels, self.n_splits, seed=self.seed, groups=groups)):
            facts = {"fold": i + 1}
            if groups is not None:
                shared = {groups[j] for j in tr} & {groups[j] for j in te}
                if shared:  # a bug in the splitter, never the user's data
                    raise AssertionError(f"fold {i + 1} has groups on both sides: {sorted(shared)[:5]}")
                facts["n_groups_test"] = len({groups[j] for j in te})
            yield f"fold {i + 1}/{self.n_splits}", tr, te, facts

    def title(self) -> str:
        return f"{self.n_splits}-fold cross-validation"

    def describe(self, clips: Sequence) -> str:
        how = f"grouped by {self.group_by}" if self.group_by else "stratified"
        return (f"{self.n_splits}-fold cross-validation ({how}, shuffled, seed {self.seed}); each clip tested once "
                f"(about {len(clips) // self.n_splits} test clips per fold)")

    def record(self, clips: Sequence = ()) -> dict:  # clips: as LeaveOneSourceOut.record takes them
        return {"method": "kfold", "k": self.n_splits, "group_by": self.group_by, "seed": self.seed}

    def __repr__(self) -> str:
        return f"KFold({self.n_splits}, group_by={self.group_by!r}, seed={self.seed})"


def parse_joins(joins: Sequence[str]) -> dict[str, str]:
    """``["fluidr3+musescore"]`` → ``{"fluidr3": "fluidr3+musescore", "musescore": "fluidr3+musescore"}``:
    the ``libraries`` of :class:`LeaveOneSourceOut` from the CLI's ``--join`` (sources held out
    together, named by the join).

    Raises
    ------
    ParameterError : a join of fewer than two sources, or a source in two joins.
    """
    libraries: dict[str, str] = {}
    for text in joins:
        names = [n.strip() for n in str(text).split("+")]
        if len(names) < 2 or not all(names) or len(set(names)) != len(names):
            raise ParameterError(f"--join takes two or more different sources joined by '+', like fluidr3+musescore; got {text!r}")
        name = "+".join(names)
        for n in names:
            if n in libraries:
                raise ParameterError(f"--join: source {n!r} is in two joins ({libraries[n]} and {name}); join them in one")
            libraries[n] = name
    return libraries


class LeaveOneSourceOut:
    """One fold per source (a folder's name or the manifest's ``source`` column): train on every
    other source, test on all of it. A splitter for :func:`instrec.pipeline.cross_validate`.

    A source (or library) of ``unknown`` clips alone (``render --negatives``' noise and speech) is
    never held out: it always trains, since a fold of negatives alone scores one class, never the
    instruments, and would weigh in the mean like a source of them.

    Parameters
    ----------
    libraries : mapping, optional
        source -> library: sources that play the same recordings (FluidR3 and MuseScore General
        share most samples) are held out together, one fold per library. A source not named is a
        library of its own; a source named that no clip has is refused (:meth:`check`).
    """

    report_file = "crossval.json"

    def __init__(self, libraries: Mapping[str, str] | None = None):
        if libraries is not None and not (isinstance(libraries, Mapping)
                                           and all(isinstance(k, str) and isinstance(v, str) and v
                                                   for k, v in libraries.items())):
            raise ParameterError(f"libraries must map source names to library names, got {libraries!r}")
        self.libraries = dict(libraries or {})

    def _library(self, source: str) -> str:
        return self.libraries.get(source, source)

    def _what(self) -> str:
        return "libraries" if self.libraries else "sources"

    def train_only(self, clips: Sequence) -> list[str]:
        """The sources (libraries) of ``unknown`` clips alone: on every fold's training side, never held out."""
        from .activity import NO_INSTRUMENT

        groups = [self._library(c.source) for c in clips]
        instruments = {g for g, c in zip(groups, clips) if c.label != NO_INSTRUMENT}
        return sorted(set(groups) - instruments)

    def check(self, clips: Sequence, usable: str = "") -> None:
        """Fail before any feature is computed: a library naming a source the data lacks, or fewer
        than 2 sources (libraries) with instrument clips to hold out."""
        if self.libraries and not usable:
            present = {c.source for c in clips}
            missing = sorted(set(self.libraries) - present)
            if missing:
                raise DataError(f"the joined sources {', '.join(missing)} are not in the data "
                                f"(its sources: {', '.join(sorted(present)) or 'none'})")
        only = set(self.train_only(clips))
        counts = Counter(self._library(c.source) for c in clips if self._library(c.source) not in only)
        if len(counts) < 2:
            found = ", ".join(f"{s or '(none)'} ({counted(n, 'clip')})" for s, n in sorted(counts.items())) or "none"
            also = f"; {', '.join(sorted(only))} hold unknown clips only, which always train" if only else ""
            raise DataError(f"leave-one-source-out needs {usable}clips from at least 2 {self._what()}; "
                            f"found {len(counts)}: {found}{also}")

    def split(self, clips: Sequence):
        self.check(clips, "usable ")
        groups = [self._library(c.source) for c in clips]
        names = sorted(set(groups))
        only = self.train_only(clips)
        for s in (n for n in names if n not in only):
            tr = np.array([i for i, g in enumerate(groups) if g != s], dtype=np.int64)
            te = np.array([i for i, g in enumerate(groups) if g == s], dtype=np.int64)
            held = sorted({c.source for c, g in zip(clips, groups) if g == s})
            extra = {"held_out_sources": held} if held != [s] else {}
            yield f"held out {s}", tr, te, {"held_out": s, "train_sources": [t for t in names if t != s], **extra}

    def title(self) -> str:
        return "leave-one-library-out" if self.libraries else "leave-one-source-out"

    def describe(self, clips: Sequence) -> str:
        only = self.train_only(clips)
        n = len({self._library(c.source) for c in clips}) - len(only)
        what = "library" if self.libraries else "source"
        text = f"{self.title()}: {n} folds, each trains on every {what} but one and tests on all of that one"
        if only:
            text += f"; {', '.join(only)} (unknown clips only) always train, never held out"
        return text

    def record(self, clips: Sequence = ()) -> dict:
        """What the report's JSON says of the split; with ``clips``, the sources that always train too."""
        only = self.train_only(clips)
        return {"method": self.title(), **({"libraries": self.libraries} if self.libraries else {}),
                **({"train_only": only} if only else {})}

    def __repr__(self) -> str:
        return f"LeaveOneSourceOut(libraries={self.libraries!r})" if self.libraries else "LeaveOneSourceOut()"
