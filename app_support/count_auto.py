"""The automatic nucleus presets on the Count page (issue 17 point 6).

Count's "Method" box offers them next to its own classic pipeline and the nucleus
models (:func:`app_support.nuclei_models.count_method`): ``auto-nuclei`` (any kind
of image: the detector picks the method) and ``auto-fluorescence``, the presets whose
result is nucleus instances (:data:`cellseg_core.methods.NUCLEUS_PRESETS`). The
kind of image and the nucleus diameter can be overridden with Explore's widgets
(:func:`app_support.controls.auto_widgets`), held under the page's own keys
(``<page>.auto.kind``, ``<page>.auto.diameter``) so that Explore's params are left
alone; the segmentation and the instance scores come from the app's caches.
"""
from __future__ import annotations

import streamlit as st

from cellseg_core.autoseg import describe
from cellseg_core.methods import NUCLEUS_PRESETS
from cellseg_core.params import CONTROL_RANGES, AutoKind, Params
from cellseg_core.presets import get_preset

from . import cache, controls
from .safe_text import md

__all__ = ["PRESETS", "OVERRIDES", "KINDS", "picked", "params", "render_controls",
           "count_result", "counted", "result_line"]

#: The automatic presets Count offers, in the order of its Method box.
PRESETS = NUCLEUS_PRESETS
#: The parameters the page lets the user override (Explore's "0 · Automatic nuclei").
OVERRIDES = ("auto.kind", "auto.diameter")
#: The kinds offered: not "off" (that is Count's classic pipeline, its own choice).
KINDS = tuple(k.value for k in AutoKind if k != AutoKind.OFF)


def _key(page: str, name: str) -> str:
    return f"{page}.{name}"


def picked(page: str) -> str | None:
    """The automatic preset the page's Method box holds (read, not drawn), or None."""
    name = st.session_state.get(_key(page, "method"))
    return name if name in PRESETS else None


def _reset_overrides(page: str, preset: str) -> None:
    """A preset newly chosen (or its widgets forgotten: Streamlit drops the state of a
    widget a run did not draw): its own kind and diameter in the override widgets,
    before they are drawn."""
    if st.session_state.get(_key(page, "auto.for")) != preset or \
            any(_key(page, name) not in st.session_state for name in OVERRIDES):
        values = get_preset(preset).flat()
        for name in OVERRIDES:
            st.session_state[_key(page, name)] = values[name]
        st.session_state[_key(page, "auto.for")] = preset


def params(page: str) -> Params:
    """The picked preset with the page's overrides (ValueError when they are invalid,
    e.g. a diameter of 2 px)."""
    preset = picked(page)
    if preset is None:
        raise ValueError(f"no automatic preset is chosen on page {page!r}")
    _reset_overrides(page, preset)
    return get_preset(preset).with_values({name: st.session_state[_key(page, name)]
                                           for name in OVERRIDES})


def render_controls(page: str, on_change=None) -> None:
    """Explore's "0 · Automatic nuclei" widgets for the picked preset, bound to the
    page's keys; `on_change` is their callback (no arguments)."""
    preset = picked(page)
    _reset_overrides(page, preset)

    def draw(widget, label, name, **kwargs):
        if name in CONTROL_RANGES and widget in (st.slider, st.number_input):
            kwargs = {**controls.control_range(name, st.session_state[_key(page, name)]),
                      **kwargs}
        return widget(label, key=_key(page, name), on_change=on_change, **kwargs)

    try:
        shown = params(page)
    except ValueError:  # an invalid override: the widgets still show (the error is below)
        shown = get_preset(preset).with_values({"auto.kind": st.session_state[
            _key(page, "auto.kind")]})
    controls.auto_widgets(draw, shown, kinds=KINDS,
                          use_steps="choose the classic pipeline under Method to use them")


def count_result(source, page: str):
    """Count's ``(params, segmentation, instance scores or None)`` for the picked
    preset, or None after an error (shown)."""
    try:
        p = params(page)
    except ValueError as err:
        st.error(f"Invalid parameters: {md(err)}")
        return None
    return counted(source, p)


def counted(source, p: Params):
    """``(p, segmentation, instance scores or None)`` of `source` under params `p`
    (both cached), or None after an error (shown): the classic pipeline's path too."""
    try:
        seg = cache.segmentation(source.digest, source.image, p)
    except ValueError as err:
        st.error(f"Cannot segment with these parameters: {md(err)}")
        return None
    truth = source.instances
    scores = None if truth is None else cache.instance_scores(source.digest, p, seg, truth)
    return p, seg, scores


def result_line(source, preset: str, seg) -> str:
    """The overlay's caption: image, preset, and what the automatic method read off
    the image (kind, confidence, nucleus diameter; :func:`cellseg_core.autoseg.describe`)."""
    return f"{md(source.name)} · {preset} · automatic: {describe(seg.auto)}"
