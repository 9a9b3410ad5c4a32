"""The textbook nucleus baseline: Otsu and a distance watershed, with the polarity read
from the image.

The baseline of issue 17 and of the seeds' U-Net study, the yardstick every nucleus
method is compared with (Compare's "Nuclei" section, ``bench_generalise.py``,
``bench_learn.py --nuclei``, ``bench_nuclei.py``):

1. gray (luminance of RGB), inverted when the nuclei are darker than the background;
2. Gaussian blur, σ 2;
3. Otsu's threshold: what is brighter is nucleus;
4. holes filled, objects under 30 px removed (8-connected);
5. distance-transform watershed, seeds ``peak_local_max`` with ``min_distance`` 5 (its
   default 11 × 11 footprint).

Which way round (step 1) is decided from the data: bright objects on a fluorescence
image (:func:`~cellseg_core.imagekind.detect_kind`), dark objects on stained and gray
bright-field images; ``objects="bright"`` or ``"dark"`` overrides the detector. No other
setting adapts to the image: that is what makes it the textbook.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.filters import gaussian, threshold_otsu
from skimage.segmentation import watershed

from .color import gray
from .imagekind import detect_kind
from .instances import label_objects
from .io import as_float_image
from .params import AutoKind, Params
from .pipeline import Segmentation

__all__ = ["TEXTBOOK", "OBJECTS", "baseline_objects", "textbook_segmentation",
           "textbook_nuclei"]

#: The baseline's fixed settings (issue 17): blur σ, smallest object (px), seed spacing.
TEXTBOOK = {"sigma": 2.0, "min_size": 30, "min_distance": 5}
#: Values of `objects`: ``auto`` (from the image kind), ``bright`` or ``dark``.
OBJECTS = ("auto", "bright", "dark")


def baseline_objects(image: np.ndarray, objects: str = "auto") -> str:
    """``"bright"`` or ``"dark"``: which nuclei the baseline looks for on `image`.

    ``auto``: bright on fluorescence (:func:`~cellseg_core.imagekind.detect_kind`),
    dark on stained and gray bright-field images; ``bright`` / ``dark`` are returned
    as given.

    Examples
    --------
    >>> spot = np.zeros((20, 20)); spot[5:9, 5:9] = 1.0
    >>> baseline_objects(spot), baseline_objects(1 - spot), baseline_objects(spot, "dark")
    ('bright', 'dark', 'dark')
    """
    if objects not in OBJECTS:
        raise ValueError(f"`objects` must be one of {', '.join(OBJECTS)}, got {objects!r}")
    if objects != "auto":
        return objects
    return "bright" if detect_kind(image).kind == AutoKind.FLUORESCENCE else "dark"


def textbook_segmentation(image: np.ndarray, objects: str = "auto") -> Segmentation:
    """The textbook baseline (see the module notes) as a :class:`Segmentation`.

    Parameters
    ----------
    image : (M, N[, 3]) ndarray
        Gray or RGB (:func:`~cellseg_core.io.as_float_image`).
    objects : {"auto", "bright", "dark"}
        Which nuclei to look for; ``auto`` decides from the image kind.

    Returns
    -------
    Segmentation
        ``nuclei`` numbered 1..n, ``labels`` 2 on them, ``channel`` the gray image
        (inverted for dark objects), ``blurred`` its Gaussian, ``thresholds``
        ``{"t_object": Otsu's}`` on the blurred channel, ``method``
        ``"textbook baseline (bright objects)"`` or ``(dark objects)``.

    Examples
    --------
    >>> img = np.ones((40, 40), np.float32); img[5:15, 5:15] = img[22:34, 20:32] = 0.2
    >>> seg = textbook_segmentation(img)
    >>> int(seg.nuclei.max()), seg.method
    (2, 'textbook baseline (dark objects)')
    """
    image = as_float_image(image, name="`image`")
    polarity = baseline_objects(image, objects)
    channel = gray(image).astype(np.float32, copy=False)
    if polarity == "dark":
        channel = 1.0 - channel
    blurred = gaussian(channel, TEXTBOOK["sigma"])
    t = float(threshold_otsu(blurred)) if np.ptp(blurred) > 0 else float(blurred.flat[0])
    raw = ndi.binary_fill_holes(blurred > t)
    pieces = label_objects(raw, connectivity=2)
    mask = (np.bincount(pieces.ravel()) >= TEXTBOOK["min_size"])[pieces] & raw
    pieces = label_objects(mask, connectivity=2)
    distance = ndi.distance_transform_edt(mask)
    peaks = peak_local_max(distance, min_distance=TEXTBOOK["min_distance"], labels=pieces,
                           exclude_border=False)
    markers = np.zeros(mask.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    nuclei = watershed(-distance, markers, mask=mask).astype(np.int32)
    return Segmentation(labels=(nuclei > 0).view(np.uint8) * np.uint8(2), nuclei=nuclei,
                        channel=channel, blurred=blurred.astype(np.float32),
                        raw=raw.view(np.uint8) * np.uint8(2), thresholds={"t_object": t},
                        params=Params(), method=f"textbook baseline ({polarity} objects)")


def textbook_nuclei(image: np.ndarray, objects: str = "auto") -> np.ndarray:
    """The textbook baseline's nuclei: (M, N) int32 numbered 1..n.

    Examples
    --------
    >>> img = np.zeros((40, 40), np.float32); img[5:15, 5:15] = img[22:34, 20:32] = 0.8
    >>> lab = textbook_nuclei(img)
    >>> int(lab.max()), [int((lab == k).sum()) for k in (1, 2)]  # drawn: 100 and 144 px
    (2, [116, 168])
    """
    return textbook_segmentation(image, objects).nuclei
