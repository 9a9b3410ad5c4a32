"""Clean-up of class labels: opening, closing, small pieces, holes in nuclei."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import closing as _sk_closing
from skimage.morphology import disk
from skimage.morphology import opening as _sk_opening

from .params import CleanupParams, CleanupScheme, Mode

__all__ = ["small_objects", "remove_small_objects", "fill_holes", "open_close", "clean_labels",
           "mode_filter"]


@lru_cache(maxsize=16)
def _disk(radius: int) -> np.ndarray:
    return disk(radius).astype(bool)


def _structure(connectivity: int) -> np.ndarray:
    """The labelling structure of a 4- or 8-connectivity."""
    if connectivity not in (4, 8):
        raise ValueError(f"`connectivity` must be 4 or 8, got {connectivity!r}")
    return ndi.generate_binary_structure(2, 1 if connectivity == 4 else 2)


def small_objects(mask: np.ndarray, min_size: int, connectivity: int = 4) -> np.ndarray:
    """Pixels of `mask` in pieces of fewer than `min_size` pixels.

    `connectivity` 4: pixels sharing an edge are one piece; 8: diagonal neighbours too.
    One labelling and one `bincount`, however many pieces there are.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.array([[1, 1, 0, 1]], bool)
    >>> small_objects(m, 2).astype(int)
    array([[0, 0, 0, 1]])
    >>> diagonal = np.eye(2, dtype=bool)
    >>> int(small_objects(diagonal, 2).sum()), int(small_objects(diagonal, 2, connectivity=8).sum())
    (2, 0)
    """
    structure = _structure(connectivity)
    if min_size <= 1 or not mask.any():
        return np.zeros(mask.shape, bool)
    # int64 labels: bincount and take work on intp, so this saves two casts of the image.
    pieces, _ = ndi.label(mask, structure=structure, output=np.int64)
    sizes = np.bincount(pieces.ravel())
    too_small = sizes < min_size
    too_small[0] = False
    return np.take(too_small, pieces)


def remove_small_objects(mask: np.ndarray, min_size: int, connectivity: int = 4) -> np.ndarray:
    """A copy of boolean `mask` without its pieces smaller than `min_size` pixels."""
    if min_size < 0:
        raise ValueError(f"`min_size` must be >= 0, got {min_size}")
    return mask & ~small_objects(mask, min_size, connectivity)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """`mask` with its holes filled: background pieces that do not reach the border.

    Same result as `scipy.ndimage.binary_fill_holes` (4-connected background), but one
    labelling instead of an iterated dilation: about 3× faster on a 2048² mask.

    Examples
    --------
    >>> import numpy as np
    >>> ring = np.pad(np.pad([[0]], 1, constant_values=1), 1).astype(bool)
    >>> fill_holes(ring).astype(int)[2]
    array([0, 1, 1, 1, 0])
    """
    mask = np.asarray(mask, bool)
    background, n = ndi.label(~mask)
    if n == 0:
        return mask.copy()
    edges = np.concatenate([background[0], background[-1], background[:, 0], background[:, -1]])
    outside = np.zeros(n + 1, bool)
    outside[edges] = True
    outside[0] = True
    return mask | ~outside[background]


def open_close(mask: np.ndarray, opening_radius: int = 0, closing_radius: int = 0) -> np.ndarray:
    """Binary opening then closing of `mask` with disks of the given radii (0 skips)."""
    if opening_radius > 0:
        # Pad likewise: the image border is not an edge of the object (as in skimage).
        pad = opening_radius
        padded = np.pad(mask, pad, mode="edge")
        mask = ndi.binary_opening(padded, _disk(opening_radius))[pad:-pad, pad:-pad]
    if closing_radius > 0:
        # Pad so that closing does not erode pieces touching the border.
        pad = closing_radius
        padded = np.pad(mask, pad, mode="edge")
        mask = ndi.binary_closing(padded, _disk(closing_radius))[pad:-pad, pad:-pad]
    return mask


def clean_labels(labels: np.ndarray, params: CleanupParams | None = None, *,
                 mode: Mode | str = Mode.CYTOLOGY) -> np.ndarray:
    """Apply the clean-up steps of `params` to class labels (0/1/2).

    With ``params.scheme == "nested"`` (the default) the classes are treated as
    nested masks: the cell (cytoplasm or nucleus) and the nucleus inside it.

    1. opening, then closing, of the cell mask and of the nucleus mask;
    2. nucleus pieces smaller than ``min_nucleus_size`` become cytoplasm;
    3. cytoplasm pieces smaller than ``min_cytoplasm_size`` become background;
    4. holes inside nuclei become nucleus (``fill_holes``).

    In fluorescence mode there is no cytoplasm: the cell is the nucleus, so removed
    pieces become background and the labels stay 0/2.

    With ``params.scheme == "course"`` each class is cleaned as the course's code does
    (see :func:`_clean_labels_course`): removed nucleus pieces become background, not
    cytoplasm.

    Parameters
    ----------
    labels : (M, N) ndarray of uint8
    params : CleanupParams
    mode : {'cytology', 'fluorescence'}

    Returns
    -------
    (M, N) ndarray of uint8, a new array (the input is not modified).
    """
    params = params or CleanupParams()
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"`labels` must be 2-D, got shape {labels.shape}")
    if CleanupScheme(params.scheme) == CleanupScheme.COURSE:
        return _clean_labels_course(labels, params, Mode(mode))
    nucleus = labels == 2
    cell = labels > 0
    conn = params.connectivity
    if params.opening_radius or params.closing_radius:
        cell = open_close(cell, params.opening_radius, params.closing_radius)
        nucleus = open_close(nucleus, params.opening_radius, params.closing_radius)
        cell |= nucleus
    if params.min_nucleus_size > 1:
        nucleus &= ~small_objects(nucleus, params.min_nucleus_size, conn)
    if params.min_cytoplasm_size > 1:
        cell &= ~small_objects(cell & ~nucleus, params.min_cytoplasm_size, conn)
    if params.fill_holes and nucleus.any():
        nucleus = fill_holes(nucleus)
        cell |= nucleus
    if Mode(mode) == Mode.FLUORESCENCE:
        cell = nucleus
    return cell.view(np.uint8) + nucleus.view(np.uint8)


def _course_open_close(labels: np.ndarray, opening_radius: int, closing_radius: int):
    """The course's Lab 03 ``full_pipeline`` clean-up: for the cytoplasm, then the
    nucleus, the class mask is opened and closed (scikit-image's grey morphology,
    borders reflected), its old pixels cleared and the new mask written over the
    labels (so the nucleus, done second, wins where both claim a pixel)."""
    pred = labels.astype(np.uint8, copy=True)
    for cls in (1, 2):
        mask = pred == cls
        if opening_radius > 0:
            mask = _sk_opening(mask, _disk(opening_radius))
        if closing_radius > 0:
            mask = _sk_closing(mask, _disk(closing_radius))
        pred[pred == cls] = 0
        pred[mask] = cls
    return pred


def _clean_labels_course(labels: np.ndarray, params: CleanupParams, mode: Mode) -> np.ndarray:
    """`clean_labels` as the course's code (Lab 03 then Lab 03-v2 ``segment_morph``).

    1. opening / closing per class (:func:`_course_open_close`);
    2. nucleus pieces under ``min_nucleus_size`` removed (they become background),
       then holes in the nuclei filled;
    3. cytoplasm pieces under ``min_cytoplasm_size`` removed, measured on the
       cytoplasm as thresholded (they become background);
    4. cytoplasm written, then the nucleus over it.
    """
    if params.opening_radius or params.closing_radius:
        labels = _course_open_close(labels, params.opening_radius, params.closing_radius)
    nucleus = labels == 2
    cytoplasm = labels == 1
    conn = params.connectivity
    if params.min_nucleus_size > 1:
        nucleus &= ~small_objects(nucleus, params.min_nucleus_size, conn)
    if params.fill_holes and nucleus.any():
        nucleus = fill_holes(nucleus)
    if params.min_cytoplasm_size > 1:
        cytoplasm &= ~small_objects(cytoplasm, params.min_cytoplasm_size, conn)
    if mode == Mode.FLUORESCENCE:
        cytoplasm = np.zeros_like(cytoplasm)
    out = cytoplasm.view(np.uint8).copy()
    out[nucleus] = 2
    return out


def mode_filter(labels: np.ndarray, size: int = 5) -> np.ndarray:
    """Majority (mode) filter: each pixel takes the most frequent class in the
    `size` × `size` window around it (edges repeated); a tie keeps the pixel's own
    class when it is among the most frequent, else the lowest such class.

    The ECSE 415 study's post-processing of a pixel classifier's labels.

    Parameters
    ----------
    labels : (M, N) ndarray of int
        Class labels (>= 0; a few classes: one counting pass per class).
    size : int
        Odd window side; 1 returns a copy.

    Returns
    -------
    (M, N) ndarray of the dtype of `labels` (a new array).

    Examples
    --------
    >>> mode_filter(np.array([[0, 0, 0], [0, 2, 0], [1, 1, 1]]), 3).tolist()
    [[0, 0, 0], [0, 0, 0], [1, 1, 1]]
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"`labels` must be 2-D, got shape {labels.shape}")
    if int(size) < 1 or int(size) % 2 == 0:
        raise ValueError(f"`size` must be a positive odd integer, got {size!r}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"`labels` must hold integers, got dtype {labels.dtype}")
    if size == 1 or labels.size == 0:
        return labels.copy()
    classes = np.unique(labels)
    counts = np.stack([ndi.uniform_filter((labels == c).astype(np.float32), int(size),
                                          mode="nearest") for c in classes])
    counts = np.round(counts * size * size)  # exact integer counts
    best = counts.max(0)
    own = np.searchsorted(classes, labels)
    keep = np.take_along_axis(counts, own[None], 0)[0] == best
    return np.where(keep, labels, classes[counts.argmax(0)]).astype(labels.dtype)
