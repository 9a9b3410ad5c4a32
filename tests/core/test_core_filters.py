"""Blur: none / gaussian / median / mean on tiny arrays."""
import numpy as np
import pytest
from scipy import ndimage as ndi

from cellseg_core.filters import blur

IMPULSE = np.zeros((5, 5), np.float32)
IMPULSE[2, 2] = 1.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_none_and_zero_size_return_input(dtype):
    img = IMPULSE.astype(dtype)
    assert blur(img) is img
    assert blur(img, "gaussian", sigma=0) is img
    assert blur(img, "median", size=1) is img
    assert blur(img, "mean", size=1) is img


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mean_by_hand(dtype):
    out = blur(IMPULSE.astype(dtype), "mean", size=3)
    assert out.dtype == dtype
    expected = np.zeros((5, 5))
    expected[1:4, 1:4] = 1 / 9
    np.testing.assert_allclose(out, expected, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_median_removes_an_impulse_and_keeps_an_edge(dtype):
    assert not blur(IMPULSE.astype(dtype), "median", size=3).any()
    edge = np.zeros((5, 6), dtype)
    edge[:, 3:] = 1
    np.testing.assert_array_equal(blur(edge, "median", size=3), edge)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gaussian_conserves_mass_and_is_symmetric(dtype):
    img = np.zeros((21, 21), dtype)
    img[10, 10] = 1
    out = blur(img, "gaussian", sigma=1.5)
    assert out.dtype == dtype
    assert out.sum() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(out, out.T, atol=1e-7)
    np.testing.assert_allclose(out, ndi.gaussian_filter(img, 1.5), atol=1e-7)
    assert out[10, 10] == out.max()


def test_constant_image_stays_constant_at_the_border():
    img = np.full((4, 4), 0.7, np.float32)
    for kind in ("gaussian", "median", "mean"):
        np.testing.assert_allclose(blur(img, kind, sigma=2, size=3), 0.7, atol=1e-6)


def test_blur_does_not_modify_input():
    img = IMPULSE.copy()
    for kind in ("gaussian", "median", "mean"):
        blur(img, kind, sigma=1, size=3)
    np.testing.assert_array_equal(img, IMPULSE)


@pytest.mark.parametrize("kwargs, match", [
    ({"kind": "bilateral"}, r"`kind` must be one of \['none', 'gaussian', 'median', 'mean'\]"),
    ({"kind": "gaussian", "sigma": -1}, "`sigma` must be >= 0"),
    ({"kind": "median", "size": 0}, "`size` must be >= 1"),
])
def test_blur_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        blur(IMPULSE, **kwargs)
