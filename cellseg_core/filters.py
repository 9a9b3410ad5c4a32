"""Smoothing of one channel before thresholding."""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .params import BlurKind

__all__ = ["blur"]


def blur(channel: np.ndarray, kind: BlurKind | str = BlurKind.NONE, *,
         sigma: float = 1.0, size: int = 3) -> np.ndarray:
    """Smooth a 2-D channel.

    Parameters
    ----------
    channel : (M, N) ndarray of float
    kind : {'none', 'gaussian', 'median', 'mean'}
    sigma : float
        Standard deviation of the gaussian, in pixels (0 returns the input).
    size : int
        Side of the square window of the median and mean filters (1 returns the input).

    Returns
    -------
    (M, N) ndarray of the input's float dtype; the input itself when nothing is done.

    Examples
    --------
    >>> import numpy as np
    >>> blur(np.eye(3, dtype=np.float32), "mean", size=3)[1, 1].round(3)
    np.float32(0.333)
    """
    try:
        kind = BlurKind(kind)
    except ValueError:
        raise ValueError(
            f"`kind` must be one of {[k.value for k in BlurKind]}, got {kind!r}") from None
    if sigma < 0:
        raise ValueError(f"`sigma` must be >= 0, got {sigma}")
    if size < 1:
        raise ValueError(f"`size` must be >= 1, got {size}")
    if kind == BlurKind.GAUSSIAN and sigma > 0:
        return ndi.gaussian_filter(channel, sigma, mode="nearest")
    if kind == BlurKind.MEDIAN and size > 1:
        return ndi.median_filter(channel, size=size, mode="nearest")
    if kind == BlurKind.MEAN and size > 1:
        return ndi.uniform_filter(channel, size=size, mode="nearest")
    return channel
