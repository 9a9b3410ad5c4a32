"""Races and links in a real browser (issue 21 points 7 and 8): Playwright drives
Debian's Chromium against ``streamlit run app.py`` with the built-in demo data only.

- Clicking the sidebar's "Upload" right after Explore appears, while the page's
  overlay is still being drawn, used to blank the whole app (the browser console:
  ``'setIn' cannot be called on an ElementNode``). Cause: Explore ended its run with
  ``st.stop()`` when no image was chosen, and Streamlit 1.67 does not unregister the
  fragments and widgets a run stopped that way left out: the previous page's overlay,
  drawn late, reported it, and its callback reran the numbers' fragment into a page
  where that fragment's place now held another element.
- Every page's own path (``/explore`` included, though Explore is served at ``/``)
  opens that page without a "Page not found" dialog.

Skipped with a reason only when no Chromium exists and ``CI`` is not set.
"""
from __future__ import annotations

import numpy as np
import pytest
from _common import chromium_page, server_log, start_streamlit, stop_streamlit, wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SIDEBAR = '[data-testid="stSidebar"]'
UPLOADER = f'{SIDEBAR} [data-testid="stFileUploader"]'


@pytest.fixture
def demo_server():
    proc, url = start_streamlit({"CELLSEG_DATA": "", "CELLSEG_CONFIG": ""})
    yield url, proc
    stop_streamlit(proc)


def _idle_or_blank(page) -> None:
    """Wait until Streamlit has run nothing for a while, or the app is blank (a broken
    app never becomes idle again: fail fast, not after a timeout)."""
    wait_idle(page, or_when=f"!document.querySelector('{SIDEBAR}')")


def _overlay_reported(page) -> None:
    """Wait until plotly.js has loaded and had time to draw the figures it was given:
    after that the browser has sent every "drawn" report of the charts it mounted."""
    page.evaluate("""() => (window.__cellsegPlotly || Promise.resolve()).then(
        () => new Promise(r => requestAnimationFrame(() => setTimeout(r, 0))),
        () => null)""")


def test_early_upload_click_keeps_the_app(chromium_path, demo_server, tmp_path):
    """Ten fresh loads of Explore, "Upload" clicked 0.2 to 1.5 s after the heading
    appears: the sidebar and the uploader are on screen, no error, no 'setIn'."""
    url, proc = demo_server
    with chromium_page(chromium_path, (1400, 1000)) as page:
        console = []
        page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda err: console.append(f"page error: {err}"))
        page.goto(url, wait_until="domcontentloaded")  # first run: caches warm up
        page.get_by_text("Mean Dice").first.wait_for()
        wait_idle(page)
        for i, delay in enumerate(np.linspace(0.2, 1.5, 10)):
            console.clear()
            page.goto(url, wait_until="domcontentloaded")
            page.get_by_role("heading", name="Explore").first.wait_for()
            page.wait_for_timeout(delay * 1000)  # the race itself: a click this early
            sidebar = page.locator(SIDEBAR)
            upload = sidebar.get_by_role("radio", name="Upload")
            for _ in range(3):  # a click that lands while the sidebar moves is lost
                sidebar.get_by_text("Upload", exact=True).click()
                _idle_or_blank(page)
                if not sidebar.count() or upload.is_checked():
                    break
            if sidebar.count():
                _overlay_reported(page)  # the old page's late report, if any...
                _idle_or_blank(page)     # ...and the run it started
            what = f"load {i}, clicked {delay:.2f} s after the heading"
            if not sidebar.count() or page.locator('[role="dialog"]').count():
                page.screenshot(path=str(tmp_path / f"early_upload_{i}.png"))
            assert sidebar.count() and sidebar.is_visible(), \
                f"{what}: blank app; console: {console}"
            assert upload.is_checked(), f"{what}: the click was lost three times"
            assert page.locator(UPLOADER).first.is_visible(), f"{what}: no uploader"
            assert page.get_by_text("Choose an image in the sidebar.").is_visible(), what
            assert not page.locator('[role="dialog"]').count(), \
                f"{what}: {page.locator('[role=dialog]').all_inner_texts()}"
            assert not page.locator('[data-testid="stException"]').count(), what
            assert not [m for m in console if "setIn" in m], f"{what}: {console}"
    assert "Traceback" not in server_log(proc)


#: Every page's own path and what it shows (its title), old links included.
DEEP_PATHS = {
    "/": "Explore",
    "/explore": "Explore",
    "/explore/": "Explore",
    "/compare": "Compare",
    "/optimise": "Optimise",
    "/count": "Count nuclei",
    "/batch": "Batch",
    "/train": "Train",
    "/lesson_nc_ratio": "Lesson · N/C ratio of urothelial cells",
    "/lesson_counting": "Lesson · Counting cells in fluorescence",
    "/lesson_supervision": "Lesson · Why supervision pays",
}


def test_deep_paths_open_their_page_without_a_dialog(chromium_path, demo_server):
    """Each path on a fresh server (the first request is the one Streamlit routes
    without app.py) and again on a running one; an Explore link keeps its query."""
    url, proc = demo_server
    stop_streamlit(proc)
    with chromium_page(chromium_path, (1400, 1000)) as page:
        for first in ("/explore", "/compare"):  # a fresh server's first request
            proc, url = start_streamlit({"CELLSEG_DATA": "", "CELLSEG_CONFIG": ""})
            try:
                _check_path(page, url, first, DEEP_PATHS[first])
            finally:
                stop_streamlit(proc)
        proc, url = start_streamlit({"CELLSEG_DATA": "", "CELLSEG_CONFIG": ""})
        try:
            for path, title in DEEP_PATHS.items():
                _check_path(page, url, path, title)
            # An old Explore link: the image and parameters it names, at /.
            _check_path(page, url, "/explore?dataset=demo-fluorescence&image=003"
                        "&preset=auto-fluorescence", "Explore")
            assert page.url.startswith(f"{url}/?")
            assert "image=003" in page.url and "preset=auto-fluorescence" in page.url
            page.get_by_text("demo-fluorescence / 003").first.wait_for()
            # A path that is no page still says so.
            page.goto(f"{url}/no-such-page", wait_until="domcontentloaded")
            page.get_by_role("dialog").get_by_text("Page not found").wait_for()
        finally:
            stop_streamlit(proc)


def _check_path(page, url: str, path: str, title: str) -> None:
    page.goto(url + path, wait_until="domcontentloaded")
    page.get_by_role("heading", name=title, exact=True).first.wait_for()
    wait_idle(page)
    page.get_by_role("heading", name=title, exact=True).first.wait_for()
    dialogs = page.locator('[role="dialog"]')
    assert not dialogs.count(), f"{path}: {dialogs.all_inner_texts()}"
    assert not page.locator('[data-testid="stException"]').count(), path
    current = page.locator('[data-testid="stSidebarNav"] a[aria-current="page"]')
    nav_title = title.removeprefix("Lesson · ").replace("Count nuclei", "Count")
    assert nav_title in current.inner_text(), f"{path}: menu shows {current.inner_text()}"
