"""What every fuzz target runs inside: the :class:`Context` (scratch folder and lazily made
fixtures), the :class:`Target` record, the property failure, and cases saved as JSON.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import math
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from hypothesis import strategies as st

from instrec.errors import InstrecError


class PropertyViolation(AssertionError):
    """instrec answered, but the answer breaks the target's property."""


def violated(message: str) -> None:
    raise PropertyViolation(message)


def check_refusal(e: InstrecError, *, names: str | None = None) -> None:
    """A refusal must be one non-empty line (naming ``names`` when given)."""
    msg = str(e)
    if not msg.strip():
        violated(f"{type(e).__name__} with an empty message")
    if "\n" in msg or "\r" in msg:
        violated(f"{type(e).__name__} message is not one line: {msg!r}")
    if names is not None and names not in msg:
        violated(f"{type(e).__name__} message does not name {names!r}: {msg!r}")


# ---------------------------------------------------------------------------------------------
# Context: what targets share (scratch folder, seed files, model, service client), made lazily


# Files of the small data set the Context writes; a fuzzed manifest may name them.
DATASET_FILES = ["flute_1.wav", "cello_2.wav", "sub/oboe_3.flac", "sub/deeper/viola 4.wav", "notes.txt",
                 "ünïcode ♪.wav"]


def service_limits():
    """The service limits of the fuzzed app: generous time (a 503 would mean a hang), small but
    not tight sizes."""
    from instrec.service import Limits

    return Limits(max_upload_bytes=2_000_000, max_duration_s=30.0, request_timeout_s=120.0, max_concurrent=1)


class Context:
    """Per-process state of the targets. ``workdir`` holds the scratch files of the case in
    flight (``scratch``), which is what a crash report copies."""

    def __init__(self, workdir: str | os.PathLike):
        self.workdir = Path(workdir)
        self.scratch = self.workdir / "scratch"
        self.scratch.mkdir(parents=True, exist_ok=True)

    def clear_scratch(self) -> None:
        for p in self.scratch.iterdir():
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)

    def write(self, name: str, data: bytes) -> Path:
        path = self.scratch / name
        path.write_bytes(data)
        return path

    @functools.cached_property
    def seeds(self) -> list[tuple[str, str, bytes]]:
        """Valid files to mutate: ``(name, extension, bytes)``."""
        from fuzz.generators import make_seeds

        return make_seeds()

    @functools.cached_property
    def model(self):
        import instrec

        return instrec.load_model()

    @functools.cached_property
    def bundle(self) -> Path:
        """A copy of the shipped model's folder whose model.json the model.json target rewrites."""
        from instrec.assets import shipped_model_path

        src = shipped_model_path()
        dst = self.workdir / "bundle"
        if dst.exists():
            shutil.rmtree(dst)
        dst.mkdir(parents=True)
        for name in ("model.json", "model.safetensors"):
            shutil.copy2(src / name, dst / name)
        return dst

    @functools.cached_property
    def shipped_meta(self) -> dict:
        from instrec.assets import shipped_model_path

        return json.loads((shipped_model_path() / "model.json").read_text(encoding="utf-8"))

    @functools.cached_property
    def dataset(self) -> Path:
        """A small folder of (tiny, real) audio files a fuzzed manifest may name."""
        root = self.workdir / "dataset"
        y = 0.3 * np.sin(2 * np.pi * 440 * np.arange(2205) / 2205).astype(np.float32)
        import soundfile as sf

        for rel in DATASET_FILES:
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            if p.suffix == ".txt":
                p.write_text("not audio")
            else:
                sf.write(str(p), y, 22050, format="WAV" if p.suffix == ".wav" else "FLAC")
        return root

    @functools.cached_property
    def client(self):
        """A TestClient of the service app around the shipped model (limits small but not tight)."""
        from fastapi.testclient import TestClient

        from instrec.service import create_app

        app = create_app(self.model, limits=service_limits(), tmp_dir=self.workdir / "uploads")
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        return client

    def close(self) -> None:
        if "client" in self.__dict__:
            self.client.__exit__(None, None, None)


# ---------------------------------------------------------------------------------------------
# A target, and running one case


@dataclass
class Target:
    """One fuzz target: a strategy drawing cases and a check that raises on a finding."""

    name: str
    strategy: st.SearchStrategy
    check: Callable[[dict, Context], None]
    doc: str
    weight: float = 1.0  # share of a long run's time (the pure helpers need less)


def run_case(target: Target, case: dict, ctx: Context) -> None:
    """Run one case with library warnings silenced (numpy overflow, librosa, mpg123 notes)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        target.check(case, ctx)


# ---------------------------------------------------------------------------------------------
# Memory: a finding is an allocation beyond a bound, not the machine running out


@contextlib.contextmanager
def memory_headroom(nbytes: int):
    """Lower this process's address-space limit to its current size plus ``nbytes`` for the
    duration (Linux), so that an attempt to allocate more fails with an exception instead of
    exhausting the machine."""
    try:
        import resource

        vm = next(int(line.split()[1]) * 1024 for line in Path("/proc/self/status").read_text().splitlines()
                  if line.startswith("VmSize:"))
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, StopIteration, ValueError):
        yield
        return
    want = vm + nbytes
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    resource.setrlimit(resource.RLIMIT_AS, (want, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


# ---------------------------------------------------------------------------------------------
# Cases on disk (reproducers): bytes, tuples and NaN/inf survive the round trip through JSON


def case_to_json(case) -> object:
    if isinstance(case, bytes):
        return {"__bytes__": base64.b64encode(case).decode("ascii")}
    if isinstance(case, dict):
        return {k: case_to_json(v) for k, v in case.items()}
    if isinstance(case, (list, tuple)):
        return {"__tuple__": [case_to_json(v) for v in case]} if isinstance(case, tuple) else [case_to_json(v) for v in case]
    if isinstance(case, float) and not math.isfinite(case):
        return {"__float__": repr(case)}
    return case


def case_from_json(obj) -> object:
    if isinstance(obj, dict):
        if set(obj) == {"__bytes__"}:
            return base64.b64decode(obj["__bytes__"])
        if set(obj) == {"__tuple__"}:
            return tuple(case_from_json(v) for v in obj["__tuple__"])
        if set(obj) == {"__float__"}:
            return float(obj["__float__"])
        return {k: case_from_json(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [case_from_json(v) for v in obj]
    return obj
