"""Fuzz targets shared by ``tests/test_fuzz.py`` (a short, reproducible run in CI) and
``fuzz/fuzz_audio.py`` (a long run).

A target is a hypothesis strategy that draws a *case* (a dict of JSON-able values and bytes, so a
case is its own reproducer) and a ``check(case, ctx)`` that runs instrec on it and raises

* :class:`PropertyViolation` when instrec answered but broke the target's property, or
* whatever instrec let escape that is not an :class:`~instrec.errors.InstrecError` (a crash).

An :class:`~instrec.errors.InstrecError` with a clear one-line message is a correct refusal.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import csv
import functools
import io
import json
import math
import os
import re
import shutil
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from hypothesis import strategies as st

from instrec.audio import AUDIO_EXTENSIONS, MAX_CHANNELS, MIN_SECONDS, SILENCE_PEAK, SR_RANGE, check_samples, load
from instrec.errors import AudioError, BundleError, DataError, InstrecError, ParameterError

SR = 22050
# Anything the fuzz makes the library compute is kept this small, so a run stays bounded on a
# shared 2-core machine: the properties are about refusing and answering, not about big inputs.
MAX_ARRAY_SECONDS = 60.0  # Model.predict: audio longer than this (at its own rate) is not drawn
MAX_NETWORK_PARAMS = 50_000_000  # a model.json asking for more than this is a finding (see check_model_json)


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

        app = create_app(self.model, limits=_service_limits(), tmp_dir=self.workdir / "uploads")
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        return client

    def close(self) -> None:
        if "client" in self.__dict__:
            self.client.__exit__(None, None, None)


@dataclass
class Target:
    name: str
    strategy: st.SearchStrategy
    check: Callable[[dict, Context], None]
    doc: str
    weight: float = 1.0  # share of a long run's time (the pure helpers need less)


# ---------------------------------------------------------------------------------------------
# Valid seed files (short, so a decode costs little) and their header fields


SEED_SPECS = [
    # name, soundfile format, subtype, rate, channels, seconds, extension
    ("pcm16", "WAV", "PCM_16", 22050, 1, 0.3, ".wav"),
    ("pcm24_stereo", "WAV", "PCM_24", 44100, 2, 0.2, ".wav"),
    ("pcm32", "WAV", "PCM_32", 16000, 1, 0.3, ".wav"),
    ("float_8k", "WAV", "FLOAT", 8000, 1, 0.5, ".wav"),
    ("double_96k", "WAV", "DOUBLE", 96000, 1, 0.1, ".wav"),
    ("u8", "WAV", "PCM_U8", 11025, 1, 0.3, ".wav"),
    ("ulaw", "WAV", "ULAW", 8000, 1, 0.3, ".wav"),
    ("wavex_6ch", "WAVEX", "PCM_16", 48000, 6, 0.1, ".wav"),
    ("rf64", "RF64", "PCM_16", 22050, 1, 0.2, ".wav"),
    ("w64_as_wav", "W64", "FLOAT", 22050, 1, 0.2, ".wav"),
    ("aiff_as_wav", "AIFF", "PCM_16", 22050, 1, 0.2, ".wav"),
    ("long_8k", "WAV", "PCM_16", 8000, 1, 5.0, ".wav"),  # over 1.5 model windows: the timeline path
    ("flac", "FLAC", "PCM_16", 22050, 1, 0.3, ".flac"),
    ("flac24_96k", "FLAC", "PCM_24", 96000, 2, 0.1, ".flac"),
    ("ogg", "OGG", "VORBIS", 22050, 1, 0.4, ".ogg"),
    ("ogg_stereo", "OGG", "VORBIS", 44100, 2, 0.3, ".ogg"),
    ("mp3", "MP3", "MPEG_LAYER_III", 22050, 1, 0.5, ".mp3"),
    ("mp3_stereo", "MP3", "MPEG_LAYER_III", 44100, 2, 0.3, ".mp3"),
]


def make_seeds() -> list[tuple[str, str, bytes]]:
    import soundfile as sf

    out = []
    for name, fmt, subtype, sr, channels, seconds, ext in SEED_SPECS:
        t = np.arange(int(seconds * sr)) / sr
        y = np.stack([0.4 * np.sin(2 * np.pi * (220 + 110 * c) * t) * np.exp(-t) for c in range(channels)], axis=1)
        buf = io.BytesIO()
        sf.write(buf, y.astype(np.float32), sr, format=fmt, subtype=subtype)
        out.append((name, ext, buf.getvalue()))
    return out


def header_fields(data: bytes) -> list[tuple[int, int]]:
    """``(offset, width)`` of the header fields of a wav/aiff/flac/ogg/mp3 file worth overwriting:
    rates, channel counts, sample sizes, lengths, chunk sizes."""
    fields: list[tuple[int, int]] = []
    if data[:4] in (b"RIFF", b"RF64") and data[8:12] == b"WAVE":
        fields.append((4, 4))
        pos = 12
        while pos + 8 <= len(data):
            cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
            fields.append((pos + 4, 4))
            if cid == b"fmt ":
                fields += [(pos + 8, 2), (pos + 10, 2), (pos + 12, 4), (pos + 16, 4), (pos + 20, 2), (pos + 22, 2)]
            elif cid == b"ds64":
                fields += [(pos + 8, 8), (pos + 16, 8), (pos + 24, 8)]
            if cid == b"data" or size > len(data):
                break
            pos += 8 + size + (size & 1)
    elif data[:4] == b"riff":  # Sony Wave64
        fields += [(16, 8), (40 + 16, 8), (40 + 24 + 2, 2), (40 + 24 + 4, 4)]
    elif data[:4] == b"FORM":
        i = data.find(b"COMM")
        if i >= 0:
            fields += [(i + 4, 4), (i + 8, 2), (i + 10, 4), (i + 14, 2), (i + 16, 10)]
    elif data[:4] == b"fLaC":
        fields += [(5, 3), (8, 2), (10, 2), (12, 3), (15, 3), (18, 3), (20, 2), (21, 5)]
    elif data[:4] == b"OggS":
        fields += [(5, 1), (6, 8), (14, 4), (18, 4), (26, 1)]
        i = data.find(b"\x01vorbis")
        if i >= 0:
            fields += [(i + 11, 1), (i + 12, 4), (i + 16, 4), (i + 20, 4), (i + 28, 1)]
    else:  # mp3: the first frame header after any ID3 tag, and a Xing/Info frame count
        start = 0
        if data[:3] == b"ID3" and len(data) >= 10:
            start = 10 + ((data[6] & 0x7F) << 21 | (data[7] & 0x7F) << 14 | (data[8] & 0x7F) << 7 | (data[9] & 0x7F))
            fields += [(6, 4)]
        for j in range(start, min(len(data) - 1, start + 4096)):
            if data[j] == 0xFF and data[j + 1] & 0xE0 == 0xE0:
                fields += [(j, 4), (j + 1, 1), (j + 2, 1), (j + 3, 1)]
                break
        for tag in (b"Xing", b"Info"):
            i = data.find(tag)
            if i >= 0:
                fields += [(i + 4, 4), (i + 8, 4), (i + 12, 4)]
    return [(o, w) for o, w in fields if o + w <= len(data)]


INTERESTING = [0, 1, 2, 3, 4, 7, 8, 15, 16, 24, 32, 64, 65, 0x7F, 0x80, 0xFF, 0x100, 999, 1000, 0x7FFF, 0x8000,
               0xFFFF, 0x10000, 22050, 44100, 768_000, 768_001, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF,
               2**63 - 1, 2**64 - 1]

MUTATION = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 2**20), st.integers(0, 7)),
    st.tuples(st.just("set"), st.integers(0, 2**20), st.integers(0, 255)),
    st.tuples(st.just("field"), st.integers(0, 63), st.one_of(st.sampled_from(INTERESTING), st.integers(0, 2**64 - 1)),
              st.sampled_from("<>")),
    st.tuples(st.just("head"), st.integers(0, 2**20)),  # keep only the first N bytes (truncation)
    st.tuples(st.just("tail"), st.integers(1, 2**20)),  # drop the last N bytes
    st.tuples(st.just("delete"), st.integers(0, 2**20), st.integers(1, 4096)),
    st.tuples(st.just("insert"), st.integers(0, 2**20), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("repeat"), st.integers(0, 2**20), st.integers(1, 2048), st.integers(2, 8)),
    st.tuples(st.just("zero"), st.integers(0, 2**20), st.integers(1, 4096)),
)


def mutate(data: bytes, ops) -> bytes:
    """Apply mutation ops (see :data:`MUTATION`); offsets wrap around the current length."""
    b = bytearray(data)
    for op in ops:
        kind = op[0]
        n = max(1, len(b))
        if kind == "flip" and b:
            b[op[1] % n] ^= 1 << op[2]
        elif kind == "set" and b:
            b[op[1] % n] = op[2]
        elif kind == "field":
            fields = header_fields(bytes(b))
            if fields:
                off, width = fields[op[1] % len(fields)]
                value = op[2] % (1 << (8 * width))
                raw = value.to_bytes(width, "little" if op[3] == "<" else "big")
                b[off:off + width] = raw
        elif kind == "head":
            del b[op[1] % n:]
        elif kind == "tail":
            del b[max(0, len(b) - op[1] % n):]
        elif kind == "delete" and b:
            o = op[1] % n
            del b[o:o + op[2]]
        elif kind == "insert":
            o = op[1] % (len(b) + 1)
            b[o:o] = op[2]
        elif kind == "repeat" and b:
            o = op[1] % n
            b[o:o] = bytes(b[o:o + op[2]]) * (op[3] - 1)
        elif kind == "zero" and b:
            o = op[1] % n
            b[o:o + op[2]] = bytes(len(b[o:o + op[2]]))
    return bytes(b)


MAGIC = [b"", b"RIFF", b"RIFF\xff\xff\xff\xffWAVE", b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00",
         b"RF64\xff\xff\xff\xffWAVEds64", b"riff.\x91\xcf\x11", b"FORM\x00\x00\x00\x00AIFF", b"fLaC",
         b"fLaC\x00\x00\x00\x22", b"OggS\x00\x02", b"OggS\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x01vorbis",
         b"ID3\x04\x00\x00\x00\x00\x00\x00", b"\xff\xfb\x90\x64", b"\xff\xf3", b"\xff\xe0", b"\x89PNG\r\n\x1a\n",
         b"PK\x03\x04", b"<html>", b"\x00" * 64]

# ---------------------------------------------------------------------------------------------
# Audio files: load() on arbitrary and mutated bytes


LOAD_OPTIONS = st.fixed_dictionaries({
    "sr": st.sampled_from([None, 8000, 22050, 44100]),
    "mono": st.booleans(),
    "duration": st.one_of(st.none(), st.none(), st.floats(0.001, 10.0)),
    "max_duration": st.sampled_from([None, 3600.0, 3600.0, 1.0, 0.05]),
})

LOAD_BYTES = st.fixed_dictionaries({
    "ext": st.sampled_from(AUDIO_EXTENSIONS + (".WAV", ".Mp3")),
    "data": st.tuples(st.sampled_from(MAGIC), st.binary(max_size=4096)).map(lambda t: t[0] + t[1]),
    "options": LOAD_OPTIONS,
})


def mutated_file(ext_choice=True):
    return st.fixed_dictionaries({
        "seed": st.integers(0, len(SEED_SPECS) - 1),
        "ops": st.lists(MUTATION, min_size=0, max_size=4),
        # mostly the seed's own extension; sometimes another audio one (content decides)
        "ext": st.sampled_from([None] * 6 + list(AUDIO_EXTENSIONS)) if ext_choice else st.none(),
    })


LOAD_MUTATED = st.fixed_dictionaries({"file": mutated_file(), "options": LOAD_OPTIONS})


def realise_file(spec: dict, ctx: Context) -> tuple[bytes, str]:
    """The bytes and extension a ``mutated_file`` spec stands for."""
    _, ext, data = ctx.seeds[spec["seed"] % len(ctx.seeds)]
    return mutate(data, spec["ops"]), spec.get("ext") or ext


def check_load(path: Path, options: dict) -> None:
    """load() returns finite float32 (mono 1-D, else (channels, n)) at the rate asked, within the
    duration asked; or refuses with an AudioError naming the file in one line."""
    try:
        y, sr = load(path, **options)
    except AudioError as e:
        check_refusal(e, names=str(path))
        return
    if not isinstance(y, np.ndarray) or y.dtype != np.float32:
        violated(f"load returned {type(y).__name__} of dtype {getattr(y, 'dtype', None)}, not float32")
    want_sr = options.get("sr")
    if want_sr is not None and sr != want_sr:
        violated(f"load returned rate {sr}, asked for {want_sr}")
    if want_sr is None and not SR_RANGE[0] <= sr <= SR_RANGE[1]:
        violated(f"load returned an implausible native rate {sr}")
    if options.get("mono", True):
        if y.ndim != 1:
            violated(f"mono load returned shape {y.shape}")
    elif y.ndim != 2 or not 1 <= y.shape[0] <= MAX_CHANNELS:
        violated(f"multichannel load returned shape {y.shape}")
    n = y.shape[-1]
    if n == 0:
        violated("load returned no samples")
    if not np.all(np.isfinite(y)):
        violated("load returned NaN or infinite samples")
    seconds = n / sr
    # resampling may add a few samples; mp3 frames are 1152 samples
    slack = 0.05 + 1152 / min(sr, 8000)
    if options.get("duration") is not None and seconds > options["duration"] + slack:
        violated(f"load(duration={options['duration']}) returned {seconds:.3f} s")
    if options.get("max_duration") is not None and seconds > options["max_duration"] + slack:
        violated(f"load(max_duration={options['max_duration']}) returned {seconds:.3f} s")


def check_load_bytes(case: dict, ctx: Context) -> None:
    path = ctx.write("input" + case["ext"], case["data"])
    check_load(path, case["options"])


def check_load_mutated(case: dict, ctx: Context) -> None:
    data, ext = realise_file(case["file"], ctx)
    path = ctx.write("input" + ext, data)
    check_load(path, case["options"])


# ---------------------------------------------------------------------------------------------
# Arrays: check_samples() and Model.predict()

AMPLITUDES = [0.0, 1e-12, 1e-7, 1e-6, 2e-6, 1e-3, 0.5, 1.0, 1.5, 32767.0, 1e6, 1e12, 1e16, 1e20, 1e30, 3.4e38]
SPECIALS = [math.nan, math.inf, -math.inf, 3.4e38, -3.4e38, 1e30, 0.0]
DTYPES = ["float32", "float64", "float16", "int16", "int32", "int64", "int8", "uint8", "uint16", "bool"]
# Finite samples this large overflow the power spectrum in float32 (|X|^2 > 3.4e38 once |y| is
# above about 1e16): the "huge" region, kept apart from the ordinary one in tests/test_fuzz.py.
HUGE = 1e15
AMPLITUDES_ORDINARY = [a for a in AMPLITUDES if a < HUGE]
AMPLITUDES_HUGE = [1e17, 1e20, 1e30, 3.4e38]
SPECIALS_ORDINARY = [math.nan, math.inf, -math.inf, 0.0]
DTYPES_ORDINARY = [d for d in DTYPES if d != "int64"]  # int64's range reaches the huge region


@st.composite
def signals(draw, *, max_samples: int, min_samples: int = 0, finite: bool = False, amps=AMPLITUDES,
            specials=SPECIALS):
    """A recipe for a test signal (JSON-able: a case is its own reproducer); see :func:`make_signal`."""
    n = draw(st.one_of(st.integers(min_samples, max(min_samples, 64)), st.integers(min_samples, max_samples)))
    amp = st.sampled_from(amps)
    if min(amps) < 1e4:
        amp = st.one_of(amp, st.floats(1e-9, 1e4))
    return {
        "n": n,
        "kind": draw(st.sampled_from(["noise", "sine", "square", "dc", "zeros", "impulse", "chirp", "clipped"])),
        "amp": draw(amp),
        "dc": draw(st.sampled_from([0.0, 0.0, 0.0, 0.5, -1.0, 1e-7, 1e3])),
        "seed": draw(st.integers(0, 2**32 - 1)),
        "specials": [] if finite else draw(st.lists(st.tuples(st.integers(0, 2**31), st.sampled_from(specials)), max_size=3)),
    }


def make_signal(r: dict) -> np.ndarray:
    """float64 samples of a signal recipe."""
    n, rng = r["n"], np.random.default_rng(r["seed"])
    t = np.arange(n, dtype=np.float64)
    f = rng.uniform(0.001, 0.45)
    kind = r["kind"]
    if kind == "noise":
        y = rng.standard_normal(n)
    elif kind == "sine":
        y = np.sin(2 * np.pi * f * t)
    elif kind == "square":
        y = np.sign(np.sin(2 * np.pi * f * t))
    elif kind == "chirp":
        y = np.sin(2 * np.pi * f * t * t / max(n, 1))
    elif kind == "clipped":
        y = np.clip(8 * np.sin(2 * np.pi * f * t), -1, 1)
    elif kind == "impulse":
        y = np.zeros(n)
        if n:
            y[rng.integers(n)] = 1.0
    else:  # dc, zeros
        y = np.zeros(n)
    with np.errstate(over="ignore", invalid="ignore"):
        y = r["amp"] * y + (r["dc"] if kind != "zeros" else 0.0)
    for i, v in r["specials"]:
        if n:
            y[i % n] = v
    return y


def cast(y: np.ndarray, dtype: str) -> np.ndarray:
    """``y`` as ``dtype``: integers clipped to their range (a float cast would be undefined)."""
    dt = np.dtype(dtype)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return np.clip(np.nan_to_num(y, nan=0.0, posinf=info.max, neginf=info.min), info.min, info.max).astype(dt)
    if dt.kind == "b":
        return np.nan_to_num(y) != 0
    with np.errstate(over="ignore"):
        return y.astype(dt)


def reference_refusal(y: np.ndarray, sr: int | None) -> str | None:
    """What check_samples should say of ``y``, computed in float64 (None: the audio is usable;
    ``"either"``: refusing and accepting are both right, as for a bool array)."""
    import instrec.audio

    if np.asarray(y).size == 0:
        return "empty"
    if np.asarray(y).dtype.kind not in "fiu":
        return "either"
    x = np.asarray(y, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        return "non-finite"
    peak = float(np.max(np.abs(x)))
    if peak < SILENCE_PEAK:
        return "silent"
    max_peak = getattr(instrec.audio, "MAX_PEAK", None)  # the library's bound, where it has one
    if max_peak is not None and peak > max_peak:
        return "too large"
    if float(np.ptp(x)) < SILENCE_PEAK:
        return "constant"
    if sr is not None and x.shape[-1] < MIN_SECONDS * sr:
        return "short"
    return None


def check_samples_cases(dtypes=DTYPES):
    return st.fixed_dictionaries({
        "signal": signals(max_samples=4000),
        "dtype": st.sampled_from(dtypes),
        "channels": st.sampled_from([0, 0, 0, 1, 2]),  # 0: 1-D
        "sr": st.sampled_from([None, 1, 1000, 22050, 200_000]),
    })


CHECK_SAMPLES = check_samples_cases()


def signal_array(case: dict) -> np.ndarray:
    y = make_signal(case["signal"])
    if case.get("channels"):
        y = np.stack([y * (1 - 0.1 * c) for c in range(case["channels"])])
    return cast(y, case["dtype"])


def check_check_samples(case: dict, ctx: Context) -> None:
    """check_samples refuses exactly what the float64 reference refuses, with an AudioError."""
    y = signal_array(case)
    want = reference_refusal(y, case["sr"])
    try:
        check_samples(y, "<fuzz>", sr=case["sr"])
    except AudioError as e:
        check_refusal(e, names="<fuzz>")
        if want is None:
            violated(f"check_samples refused usable {y.dtype} audio ({e.problem}); the float64 reference accepts it")
        return
    if want not in (None, "either"):
        violated(f"check_samples accepted {y.dtype} audio the float64 reference calls {want}")


def float_wav_cases(*, amps=AMPLITUDES):
    """A float/double wav made from a signal recipe: its samples can be any finite value."""
    return st.fixed_dictionaries({
        "signal": signals(max_samples=SR, min_samples=1000, amps=amps, specials=[0.0]),
        "subtype": st.sampled_from(["FLOAT", "DOUBLE"]),
        "file_sr": st.sampled_from([8000, 22050, 44100, 96000]),
        "channels": st.sampled_from([1, 2]),
        "options": st.fixed_dictionaries({"sr": st.sampled_from([None, 8000, 22050, 44100]), "mono": st.booleans(),
                                          "duration": st.none(), "max_duration": st.just(3600.0)}),
    })


def check_load_float_wav(case: dict, ctx: Context) -> None:
    import soundfile as sf

    y = make_signal(case["signal"])
    y = np.stack([y] * case["channels"], axis=1)
    if case["subtype"] == "FLOAT":
        y = as_float32(y)
    buf = io.BytesIO()
    sf.write(buf, y, case["file_sr"], format="WAV", subtype=case["subtype"])
    path = ctx.write("input.wav", buf.getvalue())
    check_load(path, case["options"])


SAMPLE_RATES = st.one_of(
    st.sampled_from([0, -1, -22050, 1, 2, 999, 1000, 8000, 16000, 22050, 44100, 96000, 768_000, 10**6, 10**9,
                     2**63 - 1, 22050.0, 22050.5, "22050", None, True]),
    st.integers(1, 200_000),
)

def predict_cases(*, amps=AMPLITUDES, specials=SPECIALS, dtypes=DTYPES, rates=SAMPLE_RATES):
    return st.fixed_dictionaries({
        "signal": signals(max_samples=6 * SR, amps=amps, specials=specials),
        "dtype": st.sampled_from(dtypes),
        "channels": st.sampled_from([0, 0, 0, 1, 2, 3]),
        "sr": rates,
        "window": st.one_of(st.none(), st.none(), st.sampled_from([0.0, 0.05, 0.1, 0.5, 1.0, 3.0, 700.0, math.nan]),
                            st.floats(0.1, 10.0)),
        "hop": st.one_of(st.none(), st.none(), st.sampled_from([0.1, 0.5, 2.0]), st.floats(0.1, 10.0)),
    })


PREDICT = predict_cases()


def check_prediction(pred, classes: list[str], *, duration: float | None = None) -> None:
    """A Prediction: a known label, one finite probability per class summing to 1; a timeline's
    windows inside the recording and its segments tiling it."""
    from instrec.inference import SILENCE

    if pred.label not in classes:
        violated(f"label {pred.label!r} is not one of the model's classes")
    p = pred.probabilities
    if list(p) != list(classes):
        violated(f"probabilities are for {list(p)}, not the model's classes")
    values = np.array(list(p.values()), dtype=np.float64)
    if not np.all(np.isfinite(values)) or np.any(values < 0) or np.any(values > 1 + 1e-6):
        violated(f"probabilities are not finite numbers in [0, 1]: {p}")
    if abs(values.sum() - 1) > 1e-4:
        violated(f"probabilities sum to {values.sum()}")
    if pred.label != max(p, key=p.get) and p[pred.label] < max(values) - 1e-6:
        violated(f"label {pred.label} is not the most probable class")
    if duration is not None and pred.duration is not None and abs(pred.duration - duration) > 0.01 + 1e-3 * duration:
        violated(f"duration {pred.duration} but the audio lasts {duration}")
    if pred.windows is not None:
        if not pred.windows or not pred.segments:
            violated("a timeline without windows or segments")
        d = pred.duration
        for w in pred.windows:
            if not (0 <= w.start < w.end <= d + 1e-6):
                violated(f"window {w.start}-{w.end} outside 0-{d}")
            if w.silent != (w.label == SILENCE) or (w.probabilities is None) != w.silent:
                violated(f"window {w} is inconsistently silent")
        check_tiling(pred.segments, 0.0, d)


def check_tiling(segments, start: float, end: float) -> None:
    if abs(segments[0].start - start) > 1e-9 or abs(segments[-1].end - end) > 1e-9:
        violated(f"segments span {segments[0].start}-{segments[-1].end}, not {start}-{end}")
    for a, b in zip(segments, segments[1:]):
        if a.end != b.start:
            violated(f"segments {a} and {b} do not meet")
        if a.label == b.label:
            violated(f"adjacent segments share the label {a.label}")
    for s in segments:
        if not s.start <= s.end:
            violated(f"segment {s} ends before it starts")
        if s.probability is not None and not (0 <= s.probability <= 1 + 1e-6):
            violated(f"segment probability {s.probability}")


def predict_duration_ok(case: dict) -> bool:
    """Keep the fuzz bounded: audio whose duration at its rate is absurd is not run (Model.predict
    resamples it to the model's rate first; see the report's finding on tiny rates)."""
    sr = case["sr"]
    if isinstance(sr, (int, np.integer)) and sr > 0:  # True is 1 Hz
        return case["signal"]["n"] / sr <= MAX_ARRAY_SECONDS
    return True


def windows_ok(window, hop) -> bool:
    from instrec.inference import check_window

    try:
        check_window(window, hop)
    except InstrecError:
        return False
    return True


def check_predict(case: dict, ctx: Context) -> None:
    """Model.predict on any array: a valid Prediction or an InstrecError, and never a refusal of
    audio that is usable as it is given (a plain rate in range, default windows)."""
    if not predict_duration_ok(case):
        return
    y = signal_array(case)
    model = ctx.model
    sr = case["sr"]
    usable = (type(sr) is int and SR_RANGE[0] <= sr <= SR_RANGE[1] and reference_refusal(y, sr) is None
              and windows_ok(case["window"], case["hop"]))
    try:
        pred = model.predict(y, sr, window=case["window"], hop=case["hop"])
    except InstrecError as e:
        check_refusal(e)
        # resampling to the model's rate may leave nothing of a signal above its Nyquist frequency
        if usable and not (sr != model.feature.sr and "silent" in str(e)):
            violated(f"predict refused usable {y.dtype} audio at {sr} Hz: {e}")
        return
    check_prediction(pred, model.classes, duration=y.shape[-1] / sr)


# ---------------------------------------------------------------------------------------------
# Features


def feature_default_cases(amps=AMPLITUDES):
    return st.fixed_dictionaries({
        "kind": st.sampled_from(["mfcc", "image", "logmel"]),
        "signal": signals(max_samples=5 * SR, min_samples=int(MIN_SECONDS * SR), finite=True, amps=amps),
    })


FEATURE_DEFAULTS = feature_default_cases()


@st.composite
def feature_params(draw):
    """FeatureConfig parameters in ranges that keep a computation small (every value valid or a
    plain out-of-range one)."""
    sr = draw(st.sampled_from([8000, 16000, 22050, 44100]))
    fmin = draw(st.sampled_from([0.0, 0.0, 20.0, 30.0, 1000.0]))
    return {
        "kind": draw(st.sampled_from(["mfcc", "image", "logmel"])),
        "sr": sr,
        "n_fft": draw(st.sampled_from([16, 64, 256, 512, 1024, 2048, 4096])),
        "hop_length": draw(st.sampled_from([1, 64, 128, 512, 2048, 8192])),
        "n_mels": draw(st.sampled_from([1, 2, 16, 40, 64, 128, 256])),
        "top_db": draw(st.sampled_from([1.0, 40.0, 80.0, 120.0])),
        "n_mfcc": draw(st.sampled_from([1, 13, 20, 40, 128])),
        "width": draw(st.sampled_from([1, 2, 16, 64, 200])),
        "height": draw(st.sampled_from([1, 2, 16, 48, 150])),
        "image_mode": draw(st.sampled_from(["gray", "rgb"])),
        "seconds": draw(st.sampled_from([0.05, 0.5, 1.0, 3.0])),
        "fmin": fmin,
        "fmax": draw(st.sampled_from([None, None, sr / 2, 4000.0])),
    }


FEATURE_PARAMS = st.fixed_dictionaries({
    "params": feature_params(),
    "signal": signals(max_samples=3 * 22050, min_samples=int(MIN_SECONDS * 44100), finite=True).map(
        lambda r: {**r, "amp": min(r["amp"], 1e4)}),
})


def check_feature_vector(v, config) -> None:
    if not isinstance(v, np.ndarray) or v.dtype != np.float32:
        violated(f"compute returned {type(v).__name__} {getattr(v, 'dtype', '')}, not float32")
    if v.shape != (config.dim,):
        violated(f"compute returned shape {v.shape}, config.dim is {config.dim}")
    if not np.all(np.isfinite(v)):
        violated(f"compute({config.kind}) returned {int(np.sum(~np.isfinite(v)))} non-finite values")
    if config.kind == "image" and (v.min() < 0 or v.max() > 1):
        violated(f"image pixels outside [0, 1]: {v.min()}..{v.max()}")


def _compute(y: np.ndarray, config) -> None:
    from instrec.features import compute

    try:
        v = compute(y, config)
    except InstrecError as e:
        check_refusal(e)
        return
    check_feature_vector(v, config)


def check_feature_defaults(case: dict, ctx: Context) -> None:
    """compute(y, FeatureConfig(kind)) of finite audio is a finite float32 vector of config.dim."""
    from instrec.features import FeatureConfig

    _compute(as_float32(make_signal(case["signal"])), FeatureConfig(kind=case["kind"]))


def as_float32(y: np.ndarray) -> np.ndarray:
    """float32 samples, clipped to float32's finite range (a plain cast makes 3.4e38 * 1.2 inf)."""
    big = float(np.finfo(np.float32).max)
    return np.clip(y, -big, big).astype(np.float32)


def check_feature_params(case: dict, ctx: Context) -> None:
    """Any FeatureConfig that constructs computes a finite vector of its dim (or refuses)."""
    from instrec.features import FeatureConfig

    try:
        config = FeatureConfig(**case["params"])
    except ParameterError as e:
        check_refusal(e)
        return
    _compute(as_float32(make_signal(case["signal"])), config)


ODD_VALUES = st.one_of(
    st.integers(-2**70, 2**70), st.sampled_from([0, -1, 1, 2**31, 2**63, True, False]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([math.nan, math.inf, -0.0, 1e-300]),
    st.none(), st.text(max_size=8), st.sampled_from(["mfcc", "image", "logmel", "gray", "rgb", "3", ""]),
    st.lists(st.integers(), max_size=2),
)
FEATURE_CONFIG = st.fixed_dictionaries({
    "params": st.dictionaries(st.sampled_from(["kind", "sr", "n_fft", "hop_length", "n_mels", "top_db", "n_mfcc",
                                               "width", "height", "image_mode", "seconds", "fmin", "fmax"]),
                              ODD_VALUES, max_size=5),
    "from_dict": st.booleans(),
    "extra": st.one_of(st.none(), st.none(), st.sampled_from(["nfft", "kind ", "window"])),
})

# The annotated type of each FeatureConfig field: a value of another type may raise TypeError
# (the Python convention for a wrong type); a value of the right type must construct or raise
# ParameterError.
_FEATURE_TYPES = {"kind": str, "image_mode": str, "sr": int, "n_fft": int, "hop_length": int, "n_mels": int,
                  "n_mfcc": int, "width": int, "height": int, "top_db": (int, float), "seconds": (int, float),
                  "fmin": (int, float), "fmax": (int, float, type(None))}


def check_feature_config(case: dict, ctx: Context) -> None:
    """FeatureConfig(**random params): a config (whose dim is a positive int) or ParameterError;
    TypeError only for a value of the wrong type."""
    from instrec.features import FeatureConfig

    params = dict(case["params"])
    if case["extra"]:
        params[case["extra"]] = 1
    wrong_type = any(not isinstance(v, _FEATURE_TYPES[k]) for k, v in case["params"].items())
    try:
        c = FeatureConfig.from_dict(params) if case["from_dict"] else FeatureConfig(**params)
    except ParameterError as e:
        check_refusal(e)
        return
    except TypeError:
        if wrong_type or (case["extra"] and not case["from_dict"]):
            return
        raise
    if not isinstance(c.dim, int) or c.dim <= 0:
        violated(f"FeatureConfig {c} has dim {c.dim!r}")
    if not 0.05 <= c.seconds <= 600:
        violated(f"FeatureConfig accepted seconds={c.seconds!r}")
    if FeatureConfig.from_dict(c.to_dict()) != c:
        violated("FeatureConfig does not round-trip through to_dict/from_dict")


# ---------------------------------------------------------------------------------------------
# Windows and segments


WINDOW_SPANS = st.fixed_dictionaries({
    "n": st.one_of(st.integers(0, 100), st.integers(0, 10**7)),
    "sr": st.one_of(st.sampled_from([1, 8000, 22050, 44100, 96000]), st.integers(1, 200_000)),
    "window": st.floats(0.1, 600.0),
    "hop_ratio": st.floats(0.0, 1.0),
})


def spans_of(case: dict):
    from instrec.inference import MIN_WINDOW, window_spans

    hop = max(MIN_WINDOW, case["window"] * case["hop_ratio"])
    w, h = max(1, round(case["window"] * case["sr"])), max(1, round(hop * case["sr"]))
    if case["n"] // h > 200_000:  # keep the list small: the property does not change with it
        return None, None, None, None
    return window_spans(case["n"], sr=case["sr"], window=case["window"], hop=hop), w, h, hop


def check_window_spans(case: dict, ctx: Context) -> None:
    """Windows lie inside [0, n), start at 0, end at n, step by the hop, leave no gap."""
    spans, w, h, _ = spans_of(case)
    if spans is None:
        return
    n = case["n"]
    if not spans:
        violated("no windows")
    if n <= w:
        if spans != [(0, n)]:
            violated(f"a recording no longer than one window ({n} <= {w}) gives {spans[:3]}")
        return
    if spans[0][0] != 0 or spans[-1][1] != n:
        violated(f"windows span {spans[0][0]}..{spans[-1][1]}, not 0..{n}")
    for a, b in spans:
        if not (0 <= a < b <= n) or b - a != w:
            violated(f"window ({a}, {b}) is not a window of {w} inside 0..{n}")
    for (a0, b0), (a1, _) in zip(spans, spans[1:]):
        if not a0 < a1 <= b0:
            violated(f"windows starting at {a0} and {a1} overlap badly or leave a gap (hop {h}, window {w})")
    for (a0, _), (a1, _) in zip(spans[:-2], spans[1:-1]):
        if a1 - a0 != h:
            violated(f"windows at {a0}, {a1} are not one hop ({h}) apart")


MERGE = st.fixed_dictionaries({
    "spans": WINDOW_SPANS,
    "labels": st.lists(st.sampled_from(["a", "b", "c", "silence"]), min_size=1, max_size=400),
    "probs": st.lists(st.floats(0, 1), min_size=1, max_size=50),
})


def check_merge_segments(case: dict, ctx: Context) -> None:
    """Segments tile [0, duration]: the first starts at the first window, each ends where the next
    starts, the last ends at the duration; adjacent segments differ in label."""
    from instrec.inference import SILENCE, Window, merge_segments

    spans, _, _, _ = spans_of(case["spans"])
    if spans is None:
        return
    sr, n = case["spans"]["sr"], case["spans"]["n"]
    labels, probs = case["labels"], case["probs"]
    windows = []
    for i, (a, b) in enumerate(spans[:400]):
        label = labels[i % len(labels)]
        if label == SILENCE:
            windows.append(Window(a / sr, b / sr, SILENCE, None, True))
        else:
            p = probs[i % len(probs)]
            windows.append(Window(a / sr, b / sr, label, {label: p, "other": 1 - p}, False))
    duration = max(n / sr, windows[-1].end)
    segments = merge_segments(windows, duration=duration)
    if not segments:
        violated("no segments for non-empty windows")
    check_tiling(segments, windows[0].start, duration)
    if segments[0].start != 0:
        violated("the first segment does not start at 0")
    if len(segments) > len(windows):
        violated("more segments than windows")
    if merge_segments([], duration=1.0) != []:
        violated("segments of no windows")


CHECK_WINDOW_VALUES = st.one_of(
    st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 1000),
    st.sampled_from([0.1, 600, 600.0000001, 0.0999999, True, False, "1", b"1", [1]]),
)
CHECK_WINDOW = st.fixed_dictionaries({"window": CHECK_WINDOW_VALUES, "hop": CHECK_WINDOW_VALUES})


def check_check_window(case: dict, ctx: Context) -> None:
    """check_window accepts exactly None or a finite number in [0.1, 600] for each, hop <= window."""
    from instrec.inference import MAX_WINDOW, MIN_WINDOW, check_window

    def ok(v):
        return v is None or (isinstance(v, (int, float)) and math.isfinite(v) and MIN_WINDOW <= v <= MAX_WINDOW)

    window, hop = case["window"], case["hop"]
    accept = ok(window) and ok(hop) and not (window is not None and hop is not None and hop > window)
    try:
        w, h = check_window(window, hop)
    except ParameterError as e:
        check_refusal(e)
        if accept:
            violated(f"check_window refused window={window!r} hop={hop!r}")
        return
    if not accept:
        violated(f"check_window accepted window={window!r} hop={hop!r}")
    for got, given in ((w, window), (h, hop)):
        if (given is None) != (got is None) or (got is not None and (type(got) is not float or got != float(given))):
            violated(f"check_window turned {given!r} into {got!r}")


# ---------------------------------------------------------------------------------------------
# model.json


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
              st.sampled_from([0, 1, 2, 16, 4096, 65536, 2**31, -1, 1e308, math.nan, math.inf, 0.5, 1.0]),
              st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
              st.sampled_from(["mfcc", "image", "logmel", "mlp", "cnn", "relu", "gray", "rgb", "instrec-model"])),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)),
    max_leaves=6,
)
JSON_OP = st.one_of(
    st.tuples(st.just("bound"), st.integers(0, 10**6), st.sampled_from(["minimum", "maximum", "beyond"])),
    st.tuples(st.just("replace"), st.integers(0, 10**6), JSON_VALUES),
    st.tuples(st.just("delete"), st.integers(0, 10**6)),
    st.tuples(st.just("add"), st.integers(0, 10**6), st.text(max_size=12), JSON_VALUES),
    st.tuples(st.just("scale"), st.integers(0, 10**6), st.sampled_from([-1, 0, 2, 10, 1000, 0.5])),
)
MODEL_JSON = st.fixed_dictionaries({
    "ops": st.lists(JSON_OP, min_size=1, max_size=3),
    "bytes_ops": st.one_of(st.just([]), st.just([]), st.lists(MUTATION, max_size=3)),
    "prefix": st.sampled_from([b"", b"", b"", b"\xef\xbb\xbf", b"\xff\xfe", b" \n"]),
    "indent": st.sampled_from([None, 2]),
})


def _json_paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _json_paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _json_paths(v, prefix + (i,))


@functools.cache
def schema_bounds() -> list[tuple[tuple, dict]]:
    """``(path, schema)`` of every bounded number, integer or array in model.schema.json's
    recipe: boundary values are where a tampered file asks for the most work."""
    from instrec.assets import shipped_model_path

    schema = json.loads((shipped_model_path().parent / "model.schema.json").read_text(encoding="utf-8"))
    out = []

    def walk(node, path):
        for key, sub in node.get("properties", {}).items():
            if any(k in sub for k in ("minimum", "maximum", "exclusiveMinimum", "maxItems")):
                out.append((path + (key,), sub))
            walk(sub, path + (key,))

    walk(schema, ())
    return out


def bound_value(sub: dict, which: str):
    """The schema's smallest or largest allowed value (``beyond``: just past the largest)."""
    integer = sub.get("type") == "integer"
    if sub.get("type") == "array" or "maxItems" in sub:
        item = sub.get("items", {})
        n = sub.get("maxItems", 16) + (which == "beyond") if which != "minimum" else sub.get("minItems", 1)
        if item.get("type") == "string":
            return [f"class-{i}" for i in range(n)]
        v = item.get("maximum", 4096) if which != "minimum" else item.get("minimum", 1)
        return [v + (which == "beyond")] * n
    if which == "minimum":
        v = sub.get("minimum", sub.get("exclusiveMinimum", 0))
        return v if "minimum" in sub else v + (1 if integer else 1e-9)
    v = sub.get("maximum", sub.get("exclusiveMaximum", 2**31 if integer else 1e9))
    if which == "beyond":
        return v + 1
    return v if "maximum" in sub else v - (1 if integer else 1e-9)


def apply_json_ops(meta: dict, ops) -> object:
    doc = {"root": copy.deepcopy(meta)}
    for op in ops:
        if op[0] == "bound":  # ("bound", index, "minimum" | "maximum" | "beyond"): a schema boundary
            bounds = schema_bounds()
            path, sub = bounds[op[1] % len(bounds)]
            op = ("set", list(path), bound_value(sub, op[2]))
        if op[0] == "set":
            path = ("root",)
        else:
            paths = list(_json_paths(doc["root"], ("root",)))
            path = paths[op[1] % len(paths)]
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        key = path[-1]
        if op[0] == "replace":
            parent[key] = op[2]
        elif op[0] == "delete" and key != "root":
            del parent[key]
        elif op[0] == "add":
            target = parent[key]
            if isinstance(target, dict):
                target[op[2]] = op[3]
            elif isinstance(target, list):
                target.append(op[3])
        elif op[0] == "set":  # ("set", ["recipe", "model", "channels"], value): explicit examples
            target = doc["root"]
            for k in op[1][:-1]:
                target = target.setdefault(k, {}) if isinstance(target, dict) else None
            if isinstance(target, dict):  # an earlier op may have replaced a parent
                target[op[1][-1]] = op[2]
        elif op[0] == "scale":
            v = parent[key]
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                parent[key] = type(v)(v * op[2]) if math.isfinite(v * op[2]) else v
            elif isinstance(v, list):
                parent[key] = v * max(0, int(op[2]))
    return doc["root"]


def network_params(meta: dict) -> int | None:
    """Parameters (and buffers) of the network model.json describes, counted on torch's meta
    device (nothing allocated); None when the description does not build."""
    import torch

    from instrec import models
    from instrec.recipes import Recipe

    try:
        recipe = Recipe.from_dict(meta["recipe"])
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = models.build(recipe.model, recipe.feature, len(meta["classes"]))
        return sum(p.numel() for p in net.parameters()) + sum(b.numel() for b in net.buffers())
    except Exception:
        return None


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


LOAD_HEADROOM = 1 << 30  # loading a model may take this much memory beyond what the process holds


def check_model_json(case: dict, ctx: Context, *, ordinary: bool = False, bundle_error: bool = True) -> None:
    """A tampered model.json beside the shipped weights: the model loads (and predicts) or
    BundleError, never another exception, and neither loading it nor predicting half a second
    with it takes more than 1 GB of memory (the schema says its bounds keep a tampered file from
    asking for absurd work).

    ``bundle_error=False``: any InstrecError is an acceptable refusal (not only BundleError).
    ``ordinary=True``: networks over MAX_NETWORK_PARAMS parameters are not loaded, and costly
    features (huge FFTs, tiny hops, long windows) or windows of fewer than 16 frames not
    predicted: the ordinary region's test leaves those to tests of their own."""
    import instrec
    from instrec.bundle import read_meta

    meta = apply_json_ops(ctx.shipped_meta, case["ops"])
    text = json.dumps(meta, indent=case["indent"], allow_nan=True)
    data = mutate(case["prefix"] + text.encode("utf-8"), case["bytes_ops"])
    bundle = ctx.bundle
    (bundle / "model.json").write_bytes(data)
    ctx.write("model.json", data)
    try:
        parsed = read_meta(bundle)
    except BundleError as e:
        check_refusal(e)
        return
    if not isinstance(parsed, dict):
        violated("read_meta returned a non-dict")
    count = network_params(parsed)
    if ordinary and count is not None and count > MAX_NETWORK_PARAMS:
        return
    try:
        with memory_headroom(LOAD_HEADROOM):
            model = instrec.load_model(bundle)
    except BundleError as e:
        check_refusal(e)
        return
    except InstrecError as e:
        if bundle_error:
            violated(f"a bad model.json is refused with {type(e).__name__}, not BundleError: {e}")
        check_refusal(e)
        return
    except (MemoryError, RuntimeError) as e:
        if count is not None and count > MAX_NETWORK_PARAMS:
            violated(f"a model.json that passes the schema makes load build a network of {count:,} parameters "
                     f"({4 * count / 1e9:.1f} GB) before comparing it with model.safetensors "
                     f"({(bundle / 'model.safetensors').stat().st_size:,} bytes): {type(e).__name__}: {str(e)[:150]}")
        raise
    f = model.feature
    if ordinary and (f.dim > 2_000_000 or f.sr > 96_000 or f.n_fft > 16384 or f.hop_length < 16):
        return
    if ordinary and f.kind == "logmel" and 1 + int(f.seconds * f.sr) // f.hop_length < 16:
        return  # fewer frames than the cnn's pooling needs: a test of its own
    y = 0.3 * np.sin(2 * np.pi * 440 * np.arange(SR // 2) / SR).astype(np.float32)
    try:
        with memory_headroom(LOAD_HEADROOM):
            pred = model.predict(y, SR)
    except InstrecError as e:
        check_refusal(e)
        return
    except (MemoryError, RuntimeError) as e:
        if "alloc" in str(e) or isinstance(e, MemoryError):
            violated(f"a model.json that loads (n_fft={f.n_fft}, hop_length={f.hop_length}, sr={f.sr}, "
                     f"seconds={f.seconds}) makes predicting 0.5 s take over 1 GB: {type(e).__name__}: {str(e)[:150]}")
        raise
    check_prediction(pred, model.classes)


# ---------------------------------------------------------------------------------------------
# Manifests


DATASET_FILES = ["flute_1.wav", "cello_2.wav", "sub/oboe_3.flac", "sub/deeper/viola 4.wav", "notes.txt",
                 "ünïcode ♪.wav"]
CELLS = DATASET_FILES + ["missing.wav", "", " ", "../flute_1.wav", "sub", "/", ".", "..", "/etc/passwd",
                         "sub/../flute_1.wav", "flute_1.wav\x00", "a/" * 200 + "b.wav", "flute", "Sax", "SAXOPHONE ",
                         "=1+1", '"', "\\", "y" * 255]
# Hostile cells: a file name over the system's 255-byte limit, a field over csv's 128 KiB limit.
CELLS_HOSTILE = ["x" * 256, "é" * 200 + ".wav", "z" * 140_000]
ENCODINGS = ["utf-8", "utf-8", "utf-8", "utf-8-sig"]
ENCODINGS_HOSTILE = ["latin-1", "utf-16", "cp1252"]


def manifest_cases(*, hostile: bool = True):
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


# ---------------------------------------------------------------------------------------------
# The service's request handling


def _service_limits():
    from instrec.service import Limits

    # generous time (a 503 would mean a hang), small but not tight sizes
    return Limits(max_upload_bytes=2_000_000, max_duration_s=30.0, request_timeout_s=120.0, max_concurrent=1)


FIELD_TEXT = st.one_of(
    st.sampled_from(["", " ", "1", "3", "0.1", "0.0999", "600", "601", "2.5", "-1", "0", "nan", "inf", "-inf",
                     "1e309", "1e-400", "0x10", "1_0", " 3 ", "３", "٣", "true", "false", "yes", "off", "ON",
                     "maybe", "10000000000000000000000", "-0", "1.5e1", "None", "null"]),
    st.text(max_size=12),
)
FILENAME = st.one_of(
    st.sampled_from(["clip.wav", "clip.WAV", "a.mp3", "x.flac", "y.ogg", "noext", "", ".wav", "../../etc/passwd.wav",
                     "C:\\Users\\me\\a.wav", "a.txt", "a.wav.exe", "a.webm", "dir/", "flûte ♪.wav",
                     "a\x00b.wav", "a\r\nb.wav", '"quoted".wav', "x" * 300 + ".wav", "a;b=c.wav"]),
    st.tuples(st.text(max_size=24), st.sampled_from(list(AUDIO_EXTENSIONS) + ["", ".txt", ".WAV"])).map(
        lambda t: t[0] + t[1]),
)
CONTENT_TYPE = st.one_of(
    st.sampled_from(["audio/wav", "audio/x-wav", "audio/mpeg", "audio/flac", "audio/ogg", "application/ogg",
                     "application/octet-stream", "", "text/plain", "audio/wav; charset=binary", "image/png",
                     "AUDIO/WAV"]),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=20),
)
# Seeds whose samples are floats: a flipped exponent bit makes a huge finite sample (the "huge" region).
FLOAT_SEEDS = [i for i, spec in enumerate(SEED_SPECS) if spec[2] in ("FLOAT", "DOUBLE")]


def upload_cases(*, amps=AMPLITUDES, specials=SPECIALS, float_seeds: bool = True):
    seeds = list(range(len(SEED_SPECS))) if float_seeds else [i for i in range(len(SEED_SPECS)) if i not in FLOAT_SEEDS]
    return st.one_of(
        st.fixed_dictionaries({"kind": st.just("bytes"), "data": LOAD_BYTES.map(lambda c: c["data"])}),
        st.fixed_dictionaries({"kind": st.just("mutated"), "file": st.fixed_dictionaries({
            "seed": st.sampled_from(seeds), "ops": st.lists(MUTATION, max_size=4), "ext": st.none()})}),
        st.fixed_dictionaries({"kind": st.just("signal"), "signal": signals(max_samples=4 * SR, amps=amps, specials=specials),
                               "subtype": st.sampled_from(["PCM_16", "FLOAT", "DOUBLE", "PCM_U8"]),
                               "sr": st.sampled_from([8000, 22050, 48000])}),
    )


def service_cases(*, uploads=None):
    return st.fixed_dictionaries({
        "upload": uploads if uploads is not None else upload_cases(),
        "filename": FILENAME,
        "content_type": CONTENT_TYPE,
        "field": st.sampled_from(["file", "file", "file", "file", "audio", "FILE", "file_as_text", "two_files"]),
        "fields": st.fixed_dictionaries({}, optional={
            "window": st.one_of(st.sampled_from(["", "1", "3", "0.5", "10"]), FIELD_TEXT),
            "hop": st.one_of(st.sampled_from(["", "0.25", "1", "2"]), FIELD_TEXT),
            "top_k": st.one_of(st.sampled_from(["1", "3", "6", "100", "0"]), FIELD_TEXT),
            "spectrogram": st.one_of(st.sampled_from(["true", "1", "false", "on"]), FIELD_TEXT),
            "other": FIELD_TEXT,
        }),
    })


SERVICE = service_cases()
SERVICE_RAW = st.fixed_dictionaries({
    "content_type": st.one_of(
        st.sampled_from(["multipart/form-data", "multipart/form-data; boundary=XyZ", "multipart/form-data; boundary=",
                         'multipart/form-data; boundary="a b"', "multipart/form-data; boundary=" + "b" * 100,
                         "MULTIPART/FORM-DATA; BOUNDARY=XyZ", "application/json", "", "multipart/mixed; boundary=XyZ",
                         "application/x-www-form-urlencoded"]),
        st.text(max_size=40)),
    "parts": st.lists(st.fixed_dictionaries({
        "headers": st.lists(st.sampled_from([
            b'Content-Disposition: form-data; name="file"; filename="a.wav"',
            b'Content-Disposition: form-data; name="file"', b'Content-Disposition: form-data; name="window"',
            b'Content-Disposition: form-data; name="top_k"', b'Content-Disposition: form-data; filename="a.wav"',
            b"Content-Disposition: attachment", b"Content-Type: audio/wav", b"Content-Type: text/plain; charset=utf-16",
            b'Content-Disposition: form-data; name="file"; filename*=UTF-8\'\'%C3%A9.wav',
            b'Content-Disposition: form-data; name="file"; filename="\xff\xfe.wav"',
            b"Content-Disposition: form-data; name=", b"X: " + b"y" * 200, b"no colon here"]), max_size=3),
        "body": st.one_of(st.binary(max_size=256), st.sampled_from([b"3", b"abc", b"RIFF"])),
    }), max_size=4),
    "boundary": st.sampled_from([b"XyZ", b"XyZ", b"other", b""]),
    "closing": st.sampled_from([True, True, False]),
    "junk": st.binary(max_size=32),
    "method_path": st.sampled_from([("POST", "/v1/predict"), ("POST", "/v1/predict"), ("PUT", "/v1/predict"),
                                    ("POST", "/v1/predict/"), ("GET", "/v1/predict"), ("POST", "/v1/model")]),
})


def upload_bytes(upload: dict, ctx: Context) -> bytes:
    if upload["kind"] == "bytes":
        return upload["data"]
    if upload["kind"] == "mutated":
        return realise_file(upload["file"], ctx)[0]
    import soundfile as sf

    y = make_signal(upload["signal"])
    if upload["subtype"] != "FLOAT" and upload["subtype"] != "DOUBLE":
        y = np.clip(np.nan_to_num(y), -1, 1)
    buf = io.BytesIO()
    if len(y) == 0:
        return b""
    sf.write(buf, y.astype(np.float64), upload["sr"], format="WAV", subtype=upload["subtype"])
    return buf.getvalue()


def check_response(r, *, classes: list[str], filename: str | None = None, fields: dict | None = None) -> None:
    """Never a 5xx; a 4xx is ``{"error": "one line"}``; a 200 is a valid prediction."""
    from instrec.service.upload import display_name

    if r.status_code >= 500:
        violated(f"HTTP {r.status_code}: {r.text[:300]}")
    try:
        body = r.json()
    except ValueError:
        violated(f"HTTP {r.status_code} with a body that is not JSON: {r.text[:200]!r}")
    if r.status_code >= 400:
        if not (isinstance(body, dict) and list(body) == ["error"] and isinstance(body["error"], str)
                and body["error"].strip() and "\n" not in body["error"]):
            violated(f"HTTP {r.status_code} body is not one error line: {body!r:.300}")
        return
    if r.status_code != 200:
        violated(f"HTTP {r.status_code}")
    from instrec.inference import Prediction

    try:
        pred = Prediction.from_dict(body)
    except (KeyError, TypeError, ValueError) as e:
        violated(f"200 body is not a prediction ({e!r}): {body!r:.300}")
    check_prediction(pred, classes)
    path = body["path"]
    if not isinstance(path, str) or not path or len(path) > 200 or re.search(r"[\x00-\x1f\x7f/\\\\]", path):
        violated(f"path {path!r} is not a safe display name")
    # httpx sends '"', '\\' and control characters of a file name escaped: compare the others
    if filename is not None and not re.search(r'["\\\\\x00-\x1f]', filename) and path != display_name(filename):
        violated(f"path {path!r} is not the sanitised upload name {display_name(filename)!r}")
    fields = fields or {}
    top = body.get("top")
    k = fields.get("top_k", "").strip()
    if isinstance(top, list) and k and k.isascii() and k.isdigit():
        if len(top) != min(int(k), len(classes)):
            violated(f"top_k={k} gave {len(top)} entries")
    if "spectrogram" in body:
        png = base64.b64decode(body["spectrogram"]["png"])
        if not png.startswith(b"\x89PNG"):
            violated("spectrogram is not a PNG")


def check_service(case: dict, ctx: Context) -> None:
    """POST /v1/predict with random uploads, names, types and form fields."""
    data = upload_bytes(case["upload"], ctx)
    ctx.write("upload.bin", data)
    ctx.write("request.json", json.dumps({k: v for k, v in case.items() if k != "upload"}, default=repr).encode())
    client = ctx.client
    fields = {k: v for k, v in case["fields"].items()}
    name, ctype, field = case["filename"], case["content_type"], case["field"]
    files: list = []
    if field == "file_as_text":
        fields["file"] = data.decode("latin-1")[:1000]
    elif field == "two_files":
        files = [("file", (name, data, ctype)), ("file", ("b.wav", data, ctype))]
    else:
        files = [(field, (name, data, ctype))]
    r = client.post("/v1/predict", files=files or None, data=fields)
    check_response(r, classes=ctx.model.classes, filename=name if field == "file" else None, fields=fields)
    if r.status_code >= 400 and usable_upload(case["upload"], data):
        # the refusal may be of the name, type or fields; the audio itself must be taken when it
        # comes as a plain upload (as in check_predict: resampling may silence a high signal)
        plain = client.post("/v1/predict", files=[("file", ("clip.wav", data, "audio/wav"))])
        check_response(plain, classes=ctx.model.classes, filename="clip.wav")
        high_silenced = case["upload"]["sr"] != ctx.model.feature.sr and "silent" in plain.text
        if plain.status_code != 200 and not high_silenced:
            violated(f"the service refused usable audio ({case['upload']['subtype']}, {case['upload']['sr']} Hz): "
                     f"HTTP {plain.status_code} {plain.text[:200]}")


def usable_upload(upload: dict, data: bytes) -> bool:
    """Whether ``data`` is a WAV whose audio the service must take: within its limits, and
    usable as decoded (not empty, silent, non-finite, too large or too short)."""
    import soundfile as sf

    limits = _service_limits()
    if upload["kind"] != "signal" or not data or len(data) > limits.max_upload_bytes:
        return False
    y, sr = sf.read(io.BytesIO(data), dtype="float64", always_2d=True)
    return len(y) <= limits.max_duration_s * sr and reference_refusal(y.mean(axis=1), sr) is None


def raw_body(case: dict) -> bytes:
    b = case["boundary"]
    out = bytearray()
    for part in case["parts"]:
        out += b"--" + b + b"\r\n" + b"".join(h + b"\r\n" for h in part["headers"]) + b"\r\n" + part["body"] + b"\r\n"
    if case["closing"]:
        out += b"--" + b + b"--\r\n"
    return bytes(out) + case["junk"]


def check_service_raw(case: dict, ctx: Context) -> None:
    """Hand-made (often malformed) multipart bodies and content types."""
    body = raw_body(case)
    ctx.write("body.bin", body)
    ctx.write("request.json", json.dumps({"content_type": case["content_type"], "method_path": case["method_path"]}).encode())
    method, path = case["method_path"]
    try:
        r = ctx.client.request(method, path, content=body, headers={"content-type": case["content_type"]})
    except UnicodeEncodeError:
        return  # a header value httpx itself cannot send
    if r.status_code >= 500:
        violated(f"HTTP {r.status_code}: {r.text[:300]}")
    if path == "/v1/predict" and method == "POST" or r.status_code >= 400:
        check_response(r, classes=ctx.model.classes)


# ---------------------------------------------------------------------------------------------
# The registry


TARGETS: dict[str, Target] = {t.name: t for t in [
    Target("load_bytes", LOAD_BYTES, check_load_bytes, "audio.load on arbitrary bytes (magic-prefixed) with an audio extension", 1.5),
    Target("load_float_wav", float_wav_cases(), check_load_float_wav, "audio.load on float/double wavs with any finite samples (up to 3.4e38)", 1.0),
    Target("load_mutated", LOAD_MUTATED, check_load_mutated, "audio.load on mutated valid wav/flac/ogg/mp3/rf64/w64/aiff files", 2.0),
    Target("check_samples", CHECK_SAMPLES, check_check_samples, "audio.check_samples on arrays of any dtype vs a float64 reference", 0.5),
    Target("predict_array", PREDICT, check_predict, "Model.predict on arrays: dtypes, NaN/inf, DC, huge values, odd rates, windows", 1.5),
    Target("feature_defaults", FEATURE_DEFAULTS, check_feature_defaults, "features.compute with each kind's defaults on finite audio"),
    Target("feature_params", FEATURE_PARAMS, check_feature_params, "features.compute with random (bounded) FeatureConfig parameters"),
    Target("feature_config", FEATURE_CONFIG, check_feature_config, "FeatureConfig / from_dict with odd values and types", 0.5),
    Target("window_spans", WINDOW_SPANS, check_window_spans, "inference.window_spans covers [0, n)", 0.5),
    Target("merge_segments", MERGE, check_merge_segments, "inference.merge_segments tiles [0, duration]", 0.5),
    Target("check_window", CHECK_WINDOW, check_check_window, "inference.check_window accepts exactly the valid values", 0.5),
    Target("model_json", MODEL_JSON, check_model_json, "load_model on a bundle with a mutated model.json", 1.5),
    Target("manifest", MANIFEST, check_manifest, "data.load_dataset with a fuzzed manifest CSV", 1.0),
    Target("service", SERVICE, check_service, "POST /v1/predict: random uploads, file names, content types, form fields", 2.0),
    Target("service_raw", SERVICE_RAW, check_service_raw, "the service on hand-made multipart bodies and content types", 1.0),
]}


def run_case(target: Target, case: dict, ctx: Context) -> None:
    """Run one case with library warnings silenced (numpy overflow, librosa, mpg123 notes)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        target.check(case, ctx)


# ---------------------------------------------------------------------------------------------
# Cases on disk (reproducers)


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
