"""Per-instrument timelines in the service and its web page (issue 27): a multi-label model's
``instruments`` (who plays when) and windows' ``active`` through the real HTTP server, and the
page's piano-roll in headless Chromium.

The model is ``multilabel_model`` (a cnn-multi trained on tone mixtures: saw, sine, square) and
the recording ``duet_recording`` (12 s: sine, then sine and saw, then saw). A model this small
need not hear the duet right, so the answers are checked against what the library says for the
same file, and for their shape: the service must carry the timeline, not improve on it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from conftest import open_page, write  # noqa: E402

from instrec.service import create_app, running  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "build" / "test-artifacts"
# The same browser, flags and skips as test_webpage.py.
DUET_SECONDS = 12.0


# ---------------------------------------------------------------------------------------------
# Fixtures: the multi-label model behind a real server


@pytest.fixture(scope="module")
def ml_model(multilabel_model):
    import instrec

    model = instrec.load_model(multilabel_model)
    assert model.multilabel
    return model


@pytest.fixture(scope="module")
def ml_url(ml_model, tmp_path_factory):
    with running(create_app(ml_model, tmp_dir=tmp_path_factory.mktemp("ml-uploads"))) as url:
        yield url


@pytest.fixture(scope="module")
def ml_server(ml_url):
    with httpx.Client(base_url=ml_url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def duet_answer(ml_server, duet_recording) -> dict:
    r = post(ml_server, duet_recording)
    assert r.status_code == 200, r.text
    return r.json()


def post(client, path: Path, **fields):
    return client.post("/v1/predict", files={"file": (path.name, path.read_bytes(), "audio/wav")},
                       data={k: str(v) for k, v in fields.items()})


def check_tracks(instruments: list[dict], classes: list[str], thresholds: dict[str, float], duration: float) -> None:
    """Each track: a class of the model, over its threshold, its segments in order inside the
    recording; the likeliest first."""
    probs = [t["probability"] for t in instruments]
    assert probs == sorted(probs, reverse=True)
    assert len({t["label"] for t in instruments}) == len(instruments)
    for t in instruments:
        assert set(t) == {"label", "family", "probability", "segments"}
        assert t["label"] in classes and t["probability"] >= thresholds[t["label"]] - 1e-6
        assert t["segments"], t
        ends = [0.0]
        for s in t["segments"]:
            assert set(s) == {"start", "end"}
            assert ends[-1] <= s["start"] < s["end"] <= duration + 1e-6, t
            ends.append(s["end"])


# ---------------------------------------------------------------------------------------------
# The API


def test_model_info_reports_multilabel_and_thresholds(ml_server, ml_model):
    body = ml_server.get("/v1/model").json()
    assert body["multilabel"] is True
    assert body["classes"] == ml_model.classes == ["saw", "sine", "square"]
    assert body["thresholds"] == pytest.approx(ml_model.info["thresholds"])
    assert set(body["thresholds"]) == set(ml_model.classes)
    assert all(0 <= p <= 1 for p in body["thresholds"].values())


def test_duet_answer_has_instruments_with_segments(duet_answer, ml_model, duet_recording):
    got = duet_answer
    thresholds = ml_model.info["thresholds"]
    assert got["path"] == duet_recording.name and got["duration"] == pytest.approx(DUET_SECONDS, abs=1e-3)
    assert got["instruments"], "the model heard nothing in the duet"
    check_tracks(got["instruments"], ml_model.classes, thresholds, got["duration"])
    # what the library says for the same file, carried whole (no field dropped or renamed)
    want = ml_model.predict_file(duet_recording).to_dict()
    assert [t["label"] for t in got["instruments"]] == [t["label"] for t in want["instruments"]]
    for g, w in zip(got["instruments"], want["instruments"]):
        assert g["family"] == w["family"] and g["probability"] == pytest.approx(w["probability"], abs=1e-5)
        assert g["segments"] == w["segments"]
    assert got["label"] == want["label"] and [c for c, _ in got["top"]][0] == max(got["probabilities"],
                                                                                   key=got["probabilities"].get)


def test_duet_windows_list_the_active_instruments(duet_answer, ml_model):
    got = duet_answer
    thresholds = ml_model.info["thresholds"]
    assert got["window"] and got["hop"] and len(got["windows"]) >= 3
    heard_anywhere = set()
    for w in got["windows"]:
        assert isinstance(w["active"], list) and set(w["active"]) <= set(ml_model.classes)
        assert 0 <= w["start"] < w["end"] <= got["duration"] + 1e-6
        if w["silent"]:
            assert w["active"] == []
            continue
        # active: exactly the instruments over their thresholds in that window
        assert w["active"] == [c for c in ml_model.classes if w["probabilities"][c] >= thresholds[c]], w
        heard_anywhere |= set(w["active"])
    assert {t["label"] for t in got["instruments"]} == heard_anywhere
    # each track plays around the centre of every window where it is active
    for t in got["instruments"]:
        for w in got["windows"]:
            if t["label"] in w["active"]:
                centre = (w["start"] + w["end"]) / 2
                assert any(s["start"] <= centre <= s["end"] for s in t["segments"]), (t, w)


def test_short_recording_has_one_segment_per_instrument(ml_server, ml_model, duet_recording, tmp_path):
    """A clip short enough for one window: no windows, each instrument heard over all of it."""
    y, sr = sf.read(str(duet_recording), dtype="float32")
    clip = write(tmp_path / "sine_3s.wav", y[: 3 * sr], sr)
    r = post(ml_server, clip)
    assert r.status_code == 200, r.text
    got = r.json()
    assert "windows" not in got and isinstance(got["instruments"], list)
    check_tracks(got["instruments"], ml_model.classes, ml_model.info["thresholds"], got["duration"])
    for t in got["instruments"]:
        assert t["segments"] == [{"start": 0.0, "end": pytest.approx(got["duration"], abs=1e-3)}]
    want = ml_model.predict_file(clip)
    assert [t["label"] for t in got["instruments"]] == [t.label for t in want.instruments]


def test_restricted_classes_keep_instruments_among_them(ml_server, ml_model, duet_recording):
    r = post(ml_server, duet_recording, classes="saw,sine")
    assert r.status_code == 200, r.text
    got = r.json()
    assert set(got["probabilities"]) == {"saw", "sine"}
    assert {t["label"] for t in got["instruments"]} <= {"saw", "sine"}
    assert all(set(w["active"]) <= {"saw", "sine"} for w in got["windows"])
    check_tracks(got["instruments"], ["saw", "sine"], ml_model.info["thresholds"], got["duration"])


def test_openapi_describes_instruments(ml_server):
    op = ml_server.get("/openapi.json").json()["paths"]["/v1/predict"]["post"]
    assert "instruments" in op["description"] and "active" in op["description"]
    example = op["responses"]["200"]["content"]["application/json"]["examples"]["multi-label"]["value"]
    check_tracks(example["instruments"], list(example["probabilities"]), {c: 0.0 for c in example["probabilities"]},
                 example["duration"])


def test_single_label_model_is_unchanged(duet_recording, tmp_path):
    """The shipped (single-label) model: no instruments, no active, multilabel false."""
    import instrec

    model = instrec.load_model()
    with running(create_app(model, tmp_dir=tmp_path)) as url, httpx.Client(base_url=url, timeout=60) as c:
        info = c.get("/v1/model").json()
        assert info["multilabel"] is False and "thresholds" not in info
        r = post(c, duet_recording)
        assert r.status_code == 200, r.text
        got = r.json()
    assert "instruments" not in got and all("active" not in w for w in got["windows"])
    want = model.predict_file(duet_recording).to_dict()
    assert set(got) == set(want) | {"top"} and got["label"] == want["label"]


# ---------------------------------------------------------------------------------------------
# The web page: the piano-roll


@pytest.fixture
def ml_page(browser, ml_url):
    context, pg, problems = open_page(browser, ml_url)
    yield pg
    context.close()
    assert not problems, problems


def upload(pg, path: Path) -> None:
    pg.set_input_files("#file-input", str(path))
    pg.wait_for_function(f"document.getElementById('file-name').textContent === {path.name!r}")
    pg.wait_for_selector("#result:not([hidden])")
    pg.wait_for_function("document.getElementById('status').textContent === ''")


def shoot(pg, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_page_draws_a_piano_roll(ml_page, ml_model, duet_recording):
    want = ml_model.predict_file(duet_recording)
    assert want.instruments, "the model heard nothing in the duet"
    pg = ml_page
    assert "hears several at once" in pg.text_content("#model-info")
    upload(pg, duet_recording)
    assert pg.is_hidden("#error") and pg.is_visible("#pianoroll-figure")
    assert pg.is_hidden("#pianoroll-empty")
    # one row per instrument heard, the likeliest first, named in text with its probability
    rows = pg.locator("#pianoroll g.track")
    assert rows.evaluate_all("gs => gs.map(g => g.dataset.label)") == [t.label for t in want.instruments]
    svg = pg.eval_on_selector("#pianoroll", "s => { const r = s.getBoundingClientRect(); return [r.x, r.width]; }")
    for i, t in enumerate(want.instruments):
        row = rows.nth(i)
        label = row.locator("text.track-label").text_content()
        assert label.startswith(t.label) and "%" in label
        # a bar per segment, where the segment is on the time axis
        bars = row.locator("rect.note")
        assert bars.count() == len(t.segments)
        for j, (a, b) in enumerate(t.segments):
            bar = bars.nth(j)
            assert float(bar.get_attribute("data-start")) == pytest.approx(a, abs=1e-3)
            assert float(bar.get_attribute("data-end")) == pytest.approx(b, abs=1e-3)
            box = bar.bounding_box()
            assert box["x"] - svg[0] == pytest.approx(svg[1] * a / want.duration, abs=2)
            assert box["width"] == pytest.approx(svg[1] * (b - a) / want.duration, abs=2)
            assert t.label in bar.locator("title").text_content()
    # the verdict names every instrument heard; the bars mark each one's threshold
    verdict = pg.text_content("#result-label")
    assert all(t.label in verdict for t in want.instruments)
    assert pg.text_content("#result-lead") == "Heard"
    assert pg.locator("#bars line.threshold").count() == len(ml_model.classes)
    # the piano-roll shares the timeline's time axis: same left edge and width
    assert pg.is_visible("#timeline-figure")
    timeline = pg.eval_on_selector("#timeline", "s => { const r = s.getBoundingClientRect(); return [r.x, r.width]; }")
    assert timeline == pytest.approx(svg, abs=1)
    aria = pg.get_attribute("#pianoroll", "aria-label")
    assert all(t.label in aria for t in want.instruments)
    shoot(pg, "webpage-pianoroll.png")


def test_page_says_no_instrument_heard(ml_page, duet_answer, duet_recording):
    """The server's own answer with nothing heard in it (this small model hears something in any
    recording loud enough to be predicted): the page says so instead of drawing rows. The answer
    is fetched beforehand: Playwright's route.fetch() would forward the upload without its file."""
    import json

    answer = {**duet_answer, "instruments": [], "label": "unknown",
              "windows": [{**w, "active": []} for w in duet_answer["windows"]]}

    def nothing_heard(route):
        route.fulfill(status=200, content_type="application/json", body=json.dumps(answer))

    pg = ml_page
    pg.route("**/v1/predict", nothing_heard)
    upload(pg, duet_recording)
    assert pg.is_visible("#pianoroll-figure") and pg.is_visible("#pianoroll-empty")
    assert "no instrument heard" in pg.text_content("#pianoroll-empty").lower()
    assert pg.is_hidden("#pianoroll-wrap") and pg.locator("#pianoroll g.track").count() == 0
    assert pg.text_content("#result-label") == "No instrument heard"
    assert "closest:" in pg.text_content("#result-prob")
    shoot(pg, "webpage-pianoroll-nothing.png")


def test_page_single_label_has_no_piano_roll(browser, duet_recording):
    import instrec

    with running(create_app(instrec.load_model())) as url:
        context, pg, problems = open_page(browser, url)
        upload(pg, duet_recording)
        assert pg.is_hidden("#pianoroll-figure") and pg.is_visible("#timeline-figure")
        assert pg.text_content("#bars-caption") == "Class probabilities"
        assert pg.locator("#bars line.threshold").count() == 0
        assert pg.text_content("#result-lead") in ("Probably a", "Probably an", "Perhaps a", "Perhaps an", "")
        assert "hears several" not in pg.text_content("#model-info")
        context.close()
    assert not problems, problems
