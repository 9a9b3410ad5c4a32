"""Nuclear features per cell: stain density, contour irregularity, chromatin texture.

The criteria cytopathology grades nuclei by, as numbers for review (never a
diagnosis): how dark the nucleus is against its own cytoplasm (hyperchromasia), how
far its outline is from convex (irregular contour), and how coarse its chromatin is
(texture). Every feature is computed with ``np.bincount`` over the nucleus pixels
and pixel pairs, so the cost grows with the pixels, not the number of objects; the
one per-object step, the convex hull behind ``solidity``, is bounded as in
:func:`cellseg_core.measure.solidity`.

Columns (:data:`NUCLEAR_COLUMNS`), all computed on the channel the thresholds act on
(nuclei dark, glass bright; every channel of :func:`cellseg_core.color.extract_channel`):

``nucleus_od``, ``cytoplasm_od``
    Mean optical density ``-ln(I / glass)`` of the nucleus and of its own cytoplasm,
    ``glass`` being the median of the background pixels (1.0 without background);
    :func:`cellseg_core.color.optical_density`. NaN cytoplasm for a cell without any.
``od_ratio``
    ``nucleus_od / cytoplasm_od``: above 1, the nucleus absorbs more light than its
    cytoplasm; NaN without cytoplasm or when the cytoplasm's density is 0.
``convexity_deficit``
    ``1 - solidity``: 0 for a convex nucleus, larger for a notched or lobed one
    (NaN where solidity is, beyond :data:`~cellseg_core.measure.HULL_MAX_OBJECTS`).
``glcm_contrast``, ``glcm_entropy``
    Of the nucleus's gray-level co-occurrence matrix (scikit-image's
    ``graycomatrix(q, [1], [0, pi/2], levels, symmetric=True, normed=True)`` over the
    pixel pairs that lie both inside the nucleus, ``graycoprops`` contrast and
    entropy averaged over the two angles), with the channel quantised into
    :data:`GLCM_LEVELS` equal steps of [0, 1]. NaN for a nucleus without a pair.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .color import optical_density
from .measure import HULL_MAX_OBJECTS, OBJECT_COLUMNS, object_table

__all__ = ["NUCLEAR_COLUMNS", "CELL_COLUMNS", "GLCM_LEVELS", "nuclear_features",
           "glcm_texture", "cell_table"]

#: Columns :func:`nuclear_features` adds, in order.
NUCLEAR_COLUMNS = ["nucleus_od", "cytoplasm_od", "od_ratio", "convexity_deficit",
                   "glcm_contrast", "glcm_entropy"]
#: Columns of :func:`cell_table`: the object table's, then the nuclear features.
CELL_COLUMNS = [*OBJECT_COLUMNS, *NUCLEAR_COLUMNS]
#: Gray levels of the co-occurrence matrix (equal steps of [0, 1]).
GLCM_LEVELS = 16


def _rows(values: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row of each value in the sorted `ids`, and which values are in `ids` at all."""
    where = np.minimum(np.searchsorted(ids, values), max(ids.size - 1, 0))
    return where, ids[where] == values


def _means(values, rows, hit, n):
    count = np.bincount(rows[hit], minlength=n)
    total = np.bincount(rows[hit], weights=values[hit], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def glcm_texture(nuclei: np.ndarray, intensity: np.ndarray, ids=None, *,
                 levels: int = GLCM_LEVELS) -> tuple[np.ndarray, np.ndarray]:
    """GLCM contrast and entropy of every nucleus, from its inside pixel pairs.

    Parameters
    ----------
    nuclei : (M, N) ndarray of int
        Nucleus instances, 0 background.
    intensity : (M, N) ndarray of float
        Values in [0, 1] (clipped), quantised to ``floor(v * levels)``.
    ids : (K,) ndarray of int, optional
        The labels to report, sorted (default: every label present).
    levels : int
        Gray levels (2 to 256).

    Returns
    -------
    contrast, entropy : (K,) ndarray of float
        As scikit-image's ``graycoprops`` (entropy with the natural log) of a
        symmetric, normed matrix at distance 1, averaged over angles 0 and pi/2; NaN
        for a nucleus with no horizontal nor vertical pair inside it.

    Examples
    --------
    >>> import numpy as np
    >>> nuclei = np.array([[1, 1, 0, 2, 2]])
    >>> intensity = np.array([[0.0, 0.5, 0.0, 0.2, 0.2]])
    >>> contrast, entropy = glcm_texture(nuclei, intensity, levels=4)
    >>> contrast.tolist(), entropy.round(4).tolist()
    ([4.0, 0.0], [0.6931, 0.0])
    """
    nuclei, intensity = np.asarray(nuclei), np.asarray(intensity)
    if nuclei.ndim != 2 or intensity.shape != nuclei.shape:
        raise ValueError(f"`intensity` (shape {intensity.shape}) must be 2-D with the "
                         f"shape of `nuclei` (shape {nuclei.shape})")
    if not 2 <= int(levels) <= 256:
        raise ValueError(f"`levels` must be between 2 and 256, got {levels}")
    levels = int(levels)
    if ids is None:
        ids = np.unique(nuclei[nuclei > 0])
    ids = np.asarray(ids)
    n = ids.size
    q = np.minimum((np.clip(intensity, 0, 1) * levels).astype(np.intp), levels - 1)
    contrasts, entropies = [], []
    for axis in (1, 0):  # angle 0 (pairs along a row), then pi/2 (along a column)
        a = nuclei[:, :-1] if axis == 1 else nuclei[:-1]
        b = nuclei[:, 1:] if axis == 1 else nuclei[1:]
        same = (a == b) & (a > 0)
        qa = (q[:, :-1] if axis == 1 else q[:-1])[same]
        qb = (q[:, 1:] if axis == 1 else q[1:])[same]
        rows, hit = _rows(a[same], ids) if n else (np.zeros(0, np.intp), np.zeros(0, bool))
        rows, qa, qb = rows[hit], qa[hit], qb[hit]
        pairs = np.bincount(rows, minlength=n).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            # Symmetric matrix: each pair counts as (i, j) and (j, i); (i - j)² is the same.
            contrasts.append(np.bincount(rows, weights=(qa - qb) ** 2.0, minlength=n)
                             / np.where(pairs > 0, pairs, np.nan))
            cell = np.concatenate([(rows * levels + qa) * levels + qb,
                                   (rows * levels + qb) * levels + qa])
            keys, counts = np.unique(cell, return_counts=True)
            owner = keys // (levels * levels)
            p = counts / (2 * pairs[owner])
            entropies.append(np.where(pairs > 0, np.bincount(
                owner, weights=-p * np.log(p), minlength=n), np.nan))
    with np.errstate(invalid="ignore"):
        # nanmean without its warning: a nucleus one pixel wide has pairs in one angle only
        def average(pair):
            stack = np.vstack(pair)
            ok = np.isfinite(stack)
            return np.where(ok.any(0), np.where(ok, stack, 0).sum(0) / np.maximum(ok.sum(0), 1),
                            np.nan)
        return average(contrasts), average(entropies)


def nuclear_features(nuclei: np.ndarray, cells: np.ndarray, labels: np.ndarray,
                     intensity: np.ndarray, table: pd.DataFrame, *,
                     levels: int = GLCM_LEVELS) -> pd.DataFrame:
    """The :data:`NUCLEAR_COLUMNS` of each row of an object table.

    Parameters
    ----------
    nuclei : (M, N) ndarray of int, nucleus instances
    cells : (M, N) ndarray of int, the cell of each nucleus (same ids)
    labels : (M, N) ndarray of uint8, classes 0/1/2
    intensity : (M, N) ndarray of float, the channel (nuclei dark, glass bright)
    table : pandas.DataFrame
        :func:`~cellseg_core.measure.object_table` of the same images (``label`` and
        ``solidity`` are used).
    levels : int
        Gray levels of the co-occurrence matrix.

    Returns
    -------
    pandas.DataFrame with :data:`NUCLEAR_COLUMNS`, the index of `table`.

    Examples
    --------
    >>> import numpy as np
    >>> from cellseg_core.measure import object_table
    >>> nuclei = np.array([[0, 1, 0, 0]])
    >>> cells = np.array([[0, 1, 1, 0]])
    >>> labels = np.array([[0, 2, 1, 0]], np.uint8)
    >>> channel = np.array([[1.0, np.exp(-2), np.exp(-0.5), 1.0]])
    >>> t = object_table(nuclei, cells, labels, channel)
    >>> f = nuclear_features(nuclei, cells, labels, channel, t)
    >>> f[["nucleus_od", "cytoplasm_od", "od_ratio"]].round(3).to_dict("records")
    [{'nucleus_od': 2.0, 'cytoplasm_od': 0.5, 'od_ratio': 4.0}]
    """
    nuclei, cells, labels = np.asarray(nuclei), np.asarray(cells), np.asarray(labels)
    intensity = np.asarray(intensity, dtype=np.float32)
    for name, array in (("cells", cells), ("labels", labels), ("intensity", intensity)):
        if array.shape != nuclei.shape:
            raise ValueError(f"`{name}` (shape {array.shape}) must have the shape of "
                             f"`nuclei` (shape {nuclei.shape})")
    ids = table["label"].to_numpy().astype(nuclei.dtype if nuclei.dtype.kind in "ui"
                                           else np.int64)
    n = ids.size
    out = pd.DataFrame({c: np.full(n, np.nan) for c in NUCLEAR_COLUMNS}, index=table.index)
    if n == 0:
        return out
    glass = labels == 0
    background = float(np.median(intensity[glass])) if glass.any() else 1.0
    od = optical_density(intensity, background if background > 0 else 1.0)
    inside = nuclei > 0
    rows, hit = _rows(nuclei[inside], ids)
    nucleus_od = _means(od[inside], rows, hit, n)
    cyto = (labels == 1) & (cells > 0)
    rows, hit = _rows(cells[cyto], ids)
    cytoplasm_od = _means(od[cyto], rows, hit, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(cytoplasm_od > 0, nucleus_od / np.where(cytoplasm_od > 0,
                                                                 cytoplasm_od, 1), np.nan)
    contrast, entropy = glcm_texture(nuclei, intensity, ids, levels=levels)
    out["nucleus_od"] = nucleus_od
    out["cytoplasm_od"] = cytoplasm_od
    out["od_ratio"] = ratio
    out["convexity_deficit"] = 1.0 - table["solidity"].to_numpy(float)
    out["glcm_contrast"] = contrast
    out["glcm_entropy"] = entropy
    return out


def cell_table(nuclei: np.ndarray, cells: np.ndarray, labels: np.ndarray,
               intensity: np.ndarray, *, hull_limit: int = HULL_MAX_OBJECTS,
               levels: int = GLCM_LEVELS) -> pd.DataFrame:
    """:func:`~cellseg_core.measure.object_table` with the nuclear features after it.

    Returns
    -------
    pandas.DataFrame with :data:`CELL_COLUMNS`; ``attrs["warnings"]`` as the object
    table's.

    Examples
    --------
    >>> import numpy as np
    >>> t = cell_table(np.array([[1, 1, 0]]), np.array([[1, 1, 1]]),
    ...                np.array([[2, 2, 1]], np.uint8), np.array([[0.2, 0.2, 0.8]]))
    >>> t[["nc_ratio", "nucleus_cell_ratio", "convexity_deficit", "glcm_contrast"]].values.tolist()
    [[2.0, 0.6666666666666666, 0.0, 0.0]]
    """
    table = object_table(nuclei, cells, labels, intensity, hull_limit=hull_limit)
    features = nuclear_features(nuclei, cells, labels, intensity, table, levels=levels)
    out = pd.concat([table, features], axis=1)[CELL_COLUMNS]
    out.attrs["warnings"] = table.attrs.get("warnings", ())
    return out
