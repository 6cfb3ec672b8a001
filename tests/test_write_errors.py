"""Outputs that cannot be written (a full disk, a read-only folder): one line naming the file,
exit code 1, no traceback, and nothing half-written.

The tests run as root, where permissions do not stop a write, so the failures are simulated: the
system call that would fail on a full (ENOSPC) or read-only (EROFS) file system raises, in process.
"""

import errno
import os
import pathlib
import tempfile

import pytest

from conftest import ROOT, error_lines, tone, write
from instrec.cli import main

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
EROFS = OSError(errno.EROFS, os.strerror(errno.EROFS))


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    return [write(root / f"{name}.wav", tone(kind, f0, seconds=2.0)) for name, kind, f0 in
            (("a", "saw", 440.0), ("b", "sine", 330.0))]


def _run(argv, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return e.value.code, out, err


def _one_line(code: int, err: str, path) -> None:
    assert code == 1, err
    assert "Traceback" not in err
    lines = error_lines(err)
    assert len(lines) == 1 and lines[0].startswith("instrec: error: cannot write "), err
    assert str(path) in lines[0]


def _fails_on(monkeypatch, path, error: OSError) -> None:
    """``os.write`` to ``path`` writes half of what it is given, then fails with ``error``."""
    real = os.write

    def write_half(fd, data):
        if os.path.realpath(f"/proc/self/fd/{fd}") == str(pathlib.Path(path).resolve()):
            real(fd, bytes(data[: len(data) // 2]))
            raise error
        return real(fd, data)

    monkeypatch.setattr(os, "write", write_half)


def test_log_append_on_a_full_disk_keeps_the_earlier_lines(clips, tmp_path, monkeypatch, capsys):
    log = tmp_path / "results.jsonl"
    code, _, err = _run(["predict", clips[0], "--log", log, "--format", "json"], capsys)
    assert code is None or code == 0, err
    before = log.read_bytes()
    assert before.count(b"\n") == 1
    _fails_on(monkeypatch, log, ENOSPC)
    code, _, err = _run(["predict", *clips, "--log", log, "--format", "json"], capsys)
    _one_line(code, err, log)
    assert "No space left on device" in err
    assert log.read_bytes() == before  # the torn half-line was cut off again
    monkeypatch.undo()
    code, out, err = _run(["predict", *clips, "--log", log, "--format", "json"], capsys)  # and the batch finishes
    assert code is None or code == 0, err
    assert log.read_bytes().startswith(before) and log.read_bytes().count(b"\n") == 2


def test_log_on_a_read_only_file_system(clips, tmp_path, monkeypatch, capsys):
    log = tmp_path / "ro" / "results.jsonl"
    real = os.open

    def read_only(path, flags, *args, **kwargs):
        if str(path) == str(log) and flags & (os.O_WRONLY | os.O_RDWR):
            raise EROFS
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    code, out, err = _run(["predict", clips[0], "--log", log], capsys)
    _one_line(code, err, log)
    assert "Read-only file system" in err and out == ""


@pytest.mark.parametrize("failure", ["full", "read-only"])
def test_plot(clips, tmp_path, monkeypatch, capsys, failure):
    pytest.importorskip("matplotlib")
    out = tmp_path / "plots" / "timeline.png"
    out.parent.mkdir()
    if failure == "full":
        real = pathlib.Path.write_bytes

        def half(self, data):
            real(self, data[: len(data) // 2])
            raise ENOSPC

        monkeypatch.setattr(pathlib.Path, "write_bytes", half)
    else:
        monkeypatch.setattr(tempfile, "mkstemp", lambda *a, **k: (_ for _ in ()).throw(EROFS))
    code, _, err = _run(["predict", clips[0], "--plot", out], capsys)
    _one_line(code, err, out)
    assert list(out.parent.iterdir()) == []  # no plot, no temporary file


@pytest.mark.parametrize("failure", ["full", "read-only"])
def test_export(tmp_path, monkeypatch, capsys, failure):
    pytest.importorskip("onnx")
    pytest.importorskip("torch")
    out = tmp_path / "model.onnx"
    model = ROOT / "tests" / "fixtures" / "old_bundle_mlp"
    code, _, err = _run(["export", model, "--onnx", out], capsys)
    assert code in (None, 0), err
    yesterday = out.read_bytes()  # an earlier export of the same model, which a new one may replace
    if failure == "full":
        real = pathlib.Path.write_bytes

        def half(self, data):
            real(self, data[: len(data) // 2])
            raise ENOSPC

        monkeypatch.setattr(pathlib.Path, "write_bytes", half)
    else:
        monkeypatch.setattr(os, "replace", lambda *a, **k: (_ for _ in ()).throw(EROFS))
    code, _, err = _run(["export", model, "--onnx", out], capsys)
    _one_line(code, err, out)
    assert out.read_bytes() == yesterday  # the old file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_write_error_is_an_oserror_and_of_the_family(tmp_path, monkeypatch):
    """Code that falls back on an OSError (a bundle's model.onnx going to a cache) keeps doing so."""
    from instrec.errors import InstrecError
    from instrec.errors import WriteError
    from instrec.fileio import write_bytes

    monkeypatch.setattr(os, "replace", lambda *a, **k: (_ for _ in ()).throw(EROFS))
    with pytest.raises(WriteError) as e:
        write_bytes(tmp_path / "x.bin", b"data")
    assert isinstance(e.value, OSError) and isinstance(e.value, InstrecError) and e.value.errno == errno.EROFS
    assert str(e.value) == f"cannot write {tmp_path / 'x.bin'}: Read-only file system"
    assert list(tmp_path.iterdir()) == []


def test_report_folder_on_a_read_only_file_system(clips, tmp_path, monkeypatch, capsys):
    """evaluate --out (as train --report, crossval --out): the report folder cannot be made."""
    data = tmp_path / "data"
    for clip, label in zip(clips, ("cello", "flute")):
        write(data / label / clip.name, tone("saw" if label == "cello" else "sine", 220.0, seconds=1.0))
    out = tmp_path / "report"
    real = pathlib.Path.mkdir

    def read_only(self, *args, **kwargs):
        if self == out:
            raise EROFS
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", read_only)
    code, _, err = _run(["evaluate", "shipped", data, "--out", out, "--jobs", "1"], capsys)
    _one_line(code, err, out)
    assert not out.exists()


@pytest.mark.parametrize("at", ["close", "fsync", "block"])
def test_an_interrupt_at_any_step_of_an_atomic_write_leaves_nothing(tmp_path, monkeypatch, at):
    """Review: a Ctrl-C between the temporary file's making and the ``try`` that removes it left
    the ``.part`` file (render's clean-up covered it for renders only)."""
    import instrec.fileio as fileio

    target = tmp_path / "out" / "x.json"

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    if at == "close":
        real = os.close
        monkeypatch.setattr(fileio.os, "close", lambda fd: (real(fd), interrupt()))
    elif at == "fsync":
        monkeypatch.setattr(fileio.os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        with fileio.atomic_path(target) as tmp:
            tmp.write_text("half")
            if at == "block":
                interrupt()
    assert not target.exists() and list(target.parent.iterdir()) == []
