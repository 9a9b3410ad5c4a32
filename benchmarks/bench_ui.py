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

The Count page (``--count-sizes``; issue 22 point 5) on synthetic fluorescence
images of a second temporary dataset: from a keyboard step on its "Object above"
slider to the first new image drawn, and to the page settled (the last change of the
page before 1.5 s without any, and no script running).

    python benchmarks/bench_ui.py [--repeats 12] [--sizes 256 2048] [--count-sizes 256 1024]

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


def make_fluorescence_dataset(root: Path, sizes) -> str:
    """A dataset folder of synthetic fluorescence images ``f<size>`` with instance
    labels (no masks: the app reads it as fluorescence): tiles of one 128² seed-like
    image (its cells drawn one full image each: a single large image would need GBs)."""
    from cellseg_core.data import synthetic

    folder = root / "bench-count"
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    tile = synthetic.fluorescence_image(1, size=128)
    n = int(tile.labels.max())
    for size in sizes:
        reps = max(size // 128, 1)
        image = np.tile(tile.image, (reps, reps))
        offsets = (np.arange(reps * reps).reshape(reps, reps) * n).repeat(128, 0).repeat(128, 1)
        labels = np.where(np.tile(tile.labels, (reps, reps)) > 0,
                          np.tile(tile.labels, (reps, reps)) + offsets, 0)
        gray = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
        Image.fromarray(gray).save(folder / "images" / f"f{size}.png")
        Image.fromarray(labels.astype(np.uint16)).save(folder / "labels" / f"f{size}.png")
    return folder.name


# Count: the first image of the page that changes, and the last change of the page.
_SETTLE = """() => {
  const main = document.querySelector('[data-testid="stMain"]');
  const images = () => Array.from(main.querySelectorAll('image, img'))
      .map(e => e.getAttribute('href') || e.getAttribute('src')).join('|');
  const before = images();
  window.__t0 = null; window.__first = null; window.__last = 0;
  document.addEventListener('keydown', () => { if (window.__t0 === null)
      window.__t0 = performance.now(); }, {capture: true, once: true});
  if (window.__obs) window.__obs.disconnect();
  window.__obs = new MutationObserver(() => { if (window.__t0 !== null)
      window.__last = performance.now() - window.__t0; });
  window.__obs.observe(main, {subtree: true, childList: true, attributes: true,
                              characterData: true});
  const tick = () => {
    if (window.__t0 !== null && images() !== before)
      window.__first = performance.now() - window.__t0;
    if (window.__first === null) requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}"""
_SETTLED = """() => window.__first !== null && window.__cellsegRuns.read().state === 'notRunning'
    && performance.now() - window.__t0 - window.__last > 1500"""


def measure_count(page, url: str, dataset: str, size: int, repeats: int) -> list[list[float]]:
    """Per step on the Count page: ms to the first new image, ms to the page settled."""
    page.goto(f"{url}/count?dataset={dataset}&image=f{size}", wait_until="domcontentloaded")
    page.get_by_text("Nuclei counted").first.wait_for(timeout=180_000)
    wait_idle(page, 120_000, quiet=1500)
    thumb = page.locator('[data-testid="stSlider"]', has_text="Object above"
                         ).get_by_role("slider")
    times = []
    for i in range(repeats + 1):  # the first step warms up; not counted
        time.sleep(0.3)
        page.evaluate(_SETTLE)
        thumb.press("ArrowRight" if i % 2 == 0 else "ArrowLeft")
        page.wait_for_function(_SETTLED, timeout=120_000, polling=100)
        first, last = page.evaluate("() => [window.__first, window.__last]")
        if i:
            times.append([first, max(first, last)])
    return times


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
    parser.add_argument("--count-sizes", type=int, nargs="*", default=[256, 1024],
                        help="image sides of the Count page's run (none: skip it)")
    parser.add_argument("--no-explore", action="store_true", help="only the Count page")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the bare page (slider + threshold + st.image) that "
                             "shows what the machine does at best right now")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        dataset = make_dataset(Path(tmp), args.sizes)
        count_set = make_fluorescence_dataset(Path(tmp), args.count_sizes)
        rows, count_rows = [], []
        bare = Path(tmp) / "bare_page.py"
        bare.write_text(_BARE_PAGE)
        runs = [] if args.no_explore else [("Explore page", "app.py", False)]
        if not args.no_baseline and not args.no_explore:
            runs.append(("bare page", str(bare), True))
        with chromium_page(CHROMIUM, (1600, 1200)) as page:
            if args.count_sizes:
                proc, url = start_streamlit({"CELLSEG_DATA": tmp}, timeout=120)
                try:
                    for size in args.count_sizes:
                        count_rows.append((size, measure_count(page, url, count_set, size,
                                                               args.repeats)))
                finally:
                    stop_streamlit(proc)
            for label, script, is_bare in runs:
                proc, url = start_streamlit({"CELLSEG_DATA": tmp}, script=script,
                                            timeout=120)
                try:
                    for size in args.sizes:
                        rows.append((label, size, measure(page, url, dataset, size,
                                                          args.repeats, bare=is_bare)))
                finally:
                    stop_streamlit(proc)
    load = f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    if count_rows:
        print(f"\nCount page: keyboard step on 'Object above' -> first new image, page "
              f"settled ({load})")
        print(f"{'image':>11} {'n':>3} {'first median ms':>16} {'settled median ms':>18} "
              f"{'settled p90 ms':>15}")
        for size, samples in count_rows:
            first = [s[0] for s in samples]
            settled = [s[1] for s in samples]
            print(f"{f'{size}x{size}':>11} {len(samples):>3} {statistics.median(first):>16.0f} "
                  f"{statistics.median(settled):>18.0f} "
                  f"{float(np.percentile(settled, 90)):>15.0f}")
    if not rows:
        return 0
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
