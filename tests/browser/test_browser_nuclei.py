"""Issue 18's nucleus sections in a real browser (Playwright drives Debian's Chromium
against ``streamlit run app.py``):

- Train, "Nucleus model": the augmentation preview grid, a tiny fine-tuning (3 demo
  images, 1 epoch of 1 step) with its progress bar and live curves, the model
  registered (and offered in Compare's nucleus section);
- Compare, "Nuclei": the built-in model, the textbook Otsu baseline and the automatic
  presets on the first test images of dsb2018_histo (``../shared/data``), the table's
  F1 equal to :func:`cellseg_core.evaluation.compare_nuclei` on the same images, and
  the gallery (one tile per image and method).

Skipped with a reason when Chromium, PyTorch (training) or the data set is missing (a
failure under CI, as in the other browser tests). Waits are on state, never on time.
"""
from __future__ import annotations

import re

import pytest
from _common import SLOW, chromium_page, start_streamlit, stop_streamlit, wait_idle

from cellseg_core.learn import torch_available
from tests._support.data import shared_set

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: Points per trace of the Train page's loss / validation-F1 chart, once drawn (else null).
CURVE_POINTS_JS = """(() => {
  const gd = document.querySelector('div.cellseg-plot[data-chart="train.nuclei.curves"]');
  if (!gd || !gd._fullData) return null;
  return Object.fromEntries(gd._fullData.map(t => [t.name, t.x.length]));
})()"""

#: True once there are `n` preview crops (captions "crop K") and every picture is loaded.
CROPS_LOADED_JS = r"""(n) => {
  const imgs = [...document.querySelectorAll('[data-testid="stImageContainer"]')]
    .filter(c => /^crop \d+$/.test(c.innerText.trim())).map(c => c.querySelector('img'));
  return imgs.length === n && imgs.every(i => i && i.complete && i.naturalWidth > 0);
}"""


def no_exception(page) -> None:
    assert not page.locator('[data-testid="stException"]').count(), \
        page.locator('[data-testid="stException"]').all_inner_texts()


def set_number(page, label: str, value: int) -> None:
    """Type `value` into the number input labelled exactly `label`, as a user does.

    A run the browser starts by itself (the Train page's strokes chart reports when it
    is drawn) may redraw the form while the value is typed: then it is typed again.
    """
    from playwright.sync_api import expect

    box = page.locator('[data-testid="stNumberInput"]').filter(
        has=page.get_by_text(label, exact=True))
    expect(box).to_have_count(1)
    field = box.locator("input")
    for _ in range(3):
        field.fill(str(value))
        field.press("Enter")
        wait_idle(page)
        if field.input_value() == str(value):
            return
    assert field.input_value() == str(value), label


def grid_cells(table) -> list[str]:
    """The texts of a dataframe's cells, row by row (the grid's accessible table: the
    cells themselves are drawn on a canvas)."""
    return [t.strip() for t in table.locator('[role="gridcell"]').all_text_contents()]


def grid_headers(table) -> list[str]:
    return [t.strip() for t in table.locator('th, [role="columnheader"]').all_text_contents()]


@pytest.fixture
def demo_server():
    proc, url = start_streamlit({"CELLSEG_DATA": "", "CELLSEG_CONFIG": ""})
    yield url
    stop_streamlit(proc)


@pytest.mark.skipif(not torch_available(), reason="PyTorch (the deep extra) is not installed")
def test_train_page_nucleus_model_preview_progress_curves_and_registration(
        chromium_path, demo_server, tmp_path):
    from playwright.sync_api import expect

    from app_support import nuclei_train

    with chromium_page(chromium_path, (1400, 1300)) as page:
        page.goto(f"{demo_server}/train", wait_until="domcontentloaded")
        section = page.get_by_text("Nucleus model: fine-tune the built-in U-Net")
        expect(section).to_be_visible(timeout=SLOW)
        wait_idle(page)
        # The fewest the form allows: 2 images (one held out for validation), 1 epoch of
        # 1 step, 1 test image to score.
        set_number(page, "Training images (first N)", 2)
        set_number(page, "Epochs (at most)", 1)
        set_number(page, "Steps per epoch", 1)
        set_number(page, "Test images to score", 1)

        page.get_by_role("button", name="Preview augmentation").click()
        crops = page.locator('[data-testid="stImageContainer"]').filter(
            has_text=re.compile(r"^crop \d+$"))
        expect(crops).to_have_count(nuclei_train.PREVIEW_CROPS, timeout=SLOW)
        page.wait_for_function(CROPS_LOADED_JS, arg=nuclei_train.PREVIEW_CROPS, timeout=SLOW)
        sizes = crops.locator("img").evaluate_all(
            "imgs => imgs.map(i => [i.naturalWidth, i.naturalHeight])")
        assert len(set(map(tuple, sizes))) == 1 and sizes[0][0] >= 64, sizes  # equal crops
        wait_idle(page)
        crops.last.scroll_into_view_if_needed()
        page.screenshot(path=str(tmp_path / "train_nuclei_preview.png"))

        page.get_by_role("button", name="Train nucleus model").click()
        # While it runs: the progress bar and Stop; then the curves of the two epochs.
        expect(page.locator('[data-testid="stProgress"]')).to_be_visible(timeout=SLOW)
        expect(page.get_by_role("button", name="Stop (keep the best so far)")).to_be_visible()
        done = page.get_by_text(re.compile(r"^Trained “nuclei \(fine-tuned\)” on 1 image"))
        expect(done).to_be_visible(timeout=SLOW)
        wait_idle(page)
        assert "Registered for Explore, Compare, Count and Batch" in done.inner_text()
        assert "(1 held out)" in done.inner_text() and "after 1 epoch(s)" in done.inner_text()
        epochs = 1
        # The curves (live_plot's chart): loss and validation F1, one point per epoch.
        page.wait_for_function(CURVE_POINTS_JS + " !== null", timeout=SLOW)
        assert page.evaluate(CURVE_POINTS_JS) == {"training loss": epochs,
                                                  "validation F1@0.5": epochs,
                                                  "best (kept)": 1}
        expect(page.locator('[data-testid="stProgress"]')).to_have_count(0)
        # The test-split table: the new model beside the built-in one.
        table = page.locator('[data-testid="stDataFrame"]').last
        expect(table).to_be_visible()
        assert "F1@0.5" in grid_headers(table)
        cells = grid_cells(table)
        assert "nuclei (fine-tuned)" in cells and "nuclei (built-in model)" in cells, cells
        expect(page.get_by_role("button", name="Download model (.onnx)")).to_be_visible()
        table.scroll_into_view_if_needed()
        page.screenshot(path=str(tmp_path / "train_nuclei_done.png"))
        no_exception(page)

        # Registered: Compare's nucleus section offers it (same session, through the menu).
        page.locator('[data-testid="stSidebarNav"]').get_by_text("Compare", exact=True).click()
        picker = page.locator('[data-testid="stMultiSelect"]').filter(
            has=page.get_by_text("Methods", exact=True)).last
        expect(picker).to_contain_text("nuclei (fine-tuned)", timeout=SLOW)
        no_exception(page)


@pytest.fixture
def histo_server():
    folder = shared_set("dsb2018_histo")
    proc, url = start_streamlit({"CELLSEG_DATA": str(folder), "CELLSEG_CONFIG": ""})
    yield url, folder
    stop_streamlit(proc)


def test_compare_nuclei_section_table_matches_the_core_and_shows_the_gallery(
        chromium_path, histo_server, tmp_path):
    from playwright.sync_api import expect

    from cellseg_core.data import open_dataset
    from cellseg_core.evaluation import compare_nuclei
    from cellseg_core.methods import OTSU_BASELINE, nucleus_methods

    url, folder = histo_server
    n_images, n_gallery = 3, 2
    with chromium_page(chromium_path, (1400, 1300)) as page:
        page.goto(f"{url}/compare", wait_until="domcontentloaded")
        heading = page.get_by_text("Nuclei: U-Net vs Otsu vs the automatic presets")
        expect(heading).to_be_visible(timeout=SLOW)
        wait_idle(page)
        heading.scroll_into_view_if_needed()
        picker = page.locator('[data-testid="stMultiSelect"]').filter(
            has=page.get_by_text("Methods", exact=True)).last
        for name in ("nuclei (built-in model)", OTSU_BASELINE, "auto-nuclei",
                     "auto-fluorescence"):
            expect(picker).to_contain_text(name)
        set_number(page, "Images (first N)", n_images)
        set_number(page, "Gallery images", n_gallery)
        page.get_by_role("button", name="Compare on nuclei").click()

        summary = page.locator('[data-testid="stMarkdownContainer"]').filter(
            has_text=re.compile(r"^dsb2018_histo · test split · "))
        expect(summary).to_have_text(
            f"dsb2018_histo · test split · {n_images} image(s), {n_images} with ground truth",
            timeout=SLOW)
        wait_idle(page)
        table = page.locator('[data-testid="stDataFrame"]').filter(
            has=page.get_by_text("F1@0.5")).last
        expect(table).to_be_visible()
        headers = grid_headers(table)
        cells = grid_cells(table)
        width = len(headers) if len(cells) % len(headers) == 0 else len(headers) - 1
        rows = {row[0]: row for row in (cells[k:k + width] for k in range(0, len(cells), width))}
        f1_col = headers.index("F1@0.5") - (len(headers) - width)
        shown = {name: float(row[f1_col]) for name, row in rows.items()}
        assert set(shown) == {"nuclei (built-in model)", OTSU_BASELINE, "auto-nuclei",
                              "auto-fluorescence"}, rows

        # The same numbers as the core on the same images (3 decimals shown).
        ds = open_dataset(folder)
        ids = list(ds.split["test"])[:n_images]
        core = nucleus_methods()
        core["nuclei (built-in model)"] = core.pop("builtin:nuclei")
        expected = compare_nuclei(ds, ids, core).summary.set_index("method")["F1@0.5"]
        for name, value in shown.items():
            assert value == pytest.approx(expected[name], abs=5e-4), name
        # The baseline now finds the dark nuclei of stained tissue; auto-fluorescence,
        # looking for bright ones, does not.
        assert shown[OTSU_BASELINE] > 0.3 and shown["auto-fluorescence"] < 0.05

        tiles = page.locator('[data-testid="stImageContainer"]').filter(has_text=" · F1 ")
        expect(tiles).to_have_count(n_gallery * len(shown))
        captions = tiles.all_inner_texts()
        for name in shown:
            assert sum(f"· {name}:" in c for c in captions) == n_gallery, (name, captions)
        table.scroll_into_view_if_needed()
        page.screenshot(path=str(tmp_path / "compare_nuclei.png"))
        no_exception(page)
