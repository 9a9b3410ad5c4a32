"""End to end in a real browser: Playwright drives Debian's Chromium against
``streamlit run app.py`` on a free local port (helpers shared with the benchmarks in
``benchmarks/_common.py``; the ``chromium_path`` fixture is in conftest).

Skipped with a reason only when no Chromium exists and ``CI`` is not set; under CI a
missing browser is a failure.
"""
from __future__ import annotations

import re

import pytest
from _common import (NUMBER_JS, OVERLAY_CHART, PREDICTION_LAYER, SLOW, chromium_page, choose,
                     number_value, press_slider, start_optimisation, start_streamlit,
                     stop_streamlit, wait_idle)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: The overlay's zoom: x and y ranges of its first panel.
_ZOOM_JS = """(sel) => { const gd = document.querySelector(sel)._fullLayout;
    return [gd.xaxis.range, gd.yaxis.range]; }"""


@pytest.fixture
def server(voced):
    proc, url = start_streamlit({"CELLSEG_DATA": str(voced)})
    yield url
    stop_streamlit(proc)


def metric_value(page, label: str) -> str:
    """The value shown by the ``st.metric`` labelled `label`."""
    box = page.locator('[data-testid="stMetric"]', has_text=label).first
    return box.locator('[data-testid="stMetricValue"]').inner_text().strip()


def wait_zoom_settled(page, chart: str, quiet: float = 500) -> list:
    """The zoom of `chart` (see ``_ZOOM_JS``) once it has zoomed in and then kept the
    same ranges for `quiet` ms (Plotly applies wheel zoom after a short delay)."""
    page.wait_for_function("""([sel, js, quiet]) => {
      const zoom = JSON.stringify(eval(js)(sel)), now = performance.now();
      const w = window.__cellsegZoom || {};
      if (w.zoom !== zoom) { window.__cellsegZoom = {zoom, since: now}; return false; }
      const x = JSON.parse(zoom)[0];
      return x[1] - x[0] < 200 && now - w.since >= quiet;
    }""", arg=[chart, _ZOOM_JS, quiet], timeout=SLOW, polling=100)
    return page.evaluate(_ZOOM_JS, chart)


def test_explore_in_chromium(chromium_path, server, tmp_path):
    from playwright.sync_api import expect

    with chromium_page(chromium_path, (1600, 1200)) as page:
        page.goto(server, wait_until="domcontentloaded")
        page.get_by_text("Mean Dice").first.wait_for(timeout=SLOW)
        wait_idle(page)

        choose(page, "Dataset", "voced")
        expect(page.locator('[data-testid="stSidebar"]')).to_contain_text("200 images")
        choose(page, "Image id", "007")
        wait_idle(page)
        expect(page).to_have_url(re.compile(r"dataset=voced.*image=007"))
        overlay = page.locator(OVERLAY_CHART)
        overlay.locator(PREDICTION_LAYER).first.wait_for()
        before = number_value(page, "Mean Dice")
        image_before = overlay.locator(PREDICTION_LAYER).first.get_attribute("href")
        page.screenshot(path=str(tmp_path / "explore_before.png"), full_page=True)
        # Zoom into the image with the mouse wheel (scroll zoom is on).
        box = overlay.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 6, box["y"] + box["height"] / 2)
        for _ in range(4):
            page.mouse.wheel(0, -200)
        zoom = wait_zoom_settled(page, OVERLAY_CHART)
        assert zoom[0][1] - zoom[0][0] < 200, f"the wheel did not zoom: {zoom}"

        # Move the nucleus threshold with the keyboard: 6 steps of 0.005 up.
        press_slider(page, "Nucleus below", 6)
        expect(page).to_have_url(re.compile(r"threshold\.t_nuc="), timeout=SLOW)
        wait_idle(page)
        page.wait_for_function(f"(b) => ({NUMBER_JS})('Mean Dice') !== b", arg=before,
                               timeout=SLOW)
        after = number_value(page, "Mean Dice")
        image_after = overlay.locator(PREDICTION_LAYER).first.get_attribute("href")
        page.screenshot(path=str(tmp_path / "explore_after.png"), full_page=True)
        assert float(after) != float(before)
        assert image_after != image_before, "the overlay was not redrawn"
        # Redrawn in place: the zoom survived six slider moves.
        kept = page.evaluate(_ZOOM_JS, OVERLAY_CHART)
        assert sum(kept, []) == pytest.approx(sum(zoom, []))
        assert not page.locator('[data-testid="stException"]').count()

        # Upload: a broken file gives a reason, a 16-bit TIFF is segmented.
        page.locator('[data-testid="stSidebar"]').get_by_text("Upload", exact=True).click()
        uploader = page.locator('[data-testid="stSidebar"] [data-testid="stFileUploader"]'
                                ).first.locator('input[type="file"]')
        uploader.set_input_files(files=[{"name": "broken.png", "mimeType": "image/png",
                                         "buffer": b"this is not a PNG"}])
        expect(page.locator('[data-testid="stAlert"]', has_text="Cannot use this image")
               ).to_be_visible(timeout=SLOW)
        import numpy as np
        import tifffile

        tif = tmp_path / "cell16.tif"
        img16 = np.full((64, 64), 60000, np.uint16)
        img16[20:40, 20:40] = 30000   # cytoplasm
        img16[26:34, 26:34] = 5000    # nucleus
        tifffile.imwrite(tif, img16)
        uploader.set_input_files(str(tif))
        wait_idle(page)
        page.wait_for_function(f"() => ({NUMBER_JS})('Nucleus (px)') === '64'",
                               timeout=SLOW)
        page.screenshot(path=str(tmp_path / "explore_upload.png"), full_page=True)
        assert not page.locator('[data-testid="stException"]').count()
    assert (tmp_path / "explore_after.png").stat().st_size > 10_000


def test_explore_fast_slider_moves_end_consistent(chromium_path, server, voced):
    """Eight quick key presses: overlay runs and the numbers' runs (started by the
    browser's reports) interleave; once idle, the URL, the overlay's heading and the
    numbers all show the last value, and the Dice is the engine's for it."""
    from cellseg_core import read_image, read_mask, score_labels, segment
    from cellseg_core.presets import get_preset

    with chromium_page(chromium_path, (1600, 1200)) as page:
        page.goto(f"{server}/?dataset=voced&image=007&preset=lab03v2",
                  wait_until="domcontentloaded")
        page.locator(f"{OVERLAY_CHART} {PREDICTION_LAYER}").first.wait_for(timeout=SLOW)
        wait_idle(page)
        page.locator('[data-testid="stSlider"]', has_text="Nucleus below"
                     ).get_by_role("slider").focus()
        for _ in range(8):
            page.keyboard.press("ArrowRight", delay=15)
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            page.wait_for_function(
                "() => /threshold\\.t_nuc=0\\.43\\b/.test(location.search)", timeout=SLOW)
        except PlaywrightTimeout:  # say what the page shows instead
            pytest.fail(f"the URL never reached t_nuc=0.43: {page.url}; exceptions: "
                        f"{page.locator('[data-testid=stException]').all_inner_texts()}")
        page.wait_for_function(
            "() => [...document.querySelectorAll('[data-testid=\"stMarkdown\"]')]"
            ".some(e => e.innerText.includes('t_nuc = 0.430'))", timeout=SLOW)
        image = read_image(voced / "images" / "007.png")
        truth = read_mask(voced / "masks" / "007.png")
        params = get_preset("lab03v2").with_values({"threshold.t_nuc": 0.43})
        dice = f"{score_labels(segment(image, params).labels, truth)['mean_dice']:.4f}"
        page.wait_for_function(f"() => ({NUMBER_JS})('Mean Dice') === '{dice}'",
                               timeout=SLOW)
        wait_idle(page)
        assert number_value(page, "Mean Dice") == dice
        assert not page.locator('[data-testid="stException"]').count()


def test_compare_optimise_count_in_chromium(chromium_path, server, tmp_path):
    """Visit the other pages, run a comparison and a short optimisation, screenshot."""
    from playwright.sync_api import expect

    with chromium_page(chromium_path, (1600, 1400)) as page:
        page.goto(server + "/compare", wait_until="domcontentloaded")
        page.get_by_role("button", name="Run comparison").click()
        expect(page.get_by_text("Download table (CSV)")).to_be_visible(timeout=SLOW)
        wait_idle(page)
        table = page.locator('[data-testid="stDataFrame"]').first
        table.scroll_into_view_if_needed()
        page.screenshot(path=str(tmp_path / "compare.png"))
        assert not page.locator('[data-testid="stException"]').count()
        expect(page.locator('[data-testid="stSidebarNav"]')).to_contain_text("Explore")

        page.goto(server + "/optimise", wait_until="domcontentloaded")
        start_optimisation(page, 10)
        surface = page.get_by_text(
            re.compile(r"threshold pairs, \d+ images, computed exactly")).last
        expect(surface).to_be_visible(timeout=SLOW)
        wait_idle(page)
        surface.scroll_into_view_if_needed()
        page.screenshot(path=str(tmp_path / "optimise.png"))
        assert not page.locator('[data-testid="stException"]').count()

        page.goto(server + "/count", wait_until="domcontentloaded")
        expect(page.locator('[data-testid="stMetric"]', has_text="Nuclei counted")
               .locator('[data-testid="stMetricValue"]')).to_have_text("8", timeout=SLOW)
        page.screenshot(path=str(tmp_path / "count.png"))
        assert not page.locator('[data-testid="stException"]').count()
    for name in ("compare", "optimise", "count"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000


def test_lesson_step_in_chromium(chromium_path, server, tmp_path):
    """The Lessons section in the menu; the N/C lesson's next step, screenshotted."""
    from playwright.sync_api import expect

    with chromium_page(chromium_path, (1600, 1200)) as page:
        page.goto(server + "/lesson_nc_ratio", wait_until="domcontentloaded")
        expect(page.get_by_text("Step 1 of 6", exact=False).first).to_be_visible(
            timeout=SLOW)
        nav = page.locator('[data-testid="stSidebarNav"]')
        expect(nav).to_contain_text("Lessons")
        expect(nav).to_contain_text("Counting cells in fluorescence")
        wait_idle(page)
        page.get_by_role("button", name="Next →").click()
        expect(page.get_by_text("Step 2 of 6", exact=False).first).to_be_visible(
            timeout=SLOW)
        expect(page.locator('[data-testid="stMetric"]', has_text="Test mean Dice")
               ).to_be_visible(timeout=SLOW)
        wait_idle(page)
        page.screenshot(path=str(tmp_path / "lesson.png"))
        assert re.fullmatch(r"0\.\d{4}", metric_value(page, "Test mean Dice"))
        assert not page.locator('[data-testid="stException"]').count()
    assert (tmp_path / "lesson.png").stat().st_size > 10_000
