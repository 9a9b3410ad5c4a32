"""Unsupervised baselines: k-means and mean-shift clusters of pixels, matched to classes by
Dice on the training set (what supervision adds)."""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.signal import fftconvolve
from skimage.filters import gabor_kernel
from threadpoolctl import threadpool_limits

from ..io import as_float_image
from ..params import CleanupParams
from ..pipeline import Segmentation
from .base import _check_pairs, _learned_segmentation
from .features import _resize, _working_shape

__all__ = ["KMeansBaseline", "MeanShiftBaseline"]


def _gabor_bank(sigmas, n_orientations=4):
    return {s: [gabor_kernel(1.0 / (3.0 * s), theta=np.pi * k / n_orientations,
                             sigma_x=s, sigma_y=s) for k in range(n_orientations)]
            for s in sigmas}


def _kmeans_features(image: np.ndarray, scale: float, sigmas) -> np.ndarray:
    """(M', N', 3 + 2 + len(sigmas)) colour, position and Gabor magnitude features."""
    image = as_float_image(image)
    shape = _working_shape(image.shape, scale)
    small = _resize(image, shape)
    rgb = small if small.ndim == 3 else np.repeat(small[..., None], 3, axis=-1)
    gray = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    rows, cols = np.meshgrid(np.linspace(0, 1, shape[0]), np.linspace(0, 1, shape[1]),
                             indexing="ij")
    parts = [rgb[..., k] for k in range(3)] + [rows, cols]
    centred = gray - gray.mean()
    for sigma, kernels in _gabor_bank(tuple(sigmas)).items():
        # Magnitude of the complex response, averaged over orientations.
        parts.append(np.mean([np.abs(fftconvolve(centred, k, mode="same")) for k in kernels],
                             axis=0))
    return np.stack(parts, axis=-1).astype(np.float32)


class KMeansBaseline:
    """Unsupervised baseline: k-means clusters of pixels, matched to classes by Dice.

    Features per pixel (at `scale`): RGB, row and column (0..1), and Gabor magnitudes
    at sigmas 1, 3, 5 (working-scale pixels), z-scored with the training sample's mean
    and standard deviation. :meth:`fit` clusters a pixel sample of the training images
    (``MiniBatchKMeans``, K = `n_clusters`) and then matches clusters to classes on the
    same training images: the Hungarian method on the pooled Dice of each (cluster,
    class) pair gives each class its own cluster (without replacement); with K > 3
    the clusters left over go to the class they overlap most. :meth:`segment` then
    needs no ground truth, so Compare can run it like a preset.

    ``segment(image, truth=mask)`` instead matches clusters on that image's own mask
    (an oracle: the ECSE 415 report's way of scoring k-means, an upper bound).

    Parameters
    ----------
    n_clusters : int, 3..5
    scale : float
        Working scale (features and clustering at ``scale``, labels upsampled).
    sigmas : tuple of float
    samples_per_image : int
    """

    kind = "KMeansBaseline"

    def __init__(self, n_clusters: int = 4, *, scale: float = 0.25, sigmas=(1.0, 3.0, 5.0),
                 samples_per_image: int = 500):
        if not 3 <= n_clusters <= 5:
            raise ValueError(f"`n_clusters` must be between 3 and 5, got {n_clusters!r}")
        if not 0 < scale <= 1:
            raise ValueError(f"`scale` must be in (0, 1], got {scale!r}")
        self.n_clusters = int(n_clusters)
        self.scale = float(scale)
        self.sigmas = tuple(float(s) for s in sigmas)
        self.samples_per_image = int(samples_per_image)
        self.kmeans_ = None
        self.mean_ = self.std_ = None
        self.cluster_to_class_ = None

    def __repr__(self) -> str:
        return f"KMeansBaseline(K={self.n_clusters}, scale={self.scale})"

    def _clusters(self, image) -> np.ndarray:
        features = _kmeans_features(image, self.scale, self.sigmas)
        flat = (features.reshape(-1, features.shape[-1]) - self.mean_) / self.std_
        return self.kmeans_.predict(flat).reshape(features.shape[:2])

    def fit(self, images, masks, *, rng=None, progress=None) -> "KMeansBaseline":
        """Cluster a pixel sample of `images`, then match clusters to classes on `masks`."""
        images, masks = _check_pairs(images, masks)
        rng = np.random.default_rng(rng)
        sample = []
        for k, image in enumerate(images):
            flat = _kmeans_features(image, self.scale, self.sigmas)
            flat = flat.reshape(-1, flat.shape[-1])
            sample.append(flat[rng.choice(len(flat), min(self.samples_per_image, len(flat)),
                                          replace=False)])
            if progress is not None:
                progress(0.5 * (k + 1) / len(images), f"features {k + 1}/{len(images)}")
        sample = np.concatenate(sample)
        self.mean_ = sample.mean(0)
        self.std_ = np.maximum(sample.std(0), 1e-6)
        self.kmeans_ = self._cluster((sample - self.mean_) / self.std_, rng)
        overlap = np.zeros((self.n_clusters, 3))
        for image, mask in zip(images, masks):
            clusters = _upsample_labels(self._clusters(image), np.shape(mask))
            overlap += _overlap(clusters, np.asarray(mask), self.n_clusters)
        self.cluster_to_class_ = _match_clusters(overlap)
        if progress is not None:
            progress(1.0, "fitted")
        return self

    def segment(self, image: np.ndarray, truth: np.ndarray | None = None) -> Segmentation:
        """Classes of `image` from its clusters (matched on `truth` if given)."""
        if self.kmeans_ is None:
            raise ValueError(f"this {type(self).__name__} is not fitted: call fit()")
        image = as_float_image(image)
        clusters = _upsample_labels(self._clusters(image), image.shape[:2])
        mapping = self.cluster_to_class_
        if truth is not None:
            truth = np.asarray(truth)
            if truth.shape != image.shape[:2]:
                raise ValueError(f"`truth` (shape {truth.shape}) must have the shape of "
                                 f"`image` (shape {image.shape[:2]})")
            mapping = _match_clusters(_overlap(clusters, truth, self.n_clusters))
        labels = mapping[clusters].astype(np.uint8)
        proba = np.stack([labels == c for c in range(3)], -1).astype(np.float32)
        return _learned_segmentation(proba, labels, CleanupParams(),
                                     f"{self.kind}/K={self.n_clusters}")

    def _cluster(self, sample: np.ndarray, rng):
        """Fit the clusterer on the z-scored `sample`; it must have ``.predict``."""
        from sklearn.cluster import MiniBatchKMeans

        return MiniBatchKMeans(self.n_clusters, n_init=3,
                               random_state=int(rng.integers(2**31 - 1))).fit(sample)


class MeanShiftBaseline(KMeansBaseline):
    """Unsupervised baseline: mean-shift clusters of a pixel sample, matched by Dice.

    The same features, z-scoring, matching and ``segment(image, truth=None)`` as
    :class:`KMeansBaseline`, but the clusters are the modes mean-shift finds in a
    pixel sample of the training images (scikit-learn's ``MeanShift`` with binned
    seeds), so their number is not chosen: ``n_clusters`` is set by :meth:`fit`.
    With fewer than three modes some class gets no cluster (that is the baseline's
    weakness, not an error); with more, each class first gets its own cluster
    (Hungarian on Dice) and the leftovers go to the class they overlap most.

    Parameters
    ----------
    bandwidth : float, optional
        Kernel bandwidth in z-scored feature units; default: estimated from the
        sample (``sklearn.cluster.estimate_bandwidth`` at `quantile`).
    quantile : float
        Quantile of pairwise distances for the estimated bandwidth (0 < q <= 1).
        When the estimated bandwidth finds fewer modes than the three classes, the
        quantile is halved until it does (down to 0.01; ``quantile_`` records the one
        used): on the pooled VocEd training sample 0.2 and 0.1 give one mode (every
        pixel one class, nucleus Dice 0.05), 0.05 gives six.
    max_clusters : int
        Keep at most this many modes (the most populated); pixels of the others go
        to the nearest kept mode.
    scale, sigmas, samples_per_image
        As :class:`KMeansBaseline` (fewer samples by default: mean-shift is
        quadratic in the sample).
    """

    kind = "MeanShiftBaseline"

    def __init__(self, *, bandwidth: float | None = None, quantile: float = 0.2,
                 max_clusters: int = 8, scale: float = 0.25, sigmas=(1.0, 3.0, 5.0),
                 samples_per_image: int = 50):
        super().__init__(3, scale=scale, sigmas=sigmas, samples_per_image=samples_per_image)
        if bandwidth is not None and not bandwidth > 0:
            raise ValueError(f"`bandwidth` must be > 0 or None, got {bandwidth!r}")
        if not 0 < quantile <= 1:
            raise ValueError(f"`quantile` must be in (0, 1], got {quantile!r}")
        if int(max_clusters) < 1:
            raise ValueError(f"`max_clusters` must be >= 1, got {max_clusters!r}")
        self.bandwidth = None if bandwidth is None else float(bandwidth)
        self.quantile = float(quantile)
        self.max_clusters = int(max_clusters)
        self.n_clusters = None
        self.bandwidth_ = None
        self.quantile_ = None

    def __repr__(self) -> str:
        found = "" if self.n_clusters is None else f", K={self.n_clusters}"
        return f"MeanShiftBaseline(quantile={self.quantile}, scale={self.scale}{found})"

    def _cluster(self, sample: np.ndarray, rng):
        from sklearn.cluster import MeanShift, estimate_bandwidth

        quantile, seed = self.quantile, int(rng.integers(2**31 - 1))
        while True:
            bandwidth = self.bandwidth or estimate_bandwidth(
                sample, quantile=quantile, n_samples=min(len(sample), 2000),
                random_state=seed)
            self.bandwidth_ = float(max(bandwidth, 1e-3))
            with threadpool_limits(2):
                shift = MeanShift(bandwidth=self.bandwidth_, bin_seeding=True,
                                  n_jobs=1).fit(sample)
            # A bandwidth so wide that the classes share a mode separates nothing:
            # estimate a narrower one (a given bandwidth is kept as it is).
            if self.bandwidth or len(shift.cluster_centers_) >= 3 or quantile / 2 < 0.01:
                break
            quantile /= 2
        self.quantile_ = None if self.bandwidth else quantile
        centres = shift.cluster_centers_
        counts = np.bincount(shift.labels_, minlength=len(centres))
        centres = centres[np.argsort(-counts, kind="stable")[:self.max_clusters]]
        self.n_clusters = len(centres)
        return _NearestCentre(centres)


class _NearestCentre:
    """``predict``: index of the nearest of `centres` (Euclidean) for each row."""

    def __init__(self, centres: np.ndarray):
        self.cluster_centers_ = np.asarray(centres, float)

    def predict(self, x: np.ndarray) -> np.ndarray:
        c = self.cluster_centers_
        d = (x * x).sum(1)[:, None] - 2 * x @ c.T + (c * c).sum(1)[None, :]
        return d.argmin(1)


def _upsample_labels(labels: np.ndarray, shape) -> np.ndarray:
    rows = (np.arange(shape[0]) * labels.shape[0] // shape[0])
    cols = (np.arange(shape[1]) * labels.shape[1] // shape[1])
    return labels[rows[:, None], cols[None, :]]


def _overlap(clusters, mask, n_clusters) -> np.ndarray:
    """(K, 3) pixel counts of each cluster in each class."""
    index = clusters.astype(np.int64).ravel() * 3 + mask.astype(np.int64).ravel()
    return np.bincount(index, minlength=n_clusters * 3).reshape(n_clusters, 3).astype(float)


def _match_clusters(overlap: np.ndarray) -> np.ndarray:
    """Cluster → class: Hungarian on Dice (one cluster per class), leftovers by overlap."""
    sizes_cluster = overlap.sum(1, keepdims=True)
    sizes_class = overlap.sum(0, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = np.where(sizes_cluster + sizes_class > 0,
                        2 * overlap / (sizes_cluster + sizes_class), 0.0)
    rows, cols = linear_sum_assignment(dice, maximize=True)
    mapping = overlap.argmax(1)
    mapping[rows] = cols
    return mapping.astype(np.uint8)
