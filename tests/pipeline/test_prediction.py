"""predict_paths on several processes and the results files (--out): the same answers as one process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from instrec.errors import ParameterError
from instrec.inference import load_model
from instrec.pipeline import predict_paths, write_results
from instrec.pipeline.prediction import collect_files
from conftest import run_cli


def test_a_pool_answers_as_one_process(tone_data, tmp_path):
    model = load_model()
    (tmp_path / "bad.wav").write_bytes(b"RIFF junk")
    paths = [tone_data, tmp_path / "bad.wav", tmp_path / "absent.wav"]
    one, skipped_one = predict_paths(model, paths)
    two, skipped_two = predict_paths(model, paths, jobs=2)
    assert [r.to_dict() for r in one] == [r.to_dict() for r in two]
    assert sorted(skipped_one) == sorted(skipped_two) and len(skipped_one) == 2


def test_results_files(tone_data, tmp_path):
    results, _ = predict_paths(load_model(), [tone_data])
    jl = write_results(results, tmp_path / "r.jsonl")
    assert [json.loads(l) for l in jl.read_text().splitlines()] == [r.to_row(3) for r in results]
    pq = pytest.importorskip("pyarrow.parquet", reason="Parquet needs pyarrow ([cluster] extra)")
    rows = pq.read_table(write_results(results, tmp_path / "r.parquet")).to_pylist()
    assert [(d["path"], d["label"], d["probabilities"]) for d in rows] == [(r.path, r.label, r.probabilities) for r in results]
    assert not list(tmp_path.glob(".*part*"))  # atomic: no temporary file left


def test_cli_jobs_and_out(tone_data, tmp_path):
    one = run_cli("predict", tone_data, "--format", "json")
    two = run_cli("predict", tone_data, "--format", "json", "--jobs", "2", "--out", tmp_path / "r.jsonl")
    assert one.returncode == two.returncode == 0, two.stderr
    assert one.stdout == two.stdout
    assert [json.loads(l) for l in (tmp_path / "r.jsonl").read_text().splitlines()] == json.loads(one.stdout)
    bad = run_cli("predict", tone_data, "--out", tmp_path / "r.txt")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and ".jsonl or .parquet" in bad.stderr


def test_log_is_never_a_file_of_the_users(tone_data, tmp_path):
    """--log on a file that is not a prediction log is refused and the file left as it was (it was
    cut after its first line that was no prediction); a torn last line of a log is still dropped."""
    model = load_model()
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"my notes\nmore notes")
    with pytest.raises(ParameterError, match="not a prediction log .line 1"):
        predict_paths(model, [tone_data], log=notes)
    assert notes.read_bytes() == b"my notes\nmore notes"

    log = tmp_path / "log.jsonl"
    full, _ = predict_paths(model, [tone_data], log=log)
    lines = log.read_bytes().splitlines(keepends=True)
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_bytes(b"".join(lines[:3]) + b"a line of the user's\n" + b"".join(lines[3:]))
    with pytest.raises(ParameterError, match="line 4 is not a prediction"):
        predict_paths(model, [tone_data], log=mixed)
    assert mixed.read_bytes().count(b"\n") == len(lines) + 1  # nothing after the foreign line was deleted

    for torn in (lines[5][:30], lines[5][:4]):  # killed mid-line, even inside the first key
        log.write_bytes(b"".join(lines[:5]) + torn)
        again, _ = predict_paths(model, [tone_data], log=log)
        assert [r.to_dict() for r in again] == [r.to_dict() for r in full]
        assert log.read_bytes().count(b"\n") == len(full)


def test_log_resumed_with_other_settings_is_refused(tone_data, tmp_path):
    """The answers a log holds were made with one model and settings: resuming with another model
    or another --window would mix answers, so it is refused, naming what changed."""
    log = tmp_path / "log.jsonl"
    model = load_model()
    predict_paths(model, [tone_data], log=log, window=1.0)
    before = log.read_bytes()
    with pytest.raises(ParameterError, match="window 1.0"):
        predict_paths(model, [tone_data], log=log, window=2.0)
    with pytest.raises(ParameterError, match="min_confidence"):
        predict_paths(load_model(min_confidence=0.9), [tone_data], log=log, window=1.0)
    with pytest.raises(ParameterError, match="another model"):
        predict_paths(model.restrict("flute,viola,cello,oboe,trumpet,saxophone"), [tone_data], log=log, window=1.0)
    assert log.read_bytes() == before
    again, _ = predict_paths(load_model(engine="torch"), [tone_data], log=log, window=1.0)  # the same bundle, either engine
    assert len(again) == before.count(b"\n") and log.read_bytes() == before


def test_cli_log_errors_are_usage_errors(tone_data, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me\n")
    r = run_cli("predict", tone_data, "--log", notes)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "not a prediction log" in r.stderr, r.stderr
    assert notes.read_text() == "keep me\n"
    same = run_cli("predict", tone_data, "--log", tmp_path / "r.jsonl", "--out", tmp_path / "r.jsonl")
    assert same.returncode == 2 and same.stderr.count("\n") == 1 and "both name" in same.stderr, same.stderr
    assert not (tmp_path / "r.jsonl").exists()
    not_model = run_cli("predict", "--model", tmp_path, tone_data)  # a folder, but not a model
    assert not_model.returncode == 2 and "not a model bundle" in not_model.stderr, not_model.stderr


def test_log_resume_matches_files_however_their_paths_are_spelt(tone_data, tmp_path, monkeypatch):
    """Review: `predict d3 --log l` then `predict $PWD/d3 --log l` predicted every file again and
    logged each twice. Files are matched on their resolved path, and answered as spelt this time."""
    model = load_model()
    monkeypatch.chdir(tone_data.parent)
    log = tmp_path / "log.jsonl"
    first, _ = predict_paths(model, [tone_data.name], log=log)
    assert len(first) == 30 and all(not r.path.startswith("/") for r in first)
    (tmp_path / "link").symlink_to(tone_data)
    calls = []
    original = model.predict_file
    monkeypatch.setattr(model, "predict_file", lambda f, **kw: calls.append(f) or original(f, **kw))
    for spelling in (str(tone_data), tmp_path / "link", f"./{tone_data.name}"):
        again, skipped = predict_paths(model, [spelling], log=log)
        assert calls == [] and not skipped
        assert [r.path for r in again] == [str(p) for p in sorted(Path(spelling).rglob("*.wav"))]
        assert [r.probabilities for r in again] == [r.probabilities for r in first]
    assert len(log.read_text().splitlines()) == 30  # nothing appended twice


def test_a_file_named_twice_in_two_spellings_is_predicted_once(tone_data, monkeypatch):
    monkeypatch.chdir(tone_data.parent)
    files, skipped = collect_files([tone_data.name, tone_data, tone_data / "saw" / ".." / "saw" / "saw_00.wav"])
    assert len(files) == 30 and not skipped and files[0].startswith(tone_data.name)


@pytest.mark.parametrize("option", ["--out", "--log", "--plot"])
def test_outputs_are_checked_before_predicting(tone_data, tmp_path, monkeypatch, option):
    """Review: `predict d3 --out /proc/r.jsonl` predicted the whole batch, then failed to write it.
    An output that cannot be written fails first, in one line: exit 1 where it cannot be made,
    exit 2 for a folder named as the file."""
    import instrec.pipeline

    def never(*a, **kw):
        raise AssertionError("predicted before checking the outputs")

    monkeypatch.setattr(instrec.pipeline, "predict_paths", never)
    suffix = {"--out": ".jsonl", "--log": ".jsonl", "--plot": ".png"}[option]
    wav = next(tone_data.rglob("*.wav"))
    (tmp_path / "afile").write_text("x")
    (tmp_path / f"d{suffix}").mkdir()
    for target, code, words in ((f"/proc/r{suffix}", 1, f"cannot write /proc/r{suffix}"),
                                (tmp_path / "afile" / f"r{suffix}", 1, "is not a folder"),
                                (tmp_path / f"d{suffix}", 2, "is a folder; name a file")):
        r = run_cli("predict", wav, option, target)
        assert r.returncode == code and r.stderr.count("\n") == 1 and words in r.stderr, r.stderr
    assert (tmp_path / "afile").read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["afile", f"d{suffix}"]


def test_a_file_name_that_is_not_utf8_is_predicted_logged_and_resumed(tone_data, tmp_path):
    """Review: such a file (bytes b'bad\\xff.wav') was skipped as 'not readable as audio' (soundfile
    could not encode its name); decoded, --log and --out .jsonl crashed writing it (UnicodeEncodeError)."""
    import os
    import shutil

    src = next(p for p in sorted(Path(tone_data).rglob("*.wav")))
    folder = tmp_path / "odd"
    folder.mkdir()
    shutil.copy(src, os.fsdecode(os.fsencode(folder) + b"/bad\xff.wav"))
    model = load_model()
    log, out = tmp_path / "log.jsonl", tmp_path / "out.jsonl"
    results, skipped = predict_paths(model, [folder], log=log)
    assert not skipped and len(results) == 1
    write_results(results, out)
    for f in (log, out):
        (row,) = [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines()]
        assert os.fsencode(row["path"]).endswith(b"/bad\xff.wav") and row["label"] == results[0].label
    again, _ = predict_paths(model, [folder], log=log)  # resumed: read back, matched, not predicted again
    assert len(again) == 1 and len(log.read_text(encoding="utf-8").splitlines()) == 1


def test_one_path_given_as_a_string_is_one_path(tmp_path, monkeypatch):
    """Review: a str was iterated as a sequence of paths, one a character: predict_paths(model, "d/x")
    predicted every audio file under "/" (and "d", "x", ...)."""
    (tmp_path / "a.wav").write_bytes(b"RIFF junk")
    monkeypatch.chdir(tmp_path)
    assert collect_files("a.wav") == (["a.wav"], [])  # not "a", ".", "w", "v": "." holds a.wav
    assert collect_files(Path("a.wav")) == (["a.wav"], [])
    assert collect_files("absent") == ([], [("absent", "no such file or folder")])
