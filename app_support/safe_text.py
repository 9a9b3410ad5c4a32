"""Text from users (file names, uploaded content) shown through Streamlit's markdown.

``st.markdown``, ``st.caption``, ``st.error`` and friends render markdown, and
Streamlit's markdown has its own directives (``:red[...]``, ``:material/x:``, ``$...$``).
A file name such as ``<img src=x onerror=alert(1)>.png`` or ``[click](http://x).png``
must be shown as written, so every ASCII punctuation character is backslash-escaped
(CommonMark allows escaping any of them). Never pass user text with
``unsafe_allow_html=True``.
"""
from __future__ import annotations

import re

__all__ = ["md"]

_PUNCT = re.compile(r"([!-/:-@\[-`{-~])")


def md(text) -> str:
    r"""`text` escaped so that markdown shows it literally.

    Examples
    --------
    >>> md("*x*.png")
    '\\*x\\*\\.png'
    """
    return _PUNCT.sub(r"\\\1", str(text)).replace("\n", " ")
