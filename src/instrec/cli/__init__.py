"""The command line: parses, calls the Python API, prints. No pipeline logic lives here."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, Optional

import typer
from typer.core import TyperCommand

from . import make_data  # noqa: F401  (registers render, render-music and spectrograms, first in --help)
from .common import (ALIAS_OPT, CLASSES_OPT, DEFAULT_RECIPE, DEVICE_OPT, LABELS_OPT, MANIFEST_OPT, EngineName,
                     ImageMode, LabelMode, Level, OutFormat, SplitMethod, Trainable, _Command, _examples, _need, _probability,
                     _say_absent_classes, _say_recipe, app, say_train_result, Abort, ClickException, click_error_exit, finish)
from ..display import progress_bars as _progress, quiet_decoder_messages, report_skipped as _report_skipped
from ..errors import InstrecError, counted


RECIPE_HELP = ("recipe name: seed-spectrogram, seed-mfcc (the tutorial's), mfcc-stats (your own real recordings), "
               "mfcc-linear (a linear classifier on the same summary), cnn (across sources), cnn-multi (several instruments at once)")
RECIPE_DEFAULT_HELP = RECIPE_HELP + f" \\[default: {DEFAULT_RECIPE}]"  # escaped: rich markup takes [default: x] for a tag
GROUP_BY_HELP = ("keep each group on one side: pitch, pitch_class, source, group or a manifest column "
                 "(--split group alone: group, the manifest's column; render-music's pieces)")
JOBS_OPT = typer.Option(0, "--jobs", "-j", min=0, metavar="N", help="feature-extraction processes (0: one per core)")
NO_CACHE_OPT = typer.Option(False, "--no-cache", help="compute every feature afresh: neither read nor write the feature cache "
                                                     "($INSTREC_CACHE; default: the features folder of ~/.cache/instrec)")

RAY_FILL_OPT = typer.Option(None, "--ray", metavar="[ADDRESS]", help="compute the features missing from the feature cache on a "
                            "Ray cluster first (alone or 'local', a Ray of this machine started for the run; 'auto', the one "
                            "'ray start' made here; host:port or ray://host:port: its workers must see the audio and the cache "
                            "at the same paths); the rest runs here")


def _data_options(labels, manifest, alias, jobs, no_cache, ray=None):
    """The shared data options of a command, as the pipeline takes them."""
    from functools import partial

    from ..data.folder import parse_aliases
    from ..errors import ParameterError
    from ..pipeline import DataOptions
    from .checks import check_labels

    check_labels(labels, manifest)  # every command that reads data: the manifest would win without a word

    fill = None
    if ray is not None:
        if no_cache:
            raise ParameterError("--ray computes features into the feature cache; leave out --no-cache")
        _need("ray")
        from ..cluster.tasks import fill_cache_on_ray

        fill = partial(_fill_and_say, partial(fill_cache_on_ray, address=ray))
    if not no_cache:
        _check_cache_folder()
    return DataOptions(labels=labels.value, manifest=manifest, aliases=parse_aliases(alias or []), jobs=jobs or None,
                       cache=not no_cache, fill=fill)


def _check_cache_folder() -> None:
    """One line on stderr where the feature cache cannot be kept (a file, a folder that cannot be
    made or written): the run goes on, computing every feature, but the user learns why it is slow."""
    from ..features.cache import CACHE_ENV, default_cache_dir

    root = default_cache_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
        usable = os.access(root, os.W_OK | os.X_OK)
    except OSError:
        usable = False
    if not usable:
        where = f"${CACHE_ENV} ({root})" if os.environ.get(CACHE_ENV) else str(root)
        typer.echo(f"warning: the feature cache {where} is not a folder instrec can write: every feature is "
                   "computed afresh (--no-cache says so on purpose)", err=True)


def _fill_and_say(fill, paths, config, **kwargs) -> None:
    """Fill the cache, then say on stderr what the cluster did (what it could not read, extraction says next)."""
    s = fill(paths, config, **kwargs)
    typer.echo(f"features on Ray: {s.computed} computed in {s.tasks} tasks, {s.cached} already cached "
               f"({s.elapsed:.1f} s)", err=True)


def _recipe(recipe: str | None, epochs, hidden, activation, image_mode, init=None, trainable=None, keep_classes=False):
    """The recipe named (the default if none), or the fine-tuning recipe of ``init``'s (or of the
    one named, of the same network); CLI overrides applied."""
    from ..errors import ParameterError
    from ..pipeline.common import check_same_network, resolve_recipe
    from ..recipes import parse_hidden

    if trainable is not None and init is None:
        raise ParameterError("--trainable applies to fine-tuning; give --from MODEL_DIR or --from shipped")
    if keep_classes and init is None:
        raise ParameterError("--keep-classes keeps the classes of the model fine-tuning starts from; give --from MODEL_DIR or --from shipped")
    r = resolve_recipe(recipe, init, trainable=trainable.value if trainable else "all").with_overrides(
        epochs=epochs, hidden=parse_hidden(hidden), activation=activation, image_mode=image_mode.value if image_mode else None)
    check_same_network(init, r)  # before any feature is computed: --hidden and the like cannot change init's network
    return r


@app.command(epilog=_examples(
    ("instrec train my/recordings --out model", f"the default recipe, {DEFAULT_RECIPE}"),
    ("instrec train data --recipe cnn --split group --group-by pitch --out model", ""),
    ("instrec train data --recipe seed-mfcc --cv 5", "5 folds, mean ± std, no model saved"),
    ("instrec train my/recordings --from shipped --keep-classes --out tuned", "fine-tune the shipped model"),
))
def train(
    ctx: typer.Context,
    data: List[Path] = typer.Argument(..., metavar="DATA...", exists=True, help="one or more folders of labelled audio"),
    recipe: Optional[str] = typer.Option(None, metavar="NAME", help=RECIPE_DEFAULT_HELP, show_default=False),
    init: Optional[str] = typer.Option(None, "--from", metavar="MODEL_DIR|shipped", help="fine-tune this trained model (a model "
                                       "folder, or 'shipped') on the data instead of training from scratch, with its recipe "
                                       "(features, network, training settings), or with --recipe one of the same network "
                                       "(cnn-multi from a cnn: a multi-label model)"),
    trainable: Optional[Trainable] = typer.Option(
        None, "--trainable", help="with --from: which weights fine-tuning changes: all (the default), or output, the output "
                                  "layer alone (lr 1e-2, 200 epochs; better with about 5 clips per instrument)"),
    keep_classes: bool = typer.Option(False, "--keep-classes", help="with --from: keep the classes of the model that the data lacks "
                                                                    "(their output rows stay as they were) instead of dropping them"),
    out: Optional[Path] = typer.Option(None, "--out", metavar="MODEL_DIR", help="model folder to write (weights + model.json); required unless --cv"),
    split: Optional[SplitMethod] = typer.Option(
        None, help="train/test split: random (the tutorial's, the default), stratified, or group (whole groups, by --group-by; the default when --group-by is given)"),
    group_by: Optional[str] = typer.Option(None, "--group-by", metavar="KEY", help=GROUP_BY_HELP),
    cv: Optional[int] = typer.Option(
        None, "--cv", metavar="K", help="K-fold cross-validation instead of one split: trains K models, prints mean ± std, saves no model "
                                        "(folds stratified, or grouped with --group-by; --out and --test-size do not apply)"),
    test_size: float = typer.Option(0.2, "--test-size", metavar="FRACTION", help="fraction held back for testing (of the groups, with --split group)"),
    seed: int = typer.Option(0, metavar="N", help="seeds the split (random_state) and the network"),
    epochs: Optional[int] = typer.Option(None, metavar="N", help="override the recipe's epochs"),
    hidden: Optional[str] = typer.Option(None, metavar="SIZES|none", help="hidden layer sizes, e.g. 64,32"),
    activation: Optional[str] = typer.Option(None, metavar="NAME", help="relu or selu (or tanh)"),
    image_mode: Optional[ImageMode] = typer.Option(None, "--image-mode", help="spectrogram image: gray or rgb"),
    report: Optional[Path] = typer.Option(None, metavar="DIR", help="also write the test-split (or cross-validation) report here"),
    labels: LabelMode = LABELS_OPT,
    manifest: Optional[Path] = MANIFEST_OPT,
    alias: Optional[List[str]] = ALIAS_OPT,
    device: str = DEVICE_OPT,
    jobs: int = JOBS_OPT,
    no_cache: bool = NO_CACHE_OPT,
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted training from its checkpoint (MODEL_DIR.checkpoint, written every 30 s or so, at the end of an epoch)"),
    families: Optional[Path] = typer.Option(None, "--families", metavar="FILE.csv", help="instrument,family rows: the model's "
                                            "families (default: woodwinds, brass, bowed-strings...; other classes their own)"),
    nproc: int = typer.Option(1, "--nproc", min=1, metavar="N", help="train in N processes (PyTorch DistributedDataParallel, "
                              "started by torchrun): each trains on its share of every minibatch, the same model as one process "
                              "up to rounding; on CPUs, each gets cores/N threads; on GPUs, one GPU each"),
    ray: Optional[str] = RAY_FILL_OPT,
):
    """Train a model on labelled audio and save it as a bundle (or cross-validate with --cv)."""
    _need("torch", "safetensors")
    import os

    from ..errors import ParameterError
    from ..train.distributed import launch, launched, quiet_other_ranks
    from .checks import check_checkpoint, check_report, check_train_options

    check_train_options(ctx, cv=cv, resume=resume, split=split, labels=labels, manifest=manifest, nproc=nproc)
    if report is not None and not launched():  # before any work, once: the processes would race on its probe
        check_report(report, out)
    if launched():  # one of torchrun's processes: rank 0 prints for the run
        quiet_other_ranks()
        if nproc not in (1, int(os.environ["WORLD_SIZE"])):
            raise ParameterError(f"--nproc {nproc} under torchrun, which started {os.environ['WORLD_SIZE']} processes: leave out --nproc")
    if cv is not None and (nproc > 1 or launched()):
        raise ParameterError("--cv trains its folds in one process; leave out --nproc")
    if ray is not None and launched():
        raise ParameterError("--ray under torchrun would fill the feature cache once per process: "
                             "use 'instrec train --nproc N --ray', which fills it once before starting them")
    if nproc > 1 and not launched():  # the same command in N processes under torchrun, less --nproc
        if out is None:
            raise ParameterError("--out is required (the model folder to write), unless --cv is given")
        args = []
        for p in ctx.command.params:
            v = ctx.params.get(p.name)
            if p.name in ("nproc", "data", "ray") or v is None or v is False:
                continue
            for one in v if isinstance(v, (list, tuple)) else [v]:
                args += [p.opts[0]] if v is True else [p.opts[0], str(getattr(one, "value", one))]
        if ray is not None:  # once, here: the processes then read the filled cache
            from ..pipeline import load_base_model

            r = _recipe(recipe, epochs, hidden, activation, image_mode, load_base_model(init), trainable, keep_classes)
            options = _data_options(labels, manifest, alias, jobs, no_cache, ray)
            options.fill([c.path for c in options.load(data).clips], r.feature, cache=options.cache)
        raise typer.Exit(launch(nproc, ["-m", "instrec", "train", *args, "--", *map(str, data)]))
    from ..evaluate import crossval_summary, crossval_table
    from ..pipeline import KFold, cross_validate, load_base_model, train_model

    base = load_base_model(init)
    r = _recipe(recipe, epochs, hidden, activation, image_mode, base, trainable, keep_classes)
    options = _data_options(labels, manifest, alias, jobs, no_cache, ray)
    if cv is not None:
        if out is not None:
            raise ParameterError("--cv trains one model per fold and saves none; leave out --out (or drop --cv)")
        if split is SplitMethod.group and not group_by:
            group_by = "group"
        _say_recipe(recipe, base, r)
        with _progress() as progress:
            res = cross_validate(data, recipe=r, cv=KFold(cv, group_by=group_by, seed=seed), seed=seed, options=options,
                                 out=report, device=device, init=base, keep_classes=keep_classes, families=families,
                                 progress=progress)
        typer.echo(crossval_table(res), nl=False)
        typer.echo(f"{res['context']['recipe']}: {cv}-fold cross-validation: {crossval_summary(res)}"
                   + (f"; report in {report}" if report else ""))
        _say_absent_classes(res["context"])
        _report_skipped([tuple(x) for x in res["skipped"]])
        return
    if out is None:
        raise ParameterError("--out is required (the model folder to write), unless --cv is given")
    check_checkpoint(out, resume, r.train.epochs)
    method = split.value if split else ("group" if group_by else "random")
    _say_recipe(recipe, base, r)
    with _progress() as progress:
        res = train_model(data, recipe=r, out=out, split=method, group_by=group_by, test_size=test_size, seed=seed,
                          options=options, report_dir=report, device=device, resume=resume, init=base,
                          keep_classes=keep_classes, families=families, progress=progress)
    say_train_result(res, out)


@app.command(epilog=_examples(
    ("instrec crossval renders/", "the sub-folders of render --soundfont all are the sources"),
    ("instrec crossval fluidr3/ timgm6mb/ --recipe cnn --out report", ""),
))
def crossval(
    data: List[Path] = typer.Argument(..., metavar="DATA...", exists=True, help="folders of labelled audio from at least 2 sources (folder name or manifest 'source' column)"),
    recipe: Optional[str] = typer.Option(None, metavar="NAME", help=RECIPE_DEFAULT_HELP, show_default=False),
    out: Optional[Path] = typer.Option(None, "--out", metavar="REPORT_DIR", help="report folder: crossval.json and report.md"),
    join: Optional[List[str]] = typer.Option(None, "--join", metavar="A+B", help="hold these sources out together, one fold "
                                             "(sources sharing recordings: fluidr3+musescore); repeatable"),
    seed: int = typer.Option(0, metavar="N", help="seeds every fold's network"),
    epochs: Optional[int] = typer.Option(None, metavar="N", help="override the recipe's epochs"),
    hidden: Optional[str] = typer.Option(None, metavar="SIZES|none", help="hidden layer sizes, e.g. 64,32"),
    activation: Optional[str] = typer.Option(None, metavar="NAME", help="relu or selu (or tanh)"),
    image_mode: Optional[ImageMode] = typer.Option(None, "--image-mode", help="spectrogram image: gray or rgb"),
    labels: LabelMode = LABELS_OPT,
    manifest: Optional[Path] = MANIFEST_OPT,
    alias: Optional[List[str]] = ALIAS_OPT,
    device: str = DEVICE_OPT,
    jobs: int = JOBS_OPT,
    no_cache: bool = NO_CACHE_OPT,
    ray: Optional[str] = RAY_FILL_OPT,
):
    """Leave-one-source-out: train on every source but one, test on that one; one table."""
    _need("torch", "safetensors")
    from ..data.splits import parse_joins
    from ..evaluate import crossval_summary, crossval_table
    from ..pipeline import LeaveOneSourceOut, cross_validate

    from .checks import check_report

    if out is not None:  # before any work: '' or a recordings folder would get the report among its files
        check_report(out, None, "--out")
    r = _recipe(recipe, epochs, hidden, activation, image_mode)
    splitter = LeaveOneSourceOut(parse_joins(join or []))
    _say_recipe(recipe, None, r)
    with _progress() as progress:
        res = cross_validate(data, recipe=r, cv=splitter, seed=seed, options=_data_options(labels, manifest, alias, jobs, no_cache, ray),
                             out=out, device=device, progress=progress)
    typer.echo(crossval_table(res), nl=False)
    typer.echo(f"{res['context']['recipe']}: {splitter.title()}: {crossval_summary(res)}")
    for f in res["folds"]:
        if f.get("unknown_classes"):
            typer.echo(f"held-out {f['held_out']}: not scored, classes absent from training: "
                       + ", ".join(f"{c} ({counted(n, 'clip')})" for c, n in f["unknown_classes"].items()), err=True)
    if out is not None:
        typer.echo(f"report in {out}")
    _report_skipped([tuple(x) for x in res["skipped"]])


@app.command(epilog=_examples(
    ("instrec evaluate model data --out report", "on the training folder: its held-back test split"),
    ("instrec evaluate shipped my/recordings --out report --classes flute,cello,oboe", ""),
))
def evaluate(
    model_dir: Path = typer.Argument(..., metavar="MODEL", help="model folder written by train, an exported .onnx file, or 'shipped'"),
    data: List[Path] = typer.Argument(..., metavar="DATA...", exists=True, help="labelled audio; the training folder means its test split"),
    out: Path = typer.Option(..., "--out", metavar="REPORT_DIR", help="report folder: metrics.json, confusion_matrix.png, report.md"),
    labels: LabelMode = LABELS_OPT,
    manifest: Optional[Path] = MANIFEST_OPT,
    alias: Optional[List[str]] = ALIAS_OPT,
    jobs: int = JOBS_OPT,
    no_cache: bool = NO_CACHE_OPT,
    classes: Optional[str] = CLASSES_OPT,
    ray: Optional[str] = RAY_FILL_OPT,
):
    """Evaluate a model: accuracy, macro F1, ROC AUC, per-class scores, confusion matrix."""
    from ..evaluate import fmt_num, fmt_pct
    from ..pipeline import evaluate_model
    from .checks import check_report

    check_report(out, None, "--out")  # before any work: '' or a recordings folder would get the report among its files
    with _progress() as progress:
        m, skipped = evaluate_model(str(model_dir), data, out=out, options=_data_options(labels, manifest, alias, jobs, no_cache, ray),
                                    classes=classes, progress=progress)
    if m.get("multilabel"):
        frames = m.get("frames")
        typer.echo(f"mAP {fmt_num(m['map'])}, micro F1 {fmt_num(m['micro_f1'])}, macro F1 {fmt_num(m['macro_f1'])}, "
                   f"exact match {fmt_pct(m['exact_match'])} on {m['n']} clips"
                   + (f"; frame-level F1 {fmt_num(frames['f1'])} against activity.csv" if frames else "")
                   + f"; report in {out}")
    else:
        typer.echo(f"accuracy {fmt_pct(m['accuracy'])}, macro F1 {fmt_num(m['macro_f1'])}, "
                   f"ROC AUC {fmt_num(m['roc_auc_ovr_macro'])}, ECE {fmt_num(m['ece'])} on {m['n']} clips; families: accuracy "
                   f"{fmt_pct(m['family']['accuracy'])}, macro F1 {fmt_num(m['family']['macro_f1'])}; report in {out}")
    if m.get("training_clips"):
        from ..pipeline.evaluation import training_clips_words

        t = m["training_clips"]
        typer.echo(f"warning: {training_clips_words(t['n'], t['of'], t['held_back_record'], 'the')}", err=True)
    chosen = m.get("left_out_by_classes", {})
    unknown = {c: n for c, n in m.get("unknown_classes", {}).items() if c not in chosen}
    parts = [f"{what}: " + ", ".join(f"{c} ({counted(n, 'clip')})" for c, n in table.items())
             for what, table in (("classes left out by --classes", chosen), ("classes the model does not know", unknown)) if table]
    if parts:
        typer.echo("not scored, " + "; ".join(parts), err=True)
    _report_skipped(skipped)


@app.command(epilog=_examples(
    ("instrec calibrate shipped my/dev-recordings --out recalibrated", "then evaluate it on other recordings"),
    ("instrec calibrate multi-model real/mixtures --out multi-real", "a multi-label model's thresholds"),
))
def calibrate(
    model_dir: Path = typer.Argument(..., metavar="MODEL", help="model folder written by train, or 'shipped'"),
    data: List[Path] = typer.Argument(..., metavar="DATA...", exists=True, help="labelled recordings like those the model will hear "
                                      "(not those you then evaluate on)"),
    out: Path = typer.Option(..., "--out", metavar="MODEL_DIR", help="the recalibrated model's folder"),
    labels: LabelMode = LABELS_OPT,
    manifest: Optional[Path] = MANIFEST_OPT,
    alias: Optional[List[str]] = ALIAS_OPT,
    jobs: int = JOBS_OPT,
    no_cache: bool = NO_CACHE_OPT,
):
    """Choose a model's decision on your recordings: its temperature and 'unknown' threshold, or a multi-label
    model's threshold per instrument; the weights are kept."""
    _need("torch", "safetensors")
    from ..pipeline import calibrate_model

    with _progress() as progress:
        cal, skipped = calibrate_model(str(model_dir), data, out=out, options=_data_options(labels, manifest, alias, jobs, no_cache),
                                       progress=progress)
    before = cal["before"]
    if "thresholds" in cal:
        changed = ", ".join(f"{c} {before.get('thresholds', {}).get(c, 0.5):.2f} -> {t:.2f}" for c, t in cal["thresholds"].items()
                            if c not in cal["kept"])
        kept = f"; kept for {len(cal['kept'])} with too few clips" if cal["kept"] else ""
        typer.echo(f"thresholds chosen on {cal['clips']} clips: {changed}{kept}")
    else:
        mc = cal.get("min_confidence")
        typer.echo(f"temperature {before.get('temperature', 1.0):.3g} -> {cal['temperature']:.3g}, 'unknown' below "
                   f"{_fmt_threshold(mc)} (was {_fmt_threshold(before.get('min_confidence'))}), "
                   f"chosen on {cal['clips']} clips")
    if cal["left_out"]:
        typer.echo("left out, classes the model does not know: " + ", ".join(f"{c} ({counted(n, 'clip')})" for c, n in cal["left_out"].items()),
                   err=True)
    for line in cal["notes"]:  # the clips left out as trained on; a fit that saw only certainties
        typer.echo(line, err=True)
    typer.echo(f"model in {out}")
    _report_skipped(skipped)


def _fmt_threshold(t) -> str:
    return "none" if t is None else f"{t:.2f}"


@app.command(epilog=_examples(
    ("instrec predict recording.mp3", "the shipped model"),
    ("instrec predict model recordings/ --format csv", "a model of yours, every file of a folder"),
    ("instrec predict concert.flac --window 3 --plot timeline.png", "a timeline, drawn"),
    ("instrec predict multilabel-model quartet.wav", "a cnn-multi model: who plays when"),
    ("instrec predict recordings/ --log results.jsonl", "run again to finish an interrupted batch"),
    ("instrec predict archive/ --jobs 0 --format csv", "one process per core"),
    ("instrec predict model s3://bucket/archive --ray auto --log tags.jsonl --out tags.parquet",
     "on the Ray cluster 'ray start' made here"),
))
def predict(
    paths: List[str] = typer.Argument(..., metavar="[MODEL] PATH...", help="a model first (a folder written by train, a .onnx file, or "
                                       "'shipped'; none: the shipped model), then audio files or folders (recursive)"),
    model: Optional[Path] = typer.Option(None, "--model", "-m", metavar="MODEL", help="model folder written by train, an exported .onnx file, or 'shipped' (the default)"),
    fmt: OutFormat = typer.Option(OutFormat.table, "--format", help="table, json or csv"),
    top_k: int = typer.Option(3, "--top-k", min=1, metavar="K", help="how many classes to list per file (a multi-label "
                              "model lists every instrument heard; where #2-#K would not fit the terminal, one column lists them)"),
    window: Optional[float] = typer.Option(None, "--window", metavar="S", help="analyse in sliding windows of this many seconds (default: files longer than 1.5 model windows are windowed at the model's window)"),
    hop: Optional[float] = typer.Option(None, "--hop", metavar="S", help="step between windows in seconds (default: half the window)"),
    plot: Optional[Path] = typer.Option(None, "--plot", metavar="FILE.png", help="PNG: mel spectrogram with the class probabilities over time, and a multi-label model's instruments as a piano-roll (one file only)"),
    engine: EngineName = typer.Option(EngineName.auto, "--engine", help="auto (onnxruntime where the model carries a current model.onnx, else torch), torch, or onnx"),
    log: Optional[Path] = typer.Option(None, "--log", metavar="FILE.jsonl", help="JSON Lines file: one line per file as it is done; run again to finish an interrupted batch"),
    classes: Optional[str] = CLASSES_OPT,
    level: Level = typer.Option(Level.instrument, "--level", help="answer with the instrument, or with its family (the family's probability: the sum of its instruments')"),
    min_confidence: Optional[float] = typer.Option(None, "--min-confidence", metavar="P", callback=_probability, help="answer unknown when the "
                                                   "likeliest class's probability is below P (default: the model's own; 0: never for doubt); "
                                                   "a multi-label model: an instrument is active where its probability is at least "
                                                   "both its threshold and P"),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", min=0, metavar="N", help="processes predicting at once, each with its own "
                                       "copy of the model (default 1; 0: one per core); with --ray, actors (default: one per CPU of the cluster)"),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="[ADDRESS]", help="predict on a Ray cluster (Ray Data, an actor pool): "
                                      "alone or 'local', a Ray of this machine started for the run; 'auto', the one 'ray start' made "
                                      "here; host:port or ray://host:port. Paths may then be URLs the workers can read (s3://, gs://...)"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", metavar="FILE", help="also write the results to FILE, one row per file "
                                       "with the fields of --format json: .jsonl or .parquet"),
):
    """Predict the instrument of each recording; long recordings get a timeline of windows and segments.

    A multi-label model answers with every instrument heard and when it plays (table: its segments;
    csv: one row per window with the active instruments; json: instruments and each window's active set)."""
    from ..errors import ParameterError
    from .checks import check_one_model, check_predict_outputs

    paths = [p if "://" in p else Path(p) for p in paths]  # a URL as written (a Path would fold its '//')
    if model is None:
        model, paths = _model_argument(paths)
    else:
        check_one_model(model, paths)
    check_predict_outputs(paths, out=out, plot=plot, log=log)
    if plot is not None and (len(paths) != 1 or isinstance(paths[0], str) or paths[0].is_dir()):
        raise ParameterError("--plot draws one recording: name exactly one audio file")
    if plot is not None:
        _need("matplotlib")
        from ..audio import MAX_DURATION, header_seconds

        seconds = header_seconds(paths[0])  # the picture holds the whole recording: refused before predicting
        if seconds is not None and seconds > MAX_DURATION:
            raise ParameterError(f"--plot draws recordings of up to {MAX_DURATION:,.0f} s; {paths[0]} lasts "
                                 f"{seconds:,.0f} s: leave out --plot")
    if engine is EngineName.torch:
        _need("torch", "safetensors")
    from ..display import format_predictions, write_timeline
    from ..inference import check_window, load_model
    from ..pipeline import predict_paths
    from ..pipeline.prediction import check_output

    window, hop = check_window(window, hop)
    if out is not None and out.suffix.lower() not in (".jsonl", ".parquet"):
        raise ParameterError(f"--out {out}: write .jsonl or .parquet (by the file's suffix)")
    if out is not None and out.suffix.lower() == ".parquet":
        _need("pyarrow")
    if out is not None and log is not None and out.resolve() == log.resolve():
        raise ParameterError(f"--out and --log both name {out}: the results would replace the log a rerun resumes from")
    for option, target in (("--out", out), ("--plot", plot), ("--log", log)):
        if target is not None:  # before the batch: results that cannot be written would all be lost
            check_output(target, option, append=option == "--log")
    runner, listed = None, []
    if ray is not None:
        _need("ray")
        from ..cluster.tagging import expand_urls, ray_runner

        runner = ray_runner(ray, workers=jobs or None)
        paths, listed = expand_urls(paths)
    elif any("://" in str(p) for p in paths):
        raise ParameterError("URLs are read by the workers of a Ray cluster: add --ray (alone: a Ray of this machine)")
    net = load_model(model, engine=engine.value, classes=classes, min_confidence=min_confidence, level=level.value)
    with _progress() as progress:
        results, skipped = predict_paths(net, paths, window=window, hop=hop, log=log, progress=progress,
                                         jobs=1 if jobs is None else jobs, runner=runner)
    skipped = listed + skipped
    if out is not None:
        from ..pipeline import write_results

        write_results(results, out, top_k=top_k)
        typer.echo(f"results: {out}", err=True)
    if results or fmt is not OutFormat.table:  # json and csv stay parseable ([] or a header); a table would be empty
        typer.echo(format_predictions(results, fmt.value, top_k), nl=False)
    if plot is not None and results:
        write_timeline(net, results[0], plot)
        typer.echo(f"plot: {plot}", err=True)
    _report_skipped(skipped)
    if not results:
        raise typer.Exit(1)


def _model_argument(paths: list) -> tuple[Path | None, list]:
    """``instrec predict [MODEL] PATH...``: the model a first argument names, and the inputs.

    A model is a folder holding model.json, a .onnx file or 'shipped' (always the shipped model).
    Followed by more arguments, a first one that is no model, no audio file by its name and not
    there at all is a mistyped model: an error, else the shipped model would answer in its place."""
    from ..assets import names_shipped
    from ..audio import is_audio_path
    from ..errors import ParameterError

    first = paths[0]
    if isinstance(first, str):  # a URL: an input
        return None, paths
    named = ((first / "model.json").is_file() or (first.suffix.lower() == ".onnx" and first.is_file())
             or names_shipped(first))
    if named:
        if len(paths) == 1:
            raise ParameterError(f"{first} is a model; name the audio files or folders to predict after it")
        return first, paths[1:]
    if len(paths) > 1 and not first.exists() and not first.is_symlink() and not is_audio_path(first):
        raise ParameterError(f"{first}: no such model (a folder holding model.json, a .onnx file or 'shipped') "
                             "nor audio file; leave the model out to use the shipped one")
    return None, paths


@app.command(epilog=_examples(
    ("instrec export model --onnx model.onnx", ""),
    ("instrec predict --model model.onnx recording.mp3", "then predict with it, without PyTorch"),
))
def export(
    model: Path = typer.Argument(..., metavar="MODEL_DIR|shipped", help="model folder written by train (or 'shipped' for the shipped model)"),
    onnx: Path = typer.Option(..., "--onnx", metavar="FILE.onnx", help="the .onnx file to write"),
    opset: int = typer.Option(17, "--opset", metavar="N", help="ONNX opset (13-20)"),
):
    """Export a model to ONNX (front end inside the graph for the cnn); run it with --engine onnx."""
    _need("torch", "safetensors", "onnx")
    from ..export import export_onnx

    export_onnx(model, onnx, opset=opset)  # "shipped" is the shipped model there, saying so where ./shipped exists
    typer.echo(f"exported {model} to {onnx} (checked: onnxruntime agrees with PyTorch within 1e-4)")


def _bare_ray(args: list[str]) -> list[str]:
    """``--ray`` given alone (last, or before another option) means a Ray of this machine: ``--ray local``."""
    out = []
    for i, a in enumerate(args):
        out.append(a)
        if a == "--ray" and (i + 1 == len(args) or args[i + 1].startswith("-")):
            out.append("local")
    return out


from . import serve_demo  # noqa: E402,F401  (registers serve and demo, last in --help)

# every command's help the same way
for _info in app.registered_commands:
    if _info.cls is TyperCommand:  # typer's default
        _info.cls = _Command


def main(argv: list[str] | None = None) -> None:
    """Entry point: a user-caused error is one line on stderr and a non-zero exit code."""
    if argv is None:  # the command itself, not a caller embedding main() (tests, scripts)
        quiet_decoder_messages()
    try:
        # not standalone: click's usage errors come here, to be one line (typer's would be a box)
        finish(app(args=_bare_ray(sys.argv[1:] if argv is None else list(argv)), prog_name="instrec", standalone_mode=False))
    except (ClickException, Abort) as e:
        click_error_exit(e)
    except InstrecError as e:
        print(f"instrec: error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except ImportError as e:  # an optional part that is not installed: say which extra brings it
        from ..errors import missing_extra

        line = missing_extra(e)
        if line is None:
            raise
        print(f"instrec: error: {line}", file=sys.stderr)
        sys.exit(1)
    except (KeyboardInterrupt, SystemExit) as e:  # typer makes Ctrl-C a silent SystemExit(130): find it, say it
        cause = e if isinstance(e, KeyboardInterrupt) or e.code == 130 else None
        while cause is not None and not isinstance(cause, KeyboardInterrupt):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        print("instrec: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
