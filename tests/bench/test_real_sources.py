"""The second real test set's fetch step (``python -m benchmarks.real_sources fetch``): what it
takes from an npm tarball, and that the folder it writes is read back with the right labels. No
network here: the tarball is built in the test, shaped like the ``tonejs-instrument-*-mp3`` packages."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from benchmarks import real_sources  # the repository root is on sys.path under `python -m pytest`


def _tarball(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_unpack_takes_the_top_level_mp3_notes_only(tmp_path):
    tgz = _tarball(tmp_path / "pkg.tgz", {
        "package/A4.mp3": b"a4",
        "package/F2 v2.mp3": b"f2",
        "package/README.md": b"readme",
        "package/index.js": b"js",
        "package/sub/B4.mp3": b"nested",
        "other/package/C4.mp3": b"deeper",
        "../evil.mp3": b"outside",
    })
    n = real_sources.unpack(tgz, "cello", tmp_path / "out")
    assert n == 2
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert written == ["cello/cello_A4.mp3", "cello/cello_F2_v2.mp3"]
    assert (tmp_path / "out" / "cello" / "cello_F2_v2.mp3").read_bytes() == b"f2"
    assert not (tmp_path / "evil.mp3").exists()


def test_unpacked_folder_loads_with_folder_labels(tmp_path):
    from instrec.data import load_dataset  # lists and labels the files; decoding comes later

    for label in ("flute", "saxophone"):
        tgz = _tarball(tmp_path / f"{label}.tgz", {"package/C4.mp3": b"note", "package/C5.mp3": b"note"})
        real_sources.unpack(tgz, label, tmp_path / "notes")
    (tmp_path / "notes" / "SOURCES.md").write_text("credits\n")
    ds = load_dataset(tmp_path / "notes")
    assert ds.summary()["classes"] == {"flute": 2, "saxophone": 2}
    assert [c.label for c in ds.clips if c.path.name == "saxophone_C4.mp3"] == ["saxophone"]
