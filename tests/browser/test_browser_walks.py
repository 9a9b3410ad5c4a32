"""A new user's first hour, one Chromium walk per persona (issue 22 point 10).

- the pathologist uploads an image and reads the N/C ratio and the per-cell table;
- the teacher moves a threshold with the histogram in view: both class curves
  (cytoplasm, nucleus) must have visible height, not lie flat under the background spike;
- the team lead runs Compare, then Optimise, then "Use in Explore", and lands on the
  data set and image the optimisation was about;
- the trainer trains a model on the Train page and applies it in Explore, with its
  per-cell table.

Each step leaves a screenshot in the test's temporary folder (CI keeps them as
artefacts). Waits are on state (values shown, the URL, Streamlit's run state), never
on time. The teacher's, lead's and trainer's walks check issue 22 points 1, 4 and 2.
"""
from __future__ import annotations

import re

import pytest
from _common import (NUMBER_JS, OVERLAY_CHART, PREDICTION_LAYER, SLOW, chromium_page,
                     number_value, press_slider, start_optimisation, start_streamlit,
                     stop_streamlit, wait_idle)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

HISTOGRAM_CHART = 'div.cellseg-plot[data-chart="explore.histogram"]'

#: Per trace of the histogram: its name and its highest point inside the axes' ranges,
#: in pixels above the x axis; and the plot area's height.
CURVE_HEIGHTS_JS = """(sel) => {
  const gd = document.querySelector(sel), L = gd._fullLayout, ya = L.yaxis, xa = L.xaxis;
  const [x0, x1] = xa.range;
  const out = {plot: ya._length, curves: {}};
  for (const t of gd._fullData) {
    let top = 0;
    t.x.forEach((x, k) => {
      const y = t.y[k];
      if (x < x0 || x > x1 || !(y > 0)) return;
      const px = ya._length - ya.c2p(y);
      if (Number.isFinite(px)) top = Math.max(top, Math.min(px, ya._length));
    });
    out.curves[t.name] = top;
  }
  return out;
}"""


@pytest.fixture(scope="module")
def voced_server(voced):
    proc, url = start_streamlit({"CELLSEG_DATA": str(voced)})
    yield url
    stop_streamlit(proc)


def wait_number(page, label: str) -> str:
    """The Explore number `label` once it is shown."""
    page.wait_for_function(f"() => ({NUMBER_JS})({label!r}) !== null", timeout=SLOW)
    return number_value(page, label)


def no_exception(page) -> None:
    assert not page.locator('[data-testid="stException"]').count(), \
        page.locator('[data-testid="stException"]').all_inner_texts()


def sidebar(page):
    return page.locator('[data-testid="stSidebar"]')


def go_to(page, title: str) -> None:
    """Open a page through the menu (the session, and what it holds, is kept)."""
    wait_idle(page)
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
    wait_idle(page)


def show_section(page, name: str) -> None:
    """Pick one of Explore's sections under the numbers (segmented control)."""
    wait_idle(page)
    page.locator('[data-testid="stButtonGroup"]').get_by_text(name, exact=True).first.click()
    wait_idle(page)


def column_names(page) -> list[str]:
    """The column headers of the last table on the page (the grid's accessible table:
    the cells themselves are drawn on a canvas)."""
    return [t.strip() for t in page.locator('[data-testid="stDataFrame"]').last.locator(
        'th, [role="columnheader"]').all_text_contents()]


def per_cell_table(page) -> int:
    """Open Explore's per-cell table; the number of cells its caption states, once the
    table (columns in words) is drawn."""
    from playwright.sync_api import expect

    show_section(page, "Per-cell table")
    caption = page.get_by_text(re.compile(r"^\d+ nuclei; N/C per cell")).first
    expect(caption).to_be_visible(timeout=SLOW)
    table = page.locator('[data-testid="stDataFrame"]').last
    expect(table).to_be_visible(timeout=SLOW)
    return int(re.match(r"\d+", caption.inner_text()).group())


# --- the pathologist --------------------------------------------------------------------
def test_pathologist_uploads_and_reads_nc_and_the_cell_table(chromium_path, voced_server,
                                                             voced, tmp_path):
    from playwright.sync_api import expect

    with chromium_page(chromium_path, (1440, 1100)) as page:
        page.goto(voced_server, wait_until="domcontentloaded")
        page.locator(f"{OVERLAY_CHART} {PREDICTION_LAYER}").first.wait_for(timeout=SLOW)
        wait_idle(page)
        sidebar(page).get_by_text("Upload", exact=True).click()
        uploader = sidebar(page).locator('[data-testid="stFileUploader"]').first.locator(
            'input[type="file"]')
        uploader.set_input_files(str(voced / "images" / "042.png"))
        expect(page.get_by_text(re.compile(r"^042\.png"))).to_be_visible(timeout=SLOW)
        wait_idle(page)
        nc = wait_number(page, "N/C ratio")
        page.screenshot(path=str(tmp_path / "1_pathologist_numbers.png"), full_page=True)
        nucleus = int(number_value(page, "Nucleus (px)").replace(",", ""))
        cytoplasm = int(number_value(page, "Cytoplasm (px)").replace(",", ""))
        assert nucleus > 0 and cytoplasm > 0
        assert float(nc) == pytest.approx(nucleus / cytoplasm, abs=5e-4)  # as shown: 3 dp
        n_nuclei = int(number_value(page, "Nuclei").replace(",", ""))

        cells = per_cell_table(page)
        page.screenshot(path=str(tmp_path / "2_pathologist_cells.png"), full_page=True)
        assert cells == n_nuclei >= 1
        header = column_names(page)
        # in words, not machine names (the grid draws only the columns in view)
        assert "Nucleus area (px)" in header, header
        assert not [h for h in header if re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)+", h)], header
        no_exception(page)


# --- the teacher ------------------------------------------------------------------------
def test_teacher_moves_a_threshold_and_both_class_curves_show(chromium_path, voced_server,
                                                              tmp_path):
    from playwright.sync_api import expect

    with chromium_page(chromium_path, (1440, 1100)) as page:
        page.goto(f"{voced_server}/?dataset=voced&image=007&preset=lab02",
                  wait_until="domcontentloaded")
        page.locator(f"{OVERLAY_CHART} {PREDICTION_LAYER}").first.wait_for(timeout=SLOW)
        histogram = page.locator(HISTOGRAM_CHART)
        histogram.wait_for(timeout=SLOW)
        wait_idle(page)
        before = wait_number(page, "Mean Dice")
        press_slider(page, "Nucleus below", 4)
        expect(page).to_have_url(re.compile(r"threshold\.t_nuc="), timeout=SLOW)
        page.wait_for_function(f"(b) => ({NUMBER_JS})('Mean Dice') !== b", arg=before,
                               timeout=SLOW)
        wait_idle(page)
        histogram.scroll_into_view_if_needed()
        page.screenshot(path=str(tmp_path / "teacher_histogram.png"), full_page=True)
        heights = page.evaluate(CURVE_HEIGHTS_JS, HISTOGRAM_CHART)
        curves = heights["curves"]
        assert {"cytoplasm", "nucleus"} <= set(curves), curves
        for name in ("cytoplasm", "nucleus"):
            # visible: at least a tenth of the plot's height (and 15 px), not a flat line
            assert curves[name] >= max(15, 0.1 * heights["plot"]), (name, heights)
        # the thresholds' labels ("t_nuc = 0.410") stay inside the chart
        inside = page.evaluate("""(sel) => {
            const gd = document.querySelector(sel), box = gd.getBoundingClientRect();
            const labels = [...gd.querySelectorAll('.annotation')]
                .filter(a => /^t_[a-z]+ = /.test(a.textContent));
            return labels.length >= 2 && labels.every(a => {
                const r = a.getBoundingClientRect();
                return r.left >= box.left - 1 && r.right <= box.right + 1
                    && r.top >= box.top - 1 && r.bottom <= box.bottom + 1; }); }""",
                               HISTOGRAM_CHART)
        assert inside, "a threshold label sticks out of the histogram"
        no_exception(page)


# --- the team lead ----------------------------------------------------------------------
def test_team_lead_compares_optimises_and_lands_on_the_right_image(chromium_path,
                                                                   voced_server, tmp_path):
    from playwright.sync_api import expect

    with chromium_page(chromium_path, (1440, 1300)) as page:
        page.goto(voced_server + "/compare", wait_until="domcontentloaded")
        page.get_by_role("button", name="Run comparison").click()
        expect(page.get_by_text("Download table (CSV)")).to_be_visible(timeout=SLOW)
        wait_idle(page)
        page.screenshot(path=str(tmp_path / "1_lead_compare.png"), full_page=True)
        no_exception(page)

        # The sidebar now holds something else than the optimisation's data set.
        sidebar(page).get_by_text("Synthetic", exact=True).click()
        wait_idle(page)
        go_to(page, "Optimise")
        start_optimisation(page, 10)
        use = page.get_by_role("button", name="Use in Explore")
        expect(use).to_be_visible(timeout=SLOW)
        wait_idle(page)
        page.screenshot(path=str(tmp_path / "2_lead_optimise.png"), full_page=True)
        use.click()
        expect(page).to_have_url(re.compile(r"dataset=voced.*image=\d{3}"), timeout=SLOW)
        page.locator(f"{OVERLAY_CHART} {PREDICTION_LAYER}").first.wait_for(timeout=SLOW)
        wait_idle(page)
        image = re.search(r"image=(\d{3})", page.url).group(1)
        expect(page.get_by_text(re.compile(rf"^voced / {image}\b")).first).to_be_visible()
        assert re.fullmatch(r"0\.\d{4}", wait_number(page, "Mean Dice"))  # has ground truth
        page.screenshot(path=str(tmp_path / "3_lead_explore.png"), full_page=True)
        no_exception(page)


# --- the trainer ------------------------------------------------------------------------
def test_trainer_trains_a_model_and_applies_it_in_explore(chromium_path, voced_server,
                                                          tmp_path):
    from playwright.sync_api import expect

    with chromium_page(chromium_path, (1440, 1300)) as page:
        page.goto(voced_server + "/train", wait_until="domcontentloaded")
        expect(page.get_by_role("button", name="Train", exact=True)).to_be_visible(
            timeout=SLOW)
        wait_idle(page)
        for label, value in (("Images (first N)", "4"), ("Trees / iterations", "20")):
            box = page.get_by_role("spinbutton", name=label, exact=True)
            box.fill(value)
            box.press("Enter")
            wait_idle(page)
        name = page.get_by_role("textbox", name="Name", exact=True).first
        name.fill("walk-model")
        name.press("Enter")
        wait_idle(page)
        page.get_by_role("button", name="Train", exact=True).click()
        # the fitting phase shows its own progress, then the model is registered
        expect(page.get_by_role("button", name="Download model file")).to_be_visible(
            timeout=SLOW)
        wait_idle(page)
        expect(page.get_by_text(re.compile("registered as “walk-model”"))).to_be_visible()
        page.screenshot(path=str(tmp_path / "1_trainer_trained.png"), full_page=True)
        no_exception(page)

        go_to(page, "Explore")
        method = page.locator('[data-testid="stSelectbox"]', has_text="Method").first
        method.locator('input, [role="combobox"]').first.click()
        page.get_by_role("option", name="walk-model", exact=True).click()
        wait_idle(page)
        page.screenshot(path=str(tmp_path / "2_trainer_explore.png"), full_page=True)
        nc = wait_number(page, "N/C ratio")
        assert 0 < float(nc) < 10
        cells = per_cell_table(page)
        assert cells >= 1
        page.screenshot(path=str(tmp_path / "3_trainer_cells.png"), full_page=True)
        no_exception(page)
