"""Slider → overlay latency of the Explore page in a real browser.

Starts ``streamlit run app.py`` on a free port with a temporary dataset of two
synthetic cytology images (256² and 2048², with masks), opens the Explore page on
each with preset ``lab03v2`` (overlay, histogram and numbers all live), and times
from a keyboard step on the ``t_nuc`` slider (keydown in the page) to the first
animation frame in which the prediction overlay's image has changed, and to the one
in which the numbers shown have changed (the numbers, histogram and section follow the
overlay in a second fragment run). Every step gives new parameters (no result-cache
hits; the cached channel is reused, as in use). Prints a table of median / p90 / min
per size against the goals (≤ 150 ms at 256², ≤ 400 ms at 2048²).

    python benchmarks/bench_ui.py [--repeats 12] [--sizes 256 2048]

Needs Chromium (``/usr/bin/chromium`` or ``CELLSEG_CHROMIUM``) and Playwright.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from _common import (CHROMIUM, OVERLAY_CHART, PREDICTION_LAYER,
                     chromium_page, start_streamlit, stop_streamlit, wait_idle)

GOALS_MS = {256: 150, 2048: 400}

# What is watched: the prediction layer of the overlay and the numbers shown
# (Explore page), or the st.image (bare page).
_OVERLAY_JS = """() => {
    const layer = document.querySelector('%s %s');
    return layer ? layer.getAttribute('href') : null;
  }""" % (OVERLAY_CHART, PREDICTION_LAYER)
_NUMBERS_JS = """() => Array.from(document.querySelectorAll('[data-testid="stMarkdown"] table'))
    .map(e => e.innerText).join('|')"""
_BARE_JS = """() => {
    const img = document.querySelector('[data-testid="stImage"] img');
    return img ? img.getAttribute('src') : null;
  }"""
# window.__done[i]: time of the first animation frame after the keydown in which
# probe i shows something else than before it.
_WATCH = """(probes) => {
  const watched = probes.map(p => eval(p));
  const before = watched.map(f => f());
  window.__t0 = null; window.__done = watched.map(() => null);
  document.addEventListener('keydown', () => { if (window.__t0 === null)
      window.__t0 = performance.now(); }, {capture: true, once: true});
  const tick = () => {
    if (window.__t0 !== null) watched.forEach((f, i) => {
      if (window.__done[i] === null && f() !== before[i])
        window.__done[i] = performance.now() - window.__t0; });
    if (window.__done.some(t => t === null)) requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}"""


def make_dataset(root: Path, sizes) -> str:
    """A dataset folder of synthetic cytology images named ``s<size>``."""
    from cellseg_core.data import synthetic

    folder = root / "bench-ui"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    for size in sizes:
        sample = synthetic.cytology_image(1, size=size)
        rgb = (np.clip(sample.image, 0, 1) * 255 + 0.5).astype(np.uint8)
        Image.fromarray(rgb).save(folder / "images" / f"s{size}.png")
        Image.fromarray(sample.mask).save(folder / "masks" / f"s{size}.png")
    return folder.name


_BARE_PAGE = """
import os
import numpy as np
import streamlit as st
from PIL import Image

size = st.query_params.get("size", "256")
gray = np.asarray(Image.open(os.path.join(os.environ["CELLSEG_DATA"], "bench-ui", "images",
                                          f"s{size}.png")).convert("L"), np.float32) / 255
t = st.slider("Nucleus below", 0.0, 1.0, 0.39, 0.005)
st.image(((gray < t) * 255).astype(np.uint8))
"""


def measure(page, url: str, dataset: str, size: int, repeats: int,
            bare: bool = False) -> list[list[float]]:
    """Per step: ms to the new overlay (or image) and, on the Explore page, to the
    new numbers."""
    if bare:
        page.goto(f"{url}/?size={size}", wait_until="domcontentloaded")
        page.locator('[data-testid="stImage"]').first.wait_for(timeout=180_000)
    else:
        page.goto(f"{url}/?dataset={dataset}&image=s{size}&preset=lab03v2",
                  wait_until="domcontentloaded")
        page.get_by_text("Mean Dice").first.wait_for(timeout=180_000)
        page.locator(f"{OVERLAY_CHART} {PREDICTION_LAYER}").first.wait_for(timeout=60_000)
    wait_idle(page, 120_000)
    thumb = page.locator('[data-testid="stSlider"]', has_text="Nucleus below"
                         ).get_by_role("slider")
    probes = [_BARE_JS] if bare else [_OVERLAY_JS, _NUMBERS_JS]
    times = []
    for i in range(repeats + 1):  # the first step warms up; not counted
        time.sleep(0.3)
        page.evaluate(_WATCH, probes)
        thumb.press("ArrowRight")
        page.wait_for_function("() => window.__done.every(t => t !== null)",
                               timeout=120_000)
        done = page.evaluate("() => window.__done")
        wait_idle(page, 120_000)
        if i:
            times.append(done)
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=12)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 2048])
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the bare page (slider + threshold + st.image) that "
                             "shows what the machine does at best right now")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        dataset = make_dataset(Path(tmp), args.sizes)
        rows = []
        bare = Path(tmp) / "bare_page.py"
        bare.write_text(_BARE_PAGE)
        runs = [("Explore page", "app.py", False)]
        if not args.no_baseline:
            runs.append(("bare page", str(bare), True))
        with chromium_page(CHROMIUM, (1600, 1200)) as page:
            for label, script, is_bare in runs:
                proc, url = start_streamlit({"CELLSEG_DATA": tmp}, script=script,
                                            timeout=120)
                try:
                    for size in args.sizes:
                        rows.append((label, size, measure(page, url, dataset, size,
                                                          args.repeats, bare=is_bare)))
                finally:
                    stop_streamlit(proc)
    print(f"\nExplore page, preset lab03v2: keyboard step on t_nuc -> new overlay drawn "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    print(f"{'page':<13} {'image':>11} {'n':>3} {'median ms':>10} {'p90 ms':>8} "
          f"{'min ms':>8} {'goal ms':>8}  ok  {'numbers: median ms':>19}")
    for label, size, samples in rows:
        times = [s[0] for s in samples]
        med = statistics.median(times)
        p90 = float(np.percentile(times, 90))
        goal = GOALS_MS.get(size) if label == "Explore page" else None
        ok = "  " if goal is None else ("yes" if med <= goal else "NO ")
        numbers = (f"{statistics.median(s[1] for s in samples):>19.0f}"
                   if len(samples[0]) > 1 else f"{'-':>19}")
        print(f"{label:<13} {f'{size}x{size}':>11} {len(times):>3} {med:>10.0f} "
              f"{p90:>8.0f} {min(times):>8.0f} {goal or '-':>8}  {ok} {numbers}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
