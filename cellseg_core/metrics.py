"""Agreement between predicted and true labels: Dice, IoU, N/C ratio, instances."""
from __future__ import annotations

import numpy as np

__all__ = [
    "dice", "iou", "mean_dice", "pixel_accuracy", "confusion_matrix", "nc_ratio",
    "nucleus_cell_ratio", "nc_errors", "r2_identity", "misclassification_rates",
    "score_labels", "match_instances", "average_precision",
    "DSB_IOU_THRESHOLDS",
]

#: IoU thresholds of the 2018 Data Science Bowl mean average precision.
DSB_IOU_THRESHOLDS = np.round(np.arange(0.5, 1.0, 0.05), 2)


def _check_pair(pred, truth):
    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.shape != truth.shape:
        raise ValueError(
            f"`pred` (shape {pred.shape}) must have same shape as `truth` (shape {truth.shape})")
    return pred, truth


def dice(pred, truth, cls: int) -> float:
    """Dice coefficient 2|P∩T| / (|P| + |T|) of class `cls`; 1.0 when both are empty.

    Examples
    --------
    >>> dice([[0, 1, 1]], [[1, 1, 0]], 1)
    0.5
    >>> dice([[0, 0]], [[0, 0]], 2)
    1.0
    """
    pred, truth = _check_pair(pred, truth)
    p, t = pred == cls, truth == cls
    total = int(p.sum()) + int(t.sum())
    return 1.0 if total == 0 else 2.0 * int((p & t).sum()) / total


def iou(pred, truth, cls: int) -> float:
    """Intersection over union of class `cls`; 1.0 when both are empty."""
    pred, truth = _check_pair(pred, truth)
    p, t = pred == cls, truth == cls
    union = int((p | t).sum())
    return 1.0 if union == 0 else int((p & t).sum()) / union


def mean_dice(pred, truth) -> float:
    """The course's score: (Dice cytoplasm + Dice nucleus) / 2."""
    return (dice(pred, truth, 1) + dice(pred, truth, 2)) / 2


def pixel_accuracy(pred, truth) -> float:
    """Fraction of pixels whose class is right."""
    pred, truth = _check_pair(pred, truth)
    return float((pred == truth).mean())


def misclassification_rates(pred, truth, nucleus: int = 2) -> dict:
    """The ECSE 415 study's metrics: the fraction of pixels of the wrong class
    (``misclassification``, 1 − pixel accuracy) and of the wrong side of
    nucleus-versus-rest (``nucleus_misclassification``).

    Examples
    --------
    >>> misclassification_rates([[0, 1, 2, 2]], [[0, 2, 2, 1]])
    {'misclassification': 0.5, 'nucleus_misclassification': 0.5}
    >>> misclassification_rates([[0, 1, 2, 2]], [[1, 0, 2, 2]])["nucleus_misclassification"]
    0.0
    """
    pred, truth = _check_pair(pred, truth)
    if pred.size == 0:
        raise ValueError("`pred` and `truth` are empty")
    return {"misclassification": float((pred != truth).mean()),
            "nucleus_misclassification": float(((pred == nucleus) != (truth == nucleus)).mean())}


def confusion_matrix(pred, truth, n_classes: int = 3) -> np.ndarray:
    """Counts ``C[i, j]`` of pixels of true class i predicted as j."""
    pred, truth = _check_pair(pred, truth)
    if pred.size and (pred.max() >= n_classes or truth.max() >= n_classes):
        raise ValueError(f"labels must be below `n_classes` ({n_classes})")
    index = truth.astype(np.int64).ravel() * n_classes + pred.astype(np.int64).ravel()
    return np.bincount(index, minlength=n_classes ** 2).reshape(n_classes, n_classes)


def nc_ratio(labels) -> float:
    """Nucleus pixels / cytoplasm pixels; NaN when there is no cytoplasm.

    Examples
    --------
    >>> nc_ratio([[0, 1, 1, 2]])
    0.5
    """
    labels = np.asarray(labels)
    cytoplasm = int((labels == 1).sum())
    return float("nan") if cytoplasm == 0 else int((labels == 2).sum()) / cytoplasm


def nucleus_cell_ratio(labels) -> float:
    """Nucleus pixels / (nucleus + cytoplasm) pixels, between 0 and 1.

    The N/C ratio of The Paris System and QuPath's "Nucleus/Cell area ratio", where
    :func:`nc_ratio` is the course's nucleus / cytoplasm. 1.0 when there are nuclei but
    no cytoplasm; NaN when there is neither. The two convert into each other:
    ``r = n / (1 + n)`` and ``n = r / (1 - r)``.

    Examples
    --------
    >>> nucleus_cell_ratio([[0, 1, 1, 2]])
    0.3333333333333333
    >>> nucleus_cell_ratio([[0, 2, 2]]), nucleus_cell_ratio([[0, 0]])
    (1.0, nan)
    """
    labels = np.asarray(labels)
    nucleus = int((labels == 2).sum())
    cell = nucleus + int((labels == 1).sum())
    return float("nan") if cell == 0 else nucleus / cell


def r2_identity(pred, truth) -> float:
    """R² against the identity line: 1 − Σ(pred − true)² / Σ(true − mean true)².

    Pairs where either value is NaN are left out; NaN when fewer than two remain
    or the true values do not vary.
    """
    pred, truth = np.asarray(pred, float), np.asarray(truth, float)
    ok = np.isfinite(pred) & np.isfinite(truth)
    pred, truth = pred[ok], truth[ok]
    spread = float(((truth - truth.mean()) ** 2).sum()) if truth.size else 0.0
    if truth.size < 2 or spread == 0:
        return float("nan")
    return 1.0 - float(((pred - truth) ** 2).sum()) / spread


def nc_errors(pred_nc, true_nc) -> dict:
    """N/C mean absolute error and R² (identity) over a set, NaN pairs left out."""
    pred, truth = np.asarray(pred_nc, float), np.asarray(true_nc, float)
    ok = np.isfinite(pred) & np.isfinite(truth)
    mae = float(np.abs(pred[ok] - truth[ok]).mean()) if ok.any() else float("nan")
    return {"nc_mae": mae, "nc_r2": r2_identity(pred, truth)}


def score_labels(pred, truth) -> dict:
    """Every per-image number of a cytology prediction against its mask.

    Returns
    -------
    dict with dice_cytoplasm, dice_nucleus, mean_dice, iou_cytoplasm, iou_nucleus,
    mean_iou, pixel_accuracy, nc_pred, nc_true, nc_error (nucleus / cytoplasm, see
    :func:`nc_ratio`), nucleus_cell_ratio_pred, nucleus_cell_ratio_true,
    nucleus_cell_ratio_error (nucleus / cell, see :func:`nucleus_cell_ratio`).
    """
    pred, truth = _check_pair(pred, truth)
    counts = confusion_matrix(pred, truth)
    out = {}
    for cls, name in ((1, "cytoplasm"), (2, "nucleus")):
        inter = counts[cls, cls]
        p, t = counts[:, cls].sum(), counts[cls, :].sum()
        out[f"dice_{name}"] = 1.0 if p + t == 0 else 2.0 * inter / (p + t)
        out[f"iou_{name}"] = 1.0 if p + t - inter == 0 else inter / (p + t - inter)
    out["mean_dice"] = (out["dice_cytoplasm"] + out["dice_nucleus"]) / 2
    out["mean_iou"] = (out["iou_cytoplasm"] + out["iou_nucleus"]) / 2
    out["pixel_accuracy"] = float(np.trace(counts) / max(counts.sum(), 1))
    out["nc_pred"] = nc_ratio(pred)
    out["nc_true"] = nc_ratio(truth)
    out["nc_error"] = out["nc_pred"] - out["nc_true"]
    out["nucleus_cell_ratio_pred"] = nucleus_cell_ratio(pred)
    out["nucleus_cell_ratio_true"] = nucleus_cell_ratio(truth)
    out["nucleus_cell_ratio_error"] = (out["nucleus_cell_ratio_pred"]
                                       - out["nucleus_cell_ratio_true"])
    return {k: float(v) for k, v in out.items()}


def _iou_matrix(pred, truth):
    """IoU of every (true, predicted) instance pair, from one joint histogram."""
    pred, truth = _check_pair(pred, truth)
    n_pred, n_true = int(pred.max(initial=0)), int(truth.max(initial=0))
    joint = np.bincount(truth.astype(np.int64).ravel() * (n_pred + 1) + pred.astype(np.int64).ravel(),
                        minlength=(n_true + 1) * (n_pred + 1)).reshape(n_true + 1, n_pred + 1)
    inter = joint[1:, 1:].astype(float)
    area_true = joint[1:, :].sum(1)[:, None]
    area_pred = joint[:, 1:].sum(0)[None, :]
    union = area_true + area_pred - inter
    present_t = area_true[:, 0] > 0
    present_p = area_pred[0] > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        iou_matrix = np.where(union > 0, inter / union, 0.0)
    return iou_matrix[present_t][:, present_p]


def match_instances(pred, truth, threshold: float = 0.5) -> dict:
    """Match instances at IoU > `threshold` (one-to-one for threshold >= 0.5).

    Returns
    -------
    dict with tp, fp, fn, precision, recall, f1, n_pred, n_true, count_error,
    matched_pred / matched_true (the ids that found a partner).
    """
    if threshold < 0.5:
        raise ValueError(f"`threshold` must be >= 0.5 for a unique matching, got {threshold}")
    pred, truth = np.asarray(pred), np.asarray(truth)
    ious = _iou_matrix(pred, truth)
    true_ids = np.flatnonzero(np.bincount(truth.ravel().astype(np.int64))[1:]) + 1
    pred_ids = np.flatnonzero(np.bincount(pred.ravel().astype(np.int64))[1:]) + 1
    hits = ious > threshold
    tp = int(hits.sum())
    n_pred, n_true = len(pred_ids), len(true_ids)
    fp, fn = n_pred - tp, n_true - tp
    precision = tp / n_pred if n_pred else 1.0 if n_true == 0 else 0.0
    recall = tp / n_true if n_true else 1.0 if n_pred == 0 else 0.0
    f1 = 2 * tp / (n_pred + n_true) if n_pred + n_true else 1.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1,
            "n_pred": n_pred, "n_true": n_true, "count_error": n_pred - n_true,
            "matched_pred": pred_ids[hits.any(0)], "matched_true": true_ids[hits.any(1)]}


def average_precision(pred, truth, thresholds=DSB_IOU_THRESHOLDS) -> float:
    """DSB-2018 mean average precision: mean over IoU thresholds of TP / (TP + FP + FN)."""
    ious = _iou_matrix(pred, truth)
    n_true, n_pred = ious.shape
    if n_true + n_pred == 0:
        return 1.0
    scores = []
    for t in thresholds:
        tp = int((ious > t).sum())
        scores.append(tp / (n_true + n_pred - tp))
    return float(np.mean(scores))
