"""The command line: parses, calls the Python API, prints. No pipeline logic lives here."""

from __future__ import annotations

import csv
import io
import json
import sys
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from .errors import InstrecError

app = typer.Typer(
    name="instrec",
    help="Tell which musical instrument is playing in a recording.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _stderr():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


@contextmanager
def _progress():
    """A progress-bar factory for the pipeline: ``factory(text, total) -> update(done, total)``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=_stderr(), transient=False, disable=not sys.stderr.isatty()) as bar:
        def factory(text: str, total: int):
            task = bar.add_task(text, total=total or None)

            def update(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            return update

        yield factory


def _report_skipped(skipped) -> None:
    if skipped:
        err = _stderr()
        err.print(f"skipped {len(skipped)} file(s):")
        for path, why in skipped:
            # one line per file, however long: scripts grep these
            err.print(f"  {path}: {why}", markup=False, highlight=False, soft_wrap=True)


class LabelMode(str, Enum):
    auto = "auto"
    folder = "folder"
    filename = "filename"
    manifest = "manifest"


class SplitMethod(str, Enum):
    random = "random"
    stratified = "stratified"
    group = "group"


class Trainable(str, Enum):
    all = "all"
    output = "output"


class ImageMode(str, Enum):
    gray = "gray"
    rgb = "rgb"


class AudioFormat(str, Enum):
    wav = "wav"
    flac = "flac"
    mp3 = "mp3"


class OutFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


LABELS_OPT = typer.Option(LabelMode.auto, "--labels", help="where labels come from: sub-folder, file-name prefix, manifest CSV (auto: detect)")
MANIFEST_OPT = typer.Option(None, "--manifest", help="CSV with columns path,label[,group,source]")
DEVICE_OPT = typer.Option("auto", "--device", help="where to train, and to compute MFCCs: auto (a CUDA GPU when present), cpu or cuda")
ALIAS_OPT = typer.Option(None, "--alias", help="label alias NAME=LABEL (repeatable); sax=saxophone is built in")
CLASSES_OPT = typer.Option(None, "--classes", help="answer among these of the model's classes only, comma-separated "
                           "(e.g. the tutorial's six: flute,viola,cello,oboe,trumpet,saxophone)")


@app.command()
def render(
    out_dir: Path = typer.Argument(..., help="folder to write the clips and manifest.csv into"),
    soundfont: str = typer.Option("fluidr3", help="fluidr3, musescore, timgm6mb, freepats, a .sf2/.sf3/.cfg path, or all"),
    per_class: int = typer.Option(100, "--per-class", min=1, help="clips per instrument"),
    seconds: float = typer.Option(3.0, help="clip length in seconds"),
    sample_rate: int = typer.Option(22050, "--sample-rate", help="samples per second"),
    instruments: str = typer.Option("flute,viola,cello,oboe,trumpet,saxophone", help="comma-separated General MIDI instrument names"),
    fmt: AudioFormat = typer.Option(AudioFormat.wav, "--format", help="audio file format"),
    seed: int = typer.Option(0, help="same seed, identical files"),
):
    """Render instrument clips with FluidSynth from the installed General MIDI SoundFonts."""
    _need("fluidsynth")
    from .data.render import render as do_render

    names = [s.strip() for s in instruments.split(",") if s.strip()]
    with _progress() as progress:
        rep = do_render(out_dir, soundfont=soundfont, instruments=names, per_class=per_class, seconds=seconds,
                        sr=sample_rate, fmt=fmt.value, seed=seed, progress=progress("rendering", 0))
    kept = f" (kept {rep.n_reused} written by an interrupted run)" if rep.n_reused else ""
    typer.echo(f"wrote {rep.n_written} clips to {out_dir}{kept}")
    _report_skipped(getattr(rep, "skipped", []))


@app.command()
def spectrograms(
    data: Path = typer.Argument(..., help="audio file or folder (recursive)"),
    out: Path = typer.Argument(..., help="folder for the PNG images (same sub-folders as DATA)"),
    image_mode: ImageMode = typer.Option(ImageMode.gray, "--image-mode", help="gray (the tutorial's input) or rgb (3x larger)"),
):
    """Write the tutorial's 640x480 mel-spectrogram images as PNG files."""
    _need("matplotlib")
    from .spectrograms import write_spectrograms

    with _progress() as progress:
        written, skipped = write_spectrograms(data, out, mode=image_mode.value, progress=progress)
    typer.echo(f"wrote {written} image(s) to {out}")
    _report_skipped(skipped)
    if not written:
        raise typer.Exit(1)


RECIPE_HELP = ("recipe name: seed-spectrogram, seed-mfcc (the tutorial's), mfcc-stats (your own real recordings), "
               "mfcc-linear (a linear classifier on the same summary), cnn (across sources)")
GROUP_BY_HELP = "keep each group on one side: pitch, pitch_class, source, group or a manifest column"
JOBS_OPT = typer.Option(0, "--jobs", "-j", min=0, help="feature-extraction processes (0: one per core)")
NO_CACHE_OPT = typer.Option(False, "--no-cache", help="compute every feature afresh: neither read nor write the feature cache "
                                                     "($INSTREC_CACHE, default ~/.cache/instrec/features)")


def _need(*modules: str) -> None:
    """Fail at once, naming the extra to install (see main), when an optional package is missing."""
    import importlib.util

    for name in modules:
        if importlib.util.find_spec(name) is None:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


def _data_options(labels, manifest, alias, jobs, no_cache):
    """The shared data options of a command, as the pipeline takes them."""
    from .data.folder import parse_aliases
    from .pipeline import DataOptions

    return DataOptions(labels=labels.value, manifest=manifest, aliases=parse_aliases(alias or []), jobs=jobs or None,
                       cache=not no_cache)


def _recipe(recipe: str | None, epochs, hidden, activation, image_mode, init=None, trainable=None):
    """The recipe named (seed-mfcc if none), or the fine-tuning recipe of ``init``'s; CLI overrides applied."""
    from .errors import ParameterError
    from .pipeline import resolve_recipe
    from .recipes import parse_hidden

    if init is not None and recipe is not None:
        raise ParameterError("--from fine-tunes the model with its own recipe; leave out --recipe")
    if trainable is not None and init is None:
        raise ParameterError("--trainable applies to fine-tuning; give --from MODEL_DIR or --from shipped")
    return resolve_recipe(recipe, init, trainable=trainable.value if trainable else "all").with_overrides(
        epochs=epochs, hidden=parse_hidden(hidden), activation=activation, image_mode=image_mode.value if image_mode else None)


@app.command()
def train(
    data: List[Path] = typer.Argument(..., help="one or more folders of labelled audio"),
    recipe: Optional[str] = typer.Option(None, help=RECIPE_HELP + " [default: seed-mfcc]", show_default=False),
    init: Optional[str] = typer.Option(
        None, "--from", help="fine-tune this trained model (a model folder, or 'shipped') on the data instead of training "
                             "from scratch, with its recipe (features, network, training settings)"),
    trainable: Optional[Trainable] = typer.Option(
        None, "--trainable", help="with --from: which weights fine-tuning changes: all (the default), or output, the output "
                                  "layer alone (lr 1e-2, 200 epochs; better with about 5 clips per instrument)"),
    out: Optional[Path] = typer.Option(None, "--out", help="model folder to write (weights + model.json); required unless --cv"),
    split: Optional[SplitMethod] = typer.Option(
        None, help="train/test split: random (the tutorial's, the default), stratified, or group (with --group-by; the default when --group-by is given)"),
    group_by: Optional[str] = typer.Option(None, "--group-by", help=GROUP_BY_HELP),
    cv: Optional[int] = typer.Option(
        None, "--cv", help="K-fold cross-validation instead of one split: trains K models, prints mean ± std, saves no model "
                           "(folds stratified, or grouped with --group-by; --out and --test-size do not apply)"),
    test_size: float = typer.Option(0.2, "--test-size", help="fraction held back for testing (of the groups, with --split group)"),
    seed: int = typer.Option(0, help="seeds the split (random_state) and the network"),
    epochs: Optional[int] = typer.Option(None, help="override the recipe's epochs"),
    hidden: Optional[str] = typer.Option(None, help="hidden layer sizes, e.g. 64,32"),
    activation: Optional[str] = typer.Option(None, help="relu or selu (or tanh)"),
    image_mode: Optional[ImageMode] = typer.Option(None, "--image-mode", help="spectrogram image: gray or rgb"),
    report: Optional[Path] = typer.Option(None, help="also write the test-split (or cross-validation) report here"),
    labels: LabelMode = LABELS_OPT,
    manifest: Optional[Path] = MANIFEST_OPT,
    alias: Optional[List[str]] = ALIAS_OPT,
    device: str = DEVICE_OPT,
    jobs: int = JOBS_OPT,
    no_cache: bool = NO_CACHE_OPT,
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted training from its checkpoint (MODEL_DIR.checkpoint, written every epoch)"),
):
    """Train a model on labelled audio and save it as a bundle (or cross-validate with --cv)."""
    _need("torch", "safetensors")
    from .errors import ParameterError
    from .evaluate import crossval_table, fmt_mean_std, fmt_num, fmt_pct
    from .pipeline import KFold, cross_validate, load_base_model, train_model

    base = load_base_model(init)
    r = _recipe(recipe, epochs, hidden, activation, image_mode, base, trainable)
    options = _data_options(labels, manifest, alias, jobs, no_cache)
    if cv is not None:
        if out is not None:
            raise ParameterError("--cv trains one model per fold and saves none; leave out --out (or drop --cv)")
        if split is SplitMethod.group and not group_by:
            raise ParameterError("--split group needs --group-by (pitch, pitch_class, source, group or a manifest column)")
        with _progress() as progress:
            res = cross_validate(data, recipe=r, cv=KFold(cv, group_by=group_by, seed=seed), seed=seed, options=options,
                                 out=report, device=device, init=base, progress=progress)
        typer.echo(crossval_table(res), nl=False)
        m, sd = res["mean"], res["std"]
        typer.echo(f"{r.name}: {cv}-fold cross-validation: accuracy {fmt_mean_std(m['accuracy'], sd['accuracy'], pct=True)}, "
                   f"macro F1 {fmt_mean_std(m['macro_f1'], sd['macro_f1'])}, "
                   f"ROC AUC {fmt_mean_std(m['roc_auc_ovr_macro'], sd['roc_auc_ovr_macro'])} (mean ± std over folds)"
                   + (f"; report in {report}" if report else ""))
        _report_skipped([tuple(x) for x in res["skipped"]])
        return
    if out is None:
        raise ParameterError("--out is required (the model folder to write), unless --cv is given")
    method = split.value if split else ("group" if group_by else "random")
    with _progress() as progress:
        res = train_model(data, recipe=r, out=out, split=method, group_by=group_by, test_size=test_size, seed=seed,
                          options=options, report_dir=report, device=device, resume=resume, init=base, progress=progress)
    m = res.metrics
    typer.echo(f"{r.name}: test accuracy {fmt_pct(m['accuracy'])}, macro F1 {fmt_num(m['macro_f1'])}, "
               f"ROC AUC {fmt_num(m['roc_auc_ovr_macro'])} on {m['n']} held-back clips "
               f"{res.context['evaluated on'].removeprefix('held-back test split ')}; model saved to {out}")
    start = res.model.info["training"].get("fine_tuned_from", {}).get("test_split")
    if start:
        typer.echo(f"the model it started from: accuracy {fmt_pct(start['accuracy'])} on the {start['n']} of those "
                   "clips whose classes it knows")
    if "validation" in res.context:
        typer.echo(f"validation: {res.context['validation']}")
    if m.get("unknown_classes"):
        typer.echo("not scored, test classes absent from the training split: "
                   + ", ".join(f"{c} ({n} clips)" for c, n in m["unknown_classes"].items()), err=True)
    _report_skipped(res.skipped)


@app.command()
def crossval(
    data: List[Path] = typer.Argument(..., help="folders of labelled audio from at least 2 sources (folder name or manifest 'source' column)"),
    recipe: Optional[str] = typer.Option(None, help=RECIPE_HELP + " [default: seed-mfcc]", show_default=False),
    out: Optional[Path] = typer.Option(None, "--out", help="report folder: crossval.json and report.md"),
    seed: int = typer.Option(0, help="seeds every fold's network"),
    epochs: Optional[int] = typer.Option(None, help="override the recipe's epochs"),
    hidden: Optional[str] = typer.Option(None, help="hidden layer sizes, e.g. 64,32"),
    activation: Optional[str] = typer.Option(None, help="relu or selu (or tanh)"),
    image_mode: Optional[ImageMode] = typer.Option(None, "--image-mode", help="spectrogram image: gray or rgb"),
    labels: LabelMode = LABELS_OPT,
    manifest: Optional[Path] = MANIFEST_OPT,
    alias: Optional[List[str]] = ALIAS_OPT,
    device: str = DEVICE_OPT,
    jobs: int = JOBS_OPT,
    no_cache: bool = NO_CACHE_OPT,
):
    """Leave-one-source-out: train on every source but one, test on that one; one table."""
    _need("torch", "safetensors")
    from .evaluate import crossval_table
    from .pipeline import LeaveOneSourceOut, cross_validate

    r = _recipe(recipe, epochs, hidden, activation, image_mode)
    with _progress() as progress:
        res = cross_validate(data, recipe=r, cv=LeaveOneSourceOut(), seed=seed, options=_data_options(labels, manifest, alias, jobs, no_cache),
                             out=out, device=device, progress=progress)
    typer.echo(crossval_table(res), nl=False)
    for f in res["folds"]:
        if f.get("unknown_classes"):
            typer.echo(f"held-out {f['held_out']}: not scored, classes absent from training: "
                       + ", ".join(f"{c} ({n} clips)" for c, n in f["unknown_classes"].items()), err=True)
    if out is not None:
        typer.echo(f"report in {out}")
    _report_skipped([tuple(x) for x in res["skipped"]])


@app.command()
def evaluate(
    model_dir: Path = typer.Argument(..., help="model folder written by train, an exported .onnx file, or 'shipped'"),
    data: List[Path] = typer.Argument(..., help="labelled audio; the training folder means its test split"),
    out: Path = typer.Option(..., "--out", help="report folder: metrics.json, confusion_matrix.png, report.md"),
    labels: LabelMode = LABELS_OPT,
    manifest: Optional[Path] = MANIFEST_OPT,
    alias: Optional[List[str]] = ALIAS_OPT,
    jobs: int = JOBS_OPT,
    no_cache: bool = NO_CACHE_OPT,
    classes: Optional[str] = CLASSES_OPT,
):
    """Evaluate a model: accuracy, macro F1, ROC AUC, per-class scores, confusion matrix."""
    from .evaluate import fmt_num, fmt_pct
    from .pipeline import evaluate_model

    with _progress() as progress:
        m, skipped = evaluate_model(str(model_dir), data, out=out, options=_data_options(labels, manifest, alias, jobs, no_cache),
                                    classes=classes, progress=progress)
    typer.echo(f"accuracy {fmt_pct(m['accuracy'])}, macro F1 {fmt_num(m['macro_f1'])}, "
               f"ROC AUC {fmt_num(m['roc_auc_ovr_macro'])} on {m['n']} clips; report in {out}")
    if m.get("unknown_classes"):
        typer.echo("not scored, classes the model does not know: "
                   + ", ".join(f"{c} ({n} clips)" for c, n in m["unknown_classes"].items()), err=True)
    _report_skipped(skipped)


class EngineName(str, Enum):
    auto = "auto"
    torch = "torch"
    onnx = "onnx"


@app.command()
def predict(
    paths: List[Path] = typer.Argument(..., help="[MODEL_DIR] audio files or folders (recursive); without a model folder the shipped model is used"),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="model folder written by train or an exported .onnx file (default: the shipped model)"),
    fmt: OutFormat = typer.Option(OutFormat.table, "--format", help="table, json or csv"),
    top_k: int = typer.Option(3, "--top-k", min=1, help="how many classes to list per file"),
    window: Optional[float] = typer.Option(None, "--window", help="analyse in sliding windows of this many seconds (default: files longer than 1.5 model windows are windowed at the model's window)"),
    hop: Optional[float] = typer.Option(None, "--hop", help="step between windows in seconds (default: half the window)"),
    plot: Optional[Path] = typer.Option(None, "--plot", help="PNG: mel spectrogram with the class probabilities over time (one file only)"),
    engine: EngineName = typer.Option(EngineName.auto, "--engine", help="auto (onnxruntime where the model carries a current model.onnx, else torch), torch, or onnx"),
    log: Optional[Path] = typer.Option(None, "--log", help="JSON Lines file: one line per file as it is done; run again to finish an interrupted batch"),
    classes: Optional[str] = CLASSES_OPT,
):
    """Predict the instrument of each recording; long recordings get a timeline of windows and segments."""
    from .errors import ParameterError

    # `instrec predict MODEL_DIR FILE...` (a first argument holding model.json) also works.
    if model is None and (paths[0] / "model.json").is_file():
        model, paths = paths[0], paths[1:]
        if not paths:
            raise ParameterError(f"{model} is a model folder; name the audio files or folders to predict after it")
    if plot is not None and (len(paths) != 1 or paths[0].is_dir()):
        raise ParameterError("--plot draws one recording: name exactly one audio file")
    if plot is not None:
        _need("matplotlib")
    if engine is EngineName.torch:
        _need("torch", "safetensors")
    from .inference import check_window, load_model
    from .pipeline import predict_paths

    window, hop = check_window(window, hop)
    net = load_model(model, engine=engine.value, classes=classes)
    with _progress() as progress:
        results, skipped = predict_paths(net, paths, window=window, hop=hop, log=log, progress=progress)
    if results or fmt is not OutFormat.table:  # json and csv stay parseable ([] or a header); a table would be empty
        typer.echo(_format_predictions(results, fmt, top_k), nl=False)
    if plot is not None and results:
        _write_plot(net, results[0], plot)
    _report_skipped(skipped)
    if not results:
        raise typer.Exit(1)


def _write_plot(net, result, out: Path) -> None:
    from .audio import load
    from .display import plot_timeline
    from .fileio import write_bytes

    y, _ = load(result.path, sr=net.feature.sr)
    write_bytes(out, plot_timeline(y, result, net.feature))
    typer.echo(f"plot: {out}", err=True)


def _format_predictions(results, fmt: OutFormat, k: int) -> str:
    if fmt is OutFormat.json:
        return json.dumps([{**r.to_dict(), "top": [[c, p] for c, p in r.top(k)]} for r in results], indent=2) + "\n"
    k = min(k, len(results[0].probabilities)) if results else k
    if fmt is OutFormat.csv:
        return _predictions_csv(results, k)
    from rich.console import Console
    from rich.table import Table

    table = Table("file", "instrument", *(f"#{i}" for i in range(2, k + 1)))
    for r in results:
        top = r.top(k)
        table.add_row(r.path, f"{top[0][0]} ({top[0][1]:.1%})", *(f"{c} ({p:.1%})" for c, p in top[1:]))
    console = Console(file=io.StringIO(), width=160, force_terminal=False)
    console.print(table)
    for r in results:
        if r.is_timeline:
            console.print(f"\n{r.path}: {len(r.windows)} windows of {r.window:g} s, hop {r.hop:g} s", markup=False,
                          highlight=False, soft_wrap=True)
            seg = Table("from (s)", "to (s)", "instrument", "mean p")
            for s in r.segments:
                seg.add_row(f"{s.start:.2f}", f"{s.end:.2f}", s.label, "" if s.probability is None else f"{s.probability:.1%}")
            console.print(seg)
    return console.file.getvalue()


def _predictions_csv(results, k: int) -> str:
    """One row per file; with any windowed file, one row per window (short files: one window)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if not any(r.is_timeline for r in results):
        w.writerow(["path", "label"] + [c for i in range(1, k + 1) for c in (f"top{i}", f"p{i}")])
        for r in results:
            w.writerow([r.path, r.label] + [v for c, p in r.top(k) for v in (c, f"{p:.6f}")])
        return buf.getvalue()
    classes = list(results[0].probabilities)
    w.writerow(["path", "start", "end", "label", "silent"] + [f"p_{c}" for c in classes])
    for r in results:
        rows = r.windows if r.is_timeline else [None]
        for win in rows:
            start, end = (win.start, win.end) if win else (0.0, r.duration or 0.0)
            probs = (win.probabilities if win else r.probabilities) or {}
            label, silent = (win.label, win.silent) if win else (r.label, False)
            w.writerow([r.path, f"{start:.3f}", f"{end:.3f}", label, int(silent)]
                       + [f"{probs[c]:.6f}" if c in probs else "" for c in classes])
    return buf.getvalue()


@app.command()
def export(
    model: Path = typer.Argument(..., help="model folder written by train (or 'shipped' for the shipped model)"),
    onnx: Path = typer.Option(..., "--onnx", help="the .onnx file to write"),
    opset: int = typer.Option(17, "--opset", help="ONNX opset (13-20)"),
):
    """Export a model to ONNX (front end inside the graph for the cnn); run it with --engine onnx."""
    _need("torch", "safetensors", "onnx")
    from .export import export_onnx

    if str(model) == "shipped":
        from .assets import shipped_model_path

        model = shipped_model_path()
    export_onnx(model, onnx, opset=opset)
    typer.echo(f"exported {model} to {onnx} (checked: onnxruntime agrees with PyTorch within 1e-4)")


@app.command()
def serve(
    model: Optional[Path] = typer.Argument(None, help="model folder or .onnx file (default: the shipped model)"),
    host: str = typer.Option("127.0.0.1", help="address to listen on (0.0.0.0: every interface)"),
    port: int = typer.Option(8000, min=0, max=65535, help="TCP port"),
    engine: EngineName = typer.Option(EngineName.auto, "--engine", help="auto (onnxruntime where the model carries a current model.onnx, else torch), torch, or onnx"),
    max_upload_mb: float = typer.Option(20.0, "--max-upload-mb", help="largest upload in MB, enforced while it streams in"),
    max_duration: float = typer.Option(600.0, "--max-duration", help="longest recording in seconds, checked before decoding"),
    request_timeout: float = typer.Option(60.0, "--request-timeout", help="seconds per request before a 503"),
    max_concurrent: Optional[int] = typer.Option(None, "--max-concurrent", min=1, help="predictions at once (default: up to 4, one per core)"),
    max_queue: Optional[int] = typer.Option(None, "--max-queue", min=0, help="requests that may wait beside those at work; "
                                            "more get 503 with Retry-After (default: 4 x --max-concurrent, at least 16)"),
    cors_origin: Optional[List[str]] = typer.Option(None, "--cors-origin", help="let pages from this origin "
                                                    "(https://host[:port], or *) call the API; repeatable (default: none)"),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="INSTREC_API_KEY", show_default=False,
                                          help="require this key (X-API-Key or Authorization: Bearer) under /v1/ "
                                               "but /v1/health; prefer $INSTREC_API_KEY, which ps does not show"),
    log_level: str = typer.Option("info", "--log-level", help="critical, error, warning, info or debug"),
):
    """HTTP service and web page: POST /v1/predict, GET /v1/health, GET /v1/model, / (the page), /docs."""
    _need("fastapi", "uvicorn", "multipart")
    from .service import Limits
    from .service.server import serve as run_server

    limits = Limits(max_upload_bytes=int(max_upload_mb * 1_000_000), max_duration_s=max_duration,
                    request_timeout_s=request_timeout,
                    **({"max_concurrent": max_concurrent} if max_concurrent else {}),
                    **({"max_queue": max_queue} if max_queue is not None else {}))
    run_server(model, host=host, port=port, limits=limits, engine=engine.value, log_level=log_level,
               api_key=api_key, cors_origins=cors_origin)


@app.command()
def demo(
    data: Optional[Path] = typer.Option(None, help="your own labelled folder instead of the built-in renders"),
    out: Path = typer.Option(Path("instrec-demo"), help="where data, models and reports go"),
    per_class: int = typer.Option(100, "--per-class", min=2, help="rendered clips per instrument"),
    soundfont: str = typer.Option("fluidr3", help="SoundFont of the built-in data"),
    seed: int = typer.Option(0, help="seeds rendering, split and training"),
):
    """The main job: render → features → train both tutorial recipes → evaluate → report."""
    _need("fluidsynth", "torch", "safetensors", "matplotlib")
    from .demo import run_demo

    with _progress() as progress:
        report = run_demo(out, data=data, per_class=per_class, soundfont=soundfont, seed=seed, progress=progress,
                          log=lambda s: typer.echo(s, err=True))
    typer.echo(report.read_text())


def _quiet_decoder_messages() -> None:
    """Send what C libraries write straight to file descriptor 2 (libmpg123's "Note: Illegal
    Audio-MPEG-Header", "Xing stream size" ...) to /dev/null, while Python's own stderr (our
    messages, progress bars, tracebacks) keeps the real one. INSTREC_DECODER_MESSAGES=1 keeps them."""
    import os

    if os.environ.get("INSTREC_DECODER_MESSAGES") == "1":
        return
    try:
        if sys.stderr.fileno() != 2:  # stderr is already somewhere else: leave it alone
            return
        sys.stderr.flush()
        real = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        sys.stderr = os.fdopen(real, "w", buffering=1, encoding=sys.stderr.encoding, errors="backslashreplace")
    except (OSError, ValueError, AttributeError):  # no fd 2 (embedded, odd test runners): leave it
        pass


def main(argv: list[str] | None = None) -> None:
    """Entry point: a user-caused error is one line on stderr and a non-zero exit code."""
    if argv is None:  # the command itself, not a caller embedding main() (tests, scripts)
        _quiet_decoder_messages()
    try:
        app(args=argv, prog_name="instrec")
    except InstrecError as e:
        print(f"instrec: error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except ImportError as e:  # an optional part that is not installed: say which extra brings it
        from .errors import missing_extra

        line = missing_extra(e)
        if line is None:
            raise
        print(f"instrec: error: {line}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("instrec: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
