"""Narrow screens (a laptop beside a microscope, a classroom projector at 768 px).

Streamlit lays columns side by side at their weights down to 640 px, so on a 768-820 px
window with the sidebar open Explore's controls column is about 100 px wide: labels
break word by word and the preset's Reset button shows one letter. :func:`render_layout_css`
adds one style sheet (``assets/layout.css``, no user text in it) that gives columns a
usable minimum width, wraps a row of columns that does not fit, and lets wide tables
scroll inside their own box instead of widening the page.
"""
from __future__ import annotations

import streamlit as st

from .assets import read_asset

__all__ = ["LAYOUT_CSS", "render_layout_css"]

#: The style sheet, in ``assets/``.
LAYOUT_CSS = "layout.css"


def render_layout_css() -> None:
    """Add the app's layout rules to the page (once per run, from ``app.py``)."""
    st.html(f"<style>{read_asset(LAYOUT_CSS)}</style>")
