"""Scores (data.scores): music21's corpus listed in sets, the user's files given ids and works,
parts read into notes with the instrument their names give."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_duet, write_solo

from instrec.data import scores as S
from instrec.errors import ParameterError

music21 = pytest.importorskip("music21", reason="music21 (the render extra) is not installed")


@pytest.fixture(scope="module")
def score(tmp_path_factory) -> Path:
    return write_duet(tmp_path_factory.mktemp("scores") / "duet.musicxml")


@pytest.mark.parametrize("name, label", [("1st Violin", "violin"), ("Violin 2", "violin"), ("Violoncello", "cello"),
                                         ("Viola", "viola"), ("Clarinet in Bb", "clarinet"), ("Soprano", None),
                                         ("Bass", None), ("", None)])
def test_part_names_keep_their_instrument_and_voices_get_none(name, label):
    assert S.part_instrument(name) == label


def test_read_piece_gives_parts_notes_in_quarters(score):
    piece = S.read_piece(score)
    assert [p.name for p in piece.parts] == ["Violoncello", "Soprano"]
    assert [p.instrument for p in piece.parts] == ["cello", None]
    cello, voice = piece.parts
    assert cello.notes[:, :3].tolist() == [[0, 4, 48], [4, 4, 52], [8, 4, 55], [12, 4, 60]]
    assert voice.notes[0, :3].tolist() == [4, 2, 76]
    assert piece.length == 16.0


def test_bundled_sets_are_listed_and_bad_names_refused():
    sets = dict(S.list_pieces("chorales,palestrina"))
    assert len(sets["chorales"]) > 300 and len(sets["palestrina"]) > 1000
    assert ("bach/bwv66.6", Path(music21.__file__).parent / "corpus" / "bach" / "bwv66.6.mxl") in sets["chorales"]
    with pytest.raises(ParameterError, match="neither a set"):
        S.list_pieces("quartetz")


def test_a_chorale_reads_as_four_voices():
    path = Path(music21.__file__).parent / "corpus" / "bach" / "bwv66.6.mxl"
    piece = S.read_piece(path, "bach/bwv66.6")
    assert [p.name for p in piece.parts] == ["Soprano", "Alto", "Tenor", "Bass"]
    assert all(p.instrument is None for p in piece.parts) and piece.group == "bach/bwv66.6"


def test_movements_of_a_work_share_a_group():
    path = Path(music21.__file__).parent / "corpus" / "haydn" / "opus74no1" / "movement2.mxl"
    piece = S.read_piece(path, "haydn/opus74no1/movement2")
    assert piece.group == "haydn/opus74no1"
    assert [p.instrument for p in piece.parts] == ["violin", "violin", "viola", "cello"]


def test_scores_of_one_name_in_two_folders_are_two_pieces_of_two_works(tmp_path):
    """scA/x and scB/x, x.mid beside x.musicxml: each file its own id (so its own cached score);
    a folder's name prefixes its pieces; one work in two formats stays one group."""
    write_solo(tmp_path / "scA" / "x.musicxml", "Flute", ("C5",))
    write_solo(tmp_path / "scB" / "x.musicxml", "Violoncello", ("C3",))
    write_solo(tmp_path / "scB" / "x.mid", "Violoncello", ("C3",), fmt="midi")
    sets = S.list_pieces([str(tmp_path / "scA"), str(tmp_path / "scB")])
    ids = [[pid for pid, _ in found] for _, found in sets]
    assert ids == [["scA/x"], ["scB/x.mid", "scB/x.musicxml"]]
    assert S.work_of("scB/x.mid") == S.work_of("scB/x.musicxml") == "scB/x" != S.work_of("scA/x")
    # the same file named twice (its folder, then itself) is one piece
    again = S.list_pieces([str(tmp_path / "scA"), str(tmp_path / "scA" / "x.musicxml")])
    assert [found for _, found in again][0] == [found for _, found in again][1]


def test_the_corpus_s_two_encodings_of_a_movement_are_two_pieces_of_one_work():
    ids = [pid for pid, _ in dict(S.list_pieces("ensembles"))["ensembles"]]
    assert len(ids) == len(set(ids))
    assert {"beethoven/opus18no1/movement1.krn", "beethoven/opus18no1/movement1.mxl"} <= set(ids)
    assert S.work_of("beethoven/opus18no1/movement1.krn") == "beethoven/opus18no1"
    assert "bach/bwv66.6" in {pid for pid, _ in dict(S.list_pieces("chorales"))["chorales"]}


def test_music21s_remarks_on_a_score_do_not_reach_the_user(tmp_path):
    """render-music printed music21's 'measure 96 in part Violin IIis overfull' with its source line
    among its own output; the score is read all the same."""
    import warnings

    path = tmp_path / "overfull.musicxml"
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<score-partwise version="3.1">\n'
        '<part-list><score-part id="P1"><part-name>Violin</part-name></score-part></part-list>\n<part id="P1">\n'
        '<measure number="1"><attributes><divisions>7</divisions><time><beats>4</beats><beat-type>4</beat-type></time>'
        '</attributes>\n<note><pitch><step>C</step><octave>5</octave></pitch><duration>28</duration><type>whole</type></note>\n'
        '<note><pitch><step>D</step><octave>5</octave></pitch><duration>1</duration><type>16th</type></note></measure>\n'
        '<measure number="2"><note><pitch><step>E</step><octave>5</octave></pitch><duration>28</duration>'
        '<type>whole</type></note></measure>\n</part>\n</score-partwise>\n')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        piece = S.read_piece(path)
    assert [str(w.message) for w in caught] == []
    assert [p.instrument for p in piece.parts] == ["violin"]
