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

import hashlib

import numpy as np
import pandas as pd
import streamlit as st

from cellseg_core import evaluation
from cellseg_core.color import brightest_channel as _brightest_channel
from cellseg_core import experiments as E
from cellseg_core.methods import ModelMethod, load_method
from cellseg_core.data import course_split as _course_split_core
from cellseg_core.data import stratified_split as _stratified_split
from cellseg_core.data import synthetic
from cellseg_core.learn import FeatureSettings, PixelClassifier, uncertainty
from cellseg_core.learn.objects import object_features
from cellseg_core.measure import region_stats
from cellseg_core.metrics import average_precision, match_instances, score_labels
from cellseg_core.params import CleanupParams, Mode, Params, ThresholdMethod
from cellseg_core.pipeline import Segmentation, preprocess, preprocess_key, segment
from cellseg_core.presets import get_preset
from cellseg_core.threshold import AUTO_METHODS

from . import worker
from .figures import class_histograms, jpeg_data_uri, to_rgb8

__all__ = ["preprocessed", "segmentation", "histograms", "scores", "try_all_methods",
           "image_uri", "seed_sample", "noise_sweep_level", "peak_check", "noise_floor",
           "noise_floor_curve", "touching", "dataset_evaluation", "dataset_surface",
           "optimise_thresholds", "dataset_item", "stratified_split", "course_split",
           "ablation", "gradient_exercise", "stroke_prediction", "builtin_method",
           "instance_scores", "brightest_channel", "cell_features"]


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
    if worker.is_heavy(_image):  # issue 21 point 4: large images in the worker pool
        seg = worker.segmentation(digest, _image, params_json)
        _read_only(seg.labels, seg.nuclei, seg.raw)
        return seg
    params = Params.from_json(params_json)
    seg = segment(_image, params, preprocessed=preprocessed(digest, _image, params))
    _read_only(seg.labels, seg.nuclei, seg.raw)
    seg.summary  # noqa: B018  computed once, kept on the shared object
    return seg


def segmentation(digest: str, image: np.ndarray, params: Params) -> Segmentation:
    """`segment(image, params)`, cached on (digest, params JSON)."""
    return _segmentation(digest, params.to_json(indent=None), image)


@st.cache_data(max_entries=16, show_spinner=False)
def _histograms(digest: str, key: tuple, has_truth: bool, _image, _params, _truth):
    truth = _truth if has_truth else None
    if worker.is_heavy(_image):  # issue 21 point 4: large images in the worker pool
        return worker.histograms(digest, _image, _params, truth)
    _, blurred = preprocessed(digest, _image, _params)
    return class_histograms(blurred, truth)


def histograms(digest: str, image: np.ndarray, params: Params, truth=None) -> dict:
    """Per-class histogram of the thresholded (blurred) channel, cached."""
    return _histograms(digest, preprocess_key(params), truth is not None, image, params, truth)


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
               "nc_ratio": seg.summary["nc_ratio"],
               "nucleus_cell_ratio": seg.summary["nucleus_cell_ratio"],
               "n_nuclei": seg.summary["n_nuclei"]}
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


# --- the Count page and the counting lesson: the seed's image and experiments -------------
@st.cache_data(max_entries=16, show_spinner=False)
def _instance_scores(digest: str, method_key: str, _nuclei, _truth) -> dict:
    return {**match_instances(_nuclei, _truth), "ap": average_precision(_nuclei, _truth)}


def instance_scores(digest: str, method, seg: Segmentation, truth) -> dict:
    """``match_instances`` of ``seg.nuclei`` against the true instances, plus the DSB
    average precision (``"ap"``), cached on the image digest and the method: Params
    (by their JSON) or a string naming a model and its identity."""
    key = method.to_json(indent=None) if isinstance(method, Params) else str(method)
    return _instance_scores(digest, key, seg.nuclei, truth)


@st.cache_data(max_entries=64, show_spinner=False)
def _brightest(digest: str, _image) -> str:
    return _brightest_channel(_image).value


def brightest_channel(digest: str, image: np.ndarray) -> str:
    """:func:`cellseg_core.color.brightest_channel` of an image, cached: its value."""
    return _brightest(digest, image)

@st.cache_data(max_entries=2, show_spinner=False)
def seed_sample():
    """The seed's synthetic fluorescence image: ``(image, labels, n_cells)``."""
    s = synthetic.fluorescence_image()
    return s.image, s.labels, s.n_cells


@st.cache_data(max_entries=64, show_spinner=False)
def noise_sweep_level(level: float, n_images: int) -> pd.DataFrame:
    """One noise level of the sweep (cached per level, so a progress bar can move)."""
    return E.noise_sweep([level], n_images)


@st.cache_data(max_entries=32, show_spinner=False)
def _peak_check(params_json: str):
    return E.peak_check(Params.from_json(params_json))


def peak_check(params: Params) -> pd.DataFrame:
    """:func:`~cellseg_core.experiments.peak_check` of `params`, cached."""
    return _peak_check(params.to_json(indent=None))


@st.cache_data(max_entries=32, show_spinner=False)
def _noise_floor(t: float, params_json: str) -> dict:
    r = E.noise_floor(t, Params.from_json(params_json))
    return {k: v for k, v in r.items() if k not in ("image", "blurred", "objects")}


def noise_floor(t: float, params: Params) -> dict:
    """:func:`~cellseg_core.experiments.noise_floor`'s numbers (no images), cached."""
    return _noise_floor(float(t), params.to_json(indent=None))


@st.cache_data(max_entries=8, show_spinner=False)
def _noise_floor_curve(params_json: str):
    return E.noise_floor_curve(np.round(np.arange(0.02, 0.31, 0.01), 2),
                               Params.from_json(params_json))


def noise_floor_curve(params: Params) -> pd.DataFrame:
    """False cells on pure noise at thresholds 0.02 … 0.30, cached."""
    return _noise_floor_curve(params.to_json(indent=None))


@st.cache_data(max_entries=32, show_spinner=False)
def _touching(d: float, params_json: str) -> dict:
    r = E.touching_experiment(d, Params.from_json(params_json))
    return {k: r[k] for k in ("n_plain", "n_split", "threshold", "midpoint_raw",
                              "midpoint_predicted", "midpoint_measured", "merge_distance",
                              "profile_t", "profile", "profile_clean")}


def touching(d: float, params: Params) -> dict:
    """:func:`~cellseg_core.experiments.touching_experiment`'s numbers, cached."""
    return _touching(float(d), params.to_json(indent=None))


# --- the N/C lesson and Optimise: scores of a dataset's split ------------------------------
@st.cache_data(max_entries=64, show_spinner="Scoring on the split…")
def _dataset_evaluation(name: str, source: str, ids: tuple, params_json: str, _ds):
    return evaluation.evaluate(_ds, list(ids), Params.from_json(params_json))


def dataset_evaluation(ds, ids, params: Params):
    """``evaluation.evaluate`` of `params` on `ids` of `ds`, cached."""
    return _dataset_evaluation(ds.name, ds.source, tuple(ids), params.to_json(indent=None), ds)


@st.cache_data(max_entries=4, show_spinner="Running the ablation (each step alone)…")
def _ablation(name: str, source: str, ids: tuple, base_json: str, _ds):
    return E.ablation(_ds, list(ids), Params.from_json(base_json))


def ablation(ds, ids, base: Params):
    """:func:`cellseg_core.experiments.ablation` of `base` on `ids` of `ds`, cached."""
    return _ablation(ds.name, ds.source, tuple(ids), base.to_json(indent=None), ds)


@st.cache_data(max_entries=2, show_spinner="Counting cells under the gradients…")
def gradient_exercise(n_images: int = 8):
    """:func:`cellseg_core.experiments.gradient_exercise` at the tutorial's settings,
    cached."""
    return E.gradient_exercise(n_images=n_images)


@st.cache_data(max_entries=8, show_spinner="Computing the exact Dice surface…")
def _dataset_surface(name: str, source: str, ids: tuple, params_json: str, _ds):
    return evaluation.dice_surface(_ds, list(ids), Params.from_json(params_json))


def dataset_surface(ds, ids, params: Params):
    """``evaluation.dice_surface`` of `params`' channel and blur on `ids`, cached."""
    return _dataset_surface(ds.name, ds.source, tuple(ids), params.to_json(indent=None), ds)


@st.cache_data(max_entries=8, show_spinner="Optimising the thresholds…")
def _optimise_thresholds(name: str, source: str, ids: tuple, n_calls: int, seed: int, _ds):
    r = evaluation.optimize(_ds, list(ids), evaluation.DEFAULT_SPACE, get_preset("lab01"),
                            n_calls=n_calls, random_state=seed)
    return r.best_params.to_json(indent=None), r.best_score, r.history


def optimise_thresholds(ds, ids, n_calls: int, seed: int):
    """The two thresholds searched from ``lab01`` on `ids`: (best params JSON, best
    score, history), cached."""
    return _optimise_thresholds(ds.name, ds.source, tuple(ids), int(n_calls), int(seed), ds)


@st.cache_data(max_entries=16, show_spinner=False)
def _dataset_item(name: str, source: str, image_id: str, _ds):
    return _ds.image(image_id), _ds.mask(image_id)


def dataset_item(ds, image_id: str):
    """(image, mask) of one item of `ds`, cached."""
    return _dataset_item(ds.name, ds.source, image_id, ds)


@st.cache_data(max_entries=8, show_spinner="Making the stratified split…")
def _split(name: str, source: str, test_fraction: float, seed: int, drop: bool, _ds):
    return _stratified_split(_ds, test_fraction, seed, drop_without_nucleus=drop)


def stratified_split(ds, test_fraction: float, seed: int, drop: bool) -> dict:
    """:func:`cellseg_core.data.stratified_split` of `ds`, cached."""
    return _split(ds.name, ds.source, float(test_fraction), int(seed), bool(drop), ds)


@st.cache_data(max_entries=8, show_spinner="Making the course's Lab 02 split…")
def _course_split(name: str, source: str, which: str, _ds):
    return _course_split_core(_ds, which)


def course_split(ds, which: str = "lab02") -> dict:
    """:func:`cellseg_core.data.course_split` of `ds` (``lab02-train``, ``lab02-test``),
    cached: read from ``split_lab02.json`` where the dataset has one, else derived."""
    return _course_split(ds.name, ds.source, which, ds)


# --- the Train page's strokes -----------------------------------------------------------
@st.cache_resource(max_entries=4, show_spinner=False)
def _fit_strokes(digest: str, strokes_sha: str, _image, _strokes):
    model = PixelClassifier(FeatureSettings(scale=0.5, sigma_max=8.0), n_estimators=30,
                            samples_per_class=2000, cleanup=CleanupParams(), n_jobs=1)
    model.fit([_image], [_strokes], rng=0)
    proba = model.predict_proba(_image)
    return model, proba.argmax(-1).astype(np.uint8), uncertainty(proba)


def stroke_prediction(source, strokes):
    """(model, labels, uncertainty) of a pixel classifier fitted on the strokes, cached."""
    sha = hashlib.sha256(strokes.tobytes()).hexdigest()
    return _fit_strokes(source.digest, sha, source.image, strokes)


@st.cache_resource(max_entries=4, show_spinner=False)
def builtin_method(spec: str) -> ModelMethod:
    """A model shipped with cellseg (``builtin:nuclei``), loaded once per server: its
    onnxruntime session is shared by every session (read-only)."""
    return load_method(spec)


@st.cache_resource(max_entries=8, show_spinner=False)
def _cell_features(digest: str, params_json: str, pixel_size, radius: float, _image, _seg):
    cells = _seg.cells if (_seg.labels == 1).any() else None
    ids, x, names = object_features(_image, _seg.nuclei, _seg.labels, cells=cells,
                                    pixel_size=pixel_size, radius=radius)
    centres = region_stats(_seg.nuclei)[["centroid_row", "centroid_col"]].to_numpy()
    return _read_only(ids, x, centres) + (tuple(names),)


def cell_features(digest: str, image: np.ndarray, params: Params, seg: Segmentation, *,
                  pixel_size: float | None = None, radius: float) -> tuple:
    """``(ids, features, centroids (K, 2) row/col, names)`` of every nucleus of `seg`
    (:func:`~cellseg_core.learn.objects.object_features`), cached on (digest, params,
    pixel size, radius)."""
    return _cell_features(digest, params.to_json(indent=None), pixel_size, float(radius),
                          image, seg)
