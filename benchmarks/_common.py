"""What the benchmarks share: the repository, the VocEd folder, a Streamlit server of the
app and a headless Chromium page (the browser tests use the same helpers).

Run a benchmark from anywhere: ``python3 benchmarks/bench_core.py``; the script's folder
is on ``sys.path``, so ``from _common import ...`` works, and ``cellseg_core`` is the
installed package (``pip install -e .``, as requirements.txt does).
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def voced_path(path=None) -> Path:
    """The VocEd folder: `path`, else ``CELLSEG_VOCED``, else ``<repo>/../shared/data/voced``."""
    env = os.environ.get("CELLSEG_VOCED")
    return Path(path or env or REPO.parent / "shared" / "data" / "voced")


def need_voced(path=None) -> Path:
    """:func:`voced_path`, or exit with a message when it holds no images."""
    folder = voced_path(path)
    if not (folder / "images").is_dir():
        sys.exit(f"VocEd data not found at {folder}; pass --data or set CELLSEG_VOCED")
    return folder


# --- the app in a server and a browser --------------------------------------------------
CHROMIUM = os.environ.get("CELLSEG_CHROMIUM", "/usr/bin/chromium")
#: The Explore overlay (a chart of app_support.live_plot) and, in it, the prediction's
#: label layer: the first Plotly layout image drawn above the image.
OVERLAY_CHART = 'div.cellseg-plot[data-chart="explore.overlay"]'
PREDICTION_LAYER = ".layer-above .imagelayer image"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_streamlit(env_extra: dict | None = None, *, timeout: float = 60.0,
                    script: str = "app.py"):
    """Start ``streamlit run <script>`` (relative to the repository) on a free port;
    return (process, base URL). bench_ui passes a bare baseline page as `script`."""
    port = free_port()
    env = {**os.environ, **(env_extra or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", script, "--server.port", str(port),
         "--server.headless", "true", "--server.address", "127.0.0.1",
         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("streamlit exited:\n" + proc.stdout.read().decode(errors="replace"))
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.3)
    stop_streamlit(proc)
    raise RuntimeError(f"streamlit did not answer on {url} within {timeout} s")


def stop_streamlit(proc) -> None:
    """Stop the server started by :func:`start_streamlit` (its own process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def chromium_page(executable_path: str, viewport: tuple[int, int]):
    """A page of Debian's headless Chromium (`viewport` = width, height), closed after."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable_path, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
        finally:
            browser.close()


def wait_idle(page, timeout: float = 30_000) -> None:
    """Wait until Streamlit reports no script running."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
        timeout=timeout)
