"""What the lesson "Why supervision pays" computes, bounded and cached: the ECSE 415
study's k-means and mean-shift per image, its forests, and the learned models, on a few
images of one dataset.

Bounds: the lesson's images are the first :data:`N_IMAGES` of the test split; the
supervised models learn from every :data:`TRAIN_STEP`-th training image, with small
forests (:data:`FOREST`). Every call is cached on (dataset name, source, settings);
fitted models with ``st.cache_resource`` (shared, never modified), tables with
``st.cache_data``. The numbers are reproducible with the core alone (the tests do).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from cellseg_core.learn import FeatureSettings, PixelClassifier
from cellseg_core.learn.clusters import (UNMATCHED, cluster_sweep, kmeans_clusters,
                                         match_clusters, meanshift_clusters, study_features,
                                         sweep_table)
from cellseg_core.learn.forests import StudyForest, study_scores
from cellseg_core.metrics import dice, misclassification_rates

from .figures import CLASS_COLORS, instance_rgb, to_rgb8

__all__ = ["N_IMAGES", "TRAIN_STEP", "SEED", "FOREST", "PIXEL_CLASSIFIER", "lesson_ids",
           "train_ids", "clusters", "sweep", "forest", "forest_table", "forest_curve",
           "learned_table", "cluster_rgb", "labels_rgb", "image_rgb"]

#: Test images the lesson shows and scores.
N_IMAGES = 4
#: Every TRAIN_STEP-th training image trains the supervised models.
TRAIN_STEP = 6
SEED = 0
#: The lesson's forests: the study's ensemble, smaller (4 forests of 10 trees).
FOREST = {"scale": 0.5, "n_forests": 4, "n_estimators": 10, "samples_per_class": 200}
#: The project's own pixel classifier, as small: a forest of 40 trees on its multiscale
#: colour features (its default gradient boosting takes minutes on a busy 2-core machine).
PIXEL_CLASSIFIER = {"estimator": "forest", "n_estimators": 40, "samples_per_class": 200,
                    "n_jobs": 1}


def lesson_ids(ds) -> list:
    return list(ds.split["test"])[:N_IMAGES]


def train_ids(ds) -> list:
    return list(ds.split["train"])[::TRAIN_STEP]


def _pairs(ds, ids):
    return [ds.image(i) for i in ids], [ds.mask(i) for i in ids]


# --- unsupervised ----------------------------------------------------------------------
@st.cache_resource(max_entries=48, show_spinner="Clustering…")
def _clusters(name: str, source: str, id: str, method: str, k: int, gray: bool,
              quantile: float, _ds):
    image, truth = _ds.image(id), _ds.mask(id)
    features = study_features(image, gray=gray)
    bandwidth = None
    if method == "k-means":
        cl = kmeans_clusters(None, k, rng=SEED, features=features)
    else:
        cl, bandwidth = meanshift_clusters(None, quantile=quantile, rng=SEED,
                                           features=features)
    cl.flags.writeable = False
    return cl, match_clusters(cl, truth), bandwidth


def clusters(ds, id: str, method: str = "k-means", *, k: int = 3, gray: bool = False,
             quantile: float = 0.3):
    """(cluster map, :class:`~cellseg_core.learn.clusters.ClusterMatch`, bandwidth or
    None) of image `id`, seeded with :data:`SEED`."""
    return _clusters(ds.name, ds.source, id, method, int(k), bool(gray), float(quantile), ds)


@st.cache_data(max_entries=8, show_spinner="Sweeping K over the lesson's images…")
def _sweep(name: str, source: str, ids: tuple, _ds) -> pd.DataFrame:
    images, masks = _pairs(_ds, ids)
    rgb = cluster_sweep(images, masks, (3, 4, 5), meanshift=True, ids=ids, rng=SEED)
    gray = cluster_sweep(images, masks, (3,), gray=True, ids=ids, rng=SEED)
    return sweep_table(pd.concat([rgb, gray], ignore_index=True))


def sweep(ds) -> pd.DataFrame:
    """The study's table on the lesson's images: K = 3, 4, 5 and mean-shift on RGB
    features, K = 3 on gray (:func:`~cellseg_core.learn.clusters.sweep_table`)."""
    return _sweep(ds.name, ds.source, tuple(lesson_ids(ds)), ds)


# --- supervised ------------------------------------------------------------------------
@st.cache_resource(max_entries=4, show_spinner="Training the forests on the train split…")
def _forest(name: str, source: str, features: str, mode_size: int, _ds) -> StudyForest:
    images, masks = _pairs(_ds, train_ids(_ds))
    return StudyForest(features, mode_size=mode_size, **FOREST).fit(images, masks, rng=SEED)


def forest(ds, features: str, mode_size: int = 5) -> StudyForest:
    """The lesson's :class:`~cellseg_core.learn.forests.StudyForest` (shared: read only)."""
    return _forest(ds.name, ds.source, features, int(mode_size), ds)


@st.cache_resource(max_entries=2, show_spinner="Training the pixel classifier…")
def _pixel_classifier(name: str, source: str, _ds) -> PixelClassifier:
    images, masks = _pairs(_ds, train_ids(_ds))
    return PixelClassifier(FeatureSettings(), **PIXEL_CLASSIFIER).fit(images, masks, rng=SEED)


def _scores(labels, truth) -> dict:
    return {**misclassification_rates(labels, truth),
            "mean_dice": (dice(labels, truth, 1) + dice(labels, truth, 2)) / 2,
            "dice_nucleus": dice(labels, truth, 2)}


@st.cache_data(max_entries=4, show_spinner="Scoring the forests…")
def _forest_table(name: str, source: str, _ds) -> pd.DataFrame:
    images, masks = _pairs(_ds, lesson_ids(_ds))
    rows = []
    for features, mode_size, label in (("raw", 1, "raw gray pixels"),
                                       ("raw", 5, "raw gray pixels + mode filter"),
                                       ("patch", 5, "9×9 patches + mode filter")):
        model = _forest(name, source, features, mode_size, _ds)
        scores = study_scores(model, images, masks).mean(numeric_only=True)
        rows.append({"forest on": label, **scores.to_dict()})
    return pd.DataFrame(rows)


def forest_table(ds) -> pd.DataFrame:
    """Raw pixels, raw + mode filter, patches + mode filter on the lesson's images."""
    return _forest_table(ds.name, ds.source, ds)


@st.cache_data(max_entries=4, show_spinner=False)
def _forest_curve(name: str, source: str, _ds) -> pd.DataFrame:
    images, masks = _pairs(_ds, lesson_ids(_ds))
    return _forest(name, source, "patch", 5, _ds).ensemble_curve(images, masks)


def forest_curve(ds) -> pd.DataFrame:
    """The patch ensemble's curve as its forests are added."""
    return _forest_curve(ds.name, ds.source, ds)


@st.cache_data(max_entries=4, show_spinner="Running the learned models…")
def _learned_table(name: str, source: str, has_nuclei: bool, _ds, _nuclei) -> pd.DataFrame:
    ids = lesson_ids(_ds)
    images, masks = _pairs(_ds, ids)
    rows = []

    def add(method, supervision, labels_of, *, nucleus_only=False):
        scores = pd.DataFrame([_scores(labels_of(i, im), m)
                               for i, im, m in zip(ids, images, masks)]).mean()
        row = {"method": method, "supervision": supervision, **scores.to_dict()}
        if nucleus_only:  # background / nucleus only: no cytoplasm to score
            row["mean_dice"] = row["misclassification"] = np.nan
        rows.append(row)

    add("k-means, K = 3 (clusters matched on the truth)", "none",
        lambda i, im: clusters(_ds, i, k=3)[1].labels)
    add("mean-shift (clusters matched on the truth)", "none",
        lambda i, im: clusters(_ds, i, "mean-shift")[1].labels)
    add("forest on 9×9 patches (the study)", "train masks",
        lambda i, im: _forest(name, source, "patch", 5, _ds).segment(im).labels)
    add("pixel classifier (multiscale colour features)", "train masks",
        lambda i, im: _pixel_classifier(name, source, _ds).segment(im).labels)
    if _nuclei is not None:
        add("built-in nucleus model (U-Net, ONNX)", "other data's masks",
            lambda i, im: _nuclei.segment(im).labels, nucleus_only=True)
    return pd.DataFrame(rows)


def learned_table(ds, nuclei=None) -> pd.DataFrame:
    """Every method of the lesson on its images: misclassification rates, mean Dice,
    nucleus Dice. `nuclei`: the built-in nucleus model's method, when it loads."""
    return _learned_table(ds.name, ds.source, nuclei is not None, ds, nuclei)


# --- pictures --------------------------------------------------------------------------
def cluster_rgb(clusters_map: np.ndarray) -> np.ndarray:
    """A cluster map in distinct colours."""
    return instance_rgb(np.asarray(clusters_map) + 1)


def labels_rgb(labels: np.ndarray) -> np.ndarray:
    """Classes in the app's colours (background dark gray); surplus clusters
    (:data:`~cellseg_core.learn.clusters.UNMATCHED`) orange: wrong pixels."""
    lut = np.zeros((256, 3), np.uint8)
    lut[0] = (40, 40, 40)
    for cls, colour in CLASS_COLORS.items():
        lut[cls] = colour
    lut[UNMATCHED] = (255, 145, 0)
    return lut[np.asarray(labels, np.uint8)]


def image_rgb(image: np.ndarray) -> np.ndarray:
    """The image as uint8 RGB for ``st.image``."""
    return to_rgb8(image)
