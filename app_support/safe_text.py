"""Text from users (file names, uploaded content) shown through Streamlit's markdown.

``st.markdown``, ``st.caption``, ``st.error`` and friends render markdown, and
Streamlit's markdown has its own directives (``:red[...]``, ``:material/x:``, ``$...$``).
A file name such as ``<img src=x onerror=alert(1)>.png`` or ``[click](http://x).png``
must be shown as written, so every ASCII punctuation character that markdown,
HTML or Streamlit's directives give a meaning is backslash-escaped (CommonMark allows
escaping any of them); ``. , / = ? @ % ' " ;`` are left as they are (``broken.png``
stays readable in the source), except the dot of a leading ``1.`` (a list).
Never pass user text with ``unsafe_allow_html=True``.
"""
from __future__ import annotations

import re

__all__ = ["md"]

_PUNCT = re.compile(r"([!#$&()*+\-:<>\[\\\]^_`{|}~])")
_LIST = re.compile(r"^(\d+)([.)])")


def md(text) -> str:
    r"""`text` escaped so that markdown shows it literally.

    Examples
    --------
    >>> md("*x*.png")
    '\\*x\\*.png'
    """
    text = _PUNCT.sub(r"\\\1", str(text)).replace("\n", " ").replace("\r", " ")
    return _LIST.sub(r"\1\\\2", text)
