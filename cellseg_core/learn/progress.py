"""Progress of a long fit: what stage runs, how long it has run, about how long is left.

scikit-learn's tree ensembles report nothing while they fit, so a training run that
reports only per image sits at "features 160/160" for minutes. :func:`fit_in_stages`
fits a warm-startable ensemble in chunks of trees and reports after each chunk; the
result is the same model as one fit (warm start adds the next trees with the seeds a
single fit would have used).
"""
from __future__ import annotations

import math
import time

__all__ = ["format_duration", "seconds_left", "stage_message", "fit_in_stages"]


def format_duration(seconds: float) -> str:
    """A duration as a person reads it: ``'8 s'``, ``'3 min 05 s'``, ``'1 h 02 min'``.

    Parameters
    ----------
    seconds : float
        Non-negative; rounded to whole seconds.

    Returns
    -------
    str

    Examples
    --------
    >>> format_duration(7.6), format_duration(185), format_duration(3720)
    ('8 s', '3 min 05 s', '1 h 02 min')
    """
    if not seconds >= 0:
        raise ValueError(f"`seconds` must be >= 0, got {seconds!r}")
    total = int(round(seconds))
    if total < 60:
        return f"{total} s"
    if total < 3600:
        return f"{total // 60} min {total % 60:02d} s"
    return f"{total // 3600} h {total % 3600 // 60:02d} min"


def seconds_left(elapsed: float, done: float, total: float) -> float | None:
    """Time left at the rate measured so far (None before anything is done).

    Examples
    --------
    >>> seconds_left(30.0, 10, 40)
    90.0
    >>> seconds_left(3.0, 0, 40) is None
    True
    """
    if done <= 0 or total <= 0:
        return None
    return max(0.0, elapsed * (total - done) / done)


def stage_message(stage: str, done: int, total: int, unit: str, elapsed: float) -> str:
    """``'<stage>: <done>/<total> <unit>, <elapsed> so far, about <left> left'``.

    Examples
    --------
    >>> stage_message("fitting the classifier", 20, 100, "boosting rounds", 12.0)
    'fitting the classifier: 20/100 boosting rounds, 12 s so far, about 48 s left'
    >>> stage_message("features", 0, 160, "images", 0.0)
    'features: 0/160 images'
    """
    text = f"{stage}: {done}/{total} {unit}"
    left = seconds_left(elapsed, done, total)
    if left is None:
        return text
    if done >= total:
        return f"{text}, {format_duration(elapsed)}"
    return f"{text}, {format_duration(elapsed)} so far, about {format_duration(left)} left"


def _size_parameter(estimator) -> tuple[str, str]:
    """The parameter that counts an ensemble's trees, and what to call its units."""
    params = estimator.get_params()
    if "max_iter" in params:
        return "max_iter", "boosting rounds"
    if "n_estimators" in params:
        return "n_estimators", "trees"
    raise TypeError(f"`estimator` ({type(estimator).__name__}) has neither `max_iter` nor "
                    "`n_estimators`: not a warm-startable tree ensemble")


def fit_in_stages(estimator, x, y, *, progress=None, chunks: int = 10,
                  stage: str = "fitting the classifier"):
    """Fit a scikit-learn tree ensemble, reporting progress after each chunk of trees.

    Parameters
    ----------
    estimator : HistGradientBoostingClassifier, RandomForestClassifier or ExtraTreesClassifier
        Unfitted; its ``max_iter`` / ``n_estimators`` is the final size.
    x : (S, F) ndarray
    y : (S,) ndarray
    progress : callable, optional
        ``progress(fraction, message)`` with `fraction` in [0, 1] of this fit and a
        message naming the stage, the trees so far, the time so far and an estimate of
        the time left. Without it the estimator is fitted in one call.
    chunks : int
        Number of reports (at most one per tree).
    stage : str
        The stage's name in the messages.

    Returns
    -------
    The fitted `estimator` (the same object).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.ensemble import RandomForestClassifier
    >>> x = np.arange(20.0).reshape(-1, 1); y = (x[:, 0] > 9).astype(int)
    >>> seen = []
    >>> model = fit_in_stages(RandomForestClassifier(4, random_state=0), x, y, chunks=2,
    ...                       progress=lambda f, m: seen.append(f))
    >>> seen, len(model.estimators_)
    ([0.0, 0.5, 1.0], 4)
    """
    if progress is None:
        return estimator.fit(x, y)
    if chunks < 1:
        raise ValueError(f"`chunks` must be >= 1, got {chunks!r}")
    name, unit = _size_parameter(estimator)
    total = int(estimator.get_params()[name])
    steps = sorted({math.ceil(total * k / chunks) for k in range(1, chunks + 1)})
    warm = estimator.get_params()["warm_start"]
    start = time.perf_counter()
    progress(0.0, stage_message(stage, 0, total, unit, 0.0))
    try:
        estimator.set_params(warm_start=True)
        for done in steps:
            estimator.set_params(**{name: done})
            estimator.fit(x, y)
            progress(done / total,
                     stage_message(stage, done, total, unit, time.perf_counter() - start))
    finally:
        estimator.set_params(warm_start=warm, **{name: total})
    return estimator
