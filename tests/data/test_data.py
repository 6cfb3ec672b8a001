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
    for bad in ({"flute": ""}, {"": "flute"}, {"flute": None}, {"-": "reed"}):  # review: a mapping to nothing was taken
        with pytest.raises(ParameterError, match="^aliases must map names to labels, both naming a label"):
            load_dataset(tmp_path, aliases=bad)


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


# --- duplicates, manifests over several roots, manifests whose rows all miss, root-level files ---


def _three_classes(root, n=2):
    for k in range(n):
        for kind, name in (("sine", "flute"), ("saw", "cello"), ("square", "trumpet")):
            write(root / "audio" / f"{name}_{k}.wav", tone(kind, 220 + 30 * k))


def test_same_folder_given_twice_is_read_once(tmp_path, monkeypatch):
    write(tmp_path / "data" / "flute" / "a.wav", tone("sine", 440))
    write(tmp_path / "data" / "cello" / "b.wav", tone("saw", 110))
    monkeypatch.chdir(tmp_path)
    ds = load_dataset(["data", "./data/"])
    assert ds.counts() == {"cello": 1, "flute": 1}
    assert len(ds.roots) == 1
    assert len(ds.skipped) == 1 and "given twice" in ds.skipped[0][1]


def test_nested_roots_keep_each_file_once(tmp_path):
    write(tmp_path / "flute" / "flute_1.wav", tone("sine", 440))
    write(tmp_path / "cello" / "cello_1.wav", tone("saw", 110))
    ds = load_dataset([tmp_path, tmp_path / "cello"])
    assert ds.counts() == {"cello": 1, "flute": 1}
    assert [why for _, why in ds.skipped] == [f"also found under {tmp_path}; read once"]


def test_same_file_with_two_labels_from_two_roots_is_refused(tmp_path):
    write(tmp_path / "flute" / "cello_1.wav", tone("sine", 440))
    write(tmp_path / "cello" / "x_1.wav", tone("saw", 110))
    with pytest.raises(DataError, match=r"cello_1\.wav.*'flute'.*'cello'"):
        load_dataset([tmp_path, tmp_path / "flute"])


def test_manifest_duplicate_rows_are_read_once_and_reported(tmp_path):
    _three_classes(tmp_path)
    rows = ["audio/flute_0.wav,flute", "audio/cello_0.wav,cello", "audio/flute_0.wav,flute",
            "./audio/../audio/cello_0.wav,Cello", "audio/trumpet_0.wav,trumpet"]
    (tmp_path / "m.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    ds = load_dataset(tmp_path, manifest=tmp_path / "m.csv")
    assert ds.counts() == {"cello": 1, "flute": 1, "trumpet": 1}
    assert [why for _, why in ds.skipped] == ["listed again in m.csv line 4 (first on line 2); read once",
                                              "listed again in m.csv line 5 (first on line 3); read once"]


def test_manifest_same_file_with_two_labels_is_refused(tmp_path):
    _three_classes(tmp_path)
    (tmp_path / "m.csv").write_text("path,label\naudio/flute_0.wav,flute\naudio/cello_0.wav,cello\n"
                                    "audio/./flute_0.wav,oboe\n")
    with pytest.raises(DataError, match=r"m\.csv: lines 2 and 4 name the same file .*flute.*oboe"):
        load_dataset(tmp_path, manifest=tmp_path / "m.csv")


def test_multilabel_rows_in_another_order_are_the_same_label(tmp_path):
    _three_classes(tmp_path)
    (tmp_path / "m.csv").write_text("path,label\naudio/flute_0.wav,flute;cello\naudio/flute_0.wav,cello;flute\n"
                                    "audio/cello_0.wav,cello\n")
    ds = load_dataset(tmp_path, manifest=tmp_path / "m.csv")
    assert ds.labels == ["cello;flute", "cello"] and len(ds.skipped) == 1


def test_one_manifest_is_read_once_with_several_roots(tmp_path, monkeypatch):
    here, other = tmp_path / "here", tmp_path / "data"
    _three_classes(here)
    (here / "m.csv").write_text("path,label\n" + "".join(f"audio/{n}_0.wav,{n}\n" for n in ("flute", "cello", "trumpet")))
    write(other / "oboe" / "o1.wav", tone("sine", 600))
    write(other / "oboe" / "o2.wav", tone("sine", 650))
    monkeypatch.chdir(here)
    ds = load_dataset([".", "../data"], manifest="m.csv")
    assert ds.counts() == {"cello": 1, "flute": 1, "oboe": 2, "trumpet": 1}
    assert ds.skipped == []
    assert {c.source for c in ds.clips} == {"here", "data"}


def test_manifest_listing_files_outside_every_root_stands_for_them(tmp_path):
    _three_classes(tmp_path / "lib")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "m.csv").write_text("path,label\n../lib/audio/flute_0.wav,flute\n../lib/audio/cello_0.wav,cello\n")
    (tmp_path / "elsewhere").mkdir()
    ds = load_dataset([tmp_path / "elsewhere"], manifest=tmp_path / "labels" / "m.csv")
    assert ds.counts() == {"cello": 1, "flute": 1}


def test_manifest_whose_rows_all_miss_names_the_manifest(tmp_path):
    _three_classes(tmp_path / "data")
    (tmp_path / "data" / "lists").mkdir()
    m = tmp_path / "data" / "lists" / "m.csv"
    m.write_text("path,label\n" + "".join(f"audio/{n}_{k}.wav,{n}\n" for n in ("flute", "cello") for k in (0, 1)))
    with pytest.raises(DataError) as e:
        load_dataset(tmp_path / "data", manifest=m)
    msg = str(e.value)
    assert msg.startswith(f"{m}: none of its 4 rows names an existing file (the first: audio/flute_0.wav, looked for at "
                          f"{(m.parent / 'audio' / 'flute_0.wav').resolve()}")
    assert msg.endswith(f"; it is at {tmp_path / 'data' / 'audio' / 'flute_0.wav'}, but paths are relative to the "
                        "manifest's folder, not the data folder)") and "\n" not in msg
    m.write_text("path,label\n../audio/flute_0.wav,flute\nnope.wav,cello\n")  # one row exists: refused later for 1 class
    ds = load_dataset(tmp_path / "data", manifest=m)
    assert ds.counts() == {"flute": 1} and len(ds.skipped) == 1


def test_header_only_manifest_is_a_clear_error(tmp_path):
    _three_classes(tmp_path)
    (tmp_path / "m.csv").write_text("path,label\n")
    with pytest.raises(DataError, match=r"m\.csv: no rows"):
        load_dataset(tmp_path, manifest=tmp_path / "m.csv")


def test_manifest_with_windows_separators(tmp_path):
    _three_classes(tmp_path)
    (tmp_path / "m.csv").write_text("path,label\naudio\\flute_0.wav,flute\r\naudio\\cello_0.wav,cello\r\n")
    ds = load_dataset(tmp_path, manifest=tmp_path / "m.csv")
    assert ds.counts() == {"cello": 1, "flute": 1}
    assert ds.clips[0].path == tmp_path / "audio" / "flute_0.wav"


def test_manifest_backslash_prefers_a_file_named_so(tmp_path):
    _three_classes(tmp_path)
    write(tmp_path / "audio\\flute_0.wav", tone("square", 300))  # a legal POSIX name
    (tmp_path / "m.csv").write_text("path,label\naudio\\flute_0.wav,flute\naudio/cello_0.wav,cello\n")
    ds = load_dataset(tmp_path, manifest=tmp_path / "m.csv")
    assert ds.clips[0].path == tmp_path / "audio\\flute_0.wav"


def test_files_beside_class_folders_are_skipped(tmp_path):
    fold = tmp_path / "fold"
    write(fold / "cello" / "a.wav", tone("saw", 110))
    write(fold / "flute" / "b.wav", tone("sine", 440))
    write(fold / "stray_1.wav", tone("sine", 500))
    write(fold / "stray_2.wav", tone("sine", 520))
    ds = load_dataset(fold)
    assert ds.label_mode == "folder" and ds.counts() == {"cello": 1, "flute": 1}
    assert ds.skipped == [(str(fold / f"stray_{k}.wav"), "not in a class folder") for k in (1, 2)]
    assert load_dataset(fold, labels="folder").counts() == {"cello": 1, "flute": 1}


def test_a_skipped_file_in_deep_folders_is_named_by_its_whole_path_or_its_start_and_name(tmp_path):
    """Review: paths over 80 characters were cut at the end, so the message named no file
    ('/home/.../session-2024/stray…: not in a class folder')."""
    deep = tmp_path.joinpath(*[f"recording-session-{i:02d}" for i in range(4)])  # about 120 characters
    write(deep / "cello" / "a.wav", tone("saw", 110))
    write(deep / "flute" / "b.wav", tone("sine", 440))
    write(deep / "stray_take_7.wav", tone("sine", 500))
    assert load_dataset(deep).skipped == [(str(deep / "stray_take_7.wav"), "not in a class folder")]

    deeper = tmp_path.joinpath(*[f"recording-session-{i:02d}" for i in range(16)])  # over 300
    write(deeper / "cello" / "a.wav", tone("saw", 110))
    write(deeper / "flute" / "b.wav", tone("sine", 440))
    write(deeper / "stray_take_7.wav", tone("sine", 500))
    ((shown, why),) = load_dataset(deeper).skipped
    assert len(shown) == 300 and "…" in shown and why == "not in a class folder"
    assert str(deeper).startswith(shown.split("…")[0]) and shown.endswith("recording-session-15/stray_take_7.wav")


def test_folder_labels_of_a_folder_of_files_are_its_name(tmp_path, monkeypatch):
    write(tmp_path / "cello" / "a.wav", tone("saw", 110))
    monkeypatch.chdir(tmp_path / "cello")
    ds = load_dataset(".", labels="folder")
    assert ds.counts() == {"cello": 1} and ds.clips[0].source == "cello"


def test_manifest_source_does_not_depend_on_how_its_path_is_spelled(tmp_path, monkeypatch):
    _three_classes(tmp_path / "lib")
    (tmp_path / "lib" / "m.csv").write_text("path,label\naudio/flute_0.wav,flute\naudio/cello_0.wav,cello\n")
    monkeypatch.chdir(tmp_path / "lib")
    assert {c.source for c in load_dataset(".", manifest="m.csv").clips} == {"lib"}
    assert {c.source for c in load_dataset(".", manifest=tmp_path / "lib" / "m.csv").clips} == {"lib"}



def test_labels_that_differ_in_more_than_spelling_are_not_merged(tmp_path):
    # "C#" and "C" both normalise to "c": two instruments must not silently become one class.
    for folder, wave in (("C", "sine"), ("C#", "saw")):
        for k in range(2):
            write(tmp_path / folder / f"{k}.wav", tone(wave, 440))
    with pytest.raises(DataError, match=r"'C#'.*'C'.*class 'c'|'C'.*'C#'.*class 'c'"):
        load_dataset(tmp_path)
    for name in ("x,y_1.wav", "x-y_2.wav"):
        write(tmp_path / "flat" / name, tone("sine", 440))
    with pytest.raises(DataError, match="'x,y'.*'x-y'|'x-y'.*'x,y'"):
        load_dataset(tmp_path / "flat")


def test_spellings_of_one_name_and_aliases_still_merge(tmp_path):
    for name in ("French Horn_1.wav", "french_horn_2.wav", "french-horn_3.wav", "FRENCH-HORN_4.wav",
                 "sax_5.wav", "saxophone_6.wav"):
        write(tmp_path / name, tone("sine", 440))
    (tmp_path / "m.csv").write_text("path,label\nfrench_horn_2.wav,French  Horn\n")
    assert load_dataset(tmp_path, labels="filename").counts() == {"french": 1, "french-horn": 3, "saxophone": 2}
    assert load_dataset(tmp_path, manifest=tmp_path / "m.csv").counts() == {"french-horn": 1}
    assert load_dataset(tmp_path, aliases=parse_aliases(["french=french-horn"])).counts() == {
        "french-horn": 4, "saxophone": 2}


def test_names_that_give_no_label_are_skipped_and_listed(tmp_path):
    write(tmp_path / "flat" / "???_x.wav", tone("sine", 440))
    write(tmp_path / "flat" / "flute_x.wav", tone("sine", 440))
    ds = load_dataset(tmp_path / "flat", labels="filename")
    assert ds.counts() == {"flute": 1}
    assert [(p.endswith("???_x.wav"), why) for p, why in ds.skipped] == [(True, "file name gives no label")]
    write(tmp_path / "tree" / "???" / "a.wav", tone("sine", 440))
    write(tmp_path / "tree" / "flute" / "b.wav", tone("sine", 440))
    ds = load_dataset(tmp_path / "tree", labels="folder")
    assert ds.counts() == {"flute": 1}
    assert [(p.endswith("a.wav"), why) for p, why in ds.skipped] == [(True, "folder name gives no label")]


@pytest.mark.parametrize("item", ["flute=", "=flute", " = ", "flute= -"])
def test_alias_with_an_empty_side_is_refused(item):
    from instrec.pipeline.common import DataOptions

    with pytest.raises(ParameterError, match="--alias takes NAME=LABEL") as e:
        parse_aliases([item])
    assert "\n" not in str(e.value)
    with pytest.raises(ParameterError):
        DataOptions(aliases=[item])


@pytest.mark.parametrize("header", ["path,label,label", "path,Label,label ", "path,label,Path"])
def test_manifest_with_a_column_named_twice_is_refused(tmp_path, header):
    # review: csv.DictReader kept the last of two 'label' columns, silently relabelling every clip
    write(tmp_path / "a.wav", tone("sine", 440))
    (tmp_path / "m.csv").write_text(f"{header}\na.wav,flute,a.wav\n")
    with pytest.raises(DataError, match=r"m\.csv: column '(label|path)' appears twice"):
        load_dataset(tmp_path, manifest=tmp_path / "m.csv")


@pytest.mark.parametrize("sep, name", [(";", "semicolon"), ("\t", "tab")])
def test_manifest_with_another_separator_says_so(tmp_path, sep, name):
    # review: a European Excel export (path;label) got only "has: path;label"
    write(tmp_path / "a.wav", tone("sine", 440))
    (tmp_path / "m.csv").write_text(f"path{sep}label\na.wav{sep}flute\n")
    with pytest.raises(DataError, match=f"{name}-separated\\? columns must be separated by commas"):
        load_dataset(tmp_path, manifest=tmp_path / "m.csv")


@pytest.mark.parametrize("names", [("flute-01", "flute-02"), ("flute1", "flute2"), ("Flute 1", "flute 02")])
def test_file_names_numbered_without_underscore_are_refused(tmp_path, names):
    # review: flute-01.wav, flute-02.wav... trained a model of one class per file ("test accuracy n/a")
    for k, stem in enumerate(names):
        write(tmp_path / f"{stem}.wav", tone("sine", 440 + 10 * k))
    write(tmp_path / "cello.wav", tone("saw", 220))
    with pytest.raises(DataError, match=r"would be two classes, .*part before the first '_' \(flute_01\.wav\)"):
        load_dataset(tmp_path)


def test_file_names_without_underscore_one_per_class_still_load(tmp_path):
    for stem in ("cello", "flute", "violin2", "horn-1"):  # distinct names: the whole stem is the label
        write(tmp_path / f"{stem}.wav", tone("sine", 440))
    write(tmp_path / "violin2_b.wav", tone("saw", 220))
    assert load_dataset(tmp_path).classes == ["cello", "flute", "horn-1", "violin2"]
