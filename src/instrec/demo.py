"""The main job: render the built-in data, train both tutorial recipes, evaluate, compare."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .evaluate import fmt_num, fmt_pct
from .fileio import write_json, write_text
from .pipeline import Progress, train_model

DEMO_RECIPES = ("seed-spectrogram", "seed-mfcc")


def run_demo(
    out: str | os.PathLike = "instrec-demo",
    *,
    data: str | os.PathLike | None = None,
    soundfont: str = "fluidr3",
    per_class: int = 100,
    seconds: float = 3.0,
    seed: int = 0,
    recipes=DEMO_RECIPES,
    progress: Progress | None = None,
    log=print,
) -> Path:
    """Render (unless ``data`` is given) → features → train → evaluate → ``out/report.md``."""
    out = Path(out)
    _check_arguments(data, soundfont=soundfont, per_class=per_class, seconds=seconds, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    if data is None:
        data = _render_once(out / "data", soundfont=soundfont, per_class=per_class, seconds=seconds, seed=seed, progress=progress, log=log)
    rows, skipped = [], []
    for name in recipes:
        log(f"training {name} on {data}")
        res = train_model(data, recipe=name, out=out / "models" / name, seed=seed, report_dir=out / "reports" / name, progress=progress)
        m = res.metrics
        log(f"{name}: accuracy {fmt_pct(m['accuracy'])}, macro F1 {fmt_num(m['macro_f1'])}, ROC AUC {fmt_num(m['roc_auc_ovr_macro'])}")
        rows.append((name, res))
        skipped = skipped or res.skipped
    report = out / "report.md"
    write_text(report, _comparison(rows, data, seed, skipped))
    write_json(out / "summary.json", {name: {**{k: r.metrics[k] for k in ("accuracy", "macro_f1", "roc_auc_ovr_macro", "n")},
                                             "train_seconds": r.train_seconds, "extract_seconds": r.extract_seconds}
                                      for name, r in rows})
    log(f"report: {report}")
    return report


def _check_arguments(data, *, soundfont, per_class, seconds, seed) -> None:
    """Refuse a mistake (ParameterError, one line) before ``out`` is made: a missing ``data``, a bad seed,
    an unknown SoundFont or count were found only after it, leaving an empty demo folder behind."""
    from .data.settings import check_arguments
    from .data.synth import select_soundfonts
    from .errors import ParameterError

    check_arguments(per_class, seconds, seed=seed)
    if data is not None:
        if not str(data).strip():
            raise ParameterError("data is empty: name the folder of labelled recordings")
        if not Path(data).exists():
            raise ParameterError(f"{data}: no such file or folder")
    else:
        select_soundfonts(soundfont)  # an unknown name: ParameterError; one not installed: RenderError


def _render_once(dest: Path, *, soundfont, per_class, seconds, seed, progress, log) -> Path:
    """Render the default data, or reuse a previous demo's render made with the same settings."""
    from .data.render import render

    params = {"soundfont": soundfont, "per_class": per_class, "seconds": seconds, "seed": seed}
    stamp = dest / "demo-render.json"
    if stamp.is_file():
        try:
            same = json.loads(stamp.read_text(encoding="utf-8")) == params
        except (OSError, ValueError):  # a damaged stamp (JSONDecodeError was a traceback): rendered again
            same = False
        if same and (dest / "manifest.csv").is_file():
            log(f"reusing rendered data in {dest}")
            return dest
        # an earlier demo's own render with other settings: replaced (render refuses a folder of other data)
        shutil.rmtree(dest)
    log(f"rendering {per_class} clips per class with FluidSynth ({soundfont}) into {dest}")
    bar = progress("rendering", 0) if progress else None
    rep = render(dest, soundfont=soundfont, per_class=per_class, seconds=seconds, seed=seed, progress=bar)
    log(f"rendered {rep.n_written} clips")
    write_json(stamp, params)
    return dest


def _comparison(rows, data, seed, skipped) -> str:
    first = rows[0][1]
    lines = [
        "# instrec demo: the tutorial's two approaches compared",
        "",
        f"- **data**: {data}",
        f"- **split**: {first.context['evaluated on']}",
        f"- **clips**: {first.context['clips']}",
        f"- **sources**: {first.context['sources']}",
        f"- **seed**: {seed}",
        "",
        "A random split of clips from one source says little about recordings from another source;",
        "see the README for cross-source figures.",
        "",
        "| approach | accuracy | macro F1 | ROC AUC (ovr, macro) | test clips | feature extraction | training |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in rows:
        m = r.metrics
        lines.append(f"| {name}: {r.model.recipe.description} | {fmt_pct(m['accuracy'])} | {fmt_num(m['macro_f1'])} | "
                     f"{fmt_num(m['roc_auc_ovr_macro'])} | {m['n']} | {r.extract_seconds:.1f} s | {r.train_seconds:.1f} s |")
    lines.append("")
    for name, _ in rows:
        lines += [f"## {name}", "", f"![confusion matrix of {name}](reports/{name}/confusion_matrix.png)", "",
                  f"Details: [reports/{name}/report.md](reports/{name}/report.md)", ""]
    if skipped:
        lines += [f"Skipped {len(skipped)} file(s):", ""] + [f"- `{p}`: {why}" for p, why in skipped] + [""]
    return "\n".join(lines)
