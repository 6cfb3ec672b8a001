"""Group splits and cross-validation folds on real folders of tones (no training)."""

import re
from collections import Counter

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from conftest import tone, write
from instrec.data.folder import load_dataset
from instrec.data.splits import clip_groups, kfold_indices, split_indices, stratum
from instrec.errors import DataError, ParameterError

NOTES = ("A4", "As4", "C5", "D5", "E5", "G5")  # MIDI 69, 70, 72, 74, 76, 79


@pytest.fixture(scope="module")
def named(tmp_path_factory):
    """Tutorial-style file names (label_note_k_dynamic_x.wav): 2 labels x 6 notes x 2 takes."""
    root = tmp_path_factory.mktemp("named")
    for label, kind in (("flute", "sine"), ("cello", "saw")):
        for n, note in enumerate(NOTES):
            for k in range(2):
                write(root / f"{label}_{note}_{k}_forte_x.wav", tone(kind, 220 + 20 * n, seconds=0.2, seed=k))
    return root


@pytest.fixture(scope="module")
def with_manifest(tmp_path_factory):
    """A manifest with pitch, a custom column (player) and groups; file names carry no note."""
    root = tmp_path_factory.mktemp("manifest")
    rows = ["path,label,source,group,pitch,player"]
    for k in range(8):
        label = "flute" if k % 2 else "cello"
        write(root / f"clip{k}.wav", tone("sine", 300 + 10 * k, seconds=0.2))
        rows.append(f"clip{k}.wav,{label},{'a' if k < 4 else 'b'},g{k // 2},{60 + k % 3},{'ann' if k % 4 < 2 else 'bob'}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


def test_pitch_from_file_names_and_group_split_keeps_groups_apart(named):
    ds = load_dataset(named)
    groups = clip_groups(ds.clips, "pitch")
    assert sorted(set(groups), key=int) == ["69", "70", "72", "74", "76", "79"]
    assert dict(zip((c.path.name for c in ds.clips), groups))["flute_As4_1_forte_x.wav"] == "70"
    for seed in range(5):
        tr, te = split_indices(ds.labels, method="group", test_size=0.34, seed=seed, groups=groups)
        assert sorted(tr.tolist() + te.tolist()) == list(range(len(groups)))
        assert not {groups[i] for i in tr} & {groups[i] for i in te}
        assert len({groups[i] for i in te}) == 3  # ceil(0.34 * 6) of the groups held back


def test_pitch_class_and_rendered_names(named, tmp_path):
    ds = load_dataset(named)
    by_pc = dict(zip((c.path.name for c in ds.clips), clip_groups(ds.clips, "pitch_class")))
    assert by_pc["cello_As4_0_forte_x.wav"] == "As" and by_pc["flute_C5_1_forte_x.wav"] == "C"
    # the rendered file names: label_note_held_dynamic_source_k
    write(tmp_path / "flute_G5_1.5_forte_fluidr3_017.wav", tone("sine", 300, seconds=0.1))
    write(tmp_path / "cello_C2_0.5_piano_fluidr3_003.wav", tone("saw", 300, seconds=0.1))
    clips = load_dataset(tmp_path).clips
    assert clip_groups(clips, "pitch") == ["36", "79"]  # sorted: cello first
    assert clip_groups(clips, "pitch_class") == ["C", "G"]


def test_groups_from_manifest(with_manifest):
    clips = load_dataset(with_manifest).clips
    assert clip_groups(clips, "pitch") == [str(60 + k % 3) for k in range(8)]
    assert clip_groups(clips, "pitch_class") == [("C", "Cs", "D")[k % 3] for k in range(8)]
    assert clip_groups(clips, "source") == ["a"] * 4 + ["b"] * 4
    assert clip_groups(clips, "group") == [f"g{k // 2}" for k in range(8)]
    assert clip_groups(clips, "player") == ["ann", "ann", "bob", "bob"] * 2
    assert clip_groups(clips, "Player") == clip_groups(clips, "player")


def test_missing_group_names_the_file_and_key(named, with_manifest):
    clips = load_dataset(with_manifest).clips
    with pytest.raises(DataError) as e:
        clip_groups(clips, "velocity")
    assert "clip0.wav" in str(e.value) and "velocity" in str(e.value) and "\n" not in str(e.value)
    named_clips = load_dataset(named).clips
    with pytest.raises(DataError, match="cannot be grouped by group: "):  # review: was "no 'group' group"
        clip_groups(named_clips, "group")  # no manifest, no group column
    with pytest.raises(ParameterError):
        clip_groups(named_clips, "")


def test_no_note_in_file_name(tmp_path):
    write(tmp_path / "flute_loud_1.wav", tone("sine", 300, seconds=0.1))
    with pytest.raises(DataError) as e:
        clip_groups(load_dataset(tmp_path).clips, "pitch")
    assert "flute_loud_1.wav" in str(e.value) and "pitch" in str(e.value)


def test_group_split_arguments():
    labels = ["a", "b"] * 5
    with pytest.raises(ParameterError):
        split_indices(labels, method="group")  # no groups
    with pytest.raises(ParameterError):
        split_indices(labels, method="group", groups=["x"] * 3)  # wrong length
    with pytest.raises(DataError, match="at least 2 groups"):
        split_indices(labels, method="group", groups=["x"] * 10)


def test_random_split_is_still_the_tutorials_train_test_split():
    labels = [f"c{i % 6}" for i in range(600)]
    for seed in (0, 7):
        tr, te = split_indices(labels, method="random", test_size=0.2, seed=seed)
        ref_tr, ref_te = train_test_split(np.arange(600), test_size=0.2, random_state=seed)
        assert tr.tolist() == ref_tr.tolist() and te.tolist() == ref_te.tolist()


def test_kfold_partitions_and_stratifies():
    labels = ["a"] * 30 + ["b"] * 15 + ["c"] * 6
    folds = kfold_indices(labels, 3, seed=0)
    assert len(folds) == 3
    tests = np.concatenate([te for _, te in folds])
    assert sorted(tests.tolist()) == list(range(len(labels)))
    for tr, te in folds:
        assert not set(tr.tolist()) & set(te.tolist()) and len(tr) + len(te) == len(labels)
        assert Counter(labels[i] for i in te) == {"a": 10, "b": 5, "c": 2}
    assert [te.tolist() for _, te in kfold_indices(labels, 3, seed=0)] == [te.tolist() for _, te in folds]
    assert [te.tolist() for _, te in kfold_indices(labels, 3, seed=1)] != [te.tolist() for _, te in folds]


def test_kfold_with_groups_keeps_each_group_in_one_test_fold():
    rng = np.random.default_rng(0)
    labels = [str(x) for x in rng.choice(["a", "b", "c"], 60)]
    groups = [f"p{x}" for x in rng.integers(0, 12, 60)]
    folds = kfold_indices(labels, 4, seed=0, groups=groups)
    assert len(folds) == 4
    assert sorted(np.concatenate([te for _, te in folds]).tolist()) == list(range(60))
    seen = {}
    for f, (tr, te) in enumerate(folds):
        assert not {groups[i] for i in tr} & {groups[i] for i in te}
        for g in {groups[i] for i in te}:
            assert seen.setdefault(g, f) == f  # a group lies in one test fold only


@pytest.mark.parametrize("k", [1, 0, -3, 2.5, True])
def test_kfold_needs_two_folds(k):
    with pytest.raises(ParameterError):
        kfold_indices(["a", "b"] * 10, k, seed=0)


def test_kfold_too_few_clips_or_groups():
    with pytest.raises(DataError, match="'b' has 2"):
        kfold_indices(["a"] * 10 + ["b"] * 2, 3, seed=0)
    with pytest.raises(DataError, match="at least 5 groups"):
        kfold_indices(["a", "b"] * 10, 5, seed=0, groups=["x", "y", "z", "w"] * 5)


def test_leave_one_library_out_holds_sources_of_one_library_out_together():
    from types import SimpleNamespace

    from instrec.data.splits import LeaveOneSourceOut

    clips = [SimpleNamespace(source=s, label="x") for s in ["fluidr3"] * 3 + ["musescore"] * 2 + ["timgm6mb"] * 4 + ["freepats"]]
    plain = list(LeaveOneSourceOut().split(clips))
    assert [f[3]["held_out"] for f in plain] == ["fluidr3", "freepats", "musescore", "timgm6mb"]
    cv = LeaveOneSourceOut(libraries={"fluidr3": "fluid", "musescore": "fluid"})
    folds = list(cv.split(clips))
    assert [f[3]["held_out"] for f in folds] == ["fluid", "freepats", "timgm6mb"]
    _, tr, te, info = folds[0]
    assert sorted(te.tolist()) == [0, 1, 2, 3, 4] and info["held_out_sources"] == ["fluidr3", "musescore"]
    assert not set(tr.tolist()) & set(te.tolist()) and len(tr) + len(te) == len(clips)
    assert cv.title() == "leave-one-library-out" and cv.record()["libraries"]["musescore"] == "fluid"
    with pytest.raises(DataError, match="at least 2 libraries"):
        cv.check(clips[:5])
    with pytest.raises(ParameterError):
        LeaveOneSourceOut(libraries={"a": 3})


def test_multilabel_clips_are_stratified_by_their_rarest_instrument():
    labels = ["cello;violin"] * 6 + ["violin"] * 6 + ["flute;violin"] * 3 + ["unknown"] * 3
    # violin 15, cello 6, flute 3: a duet's stratum is its rarer instrument
    assert stratum(labels) == ["cello"] * 6 + ["violin"] * 6 + ["flute"] * 3 + ["unknown"] * 3
    assert stratum(["a", "b", "a"]) == ["a", "b", "a"]  # single labels are their own strata
    folds = kfold_indices(labels, 3, seed=0)
    for _, te in folds:  # every instrument, and the clips of none, in every test fold
        heard = {c for i in te for c in labels[i].split(";")}
        assert heard == {"cello", "violin", "flute", "unknown"}
    assert sorted(np.concatenate([te for _, te in folds]).tolist()) == list(range(len(labels)))
    with pytest.raises(DataError, match="'flute' has 3"):
        kfold_indices(labels, 4, seed=0)


def test_small_multilabel_strata_join_larger_ones():
    # 12 ensemble clips: violin plays in 7, yet as the rarest instrument of only 2 (its stratum)
    labels = (["cello;viola;violin"] * 4 + ["cello;flute;viola"] * 3 + ["flute;violin"] * 2
              + ["cello;viola"] * 1 + ["cello;violin"] * 1 + ["flute;viola;violin"] * 1)
    strata = stratum(labels, min_size=3)
    assert min(Counter(strata).values()) >= 3
    folds = kfold_indices(labels, 3, seed=0)  # refused before: "'violin' has 2"
    assert sorted(np.concatenate([te for _, te in folds]).tolist()) == list(range(len(labels)))
    with pytest.raises(DataError, match="'flute' has 6"):
        kfold_indices(labels, 7, seed=0)


SEED_LINE = "seed must be an integer from 0 to 4294967295, got {}"


@pytest.mark.parametrize("bad, shown", [(-1, "-1"), (2**32, "4294967296"), (99999999999, "99999999999"),
                                        (True, "True"), (1.0, "1.0"), ("0", "'0'"), (None, "None"),
                                        (np.int64(-1), "-1")])
def test_every_seed_is_checked_by_one_function(bad, shown):
    """Review item 1: seeds out of numpy's and scikit-learn's range reached train_test_split,
    StratifiedKFold or numpy (tracebacks); KFold(3, seed=-1) was accepted."""
    from instrec.data.splits import KFold, check_seed

    line = "^" + re.escape(SEED_LINE.format(shown)) + "$"
    for call in (lambda: check_seed(bad), lambda: KFold(3, seed=bad),
                 lambda: split_indices(["a", "b"] * 5, seed=bad),
                 lambda: split_indices(["a", "b"] * 5, method="group", groups=list("abcde") * 2, seed=bad),
                 lambda: kfold_indices(["a", "b"] * 5, 3, seed=bad)):
        with pytest.raises(ParameterError, match=line):
            call()


def test_seeds_in_range_are_taken_as_ints():
    from instrec.data.splits import MAX_SEED, KFold, check_seed

    assert MAX_SEED == 2**32 - 1
    for good in (0, 7, MAX_SEED, np.int64(3), np.uint32(MAX_SEED)):
        assert check_seed(good) == good and type(check_seed(good)) is int
    assert KFold(3, seed=np.int64(5)).record()["seed"] == 5
    tr, te = split_indices(["a", "b"] * 5, seed=MAX_SEED)
    assert len(tr) == 8 and len(te) == 2
    assert len(kfold_indices(["a", "b"] * 6, 3, seed=MAX_SEED)) == 3


@pytest.mark.parametrize("test_size", [0.01, 0.05, 0.9, 0.99])  # review: 0.01 and 0.99 got the general message
def test_stratified_split_too_small_or_too_large_names_the_workable_test_sizes(test_size):
    labels = ["a", "b", "c"] * 8  # 24 clips of 3 classes: each side needs 3, so 0.125 to 0.875
    with pytest.raises(DataError) as e:
        split_indices(labels, method="stratified", test_size=test_size)
    msg = str(e.value)
    assert "\n" not in msg and "--test-size" in msg and "from 0.125 to 0.875" in msg
    for size in (0.125, 0.875):
        tr, te = split_indices(labels, method="stratified", test_size=size)
        assert {labels[i] for i in tr} == {labels[i] for i in te} == {"a", "b", "c"}


def test_stratified_split_workable_test_sizes_are_rounded_inwards():
    labels = ["a"] * 4 + ["b"] * 3  # 2/7 = 0.2857... to 5/7 = 0.7142...
    with pytest.raises(DataError, match="from 0.286 to 0.714") as e:
        split_indices(labels, method="stratified", test_size=0.1)
    for size in map(float, re.search(r"from (\S+) to (\S+?);?$", str(e.value)).groups()):
        tr, te = split_indices(labels, method="stratified", test_size=size)
        assert {labels[i] for i in te} == {"a", "b"}


def test_stratified_split_names_the_classes_with_one_clip():
    # review: "needs at least 2 clips of every class" did not say which class had one
    labels = ["flute"] * 5 + ["harp"] + ["violin"] * 5 + ["oboe"]
    with pytest.raises(DataError, match=r"'harp' has 1, 'oboe' has 1$"):
        split_indices(labels, method="stratified")
