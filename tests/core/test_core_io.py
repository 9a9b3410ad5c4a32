"""Reading images and masks: formats, sources, and every way an input can be unusable.

Files are written to `tmp_path` by the tests themselves; no binary is committed.
"""
import io

import numpy as np
import pytest
import tifffile
from PIL import Image

from cellseg_core import io as cio

RNG = np.random.default_rng(0)
RGB8 = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)
GRAY8 = RNG.integers(0, 256, (5, 7), dtype=np.uint8)
GRAY16 = RNG.integers(0, 65536, (5, 7), dtype=np.uint16)


def _pil_bytes(array, fmt="PNG", mode=None, **kw):
    buf = io.BytesIO()
    im = Image.fromarray(array) if mode is None else Image.fromarray(array, mode)
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _tiff_bytes(array):
    buf = io.BytesIO()
    tifffile.imwrite(buf, array)
    return buf.getvalue()


def _npy_bytes(array, **kw):
    buf = io.BytesIO()
    np.save(buf, array, **kw)
    return buf.getvalue()


def _both_sources(data, tmp_path, name):
    """The same file as bytes, as a path, as a str path and as a file object."""
    path = tmp_path / name
    path.write_bytes(data)
    return [data, path, str(path), io.BytesIO(data)]


def _check_float_image(image, shape):
    assert image.dtype == np.float32
    assert image.shape == shape
    assert image.min() >= 0 and image.max() <= 1


# --- formats -----------------------------------------------------------------------------
def test_png_rgb_and_gray_exact(tmp_path):
    for src in _both_sources(_pil_bytes(RGB8), tmp_path, "a.png"):
        image = cio.read_image(src)
        _check_float_image(image, (5, 7, 3))
        np.testing.assert_array_equal(image, RGB8.astype(np.float32) / np.float32(255))
    gray = cio.read_image(_pil_bytes(GRAY8))
    _check_float_image(gray, (5, 7))
    np.testing.assert_array_equal(gray, GRAY8 / np.float32(255))


def test_png_16bit_scaled_by_65535(tmp_path):
    image = cio.read_image(_both_sources(_pil_bytes(GRAY16), tmp_path, "g16.png")[1])
    _check_float_image(image, (5, 7))
    np.testing.assert_allclose(image, GRAY16 / 65535, atol=1e-7)


def test_png_rgba_drops_alpha():
    rgba = np.dstack([RGB8, np.full((5, 7), 10, np.uint8)])
    image = cio.read_image(_pil_bytes(rgba))
    _check_float_image(image, (5, 7, 3))
    np.testing.assert_array_equal(image, RGB8 / np.float32(255))


def test_png_gray_alpha_drops_alpha():
    la = np.dstack([GRAY8, np.full((5, 7), 10, np.uint8)])
    image = cio.read_image(_pil_bytes(la, mode="LA"))
    np.testing.assert_array_equal(image, GRAY8 / np.float32(255))


def test_palette_png_becomes_rgb():
    palette_colours = np.array([[255, 0, 0], [0, 128, 255], [10, 20, 30]], np.uint8)
    index = RNG.integers(0, 3, (5, 7)).astype(np.uint8)
    im = Image.fromarray(index, "P")
    im.putpalette(palette_colours.ravel().tolist())
    buf = io.BytesIO()
    im.save(buf, "PNG")
    image = cio.read_image(buf.getvalue())
    _check_float_image(image, (5, 7, 3))
    np.testing.assert_array_equal(image, palette_colours[index] / np.float32(255))


def test_jpeg_rgb_and_gray():
    smooth = np.repeat(np.linspace(0, 255, 16, dtype=np.uint8)[None, :, None], 16, 0)
    rgb = np.repeat(smooth, 3, axis=2)
    image = cio.read_image(_pil_bytes(rgb, "JPEG", quality=95))
    _check_float_image(image, (16, 16, 3))
    np.testing.assert_allclose(image, rgb / 255, atol=0.05)   # lossy
    gray = cio.read_image(_pil_bytes(smooth[..., 0], "JPEG", quality=95))
    _check_float_image(gray, (16, 16))


@pytest.mark.parametrize("array, scale", [
    (GRAY8, 255), (GRAY16, 65535), (RGB8, 255),
    (RGB8.astype(np.uint16) * 257, 65535),
])
def test_tiff_8_and_16_bit(tmp_path, array, scale):
    for src in _both_sources(_tiff_bytes(array), tmp_path, "t.tif"):
        image = cio.read_image(src)
        _check_float_image(image, array.shape)
        np.testing.assert_allclose(image, array / scale, atol=1e-7)


def test_tiff_rgba_drops_alpha():
    rgba = np.dstack([RGB8, np.full((5, 7), 200, np.uint8)])
    image = cio.read_image(_tiff_bytes(rgba))
    np.testing.assert_array_equal(image, RGB8 / np.float32(255))


def test_npy_channel_first_float_as_in_the_course(tmp_path):
    chw = (RGB8.transpose(2, 0, 1) / 255).astype(np.float32)
    for src in _both_sources(_npy_bytes(chw), tmp_path, "7.npy"):
        image = cio.read_image(src)
        _check_float_image(image, (5, 7, 3))
        np.testing.assert_array_equal(image, np.moveaxis(chw, 0, -1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_npy_channel_last_and_gray(dtype):
    hwc = (RGB8 / 255).astype(dtype)
    image = cio.read_image(_npy_bytes(hwc))
    _check_float_image(image, (5, 7, 3))
    np.testing.assert_allclose(image, hwc, atol=1e-7)
    image = cio.read_image(_npy_bytes(hwc[..., 0]))
    _check_float_image(image, (5, 7))


def test_npy_uint8_scaled():
    np.testing.assert_array_equal(cio.read_image(_npy_bytes(RGB8)), RGB8 / np.float32(255))


def test_read_image_is_same_from_path_and_bytes(tmp_path):
    data = _pil_bytes(RGB8)
    a, b, c, d = (cio.read_image(s) for s in _both_sources(data, tmp_path, "x.png"))
    for other in (b, c, d):
        np.testing.assert_array_equal(a, other)


def test_file_object_is_rewound():
    handle = io.BytesIO(_pil_bytes(GRAY8))
    first = cio.read_image(handle)
    np.testing.assert_array_equal(cio.read_image(handle), first)


# --- as_float_image ----------------------------------------------------------------------
@pytest.mark.parametrize("dtype, top", [(np.uint8, 255), (np.uint16, 65535), (bool, 1)])
def test_as_float_image_scales_integer_types(dtype, top):
    arr = np.array([[0, 1], [top, 0]]).astype(dtype)
    out = cio.as_float_image(arr)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, arr / top)


def test_as_float_image_returns_float32_in_range_unchanged():
    arr = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    before = arr.copy()
    assert cio.as_float_image(arr) is arr
    np.testing.assert_array_equal(arr, before)


@pytest.mark.parametrize("dtype", [np.float64, np.uint8, np.uint16])
def test_as_float_image_does_not_modify_input(dtype):
    arr = (np.linspace(0, 1, 36).reshape(3, 4, 3) * (1 if dtype == np.float64 else 255)
           ).astype(dtype)
    chw = np.ascontiguousarray(np.moveaxis(arr, -1, 0))
    for a in (arr, chw, arr[..., 0]):
        before = a.copy()
        out = cio.as_float_image(a)
        assert out.dtype == np.float32 and out.min() == 0 and out.max() <= 1
        np.testing.assert_array_equal(a, before)


# --- what is refused ---------------------------------------------------------------------
def test_empty_file(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.png: the file is empty"):
        cio.read_image(tmp_path / "empty.png")
    with pytest.raises(ValueError, match="empty"):
        cio.read_image(b"")


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        cio.read_image(tmp_path / "nope.png")


def test_text_file_named_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n")
    with pytest.raises(ValueError, match="notes.png: not a readable image"):
        cio.read_image(path)


def test_truncated_png():
    data = _pil_bytes(RGB8)
    with pytest.raises(ValueError, match="not a readable image"):
        cio.read_image(data[: len(data) // 2])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_npy_with_nan_or_inf(bad):
    arr = np.full((4, 4), 0.5, np.float32)
    arr[1, 2] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        cio.read_image(_npy_bytes(arr))
    with pytest.raises(ValueError, match="NaN or infinite"):
        cio.as_float_image(arr)


@pytest.mark.parametrize("shape", [(10,), (2, 3, 4, 5), (6, 6, 2), (6, 6, 5), (2, 6, 6), (0, 4), (4, 0, 3)])
def test_wrong_ndim_or_channels_or_empty(shape):
    with pytest.raises(ValueError, match=r"expected a 2-D gray or RGB image|is empty"):
        cio.read_image(_npy_bytes(np.zeros(shape, np.float32)))


def test_object_npy_is_never_unpickled(tmp_path, monkeypatch):
    class Boom:
        def __reduce__(self):
            return (pytest.fail, ("unpickled!",))

    arr = np.empty(2, dtype=object)
    arr[0], arr[1] = Boom(), 1
    data = _npy_bytes(arr, allow_pickle=True)
    with pytest.raises(ValueError, match="not a readable image|not pixel values"):
        cio.read_image(data)


def test_complex_and_string_arrays_refused():
    with pytest.raises(ValueError, match="complex"):
        cio.read_image(_npy_bytes(np.zeros((3, 3), np.complex64)))
    with pytest.raises(ValueError, match="pixel values must be numbers"):
        cio.as_float_image(np.array([["a", "b"]]))


def test_negative_integers_refused():
    with pytest.raises(ValueError, match="negative pixel values"):
        cio.read_image(_npy_bytes(np.array([[-1, 5]], np.int16)))


def test_too_many_pixels(monkeypatch):
    monkeypatch.setattr(cio, "MAX_PIXELS", 20)
    with pytest.raises(ValueError, match="more than the limit"):
        cio.read_image(_npy_bytes(np.zeros((5, 5), np.uint8)))


# --- masks -------------------------------------------------------------------------------
MASK = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)


@pytest.mark.parametrize("fmt", ["png", "tif", "npy"])
def test_read_mask_formats(tmp_path, fmt):
    data = {"png": _pil_bytes(MASK), "tif": _tiff_bytes(MASK), "npy": _npy_bytes(MASK)}[fmt]
    for src in _both_sources(data, tmp_path, f"m.{fmt}"):
        mask = cio.read_mask(src, shape=(2, 3, 3))
        assert mask.dtype == np.uint8
        np.testing.assert_array_equal(mask, MASK)


def test_read_mask_from_course_npy_int64_and_float():
    np.testing.assert_array_equal(cio.read_mask(_npy_bytes(MASK.astype(np.int64))), MASK)
    np.testing.assert_array_equal(cio.read_mask(_npy_bytes(MASK.astype(np.float32))), MASK)


def test_mask_with_label_7(tmp_path):
    bad = MASK.copy()
    bad[0, 0] = 7
    path = tmp_path / "m7.png"
    path.write_bytes(_pil_bytes(bad))
    with pytest.raises(ValueError, match=r"m7.png: a class mask may hold only 0.*found \[7\]"):
        cio.read_mask(path)
    with pytest.raises(ValueError, match=r"found \[7\]"):
        cio.read_mask(path.read_bytes())


def test_mask_shape_mismatch(tmp_path):
    path = tmp_path / "m.png"
    path.write_bytes(_pil_bytes(MASK))
    with pytest.raises(ValueError, match=r"mask shape \(2, 3\) does not match the image shape \(3, 2\)"):
        cio.read_mask(path, shape=(3, 2))


def test_rgb_mask_refused():
    with pytest.raises(ValueError, match="single-channel 2-D label image"):
        cio.read_mask(_pil_bytes(np.dstack([MASK] * 3)))


def test_fractional_or_negative_mask_refused():
    with pytest.raises(ValueError, match="whole-number labels"):
        cio.read_mask(_npy_bytes(np.array([[0.5, 1.0]])))
    with pytest.raises(ValueError, match="whole-number labels"):
        cio.read_mask(_npy_bytes(np.array([[np.nan, 1.0]])))
    with pytest.raises(ValueError, match="negative"):
        cio.read_instances(_npy_bytes(np.array([[-1, 1]], np.int32)))


# --- writing -----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype, top", [(np.uint8, 200), (np.int32, 300), (np.int64, 70000)])
def test_write_tiff_round_trip(tmp_path, dtype, top):
    labels = np.array([[0, 1, top], [top, 2, 0]], dtype)
    path = cio.write_tiff(tmp_path / "sub" / "labels.tif", labels)
    assert path.is_file()
    assert not list(path.parent.glob("*.part"))
    back = cio.read_instances(path)
    assert back.dtype == np.int32
    np.testing.assert_array_equal(back, labels)
    np.testing.assert_array_equal(cio.read_instances(cio.tiff_bytes(labels)), labels)


def test_tiff_bytes_refuses_float():
    with pytest.raises(TypeError, match="integer"):
        cio.tiff_bytes(np.zeros((2, 2), np.float32))


def test_write_bytes_atomic_replaces(tmp_path):
    path = tmp_path / "f.bin"
    cio.write_bytes_atomic(path, b"one")
    cio.write_bytes_atomic(path, b"two")
    assert path.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]
