"""Painting strokes on the Train page in a real browser: Playwright drives Debian's
Chromium against ``streamlit run app.py``; a lasso around a nucleus and a box over the
background (plotly's own select tools, with the mouse) label pixels, and the page shows
the painted pixel counts, the prediction and the uncertainty map.

Skipped with a reason only when no Chromium exists and ``CI`` is not set; under CI a
missing browser is a failure (as in ``test_browser.py``; the server helpers are in ``benchmarks/_common.py``).
"""
from __future__ import annotations

import re

import numpy as np
import pytest
from scipy import ndimage as ndi

pytestmark = [pytest.mark.browser, pytest.mark.slow]

from _common import chromium_page, start_streamlit, stop_streamlit, wait_idle  # noqa: E402

from cellseg_core.data import demo_datasets  # noqa: E402

#: The Train page's grid: one selectable marker per STEP x STEP block (256² image).
STEP = 4
CLASS_NAMES = ("background", "cytoplasm", "nucleus")


@pytest.fixture
def chromium(chromium_path):
    return chromium_path  # skips without Chromium, fails in CI


@pytest.fixture
def demo_server():
    proc, url = start_streamlit({"CELLSEG_DATA": "", "CELLSEG_CONFIG": ""})
    yield url
    stop_streamlit(proc)


def inner_block(mask: np.ndarray, cls: int, half: int) -> tuple[int, int, int, int]:
    """A square (r0, c0, r1, c1) of class `cls`, its edges on the STEP grid, `2 * half`
    blocks wide, around the pixel of `cls` farthest from the other classes."""
    depth = ndi.distance_transform_edt(np.pad(mask == cls, 1))[1:-1, 1:-1]
    r, c = np.unravel_index(np.argmax(depth), mask.shape)
    assert depth[r, c] > (half + 1) * STEP * 1.5, f"class {cls} has no room for the box"
    r0, c0 = (r // STEP - half) * STEP, (c // STEP - half) * STEP
    r1, c1 = r0 + 2 * half * STEP, c0 + 2 * half * STEP
    assert np.all(mask[r0:r1, c0:c1] == cls)
    return r0, c0, r1, c1


def painted_pixels(box, shape) -> int:
    """Pixels the page paints for a selection of exactly the grid markers in `box`."""
    r0, c0, r1, c1 = box
    centres_r = np.arange(STEP // 2, shape[0], STEP)
    centres_c = np.arange(STEP // 2, shape[1], STEP)
    n = ((centres_r > r0) & (centres_r < r1)).sum() * ((centres_c > c0) & (centres_c < c1)).sum()
    return int(n) * STEP * STEP


def to_screen(page, x: float, y: float) -> tuple[float, float]:
    """Page coordinates of data point (x = column, y = row) of the strokes figure."""
    return page.evaluate(
        """([x, y]) => {
            const gd = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
            const L = gd._fullLayout, box = gd.getBoundingClientRect();
            return [box.x + L._size.l + L.xaxis.l2p(x), box.y + L._size.t + L.yaxis.l2p(y)];
        }""", [float(x), float(y)])


def drag(page, corners) -> None:
    """Press at the first corner, move through the others (in small steps), release."""
    page.mouse.move(*corners[0])
    page.mouse.down()
    for point in corners[1:]:
        page.mouse.move(*point, steps=5)
    page.mouse.up()


def shown_rgb(page, shape) -> np.ndarray:
    """The strokes figure's image as drawn by plotly (M, N, 3) uint8 (painted pixels are
    tinted with their class colour)."""
    flat = page.evaluate(
        """() => {
            const gd = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
            return gd._fullData[0].z.flatMap(row => row.flatMap(px => Array.from(px)));
        }""")
    return np.asarray(flat, np.uint8).reshape(*shape, 3)


def tinted(page, base: np.ndarray, want: int, timeout: float = 15.0) -> np.ndarray:
    """Pixels whose colour differs from the plain image, once there are `want` of them."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        mask = np.any(shown_rgb(page, base.shape[:2]) != base, axis=-1)
        if mask.sum() == want or time.monotonic() > deadline:
            return mask
        time.sleep(0.3)


def painted_text(page) -> dict:
    """The page's 'Painted pixels: background N, cytoplasm N, nucleus N' as numbers."""
    text = page.get_by_text("Painted pixels:").inner_text()
    return {name: int(re.search(rf"{name} ([\d,]+)", text).group(1).replace(",", ""))
            for name in CLASS_NAMES}


def choose_class(page, name: str) -> None:
    page.locator('[data-testid="stRadio"]', has_text="Class to paint").get_by_text(
        name, exact=True).click()
    wait_idle(page)


def test_paint_strokes_in_chromium(chromium, demo_server, tmp_path):
    from playwright.sync_api import expect

    ds = demo_datasets()["demo-cytology"]
    image_id = ds.ids[0]
    mask = ds.mask(image_id)
    from app_support.figures import to_rgb8

    base = to_rgb8(ds.image(image_id))  # what the page draws (a 256² image: no subsampling)
    nucleus = inner_block(mask, 2, 2)
    background = inner_block(mask, 0, 3)
    with chromium_page(chromium, (1400, 1300)) as page:
        page.goto(f"{demo_server}/train?dataset=demo-cytology&image={image_id}",
                  wait_until="domcontentloaded")
        expect(page.get_by_text("Paint at least two classes")).to_be_visible(
            timeout=60_000)
        canvas = page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot').first
        canvas.wait_for(timeout=30_000)
        wait_idle(page)
        assert painted_text(page) == {"background": 0, "cytoplasm": 0, "nucleus": 0}

        # Nucleus (the default class): a lasso around a square inside the nucleus.
        canvas.scroll_into_view_if_needed()
        r0, c0, r1, c1 = nucleus
        drag(page, [to_screen(page, x, y) for x, y in
                    ((c0, r0), (c1, r0), (c1, r1), (c0, r1), (c0, r0 + 1))])
        n_nucleus = painted_pixels(nucleus, mask.shape)
        expect(page.get_by_text("Painted pixels:")).to_contain_text(
            f"nucleus {n_nucleus:,}", timeout=30_000)
        wait_idle(page)
        expect(page.get_by_text("Paint at least two classes")).to_be_visible()
        # The painted pixels are exactly the selected blocks (drawn tinted).
        expected = np.zeros(mask.shape, bool)
        expected[r0:r1, c0:c1] = True
        np.testing.assert_array_equal(tinted(page, base, n_nucleus), expected)

        # Background: the box-select tool of the plot's toolbar.
        choose_class(page, "background")
        canvas.scroll_into_view_if_needed()
        canvas.hover()
        canvas.locator('[data-title="Box Select"]').click()
        r0, c0, r1, c1 = background
        drag(page, [to_screen(page, c0, r0), to_screen(page, c1, r1)])
        n_background = painted_pixels(background, mask.shape)
        expect(page.get_by_text("Painted pixels:")).to_contain_text(
            f"background {n_background:,}", timeout=30_000)
        assert painted_text(page) == {"background": n_background, "cytoplasm": 0,
                                      "nucleus": n_nucleus}
        expected[r0:r1, c0:c1] = True
        np.testing.assert_array_equal(tinted(page, base, n_nucleus + n_background),
                                      expected)

        # Two classes: the prediction and the uncertainty map appear.
        prediction = page.locator('[data-testid="stImage"]',
                                  has_text="Prediction from the strokes")
        expect(prediction).to_be_visible(timeout=60_000)
        uncertainty = page.locator('[data-testid="stImage"]', has_text="Uncertainty")
        expect(uncertainty).to_be_visible()
        wait_idle(page)
        mean = float(re.search(r"mean (\d\.\d{3})", uncertainty.inner_text()).group(1))
        assert 0.0 <= mean <= 0.5  # two classes: 1 - max probability <= 1/2
        assert prediction.locator("img").evaluate("i => i.naturalWidth") == mask.shape[1]
        page.screenshot(path=str(tmp_path / "train_strokes.png"), full_page=True)
        assert not page.locator('[data-testid="stException"]').count()

        # Clear strokes: back to nothing painted, no prediction.
        page.get_by_role("button", name="Clear strokes").click()
        expect(page.get_by_text("Paint at least two classes")).to_be_visible(
            timeout=30_000)
        assert painted_text(page) == {"background": 0, "cytoplasm": 0, "nucleus": 0}
    assert (tmp_path / "train_strokes.png").stat().st_size > 10_000
