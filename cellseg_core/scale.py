"""How big are the nuclei? A diameter in pixels, from the image or from labels.

:func:`estimate_diameter` reads the typical nucleus diameter off a nucleus channel
(bright = nucleus) without knowing it beforehand: a coarse Otsu mask, then the
largest inscribed circle of each piece (the maximum of its distance transform),
whose median, weighting each piece by its radius, is the typical radius. The
inscribed circle ignores how pieces touch each other (two merged nuclei still have
the radius of one), and the weighting lets a few nuclei outvote many specks of
dust. Measured on the training splits: within ±25 % of the median true equivalent
diameter on 90 % of fluorescence, 68 % of stained-tissue and all gray bright-field
images.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu

__all__ = ["equivalent_diameters", "median_diameter", "estimate_diameter",
           "weighted_median"]


def equivalent_diameters(labels: np.ndarray) -> np.ndarray:
    """Diameter of the disk with each object's area, ``2 sqrt(area / pi)``, in pixels.

    Parameters
    ----------
    labels : (M, N) ndarray of int
        Instances, 0 background; ids need not be consecutive.

    Returns
    -------
    (K,) ndarray of float, one per object present, in id order.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.zeros((10, 10), int); labels[:2, :2] = 1; labels[5:, 5:] = 4
    >>> equivalent_diameters(labels).round(2)
    array([2.26, 5.64])
    """
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iub":
        raise TypeError(f"`labels` must be integers, got dtype {labels.dtype}")
    areas = np.bincount(labels.ravel().astype(np.intp, copy=False))[1:]
    areas = areas[areas > 0]
    return 2.0 * np.sqrt(areas / np.pi)


def median_diameter(labels: np.ndarray) -> float:
    """Median equivalent diameter of the objects in `labels`; NaN when there are none.

    Examples
    --------
    >>> import numpy as np
    >>> median_diameter(np.zeros((3, 3), int))
    nan
    """
    diameters = equivalent_diameters(labels)
    return float(np.median(diameters)) if diameters.size else float("nan")


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The value below which half of the total weight lies (lower weighted median).

    Examples
    --------
    >>> weighted_median(np.array([1.0, 2.0, 10.0]), np.array([1.0, 1.0, 5.0]))
    10.0
    """
    values, weights = np.asarray(values, float), np.asarray(weights, float)
    if values.shape != weights.shape or values.size == 0:
        raise ValueError(f"`values` (shape {values.shape}) and `weights` (shape "
                         f"{weights.shape}) must have the same, non-empty shape")
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


def estimate_diameter(signal: np.ndarray, *, levels: int = 1, smooth: float = 1.0) -> float:
    """Typical nucleus diameter in pixels, read off a nucleus channel.

    Parameters
    ----------
    signal : (M, N) ndarray of float
        Bright where the nuclei are (fluorescence intensity, stain density).
    levels : {1, 2}
        1: the nuclei are the Otsu foreground. 2: the foreground holds cells whose
        darker (here: brighter) part is the nucleus, as in cytology; Otsu is applied
        again within the first foreground.
    smooth : float
        Gaussian sigma (pixels) applied first, against pixel noise.

    Returns
    -------
    float
        Twice the radius-weighted median of the pieces' inscribed radii; NaN when
        the channel is constant or holds no piece.

    Examples
    --------
    >>> import numpy as np
    >>> rr, cc = np.indices((80, 80))
    >>> disks = sum(((rr - r) ** 2 + (cc - c) ** 2 <= 8 ** 2).astype(float)
    ...             for r, c in [(20, 20), (20, 55), (55, 40)])
    >>> round(estimate_diameter(disks))
    16
    """
    signal = np.asarray(signal)
    if signal.ndim != 2:
        raise ValueError(f"`signal` must be 2-D, got shape {signal.shape}")
    if levels not in (1, 2):
        raise ValueError(f"`levels` must be 1 or 2, got {levels!r}")
    if smooth > 0:
        signal = ndi.gaussian_filter(signal.astype(np.float32, copy=False), smooth)
    if signal.size == 0 or signal.min() == signal.max():
        return float("nan")
    t = threshold_otsu(signal)
    if levels == 2:
        inside = signal[signal > t]
        if inside.size and inside.min() < inside.max():
            t = threshold_otsu(inside)
    mask = ndi.binary_opening(signal > t, iterations=2)
    pieces, n = ndi.label(mask)
    if n == 0:
        return float("nan")
    distance = ndi.distance_transform_edt(mask)
    radii = np.asarray(ndi.maximum(distance, pieces, np.arange(1, n + 1)), float)
    return 2.0 * weighted_median(radii, radii)
