"""Clean-up of class labels: opening, closing, small pieces, holes in nuclei."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import disk

from .params import CleanupParams, Mode

__all__ = ["small_objects", "remove_small_objects", "fill_holes", "open_close", "clean_labels",
           "mode_filter"]


@lru_cache(maxsize=16)
def _disk(radius: int) -> np.ndarray:
    return disk(radius).astype(bool)


def small_objects(mask: np.ndarray, min_size: int) -> np.ndarray:
    """Pixels of `mask` in 4-connected pieces of fewer than `min_size` pixels.

    One labelling and one `bincount`, however many pieces there are.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.array([[1, 1, 0, 1]], bool)
    >>> small_objects(m, 2).astype(int)
    array([[0, 0, 0, 1]])
    """
    if min_size <= 1 or not mask.any():
        return np.zeros(mask.shape, bool)
    # int64 labels: bincount and take work on intp, so this saves two casts of the image.
    pieces, _ = ndi.label(mask, output=np.int64)
    sizes = np.bincount(pieces.ravel())
    too_small = sizes < min_size
    too_small[0] = False
    return np.take(too_small, pieces)


def remove_small_objects(mask: np.ndarray, min_size: int) -> np.ndarray:
    """A copy of boolean `mask` without its pieces smaller than `min_size` pixels."""
    if min_size < 0:
        raise ValueError(f"`min_size` must be >= 0, got {min_size}")
    return mask & ~small_objects(mask, min_size)


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

    The classes are treated as nested masks: the cell (cytoplasm or nucleus) and
    the nucleus inside it.

    1. opening, then closing, of the cell mask and of the nucleus mask;
    2. nucleus pieces smaller than ``min_nucleus_size`` become cytoplasm;
    3. cytoplasm pieces smaller than ``min_cytoplasm_size`` become background;
    4. holes inside nuclei become nucleus (``fill_holes``).

    In fluorescence mode there is no cytoplasm: the cell is the nucleus, so removed
    pieces become background and the labels stay 0/2.

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
    nucleus = labels == 2
    cell = labels > 0
    if params.opening_radius or params.closing_radius:
        cell = open_close(cell, params.opening_radius, params.closing_radius)
        nucleus = open_close(nucleus, params.opening_radius, params.closing_radius)
        cell |= nucleus
    if params.min_nucleus_size > 1:
        nucleus &= ~small_objects(nucleus, params.min_nucleus_size)
    if params.min_cytoplasm_size > 1:
        cell &= ~small_objects(cell & ~nucleus, params.min_cytoplasm_size)
    if params.fill_holes and nucleus.any():
        nucleus = fill_holes(nucleus)
        cell |= nucleus
    if Mode(mode) == Mode.FLUORESCENCE:
        cell = nucleus
    return cell.view(np.uint8) + nucleus.view(np.uint8)


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
