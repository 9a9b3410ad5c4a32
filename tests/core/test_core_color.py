"""Colour: exact gray, single channels, hematoxylin (darker = more nucleus)."""
import numpy as np
import pytest

from cellseg_core import read_image, read_mask
from cellseg_core.color import extract_channel, gray, hematoxylin

RNG = np.random.default_rng(1)
RGB = RNG.random((6, 5, 3), dtype=np.float32)


def test_gray_is_exactly_the_course_formula_in_float32():
    out = gray(RGB)
    assert out.dtype == np.float32 and out.shape == (6, 5)
    r, g, b = RGB[..., 0], RGB[..., 1], RGB[..., 2]
    expected = np.float32(0.299) * r + np.float32(0.587) * g + np.float32(0.114) * b
    np.testing.assert_array_equal(out, expected)   # bit for bit, not approx


def test_gray_on_known_colours():
    colours = np.array([[[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1], [0, 0, 0]]], np.float32)
    np.testing.assert_allclose(gray(colours)[0], [0.299, 0.587, 0.114, 1.0, 0.0], atol=1e-7)


def test_gray_of_2d_passes_through():
    g = RGB[..., 0].copy()
    assert gray(g) is g


@pytest.mark.parametrize("channel, index", [("red", 0), ("green", 1), ("blue", 2)])
def test_extract_single_channel(channel, index):
    np.testing.assert_array_equal(extract_channel(RGB, channel), RGB[..., index])


def test_extract_channel_unknown_lists_valid():
    with pytest.raises(ValueError, match=r"`channel` must be one of \['gray', 'red'"):
        extract_channel(RGB, "purple")


def test_channels_do_not_modify_input():
    before = RGB.copy()
    for channel in ("gray", "red", "hematoxylin"):
        extract_channel(RGB, channel)
    np.testing.assert_array_equal(RGB, before)


def test_hematoxylin_range_and_white_background():
    h = hematoxylin(RGB)
    assert h.dtype == np.float32 and h.shape == (6, 5)
    assert h.min() >= 0 and h.max() <= 1
    white = np.ones((2, 2, 3), np.float32)
    np.testing.assert_allclose(hematoxylin(white), 1.0, atol=1e-6)
    # a purple-blue (hematoxylin-like) pixel is darker than a pink (eosin-like) one
    purple = np.array([[[0.35, 0.25, 0.6]]], np.float32)
    pink = np.array([[[0.95, 0.6, 0.8]]], np.float32)
    assert hematoxylin(purple)[0, 0] < hematoxylin(pink)[0, 0]


def test_hematoxylin_needs_rgb():
    with pytest.raises(ValueError, match="needs an RGB image"):
        hematoxylin(RGB[..., 0])


def test_hematoxylin_nucleus_darker_than_background_on_voced(voced):
    """On real cells, like gray: nucleus pixels lower than background ones."""
    for ident in ("000", "010", "050"):
        image = read_image(voced / "images" / f"{ident}.png")
        mask = read_mask(voced / "masks" / f"{ident}.png", shape=image.shape)
        if not (mask == 2).any():
            continue
        h = hematoxylin(image)
        nucleus, cytoplasm, background = (np.median(h[mask == c]) for c in (2, 1, 0))
        assert nucleus < cytoplasm < background + 1e-6
        assert background - nucleus > 0.1


# --- brightest_channel: the signal of an RGB fluorescence export (issue 22 point 5) -------
@pytest.mark.parametrize("index, name", [(0, "red"), (1, "green"), (2, "blue")])
def test_brightest_channel_finds_the_nuclei_channel(index, name):
    from cellseg_core.color import brightest_channel
    from cellseg_core.data import synthetic

    nuclei = np.clip(synthetic.fluorescence_image().image, 0, 1)
    rgb = np.zeros((*nuclei.shape, 3), np.float32)
    rgb[..., index] = nuclei
    rgb[..., (index + 1) % 3] = 0.35  # an even haze: bright, but no objects
    before = rgb.copy()
    assert brightest_channel(rgb).value == name
    np.testing.assert_array_equal(rgb, before)  # input untouched


def test_brightest_channel_of_gray_and_bad_shapes():
    from cellseg_core.color import brightest_channel

    assert brightest_channel(np.zeros((3, 3))).value == "gray"
    with pytest.raises(ValueError, match=r"`image` must be \(M, N\) or \(M, N, 3\)"):
        brightest_channel(np.zeros((3, 3, 4)))
