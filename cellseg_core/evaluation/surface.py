"""The exact mean Dice of every ``(t_nuc, t_bg)`` pair of a grid, without re-segmenting.

For a pipeline that is only the two-threshold rule on one channel, per-class
cumulative histograms of the channel values give every pair's Dice (exact, not an
approximation).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..data import Dataset
from ..params import Params
from ._cache import _ids, _sorted_by_class, default_cache
from .scoring import _two_threshold_problem

__all__ = ["DiceSurface", "dice_surface"]


@dataclass(frozen=True, eq=False)
class DiceSurface:
    """Mean Dice of every (t_nuc, t_bg) pair of a grid.

    Attributes
    ----------
    thresholds : (K,) ndarray of float64
        The grid, used for both thresholds.
    mean : (K, K) ndarray
        ``mean[i, j]``: per-image mean Dice (course score) averaged over images, at
        ``t_nuc = thresholds[i]``, ``t_bg = thresholds[j]``; NaN where
        ``t_nuc >= t_bg`` (invalid params).
    pooled : (K, K) ndarray
        Dice of each class pooled over all pixels of all images, then averaged.
    dice_cytoplasm : (K, K) ndarray
    dice_nucleus : (K,) ndarray
        Per-image Dice averaged over images (nucleus Dice depends on t_nuc only).
    best : (float, float)
        ``(t_nuc, t_bg)`` of the highest `mean` (first one on ties).
    best_score : float
    best_pooled : (float, float)
    ids : list of str
    seconds : float
    """

    thresholds: np.ndarray
    mean: np.ndarray
    pooled: np.ndarray
    dice_cytoplasm: np.ndarray
    dice_nucleus: np.ndarray
    best: tuple
    best_score: float
    best_pooled: tuple
    ids: list = field(default_factory=list)
    seconds: float = 0.0


def _check_grid(thresholds) -> np.ndarray:
    grid = np.asarray(thresholds, dtype=np.float64)
    if grid.ndim != 1 or grid.size < 2:
        raise ValueError(f"`thresholds` must be a 1-D grid of at least 2 values, got shape "
                         f"{grid.shape}")
    if not np.isfinite(grid).all() or (np.diff(grid) <= 0).any():
        raise ValueError("`thresholds` must be finite and strictly increasing")
    return grid


def dice_surface(dataset: Dataset, ids, params: Params | None = None, thresholds=None, *,
                 cache=None, chunk: int = 16) -> DiceSurface:
    """Exact mean Dice of every (t_nuc, t_bg) pair of a grid, without re-segmenting.

    For each image and each true class, the channel values are sorted once (cached);
    ``np.searchsorted`` at the grid thresholds (cast to the channel's dtype, so that
    the count is exactly that of ``value < t`` in :func:`~cellseg_core.threshold.two_threshold`)
    gives the cumulative histogram ``A_c(t)``. Then, per image, the nucleus
    intersection is ``A_2(t_nuc)``, the predicted nucleus area ``sum_c A_c(t_nuc)``,
    the cytoplasm intersection ``A_1(t_bg) - A_1(t_nuc)`` and its predicted area
    ``sum_c A_c(t_bg) - A_c(t_nuc)``: every pair's Dice from a few array operations.

    Parameters
    ----------
    dataset : Dataset
    ids : list of str or None
        Items to average over (None: all). Each needs a mask.
    params : Params, optional
        Channel and blur to use; must be a plain two-threshold rule (the thresholds
        themselves are ignored). Default ``Params()`` (gray, no blur).
    thresholds : (K,) array_like, optional
        Strictly increasing grid; default ``np.linspace(0, 1, 256)``.
    cache : mapping, optional
        Where preprocessed channels are kept; default :func:`default_cache`.
    chunk : int
        Images processed together (memory ``chunk * K * K * 8`` bytes per array).

    Returns
    -------
    DiceSurface

    Raises
    ------
    ValueError
        When `params` has clean-up, an automatic method or fluorescence mode (their
        Dice does not follow from the histograms), or an item has no mask.

    Examples
    --------
    >>> from cellseg_core.data import Dataset
    >>> ds = Dataset.from_arrays("tiny", [np.array([[0.2, 0.5, 0.9]], np.float32)],
    ...                          masks=[np.array([[2, 1, 0]], np.uint8)])
    >>> s = dice_surface(ds, None, thresholds=[0.1, 0.3, 0.6, 0.95], cache={})
    >>> s.best, s.best_score
    ((0.3, 0.6), 1.0)
    """
    start = time.perf_counter()
    params = params or Params()
    problem = _two_threshold_problem(params)
    if problem:
        raise ValueError(f"`params`: the Dice surface needs a plain two-threshold rule, but "
                         f"{problem}; use evaluate() for these params")
    grid = _check_grid(np.linspace(0.0, 1.0, 256) if thresholds is None else thresholds)
    cache = default_cache() if cache is None else cache
    ids = _ids(dataset, ids)
    k = grid.size

    # A[i, c, j] = number of pixels of true class c in image i with value < grid[j].
    counts = np.empty((len(ids), 3, k), np.int64)
    totals = np.empty((len(ids), 3), np.int64)
    for i, id in enumerate(ids):
        per_class = _sorted_by_class(dataset, id, params, cache)
        for c, values in enumerate(per_class):
            counts[i, c] = np.searchsorted(values, grid.astype(values.dtype), side="left")
            totals[i, c] = values.size

    # Nucleus Dice depends on t_nuc only.
    predicted = counts.sum(1)                                 # (n, K)
    den_n = predicted + totals[:, 2:3]
    with np.errstate(invalid="ignore", divide="ignore"):
        dice_n = np.where(den_n == 0, 1.0, 2.0 * counts[:, 2] / den_n)
    # Cytoplasm Dice for every pair, summed over images chunk by chunk.
    sum_c = np.zeros((k, k))
    a1 = counts[:, 1].astype(np.float64)
    pf = predicted.astype(np.float64)
    for lo in range(0, len(ids), max(1, int(chunk))):
        hi = lo + max(1, int(chunk))
        num = a1[lo:hi, None, :] - a1[lo:hi, :, None]
        num *= 2.0
        den = pf[lo:hi, None, :] - pf[lo:hi, :, None]
        den += totals[lo:hi, 1, None, None]
        dice_c = np.ones_like(num)
        np.divide(num, den, out=dice_c, where=den > 0)
        sum_c += dice_c.sum(0)
    n = len(ids)
    mean_c = sum_c / n
    mean_n = dice_n.mean(0)
    invalid = ~(grid[:, None] < grid[None, :])
    mean = (mean_c + mean_n[:, None]) / 2
    mean[invalid] = np.nan
    mean_c[invalid] = np.nan

    # Pooled over all pixels.
    ca, ct = counts.sum(0).astype(np.float64), totals.sum(0).astype(np.float64)
    pp = ca.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled_n = np.where(pp + ct[2] == 0, 1.0, 2.0 * ca[2] / (pp + ct[2]))
        den = pp[None, :] - pp[:, None] + ct[1]
        pooled_c = np.where(den == 0, 1.0, 2.0 * (ca[1][None, :] - ca[1][:, None]) / den)
    pooled = (pooled_c + pooled_n[:, None]) / 2
    pooled[invalid] = np.nan

    best = np.unravel_index(np.nanargmax(mean), mean.shape)
    best_p = np.unravel_index(np.nanargmax(pooled), pooled.shape)
    return DiceSurface(
        thresholds=grid, mean=mean, pooled=pooled, dice_cytoplasm=mean_c,
        dice_nucleus=mean_n, best=(float(grid[best[0]]), float(grid[best[1]])),
        best_score=float(mean[best]),
        best_pooled=(float(grid[best_p[0]]), float(grid[best_p[1]])), ids=ids,
        seconds=time.perf_counter() - start)


