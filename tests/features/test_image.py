"""The tutorial's spectrogram image: the matplotlib reference and the direct numpy route."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from instrec.errors import ParameterError
from instrec.features.image import flatten_image, spectrogram_image, spectrogram_image_figure
from instrec.features.mel import mel_spectrogram_db

SR = 22050
FLUTE = Path(__file__).resolve().parents[3] / "shared" / "data" / "london_phill_dataset_multi" / "flute"


def tone(seconds: float, *, f0: float = 440.0, seed: int = 0) -> np.ndarray:
    """A harmonic tone with an attack, a vibrato and some noise: a plausible instrument note."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * f0 * t + 0.3 * np.sin(2 * np.pi * 5 * t)
    y = sum(np.sin(k * phase) / k**1.5 for k in range(1, 9))
    y = y * np.minimum(1.0, t / 0.05) * np.exp(-0.3 * t) + 0.02 * rng.standard_normal(t.size)
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


@pytest.fixture(scope="module")
def clips() -> dict[str, np.ndarray]:
    """dB mel spectrograms of a 0.3 s, a 3 s and a 30 s clip (13, 130 and 1292 frames)."""
    return {
        "short": mel_spectrogram_db(tone(0.3, f0=880.0, seed=1)),
        "3s": mel_spectrogram_db(tone(3.0, seed=2)),
        # more frames than the 496 pixels of the axes box
        "long": mel_spectrogram_db(tone(30.0, f0=220.0, seed=3)),
    }


@pytest.fixture(scope="module")
def flute() -> np.ndarray:
    files = sorted(FLUTE.glob("*.mp3")) if FLUTE.is_dir() else []
    if not files:
        pytest.skip(f"no Philharmonia flute clips under {FLUTE}")
    import librosa

    y, _ = librosa.load(files[len(files) // 2], sr=SR)
    return mel_spectrogram_db(y)


def agreement(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Correlation, mean absolute difference (grey levels), fraction of identical values."""
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(np.corrcoef(a, b)[0, 1]), float(np.abs(a - b).mean()), float((a == b).mean())


def assert_agrees(direct: np.ndarray, figure: np.ndarray) -> None:
    assert direct.shape == figure.shape and direct.dtype == figure.dtype == np.uint8
    corr, mad, same = agreement(direct, figure)
    # The direct route follows Agg's rules and is pixel-identical on every case tried (a few
    # hundred shapes and sizes); the bounds leave room for a future matplotlib to move a pixel.
    assert corr >= 0.99, corr
    assert mad <= 0.5, mad
    assert same >= 0.99, same


# --------------------------------------------------------------------------------------------
# the reference route is the tutorial's code


@pytest.mark.parametrize("mode,pil_mode", [("gray", "L"), ("rgb", "RGB")])
def test_figure_route_is_the_tutorials_pyplot_savefig_pil(clips, tmp_path, mode, pil_mode):
    import librosa.display
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    S = clips["3s"]
    png = tmp_path / "spec.png"
    with matplotlib.style.context("default"):
        fig = plt.figure()
        librosa.display.specshow(S)
        plt.savefig(png)
        plt.close(fig)
    tutorial = np.asarray(Image.open(png).convert(pil_mode))
    np.testing.assert_array_equal(spectrogram_image_figure(S, mode=mode), tutorial)


def test_figure_route_ignores_and_keeps_the_users_style(clips):
    import matplotlib
    import matplotlib.style

    S = clips["short"]
    plain = spectrogram_image_figure(S)
    with matplotlib.style.context("dark_background"):
        before = dict(matplotlib.rcParams)
        styled = spectrogram_image_figure(S)
        assert dict(matplotlib.rcParams) == before
    np.testing.assert_array_equal(styled, plain)


# --------------------------------------------------------------------------------------------
# the direct route against the reference


@pytest.mark.parametrize("name", ["short", "3s", "long"])
@pytest.mark.parametrize("mode", ["gray", "rgb"])
def test_direct_route_matches_the_figure(clips, name, mode):
    S = clips[name]
    assert_agrees(spectrogram_image(S, mode=mode), spectrogram_image_figure(S, mode=mode))


@pytest.mark.realdata
@pytest.mark.parametrize("mode", ["gray", "rgb"])
def test_direct_route_matches_the_figure_on_a_flute_clip(flute, mode):
    assert_agrees(spectrogram_image(flute, mode=mode), spectrogram_image_figure(flute, mode=mode))


@pytest.mark.parametrize(
    "S",
    [
        pytest.param(np.full((128, 40), -20.0), id="constant"),  # vmin == vmax: first colour
        pytest.param(np.linspace(-30, 30, 128 * 50).reshape(128, 50), id="both-signs"),  # coolwarm
        pytest.param(-80 * np.random.default_rng(4).random((128, 1)), id="one-frame"),  # empty box
        pytest.param(-80 * np.random.default_rng(5).random((128, 2000)), id="2000-frames"),
        pytest.param(-80 * np.random.default_rng(6).random((40, 130)).astype(np.float32), id="40-mels"),
        pytest.param(np.arange(-64, 64, dtype=np.int16).reshape(16, 8), id="int16"),
    ],
)
def test_direct_route_matches_the_figure_on_edge_cases(S):
    for mode in ("gray", "rgb"):
        assert_agrees(spectrogram_image(S, mode=mode), spectrogram_image_figure(S, mode=mode))


@pytest.mark.parametrize("width,height", [(320, 240), (29, 57), (1000, 750)])
def test_other_sizes(clips, width, height):
    S = clips["3s"]
    direct = spectrogram_image(S, width=width, height=height)
    assert direct.shape == (height, width)
    assert_agrees(direct, spectrogram_image_figure(S, width=width, height=height))


def test_cached_layouts_give_the_same_pictures():
    """A new frame count reuses the spines' pixels worked out for another one (only the cells under
    them change): the picture is the one a fresh process draws."""
    from instrec.features import image

    rng = np.random.default_rng(7)
    specs = {n: -80 * rng.random((128, n)) for n in (44, 45, 130, 497, 1000)}
    warm = {n: spectrogram_image(S) for n, S in specs.items()}
    for n, S in specs.items():
        image._layout.cache_clear()
        image._spine_coverages.cache_clear()
        np.testing.assert_array_equal(spectrogram_image(S), warm[n])
    assert_agrees(warm[130], spectrogram_image_figure(specs[130]))


# --------------------------------------------------------------------------------------------
# what the picture looks like


def test_shapes_and_types(clips):
    S = clips["3s"]
    gray, rgb = spectrogram_image(S), spectrogram_image(S, mode="rgb")
    assert gray.shape == (480, 640) and gray.dtype == np.uint8
    assert rgb.shape == (480, 640, 3) and rgb.dtype == np.uint8


@pytest.mark.parametrize("name", ["short", "3s", "long"])
def test_white_margins_black_spines_full_box(clips, name):
    img = spectrogram_image(clips[name])
    # Default subplot box: x 80..576, y 57.6..427.2 from the top; the spines sit on pixels 80,
    # 576, 58 and 427, with a faint one-pixel fringe either side; beyond that all is white.
    assert (img[:57] == 255).all() and (img[429:] == 255).all()
    assert (img[:, :79] == 255).all() and (img[:, 578:] == 255).all()
    assert (img[58:428, 80] == 0).all() and (img[58:428, 576] == 0).all()
    assert (img[58, 80:577] == 0).all() and (img[427, 80:577] == 0).all()
    # the mesh fills the whole box however many frames there are: nothing white inside
    assert (img[59:427, 81:576] < 255).all()


def test_low_mel_bands_at_the_bottom():
    S = np.full((128, 50), -80.0)
    S[:10] = 0.0  # loud low bands
    img = spectrogram_image(S).astype(int)
    box = img[59:427, 81:576]
    assert box[-20:].mean() > 200 and box[:300].mean() < 10  # magma: loud is light, quiet dark


def test_one_frame_draws_an_empty_box():
    img = spectrogram_image(-np.arange(128.0)[:, None])
    assert (img[60:426, 82:575] == 255).all()  # inside the spines and their fringes
    assert (img[58:428, 80] == 0).all()


def test_flatten_image(clips):
    img = spectrogram_image(clips["3s"])
    x = flatten_image(img)
    assert x.shape == (307_200,) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    np.testing.assert_allclose(x, img.reshape(-1) / 255.0, rtol=1e-6)
    assert flatten_image(spectrogram_image(clips["3s"], mode="rgb")).shape == (921_600,)


def test_feature_compute_gives_the_flat_image():
    from instrec.features import FeatureConfig, compute

    y = tone(1.0)
    x = compute(y, FeatureConfig(kind="image"))
    assert x.shape == (307_200,)
    np.testing.assert_array_equal(x, flatten_image(spectrogram_image(mel_spectrogram_db(y))))


# --------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize("route", [spectrogram_image, spectrogram_image_figure])
@pytest.mark.parametrize(
    "S,kwargs,word",
    [
        (np.zeros(100), {}, "S_db"),
        (np.zeros((2, 3, 4)), {}, "S_db"),
        (np.zeros((128, 0)), {}, "S_db"),
        (np.zeros((0, 10)), {}, "S_db"),
        (np.array([[0.0, np.nan], [1.0, 2.0]]), {}, "S_db"),
        (np.array([[0.0, -np.inf], [1.0, 2.0]]), {}, "S_db"),
        (np.zeros((4, 4), dtype=complex), {}, "S_db"),
        (np.zeros((4, 4), dtype=bool), {}, "S_db"),
        (np.zeros((4, 4)), {"width": 0}, "width"),
        (np.zeros((4, 4)), {"width": 640.0}, "width"),
        (np.zeros((4, 4)), {"width": True}, "width"),
        (np.zeros((4, 4)), {"height": -480}, "height"),
        (np.zeros((4, 4)), {"height": 10**6}, "height"),
        (np.zeros((4, 4)), {"mode": "grey"}, "mode"),
        (np.zeros((4, 4)), {"mode": "RGB"}, "mode"),
    ],
)
def test_bad_input_raises_parameter_error(route, S, kwargs, word):
    with pytest.raises(ParameterError, match=word):
        route(S, **kwargs)


def test_flatten_image_wants_uint8():
    with pytest.raises(ParameterError, match="img"):
        flatten_image(np.zeros((4, 4)))
