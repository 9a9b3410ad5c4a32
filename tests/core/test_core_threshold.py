"""Thresholds: the course's two-threshold rule, fluorescence, automatic and local."""
import math

import numpy as np
import pytest

from cellseg_core import read_image
from cellseg_core.color import gray
from cellseg_core.params import ThresholdParams
from cellseg_core.threshold import (AUTO_METHODS, apply_threshold, auto_threshold,
                                    background_peak_threshold, object_threshold, two_threshold)

FLOAT_DTYPES = [np.float32, np.float64]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_two_threshold_by_hand_including_ties(dtype):
    channel = np.array([[0.0, 0.2, 0.45, 0.5], [0.849, 0.85, 0.9, 1.0]], dtype)
    out = two_threshold(channel, dtype(0.45), dtype(0.85))
    assert out.dtype == np.uint8
    # value == t_nuc is cytoplasm, value == t_bg is background
    np.testing.assert_array_equal(out, [[2, 2, 1, 1], [1, 0, 0, 0]])


def test_two_threshold_per_pixel_map():
    channel = np.array([[0.3, 0.3, 0.3]])
    t_nuc = np.array([[0.2, 0.4, 0.3]])
    np.testing.assert_array_equal(two_threshold(channel, t_nuc, 0.9), [[1, 2, 1]])


def test_two_threshold_compares_in_float32_like_the_course():
    # 0.3904 is not representable; a float32 channel value equal to float32(0.3904)
    # is not < 0.3904 in float32 (it is < in float64): the course's answer is cytoplasm.
    v = np.float32(0.3904)
    channel = np.array([[v]], np.float32)
    assert two_threshold(channel, 0.3904, 0.99)[0, 0] == (1 if not v < v else 2)
    assert two_threshold(channel, 0.3904, 0.99)[0, 0] == \
        np.where(channel < 0.3904, 2, np.where(channel < 0.99, 1, 0))[0, 0]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_object_threshold(dtype):
    channel = np.array([[0.1, 0.5, 0.51]], dtype)
    np.testing.assert_array_equal(object_threshold(channel, 0.5), [[False, False, True]])


def test_apply_threshold_manual_cytology_and_fluorescence():
    channel = np.array([[0.1, 0.6, 0.95]], np.float32)
    labels, t = apply_threshold(channel, ThresholdParams(t_nuc=0.45, t_bg=0.85))
    np.testing.assert_array_equal(labels, [[2, 1, 0]])
    assert t == {"t_nuc": 0.45, "t_bg": 0.85}
    labels, t = apply_threshold(channel, ThresholdParams(t_object=0.5), "fluorescence")
    np.testing.assert_array_equal(labels, [[0, 2, 2]])
    assert labels.dtype == np.uint8 and t == {"t_object": 0.5}


def test_threshold_999_finds_nothing():
    channel = np.random.default_rng(0).random((8, 8))
    labels, _ = apply_threshold(channel, ThresholdParams(t_object=999.0), "fluorescence")
    assert not labels.any()


# --- automatic -----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", FLOAT_DTYPES + [np.uint8])
def test_auto_threshold_bimodal_by_hand(dtype):
    values = np.array([10] * 50 + [200] * 50).astype(dtype)
    for method in ("otsu", "li", "isodata", "mean"):
        t = auto_threshold(values, method)
        assert 10 <= t < 200, method
    assert auto_threshold(values, "mean") == pytest.approx(105)


def test_auto_threshold_constant_returns_the_value():
    for method in ("otsu", "li", "yen", "triangle", "isodata", "mean", "minimum"):
        assert auto_threshold(np.full(10, 0.3), method) == pytest.approx(0.3)


def test_auto_threshold_validation():
    with pytest.raises(ValueError, match=r"`method` must be one of \['otsu'"):
        auto_threshold(np.arange(4.0), "local")
    with pytest.raises(ValueError, match="foo"):
        auto_threshold(np.arange(4.0), "foo")
    with pytest.raises(ValueError, match="empty"):
        auto_threshold(np.array([]), "otsu")


@pytest.fixture(scope="module")
def voced_gray(voced):
    return gray(read_image(voced / "images" / "000.png"))


@pytest.mark.parametrize("background", ["same", "peak", "manual"])
@pytest.mark.parametrize("method", [m.value for m in AUTO_METHODS])
def test_every_automatic_method_on_voced(voced_gray, method, background):
    params = ThresholdParams(method=method, background=background)
    labels, t = apply_threshold(voced_gray, params)
    assert labels.dtype == np.uint8 and set(np.unique(labels)) <= {0, 1, 2}
    assert 0 < t["t_bg"] < 1
    if background == "manual":
        assert t["t_bg"] == 0.85
    if method == "local":
        assert math.isnan(t["t_nuc"])
    else:
        assert 0 < t["t_nuc"] < t["t_bg"], t
        np.testing.assert_array_equal(labels, two_threshold(voced_gray, t["t_nuc"], t["t_bg"]))
    counts = np.bincount(labels.ravel(), minlength=3)
    assert counts[2] > 0 and counts[1] > 0 and counts[0] > 0, counts


@pytest.mark.parametrize("method", [m.value for m in AUTO_METHODS if m.value != "multiotsu"])
def test_every_method_in_fluorescence(voced_gray, method):
    inverted = 1 - voced_gray   # nuclei bright
    labels, t = apply_threshold(inverted, ThresholdParams(method=method), "fluorescence")
    assert set(np.unique(labels)) == {0, 2}
    if method != "local":
        assert 0 < t["t_object"] < 1
        np.testing.assert_array_equal(labels == 2, inverted > t["t_object"])


def test_multiotsu_refused_in_fluorescence(voced_gray):
    with pytest.raises(ValueError, match="multiotsu"):
        apply_threshold(voced_gray, ThresholdParams(method="multiotsu"), "fluorescence")


def test_background_peak_on_voced_is_below_the_bright_mode(voced_gray):
    t = background_peak_threshold(voced_gray)
    assert 0.8 < t < np.percentile(voced_gray, 90)


@pytest.mark.parametrize("method", [m.value for m in AUTO_METHODS])
@pytest.mark.parametrize("background", ["same", "peak"])
def test_constant_image_is_all_background(method, background):
    constant = np.full((6, 6), 0.5, np.float32)
    labels, t = apply_threshold(constant, ThresholdParams(method=method, background=background))
    assert not labels.any()
    if method != "local":
        assert t["t_nuc"] <= t["t_bg"]
    if method != "multiotsu":
        labels, _ = apply_threshold(constant, ThresholdParams(method=method), "fluorescence")
        assert not labels.any()


def test_local_threshold_by_hand():
    # Dark square on a bright ramp: a global threshold on the ramp would miss it,
    # the local one finds it; nothing brighter than t_bg is foreground.
    ramp = np.tile(np.linspace(0.3, 0.8, 40, dtype=np.float32), (40, 1))
    img = ramp.copy()
    img[15:25, 25:35] -= 0.2
    params = ThresholdParams(method="local", background="manual", t_bg=0.99, block_size=21,
                             offset=0.05)
    labels, t = apply_threshold(img, params)
    assert t["t_bg"] == 0.99 and math.isnan(t["t_nuc"])
    nucleus = labels == 2
    assert nucleus[17:23, 27:33].all()               # the inside of the dark square
    assert nucleus.sum() <= 10 * 10 + 4 * 12          # little else
    assert (labels > 0).all()                       # everything is below t_bg
    assert apply_threshold(img, params.__class__(method="local", background="manual",
                                                 t_bg=0.5, block_size=21))[0][:, -1].max() == 0


def test_apply_threshold_does_not_modify_input(voced_gray):
    before = voced_gray.copy()
    for method in ("manual", "otsu", "local", "multiotsu"):
        apply_threshold(voced_gray, ThresholdParams(method=method, background="peak"))
    np.testing.assert_array_equal(voced_gray, before)


def test_apply_threshold_unknown_mode():
    with pytest.raises(ValueError, match="nuclear"):
        apply_threshold(np.zeros((2, 2)), ThresholdParams(), "nuclear")
