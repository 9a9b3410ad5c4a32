"""Supervised segmentation as the ECSE 415 study did it: random forests on gray pixels.

The study (``sources/002``) trains random forests on the gray level of each pixel
(raw intensity) or on the 9×9 window of gray levels around it (patches), an ensemble
of 10 forests each fitted on its own chunk of the training data (split by patient),
the dominant classes downsampled, the forests' predictions averaged, then a majority
filter for spatial coherence; it reports the pixel misclassification rate, multiclass
and nucleus-versus-rest. :class:`StudyForest` is that, with a third representation,
the multiscale features of :mod:`.features` on the gray image (what the pixel
classifier sees, in gray), and a working scale (VocEd images are upsampled about 4×,
so a 9×9 patch at 1/2 scale sees 18×18 full-scale pixels).

:meth:`StudyForest.ensemble_curve` is the training curve an ensemble has: the scores
as forests are added one by one.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from threadpoolctl import threadpool_limits

from ..io import as_float_image
from ..metrics import misclassification_rates, pixel_accuracy, score_labels
from ..morphology import mode_filter
from ..params import CleanupParams
from ..pipeline import Segmentation
from .base import IGNORE, _check_pairs, _learned_segmentation
from .features import FeatureSettings, _downsample_mask, _resize, _working_shape, pixel_features

__all__ = ["FOREST_FEATURES", "patch_features", "StudyForest", "study_scores"]

#: Pixel representations of :class:`StudyForest`.
FOREST_FEATURES = ("raw", "patch", "multiscale")


def patch_features(gray: np.ndarray, size: int = 9) -> np.ndarray:
    """The `size` × `size` window of gray levels around each pixel (edges reflected).

    Parameters
    ----------
    gray : (M, N) ndarray
    size : int
        Odd window side.

    Returns
    -------
    (M, N, size²) ndarray of float32
        Row-major window: feature ``size² // 2`` is the pixel itself.

    Examples
    --------
    >>> f = patch_features(np.arange(16.0).reshape(4, 4), 3)
    >>> f.shape, f[1, 1].tolist()
    ((4, 4, 9), [0.0, 1.0, 2.0, 4.0, 5.0, 6.0, 8.0, 9.0, 10.0])
    """
    gray = np.asarray(gray, np.float32)
    if gray.ndim != 2:
        raise ValueError(f"`gray` must be 2-D, got shape {gray.shape}")
    if int(size) < 1 or int(size) % 2 == 0:
        raise ValueError(f"`size` must be a positive odd integer, got {size!r}")
    half = int(size) // 2
    padded = np.pad(gray, half, mode="reflect" if min(gray.shape) > half else "edge")
    windows = sliding_window_view(padded, (size, size))
    return np.ascontiguousarray(windows.reshape(*gray.shape, size * size))


def _gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    return 0.299 * image[..., 0] + 0.587 * image[..., 1] + 0.114 * image[..., 2]


class StudyForest:
    """The study's ensemble of random forests on gray pixels or patches.

    Parameters
    ----------
    features : {'raw', 'patch', 'multiscale'}
        The gray level alone; the `patch_size` × `patch_size` window of gray levels;
        or multiscale intensity, edge and texture features of the gray image
        (:func:`~cellseg_core.learn.pixel_features`, sigmas 1–8).
    patch_size : int
        Window side of ``'patch'`` (the study: 9).
    scale : float
        Working scale (0 < scale <= 1); labels are upsampled back (nearest).
    n_forests : int
        Forests in the ensemble (the study: 10), each fitted on its own chunk of
        the training images (by group, e.g. patient, when :meth:`fit` gets groups).
    n_estimators : int
        Trees per forest.
    samples_per_class : int
        Pixels kept per class and image: the dominant classes are downsampled to
        balance the training set.
    mode_size : int
        Window of the majority filter after prediction (full-scale pixels, odd;
        1 = off).
    max_depth : int or None
        Of each tree.

    Examples
    --------
    >>> img = np.zeros((32, 32), np.float32); img[8:24, 8:24] = 0.6; img[12:20, 12:20] = 0.2
    >>> mask = np.zeros((32, 32), np.uint8); mask[8:24, 8:24] = 1; mask[12:20, 12:20] = 2
    >>> model = StudyForest("patch", patch_size=3, scale=1, n_forests=2, n_estimators=5)
    >>> float((model.fit([img, img], [mask, mask], rng=0).segment(img).labels == mask).mean()) > 0.95
    True
    """

    kind = "StudyForest"

    def __init__(self, features: str = "patch", *, patch_size: int = 9, scale: float = 0.5,
                 n_forests: int = 10, n_estimators: int = 20, samples_per_class: int = 300,
                 mode_size: int = 5, max_depth: int | None = None):
        if features not in FOREST_FEATURES:
            raise ValueError(f"`features` must be one of {list(FOREST_FEATURES)}, "
                             f"got {features!r}")
        if int(patch_size) < 1 or int(patch_size) % 2 == 0:
            raise ValueError(f"`patch_size` must be a positive odd integer, got {patch_size!r}")
        if not 0 < scale <= 1:
            raise ValueError(f"`scale` must be in (0, 1], got {scale!r}")
        for name, v in (("n_forests", n_forests), ("n_estimators", n_estimators),
                        ("samples_per_class", samples_per_class)):
            if int(v) < 1:
                raise ValueError(f"`{name}` must be >= 1, got {v!r}")
        if int(mode_size) < 1 or int(mode_size) % 2 == 0:
            raise ValueError(f"`mode_size` must be a positive odd integer, got {mode_size!r}")
        self.features = features
        self.patch_size = int(patch_size)
        self.scale = float(scale)
        self.n_forests = int(n_forests)
        self.n_estimators = int(n_estimators)
        self.samples_per_class = int(samples_per_class)
        self.mode_size = int(mode_size)
        self.max_depth = max_depth
        self.forests_ = []
        self.fit_seconds_ = None

    def __repr__(self) -> str:
        state = f"{len(self.forests_)} forests" if self.forests_ else "not fitted"
        return (f"StudyForest({self.features}, scale={self.scale}, "
                f"mode_size={self.mode_size}, {state})")

    # --- features ----------------------------------------------------------------------
    def pixel_features(self, image: np.ndarray) -> np.ndarray:
        """(M', N', F) features of `image` at the working scale."""
        image = as_float_image(image)
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
            raise ValueError(f"`image` must be (M, N) or (M, N, 3), got shape {image.shape}")
        if self.features == "multiscale":
            return pixel_features(image, FeatureSettings(channels=("gray",), scale=self.scale,
                                                         sigma_max=8.0))
        gray = _resize(_gray(image).astype(np.float32), _working_shape(image.shape, self.scale))
        if self.features == "raw":
            return gray[..., None].astype(np.float32)
        return patch_features(gray, self.patch_size)

    def _balanced(self, classes: np.ndarray, rng) -> np.ndarray:
        takes = []
        for cls in np.unique(classes):
            if cls == IGNORE:
                continue
            where = np.flatnonzero(classes == cls)
            takes.append(rng.choice(where, min(self.samples_per_class, where.size),
                                    replace=False))
        return np.concatenate(takes) if takes else np.zeros(0, np.int64)

    # --- fitting -----------------------------------------------------------------------
    def fit(self, images, masks, *, groups=None, rng=None, progress=None) -> "StudyForest":
        """Fit `n_forests` forests, each on the images of its own chunk.

        Parameters
        ----------
        images, masks : sequences
            Images and class masks (0/1/2; :data:`~cellseg_core.learn.IGNORE` unlabelled).
        groups : sequence, optional
            A group (e.g. patient) per image: a group's images all go to the same
            chunk, as the study split its data by patient. Default: each image its
            own group. Chunks are filled in the order groups first appear.
        rng : int or Generator, optional
        progress : callable, optional
            ``progress(fraction, message)``.
        """
        from sklearn.ensemble import RandomForestClassifier

        start = time.perf_counter()
        images, masks = _check_pairs(images, masks)
        rng = np.random.default_rng(rng)
        groups = list(range(len(images))) if groups is None else list(groups)
        if len(groups) != len(images):
            raise ValueError(f"`groups` ({len(groups)}) must have one entry per image "
                             f"({len(images)})")
        order = list(dict.fromkeys(groups))
        n_chunks = min(self.n_forests, len(order))
        chunk_of = {g: i * n_chunks // len(order) for i, g in enumerate(order)}
        xs = [[] for _ in range(n_chunks)]
        ys = [[] for _ in range(n_chunks)]
        for k, (image, mask, group) in enumerate(zip(images, masks, groups)):
            f = self.pixel_features(image)
            classes = _downsample_mask(np.asarray(mask), f.shape[:2]).ravel()
            take = self._balanced(classes, rng)
            xs[chunk_of[group]].append(f.reshape(-1, f.shape[-1])[take])
            ys[chunk_of[group]].append(classes[take].astype(np.uint8))
            if progress is not None:
                progress(0.5 * (k + 1) / len(images), f"features {k + 1}/{len(images)}")
        y_all = np.concatenate([np.concatenate(y) for y in ys])
        if np.unique(y_all).size < 2:
            raise ValueError("`masks` hold a single class: a classifier needs at least two")
        forests = []
        for c in range(n_chunks):
            forest = RandomForestClassifier(
                self.n_estimators, max_depth=self.max_depth, max_features="sqrt",
                min_samples_leaf=2, n_jobs=1, random_state=int(rng.integers(2**31 - 1)))
            with threadpool_limits(1):
                forests.append(forest.fit(np.concatenate(xs[c]), np.concatenate(ys[c])))
            if progress is not None:
                progress(0.5 + 0.5 * (c + 1) / n_chunks, f"forest {c + 1}/{n_chunks}")
        self.forests_ = forests
        self.fit_seconds_ = time.perf_counter() - start
        return self

    # --- prediction --------------------------------------------------------------------
    def _check_fitted(self):
        if not self.forests_:
            raise ValueError("this StudyForest is not fitted: call fit()")

    def forest_probabilities(self, image: np.ndarray) -> np.ndarray:
        """(n_forests, M', N', 3) class probabilities of each forest, working scale."""
        self._check_fitted()
        f = self.pixel_features(image)
        flat = f.reshape(-1, f.shape[-1])
        out = np.zeros((len(self.forests_), flat.shape[0], 3), np.float32)
        with threadpool_limits(1):
            for i, forest in enumerate(self.forests_):
                out[i][:, forest.classes_.astype(int)] = forest.predict_proba(flat)
        return out.reshape(len(self.forests_), *f.shape[:2], 3)

    def _labels(self, proba_small: np.ndarray, shape) -> np.ndarray:
        """Argmax, nearest-neighbour upsampling to `shape`, majority filter."""
        small = proba_small.argmax(-1).astype(np.uint8)
        rows = (np.arange(shape[0]) * small.shape[0] // shape[0])
        cols = (np.arange(shape[1]) * small.shape[1] // shape[1])
        return mode_filter(small[rows[:, None], cols[None, :]], self.mode_size)

    def predict_proba(self, image: np.ndarray) -> np.ndarray:
        """(M, N, 3) mean of the forests' probabilities at full scale."""
        image = as_float_image(image)
        return _resize(self.forest_probabilities(image).mean(0), image.shape[:2])

    def segment(self, image: np.ndarray) -> Segmentation:
        """The ensemble's labels: mean probabilities, argmax, majority filter (no other
        clean-up). ``raw`` holds the labels before the filter."""
        image = as_float_image(image)
        small = self.forest_probabilities(image).mean(0)
        labels = self._labels(small, image.shape[:2])
        proba = _resize(small, image.shape[:2])
        seg = _learned_segmentation(proba, labels, CleanupParams(),
                                    f"{self.kind}/{self.features}")
        return seg

    def ensemble_curve(self, images, masks) -> pd.DataFrame:
        """Scores as the forests are added: the ensemble's training curve.

        Returns
        -------
        DataFrame
            One row per ensemble size 1 .. n_forests: ``forests, pixel_accuracy,
            misclassification, nucleus_misclassification`` (pooled over the images).
        """
        images, masks = _check_pairs(images, masks)
        self._check_fitted()
        n = len(self.forests_)
        wrong, nucleus_wrong, total = np.zeros(n), np.zeros(n), 0
        for image, mask in zip(images, masks):
            mask = np.asarray(mask)
            cumulative = np.cumsum(self.forest_probabilities(image), axis=0)
            for m in range(n):
                rates = misclassification_rates(self._labels(cumulative[m], mask.shape), mask)
                wrong[m] += rates["misclassification"] * mask.size
                nucleus_wrong[m] += rates["nucleus_misclassification"] * mask.size
            total += mask.size
        return pd.DataFrame({"forests": np.arange(1, n + 1),
                             "pixel_accuracy": 1 - wrong / total,
                             "misclassification": wrong / total,
                             "nucleus_misclassification": nucleus_wrong / total})


def study_scores(model, images, masks, ids=None) -> pd.DataFrame:
    """Per image: the study's misclassification rates and pixel accuracy of
    ``model.segment``, plus the course's Dice (one row per image)."""
    images, masks = _check_pairs(images, masks)
    ids = [f"{i:03d}" for i in range(len(images))] if ids is None else list(ids)
    rows = []
    for id, image, mask in zip(ids, images, masks):
        labels = model.segment(image).labels
        scores = score_labels(labels, mask)
        rows.append({"id": id, "pixel_accuracy": pixel_accuracy(labels, mask),
                     **misclassification_rates(labels, mask),
                     "mean_dice": scores["mean_dice"], "dice_nucleus": scores["dice_nucleus"]})
    return pd.DataFrame(rows)

