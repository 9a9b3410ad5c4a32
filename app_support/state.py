"""Session-state keys and the one door through which parameters change.

Canonical state
---------------
``PARAMS``       the current :class:`~cellseg_core.Params` (shared by all pages)
``PRESET``       the preset those params started from (for "reset" and the URL)
``SOURCE_*``     the sidebar's image source (see :mod:`app_support.sources`)

Widgets never hold the truth: a parameter widget has the key ``"<page>.p.<dotted
name>"`` and its ``on_change`` callback sends the new value through
:func:`update_params`. Presets, uploaded JSON and URL query parameters go through
the same door (:func:`set_params`, built on ``Params.with_values`` /
``Params.from_dict``), which also writes the widget keys, so every control shows
the params in force.
"""
from __future__ import annotations

import json

import streamlit as st

from cellseg_core.methods import load_params
from cellseg_core.params import Params
from cellseg_core.presets import PRESETS, get_preset

from .safe_text import md

__all__ = [
    "PARAMS", "PRESET", "PARAMS_ERROR", "SOURCE_KIND", "SOURCE_DATASET", "SOURCE_ID",
    "SOURCE_CURRENT", "DEFAULT_PRESET", "widget_key", "preset_key", "current_params", "current_preset", "set_params",
    "update_params", "apply_preset", "apply_json", "on_widget_change", "ensure_widgets",
    "params_from_query", "query_for", "sync_query", "init_from_query", "MAX_LINK_VALUE",
    "check_link",
]

PARAMS = "params"
PRESET = "params.preset"
PARAMS_ERROR = "params.error"
SOURCE_KIND = "source.kind"
SOURCE_DATASET = "source.dataset"
SOURCE_ID = "source.id"
SOURCE_CURRENT = "source.current"  # the ImageSource the sidebar returned this run
_QUERY_LOADED = "query.loaded"

DEFAULT_PRESET = "lab02"
#: Query-parameter names that are not engine parameters.
QUERY_DATASET, QUERY_IMAGE, QUERY_PRESET = "dataset", "image", "preset"


def widget_key(name: str, page: str = "explore") -> str:
    """Session key of the widget that edits dotted parameter `name` on `page`."""
    return f"{page}.p.{name}"


def preset_key(page: str = "explore") -> str:
    """Session key of the preset picker on `page`."""
    return f"{page}.preset"


def current_params() -> Params:
    """The params in force (the default preset's on a fresh session)."""
    if PARAMS not in st.session_state:
        st.session_state[PARAMS] = get_preset(DEFAULT_PRESET)
        st.session_state[PRESET] = DEFAULT_PRESET
    return st.session_state[PARAMS]


def current_preset() -> str:
    current_params()
    return st.session_state[PRESET]


def set_params(params: Params, *, preset: str | None = None, page: str = "explore") -> None:
    """Make `params` current and show it in every widget of `page`.

    Call it from a widget callback or before the widgets are drawn (Streamlit
    forbids writing a widget's key after the widget exists in the same run).
    """
    if not isinstance(params, Params):
        raise TypeError(f"`params` must be a Params, got {type(params).__name__}")
    st.session_state[PARAMS] = params
    if preset is not None:
        get_preset(preset)  # refuses an unknown name
        st.session_state[PRESET] = preset
        _show(preset_key(page), preset)
    st.session_state.pop(PARAMS_ERROR, None)
    for name, value in params.flat().items():
        _show(widget_key(name, page), value)


def update_params(values: dict, *, page: str = "explore") -> Params:
    """Change some dotted parameters of the current params (validated).

    Raises
    ------
    ValueError
        From ``Params.with_values`` (unknown name, out of range, t_nuc >= t_bg...).
    """
    params = current_params().with_values(values)
    set_params(params, page=page)
    return params


def apply_preset(name: str, *, page: str = "explore") -> Params:
    """Load the built-in preset `name` into the current params and the widgets."""
    params = get_preset(name)
    set_params(params, preset=name, page=page)
    return params


def apply_json(text: str | bytes, *, page: str = "explore") -> Params:
    """Load params from JSON text (an uploaded file: a params JSON, or a ``params.json``
    downloaded from the app or written by ``cellseg segment``); ValueError when invalid."""
    params = load_params(text)
    set_params(params, page=page)
    return params


def on_widget_change(name: str, page: str = "explore") -> None:
    """Callback of a parameter widget: send its new value through :func:`update_params`.

    An invalid combination (say ``t_nuc`` above ``t_bg``) is refused: the widget goes
    back to the value in force and the reason is kept under ``PARAMS_ERROR``.
    """
    key = widget_key(name, page)
    try:
        update_params({name: st.session_state[key]}, page=page)
    except ValueError as err:
        st.session_state[key] = current_params().get(name)
        st.session_state[PARAMS_ERROR] = str(err)


def ensure_widgets(page: str = "explore") -> None:
    """Write the params in force into every parameter widget of `page`.

    Call it on each full run before the widgets are drawn. Streamlit forgets a
    widget's value when a run does not draw it (another page, or no image yet) and
    would then show the widget's default, not the params in force.
    """
    for name, value in current_params().flat().items():
        _show(widget_key(name, page), value)
    _show(preset_key(page), current_preset())


def _show(key: str, value) -> None:
    """Put `value` into widget `key`, only when the widget does not hold it already.

    Assigning a widget's key makes Streamlit send that value to the browser, which then
    replaces what the widget shows: a slider moved on by key presses while this run
    was on its way lost those presses (the fast-slider browser test, 1 run in 6)."""
    if key not in st.session_state or st.session_state[key] != value:
        st.session_state[key] = value


# --- URL query parameters ---------------------------------------------------------------
def _parse(text: str):
    """A query-string value as the JSON value it spells, else the string itself."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return text


#: The longest query-parameter name or value a link may carry: the app's own links hold
#: preset, dataset and image names and numbers, all far shorter.
MAX_LINK_VALUE = 200


def check_link(query: dict, names=None) -> None:
    """Refuse a link whose query (its entries `names`, default all) holds a name or
    value longer than :data:`MAX_LINK_VALUE`, before anything parses or quotes it.

    Raises
    ------
    ValueError
        Naming the entry (cut short) and its length.
    """
    for name, value in query.items():
        if names is not None and name not in names:
            continue
        for text in (name, value):
            if len(text) > MAX_LINK_VALUE:
                shown = name if len(name) <= 40 else name[:40] + "…"
                raise ValueError(f"the entry {shown!r} is {len(text):,} characters long "
                                 f"(at most {MAX_LINK_VALUE})")


def params_from_query(query: dict) -> tuple[Params, str | None]:
    """Params described by query parameters: a preset plus changed dotted names.

    Raises
    ------
    ValueError
        For an unknown preset or parameter, a value out of range, or a name or value
        too long to be a link's (:func:`check_link`).
    """
    check_link(query)
    preset = query.get(QUERY_PRESET)
    base = get_preset(preset) if preset else get_preset(DEFAULT_PRESET)
    names = set(base.flat())
    values = {k: _parse(v) for k, v in query.items() if k in names}
    unknown = sorted(set(query) - names - {QUERY_PRESET, QUERY_DATASET, QUERY_IMAGE}
                     - {"source", "page"})
    if unknown:
        raise ValueError(f"unknown URL parameter(s) {unknown[:5]}"
                         + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""))
    return base.with_values(values), (preset or DEFAULT_PRESET)


def query_for(params: Params, preset: str, dataset: str | None = None,
              image: str | None = None) -> dict:
    """The query parameters that reproduce a view: preset + parameters that differ."""
    out = {}
    if dataset:
        out[QUERY_DATASET] = dataset
    if image:
        out[QUERY_IMAGE] = str(image)
    out[QUERY_PRESET] = preset
    base = PRESETS[preset].flat() if preset in PRESETS else {}
    for name, value in params.flat().items():
        if base.get(name) != value:
            out[name] = value if isinstance(value, str) else json.dumps(value)
    return out


def init_from_query(page: str = "explore") -> None:
    """Once per session: load preset and parameters from the URL (same door)."""
    if st.session_state.get(_QUERY_LOADED):
        return
    st.session_state[_QUERY_LOADED] = True
    query = st.query_params.to_dict()
    if not (set(query) - {QUERY_DATASET, QUERY_IMAGE, "source"}):
        current_params()
        return
    try:
        params, preset = params_from_query(query)
    except ValueError as err:
        st.session_state[PARAMS_ERROR] = f"the link's parameters were ignored: {md(err)}"
        current_params()
        return
    set_params(params, preset=preset, page=page)


def sync_query(params: Params, preset: str, dataset: str | None, image: str | None) -> None:
    """Mirror the view into the URL, touching only the entries that changed."""
    wanted = query_for(params, preset, dataset, image)
    have = st.query_params.to_dict()
    for key in set(have) - set(wanted):
        del st.query_params[key]
    for key, value in wanted.items():
        if have.get(key) != value:
            st.query_params[key] = value
