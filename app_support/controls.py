"""Parameter controls, grouped as the pipeline flows, for any page.

Every widget's key is ``state.widget_key(name, page)`` and its callback is
``state.on_widget_change``: widgets show the params in force and change them only
through that one door. Call :func:`state.ensure_widgets` before drawing them.
"""
from __future__ import annotations

import streamlit as st

from cellseg_core.params import BackgroundMethod, BlurKind, Channel, Mode, ThresholdMethod
from cellseg_core.presets import DESCRIPTIONS, preset_names

from . import state

__all__ = ["preset_picker", "parameter_controls", "params_file_controls"]

_CHANNEL_LABELS = {"gray": "gray", "red": "R", "green": "G", "blue": "B",
                   "hematoxylin": "hematoxylin (colour deconvolution)"}
_METHOD_LABELS = {"manual": "manual (sliders)", "multiotsu": "multi-Otsu (3 classes)",
                  "local": "local (adaptive)"}


def _w(kind, label: str, name: str, page: str, **kwargs):
    """Draw one parameter widget bound to dotted parameter `name`."""
    return kind(label, key=state.widget_key(name, page), on_change=state.on_widget_change,
                args=(name, page), **kwargs)


def _on_preset(page: str) -> None:
    state.apply_preset(st.session_state[state.preset_key(page)], page=page)


def preset_picker(page: str = "explore") -> None:
    """Preset select box (fills every control) and a reset button."""
    names = preset_names()
    col_pick, col_reset = st.columns([3, 1], vertical_alignment="bottom")
    col_pick.selectbox("Preset", names, key=state.preset_key(page), on_change=_on_preset,
                       args=(page,), help="Fills every control below with a built-in set.")
    preset = state.current_preset()
    col_reset.button("Reset", key=f"{page}.reset", on_click=state.apply_preset,
                     args=(preset,), kwargs={"page": page},
                     help=f"Back to the values of preset {preset}.")
    base = _preset_flat(preset)
    changed = sorted(k for k, v in state.current_params().flat().items() if v != base.get(k))
    st.caption(DESCRIPTIONS[preset] + (f"  \n**Changed:** {', '.join(changed)}" if changed
                                       else ""))


def _preset_flat(name: str) -> dict:
    from cellseg_core.presets import get_preset

    return get_preset(name).flat()


def parameter_controls(page: str = "explore") -> None:
    """Every engine parameter, in pipeline order: mode, channel, blur, thresholds,
    clean-up, watershed."""
    p = state.current_params()
    if state.PARAMS_ERROR in st.session_state:
        st.error(st.session_state[state.PARAMS_ERROR])
    _w(st.radio, "Image type", "mode", page, options=[m.value for m in Mode],
       horizontal=True, help="Cytology: dark nucleus, cytoplasm, bright background "
       "(labels 0/1/2). Fluorescence: bright nuclei on dark (labels 0/2).")

    st.markdown("**1 · Channel**")
    _w(st.selectbox, "Channel", "channel", page, options=[c.value for c in Channel],
       format_func=_CHANNEL_LABELS.get, label_visibility="collapsed")

    st.markdown("**2 · Blur**")
    _w(st.selectbox, "Blur", "blur.kind", page, options=[b.value for b in BlurKind])
    if p.blur.kind == BlurKind.GAUSSIAN:
        _w(st.slider, "Sigma (px)", "blur.sigma", page, min_value=0.0, max_value=10.0,
           step=0.1)
    elif p.blur.kind in (BlurKind.MEDIAN, BlurKind.MEAN):
        _w(st.slider, "Window size (px)", "blur.size", page, min_value=1, max_value=31)

    st.markdown("**3 · Thresholds**")
    _w(st.selectbox, "Method", "threshold.method", page,
       options=[m.value for m in ThresholdMethod], format_func=lambda m: _METHOD_LABELS.get(m, m))
    manual = p.threshold.method == ThresholdMethod.MANUAL
    cytology = p.mode == Mode.CYTOLOGY
    if manual and cytology:
        _w(st.slider, "Nucleus below (t_nuc)", "threshold.t_nuc", page, min_value=0.0,
           max_value=1.0, step=0.005, format="%.4f")
        _w(st.slider, "Background above (t_bg)", "threshold.t_bg", page, min_value=0.0,
           max_value=1.0, step=0.005, format="%.4f")
    elif manual:
        _w(st.slider, "Object above (t_object)", "threshold.t_object", page, min_value=0.0,
           max_value=1.0, step=0.005, format="%.4f")
    else:
        if cytology:
            _w(st.selectbox, "Background threshold from", "threshold.background", page,
               options=[b.value for b in BackgroundMethod],
               help="same: the method on the whole image; peak: below the bright "
                    "background mode; manual: the t_bg slider.")
            if p.threshold.background == BackgroundMethod.MANUAL:
                _w(st.slider, "Background above (t_bg)", "threshold.t_bg", page,
                   min_value=0.0, max_value=1.0, step=0.005, format="%.4f")
        if p.threshold.method == ThresholdMethod.LOCAL:
            _w(st.slider, "Block size (px, odd)", "threshold.block_size", page, min_value=3,
               max_value=301, step=2)
            _w(st.slider, "Offset", "threshold.offset", page, min_value=-0.2, max_value=0.2,
               step=0.005)

    st.markdown("**4 · Clean-up**")
    c1, c2 = st.columns(2)
    with c1:
        _w(st.number_input, "Opening radius", "cleanup.opening_radius", page, min_value=0,
           max_value=50)
        _w(st.number_input, "Min nucleus (px)", "cleanup.min_nucleus_size", page,
           min_value=0, step=10)
    with c2:
        _w(st.number_input, "Closing radius", "cleanup.closing_radius", page, min_value=0,
           max_value=50)
        _w(st.number_input, "Min cytoplasm (px)", "cleanup.min_cytoplasm_size", page,
           min_value=0, step=10)
    _w(st.checkbox, "Fill holes in nuclei", "cleanup.fill_holes", page)

    st.markdown("**5 · Split touching nuclei**")
    _w(st.toggle, "Watershed", "watershed.enabled", page)
    if p.watershed.enabled:
        c1, c2 = st.columns(2)
        with c1:
            _w(st.number_input, "Min distance (px)", "watershed.min_distance", page,
               min_value=1, max_value=200)
        with c2:
            _w(st.number_input, "Footprint (px)", "watershed.footprint", page, min_value=1,
               max_value=201)


def _on_params_upload(page: str) -> None:
    upload = st.session_state.get(f"{page}.params_upload")
    if upload is None:
        return
    try:
        state.apply_json(upload.getvalue(), page=page)
    except ValueError as err:
        st.session_state[f"{page}.params_upload_error"] = \
            f"{upload.name}: not usable parameters: {err}"
    else:
        st.session_state.pop(f"{page}.params_upload_error", None)


def params_file_controls(page: str = "explore") -> None:
    """Download the params in force as JSON; upload a params JSON to set the controls."""
    params = state.current_params()
    st.download_button("Download parameters (JSON)", params.to_json(),
                       file_name="params.json", mime="application/json",
                       key=f"{page}.params_download", on_click="ignore")
    st.file_uploader("Load parameters (JSON)", type=["json"], key=f"{page}.params_upload",
                     on_change=_on_params_upload, args=(page,))
    if f"{page}.params_upload_error" in st.session_state:
        st.error(st.session_state[f"{page}.params_upload_error"])
