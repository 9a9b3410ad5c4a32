"""Scoring parameters against ground truth, exact Dice surfaces, Bayesian optimisation.

Three tools over a :class:`~cellseg_core.datasets.Dataset`:

:func:`dice_surface`
    For a pipeline that is only the two-threshold rule on one channel, the mean Dice
    of *every* ``(t_nuc, t_bg)`` pair of a grid, from per-class cumulative
    histograms of the channel values instead of re-segmenting (exact, not an
    approximation).
:func:`evaluate`
    Mean and per-class Dice, IoU, N/C errors of any params (or any object with a
    ``.segment(image)`` method) over any ids, with each image's preprocessed channel
    kept in a bounded cache across calls.
:func:`optimize`
    scikit-optimize's ``gp_minimize`` over any dotted parameters of a :class:`Params`.

How a threshold compares with a pixel matters for exactness: the pipeline computes
``value < t`` in the channel's dtype (float32 for the course's gray), so every
threshold here is cast to the channel's dtype before it is compared or searched.
"""
from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .datasets import Dataset, resolve_id
from .metrics import confusion_matrix, nc_errors
from .params import BlurKind, Mode, Params, ThresholdMethod
from .pipeline import is_automatic, labels_from_channel, preprocess, segment

__all__ = [
    "ChannelCache",
    "DiceSurface",
    "Evaluation",
    "OptimizeResult",
    "DEFAULT_SPACE",
    "LAB03V2_SPACE",
    "is_two_threshold",
    "dice_surface",
    "evaluate",
    "optimize",
    "scores_from_confusion",
    "default_cache",
]

#: The course's search ranges for the two thresholds (Lab 02: its best t_bg, 0.99, is
#: the top of its range); the Optimise page uses the same defaults.
DEFAULT_SPACE = {"threshold.t_nuc": (0.1, 0.7), "threshold.t_bg": (0.5, 0.99)}

#: The Lab 03-v2 parameters: thresholds, minimum piece sizes and hole filling.
LAB03V2_SPACE = {
    **DEFAULT_SPACE,
    "cleanup.min_nucleus_size": (10, 500),
    "cleanup.min_cytoplasm_size": (10, 500),
    "cleanup.fill_holes": [True, False],
}


# --- cache ---------------------------------------------------------------------------------
def _nbytes(value) -> int:
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, (tuple, list)):
        seen, total = set(), 0
        for item in value:
            if isinstance(item, np.ndarray) and id(item) in seen:
                continue
            seen.add(id(item))
            total += _nbytes(item)
        return total
    return 64


class ChannelCache:
    """A least-recently-used mapping bounded by total array bytes.

    Used by :func:`evaluate` to keep each image's preprocessed channel, its mask and
    its per-class sorted values between calls. Any ``dict`` works in its place
    (unbounded); this one forgets the oldest entries beyond `max_bytes`.

    Examples
    --------
    >>> c = ChannelCache(max_bytes=100)
    >>> c["a"] = np.zeros(10)          # 80 bytes
    >>> c["b"] = np.zeros(10)          # evicts "a"
    >>> list(c)
    ['b']
    """

    def __init__(self, max_bytes: int = 512 * 2**20):
        if max_bytes <= 0:
            raise ValueError(f"`max_bytes` must be > 0, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self.nbytes = 0
        self._data: OrderedDict = OrderedDict()

    def __contains__(self, key) -> bool:
        return key in self._data

    def __getitem__(self, key):
        value, _ = self._data[key]
        self._data.move_to_end(key)
        return value

    def __setitem__(self, key, value):
        if key in self._data:
            self.nbytes -= self._data.pop(key)[1]
        size = _nbytes(value)
        self._data[key] = (value, size)
        self.nbytes += size
        while self.nbytes > self.max_bytes and len(self._data) > 1:
            self.nbytes -= self._data.popitem(last=False)[1][1]

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self):
        return iter(self._data)

    def clear(self):
        self._data.clear()
        self.nbytes = 0


_DEFAULT_CACHE = ChannelCache()


def default_cache() -> ChannelCache:
    """The module-level cache :func:`evaluate` uses when given none (512 MiB)."""
    return _DEFAULT_CACHE


def _cached(cache, key, make):
    try:
        return cache[key]
    except KeyError:
        value = make()
        cache[key] = value
        return value


def _prep_key(params: Params) -> tuple:
    """The parameters the preprocessed channel depends on (and nothing else)."""
    kind = BlurKind(params.blur.kind)
    extra = (params.blur.sigma if kind == BlurKind.GAUSSIAN
             else params.blur.size if kind in (BlurKind.MEDIAN, BlurKind.MEAN) else None)
    return (params.channel.value if hasattr(params.channel, "value") else params.channel,
            kind.value, extra)


def _mask(dataset, id, cache):
    def make():
        mask = dataset.mask(id)
        if mask is None:
            raise ValueError(f"`ids`: item {id!r} of dataset {dataset.name!r} has no mask")
        return mask
    return _cached(cache, ("mask", dataset.key, id), make)


def _truth3(dataset, id, cache):
    """3 × mask as uint8: ``truth3 + labels`` indexes the 3 × 3 confusion matrix."""
    return _cached(cache, ("truth3", dataset.key, id),
                   lambda: _mask(dataset, id, cache) * np.uint8(3))


def _confusion_fast(labels: np.ndarray, truth3: np.ndarray) -> np.ndarray:
    """`confusion_matrix` for pipeline labels (known to be 0/1/2) and a cached 3 × mask."""
    if labels.shape != truth3.shape:
        raise ValueError(f"labels shape {labels.shape} does not match the mask shape "
                         f"{truth3.shape}")
    index = (truth3 + labels).ravel().astype(np.intp)
    return np.bincount(index, minlength=9).reshape(3, 3)


def _channel(dataset, id, params, cache):
    return _cached(cache, ("channel", dataset.key, id, _prep_key(params)),
                   lambda: preprocess(dataset.image(id), params))


def _sorted_by_class(dataset, id, params, cache):
    """The blurred channel's values of each true class (0, 1, 2), each sorted."""
    def make():
        blurred = _channel(dataset, id, params, cache)[1]
        mask = _mask(dataset, id, cache)
        if mask.shape != blurred.shape:
            raise ValueError(f"item {id!r}: mask shape {mask.shape} does not match the "
                             f"image shape {blurred.shape}")
        values, truth = blurred.ravel(), mask.ravel()
        return tuple(np.sort(values[truth == c]) for c in range(3))
    return _cached(cache, ("sorted", dataset.key, id, _prep_key(params)), make)


# --- which params the exact shortcuts apply to ---------------------------------------------
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


def _ids(dataset: Dataset, ids) -> list[str]:
    ids = dataset.ids if ids is None else list(ids)
    if not ids:
        raise ValueError("`ids` is empty: nothing to evaluate")
    return [resolve_id(dataset, i) for i in ids]


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
    iou_cytoplasm, iou_nucleus, mean_iou, pixel_accuracy, nc_pred, nc_true, nc_error;
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
    out["nc_error"] = out["nc_pred"] - out["nc_true"]
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def _pooled_dice(counts: np.ndarray, fluorescence: bool = False) -> float:
    """Dice of each class over all pixels of all images together, averaged over classes."""
    scores = scores_from_confusion(np.asarray(counts).sum(0))
    return float(scores["dice_nucleus"] if fluorescence else scores["mean_dice"])


# --- exact Dice surface ---------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class DiceSurface:
    """Mean Dice of every (t_nuc, t_bg) pair of a grid.

    Attributes
    ----------
    thresholds : (K,) ndarray of float64
        The grid, used for both thresholds.
    mean : (K, K) ndarray
        ``mean[i, j]``: per-image mean Dice (course score) averaged over images, at
        ``t_nuc = thresholds[i]``, ``t_bg = thresholds[j]``; NaN where
        ``t_nuc >= t_bg`` (invalid params).
    pooled : (K, K) ndarray
        Dice of each class pooled over all pixels of all images, then averaged.
    dice_cytoplasm : (K, K) ndarray
    dice_nucleus : (K,) ndarray
        Per-image Dice averaged over images (nucleus Dice depends on t_nuc only).
    best : (float, float)
        ``(t_nuc, t_bg)`` of the highest `mean` (first one on ties).
    best_score : float
    best_pooled : (float, float)
    ids : list of str
    seconds : float
    """

    thresholds: np.ndarray
    mean: np.ndarray
    pooled: np.ndarray
    dice_cytoplasm: np.ndarray
    dice_nucleus: np.ndarray
    best: tuple
    best_score: float
    best_pooled: tuple
    ids: list = field(default_factory=list)
    seconds: float = 0.0


def _check_grid(thresholds) -> np.ndarray:
    grid = np.asarray(thresholds, dtype=np.float64)
    if grid.ndim != 1 or grid.size < 2:
        raise ValueError(f"`thresholds` must be a 1-D grid of at least 2 values, got shape "
                         f"{grid.shape}")
    if not np.isfinite(grid).all() or (np.diff(grid) <= 0).any():
        raise ValueError("`thresholds` must be finite and strictly increasing")
    return grid


def dice_surface(dataset: Dataset, ids, params: Params | None = None, thresholds=None, *,
                 cache=None, chunk: int = 16) -> DiceSurface:
    """Exact mean Dice of every (t_nuc, t_bg) pair of a grid, without re-segmenting.

    For each image and each true class, the channel values are sorted once (cached);
    ``np.searchsorted`` at the grid thresholds (cast to the channel's dtype, so that
    the count is exactly that of ``value < t`` in :func:`~cellseg_core.threshold.two_threshold`)
    gives the cumulative histogram ``A_c(t)``. Then, per image, the nucleus
    intersection is ``A_2(t_nuc)``, the predicted nucleus area ``sum_c A_c(t_nuc)``,
    the cytoplasm intersection ``A_1(t_bg) - A_1(t_nuc)`` and its predicted area
    ``sum_c A_c(t_bg) - A_c(t_nuc)``: every pair's Dice from a few array operations.

    Parameters
    ----------
    dataset : Dataset
    ids : list of str or None
        Items to average over (None: all). Each needs a mask.
    params : Params, optional
        Channel and blur to use; must be a plain two-threshold rule (the thresholds
        themselves are ignored). Default ``Params()`` (gray, no blur).
    thresholds : (K,) array_like, optional
        Strictly increasing grid; default ``np.linspace(0, 1, 256)``.
    cache : mapping, optional
        Where preprocessed channels are kept; default :func:`default_cache`.
    chunk : int
        Images processed together (memory ``chunk * K * K * 8`` bytes per array).

    Returns
    -------
    DiceSurface

    Raises
    ------
    ValueError
        When `params` has clean-up, an automatic method or fluorescence mode (their
        Dice does not follow from the histograms), or an item has no mask.

    Examples
    --------
    >>> from cellseg_core.datasets import Dataset
    >>> ds = Dataset.from_arrays("tiny", [np.array([[0.2, 0.5, 0.9]], np.float32)],
    ...                          masks=[np.array([[2, 1, 0]], np.uint8)])
    >>> s = dice_surface(ds, None, thresholds=[0.1, 0.3, 0.6, 0.95], cache={})
    >>> s.best, s.best_score
    ((0.3, 0.6), 1.0)
    """
    start = time.perf_counter()
    params = params or Params()
    problem = _two_threshold_problem(params)
    if problem:
        raise ValueError(f"`params`: the Dice surface needs a plain two-threshold rule, but "
                         f"{problem}; use evaluate() for these params")
    grid = _check_grid(np.linspace(0.0, 1.0, 256) if thresholds is None else thresholds)
    cache = _DEFAULT_CACHE if cache is None else cache
    ids = _ids(dataset, ids)
    k = grid.size

    # A[i, c, j] = number of pixels of true class c in image i with value < grid[j].
    counts = np.empty((len(ids), 3, k), np.int64)
    totals = np.empty((len(ids), 3), np.int64)
    for i, id in enumerate(ids):
        per_class = _sorted_by_class(dataset, id, params, cache)
        for c, values in enumerate(per_class):
            counts[i, c] = np.searchsorted(values, grid.astype(values.dtype), side="left")
            totals[i, c] = values.size

    # Nucleus Dice depends on t_nuc only.
    predicted = counts.sum(1)                                 # (n, K)
    den_n = predicted + totals[:, 2:3]
    with np.errstate(invalid="ignore", divide="ignore"):
        dice_n = np.where(den_n == 0, 1.0, 2.0 * counts[:, 2] / den_n)
    # Cytoplasm Dice for every pair, summed over images chunk by chunk.
    sum_c = np.zeros((k, k))
    a1 = counts[:, 1].astype(np.float64)
    pf = predicted.astype(np.float64)
    for lo in range(0, len(ids), max(1, int(chunk))):
        hi = lo + max(1, int(chunk))
        num = a1[lo:hi, None, :] - a1[lo:hi, :, None]
        num *= 2.0
        den = pf[lo:hi, None, :] - pf[lo:hi, :, None]
        den += totals[lo:hi, 1, None, None]
        dice_c = np.ones_like(num)
        np.divide(num, den, out=dice_c, where=den > 0)
        sum_c += dice_c.sum(0)
    n = len(ids)
    mean_c = sum_c / n
    mean_n = dice_n.mean(0)
    invalid = ~(grid[:, None] < grid[None, :])
    mean = (mean_c + mean_n[:, None]) / 2
    mean[invalid] = np.nan
    mean_c[invalid] = np.nan

    # Pooled over all pixels.
    ca, ct = counts.sum(0).astype(np.float64), totals.sum(0).astype(np.float64)
    pp = ca.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled_n = np.where(pp + ct[2] == 0, 1.0, 2.0 * ca[2] / (pp + ct[2]))
        den = pp[None, :] - pp[:, None] + ct[1]
        pooled_c = np.where(den == 0, 1.0, 2.0 * (ca[1][None, :] - ca[1][:, None]) / den)
    pooled = (pooled_c + pooled_n[:, None]) / 2
    pooled[invalid] = np.nan

    best = np.unravel_index(np.nanargmax(mean), mean.shape)
    best_p = np.unravel_index(np.nanargmax(pooled), pooled.shape)
    return DiceSurface(
        thresholds=grid, mean=mean, pooled=pooled, dice_cytoplasm=mean_c,
        dice_nucleus=mean_n, best=(float(grid[best[0]]), float(grid[best[1]])),
        best_score=float(mean[best]),
        best_pooled=(float(grid[best_p[0]]), float(grid[best_p[1]])), ids=ids,
        seconds=time.perf_counter() - start)


# --- general evaluation ---------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Evaluation:
    """Scores of one method over a set of images.

    Attributes
    ----------
    per_image : DataFrame
        One row per id: id, mean_dice, dice_cytoplasm, dice_nucleus, iou_cytoplasm,
        iou_nucleus, mean_iou, pixel_accuracy, nc_pred, nc_true, nc_error, seconds.
    summary : dict
        mean_dice, dice_cytoplasm, dice_nucleus, mean_iou (means over images),
        pooled_dice (each class's Dice over all pixels together, averaged), nc_mae,
        nc_r2, seconds_per_image, n_images, exact_path (True when the two-threshold
        shortcut was used).
    confusion : (n, 3, 3) ndarray
        Per-image confusion matrices (true class, predicted class).
    """

    per_image: pd.DataFrame
    summary: dict
    confusion: np.ndarray = field(repr=False)


_COLUMNS = ["mean_dice", "dice_cytoplasm", "dice_nucleus", "iou_cytoplasm", "iou_nucleus",
            "mean_iou", "pixel_accuracy", "nc_pred", "nc_true", "nc_error"]


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


def evaluate(dataset: Dataset, ids, method, *, cache=None, progress=None) -> Evaluation:
    """Score `method` on the items `ids` of `dataset` against their masks.

    Parameters
    ----------
    dataset : Dataset
    ids : list of str or None
        Items to score (None: all); each needs a mask.
    method : Params or object with ``.segment(image) -> Segmentation``
        Params are run through the core pipeline with each image's channel cached
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
    >>> from cellseg_core.datasets import Dataset
    >>> ds = Dataset.from_arrays("tiny", [np.array([[0.2, 0.5, 0.9]], np.float32)],
    ...                          masks=[np.array([[2, 1, 0]], np.uint8)])
    >>> evaluate(ds, None, Params(), cache={}).summary["mean_dice"]
    1.0
    """
    start = time.perf_counter()
    cache = _DEFAULT_CACHE if cache is None else cache
    ids = _ids(dataset, ids)
    n = len(ids)
    confusion = np.empty((n, 3, 3), np.int64)
    seconds = np.empty(n)
    is_params = isinstance(method, Params)
    if not is_params and not callable(getattr(method, "segment", None)):
        raise TypeError(f"`method` must be Params or have a .segment(image) method, got "
                        f"{type(method).__name__}")
    exact = is_params and is_two_threshold(method)
    fluorescence = dataset.kind == "fluorescence" or (
        is_params and Mode(method.mode) == Mode.FLUORESCENCE)
    for i, id in enumerate(ids):
        t0 = time.perf_counter()
        if exact:
            per_class = _sorted_by_class(dataset, id, method, cache)
            confusion[i] = _confusion_two_threshold(per_class, method.threshold.t_nuc,
                                                    method.threshold.t_bg)
        else:
            if is_params and is_automatic(method):   # settings resolved per image
                labels = segment(dataset.image(id), method).labels
                confusion[i] = _confusion_fast(labels, _truth3(dataset, id, cache))
            elif is_params:
                labels = labels_from_channel(_channel(dataset, id, method, cache)[1], method)[1]
                confusion[i] = _confusion_fast(labels, _truth3(dataset, id, cache))
            else:
                labels = method.segment(dataset.image(id)).labels
                confusion[i] = confusion_matrix(labels, _mask(dataset, id, cache))
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
        "seconds_per_image": (time.perf_counter() - start) / n,
        "n_images": n,
        "exact_path": bool(exact),
    }
    return Evaluation(per_image=per_image, summary=summary, confusion=confusion)


# --- Bayesian optimisation ------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class OptimizeResult:
    """Outcome of :func:`optimize`.

    Attributes
    ----------
    best_params : Params
    best_score : float
        Mean Dice of `best_params` on the training ids.
    history : DataFrame
        One row per call: call (1-based), each searched parameter, score, valid,
        best_so_far, seconds.
    names : list of str
        The searched parameters.
    """

    best_params: Params
    best_score: float
    history: pd.DataFrame
    names: list


def _dimensions(space: dict):
    """skopt dimensions from ``{name: (low, high) | [choices] | Dimension}``."""
    from skopt.space import Categorical, Dimension, Integer, Real

    if not isinstance(space, dict) or not space:
        raise ValueError("`space` must be a non-empty dict of dotted name -> range")
    dims = []
    for name, spec in space.items():
        if isinstance(spec, Dimension):
            dim = spec
        elif isinstance(spec, list):
            dim = Categorical(spec)
        elif isinstance(spec, tuple) and len(spec) == 2:
            low, high = spec
            if all(isinstance(v, int) and not isinstance(v, bool) for v in spec):
                dim = Integer(low, high)
            else:
                dim = Real(float(low), float(high))
        else:
            raise ValueError(f"`space[{name!r}]` must be (low, high), a list of choices or "
                             f"a skopt dimension, got {spec!r}")
        dim.name = name
        dims.append(dim)
    return dims


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def optimize(dataset: Dataset, train_ids, space: dict | None = None,
             base_params: Params | str | None = None, n_calls: int = 50,
             random_state: int | None = 0, callback=None, *, cache=None,
             n_initial_points: int = 10, acq_optimizer: str = "sampling",
             n_points: int = 2000, gp_restarts: int = 0) -> OptimizeResult:
    """Maximise the mean Dice on `train_ids` with scikit-optimize's ``gp_minimize``.

    Parameters
    ----------
    dataset : Dataset
    train_ids : list of str or None
        Items the objective is computed on (None: all).
    space : dict, optional
        Dotted parameter name → ``(low, high)`` floats (Real), ``(low, high)`` ints
        (Integer), a list of choices (Categorical) or a skopt dimension. Default
        :data:`DEFAULT_SPACE` (the two thresholds).
    base_params : Params or preset name, optional
        Values of the parameters not searched. Default ``Params()``.
    n_calls : int
        Number of objective evaluations (including `n_initial_points` random ones).
    random_state : int or None
        Seed; the same seed gives the same history.
    callback : callable, optional
        Called after each evaluation with a dict ``{"call", "n_calls", "values",
        "score", "valid", "best_so_far"}``; returning True stops the search.
    cache : mapping, optional
        Passed to :func:`evaluate`.
    n_initial_points, acq_optimizer, n_points
        Passed to ``gp_minimize``. Random sampling of 2,000 candidate points for the
        acquisition keeps its cost to a few ms per call.
    gp_restarts : int
        Extra restarts of the GP's kernel-hyperparameter fit (skopt's default is 2).
        That fit is most of the optimiser's own time; 0 makes it about 3x cheaper
        and found the same optima on VocEd.

    Returns
    -------
    OptimizeResult

    Notes
    -----
    Values that the params model refuses (for instance ``t_nuc >= t_bg``) are not
    evaluated: they score Dice 0, which steers the search away from them.

    BLAS is limited to one thread during the search (``threadpoolctl``): the GP's
    matrices are tiny and multithreaded BLAS on a busy machine made it 5x slower.

    Examples
    --------
    >>> from cellseg_core.datasets import Dataset
    >>> img = np.array([[0.2, 0.5, 0.9, 0.3]], np.float32)
    >>> ds = Dataset.from_arrays("tiny", [img], masks=[np.array([[2, 1, 0, 2]], np.uint8)])
    >>> r = optimize(ds, None, n_calls=12, n_initial_points=6, cache={})
    >>> r.best_score
    1.0
    """
    from skopt import gp_minimize
    from skopt.utils import cook_estimator, normalize_dimensions
    from sklearn.utils import check_random_state
    from threadpoolctl import threadpool_limits

    if isinstance(base_params, str):
        from .presets import get_preset
        base_params = get_preset(base_params)
    base_params = base_params or Params()
    if not isinstance(base_params, Params):
        raise TypeError(f"`base_params` must be Params or a preset name, got "
                        f"{type(base_params).__name__}")
    if n_calls < 1:
        raise ValueError(f"`n_calls` must be >= 1, got {n_calls}")
    space = DEFAULT_SPACE if space is None else space
    dims = _dimensions(space)
    names = [d.name for d in dims]
    base_params.with_values({})  # validates the base
    unknown = sorted(set(names) - set(base_params.flat()))
    if unknown:
        raise ValueError(f"`space`: unknown parameter(s) {unknown}; valid: "
                         f"{sorted(base_params.flat())}")
    cache = _DEFAULT_CACHE if cache is None else cache
    ids = _ids(dataset, train_ids)
    rows: list[dict] = []
    best = {"score": -math.inf, "params": None}

    def objective(x):
        t0 = time.perf_counter()
        values = {name: _plain(v) for name, v in zip(names, x)}
        try:
            params = base_params.with_values(values)
        except ValueError:
            params, score = None, 0.0
        else:
            score = evaluate(dataset, ids, params, cache=cache).summary["mean_dice"]
        if params is not None and score > best["score"]:
            best.update(score=score, params=params)
        rows.append({"call": len(rows) + 1, **values, "score": score,
                     "valid": params is not None,
                     "best_so_far": max(score, rows[-1]["best_so_far"] if rows else score),
                     "seconds": time.perf_counter() - t0})
        return -score

    def on_step(_result):
        if callback is None:
            return False
        row = rows[-1]
        return bool(callback({"call": row["call"], "n_calls": n_calls,
                              "values": {k: row[k] for k in names}, "score": row["score"],
                              "valid": row["valid"], "best_so_far": row["best_so_far"]}))

    # As gp_minimize does, but with `gp_restarts` restarts of the kernel fit.
    rng = check_random_state(random_state)
    estimator = cook_estimator("GP", space=normalize_dimensions(dims),
                               random_state=rng.randint(0, np.iinfo(np.int32).max),
                               noise="gaussian", n_restarts_optimizer=int(gp_restarts))
    with threadpool_limits(1):
        gp_minimize(objective, dims, base_estimator=estimator, n_calls=n_calls,
                    n_initial_points=min(n_initial_points, n_calls), random_state=rng,
                    acq_optimizer=acq_optimizer, n_points=n_points, callback=[on_step])
    history = pd.DataFrame(rows, columns=["call", *names, "score", "valid", "best_so_far",
                                          "seconds"])
    if best["params"] is None:
        raise ValueError("no call of the search gave valid params: widen `space`")
    return OptimizeResult(best_params=best["params"], best_score=float(best["score"]),
                          history=history, names=names)
