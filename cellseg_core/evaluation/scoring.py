"""Scores of a method over a dataset's images: :func:`evaluate` and its shortcuts.

Params are run through the core pipeline with each image's channel cached; plain
two-threshold params (:func:`is_two_threshold`) are scored exactly from per-class
sorted values, without segmenting. How a threshold compares with a pixel matters for
exactness: the pipeline computes ``value < t`` in the channel's dtype (float32 for the
course's gray), so every threshold here is cast to the channel's dtype first.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..data import Dataset
from ..metrics import average_precision, confusion_matrix, match_instances, nc_errors
from ..params import Mode, Params, ThresholdMethod
from ..pipeline import is_automatic, labels_from_channel, segment
from ._cache import _channel, _ids, _mask, _sorted_by_class, _truth3, default_cache

__all__ = ["Evaluation", "evaluate", "instance_scores", "is_two_threshold",
           "scores_from_confusion"]


def _two_threshold_problem(params: Params) -> str | None:
    """Why `params` is not a plain two-threshold rule, or None when it is."""
    if is_automatic(params):
        return ("auto.kind is not 'off': automatic settings are chosen per image, not "
                "from a grid")
    if Mode(params.mode) != Mode.CYTOLOGY:
        return "mode is 'fluorescence' (one threshold, not the two-threshold rule)"
    if ThresholdMethod(params.threshold.method) != ThresholdMethod.MANUAL:
        return (f"threshold.method is {ThresholdMethod(params.threshold.method).value!r}: "
                "automatic thresholds are chosen per image, not from a grid")
    c = params.cleanup
    steps = [name for name, on in (
        ("opening_radius", c.opening_radius > 0), ("closing_radius", c.closing_radius > 0),
        ("min_nucleus_size", c.min_nucleus_size > 1),
        ("min_cytoplasm_size", c.min_cytoplasm_size > 1), ("fill_holes", c.fill_holes)) if on]
    if steps:
        return (f"clean-up changes the labels after thresholding ({', '.join('cleanup.' + s for s in steps)})")
    return None


def is_two_threshold(params: Params) -> bool:
    """True when `params` labels pixels by the two manual thresholds alone.

    Any channel and blur are allowed; automatic methods, clean-up steps and
    fluorescence mode are not (watershed only splits instances and does not count).
    """
    return _two_threshold_problem(params) is None


# --- metrics from confusion matrices --------------------------------------------------------
def scores_from_confusion(counts: np.ndarray) -> dict:
    """Every number of :func:`~cellseg_core.metrics.score_labels` from confusion matrices.

    Parameters
    ----------
    counts : (..., 3, 3) ndarray of int
        ``counts[..., i, j]``: pixels of true class i predicted as j.

    Returns
    -------
    dict of (...) float64 arrays with dice_cytoplasm, dice_nucleus, mean_dice,
    iou_cytoplasm, iou_nucleus, mean_iou, pixel_accuracy, nc_pred, nc_true, nc_error,
    nucleus_cell_ratio_pred, nucleus_cell_ratio_true, nucleus_cell_ratio_error;
    identical (bit for bit) to ``score_labels`` image by image.
    """
    counts = np.asarray(counts, dtype=np.int64)
    out = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for cls, name in ((1, "cytoplasm"), (2, "nucleus")):
            inter = counts[..., cls, cls]
            p, t = counts[..., :, cls].sum(-1), counts[..., cls, :].sum(-1)
            out[f"dice_{name}"] = np.where(p + t == 0, 1.0, 2.0 * inter / (p + t))
            union = p + t - inter
            out[f"iou_{name}"] = np.where(union == 0, 1.0, inter / union)
        out["mean_dice"] = (out["dice_cytoplasm"] + out["dice_nucleus"]) / 2
        out["mean_iou"] = (out["iou_cytoplasm"] + out["iou_nucleus"]) / 2
        total = counts.sum((-1, -2))
        out["pixel_accuracy"] = np.trace(counts, axis1=-2, axis2=-1) / np.maximum(total, 1)
        pred_c, pred_n = counts[..., :, 1].sum(-1), counts[..., :, 2].sum(-1)
        true_c, true_n = counts[..., 1, :].sum(-1), counts[..., 2, :].sum(-1)
        out["nc_pred"] = np.where(pred_c == 0, np.nan, pred_n / pred_c)
        out["nc_true"] = np.where(true_c == 0, np.nan, true_n / true_c)
        out["nucleus_cell_ratio_pred"] = np.where(pred_c + pred_n == 0, np.nan,
                                                  pred_n / (pred_n + pred_c))
        out["nucleus_cell_ratio_true"] = np.where(true_c + true_n == 0, np.nan,
                                                  true_n / (true_n + true_c))
    out["nc_error"] = out["nc_pred"] - out["nc_true"]
    out["nucleus_cell_ratio_error"] = (out["nucleus_cell_ratio_pred"]
                                       - out["nucleus_cell_ratio_true"])
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def _pooled_dice(counts: np.ndarray, fluorescence: bool = False) -> float:
    """Dice of each class over all pixels of all images together, averaged over classes."""
    scores = scores_from_confusion(np.asarray(counts).sum(0))
    return float(scores["dice_nucleus"] if fluorescence else scores["mean_dice"])


def _confusion_fast(labels: np.ndarray, truth3: np.ndarray) -> np.ndarray:
    """`confusion_matrix` for pipeline labels (known to be 0/1/2) and a cached 3 × mask."""
    if labels.shape != truth3.shape:
        raise ValueError(f"labels shape {labels.shape} does not match the mask shape "
                         f"{truth3.shape}")
    index = (truth3 + labels).ravel().astype(np.intp)
    return np.bincount(index, minlength=9).reshape(3, 3)


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Scores of one method over a set of images.

    Attributes
    ----------
    per_image : DataFrame
        One row per id: id, mean_dice, dice_cytoplasm, dice_nucleus, iou_cytoplasm,
        iou_nucleus, mean_iou, pixel_accuracy, nc_pred, nc_true, nc_error,
        nucleus_cell_ratio_pred, nucleus_cell_ratio_true, nucleus_cell_ratio_error, seconds.
    summary : dict
        mean_dice, dice_cytoplasm, dice_nucleus, mean_iou (means over images),
        pooled_dice (each class's Dice over all pixels together, averaged), nc_mae,
        nc_r2, nucleus_cell_ratio_mae, nucleus_cell_ratio_r2, seconds_per_image, n_images, exact_path (True when the two-threshold
        shortcut was used).
    confusion : (n, 3, 3) ndarray
        Per-image confusion matrices (true class, predicted class).
    """

    per_image: pd.DataFrame
    summary: dict
    confusion: np.ndarray = field(repr=False)


_COLUMNS = ["mean_dice", "dice_cytoplasm", "dice_nucleus", "iou_cytoplasm", "iou_nucleus",
            "mean_iou", "pixel_accuracy", "nc_pred", "nc_true", "nc_error",
            "nucleus_cell_ratio_pred", "nucleus_cell_ratio_true", "nucleus_cell_ratio_error"]


def _confusion_two_threshold(per_class, t_nuc, t_bg) -> np.ndarray:
    """Confusion matrix of the two-threshold rule from one image's sorted class values."""
    out = np.empty((3, 3), np.int64)
    for c, values in enumerate(per_class):
        # Exactly `two_threshold`: nucleus v < t_nuc and v < t_bg, cytoplasm below t_bg.
        tb = np.asarray(t_bg).astype(values.dtype)
        tn = min(np.asarray(t_nuc).astype(values.dtype), tb)
        below_n, below_b = np.searchsorted(values, [tn, tb], side="left")
        out[c] = (values.size - below_b, below_b - below_n, below_n)
    return out


def _engine_params(method) -> Params | None:
    """The engine params `method` runs (Params itself, or a segmenter's ``params``); None
    for a learned model. TypeError for anything that cannot segment."""
    params = method if isinstance(method, Params) else getattr(method, "params", None)
    if params is None and not callable(getattr(method, "segment", None)):
        raise TypeError(f"`method` must be Params or a segmenter (with .segment(image)), "
                        f"got {type(method).__name__}")
    return params


def instance_scores(dataset: Dataset, ids, method) -> dict | None:
    """Instance F1 at IoU 0.5 and DSB average precision of `method`'s nuclei, averaged
    over the items of `ids` that have instance labels; None when none has.

    Examples
    --------
    >>> from cellseg_core.data import Dataset
    >>> img = np.zeros((8, 8), np.float32); img[2:5, 2:5] = 0.9
    >>> truth = (img > 0).astype(np.int32)
    >>> ds = Dataset.from_arrays("dots", [img], instances=[truth], kind="fluorescence")
    >>> params = Params().with_values({"mode": "fluorescence", "threshold.t_object": 0.5})
    >>> instance_scores(ds, None, params)["instance_f1_0.5"]
    1.0
    """
    params = _engine_params(method)
    f1, ap = [], []
    for id in _ids(dataset, ids):
        truth = dataset.instances(id)
        if truth is None:
            continue
        image = dataset.image(id)
        seg = segment(image, params) if params is not None else method.segment(image)
        f1.append(match_instances(seg.nuclei, truth, 0.5)["f1"])
        ap.append(average_precision(seg.nuclei, truth))
    if not f1:
        return None
    return {"instance_f1_0.5": float(sum(f1) / len(f1)), "instance_ap": float(sum(ap) / len(ap)),
            "n_instance_images": len(f1)}


def evaluate(dataset: Dataset, ids, method, *, cache=None, progress=None) -> Evaluation:
    """Score `method` on the items `ids` of `dataset` against their masks.

    Parameters
    ----------
    dataset : Dataset
    ids : list of str or None
        Items to score (None: all); each needs a mask.
    method : Params or Segmenter (see :mod:`cellseg_core.methods`)
        Anything with ``.segment(image) -> Segmentation``; Params (or a segmenter whose
        ``params`` are not None) are run through the core pipeline with each image's channel cached
        (keyed by dataset, id, channel and blur); plain two-threshold params use
        the exact histogram shortcut (same numbers, no segmentation).
    cache : mapping, optional
        Default :func:`default_cache` (bounded, shared across calls).
    progress : callable, optional
        ``progress(done, total)`` after each image.

    Returns
    -------
    Evaluation

    Notes
    -----
    For fluorescence (dataset kind or params mode), labels are 0/2 and the scores
    ``mean_dice``/``mean_iou``/``pooled_dice`` are those of the object class
    (nucleus) alone: averaging in an always-empty cytoplasm class would add a
    meaningless 1.

    Examples
    --------
    >>> from cellseg_core.data import Dataset
    >>> ds = Dataset.from_arrays("tiny", [np.array([[0.2, 0.5, 0.9]], np.float32)],
    ...                          masks=[np.array([[2, 1, 0]], np.uint8)])
    >>> evaluate(ds, None, Params(), cache={}).summary["mean_dice"]
    1.0
    """
    start = time.perf_counter()
    cache = default_cache() if cache is None else cache
    ids = _ids(dataset, ids)
    n = len(ids)
    confusion = np.empty((n, 3, 3), np.int64)
    seconds = np.empty(n)
    params = _engine_params(method)  # cached and exact paths; None: a learned model
    exact = params is not None and is_two_threshold(params)
    fluorescence = dataset.kind == "fluorescence" or (
        params is not None and Mode(params.mode) == Mode.FLUORESCENCE)
    for i, id in enumerate(ids):
        t0 = time.perf_counter()
        if exact:
            per_class = _sorted_by_class(dataset, id, params, cache)
            confusion[i] = _confusion_two_threshold(per_class, params.threshold.t_nuc,
                                                    params.threshold.t_bg)
        elif params is not None and not is_automatic(params):
            labels = labels_from_channel(_channel(dataset, id, params, cache)[1], params)[1]
            confusion[i] = _confusion_fast(labels, _truth3(dataset, id, cache))
        else:  # a learned model, or automatic params (settings resolved per image)
            image = dataset.image(id)
            seg = segment(image, params) if params is not None else method.segment(image)
            confusion[i] = confusion_matrix(seg.labels, _mask(dataset, id, cache))
        seconds[i] = time.perf_counter() - t0
        if progress is not None:
            progress(i + 1, n)

    scores = scores_from_confusion(confusion)
    if fluorescence:
        scores["mean_dice"] = scores["dice_nucleus"].copy()
        scores["mean_iou"] = scores["iou_nucleus"].copy()
    per_image = pd.DataFrame({"id": ids, **{k: scores[k] for k in _COLUMNS},
                              "seconds": seconds})
    summary = {
        "mean_dice": float(scores["mean_dice"].mean()),
        "dice_cytoplasm": float(scores["dice_cytoplasm"].mean()),
        "dice_nucleus": float(scores["dice_nucleus"].mean()),
        "mean_iou": float(scores["mean_iou"].mean()),
        "pooled_dice": _pooled_dice(confusion, fluorescence),
        **nc_errors(scores["nc_pred"], scores["nc_true"]),
        **{f"nucleus_cell_ratio_{k[3:]}": v for k, v in nc_errors(
            scores["nucleus_cell_ratio_pred"], scores["nucleus_cell_ratio_true"]).items()},
        "seconds_per_image": (time.perf_counter() - start) / n,
        "n_images": n,
        "exact_path": bool(exact),
    }
    return Evaluation(per_image=per_image, summary=summary, confusion=confusion)


