"""Data sets: ``data.load_dataset`` with a fuzzed manifest CSV (headers, delimiters, encodings,
paths, labels) in the data set's root or passed as ``manifest=``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from hypothesis import strategies as st

from fuzz.harness import DATASET_FILES, Context, check_refusal, violated
from instrec.errors import DataError, ParameterError

# Cells of a manifest row: the data set's files, and paths and labels that should be refused.
CELLS = DATASET_FILES + ["missing.wav", "", " ", "../flute_1.wav", "sub", "/", ".", "..", "/etc/passwd",
                         "sub/../flute_1.wav", "flute_1.wav\x00", "a/" * 200 + "b.wav", "flute", "Sax", "SAXOPHONE ",
                         "=1+1", '"', "\\", "y" * 255]
# Hostile cells: a file name over the system's 255-byte limit, a field over csv's 128 KiB limit.
CELLS_HOSTILE = ["x" * 256, "é" * 200 + ".wav", "z" * 140_000]
ENCODINGS = ["utf-8", "utf-8", "utf-8", "utf-8-sig"]
ENCODINGS_HOSTILE = ["latin-1", "utf-16", "cp1252"]


def manifest_cases(*, hostile: bool = True):
    """A manifest CSV's parts (``hostile=False``: UTF-8 only, no cell over the system's limits)."""
    cell = st.one_of(st.sampled_from(CELLS + (CELLS_HOSTILE if hostile else [])), st.text(max_size=30),
                     st.text(alphabet=st.characters(codec="utf-8"), max_size=10))
    return st.fixed_dictionaries({
        "header": st.one_of(
            st.permutations(["path", "label", "group", "source"]).flatmap(
                lambda cols: st.integers(0, 4).map(lambda k: cols[:k] if k >= 2 else cols)),
            st.lists(st.one_of(st.sampled_from(["path", "label", " Path ", "LABEL", "group", "source", "", "path"]),
                               st.text(max_size=8)), max_size=6),
        ),
        "rows": st.lists(st.lists(cell, max_size=6), max_size=12),
        "delimiter": st.sampled_from([",", ",", ",", ";", "\t", "|"]),
        "newline": st.sampled_from(["\n", "\r\n", "\r"]),
        "encoding": st.sampled_from(ENCODINGS + (ENCODINGS_HOSTILE if hostile else [])),
        "raw": st.one_of(st.none(), st.none(), st.none(), st.binary(max_size=512)) if hostile else st.none(),
        "labels": st.sampled_from(["auto", "manifest", "manifest", "folder", "filename", "bogus"]),
        "where": st.sampled_from(["root", "root", "argument", "missing"]),
        "absolute": st.booleans(),
    })


MANIFEST = manifest_cases()


def manifest_bytes(case: dict, root: Path) -> bytes:
    """The file a manifest case stands for (its raw bytes, or a CSV written from its parts)."""
    if case["raw"] is not None:
        return case["raw"]
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=case["delimiter"], lineterminator=case["newline"])
    w.writerow(case["header"])
    for row in case["rows"]:
        if case["absolute"] and row and row[0] in DATASET_FILES:
            row = [str(root / row[0])] + row[1:]
        w.writerow(row)
    return buf.getvalue().encode(case["encoding"], errors="replace")


def check_manifest(case: dict, ctx: Context, *, tolerate: tuple[str, ...] = ()) -> None:
    """load_dataset with a fuzzed manifest: a Dataset of existing files with non-empty labels,
    or DataError/ParameterError in one line.

    ``tolerate``: known bugs not to report here (they have tests of their own):
    ``"empty-label"`` (a label of no ASCII letter or digit normalises to ''),
    ``"multiline-message"`` (control characters of a header copied into the DataError)."""
    from instrec.data.folder import load_dataset

    root = ctx.dataset
    data = manifest_bytes(case, root)
    ctx.write("manifest.csv", data)
    where = case["where"]
    for p in (root / "manifest.csv", root / "other.csv"):
        p.unlink(missing_ok=True)
    kwargs = {"labels": case["labels"]}
    if where == "root":
        (root / "manifest.csv").write_bytes(data)
    elif where == "argument":
        (root / "other.csv").write_bytes(data)
        kwargs["manifest"] = root / "other.csv"
    elif where == "missing":
        kwargs["manifest"] = root / "nowhere.csv"
    try:
        ds = load_dataset(root, **kwargs)
    except (DataError, ParameterError) as e:
        if "multiline-message" in tolerate and str(e).strip():
            return
        check_refusal(e)
        return
    if not ds.clips:
        violated("load_dataset returned a data set without clips")
    for c in ds.clips:
        if not isinstance(c.label, str) or (not c.label.strip() and "empty-label" not in tolerate):
            violated(f"clip label is blank: {c.label!r} (for {c.path})")
        if not Path(c.path).is_file():
            violated(f"a clip is not a file: {c.path}")
    for item in ds.skipped:
        if not (isinstance(item, tuple) and len(item) == 2 and all(isinstance(s, str) for s in item)):
            violated(f"skipped entry {item!r} is not (file, problem)")
    ds.summary()
