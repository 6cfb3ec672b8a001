"""``instrec predict`` with a multi-label model, run as a user runs it: who plays when, in the
table, CSV, JSON (also resumed from --log) and the --plot piano-roll.

The duet (conftest.duet_recording): sine alone 0-4 s, sine and saw 4-8 s, saw alone 8-12 s. The
little model also hears a square over the saw, so the tests check the sine and the saw, and that
every output says what the JSON says."""

from __future__ import annotations

import csv
import io
import json
import shutil

import numpy as np
import pytest
import soundfile as sf
from conftest import run_cli

CLASSES = ["saw", "sine", "square"]


def cells(table: str) -> list[list[str]]:
    """The rows of a rich table's body as lists of stripped cells, the header left out."""
    body = table.split("┡", 1)[1]
    return [[c.strip() for c in line.split("│")[1:-1]] for line in body.splitlines() if line.startswith("│")]


def same_tracks(a: list[dict], b: list[dict]) -> bool:
    """The same instruments, families and segments; probabilities from two processes within 1e-4."""
    strip = lambda ts: [{k: v for k, v in t.items() if k != "probability"} for t in ts]  # noqa: E731
    return strip(a) == strip(b) and [t["probability"] for t in a] == pytest.approx([t["probability"] for t in b], abs=1e-4)


def clock(seconds: float) -> str:
    """The table's time (m:ss.s), written independently of instrec.display.clock."""
    tenths = round(seconds * 10)
    return f"{tenths // 600}:{tenths % 600 // 10:02d}.{tenths % 10}"


@pytest.fixture(scope="module")
def duet_json(multilabel_model, duet_recording) -> dict:
    r = run_cli("predict", multilabel_model, duet_recording, "--format", "json")
    assert r.returncode == 0, r.stderr
    (res,) = json.loads(r.stdout)
    return res


def test_json_has_instruments_and_active_windows(duet_json, multilabel_model):
    res = duet_json
    tracks = {t["label"]: t for t in res["instruments"]}
    assert set(tracks) <= set(CLASSES) and {"sine", "saw"} <= set(tracks)
    # the file's answer is the set heard with their times: the sine from the start, the saw to the end
    sine, saw = tracks["sine"]["segments"], tracks["saw"]["segments"]
    assert sine[0]["start"] == 0.0 and 4.0 <= sine[-1]["end"] <= 10.5  # it plays 0-8 s; windows are 3 s
    assert saw[-1]["end"] == 12.0 and saw[0]["start"] >= 1.5
    thresholds = json.loads((multilabel_model / "model.json").read_text())["thresholds"]
    assert len(res["windows"]) == 7
    for w in res["windows"]:  # each window's active set: the instruments over their thresholds
        assert w["active"] == [c for c in CLASSES if w["probabilities"][c] >= thresholds[c]]
    # a window of the sine alone, and one where several instruments play at once (which ones is the
    # little model's to get right: on one CPU it hears the sine under the saw, on another the square)
    assert any("sine" in w["active"] and "saw" not in w["active"] for w in res["windows"])
    assert any(len(w["active"]) >= 2 for w in res["windows"])


def test_min_confidence_is_a_floor_under_the_thresholds(duet_json, multilabel_model, duet_recording):
    """--min-confidence P: an instrument is active where p >= max(its threshold, P), so fewer are heard."""
    thresholds = json.loads((multilabel_model / "model.json").read_text())["thresholds"]
    heard = sorted(w["probabilities"][c] for w in duet_json["windows"] for c in w["active"])
    floor = round((heard[0] + heard[-1]) / 2, 3)  # between the least and the most certain instrument heard
    r = run_cli("predict", multilabel_model, duet_recording, "--format", "json", "--min-confidence", str(floor))
    assert r.returncode == 0, r.stderr
    (res,) = json.loads(r.stdout)
    for w in res["windows"]:
        assert w["active"] == [c for c in CLASSES if w["probabilities"][c] >= max(thresholds[c], floor)]
    assert sum(map(len, (w["active"] for w in res["windows"]))) < len(heard)
    assert all(t["probability"] >= floor for t in res["instruments"])


def test_segments_and_tracks_cut_at_the_same_instants(duet_json):
    """The label's segments and each instrument's segments both cut halfway between window centres."""
    from instrec.timeline import window_tiles

    tiles = window_tiles([(w["start"], w["end"]) for w in duet_json["windows"]], duet_json["duration"])
    edges = {round(float(t), 4) for t in tiles.ravel()}
    cuts = [(s["start"], s["end"]) for s in duet_json["segments"]]
    cuts += [(s["start"], s["end"]) for t in duet_json["instruments"] for s in t["segments"]]
    assert len(duet_json["segments"]) > 1 and all(a in edges and b in edges for a, b in cuts), (cuts, edges)


def test_table_lists_instruments_heard_with_times(duet_json, multilabel_model, duet_recording):
    r = run_cli("predict", multilabel_model, duet_recording)
    assert r.returncode == 0, r.stderr
    files, when = r.stdout.split("\n\n", 1)
    rows = cells(files)
    assert [row[0] for row in rows] == [str(duet_recording)] + [""] * (len(rows) - 1)  # one file, a row per instrument
    # not one averaged label with runners-up: every instrument heard, its probability and its segments
    assert "#2" not in files and "when" in files
    expected = [[t["label"], t["family"], f"{t['probability']:.2f}",
                 ", ".join(f"{clock(s['start'])}-{clock(s['end'])}" for s in t["segments"])]
                for t in duet_json["instruments"]]
    assert [row[1:] for row in rows] == expected
    sine = next(row for row in rows if row[1] == "sine")
    assert sine[4].startswith("0:00.0-")
    # then who plays when: the runs tile the recording, and a run where several play names them all
    assert "7 windows of 3 s, hop 1.5 s" in when
    runs = cells(when)
    assert runs[0][0] == "0:00.0" and runs[-1][1] == "0:12.0"
    assert all(a[1] == b[0] for a, b in zip(runs, runs[1:]))
    assert runs[0][2] == "sine"
    together = [w["active"] for w in duet_json["windows"] if len(w["active"]) >= 2]
    assert together and any(run[2].split(", ") == together[0] for run in runs)


def test_csv_one_row_per_window(duet_json, multilabel_model, duet_recording, tmp_path):
    r = run_cli("predict", multilabel_model, duet_recording, "--format", "csv")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    header = r.stdout.splitlines()[0].split(",")
    assert header[:5] == ["path", "start", "end", "active", "silent"]
    assert header[5:8] == [f"p_{c}" for c in CLASSES]
    assert len(rows) == len(duet_json["windows"]) == 7
    for row, w in zip(rows, duet_json["windows"]):
        assert row["path"] == str(duet_recording)
        assert (float(row["start"]), float(row["end"])) == pytest.approx((w["start"], w["end"]), abs=1e-3)
        assert row["active"] == ";".join(w["active"])
        for c in CLASSES:
            # another process: MKL may split a sum over fewer threads under load (seen: 4e-5)
            assert float(row[f"p_{c}"]) == pytest.approx(w["probabilities"][c], abs=1e-4)
    assert rows[0]["active"] == "sine" and rows[-1]["active"].split(";") >= ["saw"]

    # a short recording has no windows: one row for the file, its instruments heard
    y, sr = sf.read(duet_recording, dtype="float32")
    short = tmp_path / "sine3.wav"
    sf.write(short, y[: 3 * sr], sr)
    ref = json.loads(run_cli("predict", multilabel_model, short, "--format", "json").stdout)[0]
    assert "windows" not in ref and ref["instruments"]
    r = run_cli("predict", multilabel_model, short, "--format", "csv")
    assert r.returncode == 0, r.stderr
    (row,) = list(csv.DictReader(io.StringIO(r.stdout)))
    assert (row["start"], row["end"]) == ("0.000", "3.000")
    assert row["active"].split(";") == [c for c in CLASSES if c in {t["label"] for t in ref["instruments"]}]
    assert "sine" in row["active"].split(";")


def test_resumed_log_reproduces_instruments_and_active(duet_json, multilabel_model, duet_recording, tmp_path):
    log = tmp_path / "results.jsonl"
    first = run_cli("predict", multilabel_model, duet_recording, "--format", "json", "--log", log)
    assert first.returncode == 0, first.stderr
    (line,) = log.read_text().splitlines()
    assert same_tracks(json.loads(line)["instruments"], duet_json["instruments"])
    assert [w["active"] for w in json.loads(line)["windows"]] == [w["active"] for w in duet_json["windows"]]
    again = run_cli("predict", multilabel_model, duet_recording, "--format", "json", "--log", log)
    assert again.returncode == 0, again.stderr
    assert len(log.read_text().splitlines()) == 1  # read back from the log, not predicted again
    assert json.loads(again.stdout) == json.loads(first.stdout)
    assert same_tracks(json.loads(again.stdout)[0]["instruments"], duet_json["instruments"])
    table = run_cli("predict", multilabel_model, duet_recording, "--log", log)  # the table from the log too
    assert [row[1] for row in cells(table.stdout.split("\n\n")[0])] == [t["label"] for t in duet_json["instruments"]]


def bar_columns(img: np.ndarray, colour: str) -> np.ndarray:
    """The x of the picture's columns holding a tall run of ``colour`` (a piano-roll bar, not the
    thin probability line or its dots of the same colour)."""
    rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    return np.flatnonzero((np.all(img[:, :, :3] == rgb, axis=2)).sum(axis=0) >= 20)


def test_plot_draws_a_piano_roll(duet_json, multilabel_model, duet_recording, tmp_path):
    from PIL import Image

    out = tmp_path / "duet.png"
    r = run_cli("predict", multilabel_model, duet_recording, "--plot", out)
    assert r.returncode == 0, r.stderr
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and 20_000 < len(data) < 2_000_000
    img = np.asarray(Image.open(out).convert("RGB"))
    assert img.shape[1] == 1000 and 700 <= img.shape[0] <= 900  # 10 in wide, taller than a plot without a roll
    # matplotlib's first colours, in the order of the instruments heard (the likeliest first)
    colour = dict(zip([t["label"] for t in duet_json["instruments"]], ("#1f77b4", "#ff7f0e", "#2ca02c")))
    saw, sine = bar_columns(img, colour["saw"]), bar_columns(img, colour["sine"])
    assert len(saw) and len(sine)
    assert sine[0] < saw[0] and sine[-1] < saw[-1]  # the sine starts first, the saw plays to the end
    span = {t["label"]: t["segments"][-1]["end"] - t["segments"][0]["start"] for t in duet_json["instruments"]}
    assert (sine[-1] - sine[0]) / (saw[-1] - saw[0]) == pytest.approx(span["sine"] / span["saw"], rel=0.05)


def test_no_instrument_heard(multilabel_model, duet_recording, tmp_path):
    model = tmp_path / "deaf"
    shutil.copytree(multilabel_model, model)
    meta = json.loads((model / "model.json").read_text())
    meta["thresholds"] = {c: 1.0 for c in CLASSES}  # no probability reaches 1: nothing is heard
    (model / "model.json").write_text(json.dumps(meta))
    res = json.loads(run_cli("predict", model, duet_recording, "--format", "json").stdout)[0]
    assert res["instruments"] == [] and all(w["active"] == [] for w in res["windows"])
    r = run_cli("predict", model, duet_recording)
    assert r.returncode == 0, r.stderr
    assert cells(r.stdout.split("\n\n")[0]) == [[str(duet_recording), "no instrument heard", "", "", ""]]
    assert [run[2] for run in cells(r.stdout.split("\n\n", 1)[1])] == ["none"]
    r = run_cli("predict", model, duet_recording, "--format", "csv", "--plot", tmp_path / "deaf.png")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == 7 and all(row["active"] == "" for row in rows)
    assert (tmp_path / "deaf.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


FAMILIES = {"smooth": ["sine"], "buzzy": ["saw", "square"]}


@pytest.fixture(scope="module")
def family_model(multilabel_model, tmp_path_factory):
    """The multi-label model with two families: the sine alone, the saw with the square."""
    model = tmp_path_factory.mktemp("families") / "model"
    shutil.copytree(multilabel_model, model)
    meta = json.loads((model / "model.json").read_text())
    meta["families"] = FAMILIES
    (model / "model.json").write_text(json.dumps(meta))
    return model


def union(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def test_family_level_table_and_csv_list_families(family_model, duet_recording, tmp_path):
    """--level family: the table lists the families heard (their probability, when they play) and
    who plays when by family; the CSV's active column names families, as its p_ columns do; the
    picture draws them (it raised a KeyError on the instruments' names)."""
    res = json.loads(run_cli("predict", family_model, duet_recording, "--level", "family", "--format", "json").stdout)[0]
    assert set(res["probabilities"]) == set(FAMILIES)
    family_of = {c: f for f, members in FAMILIES.items() for c in members}
    members = {}
    for t in res["instruments"]:
        members.setdefault(family_of[t["label"]], []).extend((s["start"], s["end"]) for s in t["segments"])
    assert {"smooth", "buzzy"} <= set(members)
    expected = sorted(([f, f"{res['probabilities'][f]:.2f}", ", ".join(f"{clock(a)}-{clock(b)}" for a, b in union(s))]
                       for f, s in members.items()), key=lambda row: -float(row[1]))

    r = run_cli("predict", family_model, duet_recording, "--level", "family", "--plot", tmp_path / "families.png")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "families.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    files, when = r.stdout.split("\n\n", 1)
    assert "instrument" not in files.split("┡")[0] and "family" in files.split("┡")[0]
    assert [row[1:] for row in cells(files)] == expected
    runs = cells(when)
    assert "instruments" not in when and {w for run in runs for w in run[2].split(", ")} <= {*FAMILIES, "none", "silence"}
    assert any(run[2] == "buzzy, smooth" for run in runs)  # the sine and the saw together

    r = run_cli("predict", family_model, duet_recording, "--level", "family", "--format", "csv")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    order = list(res["probabilities"])
    assert r.stdout.splitlines()[0].split(",")[5:] == [f"p_{f}" for f in order]
    for row, w in zip(rows, res["windows"], strict=True):
        active = {family_of[c] for c in w["active"]}
        assert row["active"] == ";".join(f for f in order if f in active)
    assert any(row["active"] == "buzzy;smooth" for row in rows)


def test_a_span_shorter_than_a_tenth_of_a_second_is_not_shown_empty(multilabel_model, duet_recording, tmp_path):
    model = tmp_path / "hears-all"
    shutil.copytree(multilabel_model, model)
    meta = json.loads((model / "model.json").read_text())
    meta["thresholds"] = {c: 0.0 for c in CLASSES}  # every probability reaches 0: every instrument is heard
    (model / "model.json").write_text(json.dumps(meta))
    y, sr = sf.read(duet_recording, dtype="float32")
    short = tmp_path / "blip.wav"
    sf.write(short, y[: int(0.03 * sr)], sr)
    r = run_cli("predict", model, short)
    assert r.returncode == 0, r.stderr
    rows = cells(r.stdout)
    assert len(rows) == len(CLASSES)
    assert all(row[4] == "0:00.00-0:00.03" for row in rows), rows
