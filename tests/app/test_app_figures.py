"""Figure builders of the app, without a browser: exact pixels on tiny arrays."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("plotly")
from app_support import figures  # noqa: E402


def test_display_step():
    assert figures.display_step((256, 256), 1024) == 1
    assert figures.display_step((2048, 2048), 1024) == 2
    assert figures.display_step((3000, 100), 1024) == 3
    with pytest.raises(ValueError, match="max_side"):
        figures.display_step((10, 10), 0)


def test_overlay_fill_blends_class_colours_only():
    image = np.full((2, 3), 0.5, np.float32)
    labels = np.array([[0, 1, 2], [0, 0, 0]], np.uint8)
    out = figures.overlay_rgb(image, labels, opacity=1.0)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 3)
    assert tuple(out[0, 0]) == (128, 128, 128)
    assert tuple(out[0, 1]) == figures.CLASS_COLORS[1]
    assert tuple(out[0, 2]) == figures.CLASS_COLORS[2]
    half = figures.overlay_rgb(image, labels, opacity=0.5)
    expected = np.floor((128 + np.array(figures.CLASS_COLORS[2])) / 2 + 0.5).astype(int)
    assert tuple(half[0, 2]) == tuple(expected)
    assert image[0, 0] == 0.5  # input untouched


def test_overlay_contour_marks_only_boundaries():
    labels = np.zeros((7, 7), np.uint8)
    labels[1:6, 1:6] = 2
    out = figures.overlay_rgb(np.zeros((7, 7)), labels, style="contour", opacity=1.0)
    coloured = out.any(axis=2)
    assert coloured[1, 3] and coloured[3, 1] and not coloured[3, 3] and not coloured[0, 0]
    with pytest.raises(ValueError, match="style"):
        figures.overlay_rgb(np.zeros((7, 7)), labels, style="outline")
    with pytest.raises(ValueError, match="same shape"):
        figures.overlay_rgb(np.zeros((7, 8)), labels)


def test_overlay_figure_panels_share_zoom_and_keep_full_resolution_axes():
    image = np.random.default_rng(0).random((2048, 1024)).astype(np.float32)
    labels = (image > 0.5).astype(np.uint8)
    fig = figures.overlay_figure(image, labels, truth=labels, max_side=512)
    fig = figures.overlay_figure(image, labels, truth=labels, max_side=512, opacity=0.3)
    # image | image + prediction layer | image + truth layer, all layout images: the
    # images below the axes, the label layers above them, each on its panel's axes
    layers = fig.layout.images
    assert [(im.name, im.xref, im.yref, im.layer) for im in layers] == [
        ("image", "x", "y", "below"), ("image", "x2", "y2", "below"),
        ("image", "x3", "y3", "below"), ("prediction", "x2", "y2", "above"),
        ("ground truth", "x3", "y3", "above")]
    assert layers[0].source.startswith("data:image/jpeg;base64,")
    assert all(im.source.startswith("data:image/png;base64,") for im in layers[3:])
    assert [im.opacity for im in layers[3:]] == [0.3, 0.3]
    # each covers the image's pixels exactly: 256 x 512 display pixels of 4 (2048 / 512)
    assert all((im.x, im.y, im.sizex, im.sizey) == (-2, -2, 1024, 2048) for im in layers)
    assert all(im.sizing == "stretch" for im in layers)
    # the axes span those pixels (y downwards), zoom and pan follow the first panel
    assert fig.layout.xaxis.range == (-2, 1022) and fig.layout.yaxis.range == (2046, -2)
    assert fig.layout.yaxis.scaleanchor == "x"
    assert fig.layout.xaxis2.matches == "x" and fig.layout.yaxis3.matches == "y"
    # no texts to measure on redraw: the panels and colours are named in a caption
    assert not fig.data and not fig.layout.annotations and fig.layout.showlegend is False
    assert figures.overlay_key(truth=True) == (
        "Left to right: image · prediction · ground truth. Cytoplasm green, nucleus magenta.")
    assert "ground truth" not in figures.overlay_key(truth=False, fluorescence=True)


def test_label_png_is_a_transparent_palette_image():
    import base64
    import io

    from PIL import Image

    labels = np.array([[0, 1, 2], [2, 2, 2], [2, 2, 2]], np.uint8)
    uri = figures.label_png_uri(labels)
    im = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    rgba = np.asarray(im.convert("RGBA"))
    assert rgba[0, 0, 3] == 0
    assert tuple(rgba[0, 1]) == (*figures.CLASS_COLORS[1], 255)
    assert tuple(rgba[0, 2]) == (*figures.CLASS_COLORS[2], 255)
    contour = np.asarray(Image.open(io.BytesIO(base64.b64decode(
        figures.label_png_uri(labels, style="contour").split(",", 1)[1]))))
    assert contour[1, 1] == 2 and contour[2, 2] == 0  # boundary kept, inside dropped
    big = np.zeros((5, 5), np.uint8)
    big[1:4, 1:4] = 2
    inner = np.asarray(Image.open(io.BytesIO(base64.b64decode(
        figures.label_png_uri(big, style="contour").split(",", 1)[1]))))
    assert inner[2, 2] == 0 and inner[1, 2] == 2


def test_class_histograms_count_every_pixel_per_true_class():
    channel = np.array([[0.0, 0.1, 0.5], [0.99, 1.0, 0.5]])
    truth = np.array([[2, 2, 1], [0, 0, 1]], np.uint8)
    hist = figures.class_histograms(channel, truth, bins=10)
    assert list(hist["counts"]) == ["background", "cytoplasm", "nucleus"]
    assert hist["counts"]["nucleus"].tolist() == [1, 1] + [0] * 8
    assert hist["counts"]["cytoplasm"][5] == 2
    assert hist["counts"]["background"][9] == 2  # 1.0 falls in the last bin
    whole = figures.class_histograms(channel, bins=10)
    assert whole["counts"]["all pixels"].sum() == 6


def test_histogram_figure_draws_finite_thresholds_only():
    hist = figures.class_histograms(np.linspace(0, 1, 100).reshape(10, 10))
    fig = figures.histogram_figure(hist, {"t_nuc": 0.39, "t_bg": 0.99})
    assert sorted(s.x0 for s in fig.layout.shapes) == [0.39, 0.99]
    fig = figures.histogram_figure(hist, {"t_nuc": float("nan"), "t_bg": 0.8})
    assert [s.x0 for s in fig.layout.shapes] == [0.8]


def test_error_map_colours_each_confusion():
    truth = np.array([[0, 1, 2, 1]], np.uint8)
    pred = np.array([[0, 2, 1, 1]], np.uint8)
    rgb = figures.error_map_rgb(np.zeros((1, 4)), pred, truth)
    assert tuple(rgb[0, 1]) == figures.CONFUSION_COLORS[(1, 2)]
    assert tuple(rgb[0, 2]) == figures.CONFUSION_COLORS[(2, 1)]
    assert tuple(rgb[0, 0]) == tuple(rgb[0, 3]) == (60, 60, 60)  # agreeing: dimmed image
    fig = figures.error_map_figure(np.zeros((1, 4)), pred, truth)
    names = [t.name for t in fig.data if t.type == "scatter"]
    assert names == ["cytoplasm → nucleus (1 px)", "nucleus → cytoplasm (1 px)"]


def _builders():
    from cellseg_core.pipeline import segment
    from cellseg_core.presets import get_preset
    from cellseg_core.data.synthetic import cytology_image

    sample = cytology_image(3, size=64)
    seg = segment(sample.image, get_preset("lab03v2"))
    hist = figures.class_histograms(seg.blurred, sample.mask)
    return {
        "overlay": figures.overlay_figure(sample.image, seg.labels, truth=sample.mask,
                                          instances=seg.nuclei, style="contour"),
        "steps": figures.steps_figure(seg),
        "histogram": figures.histogram_figure(hist, seg.thresholds),
        "error map": figures.error_map_figure(sample.image, seg.labels, sample.mask),
    }


@pytest.mark.parametrize("name", ["overlay", "steps", "histogram", "error map"])
def test_figures_are_valid_plotly_without_conflicting_axis_constraints(name):
    """The builders skip plotly.py's per-property validation (it cost more than the
    images on every slider move), so validate their output here."""
    import plotly.graph_objects as go

    fig = _builders()[name]
    spec = fig.to_plotly_json()
    go.Figure(spec)  # raises on any invalid property
    assert spec["layout"]["template"] == figures.BARE_TEMPLATE
    axes = {k: v for k, v in spec["layout"].items() if k.startswith(("xaxis", "yaxis"))}
    # Plotly ignores (and logs a stack trace for) scaleanchor on a matched axis
    assert not [k for k, v in axes.items() if "matches" in v and "scaleanchor" in v]


def test_steps_figure_panels_decode_to_the_pipeline_images():
    import base64
    import io

    from PIL import Image

    from cellseg_core.pipeline import segment
    from cellseg_core.presets import get_preset
    from cellseg_core.data.synthetic import cytology_image

    seg = segment(cytology_image(3, size=64).image, get_preset("lab03v2"))
    fig = figures.steps_figure(seg)

    def decoded(trace):
        data = base64.b64decode(trace.source.split(",", 1)[1])
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))

    panels = {t.name: decoded(t) for t in fig.data}
    assert list(panels) == ["channel", "blurred", "raw threshold", "cleaned", "instances"]
    np.testing.assert_array_equal(panels["channel"][..., 0],
                                  (np.clip(seg.channel, 0, 1) * 255 + 0.5).astype(np.uint8))
    for name, labels in (("raw threshold", seg.raw), ("cleaned", seg.labels)):
        for cls, color in figures.CLASS_COLORS.items():
            assert (panels[name][labels == cls] == color).all()
        assert (panels[name][labels == 0] == 0).all()
    assert (panels["instances"][seg.nuclei == 0] == 0).all()
    assert panels["instances"][seg.nuclei > 0].any(axis=1).all()


def test_histogram_datarevision_changes_with_the_curves_not_the_thresholds():
    channel = np.linspace(0, 1, 400, dtype=np.float32).reshape(20, 20)
    hist = figures.class_histograms(channel)
    a = figures.histogram_figure(hist, {"t_nuc": 0.3, "t_bg": 0.8}).layout.datarevision
    b = figures.histogram_figure(hist, {"t_nuc": 0.35, "t_bg": 0.8}).layout.datarevision
    other = figures.histogram_figure(figures.class_histograms(channel ** 2),
                                     {"t_nuc": 0.3}).layout.datarevision
    assert a == b and a != other


# --- issue 22 point 1: a histogram whose class curves can be read -------------------------
def _voced_histograms(with_truth: bool):
    from cellseg_core import read_image, read_mask
    from cellseg_core.pipeline import segment
    from cellseg_core.presets import get_preset
    from tests._support.data import shared_set

    voced = shared_set("voced")
    image = read_image(voced / "images" / "007.png")
    seg = segment(image, get_preset("lab02"))
    truth = read_mask(voced / "masks" / "007.png") if with_truth else None
    return figures.class_histograms(seg.blurred, truth), seg.thresholds


@pytest.mark.parametrize("with_truth", [True, False])
def test_histogram_classes_have_visible_height_under_the_background_spike(with_truth):
    hist, thresholds = _voced_histograms(with_truth)
    fig = figures.histogram_figure(hist, thresholds)
    low, top = fig.layout.yaxis.range
    assert low == 0
    if with_truth:  # both cell classes reach at least half the axis' height
        for name in ("cytoplasm", "nucleus"):
            assert hist["counts"][name].max() / top >= 0.5, name
        spike = hist["counts"]["background"].max()
    else:  # the cell part of the one curve (below t_bg) fills most of the axis
        counts = hist["counts"]["all pixels"]
        centres = (hist["edges"][:-1] + hist["edges"][1:]) / 2
        assert counts[centres < thresholds["t_bg"] - 0.05].max() / top >= 0.5
        spike = counts.max()
    assert spike > 10 * top  # the spike was what set the scale before
    marked = [a for a in fig.layout.annotations if "off the scale" in a.text]
    assert len(marked) == 1 and f"{spike:,} px" in marked[0].text


def test_histogram_labels_inside_the_plot_and_legend_clear_of_the_axis_title():
    hist = figures.class_histograms(np.linspace(0, 1, 100).reshape(10, 10))
    fig = figures.histogram_figure(hist, {"t_nuc": 0.39, "t_bg": 0.99})
    labels = [a for a in fig.layout.annotations if a.text.startswith("t_")]
    assert len(labels) == 2
    for a in labels:  # anchored at the top, inside the paper, on the side with room
        assert a.yref == "paper" and 0 < a.y <= 1 and a.yanchor == "top"
        assert a.xanchor == ("right" if a.x > 0.5 else "left")
    assert fig.layout.legend.y >= 1 and fig.layout.legend.yanchor == "bottom"
    # An even histogram has no spike: the axis fits every curve.
    assert fig.layout.yaxis.range is None


def test_histogram_log_axis_shows_every_curve_whole():
    hist, thresholds = _voced_histograms(True)
    fig = figures.histogram_figure(hist, thresholds, log=True)
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis.range is None
