"""Pixel size in micrometres, and areas and lengths in µm² and µm.

Where a pixel size comes from, in order (the first found wins):

1. the user's value (``cellseg segment --pixel-size 0.25``, the Explore sidebar);
2. a dataset folder's ``dataset.json``: ``{"pixel_size_um": 0.25}``;
3. the image file: OME-TIFF ``PhysicalSizeX/Y`` (with their units), ImageJ TIFF
   metadata (``unit`` with the resolution tags; ImageJ's ``spacing`` is the z step and
   is not used), or the TIFF resolution tags with ``ResolutionUnit`` inch or
   centimetre.

A value read from a file outside :data:`PLAUSIBLE_UM_PER_PX` is ignored: a 72 or
300 dpi tag is a scanner's or an editor's default, not a microscope's pixel. Anisotropic
pixels are reduced to the square of the same area (``sqrt(x * y)``), so areas are exact
and lengths nearly so. Without a pixel size every number stays in pixels, and the
``_um2`` / ``_um`` columns are empty (NaN).
"""
from __future__ import annotations

import io as _io
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from .io import _TIFF_MAGIC, _read_bytes

__all__ = ["PLAUSIBLE_UM_PER_PX", "AREA_COLUMNS", "LENGTH_COLUMNS", "check_pixel_size",
           "read_pixel_size", "dataset_pixel_size", "resolve_pixel_size", "with_units"]

#: Pixel sizes (µm per pixel) accepted from file metadata; others are ignored.
PLAUSIBLE_UM_PER_PX = (0.01, 20.0)

#: Columns in pixels that get a ``<name>_um2`` twin in µm² (when present in a table).
AREA_COLUMNS = ("background_area", "cytoplasm_area", "nucleus_area", "cell_area")
#: Columns in pixels that get a ``<name>_um`` twin in µm.
LENGTH_COLUMNS = ("equivalent_diameter",)

# Micrometres per unit, for OME and ImageJ unit names.
_UM_PER_UNIT = {"m": 1e6, "cm": 1e4, "mm": 1e3, "µm": 1.0, "μm": 1.0, "um": 1.0,
                "micron": 1.0, "microns": 1.0, "micrometer": 1.0, "micrometre": 1.0,
                "nm": 1e-3, "nanometer": 1e-3, "in": 25_400.0, "inch": 25_400.0,
                "\\u00B5m": 1.0}
_TIFF_UNIT_UM = {2: 25_400.0, 3: 10_000.0}  # ResolutionUnit: 2 inch, 3 centimetre


def check_pixel_size(value, name: str = "pixel_size") -> float | None:
    """`value` as a float µm/px, or None for "unknown" (None or 0).

    Raises
    ------
    ValueError
        For a negative, infinite or NaN value.

    Examples
    --------
    >>> check_pixel_size(0.25), check_pixel_size(None), check_pixel_size(0)
    (0.25, None, None)
    """
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a number of µm per pixel, got {value!r}") from None
    if value == 0:
        return None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"`{name}` must be a positive number of µm per pixel, got {value!r}")
    return value


def _plausible(x: float | None, y: float | None) -> float | None:
    if x is None or y is None or not (x > 0 and y > 0):
        return None
    size = math.sqrt(x * y)
    low, high = PLAUSIBLE_UM_PER_PX
    return size if low <= size <= high else None


def _ome_size(text: str) -> float | None:
    pixels = re.search(r"<(?:\w+:)?Pixels\b[^>]*>", text)
    if pixels is None:
        return None
    tag = pixels.group(0)
    sizes = []
    for axis in ("X", "Y"):
        value = re.search(rf'PhysicalSize{axis}="([^"]+)"', tag)
        unit = re.search(rf'PhysicalSize{axis}Unit="([^"]+)"', tag)
        if value is None:
            return None
        factor = _UM_PER_UNIT.get(unit.group(1) if unit else "µm")  # OME's default: µm
        if factor is None:
            return None
        sizes.append(float(value.group(1)) * factor)
    return _plausible(*sizes)


def _tags_size(page, um_per_unit: float | None) -> float | None:
    tags = page.tags
    if "XResolution" not in tags or "YResolution" not in tags or um_per_unit is None:
        return None
    sizes = []
    for key in ("XResolution", "YResolution"):
        num, den = tags[key].value
        if not num or not den:
            return None
        sizes.append(um_per_unit * den / num)  # resolution = pixels per unit
    return _plausible(*sizes)


def read_pixel_size(source) -> float | None:
    """The pixel size (µm/px) an image file records, or None.

    Parameters
    ----------
    source : path, bytes or binary file object
        Any image file; only TIFFs (plain, OME, ImageJ) carry a size we read.

    Returns
    -------
    float or None
        None when the file records none, or one outside :data:`PLAUSIBLE_UM_PER_PX`.

    Examples
    --------
    >>> import numpy as np
    >>> from cellseg_core.io import tiff_bytes
    >>> read_pixel_size(tiff_bytes(np.zeros((4, 4), np.uint8), pixel_size=0.5))
    0.5
    >>> read_pixel_size(tiff_bytes(np.zeros((4, 4), np.uint8))) is None
    True
    """
    data, _ = _read_bytes(source)
    if data[:4] not in _TIFF_MAGIC:
        return None
    try:
        with tifffile.TiffFile(_io.BytesIO(data)) as tif:
            page = tif.pages[0]
            if tif.is_ome and tif.ome_metadata:
                found = _ome_size(tif.ome_metadata)
                if found is not None:
                    return found
            if tif.is_imagej and tif.imagej_metadata:
                unit = str(tif.imagej_metadata.get("unit", "")).strip()
                found = _tags_size(page, _UM_PER_UNIT.get(unit))
                if found is not None:
                    return found
            unit = page.tags.get("ResolutionUnit")
            return _tags_size(page, _TIFF_UNIT_UM.get(int(unit.value) if unit else 0))
    except (ValueError, OSError, KeyError, IndexError, TypeError, ZeroDivisionError):
        return None  # unreadable metadata is no pixel size; the reader reports bad images


def dataset_pixel_size(folder) -> float | None:
    """``pixel_size_um`` of a dataset folder's ``dataset.json``, or None without one.

    Raises
    ------
    ValueError
        When ``dataset.json`` exists but is not JSON or its value is not a positive number.

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "dataset.json").write_text(json.dumps({"pixel_size_um": 0.3}))
    >>> dataset_pixel_size(folder)
    0.3
    """
    path = Path(folder) / "dataset.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object like {{\"pixel_size_um\": 0.25}}")
    return check_pixel_size(data.get("pixel_size_um"), f"{path.name}: pixel_size_um")


def resolve_pixel_size(user=None, dataset=None, image=None) -> tuple[float | None, str]:
    """The pixel size in force and where it came from: the user's, the dataset's, the file's.

    Returns
    -------
    (float or None, str)
        The size in µm/px and ``"user"``, ``"dataset.json"``, ``"image file"`` or
        ``"unknown"``.

    Examples
    --------
    >>> resolve_pixel_size(None, 0.3, 0.5)
    (0.3, 'dataset.json')
    >>> resolve_pixel_size(0.25, 0.3, 0.5)
    (0.25, 'user')
    >>> resolve_pixel_size()
    (None, 'unknown')
    """
    for value, origin in ((user, "user"), (dataset, "dataset.json"), (image, "image file")):
        value = check_pixel_size(value)
        if value is not None:
            return value, origin
    return None, "unknown"


def with_units(table: pd.DataFrame, pixel_size: float | None) -> pd.DataFrame:
    """A copy of `table` with ``<area>_um2`` and ``<length>_um`` columns added.

    Each column of :data:`AREA_COLUMNS` / :data:`LENGTH_COLUMNS` present in `table`
    gets its twin right after it; the twins are NaN when `pixel_size` is None, so a
    table has the same columns with or without a pixel size.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"label": [1], "nucleus_area": [100.0], "equivalent_diameter": [11.28]})
    >>> u = with_units(t, 0.5).round(2)
    >>> list(u.columns)
    ['label', 'nucleus_area', 'nucleus_area_um2', 'equivalent_diameter', 'equivalent_diameter_um']
    >>> u[["nucleus_area_um2", "equivalent_diameter_um"]].values.tolist()
    [[25.0, 5.64]]
    """
    pixel_size = check_pixel_size(pixel_size)
    out = {}
    for column in table.columns:
        out[column] = table[column]
        if column in AREA_COLUMNS:
            out[f"{column}_um2"] = (table[column].astype(float) * pixel_size ** 2
                                    if pixel_size else np.nan)
        elif column in LENGTH_COLUMNS:
            out[f"{column}_um"] = (table[column].astype(float) * pixel_size
                                   if pixel_size else np.nan)
    result = pd.DataFrame(out, index=table.index)
    result.attrs.update(table.attrs)
    return result
