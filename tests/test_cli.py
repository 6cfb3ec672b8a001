"""The command line as a user runs it: real subprocesses, real files, real training."""

import csv
import io
import json
import re
import shutil

import numpy as np
import pytest
import soundfile as sf

from conftest import SR, error_lines, run_cli, tone, write


@pytest.fixture(scope="module")
def messy_data(tone_data, tmp_path_factory):
    """The tone data plus every kind of bad file, mixed in."""
    root = tmp_path_factory.mktemp("messy") / "data"
    shutil.copytree(tone_data, root)
    (root / "sine" / "empty.wav").write_bytes(b"")
    (root / "sine" / "text.wav").write_text("not audio\n" * 50)
    write(root / "saw" / "silent.wav", np.zeros(SR, np.float32))
    write(root / "square" / "nan.wav", np.full(SR, np.nan, np.float32), subtype="FLOAT")
    whole = write(root / "saw" / "whole.wav", tone("saw", 200))
    data = whole.read_bytes()
    whole.unlink()
    (root / "saw" / "truncated.wav").write_bytes(data[: len(data) // 2])
    return root


BAD = ("empty.wav", "text.wav", "silent.wav", "nan.wav", "truncated.wav")


@pytest.fixture(scope="module")
def mfcc_model(messy_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "mfcc"
    r = run_cli("train", messy_data, "--recipe", "seed-mfcc", "--epochs", "150", "--out", out, "--seed", "0")
    assert r.returncode == 0, r.stderr
    return out, r


def test_train_skips_bad_files_and_finishes(mfcc_model):
    out, r = mfcc_model
    assert "test accuracy" in r.stdout
    assert "skipped 5 file(s)" in r.stderr
    for name in BAD:
        assert name in r.stderr
    assert "Traceback" not in r.stderr
    meta = json.loads((out / "model.json").read_text())
    assert meta["classes"] == ["saw", "sine", "square"]
    assert meta["training"]["split"] == {"method": "random", "test_size": 0.2, "seed": 0, "n_train": 24, "n_test": 6}
    assert meta["training"]["data"]["classes"] == {"saw": 10, "sine": 10, "square": 10}
    assert meta["metrics"]["test_split"]["accuracy"] >= 5 / 6


def test_evaluate_on_training_folder_uses_the_test_split(mfcc_model, messy_data, tmp_path):
    out, _ = mfcc_model
    r = run_cli("evaluate", out, messy_data, "--out", tmp_path / "rep")
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert m["n"] == 6 and "held-back test split" in m["context"]["evaluated on"]
    assert m["accuracy"] >= 5 / 6
    assert np.array(m["confusion_matrix"]).sum() == 6
    assert set(m["per_class"]) == {"saw", "sine", "square"}
    assert (tmp_path / "rep" / "report.md").read_text().count("held-back") == 1
    assert (tmp_path / "rep" / "confusion_matrix.png").stat().st_size > 1000
    # both levels (the tones are each a family of their own), and calibration
    assert m["family"]["accuracy"] == m["accuracy"] and m["family"]["confusion_matrix"] == m["confusion_matrix"]
    assert 0 <= m["ece"] <= 1 and sum(m["reliability"]["count"]) == 6 and "ECE" in r.stdout and "families:" in r.stdout
    assert (tmp_path / "rep" / "reliability.png").stat().st_size > 1000
    assert (tmp_path / "rep" / "family_confusion_matrix.png").stat().st_size > 1000


def test_evaluate_other_folder_whole_and_unknown_classes(mfcc_model, tmp_path):
    out, _ = mfcc_model
    rng = np.random.default_rng(5)
    for kind in ("sine", "square"):
        for k in range(4):
            write(tmp_path / "new" / kind / f"{k}.wav", tone(kind, float(rng.uniform(150, 700)), seed=50 + k))
    write(tmp_path / "new" / "kazoo" / "k.wav", tone("saw", 300) * 0.3)
    r = run_cli("evaluate", out, tmp_path / "new", "--out", tmp_path / "rep")
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert m["n"] == 8 and m["unknown_classes"] == {"kazoo": 1}
    assert "kazoo" in r.stderr and "does not know" in r.stderr
    assert m["accuracy"] >= 0.75


def test_predict_formats(mfcc_model, messy_data):
    out, _ = mfcc_model
    r = run_cli("predict", out, messy_data / "sine", "--format", "json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert len(res) == 10  # 10 good files; empty.wav and text.wav skipped
    assert set(res[0]) >= {"path", "label", "probabilities"}
    assert abs(sum(res[0]["probabilities"].values()) - 1) < 1e-5
    assert sum(x["label"] == "sine" for x in res) >= 8
    assert "empty.wav" in r.stderr and "text.wav" in r.stderr

    # the CSV and the table say what the JSON says (the table lists every class: its cells are read)
    for clip in (messy_data / "saw" / "saw_00.wav", messy_data / "square" / "square_03.wav"):
        ref = json.loads(run_cli("predict", out, clip, "--format", "json").stdout)[0]
        best = sorted(ref["probabilities"].items(), key=lambda kv: -kv[1])

        r = run_cli("predict", out, clip, "--format", "csv", "--top-k", "2")
        assert r.returncode == 0, r.stderr
        rows = list(csv.reader(io.StringIO(r.stdout)))
        # tone labels are in no family of the table: each is its own
        assert rows[0] == ["path", "label", "family", "top1", "p1", "top2", "p2", "pf_saw", "pf_sine", "pf_square"]
        assert len(rows) == 2 and rows[1][2] == ref["family"] == ref["label"]
        assert rows[1][1] == rows[1][3] == ref["label"] == best[0][0] and rows[1][5] == best[1][0]
        assert float(rows[1][4]) == pytest.approx(best[0][1], abs=1e-4) and float(rows[1][4]) >= float(rows[1][6])

        r = run_cli("predict", out, clip)
        assert r.returncode == 0, r.stderr
        row = next(line for line in r.stdout.splitlines() if clip.name in line)
        assert row.split("│")[2].strip().startswith(f"{ref['label']} (")
    assert ref["label"] == "square"


@pytest.mark.parametrize("name", BAD)
def test_predict_bad_file_is_one_line(mfcc_model, messy_data, name):
    out, _ = mfcc_model
    path = next(messy_data.rglob(name))
    r = run_cli("predict", out, path)
    assert r.returncode == 1
    lines = error_lines(r.stderr)
    assert len(lines) == 2 and lines[0] == "skipped 1 file(s):" and name in lines[1]
    assert "Traceback" not in r.stderr
    assert r.stdout == ""  # no empty table: nothing was predicted
    if name == "empty.wav":  # machine-readable formats stay parseable
        r = run_cli("predict", out, path, "--format", "json")
        assert r.returncode == 1 and json.loads(r.stdout) == []


@pytest.mark.parametrize(
    "args, code, words",
    [
        (["train", "{tmp}/nowhere", "--out", "{tmp}/m"], 2, ["'DATA...': path", "nowhere' does not exist"]),
        (["train", "{tmp}/empty", "--out", "{tmp}/m"], 1, ["no audio files"]),
        (["train", "{tmp}/one", "--out", "{tmp}/m"], 1, ["at least 2 classes"]),
        (["train", "{tmp}/one", "--recipe", "seed-banana", "--out", "{tmp}/m"], 2, ["seed-banana", "seed-mfcc"]),
        (["train", "{tmp}/one", "--split", "sideways", "--out", "{tmp}/m"], 2, ["sideways"]),
        (["predict", "--model", "{tmp}/nomodel", "{tmp}/one"], 2, ["nomodel"]),  # a path that is no model: usage
        (["evaluate", "{tmp}/one", "{tmp}/one", "--out", "{tmp}/r"], 2, ["model.json"]),
        (["spectrograms", "{tmp}/nowhere", "{tmp}/png"], 2, ["'DATA': path", "nowhere' does not exist"]),
        (["train", "{tmp}/manifest", "--out", "{tmp}/m", "--epochs", "2"], 0, ["gone.wav", "missing"]),
    ],
    ids=["missing-path", "no-audio", "one-class", "unknown-recipe", "bad-split", "missing-model", "not-a-model",
         "spectrograms-missing", "manifest-missing-row"],
)
def test_errors_are_one_clear_line(tmp_path, args, code, words):
    (tmp_path / "empty").mkdir()
    for k in range(3):
        write(tmp_path / "one" / "flute" / f"{k}.wav", tone("sine", 400 + 50 * k))
    for k in range(4):
        write(tmp_path / "manifest" / f"{k}.wav", tone("sine" if k % 2 else "saw", 300 + 40 * k))
    (tmp_path / "manifest" / "manifest.csv").write_text(
        "path,label\n" + "".join(f"{k}.wav,{'sine' if k % 2 else 'saw'}\n" for k in range(4)) + "gone.wav,saw\n")
    r = run_cli(*[a.format(tmp=tmp_path) for a in args])
    assert r.returncode == code, r.stderr
    assert "Traceback" not in r.stderr
    text = r.stderr
    for w in words:
        assert w in text
    if code == 1:
        assert len(error_lines(r.stderr)) == 1 and r.stderr.startswith("instrec: error: ")


def test_spectrograms_writes_pngs(tone_data, tmp_path):
    from PIL import Image

    r = run_cli("spectrograms", tone_data / "sine", tmp_path / "png")
    assert r.returncode == 0, r.stderr
    pngs = sorted((tmp_path / "png").rglob("*.png"))
    assert len(pngs) == 10
    img = Image.open(pngs[0])
    assert img.size == (640, 480) and img.mode == "L"
    r = run_cli("spectrograms", tone_data / "sine" / "sine_00.wav", tmp_path / "rgb", "--image-mode", "rgb")
    assert Image.open(tmp_path / "rgb" / "sine_00.png").mode == "RGB"


def test_help_lists_every_command():
    r = run_cli("--help")
    assert r.returncode == 0, r.stderr
    # each command as a row of the commands table (the words also occur in other commands' help)
    listed = re.findall(r"^│ (\w[\w-]*)\s{2,}", r.stdout, re.M)
    assert listed == ["render", "render-music", "mix", "spectrograms", "train", "crossval", "evaluate", "calibrate", "predict", "export", "serve", "demo"]


def test_render_default_600_clips_identical_for_same_seed(tmp_path):
    r = run_cli("render", tmp_path / "a")
    assert r.returncode == 0, r.stderr
    files = sorted((tmp_path / "a").glob("*.wav"))
    assert len(files) == 600
    counts = {}
    for f in files:
        info = sf.info(str(f))
        assert info.samplerate == SR and info.channels == 1 and info.frames == 3 * SR
        label, note, dur, dyn, source, k = f.stem.split("_")
        assert source == "fluidr3" and len(k) == 3
        counts[label] = counts.get(label, 0) + 1
    assert counts == {c: 100 for c in ("cello", "flute", "oboe", "saxophone", "trumpet", "viola")}
    y, _ = sf.read(str(files[0]))
    assert np.abs(y).max() > 0.1  # audible
    rows = list(csv.DictReader(open(tmp_path / "a" / "manifest.csv")))
    assert len(rows) == 600 and {"path", "label", "source", "pitch", "velocity", "duration"} <= set(rows[0])

    # two processes (an instrument each): the same files
    assert run_cli("render", tmp_path / "b", "--instruments", "flute,cello", "--per-class", "5", "--jobs", "2").returncode == 0
    assert len(list((tmp_path / "b").glob("*.wav"))) == 10
    for f in sorted((tmp_path / "b").glob("*.wav")):
        assert f.read_bytes() == (tmp_path / "a" / f.name).read_bytes()


def test_render_unknown_soundfont_and_instrument(tmp_path):
    r = run_cli("render", tmp_path, "--soundfont", "nosuchfont")
    assert r.returncode == 2 and "nosuchfont" in r.stderr and len(error_lines(r.stderr)) == 1
    r = run_cli("render", tmp_path, "--instruments", "flute,kazooo")
    assert r.returncode == 2 and "kazooo" in r.stderr and len(error_lines(r.stderr)) == 1
    r = run_cli("render", tmp_path, "--ray", "local", "--jobs", "2")  # Ray's workers, or this machine's: not both
    assert r.returncode == 2 and "--jobs" in r.stderr and "--ray" in r.stderr and len(error_lines(r.stderr)) == 1


def test_render_music_writes_excerpts_and_who_plays_when(tmp_path):
    pytest.importorskip("music21", reason="music21 (the render extra) is not installed")
    r = run_cli("render-music", tmp_path / "m", "--n", "2", "--seconds", "3", "--pieces", "chorales",
                "--instruments", "violin,viola,cello,flute,oboe", "--jobs", "2")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("wrote 2 excerpts of 3 s to ") and "(fluidr3)" in r.stdout
    rows = list(csv.DictReader(open(tmp_path / "m" / "manifest.csv")))
    spans = list(csv.DictReader(open(tmp_path / "m" / "activity.csv")))
    assert len(rows) == 2 and all(row["group"].startswith("bach/") for row in rows)
    for row in rows:
        heard = row["label"].split(";")
        assert heard and set(heard) <= {"violin", "viola", "cello", "flute", "oboe"}
        assert {s["label"] for s in spans if s["path"] == row["path"]} == set(heard)
        assert sf.info(str(tmp_path / "m" / row["path"])).frames == 3 * SR
    r = run_cli("render-music", tmp_path / "x", "--pieces", "madrigals")
    assert r.returncode == 2 and len(error_lines(r.stderr)) == 1 and "madrigals" in r.stderr


@pytest.mark.parametrize("args, line", [
    (("--seconds", "0.5"), "--seconds must be a number of seconds in 1..60, got 0.5"),
    (("--seconds", "0.01"), "--seconds must be a number of seconds in 1..60, got 0.01"),
    (("--seconds", "61"), "--seconds must be a number of seconds in 1..60, got 61.0"),
    (("--sample-rate", "100000"), "--sample-rate must be an integer in 8000..96000 (Hz), got 100000"),
    (("--sample-rate", "4000"), "--sample-rate must be an integer in 8000..96000 (Hz), got 4000"),
    (("--format", "mp3", "--sample-rate", "16001"), "--sample-rate must be one of 8000, 11025, 12000, 16000, 22050, "
                                                    "24000, 32000, 44100, 48000 (Hz) for mp3, got 16001"),
    (("--n", "0"), "--n must be an integer >= 1, got 0"),
    (("--seed", "-1"), "--seed must be an integer from 0 to 4294967295, got -1"),
])
def test_render_music_a_value_out_of_range_is_one_line_naming_the_option(args, line, tmp_path):
    """Review item 2: --seconds said 0.05..60 and refused 0.5; --sample-rate 100000 talked about seconds."""
    r = run_cli("render-music", tmp_path / "m", *args)
    assert r.returncode == 2 and error_lines(r.stderr) == [f"instrec: error: {line}"], r.stderr
    assert r.stdout == "" and not (tmp_path / "m").exists()


def test_render_music_that_writes_nothing_says_why_and_fails(tmp_path):
    """Review item 3: a run that wrote 0 excerpts exited 0. Now it lists each reason and fails
    with 1 (bad input), as predict does when no input could be read."""
    music21 = pytest.importorskip("music21", reason="music21 (the render extra) is not installed")
    scores = tmp_path / "scores"
    scores.mkdir()
    (scores / "broken.musicxml").write_text("<score-partwise><part id='P1'>")
    r = run_cli("render-music", tmp_path / "m", "--pieces", scores, "--n", "2", "--seconds", "2")
    assert r.returncode == 1, r.stderr
    lines = error_lines(r.stderr)
    assert lines[0] == "skipped 3 file(s):" and "broken.musicxml: not a score music21 can read" in lines[1]
    assert lines[2:4] == [f"  excerpt {k}: no playable piece of {str(scores)!r} found in 10 draws on fluidr3" for k in (0, 1)]
    assert lines[4:] == [f"instrec: error: no excerpt written to {tmp_path / 'm'}: no piece of {str(scores)!r} could be "
                         "read and played on fluidr3 (the reasons above)"]
    assert "wrote" not in r.stdout and "Traceback" not in r.stderr
    # a score that reads but that no instrument asked for can play (C1..D1 on a flute, even 2 octaves up)
    score = music21.stream.Score()
    part = music21.stream.Part()
    for name in ("C1", "D1", "C1"):
        part.append(music21.note.Note(name, quarterLength=4.0))
    score.insert(0, part)
    score.write("musicxml", fp=str(tmp_path / "low.musicxml"))
    r = run_cli("render-music", tmp_path / "m", "--pieces", tmp_path / "low.musicxml", "--n", "1", "--seconds", "2",
                "--instruments", "flute")
    assert r.returncode == 1 and "excerpt 0: no playable piece" in r.stderr and "no excerpt written" in r.stderr


# -- the model argument of predict (issue 25, item 3) ------------------------------------------


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write(tmp_path_factory.mktemp("clip") / "a.wav", tone("saw", 440.0, seconds=2.0))


def test_predict_a_mistyped_model_is_an_error_not_the_shipped_model(clip, tmp_path):
    r = run_cli("predict", tmp_path / "m33", clip)
    assert r.returncode == 2, r.stderr
    lines = error_lines(r.stderr)
    assert len(lines) == 1 and lines[0].startswith("instrec: error: ") and "m33" in lines[0] and "no such model" in lines[0]
    assert r.stdout == "" and "Traceback" not in r.stderr
    r = run_cli("predict", tmp_path / "model.onnx", clip)  # a missing .onnx file is a model too
    assert r.returncode == 2 and "model.onnx" in r.stderr and len(error_lines(r.stderr)) == 1


def test_predict_shipped_names_the_shipped_model(clip):
    plain = run_cli("predict", clip, "--format", "json")
    named = run_cli("predict", "shipped", clip, "--format", "json")
    assert plain.returncode == named.returncode == 0, named.stderr
    assert json.loads(named.stdout) == json.loads(plain.stdout) and named.stderr == ""
    r = run_cli("predict", "shipped")
    assert r.returncode == 2 and "name the audio files" in r.stderr and len(error_lines(r.stderr)) == 1


def test_predict_a_missing_audio_file_is_skipped_as_before(clip, tmp_path):
    """A missing input that looks like audio is a file to skip, alone or first of several."""
    r = run_cli("predict", tmp_path / "missing.wav")
    assert r.returncode == 1 and error_lines(r.stderr) == ["skipped 1 file(s):", f"  {tmp_path / 'missing.wav'}: no such file or folder"]
    r = run_cli("predict", tmp_path / "missing.wav", clip, "--format", "json")
    assert r.returncode == 0, r.stderr
    assert [d["path"] for d in json.loads(r.stdout)] == [str(clip)] and "missing.wav: no such file" in r.stderr
    r = run_cli("predict", tmp_path / "recordings")  # one argument, no audio name: a missing folder of inputs
    assert r.returncode == 1 and "recordings: no such file or folder" in r.stderr


# -- help, version, width (item 9) --------------------------------------------------------------

COMMANDS = ["render", "render-music", "mix", "spectrograms", "train", "crossval", "evaluate", "calibrate", "predict", "export", "serve", "demo"]


def test_version():
    from instrec import __version__

    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout == f"instrec {__version__}\n" == "instrec 0.1.0\n"


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_is_readable(command, capsys):
    """-h is --help everywhere; values are named as the README names them (PATH..., N, a|b), never
    by a Python type (<bool>, <list[Path]>, {data}); the main commands show examples."""
    from instrec.cli import main

    pages = []
    for flag in ("-h", "--help"):
        with pytest.raises(SystemExit) as e:
            main([*([command] if command else []), flag])
        assert e.value.code in (0, None)
        pages.append(capsys.readouterr().out)
    assert pages[0] == pages[1] and "Usage: instrec" in pages[0]
    text = pages[0]
    assert not re.search(r"<[a-z]\w*[\[>|]", text), text  # <bool>, <list[Path]>, <path>, <auto|torch|onnx>
    assert "{" not in text.split("\n\n")[0] + re.search(r"Usage: .*", text).group(0)
    if command is not None:  # every command, serve and demo too
        assert "Examples:" in text and f"instrec {command} " in text.split("Examples:")[1]
    if command == "render":  # the ranges the checks hold the options to
        assert all(r in text for r in ("(1-100000)", "(0.05-60)", "(8000-192000;")), text
    if command == "predict":
        assert "Usage: instrec predict [OPTIONS] [MODEL] PATH..." in text
    if command == "train":
        assert "Usage: instrec train [OPTIONS] DATA..." in text and "[default: mfcc-stats]" in text


@pytest.mark.parametrize("command", ["train", "crossval", "evaluate", "calibrate", "predict"])
def test_help_cuts_no_example_short_in_80_columns(command, monkeypatch, capsys):
    """In an 80-column terminal `predict --help` showed `flute,viola,cello,oboe,trumpet…` (the
    --classes example cut) and `train --help` `~/.cache/instrec/feature…`: a value no one can copy.
    (render's default instrument list, from make_data.py, is still cut.)"""
    from instrec.cli import main

    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    assert "…" not in text, [line for line in text.splitlines() if "…" in line]


def test_train_says_one_held_back_clip_in_the_singular(tmp_path):
    for kind in ("sine", "square"):
        for k in range(2):
            write(tmp_path / "d" / kind / f"{k}.wav", tone(kind, 220.0 * (k + 1), seed=k))
    r = run_cli("train", tmp_path / "d", "--recipe", "mfcc-linear", "--out", tmp_path / "m", "-j", "1")
    assert r.returncode == 0, r.stderr
    assert " on 1 held-back clip (" in r.stdout, r.stdout


def test_the_results_table_fits_the_terminal(clip, monkeypatch, capsys):
    from instrec.cli import main

    monkeypatch.setenv("COLUMNS", "60")
    with pytest.raises(SystemExit) as e:
        main(["predict", str(clip), str(clip.parent / ".." / clip.parent.name / clip.name)])  # a long path too
    assert e.value.code == 0
    out = capsys.readouterr().out
    files = "".join(line.split("│")[1].strip() for line in out.splitlines() if line.startswith("│"))
    assert out.count("┃ file") == 1 and files.count(str(clip)) == 1, out  # folded in the column, not cut
    assert max(len(line) for line in out.splitlines()) <= 60, out


# -- the default recipe (item 12) ---------------------------------------------------------------


def test_the_default_recipe_is_mfcc_stats_and_said(tone_data, tmp_path):
    """Without --recipe, train uses the recipe the README recommends for a user's own recordings,
    says so, and the Python API has the same default."""
    from instrec import cli
    from instrec.pipeline import DEFAULT_RECIPE, resolve_recipe

    assert cli.DEFAULT_RECIPE == DEFAULT_RECIPE == resolve_recipe(None, None).name == "mfcc-stats"
    r = run_cli("train", tone_data / "sine", tone_data / "saw", "--epochs", "2", "--out", tmp_path / "m", "-j", "1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("recipe: mfcc-stats (the default; --recipe to choose)\n")
    assert json.loads((tmp_path / "m" / "model.json").read_text())["recipe"]["name"] == "mfcc-stats"
    r = run_cli("train", tone_data, "--recipe", "seed-mfcc", "--epochs", "2", "--out", tmp_path / "m2")
    assert r.returncode == 0 and "the default" not in r.stdout


def test_evaluate_data_without_a_class_the_model_knows_fails_in_one_line(mfcc_model, tmp_path):
    """All clips of a class the model does not know: nothing to score, exit 1, no n/a report."""
    out, _ = mfcc_model
    for k in range(3):
        write(tmp_path / "odd" / "violin" / f"{k}.wav", tone("sine", 220.0 * (k + 1), seed=k))
    r = run_cli("evaluate", out, tmp_path / "odd", "--out", tmp_path / "rep")
    assert r.returncode == 1 and "accuracy" not in r.stdout, r.stdout
    lines = error_lines(r.stderr)
    assert len(lines) == 1 and "has a class the model knows" in lines[0] and "violin" in lines[0], r.stderr
    assert "saw, sine, square" in lines[0] and "Traceback" not in r.stderr
    assert not (tmp_path / "rep").exists()


def test_evaluate_names_classes_left_out_by_classes_apart_from_unknown_ones(mfcc_model, tmp_path):
    out, _ = mfcc_model
    for kind in ("sine", "square", "saw"):
        for k in range(2):
            write(tmp_path / "new" / kind / f"{k}.wav", tone(kind, 200.0 + 90 * k, seed=70 + k))
    write(tmp_path / "new" / "kazoo" / "k.wav", tone("saw", 300) * 0.3)
    r = run_cli("evaluate", out, tmp_path / "new", "--out", tmp_path / "rep", "--classes", "sine,square")
    assert r.returncode == 0, r.stderr
    line = next(l for l in r.stderr.splitlines() if l.startswith("not scored"))
    assert line == "not scored, classes left out by --classes: saw (2 clips); classes the model does not know: kazoo (1 clip)"
    m = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert m["n"] == 4 and m["left_out_by_classes"] == {"saw": 2} and m["unknown_classes"] == {"kazoo": 1}
    assert m["context"]["left out by the classes chosen (not scored)"] == "saw (2 clips)"


def test_evaluate_an_onnx_export_on_the_training_folder_scores_the_held_back_split(mfcc_model, messy_data, tmp_path):
    out, _ = mfcc_model
    r = run_cli("export", out, "--onnx", tmp_path / "m.onnx")
    assert r.returncode == 0, r.stderr
    r = run_cli("evaluate", tmp_path / "m.onnx", messy_data, "--out", tmp_path / "rep")
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert m["n"] == 6 and m["context"]["evaluated on"].startswith("held-back test split")
    folder = run_cli("evaluate", out, messy_data, "--out", tmp_path / "rep2")
    assert json.loads((tmp_path / "rep2" / "metrics.json").read_text())["accuracy"] == m["accuracy"]
    assert "warning" not in r.stderr
    # a folder holding the training clips and more: a warning that the figures include training clips
    r = run_cli("evaluate", tmp_path / "m.onnx", messy_data / "sine", messy_data / "saw", "--out", tmp_path / "rep3")
    assert r.returncode == 0, r.stderr
    warning = [l for l in r.stderr.splitlines() if l.startswith("warning:")]
    assert len(warning) == 1 and "the figures include training clips" in warning[0], r.stderr


def test_one_class_left_names_the_files_skipped(tmp_path):
    """A manifest of which one row exists: 'at least 2 classes' also names what was skipped."""
    write(tmp_path / "a.wav", tone("sine", 440))
    (tmp_path / "m.csv").write_text("path,label\na.wav,flute\nb.wav,oboe\nc.wav,oboe\n")
    r = run_cli("train", tmp_path, "--manifest", tmp_path / "m.csv", "--out", tmp_path / "m")
    assert r.returncode == 1 and len(error_lines(r.stderr)) == 1, r.stderr
    assert "found 1 (flute); 2 listed files were skipped, the first: " in r.stderr and "b.wav: listed in m.csv line 3" in r.stderr


def test_train_says_what_it_learnt_from(tmp_path):
    """The classes and their clips as the folders were read; a file beside the class folders is
    skipped, not a class named after the folder."""
    for c, f in (("cello", 200), ("flute", 800)):
        for k in range(4):
            write(tmp_path / "d" / c / f"{k}.wav", tone("sine", f + 20 * k))
    write(tmp_path / "d" / "stray.wav", tone("saw", 300))
    r = run_cli("train", tmp_path / "d", "--out", tmp_path / "m", "--epochs", "2")
    assert r.returncode == 0, r.stderr
    assert "data: 8 clips (folder labels) of 2 classes: cello 4, flute 4" in r.stdout, r.stdout
    assert "stray.wav" in r.stderr and "not in a class folder" in r.stderr


def test_ctrl_c_says_interrupted_and_exits_130(tmp_path):
    """Review item 6: typer turned KeyboardInterrupt into a silent exit 130 before main saw it."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "r"
    p = subprocess.Popen([sys.executable, "-m", "instrec", "render", str(out), "--instruments", "flute",
                          "--per-class", "100000", "--seconds", "0.2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # SIG_DFL: a suite started in the background by a shell (`cmd &`) ignores SIGINT, and so would its children
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("*.wav")) and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # until it is rendering: the handler then is the command's, not Python's start-up
        assert p.poll() is None, p.communicate()
        p.send_signal(signal.SIGINT)
        try:
            stdout, stderr = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            pytest.fail(f"render went on 60 s after Ctrl-C; its stderr: {p.communicate()[1][-2000:]!r}")
    finally:
        p.kill()
    assert p.returncode == 130 and stdout == "", (p.returncode, stdout, stderr)
    assert error_lines(stderr) == ["instrec: interrupted"], stderr
    assert not list(out.glob(".*.part*"))  # the clip being written was not left half-done


def test_render_into_a_folder_of_something_else_is_refused_and_a_rerun_is_up_to_date(tmp_path):
    """Review item 1: render with other instruments, or mix with OUT an input, replaced the folder's
    manifest (the clips on disk left unlisted); a completed rerun said "kept 6 written by an
    interrupted run"."""
    r1 = tmp_path / "r1"
    tiny = ("--per-class", "2", "--seconds", "0.2")
    assert run_cli("render", r1, "--instruments", "flute,cello", *tiny).returncode == 0
    manifest = (r1 / "manifest.csv").read_bytes()
    r = run_cli("render", r1, "--instruments", "flute,cello", *tiny)
    assert r.returncode == 0 and "interrupted" not in r.stdout
    assert r.stdout == f"{r1} is up to date: a complete render of 4 clips with these settings (nothing written)\n"
    for args, words in ((("render", r1, "--instruments", "oboe", *tiny), ["holds a render with other settings",
                                                                        "instruments: flute,cello there, oboe now"]),
                        (("mix", r1, r1, "--max", "2"), ["is inside the input"]),
                        (("mix", r1, r1 / "mixes"), ["is inside the input"])):
        r = run_cli(*args)
        assert r.returncode == 2 and len(error_lines(r.stderr)) == 1, r.stderr
        assert r.stderr.startswith(f"instrec: error: {args[1] if args[0] == 'render' else args[2]}: ")
        assert all(w in r.stderr for w in words) and "name a" in r.stderr, r.stderr
    assert (r1 / "manifest.csv").read_bytes() == manifest and not (r1 / "mixes").exists()
    mixes = tmp_path / "m"
    assert run_cli("mix", r1, mixes, "--n", "3").returncode == 0
    r = run_cli("mix", r1, mixes, "--n", "2")
    assert r.returncode == 2 and "n: 3 there, 2 now" in r.stderr and len(list(mixes.glob("*.wav"))) == 3
    own = tmp_path / "own"
    own.mkdir()
    (own / "manifest.csv").write_text("path,label\n")
    r = run_cli("render", own, *tiny)
    assert r.returncode == 2 and f"{own}: not empty (holds manifest.csv)" in r.stderr
    assert [p.name for p in own.iterdir()] == ["manifest.csv"]


def test_mix_lists_the_bad_clips_of_a_class_before_its_error(tmp_path):
    """Review item 3: a class folder of undecodable files: "see the skipped clips", none shown, and an
    empty manifest.csv left behind."""
    for k in range(2):
        write(tmp_path / "data" / "flute" / f"{k}.wav", tone("sine", 500 + 50 * k))
    (tmp_path / "data" / "harp").mkdir()
    (tmp_path / "data" / "harp" / "broken.wav").write_bytes(b"RIFF not really a wave file")
    r = run_cli("mix", tmp_path / "data", tmp_path / "mix", "--n", "3", "--seconds", "0.5")
    lines = error_lines(r.stderr)
    assert r.returncode == 1 and r.stdout == "", r.stderr
    assert lines[0] == "skipped 1 file(s):" and "harp/broken.wav" in lines[1]
    assert lines[-1].startswith("instrec: error: only 1 instrument label(s)") and "--min is 2" in lines[-1]
    assert not (tmp_path / "mix").exists()


@pytest.mark.parametrize("args, line", [
    (("render", ""), "OUT_DIR is empty: name the folder to write to"),
    (("render", " "), "OUT_DIR is empty: name the folder to write to"),
    (("spectrograms", "{data}", ""), "OUT is empty: name the folder to write to"),
    (("mix", "{data}", ""), "OUT_DIR is empty: name the folder to write to"),
    (("render-music", ""), "OUT_DIR is empty: name the folder to write to"),
    # with a SoundFont that is not there, and more instruments than the data has: a check that went
    # missing fails the test instead of writing 10**20 clips
    (("render", "{out}", "--per-class", "99999999999999999999", "--soundfont", "nosuchfont"),
     "--per-class must be an integer from 1 to 100000, got 99999999999999999999"),
    (("render", "{out}", "--negatives", "100001", "--soundfont", "nosuchfont"),
     "--negatives must be an integer from 0 to 100000, got 100001"),
    (("mix", "{data}", "{out}", "--n", "100001", "--min", "5"), "--n must be an integer from 1 to 100000, got 100001"),
    (("render", "{out}", "--seconds", "61"), "--seconds must be a number of seconds in 0.05..60, got 61.0"),
    (("render", "{out}", "--sample-rate", "4000"), "--sample-rate must be an integer in 8000..192000 (Hz), got 4000"),
    (("render", "{out}", "--format", "mp3", "--sample-rate", "96000"), "--sample-rate must be one of 8000, 11025, "
                                                                        "12000, 16000, 22050, 24000, 32000, 44100, 48000 (Hz) for mp3, got 96000"),
    (("mix", "{data}", "{out}", "--seconds", "0"), "--seconds must be a number of seconds in 0.05..60, got 0.0"),
    (("mix", "{data}", "{out}", "--sample-rate", "100"), "--sample-rate must be an integer in 8000..192000 (Hz), got 100"),
    (("mix", "{data}", "{out}", "--max", "4"), "--max is 4 but the clips have only 2 distinct instrument label(s) "
                                               "(not counting 'unknown')"),
    (("mix", "{data}", "{out}", "--min", "3"), "--min is 3 but the clips have only 2 distinct instrument label(s) "
                                               "(not counting 'unknown')"),
    (("mix", "{data}", "{out}", "--min", "3", "--max", "2"), "need integers 1 <= --min <= --max, got 3 and 2"),
])
def test_out_blank_counts_and_ranges_are_one_line_naming_the_option(args, line, tmp_path):
    """Review items 4 and 5: '' wrote into the current folder, --per-class took 10**20, and the
    messages named Python's arguments (sr, seconds, max_instruments) instead of the options."""
    for k, kind in enumerate(("sine", "saw")):
        write(tmp_path / "data" / kind / f"{k}.wav", tone(kind, 300 + 100 * k))
    (tmp_path / "here").mkdir()
    args = [a.format(data=tmp_path / "data", out=tmp_path / "out") for a in args]
    r = run_cli(*args, cwd=tmp_path / "here")
    assert r.returncode == 2 and error_lines(r.stderr) == [f"instrec: error: {line}"], r.stderr
    assert not (tmp_path / "out").exists() and list((tmp_path / "here").iterdir()) == []


def test_mix_without_max_takes_as_many_instruments_as_the_clips_have(tmp_path):
    for k, kind in enumerate(("sine", "saw")):
        write(tmp_path / "data" / kind / f"{k}.wav", tone(kind, 300 + 100 * k))
    r = run_cli("mix", tmp_path / "data", tmp_path / "mix", "--n", "2", "--seconds", "0.5")
    assert r.returncode == 0 and r.stdout.startswith(f"wrote 2 mixtures of 0.5 s to {tmp_path / 'mix'}; "), r.stderr


def test_spectrograms_of_files_whose_stems_meet_writes_and_counts_each(tmp_path):
    """Review item 2: sp/a.wav and sp/a.flac: "wrote 3 images", 2 files."""
    for name in ("a.wav", "a.flac", "b.wav"):
        write(tmp_path / "sp" / name, tone("sine", 440), format=name.rsplit(".", 1)[1].upper())
    r = run_cli("spectrograms", tmp_path / "sp", tmp_path / "spo")
    assert r.returncode == 0 and r.stdout == f"wrote 3 images to {tmp_path / 'spo'}\n", r.stderr
    assert sorted(p.name for p in (tmp_path / "spo").iterdir()) == ["a.flac.png", "a.wav.png", "b.png"]
    assert f"{tmp_path / 'sp' / 'a.flac'} -> a.flac.png" in r.stderr and f"{tmp_path / 'sp' / 'a.wav'} -> a.wav.png" in r.stderr


def test_a_count_of_one_is_singular(tmp_path):
    """"wrote 1 clips", "1 image(s)", "1 mixtures": one is said in the singular."""
    for k, kind in enumerate(("sine", "saw")):
        write(tmp_path / "data" / kind / f"{k}.wav", tone(kind, 300 + 100 * k))
    r = run_cli("spectrograms", tmp_path / "data" / "sine" / "0.wav", tmp_path / "png")
    assert r.returncode == 0 and r.stdout == f"wrote 1 image to {tmp_path / 'png'}\n", r.stderr
    r = run_cli("mix", tmp_path / "data", tmp_path / "mix", "--n", "1", "--seconds", "0.5")
    assert r.returncode == 0 and r.stdout.startswith(f"wrote 1 mixture of 0.5 s to {tmp_path / 'mix'}; "), r.stderr
    pytest.importorskip("fluidsynth", reason="pyfluidsynth (the render extra) is not installed")
    r = run_cli("render", tmp_path / "r", "--instruments", "flute", "--per-class", "1", "--seconds", "0.2")
    assert r.returncode == 0 and r.stdout == f"wrote 1 clip to {tmp_path / 'r'}\n", r.stderr


@pytest.mark.parametrize("args, names", [
    (["train", "no-such-folder", "--out", "m"], "'DATA...': path 'no-such-folder' does not exist"),
    (["evaluate", "shipped", "no-such-folder"], "'DATA...': path 'no-such-folder' does not exist"),
    (["train", ".", "--manifest", "no-such.csv", "--out", "m"], "'--manifest': file 'no-such.csv' does not exist"),
    (["predict", "x.wav", "--format", "xml"], "'--format'"),
    (["predict", "x.wav", "--engine", "tf"], "'--engine'"),
    (["predict", "x.wav", "--top-k", "0"], "'--top-k'"),
    (["predict", "x.wav", "--min-confidence", "1.5"], "'--min-confidence'"),
    (["predict", "x.wav", "--min-confidence", "nan"], "'--min-confidence': must be a number from 0 to 1 (0: never answer unknown for doubt); got nan"),
    (["predict", "x.wav", "--window", "abc"], "'--window'"),
    (["predict", "x.wav", "--bogus"], "--bogus"),
    (["predict"], "Missing argument"),
    (["frobnicate"], "frobnicate"),
])
def test_usage_errors_found_by_the_parser_are_one_line_exit_2(args, names):
    """click's usage errors were typer's 5-6-line box; the README promises one line naming the argument.
    A DATA folder or manifest that is not there is a usage error too (it was exit 1, as for a bad file)."""
    r = run_cli(*args)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0].startswith("instrec: error: ") and names in lines[0] and "--help for usage)" in lines[0], r.stderr
    assert not set(r.stderr) & set("╭╮╰╯│─"), r.stderr


def test_usage_error_in_a_process_is_one_line_and_help_still_shows():
    r = run_cli("predict", "x.wav", "--format", "xml", process=True)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "instrec: error: Invalid value for '--format': Value error, 'xml' is not one of 'table', 'json', 'csv'. "
        "(instrec predict --help for usage)"], r.stderr
    h = run_cli("predict", "--help", process=True)
    assert h.returncode == 0 and "Usage: instrec predict" in h.stdout and not h.stderr.strip()


def test_torch_engine_on_an_onnx_file_is_a_one_line_error(tmp_path):
    from instrec.assets import shipped_model_path
    from instrec.engines.onnx_engine import onnx_path_for

    clip = write(tmp_path / "c.wav", tone("sine", 440))
    r = run_cli("predict", "--model", onnx_path_for(shipped_model_path()), "--engine", "torch", clip)
    assert r.returncode == 2 and error_lines(r.stderr) == [
        "instrec: error: an .onnx file runs on onnxruntime; use --engine onnx or auto, "
        "or give the model folder for torch"], r.stderr


# -- review: checks before the work, contradicting options (train, predict) --------------------------

def _two_classes(root):
    for c, f in (("cello", 200), ("flute", 800)):
        for k in range(4):
            write(root / c / f"{k}.wav", tone("sine", f + 20 * k))
    return root


def test_predict_a_model_named_twice_is_refused(tmp_path):
    """`predict m1 FILE --model mf` took m1 for an input, skipped it and answered with mf."""
    clip = write(tmp_path / "c.wav", tone("sine", 440))
    (tmp_path / "m1").mkdir()
    (tmp_path / "m1" / "model.json").write_text("{}")
    for first in (tmp_path / "m1", "shipped"):
        r = run_cli("predict", first, clip, "--model", "shipped")
        assert r.returncode == 2 and error_lines(r.stderr) == [
            f"instrec: error: {first} is a model and --model names shipped: name the model once (first, or with --model)"]


def test_train_refuses_options_it_would_ignore(tmp_path):
    """--labels beside --manifest, and --resume, --test-size or --split random beside --cv, were ignored."""
    data = _two_classes(tmp_path / "d")
    (tmp_path / "m.csv").write_text("path,label\n")
    for args, line in (
        (["--labels", "filename", "--manifest", tmp_path / "m.csv", "--out", tmp_path / "m"],
         "--manifest gives the labels; leave out --labels filename (or --manifest)"),
        (["--cv", "2", "--resume"], "--cv trains every fold afresh and saves no model; leave out --resume"),
        (["--cv", "2", "--test-size", "0.2"], "--cv tests every clip once, fold by fold; leave out --test-size"),
        (["--cv", "2", "--split", "random"],
         "--cv folds are stratified (grouped with --split group or --group-by); leave out --split random"),
    ):
        r = run_cli("train", data, *args)
        assert r.returncode == 2 and error_lines(r.stderr) == [f"instrec: error: {line}"], (args, r.stderr)
    assert not (tmp_path / "m").exists()
    for command in (["evaluate", "shipped", data, "--out", tmp_path / "e"], ["crossval", data], ["calibrate", "shipped", data, "--out", tmp_path / "c"]):
        r = run_cli(*command, "--labels", "filename", "--manifest", tmp_path / "m.csv")
        assert r.returncode == 2 and error_lines(r.stderr) == [
            "instrec: error: --manifest gives the labels; leave out --labels filename (or --manifest)"], (command, r.stderr)


def test_train_nproc_beyond_the_cpus_is_refused(tmp_path):
    import os

    n = (os.cpu_count() or 1) + 1
    r = run_cli("train", _two_classes(tmp_path / "d"), "--out", tmp_path / "m", "--nproc", str(n))
    assert r.returncode == 2 and error_lines(r.stderr) == [
        f"instrec: error: --nproc {n}: more processes than this machine's {n - 1} CPUs; at most --nproc {n - 1}"]


def test_train_report_is_checked_before_training(tmp_path):
    """--report on a file failed after training and saving; on the data folder it wrote its files
    among the recordings; both are refused first, nothing written."""
    data = _two_classes(tmp_path / "d")
    (tmp_path / "afile").write_text("x")
    for report, words in ((tmp_path / "afile", "is a file, not a folder"),
                          (data, "holds other files (it is not a report)"),
                          (tmp_path / "m", "--report and --out both name")):
        for extra in ([], ["--cv", "2"]):
            out = [] if extra else ["--out", tmp_path / "m"]
            if extra and report == tmp_path / "m":
                continue
            r = run_cli("train", data, "--recipe", "seed-mfcc", "--epochs", "2", *out, *extra, "--report", report)
            assert r.returncode == 2 and len(error_lines(r.stderr)) == 1 and words in r.stderr, r.stderr
            assert r.stdout == ""
    assert not (tmp_path / "m").exists() and (tmp_path / "afile").read_text() == "x"
    assert sorted(p.name for p in data.iterdir()) == ["cello", "flute"]
    (tmp_path / "rep").mkdir()
    (tmp_path / "rep" / "report.md").write_text("an earlier report")
    r = run_cli("train", data, "--recipe", "seed-mfcc", "--epochs", "2", "--cv", "2", "--report", tmp_path / "rep")
    assert r.returncode == 0, r.stderr  # an earlier report is replaced
    assert "2-fold cross-validation" in r.stdout and (tmp_path / "rep" / "cv.json").is_file()


def test_train_over_an_interrupted_run_needs_resume(tmp_path):
    """A run without --resume silently replaced an interrupted run's checkpoint; --resume with
    none trained from scratch without a word."""
    data = _two_classes(tmp_path / "d")
    ckpt = tmp_path / "m.checkpoint"
    ckpt.mkdir()
    (ckpt / "checkpoint.json").write_text(json.dumps({"format": "instrec-checkpoint", "epoch": 7}))
    r = run_cli("train", data, "--recipe", "seed-mfcc", "--epochs", "20", "--out", tmp_path / "m")
    assert r.returncode == 2 and error_lines(r.stderr) == [
        f"instrec: error: --out {tmp_path / 'm'} holds an interrupted run (epoch 7 of 20): add --resume to continue it, "
        f"or remove its checkpoint {ckpt} or choose another folder"], r.stderr
    assert (ckpt / "checkpoint.json").is_file() and not (tmp_path / "m").exists()
    r = run_cli("train", data, "--recipe", "seed-mfcc", "--epochs", "2", "--out", tmp_path / "new", "--resume")
    assert r.returncode == 0, r.stderr
    assert (f"--resume: no interrupted run to continue ({tmp_path / 'new.checkpoint'} holds no checkpoint); "
            "training from the start") in r.stderr and (tmp_path / "new" / "model.json").is_file()


def test_train_data_line_counts_instruments_of_multilabel_data():
    """It counted label combinations as classes ("6 classes: cello 5, cello;flute;saxophone 1 ...")."""
    from instrec.cli.checks import data_line

    card = {"n": 8, "label_mode": "manifest", "classes": {"cello": 5, "cello;flute;saxophone": 1, "flute;oboe": 1, "unknown": 1}}
    assert data_line(card, True) == ("data: 8 clips (manifest labels) of 4 instruments (multi-label): cello 6, flute 2, "
                                     "oboe 1, saxophone 1; 1 with none")
    assert data_line({"n": 8, "label_mode": "folder", "classes": {"cello": 4, "flute": 4}}, False) == (
        "data: 8 clips (folder labels) of 2 classes: cello 4, flute 4")


def test_train_on_multilabel_data_counts_its_instruments(mixture_data, tmp_path):
    r = run_cli("train", mixture_data, "--recipe", "cnn-multi", "--epochs", "1", "--out", tmp_path / "m")
    assert r.returncode == 0, r.stderr
    line = next(l for l in r.stdout.splitlines() if l.startswith("data: "))
    assert re.fullmatch(r"data: 60 clips \(manifest labels\) of 3 instruments \(multi-label\): saw \d+, sine \d+, square \d+", line), line
    assert sum(map(int, re.findall(r" (\d+)", line.split(": ", 2)[2]))) > 60  # a clip counts for each of its instruments
