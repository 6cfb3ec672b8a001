"""The folder ``instrec render-music`` writes into: claimed, resumed, and labelled whatever happens.

The folder is claimed as :mod:`.outdir` claims one for ``render`` and ``mix``: it is written into only
when it is missing, empty, or holds an earlier render-music of the same settings (the stamp records
them); a folder of other settings or other data (a ``render`` of notes, a user's own
``manifest.csv``) is refused before anything is rendered, never rewritten. An earlier run's
excerpts that are all there and whole (listed, of the right rate and length, with their activity
and stems) are kept, the rest rendered: excerpt ``k`` depends only on the settings and ``k``, so the
result is what a run never interrupted writes. The tables list what is there: rewritten now and
then while rendering (:data:`SAVE_SECONDS`) and at the end, Ctrl-C and errors included; never when
no excerpt was written.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import re
import time
from pathlib import Path
from typing import Sequence

from ..fileio import write_csv
from .activity import ACTIVITY_COLUMNS, ACTIVITY_NAME, split_labels, write_activity
from .folder import MANIFEST_NAME
from .outdir import COMPLETE, Claim, check_out_dir, claim

__all__ = ["COMMAND", "MUSIC_COLUMNS", "MUSIC_VERSION", "MusicFolder", "music_settings"]

COMMAND = "render-music"
MUSIC_COLUMNS = ("path", "label", "source", "group", "piece", "parts", "offset", "tempo", "rt60", "seconds", "sr")
# Bump when the same settings render other excerpts: a folder an older render-music left is then not resumed.
MUSIC_VERSION = 1
SAVE_SECONDS = 10.0  # the tables are rewritten at most this often: a killed run leaves its excerpts listed
_EXCERPT = re.compile(r"^(\d{5})_[^/\\]*$")  # an excerpt's file name: its index, then piece and source


def music_settings(*, pieces: Sequence[str], sets, fonts, instruments: Sequence[str], n: int, seconds: float, sr: int,
                   fmt: str, seed: int, stems: bool) -> dict:
    """What the folder's stamp records: everything the excerpts depend on, named as the command
    line's options. The score files count by id, place, size and time of change (an edited score
    is another piece), in one digest."""
    digest = hashlib.sha256()
    for _, found in sets:
        for pid, path in found:
            path = Path(path).resolve()
            try:
                stat = path.stat()
                known = f"{stat.st_size}:{stat.st_mtime_ns}"
            except OSError:
                known = "?"
            digest.update(f"{pid}\0{path}\0{known}\n".encode("utf-8", "surrogateescape"))
        digest.update(b"\1")  # a set ends: the same files dealt into other sets are other pieces
    return {"render-music-version": MUSIC_VERSION, "pieces": list(pieces), "scores": digest.hexdigest()[:16],
            "soundfont": {source: str(Path(p).resolve()) for source, p in fonts.items()},
            "instruments": list(instruments), "n": int(n), "seconds": float(seconds), "sample-rate": int(sr),
            "format": fmt, "seed": int(seed), "stems": bool(stems)}


class MusicFolder:
    """``path`` checked for a run of ``settings`` (ParameterError, one line, when it cannot be
    written into: nothing is written then) and what an earlier run of them left there read; then
    the excerpts as they are kept (:meth:`kept`) or written (:meth:`add`), and the tables (:meth:`save`)."""

    def __init__(self, path: Path, settings: dict):
        self.path, self.settings = Path(path), settings
        self.previous = check_out_dir(self.path, COMMAND, settings)  # "", "interrupted" or "complete"
        self.run: Claim | None = None  # claimed (stamped) just before the first excerpt is written
        self.rows: dict[int, tuple[dict, list[dict]]] = {}
        self.dirty, self.saved_at = False, time.monotonic()
        self._old = self._read_tables() if self.previous else {}
        for folder in (self.path, self.path / "stems") if self.previous else ():
            for part in folder.glob(".*.part.*"):  # a killed run's temporary files: never whole
                with contextlib.suppress(OSError):
                    part.unlink(missing_ok=True)

    def _read_tables(self) -> dict[int, tuple[dict, list[dict]]]:
        """The excerpts the tables already there list, by index, as written (strings); {} when there
        are none or the tables are not render-music's."""
        try:
            with open(self.path / MANIFEST_NAME, newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                rows = list(reader) if tuple(reader.fieldnames or ()) == MUSIC_COLUMNS else []
            with open(self.path / ACTIVITY_NAME, newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                spans = list(reader) if tuple(reader.fieldnames or ()) == ACTIVITY_COLUMNS else []
        except (OSError, UnicodeDecodeError, csv.Error):
            return {}
        activity: dict[str, list[dict]] = {}
        for span in spans:
            activity.setdefault(span["path"], []).append(span)
        out = {}
        for row in rows:
            match = _EXCERPT.match(row.get("path") or "")
            if match and None not in row and None not in row.values():
                out[int(match.group(1))] = (row, activity.get(row["path"], []))
        return out

    def kept(self, k: int, source: str) -> tuple[dict, list[dict]] | None:
        """Excerpt ``k`` as a previous run of these settings wrote it, if it is all there and whole
        (then it is listed again as it is); None: render it."""
        if k not in self._old:
            return None
        row, activity = self._old[k]
        if not self._complete(k, source, row, activity):
            self.dirty = True  # the tables listed it: they change even if it cannot be rendered again
            return None
        self.rows[k] = (row, activity)
        return row, activity

    def _complete(self, k: int, source: str, row: dict, activity: list[dict]) -> bool:
        fmt = self.settings["format"]
        if row["source"] != source or not row["path"].endswith(f"_{source}.{fmt}"):
            return False
        labels = split_labels(row["label"])
        if not labels or {span["label"] for span in activity} != set(labels):
            return False
        files = [row["path"]]
        if self.settings["stems"]:
            files += [f"stems/{k:05d}_{i}_{part.split('=')[0]}.{fmt}" for i, part in enumerate(row["parts"].split("|"))]
        return all(self._whole(name) for name in files)

    def _whole(self, name: str) -> bool:
        import soundfile as sf

        try:
            info = sf.info(str(self.path / name))
        except Exception:  # absent, cut short or not audio: render it again
            return False
        sr = self.settings["sample-rate"]
        return info.samplerate == sr and info.frames == round(self.settings["seconds"] * sr)

    def add(self, k: int, row: dict, activity: list[dict]) -> None:
        self.rows[k] = (row, activity)
        self.dirty = True

    def before_write(self) -> None:
        """Claim (stamp) the folder before its first excerpt is written: no excerpt is ever there unstamped."""
        if self.run is None:
            self.run = claim(self.path, COMMAND, self.settings)

    def save(self, *, now: bool = False) -> None:
        """Write the tables (atomically) for the excerpts there, if a new one was written or an old
        one found broken since they were last (at most every :data:`SAVE_SECONDS`, or ``now``)."""
        if not self.rows:  # no excerpt is there: no tables of nothing, and no stamp on a folder of nothing
            if now and self.run is not None:
                self.run.release()
            return
        if not self.dirty or not (now or time.monotonic() - self.saved_at >= SAVE_SECONDS):
            return
        order = sorted(self.rows)
        # activity first: a run killed between the two leaves no listed excerpt without its activity
        write_activity(self.path / ACTIVITY_NAME, [span for k in order for span in self.rows[k][1]])
        write_csv(self.path / MANIFEST_NAME, MUSIC_COLUMNS, [self.rows[k][0] for k in order])
        self.dirty, self.saved_at = False, time.monotonic()

    def finish(self) -> None:
        """Mark the run complete (after the tables): a later run of these settings finds it so."""
        if not self.rows:  # nothing there: save() left the folder as it was found
            return
        self.save(now=True)
        if self.run is None and self.previous != COMPLETE:  # all kept: the stamp still says interrupted
            self.run = claim(self.path, COMMAND, self.settings)
        if self.run is not None:
            self.run.finish()
