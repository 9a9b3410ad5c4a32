"""Unsupervised segmentation as the ECSE 415 study did it: k-means (or mean-shift) on
each image alone, scored by matching clusters to classes with the study's Dice rule.

The study (``sources/002``) clusters the pixels of one image at a time on 29 features
(RGB, row and column, and 24 Gabor responses: sigmas 1, 3, 5, kernel size 21), z-scored
per image, for K = 3, 4, 5. It scores a cluster map against the mask by taking each
predicted label in turn and giving it the ground-truth label of highest Dice not taken
yet; a predicted label left without a class (K larger than the number of classes)
scores 0, and the score is the mean over the predicted labels. So surplus clusters are
*wrong*, not merged into a class: that is why K = 3 wins. Mean-shift on a pixel
sample (the study settled on 200 pixels) with an estimated bandwidth is the control.

Here the clustering is fitted on a pixel sample (`samples`) and every pixel is then
given its nearest centre, so one 256² image costs tens of milliseconds.

================== ===========================================================
study_features     the study's per-pixel features, z-scored per image
kmeans_clusters    K-means cluster map of one image
meanshift_clusters mean-shift cluster map of one image (and the bandwidth used)
match_clusters     the study's Dice matching (surplus clusters score 0)
cluster_sweep      every image x every K (or mean-shift): one row each
sweep_table        the sweep as the study's table: mean Dice per K
================== ===========================================================
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from scipy.signal import fftconvolve
from threadpoolctl import threadpool_limits

from ..io import as_float_image
from ..metrics import dice as _dice

__all__ = ["GABOR_SIGMAS", "GABOR_KSIZE", "UNMATCHED", "gabor_kernel_cv", "study_features",
           "kmeans_clusters", "mean_shift_modes",
           "estimate_bandwidth_sample", "meanshift_clusters", "ClusterMatch", "match_clusters",
           "cluster_sweep", "sweep_table"]

#: Gabor sigmas and kernel size of the study.
GABOR_SIGMAS = (1.0, 3.0, 5.0)
GABOR_KSIZE = 21
#: Label of the pixels of a surplus cluster in :attr:`ClusterMatch.labels`.
UNMATCHED = 255


def gabor_kernel_cv(ksize: int, sigma: float, theta: float, wavelength: float,
                    gamma: float = 0.5, psi: float = 0.0) -> np.ndarray:
    """A real Gabor kernel of fixed size, as OpenCV's ``getGaborKernel`` defines it.

    ``exp(-(x'² + γ² y'²) / 2σ²) · cos(2π x'/λ + ψ)`` with ``x' = x cos θ + y sin θ``,
    ``y' = -x sin θ + y cos θ`` on a `ksize` × `ksize` grid centred on 0 (the study
    used OpenCV with kernel size 21; unlike scikit-image's ``gabor_kernel`` the size
    does not grow with σ).

    Examples
    --------
    >>> k = gabor_kernel_cv(5, 1.0, 0.0, 10.0)
    >>> k.shape, float(k[2, 2])
    ((5, 5), 1.0)
    """
    if int(ksize) < 1 or int(ksize) % 2 == 0:
        raise ValueError(f"`ksize` must be a positive odd integer, got {ksize!r}")
    if not sigma > 0 or not wavelength > 0:
        raise ValueError(f"`sigma` ({sigma}) and `wavelength` ({wavelength}) must be > 0")
    half = int(ksize) // 2
    y, x = np.mgrid[-half:half + 1, -half:half + 1].astype(float)
    xr = x * np.cos(theta) + y * np.sin(theta)
    yr = -x * np.sin(theta) + y * np.cos(theta)
    return (np.exp(-(xr ** 2 + gamma ** 2 * yr ** 2) / (2 * sigma ** 2))
            * np.cos(2 * np.pi * xr / wavelength + psi))


def _gray(rgb: np.ndarray) -> np.ndarray:
    return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


def study_features(image: np.ndarray, *, gray: bool = False, sigmas=GABOR_SIGMAS,
                   ksize: int = GABOR_KSIZE, n_orientations: int = 8,
                   wavelength: float = 10.0) -> np.ndarray:
    """The study's per-pixel features, each z-scored over the image.

    Intensities (RGB, or the gray level with `gray`), row and column, and the
    responses of ``len(sigmas) * n_orientations`` Gabor kernels (:func:`gabor_kernel_cv`,
    orientations ``0, π/n, ...``) on the gray image (borders reflected). With the
    defaults an RGB image has 3 + 2 + 24 = 29 features, the study's count.

    Parameters
    ----------
    image : (M, N[, 3]) ndarray
    gray : bool
        Gray level instead of RGB (the study's grayscale variant).
    sigmas : tuple of float
    ksize : int
        Gabor kernel size (odd).
    n_orientations : int
    wavelength : float
        Gabor wavelength in pixels (the study does not give it; 10 px).

    Returns
    -------
    (M, N, F) ndarray of float32
        Mean 0 and standard deviation 1 per feature (0 where a feature is constant).

    Examples
    --------
    >>> f = study_features(np.random.default_rng(0).random((32, 32, 3)))
    >>> f.shape, round(float(f[..., 0].std()), 3)
    ((32, 32, 29), 1.0)
    """
    image = as_float_image(image)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"`image` must be (M, N) or (M, N, 3), got shape {image.shape}")
    rgb = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=-1)
    g = _gray(rgb).astype(np.float64)
    m, n = g.shape
    rows, cols = np.meshgrid(np.arange(m, dtype=float), np.arange(n, dtype=float),
                             indexing="ij")
    parts = [g] if gray else [rgb[..., k] for k in range(3)]
    parts += [rows, cols]
    half = int(ksize) // 2
    padded = np.pad(g, half, mode="reflect" if min(m, n) > half else "edge")
    for sigma in sigmas:
        for k in range(int(n_orientations)):
            kernel = gabor_kernel_cv(ksize, sigma, np.pi * k / n_orientations, wavelength)
            # filter2D correlates; the kernel is symmetric under 180° rotation, so
            # convolution gives the same response.
            parts.append(fftconvolve(padded, kernel, mode="valid"))
    features = np.stack(parts, axis=-1).reshape(-1, len(parts))
    mean, std = features.mean(0), features.std(0)
    features = (features - mean) / np.where(std > 1e-12, std, 1.0)
    return features.reshape(m, n, -1).astype(np.float32)


def _sample(flat: np.ndarray, samples: int, rng) -> np.ndarray:
    if samples >= len(flat):
        return flat
    return flat[rng.choice(len(flat), samples, replace=False)]


def _nearest(flat: np.ndarray, centres: np.ndarray) -> np.ndarray:
    d = (flat * flat).sum(1)[:, None] - 2 * flat @ centres.T + (centres * centres).sum(1)[None]
    return d.argmin(1)


def kmeans_clusters(image: np.ndarray, k: int = 3, *, gray: bool = False,
                    samples: int = 5000, rng=None, features: np.ndarray | None = None
                    ) -> np.ndarray:
    """K-means clusters of one image's pixels on :func:`study_features`.

    K-means (scikit-learn, 3 initialisations) is fitted on `samples` random pixels;
    every pixel then gets its nearest centre. Clusters are numbered by decreasing
    size, so the map does not depend on the initialisation's order.

    Parameters
    ----------
    image : (M, N[, 3]) ndarray
    k : int
        Number of clusters (>= 1).
    gray : bool
        Gray level instead of RGB in the features.
    samples : int
        Pixels the clustering is fitted on.
    rng : int or Generator, optional
    features : (M, N, F) ndarray, optional
        Precomputed :func:`study_features` (then `gray` is not used).

    Returns
    -------
    (M, N) ndarray of int32
        Cluster index 0 .. k-1 per pixel.

    Examples
    --------
    >>> img = np.zeros((20, 20)); img[:, 10:] = 1
    >>> c = kmeans_clusters(img, 2, rng=0)
    >>> len(np.unique(c)), bool((c[:, :5] == c[0, 0]).all())
    (2, True)
    """
    from sklearn.cluster import KMeans

    if int(k) < 1:
        raise ValueError(f"`k` must be >= 1, got {k!r}")
    if int(samples) < int(k):
        raise ValueError(f"`samples` ({samples}) must be >= `k` ({k})")
    rng = np.random.default_rng(rng)
    if features is None:
        features = study_features(image, gray=gray)
    flat = features.reshape(-1, features.shape[-1])
    sample = _sample(flat, int(samples), rng)
    with threadpool_limits(1):
        km = KMeans(int(k), n_init=3, random_state=int(rng.integers(2**31 - 1))).fit(sample)
        labels = _nearest(flat, km.cluster_centers_)
    return _by_size(labels, int(k)).reshape(features.shape[:2])


def _by_size(labels: np.ndarray, k: int) -> np.ndarray:
    counts = np.bincount(labels, minlength=k)
    rank = np.empty(k, np.int32)
    rank[np.argsort(-counts, kind="stable")] = np.arange(k, dtype=np.int32)
    return rank[labels]


def mean_shift_modes(points: np.ndarray, bandwidth: float, *, max_iter: int = 300
                     ) -> np.ndarray:
    """Modes of `points` by flat-kernel mean-shift, every point a seed.

    The algorithm of scikit-learn's ``MeanShift`` (no bin seeding), with all seeds
    moved at once: each seed moves to the mean of the points within `bandwidth`
    until it moves less than ``1e-3 * bandwidth``; the modes are then taken by
    decreasing number of points within `bandwidth`, dropping any within
    `bandwidth` of one already kept.

    Parameters
    ----------
    points : (S, F) ndarray
    bandwidth : float

    Returns
    -------
    (C, F) ndarray
        The modes, the most populated first.

    Examples
    --------
    >>> pts = np.array([[0.0], [0.1], [0.2], [5.0], [5.1]])
    >>> mean_shift_modes(pts, 1.0).round(2).tolist()
    [[0.1], [5.05]]
    """
    points = np.asarray(points, float)
    if points.ndim != 2 or len(points) == 0:
        raise ValueError(f"`points` must be (S, F) with S >= 1, got shape {points.shape}")
    if not bandwidth > 0:
        raise ValueError(f"`bandwidth` must be > 0, got {bandwidth!r}")
    sq = (points * points).sum(1)
    seeds = points.copy()
    active = np.ones(len(seeds), bool)
    counts = np.zeros(len(seeds), int)
    for _ in range(int(max_iter)):
        if not active.any():
            break
        s = seeds[active]
        d = (s * s).sum(1)[:, None] - 2 * s @ points.T + sq[None, :]
        within = d <= bandwidth ** 2
        n = within.sum(1)
        moved = np.where(n[:, None] > 0, within @ points / np.maximum(n, 1)[:, None], s)
        idx = np.flatnonzero(active)
        counts[idx] = n
        done = (np.linalg.norm(moved - s, axis=1) < 1e-3 * bandwidth) | (n == 0)
        seeds[idx] = moved
        active[idx[done]] = False
    order = np.argsort(-counts, kind="stable")
    kept = []
    for i in order:  # at most S seeds (a few hundred), not pixels
        if counts[i] == 0:
            continue
        if not kept or np.min(np.linalg.norm(seeds[kept] - seeds[i], axis=1)) >= bandwidth:
            kept.append(i)
    return seeds[kept]


def estimate_bandwidth_sample(points: np.ndarray, quantile: float = 0.3) -> float:
    """scikit-learn's ``estimate_bandwidth``: the mean, over the points, of the distance
    to their ``quantile * S``-th nearest neighbour (the point itself counted).

    Examples
    --------
    >>> round(estimate_bandwidth_sample(np.array([[0.0], [1.0], [3.0]]), 0.7), 3)
    1.333
    """
    points = np.asarray(points, float)
    if not 0 < quantile <= 1:
        raise ValueError(f"`quantile` must be in (0, 1], got {quantile!r}")
    k = max(1, int(len(points) * quantile))
    sq = (points * points).sum(1)
    d = np.sqrt(np.maximum(sq[:, None] - 2 * points @ points.T + sq[None, :], 0))
    return float(np.sort(d, axis=1)[:, k - 1].mean())


def meanshift_clusters(image: np.ndarray, *, bandwidth: float | None = None,
                       quantile: float = 0.3, samples: int = 200, gray: bool = False,
                       rng=None, features: np.ndarray | None = None):
    """Mean-shift clusters of one image (the study's control).

    Mean-shift (:func:`mean_shift_modes`) runs on `samples` random pixels (the study
    settled on 200); every pixel then gets its nearest mode. Without a `bandwidth`
    it is estimated on that sample at `quantile` (:func:`estimate_bandwidth_sample`;
    0.3 is scikit-learn's default, which the study used). The study's observation
    holds: a few main clusters plus some holding very few pixels.

    Returns
    -------
    clusters : (M, N) ndarray of int32
        Mode index per pixel, numbered by decreasing size.
    bandwidth : float
        The bandwidth used.

    Examples
    --------
    >>> img = np.zeros((20, 20)); img[:, 10:] = 1
    >>> c, bw = meanshift_clusters(img, rng=0)
    >>> len(np.unique(c)) >= 2 and bw > 0
    True
    """
    if bandwidth is not None and not bandwidth > 0:
        raise ValueError(f"`bandwidth` must be > 0 or None, got {bandwidth!r}")
    if not 0 < quantile <= 1:
        raise ValueError(f"`quantile` must be in (0, 1], got {quantile!r}")
    if int(samples) < 2:
        raise ValueError(f"`samples` must be >= 2, got {samples!r}")
    rng = np.random.default_rng(rng)
    if features is None:
        features = study_features(image, gray=gray)
    flat = features.reshape(-1, features.shape[-1])
    sample = _sample(flat, int(samples), rng).astype(float)
    if bandwidth is None:
        bandwidth = estimate_bandwidth_sample(sample, quantile)
    bandwidth = float(max(bandwidth, 1e-3))
    centres = mean_shift_modes(sample, bandwidth)
    labels = _nearest(flat, centres.astype(np.float32))
    return _by_size(labels, len(centres)).reshape(features.shape[:2]), bandwidth


@dataclass(frozen=True)
class ClusterMatch:
    """Clusters matched to classes by the study's rule (:func:`match_clusters`).

    Attributes
    ----------
    clusters : ndarray of int
        The predicted labels present, ascending.
    classes : ndarray of int
        The class each got, or -1 for a surplus cluster (scored 0).
    dice : ndarray of float
        Each cluster's Dice with its class (0 for a surplus one).
    score : float
        Mean of `dice`: the study's score of the image.
    labels : (M, N) ndarray of uint8
        The cluster map with each cluster replaced by its class; surplus clusters
        are :data:`UNMATCHED` (255), which no class equals: their pixels are wrong.
    """

    clusters: np.ndarray
    classes: np.ndarray
    dice: np.ndarray
    score: float
    labels: np.ndarray

    @property
    def n_surplus(self) -> int:
        return int((self.classes < 0).sum())


def match_clusters(clusters: np.ndarray, truth: np.ndarray, *,
                   rule: str = "study") -> ClusterMatch:
    """Match predicted labels to true classes by Dice, without replacement.

    ``rule="study"`` (the study's): the predicted labels are taken in ascending
    order; each gets the true class of highest Dice among those not taken yet
    (only classes present in `truth`). ``rule="optimal"``: the one-to-one
    assignment of highest total Dice (Hungarian). Either way a predicted label left
    without a class scores 0 and the score is the mean over the predicted labels:
    surplus clusters count as wrong, they are never merged into a class.

    Parameters
    ----------
    clusters : (M, N) ndarray of int
        Cluster index per pixel (>= 0).
    truth : (M, N) ndarray of int
        Class per pixel (>= 0).
    rule : {'study', 'optimal'}

    Returns
    -------
    ClusterMatch

    Examples
    --------
    >>> truth = np.array([[1, 1, 0, 0, 2, 2]])
    >>> m = match_clusters(np.array([[0, 0, 1, 1, 2, 3]]), truth)
    >>> m.classes.tolist(), m.dice.round(3).tolist(), round(m.score, 3)
    ([1, 0, 2, -1], [1.0, 1.0, 0.667, 0.0], 0.667)
    >>> m.labels.tolist()
    [[1, 1, 0, 0, 2, 255]]
    """
    clusters, truth = np.asarray(clusters), np.asarray(truth)
    if clusters.shape != truth.shape:
        raise ValueError(f"`clusters` (shape {clusters.shape}) must have the shape of "
                         f"`truth` (shape {truth.shape})")
    if rule not in ("study", "optimal"):
        raise ValueError(f"`rule` must be one of ['study', 'optimal'], got {rule!r}")
    if clusters.size == 0:
        raise ValueError("`clusters` is empty")
    if clusters.min() < 0 or truth.min() < 0:
        raise ValueError("`clusters` and `truth` must hold non-negative integers")
    c_ids, c_index = np.unique(clusters, return_inverse=True)
    t_ids, t_index = np.unique(truth, return_inverse=True)
    c_ids, t_ids = c_ids.astype(np.int64), t_ids.astype(np.int64)
    overlap = np.bincount(c_index.ravel() * len(t_ids) + t_index.ravel(),
                          minlength=len(c_ids) * len(t_ids)).reshape(len(c_ids), len(t_ids))
    sizes = overlap.sum(1)[:, None] + overlap.sum(0)[None, :]
    dice = 2.0 * overlap / sizes  # every cluster and class present: sizes > 0
    classes = np.full(len(c_ids), -1)
    if rule == "study":
        free = np.ones(len(t_ids), bool)
        for i in range(len(c_ids)):  # at most K clusters, not pixels
            if free.any():
                j = int(np.argmax(np.where(free, dice[i], -1.0)))
                classes[i], free[j] = j, False
    else:
        rows, cols = linear_sum_assignment(dice, maximize=True)
        classes[rows] = cols
    got = np.where(classes >= 0, dice[np.arange(len(c_ids)), np.maximum(classes, 0)], 0.0)
    lut = np.where(classes >= 0, t_ids[np.maximum(classes, 0)], UNMATCHED).astype(np.uint8)
    return ClusterMatch(clusters=c_ids, classes=np.where(classes >= 0,
                                                         t_ids[np.maximum(classes, 0)], -1),
                        dice=got, score=float(got.mean()), labels=lut[c_index])


def cluster_sweep(images, truths, ks=(3, 4, 5), *, gray: bool = False,
                  meanshift: bool = False, bandwidth: float | None = None,
                  quantile: float = 0.3, samples: int | None = None, ids=None,
                  rule: str = "study", rng=0, progress=None) -> pd.DataFrame:
    """Cluster every image for every K (and/or by mean-shift) and score it.

    Parameters
    ----------
    images, truths : sequences of arrays
        Images and their class masks.
    ks : sequence of int
        The K of k-means (empty: none).
    gray : bool
    meanshift : bool
        Also run mean-shift (its rows have ``method='mean-shift'``, ``k`` the number
        of modes found).
    bandwidth, quantile
        Mean-shift's bandwidth, or the quantile it is estimated at.
    samples : int, optional
        Pixels each clustering is fitted on (default 5000 for k-means, 200 for
        mean-shift).
    ids : sequence of str, optional
    rule : {'study', 'optimal'}
    rng : int or Generator
    progress : callable, optional
        ``progress(done, total)`` after each image.

    Returns
    -------
    DataFrame
        One row per (image, method, K): ``id, method, setting, k, features, study_dice,
        n_surplus, dice_cytoplasm, dice_nucleus, mean_dice, pixel_accuracy`` (the
        last four on the matched labels, surplus pixels wrong; ``dice_*`` use the
        VocEd classes 1 and 2).
    """
    images, truths = list(images), list(truths)
    if len(images) != len(truths):
        raise ValueError(f"`images` ({len(images)}) and `truths` ({len(truths)}) must have "
                         "the same length")
    ids = [f"{i:03d}" for i in range(len(images))] if ids is None else list(ids)
    rng = np.random.default_rng(rng)
    rows = []
    for n, (image, truth, id) in enumerate(zip(images, truths, ids)):
        features = study_features(image, gray=gray)
        runs = [("k-means", k) for k in ks] + ([("mean-shift", None)] if meanshift else [])
        for method, k in runs:
            if method == "k-means":
                clusters = kmeans_clusters(None, k, samples=samples or 5000, rng=rng,
                                           features=features)
            else:
                clusters, _ = meanshift_clusters(None, bandwidth=bandwidth, quantile=quantile,
                                                 samples=samples or 200, rng=rng,
                                                 features=features)
                k = int(clusters.max()) + 1
            match = match_clusters(clusters, truth, rule=rule)
            c, u = _dice(match.labels, truth, 1), _dice(match.labels, truth, 2)
            setting = (f"K={k}" if method == "k-means" else
                       f"bandwidth={bandwidth:g}" if bandwidth else f"quantile={quantile:g}")
            rows.append({"id": id, "method": method, "setting": setting, "k": int(k),
                         "features": "gray" if gray else "rgb", "study_dice": match.score,
                         "n_surplus": match.n_surplus, "dice_cytoplasm": c,
                         "dice_nucleus": u, "mean_dice": (c + u) / 2,
                         "pixel_accuracy": float((match.labels == truth).mean())})
        if progress is not None:
            progress(n + 1, len(images))
    return pd.DataFrame(rows)


def sweep_table(sweep: pd.DataFrame) -> pd.DataFrame:
    """The study's table: one row per method and setting (K = 3, 4, 5; mean-shift's
    bandwidth rule), with the mean number of clusters, the mean (and std) of the
    study's Dice over the images, and the course's mean Dice of the matched labels.

    Examples
    --------
    >>> sweep = pd.DataFrame({"method": ["k-means"] * 4, "setting": ["K=3"] * 2 + ["K=4"] * 2,
    ...                       "k": [3, 3, 4, 4], "features": "rgb",
    ...                       "study_dice": [.3, .2, .2, .1],
    ...                       "mean_dice": [.5, .4, .3, .2], "n_surplus": [0, 0, 1, 1]})
    >>> sweep_table(sweep)[["setting", "n_images", "study_dice"]].round(3).values.tolist()
    [['K=3', 2, 0.25], ['K=4', 2, 0.15]]
    """
    keys = ["method", "features", "setting"]
    table = (sweep.groupby(keys, sort=False)
             .agg(n_images=("study_dice", "size"), clusters=("k", "mean"),
                  study_dice=("study_dice", "mean"),
                  study_dice_std=("study_dice", "std"), mean_dice=("mean_dice", "mean"),
                  surplus_clusters=("n_surplus", "mean"))
             .reset_index())
    return table
