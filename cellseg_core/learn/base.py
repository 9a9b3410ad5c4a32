"""What the learned models share: their default clean-up, the unlabelled-pixel value, the
check of training pairs, the Segmentation they return, and uncertainty maps."""
from __future__ import annotations

import numpy as np

from ..instances import label_objects
from ..morphology import clean_labels
from ..params import CleanupParams, Params
from ..pipeline import Segmentation

__all__ = ["IGNORE", "DEFAULT_CLEANUP", "uncertainty"]

#: Mask value of unlabelled pixels (painted strokes): never sampled by
#: :meth:`PixelClassifier.fit`.
IGNORE = 255

#: Clean-up applied to a classifier's labels unless told otherwise (measured on the
#: VocEd training split: filling holes and dropping crumbs adds about 0.005 Dice).
DEFAULT_CLEANUP = CleanupParams(min_nucleus_size=30, min_cytoplasm_size=100, fill_holes=True)


def _check_pairs(images, masks):
    images, masks = list(images), list(masks)
    if len(images) != len(masks):
        raise ValueError(f"`images` ({len(images)}) and `masks` ({len(masks)}) must have "
                         "the same length")
    if not images:
        raise ValueError("`images` is empty: nothing to train on")
    for k, (image, mask) in enumerate(zip(images, masks)):
        if np.shape(mask) != np.shape(image)[:2]:
            raise ValueError(f"`masks[{k}]` (shape {np.shape(mask)}) must have the shape of "
                             f"`images[{k}]` (shape {np.shape(image)[:2]})")
    return images, masks


def _learned_segmentation(probabilities, labels_raw, cleanup, method: str) -> Segmentation:
    """A model's Segmentation: `labels_raw` cleaned up, the nucleus probability as the
    channel, and `method` (the model's kind) recorded."""
    labels = clean_labels(labels_raw, cleanup)
    nucleus_p = probabilities[..., 2].astype(np.float32)
    return Segmentation(labels=labels,
                        nuclei=label_objects(labels == 2, connectivity=cleanup.connectivity // 4),
                        channel=nucleus_p, blurred=nucleus_p, raw=labels_raw,
                        thresholds={}, params=Params(cleanup=cleanup), method=method)


def uncertainty(probabilities: np.ndarray) -> np.ndarray:
    """``1 - max probability`` per pixel: where a classifier hesitates (paint there next).

    Parameters
    ----------
    probabilities : (M, N, C) ndarray
        Class probabilities, e.g. :meth:`PixelClassifier.predict_proba`.

    Returns
    -------
    (M, N) ndarray of float32
        0 (sure) to ``1 - 1/C`` (all classes equally likely).

    Examples
    --------
    >>> uncertainty(np.array([[[1.0, 0, 0], [0.5, 0.25, 0.25]]])).round(2).tolist()
    [[0.0, 0.5]]
    """
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 3:
        raise ValueError(f"`probabilities` must be (M, N, C), got shape {probabilities.shape}")
    return (1.0 - probabilities.max(-1)).astype(np.float32)
