"""The web page (issue 5), end to end: the real server, headless Chromium driven by Playwright.

Screenshots are kept in build/test-artifacts/ (ignored by git); the README's are made by
scripts/screenshots.py.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from conftest import PAGE_TIMEOUT_MS, SR, open_page, write  # noqa: E402

from instrec.service import create_app, running  # noqa: E402
from instrec.service.app import STATIC  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "build" / "test-artifacts"


@pytest.fixture(scope="module")
def model():
    import instrec

    return instrec.load_model()


@pytest.fixture(scope="module")
def base_url(model):
    with running(create_app(model)) as url:
        yield url


# ---------------------------------------------------------------------------------------------
# Without a browser: the page needs nothing from outside this server


def test_page_and_assets_are_served_locally(base_url):
    import httpx

    with httpx.Client(base_url=base_url) as client:
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        refs = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert refs, "the page links nothing?"
        for ref in refs:
            assert ref.startswith(("/", "#", "data:")), f"index.html refers to {ref} outside this server"
            if ref.startswith("/"):  # every link works (the footer's API description and model too)
                assert client.get(ref).status_code == 200, ref
        assert 'href="/openapi.json"' in page.text
        # No Swagger UI / ReDoc: FastAPI's pages load their script and style from a CDN, blank
        # offline; a 404 that points at the description instead.
        for path in ("/docs", "/redoc"):
            r = client.get(path)
            assert r.status_code == 404 and "/openapi.json" in r.json()["error"], (path, r.text)
    for f in STATIC.iterdir():
        text = f.read_text()
        urls = {u for u in re.findall(r"https?://[^\s\"')]+", text) if not u.startswith("http://www.w3.org/2000/svg")}
        assert not urls, f"{f.name} refers to {urls}"
        assert "@import" not in text and "fonts.googleapis" not in text


# ---------------------------------------------------------------------------------------------
# In the browser


@pytest.fixture
def page(browser, base_url):
    """A fresh page on the web page, with the microphone allowed; fails the test on any script
    error or any request that leaves this server."""
    context, pg, problems = open_page(browser, base_url, permissions=["microphone"])
    yield pg
    context.close()
    assert not problems, problems


@pytest.fixture(scope="module")
def right_clip(rendered_data, model) -> tuple[Path, str]:
    """A rendered flute clip (else any instrument) that the shipped model gets right, surest first."""
    best = None
    for label in ("flute", "trumpet", "cello"):
        for p in sorted(rendered_data.glob(f"{label}_*.wav")):
            r = model.predict_file(p)
            if r.label == label and (best is None or r.probabilities[label] > best[2]):
                best = (p, label, r.probabilities[label])
        if best:
            return best[0], best[1]
    pytest.fail("the shipped model gets no rendered clip right")


def shoot(pg, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    out = ARTIFACTS / name
    pg.screenshot(path=str(out), full_page=True)
    assert out.stat().st_size > 10_000
    return out


def wait_for_result(pg, file_name: str | None = None):
    if file_name:
        pg.wait_for_function(f"document.getElementById('file-name').textContent === {file_name!r}")
    pg.wait_for_selector("#result:not([hidden])")
    pg.wait_for_function("document.getElementById('status').textContent === ''")


def test_upload_shows_the_instrument(page, right_clip, model):
    clip, label = right_clip
    page.set_input_files("#file-input", str(clip))
    wait_for_result(page, clip.name)
    assert page.text_content("#result-label") == label
    assert page.is_hidden("#error")
    # "Probably a flute (woodwinds), 99%": the family beside the instrument, and the families' line
    family = model.families and next(f for f, members in model.families.items() if label in members)
    assert page.text_content("#result-family") == f"({family.replace('-', ' ')}),"
    assert page.text_content("#result-lead").startswith("Probably")
    assert family.replace("-", " ") in page.text_content("#family-line")
    # The bar chart: one bar per class, the longest first and it is the label's.
    bars = page.locator("#bars g.bar")
    assert bars.count() == len(model.classes)
    assert bars.first.get_attribute("data-class") == label
    assert set(bars.evaluate_all("gs => gs.map(g => g.dataset.class)")) == set(model.classes)
    # The spectrogram is a decoded image with the model's mel bands.
    size = page.eval_on_selector("#spectrogram", "img => [img.complete, img.naturalWidth, img.naturalHeight]")
    assert size[0] and size[1] > 10 and size[2] == model.feature.n_mels
    # The player holds the recording; a short one has no timeline.
    assert page.eval_on_selector("#player", "a => a.src").startswith("blob:")
    assert page.is_hidden("#timeline-figure")
    shoot(page, "webpage.png")


LEGEND = """() => [...document.querySelectorAll('#legend span')].map(s => ({
    cls: s.classList.contains('legend-note') ? null : s.textContent, text: s.textContent,
    note: s.classList.contains('legend-note'),
    colour: getComputedStyle(s, '::before').backgroundColor}))"""


def check_legend(pg, answer: dict) -> list[str]:
    """The timeline's legend names the classes instrec predict --plot draws for ``answer`` (the
    server's JSON), each in its own colour, and says how many less likely ones are left out; the
    probability lines are drawn for those classes only, in the legend's colours. The shown classes."""
    from instrec.display import SHOWN_CLASSES, shown_classes
    from instrec.results import Prediction

    shown = shown_classes(Prediction.from_dict(answer))
    heard = len(answer.get("instruments") or [])
    assert len(shown) == max(SHOWN_CLASSES, heard) < len(answer["probabilities"])
    items = pg.evaluate(LEGEND)
    entries = [i for i in items if not i["note"]]
    extra = [c for c in ("unknown", "silence") if c not in shown and any(s["label"] == c for s in answer["segments"])]
    assert [i["cls"] for i in entries] == shown + extra
    colours = {i["cls"]: i["colour"] for i in entries if i["cls"] in shown}
    assert len(set(colours.values())) == len(shown), colours  # no two shown classes share a colour
    notes = [i["text"] for i in items if i["note"]]
    assert notes == [f"{len(answer['probabilities']) - len(shown)} less likely not shown"]
    lines = pg.eval_on_selector_all("#timeline path[data-class]",
                                    "ps => ps.map(p => [p.dataset.class, getComputedStyle(p).stroke])")
    assert lines and {c for c, _ in lines} <= set(shown)
    assert all(colours[c] == stroke for c, stroke in lines)
    return shown


def test_long_recording_shows_a_timeline(page, rendered_data, model, tmp_path):
    parts = [sf.read(str(p), dtype="float32")[0] for label in ("flute", "cello", "trumpet")
             for p in sorted(rendered_data.glob(f"{label}_*.wav"))[:3]]
    long = write(tmp_path / "flute_cello_trumpet.wav", np.concatenate(parts))
    want = model.predict_file(long)
    with page.expect_response("**/v1/predict") as response:
        page.set_input_files("#file-input", str(long))
    wait_for_result(page, long.name)
    answer = response.value.json()
    assert page.is_visible("#timeline-figure")
    assert page.text_content("#result-label") == want.label
    labels = page.locator("#timeline g.segment").evaluate_all("gs => gs.map(g => g.dataset.label)")
    assert labels == [s.label for s in want.segments] and len(labels) >= 2
    assert page.locator("#timeline path[data-class]").count() >= 2
    # the shipped model's 32 classes: only the 8 likeliest drawn and named, each its own colour
    assert len(model.classes) > 10
    check_legend(page, answer)
    shoot(page, "webpage-timeline.png")


def test_many_instruments_heard_each_get_a_colour(page, model, tmp_path):
    """A multi-label answer hearing more instruments than the palette has colours (among them
    classes 0 and 10 of the model, which shared one when colours went by class index): all of them
    drawn and named, each in its own colour in the piano-roll and the legend, the rest left out."""
    import json

    rng = np.random.default_rng(1)
    heard = [model.classes[i] for i in (0, 10, 20, 1, 11, 21, 2, 12, 22, 3, 13)]
    starts = [0.0, 1.5, 3.0, 4.5]
    windows = []
    for a in starts:
        probs = {c: float(rng.uniform(0.0, 0.3)) for c in model.classes}
        probs.update({c: float(rng.uniform(0.6, 1.0)) for c in heard})
        windows.append({"start": a, "end": a + 3.0, "label": heard[0], "active": heard, "silent": False,
                        "probabilities": probs})
    best = {c: max(w["probabilities"][c] for w in windows) for c in model.classes}
    heard.sort(key=lambda c: -best[c])
    answer = {"path": "many.wav", "label": heard[0], "probabilities": best, "duration": 7.5, "window": 3.0,
              "hop": 1.5, "windows": windows, "segments": [{"start": 0.0, "end": 7.5, "label": heard[0],
                                                            "probability": best[heard[0]]}],
              "instruments": [{"label": c, "family": "unknown", "probability": best[c],
                               "segments": [{"start": 0.0, "end": 7.5}]} for c in heard]}
    page.route("**/v1/predict", lambda route: route.fulfill(status=200, content_type="application/json",
                                                            body=json.dumps(answer)))
    clip = write(tmp_path / "many.wav", 0.1 * np.sin(np.arange(SR) * 0.05).astype(np.float32))
    page.set_input_files("#file-input", str(clip))
    wait_for_result(page, clip.name)
    shown = check_legend(page, answer)
    assert shown == heard  # more heard than SHOWN_CLASSES: every one of them, nothing else
    legend = {i["cls"]: i["colour"] for i in page.evaluate(LEGEND) if i["cls"]}
    notes = page.eval_on_selector_all("#pianoroll g.track", """gs => gs.map(g => [g.dataset.label,
        getComputedStyle(g.querySelector('rect.note')).fill])""")
    assert [c for c, _ in notes] == heard
    assert all(legend[c] == fill for c, fill in notes)


def test_doubt_says_not_an_instrument_i_know(browser, model, tmp_path):
    """With a threshold no answer reaches, the page says so instead of naming an instrument."""
    noise = write(tmp_path / "noise.wav", (0.1 * np.random.default_rng(0).standard_normal(SR * 2)).astype(np.float32))
    with running(create_app(model.with_options(min_confidence=1.0))) as url:
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        pg = context.new_page()
        pg.set_default_timeout(PAGE_TIMEOUT_MS)
        pg.goto(url + "/")
        pg.wait_for_function("document.getElementById('model-info').textContent.startsWith('Model')")
        pg.set_input_files("#file-input", str(noise))
        wait_for_result(pg, noise.name)
        assert pg.text_content("#result-label") == "Not an instrument I know"
        assert pg.get_attribute("#result", "data-label") == "unknown"
        assert "closest:" in pg.text_content("#result-prob") and pg.text_content("#result-family") == ""
        assert pg.text_content("#announce").startswith("Not an instrument I know; closest: ")  # not "know closest"
        shoot(pg, "webpage-unknown.png")
        context.close()


def test_refused_file_shows_the_error(page, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a recording")
    page.set_input_files("#file-input", str(notes))
    page.wait_for_selector("#error:not([hidden])")
    assert "notes.txt" in page.text_content("#error") and ".txt" in page.text_content("#error")
    assert page.is_hidden("#result")
    assert page.is_hidden("#player-card")  # not audio: no dead 0:00 / 0:00 player under the error
    shoot(page, "webpage-error.png")


def test_microphone_recording(page):
    """Chromium's fake microphone (a beep): record about 1.5 s, the page encodes a WAV, uploads it
    and shows a result."""
    page.click("#record-button")
    page.wait_for_function("document.getElementById('record-button').getAttribute('aria-pressed') === 'true'")
    time.sleep(1.5)
    page.click("#record-button")
    page.wait_for_function("document.getElementById('file-name').textContent.startsWith('recording-')")
    wait_for_result(page)
    assert page.is_hidden("#error"), page.text_content("#error")
    assert page.text_content("#result-label")
    seconds = float(page.text_content("#file-duration").strip("() s"))
    assert 1.0 < seconds < 5.0
    shoot(page, "webpage-microphone.png")


# Every microphone stream the page opens, kept so a test can tell whether the page let go of it.
TRACK_STREAMS = """() => {
  window.__streams = [];
  const real = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = async (c) => { const s = await real(c); window.__streams.push(s); return s; };
}"""
ALL_ENDED = "() => window.__streams.every((s) => s.getTracks().every((t) => t.readyState === 'ended'))"


def test_failed_recording_start_lets_go_of_the_microphone(page):
    page.evaluate(TRACK_STREAMS)
    page.evaluate("() => { AudioWorklet.prototype.addModule = () => Promise.reject(new Error('worklet refused')); }")
    page.click("#record-button")
    page.wait_for_selector("#error:not([hidden])")
    assert "worklet refused" in page.text_content("#error")
    assert page.evaluate("() => window.__streams.length") == 1
    assert page.evaluate(ALL_ENDED), "the microphone is still on after the recording failed to start"
    assert page.get_attribute("#record-button", "aria-pressed") == "false" and page.is_enabled("#record-button")


def test_double_click_on_record_opens_one_microphone(page):
    page.evaluate(TRACK_STREAMS)
    page.evaluate("() => { const b = document.getElementById('record-button'); b.click(); b.click(); }")
    page.wait_for_function("document.getElementById('record-button').getAttribute('aria-pressed') === 'true'")
    time.sleep(0.5)
    page.click("#record-button")
    page.wait_for_function("document.getElementById('file-name').textContent.startsWith('recording-')")
    wait_for_result(page)
    assert page.evaluate("() => window.__streams.length") == 1
    assert page.evaluate(ALL_ENDED), "a microphone stream is still on after Stop"


def test_keyboard_focus_on_the_file_input_is_visible(page):
    """The file input sits off screen behind its label: tabbing to it must show on the label."""
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.id") == "file-input":
            break
    assert page.evaluate("() => document.activeElement.id") == "file-input"
    outline = page.evaluate("() => getComputedStyle(document.querySelector('label[for=file-input]')).outlineStyle")
    assert outline not in ("none", ""), outline


def test_nothing_recorded_leaves_the_file_input_usable(page):
    # a microphone that never delivers a sample: no worklet, and a processor that never runs
    page.evaluate("""() => { window.AudioWorkletNode = undefined;
      AudioContext.prototype.createScriptProcessor = function () { return this.createGain(); }; }""")
    page.click("#record-button")
    page.wait_for_function("document.getElementById('record-button').getAttribute('aria-pressed') === 'true'")
    assert page.is_disabled("#file-input")
    page.click("#record-button")
    page.wait_for_selector("#error:not([hidden])")
    assert "Nothing was recorded" in page.text_content("#error")
    assert page.is_enabled("#file-input") and page.is_enabled("#record-button")


# ---------------------------------------------------------------------------------------------
# What a user reads: a long recording whose instrument changes, on a phone, with a screen reader


def changing_answer(classes: list[str]) -> dict:
    """The server's JSON for 24 s of flute, 6 s of silence, then cello (a long recording whose
    average names the cello, 39.5%)."""
    def probs(top: str | None, p: float) -> dict:
        rest = (1 - p) / (len(classes) - 1)
        return {c: (p if c == top else rest) for c in classes}

    windows = []
    for k in range(15):
        a = 1.5 * k
        label = "flute" if a < 7.5 else "silence" if a < 13.5 else "cello"
        w = {"start": a, "end": a + 3.0, "label": label, "silent": label == "silence"}
        if label != "silence":
            w["probabilities"] = probs(label, 0.7)
        windows.append(w)
    overall = probs("cello", 0.395)
    overall["flute"] = 0.296
    return {"path": "changing.wav", "label": "cello", "family": "bowed-strings", "probabilities": overall,
            "family_probabilities": {"bowed-strings": 0.481, "woodwinds": 0.438, "brass": 0.081},
            "duration": 24.0, "window": 3.0, "hop": 1.5, "windows": windows,
            "segments": [{"start": 0.0, "end": 9.0, "label": "flute", "probability": 0.69},
                         {"start": 9.0, "end": 15.0, "label": "silence", "probability": None},
                         {"start": 15.0, "end": 24.0, "label": "cello", "probability": 0.78}],
            "top": [["cello", 0.395], ["flute", 0.296]]}


@pytest.fixture
def changing(page, model, tmp_path):
    """The page showing :func:`changing_answer` (the server's answer replaced, the upload real)."""
    import json

    answer = changing_answer(list(model.classes))
    page.route("**/v1/predict", lambda route: route.fulfill(status=200, content_type="application/json",
                                                            body=json.dumps(answer)))
    clip = write(tmp_path / "changing.wav", 0.1 * np.sin(np.arange(SR) * 0.05).astype(np.float32))
    page.set_input_files("#file-input", str(clip))
    wait_for_result(page, clip.name)
    return answer


def test_the_verdict_reads_as_one_line_on_a_phone(page, changing):
    """On a phone-sized window the verdict wraps as a sentence: no piece of it ("Perhaps a",
    "39.5% on average over 12 windows") squeezed into a narrow column of one word a line."""
    page.set_viewport_size({"width": 375, "height": 800})
    full = page.eval_on_selector("#verdict", "e => e.getBoundingClientRect().width")
    for part in ("#result-lead", "#result-label", "#result-family", "#result-prob"):
        lines, width = page.eval_on_selector(part, """e => [e.getBoundingClientRect().height /
            parseFloat(getComputedStyle(e).fontSize), e.getBoundingClientRect().width]""")
        # one line, or wrapped only where the line is full
        assert lines < 1.8 or width > 0.95 * full, f"{part} ({page.text_content(part)!r}) takes " \
            f"{lines:.1f} font sizes of height in {width:.0f} of {full:.0f} px"
    shoot(page, "webpage-phone.png")


def test_a_changing_recording_says_so_in_words(page, changing):
    """The verdict names the likeliest instrument on average; when the timeline shows others, a
    line says which, and the timeline and the bars carry their content for a screen reader."""
    assert page.text_content("#result-label") == "cello"
    assert page.text_content("#over-time") == "Changes over time: flute 0 s–9 s, cello 15 s–24 s (see the timeline)"
    timeline = page.get_attribute("#timeline", "aria-label")
    assert "flute 0 s–9 s" in timeline and "silence 9 s–15 s" in timeline and "cello 15 s–24 s" in timeline
    bars = page.get_attribute("#bars", "aria-label")
    assert bars.startswith("class probabilities: cello 39.5%, flute 29.6%"), bars


def test_the_answer_is_announced(page, changing):
    """The status line ("Listening to ...") empties when the answer comes: a screen reader must
    hear the answer itself, from a live region that was on the page before it came."""
    said = page.text_content("#announce")
    assert said.startswith("Perhaps a cello (bowed strings), 39.5%") and ". Changes over time: flute" in said, said
    assert page.get_attribute("#announce", "aria-live") == "polite"
    assert page.is_hidden("#over-time") is False


def test_a_file_dropped_while_busy_is_not_lost_in_silence(page, tmp_path):
    """A second recording dropped while the first is still being listened to is not sent: the
    page says so, naming it, instead of doing nothing."""
    held = []
    page.route("**/v1/predict", lambda route: held.append(route))
    clip = write(tmp_path / "first.wav", 0.1 * np.sin(np.arange(SR) * 0.05).astype(np.float32))
    page.set_input_files("#file-input", str(clip))
    page.wait_for_function("document.getElementById('status').textContent.startsWith('Listening')")
    page.evaluate("""() => { const dt = new DataTransfer();
      dt.items.add(new File(['RIFF'], 'second.wav', { type: 'audio/wav' }));
      document.getElementById('dropzone').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true })); }""")
    page.wait_for_selector("#error:not([hidden])")
    assert "second.wav" in page.text_content("#error") and "again" in page.text_content("#error")
    assert page.text_content("#file-name") == "first.wav"
    assert len(held) == 1
    held[0].abort()
