"""Inputs shared by several targets: valid seed files and their mutations, and JSON-able signal
recipes turned into arrays. A drawn value is plain data, so a case is its own reproducer.
"""

from __future__ import annotations

import io
import math
import struct

import numpy as np
from hypothesis import strategies as st

from fuzz.harness import Context
from instrec.audio import AUDIO_EXTENSIONS

SR = 22050  # the model's rate: signals and test audio are made at it


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


# Format signatures that arbitrary bytes are put behind, so decoders get past their first check.
MAGIC = [b"", b"RIFF", b"RIFF\xff\xff\xff\xffWAVE", b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00",
         b"RF64\xff\xff\xff\xffWAVEds64", b"riff.\x91\xcf\x11", b"FORM\x00\x00\x00\x00AIFF", b"fLaC",
         b"fLaC\x00\x00\x00\x22", b"OggS\x00\x02", b"OggS\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x01vorbis",
         b"ID3\x04\x00\x00\x00\x00\x00\x00", b"\xff\xfb\x90\x64", b"\xff\xf3", b"\xff\xe0", b"\x89PNG\r\n\x1a\n",
         b"PK\x03\x04", b"<html>", b"\x00" * 64]


# ---------------------------------------------------------------------------------------------
# Mutated seed files: a spec (seed index, mutation ops, extension) and the bytes it stands for


def mutated_file(ext_choice=True):
    """A spec of a mutated seed file: which seed, which mutations, which extension."""
    return st.fixed_dictionaries({
        "seed": st.integers(0, len(SEED_SPECS) - 1),
        "ops": st.lists(MUTATION, min_size=0, max_size=4),
        # mostly the seed's own extension; sometimes another audio one (content decides)
        "ext": st.sampled_from([None] * 6 + list(AUDIO_EXTENSIONS)) if ext_choice else st.none(),
    })


def realise_file(spec: dict, ctx: Context) -> tuple[bytes, str]:
    """The bytes and extension a ``mutated_file`` spec stands for."""
    _, ext, data = ctx.seeds[spec["seed"] % len(ctx.seeds)]
    return mutate(data, spec["ops"]), spec.get("ext") or ext


# ---------------------------------------------------------------------------------------------
# Signals: recipes of test signals, and the arrays they make


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


def signal_array(case: dict) -> np.ndarray:
    """The array a case's signal recipe, channel count (0: 1-D) and dtype stand for."""
    y = make_signal(case["signal"])
    if case.get("channels"):
        y = np.stack([y * (1 - 0.1 * c) for c in range(case["channels"])])
    return cast(y, case["dtype"])


def as_float32(y: np.ndarray) -> np.ndarray:
    """float32 samples, clipped to float32's finite range (a plain cast makes 3.4e38 * 1.2 inf)."""
    big = float(np.finfo(np.float32).max)
    return np.clip(y, -big, big).astype(np.float32)
