"""Nucleus methods side by side on instance ground truth: the seeds' "U-Net ≈ Otsu?".

:func:`compare_nuclei` runs every method on every image once and scores its nuclei
against the true instances: F1 at IoU 0.5, precision and recall
(:func:`~cellseg_core.metrics.match_instances`), DSB 2018 average precision over IoU
0.5:0.95 (:func:`~cellseg_core.metrics.average_precision`) and the count error, per
image and as a table of means per method. It also keeps the nuclei of a few images
(with or without ground truth) for a gallery of the same images under every method.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..metrics import average_precision, match_instances
from ..params import Params
from ..pipeline import segment

__all__ = ["NucleusComparison", "SUMMARY_COLUMNS", "compare_nuclei", "nucleus_scores"]

#: The summary table's columns after ``method`` and ``images`` (means over images).
SUMMARY_COLUMNS = {"F1@0.5": "f1", "DSB AP": "ap", "precision": "precision",
                   "recall": "recall", "|count error|": "abs_count_error",
                   "count error": "count_error", "s / image": "seconds"}


def nucleus_scores(pred, truth) -> dict:
    """F1 at IoU 0.5, DSB AP, precision, recall and count errors of one image.

    Examples
    --------
    >>> truth = np.zeros((6, 6), int); truth[0:2, 0:2] = 1; truth[3:5, 3:5] = 2
    >>> pred = np.zeros((6, 6), int); pred[0:2, 0:2] = 1
    >>> s = nucleus_scores(pred, truth)
    >>> s["f1"], s["precision"], s["recall"], s["count_error"]
    (0.6666666666666666, 1.0, 0.5, -1)
    """
    m = match_instances(pred, truth)
    return {"f1": m["f1"], "ap": average_precision(pred, truth), "precision": m["precision"],
            "recall": m["recall"], "count_error": m["count_error"],
            "abs_count_error": abs(m["count_error"]), "n_pred": m["n_pred"],
            "n_true": m["n_true"]}


@dataclass
class NucleusComparison:
    """What :func:`compare_nuclei` returns.

    Attributes
    ----------
    summary : DataFrame
        One row per method (in the order given): ``method``, ``images`` (with ground
        truth) and the means of :data:`SUMMARY_COLUMNS`; NaN scores without truth.
    per_image : DataFrame
        ``method``, ``id``, ``f1``, ``ap``, ``precision``, ``recall``,
        ``count_error``, ``abs_count_error``, ``n_pred``, ``n_true``, ``seconds``.
    gallery : dict
        ``id -> {method: nuclei (M, N) int32}`` for the gallery ids.
    """

    summary: pd.DataFrame
    per_image: pd.DataFrame
    gallery: dict = field(default_factory=dict)


def _nuclei(method, image) -> np.ndarray:
    params = method if isinstance(method, Params) else getattr(method, "params", None)
    seg = segment(image, params) if params is not None else method.segment(image)
    return np.asarray(seg.nuclei)


def compare_nuclei(dataset, ids, methods: dict, *, gallery_ids=(), progress=None
                   ) -> NucleusComparison:
    """Score nucleus methods on the items `ids` of `dataset` against their instances.

    Parameters
    ----------
    dataset : Dataset
        Items with ``instances(id)`` are scored; the others only counted.
    ids : list of str
    methods : dict
        Name -> Params or segmenter (``.segment(image) -> Segmentation``).
    gallery_ids : list of str
        Items whose nuclei are kept for every method (need not be in `ids`, nor have
        ground truth).
    progress : callable, optional
        ``progress(done, total, text)`` after each image.

    Returns
    -------
    NucleusComparison

    Examples
    --------
    >>> from cellseg_core.data import Dataset
    >>> img = np.zeros((12, 12), np.float32); img[2:6, 2:6] = 0.9
    >>> truth = (img > 0).astype(np.int32)
    >>> ds = Dataset.from_arrays("dots", [img], instances=[truth], kind="fluorescence")
    >>> p = Params().with_values({"mode": "fluorescence", "threshold.t_object": 0.5})
    >>> compare_nuclei(ds, ds.ids, {"t=0.5": p}).summary[["method", "F1@0.5"]].values.tolist()
    [['t=0.5', 1.0]]
    """
    if not methods:
        raise ValueError("`methods` is empty: name at least one method")
    ids, gallery_ids = list(ids), list(gallery_ids)
    todo = ids + [i for i in gallery_ids if i not in ids]
    rows, gallery = [], {i: {} for i in gallery_ids}
    for k, ident in enumerate(todo):
        image = dataset.image(ident)
        truth = dataset.instances(ident) if ident in ids else None
        for name, method in methods.items():
            t0 = time.perf_counter()
            nuclei = _nuclei(method, image)
            seconds = time.perf_counter() - t0
            if ident in gallery:
                gallery[ident][name] = nuclei.astype(np.int32, copy=False)
            if ident in ids:
                scores = (nucleus_scores(nuclei, truth) if truth is not None else
                          {"n_pred": int(len(np.unique(nuclei[nuclei > 0])))})
                rows.append({"method": name, "id": ident, **scores, "seconds": seconds})
        if progress is not None:
            progress(k + 1, len(todo), f"image {k + 1} of {len(todo)}")
    columns = ["method", "id", "f1", "ap", "precision", "recall", "count_error",
               "abs_count_error", "n_pred", "n_true", "seconds"]
    per_image = pd.DataFrame(rows, columns=columns)
    summary = []
    for name in methods:
        part = per_image[per_image["method"] == name]
        scored = part.dropna(subset=["f1"])
        row = {"method": name, "images": len(scored)}
        for label, col in SUMMARY_COLUMNS.items():
            values = part[col] if col == "seconds" else scored[col]
            row[label] = float(values.mean()) if len(values) else float("nan")
        summary.append(row)
    return NucleusComparison(pd.DataFrame(summary), per_image, gallery)
