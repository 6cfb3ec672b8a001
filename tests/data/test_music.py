"""Rendering music part by part (data.music): scores read by music21, real FluidSynth, exact activity."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from instrec.data import activity as A
from instrec.data import music as M
from instrec.data import render as R
from instrec.errors import ParameterError

music21 = pytest.importorskip("music21", reason="music21 (the render extra) is not installed")

try:
    import fluidsynth  # noqa: F401

    HAVE_FLUIDSYNTH = R.SOUNDFONTS["fluidr3"].is_installed()
except (ImportError, OSError):
    HAVE_FLUIDSYNTH = False
needs_fluidr3 = pytest.mark.skipif(not HAVE_FLUIDSYNTH, reason="needs FluidSynth and FluidR3 (fluid-soundfont-gm)")

SR = 16000


def _score(path: Path) -> Path:
    """A duet: a 'Violoncello' part of whole notes C3 E3 G3 C4 and a 'Soprano' part of four
    half-notes rest-free from beat 4 on, 4/4, written as MusicXML."""
    s = music21.stream.Score()
    cello = music21.stream.Part()
    cello.partName = "Violoncello"
    for name in ("C3", "E3", "G3", "C4"):
        cello.append(music21.note.Note(name, quarterLength=4.0))
    voice = music21.stream.Part()
    voice.partName = "Soprano"
    voice.append(music21.note.Rest(quarterLength=4.0))
    for name in ("E5", "D5", "C5", "D5", "E5", "E5"):
        voice.append(music21.note.Note(name, quarterLength=2.0))
    s.insert(0, cello)
    s.insert(0, voice)
    s.write("musicxml", fp=str(path))
    return path


@pytest.fixture(scope="module")
def score(tmp_path_factory) -> Path:
    return _score(tmp_path_factory.mktemp("scores") / "duet.musicxml")


@pytest.mark.parametrize("name, label", [("1st Violin", "violin"), ("Violin 2", "violin"), ("Violoncello", "cello"),
                                         ("Viola", "viola"), ("Clarinet in Bb", "clarinet"), ("Soprano", None),
                                         ("Bass", None), ("", None)])
def test_part_names_keep_their_instrument_and_voices_get_none(name, label):
    assert M.part_instrument(name) == label


def test_read_piece_gives_parts_notes_in_quarters(score):
    piece = M.read_piece(score)
    assert [p.name for p in piece.parts] == ["Violoncello", "Soprano"]
    assert [p.instrument for p in piece.parts] == ["cello", None]
    cello, voice = piece.parts
    assert cello.notes[:, :3].tolist() == [[0, 4, 48], [4, 4, 52], [8, 4, 55], [12, 4, 60]]
    assert voice.notes[0, :3].tolist() == [4, 2, 76]
    assert piece.length == 16.0


def test_bundled_sets_are_listed_and_bad_names_refused():
    sets = dict(M.list_pieces("chorales,palestrina"))
    assert len(sets["chorales"]) > 300 and len(sets["palestrina"]) > 1000
    assert ("bach/bwv66.6", Path(music21.__file__).parent / "corpus" / "bach" / "bwv66.6.mxl") in sets["chorales"]
    with pytest.raises(ParameterError, match="neither a set"):
        M.list_pieces("quartetz")


def test_a_chorale_reads_as_four_voices():
    path = Path(music21.__file__).parent / "corpus" / "bach" / "bwv66.6.mxl"
    piece = M.read_piece(path, "bach/bwv66.6")
    assert [p.name for p in piece.parts] == ["Soprano", "Alto", "Tenor", "Bass"]
    assert all(p.instrument is None for p in piece.parts) and piece.group == "bach/bwv66.6"


def test_movements_of_a_work_share_a_group():
    path = Path(music21.__file__).parent / "corpus" / "haydn" / "opus74no1" / "movement2.mxl"
    piece = M.read_piece(path, "haydn/opus74no1/movement2")
    assert piece.group == "haydn/opus74no1"
    assert [p.instrument for p in piece.parts] == ["violin", "violin", "viola", "cello"]


@needs_fluidr3
def test_render_music_labels_who_plays_when(score, tmp_path):
    rep = M.render_music(tmp_path / "a", pieces=[str(score)], n=3, seconds=4.0, sr=SR, seed=3, stems=True,
                         instruments=("cello", "flute", "oboe", "violin", "timpani"))
    assert rep.n_written == 3 and rep.skipped == []
    rows = list(csv.DictReader(open(tmp_path / "a" / "manifest.csv")))
    spans = A.read_activity(tmp_path / "a" / "activity.csv")
    for row in rows:
        y, sr = sf.read(tmp_path / "a" / row["path"])
        assert sr == SR and len(y) == 4 * SR and abs(np.max(np.abs(y)) - R.PEAK) < 1e-3
        heard = A.split_labels(row["label"])
        assert set(spans[row["path"]]) == set(heard)
        parts = dict(p.split("=")[::-1] for p in row["parts"].split("|"))
        if "Violoncello" in parts:
            assert parts["Violoncello"] == "cello"  # the part keeps its instrument
            # cello notes start every 4 quarters: every span of the cello starts at one, within the jitter
            spq, offset = 60.0 / float(row["tempo"]), float(row["offset"])
            starts = [s for s, _ in spans[row["path"]]["cello"] if s > 0]
            grid = (np.array(starts) + offset) / (4 * spq)
            assert np.all(np.abs(grid - np.round(grid)) * 4 * spq < 0.06), (starts, offset, spq)
        if "Soprano" in parts:
            # a voice gets an instrument whose range holds it (octaves apart at most), never a drum
            assert parts["Soprano"] in ("cello", "flute", "oboe", "violin")
        stems = sorted((tmp_path / "a" / "stems").glob(row["path"][:5] + "_*"))
        assert len(stems) == len(parts)
        assert np.max(np.abs(sum(sf.read(f)[0] for f in stems) - y)) < 1e-3  # the stems add up to the mix


@needs_fluidr3
def test_same_seed_same_files_other_seed_other_files(score, tmp_path):
    kw = dict(pieces=[str(score)], n=2, seconds=2.0, sr=SR, instruments=("cello", "flute"))
    M.render_music(tmp_path / "a", seed=1, **kw)
    M.render_music(tmp_path / "b", seed=1, **kw)
    M.render_music(tmp_path / "c", seed=2, **kw)
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "activity.csv").read_bytes() != (tmp_path / "c" / "activity.csv").read_bytes()


@needs_fluidr3
def test_an_unreadable_score_is_skipped_and_reported(score, tmp_path):
    scores = tmp_path / "scores"
    scores.mkdir()
    (scores / "broken.musicxml").write_text("<score-partwise><part id='P1'>")
    (scores / "duet.musicxml").write_bytes(score.read_bytes())
    rep = M.render_music(tmp_path / "out", pieces=[str(scores)], n=8, seconds=2.0, sr=SR, instruments=("cello", "flute"))
    assert rep.n_written == 8
    assert any("broken.musicxml" in where and "music21" in why for where, why in rep.skipped)


@pytest.mark.parametrize("kw, match", [(dict(n=0), "n must be"), (dict(seconds=0.5), "seconds"), (dict(sr=100), "sr"),
                                       (dict(fmt="ogg"), "fmt"), (dict(instruments=()), "instruments is empty"),
                                       (dict(pieces=""), "pieces is empty")])
def test_bad_arguments_are_parameter_errors(kw, match, tmp_path):
    with pytest.raises(ParameterError, match=match):
        M.render_music(tmp_path, **kw)
