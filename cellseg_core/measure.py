"""Numbers from labels: class areas, N/C ratios, per-object tables.

Per-object numbers are label statistics computed with ``np.bincount`` over the
foreground pixels, in blocks of rows: their cost grows with the number of pixels,
not with the number of objects, and the memory they need stays bounded. Only the
convex hull (for ``solidity``) is computed object by object, and only for the
:data:`HULL_MAX_OBJECTS` largest objects of an image.

A segmentation with more objects than :func:`max_objects` (``CELLSEG_MAX_OBJECTS``,
default 20,000) is almost always noise or the wrong preset: callers skip its
per-object table and show :func:`too_many_objects`'s message instead.
"""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
from skimage.morphology import convex_hull_image

from .metrics import nc_ratio, nucleus_cell_ratio

__all__ = ["image_summary", "object_table", "region_stats", "solidity", "max_objects",
           "too_many_objects", "OBJECT_COLUMNS", "REGION_COLUMNS", "DEFAULT_MAX_OBJECTS",
           "HULL_MAX_OBJECTS"]

#: Columns of :func:`object_table`, in order.
OBJECT_COLUMNS = ["label", "nucleus_area", "cytoplasm_area", "cell_area", "nc_ratio",
                  "nucleus_cell_ratio", "centroid_row", "centroid_col", "mean_intensity", "equivalent_diameter",
                  "eccentricity", "solidity"]

#: Columns of :func:`region_stats`, in order (bounding box as in scikit-image: the
#: max row / column is one past the last pixel).
REGION_COLUMNS = ["label", "area", "centroid_row", "centroid_col", "bbox_min_row",
                  "bbox_min_col", "bbox_max_row", "bbox_max_col", "mean_intensity",
                  "min_intensity", "max_intensity", "equivalent_diameter",
                  "major_axis_length", "minor_axis_length", "eccentricity"]

#: Per-image object ceiling when ``CELLSEG_MAX_OBJECTS`` is not set.
DEFAULT_MAX_OBJECTS = 20_000
#: Objects per image whose convex hull (``solidity``) is computed: the largest ones.
#: About 1 ms each (scikit-image's ``convex_hull_image``); real images have far fewer.
HULL_MAX_OBJECTS = 2_000

_BLOCK_PIXELS = 1 << 20  # rows per block: about a million pixels, ~40 MB of temporaries


def max_objects() -> int:
    """The per-image object ceiling: ``CELLSEG_MAX_OBJECTS``, else :data:`DEFAULT_MAX_OBJECTS`.

    Read at each call, so a server can change it without restarting Python.

    Raises
    ------
    ValueError
        When the variable is set to something other than a positive integer.

    Examples
    --------
    >>> max_objects() >= 1
    True
    """
    text = os.environ.get("CELLSEG_MAX_OBJECTS", "").strip()
    if not text:
        return DEFAULT_MAX_OBJECTS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"CELLSEG_MAX_OBJECTS must be a positive integer, got {text!r}")
    return value


def too_many_objects(n_objects: int, limit: int | None = None) -> str | None:
    """The message for a segmentation above the object ceiling, or None below it.

    Parameters
    ----------
    n_objects : int
    limit : int, optional
        Defaults to :func:`max_objects`.

    Examples
    --------
    >>> too_many_objects(505_795, 20_000)
    'this segmentation has 505,795 objects — probably noise or the wrong preset; per-object measurements are off (limit 20,000, set CELLSEG_MAX_OBJECTS to change it)'
    >>> too_many_objects(12, 20_000) is None
    True
    """
    limit = max_objects() if limit is None else limit
    if n_objects <= limit:
        return None
    return (f"this segmentation has {n_objects:,} objects — probably noise or the wrong "
            f"preset; per-object measurements are off (limit {limit:,}, set "
            "CELLSEG_MAX_OBJECTS to change it)")


# --- label statistics ---------------------------------------------------------------------
def _check_labels(label_image, name: str) -> np.ndarray:
    label_image = np.asarray(label_image)
    if label_image.ndim != 2:
        raise ValueError(f"`{name}` must be 2-D, got shape {label_image.shape}")
    if label_image.dtype.kind not in "ui":
        raise TypeError(f"`{name}` must be an integer array, got {label_image.dtype}")
    if label_image.dtype.kind == "i" and label_image.size and label_image.min() < 0:
        raise ValueError(f"`{name}` must not hold negative labels, got {label_image.min()}")
    return label_image


def _lookup_max(size: int) -> int:
    """Labels up to this get a lookup table by value (no bigger than the image)."""
    return max(size, 1 << 16)


def _compact(label_image: np.ndarray):
    """The labels present (sorted) and a lookup from label value to row 1..n (0: none).

    With labels far above the pixel count (ids from elsewhere), the lookup would be
    huge: renumber through ``np.unique`` instead.
    """
    top = int(label_image.max(initial=0))
    if top <= _lookup_max(label_image.size):
        flat = label_image.ravel()
        if flat.dtype == np.uint64:  # bincount takes only what casts safely to intp
            flat = flat.astype(np.intp)
        present = np.bincount(flat, minlength=top + 1) > 0
        present[0] = False
        ids = np.flatnonzero(present)
        lookup = np.zeros(top + 1, np.intp)
        lookup[ids] = np.arange(1, ids.size + 1)
        return ids, label_image, lookup
    ids, inverse = np.unique(label_image, return_inverse=True)
    if ids[0] == 0:
        ids = ids[1:]
    else:
        inverse = inverse + 1
    return ids, inverse.reshape(label_image.shape), None


def _blocks(label_image, intensity, lookup):
    """(row, col, compact id, intensity) of the foreground pixels, block of rows by block."""
    n_rows, n_cols = label_image.shape
    step = max(1, _BLOCK_PIXELS // max(n_cols, 1))
    for start in range(0, n_rows, step):
        block = label_image[start:start + step].ravel()
        flat = np.flatnonzero(block)
        if not flat.size:
            continue
        k = block[flat]
        k = lookup[k] if lookup is not None else k.astype(np.intp, copy=False)
        rows, cols = np.divmod(flat, n_cols)
        rows += start
        values = None if intensity is None else intensity[start:start + step].ravel()[flat]
        yield rows, cols, k, values


def region_stats(label_image: np.ndarray, intensity: np.ndarray | None = None) -> pd.DataFrame:
    """Area, centroid, bounding box, intensity and second-moment shape of every object.

    The same numbers as scikit-image's ``regionprops`` (``area``, ``centroid``,
    ``bbox``, ``intensity_mean/min/max``, ``equivalent_diameter_area``,
    ``axis_major_length``, ``axis_minor_length``, ``eccentricity``), computed with
    ``np.bincount`` over the foreground pixels: the cost grows with the pixels, not
    with the number of objects.

    Parameters
    ----------
    label_image : (M, N) ndarray of int
        Objects by label; 0 is background. Labels need not be consecutive.
    intensity : (M, N) ndarray of float, optional
        The image whose mean, min and max are reported per object (NaN without it).

    Returns
    -------
    pandas.DataFrame with :data:`REGION_COLUMNS`, one row per label present, sorted.

    Raises
    ------
    ValueError
        When the images are not 2-D, differ in shape, or labels are negative.
    TypeError
        When `label_image` is not an integer array.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.array([[1, 1, 0, 2],
    ...                    [1, 1, 0, 2]])
    >>> region_stats(labels)[["label", "area", "centroid_row", "centroid_col", "eccentricity"]]
       label  area  centroid_row  centroid_col  eccentricity
    0      1   4.0           0.5           0.5           0.0
    1      2   2.0           0.5           3.0           1.0
    """
    label_image = _check_labels(label_image, "label_image")
    if intensity is not None:
        intensity = np.asarray(intensity)
        if intensity.shape != label_image.shape:
            raise ValueError(f"`intensity` (shape {intensity.shape}) must have the same shape "
                             f"as `label_image` (shape {label_image.shape})")
    ids, compact, lookup = _compact(label_image)
    n = ids.size + 1  # row 0 collects nothing: compact ids start at 1
    area = np.zeros(n)
    sums = np.zeros((3, n))  # rows, cols, intensity
    lows = np.full((3, n), np.inf)
    highs = np.full((3, n), -np.inf)
    for rows, cols, k, values in _blocks(compact, intensity, lookup):
        area += np.bincount(k, minlength=n)
        for i, v in enumerate((rows, cols, values)):
            if v is None:
                continue
            v = v.astype(np.float64, copy=False)  # same dtype: ufunc.at's fast path (100x)
            sums[i] += np.bincount(k, weights=v, minlength=n)
            np.minimum.at(lows[i], k, v)
            np.maximum.at(highs[i], k, v)
    safe = np.maximum(area, 1)
    centroid = sums[:2] / safe  # integer sums below 2**53: exact before the division
    # Central second moments in a second pass: sums of squared offsets from the centroid,
    # not E[x**2] - E[x]**2, which loses digits far from the origin.
    moments = np.zeros((3, n))  # row-row, col-col, row-col
    for rows, cols, k, _ in _blocks(compact, None, lookup):
        dr = rows - centroid[0][k]
        dc = cols - centroid[1][k]
        moments[0] += np.bincount(k, weights=dr * dr, minlength=n)
        moments[1] += np.bincount(k, weights=dc * dc, minlength=n)
        moments[2] += np.bincount(k, weights=dr * dc, minlength=n)
    a, c, b = moments / safe
    half_sum, root = (a + c) / 2, np.sqrt(((a - c) / 2) ** 2 + b ** 2)
    l1, l2 = half_sum + root, np.maximum(half_sum - root, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        eccentricity = np.where(l1 > 0, np.sqrt(np.maximum(1 - l2 / l1, 0)), 0.0)
        mean = np.where(area > 0, sums[2] / safe, np.nan) if intensity is not None else None
    s = slice(1, None)
    nan = np.full(n - 1, np.nan)
    return pd.DataFrame({
        "label": ids.astype(np.int64),
        "area": area[s],
        "centroid_row": centroid[0][s],
        "centroid_col": centroid[1][s],
        "bbox_min_row": lows[0][s].astype(np.int64),
        "bbox_min_col": lows[1][s].astype(np.int64),
        "bbox_max_row": highs[0][s].astype(np.int64) + 1,
        "bbox_max_col": highs[1][s].astype(np.int64) + 1,
        "mean_intensity": nan if mean is None else mean[s],
        "min_intensity": nan if intensity is None else lows[2][s],
        "max_intensity": nan if intensity is None else highs[2][s],
        "equivalent_diameter": (4 * area[s] / np.pi) ** 0.5,
        "major_axis_length": 4 * np.sqrt(l1[s]),
        "minor_axis_length": 4 * np.sqrt(l2[s]),
        "eccentricity": eccentricity[s],
    }, columns=REGION_COLUMNS)


def solidity(label_image: np.ndarray, stats: pd.DataFrame, *,
             limit: int = HULL_MAX_OBJECTS) -> tuple[np.ndarray, str | None]:
    """Area over convex-hull area of the `limit` largest objects; NaN for the others.

    The convex hull is scikit-image's ``convex_hull_image`` of each object's bounding
    box, as ``regionprops``' ``solidity`` computes it. It is the one per-object step
    of the table, hence the bound.

    Parameters
    ----------
    label_image : (M, N) ndarray of int
    stats : pandas.DataFrame
        :func:`region_stats` of `label_image` (label, area and bounding box are used).
    limit : int
        At most this many hulls, for the largest objects (ties: lower label first).

    Returns
    -------
    solidity : (len(stats),) ndarray of float
    note : str or None
        Why some values are NaN, when they are.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.array([[1, 1, 1, 0],
    ...                    [1, 0, 0, 2]])
    >>> values, note = solidity(labels, region_stats(labels))
    >>> values.tolist(), note
    ([0.8, 1.0], None)
    >>> solidity(labels, region_stats(labels), limit=1)[0].tolist()
    [0.8, nan]
    """
    if limit < 0:
        raise ValueError(f"`limit` must be >= 0, got {limit}")
    n = len(stats)
    out = np.full(n, np.nan)
    area = stats["area"].to_numpy()
    chosen = np.argsort(-area, kind="stable")[:limit]
    box = stats[["bbox_min_row", "bbox_min_col", "bbox_max_row", "bbox_max_col"]].to_numpy()
    labels = stats["label"].to_numpy()
    for i in chosen:  # bounded by `limit`
        r0, c0, r1, c1 = box[i]
        hull = convex_hull_image(label_image[r0:r1, c0:c1] == labels[i])
        out[i] = area[i] / np.count_nonzero(hull)
    note = None
    if n > limit:
        note = (f"solidity (a convex hull per object) computed for the {limit:,} largest of "
                f"{n:,} objects; NaN for the others")
    return out, note


def _count_per_label(values: np.ndarray, ids: np.ndarray, size: int) -> np.ndarray:
    """How many of `values` equal each of the sorted, non-empty `ids` (of an image of
    `size` pixels)."""
    if ids[-1] <= _lookup_max(size):
        values = values[values <= ids[-1]].astype(np.intp, copy=False)
        return np.bincount(values, minlength=int(ids[-1]) + 1)[ids]
    found, counts = np.unique(values, return_counts=True)
    out = np.zeros(ids.size, np.int64)
    if found.size:
        where = np.minimum(np.searchsorted(found, ids), found.size - 1)
        hit = found[where] == ids
        out[hit] = counts[where[hit]]
    return out


def object_table(nuclei: np.ndarray, cells: np.ndarray, labels: np.ndarray,
                 intensity: np.ndarray, *, hull_limit: int = HULL_MAX_OBJECTS) -> pd.DataFrame:
    """One row per nucleus: its shape, intensity, own cytoplasm and per-cell N/C.

    Every column but ``solidity`` costs O(pixels) (see :func:`region_stats`);
    ``solidity`` is computed for the `hull_limit` largest nuclei and is NaN for the
    others, with the reason in ``table.attrs["warnings"]``.

    Parameters
    ----------
    nuclei : (M, N) ndarray of int, nucleus instances
    cells : (M, N) ndarray of int, the cell of each nucleus (same ids), see
        :func:`cellseg_core.instances.assign_cells`
    labels : (M, N) ndarray of uint8, classes 0/1/2
    intensity : (M, N) ndarray of float, the channel whose mean is reported
    hull_limit : int
        How many convex hulls (``solidity``) at most.

    Returns
    -------
    pandas.DataFrame with :data:`OBJECT_COLUMNS`, sorted by label. Two ratios per cell:
    ``nc_ratio`` = nucleus / cytoplasm (the course's; NaN for a cell without
    cytoplasm) and ``nucleus_cell_ratio`` = nucleus / (nucleus + cytoplasm) (The
    Paris System's and QuPath's; 1.0 for a cell without cytoplasm).
    ``attrs["warnings"]`` is a tuple of messages.

    Examples
    --------
    >>> import numpy as np
    >>> nuclei = np.array([[1, 0, 0, 0]])
    >>> cells = np.array([[1, 1, 1, 0]])
    >>> labels = np.array([[2, 1, 1, 0]], np.uint8)
    >>> t = object_table(nuclei, cells, labels, np.full((1, 4), 0.5))
    >>> t[["label", "nucleus_area", "cytoplasm_area", "nc_ratio", "solidity"]]
       label  nucleus_area  cytoplasm_area  nc_ratio  solidity
    0      1           1.0               2       0.5       1.0
    >>> round(float(t["nucleus_cell_ratio"][0]), 4)
    0.3333
    """
    nuclei = _check_labels(nuclei, "nuclei")
    if not nuclei.any():
        table = pd.DataFrame({c: pd.Series(dtype=float) for c in OBJECT_COLUMNS})
        table.attrs["warnings"] = ()
        return table
    stats = region_stats(nuclei, intensity)
    solid, note = solidity(nuclei, stats, limit=hull_limit)
    ids = stats["label"].to_numpy()
    cytoplasm = _count_per_label(np.asarray(cells)[np.asarray(labels) == 1], ids, nuclei.size)
    area = stats["area"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(cytoplasm > 0, area / np.maximum(cytoplasm, 1), np.nan)
    table = pd.DataFrame({
        "label": ids, "nucleus_area": area, "cytoplasm_area": cytoplasm.astype(np.int64),
        "cell_area": area + cytoplasm, "nc_ratio": ratio,
        "nucleus_cell_ratio": area / (area + cytoplasm),  # area >= 1: 1.0 without cytoplasm
        "centroid_row": stats["centroid_row"], "centroid_col": stats["centroid_col"],
        "mean_intensity": stats["mean_intensity"],
        "equivalent_diameter": stats["equivalent_diameter"],
        "eccentricity": stats["eccentricity"], "solidity": solid,
    }, columns=OBJECT_COLUMNS)
    table.attrs["warnings"] = (note,) if note else ()
    return table


def image_summary(labels: np.ndarray, nuclei: np.ndarray) -> dict:
    """Per-image numbers: class areas, both N/C ratios, nucleus count.

    `nuclei` must be numbered 1..n, as every instance function of the engine returns.
    ``nc_ratio`` is nucleus / cytoplasm pixels (:func:`~cellseg_core.metrics.nc_ratio`),
    ``nucleus_cell_ratio`` nucleus / (nucleus + cytoplasm) pixels
    (:func:`~cellseg_core.metrics.nucleus_cell_ratio`).

    Examples
    --------
    >>> import numpy as np
    >>> s = image_summary(np.array([[0, 1, 1, 2]], np.uint8), np.array([[0, 0, 0, 1]]))
    >>> s["nc_ratio"], round(s["nucleus_cell_ratio"], 4), s["n_nuclei"]
    (0.5, 0.3333, 1)
    """
    counts = np.bincount(labels.ravel(), minlength=3)
    return {
        "background_area": int(counts[0]),
        "cytoplasm_area": int(counts[1]),
        "nucleus_area": int(counts[2]),
        "nc_ratio": nc_ratio(labels),
        "nucleus_cell_ratio": nucleus_cell_ratio(labels),
        "n_nuclei": int(nuclei.max(initial=0)),  # instances are numbered 1..n
    }
