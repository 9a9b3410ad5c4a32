"""Parameter controls, grouped as the pipeline flows, for any page.

Every widget's key is ``state.widget_key(name, page)`` and its callback sends the
value through ``state.on_widget_change``: widgets show the params in force and change
them only through that one door. The callback then reruns what the page asked for
(``rerun``) when the controls themselves still look the same, the whole app
otherwise. Call :func:`state.ensure_widgets` before drawing them.
"""
from __future__ import annotations

import functools
import json
from pathlib import PurePath

import streamlit as st

from cellseg_core.params import (CONNECTIVITIES, CONTROL_RANGES, AutoKind, BackgroundMethod,
                                 BlurKind, Channel, CleanupScheme, Mode, ThresholdMethod)
from cellseg_core.pipeline import is_automatic
from cellseg_core.presets import DESCRIPTIONS, get_preset, preset_names

from . import methods, quotas, state, wording
from .safe_text import md

__all__ = ["preset_picker", "parameter_controls", "layout_signature", "params_download",
           "params_file_controls", "control_range", "auto_widgets", "auto_controls",
           "fixed_steps_ignored"]

_CHANNEL_LABELS = {"gray": "gray", "red": "R", "green": "G", "blue": "B",
                   "hematoxylin": "hematoxylin (colour deconvolution)"}
_AUTO_LABELS = {"off": "off (the fixed steps below)", "detect": "detect the kind of image",
                "fluorescence": "fluorescence (bright nuclei on dark)",
                "stained": "stained bright-field (H&E, Pap, IHC)",
                "brightfield": "gray bright-field / phase"}
_METHOD_LABELS = {"manual": "manual (sliders)", "multiotsu": "multi-Otsu (3 classes)",
                  "local": "local (adaptive)",
                  "percentile": "local percentile (adaptive)"}


def control_range(name: str, value) -> dict:
    """``min_value``, ``max_value`` and ``step`` of the control of numeric parameter
    `name`: the parameter model's ``CONTROL_RANGES`` (inside the engine's ``LIMITS``),
    widened to `value` when a file or a link set one outside it (a value the engine
    accepted: a slider must show it, not fail)."""
    low, high, step = CONTROL_RANGES[name]
    if low is not None and value < low:
        low = value
    if high is not None and value > high:
        high = value
    return {"min_value": low, "max_value": high, "step": step}


def _w(kind, label: str, name: str, page: str, rerun=None, **kwargs):
    """Draw one parameter widget bound to dotted parameter `name` (see
    :func:`parameter_controls` for `rerun`); a number's range is the parameter
    model's (:func:`control_range`)."""
    if name in CONTROL_RANGES and kind in (st.slider, st.number_input):
        kwargs = {**control_range(name, state.current_params().get(name)), **kwargs}
    return kind(label, key=state.widget_key(name, page), on_change=_on_change,
                args=(name, page, rerun), **kwargs)


def layout_signature(page: str = "explore") -> tuple:
    """What the controls show besides their widgets' values: which widgets there are
    (they depend on mode, blur kind, threshold method, background method and
    watershed), the preset's list of changed parameters and any error. While it stays
    the same, the drawn controls are still right after a change."""
    p = state.current_params()
    return (p.mode, p.blur.kind, p.threshold.method, p.threshold.background,
            p.watershed.enabled, p.auto.kind, tuple(_changed(p)),
            state.PARAMS_ERROR in st.session_state)


def _changed(params) -> list:
    base = _preset_flat(state.current_preset())
    return sorted(k for k, v in params.flat().items() if v != base.get(k))


def _on_change(name: str, page: str, rerun) -> None:
    before = layout_signature(page)
    state.on_widget_change(name, page)
    target = rerun() if callable(rerun) else rerun
    if target is not None and layout_signature(page) == before:
        st.rerun(target)


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
    changed = _changed(state.current_params())
    st.caption(DESCRIPTIONS[preset] + (f"  \n**Changed:** {', '.join(changed)}" if changed
                                       else ""))


def _preset_flat(name: str) -> dict:
    return get_preset(name).flat()


def fixed_steps_ignored(params) -> bool:
    """True when the automatic method replaces every fixed step (channel, blur,
    thresholds, clean-up, split) for `params`: in fluorescence mode, or with the kind
    forced to fluorescence. In cytology mode on a bright-field image the cells still
    come from those steps (:func:`cellseg_core.segment`)."""
    return is_automatic(params) and (Mode(params.mode) == Mode.FLUORESCENCE
                                     or AutoKind(params.auto.kind) == AutoKind.FLUORESCENCE)


def auto_widgets(draw, params, *, kinds=None,
                 use_steps: str = "set the kind to off to use them") -> None:
    """The automatic method's overrides, for any page: the kind of image (or "detect")
    and the nucleus diameter (0 = estimated from the image), with a line saying what
    the automatic method does with the fixed steps below.

    `draw(widget, label, name, **kwargs)` draws the widget bound to dotted parameter
    `name` the page's way (Explore: through ``state``; Count: its own keys); `params`
    are the params those widgets hold. `kinds`: the kinds offered (default every
    ``AutoKind``, ``off`` included); `use_steps` ends the line that says the fixed
    steps do not apply: how to use them instead.
    """
    kinds = [k.value for k in AutoKind] if kinds is None else list(kinds)
    st.markdown("**0 · Automatic nuclei**")
    draw(st.selectbox, "Kind of image", "auto.kind", options=kinds,
         format_func=lambda k: _AUTO_LABELS.get(k, k),
         help="The automatic presets read the kind of image and the nucleus size off the "
              "image; override either here."
              + (" Off: the fixed steps below." if AutoKind.OFF.value in kinds else ""))
    if not is_automatic(params):
        return
    draw(st.number_input, "Nuclei ≈ N px across (0 = estimate)", "auto.diameter",
         help="The typical nucleus diameter every size is derived from (blur, minimum "
              "size, marker spacing); 0 reads it off the image (at least 3 px when given).")
    if fixed_steps_ignored(params):
        st.caption("The automatic method chooses the channel, blur, threshold, clean-up and "
                   "split for this image: the fixed steps below do not apply "
                   f"({use_steps}).")
    else:
        st.caption("Cytology: the cells come from the steps below; the nuclei are the darker "
                   "part of each cell, pieces under half a typical nucleus removed (on an "
                   "immunostain, the automatic nuclei inside the cells).")


def auto_controls(page: str = "explore", rerun=None) -> None:
    """Explore's :func:`auto_widgets`, bound to the params in force (``state``)."""
    auto_widgets(functools.partial(_w, page=page, rerun=rerun), state.current_params())


def parameter_controls(page: str = "explore", rerun=None) -> None:
    """Every engine parameter, in pipeline order: mode, channel, blur, thresholds,
    clean-up, watershed.

    `rerun`: what a change reruns when the controls still look the same (see
    :func:`layout_signature`): a fragment key or keys for ``st.rerun``, or a function
    of no arguments that returns them when the change happens. None, or a change
    that alters the controls: the default rerun (the whole app, or the fragment the
    controls are drawn in).
    """
    p = state.current_params()
    if state.PARAMS_ERROR in st.session_state:
        st.error(st.session_state[state.PARAMS_ERROR])
    _w(st.radio, "Image type", "mode", page, rerun, options=[m.value for m in Mode],
       horizontal=True, help="Cytology: dark nucleus, cytoplasm, bright background "
       "(labels 0/1/2). Fluorescence: bright nuclei on dark (labels 0/2).")
    auto_controls(page, rerun)
    # A step the automatic method replaces stays on screen, greyed (the line above says why).
    wg = functools.partial(_w, rerun=rerun, disabled=fixed_steps_ignored(p))

    st.markdown("**1 · Channel**")
    wg(st.selectbox, "Channel", "channel", page, options=[c.value for c in Channel],
       format_func=_CHANNEL_LABELS.get, label_visibility="collapsed")

    st.markdown("**2 · Blur**")
    wg(st.selectbox, "Blur", "blur.kind", page, options=[b.value for b in BlurKind])
    if p.blur.kind == BlurKind.GAUSSIAN:
        wg(st.slider, "Sigma (px)", "blur.sigma", page)
    elif p.blur.kind in (BlurKind.MEDIAN, BlurKind.MEAN):
        wg(st.slider, "Window size (px)", "blur.size", page)

    st.markdown("**3 · Thresholds**")
    wg(st.selectbox, "Method", "threshold.method", page,
       options=[m.value for m in ThresholdMethod], format_func=lambda m: _METHOD_LABELS.get(m, m))
    manual = p.threshold.method == ThresholdMethod.MANUAL
    cytology = p.mode == Mode.CYTOLOGY
    if manual and cytology:
        wg(st.slider, "Nucleus below (t_nuc)", "threshold.t_nuc", page, format="%.4f")
        wg(st.slider, "Background above (t_bg)", "threshold.t_bg", page, format="%.4f")
    elif manual:
        wg(st.slider, "Object above (t_object)", "threshold.t_object", page, format="%.4f")
    else:
        if cytology:
            wg(st.selectbox, "Background threshold from", "threshold.background", page,
               options=[b.value for b in BackgroundMethod],
               help="same: the method on the whole image; peak: below the bright "
                    "background mode; manual: the t_bg slider.")
            if p.threshold.background == BackgroundMethod.MANUAL:
                wg(st.slider, "Background above (t_bg)", "threshold.t_bg", page,
                   format="%.4f")
        if p.threshold.method in (ThresholdMethod.LOCAL, ThresholdMethod.PERCENTILE):
            wg(st.slider, "Block size (px, odd)", "threshold.block_size", page)
            wg(st.slider, "Offset", "threshold.offset", page)
        if p.threshold.method == ThresholdMethod.PERCENTILE:
            wg(st.slider, "Percentile", "threshold.percentile", page)

    st.markdown("**4 · Clean-up**")
    c1, c2 = st.columns(2)
    with c1:
        wg(st.number_input, "Opening radius", "cleanup.opening_radius", page)
        wg(st.number_input, "Min nucleus (px)", "cleanup.min_nucleus_size", page)
    with c2:
        wg(st.number_input, "Closing radius", "cleanup.closing_radius", page)
        wg(st.number_input, "Min cytoplasm (px)", "cleanup.min_cytoplasm_size", page)
    wg(st.checkbox, "Fill holes in nuclei", "cleanup.fill_holes", page)
    c1, c2 = st.columns(2)
    with c1:
        wg(st.radio, "Connectivity", "cleanup.connectivity", page,
           options=list(CONNECTIVITIES), horizontal=True,
           format_func=lambda n: f"{n} ({'edges' if n == 4 else 'edges + corners'})",
           help="Which neighbours make one piece, for the size filters and for "
                "counting nuclei: 4 (pixels sharing an edge) or 8 (diagonals too).")
    with c2:
        wg(st.radio, "Classes cleaned", "cleanup.scheme", page,
           options=[s.value for s in CleanupScheme], horizontal=True,
           help="nested: a removed nucleus piece becomes cytoplasm (it is inside a "
                "cell); course: as the course's code, each class on its own, removed "
                "pieces become background (preset lab03v2).")

    st.markdown("**5 · Split touching nuclei**")
    wg(st.toggle, "Watershed", "watershed.enabled", page)
    if p.watershed.enabled:
        c1, c2 = st.columns(2)
        with c1:
            wg(st.number_input, "Min distance (px)", "watershed.min_distance", page)
        with c2:
            wg(st.number_input, "Footprint (px)", "watershed.footprint", page)


#: A parameters file is a few kB; anything above this is not one (and is not read).
MAX_PARAMS_FILE_BYTES = 1 << 20


def _on_params_upload(page: str) -> None:
    upload = st.session_state.get(f"{page}.params_upload")
    if upload is None:
        return
    error = f"{page}.params_upload_error"
    refused = quotas.refusal(upload)
    size = getattr(upload, "size", None)
    if refused is None and size is not None and size > MAX_PARAMS_FILE_BYTES:
        refused = (f"{md(upload.name)} is {size / 2**20:.1f} MB: a parameters file is a "
                   f"few kB (at most {MAX_PARAMS_FILE_BYTES // 2**20} MB), so it was not read")
    if refused is not None:
        st.session_state[error] = refused
        return
    try:
        state.apply_json(upload.getvalue(), page=page)
    except ValueError as err:
        st.session_state[error] = f"{md(upload.name)}: not usable parameters: {md(err)}"
    else:
        st.session_state.pop(error, None)


def params_download(page: str = "explore") -> None:
    """Download the params in force as JSON: the provenance block ``cellseg segment``
    writes to params.json (version, preset, params), which every upload door reads."""
    block = json.dumps(methods.current_method().describe(), indent=2) + "\n"
    source = st.session_state.get(state.SOURCE_CURRENT)
    st.download_button("Parameters (JSON)", block,
                       file_name=download_names(source)("params", "json"),
                       mime="application/json",
                       key=f"{page}.params_download", on_click="ignore")


def download_names(source, method: str | None = None):
    """``names(what, ext)``: download file names for `source` (an ImageSource or None)
    and `method` (default: the current preset, ``-edited`` when the parameters differ)."""
    if method is None:
        preset = state.current_preset()
        try:
            method = wording.params_label(preset, state.current_params(), get_preset(preset))
        except ValueError:  # not a preset name (a loaded file): just the name
            method = preset
    image = None
    if source is not None:
        image = ("-".join(p for p in (source.dataset, source.image_id) if p)
                 or PurePath(source.name).stem)

    def names(what: str, ext: str) -> str:
        return wording.download_name(what, ext, image=image, method=method)
    return names


def params_file_controls(page: str = "explore") -> None:
    """Upload a params JSON to set the controls."""
    st.file_uploader("Load parameters (JSON)", type=["json"], key=f"{page}.params_upload",
                     on_change=_on_params_upload, args=(page,))
    if f"{page}.params_upload_error" in st.session_state:
        st.error(st.session_state[f"{page}.params_upload_error"])
