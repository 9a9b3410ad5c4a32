"""Bounded caches around the core, keyed on (image digest, params JSON).

The image itself is passed as a leading-underscore argument, so Streamlit does not
hash megabytes of pixels on every call: the digest of :class:`ImageSource` names it.
The channel and its blur are cached on their own key (digest + channel + blur), so
moving a threshold or clean-up slider reuses them and only reruns the thresholds.

The two array-heavy caches (preprocessed channel, segmentation) are
``st.cache_resource``, not ``st.cache_data``: ``cache_data`` pickles and unpickles
its value on every hit (about 90 ms for a 2048² segmentation here, most of the
400 ms budget of a slider move). Their arrays are made read-only, so sharing one
object between reruns and sessions is safe. Everything else is ``cache_data``.
"""
from __future__ import annotations

import numpy as np
import streamlit as st

from cellseg_core.metrics import average_precision, match_instances, score_labels
from cellseg_core.params import Mode, Params, ThresholdMethod
from cellseg_core.pipeline import Segmentation, preprocess, preprocess_key, segment
from cellseg_core.threshold import AUTO_METHODS

from .figures import class_histograms, jpeg_data_uri, to_rgb8

__all__ = ["preprocessed", "segmentation", "histograms", "scores", "try_all_methods",
           "image_uri"]


def _read_only(*arrays):
    for array in arrays:
        array.flags.writeable = False
    return arrays


@st.cache_resource(max_entries=8, show_spinner=False)
def _preprocessed(digest: str, key: tuple, _image: np.ndarray, _params: Params):
    channel, blurred = preprocess(_image, _params)
    _read_only(channel, blurred)  # blur "none" may return the channel itself: harmless
    return channel, blurred


def preprocessed(digest: str, image: np.ndarray, params: Params):
    """(channel, blurred) of an image, cached on the digest and the steps before thresholds."""
    return _preprocessed(digest, preprocess_key(params), image, params)


@st.cache_resource(max_entries=16, show_spinner=False)
def _segmentation(digest: str, params_json: str, _image: np.ndarray) -> Segmentation:
    params = Params.from_json(params_json)
    seg = segment(_image, params, preprocessed=preprocessed(digest, _image, params))
    _read_only(seg.labels, seg.nuclei, seg.raw)
    seg.summary  # noqa: B018  computed once, kept on the shared object
    return seg


def segmentation(digest: str, image: np.ndarray, params: Params) -> Segmentation:
    """`segment(image, params)`, cached on (digest, params JSON)."""
    return _segmentation(digest, params.to_json(indent=None), image)


@st.cache_data(max_entries=16, show_spinner=False)
def _histograms(digest: str, key: tuple, has_truth: bool, _channel, _truth):
    return class_histograms(_channel, _truth if has_truth else None)


def histograms(digest: str, image: np.ndarray, params: Params, truth=None) -> dict:
    """Per-class histogram of the thresholded (blurred) channel, cached."""
    _, blurred = preprocessed(digest, image, params)
    return _histograms(digest, preprocess_key(params), truth is not None, blurred, truth)


def scores(seg: Segmentation, truth: np.ndarray | None,
           truth_instances: np.ndarray | None = None) -> dict:
    """Agreement with the ground truth: class scores, plus instance scores for
    fluorescence when instance ground truth exists. Empty without a truth."""
    out = {}
    if truth is not None:
        out.update(score_labels(seg.labels, truth))
    if truth_instances is not None:
        match = match_instances(seg.nuclei, truth_instances)
        out.update({"instance_f1": match["f1"], "instance_precision": match["precision"],
                    "instance_recall": match["recall"],
                    "average_precision": average_precision(seg.nuclei, truth_instances)})
    return out


@st.cache_data(max_entries=8, show_spinner=False)
def _try_all(digest: str, params_json: str, has_truth: bool, _image, _truth):
    params = Params.from_json(params_json)
    rows, results = [], {}
    for method in AUTO_METHODS:
        if params.mode == Mode.FLUORESCENCE and method == ThresholdMethod.MULTIOTSU:
            continue
        trial = params.with_values({"threshold.method": method.value})
        try:
            seg = segmentation(digest, _image, trial)
        except ValueError as err:
            rows.append({"method": method.value, "error": str(err)})
            continue
        row = {"method": method.value, **{k: v for k, v in seg.thresholds.items()},
               "nc_ratio": seg.summary["nc_ratio"], "n_nuclei": seg.summary["n_nuclei"]}
        if has_truth:
            s = score_labels(seg.labels, _truth)
            row.update(mean_dice=s["mean_dice"], dice_cytoplasm=s["dice_cytoplasm"],
                       dice_nucleus=s["dice_nucleus"], nc_error=s["nc_error"])
        rows.append(row)
        results[method.value] = seg.labels
    return rows, results


def try_all_methods(digest: str, image: np.ndarray, params: Params, truth=None):
    """Every automatic threshold method on this image (other params kept).

    Returns
    -------
    rows : list of dict, ranked by mean Dice when `truth` is given
    labels : dict method -> (M, N) uint8 labels
    """
    rows, labels = _try_all(digest, params.to_json(indent=None), truth is not None,
                            image, truth)
    if truth is not None:
        rows = sorted(rows, key=lambda r: -r.get("mean_dice", -1.0))
    return rows, labels


@st.cache_data(max_entries=16, show_spinner=False)
def _image_uri(digest: str, step: int, _image) -> str:
    return jpeg_data_uri(to_rgb8(np.asarray(_image)[::step, ::step]))


def image_uri(digest: str, image: np.ndarray, step: int) -> str:
    """The image at display size as a JPEG data URI (it does not change with params)."""
    return _image_uri(digest, step, image)
