"""Clips of no instrument a model knows ("none of these"): the negatives, labelled ``unknown``.

Five kinds, each drawn from a generator of its own, seeded by (seed, origin, kind), so the same
seed gives the same clips:

- ``noise``: white, pink, brown, blue or violet noise (power ∝ f^0, f^-1, f^-2, f^1, f^2), with a
  random attack, held length and release, sometimes a tremolo. Origin ``noise``.
- ``speech``: words of a built-in list in one of several languages, spoken by ``espeak-ng`` with
  a random voice variant, speed and pitch. Origin ``espeak``; left out (one line) without it.
- ``drums``: random patterns on a General MIDI drum kit (bank 128, channel 10) of each SoundFont,
  played by FluidSynth. Origin: the SoundFont (``fluidr3``...). A TiMidity++ patch set is left out.
- ``synth``: one note of a synthesiser lead, pad or effect (GM programs 80-103, without the two
  voice-like ones, 85 and 91, which a choir class would claim). Origin: the library.
- ``effects``: one note of a percussive or sound-effect program (GM 113, 115-127: agogo, woodblock,
  taiko, toms, reverse cymbal, fret noise, breath, seashore, birds, telephone, helicopter,
  applause, gunshot; the tuned tinkle bell and steel drums are left out). Origin: the library.

:func:`negative_jobs` plans what to render, :func:`render_job` renders one kind from one origin;
:mod:`.render` normalises and writes the clips like its own.
"""

from __future__ import annotations

import io
import math
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import soundfile as sf

from ..errors import RenderError
from .instruments import GM_PROGRAMS, Instrument
from .notes import DYNAMICS, draw_duration, draw_note, note_rng
from .synth import SoundFont, installed_soundfonts, needs_fluidsynth, open_library

LABEL = "unknown"
KINDS = ("noise", "speech", "drums", "synth", "effects")
NOISE_COLOURS: dict[str, float] = {"white": 0.0, "pink": -1.0, "brown": -2.0, "blue": 1.0, "violet": 2.0}
SYNTH_PROGRAMS = tuple(p for p in range(80, 104) if p not in (85, 91))
EFFECT_PROGRAMS = (113, *range(115, 128))
DRUM_KITS = {0: "standard", 8: "room", 16: "power", 24: "electronic", 25: "tr-808", 32: "jazz",
             40: "brush", 48: "orchestra"}
NOTE_RANGE = (48, 84)  # synth and effect notes: the middle of the keyboard, where every library has samples
MAX_TRIES = 20  # draws of one clip before a program counts as silent
ESPEAK_TIMEOUT = 30.0
ESPEAK_SR = 22050  # espeak-ng writes 16-bit mono at 22,050 Hz

# A few hundred common words in each of the languages espeak-ng speaks, spoken in random order.
WORDS: dict[str, str] = {
    "en-us": "the time people year way day man thing woman life child world school state family student "
             "group country problem hand part place case week company system program question work "
             "government number night point home water room mother area money story fact month lot right "
             "study book eye job word business issue side kind head house service friend father power hour "
             "game line end member law car city community name president team minute idea kid body back",
    "en-gb": "garden weather rather queue holiday biscuit lorry flat motorway pavement autumn colour "
             "neighbour centre theatre programme post parcel jumper trousers chips crisps football pitch "
             "railway station platform ticket return single cheers brilliant lovely proper fortnight",
    "de": "die der und in zu den das nicht von sie ist des sich mit dem dass er es ein ich auf so eine "
          "auch als an nach wie im für man aber aus durch wenn nur war noch werden bei hat wir was wird "
          "sein einen welche sind oder zur um haben einer mir über ihm diese einem ihr uns da zum kann",
    "fr-fr": "le de un être et à il avoir ne je son que se qui ce dans en du elle au pour pas que vous "
             "par sur faire plus dire me on mon lui nous comme mais pouvoir avec tout y aller voir en bien "
             "où sans tu ou leur homme si deux mari moi vouloir te femme venir quand grand celui notre",
    "es": "el la de que y a en un ser se no haber por con su para como estar tener le lo todo pero más "
          "hacer o poder decir este ir otro ese la si me ya ver porque dar cuando él muy sin vez mucho "
          "saber qué sobre mi alguno mismo yo también hasta año dos querer entre así primero desde",
    "it": "di che il la è e un a per in non una sono mi si ho lo ma ti ha le cosa con no questo io se "
          "bene ci da sei hai come mio qui del era tu alla lei me gli al anche tutto nel della fatto "
          "ora cosa sta solo niente dove allora essere perché lui ancora sì fare molto grazie",
    "nl": "de en een het van in is dat op te zijn met voor niet aan er die maar ook als dan bij of uit "
          "nog wel naar kan om door over heeft zo hij wat ze wordt al tot moet je meer veel na geen",
    "pt-br": "de a o que e do da em um para é com não uma os no se na por mais as dos como mas foi ao "
             "ele das tem à seu sua ou ser quando muito há nos já está eu também só pelo pela até isso",
}
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "croak", "whisper",
            "klatt", "klatt2", "grandma", "grandpa", "fast")


@dataclass(frozen=True)
class NegativeJob:
    """Clips of some kinds from one origin (``path``: the library, for drums, synth, effects).
    One job per library, so that it is loaded once."""

    kinds: tuple[str, ...]
    source: str
    path: Path | None = None


@dataclass
class NegativeClip:
    """One rendered negative: samples at ``sr`` and what the manifest says about them."""

    kind: str
    detail: str  # noise colour, language, kit, GM program name
    source: str
    pitch: int | None
    velocity: int
    dynamic: str
    duration: float
    y: np.ndarray
    sr: int


def negative_jobs(fonts: dict[str, Path]) -> tuple[list[NegativeJob], list[tuple[str, str]]]:
    """What to render for a render of ``fonts``, and what is left out (name, why).

    The General MIDI libraries of ``fonts`` give the drums, synth and effects (every installed one
    when ``fonts`` holds none, e.g. a render of sampler libraries only).
    """
    libraries = {s: p for s, p in fonts.items() if Path(p).is_file()} or installed_soundfonts()
    jobs, skipped = [NegativeJob(("noise",), "noise")], []
    if shutil.which("espeak-ng"):
        jobs.append(NegativeJob(("speech",), "espeak"))
    else:
        skipped.append(("espeak/unknown", "speech negatives need espeak-ng: apt-get install espeak-ng"))
    for source, path in libraries.items():
        if needs_fluidsynth(path):
            jobs.append(NegativeJob(("drums", "synth", "effects"), source, path))
        else:
            skipped.append((f"{source}/unknown", "drum negatives need a SoundFont played by FluidSynth"))
            jobs.append(NegativeJob(("synth", "effects"), source, path))
    return jobs, skipped


def render_job(job: NegativeJob, n: int, *, seconds: float, sr: int, seed: int, fluidsynth=None,
               skip: Callable[[str, str], None] = lambda name, why: None) -> Iterator[NegativeClip]:
    """``n`` clips of each of ``job``'s kinds, ``seconds`` long at ``sr`` Hz (or ``job``'s
    library's rate).

    ``fluidsynth`` is the pyfluidsynth module (for SoundFonts). What cannot be rendered is passed
    to ``skip(name, why)`` and yields nothing.
    """
    if job.path is None:
        for kind in job.kinds:
            rng = note_rng(seed, job.source, f"{LABEL}-{kind}")
            espeak = shutil.which("espeak-ng")
            if kind == "speech" and espeak is None:
                skip("espeak/unknown", "speech negatives need espeak-ng: apt-get install espeak-ng")
                continue
            for _ in range(n):
                yield noise_clip(rng, seconds, sr) if kind == "noise" else speech_clip(rng, seconds, sr, espeak)
        return
    font = open_library(fluidsynth, job.source, job.path, sr)
    try:
        for kind in job.kinds:
            rng = note_rng(seed, job.source, f"{LABEL}-{kind}")
            if kind == "drums":
                yield from _drum_clips(font, rng, n, seconds, skip)
            else:
                yield from _note_clips(font, kind, rng, n, seconds, skip)
    finally:
        font.close()


# ---------------------------------------------------------------------------------------------
# noise and speech


def _dynamic(rng: np.random.Generator) -> tuple[str, int]:
    word, lo, hi = DYNAMICS[int(rng.integers(len(DYNAMICS)))]
    return word, int(rng.integers(lo, hi + 1))


def coloured_noise(rng: np.random.Generator, n: int, sr: int, exponent: float) -> np.ndarray:
    """``n`` samples of noise whose power spectrum goes as ``f ** exponent``, peak 1."""
    x = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / sr)
    f[0] = f[1] if n > 1 else 1.0
    x *= (f / 1000.0) ** (exponent / 2.0)
    y = np.fft.irfft(x, n)
    return y / max(float(np.max(np.abs(y))), 1e-12)


def noise_clip(rng: np.random.Generator, seconds: float, sr: int) -> NegativeClip:
    """A burst of coloured noise: random colour, attack (2-300 ms), held length, release (20-500
    ms) and level; one in three with a tremolo (0.5-8 Hz)."""
    n = round(seconds * sr)
    colour = list(NOISE_COLOURS)[int(rng.integers(len(NOISE_COLOURS)))]
    dynamic, velocity = _dynamic(rng)
    held = draw_duration(rng, seconds)
    attack, release = rng.uniform(0.002, 0.3), rng.uniform(0.02, 0.5)
    tremolo = (rng.uniform(0.5, 8.0), rng.uniform(0.2, 0.9)) if rng.random() < 1 / 3 else None
    y = coloured_noise(rng, n, sr, NOISE_COLOURS[colour])
    t = np.arange(n) / sr
    env = np.clip(t / attack, 0.0, 1.0) * np.clip(1.0 - (t - held) / release, 0.0, 1.0)
    if tremolo is not None:
        rate, depth = tremolo
        env *= 1.0 - depth * 0.5 * (1.0 - np.cos(2 * np.pi * rate * t))
    y = (y * env * (velocity / 127)).astype(np.float32)
    return NegativeClip("noise", colour, "noise", None, velocity, dynamic, held, y, sr)


def speech_clip(rng: np.random.Generator, seconds: float, sr: int, espeak: str) -> NegativeClip:
    """Random words of a random language, said by espeak-ng with a random voice, speed (110-230
    words a minute) and pitch (20-80 of 0-99); cut to ``seconds``."""
    import soxr

    language = list(WORDS)[int(rng.integers(len(WORDS)))]
    variant = VARIANTS[int(rng.integers(len(VARIANTS)))]
    speed, pitch = int(rng.integers(110, 231)), int(rng.integers(20, 81))
    dynamic, velocity = _dynamic(rng)
    words = WORDS[language].split()
    count = max(2, math.ceil(seconds * speed / 60 * 1.3))
    text = " ".join(words[int(i)] for i in rng.integers(len(words), size=count))
    cmd = [espeak, "--stdout", "-v", f"{language}+{variant}", "-s", str(speed), "-p", str(pitch), text]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=ESPEAK_TIMEOUT)
        y, file_sr = sf.read(io.BytesIO(done.stdout), dtype="float64", always_2d=True)
    except (OSError, subprocess.SubprocessError, RuntimeError, sf.LibsndfileError) as e:
        raise RenderError(f"espeak-ng failed ({language}+{variant}): {str(e).splitlines()[0][:200]}") from None
    if done.returncode != 0 or len(y) == 0:
        why = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RenderError(f"espeak-ng failed ({language}+{variant}): {why[0][:200] if why else 'no audio'}")
    y = y.mean(axis=1)
    if file_sr != sr:
        y = soxr.resample(y, file_sr, sr)
    n = round(seconds * sr)
    spoken = round(min(len(y), n) / sr / 0.05) * 0.05
    y = np.pad(y, (0, max(0, n - len(y))))[:n] * (velocity / 127)
    return NegativeClip("speech", language, "espeak", None, velocity, dynamic, round(max(spoken, 0.05), 2),
                        y.astype(np.float32), sr)


# ---------------------------------------------------------------------------------------------
# drums, synthesisers and sound effects from the General MIDI libraries


def _drum_clips(font, rng, n, seconds, skip) -> Iterator[NegativeClip]:
    kits = [k for k in DRUM_KITS if isinstance(font, SoundFont) and font.has_program(k, bank=128)]
    if not kits:
        skip(f"{font.source}/unknown", "the SoundFont has no drum kit (bank 128)")
        return
    synths: dict[int, object] = {}  # one synth per kit: its clips follow one another in draw order
    try:
        for _ in range(n):
            kit = kits[int(rng.integers(len(kits)))]
            dynamic, velocity = _dynamic(rng)
            hits = drum_pattern(rng, seconds, velocity)
            synth = synths.get(kit) or synths.setdefault(kit, font.drum_synth(kit))
            y = font.play_hits(synth, hits, round(seconds * font.synth_sr))
            yield NegativeClip("drums", DRUM_KITS[kit], font.source, None, velocity, dynamic, round(seconds, 2),
                               y, font.synth_sr)
    finally:
        for synth in synths.values():
            synth.delete()


def drum_pattern(rng: np.random.Generator, seconds: float, velocity: int) -> list[tuple[float, int, int]]:
    """A random groove: (seconds, GM percussion key, velocity) hits on a 16th-note grid at 70-170
    bpm, kick and snare on their usual beats with random extras, hi-hat or ride, fills of toms
    and hand percussion, sometimes a crash on the first beat."""
    step = 60.0 / rng.uniform(70, 170) / 4
    steps = max(1, math.floor(seconds / step))
    cymbal = (42, 42, 44, 46, 51, 59)[int(rng.integers(6))]  # closed/pedal/open hi-hat, rides
    kick, snare = (35, 36)[int(rng.integers(2))], (38, 40, 37, 39)[int(rng.integers(4))]
    extras = (41, 43, 45, 47, 48, 50, 54, 56, 60, 61, 62, 63, 64, 69, 70, 75, 76)
    busy = rng.uniform(0.02, 0.2)
    hits = []
    if rng.random() < 0.5:
        hits.append((0.0, (49, 57)[int(rng.integers(2))], velocity))

    def vel(accent: float) -> int:
        return int(np.clip(round(velocity * accent + rng.normal(0, 6)), 1, 127))

    for i in range(steps):
        t, beat = i * step, i % 16
        if (beat in (0, 8) and rng.random() < 0.95) or rng.random() < 0.12:
            hits.append((t, kick, vel(1.0)))
        if (beat in (4, 12) and rng.random() < 0.9) or rng.random() < 0.06:
            hits.append((t, snare, vel(0.95)))
        if beat % 2 == 0 or rng.random() < 0.3:
            hits.append((t, cymbal, vel(0.7 if beat % 4 else 0.85)))
        if rng.random() < busy:
            hits.append((t, extras[int(rng.integers(len(extras)))], vel(0.8)))
    return hits


def _note_clips(font, kind, rng, n, seconds, skip) -> Iterator[NegativeClip]:
    programs = [p for p in (SYNTH_PROGRAMS if kind == "synth" else EFFECT_PROGRAMS) if font.has_program(p)]
    if not programs:
        skip(f"{font.source}/unknown", f"the library has no {kind} program")
        return
    synths: dict[int, object] = {}  # one synth per program (loading one costs up to 0.2 s)
    try:
        for _ in range(n):
            program = programs[int(rng.integers(len(programs)))]
            inst = Instrument(GM_PROGRAMS[program], program, *NOTE_RANGE)
            synth = synths.get(program) or synths.setdefault(program, font.synth_for(program))
            for _ in range(MAX_TRIES):
                note = draw_note(rng, inst, seconds)
                y = font.play(synth, note, round(seconds * font.synth_sr))
                if np.all(np.isfinite(y)) and float(np.max(np.abs(y))) >= 1e-4:
                    break
            else:
                skip(f"{font.source}/unknown", f"{GM_PROGRAMS[program]} stayed silent at {MAX_TRIES} pitches")
                continue
            yield NegativeClip(kind, inst.label, font.source, note.pitch, note.velocity, note.dynamic,
                               note.duration, y, font.synth_sr)
    finally:
        for synth in synths.values():
            synth.delete()

