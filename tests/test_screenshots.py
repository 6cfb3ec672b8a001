"""The README's pictures (docs/screenshot.png, docs/timeline.png) are made by scripts/screenshots.py
from the live page and ``instrec predict --plot``, and must show the model that ships.

The script writes what each picture shows into the PNG's text fields; the first test reads the
committed pictures' fields (no browser needed), so a model with other classes than the pictures
show (the web page's screenshot once had 6 bars for a 7-class model) fails here until the script is
run again. The second runs the script into a temporary folder.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "screenshots.py"
DOCS = ROOT / "docs"
REFRESH = f"run `python {SCRIPT.relative_to(ROOT)}` to make them again"


def _script():
    spec = importlib.util.spec_from_file_location("instrec_screenshots_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def model():
    import instrec

    return instrec.load_model()


def check_pictures(folder: Path, model) -> None:
    from PIL import Image

    script = _script()
    classes = ",".join(model.classes)
    shot, timeline = folder / "screenshot.png", folder / "timeline.png"
    for path in (shot, timeline):
        fields = script.png_fields(path)
        assert fields.get("instrec:made-by") == "scripts/screenshots.py", f"{path.name} was not made by the script; {REFRESH}"
        assert fields.get("instrec:classes") == classes, (
            f"{path.name} shows the classes {fields.get('instrec:classes')}, the shipped model has {classes}; {REFRESH}")
        assert fields.get("instrec:recipe") == model.info["recipe"], f"{path.name}: another recipe; {REFRESH}"
    fields = script.png_fields(shot)
    assert int(fields["instrec:bars"]) == len(model.classes), f"screenshot.png shows {fields['instrec:bars']} bars; {REFRESH}"
    with Image.open(shot) as img:
        assert img.width == script.VIEWPORT["width"] and img.height >= script.VIEWPORT["height"] // 2
    with Image.open(timeline) as img:
        assert img.size == (1000, 600)
    # the timeline found the instruments of the recording, in order, with the silence between
    # (a window where the model doubts may say 'unknown', as at a note's fading tail)
    labels = [s.split(":")[0] for s in script.png_fields(timeline)["instrec:segments"].split()]
    assert [x for x in labels if x != "unknown"] == ["flute", "silence", "cello", "trumpet"], labels


def test_committed_pictures_show_the_shipped_model(model):
    check_pictures(DOCS, model)


def _missing() -> str | None:
    chromium = Path(os.environ.get("INSTREC_CHROMIUM", "/usr/bin/chromium"))
    if not chromium.exists():
        return f"no Chromium at {chromium} (apt-get install chromium, or set INSTREC_CHROMIUM)"
    for module, why in (("playwright", "Playwright is not installed"), ("fastapi", "the serve extra is not installed"),
                        ("uvicorn", "the serve extra is not installed"), ("matplotlib", "matplotlib is not installed")):
        if importlib.util.find_spec(module) is None:
            return why
    try:
        import fluidsynth  # noqa: F401
    except (ImportError, OSError):
        return "FluidSynth (the render extra) is not installed"
    from instrec.data.render import SOUNDFONTS

    if not SOUNDFONTS["fluidr3"].is_installed():
        return "the FluidR3 SoundFont is not installed"
    return None


@pytest.mark.slow
def test_script_makes_both_pictures(tmp_path, model):
    why = _missing()
    if why:
        pytest.skip(why)
    r = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path)], capture_output=True, text=True,
                       timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert f"({len(model.classes)} bars" in r.stdout, r.stdout
    check_pictures(tmp_path, model)
