import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from instrec.data import load_dataset
from instrec.data.folder import parse_aliases
from instrec.data.splits import split_indices
from instrec.errors import DataError, ParameterError

from conftest import real_data_or_skip, tone, write


def test_folder_labels_detected(tone_data):
    ds = load_dataset(tone_data)
    assert ds.label_mode == "folder"
    assert ds.counts() == {"saw": 10, "sine": 10, "square": 10}


def test_filename_labels_and_aliases(tmp_path):
    for name in ("sax_A4_1_forte_x.wav", "saxophone_B4_1_piano_x.wav", "flute_A4_1_forte_normal.wav", "Oboe_C5.wav"):
        write(tmp_path / name, tone("sine", 440))
    ds = load_dataset(tmp_path)
    assert ds.label_mode == "filename"
    assert ds.counts() == {"flute": 1, "oboe": 1, "saxophone": 2}
    ds = load_dataset(tmp_path, aliases={})
    assert ds.counts() == {"flute": 1, "oboe": 1, "sax": 1, "saxophone": 1}
    ds = load_dataset(tmp_path, aliases=parse_aliases(["oboe=reed", "flute=reed"]))
    assert ds.counts() == {"reed": 2, "saxophone": 2}


def test_manifest_labels_groups_and_missing_rows(tmp_path):
    write(tmp_path / "a.wav", tone("sine", 440))
    write(tmp_path / "sub" / "b.wav", tone("saw", 220))
    (tmp_path / "manifest.csv").write_text("path,label,group,source\na.wav,Flute,g1,s1\nsub/b.wav,cello,g2,s2\ngone.wav,cello,g3,s1\n")
    ds = load_dataset(tmp_path)
    assert ds.label_mode == "manifest"
    assert [(c.label, c.group, c.source) for c in ds.clips] == [("flute", "g1", "s1"), ("cello", "g2", "s2")]
    assert len(ds.skipped) == 1 and "gone.wav" in ds.skipped[0][0] and "missing" in ds.skipped[0][1]


def test_manifest_without_columns_is_a_clear_error(tmp_path):
    write(tmp_path / "a.wav", tone("sine", 440))
    (tmp_path / "m.csv").write_text("file,instrument\na.wav,flute\n")
    with pytest.raises(DataError, match="'path' and 'label'"):
        load_dataset(tmp_path, manifest=tmp_path / "m.csv")


def test_missing_path_and_empty_folder(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match="no audio files"):
        load_dataset(tmp_path / "empty")
    with pytest.raises(ParameterError, match="labels"):
        load_dataset(tmp_path, labels="colour")


def test_several_roots_keep_their_source(tmp_path):
    for src in ("lib1", "lib2"):
        write(tmp_path / src / "flute_A4_x.wav", tone("sine", 440))
        write(tmp_path / src / "cello_A2_x.wav", tone("saw", 110))
    ds = load_dataset([tmp_path / "lib1", tmp_path / "lib2"])
    assert sorted({c.source for c in ds.clips}) == ["lib1", "lib2"]
    assert ds.counts() == {"cello": 2, "flute": 2}


def test_real_data_reads_as_six_classes_of_100():
    ds = load_dataset(real_data_or_skip())
    assert ds.label_mode == "folder"
    assert ds.counts() == {c: 100 for c in ("cello", "flute", "oboe", "saxophone", "trumpet", "viola")}


def test_random_split_is_the_tutorials_train_test_split():
    labels = [f"c{i % 6}" for i in range(600)]
    tr, te = split_indices(labels, method="random", test_size=0.2, seed=0)
    ref_tr, ref_te = train_test_split(np.arange(600), test_size=0.2, random_state=0)
    assert tr.tolist() == ref_tr.tolist() and te.tolist() == ref_te.tolist()
    assert len(te) == 120


def test_stratified_split_keeps_proportions():
    labels = ["a"] * 80 + ["b"] * 20
    tr, te = split_indices(labels, method="stratified", test_size=0.2, seed=3)
    assert sum(labels[i] == "b" for i in te) == 4


@pytest.mark.parametrize("kw", [{"method": "bogus"}, {"test_size": 0.0}, {"test_size": 1.5}])
def test_bad_split_arguments(kw):
    with pytest.raises(ParameterError):
        split_indices(["a", "b"] * 5, **kw)
