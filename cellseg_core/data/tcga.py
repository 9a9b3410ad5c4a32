"""The TCGA-style layout the ECSE 415 study used (NuCLS-like): pieces that read it.

::

    root/rgb/<stem>.png    RGB tiles (file names carry the patient, TCGA-A1-A0SP-DX1_...)
    root/csv/<stem>.csv    one row per nucleus: its class and its polygon
    root/mask/<stem>.png   RGB mask: channel 0 the class code (the field of view a gray
                           level), channel 1 × channel 2 the nucleus instance

The CSV has a class column (the first of :data:`CLASS_COLUMNS` present) and the
polygon as ``coords_x`` / ``coords_y``, comma-separated pixel coordinates (column and
row); a row without them uses its box ``xmin, ymin, xmax, ymax``.
:meth:`~cellseg_core.data.Dataset.from_tcga` builds a dataset from these.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from skimage.draw import polygon as _fill_polygon

__all__ = ["CLASS_COLUMNS", "rgb_mask_to_labels", "resize_labels", "read_polygons",
           "polygons_to_masks", "read_rgb_mask", "mask_instances"]

#: Columns that can hold a nucleus's class, in order of preference (NuCLS names first).
CLASS_COLUMNS = ("super_classification", "main_classification", "raw_classification",
                 "group", "class", "label")


def rgb_mask_to_labels(mask: np.ndarray, palette: dict | None = None) -> np.ndarray:
    """Colour-coded mask → integer labels.

    Without `palette`, as the study did: the distinct colours, in ascending order
    (of their R, G, B values), become labels 0, 1, 2, ... With `palette`
    (``{(r, g, b): label}``) each colour gets its label and an unlisted colour is an
    error.

    Parameters
    ----------
    mask : (M, N, 3) or (M, N) ndarray
    palette : dict, optional

    Returns
    -------
    (M, N) ndarray of int32

    Examples
    --------
    >>> m = np.array([[[255, 0, 0], [0, 0, 0]], [[0, 0, 255], [255, 0, 0]]], np.uint8)
    >>> rgb_mask_to_labels(m).tolist()
    [[2, 0], [1, 2]]
    >>> rgb_mask_to_labels(m, {(0, 0, 0): 0, (255, 0, 0): 2, (0, 0, 255): 1}).tolist()
    [[2, 0], [1, 2]]
    """
    mask = np.asarray(mask)
    if mask.ndim == 2:
        mask = mask[..., None]
    if mask.ndim != 3:
        raise ValueError(f"`mask` must be (M, N[, C]), got shape {mask.shape}")
    flat = mask.reshape(-1, mask.shape[-1])
    colours, index = np.unique(flat, axis=0, return_inverse=True)
    index = index.reshape(mask.shape[:2])
    if palette is None:
        return index.astype(np.int32)
    lut = np.empty(len(colours), np.int32)
    for i, colour in enumerate(colours):  # one per distinct colour, not per pixel
        key = tuple(int(c) for c in colour)
        if key not in palette:
            raise ValueError(f"`mask` holds colour {key}, which `palette` does not list; "
                             f"listed: {sorted(palette)[:8]}")
        lut[i] = palette[key]
    return lut[index]


def resize_labels(labels: np.ndarray, shape) -> np.ndarray:
    """Resize a label image to ``shape[:2]`` with nearest-neighbour sampling (no new
    label values appear, as the study resized its masks).

    Examples
    --------
    >>> resize_labels(np.array([[1, 2], [3, 4]]), (4, 4))[:, 0].tolist()
    [1, 1, 3, 3]
    """
    labels = np.asarray(labels)
    shape = tuple(int(s) for s in shape[:2])
    if labels.ndim < 2 or min(shape) < 1:
        raise ValueError(f"`labels` must be at least 2-D and `shape` positive, got "
                         f"{labels.shape} and {shape}")
    rows = ((np.arange(shape[0]) + 0.5) * labels.shape[0] / shape[0]).astype(int)
    cols = ((np.arange(shape[1]) + 0.5) * labels.shape[1] / shape[1]).astype(int)
    return labels[rows[:, None], cols[None, :]]


def _numbers(text) -> np.ndarray:
    if isinstance(text, (int, float)) and not pd.isna(text):
        return np.array([float(text)])
    if not isinstance(text, str) or not text.strip():
        return np.zeros(0)
    return np.array([float(v) for v in text.replace(";", ",").split(",") if v.strip()])


def read_polygons(path) -> pd.DataFrame:
    """One row per nucleus of a TCGA-style CSV: ``class`` (str), ``rows``, ``cols``
    (arrays of the polygon's vertices, pixel units).

    Raises
    ------
    ValueError
        Naming the file when it has no class column or no coordinates.
    """
    path = Path(path)
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise ValueError(f"{path}: not a readable CSV ({err})") from None
    column = next((c for c in CLASS_COLUMNS if c in table.columns), None)
    if column is None:
        raise ValueError(f"{path}: no class column; expected one of {list(CLASS_COLUMNS)}")
    has_polygon = {"coords_x", "coords_y"} <= set(table.columns)
    has_box = {"xmin", "ymin", "xmax", "ymax"} <= set(table.columns)
    if not (has_polygon or has_box):
        raise ValueError(f"{path}: no coords_x/coords_y nor xmin/ymin/xmax/ymax columns")
    out = []
    for record in table.to_dict("records"):  # one per nucleus
        xs = _numbers(record.get("coords_x")) if has_polygon else np.zeros(0)
        ys = _numbers(record.get("coords_y")) if has_polygon else np.zeros(0)
        if (len(xs) < 3 or len(xs) != len(ys)) and has_box:
            x0, y0, x1, y1 = (float(record[k]) for k in ("xmin", "ymin", "xmax", "ymax"))
            xs, ys = np.array([x0, x1, x1, x0]), np.array([y0, y0, y1, y1])
        if len(xs) < 3 or len(xs) != len(ys):
            raise ValueError(f"{path}: a nucleus has {len(xs)} x and {len(ys)} y "
                             "coordinates (a polygon needs >= 3 of each)")
        out.append({"class": str(record[column]), "rows": ys, "cols": xs})
    return pd.DataFrame(out, columns=["class", "rows", "cols"])


def polygons_to_masks(polygons: pd.DataFrame, shape, class_names) -> tuple:
    """Draw the nuclei of :func:`read_polygons` into a class map and an instance map.

    Every pixel inside a polygon gets its nucleus's class (1 + its index in
    `class_names`; 0 background) and its instance number (1 + its row); a later
    polygon overwrites an earlier one where they overlap.

    Returns
    -------
    classes : (M, N) ndarray of uint8
    instances : (M, N) ndarray of int32

    Examples
    --------
    >>> poly = pd.DataFrame({"class": ["tumor"], "rows": [np.array([1, 1, 3, 3])],
    ...                      "cols": [np.array([1, 3, 3, 1])]})
    >>> c, i = polygons_to_masks(poly, (5, 5), ["stroma", "tumor"])
    >>> int(c.max()), int((i == 1).sum())
    (2, 9)
    """
    shape = tuple(int(s) for s in shape[:2])
    names = list(class_names)
    classes = np.zeros(shape, np.uint8)
    instances = np.zeros(shape, np.int32)
    for k, (name, rows, cols) in enumerate(polygons[["class", "rows", "cols"]]
                                           .itertuples(index=False)):
        if name not in names:
            raise ValueError(f"class {name!r} is not in `class_names` {names}")
        rr, cc = _fill_polygon(np.asarray(rows, float), np.asarray(cols, float), shape)
        classes[rr, cc] = names.index(name) + 1
        instances[rr, cc] = k + 1
    return classes, instances


def read_rgb_mask(path) -> np.ndarray:
    """The mask image as stored: (M, N, 3) uint8 (a gray mask is repeated)."""
    with Image.open(path) as img:
        array = np.asarray(img.convert("RGB"))
    return array


def mask_instances(mask: np.ndarray) -> np.ndarray:
    """Instance labels of a TCGA-style mask: channel 1 × channel 2 (0 background).

    Examples
    --------
    >>> m = np.zeros((1, 3, 3), np.uint8); m[0, 1] = (4, 2, 3); m[0, 2] = (253, 0, 0)
    >>> mask_instances(m).tolist()
    [[0, 6, 0]]
    """
    mask = np.asarray(mask)
    if mask.ndim != 3 or mask.shape[2] < 3:
        raise ValueError(f"`mask` must be (M, N, 3), got shape {mask.shape}")
    return mask[..., 1].astype(np.int32) * mask[..., 2].astype(np.int32)
