"""Figure builders of the Compare and Optimise pages, without a browser."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("plotly")
from app_support import compare_figures as cf  # noqa: E402
from cellseg_core import evaluation  # noqa: E402
from cellseg_core.data import Dataset  # noqa: E402


def _table(pred, true, dice=None):
    n = len(pred)
    return pd.DataFrame({"id": [f"{i:03d}" for i in range(n)], "nc_pred": pred,
                         "nc_true": true, "mean_dice": dice if dice is not None
                         else np.linspace(0.5, 1.0, n)})


def test_nc_scatter_r2_in_titles_and_identity_line():
    true = [0.2, 0.4, 0.6, 0.8]
    tables = {"perfect": _table(true, true),
              "biased": _table([0.3, 0.5, 0.7, 0.9], true),
              "with nan": _table([0.2, np.nan, 0.6, 0.8], [0.2, 0.4, np.nan, 0.8])}
    fig = cf.nc_scatter_figure(tables, cols=2)
    titles = [a.text for a in fig.layout.annotations]
    # biased: 1 - 4 * 0.01 / (0.09 + 0.01 + 0.01 + 0.09) = 0.8
    assert titles == ["perfect · R² = 1.000", "biased · R² = 0.800", "with nan · R² = 1.000"]
    assert fig.layout.meta["r2"]["biased"] == pytest.approx(0.8)
    points = [t for t in fig.data if t.name in tables]
    assert [t.name for t in points] == list(tables)
    assert list(points[2].x) == [0.2, 0.8]            # NaN pairs left out
    identity = [t for t in fig.data if t.name == "identity"]
    assert len(identity) == 3 and list(identity[0].x) == list(identity[0].y)
    assert identity[0].x[0] == 0 and identity[0].x[1] >= 0.9


def test_nc_scatter_refuses_bad_tables():
    with pytest.raises(ValueError, match="non-empty"):
        cf.nc_scatter_figure({})
    with pytest.raises(ValueError, match="nc_true"):
        cf.nc_scatter_figure({"a": pd.DataFrame({"id": ["0"], "nc_pred": [1.0]})})


def test_dice_distribution_one_box_per_method_with_every_image():
    tables = {"a": _table([1, 1, 1], [1, 1, 1], [0.1, 0.5, 0.9]),
              "b": _table([1, 1], [1, 1], [0.7, 0.8])}
    fig = cf.dice_distribution_figure(tables)
    assert [t.type for t in fig.data] == ["box", "box"]
    assert list(fig.data[0].y) == [0.1, 0.5, 0.9] and fig.data[0].boxpoints == "all"
    assert list(fig.data[1].customdata) == ["000", "001"]
    with pytest.raises(ValueError, match="dice_nucleus"):
        cf.dice_distribution_figure(tables, "dice_nucleus")


def test_convergence_curve_best_so_far_and_start_line():
    history = pd.DataFrame({"call": [1, 2, 3], "score": [0.5, 0.7, 0.6],
                            "best_so_far": [0.5, 0.7, 0.7]})
    fig = cf.convergence_figure(history, start_score=0.55, n_calls=10)
    assert list(fig.data[1].y) == [0.5, 0.7, 0.7]
    assert fig.layout.shapes[0].y0 == 0.55
    assert "0.7000" in fig.layout.title.text
    assert tuple(fig.layout.xaxis.range) == (0.5, 10.5)
    empty = cf.convergence_figure(history.iloc[:0], n_calls=5)  # a run that just started
    assert len(empty.data[0].x) == 0
    with pytest.raises(ValueError, match="best_so_far"):
        cf.convergence_figure(history[["call", "score"]])


def test_surface_heatmap_points_best_and_maximum():
    image = np.array([[0.2, 0.5, 0.9, 0.3]], np.float32)
    ds = Dataset.from_arrays("tiny", [image], masks=[np.array([[2, 1, 0, 2]], np.uint8)])
    grid = [0.1, 0.3, 0.4, 0.6, 0.95]
    surface = evaluation.dice_surface(ds, None, thresholds=grid, cache={})
    points = pd.DataFrame({"threshold.t_nuc": [0.2, 0.35], "threshold.t_bg": [0.7, 0.8],
                           "score": [0.4, 1.0]})
    fig = cf.surface_figure(surface, points=points, best=(0.35, 0.8))
    heat = fig.data[0]
    assert heat.type == "heatmap"
    np.testing.assert_array_equal(np.asarray(heat.z, float), surface.mean)
    calls = next(t for t in fig.data if t.name == "optimiser's calls")
    assert list(calls.x) == [0.7, 0.8] and list(calls.y) == [0.2, 0.35]   # x = t_bg
    star = next(t for t in fig.data if t.name == "optimiser's best")
    assert (star.x[0], star.y[0]) == (0.8, 0.35)
    top = next(t for t in fig.data if t.name == "surface maximum")
    assert (top.y[0], top.x[0]) == surface.best and surface.best_score == 1.0
    assert "maximum 1.0000" in fig.layout.title.text
    pooled = cf.surface_figure(surface, pooled=True)
    np.testing.assert_array_equal(np.asarray(pooled.data[0].z, float), surface.pooled)
