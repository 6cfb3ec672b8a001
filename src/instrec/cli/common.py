"""What every command shares: the typer app, how help shows values, the option types and shared options."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import NoReturn, get_args

import typer
from typer import Abort
from typer.core import TyperArgument, TyperCommand, TyperGroup

try:  # typer >= 0.2x carries its own click; an older one uses the click package
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
except ImportError:
    import click.exceptions as _cx

    ClickException, NoArgsIsHelpError = _cx.ClickException, getattr(_cx, "NoArgsIsHelpError", ())  # () before click 8.2


# The default recipe of train and crossval: instrec.pipeline.DEFAULT_RECIPE, named here too so that
# --help need not import the pipeline (a test keeps the two equal).
DEFAULT_RECIPE = "mfcc-stats"


def _default_metavar(param) -> str:
    """A value's name as the README writes it (N, PATH, a|b), not typer's Python type (<int>, <list[Path]>)."""
    d = param.type_descriptor
    if getattr(param, "is_flag", False) or d.is_choice:  # a flag takes no value
        return "|".join(str(getattr(c, "value", c)) for c in d.choices) if d.is_choice else ""
    if param.param_type_name == "argument":
        return param.name.upper() + ("..." if param.nargs != 1 else "")
    kind = get_args(d.annotation)[0] if d.is_list else d.annotation
    return {int: "N", float: "NUMBER", str: "TEXT", Path: "PATH"}.get(kind, "VALUE")


class _Argument(TyperArgument):
    def display_type_rich(self, ctx) -> None:  # an argument is shown by its name alone (PATH...), no <type>
        return None


class _FlagHelp:
    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""  # -h/--help is a flag: no <bool>
        return option


class _Command(_FlagHelp, TyperCommand):
    """Every command's help: readable value names, and a usage line without typer's braces."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for param in self.params:
            if param.metavar is None:
                param.metavar = _default_metavar(param)
            if type(param) is TyperArgument:
                param.__class__ = _Argument  # typer makes the arguments; this changes how help shows them, nothing else

    def collect_usage_pieces(self, ctx) -> list[str]:
        args = [p.metavar if p.required else f"[{p.metavar}]" for p in self.get_params(ctx) if p.param_type_name == "argument"]
        return [self.options_metavar, *args] if self.options_metavar else args


class _Group(_FlagHelp, TyperGroup):
    pass


app = typer.Typer(name="instrec", help="Tell which musical instrument is playing in a recording.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False, cls=_Group,
                  context_settings={"help_option_names": ["-h", "--help"]})


def _examples(*rows: tuple[str, str]) -> str:
    """A command's help epilog: "Examples", one command a line, what it does after it."""
    return "Examples:\n" + "\n".join(f"  {command}" + (f"   # {what}" if what else "") for command, what in rows)


def _print_version(value: bool) -> None:
    if value:
        from .._version import __version__

        typer.echo(f"instrec {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True, metavar="",
                                          help="print instrec's version and exit")):
    """Tell which musical instrument is playing in a recording."""


def _choice(name: str, *values: str) -> type[Enum]:
    """A str Enum of an option's values: typer lists them in --help and refuses others."""
    return Enum(name, [(v, v) for v in values], type=str)


LabelMode = _choice("LabelMode", "auto", "folder", "filename", "manifest")
SplitMethod = _choice("SplitMethod", "random", "stratified", "group")
Trainable = _choice("Trainable", "all", "output")
ImageMode = _choice("ImageMode", "gray", "rgb")
AudioFormat = _choice("AudioFormat", "wav", "flac", "mp3")
OutFormat = _choice("OutFormat", "table", "json", "csv")
EngineName = _choice("EngineName", "auto", "torch", "onnx")
Level = _choice("Level", "instrument", "family")

LABELS_OPT = typer.Option(LabelMode.auto, "--labels", help="where labels come from: sub-folder, file-name prefix, manifest CSV (auto: detect)")
MANIFEST_OPT = typer.Option(None, "--manifest", metavar="FILE.csv", exists=True, dir_okay=False, help="CSV with columns path,label[,group,source]")
DEVICE_OPT = typer.Option("auto", "--device", metavar="auto|cpu|cuda", help="where to train, and to compute MFCCs: auto (a CUDA GPU when present), cpu or cuda")
ALIAS_OPT = typer.Option(None, "--alias", metavar="NAME=LABEL", help="label alias NAME=LABEL (repeatable); sax=saxophone is built in")
CLASSES_OPT = typer.Option(None, "--classes", metavar="NAME,...", help="answer among these of the model's classes only, comma-separated "
                           "(e.g. flute,cello,oboe)")


def _probability(value: float | None) -> float | None:
    """``--min-confidence`` checked by the library's own rule at parsing, so that the error names
    the option (typer's range said "less than or equal to 1" of nan)."""
    from ..decision import check_min_confidence
    from ..errors import ParameterError

    try:
        return check_min_confidence(value)
    except ParameterError as e:
        raise typer.BadParameter(str(e).removeprefix("min_confidence ")) from None


def _need(*modules: str) -> None:
    """Fail at once, naming the extra to install (see main), when an optional package is missing."""
    import importlib.util

    for name in modules:
        if importlib.util.find_spec(name) is None:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


def _say_recipe(recipe: str | None, base, r) -> None:
    """Name the recipe a run uses when the user named none: it decides what the model can learn."""
    if recipe is None and base is None:
        typer.echo(f"recipe: {r.name} (the default; --recipe to choose)")


def _say_absent_classes(context: dict) -> None:
    """Classes of the model fine-tuning started from that the training data lacks: dropped (a warning) or kept."""
    from ..pipeline.common import ABSENT_DROPPED, ABSENT_KEPT

    for key, line, err in ((ABSENT_DROPPED, "dropped the classes of the model it started from that the training data lacks: "
                            "{} (--keep-classes keeps them)", True),
                           (ABSENT_KEPT, "kept the classes of the model it started from that the training data lacks, their "
                            "output rows as they were: {}", False)):
        if context.get(key):
            typer.echo(line.format(context[key]), err=err)


def finish(code) -> NoReturn:
    """Exit as typer's standalone mode would after ``app(..., standalone_mode=False)`` returned
    ``code``: a ``typer.Exit``'s code (130: the Ctrl-C typer caught), else 0 (a command's own value)."""
    if code == 130:
        print("instrec: interrupted", file=sys.stderr)
    sys.exit(code if isinstance(code, int) and not isinstance(code, bool) else 0)


def click_error_exit(e: ClickException | Abort) -> NoReturn:
    """What click found wrong with the command line (a bad value, an unknown option, a missing
    argument): one line on stderr, as instrec's own errors are, naming where help is; click's exit
    code (2 for usage). ``instrec`` alone still shows the help, as typer does."""
    if isinstance(e, Abort):
        print("instrec: error: aborted", file=sys.stderr)
        sys.exit(1)
    if isinstance(e, NoArgsIsHelpError):  # no arguments at all: the help is the answer
        try:
            from typer import rich_utils
        except ImportError:  # typer without rich: click's own words
            e.show()
        else:
            rich_utils.rich_format_error(e)
        sys.exit(e.exit_code)
    ctx = getattr(e, "ctx", None)
    hint = f" ({ctx.command_path} --help for usage)" if ctx is not None else ""
    print(f"instrec: error: {' '.join(e.format_message().split())}{hint}", file=sys.stderr)  # one line, always
    sys.exit(e.exit_code)


FEW_TEST_CLIPS = 20  # under this many, train notes how little its test figures rest on


def few_clips_note(m: dict, classes) -> str | None:
    """``note: ...`` under train's score where it rests on little: under :data:`FEW_TEST_CLIPS`
    test clips, a class of the data (``classes``) with none of them, ROC AUC n/a from one class."""
    from ..errors import counted

    n, multilabel = m["n"], bool(m.get("multilabel"))
    if not n:  # nothing scored: the 'not scored' line says why
        return None
    parts = [f"only {counted(n, 'test clip')}" + ("" if multilabel else f" (each {100 / n:.0f}% of the accuracy)")] \
        if n < FEW_TEST_CLIPS else []
    support = {c: (m.get("per_class") or {}).get(c, {}).get("support", 0) for c in ([] if multilabel else classes)}
    present = [c for c, k in support.items() if k]
    if m.get("roc_auc_ovr_macro") is None and len(present) == 1:
        parts.append(f"all of one class ({present[0]}), so ROC AUC n/a")
    elif len(present) < len(support):
        parts.append("no test clip of " + ", ".join(c for c, k in support.items() if not k))
    return "note: " + ", ".join(parts) + "; --cv K tests every clip" if parts else None


def say_train_result(res, out) -> None:
    """train's summary: what it learnt from, its test score (and how much that rests on), how it
    was calibrated, what went wrong, and last where the model is."""
    from ..display import report_skipped
    from ..errors import counted
    from ..evaluate import fmt_num, fmt_pct
    from .checks import data_line

    m, context, card = res.metrics, res.context, res.model.info["training"].get("data", {})
    line = data_line(card, bool(m.get("multilabel")))
    if line:  # what it learnt from, as the folders were read
        typer.echo(line)
    for key in ("split", "families"):
        if key in context:
            typer.echo(f"{key}: {context[key]}")
    scores = (f"test mAP {fmt_num(m['map'])}, micro F1 {fmt_num(m['micro_f1'])}, macro F1 {fmt_num(m['macro_f1'])}"
              if m.get("multilabel") else
              f"test accuracy {fmt_pct(m['accuracy'])}, macro F1 {fmt_num(m['macro_f1'])}, ROC AUC {fmt_num(m['roc_auc_ovr_macro'])}")
    typer.echo(f"{context['recipe']}: {scores} on {counted(m['n'], 'held-back clip')} "
               f"{context['evaluated on'].removeprefix('held-back test split ')}")
    note = few_clips_note(m, list(card.get("classes") or {}))
    if note:
        typer.echo(note)
    if "the model it started from" in context:
        typer.echo(f"the model it started from: {context['the model it started from']}")
    if "warning" in context:
        typer.echo(f"warning: {context['warning']}", err=True)
    _say_absent_classes(context)
    if "validation" in context:
        typer.echo(f"validation: {context['validation']}")
    typer.echo(f"calibration: {context['calibration']}")
    if m.get("unknown_classes"):
        typer.echo("not scored, test classes absent from the training split: "
                   + ", ".join(f"{c} ({counted(n, 'clip')})" for c, n in m["unknown_classes"].items()), err=True)
    report_skipped(res.skipped)
    typer.echo(f"model saved to {out}")
