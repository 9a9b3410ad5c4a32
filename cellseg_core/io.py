"""Reading images and masks from paths or bytes, and writing results atomically.

Internally an image is a float32 array in [0, 1] of shape ``(M, N)`` (one channel)
or ``(M, N, 3)`` (RGB). Every reader raises `ValueError` with a message a person
understands when the input is not a usable image.
"""
from __future__ import annotations

import io as _io
import os
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

__all__ = [
    "MAX_PIXELS",
    "IMAGE_SUFFIXES",
    "read_image",
    "read_mask",
    "read_ground_truth",
    "read_instances",
    "as_float_image",
    "tiff_bytes",
    "write_tiff",
    "write_label_tiff",
    "write_bytes_atomic",
]

#: Largest image (in pixels) any reader accepts; also Pillow's decompression-bomb limit.
#: Set the environment variable ``CELLSEG_MAX_PIXELS`` to change it.
MAX_PIXELS = int(os.environ.get("CELLSEG_MAX_PIXELS", 100_000_000))
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

#: File name endings the dataset and batch readers pick up.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".npy", ".bmp")

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_NPY_MAGIC = b"\x93NUMPY"


def _read_bytes(source) -> tuple[bytes, str]:
    """Return the bytes and a display name of a path, bytes or binary file object."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "uploaded data"
    if hasattr(source, "read"):
        name = getattr(source, "name", "uploaded file")
        data = source.read()
        if hasattr(source, "seek"):
            source.seek(0)
        return data, str(name)
    path = Path(source)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    return path.read_bytes(), path.name


def _decode(data: bytes, name: str) -> np.ndarray:
    """Decode bytes into the array they hold, whatever the file format."""
    if len(data) == 0:
        raise ValueError(f"{name}: the file is empty (0 bytes)")
    try:
        if data.startswith(_NPY_MAGIC):
            _check_size(_npy_size(data), name)  # before np.load allocates it
            array = np.load(_io.BytesIO(data), allow_pickle=False)
        elif data[:4] in _TIFF_MAGIC:
            with tifffile.TiffFile(_io.BytesIO(data)) as tif:
                n_pages = len(tif.series[0].pages) if tif.series else len(tif.pages)
                if n_pages > 1:
                    raise ValueError(
                        f"{name}: a multi-page TIFF ({n_pages} pages, shape "
                        f"{tif.series[0].shape}); save the plane you want as its own image")
                # Check the size the tags claim before tifffile allocates it.
                _check_size(int(np.prod(tif.pages[0].shape, dtype=np.int64)), name)
                array = tif.pages[0].asarray()
        else:
            with Image.open(_io.BytesIO(data)) as im:
                _check_size(im.width * im.height, name)
                array = _pil_to_array(im)
    except ValueError as err:
        if str(err).startswith(name):
            raise
        raise ValueError(f"{name}: not a readable image ({err})") from None
    except Image.DecompressionBombError:
        raise ValueError(
            f"{name}: the image claims more than {MAX_PIXELS:,} pixels; refused "
            "(set CELLSEG_MAX_PIXELS to allow larger images)") from None
    except (UnidentifiedImageError, OSError, EOFError, SyntaxError, KeyError, IndexError) as err:
        raise ValueError(
            f"{name}: not a readable image (PNG, JPEG, TIFF or NPY expected; {err})") from None
    if array.dtype == object or array.dtype.kind not in "biuf":
        raise ValueError(f"{name}: holds data of type {array.dtype}, not pixel values")
    _check_size(array.size, name)
    return array


def _npy_size(data: bytes) -> int:
    """Number of values an ``.npy`` header claims (read without loading the data)."""
    buf = _io.BytesIO(data)
    version = np.lib.format.read_magic(buf)
    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                   else np.lib.format.read_array_header_2_0)
    shape, _, _ = read_header(buf)
    return int(np.prod(shape, dtype=np.int64))


def _check_size(n_pixels, name):
    if n_pixels > MAX_PIXELS:
        raise ValueError(
            f"{name}: {n_pixels:,} pixels is more than the limit of {MAX_PIXELS:,} "
            "(set CELLSEG_MAX_PIXELS to allow larger images)")


def _pil_to_array(im: Image.Image) -> np.ndarray:
    im.load()
    if im.mode in ("P", "PA"):
        im = im.convert("RGBA" if "transparency" in im.info or im.mode == "PA" else "RGB")
    if im.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        im = im.convert("RGB")
    if im.mode == "LA":
        im = im.convert("L")
    if im.mode == "1":
        im = im.convert("L")
    return np.asarray(im)


def _to_float(array: np.ndarray, name: str) -> np.ndarray:
    """Scale integer types by their range; floats must already be finite."""
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if array.dtype.kind in "ui":
        info = np.iinfo(array.dtype)
        if array.dtype.kind == "i" and array.min() < 0:
            raise ValueError(f"{name}: negative pixel values in a {array.dtype} image")
        top = 255 if array.dtype.itemsize == 1 else info.max
        out = array.astype(np.float32)
        out /= np.float32(top)
        return out
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: the image contains NaN or infinite values")
    if array.min() < 0:
        raise ValueError(f"{name}: negative pixel values (min {float(array.min()):.3g}); "
                         "intensities must be >= 0")
    return array


def as_float_image(image, *, name: str = "image") -> np.ndarray:
    """Validate an array and return it as float32 ``(M, N)`` or ``(M, N, 3)``.

    Accepts channel-last ``(M, N[, 3 or 4])`` and channel-first ``(3, M, N)`` arrays
    (as the VocEd course stores them); alpha is dropped. Integer types are scaled by
    their range to [0, 1]; float values are kept as they are (fluorescence intensities
    may exceed 1; a threshold is then on that scale). A float32 input is returned as
    is (never modified).

    Raises
    ------
    ValueError
        For the wrong number of dimensions or channels, an empty image, NaN, Inf or
        negative values.
    """
    array = np.asarray(image)
    if array.dtype == object or array.dtype.kind not in "biuf":
        raise ValueError(f"{name}: pixel values must be numbers, got dtype {array.dtype}")
    if array.ndim == 3 and array.shape[0] in (3, 4) and array.shape[-1] not in (3, 4):
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 3 and array.shape[-1] == 4:
        array = array[..., :3]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] != 3):
        raise ValueError(
            f"{name}: expected a 2-D gray or RGB image (M, N[, 3]), got shape {array.shape}")
    if array.size == 0 or min(array.shape[:2]) < 1:
        raise ValueError(f"{name}: the image is empty (shape {array.shape})")
    if array.dtype == np.float32 and np.isfinite(array).all() and array.min() >= 0:
        return array
    return _to_float(array, name)


def read_image(source) -> np.ndarray:
    """Read an image file (path, bytes or file object) as float32 in [0, 1].

    Parameters
    ----------
    source : str, Path, bytes or binary file object
        PNG, JPEG, BMP, TIFF (8/16-bit, float, gray, RGB, RGBA, palette) or ``.npy``
        (``(3, M, N)`` float as in the VocEd course, or ``(M, N[, 3])``).

    Returns
    -------
    image : (M, N[, 3]) ndarray of float32
        Float files with values above 1 are divided by their maximum.

    Raises
    ------
    ValueError
        When the file is empty, not an image, too large, or holds NaN/Inf.

    Examples
    --------
    >>> import numpy as np, io
    >>> buf = io.BytesIO(); np.save(buf, np.zeros((3, 4, 5), np.float32))
    >>> read_image(buf.getvalue()).shape
    (4, 5, 3)
    """
    data, name = _read_bytes(source)
    image = as_float_image(_decode(data, name), name=name)
    if image.max() > 1:
        # Float files in other units (e.g. a float32 microscope export): map to [0, 1].
        image = image / image.max()
    return image


def read_instances(source) -> np.ndarray:
    """Read a label image of object instances (0 background) as an int32 array."""
    data, name = _read_bytes(source)
    return _instances_array(_decode(data, name), name)


def _instances_array(labels: np.ndarray, name: str) -> np.ndarray:
    """`labels` checked as a 2-D label image of whole, non-negative numbers; int32."""
    if labels.ndim == 3 and labels.shape[0] == 1:
        labels = labels[0]
    if labels.ndim != 2:
        raise ValueError(
            f"{name}: a mask must be a single-channel 2-D label image, got shape {labels.shape}")
    if labels.dtype.kind == "f":
        if not np.isfinite(labels).all() or (labels != np.round(labels)).any():
            raise ValueError(f"{name}: a mask must hold whole-number labels")
    if labels.min() < 0:
        raise ValueError(f"{name}: a mask cannot hold negative labels")
    return labels.astype(np.int32)


def read_ground_truth(source, *, shape=None) -> tuple[np.ndarray, np.ndarray | None]:
    """Read an uploaded ground truth: a class mask or an instance label image.

    A file stored as 16- or 32-bit integers (the uint16 TIFF that Count, CellProfiler,
    Cellpose or StarDist write) is read as instances, its class mask 2 (nucleus)
    inside every instance. An 8-bit file is a class mask (:func:`read_mask`: 0, 1, 2,
    or 0/255) without instances.

    Parameters
    ----------
    source : path, bytes or binary file object
    shape : tuple, optional
        The ``(M, N)`` of the image it belongs to; a different shape raises.

    Returns
    -------
    mask : (M, N) ndarray of uint8
    instances : (M, N) ndarray of int32, or None for a class mask

    Examples
    --------
    >>> inst = np.zeros((4, 4), np.uint16); inst[0, 0] = 1; inst[2:, 2:] = 2
    >>> mask, labels = read_ground_truth(tiff_bytes(inst))
    >>> mask.tolist()[0], int(labels.max())
    ([2, 0, 0, 0], 2)
    >>> read_ground_truth(tiff_bytes(inst.astype(np.uint8)))[1] is None
    True
    """
    data, name = _read_bytes(source)
    raw = _decode(data, name)
    if not (raw.dtype.kind in "ui" and raw.dtype.itemsize >= 2):
        return read_mask(source, shape=shape), None
    labels = _instances_array(raw, name)
    if shape is not None and labels.shape != tuple(shape[:2]):
        raise ValueError(f"{name}: mask shape {labels.shape} does not match the image shape "
                         f"{tuple(shape[:2])}")
    return (labels > 0).astype(np.uint8) * np.uint8(2), labels


def read_mask(source, *, shape=None, binary_class: int = 2) -> np.ndarray:
    """Read a class mask (0 background, 1 cytoplasm, 2 nucleus) as uint8.

    A 0/255 binary mask (what ImageJ, QuPath and :func:`cellseg_core.export.binary_masks`
    write) is accepted too: its 255 pixels become `binary_class`.

    Parameters
    ----------
    source : path, bytes or binary file object
    shape : tuple, optional
        The ``(M, N)`` of the image the mask belongs to; a different shape raises.
    binary_class : {2, 1}
        The class of the 255 pixels of a 0/255 mask: 2 nucleus (the default: binary
        ground truth is most often nuclei) or 1 cytoplasm.

    Raises
    ------
    ValueError
        For an RGB mask, labels other than 0, 1, 2 (or 0, 255), or a shape mismatch.

    Examples
    --------
    >>> import io, numpy as np
    >>> from PIL import Image
    >>> buf = io.BytesIO()
    >>> Image.fromarray(np.array([[0, 255]], np.uint8)).save(buf, format="PNG")
    >>> read_mask(buf.getvalue()).tolist()
    [[0, 2]]
    """
    if binary_class not in (1, 2):
        raise ValueError(f"`binary_class` must be 1 (cytoplasm) or 2 (nucleus), got {binary_class!r}")
    labels = read_instances(source)
    name = _read_bytes(source)[1] if not isinstance(source, (bytes, bytearray)) else "mask"
    values = np.unique(labels)
    if values.size and values[-1] == 255 and np.isin(values, [0, 255]).all():
        labels = np.where(labels == 255, binary_class, 0)
        values = np.unique(labels)
    bad = np.setdiff1d(values, [0, 1, 2])
    if bad.size:
        raise ValueError(
            f"{name}: a class mask may hold only 0 (background), 1 (cytoplasm) and "
            f"2 (nucleus), or 0 and 255 (a binary mask); found {bad[:5].tolist()}")
    if shape is not None and labels.shape != tuple(shape[:2]):
        raise ValueError(
            f"{name}: mask shape {labels.shape} does not match the image shape {tuple(shape[:2])}")
    return labels.astype(np.uint8)


def write_bytes_atomic(path, data: bytes) -> Path:
    """Write `data` to `path` through a temporary file and a rename.

    An interrupted run never leaves a half-written file under `path`. The file gets
    the permissions of any new file (``0o666`` less the process umask: ``-rw-r--r--``
    under the usual 022), not ``tempfile.mkstemp``'s private ``-rw-------``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> write_bytes_atomic(folder / "a" / "b.txt", b"hi").read_bytes()
    b'hi'
    >>> import shutil; shutil.rmtree(folder)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A short prefix: ".<name>.<random>.part" must fit the 255-byte limit on a file
    # name even when `path`'s own name is near it. os.open with mode 0o666 lets the
    # kernel apply the umask, as for any file a Unix tool creates (reading the umask
    # would mean setting it, which is not thread-safe).
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.parent / f".{path.name[:40]}.{os.urandom(6).hex()}.part"
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"{path.parent}: could not create a temporary file")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def tiff_bytes(labels: np.ndarray, *, pixel_size: float | None = None) -> bytes:
    """Encode a label image as a plain TIFF (no colour table): uint8, uint16 or uint32.

    Parameters
    ----------
    labels : (M, N) ndarray of int
    pixel_size : float, optional
        Micrometres per pixel, written as the standard resolution tags
        (``XResolution`` / ``YResolution`` in pixels per centimetre, ``ResolutionUnit``
        centimetre), which QuPath, Fiji and tifffile read. Without it the file has no
        resolution (the same bytes as before pixel sizes existed).

    Examples
    --------
    >>> import io, numpy as np, tifffile
    >>> data = tiff_bytes(np.zeros((2, 3), np.uint8), pixel_size=0.25)
    >>> page = tifffile.TiffFile(io.BytesIO(data)).pages[0]
    >>> 1e4 / (page.tags["XResolution"].value[0] / page.tags["XResolution"].value[1])
    0.25
    """
    labels = np.asarray(labels)
    if labels.dtype.kind not in "ui":
        raise TypeError(f"`labels` must be an integer array, got {labels.dtype}")
    if labels.dtype not in (np.uint8, np.uint16, np.uint32):
        top = int(labels.max()) if labels.size else 0
        labels = labels.astype(np.uint16 if top < 65536 else np.uint32)
    extra = {}
    if pixel_size is not None:
        if not (np.isfinite(pixel_size) and pixel_size > 0):
            raise ValueError(f"`pixel_size` must be a positive number of µm per pixel, "
                             f"got {pixel_size!r}")
        per_cm = 1e4 / float(pixel_size)
        extra = {"resolution": (per_cm, per_cm), "resolutionunit": "CENTIMETER"}
    buf = _io.BytesIO()
    # zlib level 1: label images compress ~35x already; higher levels cost 2x the time.
    tifffile.imwrite(buf, labels, photometric="minisblack", compression="zlib",
                     compressionargs={"level": 1}, **extra)
    return buf.getvalue()


def write_label_tiff(path, labels: np.ndarray, pixel_size: float | None = None) -> Path:
    """Write a label image as a plain TIFF, atomically, with its pixel size (µm) if known.

    See :func:`tiff_bytes`.
    """
    return write_bytes_atomic(path, tiff_bytes(labels, pixel_size=pixel_size))


#: The earlier name of :func:`write_label_tiff`.
write_tiff = write_label_tiff
