"""Driving the pages in Streamlit's AppTest, and reading what they show.

AppTest reruns only the page script of an ``st.navigation`` app after its first run,
so a page runs under the two calls ``app.py`` makes (:func:`page_harness`).
"""
from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parents[2]


def page_harness(page: str) -> str:
    """A script that draws the shared sidebar, then runs ``pages/<page>``."""
    return f"""
import runpy
from app_support import sources
sources.shared_sidebar()
runpy.run_path({str(REPO / "pages" / page)!r}, run_name="__main__")
"""


def upload_harness(page: str) -> str:
    """A script that uploads files through the real sidebar, then runs ``pages/<page>``.

    AppTest cannot set ``st.file_uploader``: the script replaces it with one returning
    the ``(name, bytes)`` held in session state under ``test.upload`` (the image) and
    ``test.upload_mask`` (its ground truth), then runs the real sidebar code
    (``sources.shared_sidebar`` -> ``_upload_source`` -> ``_read_upload``) and the page.
    """
    return f"""
import io, runpy
import streamlit as st
from app_support import sources, state

class _Upload(io.BytesIO):
    def __init__(self, data, name):
        super().__init__(data)
        self.name = name

_files = {{sources.K_UPLOAD: st.session_state.get("test.upload"),
          sources.K_UPLOAD_MASK: st.session_state.get("test.upload_mask")}}

def _fake_uploader(label, *args, key=None, **kwargs):
    value = _files.get(key)
    return None if value is None else _Upload(value[1], value[0])

_real = st.file_uploader
st.file_uploader = _fake_uploader
try:
    st.session_state[state.SOURCE_KIND] = "Upload"
    sources.shared_sidebar()
finally:
    st.file_uploader = _real
runpy.run_path({str(REPO / "pages" / page)!r}, run_name="__main__")
"""


def run(at: AppTest) -> AppTest:
    """Run the app (or the app of a clicked or set widget) and check it raised nothing."""
    at = at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metric(at, label: str) -> str:
    """The value of the page's ``st.metric`` named `label` (asserting it is shown)."""
    found = [m.value for m in at.metric if m.label == label]
    assert found, f"no metric {label!r}; shown: {[m.label for m in at.metric]}"
    return found[0]


def markdown_text(at) -> str:
    """The page's markdown blocks, one text."""
    return "\n".join(m.value for m in at.markdown)


def lesson_run(at: AppTest) -> AppTest:
    """:func:`run`, and no error shown other than a lesson's answer feedback ("Not
    quite", "Not yet"): no lesson text lacking a value, no step that could not be computed."""
    at = run(at)
    assert not [e.value for e in at.error if not e.value.startswith(("Not quite", "Not yet"))], \
        [e.value for e in at.error]
    return at


def next_step(at: AppTest, page: str) -> AppTest:
    """Click the lesson's next button (``<page>.next``), then :func:`lesson_run`."""
    return lesson_run(at.button(key=f"{page}.next").click())


def finish_run(at: AppTest, page: str, *, timeout: float = 300):
    """Click the page's Run button, wait for its background run (``<page>.run``) to end
    well, and draw the results: ``(at, run)``."""
    at = run(at.button(key=f"{page}.run_button").click())
    job = at.session_state[f"{page}.run"]
    assert job.join(timeout=timeout), f"the {page} run did not finish"
    assert job.status == "done", job.error
    return run(at), job


def page_app(monkeypatch, page: str, data=None, *, timeout: float = 60) -> AppTest:
    """An AppTest of ``pages/<page>`` with ``CELLSEG_DATA`` set to `data` (the demo
    datasets only when None) and no ``CELLSEG_CONFIG``."""
    if data is None:
        monkeypatch.delenv("CELLSEG_DATA", raising=False)
    else:
        monkeypatch.setenv("CELLSEG_DATA", str(data))
    monkeypatch.delenv("CELLSEG_CONFIG", raising=False)
    return AppTest.from_string(page_harness(page), default_timeout=timeout)


def numbers_shown(at) -> dict:
    """Name -> value of the numbers in the page's markdown tables (names over values)."""
    shown = {}
    for block in at.markdown:
        rows = [[c.strip() for c in line.strip().strip("|").split("|")]
                for line in block.value.splitlines() if line.startswith("|")]
        for names, values in zip(rows[::3], rows[2::3]):
            shown.update(zip(names, values))
    return shown


def gated_runs_script(pages) -> str:
    """An app with one button per page in `pages`, each starting a background run
    (``runs.start``) that waits on the session's ``gate`` event and returns 42."""
    return f"""
import threading
import streamlit as st
from app_support import runs

if "gate" not in st.session_state:
    st.session_state.gate = threading.Event()

def work(run, gate):
    run.progress(0, 1, "waiting")
    gate.wait(30)
    run.progress(1, 1)
    return 42

for page in {tuple(pages)!r}:
    if st.button(page, key=page):
        runs.start(page, f"{{page}} job", work, st.session_state.gate)  # warns when refused
"""


def machine_columns(table):
    """A table as a page shows it (column labels in words, ``wording.readable``) with
    the CSV's machine names back, so tests can compare it with the engine's table."""
    from app_support.wording import COLUMN_LABELS, UNIT_TWINS, column_label

    names = [*(n + t for n in COLUMN_LABELS for t in UNIT_TWINS), *COLUMN_LABELS]
    return table.rename(columns={column_label(n): n for n in names})  # plain names win
