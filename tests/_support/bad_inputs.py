"""A corpus of bad and odd inputs, generated into a folder (no committed binaries).

:func:`make_corpus(folder)` writes every case and returns a list of :class:`Case`:
the file, what it is read as (``image``, ``mask`` or ``params``) and the expected
outcome: ``ok`` (a valid input the engine must handle, e.g. a 16-bit TIFF) or a
regular expression the refusal message must match (naming the problem).

Used by ``tests/hosting/test_bad_inputs.py`` through the engine, the CLI and the app upload.
"""
from __future__ import annotations

import io
import json
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

__all__ = ["Case", "make_corpus", "MASK_SHAPE", "good_image", "good_png_bytes",
           "bomb_png_bytes", "LONG_NAME", "NON_UTF8_NAME"]

#: Shape of the image the mask cases belong to.
MASK_SHAPE = (32, 48)
#: A 250-byte file name: legal on ext4 (255 max), but ``.<name>.XXXX.part``
#: temporary names built from it would not be.
LONG_NAME = "long_" + "x" * 241 + ".png"
#: A file name that is not valid UTF-8 (Latin-1 "café"), as bytes for os functions.
NON_UTF8_NAME = b"caf\xe9_latin1.png"


@dataclass(frozen=True)
class Case:
    """One input of the corpus.

    Attributes
    ----------
    name : str
        Short id (test ids).
    path : Path
        The file (for the non-UTF-8 name, the surrogate-escaped str path).
    kind : {'image', 'mask', 'params'}
    expect : str
        ``"ok"`` when the input is valid and must be handled, else a regex the
        error message must match (case-insensitive).
    segment : bool
        For ``ok`` images: whether a full segmentation (CLI / app) is also checked.
    """

    name: str
    path: Path
    kind: str
    expect: str
    segment: bool = True

    @property
    def ok(self) -> bool:
        return self.expect == "ok"

    @property
    def data(self) -> bytes:
        return Path(self.path).read_bytes()


def good_image(shape=(48, 64)) -> np.ndarray:
    """A small uint8 RGB cytology-like image: pale background, a cell, a dark nucleus."""
    rr, cc = np.mgrid[:shape[0], :shape[1]]
    r0, c0 = shape[0] / 2, shape[1] / 2
    d2 = (rr - r0) ** 2 + (cc - c0) ** 2
    gray = np.full(shape, 235, np.uint8)
    gray[d2 < (min(shape) / 3) ** 2] = 160
    gray[d2 < (min(shape) / 8) ** 2] = 40
    return np.stack([gray, (gray * 0.9).astype(np.uint8), gray], axis=-1)


def _png(array, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, **kw).save(buf, format="PNG")
    return buf.getvalue()


def good_png_bytes() -> bytes:
    return _png(good_image())


def _chunk(kind: bytes, body: bytes) -> bytes:
    return (struct.pack(">I", len(body)) + kind + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))


def bomb_png_bytes(side: int = 40000) -> bytes:
    """A PNG whose IHDR claims ``side`` x ``side`` gray pixels with a tiny stream.

    Written by hand: a few hundred bytes that would inflate to ``side**2`` bytes.
    """
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit gray
    row = b"\x00" + b"\x00" * side
    comp = zlib.compressobj(9)
    stream = comp.compress(row * 64) + comp.flush()  # only 64 rows: truncated anyway
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", stream)
            + _chunk(b"IEND", b""))


def _tiff_bomb_bytes(side: int = 40000) -> bytes:
    """A one-strip uncompressed TIFF whose tags claim ``side`` x ``side`` pixels."""
    data = b"\x00" * 16
    entries = [  # tag, type (3 SHORT, 4 LONG), count, value
        (256, 4, 1, side), (257, 4, 1, side), (258, 3, 1, 8), (259, 3, 1, 1),
        (262, 3, 1, 1), (273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, side),
        (279, 4, 1, side * side)]
    ifd_offset = 8 + len(data)
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        packed = struct.pack("<HI", value, 0)[:4] if typ == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, typ, count) + packed
    ifd += struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", ifd_offset) + data + ifd


def _npy_bomb_bytes() -> bytes:
    """An .npy header claiming a 40000 x 40000 float64 array (12.8 GB), no data."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f8", "fortran_order": False, "shape": (40000, 40000)})
    return buf.getvalue() + b"\x00" * 64


def _npy(array, allow_pickle=False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


def _tiff(array, **kw) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, array, **kw)
    return buf.getvalue()


def _jpeg(array, mode=None, quality=90) -> bytes:
    im = Image.fromarray(array)
    if mode:
        im = im.convert(mode)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


_PICKLE_SENTINEL = "cellseg_bad_inputs_unpickled"


class _Trap:
    """Unpickling this object sets an environment variable (it must never happen)."""

    def __reduce__(self):
        return (exec, (f"import os; os.environ[{_PICKLE_SENTINEL!r}] = '1'",))


def _cases() -> list[tuple[str, str, str, bytes, str, bool]]:
    """(name, file name, kind, bytes, expect, segment) of every case."""
    rgb = good_image()
    gray8 = rgb[..., 0]
    png = _png(rgb)
    jpg = _jpeg(rgb)
    f32 = (gray8 / 255).astype(np.float32)
    f32_nan, f32_inf = f32.copy(), f32.copy()
    f32_nan[3, 4] = np.nan
    f32_inf[5, 6] = np.inf
    gray16 = (gray8.astype(np.uint16) * 257)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)])
    palette = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    pal_buf = io.BytesIO()
    palette.save(pal_buf, format="PNG")
    mask = np.zeros(MASK_SHAPE, np.uint8)
    mask[8:24, 10:30] = 1
    mask[12:18, 16:22] = 2
    mask7 = mask.copy()
    mask7[0, 0] = 7
    params_ok = {"schema_version": 1, "threshold": {"t_nuc": 0.35, "t_bg": 0.8}}
    return [
        # --- images: refused -------------------------------------------------------
        ("empty", "empty.png", "image", b"", r"empty \(0 bytes\)", True),
        ("text_as_png", "notes.png", "image", b"these are my notes, not pixels\n",
         r"not a readable image", True),
        ("truncated_png", "truncated.png", "image", png[: len(png) // 2],
         r"not a readable image.*(truncat|broken)", True),
        ("truncated_jpeg", "truncated.jpg", "image", jpg[: len(jpg) // 2],
         r"not a readable image.*truncat", True),
        ("float32_nan", "nan.tif", "image", _tiff(f32_nan), r"NaN", True),
        ("float32_inf", "inf.tif", "image", _tiff(f32_inf), r"infinite", True),
        ("two_channel_tiff", "two_channel.tif", "image",
         _tiff(np.dstack([gray8, gray8]), photometric="minisblack", planarconfig="contig"),
         r"expected a 2-D gray or RGB image.*2\)", True),
        ("multipage_tiff", "stack.tif", "image",
         _tiff(np.stack([gray8, gray8, gray8, gray8]), photometric="minisblack"),
         r"multi-page TIFF.*4 pages", True),
        ("bomb_png", "bomb.png", "image", bomb_png_bytes(), r"more than 100,000,000 pixels.*CELLSEG_MAX_PIXELS",
         True),
        ("bomb_tiff", "bomb.tif", "image", _tiff_bomb_bytes(), r"1,600,000,000 pixels.*CELLSEG_MAX_PIXELS",
         True),
        ("bomb_npy", "bomb.npy", "image", _npy_bomb_bytes(), r"1,600,000,000 pixels.*CELLSEG_MAX_PIXELS",
         True),
        ("object_npy", "objects.npy", "image", _npy(np.array([_Trap(), 1], object),
                                                   allow_pickle=True),
         r"object", True),
        ("complex_npy", "complex.npy", "image", _npy(f32.astype(np.complex64)),
         r"complex64.*not pixel values", True),
        ("one_d_npy", "vector.npy", "image", _npy(np.arange(10, dtype=np.float32)),
         r"expected a 2-D gray or RGB image.*\(10,\)", True),
        ("negative_int_tiff", "negative.tif", "image", _tiff((gray8.astype(np.int16) - 100)),
         r"negative", True),
        ("empty_npy", "empty.npy", "image", _npy(np.zeros((0, 5), np.float32)),
         r"empty", True),
        # --- images: valid, must be handled ----------------------------------------
        ("one_pixel", "one_pixel.png", "image", _png(np.array([[128]], np.uint8)), "ok", True),
        ("strip_1x100000", "strip.png", "image",
         _png(np.tile(np.array([[240, 240, 150, 150, 30]], np.uint8), (1, 20000))), "ok", True),
        ("gray16_tiff", "gray16.tif", "image", _tiff(gray16), "ok", True),
        ("gray16_png", "gray16.png", "image", _png(gray16), "ok", True),
        ("float32_tiff", "float32.tif", "image", _tiff(f32 * 4000), "ok", True),
        ("rgba_png", "rgba.png", "image", _png(rgba), "ok", True),
        ("palette_png", "palette.png", "image", pal_buf.getvalue(), "ok", True),
        ("cmyk_jpeg", "cmyk.jpg", "image", _jpeg(rgb, "CMYK"), "ok", True),
        ("four_channel_tiff", "rgba.tif", "image", _tiff(rgba, photometric="rgb",
                                                         extrasamples=["unassalpha"]), "ok", True),
        ("jpeg_named_png", "really_a_jpeg.png", "image", jpg, "ok", True),
        ("constant_black", "black.png", "image", _png(np.zeros((40, 40), np.uint8)), "ok", True),
        ("bool_npy", "bool.npy", "image", _npy(gray8 > 100), "ok", True),
        ("long_name", LONG_NAME, "image", png, "ok", True),
        ("non_utf8_name", os.fsdecode(NON_UTF8_NAME), "image", png, "ok", True),
        # --- masks (for an image of MASK_SHAPE) ------------------------------------
        ("mask_ok", "mask_ok.png", "mask", _png(mask), "ok", True),
        ("mask_label_7", "mask7.png", "mask", _png(mask7), r"only 0.*1.*2.*found \[7\]", True),
        ("mask_other_size", "mask_small.png", "mask", _png(mask[:20, :20]),
         r"mask shape \(20, 20\) does not match the image shape \(32, 48\)", True),
        ("mask_rgb", "mask_rgb.png", "mask", _png(np.dstack([mask] * 3)),
         r"single-channel", True),
        ("mask_empty", "mask_empty.png", "mask", b"", r"empty", True),
        ("mask_float_fraction", "mask_frac.tif", "mask", _tiff(mask.astype(np.float32) / 3),
         r"whole-number", True),
        # --- params JSON -----------------------------------------------------------
        ("params_ok", "params_ok.json", "params", json.dumps(params_ok).encode(), "ok", True),
        ("params_wrong_type", "params_type.json", "params",
         json.dumps({"threshold": {"t_nuc": "0.3"}}).encode(), r"`threshold.t_nuc` must be a number",
         True),
        ("params_bool_as_int", "params_bool.json", "params",
         json.dumps({"cleanup": {"fill_holes": 1}}).encode(), r"cleanup.fill_holes.*true or false",
         True),
        ("params_unknown_key", "params_unknown.json", "params",
         json.dumps({"threshold": {"t_nucleus": 0.3}}).encode(),
         r"unknown parameter 'threshold.t_nucleus'", True),
        ("params_unknown_section", "params_section.json", "params",
         json.dumps({"colour": {}}).encode(), r"unknown parameter 'colour'", True),
        ("params_future_schema", "params_future.json", "params",
         json.dumps({"schema_version": 99}).encode(), r"schema_version 99.*newer", True),
        ("params_not_object", "params_list.json", "params", b"[0.3, 0.8]",
         r"must be a JSON object", True),
        ("params_not_json", "params_broken.json", "params", b"{threshold: 0.3",
         r"not valid JSON", True),
        ("params_nan", "params_nan.json", "params", b'{"threshold": {"t_nuc": NaN}}',
         r"t_nuc", True),
        ("params_non_utf8", "params_latin1.json", "params",
         '{"preset": "caf\u00e9"}'.encode("latin-1"), r"not valid JSON|UTF-8", True),
        ("params_empty", "params_empty.json", "params", b"", r"not valid JSON", True),
        # out of a widget's range: the engine's message, not a widget's traceback
        ("params_sigma_huge", "params_sigma.json", "params",
         json.dumps({"blur": {"kind": "gaussian", "sigma": 100000}}).encode(),
         r"`blur.sigma` must be between 0 and 50, got 100000", True),
        ("params_huge_value", "params_huge.json", "params",
         json.dumps({"mode": "x" * 100_000}).encode(),
         r"`mode` must be one of .*x… \(100,002 characters\)", True),
    ]


def make_corpus(folder) -> list[Case]:
    """Write every case into `folder` (created) and return them.

    The non-UTF-8 name is written through its bytes; its `Case.path` is the
    surrogate-escaped ``str`` that ``os.listdir`` would give back.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, file_name, kind, data, expect, seg in _cases():
        path = os.path.join(os.fsencode(folder), os.fsencode(file_name))
        with open(path, "wb") as handle:
            handle.write(data)
        out.append(Case(name, folder / file_name, kind, expect, seg))
    return out
