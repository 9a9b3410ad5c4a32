"""Count: fluorescence nuclei, step by step, and the seed's experiments.

Widgets → a fluorescence ``Params`` (this page's own, under ``count.*`` keys, so the
cytology params of Explore are left alone) → cached ``segment`` → display. The
experiments are functions of :mod:`cellseg_core.experiments`; each section is an
``st.fragment``, so its widgets rerun only that section.

The pipeline has Explore's design (issue 22 point 5): a control change that leaves
the controls as drawn reruns only :func:`overlay_part` (the count's overlay, drawn at
display size and redrawn in place by ``live_plot``); once the browser has drawn it,
:func:`analysis_part` follows with the numbers, steps, sizes and table. An RGB image
(a DAPI export) is counted in its brightest channel, or the one the user picks.

The Method box offers, beside the steps, the automatic nucleus presets (issue 17
point 6: ``auto-nuclei`` on any kind of image, ``auto-fluorescence``; see
:mod:`app_support.count_auto`) and the nucleus models (issue 18); with either, any
sidebar image is counted (stained and bright-field too), not only fluorescence.
"""
from __future__ import annotations

import hashlib
import math

import numpy as np
import pandas as pd
import streamlit as st

from app_support import (cache, controls, count_auto, count_figures, live_plot, nuclei_models,
                         pathology, state, wording)
from app_support.assets import read_asset
from app_support.safe_text import md
from app_support.sources import ImageSource
from cellseg_core import experiments as E
from cellseg_core.data import synthetic
from cellseg_core.io import tiff_bytes
from cellseg_core.units import with_units
from cellseg_core.params import Channel, Params
from app_support.router import require_frame

require_frame()  # a deep link on a fresh server must still go through app.py

P = "count"
SEED_SOURCE = "seed image (synthetic)"
SIDEBAR_SOURCE = "image from the sidebar"
#: The two result fragments (``st.rerun`` keys) and what links them in the session.
OVERLAY, ANALYSIS = f"{P}.overlay_part", f"{P}.analysis_part"
ANALYSIS_VERSION = f"{P}.analysis_version"  # image and params the numbers are for
BROWSER_REPORTS = f"{P}.browser_reports"  # the browser reports drawn overlays
LAYOUT_DRAWN = f"{P}.layout_drawn"  # which widgets the controls drew
MAX_DISPLAY = 768  # the overlay is drawn 520 px high: 1024² shows at 512², zoomable
#: The channel of an RGB image: its brightest (read off the image) or one picked.
CHANNEL_KEY, BRIGHTEST = f"{P}.rgb_channel", "brightest"
METHODS = ["manual", "otsu", "li", "yen", "triangle", "isodata", "mean", "minimum", "local",
           "percentile"]
#: The page's defaults: the seed's operating point plus the watershed split.
DEFAULTS = {"blur.kind": "gaussian", "blur.sigma": synthetic.SMOOTH_SIGMA, "blur.size": 3,
            "threshold.method": "manual", "threshold.t_object": synthetic.THRESHOLD,
            "threshold.block_size": 51, "threshold.offset": -0.1,
            "threshold.percentile": 50.0,
            "cleanup.min_nucleus_size": synthetic.MIN_CELL_SIZE, "cleanup.closing_radius": 0,
            "cleanup.fill_holes": True, "watershed.enabled": True,
            "watershed.min_distance": 6, "watershed.footprint": 3}


def key(name: str) -> str:
    """Session key of this page's widget for dotted parameter (or option) `name`."""
    return f"{P}.{name}"


def _fmt(value, digits: int = 3) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.{digits}f}"


def _any_image() -> bool:
    """True when the method picked counts nuclei on any kind of image: an automatic
    preset or a nucleus model (not the page's fluorescence steps)."""
    return count_auto.picked(P) is not None or nuclei_models.picked(P) is not None


def _source() -> ImageSource:
    shared = st.session_state.get(state.SOURCE_CURRENT)
    options = [SEED_SOURCE]
    if shared is not None and (shared.kind == "fluorescence"
                               or shared.instances is not None  # issue 18: instance truth
                               or _any_image()):  # issue 17: auto-nuclei or a model
        options.insert(0, SIDEBAR_SOURCE)
        if st.session_state.get(key("sidebar_seen")) != shared.digest:
            st.session_state[key("source")] = SIDEBAR_SOURCE  # a new image: count it
        st.session_state[key("sidebar_seen")] = shared.digest
    elif shared is not None:  # offered (and chosen) again once a method can count it
        st.session_state.pop(key("sidebar_seen"), None)
    if st.session_state.get(key("source")) not in options:
        st.session_state[key("source")] = options[0]
    if shared is not None and SIDEBAR_SOURCE not in options:
        st.caption(f"The sidebar's {shared.kind} image is counted by an automatic preset "
                   "(auto-nuclei) or a nucleus model: choose one under Method.")
    choice = st.radio("Image", options, key=key("source"), horizontal=True,
                      help="The sidebar's image is offered when it is a fluorescence image "
                           "(gray, or RGB: counted in one channel), has nucleus "
                           "instances as ground truth, or the method is an automatic "
                           "preset or a nucleus model (any kind of image).")
    if choice == SIDEBAR_SOURCE:
        return shared
    image, labels, _ = cache.seed_sample()
    return ImageSource(name=SEED_SOURCE, image=image, instances=labels,
                       mask=(labels > 0).astype(np.uint8) * np.uint8(2),
                       digest="count:seed", kind="fluorescence")


# --- the pipeline ---------------------------------------------------------------------
def _channel(source: ImageSource) -> str:
    """The channel counted: gray for a gray image; for RGB the one picked, or the
    brightest (:func:`cellseg_core.color.brightest_channel`)."""
    if source.image.ndim == 2:
        return Channel.GRAY.value
    picked = st.session_state.get(CHANNEL_KEY, BRIGHTEST)
    return cache.brightest_channel(source.digest, source.image) if picked == BRIGHTEST \
        else picked


def _params(source: ImageSource) -> Params:
    """The fluorescence params the controls hold (ValueError when invalid)."""
    values = {name: st.session_state.get(key(name), value) for name, value in DEFAULTS.items()}
    return synthetic.seed_params().with_values({**values, "channel": _channel(source)})


def _layout() -> tuple:
    """Which widgets the controls show: while it stays the same, a change needs only
    the results redrawn."""
    return tuple(st.session_state.get(key(n)) for n in ("blur.kind", "threshold.method",
                                                        "watershed.enabled", "method",
                                                        "auto.kind"))


def _on_change() -> None:
    """A control's callback: the results alone when the controls stay as drawn and
    the browser reports drawn overlays (else the whole app, as Explore)."""
    if st.session_state.get(BROWSER_REPORTS) and \
            st.session_state.get(LAYOUT_DRAWN) == _layout():
        st.rerun(OVERLAY)


def _controls(source: ImageSource, disabled: bool = False) -> None:
    """The lesson's steps as widgets (their values: :func:`_params`); `disabled`:
    greyed, as the automatic presets do not use them."""
    for name, value in DEFAULTS.items():
        st.session_state.setdefault(key(name), value)

    def rng(name):  # the parameter model's range (one place: controls.control_range)
        return {**controls.control_range(name, st.session_state[key(name)]),
                "on_change": _on_change, "disabled": disabled}

    if source.image.ndim == 3:
        st.markdown("**0 · Channel**")
        brightest = cache.brightest_channel(source.digest, source.image)
        st.selectbox("Channel", [BRIGHTEST, "red", "green", "blue"], key=CHANNEL_KEY,
                     format_func=lambda c: f"brightest ({brightest})" if c == BRIGHTEST else c,
                     disabled=disabled,
                     help="An RGB fluorescence image (a DAPI export) holds its nuclei in "
                          "one channel: the brightest is read off the image.")
    st.markdown("**1 · Blur**")
    kind = st.selectbox("Blur", ["gaussian", "mean", "median", "none"], key=key("blur.kind"),
                        disabled=disabled)
    if kind == "gaussian":
        st.slider("Sigma σs (px)", key=key("blur.sigma"), **rng("blur.sigma"))
    elif kind in ("mean", "median"):
        st.slider("Window size (px)", key=key("blur.size"), **rng("blur.size"))
    st.markdown("**2 · Threshold**")
    method = st.selectbox("Method", METHODS, key=key("threshold.method"), disabled=disabled,
                          help="manual: the slider; Otsu, Li, …: computed from the image; "
                               "local: each pixel against its neighbourhood's mean; "
                               "percentile: against a percentile of its window (the "
                               "tutorial's percentile filter).")
    if method == "manual":
        st.slider("Object above", key=key("threshold.t_object"), **rng("threshold.t_object"))
    elif method in ("local", "percentile"):
        st.slider("Block size (px, odd)", key=key("threshold.block_size"),
                  **rng("threshold.block_size"))
        st.slider("Offset (negative: above the local estimate)", key=key("threshold.offset"),
                  **rng("threshold.offset"))
        if method == "percentile":
            st.slider("Percentile", key=key("threshold.percentile"),
                      **rng("threshold.percentile"))
    st.markdown("**3 · Label, remove small objects, close, fill holes**")
    st.number_input("Remove objects under (px)", key=key("cleanup.min_nucleus_size"),
                    **rng("cleanup.min_nucleus_size"))
    st.number_input("Closing radius (px)", key=key("cleanup.closing_radius"),
                    **rng("cleanup.closing_radius"))
    st.checkbox("Fill holes", key=key("cleanup.fill_holes"), on_change=_on_change,
                disabled=disabled)
    st.markdown("**4 · Split touching nuclei (watershed)**")
    st.toggle("Watershed", key=key("watershed.enabled"), disabled=disabled)
    if st.session_state[key("watershed.enabled")]:
        c1, c2 = st.columns(2)
        c1.number_input("Min distance (px)", key=key("watershed.min_distance"),
                        help="peak_local_max: markers at least this far apart",
                        **rng("watershed.min_distance"))
        c2.number_input("Footprint (px)", key=key("watershed.footprint"),
                        help="a marker is the maximum of this square",
                        **rng("watershed.footprint"))
    st.session_state[LAYOUT_DRAWN] = _layout()


def _downloads(seg, source, method: str = "count") -> None:
    names = controls.download_names(source, method=method)
    c = st.columns(2)
    c[0].download_button("Per-object table (CSV)", lambda: seg.objects.to_csv(index=False),
                         file_name=names("nuclei", "csv"), mime="text/csv",
                         key=key("dl_csv"), on_click="ignore")
    labels = seg.nuclei.astype(np.uint16) if seg.nuclei.max() < 65536 else \
        seg.nuclei.astype(np.uint32)
    c[1].download_button("Labels (uint16 TIFF)", lambda: tiff_bytes(labels),
                         file_name=names("nuclei", "tif"), mime="image/tiff",
                         key=key("dl_tiff"), on_click="ignore")


def _result(source: ImageSource):
    """(params, segmentation, instance scores or None), or None after an error."""
    chosen = nuclei_models.picked(P)
    if chosen is not None:  # issue 18: a nucleus model instead of the steps
        return nuclei_models.count_result(source, *chosen)
    if count_auto.picked(P) is not None:  # issue 17: an automatic preset
        return count_auto.count_result(source, P)
    try:
        params = _params(source)
    except ValueError as err:
        st.error(f"Invalid parameters: {md(err)}")
        return None
    return count_auto.counted(source, params)


def _version(source, params) -> str:
    """Names an (image, parameters) pair."""
    chosen = nuclei_models.picked(P)
    text = f"{source.digest}{params.to_json(indent=None)}{chosen[0] if chosen else ''}"
    return hashlib.sha1(text.encode()).hexdigest()


def _analysis_done() -> None:
    """The overlay of new parameters is on screen: now the numbers and the rest."""
    st.session_state[BROWSER_REPORTS] = True
    st.rerun(ANALYSIS)


@st.fragment(key=OVERLAY)
def overlay_part(source: ImageSource) -> None:
    """The threshold line and the counted overlay: what a control change reruns first
    (see ``pages/explore.py``'s ``overlay_part``)."""
    found = _result(source)
    if found is None:
        return
    params, seg, scores = found
    shown = ", ".join(f"{k} = {_fmt(v) if not math.isnan(v) else 'per pixel'}"
                      for k, v in seg.thresholds.items())
    channel = "" if source.image.ndim == 2 else f" · {params.channel.value} channel"
    chosen, auto = nuclei_models.picked(P), count_auto.picked(P)
    st.caption(f"{source.name} · {chosen[0]}: {shown}" if chosen else
               count_auto.result_line(source, auto, seg) if auto else
               f"{source.name}{channel} · {params.threshold.method.value} threshold: {shown}")
    version = _version(source, params)
    notify = (version if st.session_state.get(ANALYSIS_VERSION) != version
              else None if st.session_state.get(BROWSER_REPORTS) else "hello")
    live_plot.plotly_chart(count_figures.instance_figure(  # numbers without the table
        source.image, seg.nuclei, None, truth=source.instances, match=scores,
        max_side=MAX_DISPLAY), key=key("overlay"), config={"scrollZoom": True},
        notify=notify, on_drawn=_analysis_done)
    if scores is not None:
        st.caption("Green: matched a true nucleus (IoU > 0.5); red: false "
                   "detection; blue outline: missed true nucleus.")


@st.fragment(key=ANALYSIS)
def analysis_part(source: ImageSource) -> None:
    """Count and scores, the steps strip, sizes, table and downloads."""
    found = _result(source)
    if found is None:
        return
    params, seg, scores = found
    st.session_state[ANALYSIS_VERSION] = _version(source, params)
    for warning in seg.warnings:
        st.warning(warning)
    c = st.columns(5)
    c[0].metric("Nuclei counted", f"{int(seg.nuclei.max())}")
    if scores is not None:
        c[1].metric("True nuclei", f"{scores['n_true']}")
        c[2].metric("Precision (IoU 0.5)", _fmt(scores["precision"]))
        c[3].metric("Recall (IoU 0.5)", _fmt(scores["recall"]))
        c[4].metric("F1 · mean AP (DSB)", f"{_fmt(scores['f1'])} · {_fmt(scores['ap'])}")
    try:
        if not _any_image():  # a model or a preset has none of these steps to show
            live_plot.plotly_chart(count_figures.steps_figure(seg, max_side=384),
                                   key=key("steps"))
    except ValueError as err:  # too many watershed markers to draw: noise, not nuclei
        st.warning(f"Steps not shown: {err}")
    left, right = st.columns([3, 2])
    with left:
        table = seg.objects[["label", "nucleus_area", "mean_intensity", "centroid_row",
                             "centroid_col", "equivalent_diameter", "eccentricity"]]
        if source.pixel_size:  # µm twins beside the pixel columns
            table = with_units(table, source.pixel_size)
        st.dataframe(wording.readable(table), hide_index=True, key=key("objects"),
                     height=300)
    with right:
        if len(seg.objects):
            live_plot.plotly_chart(count_figures.size_histogram(
                seg.objects, pixel_size=source.pixel_size),
                                   key=key("sizes"))
    _downloads(seg, source, count_auto.picked(P) or "count")


def pipeline(source: ImageSource) -> None:
    """Controls (left), overlay then numbers, steps, sizes, table, downloads (right).

    The controls are not in a fragment: a change that alters them (blur kind,
    method, watershed, channel) reruns the whole app; a value change reruns
    :func:`overlay_part`, then :func:`analysis_part` once the browser drew it."""
    ctrl, result = st.columns([1, 3], gap="medium")
    with ctrl:
        # issue 18: or a nucleus model; issue 17: or an automatic preset (the steps greyed)
        if nuclei_models.count_method(P, presets=count_auto.PRESETS) is None:
            auto = count_auto.picked(P) is not None
            if auto:
                count_auto.render_controls(P, on_change=_on_change)
            _controls(source, disabled=auto)
    with result:
        top, bottom = st.container(), st.container()
    with bottom:  # first: a full run draws the numbers for the parameters it shows
        analysis_part(source)
    with top:
        overlay_part(source)


# --- experiments ----------------------------------------------------------------------
@st.fragment
def noise_floor() -> None:
    st.subheader("Noise floor")
    t = st.slider("Threshold", 0.01, 0.6, 0.05, 0.01, key=key("floor.t"))
    r = E.noise_floor(t)
    c = st.columns(4)
    c[0].metric("False cells, no size filter", r["without_filter"])
    c[1].metric(f"… with the {synthetic.MIN_CELL_SIZE}-px filter", r["with_filter"])
    c[2].metric("Smoothed noise std, measured", _fmt(r["smoothed_std"], 4))
    c[3].metric("σ/(2√π σs), predicted", _fmt(r["predicted_std"], 4),
                help=f"σ = {r['pixel_std']:.4f}, the std of the noise image (clipped at 0); "
                     f"with the nominal σn = {synthetic.NOISE_SCALE}: "
                     f"{r['nominal_std']:.4f}")
    curve = E.noise_floor_curve(np.round(np.arange(0.02, 0.31, 0.01), 2))
    fig = count_figures.count_curve_figure(
        {"no size filter": curve.rename(columns={"without_filter": "count"}),
         "with size filter": curve.rename(columns={"with_filter": "count"})}, 0, t)
    st.plotly_chart(fig, key=key("floor.fig"))


@st.fragment
def noise_sweep() -> None:
    st.subheader("Noise sweep")
    c1, c2 = st.columns([3, 1])
    text = c1.text_input("Noise levels σn", ", ".join(f"{v:.2f}" for v in E.NOISE_LEVELS),
                         key=key("sweep.levels"))
    n = c2.number_input("Images per level", 1, 200, E.SWEEP_IMAGES, key=key("sweep.n"))
    try:
        levels = tuple(sorted({round(float(v), 4) for v in text.replace(";", ",").split(",")
                               if v.strip()}))
        if not levels or len(levels) > 20:
            raise ValueError("give 1 to 20 levels")
    except ValueError as err:
        st.error(f"Noise levels: {err}")
        return
    bar = st.progress(0.0, text="counting…")
    parts = []
    for i, level in enumerate(levels):
        parts.append(cache.noise_sweep_level(level, int(n)))
        bar.progress((i + 1) / len(levels), text=f"counted σn = {level:g} "
                     f"({(i + 1) * int(n)}/{len(levels) * int(n)} images)")
    bar.empty()
    counts = pd.concat(parts, ignore_index=True)
    summary = E.sweep_summary(counts, synthetic.SMOOTH_SIGMA)
    failing = E.failing_level(summary)
    st.plotly_chart(count_figures.sweep_figure(summary, synthetic.N_CELLS, failing),
                    key=key("sweep.fig"))
    st.caption("Seed's operating point (gaussian σs 2, threshold 0.5, 30 px). "
               + ("Every image is counted right at every level." if failing is None
                  else f"Counting starts to fail at σn = {failing:g}.")
               + " Predicted smoothed noise σn/(2√π σs) per level and the margin "
               "(smoothed peak − threshold) in those units:")
    summary["margin_in_std"] = (E.smoothed_peak(1.0) - synthetic.THRESHOLD) / \
        summary["smoothed_noise_std"]
    st.dataframe(summary, hide_index=True, key=key("sweep.table"))


@st.fragment
def touching() -> None:
    st.subheader("Touching cells")
    d = st.slider("Centre distance (px)", 4.0, 40.0, synthetic.PAIR_DISTANCE, 0.5,
                  key=key("pair.d"))
    r = E.touching_experiment(d)
    c = st.columns(4)
    c[0].metric("Plain labelling", r["n_plain"])
    c[1].metric("Watershed", r["n_split"])
    c[2].metric("Midpoint 2B·exp(−d²/8σ²)", _fmt(r["midpoint_raw"]),
                help="before smoothing; after smoothing (B' = Bσ²/(σ²+σs²), σ'² = σ²+σs²) "
                     f"it is {_fmt(r['midpoint_predicted'])}")
    c[3].metric("Smoothed midpoint: predicted · measured",
                f"{_fmt(r['midpoint_predicted'])} · {_fmt(r['midpoint_measured'])}",
                help=f"threshold {r['threshold']:.2f}; the pair merges while the midpoint "
                     f"is above it, i.e. below d = {r['merge_distance']:.1f} px")
    left, mid, right = st.columns(3)
    sample = r["sample"]
    left.plotly_chart(count_figures.instance_figure(sample.image, r["plain"].nuclei,
                                                    r["plain"].objects, height=300),
                      key=key("pair.plain"))
    mid.plotly_chart(count_figures.instance_figure(sample.image, r["split"].nuclei,
                                                   r["split"].objects, height=300),
                     key=key("pair.split"))
    right.plotly_chart(count_figures.profile_figure(r), key=key("pair.profile"))
    sweep = E.pair_distance_sweep(np.arange(6, 33, 2))
    st.plotly_chart(count_figures.pair_sweep_figure(sweep, r["merge_distance"]),
                    key=key("pair.sweep"))


@st.fragment
def illumination() -> None:
    st.subheader("Uneven illumination")
    c = st.columns(4)
    g = c[0].slider("Gradient G (added G·x/size)", 0.0, 0.6, synthetic.GRADIENT, 0.05,
                    key=key("light.g"))
    t = c[1].slider("Global threshold", 0.05, 1.0, E.GLOBAL_THRESHOLD, 0.01,
                    key=key("light.t"))
    block = c[2].slider("Local block size (px)", 3, 151, 51, 2, key=key("light.block"))
    offset = c[3].slider("Local offset", -0.3, 0.3, -0.1, 0.01, key=key("light.offset"))
    estimate = st.radio("Local estimate", ["local", "percentile"], horizontal=True,
                        key=key("light.estimate"),
                        format_func={"local": "weighted mean (scikit-image)",
                                     "percentile": "median, a percentile filter (the "
                                                   "tutorial's)"}.get)
    r = E.illumination_experiment(g, global_threshold=t, local_values={
        "threshold.method": estimate, "threshold.block_size": block,
        "threshold.offset": offset, "threshold.percentile": 50.0})
    m = st.columns(4)
    m[0].metric("True cells", r["n_true"])
    m[1].metric("Global threshold", r["n_global"], delta=r["n_global"] - r["n_true"],
                delta_color="off")
    m[2].metric("Local threshold", r["n_local"], delta=r["n_local"] - r["n_true"],
                delta_color="off")
    m[3].metric("Global, even light", r["n_global_even"])
    left, right = st.columns(2)
    left.plotly_chart(count_figures.instance_figure(
        r["sample"].image, r["global"].nuclei, r["global"].objects, height=320),
        key=key("light.global"))
    right.plotly_chart(count_figures.instance_figure(
        r["sample"].image, r["local"].nuclei, r["local"].objects, height=320),
        key=key("light.local"))
    thresholds = np.round(np.arange(0.1, 0.81, 0.02), 2)
    curves = {"even light": E.threshold_count_curve(
                  synthetic.fluorescence_image().image, thresholds),
              f"gradient {g:g}": E.threshold_count_curve(r["sample"].image, thresholds)}
    st.plotly_chart(count_figures.count_curve_figure(curves, r["n_true"], t),
                    key=key("light.curve"))
    peaks = r["peaks"]
    st.caption("Smoothed peak B·σ²/(σ²+σs²) + G·x/size, predicted against the blurred "
               f"noise-free image: largest gap {np.abs(peaks.predicted_peak - peaks.measured_peak).max():.4f}.")
    st.dataframe(peaks, hide_index=True, key=key("light.peaks"))


@st.fragment
def dim_bright() -> None:
    st.subheader("Bright and dim cells")
    c = st.columns(4)
    dim_b = c[0].slider("Dim brightness", 0.1, 1.0, synthetic.DIM_BRIGHTNESS, 0.05,
                        key=key("dim.b"))
    t = c[1].slider("Detection threshold", 0.05, 0.8,
                    E.DIM_DETECT_VALUES["threshold.t_object"], 0.01, key=key("dim.t"))
    cls_t = c[2].slider("Dim below mean intensity", 0.05, 1.0, E.DIM_CLASS_THRESHOLD, 0.01,
                        key=key("dim.class_t"))
    n = c[3].number_input("Images", 1, 50, 10, key=key("dim.n"))
    params = synthetic.seed_params().with_values({**E.DIM_DETECT_VALUES,
                                                   "threshold.t_object": t})
    r = E.dim_bright_experiment(params, class_threshold=cls_t, dim_brightness=dim_b,
                                n_images=int(n))
    scores = r["scores"].set_index("class")
    m = st.columns(4)
    for i, cls in enumerate(("bright", "dim")):
        m[2 * i].metric(f"Precision {cls}", _fmt(scores.loc[cls, "precision"]))
        m[2 * i + 1].metric(f"Recall {cls}", _fmt(scores.loc[cls, "recall"]))
    st.caption(f"Smoothed peaks B·σ²/(σ²+σs²): bright {_fmt(r['peak_bright'])}, dim "
               f"{_fmt(r['peak_dim'])} (threshold {t:.2f}). Predicted mean intensity of an "
               f"object cut at the threshold: bright {_fmt(r['predicted_bright'])}, dim "
               f"{_fmt(r['predicted_dim'])}; measured: "
               + ", ".join(f"{cls} {_fmt(v)}" for cls, v in
                           r["objects"].groupby("true")["mean_intensity"].mean().items()))
    left, right = st.columns(2)
    seg = r["segmentation"]
    left.plotly_chart(count_figures.instance_figure(r["sample"].image, seg.nuclei, seg.objects,
                                                    height=320), key=key("dim.overlay"))
    right.plotly_chart(count_figures.dim_bright_figure(r["objects"], cls_t),
                       key=key("dim.hist"))


# --- the page -------------------------------------------------------------------------
st.title("Count nuclei")
st.caption("Fluorescence nuclei: each step of the classic pipeline, the count, and the "
           "seed's experiments; any image (stained, bright-field) with auto-nuclei or a "
           "nucleus model.")
with st.expander("How to read this page"):
    st.markdown(read_asset("count.md"))
pipeline(pathology.with_pixel_size(_source()))  # µm² where the pixel size is known
st.header("Experiments")
st.caption("On the seed's synthetic images (Gaussian cells, B = 1, σ = 6 px; noise σn = 0.15).")
noise_floor()
noise_sweep()
touching()
illumination()
dim_bright()
