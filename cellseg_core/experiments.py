"""The seed's fluorescence experiments as pure functions, with the seed's derivations.

Each experiment generates images with :mod:`cellseg_core.data.synthetic`, segments them
with :func:`cellseg_core.segment` and returns numbers (dicts and DataFrames) that the
app's Count page plots; nothing here re-implements a pipeline step.

The derivations (a Gaussian blob ``B·exp(−r²/2σ²)`` smoothed by a Gaussian of
``σs``; white noise of standard deviation ``σn``):

* smoothed peak: ``B·σ²/(σ² + σs²)`` (the blob stays Gaussian, of variance σ² + σs²);
* smoothed noise: ``σn / (2·sqrt(π)·σs)`` (the kernel's energy is ``1/(4πσs²)``);
* midpoint of two blobs `d` apart: ``2B·exp(−d²/8σ²)`` (before smoothing; after it,
  with the smoothed B and σ), so two cells merge at threshold `t` when
  ``d < sqrt(8σ'²·ln(2B'/t))``;
* mean intensity of an object cut at smoothed value `t`: the blob's mean over the
  disk of radius R where the smoothed blob equals `t`,
  ``B·(2σ²/R²)·(1 − exp(−R²/2σ²))``.

Examples
--------
>>> round(smoothed_peak(1.0, 6.0, 2.0), 3), round(smoothed_noise_std(0.15, 2.0), 4)
(0.9, 0.0212)
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from .evaluation import evaluate
from .metrics import match_instances
from .params import BlurKind, Params
from .pipeline import preprocess, segment
from .presets import get_preset
from .data.synthetic import (CELL_BRIGHTNESS, CELL_SIGMA, DIM_BRIGHTNESS, GRADIENT, IMAGE_SIZE,
                        MIN_CELL_SIZE, NOISE_SCALE, PAIR_DISTANCE, SEED, fluorescence_image,
                        noise_image, seed_params, touching_pair)

__all__ = [
    "NOISE_LEVELS", "SWEEP_IMAGES", "SPLIT_VALUES", "GLOBAL_THRESHOLD", "LOCAL_VALUES",
    "N_DIM", "DIM_DETECT_VALUES", "DIM_CLASS_THRESHOLD",
    "smoothed_peak", "smoothed_noise_std", "midpoint_intensity", "merge_distance",
    "object_mean_intensity", "smooth_sigma", "sweep_seeds", "match_centres",
    "peak_check", "noise_floor", "noise_floor_curve", "noise_sweep", "sweep_summary",
    "failing_level", "touching_experiment", "pair_distance_sweep",
    "illumination_experiment", "threshold_count_curve", "dim_bright_experiment",
    "TUTORIAL_THRESHOLD", "PERCENTILE_VALUES", "GRADIENT_LEVELS", "gradient_exercise",
    "ABLATION_STEPS", "ablation",
]

#: The issue's noise levels and images per level for the noise sweep.
NOISE_LEVELS = (0.05, 0.10, 0.15, 0.20, 0.25)
SWEEP_IMAGES = 50
#: Watershed that splits the 14-px pair (as the auto-fluorescence preset).
SPLIT_VALUES = {"watershed.enabled": True, "watershed.min_distance": 6,
                "watershed.footprint": 3}
#: A global threshold that counts the evenly lit seed images right (16 of 16 seeds)
#: but not under the 0.2 gradient (10 of 16 miscounted, the seed image among them).
GLOBAL_THRESHOLD = 0.30
#: Local threshold that restores the count under the gradient: pixel > weighted mean
#: of its 51-px block + 0.1.
LOCAL_VALUES = {"threshold.method": "local", "threshold.block_size": 51,
                "threshold.offset": -0.1}
#: Bright and dim cells: 8 bright + 3 dim (as the demo set), detected at 0.25 (the dim
#: cells' smoothed peak is 0.36, under the seed's 0.5) with the watershed (at 0.25 the
#: blobs of neighbours touch), classified dim below a mean intensity of 0.43 (halfway
#: between the predicted means 0.53 and 0.33, see :func:`object_mean_intensity`).
N_DIM = 3
DIM_DETECT_VALUES = {"threshold.t_object": 0.25, **SPLIT_VALUES}
DIM_CLASS_THRESHOLD = 0.43


# --- derivations ----------------------------------------------------------------------
def smoothed_peak(brightness, sigma=CELL_SIGMA, smooth=2.0):
    """Peak of a Gaussian blob after Gaussian smoothing: ``B·σ²/(σ² + σs²)``."""
    return brightness * sigma ** 2 / (sigma ** 2 + smooth ** 2)


def smoothed_noise_std(noise, smooth=2.0):
    """Standard deviation of white noise after Gaussian smoothing: ``σn/(2√π·σs)``.

    Raises
    ------
    ValueError
        If `smooth` is not positive.
    """
    if not smooth > 0:
        raise ValueError(f"`smooth` must be > 0, got {smooth!r}")
    return noise / (2.0 * math.sqrt(math.pi) * smooth)


def midpoint_intensity(distance, brightness=CELL_BRIGHTNESS, sigma=CELL_SIGMA):
    """Intensity halfway between two equal blobs `distance` apart: ``2B·exp(−d²/8σ²)``."""
    return 2.0 * brightness * np.exp(-np.square(distance) / (8.0 * sigma ** 2))


def merge_distance(threshold, brightness=CELL_BRIGHTNESS, sigma=CELL_SIGMA, smooth=2.0):
    """Largest centre distance at which two smoothed blobs join above `threshold`.

    Solves ``2B'·exp(−d²/8σ'²) = t`` with the smoothed B' and σ'² = σ² + σs²; 0 when
    even the two peaks together stay under the threshold.
    """
    peak = smoothed_peak(brightness, sigma, smooth)
    var = sigma ** 2 + smooth ** 2
    if not threshold > 0 or 2 * peak <= threshold:
        return 0.0 if threshold > 0 else math.inf
    return math.sqrt(8.0 * var * math.log(2.0 * peak / threshold))


def object_mean_intensity(threshold, brightness=CELL_BRIGHTNESS, sigma=CELL_SIGMA, smooth=2.0):
    """Mean (unsmoothed) intensity of a blob cut where its smoothed value is `threshold`.

    NaN when the smoothed peak is under the threshold (nothing is detected).
    """
    peak = smoothed_peak(brightness, sigma, smooth)
    if not 0 < threshold < peak:
        return math.nan
    r2 = 2.0 * (sigma ** 2 + smooth ** 2) * math.log(peak / threshold)
    return brightness * (2 * sigma ** 2 / r2) * (1.0 - math.exp(-r2 / (2 * sigma ** 2)))


def smooth_sigma(params: Params) -> float:
    """The σs of the derivations: the gaussian blur's sigma, NaN for any other blur."""
    if params.blur.kind == BlurKind.GAUSSIAN and params.blur.sigma > 0:
        return float(params.blur.sigma)
    return math.nan


def _pred(func, *args, smooth):
    return math.nan if math.isnan(smooth) else float(func(*args, smooth))


# --- helpers --------------------------------------------------------------------------
def sweep_seeds(n: int, rng=SEED) -> list:
    """`n` image seeds; the first is `rng` itself (the seed image for ``SEED``)."""
    if n < 1:
        raise ValueError(f"`n` must be >= 1, got {n}")
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return [int(rng)] + np.random.default_rng(int(rng)).spawn(n - 1)
    return np.random.default_rng(rng).spawn(n)


def match_centres(instances: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """The true cell of each detected object: the one centre it holds.

    Parameters
    ----------
    instances : (M, N) ndarray of int, objects 1..n
    centres : (K, 2) ndarray, row and column of each true cell

    Returns
    -------
    (n,) ndarray of int
        Index of the true cell for objects 1..n; -1 for an object holding no centre
        (a false detection) or several (a merge).
    """
    instances = np.asarray(instances)
    n = int(instances.max(initial=0))
    owner = np.full(n + 1, -1)
    if len(centres):
        rows, cols = np.clip(np.rint(centres).astype(int).T, 0,
                             np.array(instances.shape)[:, None] - 1)
        hit = instances[rows, cols]
        counts = np.bincount(hit, minlength=n + 1)
        for k, h in enumerate(hit):
            if h and counts[h] == 1:
                owner[h] = k
    return owner[1:]


def _at(image, points):
    """Bilinear values of `image` at (row, col) points."""
    points = np.asarray(points, float).reshape(-1, 2)
    return ndi.map_coordinates(np.asarray(image, np.float64), points.T, order=1, mode="nearest")


def peak_check(params: Params | None = None, **image_kwargs) -> pd.DataFrame:
    """Smoothed peak of every cell: the derivation against the blurred noise-free image.

    `image_kwargs` go to :func:`fluorescence_image` (noise is set to 0). A gradient
    adds ``G·col/size`` to the prediction (smoothing keeps a linear ramp).
    """
    params = params or seed_params()
    kwargs = {**image_kwargs, "noise": 0.0}
    sample = fluorescence_image(**kwargs)
    _, blurred = preprocess(sample.image, params)
    s = smooth_sigma(params)
    sigma = kwargs.get("sigma", CELL_SIGMA)
    size = kwargs.get("size", IMAGE_SIZE)
    ramp = kwargs.get("gradient", 0.0) * sample.centres[:, 1] / size
    predicted = (np.array([_pred(smoothed_peak, b, sigma, smooth=s) for b in sample.brightness])
                 + ramp)
    return pd.DataFrame({"cell": np.arange(1, sample.n_cells + 1),
                         "brightness": sample.brightness, "dim": sample.dim,
                         "predicted_peak": predicted, "measured_peak": _at(blurred, sample.centres)})


# --- 4 noise floor --------------------------------------------------------------------
def noise_floor(threshold: float, params: Params | None = None, *, min_size: int = MIN_CELL_SIZE,
                rng=SEED, noise: float = NOISE_SCALE, size: int = IMAGE_SIZE) -> dict:
    """False cells on a pure-noise image at `threshold`, without and with the size filter.

    Returns
    -------
    dict
        ``without_filter``, ``with_filter`` (counts), ``pixel_std`` (of the noise image,
        clipped at 0 as the generator does), ``predicted_std`` (the seed's formula on
        that std), ``smoothed_std`` (measured after the pipeline's blur), ``nominal_std``
        (the formula on the unclipped σn), ``smoothed_max``, ``image`` and ``blurred``.
    """
    params = (params or seed_params()).with_values({"threshold.method": "manual",
                                                    "threshold.t_object": float(threshold)})
    image = noise_image(rng, size=size, noise=noise)
    pre = preprocess(image, params)
    without = segment(image, params.with_values({"cleanup.min_nucleus_size": 0}), preprocessed=pre)
    with_filter = segment(image, params.with_values({"cleanup.min_nucleus_size": int(min_size)}),
                          preprocessed=pre)
    s = smooth_sigma(params)
    pixel_std = float(image.std())
    return {"without_filter": int(without.nuclei.max()),
            "with_filter": int(with_filter.nuclei.max()),
            "pixel_std": pixel_std,
            "predicted_std": _pred(smoothed_noise_std, pixel_std, smooth=s),
            "nominal_std": _pred(smoothed_noise_std, noise, smooth=s),
            "smoothed_std": float(pre[1].std()), "smoothed_max": float(pre[1].max()),
            "image": image, "blurred": pre[1], "objects": without.nuclei}


def noise_floor_curve(thresholds, params: Params | None = None, *,
                      min_size: int = MIN_CELL_SIZE, rng=SEED, noise: float = NOISE_SCALE,
                      size: int = IMAGE_SIZE) -> pd.DataFrame:
    """False cells on one pure-noise image for each threshold, without and with the filter."""
    params = (params or seed_params()).with_values({"threshold.method": "manual"})
    image = noise_image(rng, size=size, noise=noise)
    pre = preprocess(image, params)
    rows = []
    for t in thresholds:
        p = params.with_values({"threshold.t_object": float(t)})
        rows.append({"threshold": float(t),
                     "without_filter": int(segment(image, p.with_values(
                         {"cleanup.min_nucleus_size": 0}), preprocessed=pre).nuclei.max()),
                     "with_filter": int(segment(image, p.with_values(
                         {"cleanup.min_nucleus_size": int(min_size)}),
                         preprocessed=pre).nuclei.max())})
    return pd.DataFrame(rows)


# --- 5 noise sweep --------------------------------------------------------------------
def noise_sweep(levels=NOISE_LEVELS, n_images: int = SWEEP_IMAGES, params: Params | None = None,
                *, rng=SEED, progress=None, **image_kwargs) -> pd.DataFrame:
    """Count the cells of `n_images` images at each noise level.

    Image i keeps its cells and its noise pattern across levels (only the noise
    scale changes); image 0 with ``rng=SEED`` is the seed image.

    Parameters
    ----------
    levels : sequence of float
    n_images : int
    params : Params, optional
        Defaults to :func:`seed_params`.
    progress : callable(done, total), optional
    image_kwargs
        More options of :func:`fluorescence_image` (not `noise`).

    Returns
    -------
    DataFrame with columns level, image, count, n_true.
    """
    levels = [float(v) for v in levels]
    if not levels:
        raise ValueError("`levels` is empty: give at least one noise level")
    if any(not (math.isfinite(v) and v >= 0) for v in levels):
        raise ValueError(f"`levels` must be finite and >= 0, got {levels}")
    params = params or seed_params()
    seeds = sweep_seeds(int(n_images), rng)
    total, done, rows = len(levels) * len(seeds), 0, []
    for level in levels:
        for i, seed in enumerate(seeds):
            sample = fluorescence_image(seed, noise=level, **image_kwargs)
            count = int(segment(sample.image, params).nuclei.max())
            rows.append({"level": level, "image": i, "count": count, "n_true": sample.n_cells})
            done += 1
            if progress is not None:
                progress(done, total)
    return pd.DataFrame(rows)


def sweep_summary(counts: pd.DataFrame, smooth: float = 2.0) -> pd.DataFrame:
    """Per level: mean, std, min, max of the count, share counted exactly, and the
    seed's smoothed noise std for that level."""
    g = counts.assign(exact=counts["count"] == counts["n_true"]).groupby("level")
    out = pd.DataFrame({"mean": g["count"].mean(), "std": g["count"].std(ddof=0),
                        "min": g["count"].min(), "max": g["count"].max(),
                        "share_exact": g["exact"].mean(), "n_true": g["n_true"].mean(),
                        "images": g["count"].size()}).reset_index()
    out["smoothed_noise_std"] = [_pred(smoothed_noise_std, v, smooth=smooth) for v in out["level"]]
    return out


def failing_level(summary: pd.DataFrame, tolerance: float = 0.0) -> float | None:
    """First noise level where more than `tolerance` of the images are miscounted."""
    bad = summary[summary["share_exact"] < 1.0 - tolerance]
    return None if bad.empty else float(bad["level"].min())


# --- 6 touching cells -----------------------------------------------------------------
def touching_experiment(distance: float = PAIR_DISTANCE, params: Params | None = None,
                        split_values: dict | None = None, *, rng=SEED,
                        noise: float = NOISE_SCALE) -> dict:
    """Two cells `distance` apart: plain labelling against the watershed split.

    Returns
    -------
    dict
        ``n_plain``, ``n_split``, ``threshold``, ``midpoint_raw`` (2B·exp(−d²/8σ²)),
        ``midpoint_predicted`` (the same after smoothing), ``midpoint_measured`` (the
        blurred noise-free pair at the midpoint), ``midpoint_noisy`` (the blurred
        noisy image there), ``merge_distance`` (predicted), the profile along the line
        through both centres (``profile_t`` px from the midpoint, ``profile``), and the
        images: ``sample``, ``plain``, ``split`` (Segmentations).
    """
    params = params or seed_params()
    split_values = SPLIT_VALUES if split_values is None else split_values
    sample = touching_pair(distance, rng=rng, noise=noise)
    plain = segment(sample.image, params.with_values({"watershed.enabled": False}))
    split = segment(sample.image, params.with_values(split_values))
    clean_blur = preprocess(touching_pair(distance, rng=rng, noise=0.0).image, params)[1]
    a, b = sample.centres
    middle = (a + b) / 2
    unit = (b - a) / max(float(np.hypot(*(b - a))), 1e-9)
    t = np.arange(-30.0, 30.5, 0.5)
    line = middle[None, :] + t[:, None] * unit[None, :]
    s = smooth_sigma(params)
    threshold = plain.thresholds.get("t_object", math.nan)
    return {"n_plain": int(plain.nuclei.max()), "n_split": int(split.nuclei.max()),
            "threshold": float(threshold), "distance": float(distance),
            "midpoint_raw": float(midpoint_intensity(distance)),
            "midpoint_predicted": (math.nan if math.isnan(s) else float(midpoint_intensity(
                distance, smoothed_peak(CELL_BRIGHTNESS, CELL_SIGMA, s),
                math.sqrt(CELL_SIGMA ** 2 + s ** 2)))),
            "midpoint_measured": float(_at(clean_blur, middle)[0]),
            "midpoint_noisy": float(_at(plain.blurred, middle)[0]),
            "merge_distance": (math.nan if math.isnan(s) or math.isnan(threshold)
                               else merge_distance(threshold, smooth=s)),
            "profile_t": t, "profile": _at(plain.blurred, line),
            "profile_clean": _at(clean_blur, line),
            "sample": sample, "plain": plain, "split": split}


def pair_distance_sweep(distances, params: Params | None = None, split_values: dict | None = None,
                        *, rng=SEED, noise: float = NOISE_SCALE) -> pd.DataFrame:
    """Counts of plain labelling and of the watershed for each pair distance."""
    rows = []
    for d in distances:
        r = touching_experiment(float(d), params, split_values, rng=rng, noise=noise)
        rows.append({"distance": float(d), "plain": r["n_plain"], "watershed": r["n_split"],
                     "midpoint_predicted": r["midpoint_predicted"],
                     "midpoint_measured": r["midpoint_measured"]})
    return pd.DataFrame(rows)


# --- 7 uneven illumination ------------------------------------------------------------
def illumination_experiment(gradient: float = GRADIENT, params: Params | None = None, *,
                            global_threshold: float = GLOBAL_THRESHOLD,
                            local_values: dict | None = None, rng=SEED,
                            **image_kwargs) -> dict:
    """Global against local threshold on an image with ``gradient·col/size`` added.

    Returns
    -------
    dict
        ``n_true``, ``n_global``, ``n_local`` (on the gradient image), ``n_global_even``,
        ``n_local_even`` (the same image without the gradient), the per-cell peak check
        ``peaks`` (:func:`peak_check`), ``sample``, ``global`` and ``local``
        (Segmentations).
    """
    params = params or seed_params()
    local_values = LOCAL_VALUES if local_values is None else local_values
    glob = params.with_values({"threshold.method": "manual",
                               "threshold.t_object": float(global_threshold)})
    local = params.with_values(local_values)
    sample = fluorescence_image(rng, gradient=gradient, **image_kwargs)
    even = fluorescence_image(rng, gradient=0.0, **image_kwargs)
    seg_g, seg_l = segment(sample.image, glob), segment(sample.image, local)
    return {"n_true": sample.n_cells, "n_global": int(seg_g.nuclei.max()),
            "n_local": int(seg_l.nuclei.max()),
            "n_global_even": int(segment(even.image, glob).nuclei.max()),
            "n_local_even": int(segment(even.image, local).nuclei.max()),
            "match_global": match_instances(seg_g.nuclei, sample.labels),
            "match_local": match_instances(seg_l.nuclei, sample.labels),
            "peaks": peak_check(params, rng=rng, gradient=gradient, **image_kwargs),
            "sample": sample, "global": seg_g, "local": seg_l}


def threshold_count_curve(image: np.ndarray, thresholds, params: Params | None = None
                          ) -> pd.DataFrame:
    """Cells counted at each global threshold (blur computed once)."""
    params = (params or seed_params()).with_values({"threshold.method": "manual"})
    pre = preprocess(image, params)
    return pd.DataFrame({"threshold": [float(t) for t in thresholds],
                         "count": [int(segment(image, params.with_values(
                             {"threshold.t_object": float(t)}), preprocessed=pre).nuclei.max())
                             for t in thresholds]})


# --- 8 bright and dim cells -----------------------------------------------------------
def dim_bright_experiment(params: Params | None = None, *,
                          class_threshold: float = DIM_CLASS_THRESHOLD, n_dim: int = N_DIM,
                          dim_brightness: float = DIM_BRIGHTNESS, n_images: int = 1,
                          rng=SEED, **image_kwargs) -> dict:
    """Detect bright and dim cells, call each object dim when its mean intensity is
    under `class_threshold`, and score each class.

    A detected object belongs to the true cell whose centre it holds
    (:func:`match_centres`). For class c: precision = objects called c that are true
    c cells / objects called c; recall = true c cells found and called c / true c cells.

    Parameters
    ----------
    params : Params, optional
        Detection; defaults to the seed's params with :data:`DIM_DETECT_VALUES`.
    n_images : int
        Images pooled (image 0 is ``rng`` itself).

    Returns
    -------
    dict
        ``scores`` (DataFrame: class, precision, recall, n_true, n_called, tp),
        ``objects`` (DataFrame: image, label, mean_intensity, called, true), the
        predicted mean intensities ``predicted_bright``/``predicted_dim``, the
        smoothed peaks ``peak_bright``/``peak_dim``, and ``sample``/``segmentation``
        of image 0.
    """
    params = params or seed_params().with_values(DIM_DETECT_VALUES)
    rows, n_true = [], {"bright": 0, "dim": 0}
    first = None
    for i, seed in enumerate(sweep_seeds(int(n_images), rng)):
        sample = fluorescence_image(seed, n_dim=n_dim, dim_brightness=dim_brightness,
                                    **image_kwargs)
        seg = segment(sample.image, params)
        if first is None:
            first = (sample, seg)
        n_true["dim"] += int(sample.dim.sum())
        n_true["bright"] += int((~sample.dim).sum())
        owner = match_centres(seg.nuclei, sample.centres)
        labels = seg.objects["label"].to_numpy(int)
        means = seg.objects["mean_intensity"].to_numpy(float)
        k = owner[labels - 1]
        dim = sample.dim[np.maximum(k, 0)] if k.size else np.zeros(0, bool)
        rows.append(pd.DataFrame({
            "image": i, "label": labels, "mean_intensity": means,
            "called": np.where(means < class_threshold, "dim", "bright"),
            "true": np.where(k < 0, "none", np.where(dim, "dim", "bright"))}))
    columns = ["image", "label", "mean_intensity", "called", "true"]
    objects = pd.concat(rows, ignore_index=True)[columns] if rows else pd.DataFrame(columns=columns)
    scores = []
    for cls in ("bright", "dim"):
        called = int((objects["called"] == cls).sum())
        tp = int(((objects["called"] == cls) & (objects["true"] == cls)).sum())
        scores.append({"class": cls, "precision": tp / called if called else math.nan,
                       "recall": tp / n_true[cls] if n_true[cls] else math.nan,
                       "n_true": n_true[cls], "n_called": called, "tp": tp})
    s = smooth_sigma(params)
    t = params.threshold.t_object if params.threshold.method.value == "manual" else math.nan
    sigma = image_kwargs.get("sigma", CELL_SIGMA)
    bright = image_kwargs.get("brightness", CELL_BRIGHTNESS)
    return {"scores": pd.DataFrame(scores), "objects": objects,
            "predicted_bright": _pred(lambda b, sg, sm: object_mean_intensity(t, b, sg, sm),
                                      bright, sigma, smooth=s),
            "predicted_dim": _pred(lambda b, sg, sm: object_mean_intensity(t, b, sg, sm),
                                   dim_brightness, sigma, smooth=s),
            "peak_bright": _pred(smoothed_peak, bright, sigma, smooth=s),
            "peak_dim": _pred(smoothed_peak, dim_brightness, sigma, smooth=s),
            "sample": first[0], "segmentation": first[1]}


# --- the tutorial's gradient exercise at its own settings (issue 20) ----------------------
#: The tutorial's operating threshold (``THRESHOLD = 0.50``).
TUTORIAL_THRESHOLD = 0.5
#: The tutorial's local estimate, a percentile filter: pixel above the median of its
#: 31-px window + 0.25 (half the operating threshold over the local background).
PERCENTILE_VALUES = {"threshold.method": "percentile", "threshold.block_size": 31,
                     "threshold.percentile": 50.0, "threshold.offset": -0.25}
#: The tutorial's gradient (0.2) and stronger ones, for the exercise's table.
GRADIENT_LEVELS = (0.2, 0.5, 1.0)


def gradient_exercise(gradients=GRADIENT_LEVELS, n_images: int = 16, *,
                      threshold: float = TUTORIAL_THRESHOLD, params: Params | None = None,
                      rng=SEED) -> pd.DataFrame:
    """The tutorial's adaptive-threshold exercise: cells counted under an illumination
    gradient ``G = g·col/size`` by the global threshold, scikit-image's local mean
    (:data:`LOCAL_VALUES`) and the tutorial's percentile filter
    (:data:`PERCENTILE_VALUES`), over `n_images` seed images per gradient.

    Returns
    -------
    DataFrame
        One row per gradient and method: ``gradient``, ``method``, ``miscounted``
        (images whose count is not the true one), ``n_images``, ``mean_abs_error``
        (cells).
    """
    params = params or seed_params()
    methods = {f"global {threshold:g}": params.with_values(
                   {"threshold.method": "manual", "threshold.t_object": float(threshold)}),
               "local mean (scikit-image)": params.with_values(LOCAL_VALUES),
               "local percentile (tutorial)": params.with_values(PERCENTILE_VALUES)}
    seeds = sweep_seeds(int(n_images), rng)
    rows = []
    for g in gradients:
        errors = {name: [] for name in methods}
        for seed in seeds:
            sample = fluorescence_image(seed, gradient=float(g))
            for name, p in methods.items():
                errors[name].append(int(segment(sample.image, p).nuclei.max()) - sample.n_cells)
        for name, err in errors.items():
            err = np.abs(err)
            rows.append({"gradient": float(g), "method": name,
                         "miscounted": int((err > 0).sum()), "n_images": len(seeds),
                         "mean_abs_error": float(err.mean())})
    return pd.DataFrame(rows)


# --- the chapter's ablation: which stage gives the gain (issue 20) -----------------------
#: One clean-up or pre-processing step each, at the course's Lab 03 / 03-v2 settings
#: (blur sigma 1.5, disk radius 3, pieces under 200 px), applied alone to Lab 02.
ABLATION_STEPS = {
    "blur (Gaussian σ 1.5)": {"blur.kind": "gaussian", "blur.sigma": 1.5},
    "opening (disk 3)": {"cleanup.opening_radius": 3},
    "closing (disk 3)": {"cleanup.closing_radius": 3},
    "small-piece removal (< 200 px)": {"cleanup.min_nucleus_size": 200,
                                       "cleanup.min_cytoplasm_size": 200},
}


def ablation(dataset, ids, base: Params | None = None, steps: dict | None = None, *,
             cache=None) -> pd.DataFrame:
    """The chapter's "which stage gives the gain": each step switched on alone over
    `ids` of `dataset`, one row each, then all of them together.

    Parameters
    ----------
    dataset : Dataset
    ids : list of str
    base : Params, optional
        Default: preset ``lab02`` with the course's clean-up scheme (removed pieces
        become background, as the course's code).
    steps : dict, optional
        Row name → parameter values; default :data:`ABLATION_STEPS`.

    Returns
    -------
    DataFrame
        ``step``, ``mean_dice``, ``dice_nucleus``, ``dice_cytoplasm``, ``gain`` (mean
        Dice minus the first row's), first row ``none (base)``, last ``all together``.
    """
    base = base or get_preset("lab02").with_values({"cleanup.scheme": "course"})
    steps = ABLATION_STEPS if steps is None else steps
    configs = {"none (base)": base}
    merged = {}
    for name, values in steps.items():
        configs[f"+ {name}"] = base.with_values(values)
        merged.update(values)
    if len(steps) > 1:
        configs["all together"] = base.with_values(merged)
    rows = []
    for name, params in configs.items():
        summary = evaluate(dataset, list(ids), params, cache=cache).summary
        rows.append({"step": name, "mean_dice": float(summary["mean_dice"]),
                     "dice_nucleus": float(summary["dice_nucleus"]),
                     "dice_cytoplasm": float(summary["dice_cytoplasm"])})
    table = pd.DataFrame(rows)
    table["gain"] = table["mean_dice"] - table["mean_dice"].iloc[0]
    return table
