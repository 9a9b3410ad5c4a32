"""Load: N concurrent sessions on one server, slider-update latency and memory.

Starts ``streamlit run app.py`` on 127.0.0.1 (as ``tests/browser/test_browser.py`` does, with
``CELLSEG_DATA`` = the VocEd folder), then

1. one session alone: open the app on a VocEd image, move the "Nucleus below" slider
   ``--moves`` times (one step each), timing each update;
2. ``--sessions`` sessions at once, each on its own image, doing the same.

Two kinds of session (``--client``):

``ws`` (default)
    a lightweight Streamlit websocket client (``benchmarks/ws_client.py``) that speaks
    the frontend's protocol: it opens ``/?dataset=voced&image=<id>``, finds the t_nuc
    slider in the deltas and sends the same rerun a browser sends (all widget states,
    cached-message hashes), then, as a browser does once it has drawn the new overlay,
    reports it (the chart's ``drawn`` trigger), which reruns the numbers' fragment; an
    update is from sending the first message until the second run's
    ``script_finished`` (both runs; the browser's drawing is not in it). All sessions
    open first, then move together. The clients cost little CPU, so the numbers are
    the server's.
``chromium``
    headless Chromium through Playwright (one browser, a context per session), keyboard
    ArrowRight on the slider; an update is from the key press until the URL carries the
    new value and no script runs. On a 2-core machine 20 Chromium sessions compete with
    the server for the CPU (this mode measures the browsers as much as the server).

Prints p50/p95 update latency of both phases, the ratio, errors (exceptions and
``st.error`` on screen count as errors in ws mode), and the server's RSS (psutil, with
its children) before the concurrent phase, after its sessions opened (ws) and after its
reruns. Goals (issue 9): no error, p95 <= 2x single-session, RSS growth <= 100 MB. The
server is always killed at the end.

    python benchmarks/bench_load.py                 # 20 ws sessions x 10 moves = 200 reruns
    python benchmarks/bench_load.py --sessions 3 --moves 4   # a quick check
    python benchmarks/bench_load.py --client chromium        # real browsers
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

from _common import CHROMIUM, CHROMIUM_ARGS, start_streamlit, stop_streamlit, voced_path

IDLE = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
CHANGED = ("(prev) => location.href !== prev && "
           "!document.querySelector('[data-testid=\"stStatusWidget\"]')")


def _rss_mb(pid: int) -> float:
    import psutil

    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by the server process and its children."""
    import psutil

    proc = psutil.Process(pid)
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        t = p.cpu_times()
        total += t.user + t.system
    return total


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


#: The Explore overlay's live chart (app_support.live_plot), which reports drawn figures.
OVERLAY = "explore.overlay"


async def _ws_session(url: str, image: str, moves: int, timeout: float, opened, go,
                      think: float = 0.0, seed: int = 0):
    """One websocket client: open `image`, wait for `go`, move t_nuc `moves` steps.

    With `think` > 0 the client pauses a random 0..2*`think` s before each move (a
    person looking at the result); the pause is not part of the latency.
    """
    import random

    from ws_client import StreamlitClient

    rng = random.Random(seed)

    client = StreamlitClient(url, timeout=timeout)
    try:
        try:  # whatever happens, this session counts as opened: the others go on
            await client.connect()
            run = await client.open(f"dataset=voced&image={image}")
            if client.pending_report(OVERLAY):  # the browser says it reports drawn charts
                run = await client.report_drawn(OVERLAY)
            problems = run.exceptions + run.errors
            if problems:
                raise RuntimeError(f"image {image} on opening: {problems[0]}")
            wid = client.find_widget("slider", key="explore.p.threshold.t_nuc")
        finally:
            opened()
        await go.wait()
        latencies, value = [], client.widget(wid).value[0]
        for _ in range(moves):
            if think > 0:
                await asyncio.sleep(rng.uniform(0.0, 2.0 * think))
            value = client.next_step(client.widget(wid), value)
            runs = [await client.set_widget(wid, [value])]
            if client.pending_report(OVERLAY):  # a browser, once it has drawn the overlay
                runs.append(await client.report_drawn(OVERLAY))
            latencies.append(sum(run.seconds for run in runs))
            for run in runs:
                problems = run.exceptions + run.errors
                if problems:
                    raise RuntimeError(f"image {image}, t_nuc={value}: {problems[0]}")
                if run.status not in ("finished", "fragment finished"):
                    raise RuntimeError(f"image {image}: the run ended {run.status!r}")
        return latencies
    finally:
        await client.close()


async def _ws_phase(url, images, moves, timeout, on_opened=None, think=0.0):
    go = asyncio.Event()
    left = [len(images)]

    def opened():
        left[0] -= 1
        if not left[0]:
            if on_opened is not None:
                on_opened()
            go.set()

    results = await asyncio.gather(
        *[_ws_session(url, image, moves, timeout, opened, go, think, seed)
          for seed, image in enumerate(images)],
        return_exceptions=True)
    return _collect(results)


def _collect(results):
    latencies = [x for r in results if not isinstance(r, BaseException) for x in r]
    errors = [f"{type(r).__name__}: {(str(r).splitlines() or [''])[0][:160]}"
              for r in results if isinstance(r, BaseException)]
    return latencies, errors


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
    return _collect(results)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", choices=("ws", "chromium"), default="ws",
                        help="websocket clients (default) or headless Chromium sessions")
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--moves", type=int, default=10)
    parser.add_argument("--think", type=float, default=0.0,
                        help="ws: mean pause (s) before each move, uniform 0..2x; default 0 "
                             "= back-to-back moves, the worst case")
    parser.add_argument("--data", default=str(voced_path()))
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds allowed for one page action / script run (default 120)")
    args = parser.parse_args(argv)
    if args.sessions < 1 or args.moves < 1:
        parser.error("--sessions and --moves must be >= 1")
    if not (Path(args.data) / "images").is_dir():
        print(f"no VocEd data at {args.data} (set CELLSEG_VOCED)", file=sys.stderr)
        return 2
    ids = sorted(p.stem for p in (Path(args.data) / "images").glob("*.png"))
    images = [ids[(7 * i + 1) % len(ids)] for i in range(args.sessions)]
    load_before = os.getloadavg()
    proc, url = start_streamlit({"CELLSEG_DATA": args.data, "CELLSEG_CONFIG": ""})
    rss_opened = [float("nan")]
    try:
        t0 = time.perf_counter()
        if args.client == "ws":
            single, err1 = asyncio.run(_ws_phase(url, [ids[0]], args.moves, args.timeout))
        else:
            single, err1 = asyncio.run(_phase(url, [ids[0]], args.moves, args.timeout * 1000))
        rss_before = _rss_mb(proc.pid)
        t1 = time.perf_counter()
        t_moves = [t1]  # when the moves start: once every ws session has opened
        cpu_moves = [_cpu_s(proc.pid), time.process_time()]  # server, this process
        if args.client == "ws":
            def on_opened():
                rss_opened[0] = _rss_mb(proc.pid)
                t_moves[0] = time.perf_counter()
                cpu_moves[:] = [_cpu_s(proc.pid), time.process_time()]

            many, errn = asyncio.run(_ws_phase(url, images, args.moves, args.timeout,
                                               on_opened, args.think))
        else:
            many, errn = asyncio.run(_phase(url, images, args.moves, args.timeout * 1000))
        wall = time.perf_counter() - t_moves[0]
        cpu_server = _cpu_s(proc.pid) - cpu_moves[0]
        cpu_client = time.process_time() - cpu_moves[1]
        rss_after = _rss_mb(proc.pid)
        load_after = os.getloadavg()
    finally:
        stop_streamlit(proc)
    errors = err1 + errn
    p95_1, p95_n = _pct(single, 0.95), _pct(many, 0.95)
    kind = "websocket clients" if args.client == "ws" else "Chromium sessions"
    print(f"server 127.0.0.1, {os.cpu_count()} CPUs, {kind}; {args.sessions} sessions x "
          f"{args.moves} slider moves = {len(many)} timed reruns in {wall:.1f} s "
          f"(single-session phase {t1 - t0:.1f} s)"
          + (f"; think time 0..{2 * args.think:g} s before each move" if args.think else ""))
    if args.client == "ws":
        print(f"CPU during the concurrent moves: server {cpu_server:.1f} s "
              f"({cpu_server / max(len(many), 1):.3f} s per rerun, "
              f"{cpu_server / wall:.2f} cores busy), the {args.sessions} clients "
              f"{cpu_client:.1f} s")
    else:
        print(f"CPU during the concurrent phase (page loads included): server "
              f"{cpu_server:.1f} s (the Chromium processes are not counted)")
    print("load average (1/5/15 min) before " + "/".join(f"{x:.2f}" for x in load_before)
          + ", after " + "/".join(f"{x:.2f}" for x in load_after))
    print(f"{'':<22}{'n':>5}{'p50 (s)':>10}{'p95 (s)':>10}{'max (s)':>10}")
    for label, values in (("1 session", single), (f"{args.sessions} sessions", many)):
        print(f"{label:<22}{len(values):>5}{_pct(values, 0.5):>10.3f}{_pct(values, 0.95):>10.3f}"
              f"{max(values, default=float('nan')):>10.3f}")
    ratio = p95_n / p95_1 if single else float("nan")
    growth = rss_after - rss_before
    print(f"p95 ratio {ratio:.2f} (goal <= 2.00)")
    opened = (f", {rss_opened[0]:.0f} MB once the {args.sessions} sessions opened"
              if args.client == "ws" else "")
    print(f"server RSS {rss_before:.0f} MB before{opened}, {rss_after:.0f} MB after "
          f"{len(many)} reruns: {growth:+.0f} MB (goal <= +100 MB)")
    print(f"errors: {len(errors)}" + "".join(f"\n  {e}" for e in errors))
    ok = not errors and ratio <= 2.0 and growth <= 100
    print("goals met" if ok else "goals NOT met")
    if single:
        print(f"mean single-session update {statistics.mean(single):.3f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
