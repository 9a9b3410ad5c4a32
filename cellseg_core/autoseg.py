"""Automatic nucleus segmentation: every setting from the kind of image and the nucleus size.

The method, in the order it runs (``d`` is the typical nucleus diameter in pixels,
estimated by :func:`cellseg_core.scale.estimate_diameter` unless given):

1. **Nucleus channel** (:func:`nucleus_signal`), bright where the nuclei are:
   fluorescence intensity; for stained bright-field the image as hematoxylin alone
   would show it (colour deconvolution), inverted; for gray bright-field the
   optical density above the bright glass.
2. **Smoothing** with a gaussian of ``0.1 d``.
3. **Background correction**: a white top-hat whose window (``1.5 d``) is wider than
   a nucleus, so that an uneven background or a cell's cytoplasm is removed while
   nuclei stay.
4. **Foreground**: brighter than 0.75 × Otsu's threshold of the corrected channel
   and than its own neighbourhood (gaussian mean of ``0.5 d``): the neighbourhood
   test keeps dim nuclei next to bright ones and opens the gaps between touching
   nuclei. Pixels on a valley of the channel (the pale line between two touching
   nuclei: scale-normalised Hessian curvature at ``0.1 d`` above 0.15 × Otsu's
   threshold, or at ``0.2 d`` above 0.2 × it, :func:`valleys`) are cut out. Holes
   filled, opened by a disk of ``0.15 d`` (thin rims and strands go), pieces under a
   tenth of a typical nucleus area dropped.
5. **Touching nuclei**: marker-controlled watershed. The landscape is the distance
   to the background (in radii; the valleys cut in step 4 are background here),
   smoothed by ``0.1 d``; markers are its maxima that rise at least 0.15 radius
   above the saddle to any higher one (h-maxima, :func:`deep_maxima`), so a
   neck between two nuclei splits them whatever their distance apart; the
   watershed is compact (a pixel's cost grows by 0.1 per radius from its marker),
   so that a nucleus does not leak round a neighbour. In stained tissue, where
   nuclei crowd, an object larger than 1.5 typical nuclei is split once more on
   its own distance map with a shallower depth (0.07 radius, :func:`resplit_large`).
6. **Outline refinement**: each nucleus keeps the pixels within ``0.3 d`` of it that
   are brighter than 30 % of the way from its surroundings' median to its peak
   (a local half-maximum outline, whatever the nucleus's own brightness).
7. **Contrast check**: a nucleus whose contrast over its surroundings is under half
   the median contrast of the image's nuclei is dropped (folds, debris, pale cells);
   on gray bright-field, under 0.7 of it (folds of squamous cells are common there).
8. **Scale (stained tissue only)**: there the size read off the image is least
   reliable (coarse chromatin breaks a large nucleus into pieces; a spindle-shaped
   nucleus is as wide as its short axis), so steps 2-7 run at 0.8, 1, 1.25, 1.6 and
   2 times the estimate and the result whose nuclei look most like whole nuclei is
   kept (:func:`scale_score`: the area-weighted mean solidity, minus 0.1 × the
   log ratio of their median diameter to the scale). A diameter given by the user
   is used as it is.

The relative constants were chosen on the training splits of dsb2018_fluo,
dsb2018_histo and dsb2018_brightfield (the same for all three, except the
contrast check on gray bright-field and, in stained tissue, the second split and
the scale search: :data:`KIND_RELATIVE`; tried on all three, the search lowered
bright-field and fluorescence F1 or made their reported size less accurate). On
images whose nuclei are wider than about 24 pixels the work is done at a reduced
scale (block mean, integer factor) and the labels are scaled back, for speed; the
scale search of a large image looks at four 256-pixel windows of it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu
from skimage.morphology import h_maxima
from skimage.segmentation import expand_labels, watershed

from .color import gray, hematoxylin_only, optical_density
from .imagekind import KindResult, resolve_kind
from .io import as_float_image
from .measure import region_stats, solidity
from .morphology import fill_holes, open_close
from .params import AutoKind
from .scale import estimate_diameter, median_diameter

__all__ = ["RELATIVE", "KIND_RELATIVE", "DEFAULT_DIAMETER", "AutoNuclei", "describe",
           "nucleus_signal", "relative", "derived_settings", "background_correct",
           "valleys", "deep_maxima", "split_nuclei", "resplit_large", "refine_outlines",
           "drop_low_contrast", "scale_score", "search_windows", "signal_diameter",
           "estimate_nucleus_diameter", "segment_nuclei"]

#: Every size of the method as a multiple of the nucleus diameter ``d``, and the two
#: fractions that are not sizes. Chosen on the training splits (see module docstring).
RELATIVE = {
    "blur_sigma": 0.1,            # smoothing of the channel
    "background_size": 1.5,       # top-hat window side
    "local_sigma": 0.5,           # neighbourhood of the local test
    "opening_radius": 0.15,       # opening of the foreground
    "min_area": 0.1,              # of the area of a disk of diameter d
    "valley_sigma": 0.1,          # scale of the valleys cut between touching nuclei
    "wide_valley_sigma": 0.2,     # and of the wider ones
    "marker_smoothing": 0.1,      # smoothing of the watershed landscape
    "ring": 0.3,                  # width of the surroundings of a nucleus
    "global_fraction": 0.75,      # of Otsu's threshold, for the foreground
    "valley_depth": 0.15,         # of Otsu's threshold, for a valley to be cut
    "wide_valley_depth": 0.2,     # same, for the wider valleys
    "marker_depth": 0.15,         # in radii: least rise of a marker above its saddle
    "compactness": 0.1,           # in radii per radius from the marker
    "outline_fraction": 0.3,      # from surroundings to peak, for the outline
    "min_contrast": 0.5,          # of the median nucleus contrast
    "resplit_area": 0.0,          # in typical nucleus areas; 0: no second split
    "resplit_depth": 0.07,        # in radii, for the second split
    "scales": (1.0,),             # multiples of the estimate tried (step 8)
    "scale_penalty": 0.1,         # per unit |log(found median / scale)| (step 8)
}

#: Constants that differ for one kind of image (chosen on the same training splits):
#: on gray bright-field, folds and edges of squamous cells are as dark as a pale
#: nucleus, so the contrast check is stricter; in stained tissue nuclei crowd, so
#: objects larger than 1.5 typical nuclei are split a second time, and the size
#: estimate is least reliable (coarse chromatin, spindle shapes), so five scales
#: around it are tried.
KIND_RELATIVE = {
    AutoKind.BRIGHTFIELD: {"min_contrast": 0.7},
    AutoKind.STAINED: {"resplit_area": 1.5, "scales": (0.8, 1.0, 1.25, 1.6, 2.0)},
}

#: Diameter used when the image gives no estimate (a blank or constant image).
DEFAULT_DIAMETER = 12.0
#: Smallest and largest diameter the method works with, in pixels.
_DIAMETER_RANGE = (4.0, 1000.0)
#: Above this diameter the image is reduced by an integer factor to about it.
_WORK_DIAMETER = 24.0
#: The scale search (step 8) looks at most at this many pixels of an image.
_SEARCH_PIXELS = 512 * 512
#: ...and measures the solidity of at most this many of the largest objects.
_SCORE_HULLS = 500


@dataclass(frozen=True, eq=False)
class AutoNuclei:
    """What :func:`segment_nuclei` found and every value it resolved.

    Attributes
    ----------
    instances : (M, N) ndarray of int32
        Nuclei numbered 1..n.
    kind : KindResult
        The kind of image (detected, or forced with confidence 1).
    diameter : float
        Nucleus diameter used, in pixels.
    diameter_estimated : bool
        True when `diameter` was read off the image, False when given.
    settings : dict
        Every derived size in pixels (``blur_sigma``, ``background_size``, ...), the
        reduction ``factor``, the foreground threshold ``t_object`` (on `corrected`)
        and ``sizes_tried`` (how many diameters the scale search compared; 1: none).
    signal : (M, N) ndarray of float32
        The nucleus channel (bright = nucleus), before smoothing.
    corrected : (M, N) ndarray of float32
        After smoothing and background correction (at the working scale, resized).
    mask : (M, N) ndarray of bool
        Foreground before splitting, refinement and the contrast check.
    """

    instances: np.ndarray
    kind: KindResult
    diameter: float
    diameter_estimated: bool
    settings: dict = field(default_factory=dict)
    signal: np.ndarray | None = field(default=None, repr=False)
    corrected: np.ndarray | None = field(default=None, repr=False)
    mask: np.ndarray | None = field(default=None, repr=False)


def describe(auto: dict) -> str:
    """One line for display from ``Segmentation.auto``: kind, confidence, diameter.

    Examples
    --------
    >>> describe({"kind": "stained", "confidence": 0.934, "dab": True, "diameter": 17.6,
    ...           "diameter_estimated": True})
    'stained, DAB (0.93) · nuclei ≈ 18 px across (estimated)'
    >>> describe({"kind": "fluorescence", "confidence": 1.0, "diameter": 20,
    ...           "diameter_estimated": False})
    'fluorescence (1.00) · nuclei ≈ 20 px across (given)'
    >>> describe({"kind": "stained", "confidence": 1.0, "diameter": 31.5,
    ...           "diameter_estimated": True, "settings": {"sizes_tried": 5}})
    'stained (1.00) · nuclei ≈ 32 px across (estimated, best of 5 sizes tried)'
    """
    kind = auto["kind"] + (", DAB" if auto.get("dab") else "")
    text = f"{kind} ({auto['confidence']:.2f})"
    if auto.get("diameter") is not None:
        source = "estimated" if auto.get("diameter_estimated") else "given"
        tried = (auto.get("settings") or {}).get("sizes_tried", 1)
        if tried > 1:
            source += f", best of {tried} sizes tried"
        text += f" · nuclei ≈ {auto['diameter']:.0f} px across ({source})"
    return text


# --- channel -------------------------------------------------------------------------------
def nucleus_signal(image: np.ndarray, kind: AutoKind | str) -> np.ndarray:
    """The channel in which nuclei are bright, for a kind of image.

    Parameters
    ----------
    image : (M, N[, 3]) ndarray of float in [0, 1]
    kind : {'fluorescence', 'stained', 'brightfield'}
        ``fluorescence``: the gray intensity. ``stained``: ``1 -``
        :func:`~cellseg_core.color.hematoxylin_only` (gray intensity for a gray
        image). ``brightfield``: the :func:`~cellseg_core.color.optical_density`
        above the glass, whose level is the 90th percentile of gray.

    Returns
    -------
    (M, N) ndarray of float32

    Examples
    --------
    >>> import numpy as np
    >>> img = np.full((2, 2), 0.9, np.float32); img[0, 0] = 0.3
    >>> nucleus_signal(img, "brightfield").round(2)
    array([[1.1, 0. ],
           [0. , 0. ]], dtype=float32)
    """
    kind = _concrete_kind(kind)
    if kind == AutoKind.STAINED and image.ndim == 3:
        return (1.0 - hematoxylin_only(image)).astype(np.float32)
    g = (gray(image) if image.ndim == 3 else image).astype(np.float32, copy=False)
    if kind == AutoKind.FLUORESCENCE:
        return g
    if kind == AutoKind.STAINED:
        return (1.0 - g).astype(np.float32)
    glass = float(np.percentile(g, 90))
    return optical_density(g, glass) if glass > 0 else np.zeros_like(g)


def _concrete_kind(kind) -> AutoKind:
    try:
        kind = AutoKind(kind)
    except ValueError:
        kind = None
    if kind not in (AutoKind.FLUORESCENCE, AutoKind.STAINED, AutoKind.BRIGHTFIELD):
        raise ValueError("`kind` must be one of ['fluorescence', 'stained', 'brightfield'], "
                         f"got {kind!r}")
    return kind


# --- sizes ---------------------------------------------------------------------------------
def relative(kind: AutoKind | str) -> dict:
    """:data:`RELATIVE` with the kind's own constants (:data:`KIND_RELATIVE`) applied.

    Examples
    --------
    >>> relative("brightfield")["min_contrast"], relative("stained")["min_contrast"]
    (0.7, 0.5)
    """
    return {**RELATIVE, **KIND_RELATIVE.get(_concrete_kind(kind), {})}


def signal_diameter(signal: np.ndarray, kind: AutoKind | str) -> float:
    """Nucleus diameter (px) read off a nucleus channel of a kind of image; NaN if none.

    :func:`cellseg_core.scale.estimate_diameter` with two Otsu levels for gray
    bright-field (cells whose darker part is the nucleus), one otherwise.

    Examples
    --------
    >>> import numpy as np
    >>> rr, cc = np.indices((80, 80))
    >>> disks = sum(((rr - r) ** 2 + (cc - c) ** 2 <= 8 ** 2).astype(np.float32)
    ...             for r, c in [(20, 20), (20, 55), (55, 40)])
    >>> round(signal_diameter(disks, "fluorescence"))
    16
    """
    levels = 2 if _concrete_kind(kind) == AutoKind.BRIGHTFIELD else 1
    return float(estimate_diameter(signal, levels=levels))


def estimate_nucleus_diameter(image: np.ndarray,
                              kind: AutoKind | str | KindResult | None = None) -> float:
    """Typical nucleus diameter (px) of an image: the estimate :func:`segment_nuclei` starts from.

    The kind of image is detected unless given (:func:`~cellseg_core.imagekind.resolve_kind`),
    its :func:`nucleus_signal` computed and :func:`signal_diameter` read off it. (On
    stained tissue :func:`segment_nuclei` then tries scales around it: step 8.)

    Returns
    -------
    float
        NaN when the image holds no nucleus-like piece (a blank or constant image).

    Examples
    --------
    >>> import numpy as np
    >>> rr, cc = np.indices((60, 60))
    >>> img = np.full((60, 60), 0.05, np.float32)
    >>> for r, c in [(15, 15), (15, 42), (44, 30)]:
    ...     img[(rr - r) ** 2 + (cc - c) ** 2 <= 36] = 0.8
    >>> round(estimate_nucleus_diameter(img))
    12
    """
    image = as_float_image(image, name="`image`")
    kind_result = resolve_kind(image, kind)
    return signal_diameter(nucleus_signal(image, kind_result.kind), kind_result.kind)


def derived_settings(diameter: float) -> dict:
    """Every size of the method, in pixels, for nuclei `diameter` pixels across.

    Examples
    --------
    >>> s = derived_settings(20)
    >>> s["background_size"], s["opening_radius"], s["valley_sigma"], s["min_area"]
    (31, 3, 2.0, 31)
    """
    if not (np.isfinite(diameter) and diameter > 0):
        raise ValueError(f"`diameter` must be a positive number, got {diameter!r}")
    d = float(diameter)
    r = RELATIVE
    return {
        "blur_sigma": max(0.7, r["blur_sigma"] * d),
        "background_size": int(round(r["background_size"] * d)) | 1,
        "local_sigma": r["local_sigma"] * d,
        "opening_radius": int(round(r["opening_radius"] * d)),
        "min_area": int(round(r["min_area"] * np.pi / 4 * d * d)),
        "valley_sigma": max(0.7, r["valley_sigma"] * d),
        "wide_valley_sigma": max(0.7, r["wide_valley_sigma"] * d),
        "marker_smoothing": r["marker_smoothing"] * d,
        "ring": max(1.0, r["ring"] * d),
    }


# --- steps ---------------------------------------------------------------------------------
def background_correct(signal: np.ndarray, size: int) -> np.ndarray:
    """White top-hat: `signal` minus its grey opening by a `size` × `size` square.

    The opening (a running minimum then maximum, separable and fast) follows the
    background under anything narrower than the window; it is smoothed by a
    running mean of the same size so that the subtraction leaves no blocks.

    Examples
    --------
    >>> import numpy as np
    >>> ramp = np.tile(np.linspace(0, 1, 30, dtype=np.float32), (30, 1))
    >>> spot = ramp.copy(); spot[14:17, 14:17] += 1
    >>> out = background_correct(spot, 9)
    >>> bool(out[15, 15] > 0.9 and out[5, 5] < 0.05)
    True
    """
    if size < 1:
        raise ValueError(f"`size` must be >= 1, got {size}")
    opened = ndi.grey_opening(signal, size=(size, size), mode="nearest")
    background = ndi.uniform_filter(opened, size, mode="nearest")
    return signal - np.minimum(background, signal)


def _label_medians(values: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """Lower median of `values` per label 1..n (NaN where a label has no pixel)."""
    inside = labels > 0
    ids, v = labels[inside], values[inside]
    order = np.lexsort((v, ids))
    ids, v = ids[order], v[order]
    counts = np.bincount(ids, minlength=n + 1)[1:]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    out = np.full(n, np.nan)
    present = counts > 0
    out[present] = v[(starts + (counts - 1) // 2)[present]]
    return out


def valleys(channel: np.ndarray, sigma: float) -> np.ndarray:
    """Valley strength: the larger Hessian eigenvalue of `channel` at `sigma`, times sigma².

    Positive where the channel curves up across a line: the pale seam between two
    bright touching nuclei, as deep (in the channel's units) as the seam's dip.

    Examples
    --------
    >>> import numpy as np
    >>> row = np.array([0, 1, 1, 1, 0.4, 1, 1, 1, 0], np.float32)
    >>> v = valleys(np.tile(row, (9, 1)), 1.0)[4]
    >>> int(v.argmax()), bool(v[4] > 0.1 and v[2] < v[4])
    (4, True)
    """
    if not sigma > 0:
        raise ValueError(f"`sigma` must be > 0, got {sigma!r}")
    channel = np.asarray(channel, np.float32)
    rr = ndi.gaussian_filter(channel, sigma, order=(2, 0), mode="nearest")
    cc = ndi.gaussian_filter(channel, sigma, order=(0, 2), mode="nearest")
    rc = ndi.gaussian_filter(channel, sigma, order=(1, 1), mode="nearest")
    largest = (rr + cc) / 2 + np.sqrt(((rr - cc) / 2) ** 2 + rc ** 2)
    return (sigma * sigma * largest).astype(np.float32)


def deep_maxima(landscape: np.ndarray, mask: np.ndarray, depth: float) -> np.ndarray:
    """Markers: maxima of `landscape` in `mask` that rise at least `depth` above a saddle.

    The h-maxima transform (morphological reconstruction) keeps a peak only if
    every path to a higher peak descends by at least `depth`; shoulders and ripples
    on one nucleus merge into one marker, two nuclei separated by a neck stay two.

    Returns
    -------
    (M, N) ndarray of int32, markers numbered 1..k.

    Examples
    --------
    >>> import numpy as np
    >>> land = np.array([[0, 3, 2.5, 2.9, 0, 1, 2, 0]], float)
    >>> deep_maxima(land, land > 0, 0.5)
    array([[0, 1, 0, 0, 0, 0, 2, 0]], dtype=int32)
    """
    if not depth > 0:
        raise ValueError(f"`depth` must be > 0, got {depth!r}")
    mask = np.asarray(mask, bool)
    floor = float(landscape[mask].min()) - depth if mask.any() else 0.0
    land = np.where(mask, landscape, floor).astype(np.float64)
    peaks = h_maxima(land, depth).astype(bool) & mask
    markers, _ = ndi.label(peaks, structure=np.ones((3, 3), bool))
    return markers.astype(np.int32)


def split_nuclei(mask: np.ndarray, landscape: np.ndarray, depth: float,
                 compactness: float = 0.0) -> np.ndarray:
    """Marker-controlled watershed of `mask` from the deep maxima of `landscape`.

    Markers are :func:`deep_maxima` of `depth`; a piece of `mask` without one is
    seeded at its own maximum, so no piece is lost. With `compactness` > 0 the
    watershed is compact: a pixel's cost grows by `compactness` (landscape units)
    per pixel away from its marker.

    Returns
    -------
    (M, N) ndarray of int32, nuclei numbered 1..n.

    Examples
    --------
    >>> import numpy as np
    >>> rr, cc = np.indices((20, 34))
    >>> pair = ((rr - 10) ** 2 + (cc - 10) ** 2 < 49) | ((rr - 10) ** 2 + (cc - 22) ** 2 < 49)
    >>> int(split_nuclei(pair, ndi.distance_transform_edt(pair), 1.0).max())
    2
    """
    mask = np.asarray(mask, bool)
    pieces, n = ndi.label(mask)
    if n == 0:
        return np.zeros(mask.shape, np.int32)
    markers = deep_maxima(landscape, mask, depth)
    seeded = np.zeros(n + 1, bool)
    seeded[pieces[markers > 0]] = True
    missing = np.flatnonzero(~seeded[1:]) + 1
    if missing.size:
        extra = np.asarray(ndi.maximum_position(landscape, pieces, missing), int).reshape(-1, 2)
        markers[tuple(extra.T)] = markers.max() + np.arange(1, len(extra) + 1, dtype=np.int32)
    split = watershed(-landscape, markers, mask=mask, compactness=compactness)
    return _renumber(split.astype(np.int32))


def resplit_large(labels: np.ndarray, min_area: float, depth: float,
                  smoothing: float = 0.0) -> np.ndarray:
    """Split again each object of `labels` larger than `min_area` pixels.

    Each large object is taken on its own (a one-pixel seam is removed where it
    touches another object), its distance map (smoothed by `smoothing`) is split
    by :func:`split_nuclei` with markers `depth` pixels deep, and the pieces are
    grown back to the object's outline. Smaller objects are kept as they are.

    Returns
    -------
    (M, N) ndarray of int32, objects numbered 1..n.

    Examples
    --------
    >>> import numpy as np
    >>> rr, cc = np.indices((20, 44))
    >>> pair = ((rr - 10) ** 2 + (cc - 12) ** 2 < 64) | ((rr - 10) ** 2 + (cc - 26) ** 2 < 64)
    >>> labels = pair.astype(np.int32)
    >>> labels[2:5, 38:41] = 2                      # small: kept
    >>> out = resplit_large(labels, 250, 1.0)
    >>> int(out.max()), len(np.unique(out[10, [12, 26]]))
    (3, 2)
    """
    labels = np.asarray(labels)
    areas = np.bincount(labels.ravel())
    large = areas > min_area
    large[0] = False
    inside = large[labels]
    if not inside.any():
        return _renumber(labels)
    seam = ndi.grey_dilation(labels, size=3) != ndi.grey_erosion(labels, size=3)
    core = inside & ~seam
    distance = ndi.distance_transform_edt(core)
    if smoothing > 0:
        distance = _smooth(distance, smoothing)
    pieces = split_nuclei(core, distance, depth)
    pieces = watershed(-distance, pieces, mask=inside)
    offset = int(labels.max())
    return _renumber(np.where(inside, np.where(pieces > 0, pieces + offset, 0), labels))


def refine_outlines(labels: np.ndarray, signal: np.ndarray, ring: float,
                    fraction: float) -> np.ndarray:
    """Redraw each nucleus at a fraction of the way from its surroundings to its peak.

    Each nucleus may grow by up to `ring` pixels (never into another one); its new
    outline is where `signal` crosses ``surround + fraction * (peak - surround)``,
    with `surround` the median of `signal` in the ring around it.

    Examples
    --------
    >>> import numpy as np
    >>> sig = np.zeros((1, 9)); sig[0, 2:7] = [0.3, 0.8, 1.0, 0.8, 0.3]
    >>> lab = np.zeros((1, 9), int); lab[0, 4] = 1
    >>> refine_outlines(lab, sig, 3, 0.5)
    array([[0, 0, 0, 1, 1, 1, 0, 0, 0]], dtype=int32)
    """
    labels = np.asarray(labels)
    n = int(labels.max(initial=0))
    if n == 0:
        return labels.astype(np.int32)
    grown = expand_labels(labels, ring)
    surround = _label_medians(signal, np.where(labels == 0, grown, 0), n)
    peak = np.asarray(ndi.maximum(signal, labels, np.arange(1, n + 1)), float)
    surround = np.where(np.isnan(surround), np.minimum(peak, 0.0), surround)
    level = np.concatenate([[np.inf], surround + fraction * (peak - surround)])
    return np.where(signal > level[grown], grown, 0).astype(np.int32)


def drop_low_contrast(labels: np.ndarray, signal: np.ndarray, ring: float,
                      fraction: float) -> np.ndarray:
    """Drop nuclei whose contrast is under `fraction` of the median nucleus contrast.

    Contrast: mean of `signal` inside minus its median in the `ring` around.

    Examples
    --------
    >>> import numpy as np
    >>> sig = np.zeros((3, 11)); sig[1, 2] = 1.0; sig[1, 5] = 0.9; sig[1, 8] = 0.2
    >>> lab = np.zeros((3, 11), int); lab[1, 2], lab[1, 5], lab[1, 8] = 1, 2, 3
    >>> drop_low_contrast(lab, sig, 1, 0.5)[1]
    array([0, 0, 1, 0, 0, 2, 0, 0, 0, 0, 0], dtype=int32)
    """
    labels = np.asarray(labels)
    n = int(labels.max(initial=0))
    if n == 0:
        return labels.astype(np.int32)
    grown = expand_labels(labels, ring)
    surround = _label_medians(signal, np.where(labels == 0, grown, 0), n)
    ids = np.arange(1, n + 1)
    inside = np.asarray(ndi.mean(signal, labels, ids), float)
    contrast = inside - np.where(np.isnan(surround), 0.0, surround)
    present = np.bincount(labels.ravel(), minlength=n + 1)[1:] > 0
    keep = np.zeros(n + 1, bool)
    if present.any():
        keep[1:] = present & (contrast >= fraction * np.median(contrast[present]))
    return _renumber(np.where(keep[labels], labels, 0))


def scale_score(labels: np.ndarray, diameter: float, penalty: float) -> float:
    """How much the objects of `labels` look like whole nuclei `diameter` pixels across.

    The area-weighted mean solidity of the objects (area over convex-hull area: 1
    for a whole, convex nucleus, less for fragments with ragged outlines and for
    clumps of several nuclei; of the 500 largest, so that noise stays cheap), minus
    `penalty` times the absolute log ratio of their median equivalent diameter to
    `diameter`.

    Returns
    -------
    float
        ``-inf`` when `labels` holds no object.

    Examples
    --------
    >>> import numpy as np
    >>> rr, cc = np.indices((40, 40))
    >>> disk = ((rr - 20) ** 2 + (cc - 20) ** 2 < 100).astype(int)
    >>> round(scale_score(disk, 20, 0.1), 2), round(scale_score(disk, 40, 0.1), 2)
    (0.97, 0.9)
    >>> clump = disk | ((rr - 20) ** 2 + (cc - 34) ** 2 < 100)
    >>> bool(scale_score(clump, 20, 0.0) < scale_score(disk, 20, 0.0))
    True
    """
    labels = np.asarray(labels)
    stats = region_stats(labels)
    if len(stats) == 0:
        return float("-inf")
    solid, _ = solidity(labels, stats, limit=_SCORE_HULLS)
    measured = np.isfinite(solid)
    area = stats["area"].to_numpy(float)
    return float(np.average(solid[measured], weights=area[measured])
                 - penalty * abs(np.log(median_diameter(labels) / diameter)))


def _smooth(channel: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing; beyond sigma 3, three running means of the same variance.

    Three box filters approximate a gaussian to within a few per cent and cost the
    same for any width (the wide neighbourhoods of large nuclei stay cheap).
    """
    if sigma <= 3:
        return ndi.gaussian_filter(channel, sigma, mode="nearest")
    width = int(round(np.sqrt(4 * sigma * sigma + 1))) | 1   # 3 (w² - 1) / 12 = sigma²
    out = channel
    for _ in range(3):
        out = ndi.uniform_filter(out, width, mode="nearest")
    return out


def _renumber(labels: np.ndarray, min_area: int = 1) -> np.ndarray:
    areas = np.bincount(labels.ravel())
    keep = areas >= max(min_area, 1)
    keep[0] = False
    ids = np.zeros(areas.size, np.int32)
    ids[keep] = np.arange(1, keep.sum() + 1, dtype=np.int32)
    return ids[labels]


# --- scale reduction -----------------------------------------------------------------------
def _reduce(channel: np.ndarray, factor: int) -> np.ndarray:
    """Block mean by an integer factor (the image padded at its far edges)."""
    if factor == 1:
        return channel
    rows, cols = channel.shape
    pad = (-rows % factor, -cols % factor)
    padded = np.pad(channel, ((0, pad[0]), (0, pad[1])), mode="edge")
    return padded.reshape(padded.shape[0] // factor, factor,
                          padded.shape[1] // factor, factor).mean(axis=(1, 3))


def _enlarge(array: np.ndarray, factor: int, shape) -> np.ndarray:
    if factor == 1:
        return array
    return np.repeat(np.repeat(array, factor, axis=0), factor, axis=1)[:shape[0], :shape[1]]


# --- the method ----------------------------------------------------------------------------
def _nuclei_at_scale(signal: np.ndarray, d: float, kind: AutoKind):
    """Steps 2-7 on a channel whose nuclei are `d` pixels across."""
    s = derived_settings(d)
    r = relative(kind)
    smoothed = _smooth(signal, s["blur_sigma"])
    corrected = background_correct(smoothed, s["background_size"])
    if corrected.max() <= corrected.min():
        empty = np.zeros(signal.shape, np.int32)
        return empty, corrected, empty.astype(bool), float("nan")
    t = float(threshold_otsu(corrected))
    local = _smooth(corrected, s["local_sigma"])
    mask = (corrected > r["global_fraction"] * t) & (corrected > local)
    mask &= valleys(corrected, s["valley_sigma"]) <= r["valley_depth"] * t
    mask &= valleys(corrected, s["wide_valley_sigma"]) <= r["wide_valley_depth"] * t
    mask = fill_holes(mask)
    mask = open_close(mask, s["opening_radius"], 0)
    pieces = _renumber(ndi.label(mask)[0], s["min_area"])
    mask = pieces > 0
    # Watershed landscape: distance to the background, in radii.
    landscape = _smooth(ndi.distance_transform_edt(mask) / (d / 2), s["marker_smoothing"])
    nuclei = split_nuclei(mask, landscape, r["marker_depth"], r["compactness"] * 2 / d)
    if r["resplit_area"] > 0:
        nuclei = resplit_large(nuclei, r["resplit_area"] * np.pi / 4 * d * d,
                               r["resplit_depth"] * d / 2, s["marker_smoothing"])
    nuclei = refine_outlines(nuclei, corrected, s["ring"], r["outline_fraction"])
    nuclei = drop_low_contrast(nuclei, signal, s["ring"], r["min_contrast"])
    return _renumber(nuclei, s["min_area"]), corrected, mask, t


def segment_nuclei(image: np.ndarray, kind: AutoKind | str | KindResult | None = None,
                   diameter: float | None = None) -> AutoNuclei:
    """Find nuclei with settings derived from the kind of image and the nucleus size.

    Parameters
    ----------
    image : (M, N[, 3]) ndarray
        Gray or RGB; integer types are scaled to [0, 1]. Never modified.
    kind : {'fluorescence', 'stained', 'brightfield', 'detect'}, KindResult or None
        None or ``detect``: :func:`~cellseg_core.imagekind.detect_kind` decides
        (see :func:`~cellseg_core.imagekind.resolve_kind`).
    diameter : float, optional
        Typical nucleus diameter in pixels, used as it is; None or 0: estimated from
        the image (on stained tissue, the best of five sizes around the estimate:
        step 8 of the module docstring).

    Returns
    -------
    AutoNuclei

    Examples
    --------
    >>> import numpy as np
    >>> rr, cc = np.indices((60, 60))
    >>> img = np.full((60, 60), 0.05, np.float32)
    >>> for r, c in [(15, 15), (15, 42), (44, 30)]:
    ...     img[(rr - r) ** 2 + (cc - c) ** 2 <= 36] = 0.8
    >>> found = segment_nuclei(img)
    >>> found.kind.kind.value, int(found.instances.max()), round(found.diameter)
    ('fluorescence', 3, 12)
    """
    image = as_float_image(image, name="`image`")
    kind_result = resolve_kind(image, kind)
    signal = nucleus_signal(image, kind_result.kind)
    estimated = not diameter
    if estimated:
        diameter = signal_diameter(signal, kind_result.kind)
        if not np.isfinite(diameter):
            diameter = DEFAULT_DIAMETER
    low, high = _DIAMETER_RANGE
    top = min(high, max(low, min(image.shape[:2]) / 2))
    r = relative(kind_result.kind)
    scales = r["scales"] if estimated else (1.0,)
    candidates = sorted({float(np.clip(diameter * s, low, top)) for s in scales})
    d, result = candidates[0], None
    if len(candidates) > 1:
        d, result = _search_scale(signal, candidates, kind_result.kind, r["scale_penalty"])
    nuclei, corrected, mask, settings = result or _nuclei_at(signal, d, kind_result.kind)
    settings = {**settings, "sizes_tried": len(candidates)}
    return AutoNuclei(instances=nuclei, kind=kind_result, diameter=d,
                      diameter_estimated=estimated, settings=settings, signal=signal,
                      corrected=corrected, mask=mask)


def _search_scale(signal: np.ndarray, candidates: list, kind: AutoKind, penalty: float):
    """Step 8: the candidate diameter whose nuclei score best (:func:`scale_score`,
    mean over :func:`search_windows`), and its result when the window is the whole
    image (None otherwise: the caller segments the whole image at it)."""
    windows = search_windows(signal.shape, _SEARCH_PIXELS)
    best = None                                    # (score, diameter, result)
    for d in candidates:
        parts = [_nuclei_at(signal[w], d, kind) for w in windows]
        score = float(np.mean([scale_score(p[0], d, penalty) for p in parts]))
        if best is None or score > best[0]:
            best = (score, d, parts[0] if len(windows) == 1 else None)
    return best[1], best[2]


def search_windows(shape: tuple, pixels: int) -> list:
    """Where the scale is chosen: the whole image, or four windows of `pixels` in all.

    An image of up to `pixels` pixels is one window; a larger one gives four square
    windows, one about the centre of each quadrant, so that the search costs the
    same on any image and sees more than one part of it.

    Examples
    --------
    >>> search_windows((100, 200), 40_000)
    [(slice(0, 100, None), slice(0, 200, None))]
    >>> [(w[0].start, w[1].start) for w in search_windows((1000, 800), 40_000)]
    [(200, 150), (200, 550), (700, 150), (700, 550)]
    """
    rows, cols = shape[:2]
    if rows * cols <= pixels:
        return [(slice(0, rows), slice(0, cols))]
    side = int(np.sqrt(pixels / 4))
    starts = [[int(np.clip(f * n - side / 2, 0, max(n - side, 0))) for f in (0.25, 0.75)]
              for n in (rows, cols)]
    return [(slice(r0, r0 + side), slice(c0, c0 + side))
            for r0 in starts[0] for c0 in starts[1]]


def _nuclei_at(signal: np.ndarray, d: float, kind: AutoKind):
    """Steps 2-7 at diameter `d`, reduced to the working scale and back.

    Returns ``(instances, corrected, mask, settings)``, all full size.
    """
    factor = max(1, int(d // _WORK_DIAMETER))
    nuclei, corrected, mask, t = _nuclei_at_scale(_reduce(signal, factor), d / factor, kind)
    settings = {k: (v * factor if k != "min_area" else v * factor * factor)
                for k, v in derived_settings(d / factor).items()}
    settings.update(factor=factor, t_object=t)
    return (_enlarge(nuclei, factor, signal.shape),
            _enlarge(corrected, factor, signal.shape).astype(np.float32),
            _enlarge(mask, factor, signal.shape), settings)
