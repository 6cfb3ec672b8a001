"""What the command line shows: predictions as a table, JSON or CSV, and as a picture (the mel
spectrogram of a recording with its class probabilities over time); progress bars; skipped files;
and what it does not: C decoders' messages."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from .errors import printable

if TYPE_CHECKING:  # annotations only: main() imports this module before every command, so it stays light
    import numpy as np

    from .features import FeatureConfig
    from .results import Prediction, Track


def plot_timeline(y: np.ndarray, prediction: Prediction, feature: FeatureConfig, *, title: str | None = None) -> bytes:
    """PNG bytes: the dB mel spectrogram of ``y`` (sampled at ``feature.sr``) above the probability of
    each class per window (one line per class, silent windows left blank).

    A short recording without windows shows its probabilities as one bar per class instead. A
    multi-label prediction also gets a piano-roll between the two, on the spectrogram's time axis:
    one row per instrument (or family, at family level) heard, a bar over each of its segments.
    A long recording's spectrogram frames are averaged into at most :data:`PICTURE_COLUMNS` columns.
    """
    picture = PictureSpectrogram(feature, len(y))
    for s in range(0, len(y), 1 << 20):  # in blocks, as a file is decoded: y is never copied whole
        picture.feed(y[s : s + (1 << 20)])
    return _png(timeline_figure(picture.finish(), prediction, feature, title=title))


def timeline_figure(spectrogram: tuple, prediction: Prediction, feature: FeatureConfig, *, title: str | None = None):
    """:func:`plot_timeline`'s matplotlib figure, from ``(dB mel spectrogram, hop_length of its
    columns, duration in s)`` (:meth:`PictureSpectrogram.finish`)."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import librosa.display
    import matplotlib.pyplot as plt

    f = feature
    S_db, hop_length, duration = spectrogram
    classes = shown_classes(prediction)
    colours = {c: f"C{i % 10}" for i, c in enumerate(classes)}  # an instrument's colour in every panel
    name = Path(prediction.path).name if prediction.path else "recording"
    if prediction.is_multilabel:
        tracks = heard(prediction)
        rows = max(len(tracks), 1)
        fig, (ax_s, ax_r, ax_p) = plt.subplots(3, 1, figsize=(10, 6.5 + 0.3 * rows), constrained_layout=True,
                                               gridspec_kw={"height_ratios": [3, 0.3 * rows + 0.4, 2]})
        ax_r.sharex(ax_s)
        if prediction.is_timeline:
            ax_p.sharex(ax_s)
        answer = ", ".join(t.label for t in tracks) or f"no {_heard_kind(prediction)} heard"
    else:
        fig, (ax_s, ax_p) = plt.subplots(2, 1, figsize=(10, 6), sharex=prediction.is_timeline,
                                         gridspec_kw={"height_ratios": [3, 2]}, constrained_layout=True)
        answer = prediction.label
    librosa.display.specshow(S_db, sr=f.sr, hop_length=hop_length, x_axis="time", y_axis="mel", ax=ax_s)
    time_label = _time_ticks(ax_s, duration)  # shared: every panel on the time axis gets these ticks
    ax_s.set_title(title or f"{name}: {answer}")
    ax_s.set_xlabel("" if prediction.is_timeline or prediction.is_multilabel else time_label)
    if prediction.is_multilabel:
        _piano_roll(ax_r, prediction, colours, duration, time_label)
    if prediction.is_timeline:
        centres = np.array([(w.start + w.end) / 2 for w in prediction.windows])
        for c in classes:
            p = np.array([w.probabilities[c] if w.probabilities else np.nan for w in prediction.windows])
            ax_p.plot(centres, p, marker=".", label=c, color=colours[c])
        _shade_silence(ax_p, prediction)
        ax_p.set_xlim(0, duration)
        ax_p.set_xlabel(time_label)
        others = len(prediction.probabilities) - len(classes)
        ax_p.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small",
                    title=f"{others} less likely not shown" if others else None, title_fontsize="x-small")
    else:
        ax_p.bar(classes, [prediction.probabilities[c] for c in classes],
                 color=[colours[c] for c in classes] if prediction.is_multilabel else "tab:blue")
        ax_p.tick_params(axis="x", labelrotation=30)
    ax_p.set_ylim(0, 1.02)
    ax_p.set_ylabel("probability")
    return fig


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def _time_ticks(ax, duration: float) -> str:
    """Format ``ax``'s time ticks as ``h:mm:ss`` from an hour, ``m:ss`` from a minute, else in
    seconds, whatever the zoom; returns the axis label that says which."""
    from matplotlib.ticker import FuncFormatter

    if duration >= 3600:
        unit, fmt = "h:mm:ss", lambda x: f"{int(x // 3600)}:{int(x % 3600 // 60):02d}:{int(x % 60):02d}"
    elif duration >= 60:
        unit, fmt = "m:ss", lambda x: f"{int(x // 60)}:{int(x % 60):02d}"
    else:
        unit, fmt = "s", lambda x: f"{x:g}"
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: fmt(x)))
    return f"time ({unit})"


PICTURE_COLUMNS = 4000  # a picture's spectrogram is ~800 px wide: more columns would not show, only cost memory


class PictureSpectrogram:
    """The dB mel spectrogram a picture draws, of samples fed block by block (:meth:`feed`): each
    frame's mel power (centred frames, as :func:`instrec.features.mel.mel_spectrogram_db`'s) is
    averaged into columns of ``pool`` frames, at most :data:`PICTURE_COLUMNS` of them, so memory
    holds a block and the columns however long the recording. ``expected``: the samples to come
    (sets ``pool``; more than that only halves the columns again)."""

    def __init__(self, feature: FeatureConfig, expected: int):
        import numpy as np

        from .features.mel import hann_window, mel_filters

        self.sr, self.n_fft, self.hop, self.top_db = feature.sr, feature.n_fft, feature.hop_length, feature.top_db
        self.window = hann_window(feature.n_fft)
        self.filters_t = np.ascontiguousarray(mel_filters(feature.sr, feature.n_fft, feature.n_mels).T)
        self.pool = max(1, -(-(1 + max(int(expected), 0) // self.hop) // PICTURE_COLUMNS))
        self.sums = np.zeros((PICTURE_COLUMNS, feature.n_mels))
        self.counts = np.zeros(PICTURE_COLUMNS, np.int64)
        self.buf = np.zeros(self.n_fft // 2, np.float32)  # the first frame's centring pad
        self.base = 0  # the padded signal's index of buf[0]
        self.done = 0  # frames transformed
        self.samples = 0

    def feed(self, y: np.ndarray) -> None:
        import numpy as np

        self.samples += len(y)
        self.buf = np.concatenate([self.buf, np.asarray(y, np.float32)])
        self._transform()

    def finish(self) -> tuple[np.ndarray, int, float]:
        """``(dB mel spectrogram (n_mels, columns), hop_length of a column, duration in s)``."""
        import numpy as np

        from .features.mel import power_to_db

        self.buf = np.concatenate([self.buf, np.zeros(self.n_fft // 2, np.float32)])  # the last frame's pad
        self._transform()
        n = (self.done - 1) // self.pool + 1
        mean = (self.sums[:n] / np.maximum(self.counts[:n], 1)[:, None]).T.astype(np.float32)
        return power_to_db(mean, ref="max", top_db=self.top_db), self.pool * self.hop, self.samples / self.sr

    def _transform(self) -> None:
        import numpy as np
        import scipy.fft

        end = self.base + len(self.buf)
        frames = (end - self.n_fft) // self.hop + 1 if end >= self.n_fft else 0
        step = self.buf.strides[0]
        for k0 in range(self.done, frames, 256):  # 256 frames at once: a few MB of scratch
            k1 = min(k0 + 256, frames)
            start = k0 * self.hop - self.base
            x = np.lib.stride_tricks.as_strided(self.buf[start:], shape=(k1 - k0, self.n_fft),
                                                strides=(self.hop * step, step), writeable=False)
            spec = scipy.fft.rfft(x * self.window, axis=-1, workers=1)
            mel = (spec.real**2 + spec.imag**2) @ self.filters_t
            while (k1 - 1) // self.pool >= PICTURE_COLUMNS:  # more audio than expected: halve the columns
                self._halve()
            cols = np.arange(k0, k1) // self.pool
            first = np.flatnonzero(np.r_[True, cols[1:] != cols[:-1]])
            self.sums[cols[first]] += np.add.reduceat(mel, first, axis=0)
            self.counts[cols[first]] += np.diff(np.r_[first, len(cols)])
        self.done = max(self.done, frames)
        drop = self.done * self.hop - self.base  # samples no frame still to come needs
        if drop > 0:
            self.buf, self.base = self.buf[drop:], self.base + drop

    def _halve(self) -> None:
        half = PICTURE_COLUMNS // 2
        for a in (self.sums, self.counts):
            a[:half] = a[0::2] + a[1::2]
            a[half:] = 0
        self.pool *= 2


SHOWN_CLASSES = 8  # lines a probability panel draws: more would not be told apart, nor fit their legend


def shown_classes(prediction: Prediction, n: int = SHOWN_CLASSES) -> list[str]:
    """The classes a picture of ``prediction`` draws: the instruments heard (multi-label), then the
    likeliest others (by their highest probability in any window), ``n`` in all unless more were heard."""
    def best(c: str) -> float:
        windows = [w.probabilities[c] for w in prediction.windows or [] if w.probabilities]
        return max(windows, default=prediction.probabilities[c])

    names = [t.label for t in heard(prediction)] if prediction.is_multilabel else []
    rest = sorted((c for c in prediction.probabilities if c not in names), key=lambda c: -best(c))
    return names + rest[: max(0, n - len(names))]


def heard(prediction: Prediction) -> list[Track]:
    """A multi-label prediction's tracks at its level: its instruments heard, or at family level
    one track per family of them (its probability the prediction's, its segments its instruments'
    together), the likeliest first."""
    tracks = prediction.instruments or []
    if prediction.level != "family":
        return tracks
    from .results import Track

    members: dict[str, list[Track]] = {}
    for t in tracks:
        members.setdefault(t.family, []).append(t)
    out = []
    for family, ts in members.items():
        spans = sorted(s for t in ts for s in t.segments)
        merged: list[tuple[float, float]] = []
        for a, b in spans:
            if merged and a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
        p = prediction.probabilities.get(family, max(t.probability for t in ts))
        out.append(Track(family, family, float(p), merged))
    return sorted(out, key=lambda t: -t.probability)


def active_at_level(prediction: Prediction, active: Sequence[str] | None) -> list[str]:
    """A window's active instruments, or at family level their families (in the families' order)."""
    if prediction.level != "family" or not active:
        return list(active or [])
    family_of = {t.label: t.family for t in prediction.instruments or []}
    found = {family_of.get(c, c) for c in active}
    order = [f for f in prediction.probabilities if f in found]
    return order + sorted(found - set(order))


def _heard_kind(prediction: Prediction) -> str:
    return "family" if prediction.level == "family" else "instrument"


def _piano_roll(ax, prediction: Prediction, colours: dict[str, str], duration: float, time_label: str) -> None:
    """A multi-label prediction's instruments (or families) heard, one row each (the likeliest on
    top), a bar over each segment; silent windows shaded as in the probability panel."""
    tracks = heard(prediction)
    for i, t in enumerate(tracks):
        ax.broken_barh([(a, b - a) for a, b in t.segments], (i - 0.4, 0.8), color=colours.get(t.label, "C0"))
    if not tracks:
        ax.text(0.5, 0.5, f"no {_heard_kind(prediction)} heard", transform=ax.transAxes, ha="center", va="center",
                color="0.4")
    _shade_silence(ax, prediction)
    ax.set_yticks(range(len(tracks)), [t.label for t in tracks])
    ax.set_ylim(max(len(tracks), 1) - 0.5, -0.5)  # the first row on top
    ax.set_xlim(0, duration)
    if prediction.is_timeline:  # the probability panel below carries the time labels
        ax.tick_params(axis="x", labelbottom=False)
    else:
        ax.set_xlabel(time_label)


def _shade_silence(ax, prediction: Prediction) -> None:
    for s in prediction.segments or []:
        if s.label == "silence":
            ax.axvspan(s.start, s.end, color="0.9", zorder=0)


def write_timeline(model, prediction: Prediction, out: str | os.PathLike) -> None:
    """Write :func:`plot_timeline`'s PNG of the file ``prediction`` was made on, atomically, to ``out``.

    The file is decoded again block by block into the picture's spectrogram
    (:class:`PictureSpectrogram`): memory holds a block and its columns, not the recording."""
    from .audio import decode_blocks, header_seconds
    from .fileio import write_bytes

    f = model.feature
    seconds = prediction.duration or header_seconds(prediction.path) or 0.0
    picture = PictureSpectrogram(f, round(seconds * f.sr))
    decode_blocks(prediction.path, picture.feed, sr=f.sr)
    write_bytes(out, _png(timeline_figure(picture.finish(), prediction, f)))


def format_predictions(results: Sequence[Prediction], fmt: str, k: int) -> str:
    """Predictions as ``instrec predict`` prints them: ``table`` (as wide as the terminal), ``json``
    or ``csv``, listing the top ``k`` classes of each, and each answer's family.

    A multi-label model's predictions are listed by the instruments heard and when
    (:func:`multilabel_table`, :func:`multilabel_csv`); ``k`` then applies to JSON's ``top`` only."""
    if fmt == "json":
        return json.dumps([r.to_row(k) for r in results], indent=2) + "\n"
    multilabel = any(r.is_multilabel for r in results)
    k = min(k, len(results[0].probabilities)) if results else k
    if fmt == "csv":
        return multilabel_csv(results) if multilabel else predictions_csv(results, k)
    from rich.table import Table

    if multilabel:
        return multilabel_table(results)

    by_family = bool(results) and results[0].level == "family"
    what = "family" if by_family else "instrument"
    rows = []
    for r in results:
        p = r.probabilities.get(r.label)
        if p is not None and p < max(r.probabilities.values()):  # unknown from doubt: the `unknown` class's p is no confidence
            p = None
        others = [(c, q) for c, q in r.top(k) if c != r.label][: k - 1]
        doubt = p is None and r.label == "unknown"  # below min_confidence: say so, its likeliest class is listed next
        rows.append([_shown(r.path), "unknown (unsure)" if doubt else r.label if p is None else f"{r.label} ({p:.1%})",
                     *([] if by_family else [r.family or ""]), *(f"{c} ({q:.1%})" for c, q in others)])
    head = ["file", what, *([] if by_family else ["family"])]
    alternatives = [f"#{i}" for i in range(2, k + 1)]
    if not _fits(head + alternatives, rows):  # one column each would cut every name short: one for them all
        alternatives = [f"#2-#{k}"] if k > 2 else alternatives
        rows = [row[: len(head)] + ([", ".join(row[len(head):])] if alternatives else []) for row in rows]
    table = Table(*map(_folded, head + alternatives))
    for row in rows:
        table.add_row(*row, *[""] * (len(head) + len(alternatives) - len(row)))

    def segments(r: Prediction) -> Table:
        seg = Table(*map(_folded, ("from (s)", "to (s)", what, "mean p")))
        for s in r.segments:
            seg.add_row(f"{s.start:.2f}", f"{s.end:.2f}", s.label, "" if s.probability is None else f"{s.probability:.1%}")
        return seg

    return _with_timelines(table, results, segments)


def multilabel_table(results: Sequence[Prediction]) -> str:
    """A multi-label model's predictions as a table: per file, each instrument heard (the likeliest
    first) with its probability and when it plays, or "no instrument heard"; then, per windowed
    file, who plays when (runs of windows with the same instruments). At family level, the same
    of the families heard (:func:`heard`)."""
    from rich.table import Table

    by_family = bool(results) and results[0].level == "family"
    what = "family" if by_family else "instrument"
    # the answer is the set heard with its times: no single label, which would hide the others
    table = Table(*map(_folded, ["file", what, *([] if by_family else ["family"])]),
                  _folded("p", justify="right"), _folded("when"))
    for r in results:
        tracks = heard(r)
        if not tracks:
            table.add_row(_shown(r.path), f"no {what} heard", *([] if by_family else [""]), "", "", end_section=True)
        for i, t in enumerate(tracks):
            table.add_row(_shown(r.path) if i == 0 else "", t.label, *([] if by_family else [t.family]),
                          f"{t.probability:.2f}", ", ".join("-".join(span(a, b)) for a, b in t.segments),
                          end_section=i == len(tracks) - 1)
    def runs(r: Prediction) -> Table:
        when = Table(_folded("from"), _folded("to"), _folded("families" if by_family else "instruments"))
        for a, b, who in who_plays_when(r):
            when.add_row(*span(a, b), who)
        return when

    return _with_timelines(table, results, runs)


def _folded(header: str, **kw):
    """A table column whose long cells wrap rather than end in '…': a narrow terminal shows every answer whole."""
    from rich.table import Column

    return Column(header, overflow="fold", **kw)


def _fits(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> bool:
    """Whether a table of ``headers`` and ``rows`` fits the terminal on one line a row, its borders
    counted; the first column (file names, which wrap anyway) at up to 20 characters."""
    widths = [max([len(h), *(len(row[i]) for row in rows if i < len(row))]) for i, h in enumerate(headers)]
    widths[:1] = [min(w, 20) for w in widths[:1]]
    return sum(widths) + 3 * len(widths) + 1 <= terminal_width()


def _shown(path: str | None) -> str:
    """A file's name as a table shows it: on one line (:func:`instrec.errors.printable`)."""
    return "" if path is None else printable(str(path))


def _with_timelines(table, results: Sequence[Prediction], per_file) -> str:
    """``table`` printed, then for each windowed result its windows and ``per_file(result)``'s table."""
    from rich.console import Console

    console = Console(file=io.StringIO(), width=terminal_width(), force_terminal=False)
    console.print(table)
    for r in results:
        if r.is_timeline:
            n = len(r.windows)
            console.print(f"\n{_shown(r.path)}: {n} window{'s' * (n != 1)} of {r.window:g} s, hop {r.hop:g} s", markup=False,
                          highlight=False, soft_wrap=True)
            console.print(per_file(r))
    return console.file.getvalue()


def who_plays_when(prediction: Prediction) -> list[tuple[float, float, str]]:
    """``(start, end, instruments)`` of each run of a windowed multi-label prediction's windows
    with the same active set, over the stretches the windows stand for
    (:func:`instrec.timeline.tiles_of`), so the runs tile the recording; ``instruments``:
    the active set (at family level, its families) joined by ", ", "silence" or "none"."""
    from .timeline import tiles_of

    tiles = tiles_of(prediction.windows, prediction.duration or prediction.windows[-1].end)
    runs: list[tuple[float, float, str]] = []
    for (a, b), w in zip(tiles, prediction.windows):
        who = "silence" if w.silent else (", ".join(active_at_level(prediction, w.active)) or "none")
        if runs and runs[-1][2] == who:
            runs[-1] = (runs[-1][0], float(b), who)
        else:
            runs.append((float(a), float(b), who))
    return runs


def clock(seconds: float, digits: int = 1) -> str:
    """``m:ss.s`` (``h:mm:ss.s`` from an hour): a time in a recording, to ``digits`` decimals of a second."""
    scale = 10**digits
    ticks = int(round(seconds * scale))  # rounded first, so that 59.96 s is 1:00.0, not 0:60.0
    m, t = divmod(ticks, 60 * scale)
    h, m = divmod(m, 60)
    sec = f"{t / scale:0{3 + digits}.{digits}f}"
    return f"{h}:{m:02d}:{sec}" if h else f"{m}:{sec}"


def span(start: float, end: float) -> tuple[str, str]:
    """``start`` and ``end`` as :func:`clock` writes them, with up to three decimals where one would
    show a span shorter than a tenth of a second as empty (``0:00.0-0:00.0``)."""
    for digits in (1, 2):
        a, b = clock(start, digits), clock(end, digits)
        if a != b or start == end:
            return a, b
    return clock(start, 3), clock(end, 3)


def terminal_width() -> int:
    """The terminal's width (COLUMNS first, as rich reads it); 160 when stdout is no terminal, so
    that a table piped to a file or a pager keeps long paths on one line."""
    import shutil

    return shutil.get_terminal_size(fallback=(160, 24)).columns


def predictions_csv(results: Sequence[Prediction], k: int) -> str:
    """One row per file; with any windowed file, one row per window (short files: one window).

    At instrument level each row also has the answer's ``family`` and every family's probability
    (``pf_<family>`` columns); at family level the labels and ``p_`` columns are the families'."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    by_family = bool(results) and results[0].level == "family"
    families = [] if by_family or not results else list(results[0].family_probabilities or {})

    def fam(family) -> list:
        return [] if by_family else [family or ""]

    def fam_p(probs) -> list:
        return [f"{probs[f]:.6f}" if probs and f in probs else "" for f in families]

    if not any(r.is_timeline for r in results):
        w.writerow(["path", "label", *fam("family")] + [c for i in range(1, k + 1) for c in (f"top{i}", f"p{i}")]
                   + [f"pf_{f}" for f in families])
        for r in results:
            w.writerow([r.path, r.label, *fam(r.family)] + [v for c, p in r.top(k) for v in (c, f"{p:.6f}")]
                       + fam_p(r.family_probabilities))
        return buf.getvalue()
    classes = list(results[0].probabilities)
    w.writerow(["path", "start", "end", "label", *fam("family"), "silent"] + [f"p_{c}" for c in classes]
               + [f"pf_{f}" for f in families])
    for r in results:
        rows = r.windows if r.is_timeline else [None]
        for win in rows:
            start, end = (win.start, win.end) if win else (0.0, r.duration or 0.0)
            probs = (win.probabilities if win else r.probabilities) or {}
            label, family, silent = (win.label, win.family, win.silent) if win else (r.label, r.family, False)
            w.writerow([r.path, f"{start:.3f}", f"{end:.3f}", label, *fam(family), int(silent)]
                       + [f"{probs[c]:.6f}" if c in probs else "" for c in classes]
                       + fam_p(win.family_probabilities if win else r.family_probabilities))
    return buf.getvalue()


def multilabel_csv(results: Sequence[Prediction]) -> str:
    """A multi-label model's predictions, one row per window (a file without windows: one row):
    ``path, start, end, active, silent``, then ``p_<class>`` for every class and, at instrument
    level, ``pf_<family>``. ``active``: the instruments over their thresholds (at family level, their
    families), joined by ';' (empty when none is, or the window is silent)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    by_family = results[0].level == "family"
    classes = list(results[0].probabilities)
    families = [] if by_family else list(results[0].family_probabilities or {})
    w.writerow(["path", "start", "end", "active", "silent"] + [f"p_{c}" for c in classes] + [f"pf_{f}" for f in families])
    for r in results:
        if r.is_timeline:
            rows = [(win.start, win.end, win.active, win.silent, win.probabilities, win.family_probabilities)
                    for win in r.windows]
        else:  # a short file is one window: its instruments heard, in the classes' order as a window's are
            names = {t.label for t in r.instruments or []}
            rows = [(0.0, r.duration or 0.0, [c for c in classes if c in names] + sorted(names - set(classes)), False,
                     r.probabilities, r.family_probabilities)]
        for start, end, active, silent, probs, fprobs in rows:
            probs, fprobs = probs or {}, fprobs or {}
            w.writerow([r.path, f"{start:.3f}", f"{end:.3f}", ";".join(active_at_level(r, active)), int(silent)]
                       + [f"{probs[c]:.6f}" if c in probs else "" for c in classes]
                       + [f"{fprobs[f]:.6f}" if f in fprobs else "" for f in families])
    return buf.getvalue()


def _stderr():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


@contextmanager
def progress_bars():
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


def report_skipped(skipped, what: str = "file") -> None:
    """What a batch command skipped (``what``: files, or render's instruments and kinds), on stderr:
    a count, then one line each and why."""
    if skipped:
        err = _stderr()
        err.print(f"skipped {len(skipped)} {what}(s):")
        for path, why in skipped:
            # one line per file, however long: scripts grep these
            err.print(f"  {printable(str(path))}: {why}", markup=False, highlight=False, soft_wrap=True)


def quiet_decoder_messages() -> None:
    """Send what C libraries write straight to file descriptor 2 (libmpg123's "Note: Illegal
    Audio-MPEG-Header", "Xing stream size" ...) to /dev/null, while Python's own stderr (our
    messages, progress bars, tracebacks) keeps the real one. INSTREC_DECODER_MESSAGES=1 keeps them."""
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
