"""Object instances: connected components, size filter, watershed split, cells."""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.segmentation import relabel_sequential, watershed

__all__ = ["label_objects", "filter_by_size", "split_touching", "assign_cells",
           "watershed_markers"]


def label_objects(mask: np.ndarray, *, connectivity: int = 1) -> np.ndarray:
    """Connected components of a boolean mask, numbered 1..n (int32).

    `connectivity` 1 joins edge neighbours, 2 also diagonal ones.
    """
    if connectivity not in (1, 2):
        raise ValueError(f"`connectivity` must be 1 or 2, got {connectivity}")
    structure = ndi.generate_binary_structure(2, connectivity)
    labels, _ = ndi.label(np.asarray(mask, bool), structure=structure)
    return labels.astype(np.int32, copy=False)


def filter_by_size(labels: np.ndarray, min_size: int = 0, max_size: int | None = None) -> np.ndarray:
    """Drop objects outside [min_size, max_size] pixels and renumber the rest 1..n.

    Examples
    --------
    >>> import numpy as np
    >>> filter_by_size(np.array([[1, 1, 0, 2, 3, 3, 3]]), min_size=2)
    array([[1, 1, 0, 0, 2, 2, 2]], dtype=int32)
    """
    if min_size < 0:
        raise ValueError(f"`min_size` must be >= 0, got {min_size}")
    labels = np.asarray(labels)
    sizes = np.bincount(labels.ravel())
    keep = sizes >= max(min_size, 1)  # ids absent from `labels` never get a number
    if max_size is not None:
        keep &= sizes <= max_size
    keep[0] = False
    new_ids = np.zeros(sizes.size, np.int32)
    new_ids[keep] = np.arange(1, keep.sum() + 1, dtype=np.int32)
    return new_ids[labels]


def watershed_markers(mask: np.ndarray, *, min_distance: int = 5, footprint: int = 3):
    """Distance transform of `mask` and its peaks, the seeds of a watershed split.

    Returns
    -------
    distance : (M, N) ndarray of float
    peaks : (K, 2) ndarray of int, row and column of each seed
    """
    mask = np.asarray(mask, bool)
    distance = ndi.distance_transform_edt(mask)
    if not mask.any():
        return distance, np.empty((0, 2), int)
    components = label_objects(mask)
    peaks = peak_local_max(distance, min_distance=min_distance,
                           footprint=np.ones((footprint, footprint), bool),
                           labels=components, exclude_border=False)
    # A component whose distance map is flat at its top may get no peak: seed its maximum.
    seeded = np.zeros(components.max() + 1, bool)
    seeded[components[tuple(peaks.T)]] = True
    missing = np.flatnonzero(~seeded[1:]) + 1
    if missing.size:
        extra = ndi.maximum_position(distance, components, missing)
        peaks = np.vstack([peaks, np.asarray(extra, int).reshape(-1, 2)])
    return distance, peaks


def split_touching(mask: np.ndarray, *, min_distance: int = 5, footprint: int = 3) -> np.ndarray:
    """Split touching objects: distance transform → peaks → watershed within the mask.

    Parameters
    ----------
    mask : (M, N) ndarray of bool
    min_distance : int
        Minimum distance between two seeds (`peak_local_max`).
    footprint : int
        Side of the square neighbourhood in which a seed must be the maximum.

    Returns
    -------
    (M, N) ndarray of int32, instances numbered 1..n
    """
    distance, peaks = watershed_markers(mask, min_distance=min_distance, footprint=footprint)
    if peaks.size == 0:
        return np.zeros(np.shape(mask), np.int32)
    markers = np.zeros(distance.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = watershed(-distance, markers, mask=np.asarray(mask, bool))
    return relabel_sequential(labels)[0].astype(np.int32)


def assign_cells(nuclei: np.ndarray, cell_mask: np.ndarray) -> np.ndarray:
    """Give each cell pixel to the nearest nucleus it is connected to.

    A watershed from the nucleus instances over the distance to the nearest nucleus,
    bounded by `cell_mask`: cytoplasm is shared out among the nuclei of its own
    connected region, never across background. Regions without a nucleus stay 0.

    Returns
    -------
    cells : (M, N) ndarray of int32, same ids as `nuclei`
    """
    nuclei = np.asarray(nuclei)
    if not nuclei.any():
        return np.zeros(nuclei.shape, np.int32)
    distance = ndi.distance_transform_edt(nuclei == 0)
    return watershed(distance, nuclei, mask=np.asarray(cell_mask, bool) | (nuclei > 0)
                     ).astype(np.int32)
