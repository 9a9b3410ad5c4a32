"""`segment(image, params)`: the whole pipeline as a chain of pure calls."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from .autoseg import segment_nuclei
from .color import extract_channel
from .filters import blur
from .imagekind import resolve_kind
from .instances import (TooManyMarkers, assign_cells, filter_by_size, label_objects,
                        split_touching, watershed_markers)
from .io import as_float_image
from .measure import image_summary, too_many_objects
from .measure import max_objects as _default_max_objects
from .morphology import clean_labels
from .nuclear import CELL_COLUMNS, cell_table
from .params import AutoKind, BlurKind, Channel, Mode, Params
from .scale import estimate_diameter
from .threshold import apply_threshold

__all__ = ["Segmentation", "segment", "preprocess", "preprocess_key", "labels_from_channel",
           "is_automatic", "CELL_MIN_NUCLEUS"]

#: Automatic cytology by the cell threshold: nucleus pieces under this fraction of the
#: area of a typical nucleus are removed (and at least those under the params'
#: ``cleanup.min_nucleus_size``). Chosen on the VocEd training split (mean Dice: fixed
#: 200 px 0.754; fraction alone 0.1: 0.750, 1/3: 0.755, 0.5: 0.756; 0.5 with the
#: 200 px floor: 0.760).
CELL_MIN_NUCLEUS = 0.5


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
    max_objects : int, optional
        Object ceiling: above it :attr:`objects` is empty and :attr:`warnings` says
        why. None: ``CELLSEG_MAX_OBJECTS`` or 20,000 (:func:`cellseg_core.measure.max_objects`).
    notes : tuple of str
        Warnings from the steps themselves (e.g. a watershed split skipped).
    auto : dict or None
        With automatic params (``params.auto.kind`` not ``off``): what was resolved
        for this image, JSON-ready: ``kind``, ``confidence``, ``dab``, ``features``
        (the detector's), ``diameter`` (pixels), ``diameter_estimated``, ``nuclei_by``
        (``"automatic"`` or ``"cell threshold"``) and ``settings`` (every derived size
        in pixels). None for the fixed pipeline.
    """

    labels: np.ndarray
    nuclei: np.ndarray
    channel: np.ndarray
    blurred: np.ndarray
    raw: np.ndarray
    thresholds: dict
    params: Params = field(repr=False)
    method: str = "params"
    max_objects: int | None = field(default=None, repr=False)
    notes: tuple = ()
    auto: dict | None = None

    @cached_property
    def cells(self) -> np.ndarray:
        """(M, N) int32: each nucleus's cell (nucleus plus its share of cytoplasm)."""
        return assign_cells(self.nuclei, self.labels > 0)

    @cached_property
    def too_many_objects(self) -> str | None:
        """Why per-object measurements are off (above the object ceiling), or None."""
        limit = self.max_objects if self.max_objects is not None else _default_max_objects()
        return too_many_objects(int(self.nuclei.max(initial=0)), limit)

    @cached_property
    def objects(self) -> pd.DataFrame:
        """Per-nucleus table: areas, both per-cell N/C ratios, centroid, intensity, shape,
        nuclear features (:func:`cellseg_core.nuclear.cell_table`, :data:`CELL_COLUMNS`).

        Empty (same columns) when there are more nuclei than the object ceiling;
        ``objects.attrs["warnings"]`` holds the table's own messages.
        """
        if self.too_many_objects:
            table = pd.DataFrame({c: pd.Series(dtype=float) for c in CELL_COLUMNS})
            table.attrs["warnings"] = (self.too_many_objects,)
            return table
        # Cells only count cytoplasm pixels: without any (fluorescence), skip their watershed.
        cells = self.cells if (self.labels == 1).any() else self.nuclei
        return cell_table(self.nuclei, cells, self.labels, self.channel)

    @property
    def warnings(self) -> tuple:
        """Every message a user should see about this result, e.g. the object ceiling.

        Cheap: asking does not compute the object table; once it is computed, its
        own messages (solidity not computed for every object) are included.
        """
        found = tuple(self.notes)
        if self.too_many_objects:
            return found + (self.too_many_objects,)
        if "objects" in self.__dict__:  # already computed
            found += tuple(self.objects.attrs.get("warnings", ()))
        return found

    @cached_property
    def markers(self) -> tuple[np.ndarray, np.ndarray]:
        """The watershed's seeds of the nuclei: ``(distance, peaks)`` of
        :func:`~cellseg_core.instances.watershed_markers` with ``params.watershed``'s
        settings (computed on demand, whether or not the watershed split them).

        Raises :class:`~cellseg_core.instances.TooManyMarkers` (a ``ValueError``)
        above the object ceiling, as the pipeline's own split does."""
        ws = self.params.watershed
        limit = self.max_objects if self.max_objects is not None else _default_max_objects()
        return watershed_markers(self.labels == 2, min_distance=ws.min_distance,
                                 footprint=ws.footprint, max_markers=limit)

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


def _nucleus_instances(labels: np.ndarray, params: Params, max_markers: int):
    """Nucleus instances, and the notes of a watershed split skipped for its seed count."""
    nucleus = labels == 2
    notes = ()
    nuclei = None
    if params.watershed.enabled:
        try:
            nuclei = split_touching(nucleus, min_distance=params.watershed.min_distance,
                                    footprint=params.watershed.footprint,
                                    max_markers=max_markers)
        except TooManyMarkers as err:
            notes = (str(err),)
    if nuclei is None:
        nuclei = label_objects(nucleus, connectivity=params.cleanup.connectivity // 4)
    if params.mode == Mode.FLUORESCENCE and params.cleanup.min_nucleus_size > 1:
        # Watershed pieces can be smaller than the size filter allowed for whole objects.
        nuclei = filter_by_size(nuclei, params.cleanup.min_nucleus_size)
    return nuclei, notes


def is_automatic(params: Params) -> bool:
    """True when `params` resolve settings per image (``auto.kind`` is not ``off``).

    Such params need the whole image: :func:`labels_from_channel` and
    :func:`preprocess` alone do not reproduce :func:`segment` for them.
    """
    return AutoKind(params.auto.kind) != AutoKind.OFF


def _segment_automatic(image: np.ndarray, params: Params, limit: int) -> Segmentation:
    """`segment` for automatic params (see :func:`segment`)."""
    image = as_float_image(image)
    kind = resolve_kind(image, params.auto.kind)
    given = params.auto.diameter or None
    info = {**kind.to_dict(), "nuclei_by": "automatic"}
    cytology = Mode(params.mode) == Mode.CYTOLOGY and kind.kind != AutoKind.FLUORESCENCE
    if cytology and not kind.dab:
        return _cytology_by_cell_threshold(image, params, given, info, limit)
    found = segment_nuclei(image, kind, given)
    info.update(diameter=found.diameter, diameter_estimated=found.diameter_estimated,
                settings=dict(found.settings))
    t_object = {"t_object": found.settings["t_object"]}
    if not cytology:
        nuclei = found.instances
        return Segmentation(labels=(nuclei > 0).view(np.uint8) * np.uint8(2), nuclei=nuclei,
                            channel=found.signal, blurred=found.corrected,
                            raw=found.mask.view(np.uint8) * np.uint8(2), thresholds=t_object,
                            params=params, auto=info, max_objects=limit)
    # An immunostain (DAB): dark is not nucleus. The cells are the fixed rule's; the
    # nuclei are the automatic ones (found on hematoxylin alone) inside them.
    fixed = params.with_values({"auto.kind": "off"})
    channel, blurred = preprocess(image, fixed)
    raw, labels, thresholds = labels_from_channel(blurred, fixed)
    nuclei = filter_by_size(np.where(labels > 0, found.instances, 0))
    labels = (labels > 0).view(np.uint8) + (nuclei > 0).view(np.uint8)
    return Segmentation(labels=labels, nuclei=nuclei, channel=channel, blurred=blurred,
                        raw=raw, thresholds={**thresholds, **t_object}, params=params,
                        auto=info, max_objects=limit)


def _cytology_by_cell_threshold(image, params: Params, given, info, limit: int) -> Segmentation:
    """H&E, Pap, gray bright-field in cytology mode: the fixed rule, clean-up sized.

    The cell and the nucleus (the darker part of the cell) come from the
    `threshold` section; nucleus pieces under half the area of a typical nucleus
    (its diameter read off the nucleus mask, or given), and at least those under
    ``cleanup.min_nucleus_size``, are removed.
    """
    fixed = params.with_values({"auto.kind": "off"})
    channel, blurred = preprocess(image, fixed)
    unsized = fixed.with_values({"cleanup.min_nucleus_size": 0})
    _, labels, _ = labels_from_channel(blurred, unsized)
    diameter = given or estimate_diameter((labels == 2).astype(np.float32), smooth=0)
    if np.isfinite(diameter):
        scaled = int(round(CELL_MIN_NUCLEUS * np.pi / 4 * diameter ** 2))
        sized = fixed.with_values({"cleanup.min_nucleus_size":
                                   max(scaled, fixed.cleanup.min_nucleus_size)})
    else:   # no nucleus to measure: the params' own clean-up
        diameter, sized = None, fixed
    raw, labels, thresholds = labels_from_channel(blurred, sized)
    info.update(diameter=None if diameter is None else float(diameter),
                diameter_estimated=not given,
                nuclei_by="cell threshold",
                settings={"min_nucleus_size": sized.cleanup.min_nucleus_size})
    nuclei, notes = _nucleus_instances(labels, sized, limit)
    return Segmentation(labels=labels, nuclei=nuclei, channel=channel, blurred=blurred,
                        raw=raw, thresholds=thresholds, params=params, auto=info,
                        max_objects=limit, notes=notes)


def segment(image: np.ndarray, params: Params | None = None, *,
            preprocessed: tuple[np.ndarray, np.ndarray] | None = None,
            max_objects: int | None = None) -> Segmentation:
    """Segment one image: channel → blur → threshold → clean-up → instances.

    With automatic params (``params.auto.kind`` not ``off``, the ``auto-*`` presets)
    the nuclei come from :func:`cellseg_core.autoseg.segment_nuclei`: the kind of
    image is detected (or given), the nucleus diameter estimated (or given), and
    every size derived from it; ``Segmentation.auto`` records what was resolved.
    In fluorescence mode, or on a fluorescence image, the labels are 0/2. In
    cytology mode on a bright-field image the cells are the `threshold` /
    `cleanup` sections' fixed rule (e.g. darker than the glass peak) and the
    nuclei the darker part of each cell, pieces under half a typical nucleus
    (and under ``cleanup.min_nucleus_size``) removed; on an immunostained (DAB)
    image, where dark is not nucleus, the nuclei are the automatic ones inside
    the cells.

    Parameters
    ----------
    image : (M, N[, 3]) ndarray
        Gray or RGB; integer types are scaled to [0, 1]. Never modified.
    params : Params, optional
        Defaults to ``Params()`` (the course's Lab 01 thresholds).
    preprocessed : (channel, blurred), optional
        The result of :func:`preprocess` for the same image and params, if cached.
    max_objects : int, optional
        Object ceiling (default ``CELLSEG_MAX_OBJECTS`` or 20,000): above it the
        watershed split is skipped and per-object measurements are off, each with a
        message in :attr:`Segmentation.warnings`; labels and instances are still made.

        Ignored for automatic params, which derive their channel from the image.

    Returns
    -------
    Segmentation

    Examples
    --------
    >>> import numpy as np
    >>> img = np.array([[0.2, 0.5, 0.9]], np.float32)
    >>> segment(img).labels
    array([[2, 1, 0]], dtype=uint8)
    >>> noisy = segment(np.tile([[0.2, 0.9]], (1, 3)), max_objects=2)
    >>> noisy.warnings[0].split(" —")[0], len(noisy.objects)
    ('this segmentation has 3 objects', 0)
    """
    params = params or Params()
    if max_objects is not None and (isinstance(max_objects, bool) or max_objects < 1):
        raise ValueError(f"`max_objects` must be a positive integer, got {max_objects!r}")
    limit = max_objects if max_objects is not None else _default_max_objects()
    if is_automatic(params):
        if image is None:
            raise ValueError("`image` is required for automatic params (auto.kind "
                             f"{AutoKind(params.auto.kind).value!r}); `preprocessed` is not "
                             "enough")
        return _segment_automatic(image, params, limit)
    channel, blurred = preprocessed or preprocess(image, params)
    raw, labels, thresholds = labels_from_channel(blurred, params)
    nuclei, notes = _nucleus_instances(labels, params, limit)
    return Segmentation(labels=labels, nuclei=nuclei, channel=channel, blurred=blurred,
                        raw=raw, thresholds=thresholds, params=params,
                        max_objects=limit, notes=notes)
