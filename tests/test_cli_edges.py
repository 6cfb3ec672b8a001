"""The command line against hostile values: each a one-line error naming the option, the right exit code, nothing written."""

from __future__ import annotations

import socket

import pytest

from conftest import error_lines, run_cli, tone, write


@pytest.mark.parametrize("option, value", [("--max-upload-mb", "nan"), ("--max-upload-mb", "inf"), ("--keep-alive", "nan"),
                                           ("--request-timeout", "-1"), ("--max-duration", "0")])
def test_serve_a_limit_that_is_not_a_positive_number_is_one_line_naming_the_option(option, value):
    r = run_cli("serve", option, value)
    assert r.returncode == 2, r.stderr
    assert error_lines(r.stderr) == [f"instrec: error: {option} {value}: give a positive number"], r.stderr


def test_serve_log_level_is_one_of_those_its_help_names():
    r = run_cli("serve", "--log-level", "bogus")
    assert r.returncode == 2, r.stderr
    lines = error_lines(r.stderr)
    assert len(lines) == 1 and "--log-level" in lines[0] and "bogus" in lines[0], r.stderr


@pytest.fixture
def busy_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_serve_on_a_port_in_use_is_one_line_exit_1(busy_port):
    pytest.importorskip("uvicorn")
    r = run_cli("serve", "--port", busy_port)
    assert r.returncode == 1, r.stderr  # uvicorn's own: 3, after four log lines
    assert error_lines(r.stderr) == [f"instrec: error: cannot listen on 127.0.0.1:{busy_port} (--host, --port): "
                                     "Address already in use"], r.stderr


@pytest.mark.parametrize("host", ["", " "])
def test_serve_an_empty_host_is_refused_not_every_interface(host, busy_port):
    pytest.importorskip("uvicorn")
    # the busy port makes the unfixed server fail fast instead of listening everywhere
    r = run_cli("serve", "--host", host, "--port", busy_port)
    assert r.returncode == 2, r.stderr
    assert error_lines(r.stderr) == [f"instrec: error: --host {host!r}: name an address to listen on "
                                     "(127.0.0.1, or 0.0.0.0 for every interface)"], r.stderr


def test_serve_a_host_that_does_not_resolve_is_one_line():
    pytest.importorskip("uvicorn")
    r = run_cli("serve", "--host", "no such host", "--port", "0")
    assert r.returncode == 2, r.stderr
    lines = error_lines(r.stderr)
    assert len(lines) == 1 and lines[0].startswith("instrec: error: --host 'no such host': not an address"), r.stderr


@pytest.fixture
def recordings(tmp_path):
    """A folder of labelled recordings the shipped model knows: a report must not land among them."""
    for label, f0 in (("flute", 880.0), ("cello", 130.0)):
        for k in range(2):
            write(tmp_path / "rec" / label / f"{label}{k}.wav", tone("sine" if label == "flute" else "saw", f0 * (k + 1), seed=k))
    return tmp_path / "rec"


@pytest.mark.parametrize("command", ["evaluate", "crossval"])
def test_a_report_into_a_folder_of_recordings_is_refused_before_any_work(command, recordings):
    before = sorted(p.relative_to(recordings) for p in recordings.rglob("*"))
    args = ("evaluate", "shipped", recordings) if command == "evaluate" else ("crossval", recordings)
    r = run_cli(*args, "--out", recordings)
    assert r.returncode == 2, r.stderr
    assert error_lines(r.stderr) == [f"instrec: error: --out {recordings}: holds other files (it is not a report): "
                                     "name a new or empty folder"], r.stderr
    assert sorted(p.relative_to(recordings) for p in recordings.rglob("*")) == before


def test_a_report_folder_of_an_earlier_report_is_written_again(tmp_path):
    from instrec.cli.checks import check_report

    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "metrics.json").write_text("{}")
    check_report(tmp_path / "r", None, "--out")  # an earlier report: rewritten, as a rerun does


def test_demo_into_a_folder_of_other_files_is_refused_before_any_work(recordings, tmp_path):
    # --data names nothing there: the unfixed demo fails on it (exit 1) after starting, not on --out
    r = run_cli("demo", "--data", tmp_path / "nothere", "--out", recordings)
    assert r.returncode == 2, r.stderr
    assert error_lines(r.stderr) == [f"instrec: error: --out {recordings}: holds other files (cello, ...), not an "
                                     "earlier demo's: name a new or empty folder"], r.stderr
    assert not (recordings / "models").exists() and not (recordings / "reports").exists()


def test_demo_into_a_file_is_one_line(tmp_path):
    f = write(tmp_path / "a.wav", tone("sine", 440.0))
    r = run_cli("demo", "--data", tmp_path / "nothere", "--out", f)
    assert r.returncode == 2, r.stderr
    assert error_lines(r.stderr) == [f"instrec: error: --out {f}: is a file, not a folder; name a folder for the demo"], r.stderr


@pytest.mark.parametrize("command", ["train", "calibrate"])
def test_a_model_into_a_file_is_one_line_before_any_work(command, recordings, tmp_path):
    """train and calibrate --out FILE trained (or fitted) first and only then failed to save: exit 1, the run lost."""
    f = tmp_path / "model.json"
    f.write_text("{}")
    args = ("train", recordings, "--recipe", "mfcc-stats") if command == "train" else ("calibrate", "shipped", recordings)
    r = run_cli(*args, "--out", f)
    assert r.returncode == 2, r.stderr
    assert len(error_lines(r.stderr)) == 1 and "is a file, not a folder" in r.stderr, r.stderr
    assert f.read_text() == "{}"


def test_demo_into_an_earlier_demo_folder_goes_on(tmp_path):
    from instrec.cli.checks import check_demo_out

    for name in ("data", "models", "reports"):
        (tmp_path / name).mkdir()
    (tmp_path / "report.md").write_text("# instrec demo")
    check_demo_out(tmp_path)  # resumed: its render is reused


@pytest.mark.parametrize("name, option, words", [("a.wav", "--plot", "the picture is a PNG; name a .png file"),
                                                 ("a.svg", "--plot", "the picture is a PNG; name a .png file"),
                                                 ("a.wav", "--log", "is one of the recordings to predict; name another file")])
def test_predict_output_is_never_the_recording_nor_a_png_under_another_name(tmp_path, name, option, words):
    wav = write(tmp_path / "a.wav", tone("sine", 440.0))
    before = wav.read_bytes()
    r = run_cli("predict", wav, option, tmp_path / name)
    assert r.returncode == 2, r.stderr
    assert error_lines(r.stderr) == [f"instrec: error: {option} {tmp_path / name}: {words}"], r.stderr
    assert wav.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["a.wav"]


def test_a_feature_cache_that_cannot_be_kept_is_said_once(tone_data, tmp_path, monkeypatch):
    """Review: $INSTREC_CACHE naming a file (or a folder that cannot be made) ran without a cache and
    without a word; the run goes on, and says so in one line."""
    from conftest import run_cli

    afile = tmp_path / "a.wav"
    afile.write_bytes(b"x")
    monkeypatch.setenv("INSTREC_CACHE", str(afile))
    r = run_cli("train", tone_data, "--recipe", "mfcc-linear", "--out", tmp_path / "m1")
    warned = [line for line in r.stderr.splitlines() if "feature cache" in line]
    assert r.returncode == 0 and len(warned) == 1 and "$INSTREC_CACHE" in warned[0] and str(afile) in warned[0], r.stderr
    assert afile.read_bytes() == b"x"
    monkeypatch.setenv("INSTREC_CACHE", str(tmp_path / "fine"))
    r = run_cli("train", tone_data, "--recipe", "mfcc-linear", "--out", tmp_path / "m2")
    assert r.returncode == 0 and "feature cache" not in r.stderr


def test_a_render_that_wrote_no_clip_is_an_error_not_a_success(tmp_path):
    """``render --soundfont freepats --instruments viola`` (freepats has no viola; salamander with the default
    instruments alike) said 'wrote 0 clips' and exited 0, as if the data set were made; render-music exits 1."""
    from instrec.data.render import SOUNDFONTS

    if not SOUNDFONTS["freepats"].is_installed():
        pytest.skip("needs freepats and TiMidity++")
    r = run_cli("render", tmp_path / "out", "--soundfont", "freepats", "--instruments", "viola", "--per-class", "1",
                "--seconds", "0.3")
    assert r.returncode == 1, (r.stdout, r.stderr)
    lines = error_lines(r.stderr)
    assert "freepats/viola" in lines[-2] and lines[-1].startswith("instrec: error: no clip written to "), r.stderr
    assert lines[-3] == "skipped 1 item(s):", r.stderr  # an instrument of a library, not a file


@pytest.mark.parametrize("command", ["render", "render-music"])
def test_an_empty_instruments_list_names_the_option(command, tmp_path):
    """``--instruments ,`` said 'instruments is empty', not the option's name as every other message does."""
    r = run_cli(command, tmp_path / "out", "--instruments", " , ")
    assert r.returncode == 2, r.stderr
    assert error_lines(r.stderr) == ["instrec: error: --instruments is empty; name at least one instrument"], r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, words", [(("--data", "nosuch"), "nosuch: no such file or folder"), (("--out", ""), "--out is empty"),
                                         (("--out", " "), "--out is empty"), (("--seed", "-1"), "seed must be")])
def test_demo_bad_values_are_usage_errors_before_any_work(tmp_path, args, words):
    """Review: --data nosuch exited 1 after making the demo folder; --out '' was taken for the current folder."""
    r = run_cli("demo", *(["--out", tmp_path / "demo"] if "--out" not in args else []), *args, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = error_lines(r.stderr)
    assert len(lines) == 1 and words in lines[0], r.stderr
    assert not (tmp_path / "demo").exists()


def test_spectrograms_out_that_is_a_file_is_a_usage_error(tmp_path):
    write(tmp_path / "data" / "a.wav", tone("sine", 440, seconds=0.5))
    (tmp_path / "out").write_text("not a folder")
    r = run_cli("spectrograms", tmp_path / "data", tmp_path / "out")
    assert r.returncode == 2, r.stderr
    assert error_lines(r.stderr) == [f"instrec: error: {tmp_path / 'out'}: is a file, not a folder; name a folder for the pictures"]


def _tones(root, counts):
    for kind, n in counts.items():
        for k in range(n):
            write(root / kind / f"{k}.wav", tone(kind, 110.0 * (k + 2), seed=k))
    return root


def test_train_prints_what_it_learnt_from_then_the_score_then_where_the_model_is(tmp_path):
    """The score came first, 'data:' (what it learnt from) after it, 'model saved to' in the middle of
    the score line; and a model without validation rows was told 'answers unknown only for the
    class unknown' (a class it may not have) instead of what the user can do: instrec calibrate."""
    data = _tones(tmp_path / "d", {"sine": 3, "square": 3, "saw": 3})
    r = run_cli("train", data, "--recipe", "mfcc-linear", "--out", tmp_path / "m", "-j", "1")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    order = [next(i for i, line in enumerate(lines) if line.startswith(p)) for p in ("data: ", "mfcc-linear: test ", "calibration: ")]
    assert order == sorted(order), r.stdout
    assert lines[-1] == f"model saved to {tmp_path / 'm'}", r.stdout
    cal = next(line for line in lines if line.startswith("calibration: "))
    assert "class unknown" not in cal and "instrec calibrate MODEL DATA --out NEW" in cal, cal


def test_train_says_when_the_test_score_rests_on_few_clips(tmp_path):
    """'test accuracy 50.00%, ... on 2 held-back clips' and 'ROC AUC n/a' came with no word of how
    little they rest on, or why n/a."""
    r = run_cli("train", _tones(tmp_path / "d", {"sine": 3, "square": 3, "saw": 3}), "--recipe", "mfcc-linear",
                "--out", tmp_path / "m", "-j", "1")
    assert r.returncode == 0, r.stderr
    note = [line for line in r.stdout.splitlines() if line.startswith("note: ")]
    assert len(note) == 1 and "2 test clips" in note[0] and "50%" in note[0] and "--cv" in note[0], r.stdout
    assert "no test clip of " in note[0], note  # 2 clips, 3 classes
    r = run_cli("train", _tones(tmp_path / "e", {"sine": 16, "square": 2}), "--recipe", "mfcc-linear", "--split",
                "stratified", "--out", tmp_path / "m2", "-j", "1")
    assert r.returncode == 0 and "ROC AUC n/a" in r.stdout, (r.stdout, r.stderr)
    note = [line for line in r.stdout.splitlines() if line.startswith("note: ")]
    assert len(note) == 1 and "ROC AUC n/a" in note[0] and "one class" in note[0], r.stdout


def test_train_on_enough_test_clips_prints_no_note(tone_data, tmp_path):
    r = run_cli("train", tone_data, "--recipe", "mfcc-linear", "--test-size", "0.7", "--out", tmp_path / "m", "-j", "1")
    assert r.returncode == 0 and " on 21 held-back clips " in r.stdout, (r.stdout, r.stderr)
    assert "note: " not in r.stdout, r.stdout
