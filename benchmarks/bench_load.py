"""Load: N concurrent browser sessions on one server, slider-update latency and memory.

Starts ``streamlit run app.py`` on 127.0.0.1 (as ``tests/test_browser.py`` does, with
``CELLSEG_DATA`` = the VocEd folder), then with one headless Chromium (Playwright,
one browser context per session):

1. one session alone: open the app on a VocEd image, move the "Nucleus below" slider
   ``--moves`` times (keyboard, one step each), timing each update (key press until
   the URL carries the new value and no script runs);
2. ``--sessions`` sessions at once, each on its own image, doing the same.

Prints p50/p95 update latency of both, the ratio, errors, and the server's RSS
(psutil) before the concurrent phase and after its reruns. Goals (issue 9): no error,
p95 <= 2x single-session, RSS growth <= 100 MB. The server is always killed at the end.

    python benchmarks/bench_load.py                 # 20 sessions x 10 moves = 200 reruns
    python benchmarks/bench_load.py --sessions 3 --moves 4   # a quick check
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from test_browser import CHROMIUM, CHROMIUM_ARGS, start_streamlit, stop_streamlit  # noqa: E402

IDLE = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
CHANGED = ("(prev) => location.href !== prev && "
           "!document.querySelector('[data-testid=\"stStatusWidget\"]')")


def _rss_mb(pid: int) -> float:
    import psutil

    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20


def _pct(values, q):
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


async def _session(browser, url: str, image: str, moves: int, timeout_ms: float):
    """Open the app on `image`, move the slider `moves` times; return latencies (s)."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    try:
        await page.goto(f"{url}/?dataset=voced&image={image}", wait_until="domcontentloaded",
                        timeout=timeout_ms)
        await page.get_by_text("Mean Dice").first.wait_for(timeout=timeout_ms)
        await page.wait_for_function(IDLE, timeout=timeout_ms)
        thumb = page.locator('[data-testid="stSlider"]', has_text="Nucleus below") \
            .get_by_role("slider")
        await thumb.focus()
        latencies = []
        for i in range(moves):
            prev = page.url
            start = time.perf_counter()
            await thumb.press("ArrowRight")
            await page.wait_for_function(CHANGED, arg=prev, timeout=timeout_ms)
            latencies.append(time.perf_counter() - start)
        if await page.locator('[data-testid="stException"]').count():
            raise RuntimeError(f"image {image}: an exception is shown")
        return latencies
    finally:
        await context.close()


async def _phase(url, images, moves, timeout_ms):
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            results = await asyncio.gather(
                *[_session(browser, url, image, moves, timeout_ms) for image in images],
                return_exceptions=True)
        finally:
            await browser.close()
    latencies = [x for r in results if not isinstance(r, BaseException) for x in r]
    errors = [f"{type(r).__name__}: {str(r).splitlines()[0][:160]}" for r in results
              if isinstance(r, BaseException)]
    return latencies, errors


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--moves", type=int, default=10)
    parser.add_argument("--data", default=os.environ.get(
        "CELLSEG_VOCED", str(REPO.parent / "shared" / "data" / "voced")))
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds allowed for one page action (default 120)")
    args = parser.parse_args(argv)
    if not (Path(args.data) / "images").is_dir():
        print(f"no VocEd data at {args.data} (set CELLSEG_VOCED)", file=sys.stderr)
        return 2
    ids = sorted(p.stem for p in (Path(args.data) / "images").glob("*.png"))
    timeout_ms = args.timeout * 1000
    proc, url = start_streamlit({"CELLSEG_DATA": args.data})
    try:
        t0 = time.perf_counter()
        single, err1 = asyncio.run(_phase(url, [ids[0]], args.moves, timeout_ms))
        rss_before = _rss_mb(proc.pid)
        images = [ids[(7 * i + 1) % len(ids)] for i in range(args.sessions)]
        t1 = time.perf_counter()
        many, errn = asyncio.run(_phase(url, images, args.moves, timeout_ms))
        wall = time.perf_counter() - t1
        rss_after = _rss_mb(proc.pid)
    finally:
        stop_streamlit(proc)
    errors = err1 + errn
    p95_1, p95_n = _pct(single, 0.95), _pct(many, 0.95)
    print(f"server 127.0.0.1, {os.cpu_count()} CPUs; {args.sessions} sessions x "
          f"{args.moves} slider moves = {len(many)} timed reruns in {wall:.1f} s "
          f"(single-session phase {t1 - t0:.1f} s)")
    print(f"{'':<22}{'n':>5}{'p50 (s)':>10}{'p95 (s)':>10}{'max (s)':>10}")
    for label, values in (("1 session", single), (f"{args.sessions} sessions", many)):
        print(f"{label:<22}{len(values):>5}{_pct(values, 0.5):>10.3f}{_pct(values, 0.95):>10.3f}"
              f"{max(values, default=float('nan')):>10.3f}")
    ratio = p95_n / p95_1 if single else float("nan")
    growth = rss_after - rss_before
    print(f"p95 ratio {ratio:.2f} (goal <= 2.00)")
    print(f"server RSS {rss_before:.0f} MB before, {rss_after:.0f} MB after "
          f"{len(many)} reruns: {growth:+.0f} MB (goal <= +100 MB)")
    print(f"errors: {len(errors)}" + "".join(f"\n  {e}" for e in errors))
    ok = not errors and ratio <= 2.0 and growth <= 100
    print("goals met" if ok else "goals NOT met")
    if single:
        print(f"mean single-session update {statistics.mean(single):.3f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
