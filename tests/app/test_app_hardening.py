"""Explore's controls and the parameter model's limits (issue 21 point 10, issue 22 point
6): a value out of range, from a file or a link, gets the engine's message before any
widget is drawn (no StreamlitValueAboveMaxError); a value the engine accepts always
fits its control; every control's range is the parameter model's."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from app_support import state  # noqa: E402
from cellseg_core.params import CONTROL_RANGES  # noqa: E402
from cellseg_core.presets import get_preset  # noqa: E402
from tests._support.apptest import page_harness, run  # noqa: E402

#: Explore under the two calls app.py makes; a params file in ``test.params_json`` is
#: first given to the "Load parameters" uploader's callback, as Streamlit does before
#: a run.
HARNESS = """
import io
import streamlit as st
from app_support import controls

if "test.params_json" in st.session_state:
    upload = io.BytesIO(st.session_state.pop("test.params_json"))
    upload.name = "params.json"
    upload.size = len(upload.getvalue())
    st.session_state["explore.params_upload"] = upload
    controls._on_params_upload("explore")
    del st.session_state["explore.params_upload"]
""" + page_harness("explore.py")


@pytest.fixture
def explore(monkeypatch):
    monkeypatch.delenv("CELLSEG_DATA", raising=False)
    monkeypatch.delenv("CELLSEG_CONFIG", raising=False)
    return AppTest.from_string(HARNESS, default_timeout=60)


def _errors(at) -> list[str]:
    return [e.value for e in at.error]


def test_a_params_file_with_sigma_100000_gets_a_message_not_a_traceback(explore):
    at = run(explore)
    at.session_state["test.params_json"] = json.dumps(
        {"blur": {"kind": "gaussian", "sigma": 100000}}).encode()
    at = run(at)
    assert any("not usable parameters" in e and "blur.sigma" in e and "between 0 and 50" in e
               for e in _errors(at)), _errors(at)
    assert at.session_state[state.PARAMS] == get_preset(state.DEFAULT_PRESET)
    assert "explore.p.blur.sigma" not in [s.key for s in at.slider]


@pytest.mark.parametrize("query, name", [
    ({"blur.kind": "gaussian", "blur.sigma": "100000"}, "blur.sigma"),
    ({"threshold.t_nuc": "1e308"}, "threshold.t_nuc"),
    ({"threshold.t_bg": "NaN"}, "threshold.t_bg"),
    ({"watershed.enabled": "true", "watershed.footprint": "100000"}, "watershed.footprint"),
    ({"cleanup.min_nucleus_size": "1e308"}, "cleanup.min_nucleus_size"),
    ({"threshold.method": "local", "threshold.block_size": "99999"}, "threshold.block_size"),
])
def test_a_link_out_of_range_gets_the_engines_message(explore, query, name):
    explore.query_params.update(query)
    at = run(explore)
    shown = [e for e in _errors(at) if "the link's parameters were ignored" in e]
    assert len(shown) == 1 and name.replace(".", "") in shown[0].replace("\\", "").replace(
        ".", ""), _errors(at)
    assert "must be between" in shown[0]
    assert at.session_state[state.PARAMS] == get_preset(state.DEFAULT_PRESET)


@pytest.mark.parametrize("query, key, value", [
    ({"mode": "fluorescence", "threshold.t_object": "5.0"}, "threshold.t_object", 5.0),
    ({"blur.kind": "gaussian", "blur.sigma": "30.0"}, "blur.sigma", 30.0),
    ({"blur.kind": "median", "blur.size": "101"}, "blur.size", 101),
    ({"threshold.method": "local", "threshold.offset": "-0.9"}, "threshold.offset", -0.9),
])
def test_a_valid_value_outside_a_sliders_range_widens_the_slider(explore, query, key, value):
    explore.query_params.update(query)
    at = run(explore)
    assert not _errors(at), _errors(at)
    slider = at.slider(key=f"explore.p.{key}")
    assert slider.value == value
    low, high, step = CONTROL_RANGES[key]
    assert (slider.min, slider.max) == (min(low, value), max(high, value))
    assert at.session_state[state.PARAMS].get(key) == value


def test_a_valid_number_outside_a_boxs_range_widens_the_box(explore):
    explore.query_params.update({"watershed.enabled": "true", "watershed.min_distance": "500"})
    at = run(explore)
    box = at.number_input(key="explore.p.watershed.min_distance")
    assert (box.value, box.max) == (500, 500)


#: Query parameters that draw every numeric control of Explore, a few at a time.
_LAYOUTS = [
    {"blur.kind": "gaussian", "watershed.enabled": "true"},
    {"blur.kind": "median"},
    {"mode": "fluorescence"},
    {"threshold.method": "local", "threshold.background": "manual"},
    {"threshold.method": "percentile"},
    {"preset": "auto-cytology"},  # the automatic method's overrides (auto.*)
]


def test_every_control_takes_its_range_from_the_parameter_model(monkeypatch):
    seen = set()
    for query in _LAYOUTS:
        monkeypatch.delenv("CELLSEG_DATA", raising=False)
        at = AppTest.from_string(HARNESS, default_timeout=60)
        at.query_params.update(query)
        at = run(at)
        for widget in [*at.slider, *at.number_input]:
            name = (widget.key or "").removeprefix("explore.p.")
            if name not in CONTROL_RANGES:
                continue
            low, high, step = CONTROL_RANGES[name]
            assert (widget.min, widget.max, widget.step) == (low, high, step), name
            seen.add(name)
        # A numeric parameter with a few allowed values (cleanup.connectivity: 4 or 8) is
        # a radio: its options lie inside the range.
        for widget in at.radio:
            name = (widget.key or "").removeprefix("explore.p.")
            if name in CONTROL_RANGES:
                low, high, _ = CONTROL_RANGES[name]
                assert all(low <= int(str(o).split()[0]) <= high for o in widget.options), name
                seen.add(name)
    # Every numeric parameter has its control, the automatic method's (auto.*) included.
    assert seen == set(CONTROL_RANGES)


def test_the_count_page_takes_its_ranges_from_the_parameter_model(monkeypatch):
    monkeypatch.delenv("CELLSEG_DATA", raising=False)
    at = run(AppTest.from_string(page_harness("count.py"), default_timeout=120))
    checked = 0
    for widget in [*at.slider, *at.number_input]:
        name = (widget.key or "").removeprefix("count.")
        if name in CONTROL_RANGES:
            assert (widget.min, widget.max, widget.step) == CONTROL_RANGES[name], name
            checked += 1
    assert checked >= 5


def test_a_run_sends_back_only_the_values_it_changed(explore):
    """Streamlit sends a widget's value to the browser, which then replaces what the
    widget shows, whenever the run assigned the widget's key. A full run after a slider
    move must not: key presses made while it was on its way would be undone (the
    fast-slider browser test lost one in about six runs). A preset, which changes the
    values, still sends them."""
    at = run(explore)
    key = state.widget_key("threshold.t_nuc")
    at = run(at.slider(key=key).set_value(0.4))  # off the preset: a full run
    sent = {w.key: w.proto.set_value for w in [*at.slider, *at.number_input]
            if w.key.startswith("explore.p.")}
    assert at.slider(key=key).value == 0.4 and len(sent) >= 4
    assert not any(sent.values()), sent
    at = run(at.selectbox(key=state.preset_key()).set_value("lab01"))
    assert at.slider(key=key).value == 0.45
    assert at.slider(key=key).proto.set_value  # the preset's value, sent


def test_an_oversized_parameters_file_is_refused_unread(explore, monkeypatch):
    """A "params JSON" of megabytes is not read (the callback runs before any limit)."""
    from app_support import controls, state as app_state

    read = []
    monkeypatch.setattr(app_state, "apply_json", lambda *a, **k: read.append(a))
    padding = " " * (controls.MAX_PARAMS_FILE_BYTES + 10)
    explore.session_state["test.params_json"] = ('{"mode": "cytology"' + padding + "}").encode()
    explore.run()
    assert not explore.exception
    assert read == []
    assert any("a parameters file is a few kB" in e for e in _errors(explore)), _errors(explore)
