"""app_support.live_plot: charts redrawn in place, and their fallback."""
import json

import plotly.graph_objects as go
import plotly.io as pio

from streamlit.testing.v1 import AppTest  # noqa: E402

from app_support import live_plot  # noqa: E402

SCRIPT = """
import plotly.graph_objects as go
import streamlit as st
from app_support import live_plot
fig = go.Figure(go.Scatter(x=[1, 2, 3], y=[3, 1, 2]), layout={"height": 321})
live_plot.plotly_chart(fig, key="demo", notify="v1", on_drawn=lambda: None)
"""


def test_plotly_js_is_served_from_the_plotly_package():
    name = live_plot._plotly_js_name()
    served = live_plot.STATIC_DIR / name
    assert served.read_bytes() == live_plot._PLOTLY_JS.read_bytes()
    assert live_plot._PLOTLY_JS.stat().st_size > 1_000_000  # the whole library


def test_chart_sends_the_figure_to_the_component():
    at = AppTest.from_string(SCRIPT, default_timeout=30).run()
    assert not at.exception
    (chart,) = at.get("bidi_component")
    data = json.loads(chart.proto.json)
    fig = go.Figure(go.Scatter(x=[1, 2, 3], y=[3, 1, 2]), layout={"height": 321})
    assert data["figure"] == pio.to_json(fig, validate=False)
    assert (data["name"], data["height"], data["notify"]) == ("demo", 321, "v1")
    assert data["plotly_url"].endswith("/app/static/" + live_plot._plotly_js_name())
    assert data["config"]["responsive"] is True
    assert not at.get("plotly_chart")


def test_without_static_plotly_js_it_falls_back_to_st_plotly_chart(monkeypatch):
    monkeypatch.setattr(live_plot, "_plotly_js_name", lambda: None)  # a read-only install
    at = AppTest.from_string(SCRIPT, default_timeout=30).run()
    assert not at.exception
    assert not at.get("bidi_component")
    (chart,) = at.get("plotly_chart")
    assert json.loads(chart.proto.spec)["data"][0]["y"] == [3, 1, 2]


def test_a_read_only_folder_means_no_live_charts(monkeypatch, tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setattr(live_plot, "STATIC_DIR", blocked / "static")
    live_plot._plotly_js_name.cache_clear()
    try:
        assert live_plot._plotly_js_name() is None
    finally:
        live_plot._plotly_js_name.cache_clear()
