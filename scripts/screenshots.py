"""Make the README's pictures from the live program, so that they show the current model.

    python scripts/screenshots.py [--out docs] [--model MODEL] [--chromium /usr/bin/chromium]

1. Renders a few notes of the flute, the cello and the trumpet with FluidSynth (FluidR3, seed 1),
   keeps the two of each instrument the model is surest of, and joins them into one recording:
   flute, flute, 4.5 s of silence, cello, cello, trumpet, trumpet (22.5 s).
2. ``screenshot.png``: starts the service on 127.0.0.1 (a free port), opens its web page in
   headless Chromium (Playwright, a 1200 x 900 window), uploads the recording, waits for the
   result and saves the whole page.
3. ``timeline.png``: ``instrec predict RECORDING --plot timeline.png`` on the same recording.

Each PNG carries text fields saying what it shows (``instrec:classes``, ``instrec:recipe``,
``instrec:bars`` for the page's probability bars, ``instrec:made-by``):
``tests/test_screenshots.py`` checks that the committed ones show the shipped model's classes, so a
new model with other classes fails a test until this script is run again. Needs the ``serve`` and
``render`` extras, matplotlib, Playwright (``pip install playwright``; no browser download: it
drives the Chromium at ``--chromium``, default ``$INSTREC_CHROMIUM`` or /usr/bin/chromium).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
INSTRUMENTS = ("flute", "cello", "trumpet")
NOTES_PER_INSTRUMENT = 2
GAP_SECONDS = 4.5  # silence after the flute: long enough for two silent windows, which the timelines mark
RECORDING = "flute_cello_trumpet.wav"
VIEWPORT = {"width": 1200, "height": 900}
TIMEOUT_MS = 60_000
MADE_BY = "scripts/screenshots.py"


def default_chromium() -> Path:
    return Path(os.environ.get("INSTREC_CHROMIUM", "/usr/bin/chromium"))


def make_recording(model, folder: Path) -> tuple[Path, list[str]]:
    """The long recording (see the module's docstring) in ``folder``; also the notes' labels in order."""
    import soundfile as sf

    from instrec.data.render import render

    notes = folder / "notes"
    render(notes, soundfont="fluidr3", instruments=INSTRUMENTS, per_class=8, seconds=3.0, seed=1)
    sr = model.feature.sr
    parts, labels = [], []
    for label in INSTRUMENTS:
        scored = []
        for p in sorted(notes.glob(f"{label}_*.wav")):
            r = model.predict_file(p)
            if r.label == label:
                scored.append((r.probabilities[label], p.name, p))
        if len(scored) < NOTES_PER_INSTRUMENT:
            raise SystemExit(f"the model gets only {len(scored)} of the rendered {label} notes right; "
                             f"{NOTES_PER_INSTRUMENT} are needed")
        for _, _, p in sorted(scored, reverse=True)[:NOTES_PER_INSTRUMENT]:
            y, file_sr = sf.read(str(p), dtype="float32")
            assert file_sr == sr, (file_sr, sr)
            parts.append(y)
            labels.append(label)
        if label == INSTRUMENTS[0]:
            parts.append(np.zeros(int(GAP_SECONDS * sr), dtype=np.float32))
    out = folder / RECORDING
    sf.write(str(out), np.concatenate(parts), sr, subtype="PCM_16")
    return out, labels


def tag_png(path: Path, fields: dict[str, str]) -> None:
    """Add text fields to a PNG (the pixels stay as they are)."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for k, v in fields.items():
        info.add_text(k, v)
    with Image.open(path) as img:
        img.load()
    tmp = path.with_name(f".{path.name}.part")
    img.save(tmp, format="PNG", pnginfo=info, optimize=True)
    os.replace(tmp, path)


def png_fields(path: str | os.PathLike) -> dict[str, str]:
    """The text fields of a PNG written by this script."""
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        return dict(getattr(img, "text", {}) or {})


def model_fields(model) -> dict[str, str]:
    return {"instrec:classes": ",".join(model.classes), "instrec:recipe": str(model.info.get("recipe", "")),
            "instrec:made-by": MADE_BY}


def screenshot_page(model, recording: Path, out: Path, chromium: Path) -> int:
    """Upload ``recording`` on the web page and save the page; returns the number of probability bars."""
    from playwright.sync_api import sync_playwright

    from instrec.service import create_app, running

    with running(create_app(model)) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport=VIEWPORT).new_page()
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(f"script error: {e}"))
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(url + "/")
            page.wait_for_function("document.getElementById('model-info').textContent.startsWith('Model')")
            page.set_input_files("#file-input", str(recording))
            page.wait_for_function(f"document.getElementById('file-name').textContent === {recording.name!r}")
            page.wait_for_selector("#result:not([hidden])")
            page.wait_for_function("document.getElementById('status').textContent === ''")
            page.wait_for_selector("#timeline-figure:not([hidden])")
            page.wait_for_function("document.getElementById('spectrogram').complete")
            bars = page.locator("#bars g.bar").count()
            if problems:
                raise SystemExit(f"the page reported: {problems}")
            if bars != len(model.classes):
                raise SystemExit(f"the page shows {bars} bars for a model with {len(model.classes)} classes")
            page.screenshot(path=str(out), full_page=True)
        finally:
            browser.close()
    tag_png(out, {**model_fields(model), "instrec:bars": str(bars), "instrec:recording": recording.name})
    return bars


def plot_timeline(model_arg: str | None, recording: Path, out: Path, model) -> dict:
    """``instrec predict RECORDING --plot OUT`` as a user runs it; returns its JSON result."""
    cmd = [sys.executable, "-m", "instrec", "predict", str(recording), "--plot", str(out), "--format", "json"]
    if model_arg:
        cmd += ["--model", model_arg]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise SystemExit(f"instrec predict failed ({r.returncode}):\n{r.stderr}")
    (result,) = json.loads(r.stdout)
    classes = list(result["probabilities"])
    if classes != list(model.classes):
        raise SystemExit(f"instrec predict answered among {classes}, the model has {model.classes}")
    segments = " ".join(f"{s['label']}:{s['start']:g}-{s['end']:g}" for s in result.get("segments", []))
    tag_png(out, {**model_fields(model), "instrec:recording": recording.name, "instrec:segments": segments})
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs", help="folder for screenshot.png and timeline.png")
    ap.add_argument("--model", default=None, help="model folder or .onnx file (default: the shipped model)")
    ap.add_argument("--chromium", type=Path, default=default_chromium())
    args = ap.parse_args(argv)

    import instrec

    if not args.chromium.exists():
        raise SystemExit(f"no Chromium at {args.chromium} (apt-get install chromium, or --chromium PATH)")
    model = instrec.load_model(args.model)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="instrec-screenshots-") as tmp:
        recording, labels = make_recording(model, Path(tmp))
        print(f"recording: {' '.join(labels)} ({RECORDING})")
        bars = screenshot_page(model, recording, args.out / "screenshot.png", args.chromium)
        print(f"wrote {args.out / 'screenshot.png'} ({bars} bars: {', '.join(model.classes)})")
        result = plot_timeline(args.model, recording, args.out / "timeline.png", model)
        segs = ", ".join(f"{s['label']} {s['start']:g}-{s['end']:g} s" for s in result.get("segments", []))
        print(f"wrote {args.out / 'timeline.png'} (segments: {segs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
