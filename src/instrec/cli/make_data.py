"""The commands that make data: render (notes), render-music (music, who plays when), mix (notes mixed, who
plays when), spectrograms (images)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..display import progress_bars as _progress, report_skipped as _report_skipped
from ..errors import counted
from .common import ALIAS_OPT, LABELS_OPT, MANIFEST_OPT, AudioFormat, ImageMode, LabelMode, _examples, _need, app


def _out(value: str, name: str = "OUT_DIR") -> Path:
    """The output folder: typed as text, because '' would become Path('.'), the current folder, unseen."""
    from ..data.outdir import out_path

    return out_path(value, name)


def _instrument_names(text: str) -> list[str]:
    """--instruments as a list of names; none at all is a usage error naming the option."""
    from ..errors import ParameterError

    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise ParameterError("--instruments is empty; name at least one instrument")
    return names


# what render's and mix's options are called in their messages (data.settings.check_arguments, data.mixtures)
RENDER_OPTIONS = {"per_class": "--per-class", "seconds": "--seconds", "sr": "--sample-rate", "fmt": "--format",
                  "seed": "--seed", "negatives": "--negatives"}
MIX_OPTIONS = {"n": "--n", "min_instruments": "--min", "max_instruments": "--max", "seconds": "--seconds",
               "sr": "--sample-rate", "fmt": "--format", "seed": "--seed", "out_dir": "OUT_DIR"}


@app.command(epilog=_examples(
    ("instrec render data", "600 clips of the six instruments from FluidR3"),
    ("instrec render data --soundfont all", "from every General MIDI library installed, one sub-folder each"),
    ("instrec render data --soundfont tonejs --instruments piano,guitar,harp", "recorded notes (./run setup installs them)"),
    ("instrec render data --soundfont everything --negatives 100", "all libraries, and 100 'unknown' clips of each kind"),
    ("instrec render data --instruments flute,violin --per-class 20 --format flac", ""),
    ("instrec render data --soundfont everything --jobs 0", "one process per core: the same files"),
    ("instrec render data --soundfont all --ray auto", "on the Ray cluster 'ray start' made here: the same files"),
))
def render(
    out_dir: str = typer.Argument(..., metavar="OUT_DIR", help="folder to write the clips and manifest.csv into: new, "
                                  "empty, or an earlier render with the same settings (resumed)"),
    soundfont: str = typer.Option("fluidr3", metavar="NAME|PATH", help="fluidr3, musescore, timgm6mb, freepats, a .sf2/.sf3/.cfg path, "
                                  "all (those four); tonejs, salamander (recorded notes, from npm) or a folder of their packages; everything"),
    # ranges are checked by data.settings.check_arguments (one line naming the option), not by typer's min/max
    per_class: int = typer.Option(100, "--per-class", metavar="N", help="clips per instrument and library (1-100000)"),
    seconds: float = typer.Option(3.0, metavar="S", help="clip length in seconds (0.05-60)"),
    sample_rate: int = typer.Option(22050, "--sample-rate", metavar="HZ", help="samples per second (8000-192000; "
                                    "mp3: 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100 or 48000)"),
    instruments: str = typer.Option("flute,viola,cello,oboe,trumpet,saxophone", metavar="NAME,...", help="comma-separated instrument names (instrec's labels, General MIDI names or aliases)"),
    fmt: AudioFormat = typer.Option(AudioFormat.wav, "--format", help="audio file format"),
    seed: int = typer.Option(0, metavar="N", help="same seed, identical files (0 to 4294967295)"),
    negatives: int = typer.Option(0, "--negatives", metavar="N", help="also N clips labelled 'unknown' of each kind "
                                  "and origin: noise, speech (espeak-ng), drum kits, synthesisers, sound effects (0-100000)"),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="[ADDRESS]", help="render on a Ray cluster, an instrument of a "
                                      "library per task, the same files: alone or 'local', a Ray of this machine started for "
                                      "the run; 'auto', the one 'ray start' made here; host:port or ray://host:port (its "
                                      "workers must see OUT_DIR and the libraries at the same paths)"),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", min=0, metavar="N", help="processes rendering at once on this "
                                       "machine, an instrument of a library each (default 1; 0: one per core): the same files"),
):
    """Render instrument clips from the installed sample libraries: General MIDI SoundFonts (FluidSynth), freepats (TiMidity++), recorded notes."""
    from ..data.render import check_arguments
    from ..data.synth import SAMPLER_NAMES, is_library_folder

    out = _out(out_dir)
    check_arguments(per_class, seconds, sample_rate, fmt.value, seed, negatives, names=RENDER_OPTIONS)  # before anything starts
    names = _instrument_names(instruments)
    if soundfont.strip().lower() not in SAMPLER_NAMES and not is_library_folder(soundfont):
        _need("fluidsynth")
    if ray is not None:
        if jobs is not None:
            raise typer.BadParameter("it counts this machine's processes; with --ray, Ray's workers render (leave --jobs out)", param_hint="--jobs")
        _need("ray")
        from functools import partial

        from ..cluster.tasks import render_on_ray

        do_render = partial(render_on_ray, address=ray)
    else:
        from functools import partial

        from ..data.render import render

        do_render = partial(render, jobs=1 if jobs is None else jobs)

    with _progress() as progress:
        rep = do_render(out, soundfont=soundfont, instruments=names, per_class=per_class, seconds=seconds,
                        sr=sample_rate, fmt=fmt.value, seed=seed, progress=progress("rendering", 0), negatives=negatives)
    if not rep.n_written and not rep.n_reused:  # nothing made: each reason, then an error (exit 1), as render-music does
        from ..errors import DataError

        _report_skipped(getattr(rep, "skipped", []), what="item")
        raise DataError(f"no clip written to {out}: none of {', '.join(names)} could be rendered from "
                        f"{', '.join(rep.sources) or soundfont} (the reasons above)")
    typer.echo(_render_summary(rep, out))
    _report_skipped(getattr(rep, "skipped", []), what="item")


def _render_summary(rep, out: Path) -> str:
    """What render did, true to the earlier run it found in the folder (none, interrupted, complete)."""
    unknown = f", {rep.n_negatives} of them 'unknown'" if rep.n_negatives else ""
    if rep.previous == "complete" and not rep.n_written:
        return (f"{out} is up to date: a complete render of {counted(rep.n_reused, 'clip')} "
                "with these settings (nothing written)")
    if rep.previous == "complete":
        return (f"wrote {rep.n_written} clips missing from the complete render with these settings in {out} "
                f"(kept its other {rep.n_reused}){unknown}")
    kept = f" (kept {rep.n_reused} written by an interrupted run with these settings)" if rep.n_reused else ""
    return f"wrote {counted(rep.n_written, 'clip')} to {out}{unknown}{kept}"


# what render-music's options are called in its messages (data.music.check_arguments)
MUSIC_OPTIONS = {"n": "--n", "seconds": "--seconds", "sr": "--sample-rate", "fmt": "--format", "seed": "--seed"}


@app.command("render-music", epilog=_examples(
    ("instrec render-music music", "100 excerpts of 10 s from the bundled scores, FluidR3"),
    ("instrec render-music music --soundfont everything --n 1000 --stems --jobs 0", "every library, each part's audio, every core"),
    ("instrec render-music music --pieces chorales --instruments violin,viola,cello,flute", ""),
    ("instrec render-music music --pieces my/scores --seconds 5", "your own MusicXML or MIDI files"),
    ("instrec render-music music --n 10000 --ray auto", "drawn and played on the Ray cluster, written here: the same files"),
))
def render_music(
    out_dir: str = typer.Argument(..., metavar="OUT_DIR", help="folder for the excerpts, manifest.csv and "
                             "activity.csv: new, empty, or an earlier render-music with these settings (resumed)"),
    pieces: str = typer.Option("all", metavar="SET|PATH,...", help="all, ensembles (the chamber and piano works of Beethoven, Haydn, Mozart, the Schumanns, Corelli), chorales, palestrina, "
                               "or score files / folders (MusicXML, MIDI, Humdrum, ABC)"),
    soundfont: str = typer.Option("fluidr3", metavar="NAME|PATH", help="the libraries, as render takes them; excerpts take turns"),
    # ranges are checked by data.music.check_arguments (one line naming the option), not by typer's min/max
    n: int = typer.Option(100, "--n", metavar="N", help="excerpts to write (>= 1)"),
    seconds: float = typer.Option(10.0, metavar="S", help="excerpt length in seconds (1-60)"),
    sample_rate: int = typer.Option(22050, "--sample-rate", metavar="HZ", help="samples per second (8000-96000; "
                                    "mp3: 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100 or 48000)"),
    instruments: str = typer.Option("wide", metavar="NAME,...|wide", help="the instruments voices may get (wide: the 31 the "
                                    "shipped model knows); a part naming another is played as a voice"),
    fmt: AudioFormat = typer.Option(AudioFormat.wav, "--format", help="audio file format"),
    seed: int = typer.Option(0, metavar="N", help="same seed, identical files (0 to 4294967295)"),
    stems: bool = typer.Option(False, "--stems", help="also write each part's audio, as it is in the mix, to OUT_DIR/stems"),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", min=0, metavar="N", help="processes rendering excerpts at "
                                       "once (default 1; 0: one per core); with --ray, actors (default: one per CPU of the "
                                       "cluster): the same files"),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="[ADDRESS]", help="draw and play the excerpts on a Ray cluster "
                                      "(actors holding the libraries), write them here: alone or 'local', a Ray of this "
                                      "machine started for the run; 'auto', the one 'ray start' made here; host:port or "
                                      "ray://host:port (its workers must see the libraries and scores at the same paths)"),
):
    """Render music part by part from scores (music21's corpus or yours), with who plays when (activity.csv)."""
    from ..data.music import check_arguments

    out_dir = _out(out_dir)
    check_arguments(n, seconds, sample_rate, fmt.value, seed, names=MUSIC_OPTIONS)  # a usage error before anything starts
    names = None if instruments.strip() == "wide" else _instrument_names(instruments)  # None: wide
    _need("music21")
    from functools import partial

    from ..data.instruments import WIDE_VOCABULARY
    from ..data.synth import SAMPLER_NAMES, is_library_folder

    if ray is not None:
        _need("ray")
        from ..cluster.tasks import render_music_on_ray

        do_render = partial(render_music_on_ray, address=ray, actors=jobs or None)
    else:
        from ..data.music import render_music

        do_render = partial(render_music, jobs=1 if jobs is None else jobs)

    if soundfont.strip().lower() not in SAMPLER_NAMES and not is_library_folder(soundfont):
        _need("fluidsynth")
    names = WIDE_VOCABULARY if names is None else names
    with _progress() as progress:
        rep = do_render(out_dir, pieces=pieces, soundfont=soundfont, instruments=names, n=n, seconds=seconds,
                        sr=sample_rate, fmt=fmt.value, seed=seed, stems=stems, progress=progress("rendering", 0))
    if not rep.n_written and not rep.n_reused:  # nothing done: each draw's reason, then an error (exit 1), as predict and spectrograms do
        from ..errors import DataError

        _report_skipped(rep.skipped)
        raise DataError(f"no excerpt written to {out_dir}: no piece of {pieces!r} could be read and played on "
                        f"{', '.join(rep.sources)} (the reasons above)")
    if rep.previous == "complete" and not rep.n_written:
        typer.echo(f"{out_dir} is up to date: a complete render-music of {counted(rep.n_reused, 'excerpt')} "
                   "with these settings (nothing written)")
    else:
        kept = f" (kept {rep.n_reused} written by an earlier run with these settings)" if rep.n_reused else ""
        typer.echo(f"wrote {counted(rep.n_written, 'excerpt')} of {seconds:g} s to {out_dir} ({', '.join(rep.sources)}){kept}; "
                   f"instruments heard: {', '.join(f'{k} {v}' for k, v in rep.per_class.items())}")
    _report_skipped(rep.skipped)


@app.command(epilog=_examples(
    ("instrec mix notes/ mixtures --n 500", "500 mixtures of 2-3 of the notes' instruments, 3 s each"),
    ("instrec mix ../shared/data/london_phill_dataset_multi real-mixtures --n 300", "mixtures of real notes: a proxy for chamber music"),
    ("instrec mix notes/ solos-and-duets --min 1 --max 2 --seconds 5", ""),
))
def mix(
    data: list[Path] = typer.Argument(..., metavar="DATA...", exists=True, help="folders of labelled single-instrument clips (as train reads them)"),
    out_dir: str = typer.Argument(..., metavar="OUT_DIR", help="folder for the mixtures, manifest.csv and activity.csv: new, "
                                  "empty, or an earlier mix of the same clips and settings; not inside DATA"),
    # ranges are checked by data.settings.check_arguments and data.mixtures (one line naming the option)
    n: int = typer.Option(100, "--n", metavar="N", help="mixtures to write (1-100000)"),
    min_instruments: int = typer.Option(2, "--min", metavar="K", help="fewest instruments in a mixture"),
    max_instruments: Optional[int] = typer.Option(None, "--max", metavar="K", show_default=False, help="most instruments "
                                                  "in a mixture \\[default: 3, or as many as the clips have instruments]"),
    seconds: float = typer.Option(3.0, metavar="S", help="mixture length in seconds (0.05-60)"),
    sample_rate: int = typer.Option(22050, "--sample-rate", metavar="HZ", help="samples per second (8000-192000)"),
    fmt: AudioFormat = typer.Option(AudioFormat.wav, "--format", help="audio file format"),
    seed: int = typer.Option(0, metavar="N", help="same seed, identical files (0 to 4294967295)"),
    labels: LabelMode = LABELS_OPT,
    manifest: Optional[Path] = MANIFEST_OPT,
    alias: Optional[List[str]] = ALIAS_OPT,
):
    """Mix single-instrument clips into clips where several play (random instruments, onsets and levels), with who plays when."""
    from ..data.folder import load_dataset, parse_aliases
    from ..data.mixtures import NotEnoughLabels, mix_clips
    from ..data.render import check_arguments

    out = _out(out_dir)
    check_arguments(n, seconds, sample_rate, fmt.value, seed, names=MIX_OPTIONS, count="n")  # before reading the clips
    ds = load_dataset(data, labels=labels.value, manifest=manifest, aliases=parse_aliases(alias or []))
    try:
        with _progress() as progress:
            rep = mix_clips(ds.clips, out, n=n, min_instruments=min_instruments, max_instruments=max_instruments,
                            seconds=seconds, sr=sample_rate, fmt=fmt.value, seed=seed, progress=progress("mixing", n),
                            inputs=data, names=MIX_OPTIONS)
    except NotEnoughLabels as e:  # the clips that could not be decoded, before the error that points at them
        _report_skipped(ds.skipped + e.report.skipped)
        raise
    if rep.previous == "complete" and not rep.written:
        typer.echo(f"{out} is up to date: a complete mix of the same clips with these settings (nothing written)")
    else:
        again = {"interrupted": " (done again: an interrupted mix with these settings was there)",
                 "complete": " (done again: mixtures of the complete mix with these settings there were missing or "
                             "cut short)"}.get(rep.previous, "")
        typer.echo(f"wrote {counted(rep.written, 'mixture')} of {seconds:g} s to {out}{again}; instruments: "
                   f"{', '.join(f'{k} {v}' for k, v in rep.labels.items())}")
    _report_skipped(ds.skipped + rep.skipped)


@app.command(epilog=_examples(
    ("instrec spectrograms data pictures", "one 640x480 grey PNG per audio file, sub-folders mirrored"),
    ("instrec spectrograms recording.wav pictures --image-mode rgb", "one file, in colour"),
))
def spectrograms(
    data: Path = typer.Argument(..., metavar="DATA", exists=True, help="audio file or folder (recursive)"),
    out: str = typer.Argument(..., metavar="OUT", help="folder for the PNG images (same sub-folders as DATA; a.wav -> "
                              "a.png, or a.wav.png where another file's name has the same stem)"),
    image_mode: ImageMode = typer.Option(ImageMode.gray, "--image-mode", help="gray (the tutorial's input) or rgb (3x larger)"),
):
    """Write the tutorial's 640x480 mel-spectrogram images as PNG files."""
    out = _out(out, "OUT")
    _need("matplotlib")
    from ..errors import printable
    from ..spectrograms import write_spectrograms

    with _progress() as progress:
        written, skipped, renamed = write_spectrograms(data, out, mode=image_mode.value, progress=progress)
    typer.echo(f"wrote {counted(written, 'image')} to {out}")
    if renamed:  # stderr, one line per file, like the skipped ones: scripts grep these
        typer.echo(f"{len(renamed)} file(s) share a stem with another file of their folder; their pictures are "
                   "named after the whole file name:", err=True)
        for name in renamed:
            typer.echo(f"  {printable(name)} -> {printable(Path(name).name)}.png", err=True)
    _report_skipped(skipped)
    if not written:
        raise typer.Exit(1)
