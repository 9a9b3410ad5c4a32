"""Narrow screens (issue 22 point 8): the pages at 768, 1024 and 1440 px in Chromium.

At each width the test screenshots the page (kept in the test's temporary folder, the
CI artefacts) and reads the bounding box of every visible widget, chart, table and text
block: no two of them may overlap, none may stick out of the window or be cut by its
column, no button may cut its own label, and the page may not scroll sideways. 768 px
is the narrowest window the app promises (a laptop beside a microscope, a projector).
"""
from __future__ import annotations

import pytest
from _common import (OVERLAY_CHART, PREDICTION_LAYER, SLOW, chromium_page,
                     start_streamlit, stop_streamlit, wait_idle)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WIDTHS = (768, 1024, 1440)

#: What a person sees as one thing on the page.
TEST_IDS = ("stSlider", "stSelectbox", "stNumberInput", "stRadio", "stCheckbox", "stButton",
            "stDownloadButton", "stMetric", "stPlotlyChart", "stDataFrame", "stExpander",
            "stFileUploader", "stTextInput", "stMultiSelect", "stImage", "stTable",
            "stMarkdown", "stCaptionContainer", "stButtonGroup", "stAlert", "stProgress",
            "stHeading", "stToggle")

#: The visible part of each element of TEST_IDS (cut by every ancestor that clips, left
#: out when hidden or inside a closed expander), in page coordinates; which of them
#: contain which; how much an ancestor that clips without scrolling cuts off each side;
#: buttons whose label does not fit; and how far the page scrolls sideways.
BOXES_JS = """(ids) => {
  const els = [...document.querySelectorAll(ids.map(s => `[data-testid="${s}"]`).join(','))];
  const boxes = [];
  for (const [i, e] of els.entries()) {
    const cs = getComputedStyle(e);
    if (cs.visibility === 'hidden' || cs.display === 'none'
        || e.closest('details:not([open])')) continue;
    const b = e.getBoundingClientRect();
    const r = {left: b.left, top: b.top, right: b.right, bottom: b.bottom};
    let cut = 0, shown = true;
    for (let p = e.parentElement; p && p !== document.documentElement; p = p.parentElement) {
      const ps = getComputedStyle(p);
      if (ps.display === 'none' || ps.visibility === 'hidden') { shown = false; break; }
      const q = p.getBoundingClientRect();
      if (ps.overflowX !== 'visible') {
        const before = r.right - r.left;
        r.left = Math.max(r.left, q.left); r.right = Math.min(r.right, q.right);
        if (ps.overflowX === 'hidden' || ps.overflowX === 'clip')
          cut = Math.max(cut, before - (r.right - r.left));
      }
      if (ps.overflowY !== 'visible') {
        r.top = Math.max(r.top, q.top); r.bottom = Math.min(r.bottom, q.bottom);
      }
    }
    if (!shown || r.right - r.left < 1 || r.bottom - r.top < 1) continue;
    boxes.push({i, testid: e.dataset.testid, text: (e.innerText || '').trim().slice(0, 50),
                x: r.left + scrollX, y: r.top + scrollY, w: r.right - r.left,
                h: r.bottom - r.top, right: b.right, cut});
  }
  const nested = [];
  for (const a of boxes) for (const b of boxes)
    if (a !== b && els[a.i].contains(els[b.i])) nested.push([a.i, b.i]);
  const clipped = [...document.querySelectorAll('button')]
    .filter(b => b.offsetWidth > 0 && b.innerText.trim() && b.scrollWidth > b.clientWidth + 1)
    .map(b => b.innerText.trim());
  // Streamlit's main area scrolls itself (the document does not): either may scroll sideways.
  const sideways = [document.documentElement, document.querySelector('[data-testid="stMain"]')]
    .filter(Boolean).map(e => e.scrollWidth - e.clientWidth);
  return {boxes, nested, clipped, sideways: Math.max(...sideways), innerWidth};
}"""


def layout_problems(page) -> list[str]:
    """What is wrong with the page's layout as drawn now (empty when nothing is)."""
    d = page.evaluate(BOXES_JS, list(TEST_IDS))
    problems = []
    if d["sideways"] > 0:
        problems.append(f"the page scrolls sideways by {d['sideways']} px")
    nested = {tuple(p) for p in d["nested"]}
    boxes = d["boxes"]
    for k, a in enumerate(boxes):
        where = f"{a['testid']} {a['text']!r}"
        if a["right"] > d["innerWidth"] + 1:
            problems.append(f"{where} ends at {a['right']:.0f} px, outside the window")
        if a["cut"] > 2:
            problems.append(f"{where}: {a['cut']:.0f} px cut off by its column")
        for b in boxes[k + 1:]:
            if (a["i"], b["i"]) in nested or (b["i"], a["i"]) in nested:
                continue
            dx = min(a["x"] + a["w"], b["x"] + b["w"]) - max(a["x"], b["x"])
            dy = min(a["y"] + a["h"], b["y"] + b["h"]) - max(a["y"], b["y"])
            if dx > 2 and dy > 2:
                problems.append(f"{where} overlaps {b['testid']} {b['text']!r} "
                                f"({dx:.0f} x {dy:.0f} px)")
    problems += [f"button label cut: {text!r}" for text in d["clipped"]]
    return problems


@pytest.fixture(scope="module")
def demo_server():
    proc, url = start_streamlit({"CELLSEG_DATA": "", "CELLSEG_CONFIG": ""})
    yield url
    stop_streamlit(proc)


def _explore_ready(page):
    page.locator(f"{OVERLAY_CHART} {PREDICTION_LAYER}").first.wait_for(timeout=SLOW)
    page.get_by_text("Mean Dice").first.wait_for(timeout=SLOW)


def _compare_ready(page):
    page.get_by_role("button", name="Run comparison").wait_for(timeout=SLOW)


def _train_ready(page):
    page.get_by_text("Paint at least two classes").first.wait_for(timeout=SLOW)


PAGES = {"explore": ("", _explore_ready), "compare": ("/compare", _compare_ready),
         "train": ("/train", _train_ready)}


@pytest.mark.parametrize("name", list(PAGES))
def test_pages_fit_narrow_and_wide_windows(chromium_path, demo_server, tmp_path, name):
    path, ready = PAGES[name]
    found = {}
    with chromium_page(chromium_path, (WIDTHS[0], 1000)) as page:
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 1000})
            page.goto(demo_server + path, wait_until="domcontentloaded")
            ready(page)
            wait_idle(page)
            shot = tmp_path / f"{name}_{width}.png"
            page.screenshot(path=str(shot))
            assert shot.stat().st_size > 10_000
            assert not page.locator('[data-testid="stException"]').count()
            found[width] = layout_problems(page)
    assert found == {w: [] for w in WIDTHS}, f"screenshots in {tmp_path}"


def test_layout_check_sees_an_overlap(chromium_path, demo_server):
    """The check itself: a button moved over the title is reported."""
    with chromium_page(chromium_path, (WIDTHS[0], 1000)) as page:
        page.goto(demo_server + "/compare", wait_until="domcontentloaded")
        _compare_ready(page)
        wait_idle(page)
        assert layout_problems(page) == []
        page.evaluate("""() => {
            const b = [...document.querySelectorAll('[data-testid="stButton"]')]
                .find(e => e.innerText.includes('Run comparison'));
            const m = document.querySelector('[data-testid="stMultiSelect"]');
            const dy = m.getBoundingClientRect().top - b.getBoundingClientRect().top;
            b.style.transform = `translateY(${dy + 10}px)`;  // onto the methods list
            const wide = document.createElement('div');
            wide.style.width = '3000px'; wide.style.height = '5px';
            document.querySelector('[data-testid="stMainBlockContainer"]').append(wide);
        }""")
        problems = layout_problems(page)
        assert any("overlaps" in p and "Run comparison" in p for p in problems), problems
        assert any("scrolls sideways" in p for p in problems), problems
