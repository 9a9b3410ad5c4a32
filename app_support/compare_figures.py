"""Plotly figures of the Compare and Optimise pages, built without Streamlit.

Every builder takes tables or arrays (per-image scores, an optimiser's history, a
:class:`~cellseg_core.evaluation.DiceSurface`) and returns a
``plotly.graph_objects.Figure``, so it can be tested headless.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cellseg_core.metrics import r2_identity

__all__ = ["METHOD_COLORS", "method_color", "nc_scatter_figure", "dice_distribution_figure",
           "convergence_figure", "surface_figure"]

#: Colours given to methods in the order they are listed.
METHOD_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                 "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
_MARGIN = dict(l=10, r=10, t=60, b=10)


def method_color(i: int) -> str:
    """Colour of the `i`-th method (cycles through :data:`METHOD_COLORS`)."""
    return METHOD_COLORS[i % len(METHOD_COLORS)]


def _fmt(value: float, digits: int = 3) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _check_tables(tables, columns):
    if not isinstance(tables, dict) or not tables:
        raise ValueError("`tables` must be a non-empty dict of method name -> per-image table")
    for name, table in tables.items():
        missing = [c for c in columns if c not in table]
        if missing:
            raise ValueError(f"`tables[{name!r}]` lacks column(s) {missing}")


def nc_scatter_figure(tables: dict, *, cols: int = 3, height_per_row: int = 320) -> go.Figure:
    """Predicted vs true N/C ratio, one panel per method, identity line drawn.

    The course's Lab 07 figure. Each panel's title holds the method name and the R²
    of the points against the identity line (``1 - SS(pred - true) / SS(true -
    mean(true))``, :func:`cellseg_core.metrics.r2_identity`), so a method that is
    well correlated but biased gets a low R². Images whose N/C is undefined (no
    cytoplasm, predicted or true) are left out.

    Parameters
    ----------
    tables : dict
        Method name → per-image table with columns ``id``, ``nc_pred``, ``nc_true``.
    cols : int
        Panels per row.

    Returns
    -------
    Figure
        One scatter trace per method (named after it), one identity line per panel.
    """
    _check_tables(tables, ["id", "nc_pred", "nc_true"])
    if cols < 1:
        raise ValueError(f"`cols` must be >= 1, got {cols}")
    names = list(tables)
    cols = min(cols, len(names))
    rows = math.ceil(len(names) / cols)
    r2 = {}
    top = 0.0
    for name in names:
        t = tables[name]
        ok = np.isfinite(t["nc_pred"].to_numpy(float)) & np.isfinite(t["nc_true"].to_numpy(float))
        pred, true = t["nc_pred"].to_numpy(float)[ok], t["nc_true"].to_numpy(float)[ok]
        r2[name] = r2_identity(pred, true) if ok.sum() >= 2 else float("nan")
        if ok.any():
            top = max(top, float(pred.max()), float(true.max()))
    top = top * 1.05 if top > 0 else 1.0
    titles = [f"{name} · R² = {_fmt(r2[name])}" for name in names]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles,
                        horizontal_spacing=0.06, vertical_spacing=0.12 if rows > 1 else 0.0)
    for i, name in enumerate(names):
        t = tables[name]
        row, col = i // cols + 1, i % cols + 1
        ok = np.isfinite(t["nc_pred"].to_numpy(float)) & np.isfinite(t["nc_true"].to_numpy(float))
        sub = t[ok]
        fig.add_trace(go.Scatter(
            x=sub["nc_true"], y=sub["nc_pred"], mode="markers", name=name,
            marker=dict(color=method_color(i), size=7, opacity=0.8),
            customdata=sub["id"], legendgroup=name,
            hovertemplate="image %{customdata}<br>true %{x:.3f}<br>predicted %{y:.3f}"
                          "<extra>" + name + "</extra>"), row=row, col=col)
        fig.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", name="identity",
                                 line=dict(color="gray", dash="dash", width=1),
                                 showlegend=i == 0, hoverinfo="skip", legendgroup="identity"),
                      row=row, col=col)
        fig.update_xaxes(title_text="true N/C", range=[0, top], row=row, col=col)
        fig.update_yaxes(title_text="predicted N/C", range=[0, top], row=row, col=col)
    fig.update_layout(height=height_per_row * rows + 40, margin=_MARGIN,
                      title=dict(text="Predicted vs true N/C ratio (R² against the identity "
                                      "line)", font=dict(size=14)))
    fig.layout.meta = {"r2": r2}
    return fig


def dice_distribution_figure(tables: dict, column: str = "mean_dice", *,
                             height: int = 380) -> go.Figure:
    """Per-image score distribution per method: a box with every image as a point.

    Parameters
    ----------
    tables : dict
        Method name → per-image table with columns ``id`` and `column`.
    column : str
        The score shown (``mean_dice``, ``dice_cytoplasm``, ``dice_nucleus``...).
    """
    _check_tables(tables, ["id", column])
    fig = go.Figure()
    for i, (name, t) in enumerate(tables.items()):
        fig.add_trace(go.Box(
            y=t[column], name=name, boxpoints="all", jitter=0.4, pointpos=0,
            marker=dict(color=method_color(i), size=5, opacity=0.7),
            line=dict(color=method_color(i)), customdata=t["id"], boxmean=True,
            hovertemplate="image %{customdata}<br>" + column + " %{y:.3f}<extra>" + name
                          + "</extra>"))
    fig.update_layout(height=height, margin=_MARGIN, showlegend=False,
                      title=dict(text=f"Per-image {column.replace('_', ' ')} "
                                      "(box: quartiles, dashed: mean)", font=dict(size=14)),
                      yaxis=dict(title=column.replace("_", " "), range=[-0.02, 1.02]))
    return fig


def convergence_figure(history: pd.DataFrame, *, start_score: float | None = None,
                       n_calls: int | None = None, height: int = 320) -> go.Figure:
    """Each call's score and the best score so far, against the call number.

    Parameters
    ----------
    history : DataFrame
        Columns ``call``, ``score``, ``best_so_far`` (the optimiser's history; may be
        empty while a run starts).
    start_score : float, optional
        The starting parameters' score, drawn as a dashed horizontal line.
    n_calls : int, optional
        Fixes the x range to the planned number of calls (a live curve fills it).
    """
    for c in ("call", "score", "best_so_far"):
        if c not in history:
            raise ValueError(f"`history` lacks column {c!r}")
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=history["call"], y=history["score"], mode="markers",
                             name="call's mean Dice", marker=dict(color="#9e9e9e", size=6)))
    fig.add_trace(go.Scatter(x=history["call"], y=history["best_so_far"], mode="lines+markers",
                             name="best so far", line=dict(color="#1f77b4", width=2,
                                                           shape="hv")))
    if start_score is not None and math.isfinite(start_score):
        fig.add_hline(y=start_score, line=dict(color="#ff7f0e", dash="dash"),
                      annotation_text=f"start {start_score:.4f}",
                      annotation_position="bottom right")
    best = float(history["best_so_far"].max()) if len(history) else float("nan")
    fig.update_layout(height=height, margin=_MARGIN,
                      title=dict(text=f"Convergence: best mean Dice so far {_fmt(best, 4)}",
                                 font=dict(size=14)),
                      xaxis=dict(title="call", range=[0.5, (n_calls or max(len(history), 1))
                                                      + 0.5]),
                      yaxis=dict(title="mean Dice (train)"),
                      legend=dict(orientation="h", y=-0.2))
    return fig


def surface_figure(surface, *, points: pd.DataFrame | None = None,
                   best: tuple | None = None, pooled: bool = False,
                   height: int = 520) -> go.Figure:
    """The exact Dice surface over (t_nuc, t_bg) as a heatmap, with evaluated points.

    Parameters
    ----------
    surface : DiceSurface
        From :func:`cellseg_core.evaluation.dice_surface` (``thresholds``, ``mean``,
        ``pooled``, ``best``, ``best_score``).
    points : DataFrame, optional
        The optimiser's evaluated points: columns ``threshold.t_nuc``,
        ``threshold.t_bg`` (and ``score``).
    best : (t_nuc, t_bg), optional
        The optimiser's best point (drawn as a star).
    pooled : bool
        Show the pooled-pixel Dice instead of the per-image mean.

    Notes
    -----
    x is ``t_bg`` and y is ``t_nuc``; the invalid half ``t_nuc >= t_bg`` is blank.
    """
    grid = np.asarray(surface.thresholds, float)
    z = np.asarray(surface.pooled if pooled else surface.mean, float)
    if z.shape != (grid.size, grid.size):
        raise ValueError(f"`surface` grid ({grid.size}) and values {z.shape} do not match")
    what = "pooled Dice" if pooled else "mean Dice"
    fig = go.Figure(go.Heatmap(
        x=grid, y=grid, z=z, colorscale="Viridis", zmin=float(np.nanmin(z)) if
        np.isfinite(z).any() else 0, colorbar=dict(title=what),
        hovertemplate="t_bg %{x:.3f}<br>t_nuc %{y:.3f}<br>" + what + " %{z:.4f}<extra></extra>",
        name=what))
    if points is not None and len(points) and {"threshold.t_nuc", "threshold.t_bg"} <= set(points):
        fig.add_trace(go.Scatter(
            x=points["threshold.t_bg"], y=points["threshold.t_nuc"], mode="markers",
            name="optimiser's calls", marker=dict(color="white", size=7,
                                                  line=dict(color="black", width=1)),
            customdata=points["score"] if "score" in points else None,
            hovertemplate="t_bg %{x:.3f}<br>t_nuc %{y:.3f}<br>Dice %{customdata:.4f}"
                          "<extra>call</extra>"))
    if best is not None:
        fig.add_trace(go.Scatter(x=[best[1]], y=[best[0]], mode="markers",
                                 name="optimiser's best",
                                 marker=dict(symbol="star", size=16, color="red",
                                             line=dict(color="white", width=1))))
    idx = np.unravel_index(np.nanargmax(z), z.shape) if np.isfinite(z).any() else None
    if idx is not None:
        fig.add_trace(go.Scatter(x=[grid[idx[1]]], y=[grid[idx[0]]], mode="markers",
                                 name="surface maximum",
                                 marker=dict(symbol="x", size=12, color="orange")))
    title = f"Exact {what} over (t_nuc, t_bg)"
    if idx is not None:
        title += (f": maximum {z[idx]:.4f} at t_nuc {grid[idx[0]]:.3f}, "
                  f"t_bg {grid[idx[1]]:.3f}")
    fig.update_layout(height=height, margin=_MARGIN, title=dict(text=title, font=dict(size=14)),
                      xaxis=dict(title="t_bg (cell / background)"),
                      yaxis=dict(title="t_nuc (nucleus / cytoplasm)"),
                      legend=dict(orientation="h", y=-0.15))
    return fig
