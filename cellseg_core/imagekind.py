"""What kind of microscopy image is this? Fluorescence, stained or gray bright-field.

Three simple statistics decide, each readable on the image itself:

* **polarity**: where the background (the histogram's mode) sits between the darkest
  and the brightest pixels. Fluorescence has a dark background and a long bright
  tail (polarity near +1); bright-field has a bright background and dark objects
  (near -1); phase contrast, with dark cells and bright halos, sits in between.
* **background level**: the mode's gray level (0 black, 1 white).
* **colour**: the spread between the RGB channels (95th percentile of max - min);
  zero for gray images.

On colour bright-field images the share of DAB (brown) in the optical density of the
darker half of the pixels says whether an immunostain is present, so that the
nucleus channel can be hematoxylin alone (:mod:`cellseg_core.autoseg`).

Thresholds were chosen on the training splits of the project's data sets
(dsb2018_fluo, dsb2018_histo, dsb2018_brightfield, usiigaci_phase, voced): the
classes lie far apart there (polarity >= 0.72 for fluorescence, <= 0.34 otherwise).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from skimage.color import rgb2hed

from .color import gray
from .io import as_float_image
from .params import AutoKind

__all__ = ["KindResult", "image_features", "detect_kind", "resolve_kind", "POLARITY_SPLIT",
           "DARK_BACKGROUND", "COLOUR_SPLIT", "DAB_SPLIT"]

#: Polarity above which an image is fluorescence (bright objects on a dark background).
POLARITY_SPLIT = 0.5
#: Background gray level below which the background counts as dark (measured:
#: fluorescence <= 0.08, stained tissue >= 0.36, phase contrast >= 0.30).
DARK_BACKGROUND = 0.25
#: Colour spread (95th percentile of max - min of R, G, B) above which a bright-field
#: image is stained rather than gray.
COLOUR_SPLIT = 0.05
#: Share of DAB in the optical density of the darker pixels above which the image
#: carries an immunostain (measured: IHC sample 0.78; H&E, Pap <= 0.38).
DAB_SPLIT = 0.5

# Widths of the logistic confidences: a margin of one width gives 0.73, two 0.88.
_POLARITY_WIDTH = 0.08
_LEVEL_WIDTH = 0.08
_COLOUR_WIDTH = 0.015


@dataclass(frozen=True)
class KindResult:
    """The detector's answer.

    Attributes
    ----------
    kind : AutoKind
        ``fluorescence``, ``stained`` or ``brightfield``.
    confidence : float
        In [0.5, 1]: how far the deciding statistics lie from their thresholds
        (logistic of the smallest margin).
    features : dict
        ``polarity``, ``background``, ``colour`` and ``dab_share`` (floats).
    dab : bool
        True when an immunostain (brown DAB) is present (stained images only).
    """

    kind: AutoKind
    confidence: float
    features: dict = field(default_factory=dict)
    dab: bool = False

    def label(self) -> str:
        """A short text for display, e.g. ``"fluorescence (0.97)"``."""
        extra = ", DAB" if self.dab else ""
        return f"{self.kind.value}{extra} ({self.confidence:.2f})"

    def to_dict(self) -> dict:
        """JSON-ready view."""
        return {"kind": self.kind.value, "confidence": self.confidence, "dab": self.dab,
                "features": dict(self.features)}


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


def image_features(image: np.ndarray) -> dict:
    """The statistics :func:`detect_kind` decides on.

    Parameters
    ----------
    image : (M, N[, 3]) ndarray
        Gray or RGB; integer types are scaled to [0, 1] (:func:`~cellseg_core.io.as_float_image`).

    Returns
    -------
    dict
        ``polarity`` in [-1, 1]: the histogram mode's place on the 0.5-99.5
        percentile range, ``1 - 2 * place`` (+1: objects brighter than the
        background); ``background``: the mode's gray level in [0, 1] (on
        [0, max] for float images above 1); ``colour`` (95th percentile of the
        RGB spread, 0 for gray) and ``dab_share`` (0 for gray).

    Examples
    --------
    >>> import numpy as np
    >>> dark = np.zeros((20, 20)); dark[5:9, 5:9] = 1.0     # a bright spot on black
    >>> round(image_features(dark)["polarity"], 1)
    1.0
    >>> round(image_features(1 - dark)["polarity"], 1)      # a dark spot on white
    -1.0
    """
    image = as_float_image(image, name="`image`")
    g = gray(image) if image.ndim == 3 else image
    low, high = np.percentile(g, [0.5, 99.5])
    span = float(high - low)
    if span <= 0:
        # A constant image: no objects, no polarity; its level is its value.
        return {"polarity": 0.0, "background": float(np.clip(low, 0, 1)), "colour": 0.0,
                "dab_share": 0.0}
    scaled = np.clip((g - low) / span, 0.0, 1.0)
    counts = np.bincount(np.minimum((scaled * 128).astype(np.intp), 127).ravel(),
                         minlength=128).astype(float)
    counts = np.convolve(counts, np.ones(5) / 5, mode="same")
    mode = (np.argmax(counts) + 0.5) / 128               # on the image's own range
    polarity = (1.0 - mode) - mode                       # bright tail - dark tail
    # The background's absolute level: on [0, 1], or on [0, max] for larger floats.
    background = (low + mode * span) / max(1.0, float(g.max()))
    colour = dab_share = 0.0
    if image.ndim == 3:
        spread = image.max(axis=-1) - image.min(axis=-1)
        colour = float(np.percentile(spread, 95))
        if colour > 0:
            hed = rgb2hed(np.clip(image, 0.0, 1.0))
            darker = g < np.median(g)
            if darker.any():
                share = hed[..., 2] / (np.abs(hed).sum(axis=-1) + 1e-6)
                dab_share = float(np.mean(share[darker]))
    return {"polarity": float(polarity), "background": float(background),
            "colour": colour, "dab_share": dab_share}


def detect_kind(image: np.ndarray) -> KindResult:
    """Classify an image as fluorescence, stained bright-field or gray bright-field.

    Rules, in order:

    1. *fluorescence* when the background is dark (level < 0.25) and the objects are
       brighter than it (polarity > 0.5), whatever the colour;
    2. otherwise *stained* when the channels differ (colour spread > 0.05);
    3. otherwise *brightfield* (gray bright-field or phase contrast).

    Parameters
    ----------
    image : (M, N[, 3]) ndarray

    Returns
    -------
    KindResult

    Examples
    --------
    >>> import numpy as np
    >>> spot = np.zeros((20, 20)); spot[5:9, 5:9] = 1.0
    >>> detect_kind(spot).kind.value
    'fluorescence'
    >>> detect_kind(1 - spot).kind.value
    'brightfield'
    >>> pink = np.ones((20, 20, 3)); pink[4:14, 4:14] = (0.4, 0.2, 0.6)
    >>> detect_kind(pink).kind.value
    'stained'
    """
    features = image_features(image)
    polarity, level, colour = features["polarity"], features["background"], features["colour"]
    bright_objects = _sigmoid((polarity - POLARITY_SPLIT) / _POLARITY_WIDTH)
    dark_background = _sigmoid((DARK_BACKGROUND - level) / _LEVEL_WIDTH)
    fluorescence = min(bright_objects, dark_background)
    if fluorescence > 0.5:
        return KindResult(AutoKind.FLUORESCENCE, fluorescence, features)
    coloured = _sigmoid((colour - COLOUR_SPLIT) / _COLOUR_WIDTH)
    if coloured > 0.5:
        return KindResult(AutoKind.STAINED, min(1 - fluorescence, coloured), features,
                          dab=features["dab_share"] > DAB_SPLIT)
    return KindResult(AutoKind.BRIGHTFIELD, min(1 - fluorescence, 1 - coloured), features)


def resolve_kind(image: np.ndarray, kind: AutoKind | str | KindResult | None = None
                 ) -> KindResult:
    """The kind to work with: detected (`kind` None or ``detect``) or given.

    A given kind has confidence 1; the image's features are still measured, so
    that a stained image forced as such still says whether DAB is present.

    Examples
    --------
    >>> import numpy as np
    >>> resolve_kind(np.zeros((4, 4)), "brightfield").label()
    'brightfield (1.00)'
    """
    if isinstance(kind, KindResult):
        return kind
    if kind is None or AutoKind(kind) == AutoKind.DETECT:
        return detect_kind(image)
    kind = AutoKind(kind)
    if kind == AutoKind.OFF:
        raise ValueError("`kind` must be 'detect' or a kind of image "
                         "('fluorescence', 'stained', 'brightfield'), got 'off'")
    features = image_features(image)
    return KindResult(kind, 1.0, features,
                      dab=kind == AutoKind.STAINED and features["dab_share"] > DAB_SPLIT)
