"""Bayesian optimisation of dotted parameters: scikit-optimize's ``gp_minimize`` over a
:class:`~cellseg_core.params.Params`, scored by :func:`~.scoring.evaluate`."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from ..data import Dataset
from ..params import Params
from ..presets import get_preset
from ._cache import _ids, default_cache
from .scoring import evaluate

__all__ = ["OptimizeResult", "optimize", "DEFAULT_SPACE", "LAB03V2_SPACE"]

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
    >>> from cellseg_core.data import Dataset
    >>> img = np.array([[0.2, 0.5, 0.9, 0.3]], np.float32)
    >>> ds = Dataset.from_arrays("tiny", [img], masks=[np.array([[2, 1, 0, 2]], np.uint8)])
    >>> r = optimize(ds, None, n_calls=12, n_initial_points=6, cache={})
    >>> r.best_score
    1.0
    """
    from skopt import gp_minimize
    from skopt.utils import cook_estimator, normalize_dimensions
    from sklearn.utils import check_random_state

    if isinstance(base_params, str):
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
    cache = default_cache() if cache is None else cache
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
