"""Reading what a page shows in Streamlit's AppTest."""
from __future__ import annotations


def numbers_shown(at) -> dict:
    """Name -> value of the numbers in the page's markdown tables (names over values)."""
    shown = {}
    for block in at.markdown:
        rows = [[c.strip() for c in line.strip().strip("|").split("|")]
                for line in block.value.splitlines() if line.startswith("|")]
        for names, values in zip(rows[::3], rows[2::3]):
            shown.update(zip(names, values))
    return shown
