"""From RGB to the one channel the thresholds act on."""
from __future__ import annotations

import numpy as np
from skimage.color import hed2rgb, rgb2hed

from .params import Channel

__all__ = ["gray", "hematoxylin", "hematoxylin_only", "optical_density", "extract_channel",
           "brightest_channel", "HEMATOXYLIN_MAX"]

#: Hematoxylin optical density that maps to 1 (the darkest nucleus); measured as the
#: 99.9th percentile of ``rgb2hed`` on Pap/H&E cytology images.
HEMATOXYLIN_MAX = 0.35


def gray(image: np.ndarray) -> np.ndarray:
    """Luminance ``0.299 R + 0.587 G + 0.114 B`` in the image's float precision.

    Computed exactly as the VocEd course does (float32, left to right), so that
    thresholds give the course's labels pixel for pixel. A 2-D image is returned as is.

    Examples
    --------
    >>> import numpy as np
    >>> float(gray(np.ones((1, 1, 3), np.float32))[0, 0])
    1.0
    """
    if image.ndim == 2:
        return image
    # (0.299 R + 0.587 G) + 0.114 B, each step rounded to the image's precision as the
    # course's numpy expression does; in place, to save two full-size temporaries.
    weights = np.asarray([0.299, 0.587, 0.114], dtype=image.dtype)
    out = np.multiply(image[..., 0], weights[0])
    term = np.multiply(image[..., 1], weights[1])
    out += term
    np.multiply(image[..., 2], weights[2], out=term)
    out += term
    return out


def hematoxylin(image: np.ndarray) -> np.ndarray:
    """Hematoxylin stain from H&E colour deconvolution, rescaled so darker = more stain.

    Returns ``1 - clip(H / HEMATOXYLIN_MAX, 0, 1)`` as float32: like gray, nuclei are
    low and background is near 1, so the same thresholds apply.
    """
    if image.ndim == 2:
        raise ValueError("`image`: hematoxylin needs an RGB image, got a single channel")
    density = rgb2hed(image)[..., 0]
    return (1.0 - np.clip(density / HEMATOXYLIN_MAX, 0.0, 1.0)).astype(np.float32)


def hematoxylin_only(image: np.ndarray) -> np.ndarray:
    """Gray of the image as it would look stained with hematoxylin alone.

    Colour deconvolution (``rgb2hed``) splits the optical density into hematoxylin,
    eosin and DAB; the hematoxylin part is turned back into RGB (``hed2rgb``) and
    then into gray. Nuclei stay dark, while eosin-pink or DAB-brown regions become
    as bright as the background: unlike gray, "dark" now means "hematoxylin".

    Parameters
    ----------
    image : (M, N, 3) ndarray of float in [0, 1]

    Returns
    -------
    (M, N) ndarray of float32 in [0, 1]; 1 where there is no hematoxylin.

    Examples
    --------
    >>> import numpy as np
    >>> brown, blue = (0.6, 0.4, 0.2), (0.3, 0.3, 0.6)   # DAB-like, hematoxylin-like
    >>> h = hematoxylin_only(np.array([[brown, blue]]))
    >>> bool(h[0, 0] > h[0, 1])
    True
    """
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"`image`: hematoxylin_only needs an RGB image (M, N, 3), got shape "
                         f"{image.shape}")
    hed = rgb2hed(np.clip(image, 0.0, 1.0))
    hed[..., 1:] = 0.0
    return gray(np.clip(hed2rgb(hed), 0.0, 1.0).astype(np.float32))


def optical_density(channel: np.ndarray, background: float) -> np.ndarray:
    """Optical density ``-ln(channel / background)`` of a bright-field channel, >= 0.

    Light absorbed by stacked layers adds up in optical density, so a dark nucleus
    on a gray cytoplasm stands out by the same amount as on bare glass.

    Parameters
    ----------
    channel : (M, N) ndarray of float
    background : float
        The gray level of bare glass (> 0); brighter pixels get density 0.

    Returns
    -------
    (M, N) ndarray of float32

    Examples
    --------
    >>> import numpy as np
    >>> optical_density(np.array([[0.9, 0.45, 1.0]]), 0.9).round(3)
    array([[0.   , 0.693, 0.   ]], dtype=float32)
    """
    if not background > 0:
        raise ValueError(f"`background` must be > 0, got {background}")
    floor = np.float32(1 / 255)
    ratio = np.maximum(channel.astype(np.float32, copy=False), floor) / np.float32(background)
    return np.maximum(-np.log(ratio), 0.0).astype(np.float32)


_RGB_INDEX = {Channel.RED: 0, Channel.GREEN: 1, Channel.BLUE: 2}


def extract_channel(image: np.ndarray, channel: Channel | str = Channel.GRAY) -> np.ndarray:
    """Return the single channel `channel` of `image` (gray images pass through).

    Parameters
    ----------
    image : (M, N[, 3]) ndarray of float
    channel : {'gray', 'red', 'green', 'blue', 'hematoxylin'}

    Returns
    -------
    (M, N) ndarray of float
    """
    try:
        channel = Channel(channel)
    except ValueError:
        raise ValueError(
            f"`channel` must be one of {[c.value for c in Channel]}, got {channel!r}") from None
    if image.ndim == 2:
        return image
    if channel == Channel.GRAY:
        return gray(image)
    if channel == Channel.HEMATOXYLIN:
        return hematoxylin(image)
    return image[..., _RGB_INDEX[channel]]


def brightest_channel(image: np.ndarray) -> Channel:
    """The RGB channel that carries a fluorescence image's signal.

    An RGB export of a DAPI or Hoechst image holds the nuclei in one channel (blue,
    usually) and little in the others; gray would dilute them (blue weighs 0.114).
    The channel chosen is the one whose bright pixels stand highest above its
    background: the largest 99.5th percentile minus median.

    Parameters
    ----------
    image : (M, N[, 3]) ndarray
        A gray image gives ``Channel.GRAY``.

    Returns
    -------
    Channel
        ``red``, ``green`` or ``blue`` (``gray`` for a gray image).

    Raises
    ------
    ValueError
        When `image` is neither (M, N) nor (M, N, 3).

    Examples
    --------
    >>> import numpy as np
    >>> rgb = np.zeros((10, 10, 3)); rgb[2:5, 2:5, 2] = 0.8; rgb[..., 0] = 0.3
    >>> brightest_channel(rgb).value
    'blue'
    >>> brightest_channel(np.zeros((4, 4))).value
    'gray'
    """
    image = np.asarray(image)
    if image.ndim == 2:
        return Channel.GRAY
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"`image` must be (M, N) or (M, N, 3), got shape {image.shape}")
    flat = image.reshape(-1, 3).astype(np.float32, copy=False)
    high, middle = np.percentile(flat, [99.5, 50], axis=0)
    return (Channel.RED, Channel.GREEN, Channel.BLUE)[int(np.argmax(high - middle))]
