"""Explore's "Classify cells" in a real browser: click two cells of each synthetic type
on the image (Plotly point selection), give them their classes, train, and see every
cell coloured by its predicted class (issue 19 point 7).

Skipped with a reason only when no Chromium exists and ``CI`` is not set; under CI a
missing browser is a failure (as in ``test_browser.py``; the server helpers are in
``benchmarks/_common.py``).
"""
from __future__ import annotations

import re

import numpy as np
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

from _common import SLOW, chromium_page, start_streamlit, stop_streamlit, wait_idle  # noqa: E402

from app_support.object_classes import CLASS_PALETTE, UNCLASSIFIED  # noqa: E402
from tests._support.cells import QUERY, found_cells, write_two_type_dataset  # noqa: E402

NAMES = ("round", "long")
#: The Plotly graph of the section: the one whose first trace is the cells.
GRAPH_JS = """() => [...document.querySelectorAll('.js-plotly-plot')]
    .find(g => g.data && g.data[0] && g.data[0].name === 'cells')"""


@pytest.fixture
def cells(tmp_path):
    return write_two_type_dataset(tmp_path / "cells", n=1, size=160)


@pytest.fixture
def server(cells):
    proc, url = start_streamlit({"CELLSEG_DATA": str(cells[0]), "CELLSEG_CONFIG": ""})
    yield url
    stop_streamlit(proc)


def marker_colors(page) -> list:
    return page.evaluate(f"() => ({GRAPH_JS})().data[0].marker.color")


def click_cell(page, index: int) -> None:
    """Click the marker of cell `index` (its position in the trace) with the mouse."""
    box = page.evaluate(f"""(i) => {{
        const g = ({GRAPH_JS})();
        const r = g.querySelectorAll('.scatterlayer .trace')[0]
                   .querySelectorAll('path.point')[i].getBoundingClientRect();
        return [r.x + r.width / 2, r.y + r.height / 2]; }}""", index)
    page.mouse.click(*box)


def choose_class(page, name: str) -> None:
    page.locator('[data-testid="stRadio"]', has_text="Class to assign").get_by_text(
        name, exact=True).click()
    wait_idle(page)


def test_click_two_cells_to_classes_train_and_see_the_colouring(chromium_path, server, cells,
                                                                tmp_path):
    root, samples = cells
    _, _, labels, truth = found_cells(root, samples[0])
    with chromium_page(chromium_path, (1400, 1600)) as page:
        page.goto(f"{server}/?{QUERY}", wait_until="domcontentloaded")
        page.locator("button", has_text="Classify cells").first.click(timeout=SLOW)
        page.wait_for_function(f"() => !!({GRAPH_JS})()", timeout=SLOW)
        wait_idle(page)
        names = page.get_by_label("Classes (comma-separated", exact=False)
        names.fill(", ".join(NAMES))
        names.press("Enter")
        page.locator('[data-testid="stRadio"]', has_text="Class to assign").get_by_text(
            NAMES[1], exact=True).wait_for()
        wait_idle(page)
        assert set(marker_colors(page)) == {UNCLASSIFIED}
        # Two cells of each type, clicked on the image.
        picks = {0: np.flatnonzero(truth == 0)[:2], 1: np.flatnonzero(truth == 1)[:2]}
        for kind, rows in picks.items():
            choose_class(page, NAMES[kind])
            for row in rows:
                click_cell(page, int(row))
                page.wait_for_function(  # the chart is redrawn (briefly absent) on each run
                    f"(i) => ({GRAPH_JS})()?.data[0].marker.color[i] === "
                    f"'{CLASS_PALETTE[kind]}'", arg=int(row), timeout=SLOW)
                wait_idle(page)
        page.get_by_text("Examples: round 2, long 2").wait_for(timeout=SLOW)
        page.get_by_role("button", name="Train").click()
        page.get_by_text("trained on 4 cells").wait_for(timeout=SLOW)
        wait_idle(page)
        colors = np.array(marker_colors(page), dtype=object)
        page.screenshot(path=str(tmp_path / "classify_cells.png"), full_page=True)
        # Every cell coloured by a class, and the colours are the true types.
        assert UNCLASSIFIED not in set(colors)
        known = truth >= 0
        expected = np.array(CLASS_PALETTE[:2], dtype=object)[truth[known]]
        assert (colors[known] == expected).mean() >= 0.9, (colors, truth)
        hover = page.evaluate(f"() => ({GRAPH_JS})().data[0].text")
        assert len(hover) == len(labels)
        assert all(h.startswith(f"cell {label} · ") and re.search(r"\((0\.\d\d|1\.00)\)", h)
                   for h, label in zip(hover, labels))  # class and its probability
        assert not page.locator('[data-testid="stException"]').count()
    assert (tmp_path / "classify_cells.png").stat().st_size > 10_000
