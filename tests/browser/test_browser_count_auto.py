"""Issue 17 point 6 in a real browser: the Count page's Method box offers auto-nuclei,
which counts a stained (DSB histology) image as the core does and says what it read
off the image."""
from __future__ import annotations

import re

import pytest
from _common import SLOW, chromium_page, choose, start_streamlit, stop_streamlit, wait_idle

from cellseg_core import segment
from cellseg_core.autoseg import describe
from cellseg_core.data.catalog import available_datasets
from cellseg_core.presets import get_preset
from tests._support.data import shared_set

pytestmark = [pytest.mark.browser, pytest.mark.slow]
HISTO = "dsb2018_histo"


@pytest.fixture
def histo_server():
    folder = shared_set(HISTO)
    proc, url = start_streamlit({"CELLSEG_DATA": str(folder)})
    yield url, folder
    stop_streamlit(proc)


def test_count_with_auto_nuclei_in_chromium(chromium_path, histo_server, monkeypatch,
                                           tmp_path):
    from playwright.sync_api import expect

    url, folder = histo_server
    monkeypatch.setenv("CELLSEG_DATA", str(folder))
    ds = available_datasets()[HISTO]
    image_id = ds.split["train"][0]  # a training image, opened by a link
    core = segment(ds.image(image_id), get_preset("auto-nuclei"))
    with chromium_page(chromium_path, (1600, 1400)) as page:
        page.goto(f"{url}/count?dataset={HISTO}&image={image_id}",
                  wait_until="domcontentloaded")
        count = page.locator('[data-testid="stMetric"]', has_text="Nuclei counted").locator(
            '[data-testid="stMetricValue"]')
        expect(count).to_be_visible(timeout=SLOW)
        expect(page.locator('[data-testid="stSidebar"]')).to_contain_text(
            "this one is in the train split")
        choose(page, "Method", "auto-nuclei")
        # The overlay's line: what the automatic method read off the image.
        expect(page.get_by_text(re.compile(r"auto-nuclei · automatic: stained \(\d\.\d\d\) "
                                           r"· nuclei ≈ \d+ px across \(estimated, best of 5 sizes "
                                           r"tried\)"))
               ).to_be_visible()
        expect(count).to_have_text(str(int(core.nuclei.max())))
        assert describe(core.auto).startswith("stained")
        # The diameter overridden: the count the core gives for it (the overlay's
        # fragment reruns, then the numbers once the browser has drawn it).
        given = float(round(2 * core.auto["diameter"]))
        bigger = segment(ds.image(image_id),
                         get_preset("auto-nuclei").with_values({"auto.diameter": given}))
        assert bigger.nuclei.max() != core.nuclei.max()
        wait_idle(page)
        box = page.locator('[data-testid="stNumberInput"]', has_text="Nuclei ≈").locator(
            "input")
        box.fill(f"{given:.0f}")
        box.press("Enter")
        expect(page.get_by_text(re.compile(r"auto-nuclei · automatic: stained .* · nuclei ≈ "
                                           rf"{given:.0f} px across \(given\)"))
               ).to_be_visible()
        expect(count).to_have_text(str(int(bigger.nuclei.max())))
        wait_idle(page)
        page.screenshot(path=str(tmp_path / "count_auto.png"), full_page=True)
        assert not page.locator('[data-testid="stException"]').count()
    assert (tmp_path / "count_auto.png").stat().st_size > 10_000
