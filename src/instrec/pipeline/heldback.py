"""Which clips of some labelled data a model may have been trained on: what evaluate and calibrate
both need, read from the ``split.json`` of the model's folder (or an ``.onnx`` export's copy of it)
and from its training card's data roots."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from ..bundle import SPLIT_FILE


def held_back_record(folder: str | os.PathLike | None, export_info: dict | None = None) -> dict | None:
    """The record of the held-back test split of a model's training data (``{"roots", "test"}``):
    the ``split.json`` of its ``folder``, else the copy an ``.onnx`` export carries in its metadata
    (``export_info``, :data:`instrec.export.HELD_BACK_KEY`); None when neither is there."""
    from ..export import HELD_BACK_KEY

    record = None
    if folder and (Path(folder) / SPLIT_FILE).is_file():
        try:
            record = json.loads((Path(folder) / SPLIT_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
    elif isinstance(export_info, dict):
        record = export_info.get(HELD_BACK_KEY)
    try:
        roots, test = record["roots"], record["test"]
        if not all(isinstance(x, str) for x in [*roots, *test]):
            return None
    except (KeyError, TypeError):
        return None
    return {"roots": list(roots), "test": list(test)}


def training_test_split(record: dict | None, roots: Sequence[str | os.PathLike]) -> set[str] | None:
    """The training run's test files when data read from ``roots`` is the data the model was trained on."""
    if record is None or sorted(record["roots"]) != sorted(str(r) for r in roots):
        return None
    return set(record["test"])


def training_clips(clips, info: dict, record: dict | None) -> list:
    """Those of ``clips`` that lie in a folder the model was trained on (its training card's data
    roots, or its split record's) and are not in its held-back test split: clips it may have been
    trained on."""
    data = info.get("training", {}).get("data", {})
    roots = [*(data.get("roots") or [] if isinstance(data, dict) else []), *(record["roots"] if record else [])]
    # as given and resolved: a folder of links (to data that may not be copied) lies where it is
    # given, its files where the links point (the test split records those)
    roots = {q for r in roots if isinstance(r, str) and r for q in (Path(os.path.abspath(r)), Path(r).resolve())}
    if not roots:
        return []
    test = set(record["test"]) if record else set()
    found = []
    for clip in clips:
        path = clip.path.resolve()
        if str(path) not in test and any(p.is_relative_to(r) for p in (path, Path(os.path.abspath(clip.path)))
                                         for r in roots):
            found.append(clip)
    return found


def training_clips_words(n: int, of: int, record: bool, whose: str = "its") -> str:
    """The warning that ``n`` of the ``of`` clips evaluated lie where the model was trained."""
    return (f"{n} of {whose} {of} clips lie in the folder the model was trained on "
            + ("and are not in its held-back test split" if record else
               "and the model carries no record of its held-back test split")
            + ", so the figures include training clips")
