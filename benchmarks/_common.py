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
import tempfile
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


def start_streamlit(env_extra: dict | None = None, *, timeout: float = 180.0,
                    script: str = "app.py"):
    """Start ``streamlit run <script>`` (relative to the repository) on a free port;
    return (process, base URL). bench_ui passes a bare baseline page as `script`.

    The server's output goes to a temporary file (:func:`server_log`): a pipe that
    nobody reads would stall the server once its buffer is full.
    """
    port = free_port()
    env = {**os.environ, **(env_extra or {})}
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", script, "--server.port", str(port),
         "--server.headless", "true", "--server.address", "127.0.0.1",
         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    proc.log = log
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("streamlit exited:\n" + server_log(proc))
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.3)
    stop_streamlit(proc)
    raise RuntimeError(f"streamlit did not answer on {url} within {timeout} s")


def server_log(proc) -> str:
    """What the server started by :func:`start_streamlit` has printed so far."""
    proc.log.flush()
    proc.log.seek(0)
    return proc.log.read().decode(errors="replace")


def stop_streamlit(proc) -> None:
    """Stop the server started by :func:`start_streamlit` (its own process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    log = getattr(proc, "log", None)
    if log is not None:
        log.close()


#: The value under the column named `label` in the page's Markdown tables (Explore's
#: numbers), or null.
NUMBER_JS = """(label) => {
  for (const table of document.querySelectorAll('[data-testid="stMarkdown"] table')) {
    const i = [...table.querySelectorAll('th')].map(h => h.innerText.trim()).indexOf(label);
    if (i >= 0) return table.querySelector('tbody tr').children[i].innerText.trim();
  }
  return null;
}"""


def number_value(page, label: str) -> str | None:
    """The Explore number `label` as shown (a table cell), or None."""
    return page.evaluate(NUMBER_JS, label)


#: How long (ms) a browser test waits for something the app computes: generous, so that
#: a busy CI machine makes a test slow, never red. A test waits on state (a value shown,
#: the URL, Streamlit's script-run state), never for a fixed time.
SLOW = 240_000

#: Installed in every page of :func:`chromium_page` before the app's own scripts: follows
#: Streamlit's script-run state, which the app root shows in its
#: ``data-test-script-state`` attribute ("initial" before the first run, then "running",
#: "rerunRequested", "notRunning"...), and when it last changed.
RUN_WATCH_JS = r"""(() => {
  if (window !== window.top || window.__cellsegRuns) return;
  const w = window.__cellsegRuns = {state: null, changed: performance.now(), mark: 0};
  w.read = () => {
    const app = document.querySelector('[data-testid="stApp"]');
    const state = app ? app.getAttribute('data-test-script-state') : null;
    if (state !== w.state) {
      w.state = state;
      w.changed = performance.now();
    }
    return w;
  };
  new MutationObserver(w.read).observe(document, {
    subtree: true, attributes: true, attributeFilter: ['data-test-script-state']});
})();"""

#: True once the app has had no script running for `quiet` ms, counted from the later of
#: the last change of the run state and the start of the wait.
_IDLE_JS = """(quiet) => {
  const w = window.__cellsegRuns;
  if (!w) return false;
  w.read();
  return w.state === 'notRunning' && performance.now() - Math.max(w.changed, w.mark) >= quiet;
}"""


def press_slider(page, label: str, steps: int, key: str = "ArrowRight") -> None:
    """Move the slider whose label contains `label` by `steps` key presses, as a keyboard
    user does (each press is one step of the slider)."""
    thumb = page.locator('[data-testid="stSlider"]', has_text=label).get_by_role("slider")
    thumb.focus()
    for _ in range(steps):
        thumb.press(key)


def start_optimisation(page, calls: int = 10) -> None:
    """On the Optimise page: set the number of calls, then press "Run optimisation"."""
    field = page.locator('[data-testid="stNumberInput"]', has_text="Number of calls"
                         ).locator("input")
    field.fill(str(calls))
    field.press("Enter")
    wait_idle(page)
    page.get_by_role("button", name="Run optimisation").click()


@contextlib.contextmanager
def chromium_page(executable_path: str, viewport: tuple[int, int]):
    """A page of Debian's headless Chromium (`viewport` = width, height), closed after.

    Its waits (and ``expect``'s) default to :data:`SLOW`; it follows Streamlit's
    script-run state for :func:`wait_idle`.
    """
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=SLOW)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable_path, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            page.set_default_timeout(SLOW)
            page.add_init_script(RUN_WATCH_JS)  # for wait_idle, in every page loaded
            yield page
        finally:
            browser.close()


def wait_idle(page, timeout: float = SLOW, quiet: float = 600, *,
              or_when: str | None = None) -> None:
    """Wait until Streamlit has run no script for `quiet` ms.

    The state is Streamlit's own (the app root's ``data-test-script-state``), followed
    by a mutation observer (installed by :func:`chromium_page`, or here), so a run that
    starts and ends between two polls is still seen. The quiet window starts when the
    wait starts: a run that an action has just asked for (a slider's value is sent
    after a short debounce) is waited for too. A browser-started run that follows more
    than `quiet` ms after the last one ends (Explore's numbers, after the overlay is
    drawn) needs its own value-based wait. `or_when`: a JavaScript expression that ends
    the wait early when true (say, a page that broke and will never be idle).
    """
    from playwright.sync_api import Error

    try:
        page.evaluate(RUN_WATCH_JS + "; window.__cellsegRuns.mark = performance.now();")
    except Error:  # a page still navigating: its new document starts its own clock
        pass
    predicate = _IDLE_JS if or_when is None else \
        f"(quiet) => ({or_when}) || ({_IDLE_JS})(quiet)"
    page.wait_for_function(predicate, arg=quiet, timeout=timeout, polling=100)


def choose(page, label: str, option: str) -> None:
    """Pick `option` in the selectbox labelled `label`, once no script runs, and wait
    until the box shows it. A list that a rerun redrew under the click (on a busy
    machine) is opened again, at most three times."""
    field = page.locator('[data-testid="stSelectbox"]', has_text=label).first.locator(
        'input, [role="combobox"]').first
    for _ in range(3):
        wait_idle(page)
        field.click()
        page.get_by_role("option", name=option, exact=True).click()
        wait_idle(page)
        if field.input_value() == option:
            return
        page.keyboard.press("Escape")
    raise AssertionError(f"{label}: {option!r} not chosen; the box shows {field.input_value()!r}")
