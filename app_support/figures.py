"""Plotly figures of images, labels and histograms, built without Streamlit.

Every builder takes arrays (or a :class:`cellseg_core.Segmentation`) and returns a
``plotly.graph_objects.Figure``, so it can be tested headless. Images are sent to the
browser as PNG data URIs at display size (at most `max_side` pixels a side), while the
axes stay in full-resolution pixel coordinates (row/column of the original image).
"""
from __future__ import annotations

import base64
import hashlib
import io

import numpy as np
import plotly.graph_objects as go
from PIL import Image

__all__ = [
    "CLASS_NAMES", "CLASS_COLORS", "CONFUSION_COLORS", "display_step", "to_rgb8",
    "png_data_uri", "palette_png_uri", "jpeg_data_uri", "label_png_uri", "label_rgba",
    "boundaries", "overlay_rgb", "overlay_figure", "steps_figure", "class_histograms",
    "histogram_scale", "histogram_figure", "error_map_rgb",
    "error_map_figure", "instance_rgb", "BARE_TEMPLATE", "CHART_OPTIONS",
]

CLASS_NAMES = {0: "background", 1: "cytoplasm", 2: "nucleus"}
#: Class colours (RGB) shared by every figure and the legend.
CLASS_COLORS = {1: (0, 200, 83), 2: (213, 0, 249)}
#: (true class, predicted class) -> colour of that error in the error map.
CONFUSION_COLORS = {
    (0, 1): (255, 214, 0),     # background called cytoplasm
    (0, 2): (255, 109, 0),     # background called nucleus
    (1, 0): (41, 121, 255),    # cytoplasm missed
    (1, 2): (213, 0, 249),     # cytoplasm called nucleus
    (2, 0): (0, 229, 255),     # nucleus missed
    (2, 1): (0, 200, 83),      # nucleus called cytoplasm
}
_MARGIN = dict(l=0, r=0, t=30, b=0)
_CLASS_PALETTE = np.array([(0, 0, 0), CLASS_COLORS[1], CLASS_COLORS[2]], np.uint8)
#: Instance colours: index 0 black, then 255 pseudo-random colours that repeat.
_INSTANCE_PALETTE = np.vstack([[0, 0, 0], np.random.default_rng(0).integers(
    60, 256, size=(255, 3))]).astype(np.uint8)


def display_step(shape, max_side: int = 1024) -> int:
    """Integer stride that brings an image of `shape` to at most `max_side` a side."""
    if max_side < 1:
        raise ValueError(f"`max_side` must be >= 1, got {max_side}")
    return max(1, int(np.ceil(max(shape[:2]) / max_side)))


def _shrink(array: np.ndarray, step: int) -> np.ndarray:
    return array if step == 1 else array[::step, ::step]


def _gray8(array: np.ndarray) -> np.ndarray:
    """Float values in [0, 1] as uint8 (clipped, rounded)."""
    return (np.clip(array, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """A float image in [0, 1] (gray or RGB) as uint8 RGB ``(M, N, 3)``."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = _gray8(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return image


def _data_uri(im: Image.Image, fmt: str, **options) -> str:
    """`im` encoded as `fmt` (``PNG`` with fast zlib, or ``JPEG``) in a base64 data URI."""
    buf = io.BytesIO()
    im.save(buf, format=fmt, **({"compress_level": 1} if fmt == "PNG" else {}), **options)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def png_data_uri(rgb: np.ndarray) -> str:
    """Encode a uint8 gray/RGB/RGBA array as a ``data:image/png;base64`` URI (fast zlib)."""
    return _data_uri(Image.fromarray(np.ascontiguousarray(rgb)), "PNG")


def jpeg_data_uri(rgb: np.ndarray, quality: int = 90) -> str:
    """Encode a uint8 RGB image as a JPEG data URI: a photo-like base image is several
    times smaller than as PNG, and it is sent once per panel on every redraw."""
    return _data_uri(Image.fromarray(np.ascontiguousarray(rgb)), "JPEG", quality=quality)


def palette_png_uri(indices: np.ndarray, palette: np.ndarray, *,
                    transparent_zero: bool = False) -> str:
    """A uint8 index image and an ``(n, 3)`` palette as a PNG data URI (index 0
    transparent if asked).

    A palette PNG is one byte a pixel: three times less to encode and send than RGB.
    """
    im = Image.fromarray(np.ascontiguousarray(indices, np.uint8), mode="P")
    im.putpalette(np.asarray(palette, np.uint8).ravel().tolist())
    return _data_uri(im, "PNG", **({"transparency": 0} if transparent_zero else {}))


def boundaries(labels: np.ndarray) -> np.ndarray:
    """Pixels of a non-zero label whose 4-neighbour has another label (inner contour)."""
    labels = np.asarray(labels)
    edge = np.zeros(labels.shape, bool)
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    return edge & (labels != 0)


def label_rgba(labels: np.ndarray) -> np.ndarray:
    """Class colours of a 0/1/2 label image as RGBA uint8, background transparent."""
    lut = np.zeros((256, 4), np.uint8)
    for cls, color in CLASS_COLORS.items():
        lut[cls] = (*color, 255)
    return lut[np.asarray(labels, np.uint8)]


def overlay_rgb(image: np.ndarray, labels: np.ndarray, *, opacity: float = 0.4,
                style: str = "fill", instances: np.ndarray | None = None) -> np.ndarray:
    """Blend class colours over an image.

    Parameters
    ----------
    image : (M, N[, 3]) ndarray, float in [0, 1] or uint8
    labels : (M, N) ndarray of uint8, classes 0/1/2
    opacity : float in [0, 1]
    style : {'fill', 'contour'}
        ``contour`` draws only class boundaries (and nucleus instance boundaries when
        `instances` is given), fully opaque.
    instances : (M, N) ndarray of int, optional

    Returns
    -------
    (M, N, 3) ndarray of uint8
    """
    if style not in ("fill", "contour"):
        raise ValueError(f"`style` must be 'fill' or 'contour', got {style!r}")
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"`opacity` must be in [0, 1], got {opacity!r}")
    rgb = to_rgb8(image)
    if labels.shape != rgb.shape[:2]:
        raise ValueError(f"`labels` (shape {labels.shape}) must have same shape as "
                         f"`image` (shape {rgb.shape[:2]})")
    color = label_rgba(labels)
    if style == "fill":
        alpha = (color[..., 3:] > 0) * np.float32(opacity)
    else:
        edge = boundaries(labels)
        if instances is not None:
            edge |= boundaries(instances)
            color[edge & (labels == 0)] = (*CLASS_COLORS[2], 255)
        alpha = edge[..., None] * np.float32(max(opacity, 0.8))
    out = rgb * (1 - alpha) + color[..., :3] * alpha
    return (out + 0.5).astype(np.uint8)


def label_png_uri(labels: np.ndarray, *, style: str = "fill",
                  instances: np.ndarray | None = None) -> str:
    """Class labels as a palette PNG data URI, background transparent.

    One byte a pixel and a three-colour palette: encoding a 1024² label image takes
    about a millisecond, against tens for a blended RGB image, so the page sends the
    image once and only this layer when a parameter moves.
    """
    if style not in ("fill", "contour"):
        raise ValueError(f"`style` must be 'fill' or 'contour', got {style!r}")
    labels = np.asarray(labels, np.uint8)
    if style == "contour":
        edge = boundaries(labels)
        if instances is not None:
            inner = boundaries(instances)
            edge |= inner
            labels = np.where(inner & (labels == 0), np.uint8(2), labels)
        labels = np.where(edge, labels, np.uint8(0))
    return palette_png_uri(labels, _CLASS_PALETTE, transparent_zero=True)


def _instance_index(instances: np.ndarray) -> np.ndarray:
    """Instance ids as indices into :data:`_INSTANCE_PALETTE` (0 stays 0; ids repeat
    the 255 colours)."""
    instances = np.asarray(instances)
    return np.where(instances > 0, (instances - 1) % 255 + 1, 0).astype(np.uint8)


def instance_rgb(instances: np.ndarray) -> np.ndarray:
    """Instances in pseudo-random colours (255 of them, repeating), background black."""
    return _INSTANCE_PALETTE[_instance_index(instances)]


def _image_trace(rgb: np.ndarray | str, step: int, name: str, col: int = 1) -> dict:
    """An image trace (a PNG data URI) on the axes of panel `col` (1-based)."""
    suffix = "" if col == 1 else str(col)
    return {"type": "image", "source": rgb if isinstance(rgb, str) else png_data_uri(rgb),
            "x0": 0, "y0": 0, "dx": step, "dy": step, "name": name, "hoverinfo": "skip",
            "xaxis": f"x{suffix}", "yaxis": f"y{suffix}"}


def _layer_image(uri: str, shape, step: int, name: str, col: int, opacity: float = 1.0,
                 layer: str = "above") -> dict:
    """A layout image (data URI) filling panel `col`'s pixels, `shape` its size in display
    pixels. Plotly draws a layout image by setting its href, at once; an image trace
    first loads its source to learn its size, so the chart is drawn a task later."""
    suffix = "" if col == 1 else str(col)
    return {"name": name, "source": uri, "xref": f"x{suffix}", "yref": f"y{suffix}",
            "x": -step / 2, "y": -step / 2, "sizex": shape[1] * step, "sizey": shape[0] * step,
            "xanchor": "left", "yanchor": "top", "sizing": "stretch", "layer": layer,
            "opacity": opacity}


def _legend(items: dict) -> list:
    """Legend entries (name -> RGB) as invisible scatter points."""
    return [{"type": "scatter", "x": [None], "y": [None], "mode": "markers", "name": name,
             "marker": {"size": 12, "symbol": "square", "color": f"rgb{tuple(color)}"},
             "showlegend": True, "hoverinfo": "skip"} for name, color in items.items()]


def _grid_layout(titles, *, height: int, gap: float = 0.01, extent=None,
                 titled: bool = True) -> dict:
    """Layout of a row of image panels whose zoom and pan follow the first panel.

    `extent` = (display shape, step) sets the axes' ranges to the image's pixels, for
    figures whose images are layout images (Plotly's autorange sees only traces).
    `titled`: the panel titles above the panels (else no top margin for them).

    Built as a plain dict (``make_subplots`` and per-property validation cost tens of
    milliseconds, paid on every slider move).
    """
    n = len(titles)
    width = (1 - gap * (n - 1)) / n
    layout = {"height": height, "margin": {**_MARGIN, **({} if titled else {"t": 4})},
              "dragmode": "pan",
              "uirevision": "keep-zoom", "annotations": [],
              "legend": {"orientation": "h", "y": -0.02, "yanchor": "top"}}
    ranges = {}
    if extent is not None:
        (rows, cols), step = extent
        ranges = {"x": [-step / 2, (cols - 0.5) * step], "y": [(rows - 0.5) * step, -step / 2]}
    for i, title in enumerate(titles):
        suffix = "" if i == 0 else str(i + 1)
        left = i * (width + gap)
        y_extent = {"range": ranges["y"]} if ranges else {"autorange": "reversed"}
        if i:  # zoom and pan follow the first panel
            x_span = {"matches": "x"}
            y_span = {"matches": "y", **({} if ranges else y_extent)}
        else:  # one square-pixel constraint (Plotly warns about one on a matched axis)
            x_span = {"range": ranges["x"]} if ranges else {}
            y_span = {"scaleanchor": "x", **y_extent}
        # Square pixels by narrowing the panel, not by widening the range: a range
        # Plotly widened itself counts as changed on the next redraw, and redrawing
        # in place (app_support.live_plot) would then drop the user's zoom.
        x_span["constrain"] = y_span["constrain"] = "domain"
        layout[f"xaxis{suffix}"] = {"domain": [left, left + width], "showticklabels": False,
                                    "showgrid": False, "zeroline": False,
                                    "anchor": f"y{suffix}", **x_span}
        layout[f"yaxis{suffix}"] = {"showticklabels": False, "showgrid": False,
                                    "zeroline": False, "anchor": f"x{suffix}", **y_span}
        if titled:
            layout["annotations"].append({"text": title, "x": left + width / 2, "y": 1.0,
                                          "xref": "paper", "yref": "paper",
                                          "showarrow": False, "xanchor": "center",
                                          "yanchor": "bottom", "font": {"size": 14}})
    return layout


#: An empty template with transparent backgrounds: the browser re-applies a figure's
#: template on every redraw, and the default one (~6 KB) is most of a small figure.
#: Pages show these figures with ``theme=None`` (see :data:`CHART_OPTIONS`).
BARE_TEMPLATE = {"layout": {
    "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)",
    # as the default template: no tick marks (figures with tick labels ask for automargin)
    "xaxis": {"ticks": "", "gridcolor": "#e5e5e5"},
    "yaxis": {"ticks": "", "gridcolor": "#e5e5e5"}}}
#: Keyword arguments for ``st.plotly_chart`` of the figures built here.
CHART_OPTIONS = {"theme": None}


def _figure(data: list, layout: dict) -> go.Figure:
    """A figure from plain dicts, not validated property by property: that takes
    longer than encoding the images (the tests validate every builder's output)."""
    return go.Figure({"data": data, "layout": {"template": BARE_TEMPLATE, **layout}},
                     _validate=False)


def overlay_figure(image: np.ndarray, labels: np.ndarray, *, truth: np.ndarray | None = None,
                   instances: np.ndarray | None = None, opacity: float = 0.4,
                   style: str = "fill", max_side: int = 1024, height: int = 420,
                   fluorescence: bool = False, image_uri: str | None = None,
                   ) -> go.Figure:
    """Original | prediction overlay [| ground-truth overlay], zoom and pan shared.

    Large images are drawn with a stride (see :func:`display_step`) but the axes are
    in full-resolution pixels, so coordinates read on hover match the original.
    Every panel is a layout image (see :func:`_layer_image`), each overlay a palette-PNG
    label layer of the given opacity above the image; the figure has no titles or
    legend, :func:`overlay_key` names them for a caption. `image_uri` is the image
    already encoded (it does not change when a parameter moves, so callers may cache it).
    """
    step = display_step(labels.shape, max_side)
    small = _shrink(np.asarray(image), step)
    lab = _shrink(labels, step)
    inst = None if instances is None else _shrink(instances, step)
    titles = ["image", "prediction"] + ([] if truth is None else ["ground truth"])
    base = image_uri or jpeg_data_uri(to_rgb8(small))
    alpha = opacity if style == "fill" else max(opacity, 0.8)
    layers = [_layer_image(base, lab.shape, step, "image", col, layer="below")
              for col in range(1, len(titles) + 1)]
    layers += [_layer_image(label_png_uri(lab, style=style, instances=inst), lab.shape, step,
                           "prediction", 2, alpha)]
    if truth is not None:
        layers.append(_layer_image(label_png_uri(_shrink(truth, step), style=style),
                                   lab.shape, step, "ground truth", 3, alpha))
    layout = _grid_layout(titles, height=height, extent=(lab.shape, step), titled=False)
    return _figure([], {**layout, "images": layers, "showlegend": False})


def overlay_key(*, truth: bool, fluorescence: bool = False) -> str:
    """Markdown for the caption of :func:`overlay_figure`: its panels and colours (the
    figure has no titles or legend: Plotly measures every text in the page's layout,
    which made each redraw ~13 ms slower on the Explore page)."""
    panels = " · ".join(["image", "prediction"] + (["ground truth"] if truth else []))
    colours = ("nuclei magenta" if fluorescence
               else "cytoplasm green, nucleus magenta")
    return f"Left to right: {panels}. {colours.capitalize()}."


def steps_figure(seg, *, max_side: int = 384, height: int = 260) -> go.Figure:
    """The pipeline's intermediate images side by side: channel, blurred, raw
    threshold, cleaned classes, nucleus instances (zoom and pan shared)."""
    step = display_step(seg.labels.shape, max_side)
    panels = {
        "channel": png_data_uri(_gray8(_shrink(seg.channel, step))),
        "blurred": png_data_uri(_gray8(_shrink(seg.blurred, step))),
        "raw threshold": palette_png_uri(_shrink(seg.raw, step), _CLASS_PALETTE),
        "cleaned": palette_png_uri(_shrink(seg.labels, step), _CLASS_PALETTE),
        "instances": palette_png_uri(_instance_index(_shrink(seg.nuclei, step)),
                                     _INSTANCE_PALETTE),
    }
    data = [_image_trace(uri, step, name, col)
            for col, (name, uri) in enumerate(panels.items(), start=1)]
    return _figure(data, _grid_layout(list(panels), height=height))


def class_histograms(channel: np.ndarray, truth: np.ndarray | None = None, *,
                     bins: int = 128) -> dict:
    """Histogram of a channel in [0, 1], one per true class when `truth` is given.

    Returns
    -------
    dict
        ``{"edges": (bins + 1,) array, "counts": {name: (bins,) array}}``; without a
        truth the only name is ``"all pixels"``.
    """
    channel = np.asarray(channel)
    edges = np.linspace(0.0, 1.0, bins + 1)
    if truth is not None and truth.shape != channel.shape:
        raise ValueError(f"`truth` (shape {truth.shape}) must have same shape as "
                         f"`channel` (shape {channel.shape})")
    rows = channel.reshape(channel.shape[0], -1) if channel.ndim > 1 else channel.reshape(1, -1)
    truth_rows = None if truth is None else np.asarray(truth).reshape(rows.shape)
    joint = np.zeros(3 * bins, np.int64)
    # In bands of about a million pixels: full-size index arrays of a 4096² image
    # would cost 256 MB for a 128-number answer (issue 21, the page's memory).
    step = max(1, 2**20 // max(1, rows.shape[1]))
    for start in range(0, len(rows), step):
        index = np.clip((rows[start:start + step] * bins).astype(np.intp), 0, bins - 1)
        if truth_rows is not None:
            index += truth_rows[start:start + step].astype(np.intp) * bins
        joint += np.bincount(index.ravel(), minlength=3 * bins)[:3 * bins]
    joint = joint.reshape(3, bins)
    if truth is None:
        return {"edges": edges, "counts": {"all pixels": joint[0]}}
    return {"edges": edges,
            "counts": {CLASS_NAMES[c]: joint[c] for c in range(3) if joint[c].any()}}


_HIST_COLORS = {"background": "rgb(120,120,120)", "cytoplasm": "rgb(0,200,83)",
                "nucleus": "rgb(213,0,249)", "all pixels": "rgb(60,60,60)"}


#: A curve's peak this many times above every other curve's highest point is a spike
#: (the bright glass, or the dark of a fluorescence slide): the axis is cut above the
#: others and the spike marked, so the classes whose crossing the thresholds sit on
#: keep their height.
SPIKE_RATIO = 2.5
_SPIKE_SHOULDER = 2


def histogram_scale(counts: dict) -> tuple[float | None, tuple | None]:
    """Where to cut the count axis of class histograms dominated by one spike.

    Parameters
    ----------
    counts : dict
        Name -> (bins,) counts, as :func:`class_histograms` returns them.

    Returns
    -------
    top : float or None
        The axis' upper end (1.15 × the highest point of everything but the spike), or
        None when no curve towers over the others (the axis fits every curve).
    spike : (name, bin, count) or None
        The curve and bin that were cut, and its true height.

    With several curves the spike is the tallest curve's peak, compared with the
    other curves; with one curve, its peak compared with the curve outside the run
    of bins around the peak that stay above half of it (and two bins either side:
    the blur spreads the spike's edge into its neighbours).

    Examples
    --------
    >>> import numpy as np
    >>> top, spike = histogram_scale({"all pixels": np.array([5, 9, 8, 2, 0, 30, 400])})
    >>> round(top, 2), spike
    (10.35, ('all pixels', 6, 400))
    >>> histogram_scale({"all pixels": np.array([5, 9, 8])})
    (None, None)
    """
    curves = {name: np.asarray(c, np.float64) for name, c in counts.items()
              if np.asarray(c).size}
    if not curves:
        return None, None
    name = max(curves, key=lambda n: curves[n].max())
    tall = curves[name]
    peak_bin = int(tall.argmax())
    peak = float(tall[peak_bin])
    if len(curves) > 1:
        rest = max(float(c.max()) for n, c in curves.items() if n != name)
    else:
        high = tall > peak / 2
        lo = hi = peak_bin
        while lo > 0 and high[lo - 1]:
            lo -= 1
        while hi < tall.size - 1 and high[hi + 1]:
            hi += 1
        lo, hi = max(lo - _SPIKE_SHOULDER, 0), hi + _SPIKE_SHOULDER  # its blurred shoulders
        outside = np.concatenate([tall[:lo], tall[hi + 1:]])
        rest = float(outside.max()) if outside.size else 0.0
    if rest <= 0 or peak <= SPIKE_RATIO * rest:
        return None, None
    return 1.15 * rest, (name, peak_bin, int(peak))


def histogram_figure(hist: dict, thresholds: dict, *, height: int = 280,
                     log: bool = False) -> go.Figure:
    """Per-class histogram curves with vertical lines at the current thresholds.

    `thresholds` maps a name (``t_nuc``, ``t_bg``, ``t_object``) to a value; NaN
    (a per-pixel local threshold) draws no line. A spike that towers over the other
    classes (the bright background of a cytology slide) is cut at the top of the
    axis and marked with its height (:func:`histogram_scale`), so the cytoplasm and
    nucleus curves, and where they cross, stay readable; `log` shows every curve
    whole on a log axis instead. The threshold labels sit inside the plot, the legend
    above it, clear of the axis titles.
    """
    edges = hist["edges"]
    centres = (edges[:-1] + edges[1:]) / 2
    data = [{"type": "scatter", "x": centres, "y": counts, "mode": "lines", "name": name,
             "line": {"color": _HIST_COLORS.get(name), "width": 2}}
            for name, counts in hist["counts"].items()]
    shapes, notes = [], []
    shown = sorted((float(v), k) for k, v in thresholds.items()
                   if v is not None and np.isfinite(v))
    for i, (value, name) in enumerate(shown):
        shapes.append({"type": "line", "x0": value, "x1": value, "y0": 0,
                       "y1": 1, "xref": "x", "yref": "paper",
                       "line": {"color": "black", "dash": "dash", "width": 1.5}})
        # Inside the plot: beside the line, on the side with room, staggered downwards.
        right = value > 0.5
        notes.append({"x": value, "y": 1 - 0.12 * i, "xref": "x", "yref": "paper",
                      "text": f"{name} = {value:.3f}", "showarrow": False,
                      "xanchor": "right" if right else "left", "xshift": -4 if right else 4,
                      "yanchor": "top", "font": {"size": 11},
                      "bgcolor": "rgba(255,255,255,0.8)"})
    yaxis = {"title": {"text": "pixels"}, "type": "log" if log else "linear",
             "automargin": True}
    top, spike = (None, None) if log else histogram_scale(hist["counts"])
    if top is not None:
        name, b, count = spike
        yaxis["range"] = [0, top]
        notes.append({"x": float(centres[b]), "y": top, "xref": "x", "yref": "y",
                      "text": f"{name} peak {count:,} px<br>(off the scale)",
                      # Below the threshold labels, which sit at the top.
                      "showarrow": True, "arrowhead": 2, "ax": -30 if centres[b] > 0.5 else 30,
                      "ay": 64, "xanchor": "right" if centres[b] > 0.5 else "left",
                      "font": {"size": 11, "color": _HIST_COLORS.get(name, "black")},
                      "bgcolor": "rgba(255,255,255,0.8)"})
    several = len(hist["counts"]) > 1
    # Same curves -> same datarevision: when only a threshold moves, Plotly.react
    # redraws the lines and labels instead of recomputing every trace.
    revision = hashlib.blake2b(b"".join(np.asarray(c, np.int64).tobytes()
                                        for c in hist["counts"].values()),
                               digest_size=8).hexdigest()
    layout = {"height": height, "margin": {"l": 0, "r": 0, "t": 36, "b": 0},
              "xaxis": {"title": {"text": "channel value" + (" · one curve per true class"
                                                             if several else "")},
                        "range": [0, 1], "automargin": True},
              "yaxis": yaxis,
              "legend": {"orientation": "h", "x": 0, "xanchor": "left", "y": 1.02,
                         "yanchor": "bottom"},
              "showlegend": True,
              "shapes": shapes, "annotations": notes, "datarevision": revision,
              "uirevision": "keep-zoom"}
    return _figure(data, layout)


def error_map_rgb(image: np.ndarray, pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Agreeing pixels as the dimmed image, each kind of error in its own colour."""
    if pred.shape != truth.shape:
        raise ValueError(f"`pred` (shape {pred.shape}) must have same shape as "
                         f"`truth` (shape {truth.shape})")
    rgb = (to_rgb8(image).astype(np.float32) * 0.35 + 60).astype(np.uint8)
    lut = np.zeros((9, 3), np.uint8)
    wrong = np.zeros(9, bool)
    for (t, p), color in CONFUSION_COLORS.items():
        lut[t * 3 + p] = color
        wrong[t * 3 + p] = True
    code = np.asarray(truth, np.int64) * 3 + np.asarray(pred, np.int64)
    out = rgb.copy()
    mask = wrong[code]
    out[mask] = lut[code[mask]]
    return out


def error_map_figure(image: np.ndarray, pred: np.ndarray, truth: np.ndarray, *,
                     max_side: int = 1024, height: int = 420) -> go.Figure:
    """Where prediction and truth disagree, coloured by (true, predicted) class."""
    step = display_step(pred.shape, max_side)
    rgb = error_map_rgb(_shrink(np.asarray(image), step), _shrink(pred, step),
                        _shrink(truth, step))
    code = np.asarray(truth, np.int64) * 3 + np.asarray(pred, np.int64)
    counts = np.bincount(code.ravel(), minlength=9)
    present = {f"{CLASS_NAMES[t]} → {CLASS_NAMES[p]} ({counts[t * 3 + p]:,} px)": c
               for (t, p), c in CONFUSION_COLORS.items() if counts[t * 3 + p]}
    layout = _grid_layout(["errors (true → predicted)"], height=height)
    layout["legend"] = {"orientation": "v", "x": 1.01, "y": 1, "yanchor": "top"}
    return _figure([_image_trace(rgb, step, "errors"), *_legend(present)], layout)
