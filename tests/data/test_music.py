"""Rendering music part by part (data.music): scores read by music21, real FluidSynth, exact activity."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import write_duet, write_solo

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


@pytest.fixture(scope="module")
def score(tmp_path_factory) -> Path:
    return write_duet(tmp_path_factory.mktemp("scores") / "duet.musicxml")


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


@needs_fluidr3
def test_several_processes_write_the_files_of_one(score, tmp_path):
    """jobs=2 draws the excerpts in two processes and writes them here, in order: the same bytes
    (mix, stems, tables, stamp), the same report, a bad score named once."""
    scores = tmp_path / "scores"
    scores.mkdir()
    (scores / "broken.musicxml").write_text("<score-partwise><part id='P1'>")
    (scores / "duet.musicxml").write_bytes(score.read_bytes())
    kw = dict(pieces=[str(scores)], n=6, seconds=1.0, sr=SR, seed=3, stems=True, instruments=("cello", "flute"))
    one, two = M.render_music(tmp_path / "one", **kw), M.render_music(tmp_path / "two", jobs=2, **kw)

    def digest(d):
        return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}

    assert digest(tmp_path / "one") == digest(tmp_path / "two") and len(digest(tmp_path / "one")) > 6
    assert (two.n_written, two.per_class, two.trimmed, two.silent_parts) == (6, one.per_class, one.trimmed, one.silent_parts)
    assert [where for where, _ in two.skipped] == [str(scores / "broken.musicxml")] == [where for where, _ in one.skipped]


@pytest.mark.parametrize("kw, match", [(dict(n=0), "n must be"), (dict(seconds=0.5), "seconds"), (dict(sr=100), "sr"),
                                       (dict(fmt="ogg"), "fmt"), (dict(instruments=()), "instruments is empty"),
                                       (dict(pieces=""), "pieces is empty")])
def test_bad_arguments_are_parameter_errors(kw, match, tmp_path):
    with pytest.raises(ParameterError, match=match):
        M.render_music(tmp_path, **kw)


# -- activity is where the part's own stem sounds (review item 1) -------------------------------


def _xylophone_score(path: Path) -> Path:
    """One 'Xylophone' part of whole notes: held for seconds, heard for a fraction of one."""
    s = music21.stream.Score()
    part = music21.stream.Part()
    part.partName = "Xylophone"
    for name in ("C5", "E5", "G5", "C6", "G5", "E5"):
        part.append(music21.note.Note(name, quarterLength=4.0))
    s.insert(0, part)
    s.write("musicxml", fp=str(path))
    return path


def _stem_levels_db(out: Path, row: dict, label: str, start: float, end: float) -> np.ndarray:
    """The level (dB re the mix's peak) of ``label``'s stems in 0.1-s windows of ``start..end``."""
    mix, sr = sf.read(out / row["path"])
    stems = [sf.read(f)[0] for f in sorted((out / "stems").glob(row["path"][:5] + "_*")) if f.stem.endswith("_" + label)]
    y = np.sum(stems, axis=0)
    width = round(0.1 * sr)
    a, b = round(start * sr), max(round(start * sr) + 1, round(end * sr))
    steps = range(a, max(a + 1, b - width + 1), round(0.05 * sr))
    rms = np.array([np.sqrt(np.mean(y[i:min(b, i + width)] ** 2)) for i in steps])
    return 20 * np.log10(rms / np.max(np.abs(mix)) + 1e-12)


@needs_fluidr3
def test_activity_stops_where_the_stem_has_died_away(tmp_path):
    """A xylophone's whole note is held for seconds but dies away within one: the activity table
    marks it where its stem sounds, never seconds of silence (reviewer: 7 of 417 spans)."""
    score = _xylophone_score(tmp_path / "xylophone.musicxml")
    out = tmp_path / "x"
    rep = M.render_music(out, pieces=[str(score)], n=2, seconds=6.0, sr=SR, seed=0, stems=True, instruments=("xylophone",))
    assert rep.n_written == 2
    assert "FluidR3_GM SoundFont by Frank Wen" in (out / "CREDITS.md").read_text()  # whose sounds these are
    spans = A.read_activity(out / "activity.csv")
    rows = list(csv.DictReader(open(out / "manifest.csv")))
    held = 0.0
    for row in rows:
        assert set(spans[row["path"]]) == set(A.split_labels(row["label"])) == {"xylophone"}
        for start, end in spans[row["path"]]["xylophone"]:
            held += end - start
            levels = _stem_levels_db(out, row, "xylophone", start, end)
            # 60 dB under the mix's peak, and 10 dB of room for the 0.1-s windows here
            assert levels.min() > -70.0, (row["path"], start, end, levels.round(1))
    # whole notes at 56-132 bpm are held 1.4 s or more: trimmed, they are far shorter
    assert held / sum(len(s["xylophone"]) for s in spans.values()) < 1.2
    assert rep.trimmed > 0 and rep.silent_parts == 0


@needs_fluidr3
def test_trimming_keeps_the_files_the_seed_gives(score, tmp_path):
    """Trimming reads the audio and draws nothing: the same seed still gives the same files."""
    kw = dict(pieces=[str(score)], n=3, seconds=3.0, sr=SR, seed=5, stems=True, instruments=("cello", "xylophone"))
    M.render_music(tmp_path / "a", **kw)
    M.render_music(tmp_path / "b", **kw)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


def test_sounding_spans_cut_a_span_to_where_the_audio_sounds():
    sr = 1000
    y = np.zeros(3 * sr)
    y[200:700] = np.sin(np.arange(500) * 0.3)  # sounds 0.2..0.7 s
    y[1500:1600] = 1e-5  # -100 dB: silence
    y[2000:2300] = 0.5 * np.sin(np.arange(300) * 0.3)  # 2.0..2.3 s
    floor = 1e-3
    # a note held 0.1..1.2 s sounds 0.2..0.7 (within a cell and the window's half), one at 1.4..1.8 s not at all
    got = M.sounding_spans(y, sr, [(0.1, 1.2), (1.4, 1.8), (1.9, 2.6)], floor)
    assert len(got) == 2
    (s0, e0), (s1, e1) = got
    assert 0.1 <= s0 <= 0.2 and 0.7 <= e0 <= 0.7 + M.TRIM_WINDOW * M.TRIM_HOP
    assert 1.9 <= s1 <= 2.0 and 2.3 <= e1 <= 2.3 + M.TRIM_WINDOW * M.TRIM_HOP
    # a span that sounds throughout is kept exactly; a gap of silence inside a span splits it
    assert M.sounding_spans(y, sr, [(0.3, 0.6)], floor) == [(0.3, 0.6)]
    assert len(M.sounding_spans(y, sr, [(0.3, 2.2)], floor)) == 2
    assert M.sounding_spans(np.zeros(sr), sr, [(0.0, 1.0)], floor) == []


def test_a_part_silent_wherever_it_plays_is_left_out():
    """Mixing down: a part whose every span is silent leaves the excerpt (no label, no stem, not in
    the mix); the others keep theirs, trimmed; an excerpt where no part sounds is None."""
    srate = 8000
    t = np.arange(2 * srate) / srate
    tone = np.where(t < 1.0, np.sin(2 * np.pi * 440 * t), 0.0)
    late = np.where(t >= 1.5, np.sin(2 * np.pi * 330 * t), 0.0)  # plays after its (silent) span
    ex = {"parts": [{"label": "flute", "name": "Soprano", "y": tone, "spans": [(0.0, 1.8)]},
                    {"label": "cello", "name": "Bass", "y": late, "spans": [(0.2, 0.9)]}],
          "synth_sr": srate, "gains_db": [0.0, -60.0], "rt60": 0.3, "wet": 0.0, "room": 1}
    rep = M._Tally()
    got = M._mixdown(ex, 2.0, srate, rep)
    assert [p["label"] for p in got["parts"]] == ["flute"]
    (start, end), = got["parts"][0]["spans"]
    assert start == 0.0 and 1.0 <= end <= 1.0 + M.TRIM_WINDOW * M.TRIM_HOP
    assert rep.trimmed == 2 and rep.silent_parts == 1
    ex["parts"] = [ex["parts"][1]]
    ex["gains_db"] = [0.0]
    assert M._mixdown(ex, 2.0, srate, M._Tally()) is None


# -- ranges and nothing written (review items 2 and 3) --------------------------------------------


@pytest.mark.parametrize("kw, message", [
    (dict(seconds=0.5), "seconds must be a number of seconds in 1..60, got 0.5"),
    (dict(seconds=0.01), "seconds must be a number of seconds in 1..60, got 0.01"),
    (dict(seconds=61), "seconds must be a number of seconds in 1..60, got 61"),
    (dict(sr=100000), "sr must be an integer in 8000..96000 (Hz), got 100000"),
    (dict(sr=192000), "sr must be an integer in 8000..96000 (Hz), got 192000"),
    (dict(sr=7999), "sr must be an integer in 8000..96000 (Hz), got 7999"),
    (dict(fmt="mp3", sr=16001), "sr must be one of 8000, "),
    (dict(seed=-1), "seed must be an integer from 0 to 4294967295, got -1"),
    (dict(n=0), "n must be an integer >= 1, got 0"),
])
def test_each_bad_value_names_its_argument_and_the_range_it_takes(kw, message, tmp_path):
    with pytest.raises(ParameterError) as e:
        M.render_music(tmp_path, **kw)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)
    assert ("seconds" in str(e.value)) == ("seconds" in kw)  # an sr message says nothing of seconds


def test_the_command_line_names_its_options():
    names = {"n": "--n", "seconds": "--seconds", "sr": "--sample-rate", "fmt": "--format", "seed": "--seed"}
    with pytest.raises(ParameterError, match=r"^--sample-rate must be an integer in 8000\.\.96000"):
        M.check_arguments(1, 10.0, 100000, "wav", 0, names=names)
    assert M.check_arguments(3, 1, 96000, ".FLAC", 0) == (3, 1.0, 96000, "flac", 0)


@needs_fluidr3
def test_nothing_playable_writes_nothing_and_says_why(tmp_path):
    """A score whose notes no instrument of the vocabulary can play (C1..D1 on a flute, even two
    octaves up), and an unreadable one: 0 excerpts, each reason in skipped."""
    s = music21.stream.Score()
    part = music21.stream.Part()
    part.partName = "Bass"
    for name in ("C1", "D1", "C1"):
        part.append(music21.note.Note(name, quarterLength=4.0))
    s.insert(0, part)
    scores = tmp_path / "scores"
    scores.mkdir()
    s.write("musicxml", fp=str(scores / "low.musicxml"))
    (scores / "broken.musicxml").write_text("<score-partwise><part id='P1'>")
    rep = M.render_music(tmp_path / "out", pieces=[str(scores)], n=2, seconds=2.0, sr=SR, instruments=("flute",))
    assert rep.n_written == 0
    assert any("broken.musicxml" in where for where, _ in rep.skipped)
    assert [where for where, _ in rep.skipped if where.startswith("excerpt")] == ["excerpt 0", "excerpt 1"]
    assert not (tmp_path / "out").exists()  # no tables of nothing, not even the folder


# -- labels kept, pieces told apart, folders not overwritten (review of render-music OUT) ----------


def _table(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


class _Stop:
    """A progress callback that presses Ctrl-C once ``at`` excerpts are done."""

    def __init__(self, at: int):
        self.at = at

    def __call__(self, done: int, n: int) -> None:
        if done == self.at:
            raise KeyboardInterrupt


@needs_fluidr3
@pytest.mark.parametrize("jobs", [1, 2])
def test_an_interrupted_run_keeps_its_labels_and_a_rerun_resumes_it(score, tmp_path, monkeypatch, jobs):
    """Ctrl-C after 2 of 3 excerpts: the tables list the 2 written (none unlisted); the same command
    again keeps them (a damaged one is rendered again) and writes what a run never interrupted writes.
    With 2 processes, an excerpt drawn ahead is never written: this process writes, in order."""
    from instrec.data import music_folder

    kw = dict(pieces=[str(score)], n=3, seconds=2.0, sr=SR, seed=4, stems=True, instruments=("cello", "flute"), jobs=jobs)
    out = tmp_path / "out"
    out.mkdir()  # an empty folder is fine
    monkeypatch.setattr(music_folder, "SAVE_SECONDS", 1e9)  # only the interruption writes the tables
    with pytest.raises(KeyboardInterrupt):
        M.render_music(out, progress=_Stop(2), **kw)
    rows = _table(out / "manifest.csv")
    audio = sorted(p.name for p in out.glob("*.wav"))
    assert [r["path"] for r in rows] == audio and len(audio) == 2
    assert set(A.read_activity(out / "activity.csv")) == set(audio)
    (out / audio[1]).write_bytes((out / audio[1]).read_bytes()[:1000])  # cut short: not kept
    listed = []
    monkeypatch.setattr(music_folder, "SAVE_SECONDS", 0.0)  # the tables follow every excerpt
    rep = M.render_music(out, progress=lambda done, n: listed.append(len(_table(out / "manifest.csv"))), **kw)
    # the damaged excerpt is unlisted from the first save (it is not whole) until it is written again
    assert (rep.previous, rep.n_reused, rep.n_written) == ("interrupted", 1, 2) and listed == [1, 2, 3]
    fresh = tmp_path / "fresh"
    M.render_music(fresh, **kw)
    files = sorted(p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    for f in files:
        assert (out / f).read_bytes() == (fresh / f).read_bytes(), f
    # once more: complete, nothing to write, nothing changed
    rep = M.render_music(out, **kw)
    assert (rep.previous, rep.n_reused, rep.n_written, sum(rep.per_class.values()) > 0) == ("complete", 3, 0, True)
    for f in files:
        assert (out / f).read_bytes() == (fresh / f).read_bytes(), f


@needs_fluidr3
def test_a_folder_of_another_render_music_run_is_refused_and_left_as_it_is(score, tmp_path):
    """A render-music folder rendered with other settings (here --n 2, then --n 1; or other pieces,
    such as a file that is no score) is neither resumed nor rewritten: one line naming the folder."""
    kw = dict(pieces=[str(score)], seconds=1.0, sr=SR, instruments=("cello", "flute"))
    out = tmp_path / "mu1"
    M.render_music(out, n=2, **kw)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(ParameterError) as e:
        M.render_music(out, n=1, **kw)
    assert str(e.value).startswith(f"{out}: holds a render-music with other settings (n: 2 there, 1 now)")
    assert "\n" not in str(e.value) and "new folder" in str(e.value)
    not_a_score = tmp_path / "passwd"
    not_a_score.write_text("root:x:0:0:root:/root:/bin/bash\n")
    with pytest.raises(ParameterError, match=r"other settings \(pieces: "):
        M.render_music(out, n=2, **{**kw, "pieces": [str(not_a_score)]})
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("held, what", [
    ({"manifest.csv": "path,label\nmine.wav,flute\n", "mine.wav": "RIFF"}, "holds manifest.csv, mine.wav"),
    ({".instrec-run.json": '{"command": "render", "settings": {}, "complete": true}',
      "flute_C4_1_forte_fluidr3_000.wav": "RIFF", "manifest.csv": "path,label\n"}, "'instrec render'")])
def test_a_folder_holding_other_data_is_refused_before_anything_is_rendered(held, what, score, tmp_path):
    for name, text in held.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ParameterError) as e:
        M.render_music(tmp_path, pieces=[str(score)], n=1, seconds=1.0, sr=SR, instruments=("cello",))
    assert str(e.value).startswith(f"{tmp_path}: ") and what in str(e.value) and "render-music" in str(e.value)
    assert "\n" not in str(e.value)
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == held
    file = tmp_path / "manifest.csv"
    with pytest.raises(ParameterError, match="not a folder"):
        M.render_music(file, pieces=[str(score)], n=1, seconds=1.0, sr=SR, instruments=("cello",))


@needs_fluidr3
def test_scores_of_one_name_are_played_each_as_it_is(tmp_path):
    """--pieces scA,scB, each holding an x: excerpt 0 plays scA's flute part, excerpt 1 scB's cello
    part (the cache gave scA's to both), and the manifest names each one's own piece and work."""
    write_solo(tmp_path / "scA" / "x.musicxml", "Flute", ("C5", "E5", "G5"))
    write_solo(tmp_path / "scB" / "x.musicxml", "Violoncello", ("C3", "E3", "G3"))
    out = tmp_path / "out"
    M.render_music(out, pieces=[str(tmp_path / "scA"), str(tmp_path / "scB")], n=2, seconds=1.0, sr=SR,
                   instruments=("flute", "cello"))
    rows = _table(out / "manifest.csv")
    assert [(r["label"], r["piece"], r["group"]) for r in rows] == [("flute", "scA/x", "scA/x"), ("cello", "scB/x", "scB/x")]


@needs_fluidr3
def test_an_excerpt_interrupted_while_written_leaves_none_of_its_files(score, tmp_path, monkeypatch):
    """Ctrl-C after the mix is written, before its stems: the mix goes too (it would lie unlisted)."""
    written = []

    def write_audio(path, y, sr, fmt):
        if written:
            raise KeyboardInterrupt
        written.append(path)
        R.write_audio(path, y, sr, fmt)

    monkeypatch.setattr(M, "write_audio", write_audio)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        M.render_music(out, pieces=[str(score)], n=1, seconds=1.0, sr=SR, stems=True, instruments=("cello", "flute"))
    assert written and not [p for p in out.rglob("*") if p.is_file() and p.suffix == ".wav"]


@pytest.mark.skipif(not HAVE_FLUIDSYNTH or not R.SOUNDFONTS["timgm6mb"].is_installed(), reason="needs FluidR3 and TimGM6mb")
def test_credits_name_only_the_libraries_an_excerpt_was_played_on(score, tmp_path, monkeypatch):
    """``--soundfont all --n 1`` plays its one excerpt on the first library, but CREDITS.md credited every one."""
    from instrec.data import synth as S
    from instrec.data.credits import CREDITS

    monkeypatch.setattr(S, "SOUNDFONTS", {k: R.SOUNDFONTS[k] for k in ("fluidr3", "timgm6mb")})
    out = tmp_path / "m"
    rep = M.render_music(out, pieces=[str(score)], soundfont="all", n=1, seconds=2.0, sr=SR, instruments=("cello",))
    assert rep.n_written == 1 and rep.sources == ["fluidr3", "timgm6mb"]
    assert {r["source"] for r in csv.DictReader(open(out / "manifest.csv"))} == {"fluidr3"}
    assert (out / "CREDITS.md").read_text().splitlines()[2:] == [f"- {CREDITS['fluidr3']}"]
