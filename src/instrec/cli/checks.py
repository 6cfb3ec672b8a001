"""What train and predict check before any work (options that contradict, outputs that could not be
written, a run that would be lost), and train's line about its data."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import typer

from ..errors import ParameterError

REPORT_FILES = ("metrics.json", "report.md")  # what train's (and --cv's) report folder always holds


def names_model(path) -> bool:
    """Whether ``path`` names a model: a folder holding model.json, a .onnx file, or 'shipped'."""
    from ..assets import names_shipped

    if isinstance(path, str):  # a URL: an input
        return False
    return (path / "model.json").is_file() or (path.suffix.lower() == ".onnx" and path.is_file()) or names_shipped(path)


def check_one_model(model: Path, paths: list) -> None:
    """``predict M PATH --model N``: the model named twice, M would be taken for an input and skipped."""
    if paths and names_model(paths[0]):
        raise ParameterError(f"{paths[0]} is a model and --model names {model}: name the model once "
                             "(first, or with --model)")


def check_predict_outputs(paths: list, *, out: Path | None, plot: Path | None, log: Path | None) -> None:
    """``predict``'s output files: --plot a .png (the picture is a PNG, whatever the name), and none of
    them one of the recordings to predict (the recording would be replaced by the output)."""
    if plot is not None and plot.suffix.lower() != ".png":
        raise ParameterError(f"--plot {plot}: the picture is a PNG; name a .png file")
    inputs = {p.resolve() for p in paths if not isinstance(p, str) and p.is_file()}
    for option, target in (("--out", out), ("--plot", plot), ("--log", log)):
        if target is not None and target.resolve() in inputs:
            raise ParameterError(f"{option} {target}: is one of the recordings to predict; name another file")


def check_labels(labels, manifest) -> None:
    """``--manifest`` with ``--labels`` other than auto or manifest: the manifest would win without a word."""
    if manifest is not None and labels.value not in ("auto", "manifest"):
        raise ParameterError(f"--manifest gives the labels; leave out --labels {labels.value} (or --manifest)")


def check_train_options(ctx: typer.Context, *, cv, resume, split, labels, manifest, nproc) -> None:
    """Refuse the combinations of train's options that would otherwise be ignored without a word."""
    from ..train.distributed import check_nproc, launched

    check_labels(labels, manifest)
    # by name: typer may carry a click of its own, whose ParameterSource is another enum
    given = getattr(ctx.get_parameter_source("test_size"), "name", "DEFAULT") not in ("DEFAULT", "DEFAULT_MAP")
    for wrong, line in ((resume, "--cv trains every fold afresh and saves no model; leave out --resume"),
                        (given, "--cv tests every clip once, fold by fold; leave out --test-size"),
                        (split is not None and split.value == "random",
                         "--cv folds are stratified (grouped with --split group or --group-by); leave out --split random")):
        if cv is not None and wrong:
            raise ParameterError(line)
    if nproc > 1 and not launched():
        check_nproc(nproc)


def check_report(report: Path, out: Path | None, option: str = "--report") -> None:
    """Refuse a report folder (train's --report, evaluate's and crossval's --out) before any work: a file, one
    that cannot be written, the model folder, or a folder of other files (the report's files would go among
    them, a recordings folder)."""
    from ..pipeline.validation import check_report_dir

    if out is not None and Path(report).resolve() == Path(out).resolve():
        raise ParameterError(f"--report and --out both name {report}: name another folder for the report")
    if report.is_dir() and not any((report / f).is_file() for f in REPORT_FILES) and any(report.iterdir()):
        raise ParameterError(f"{option} {report}: holds other files (it is not a report): name a new or empty folder")
    check_report_dir(report)  # a file: ParameterError; a folder that cannot be written: WriteError


DEMO_ENTRIES = {"data", "models", "reports", "report.md", "summary.json"}  # what demo writes in its folder


def check_demo_out(out: Path) -> None:
    """Refuse a demo folder that is a file, or a folder holding anything but an earlier demo's
    (its data, models and reports would go among a recordings folder's files)."""
    if out.exists() and not out.is_dir():
        raise ParameterError(f"--out {out}: is a file, not a folder; name a folder for the demo")
    if out.is_dir():
        other = sorted(p.name for p in out.iterdir() if p.name not in DEMO_ENTRIES)
        if other:
            raise ParameterError(f"--out {out}: holds other files ({other[0]}{', ...' if len(other) > 1 else ''}), "
                                 "not an earlier demo's: name a new or empty folder")


def check_checkpoint(out: Path, resume: bool, epochs: int) -> None:
    """Refuse to start afresh over an interrupted run's checkpoint (its epochs would be lost), and
    say so when --resume finds none to continue from (the run then starts from the first epoch)."""
    from ..pipeline.training import checkpoint_path
    from ..train.checkpoint import CKPT_JSON, checkpoint_exists

    ckpt = checkpoint_path(out)
    if not checkpoint_exists(ckpt):  # it puts back one that a killed run left aside
        if resume:
            typer.echo(f"--resume: no interrupted run to continue ({ckpt} holds no checkpoint); training from the start",
                       err=True)
        return
    if resume:
        return
    try:
        epoch = f" (epoch {int(json.loads((ckpt / CKPT_JSON).read_text(encoding='utf-8'))['epoch'])} of {epochs})"
    except (OSError, ValueError, KeyError, TypeError):  # a damaged checkpoint is still a run's
        epoch = ""
    raise ParameterError(f"--out {out} holds an interrupted run{epoch}: add --resume to continue it, or remove its "
                         f"checkpoint {ckpt} or choose another folder")


def data_line(card: dict, multilabel: bool) -> str | None:
    """What a model learnt from, as the folders were read: clips per class, or per instrument
    for multi-label data (a clip counts for each of its instruments)."""
    from ..data.activity import LABEL_SEP, split_labels

    classes = card.get("classes") or {}
    if not classes:
        return None
    head = f"data: {card.get('n')} clips ({card.get('label_mode')} labels) of "
    if not (multilabel or any(LABEL_SEP in c for c in classes)):
        return head + f"{len(classes)} classes: " + ", ".join(f"{c} {n}" for c, n in classes.items())
    counts, none = Counter(), 0
    for label, n in classes.items():
        names = split_labels(label)
        none += 0 if names else n
        for name in names:
            counts[name] += n
    return (head + f"{len(counts)} instruments (multi-label): " + ", ".join(f"{c} {n}" for c, n in sorted(counts.items()))
            + (f"; {none} with none" if none else ""))
