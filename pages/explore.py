"""Explore: one image, every parameter, the segmentation live.

Widgets → params (through ``app_support.state``) → cached core call → display.
Moving a slider reruns only the overlay's fragment, then (once the browser has drawn
it) the fragment of the numbers, histogram and sections: not the controls, not the
sidebar. The channel and its blur are cached apart from the thresholds, the overlay
is drawn at display size, and the charts are redrawn in place (``live_plot``), so a
zoom survives a slider move.
"""
from __future__ import annotations

import hashlib
import math

import numpy as np
import pandas as pd
import streamlit as st

from app_support import (cache, controls, exports, figures, learned, live_plot,
                         object_classes, pathology, state, wording)
from app_support.assets import read_asset
from app_support.safe_text import md
from cellseg_core import autoseg
from cellseg_core.io import tiff_bytes
from cellseg_core.methods import ModelMethod
from cellseg_core.params import Mode, ThresholdMethod
from cellseg_core.pipeline import is_automatic
from app_support.router import require_frame

require_frame()  # a deep link on a fresh server must still go through app.py

PAGE = "explore"
#: The two result fragments (``st.rerun`` keys) and what links them in the session.
OVERLAY, ANALYSIS = f"{PAGE}.overlay_part", f"{PAGE}.analysis_part"
ANALYSIS_VERSION = f"{PAGE}.analysis_version"  # image and params the numbers are for
BROWSER_REPORTS = f"{PAGE}.browser_reports"  # the browser reports drawn overlays
MAX_DISPLAY = 1024
OPACITY_KEY, STYLE_KEY = f"{PAGE}.opacity", f"{PAGE}.style"
DEFAULT_OPACITY, OVERLAY_STYLES = 0.4, ["fill", "contour"]


def _fmt(value, digits: int = 4) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.{digits}f}"


def _mode_hint(source, params) -> None:
    if source.kind == "fluorescence" and params.mode == Mode.CYTOLOGY:
        c1, c2 = st.columns([4, 1], vertical_alignment="center")
        c1.info("This looks like a fluorescence image (bright nuclei) but the parameters "
                "are for cytology.")
        c2.button("Use auto-fluorescence", key=f"{PAGE}.hint_fluo",
                  on_click=state.apply_preset, args=("auto-fluorescence",))
    elif source.kind == "cytology" and params.mode == Mode.FLUORESCENCE:
        c1, c2 = st.columns([4, 1], vertical_alignment="center")
        c1.info("This looks like a cytology image but the parameters are for fluorescence.")
        c2.button("Use lab03v2", key=f"{PAGE}.hint_cyto",
                  on_click=state.apply_preset, args=("lab03v2",))


def _thresholds_line(seg, params) -> str:
    if seg.auto is not None:  # automatic params: what was read off this image
        return f"Automatic: {autoseg.describe(seg.auto)}"
    shown = ", ".join(f"{k} = {_fmt(v, 3) if not math.isnan(v) else 'per pixel'}"
                      for k, v in seg.thresholds.items())
    method = params.threshold.method
    return (f"Thresholds: {shown}" if method == ThresholdMethod.MANUAL
            else f"**{method.value}** chose {shown}")


def _table(values: dict) -> str:
    """Numbers as a markdown table: their names over their values.

    One element where a grid of ``st.metric`` was ~30 (metrics and column blocks):
    the browser re-renders the page's elements on every slider move.
    """
    return (f"| {' | '.join(values)} |\n|{'---:|' * len(values)}\n"
            f"| {' | '.join(values.values())} |")


def _numbers(seg, source, params, hist) -> dict:
    """Scores against the ground truth (when there is one), then class areas, N/C and
    counts beside the per-class histogram (none for a learned model: `hist` None).
    Returns the scores."""
    summary = seg.summary
    fluo = params.mode == Mode.FLUORESCENCE
    scores = cache.scores(seg, source.mask, source.instances if fluo else None)
    if scores:
        if fluo:
            agreement = {"Dice nucleus": _fmt(scores["dice_nucleus"]),
                         "IoU nucleus": _fmt(scores["iou_nucleus"])}
            if "instance_f1" in scores:
                agreement.update({
                    "Instance F1 (IoU ≥ 0.5)": _fmt(scores["instance_f1"]),
                    "Average precision (DSB)": _fmt(scores["average_precision"])})
        else:
            agreement = {"Mean Dice": _fmt(scores["mean_dice"]),
                         "Dice cytoplasm": _fmt(scores["dice_cytoplasm"]),
                         "Dice nucleus": _fmt(scores["dice_nucleus"]),
                         "Mean IoU": _fmt(scores["mean_iou"]),
                         "N/C predicted": _fmt(scores["nc_pred"], 3),
                         "N/C true": _fmt(scores["nc_true"], 3),
                         "N/C error": _fmt(scores["nc_error"], 3),
                         **pathology.agreement_numbers(scores),
                         "Pixel accuracy": _fmt(scores["pixel_accuracy"])}
        st.markdown("**Agreement with the ground truth**\n\n" + _table(agreement))
        if not fluo:
            st.caption("Mean Dice = (Dice cytoplasm + Dice nucleus) / 2, as in the course. "
                       "N/C error = predicted N/C − true N/C.")
    left, right = st.columns([2, 3], gap="medium")
    with left:
        rows = pathology.segmentation_numbers(summary, source, fluorescence=fluo)
        st.markdown("**Segmentation**\n\n" + "\n\n".join(_table(row) for row in rows))
        if not fluo:
            st.caption(pathology.ratio_caption(source))
    with right:
        if hist is not None:
            live_plot.plotly_chart(figures.histogram_figure(hist, seg.thresholds),
                                   key=f"{PAGE}.histogram")
    return scores


def _try_all(source, params) -> None:
    if is_automatic(params):
        st.info("The automatic method chooses its own threshold for each image, so trying "
                "every threshold method does not apply: set the kind of image (0 · "
                "Automatic nuclei) to off to try them on the fixed steps.")
        return
    st.caption("Every automatic method on this image, the other parameters kept"
               + (", ranked by mean Dice." if source.mask is not None else "."))
    if not st.button("Run all methods", key=f"{PAGE}.try_all"):
        if st.session_state.get(f"{PAGE}.try_all_for") != (source.digest, params):
            return
    st.session_state[f"{PAGE}.try_all_for"] = (source.digest, params)
    with st.spinner("Trying every method…"):
        rows, labels = cache.try_all_methods(source.digest, source.image, params, source.mask)
    table = pd.DataFrame(rows)
    st.dataframe(table, hide_index=True, key=f"{PAGE}.try_all_table")
    step = figures.display_step(source.shape, 192)
    small = source.image[::step, ::step]
    ok = [r["method"] for r in rows if r["method"] in labels]
    for start in range(0, len(ok), 5):
        cols = st.columns(5)
        for col, method in zip(cols, ok[start:start + 5]):
            row = next(r for r in rows if r["method"] == method)
            title = method + (f" · {row['mean_dice']:.3f}" if "mean_dice" in row else "")
            col.image(figures.overlay_rgb(small, labels[method][::step, ::step],
                                          opacity=0.45), caption=title)


def _downloads(seg, source, model: str | None = None) -> None:
    names = controls.download_names(source, method=model)  # image, method, content, date
    c = st.columns(4)
    size = pathology.pixel_size(source)[0]  # recorded in the TIFFs
    c[0].download_button("Labels (uint8 TIFF)",
                         lambda: tiff_bytes(seg.labels, pixel_size=size),
                         file_name=names("labels", "tif"), mime="image/tiff",
                         key=f"{PAGE}.dl_labels", on_click="ignore")
    c[1].download_button("Nucleus instances (uint16 TIFF)",
                         lambda: tiff_bytes(seg.nuclei.astype(np.uint16)
                                            if seg.nuclei.max() < 65536 else seg.nuclei,
                                            pixel_size=size),
                         file_name=names("nuclei", "tif"), mime="image/tiff",
                         key=f"{PAGE}.dl_nuclei", on_click="ignore")
    c[2].download_button("Per-cell table (CSV)",
                         lambda: pathology.cell_table(seg, source).to_csv(index=False),
                         file_name=names("cells", "csv"), mime="text/csv",
                         key=f"{PAGE}.dl_csv", on_click="ignore")
    if model is None:
        with c[3]:
            controls.params_download(PAGE)
    st.caption("Labels: 0 background, 1 cytoplasm, 2 nucleus."
               + (f" Made by the learned model {md(model)}." if model else
                  " Load a parameters JSON under the controls."))
    picked = learned.picked_model(PAGE) if model is not None else None
    exports.render_export_downloads(PAGE, seg, source, method=None if picked is None else
                                    ModelMethod(picked[1], name=picked[0]).describe(),
                                    pixel_size=size,
                                    objects=lambda: pathology.cell_table(seg, source))


#: The sections under the numbers, one shown at a time (see :func:`_sections`).
SECTIONS = ["Intermediate steps", "Per-cell table", pathology.REVIEW, "Error map",
            "Try all thresholds", "Downloads", "Classify cells"]


#: What a learned model's result has no use for: it has no steps and no threshold.
NOT_FOR_MODELS = ("Intermediate steps", "Try all thresholds")


def _sections(seg, source, params, model: str | None = None) -> None:
    """The chosen section: the steps strip, the per-cell table, the error map, every
    automatic threshold, or the downloads.

    Only the chosen one is computed (the per-cell table needs every nucleus's cell,
    about a second at 2048², so it is not the default). A segmented control rather
    than ``st.tabs``: the tabs re-render twice more after every render of the page,
    on every slider move. A learned `model`'s result offers no steps strip and no
    threshold methods.
    """
    offered = [s for s in SECTIONS if model is None or s not in NOT_FOR_MODELS]
    if st.session_state.get(f"{PAGE}.tab") not in offered:
        st.session_state[f"{PAGE}.tab"] = offered[0]
    shown = st.segmented_control("Show", offered, required=True,
                                 key=f"{PAGE}.tab", label_visibility="collapsed")
    if shown == "Intermediate steps":
        live_plot.plotly_chart(figures.steps_figure(seg), key=f"{PAGE}.steps")
    elif shown == "Per-cell table":
        table = pathology.cell_table(seg, source)
        st.caption(f"{len(table)} nuclei; N/C per cell = nucleus area / the cytoplasm "
                   "nearest to that nucleus; nucleus / cell = nucleus / (nucleus + that "
                   "cytoplasm). Definitions of every column under “How to read this page”.")
        st.dataframe(wording.readable(table), hide_index=True, key=f"{PAGE}.objects")
    elif shown == pathology.REVIEW:
        pathology.render_review(seg, source)
    elif shown == "Error map":
        if source.mask is None:
            st.info("No ground truth for this image.")
        else:
            live_plot.plotly_chart(figures.error_map_figure(
                source.image, seg.labels, source.mask, max_side=MAX_DISPLAY),
                key=f"{PAGE}.errors")
    elif shown == "Try all thresholds":
        _try_all(source, params)
    elif shown == "Classify cells":
        object_classes.render_classify_cells(seg, source, params, page=PAGE)
    else:
        _downloads(seg, source, model)


def _overlay_figure(source, seg, params):
    """The overlay; its own widgets (drawn later, under the heading) read from the
    session."""
    return figures.overlay_figure(
        source.image, seg.labels, truth=source.mask, instances=seg.nuclei,
        opacity=st.session_state.get(OPACITY_KEY, DEFAULT_OPACITY),
        style=st.session_state.get(STYLE_KEY, OVERLAY_STYLES[0]), max_side=MAX_DISPLAY,
        fluorescence=params.mode == Mode.FLUORESCENCE,
        image_uri=cache.image_uri(source.digest, source.image,
                                  figures.display_step(source.shape, MAX_DISPLAY)))


def _segmentation(source, params):
    """The cached segmentation, or None with an error on the page."""
    try:
        return cache.segmentation(source.digest, source.image, params)
    except ValueError as err:
        st.error(f"Cannot segment with these parameters: {err}")
        return None


def _analysis_done() -> None:
    """The overlay of new parameters is on screen: now the numbers, histogram and the rest."""
    st.session_state[BROWSER_REPORTS] = True
    st.rerun(ANALYSIS)


@st.fragment(key=OVERLAY)
def overlay_part(source) -> None:
    """Heading, overlay and its options: what a parameter change reruns first.

    Once the browser has drawn an overlay whose parameters the numbers below were not
    computed for, it reruns :func:`analysis_part` (``notify``/``on_drawn``): the
    overlay goes to the screen alone, not behind the numbers, the histogram and the
    section, which then follow (bench_ui at 256²: overlay ~130 ms, numbers ~220 ms
    after the key; in one run both took ~150-165 and ~425 ms). The first draw in a
    session only reports that this browser does so; until then changes rerun the
    whole app.
    """
    params = state.current_params()
    model = learned.picked_model(PAGE)
    if model is not None:
        learned.show_model_results(source, *model, page=PAGE, max_side=MAX_DISPLAY)
        return
    step = figures.display_step(source.shape, MAX_DISPLAY)
    if step > 1:
        st.info(f"{source.shape[1]}×{source.shape[0]} px image: shown at 1/{step} scale, "
                "segmented and measured at full resolution.")
    seg = _segmentation(source, params)
    if seg is None:
        return
    heading = st.container()
    version = _version(source, params)
    notify = (version if st.session_state.get(ANALYSIS_VERSION) != version
              else None if st.session_state.get(BROWSER_REPORTS) else "hello")
    live_plot.plotly_chart(_overlay_figure(source, seg, params), key=f"{PAGE}.overlay",
                           config={"scrollZoom": True}, notify=notify,
                           on_drawn=_analysis_done)
    st.caption(figures.overlay_key(truth=source.mask is not None,
                                   fluorescence=params.mode == Mode.FLUORESCENCE))
    with heading:  # the overlay's own widgets: their values were read above
        st.markdown(f"{md(source.name)} · {_thresholds_line(seg, params)}")
        row = st.container(horizontal=True, vertical_alignment="bottom")
        row.slider("Overlay opacity", 0.0, 1.0, DEFAULT_OPACITY, 0.05, key=OPACITY_KEY,
                   width=300)
        row.radio("Overlay", OVERLAY_STYLES, horizontal=True, key=STYLE_KEY)


@st.fragment(key=ANALYSIS)
def analysis_part(source) -> None:
    """Numbers, histogram and a section (steps strip, table, error map, downloads...)."""
    params = state.current_params()
    st.session_state[ANALYSIS_VERSION] = _version(source, params)
    # After the overlay: a new URL re-renders the whole page in the browser.
    state.sync_query(params, state.current_preset(), source.dataset, source.image_id)
    model = learned.picked_model(PAGE)
    if model is not None:  # a learned model: the same numbers, table and downloads
        seg = learned.model_segmentation(source, *model)
        if seg is not None:
            for warning in seg.warnings:
                st.warning(warning)
            _numbers(seg, source, seg.params, hist=None)
            _sections(seg, source, seg.params, model=model[0])
        return
    seg = _segmentation(source, params)
    if seg is None:
        return
    for warning in seg.warnings:  # e.g. "this segmentation has 505,795 objects ..."
        st.warning(warning)
    _numbers(seg, source, params, hist=cache.histograms(source.digest, source.image,
                                                       params, source.mask))
    _sections(seg, source, params)


def _version(source, params) -> str:
    """Names an (image, parameters) pair."""
    return hashlib.sha1(f"{source.digest}{params.to_json(indent=None)}".encode()).hexdigest()


def _rerun_on_change():
    """What a parameter change that leaves the controls as drawn reruns: the overlay
    alone once the browser reports drawn overlays, else the whole app."""
    return OVERLAY if st.session_state.get(BROWSER_REPORTS) else None


def explore(source) -> None:
    """Controls (left) and results (right).

    The controls are not in a fragment: a change that alters them (a preset, the
    method, a model...) reruns the whole app, while a value change that leaves them as
    drawn reruns only :func:`overlay_part` (see ``controls.layout_signature``), once
    the browser reports drawn overlays; :func:`analysis_part` follows.
    """
    ctrl, result = st.columns([1, 3], gap="medium")
    with ctrl:
        with st.expander("Learned model file"):
            learned.model_upload(PAGE)  # registers a good file before the picker
        model = learned.model_picker(PAGE)
        if model is not None:  # issue 22 point 2: no controls that do nothing
            st.info(learned.NO_CONTROLS.format(name=md(model[0])))
        else:
            controls.preset_picker(PAGE)
            controls.parameter_controls(PAGE, rerun=_rerun_on_change)
            with st.expander("Load parameters"):
                controls.params_file_controls(PAGE)
    with result:
        if model is None:
            _mode_hint(source, state.current_params())
        top, bottom = st.container(), st.container()
    with bottom:  # first: a full run draws the numbers for the parameters it shows
        analysis_part(source)
    with top:
        overlay_part(source)


st.title("Explore")
st.caption("Open an image and see its segmentation change as you move each parameter.")
with st.expander("How to read this page"):
    st.markdown(read_asset("explore.md"))
    pathology.render_help()

state.init_from_query(PAGE)
state.ensure_widgets(PAGE)
source = st.session_state.get(state.SOURCE_CURRENT)
# No st.stop() here: Streamlit 1.67 unregisters neither the fragments nor the widgets
# that a run stopped that way left out, so a late "drawn" report of the previous
# image's overlay reran the numbers' fragment into a page without it (a blank app).
if source is None:
    st.info("Choose an image in the sidebar.")
else:
    explore(pathology.with_pixel_size(source))
