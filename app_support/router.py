"""Make a deep link (``/compare``) on a fresh server open inside the app's frame.

Streamlit keeps a legacy mode for a ``pages/`` folder beside the entry point: until
some session has called ``st.navigation``, a first request for ``/compare`` runs
``pages/compare.py`` on its own, without ``app.py`` (no sidebar, the old menu). Each
page calls :func:`require_frame` first: in that case it switches the process to
``st.navigation`` mode and reruns, so ``app.py`` routes the same URL properly.
"""
from __future__ import annotations

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

__all__ = ["require_frame"]


def require_frame() -> None:
    """Rerun through ``app.py`` when Streamlit ran this page in legacy mode."""
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()
