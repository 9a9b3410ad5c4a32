"""Plotly charts that are redrawn in place, keeping the user's zoom and pan.

``st.plotly_chart`` puts a hash of the figure into the element's identity, so every
change of the figure mounts a new chart: a full ``Plotly.newPlot`` (the Explore
overlay: ~50 ms of the browser's main thread per slider move) and the user's zoom is
lost. :func:`plotly_chart` mounts a keyed ``st.components.v2`` component instead: one
plot element per key, updated with ``Plotly.react`` (only what changed is redrawn,
``layout.uirevision`` keeps zoom and pan).

The browser gets plotly.js from the plotly package itself (the file plotly.py embeds
in its HTML export), copied on first use to ``static/`` next to ``app.py`` and served
by Streamlit's static file serving (``server.enableStaticServing`` in
``.streamlit/config.toml``). Where that is not possible (static serving off, a
read-only install) :func:`plotly_chart` falls back to ``st.plotly_chart``.

A chart can also tell the server that it has drawn a figure: give `notify` (any
string) and `on_drawn`; once that figure is on screen the browser sets the trigger
``drawn`` to `notify` and Streamlit calls `on_drawn` (once per `notify` value).
"""
from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

import plotly
import plotly.io as pio
import streamlit as st

__all__ = ["available", "plotly_chart", "STATIC_DIR"]

#: Streamlit serves this folder (next to ``app.py``) at ``<base URL>/app/static/``.
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
_PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"

_JS = r"""
function loadPlotly(url) {
  if (!window.__cellsegPlotly) {
    window.__cellsegPlotly = window.Plotly ? Promise.resolve(window.Plotly) :
      new Promise((resolve, reject) => {
        const script = document.createElement('script');
        script.src = url;
        script.onload = () => resolve(window.Plotly);
        script.onerror = () => reject(new Error('could not load plotly.js from ' + url));
        document.head.appendChild(script);
      });
  }
  return window.__cellsegPlotly;
}

export default function ({ data, parentElement, setTriggerValue }) {
  let plot = parentElement.querySelector('div.cellseg-plot');
  if (!plot) {
    plot = document.createElement('div');
    plot.className = 'cellseg-plot';
    plot.dataset.chart = data.name;
    plot.style.height = data.height + 'px';
    parentElement.appendChild(plot);
  }
  const notify = () => {
    if (data.notify && plot.dataset.notified !== data.notify) {
      plot.dataset.notified = data.notify;
      setTriggerValue('drawn', data.notify);
    }
  };
  const figure = JSON.parse(data.figure);  // sent as Plotly's own JSON text
  const draw = (Plotly) => Plotly.react(plot, figure.data, figure.layout,
                                        data.config).then(notify, notify);
  const fail = (err) => { plot.textContent = String(err); notify(); };
  if (window.Plotly) draw(window.Plotly); else loadPlotly(data.plotly_url).then(draw, fail);
}
"""
_component = st.components.v2.component("cellseg_live_plot", js=_JS, isolate_styles=False)


@functools.lru_cache(maxsize=1)
def _plotly_js_name() -> str | None:
    """File name of plotly.js under :data:`STATIC_DIR`, copied there if missing; None
    when it cannot be (read-only folder, plotly without its bundled plotly.js)."""
    name = f"plotly-{plotly.__version__}.min.js"
    target = STATIC_DIR / name
    try:
        if not target.is_file() or target.stat().st_size != _PLOTLY_JS.stat().st_size:
            STATIC_DIR.mkdir(exist_ok=True)
            partial = target.with_suffix(f".{os.getpid()}.part")
            shutil.copyfile(_PLOTLY_JS, partial)
            os.replace(partial, target)  # other sessions never see half a file
    except OSError:
        return None
    return name


def available() -> bool:
    """Whether charts are drawn in place here (else :func:`plotly_chart` falls back)."""
    return bool(st.get_option("server.enableStaticServing")) and _plotly_js_name() is not None


def plotly_chart(figure, *, key: str, config: dict | None = None, notify: str | None = None,
                 on_drawn=None) -> None:
    """Show a Plotly `figure`, redrawn in place (zoom and pan kept) when it changes.

    Parameters
    ----------
    figure : plotly.graph_objects.Figure
        Its ``layout.height`` sets the chart's height (450 px if unset).
    key : str
        The chart's identity: the same key on the next run updates the same plot.
    config : dict, optional
        Plotly config (``responsive`` is on).
    notify, on_drawn : str and callable, optional
        Once this figure is drawn, call `on_drawn` (in a widget callback, so it may
        ``st.rerun`` a fragment). Not called on the ``st.plotly_chart`` fallback.
    """
    config = {"responsive": True, **(config or {})}
    if not available():
        st.plotly_chart(figure, key=key, config=config, theme=None)
        return
    height = int(figure.layout.height or 450)
    base = st.get_option("server.baseUrlPath").strip("/")
    url = ("/" + base if base else "") + "/app/static/" + _plotly_js_name()
    callbacks = {"on_drawn_change": on_drawn} if on_drawn is not None else {}
    # The figure as JSON text: decoding and encoding it again here would cost more
    # than the browser's JSON.parse (a 1024² overlay is ~1 MB of data URIs).
    _component(data={"name": key, "figure": pio.to_json(figure, validate=False),
                     "config": config, "height": height, "plotly_url": url,
                     "notify": notify},
               key=key, height=height, **callbacks)
