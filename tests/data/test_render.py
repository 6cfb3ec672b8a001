"""Rendering clips with the real FluidSynth, and the instrument/note tables behind it."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from instrec.data import instruments as I
from instrec.data import render as R
from instrec.data import synth as S
from instrec.errors import ParameterError, RenderError

try:
    import fluidsynth  # noqa: F401

    HAVE_FLUIDSYNTH = True
except (ImportError, OSError):
    HAVE_FLUIDSYNTH = False


def needs(*fonts: str):
    """Skip unless FluidSynth and the named SoundFonts are installed."""
    missing = [f for f in fonts if not R.SOUNDFONTS[f].is_installed()]
    return pytest.mark.skipif(not HAVE_FLUIDSYNTH or bool(missing), reason=f"needs FluidSynth and {fonts}")


SR = 22050
SECONDS = 1.0
SMALL = dict(instruments=("flute", "sax"), per_class=3, seconds=SECONDS, sr=SR)
DYNAMIC_WORDS = {word for word, _, _ in R.DYNAMICS}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """2 instruments x 3 clips from each of two SoundFonts: source -> (folder, report)."""
    out = {}
    for source in ("fluidr3", "timgm6mb"):
        if not HAVE_FLUIDSYNTH or not R.SOUNDFONTS[source].path.is_file():
            continue
        folder = tmp_path_factory.mktemp(source)
        out[source] = folder, R.render(folder, soundfont=source, **SMALL)
    return out


def audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in (".wav", ".flac", ".mp3"))


def read_manifest(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def parse_clip_name(path: Path) -> dict:
    label, note, duration, dynamic, source, k = path.stem.split("_")
    return dict(label=label, note=note, duration=float(duration), dynamic=dynamic, source=source, k=k)


# ---------------------------------------------------------------------------------------------
# rendered files


@pytest.mark.parametrize("source", ["fluidr3", "timgm6mb"])
def test_files_are_named_sized_and_audible(rendered, source):
    if source not in rendered:
        pytest.skip(f"{source} not installed")
    folder, report = rendered[source]
    files = audio_files(folder)
    assert len(files) == 6
    for path in files:
        fields = parse_clip_name(path)
        inst = I.resolve_instrument(fields["label"])
        assert fields["label"] in ("flute", "saxophone") and fields["source"] == source
        assert len(fields["k"]) == 3 and fields["dynamic"] in DYNAMIC_WORDS
        assert inst.low <= I.parse_note_name(fields["note"]) <= inst.high
        assert 0 < fields["duration"] <= SECONDS
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.frames) == (SR, 1, round(SECONDS * SR))
        y, _ = sf.read(path)
        peak = np.max(np.abs(y))
        assert 0.5 < peak < 0.99, "normalised, not silent, not clipped"
        assert abs(y[0]) < 1e-3, "the clip starts with its own note, nothing left from the last one"


@pytest.mark.parametrize("source", ["fluidr3", "timgm6mb"])
def test_manifest_matches_files_and_report(rendered, source):
    if source not in rendered:
        pytest.skip(f"{source} not installed")
    folder, report = rendered[source]
    rows = read_manifest(folder / "manifest.csv")
    assert list(rows[0]) == list(R.MANIFEST_COLUMNS)
    assert sorted(r["path"] for r in rows) == [p.name for p in audio_files(folder)]
    for row in rows:
        fields = parse_clip_name(Path(row["path"]))
        assert row["label"] == fields["label"] and row["source"] == source
        assert row["note"] == fields["note"] == I.note_name(int(row["pitch"]))
        assert row["dynamic"] == fields["dynamic"] == R.dynamic_for_velocity(int(row["velocity"]))
        assert float(row["duration"]) == fields["duration"]
        assert (float(row["seconds"]), int(row["sr"])) == (SECONDS, SR)
    assert report.n_written == 6 and report.per_class == {"flute": 3, "saxophone": 3}
    assert report.sources == [source] and report.manifests == [folder / "manifest.csv"]
    assert report.skipped == [] and report.elapsed > 0
    # review: no credit travelled with the clips (the recorded notes' CC-BY asks for one)
    from instrec.data.credits import CREDITS

    assert (folder / "CREDITS.md").read_text().splitlines()[2:] == [f"- {CREDITS[source]}"]


def test_credits_of_sources_each_once_and_of_a_users_own_library():
    from instrec.data.credits import CREDITS, credits_of

    assert credits_of(["tonejs", "noise", "tonejs"]) == [CREDITS["tonejs"], CREDITS["noise"]]
    assert credits_of(["mysf"]) == ["mysf: a library of your own; its licence applies to these clips"]


@needs("timgm6mb")
def test_same_seed_same_bytes_other_seed_other_clips(rendered, tmp_path):
    folder, _ = rendered["timgm6mb"]
    R.render(tmp_path / "again", soundfont="timgm6mb", **SMALL)
    again = audio_files(tmp_path / "again")
    assert [p.name for p in again] == [p.name for p in audio_files(folder)]
    assert all(p.read_bytes() == (folder / p.name).read_bytes() for p in again)
    R.render(tmp_path / "other", soundfont="timgm6mb", seed=1, **SMALL)
    assert [p.name for p in audio_files(tmp_path / "other")] != [p.name for p in again]


@needs("fluidr3")
def test_adding_an_instrument_changes_no_other(tmp_path):
    common = dict(soundfont="fluidr3", per_class=2, seconds=0.5)
    R.render(tmp_path / "one", instruments=["viola"], **common)
    R.render(tmp_path / "two", instruments=["flute", "viola"], **common)
    alone = audio_files(tmp_path / "one")
    assert alone and all(p.read_bytes() == (tmp_path / "two" / p.name).read_bytes() for p in alone)


@needs("timgm6mb")
def test_progress_is_called_after_each_clip(tmp_path):
    calls = []
    R.render(tmp_path, soundfont="timgm6mb", instruments=["oboe", "cello"], per_class=2, seconds=0.3,
             progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


@needs("timgm6mb")
@pytest.mark.parametrize("fmt", ["flac", "mp3"])
def test_flac_and_mp3_read_back(tmp_path, fmt):
    report = R.render(tmp_path, soundfont="timgm6mb", instruments=["trumpet"], per_class=2, seconds=0.5, fmt=fmt)
    files = audio_files(tmp_path)
    assert report.n_written == 2 and [p.suffix for p in files] == [f".{fmt}"] * 2
    for path in files:
        y, sr = sf.read(path)
        assert sr == SR and y.ndim == 1 and np.max(np.abs(y)) > 0.3
        if fmt == "flac":  # lossless: exact length; mp3 adds encoder padding
            assert len(y) == round(0.5 * SR)


@needs("timgm6mb")
@pytest.mark.parametrize("sr", [8000, 192000])
def test_extreme_sample_rates_keep_exact_length(tmp_path, sr):
    # 192 kHz is above FluidSynth's limit: rendered at 96 kHz and resampled.
    R.render(tmp_path, soundfont="timgm6mb", instruments=["flute"], per_class=1, seconds=0.25, sr=sr)
    (path,) = audio_files(tmp_path)
    assert (sf.info(path).samplerate, sf.info(path).frames) == (sr, round(0.25 * sr))


@needs("fluidr3")
def test_silent_pitches_are_drawn_again_never_written(tmp_path, monkeypatch):
    # FluidR3's contrabass has no sample above A3 (57): 58 always comes out silent.
    monkeypatch.setitem(I.INSTRUMENTS, "double-bass", (43, 57, 58))
    report = R.render(tmp_path, soundfont="fluidr3", instruments=["double-bass"], per_class=8, seconds=0.5)
    assert report.n_written == 8 and report.retried > 0
    assert {row["pitch"] for row in read_manifest(tmp_path / "manifest.csv")} == {"57"}


@needs("fluidr3")
def test_an_instrument_silent_everywhere_is_skipped(tmp_path, monkeypatch):
    monkeypatch.setitem(I.INSTRUMENTS, "double-bass", (43, 60, 67))
    calls = []
    report = R.render(tmp_path, soundfont="fluidr3", instruments=["double-bass", "flute"], per_class=2,
                      seconds=0.3, progress=lambda d, t: calls.append(d))
    assert report.per_class == {"flute": 2} and calls[-1] == 4
    assert [name for name, _ in report.skipped] == ["fluidr3/double-bass"] and "silent" in report.skipped[0][1]
    assert all(p.name.startswith("flute_") for p in audio_files(tmp_path))


@needs("timgm6mb")
def test_soundfont_given_as_a_path(tmp_path):
    font = tmp_path / "My_Font.sf2"
    font.write_bytes(R.SOUNDFONTS["timgm6mb"].path.read_bytes())
    R.render(tmp_path / "out", soundfont=str(font), instruments=["flute"], per_class=1, seconds=0.3)
    (path,) = audio_files(tmp_path / "out")
    assert parse_clip_name(path)["source"] == "my-font"
    assert R.resolve_soundfonts(R.SOUNDFONTS["timgm6mb"].path) == {"timgm6mb": R.SOUNDFONTS["timgm6mb"].path}


@needs("timgm6mb")
def test_all_skips_missing_soundfonts_and_nests_sources(tmp_path, monkeypatch):
    fonts = {"nowhere": R.SoundFontInfo(tmp_path / "nowhere.sf2", "some-package"),
             "timgm6mb": R.SOUNDFONTS["timgm6mb"]}
    monkeypatch.setattr(S, "SOUNDFONTS", fonts)
    report = R.render(tmp_path / "out", soundfont="all", instruments=["viola"], per_class=2, seconds=0.3)
    assert report.sources == ["timgm6mb"] and report.n_written == 2
    assert report.skipped == [("nowhere", f"SoundFont 'nowhere' not found at {tmp_path / 'nowhere.sf2'}: "
                                          "apt-get install some-package")]
    top = read_manifest(tmp_path / "out" / "manifest.csv")
    inner = read_manifest(tmp_path / "out" / "timgm6mb" / "manifest.csv")
    assert [r["path"] for r in top] == [f"timgm6mb/{r['path']}" for r in inner]
    assert all((tmp_path / "out" / r["path"]).is_file() for r in top)


@pytest.mark.slow
@needs("fluidr3", "musescore", "timgm6mb", "freepats")
def test_all_installed_soundfonts(tmp_path):
    """The three SoundFonts (FluidSynth) and freepats (TiMidity++): four sample libraries."""
    report = R.render(tmp_path, soundfont="all", instruments=["cello"], per_class=1, seconds=0.5)
    assert report.sources == ["fluidr3", "musescore", "timgm6mb", "freepats"] and report.n_written == 4
    rows = read_manifest(tmp_path / "manifest.csv")
    assert [r["source"] for r in rows] == report.sources
    for row in rows:
        assert row["path"].startswith(row["source"] + "/") and f"_{row['source']}_" in row["path"]
        y, sr = sf.read(tmp_path / row["path"])
        assert len(y) == round(0.5 * sr) and np.max(np.abs(y)) > 0.5
    assert len(report.manifests) == 5


@needs("musescore")
def test_a_soundfont_synth_loads_only_the_samples_it_plays():
    """MuseScore General's samples are Ogg-compressed: loading the whole file decoded them all, 14 s
    in every render process. Each synth loads a preset's samples when the preset is chosen."""
    library = S.open_library(S.import_fluidsynth(), "musescore", S.resolve_soundfonts("musescore")["musescore"], 22050)
    try:
        synth = library.synth_for(I.resolve_instrument("cello").program)
        assert synth is not None and synth.get_setting("synth.dynamic-sample-loading") == 1
        assert np.max(np.abs(library.play(synth, S.Note(48, 100, "forte", 0.3), 11025))) > 0.05  # it sounds
        synth.delete()
    finally:
        library.close()


# ---------------------------------------------------------------------------------------------
# errors


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(soundfont="fluidr4"), ["soundfont", "'fluidr4'", "fluidr3, musescore, timgm6mb, freepats, all"]),
        (dict(soundfont="notes.txt/"), ["soundfont", ".sf2"]),
        (dict(instruments=["flute", "flut"]), ["instrument", "'flut'", "flute"]),
        (dict(instruments=[]), ["instruments"]),
        # one sound, two labels: refused rather than rendered as two classes no model can tell apart
        (dict(instruments=["saxophone", "flute", "Alto Sax"]), ["saxophone and alto-sax", "program 65", "name one"]),
        (dict(instruments=["piano", "acoustic grand piano"]), ["piano and acoustic-grand-piano", "program 0"]),
        (dict(per_class=0), ["per_class", "0"]),
        (dict(per_class=2.5), ["per_class"]),
        # with a SoundFont that is not there: a check that went missing fails the test, never renders 10**20 clips
        (dict(per_class=10**20, soundfont="fluidr4"), ["per_class must be an integer from 1 to 100000", str(10**20)]),
        (dict(negatives=100_001, soundfont="fluidr4"), ["negatives must be an integer from 0 to 100000"]),
        (dict(seconds=0), ["seconds"]),
        (dict(seconds=61), ["seconds", "61"]),
        (dict(sr=4000), ["sr", "4000"]),
        (dict(fmt="ogg"), ["fmt", "wav, flac, mp3"]),
        (dict(fmt="mp3", sr=96000), ["mp3", "96000"]),
        (dict(seed=-1), ["seed"]),
    ],
)
def test_bad_arguments_raise_parameter_error(tmp_path, kwargs, words):
    with pytest.raises(ParameterError) as err:
        R.render(tmp_path / "out", **kwargs)
    message = str(err.value)
    assert "\n" not in message and all(w in message for w in words), message
    assert not (tmp_path / "out").exists()


def test_missing_soundfont_file_raises_render_error(tmp_path):
    with pytest.raises(RenderError, match="soundfont file not found: .*nope.sf2"):
        R.render(tmp_path, soundfont=str(tmp_path / "nope.sf2"))


def test_missing_named_soundfont_names_the_apt_package(tmp_path, monkeypatch):
    fonts = {name: R.SoundFontInfo(tmp_path / "gone" / info.path.name, info.package)
             for name, info in R.SOUNDFONTS.items()}
    monkeypatch.setattr(S, "SOUNDFONTS", fonts)
    assert R.installed_soundfonts() == {}
    with pytest.raises(RenderError, match="apt-get install musescore-general-soundfont") as err:
        R.render(tmp_path / "out", soundfont="musescore")
    assert "SoundFont 'musescore' not found at" in str(err.value)
    with pytest.raises(RenderError, match="fluid-soundfont-gm musescore-general-soundfont timgm6mb-soundfont"):
        R.render(tmp_path / "out", soundfont="all")


@needs("fluidr3")
def test_missing_fluidsynth_names_the_apt_packages(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "fluidsynth", None)  # makes `import fluidsynth` fail
    with pytest.raises(RenderError, match="apt-get install fluidsynth libfluidsynth3"):
        R.render(tmp_path, soundfont="fluidr3", per_class=1)


# ---------------------------------------------------------------------------------------------
# instruments and notes


@pytest.mark.parametrize("name", ["French Horn", "french_horn", "FRENCH-HORN", " french horn ", "horn"])
def test_resolve_instrument_spellings(name):
    assert I.resolve_instrument(name) == I.Instrument("french-horn", 60, 35, 77)


def test_resolve_instrument_labels_programs_and_ranges():
    assert I.resolve_instrument("sax") == I.Instrument("saxophone", 65, 49, 80)
    assert I.resolve_instrument("Alto Sax") == I.Instrument("alto-sax", 65, 49, 80)  # GM name kept
    assert I.resolve_instrument("contrabass").label == "double-bass"
    assert I.resolve_instrument("Acoustic Guitar (nylon)") == I.Instrument("acoustic-guitar-nylon", 24, 40, 83)
    assert I.resolve_instrument("gunshot") == I.Instrument("gunshot", 127, *I.GENERIC_RANGE)
    assert I.resolve_instrument("saxophone").gm_name == "alto-sax"
    for name in I.DEFAULT_INSTRUMENTS:
        assert I.resolve_instrument(name).label == name


def test_unknown_instrument_suggests_close_names():
    with pytest.raises(ParameterError, match="unknown instrument 'violn'.*violin"):
        I.resolve_instrument("violn")


def test_tables_are_consistent():
    assert len(I.GM_PROGRAMS) == len(set(I.GM_PROGRAMS)) == 128
    assert I.GM_PROGRAMS[0] == "acoustic-grand-piano" and I.GM_PROGRAMS[73] == "flute"
    labels = [*I.GM_PROGRAMS, *I.INSTRUMENTS, *I.DEFAULT_ALIASES.values()]
    assert all(label == I.normalise_label(label) and "_" not in label for label in labels)
    for label, (program, low, high) in I.INSTRUMENTS.items():
        assert 0 <= program < 128 and 0 <= low < high <= 127, label
    assert all(target in I.INSTRUMENTS or target in I.GM_PROGRAMS for target in I.DEFAULT_ALIASES.values())


def test_canonical_label():
    assert I.canonical_label("sax") == I.canonical_label("Sax") == "saxophone"
    assert I.canonical_label("sax", aliases={}) == "sax"
    assert I.canonical_label("Bass Clarinet") == "bass-clarinet"  # unknown names pass, normalised
    assert I.canonical_label("Fagott", aliases={"fagott": "bassoon"}) == "bassoon"


def test_note_names_round_trip():
    assert I.note_name(70) == "As4" and I.parse_note_name("As4") == 70
    assert I.note_name(60) == "C4" and I.note_name(0) == "C-1" and I.note_name(127) == "G9"
    assert I.parse_note_name("A#4") == I.parse_note_name("Bb4") == 70
    assert all(I.parse_note_name(I.note_name(m)) == m for m in range(128))


@pytest.mark.parametrize("bad", ["H4", "As", "A##4", "C10", "", "G-2"])
def test_parse_note_name_rejects(bad):
    with pytest.raises(ParameterError):
        I.parse_note_name(bad)


@pytest.mark.parametrize("bad", [-1, 128, 60.0, True])
def test_note_name_rejects(bad):
    with pytest.raises(ParameterError):
        I.note_name(bad)


@needs("fluidr3")
def test_several_processes_write_the_files_of_one(tmp_path):
    """jobs=2: the same clips, manifest and stamp as one process, and the same report (with one
    library the noise and speech clips share its folder)."""
    import hashlib

    def digest(d):
        return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*")) if p.is_file()}

    args = dict(soundfont="fluidr3", instruments=("flute", "cello"), per_class=2, seconds=0.5, seed=3, negatives=1)
    one = R.render(tmp_path / "one", **args)
    steps = []
    two = R.render(tmp_path / "two", jobs=2, progress=lambda done, total: steps.append((done, total)), **args)
    assert digest(tmp_path / "one") == digest(tmp_path / "two")
    assert (two.n_written, two.n_negatives, two.per_class) == (one.n_written, one.n_negatives, one.per_class)
    assert one.n_negatives > 0 and (tmp_path / "one" / "manifest.csv").is_file()
    assert steps[-1] == (one.n_written, one.n_written)


@needs("fluidr3")
def test_ctrl_c_stops_the_processes_and_a_rerun_finishes_identically(tmp_path):
    """Ctrl-C while 2 processes render: the workers stop at once (the unit the other one was
    rendering is not finished first), no temporary file stays, and the same command again writes
    what a run never interrupted writes."""
    import hashlib
    import multiprocessing

    def digest(d):
        return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*")) if p.is_file()}

    seen = []

    def stop(done, total):
        if done:
            seen.extend((tmp_path / "part").glob("*.wav"))
            raise KeyboardInterrupt

    args = dict(soundfont="fluidr3", instruments=("flute", "cello", "oboe", "viola"), per_class=40, seconds=1.0, seed=2)
    with pytest.raises(KeyboardInterrupt):
        R.render(tmp_path / "part", jobs=2, progress=stop, **args)
    assert multiprocessing.active_children() == [] and not list((tmp_path / "part").rglob(".*.part.*"))
    # a clip a worker had all but written may land as Ctrl-C comes; not the other 30-odd of its unit
    assert len(list((tmp_path / "part").glob("*.wav"))) <= len(seen) + 2
    again = R.render(tmp_path / "part", jobs=2, **args)
    assert again.previous == "interrupted" and again.n_reused >= 40
    R.render(tmp_path / "whole", **args)
    assert digest(tmp_path / "part") == digest(tmp_path / "whole")


@pytest.mark.parametrize("jobs", [1, pytest.param(2, marks=needs("fluidr3"))])
def test_interrupted_render_finishes_the_rest_identically(tmp_path, jobs):
    """A killed render leaves complete clips (atomic writes) and maybe a temporary file; running the
    same command again keeps the clips, writes the missing ones and the manifest, and the folder is
    byte-identical to an uninterrupted render."""
    import hashlib

    def digest(d):
        return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*")) if p.is_file()}

    args = dict(soundfont="fluidr3", instruments=("flute", "cello"), per_class=4, seconds=1.0, seed=5)
    whole = R.render(tmp_path / "whole", **args)
    assert whole.n_written == 8 and whole.n_reused == 0 and whole.previous == ""
    part = tmp_path / "part"
    R.render(part, **args)
    clips = sorted(part.glob("*.wav"))
    for f in clips[::2]:
        f.unlink()
    (part / "manifest.csv").unlink()
    (part / f".{clips[0].name}.x1y2.part.wav").write_bytes(b"RIFF half a clip")  # what SIGKILL leaves
    clips[1].write_bytes(clips[1].read_bytes()[:500])  # a damaged clip is rendered again
    stamp = json.loads((part / R.STAMP_NAME).read_text())
    (part / R.STAMP_NAME).write_text(json.dumps({**stamp, "complete": False}))  # as a killed run leaves it
    again = R.render(part, jobs=jobs, **args)
    assert again.n_written == 5 and again.n_reused == 3 and again.previous == "interrupted"
    assert digest(part) == digest(tmp_path / "whole")


def test_the_stamp_records_the_settings_and_whether_the_run_completed(tmp_path):
    """Review item 1: the stamp held the version and seed only, so a completed rerun claimed to keep
    clips "written by an interrupted run", and a render of other settings reused the folder."""
    args = dict(soundfont="fluidr3", instruments=("flute", "sax"), per_class=2, seconds=0.3, seed=3)
    during = []
    first = R.render(tmp_path, progress=lambda d, t: during.append(json.loads((tmp_path / R.STAMP_NAME).read_text())), **args)
    stamp = json.loads((tmp_path / R.STAMP_NAME).read_text())
    assert during and all(s["complete"] is False for s in during) and stamp["complete"] is True
    assert stamp["command"] == "render" and all(s["settings"] == stamp["settings"] for s in during)
    assert {k: stamp["settings"][k] for k in ("instruments", "per-class", "seconds", "sample-rate", "format", "seed")} == {
        "instruments": ["flute", "saxophone"], "per-class": 2, "seconds": 0.3, "sample-rate": 22050, "format": "wav", "seed": 3}
    again = R.render(tmp_path, **args)  # complete: nothing to write, and said so
    assert (first.previous, again.previous, again.n_written, again.n_reused) == ("", "complete", 0, 4)


@pytest.mark.parametrize("other", [dict(instruments=("oboe",)), dict(per_class=1), dict(seed=4), dict(seconds=0.4)])
def test_a_folder_of_another_render_is_refused_untouched(tmp_path, other):
    """Review item 1: a render of other settings rewrote manifest.csv, leaving the old clips unlisted."""
    args = dict(soundfont="fluidr3", instruments=("flute", "cello"), per_class=2, seconds=0.3, seed=3)
    R.render(tmp_path, **args)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(ParameterError, match="holds a render with other settings") as err:
        R.render(tmp_path, **{**args, **other})
    assert str(tmp_path) in str(err.value) and "\n" not in str(err.value) and next(iter(other)).replace("_", "-") in str(err.value)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_folder_of_other_files_an_older_render_or_a_mix_is_refused(tmp_path):
    args = dict(soundfont="fluidr3", instruments=("flute",), per_class=1, seconds=0.3)
    own = tmp_path / "own"
    own.mkdir()
    (own / "manifest.csv").write_text("path,label\nmine.wav,flute\n")  # the user's own data set
    with pytest.raises(ParameterError, match=r"own: not empty \(holds manifest.csv\).*new folder or remove"):
        R.render(own, **args)
    assert [p.name for p in own.iterdir()] == ["manifest.csv"]
    old = tmp_path / "old"
    R.render(old, **args)
    stamp = json.loads((old / R.STAMP_NAME).read_text())
    (old / R.STAMP_NAME).write_text(json.dumps({**stamp, "settings": {**stamp["settings"], "render-version": 0}}))
    with pytest.raises(ParameterError, match="render-version: 0 there, 1 now"):
        R.render(old, **args)  # clips of an older instrec are never taken for this one's
    (old / R.STAMP_NAME).write_text(json.dumps({**stamp, "command": "mix"}))
    with pytest.raises(ParameterError, match="holds the output of 'instrec mix'"):
        R.render(old, **args)
    (old / R.STAMP_NAME).unlink()  # a folder from before these stamps
    with pytest.raises(ParameterError, match="not empty"):
        R.render(old, **args)
    (tmp_path / "empty").mkdir()
    assert R.render(tmp_path / "empty", **args).n_written == 1


def test_a_blank_out_dir_is_refused_not_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for blank in ("", "  "):
        with pytest.raises(ParameterError, match="out_dir is empty"):
            R.render(blank, soundfont="fluidr3", instruments=("flute",), per_class=1, seconds=0.3)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# a patch set played by TiMidity++ (Debian's freepats: a sample library that is not a SoundFont)

FREEPATS = Path("/etc/timidity/freepats.cfg")


def test_patch_set_renders_through_timidity(tmp_path):
    """Named by its .cfg file; files named, sized, audible and repeatable like the SoundFonts';
    an instrument the set lacks (freepats has no viola) is skipped and reported."""
    out = tmp_path / "a"
    report = R.render(out, soundfont=str(FREEPATS), instruments=("flute", "viola", "cello"), per_class=2,
                      seconds=SECONDS, sr=SR)
    files = audio_files(out)
    assert [parse_clip_name(p)["label"] for p in files] == ["cello", "cello", "flute", "flute"]
    assert {parse_clip_name(p)["source"] for p in files} == {"freepats"}
    assert report.per_class == {"flute": 2, "cello": 2}
    assert report.skipped == [("freepats/viola", "SoundFont has no General MIDI program 41 (viola)")]
    for p in files:
        y, sr = sf.read(p, dtype="float32")
        assert sr == SR and len(y) == round(SECONDS * SR)
        assert 0.6 < np.abs(y).max() <= 0.71  # normalised to PEAK like every render
        # the note sounds: most of the energy is in the held part, not in the padding
        held = round(parse_clip_name(p)["duration"] * SR)
        assert np.sum(y[:held] ** 2) > 0.5 * np.sum(y ** 2)
    again = tmp_path / "b"
    R.render(again, soundfont=str(FREEPATS), instruments=("flute", "viola", "cello"), per_class=2,
             seconds=SECONDS, sr=SR)
    assert [p.read_bytes() for p in audio_files(again)] == [p.read_bytes() for p in files]
    rows = read_manifest(out / R.MANIFEST_NAME)
    assert len(rows) == 4 and {r["source"] for r in rows} == {"freepats"}


def test_patch_set_errors_name_the_problem(tmp_path, monkeypatch):
    bad = tmp_path / "empty.cfg"
    bad.write_text("# nothing\ndir /nowhere\n")
    with pytest.raises(RenderError, match="maps no instrument"):
        R.render(tmp_path / "o", soundfont=str(bad), instruments=["flute"], per_class=1)
    with pytest.raises(RenderError, match="soundfont file not found"):
        R.render(tmp_path / "o", soundfont=str(tmp_path / "missing.cfg"), instruments=["flute"], per_class=1)
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(RenderError, match="apt-get install timidity freepats"):
        R.render(tmp_path / "o", soundfont=str(FREEPATS), instruments=["flute"], per_class=1)
    # by name, and in "all", freepats without its player counts as not installed
    assert not R.SOUNDFONTS["freepats"].is_installed() and "freepats" not in R.installed_soundfonts()
    with pytest.raises(RenderError, match="'freepats' needs TiMidity.*apt-get install timidity freepats"):
        R.render(tmp_path / "o", soundfont="freepats", instruments=["flute"], per_class=1)


def test_one_note_midi_is_a_valid_file():
    data = S._one_note_midi(73, 72, 100, 1.25, 0.5)
    assert data[:4] == b"MThd" and data[14:18] == b"MTrk"
    body = data[22:]
    assert body[:3] == b"\x00\xc0\x49" and body[3:7] == b"\x00\x90\x48\x64" and body.endswith(b"\xff\x2f\x00")
    assert int.from_bytes(data[18:22], "big") == len(body)
    assert S._one_note_midi(73, 72, 100, 300.0, 0.0)[22 + 7 : 22 + 10] == bytes([0x91, 0xCA, 0x00])  # 288,000 ticks = 17·128² + 74·128, as a variable-length number


def test_a_completed_render_with_negatives_is_up_to_date(tmp_path):
    """The 'unknown' clips were written again on every rerun, so "up to date" could not be said of them."""
    args = dict(soundfont="fluidr3", instruments=("flute",), per_class=1, seconds=0.3, negatives=1)
    first = R.render(tmp_path, **args)
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("unknown_*")}
    again = R.render(tmp_path, **args)
    assert first.n_negatives > 0 and (again.previous, again.n_written, again.n_reused) == ("complete", 0, first.n_written)
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("unknown_*")} == before


@needs("timgm6mb", "freepats")
def test_credits_name_only_the_libraries_clips_were_made_of(tmp_path, monkeypatch):
    """``--soundfont all --instruments viola`` credited freepats in CREDITS.md, which has no viola: no
    freepats clip was written."""
    from instrec.data.credits import CREDITS

    monkeypatch.setattr(S, "SOUNDFONTS", {k: R.SOUNDFONTS[k] for k in ("timgm6mb", "freepats")})
    report = R.render(tmp_path, soundfont="all", instruments=["viola"], per_class=1, seconds=0.3)
    assert report.sources == ["timgm6mb", "freepats"] and report.n_written == 1
    assert {r["source"] for r in read_manifest(tmp_path / "manifest.csv")} == {"timgm6mb"}
    assert (tmp_path / "CREDITS.md").read_text().splitlines()[2:] == [f"- {CREDITS['timgm6mb']}"]
