"""The output folder of a command that writes a data set (render, mix): whose it is, and whether it is done.

A run stamps its folder (:data:`STAMP_NAME`) before it writes anything: the command, the settings
that determine its files, and whether it completed. A folder is written only when it is new or
empty, or holds an earlier run of the same command with the same settings, which is then resumed
(interrupted) or found complete. Anything else, another command's output, other settings, the
user's own files, is refused before any work: nothing is overwritten, no clip is left unlisted by a
manifest that another run replaced.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import ParameterError, printable
from ..fileio import write_json

__all__ = ["STAMP_NAME", "Claim", "check_out_dir", "claim", "out_path"]

STAMP_NAME = ".instrec-run.json"
INTERRUPTED, COMPLETE = "interrupted", "complete"
_SHOWN = 3  # entries named when a folder holds something else


def out_path(value, name: str = "out_dir") -> Path:
    """``value`` as the output folder: a blank one (``''`` would be the current folder) is refused."""
    if value is None or not str(value).strip():
        raise ParameterError(f"{name} is empty: name the folder to write to")
    path = Path(value)
    for parent in path.parents:  # the nearest one there must be a folder, or nothing can be made in it
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise ParameterError(f"{name}: {parent} is a file, not a folder: {path} cannot be made in it")
            break
    return path


@dataclass
class Claim:
    """A folder stamped as a run's: ``previous`` is ``""`` (new or empty), :data:`INTERRUPTED` or :data:`COMPLETE`."""

    folder: Path
    command: str
    settings: dict
    previous: str
    made: bool  # the folder was not there: the run made it

    def finish(self) -> None:
        """Mark the run complete (after its last file and its manifest)."""
        _write(self, complete=True)

    def release(self) -> None:
        """Undo the claim of a run that wrote nothing: the stamp goes, and the folder if the run made it."""
        with contextlib.suppress(OSError):
            if self.previous or [p.name for p in self.folder.iterdir()] != [STAMP_NAME]:
                return  # files of this or an earlier run are there: the stamp says whose they are
            (self.folder / STAMP_NAME).unlink()
            if self.made:
                self.folder.rmdir()


def check_out_dir(folder, command: str, settings: dict) -> str:
    """``""`` when ``folder`` is new or empty, :data:`INTERRUPTED` or :data:`COMPLETE` when it holds
    an earlier run of ``command`` with these ``settings``; else a ParameterError naming ``folder``
    and what it holds (one line)."""
    folder = Path(folder)
    settings = _plain(settings)
    if not folder.exists() and not folder.is_symlink():
        return ""
    shown_as = printable(str(folder))  # one line, whatever the folder's name holds
    if not folder.is_dir():
        raise ParameterError(f"{shown_as}: is a file, not a folder; name a new folder for the {command}")
    try:
        entries = sorted(p.name for p in folder.iterdir())
    except OSError as e:
        raise ParameterError(f"{shown_as}: cannot be read ({e.strerror or e}); name another folder") from None
    if not entries or entries == [STAMP_NAME]:  # a run stopped before its first file: nothing to keep
        return ""
    stamp = _read(folder)
    pick = "name a new folder or remove this one"
    if stamp is None:
        shown = ", ".join(printable(n) for n in entries[:_SHOWN])
        shown += f" and {len(entries) - _SHOWN} more" if len(entries) > _SHOWN else ""
        raise ParameterError(f"{shown_as}: not empty (holds {shown}) and not an earlier {command} of these settings; {pick}")
    if stamp.get("command") != command:
        raise ParameterError(f"{shown_as}: holds the output of 'instrec {stamp.get('command')}', not of a {command}; {pick}")
    if stamp.get("settings") != settings:
        differ = _differences(stamp.get("settings"), settings)
        raise ParameterError(f"{shown_as}: holds a {command} with other settings ({differ}); {pick}")
    return COMPLETE if stamp.get("complete") is True else INTERRUPTED


def claim(folder, command: str, settings: dict) -> Claim:
    """:func:`check_out_dir`, then stamp ``folder`` as this run's, not complete (made if need be)."""
    folder = Path(folder)
    previous = check_out_dir(folder, command, settings)
    made = not folder.exists()
    c = Claim(folder, command, _plain(settings), previous, made)
    _write(c, complete=False)
    return c


def _write(c: Claim, *, complete: bool) -> None:
    write_json(c.folder / STAMP_NAME, {"command": c.command, "settings": c.settings, "complete": complete})


def _read(folder: Path) -> dict | None:
    try:
        stamp = json.loads((folder / STAMP_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


def _plain(settings: dict) -> dict:
    """As the stamp holds them (JSON: tuples become lists), so that a comparison is exact."""
    return json.loads(json.dumps(settings))


def _differences(old, new: dict) -> str:
    """``name: old there, new now`` for the settings that differ (the first two)."""
    old = old if isinstance(old, dict) else {}
    keys = [k for k in dict.fromkeys([*new, *old]) if old.get(k) != new.get(k)]
    shown = [f"{k}: {_short(old.get(k, '-'))} there, {_short(new.get(k, '-'))} now" for k in keys[:2]]
    return "; ".join(shown) + (f"; and {len(keys) - 2} more" if len(keys) > 2 else "")


def _short(value) -> str:
    text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    return printable(text if len(text) <= 40 else text[:37] + "...")
