"""Shared fixtures: small real audio made on the fly (numpy tones, FluidSynth renders)."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import sys
from pathlib import Path

# Two test processes (./run tests: pytest-xdist) share the two cores: BLAS and torch with one
# thread each, in them and in the processes they start; two threads each spin against each other
# (the suite took longer on two processes than on one).
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402

SR = 22050


def pytest_xdist_make_scheduler(config, log):
    """With two test processes (``-n 2 --dist loadgroup``, as ``./run tests`` runs them): the
    cluster tests all in one, which starts one Ray head for them (Ray's "auto" finds the cluster a
    machine runs: two heads would find each other's); every other test wherever a process is free.
    (pytest-xdist's own loadgroup no longer groups under pytest 9, which ignores the group suffix it
    gives a test's id.)"""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class OneRay(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "ray" if nodeid.startswith("tests/cluster/") else nodeid

    return OneRay(config, log)


# The pipeline caches features by default (~/.cache/instrec/features): tests, and the CLI
# processes they start, use a cache of their own that disappears with the run.
_CACHE = tempfile.mkdtemp(prefix="instrec-test-cache-")
os.environ["INSTREC_CACHE"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
ROOT = Path(__file__).resolve().parents[1]  # the repository
REAL_DATA = ROOT.parent / "shared" / "data" / "london_phill_dataset_multi"
# the web page's tests: a real headless Chromium (fake media devices for the microphone button)
CHROMIUM = Path(os.environ.get("INSTREC_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]


def real_data_or_skip() -> Path:
    if not REAL_DATA.is_dir():
        pytest.skip(f"the Philharmonia data set is not at {REAL_DATA}")
    return REAL_DATA


def tone(kind: str, f0: float, seconds: float = 1.0, sr: int = SR, seed: int = 0) -> np.ndarray:
    """A periodic tone of a given waveform with a decay: distinct timbres for tests."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    phase = (f0 * t) % 1.0
    if kind == "sine":
        y = np.sin(2 * np.pi * f0 * t)
    elif kind == "square":
        y = np.sign(np.sin(2 * np.pi * f0 * t))
    elif kind == "saw":
        y = 2 * phase - 1
    else:
        raise ValueError(kind)
    env = np.minimum(1, t / 0.02) * np.exp(-t * 1.5)
    return (0.5 * y * env + 0.003 * rng.standard_normal(len(t))).astype(np.float32)


def write(path: Path, y: np.ndarray, sr: int = SR, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), y, sr, **kw)
    return path


@pytest.fixture(scope="session")
def tone_data(tmp_path_factory) -> Path:
    """3 classes x 10 clips of 1 s in sub-folders: sine/, square/, saw/."""
    root = tmp_path_factory.mktemp("tones")
    rng = np.random.default_rng(0)
    for kind in ("sine", "square", "saw"):
        for k in range(10):
            f0 = float(rng.uniform(110, 880))
            write(root / kind / f"{kind}_{k:02d}.wav", tone(kind, f0, seed=k))
    return root


def labelled_features(root: Path, feature, *, limit: int | None = None, **extract_options):
    """Feature rows and labels of the clips in ``root`` (its first ``limit``):
    ``(X, labels, skipped, dataset)``."""
    from instrec.data import load_dataset
    from instrec.features import extract

    ds = load_dataset(root)
    clips = ds.clips[:limit]
    X, ok, skipped = extract([c.path for c in clips], feature, **extract_options)
    return X, [clips[i].label for i in ok], skipped, ds


@pytest.fixture(scope="session")
def rendered_data(tmp_path_factory) -> Path:
    """Real FluidSynth renders: 3 instruments x 8 clips of 1.5 s from FluidR3."""
    from instrec.data.render import render

    root = tmp_path_factory.mktemp("rendered")
    render(root, soundfont="fluidr3", instruments=("flute", "cello", "trumpet"), per_class=8, seconds=1.5, seed=1)
    return root


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300, process: bool = False,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``instrec ARGS`` as a user would; capture text output, the exit code as a process's.

    In this process by default (``instrec.cli.main(args)``, the entry point's own function): the
    libraries are imported once, not once per call (3-4 s each here). ``process=True``: ``python
    -m instrec`` in a fresh process, for what only a process shows (the output at the file
    descriptors, launchers, environment variables set for children); ``env`` adds to its
    environment."""
    if process:
        env = {**os.environ, "COLUMNS": "200", **(env or {})}
        return subprocess.run([sys.executable, "-m", "instrec", *map(str, args)], capture_output=True, text=True,
                              cwd=cwd, timeout=timeout, env=env)
    import contextlib
    import io
    import traceback

    assert env is None, "env: for a process of its own (process=True)"

    from instrec.cli import main

    out, err, code = io.StringIO(), io.StringIO(), 0
    here, columns = os.getcwd(), os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "200"
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main([str(a) for a in args])
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                if isinstance(e.code, str):
                    print(e.code, file=sys.stderr)
            except BaseException:  # what the interpreter would print, and its exit code
                traceback.print_exc()
                code = 1
    finally:
        os.chdir(here)
        if columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = columns
    return subprocess.CompletedProcess(["instrec", *map(str, args)], code, out.getvalue(), err.getvalue())


def error_lines(stderr: str) -> list[str]:
    """stderr lines that are not library chatter (mpg123 warnings about mp3 headers)."""
    return [l for l in stderr.splitlines() if l.strip() and "mpg123" not in l and "Xing" not in l]


@pytest.fixture(scope="session")
def mixture_data(tone_data, tmp_path_factory) -> Path:
    """Multi-label clips: 60 mixtures of 1-2 of tone_data's tones (sine, square, saw) in 3-s
    clips, with manifest.csv (labels joined by ';') and activity.csv (data.mixtures). Not 1-3: with
    three classes each would play in two clips of three, and a few epochs learn "all of them"."""
    from instrec.data import load_dataset
    from instrec.data.mixtures import mix_clips

    root = tmp_path_factory.mktemp("mixtures")
    mix_clips(load_dataset(tone_data).clips, root, n=60, min_instruments=1, max_instruments=2, seconds=3.0, sr=SR,
              seed=0)
    return root


@pytest.fixture(scope="session")
def multilabel_model(mixture_data, tmp_path_factory) -> Path:
    """A cnn-multi model folder trained a few epochs on mixture_data (classes saw, sine, square)."""
    from dataclasses import replace

    from instrec.pipeline import train_model
    from instrec.recipes import get_recipe

    recipe = get_recipe("cnn-multi")
    recipe = replace(recipe, train=replace(recipe.train, epochs=12, batch_size=8, patience=0))
    out = tmp_path_factory.mktemp("multilabel") / "model"
    train_model(mixture_data, recipe=recipe, out=out, seed=0)
    return out


@pytest.fixture(scope="session")
def duet_recording(tmp_path_factory) -> Path:
    """12 s: a sine alone (0-4 s), sine and saw together (4-8 s), the saw alone (8-12 s)."""
    sine = np.concatenate([tone("sine", 440.0, 1.0, seed=k) for k in range(8)])
    saw = np.concatenate([tone("saw", 196.0, 1.0, seed=k) for k in range(8)])
    y = np.zeros(12 * SR, np.float32)
    y[: 8 * SR] += sine
    y[4 * SR :] += saw
    return write(tmp_path_factory.mktemp("duet") / "duet.wav", 0.7 * y)


PAGE_TIMEOUT_MS = 30_000


def open_page(browser, base_url: str, **context_options):
    """A fresh browser context and page on the web page at ``base_url``, its model loaded:
    ``(context, page, problems)``; ``problems`` collects script errors and requests that leave
    the server. ``context_options``: Playwright's (``permissions=["microphone"]``...)."""
    from urllib.parse import urlparse

    context = browser.new_context(viewport={"width": 1200, "height": 900}, **context_options)
    pg = context.new_page()
    problems: list[str] = []
    pg.on("pageerror", lambda e: problems.append(f"script error: {e}"))
    server = urlparse(base_url).netloc
    pg.on("request", lambda r: problems.append(f"request outside the server: {r.url}")
          if urlparse(r.url).scheme in ("http", "https") and urlparse(r.url).netloc != server else None)
    pg.set_default_timeout(PAGE_TIMEOUT_MS)
    pg.goto(base_url + "/")
    pg.wait_for_function("document.getElementById('model-info').textContent.startsWith('Model')")
    return context, pg, problems


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set INSTREC_CHROMIUM)")
    with sync_api.sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        except Exception as e:  # a Chromium that cannot start here (no sandbox support, ...)
            pytest.skip(f"Chromium at {CHROMIUM} does not start: {str(e).splitlines()[0]}")
        yield b
        b.close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Scores for render-music's tests (music21, the render extra, imported when called).
def write_duet(path: Path) -> Path:
    """A duet: a 'Violoncello' part of whole notes C3 E3 G3 C4 and a 'Soprano' part of four
    half-notes rest-free from beat 4 on, 4/4, written as MusicXML."""
    import music21

    s = music21.stream.Score()
    cello = music21.stream.Part()
    cello.partName = "Violoncello"
    for name in ("C3", "E3", "G3", "C4"):
        cello.append(music21.note.Note(name, quarterLength=4.0))
    voice = music21.stream.Part()
    voice.partName = "Soprano"
    voice.append(music21.note.Rest(quarterLength=4.0))
    for name in ("E5", "D5", "C5", "D5", "E5", "E5"):
        voice.append(music21.note.Note(name, quarterLength=2.0))
    s.insert(0, cello)
    s.insert(0, voice)
    s.write("musicxml", fp=str(path))
    return path


def write_solo(path: Path, part_name: str, notes: tuple[str, ...], fmt: str = "musicxml") -> Path:
    """A score of one part of whole notes, written as ``fmt`` (musicxml or midi)."""
    import music21

    s = music21.stream.Score()
    part = music21.stream.Part()
    part.partName = part_name
    part.insert(0, music21.instrument.fromString(part_name))
    for name in notes:
        part.append(music21.note.Note(name, quarterLength=4.0))
    s.insert(0, part)
    path.parent.mkdir(parents=True, exist_ok=True)
    s.write(fmt, fp=str(path))
    return path
