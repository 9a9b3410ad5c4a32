"""Plotly figures of the Count page (fluorescence nuclei), built without Streamlit."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cellseg_core.measure import region_stats

from .figures import boundaries, display_step, instance_rgb, png_data_uri, to_rgb8

__all__ = ["MATCH_COLORS", "instance_overlay_rgb", "label_centroids", "instance_figure",
           "steps_figure",
           "size_histogram", "sweep_figure", "profile_figure", "pair_sweep_figure",
           "count_curve_figure", "dim_bright_figure"]

#: Matched / false / missed objects against the ground truth.
MATCH_COLORS = {"matched": (0, 200, 83), "false": (255, 61, 0), "missed": (41, 121, 255)}
_M = dict(l=0, r=0, t=30, b=0)


def _stretch(image: np.ndarray) -> np.ndarray:
    """Image scaled to [0, 1] by its 99.5th percentile (fluorescence is dim); an RGB
    image keeps its colours (a stained slide counted by auto-nuclei, a DAPI export)."""
    image = np.asarray(image, np.float64)
    top = float(np.percentile(image, 99.5)) if image.size else 1.0
    return np.clip(image / (top if top > 0 else 1.0), 0.0, 1.0)


def instance_overlay_rgb(image, instances, *, truth=None, match=None, opacity=0.45):
    """Each instance in its own colour over the image; with `match` (from
    :func:`cellseg_core.metrics.match_instances`) matched objects green, false ones
    red and missed true objects outlined in blue."""
    rgb = to_rgb8(_stretch(image)).astype(np.float32)
    instances = np.asarray(instances)
    if match is None:
        color = instance_rgb(instances).astype(np.float32)
    else:
        lut = np.zeros((int(instances.max(initial=0)) + 1, 3), np.float32)
        lut[1:] = MATCH_COLORS["false"]
        lut[np.asarray(match["matched_pred"], int)] = MATCH_COLORS["matched"]
        color = lut[instances]
    inside = (instances > 0)[..., None]
    out = np.where(inside, rgb * (1 - opacity) + color * opacity, rgb)
    edge = boundaries(instances)
    out[edge] = color[edge]
    if truth is not None and match is not None:
        missed = np.isin(truth, np.setdiff1d(np.unique(truth[truth > 0]),
                                             np.asarray(match["matched_true"], int)))
        out[boundaries(np.where(missed, truth, 0))] = MATCH_COLORS["missed"]
    return (out + 0.5).astype(np.uint8)


def _image_axes(fig, height):
    fig.update_xaxes(showticklabels=False, matches="x")
    fig.update_yaxes(showticklabels=False, autorange="reversed", scaleanchor="x",
                     matches="y")
    fig.update_layout(height=height, margin=_M, dragmode="pan", uirevision="keep")


def _image_trace(rgb: np.ndarray, step: int) -> go.Image:
    """An RGB image drawn at 1/`step` scale on full-resolution pixel axes."""
    offset = (step - 1) / 2
    return go.Image(source=png_data_uri(rgb), hoverinfo="skip", x0=offset, dx=step,
                    y0=offset, dy=step)


def label_centroids(instances: np.ndarray) -> pd.DataFrame:
    """``label``, ``nucleus_area``, ``centroid_row`` and ``centroid_col`` of every
    instance, from :func:`cellseg_core.measure.region_stats` alone (no per-object table
    with its convex hulls: the overlay is drawn first).

    Examples
    --------
    >>> import numpy as np
    >>> label_centroids(np.array([[1, 1, 0], [0, 0, 2]])).to_dict("list")
    {'label': [1, 2], 'nucleus_area': [2, 1], 'centroid_row': [0.0, 1.0], 'centroid_col': [0.5, 2.0]}
    """
    stats = region_stats(np.asarray(instances))  # the core's O(pixels) label statistics
    return pd.DataFrame({"label": stats["label"], "nucleus_area": stats["area"].astype(np.int64),
                         "centroid_row": stats["centroid_row"],
                         "centroid_col": stats["centroid_col"]})


def instance_figure(image, instances, objects: pd.DataFrame | None = None, *, truth=None,
                    match=None, height: int = 520, numbers: bool = True,
                    max_side: int | None = None) -> go.Figure:
    """Instance overlay with each object's number at its centroid (from `objects`, the
    per-object table, or :func:`label_centroids` when None).

    `max_side`: the overlay is drawn at most this many pixels a side (every
    ``display_step``-th pixel) on axes that stay in full-resolution pixels; None:
    full resolution."""
    step = 1 if max_side is None else display_step(np.shape(instances), max_side)
    cut = (slice(None, None, step),) * 2
    fig = go.Figure(_image_trace(instance_overlay_rgb(
        np.asarray(image)[cut], np.asarray(instances)[cut],
        truth=None if truth is None else np.asarray(truth)[cut], match=match), step))
    if numbers and objects is None:
        objects = label_centroids(instances)
    if numbers and len(objects):
        fig.add_trace(go.Scatter(x=objects["centroid_col"], y=objects["centroid_row"],
                                 mode="text", text=objects["label"].astype(int).astype(str),
                                 textfont=dict(color="white", size=11), hoverinfo="text",
                                 hovertext=[f"#{int(r.label)}: {int(r.nucleus_area)} px"
                                            for r in objects.itertuples()],
                                 showlegend=False))
    if match is not None:
        for name, c in MATCH_COLORS.items():
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=name,
                                     marker=dict(symbol="square", size=12,
                                                 color=f"rgb{tuple(c)}")))
    _image_axes(fig, height)
    fig.update_layout(legend=dict(orientation="h", y=-0.02, yanchor="top"))
    return fig


def steps_figure(seg, *, height: int = 300, max_side: int | None = None) -> go.Figure:
    """blurred | threshold | cleaned | distance map with markers (``seg.markers``) | instances.

    `max_side`: each panel at most this many pixels a side (axes in full-resolution
    pixels); None: full resolution."""
    distance, peaks = seg.markers
    step = 1 if max_side is None else display_step(seg.labels.shape, max_side)
    cut = (slice(None, None, step),) * 2
    titles = ["1 blurred", "2 threshold", "3 cleaned", "4 distance + markers", "5 instances"]
    fig = make_subplots(rows=1, cols=5, subplot_titles=titles, horizontal_spacing=0.01)
    dist = np.asarray(distance, np.float64)[cut]
    top = float(np.asarray(distance).max(initial=0))
    panels = [to_rgb8(_stretch(seg.blurred[cut])), to_rgb8((seg.raw[cut] > 0).astype(np.float32)),
              to_rgb8((seg.labels[cut] > 0).astype(np.float32)),
              to_rgb8(dist / top if top > 0 else dist),
              instance_rgb(seg.nuclei[cut])]
    for col, rgb in enumerate(panels, start=1):
        fig.add_trace(_image_trace(rgb, step), row=1, col=col)
    if len(peaks):
        fig.add_trace(go.Scatter(x=peaks[:, 1], y=peaks[:, 0], mode="markers", name="markers",
                                 marker=dict(color="red", size=6), showlegend=False),
                      row=1, col=4)
    _image_axes(fig, height)
    return fig


def size_histogram(objects: pd.DataFrame, *, height: int = 260,
                   pixel_size: float | None = None) -> go.Figure:
    """Histogram of the nucleus areas: in µm² with a `pixel_size` (µm per pixel), else
    in pixels, said on the axis."""
    area = objects["nucleus_area"].astype(float)
    if pixel_size:
        area, unit = area * pixel_size ** 2, "µm²"
    else:
        unit = "px; no pixel size"
    fig = go.Figure(go.Histogram(x=area, nbinsx=30, marker_color="rgb(213,0,249)"))
    fig.update_layout(height=height, margin=_M, xaxis_title=f"area ({unit})",
                      yaxis_title="nuclei", title=dict(text="object sizes", font_size=13))
    return fig


def sweep_figure(summary: pd.DataFrame, n_true: float, failing: float | None, *,
                 height: int = 320) -> go.Figure:
    """Mean ± std of the count against noise, the true count, the failing level."""
    fig = go.Figure(go.Scatter(x=summary["level"], y=summary["mean"], mode="lines+markers",
                               name="count (mean ± std)",
                               error_y=dict(type="data", array=summary["std"], visible=True)))
    fig.add_hline(y=n_true, line=dict(dash="dash", color="green"),
                  annotation_text=f"true count {n_true:g}")
    if failing is not None:
        fig.add_vline(x=failing, line=dict(dash="dot", color="red"),
                      annotation_text=f"fails from {failing:g}")
    fig.update_layout(height=height, margin=_M, xaxis_title="noise σn",
                      yaxis_title="cells counted")
    return fig


def profile_figure(r: dict, *, height: int = 300) -> go.Figure:
    """Blurred intensity along the line through both centres, and the threshold."""
    fig = go.Figure([go.Scatter(x=r["profile_t"], y=r["profile"], name="blurred image"),
                     go.Scatter(x=r["profile_t"], y=r["profile_clean"],
                                name="blurred, no noise", line=dict(dash="dot"))])
    fig.add_hline(y=r["threshold"], line=dict(color="black", dash="dash"),
                  annotation_text=f"threshold {r['threshold']:.2f}")
    if np.isfinite(r["midpoint_predicted"]):
        fig.add_trace(go.Scatter(x=[0], y=[r["midpoint_predicted"]], mode="markers",
                                 name="midpoint, predicted",
                                 marker=dict(size=11, symbol="x", color="red")))
    fig.update_layout(height=height, margin=_M, xaxis_title="px from the midpoint",
                      yaxis_title="intensity")
    return fig


def pair_sweep_figure(sweep: pd.DataFrame, merge: float, *, height: int = 300) -> go.Figure:
    fig = go.Figure([go.Scatter(x=sweep["distance"], y=sweep["plain"], name="labelling",
                                mode="lines+markers"),
                     go.Scatter(x=sweep["distance"], y=sweep["watershed"], name="watershed",
                                mode="lines+markers")])
    fig.add_hline(y=2, line=dict(dash="dash", color="green"), annotation_text="2 cells")
    if np.isfinite(merge):
        fig.add_vline(x=merge, line=dict(dash="dot", color="red"),
                      annotation_text=f"predicted merge < {merge:.1f} px")
    fig.update_layout(height=height, margin=_M, xaxis_title="centre distance (px)",
                      yaxis_title="objects")
    return fig


def count_curve_figure(curves: dict, n_true: int, chosen: float, *, height: int = 300
                       ) -> go.Figure:
    """Count against a global threshold, one curve per image (name -> DataFrame)."""
    fig = go.Figure([go.Scatter(x=c["threshold"], y=c["count"], name=name, mode="lines")
                     for name, c in curves.items()])
    fig.add_hline(y=n_true, line=dict(dash="dash", color="green"),
                  annotation_text=f"true count {n_true}")
    fig.add_vline(x=chosen, line=dict(dash="dot", color="black"),
                  annotation_text=f"global t = {chosen:.2f}")
    fig.update_layout(height=height, margin=_M, xaxis_title="global threshold",
                      yaxis_title="cells counted")
    return fig


def dim_bright_figure(objects: pd.DataFrame, class_threshold: float, *,
                      height: int = 300) -> go.Figure:
    """Mean intensity of each detected object, by its true class, and the class line."""
    colors = {"bright": "rgb(255,179,0)", "dim": "rgb(41,121,255)", "none": "gray"}
    fig = go.Figure([go.Histogram(x=objects.loc[objects["true"] == cls, "mean_intensity"],
                                  name=f"true {cls}", marker_color=colors[cls], nbinsx=40,
                                  opacity=0.75)
                     for cls in ("bright", "dim", "none") if (objects["true"] == cls).any()])
    fig.add_vline(x=class_threshold, line=dict(dash="dash", color="black"),
                  annotation_text=f"dim below {class_threshold:.2f}")
    fig.update_layout(height=height, margin=_M, barmode="overlay",
                      xaxis_title="mean intensity of the object", yaxis_title="objects")
    return fig
