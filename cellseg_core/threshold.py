"""From a channel to classes: manual and automatic thresholds."""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage import filters as skf

from .params import BackgroundMethod, Mode, ThresholdMethod, ThresholdParams

__all__ = ["two_threshold", "object_threshold", "auto_threshold", "background_peak_threshold",
           "apply_threshold", "local_threshold", "AUTO_METHODS", "EXACT_PERCENTILE_WINDOW"]

_GLOBAL = {
    ThresholdMethod.OTSU: skf.threshold_otsu,
    ThresholdMethod.LI: skf.threshold_li,
    ThresholdMethod.YEN: skf.threshold_yen,
    ThresholdMethod.TRIANGLE: skf.threshold_triangle,
    ThresholdMethod.ISODATA: skf.threshold_isodata,
    ThresholdMethod.MEAN: skf.threshold_mean,
    ThresholdMethod.MINIMUM: skf.threshold_minimum,
}

#: The automatic methods, in the order the app's "try all" grid shows them.
AUTO_METHODS = (ThresholdMethod.MULTIOTSU, *_GLOBAL, ThresholdMethod.LOCAL)


def _choice(enum, value, name):
    try:
        return enum(value)
    except ValueError:
        raise ValueError(
            f"`{name}` must be one of {[e.value for e in enum]}, got {value!r}") from None


def two_threshold(channel: np.ndarray, t_nuc: float, t_bg: float) -> np.ndarray:
    """The course's rule: 2 where value < t_nuc, 1 where t_nuc <= value < t_bg, else 0.

    Parameters
    ----------
    channel : (M, N) ndarray of float
    t_nuc, t_bg : float or (M, N) ndarray
        Thresholds, compared in the channel's precision (as the course does in float32).

    Returns
    -------
    labels : (M, N) ndarray of uint8

    Examples
    --------
    >>> import numpy as np
    >>> two_threshold(np.array([[0.2, 0.5, 0.72, 0.9]]), 0.45, 0.85)
    array([[2, 1, 1, 0]], dtype=uint8)
    """
    below_bg = channel < t_bg
    return below_bg.view(np.uint8) + (channel < t_nuc).view(np.uint8) * below_bg


def object_threshold(channel: np.ndarray, t) -> np.ndarray:
    """The fluorescence rule: True where value > t (a float or a per-pixel map)."""
    return channel > t


def auto_threshold(values: np.ndarray, method: ThresholdMethod | str) -> float:
    """One global threshold of `values` by a named scikit-image method.

    A constant input has no threshold to find: its value is returned, so that
    nothing in it passes ``value > t`` and everything passes ``value >= t``.
    """
    method = _choice(ThresholdMethod, method, "method")
    if method not in _GLOBAL:
        valid = [m.value for m in _GLOBAL]
        raise ValueError(f"`method` must be one of {valid}, got {method.value!r}")
    values = np.asarray(values)
    if values.size == 0:
        raise ValueError("`values` is empty: no threshold to compute")
    low, high = values.min(), values.max()
    if low == high:
        return float(low)
    try:
        return float(_GLOBAL[method](values))
    except RuntimeError:
        # threshold_minimum finds no two maxima in some histograms: fall back to Otsu.
        return float(skf.threshold_otsu(values))


def background_peak_threshold(channel: np.ndarray, *, n_std: float = 6.0) -> float:
    """Cell/background threshold of a bright-field image from its background peak.

    The background is the brightest large mode of the histogram; its spread is
    estimated robustly (1.4826 × median deviation of the pixels above the mode) and
    the threshold lies `n_std` such spreads (at least one grey level) below the mode.
    """
    counts, edges = np.histogram(channel, bins=256, range=(0.0, 1.0))
    mode = edges[np.argmax(counts)]
    upper = channel[channel >= mode]
    spread = 1.4826 * float(np.median(upper - mode)) + 1 / 255
    return float(np.clip(mode - n_std * spread, 0.0, 1.0))


def _cytology_thresholds(channel, params: ThresholdParams):
    """(t_nuc, t_bg) for an automatic method; t_nuc may be a per-pixel map (local)."""
    method = params.method
    background = BackgroundMethod(params.background)
    if method == ThresholdMethod.MULTIOTSU and background == BackgroundMethod.SAME:
        if np.unique(channel).size < 3:
            t = auto_threshold(channel, ThresholdMethod.OTSU)
            return t, t
        t_nuc, t_bg = skf.threshold_multiotsu(channel, classes=3)
        return float(t_nuc), float(t_bg)
    base = method if method not in (ThresholdMethod.LOCAL, ThresholdMethod.PERCENTILE,
                                    ThresholdMethod.MULTIOTSU) else ThresholdMethod.OTSU
    if background == BackgroundMethod.PEAK:
        t_bg = background_peak_threshold(channel)
    elif background == BackgroundMethod.MANUAL:
        t_bg = params.t_bg
    else:
        t_bg = auto_threshold(channel, base)
    if method in (ThresholdMethod.LOCAL, ThresholdMethod.PERCENTILE):
        local = local_threshold(channel, params.block_size, params.offset,
                                statistic="mean" if method == ThresholdMethod.LOCAL
                                else "percentile", percentile=params.percentile)
        return np.minimum(local, t_bg).astype(channel.dtype), t_bg
    foreground = channel[channel < t_bg]
    # multiotsu with a separate background threshold splits the cell in two (Otsu).
    t_nuc = auto_threshold(foreground, base) if foreground.size else t_bg
    return t_nuc, t_bg


#: Above this window side the percentile filter runs on a grid subsampled by
#: ``block_size // EXACT_PERCENTILE_WINDOW`` (a rank filter costs the window's area per
#: pixel; the background it estimates varies slowly).
EXACT_PERCENTILE_WINDOW = 31


def local_threshold(channel: np.ndarray, block_size: int, offset: float = 0.0, *,
                    statistic: str = "mean", percentile: float = 50.0) -> np.ndarray:
    """A per-pixel threshold from each pixel's neighbourhood, minus `offset`.

    Parameters
    ----------
    channel : (M, N) ndarray of float
    block_size : int
        Side of the (odd) neighbourhood, in pixels.
    offset : float
        Subtracted from the local statistic (scikit-image's convention: a negative
        offset asks the pixel to be that much *above* its neighbourhood).
    statistic : {'mean', 'percentile'}
        ``mean``: scikit-image's ``threshold_local`` (Gaussian-weighted mean).
        ``percentile``: the `percentile`-th percentile of the square window
        (``scipy.ndimage.percentile_filter``, the fluorescence tutorial's local
        estimate), exact up to a window of :data:`EXACT_PERCENTILE_WINDOW` pixels,
        on a subsampled grid above.
    percentile : float
        In [0, 100], for ``statistic="percentile"``.

    Returns
    -------
    (M, N) ndarray of float

    Examples
    --------
    >>> img = np.zeros((5, 5)); img[2, 2] = 1.0
    >>> t = local_threshold(img, 3, -0.5, statistic="percentile", percentile=50)
    >>> int((img > t).sum()), float(t[2, 2])
    (1, 0.5)
    """
    if statistic == "mean":
        return skf.threshold_local(channel, block_size, offset=offset)
    if statistic != "percentile":
        raise ValueError(f"`statistic` must be one of ['mean', 'percentile'], got {statistic!r}")
    if not 0 <= percentile <= 100:
        raise ValueError(f"`percentile` must be between 0 and 100, got {percentile!r}")
    channel = np.asarray(channel)
    step = max(1, block_size // EXACT_PERCENTILE_WINDOW)
    if step == 1:
        local = ndi.percentile_filter(channel, percentile, size=block_size, mode="reflect")
    else:
        small = ndi.percentile_filter(channel[::step, ::step], percentile,
                                      size=max(1, block_size // step), mode="reflect")
        rows = np.minimum(np.arange(channel.shape[0]) // step, small.shape[0] - 1)
        cols = np.minimum(np.arange(channel.shape[1]) // step, small.shape[1] - 1)
        local = small[np.ix_(rows, cols)]
    return local - offset


def apply_threshold(channel: np.ndarray, params: ThresholdParams,
                    mode: Mode | str = Mode.CYTOLOGY) -> tuple[np.ndarray, dict]:
    """Classes of a channel and the thresholds used.

    Parameters
    ----------
    channel : (M, N) ndarray of float
    params : ThresholdParams
    mode : {'cytology', 'fluorescence'}
        Cytology gives 0/1/2 with dark = nucleus; fluorescence gives 0/2 with
        bright = nucleus.

    Returns
    -------
    labels : (M, N) ndarray of uint8
    thresholds : dict
        ``{"t_nuc": ..., "t_bg": ...}`` or ``{"t_object": ...}``; NaN for a
        local (per-pixel) threshold.
    """
    mode = _choice(Mode, mode, "mode")
    method = _choice(ThresholdMethod, params.method, "threshold.method")
    if mode == Mode.CYTOLOGY:
        if method == ThresholdMethod.MANUAL:
            t_nuc, t_bg = params.t_nuc, params.t_bg
        else:
            t_nuc, t_bg = _cytology_thresholds(channel, params)
        labels = two_threshold(channel, t_nuc, t_bg)
        shown_nuc = float("nan") if np.ndim(t_nuc) else float(t_nuc)
        return labels, {"t_nuc": shown_nuc, "t_bg": float(t_bg)}
    if method == ThresholdMethod.MANUAL:
        t = params.t_object
    elif method in (ThresholdMethod.LOCAL, ThresholdMethod.PERCENTILE):
        t = local_threshold(channel, params.block_size, params.offset,
                            statistic="mean" if method == ThresholdMethod.LOCAL
                            else "percentile", percentile=params.percentile)
    elif method == ThresholdMethod.MULTIOTSU:
        raise ValueError("`threshold.method` 'multiotsu' gives two thresholds: use it for "
                         "cytology; fluorescence needs one (e.g. 'otsu')")
    else:
        t = auto_threshold(channel, method)
    labels = object_threshold(channel, t).view(np.uint8) * np.uint8(2)
    return labels, {"t_object": float("nan") if np.ndim(t) else float(t)}
