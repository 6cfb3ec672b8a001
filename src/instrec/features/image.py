"""The tutorial's spectrogram *image*: a dB mel spectrogram drawn by ``librosa.display.specshow``.

The tutorial does not feed the network the spectrogram itself but a picture of it::

    fig = plt.figure()                       # 6.4 x 4.8 in at 100 dpi -> 640 x 480 pixels
    librosa.display.specshow(S_db)           # magma colour map, no ticks, default margins
    plt.savefig(png_path)
    plt.close(fig)
    x = np.asarray(PIL.Image.open(png_path).convert("L")).reshape(-1) / 255.0

so the network sees white margins, black axes lines and a magma-coloured mesh turned to grey.
Two routes give that picture here:

* :func:`spectrogram_image_figure` draws it with matplotlib (Agg), exactly as above. It is the
  reference, and slow (~20 ms per image).
* :func:`spectrogram_image` computes the same pixels directly with numpy: where the axes box
  lies, which spectrogram cell each pixel shows, its magma colour, the anti-aliased spines, the
  grey conversion. It follows Agg's own rules (snapping, sub-pixel coverage, blending) and
  matplotlib's float arithmetic, so it matches the reference pixel for pixel, in under a
  millisecond.

:func:`flatten_image` is the tutorial's ``reshape(-1) / 255``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

from ..errors import ParameterError

__all__ = ["spectrogram_image", "spectrogram_image_figure", "flatten_image"]

from .config import IMAGE_MODES

# The canvas the tutorial gets from ``plt.figure()``: matplotlib's default dpi. Width and height
# in pixels are the figure size in inches times this.
_DPI = 100.0
# matplotlib's default ``figure.subplot.*`` parameters: where ``plt.gca()`` puts the axes, as
# fractions of the figure. They are why the image has wide white margins (12.5 % left, 10 %
# right, 11 % bottom, 12 % top) that carry no information but are part of the network's input.
_LEFT, _RIGHT, _BOTTOM, _TOP = 0.125, 0.9, 0.11, 0.88
# ``axes.linewidth`` (points): the four black spines around the mesh; at 100 dpi 1.11 pixels,
# which Agg draws as one black pixel with a faint (alpha 14/255) fringe on either side.
_SPINE_PT = 0.8
# Agg computes coverage on a grid of 1/256 pixel (``poly_subpixel_shift = 8``).
_SUB = 256
# Limits on the image size: at least big enough for the axes box to hold a few pixels, at most
# small enough to keep one image's buffers within a few hundred MB.
_MIN_SIDE, _MAX_SIDE = 16, 10000


# --------------------------------------------------------------------------------------------
# checks shared by both routes


def _check(S_db, width, height, mode) -> np.ndarray:
    S = np.asarray(S_db)
    if S.ndim != 2:
        raise ParameterError(f"S_db must be a 2-D spectrogram (n_mels, n_frames); got shape {S.shape}")
    if S.size == 0:
        raise ParameterError(f"S_db must not be empty; got shape {S.shape}")
    if S.dtype.kind not in "iuf":
        # (booleans would make specshow pick another colour map, gray_r; not a spectrogram)
        raise ParameterError(f"S_db must hold real numbers; got dtype {S.dtype}")
    if not np.isfinite(S).all():
        raise ParameterError("S_db must be finite (no NaN or inf)")
    for name, v in (("width", width), ("height", height)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ParameterError(f"{name} must be an integer number of pixels; got {v!r}")
        if not _MIN_SIDE <= v <= _MAX_SIDE:
            raise ParameterError(f"{name} must be between {_MIN_SIDE} and {_MAX_SIDE} pixels; got {v!r}")
    if mode not in IMAGE_MODES:
        raise ParameterError(f"mode must be one of {', '.join(IMAGE_MODES)}; got {mode!r}")
    return S


def _cmap_name(S: np.ndarray) -> str:
    """The colour map ``specshow`` picks (``librosa.display.cmap`` with its defaults).

    It looks at the 2nd and 98th percentiles: magma when they do not straddle 0 (a dB spectrogram
    relative to its maximum is all <= 0), coolwarm when the data has both signs.
    """
    if S.min() >= 0 or S.max() <= 0:  # the usual case, without sorting
        return "magma"
    lo, hi = np.percentile(S, [2, 98])
    return "magma" if (lo >= 0 or hi <= 0) else "coolwarm"


def _figsize_inches(n_pixels: int) -> float:
    # Agg makes the canvas int(inches * dpi) pixels wide, and 29 / 100 * 100 is 28.999999999999996:
    # nudge the size up by an ulp where the product would truncate one pixel short.
    inches = n_pixels / _DPI
    while int(inches * _DPI) < n_pixels:
        inches = float(np.nextafter(inches, np.inf))
    return inches


# --------------------------------------------------------------------------------------------
# the reference: matplotlib draws it


def spectrogram_image_figure(
    S_db: np.ndarray, *, width: int = 640, height: int = 480, mode: str = "gray"
) -> np.ndarray:
    """The tutorial's spectrogram picture, drawn by matplotlib and ``librosa.display.specshow``.

    This is the reference route: ``plt.figure()`` / ``specshow(S_db)`` / ``savefig`` / PIL, but
    without pyplot's global state. A :class:`matplotlib.figure.Figure` with an Agg canvas is used
    (what ``plt.figure()`` makes under the Agg backend), with matplotlib's default style pinned so
    that a user's ``matplotlibrc`` or an earlier ``plt.style.use`` cannot change the pixels. The
    RGBA buffer Agg renders is what ``savefig(..., format="png")`` would write (tests check this
    against a real PNG file), so it is converted with PIL directly instead of through a file.

    Parameters
    ----------
    S_db : np.ndarray, shape (n_mels, n_frames)
        The dB mel spectrogram (e.g. from :func:`instrec.features.mel.mel_spectrogram_db`);
        any finite real values.
    width, height : int
        Size of the picture in pixels (the tutorial's default figure gives 640 x 480).
    mode : {"gray", "rgb"}
        ``"gray"``: PIL's ``convert("L")``, as the tutorial does; ``"rgb"``: ``convert("RGB")``.

    Returns
    -------
    np.ndarray, uint8
        Shape ``(height, width)`` for ``"gray"``, ``(height, width, 3)`` for ``"rgb"``.

    Raises
    ------
    ParameterError
        If ``S_db`` is not a non-empty finite 2-D array, or width, height or mode is bad.
    """
    S = _check(S_db, width, height, mode)
    import librosa.display
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    with matplotlib.style.context("default"):
        fig = Figure(figsize=(_figsize_inches(width), _figsize_inches(height)), dpi=_DPI)
        canvas = FigureCanvasAgg(fig)
        ax = fig.add_subplot()  # what plt.gca() creates on a fresh figure
        librosa.display.specshow(S, ax=ax)
        canvas.draw()
        rgba = np.asarray(canvas.buffer_rgba())
    img = Image.fromarray(rgba, "RGBA").convert("L" if mode == "gray" else "RGB")
    return np.asarray(img, dtype=np.uint8).copy()


# --------------------------------------------------------------------------------------------
# the fast route: the same pixels computed directly


def spectrogram_image(
    S_db: np.ndarray, *, width: int = 640, height: int = 480, mode: str = "gray"
) -> np.ndarray:
    """The tutorial's spectrogram picture, computed without drawing a figure.

    Same signature and result as :func:`spectrogram_image_figure` (pixel for pixel: the tests
    compare them), about 25 times faster: under a millisecond for a 640 x 480 grey image, where
    the figure takes ~20 ms. It reproduces, with numpy, what matplotlib's Agg renderer does with
    the tutorial's figure:

    1. the canvas is white (the figure patch);
    2. the axes box is the default subplot box, ``[0.125, 0.9] x [0.11, 0.88]`` of the canvas;
       ``specshow`` without axis arguments puts cell edges at ``-0.5, 0.5, ..., n - 0.5`` with
       the view limits at the outer edges, so the cells tile the box evenly: low mel bands at
       the bottom, the time axis stretched over the box whatever the number of frames;
    3. the mesh is not anti-aliased and its quads are rectilinear, so Agg snaps their corners to
       whole pixels (``floor(v + 0.5)``) and fills whole pixels: each pixel shows the one cell
       whose snapped span holds it, i.e. the cell under the pixel's centre (cells thinner than a
       pixel can vanish). The transform uses matplotlib's own float operations, so even edges
       falling exactly on a pixel centre round the same way;
    4. each cell's colour is ``cmap(Normalize(min, max)(value))`` rounded to 8 bits, with the
       colour map ``specshow`` picks (magma unless the data has both signs, then coolwarm); a
       constant spectrogram takes the map's first colour, as matplotlib does when vmin == vmax;
    5. four black spines, 0.8 pt wide, are snapped to pixel centres, anti-aliased (Agg's
       coverage on its 1/256-pixel grid) and blended on top with Agg's integer arithmetic;
    6. ``"gray"`` is PIL's ITU-R 601-2 luma, ``(19595 R + 38470 G + 7471 B + 32768) >> 16``.

    With a single frame (or a single mel band) ``specshow`` draws a zero-width mesh and the
    picture is the empty box; this route gives that too.

    Parameters
    ----------
    S_db : np.ndarray, shape (n_mels, n_frames)
        The dB mel spectrogram; any finite real values.
    width, height : int
        Size of the picture in pixels (the tutorial's default figure gives 640 x 480).
    mode : {"gray", "rgb"}
        ``"gray"`` (the tutorial's input) or ``"rgb"``.

    Returns
    -------
    np.ndarray, uint8
        Shape ``(height, width)`` for ``"gray"``, ``(height, width, 3)`` for ``"rgb"``.

    Raises
    ------
    ParameterError
        If ``S_db`` is not a non-empty finite 2-D array, or width, height or mode is bad.
    """
    S = _check(S_db, width, height, mode)
    W, H = int(width), int(height)
    n_rows, n_cols = S.shape
    lay = _layout(W, H, n_rows, n_cols)
    r0, r1, c0, c1 = lay.mesh_box
    drawn = r1 > r0 and c1 > c0
    # Colour-map entries of the cells that show (all of them unless there are more frames than
    # pixels), indexed like lay.band_of_row / lay.cell_of_col.
    idx, name = _cell_indices(S, lay.bands_shown, lay.frames_shown) if drawn else (None, _cmap_name(S))

    if mode == "rgb":
        colours = None if idx is None else _lut(name)[idx]
        canvas = np.full((H, W, 3), 255, dtype=np.uint8)
        if drawn:
            # Gather one uint32 per pixel rather than three bytes: a cheaper fancy index.
            packed = np.empty(colours.shape[:2] + (4,), dtype=np.uint8)
            packed[..., :3] = colours
            packed[..., 3] = 255
            block = _gather(packed.view(np.uint32)[..., 0], lay.band_of_row[r0:r1], lay.cell_of_col[c0:c1])
            canvas[r0:r1, c0:c1] = block[..., None].view(np.uint8)[..., :3]
        for rr, cc, alpha in lay.spines:
            canvas[rr, cc] = _blend_black(canvas[rr, cc], alpha)
        return canvas

    # Grey: the mesh as grey cells straight away (luma is per pixel, so the grey of a cell's
    # colour is its pixels' grey). Under the spines Agg blends black into the colour in RGB before
    # PIL converts; a spine pixel's grey depends only on the colour beneath it (one of the map's
    # 256, or the white canvas) and the coverages blended over it, so it is looked up in a table
    # of every such colour for every coverage sequence the spines make (cached per map and shape).
    gray = np.full((H, W), 255, dtype=np.uint8)
    if drawn:
        gray[r0:r1, c0:c1] = _gather(_gray_lut(name)[idx], lay.band_of_row[r0:r1], lay.cell_of_col[c0:c1])
    sp = lay.spine_pixels
    if sp is not None:
        under = np.full(sp.rows.size, _WHITE, dtype=np.intp)
        if drawn:
            under[sp.inside] = idx[sp.band, sp.cell]
        gray[sp.rows, sp.cols] = _spine_grays(name, sp.coverages)[sp.kind, under]
    return gray


def flatten_image(img: np.ndarray) -> np.ndarray:
    """The tutorial's network input: ``img.reshape(-1) / 255`` as float32 in ``[0, 1]``.

    Parameters
    ----------
    img : np.ndarray, uint8
        A picture from :func:`spectrogram_image` (any shape).

    Returns
    -------
    np.ndarray, float32, shape ``(img.size,)``
    """
    a = np.asarray(img)
    if a.dtype != np.uint8:
        raise ParameterError(f"img must be a uint8 picture; got dtype {a.dtype}")
    return a.reshape(-1).astype(np.float32) / np.float32(255.0)


# --------------------------------------------------------------------------------------------
# helpers of the fast route


class _Geometry(NamedTuple):
    """Where things land on the Agg canvas (pixels; x rightwards, y downwards from the top)."""

    sx: float  # data x -> canvas x: x * sx + tx
    tx: float
    sy: float  # data y -> canvas y: y * sy + ty (sy < 0: low bands at the bottom)
    ty: float
    x_left: float  # the spines: left/right at axes x 0 and 1, top/bottom at axes y 1 and 0
    x_right: float
    y_top: float
    y_bottom: float
    lim_x0: float  # ... running between the view limits, through the data transform
    lim_x1: float
    lim_y_top: float
    lim_y_bottom: float
    clip_x0: int  # the clip box of the mesh: the axes box rounded to whole pixels
    clip_x1: int
    clip_y0: int
    clip_y1: int


@lru_cache(maxsize=64)
def _geometry(W: int, H: int, n_rows: int, n_cols: int) -> _Geometry:
    """The transforms of the tutorial's figure, computed with matplotlib's float operations.

    Rounding to pixels happens at ``x.5``, so it matters how the numbers are computed, not only
    what they are: this follows GridSpec (subplot box), TransformedBbox (box in pixels),
    BboxTransformFrom/To and their ``np.dot`` (data -> pixels), and Agg's y flip, operation by
    operation, so that the results are bit-identical to the figure's (the tests check it).
    """
    fig_w, fig_h = _figsize_inches(W) * _DPI, _figsize_inches(H) * _DPI
    # GridSpec.get_grid_positions for a single cell (wspace and hspace play no part).
    cell_w = (_RIGHT - _LEFT) / 1.0
    cell_h = (_TOP - _BOTTOM) / 1.0
    f_left, f_right = _LEFT + 0.0, _LEFT + cell_w
    f_top, f_bottom = _TOP - 0.0, _TOP - cell_h
    # The axes box in display pixels (origin at the bottom left).
    x0, x1 = f_left * fig_w, f_right * fig_w
    y0, y1 = f_bottom * fig_h, f_top * fig_h
    outl, outb, outw, outh = x0, y0, x1 - x0, y1 - y0
    # transData = transLimits + transAxes; view limits (-0.5, n - 0.5) span exactly n.
    x_scale, y_scale = 1.0 / n_cols, 1.0 / n_rows
    limits = np.array([[x_scale, 0.0, 0.5 * x_scale], [0.0, y_scale, 0.5 * y_scale], [0.0, 0.0, 1.0]])
    axes = np.array([[outw, 0.0, outl], [0.0, outh, outb], [0.0, 0.0, 1.0]])
    m = np.dot(axes, limits)
    # Agg turns the picture upside down: y' = y * -m11 + (H - m12).
    sx, tx = float(m[0, 0]), float(m[0, 2])
    sy, ty = -float(m[1, 1]), H - float(m[1, 2])
    # Spines: left/right use axes x (0, 1) and data y (the limits); top/bottom the other way.
    ay = H - outb  # axes y = 0, flipped
    return _Geometry(
        sx=sx,
        tx=tx,
        sy=sy,
        ty=ty,
        x_left=outl,
        x_right=outw + outl,
        y_top=-outh + ay,
        y_bottom=ay,
        # With a single frame (band) matplotlib widens the singular limits; they still map to
        # the box, whose edges stand in for them.
        lim_x0=-0.5 * sx + tx if n_cols > 1 else outl,
        lim_x1=(n_cols - 0.5) * sx + tx if n_cols > 1 else outw + outl,
        lim_y_top=(n_rows - 0.5) * sy + ty if n_rows > 1 else -outh + ay,
        lim_y_bottom=-0.5 * sy + ty if n_rows > 1 else ay,
        # RendererAgg.set_clipbox: floor(v + 0.5) of the axes box, flipped, within the canvas.
        clip_x0=max(int(np.floor(x0 + 0.5)), 0),
        clip_x1=min(int(np.floor(x1 + 0.5)), W),
        clip_y0=max(int(np.floor(H - y1 + 0.5)), 0),
        clip_y1=min(int(np.floor(H - y0 + 0.5)), H),
    )


@lru_cache(maxsize=8)
def _lut(name: str) -> np.ndarray:
    """The colour map's 256 colours as Agg draws them: float RGBA rounded to 8 bits (uround)."""
    import matplotlib

    cmap = matplotlib.colormaps[name]
    rgba = np.asarray(cmap(np.arange(cmap.N)), dtype=np.float64)
    lut = np.floor(rgba[:, :3] * 255.0 + 0.5).astype(np.uint8)
    lut.setflags(write=False)
    return lut


@lru_cache(maxsize=8)
def _gray_lut(name: str) -> np.ndarray:
    """The grey (PIL's luma) of each of the colour map's 256 colours."""
    g = _luma(_lut(name))
    g.setflags(write=False)
    return g


_WHITE = -1  # the white canvas: the last row of _spine_grays' tables, after the map's colours


@lru_cache(maxsize=32)
def _spine_grays(name: str, coverages: tuple) -> np.ndarray:
    """``(len(coverages), 257)`` uint8: the grey of each map colour (and white, last) after black
    is blended over it with each sequence of coverages, in order (Agg's integer blender)."""
    base = np.vstack([_lut(name), np.full((1, 3), 255, dtype=np.uint8)])
    out = np.empty((len(coverages), base.shape[0]), dtype=np.uint8)
    for k, seq in enumerate(coverages):
        rgb = base
        for a in seq:
            rgb = _blend_black(rgb, np.full(rgb.shape[0], a, dtype=np.uint8))
        out[k] = _luma(rgb)
    out.setflags(write=False)
    return out


def _cell_indices(
    S: np.ndarray, bands: np.ndarray | None = None, frames: np.ndarray | None = None
) -> tuple[np.ndarray, str]:
    """``(entries, map)``: the colour map ``specshow`` picks and the entry of it (0-255) of each
    cell of ``S[bands][:, frames]`` (all when None), normalised over all of S."""
    # The same float operations as matplotlib, so that every cell lands on the same side of
    # each LUT boundary as in the reference: Normalize keeps float32 data as float32 (small ints
    # become float32, the rest float64), stores vmin/vmax as Python floats (float64), and
    # computes in place, (x - vmin) / (vmax - vmin), i.e. in float64 rounded back to the data's
    # type; the colour map then takes int(x * N), with x == 1 moved to the last entry.
    dtype = S.dtype if S.dtype.kind == "f" else np.float32 if S.dtype.itemsize <= 2 else np.float64
    full = S.astype(dtype, copy=False)
    name = _cmap_name(full)
    n = _lut(name).shape[0]
    vmin, vmax = np.float64(float(full.min())), np.float64(float(full.max()))
    a = full
    if bands is not None:
        a = a[bands]
    if frames is not None:
        a = a[:, frames]
    if a is full:
        a = full.copy()  # never scribble on the caller's array
    if vmin == vmax:
        a.fill(0)  # matplotlib: "Or should it be all masked? Or 0.5?" -- it is 0
    else:
        a -= vmin
        a /= vmax - vmin
    a *= n
    a[a == n] = n - 1
    return np.clip(a, 0, n - 1).astype(np.intp), name


class _Layout(NamedTuple):
    """Which cell each canvas pixel shows, and where the spines go (cached per shape)."""

    band_of_row: np.ndarray  # (H,) index into bands_shown for each canvas row, -1 outside the mesh
    cell_of_col: np.ndarray  # (W,) index into frames_shown for each canvas column, -1 outside
    bands_shown: np.ndarray | None  # the mel bands / frames that show, None when all do
    frames_shown: np.ndarray | None
    mesh_box: tuple[int, int, int, int]  # rows r0:r1, columns c0:c1 covered by the mesh
    spines: tuple  # (rows slice, cols slice, alpha (h, w) uint8) in draw order
    spine_pixels: "_SpinePixels | None"  # the same, pixel by pixel, for the grey route


class _SpinePixels(NamedTuple):
    """Every pixel a spine covers, with what the grey route needs to look its grey up."""

    rows: np.ndarray  # (n,) canvas row and column of each pixel
    cols: np.ndarray
    kind: np.ndarray  # (n,) index into coverages: the sequence of coverages blended over it
    coverages: tuple  # distinct sequences, each a tuple of alphas in draw order
    inside: np.ndarray  # (n,) bool: over the mesh (else over the white canvas)
    band: np.ndarray  # band / frame index (into bands_shown / frames_shown) of the inside ones
    cell: np.ndarray


@lru_cache(maxsize=64)
def _layout(W: int, H: int, n_rows: int, n_cols: int) -> _Layout:
    g = _geometry(W, H, n_rows, n_cols)
    band_of_row = np.full(H, -1, dtype=np.intp)
    cell_of_col = np.full(W, -1, dtype=np.intp)
    box = (0, 0, 0, 0)
    # One frame or one band: the edges are [0, 0] there (pcolormesh cannot guess a cell size
    # from a single coordinate), the quads have no area and the box stays empty.
    if n_rows > 1 and n_cols > 1:
        # Cell edges: specshow puts them at -0.5, 0.5, ..., n - 0.5. The quads are rectilinear
        # and not anti-aliased, so Agg snaps their corners to whole pixels, floor(v + 0.5), and
        # fills the pixels in between: a pixel shows the cell whose snapped span [a, b) holds
        # it, the cell under the pixel's centre (cells thinner than a pixel may vanish).
        ex = np.floor((np.arange(n_cols + 1) - 0.5) * g.sx + g.tx + 0.5)
        ey = np.floor((np.arange(n_rows + 1) - 0.5) * g.sy + g.ty + 0.5)  # decreasing
        cols = np.arange(g.clip_x0, g.clip_x1)
        rows = np.arange(g.clip_y0, g.clip_y1)
        j = np.searchsorted(ex, cols, side="right") - 1
        k = n_rows - np.searchsorted(ey[::-1], rows, side="right")
        j_in = (j >= 0) & (j < n_cols)
        k_in = (k >= 0) & (k < n_rows)
        if j_in.any() and k_in.any():
            cell_of_col[cols[j_in]] = j[j_in]
            band_of_row[rows[k_in]] = k[k_in]
            # contiguous runs, since j and k are monotonic
            box = (int(rows[k_in][0]), int(rows[k_in][-1]) + 1, int(cols[j_in][0]), int(cols[j_in][-1]) + 1)
    # With more frames (bands) than pixels most cells never show: colour only those that do.
    shown = []
    for index, n in ((band_of_row, n_rows), (cell_of_col, n_cols)):
        used = np.unique(index[index >= 0])
        if used.size == n:
            shown.append(None)
        else:
            index[index >= 0] = np.searchsorted(used, index[index >= 0])
            shown.append(used)
    for a in (band_of_row, cell_of_col, *(u for u in shown if u is not None)):
        a.setflags(write=False)
    spines = tuple(_spine_masks(g, W, H))
    return _Layout(band_of_row, cell_of_col, shown[0], shown[1], box, spines,
                   _spine_pixels(spines, band_of_row, cell_of_col, W))


def _spine_pixels(spines, band_of_row: np.ndarray, cell_of_col: np.ndarray, W: int) -> _SpinePixels | None:
    if not spines:
        return None
    # The spines hardly ever change with the number of frames (only the cells under them do):
    # their pixels are worked out once per set of spines, which is most of a new layout's time.
    rows, cols, kind, coverages = _spine_coverages(
        tuple((rr.start, rr.stop, cc.start, cc.stop, alpha.tobytes()) for rr, cc, alpha in spines), W)
    band, cell = band_of_row[rows], cell_of_col[cols]
    inside = (band >= 0) & (cell >= 0)
    out = _SpinePixels(rows, cols, kind, coverages, inside, band[inside], cell[inside])
    for a in (inside, out.band, out.cell):
        a.setflags(write=False)
    return out


@lru_cache(maxsize=16)
def _spine_coverages(spines: tuple, W: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple]:
    """``(rows, cols, kind, coverages)`` of :class:`_SpinePixels` for spines given as
    ``(row start, row stop, column start, column stop, alpha bytes)`` in draw order."""
    seqs: dict[int, tuple] = {}  # flat pixel index -> coverages blended over it, in draw order
    for r0, r1, c0, c1, alpha in spines:
        flat = (np.arange(r0, r1)[:, None] * W + np.arange(c0, c1)[None, :]).ravel()
        for f, a in zip(flat.tolist(), np.frombuffer(alpha, dtype=np.uint8).tolist()):
            seqs[f] = seqs.get(f, ()) + (a,)
    flat = np.fromiter(seqs, dtype=np.intp, count=len(seqs))
    coverages = tuple(sorted(set(seqs.values())))
    number = {c: k for k, c in enumerate(coverages)}
    kind = np.fromiter((number[c] for c in seqs.values()), dtype=np.intp, count=len(seqs))
    rows, cols = flat // W, flat % W
    for a in (rows, cols, kind):
        a.setflags(write=False)
    return rows, cols, kind, coverages


def _gather(cells: np.ndarray, band_of_row: np.ndarray, cell_of_col: np.ndarray) -> np.ndarray:
    # cells[band, frame] for every pixel of the mesh box (all indices valid inside it).
    return cells[band_of_row][:, cell_of_col]


def _spine_masks(g: _Geometry, W: int, H: int):
    """The four black spines as Agg strokes them: (rows, cols, alpha) in draw order."""
    w = _SPINE_PT * _DPI / 72.0
    # PathSnapper: a rectilinear path goes to pixel centres when its line width rounds to an odd
    # number of pixels (1 here), to pixel corners otherwise.
    snap = 0.5 if int(np.floor(w + 0.5)) % 2 else 0.0

    def s(v: float) -> float:
        return float(np.floor(v + 0.5)) + snap

    left, right, top, bottom = s(g.x_left), s(g.x_right), s(g.y_top), s(g.y_bottom)
    lim_x0, lim_x1, lim_top, lim_bottom = s(g.lim_x0), s(g.lim_x1), s(g.lim_y_top), s(g.lim_y_bottom)
    h = w / 2.0
    # Each spine is a 2-point line stroked with projecting caps: a rectangle reaching half the
    # line width beyond its ends. Draw order as matplotlib: left, right, bottom, top.
    rects = [
        (left - h, left + h, lim_top - h, lim_bottom + h),
        (right - h, right + h, lim_top - h, lim_bottom + h),
        (lim_x0 - h, lim_x1 + h, bottom - h, bottom + h),
        (lim_x0 - h, lim_x1 + h, top - h, top + h),
    ]
    for xa, xb, ya, yb in rects:
        # On Agg's 1/256-pixel grid (agg::iround). The orientation of the stroke's outline makes
        # Agg's area arithmetic (an arithmetic shift of a negative area) round partial coverage
        # up: ceil(area / 256), so even the 14 x 14 sub-pixel corner overlaps get alpha 1.
        qx0, qx1 = (int(np.floor(v * _SUB + 0.5)) for v in (xa, xb))
        qy0, qy1 = (int(np.floor(v * _SUB + 0.5)) for v in (ya, yb))
        c0, c1 = max(qx0 // _SUB, 0), min(-(-qx1 // _SUB), W)
        r0, r1 = max(qy0 // _SUB, 0), min(-(-qy1 // _SUB), H)
        if c0 >= c1 or r0 >= r1:
            continue
        px = _SUB * np.arange(c0, c1)
        py = _SUB * np.arange(r0, r1)
        cx = np.clip(np.minimum(px + _SUB, qx1) - np.maximum(px, qx0), 0, _SUB)
        cy = np.clip(np.minimum(py + _SUB, qy1) - np.maximum(py, qy0), 0, _SUB)
        alpha = np.minimum(-((-(cy[:, None] * cx[None, :])) // _SUB), 255).astype(np.uint8)
        alpha.setflags(write=False)
        yield slice(r0, r1), slice(c0, c1), alpha


def _blend_black(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    # Agg's "plain" RGBA blender onto an opaque pixel, source black with coverage a:
    #   p' = (p * 255 * (256 - a)) // (65280 + a); full coverage (255) copies black.
    a = alpha.astype(np.int32)[..., None]
    out = (rgb.astype(np.int32) * 255 * (256 - a)) // (65280 + a)
    out[np.broadcast_to(a >= 255, out.shape)] = 0
    return out.astype(np.uint8)


def _luma(rgb: np.ndarray) -> np.ndarray:
    # PIL's RGB -> L (ITU-R 601-2 in 16-bit fixed point, rounded).
    r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)
