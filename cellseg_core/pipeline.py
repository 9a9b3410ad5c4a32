"""`segment(image, params)`: the whole pipeline as a chain of pure calls."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from .color import extract_channel
from .filters import blur
from .instances import (assign_cells, filter_by_size, label_objects, split_touching,
                        watershed_markers)
from .io import as_float_image
from .measure import image_summary, object_table
from .morphology import clean_labels
from .params import BlurKind, Channel, Mode, Params
from .threshold import apply_threshold

__all__ = ["Segmentation", "segment", "preprocess", "preprocess_key", "labels_from_channel"]


@dataclass(frozen=True, eq=False)
class Segmentation:
    """What :func:`segment` found, with every intermediate step for display.

    Attributes
    ----------
    labels : (M, N) ndarray of uint8
        0 background, 1 cytoplasm, 2 nucleus (fluorescence: 0 and 2).
    nuclei : (M, N) ndarray of int32
        Nucleus instances numbered 1..n.
    channel, blurred : (M, N) ndarray of float
        The channel thresholds act on, before and after smoothing.
    raw : (M, N) ndarray of uint8
        Classes straight from the thresholds, before clean-up.
    thresholds : dict
        The thresholds used (chosen by the automatic method where there is one); empty
        for a learned model.
    params : Params
        What ran (a learned model: its clean-up).
    method : str
        Which method produced it: ``"params"`` for :func:`segment`, else the learned
        model's kind (e.g. ``"PixelClassifier/boosting"``).
    """

    labels: np.ndarray
    nuclei: np.ndarray
    channel: np.ndarray
    blurred: np.ndarray
    raw: np.ndarray
    thresholds: dict
    params: Params = field(repr=False)
    method: str = "params"

    @cached_property
    def cells(self) -> np.ndarray:
        """(M, N) int32: each nucleus's cell (nucleus plus its share of cytoplasm)."""
        return assign_cells(self.nuclei, self.labels > 0)

    @cached_property
    def objects(self) -> pd.DataFrame:
        """Per-nucleus table: areas, per-cell N/C, centroid, intensity, shape."""
        return object_table(self.nuclei, self.cells, self.labels, self.channel)

    @cached_property
    def markers(self) -> tuple[np.ndarray, np.ndarray]:
        """The watershed's seeds of the nuclei: ``(distance, peaks)`` of
        :func:`~cellseg_core.instances.watershed_markers` with ``params.watershed``'s
        settings (computed on demand, whether or not the watershed split them)."""
        ws = self.params.watershed
        return watershed_markers(self.labels == 2, min_distance=ws.min_distance,
                                 footprint=ws.footprint)

    @cached_property
    def summary(self) -> dict:
        """Per-image numbers: class areas, N/C ratio, nucleus count."""
        return image_summary(self.labels, self.nuclei)


def preprocess(image: np.ndarray, params: Params) -> tuple[np.ndarray, np.ndarray]:
    """Channel and blurred channel of an image: the steps before any threshold.

    Split out so that callers that vary only thresholds or clean-up (the optimiser,
    the app's sliders) can cache this part.
    """
    image = as_float_image(image)
    channel = extract_channel(image, params.channel)
    blurred = blur(channel, params.blur.kind, sigma=params.blur.sigma, size=params.blur.size)
    return channel, blurred


def preprocess_key(params: Params) -> tuple:
    """What :func:`preprocess` depends on, and nothing else: the channel and the blur
    (its sigma for a gaussian blur, its window size for median and mean).

    Params with the same key give the same channel and blurred channel, so callers
    that cache :func:`preprocess` (the evaluation, the app) key on it.

    Examples
    --------
    >>> preprocess_key(Params().with_values({"threshold.t_nuc": 0.2})) == preprocess_key(Params())
    True
    >>> preprocess_key(Params().with_values({"blur.kind": "gaussian", "blur.sigma": 2.0}))
    ('gray', 'gaussian', 2.0)
    """
    kind = BlurKind(params.blur.kind)
    extra = (params.blur.sigma if kind == BlurKind.GAUSSIAN
             else params.blur.size if kind in (BlurKind.MEDIAN, BlurKind.MEAN) else None)
    return (Channel(params.channel).value, kind.value, extra)


def labels_from_channel(blurred: np.ndarray, params: Params):
    """Thresholds and clean-up on a preprocessed channel.

    Returns
    -------
    raw, labels : (M, N) ndarray of uint8
    thresholds : dict
    """
    raw, thresholds = apply_threshold(blurred, params.threshold, params.mode)
    labels = clean_labels(raw, params.cleanup, mode=params.mode)
    return raw, labels, thresholds


def _nucleus_instances(labels: np.ndarray, params: Params) -> np.ndarray:
    nucleus = labels == 2
    if params.watershed.enabled:
        nuclei = split_touching(nucleus, min_distance=params.watershed.min_distance,
                                footprint=params.watershed.footprint)
    else:
        nuclei = label_objects(nucleus)
    if params.mode == Mode.FLUORESCENCE and params.cleanup.min_nucleus_size > 1:
        # Watershed pieces can be smaller than the size filter allowed for whole objects.
        nuclei = filter_by_size(nuclei, params.cleanup.min_nucleus_size)
    return nuclei


def segment(image: np.ndarray, params: Params | None = None, *,
            preprocessed: tuple[np.ndarray, np.ndarray] | None = None) -> Segmentation:
    """Segment one image: channel → blur → threshold → clean-up → instances.

    Parameters
    ----------
    image : (M, N[, 3]) ndarray
        Gray or RGB; integer types are scaled to [0, 1]. Never modified.
    params : Params, optional
        Defaults to ``Params()`` (the course's Lab 01 thresholds).
    preprocessed : (channel, blurred), optional
        The result of :func:`preprocess` for the same image and params, if cached.

    Returns
    -------
    Segmentation

    Examples
    --------
    >>> import numpy as np
    >>> img = np.array([[0.2, 0.5, 0.9]], np.float32)
    >>> segment(img).labels
    array([[2, 1, 0]], dtype=uint8)
    """
    params = params or Params()
    channel, blurred = preprocessed or preprocess(image, params)
    raw, labels, thresholds = labels_from_channel(blurred, params)
    return Segmentation(labels=labels, nuclei=_nucleus_instances(labels, params),
                        channel=channel, blurred=blurred, raw=raw,
                        thresholds=thresholds, params=params)
