"""Quotas on a shared server (issue 21 point 5): background runs per session and in
total, uploads per session, and what an ended session leaves behind."""
from __future__ import annotations

import asyncio
import gc
import io
import os
import time
import weakref
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tests._support.apptest import gated_runs_script

pytest.importorskip("streamlit")
from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager  # noqa: E402
from streamlit.runtime.uploaded_file_manager import UploadedFileRec  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from app_support import quotas  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


class FakeRun:
    """What the registry needs of a run."""

    def __init__(self, label="fake job", page="compare", running=True, result=None):
        self.label, self.page, self.running, self.fraction = label, page, running, 0.25
        self.result, self.events, self.cancelled = result, ["event"], False

    def cancel(self):
        self.cancelled = True


@pytest.fixture(autouse=True)
def _fresh_registry(monkeypatch):
    """Each test counts its own runs (the process registry is shared by every test)."""
    monkeypatch.setattr(quotas, "_REGISTRY", quotas.RunRegistry())
    for name in ("CELLSEG_MAX_RUNS_PER_SESSION", "CELLSEG_MAX_RUNS_TOTAL",
                 "CELLSEG_MAX_UPLOADS", "CELLSEG_MAX_UPLOAD_MB"):
        monkeypatch.delenv(name, raising=False)


# --- runs --------------------------------------------------------------------------------
def test_run_refusals_name_the_limit(monkeypatch):
    reg = quotas.RunRegistry()
    mine = FakeRun("comparison of 3 methods")
    reg.add(mine, "a")
    message = quotas.run_refusal("a", reg)
    assert "already going (comparison of 3 methods, started on the Compare page, 25% done)" \
        in message
    assert "CELLSEG_MAX_RUNS_PER_SESSION = 1" in message
    monkeypatch.setenv("CELLSEG_MAX_RUNS_PER_SESSION", "2")
    monkeypatch.setenv("CELLSEG_MAX_RUNS_TOTAL", "2")
    assert quotas.run_refusal("a", reg) is None
    theirs = FakeRun()  # a running run is held by its thread; the registry holds it weakly
    reg.add(theirs, "b")
    message = quotas.run_refusal("c", reg)
    assert "2 runs are going for all users" in message
    assert "CELLSEG_MAX_RUNS_TOTAL = 2" in message
    mine.running = False  # a finished run counts for nothing
    assert quotas.run_refusal("c", reg) is None


def test_limits_from_the_environment_are_checked(monkeypatch):
    monkeypatch.setenv("CELLSEG_MAX_RUNS_TOTAL", "0")
    with pytest.raises(ValueError, match="CELLSEG_MAX_RUNS_TOTAL must be >= 1, got 0"):
        quotas.max_runs_total()
    monkeypatch.setenv("CELLSEG_MAX_UPLOAD_MB", "lots")
    with pytest.raises(ValueError, match="CELLSEG_MAX_UPLOAD_MB must be a number"):
        quotas.max_upload_bytes()
    monkeypatch.setenv("CELLSEG_MAX_UPLOAD_MB", "0.5")
    assert quotas.max_upload_bytes() == 2**19


WAITER = gated_runs_script(("first", "second", "third"))


def _run(at):
    """Run the app (or the app of a clicked widget) and check it raised nothing."""
    at = at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_app_refuses_a_run_over_the_total_and_per_session_limits(monkeypatch):
    # Another session's run fills the server (total 1).
    monkeypatch.setenv("CELLSEG_MAX_RUNS_TOTAL", "1")
    other = FakeRun("someone else's optimisation")
    quotas.registry().add(other, "another session")
    at = _run(AppTest.from_string(WAITER, default_timeout=30))
    at = _run(at.button(key="first").click())
    assert "first.run" not in at.session_state
    assert "1 runs are going for all users" in at.warning[0].value
    assert "(CELLSEG_MAX_RUNS_TOTAL = 1)" in at.warning[0].value
    # Two per session, three in all: two pages run at once, the third is refused.
    other.running = False
    monkeypatch.setenv("CELLSEG_MAX_RUNS_TOTAL", "3")
    monkeypatch.setenv("CELLSEG_MAX_RUNS_PER_SESSION", "2")
    at = _run(at.button(key="first").click())
    at = _run(at.button(key="second").click())
    assert at.session_state["first.run"].running and at.session_state["second.run"].running
    at = _run(at.button(key="third").click())
    assert "third.run" not in at.session_state
    assert "CELLSEG_MAX_RUNS_PER_SESSION = 2" in at.warning[0].value
    # The same page twice is refused whatever the limits.
    monkeypatch.setenv("CELLSEG_MAX_RUNS_PER_SESSION", "5")
    at = _run(at.button(key="first").click())
    assert "already going on this page (first job" in at.warning[0].value
    at.session_state["gate"].set()
    assert at.session_state["first.run"].join(10) and at.session_state["second.run"].join(10)
    assert len(quotas.registry().running()) == 0


def test_releasing_a_session_stops_its_runs_and_frees_their_results():
    reg = quotas.RunRegistry()
    kept_by_session_state = {"compare.run": FakeRun(result=np.ones(2**20), running=False),
                             "optimise.run": FakeRun(result=np.ones(10))}
    for run in kept_by_session_state.values():
        reg.add(run, "gone")
    alive = FakeRun(result=np.ones(10))
    reg.add(alive, "alive")
    result = weakref.ref(kept_by_session_state["compare.run"].result)
    assert reg.release("gone") == 2
    gc.collect()
    assert result() is None  # freed although the (lingering) session state holds the run
    assert kept_by_session_state["optimise.run"].cancelled
    assert all(r.events == [] for r in kept_by_session_state.values())
    assert reg.sessions() == {"alive"} and reg.released == 2 and alive.result is not None


# --- uploads -----------------------------------------------------------------------------
def test_trim_uploads_keeps_the_oldest_files_within_the_limits():
    files = [("1", "a.png", 400), ("2", "b.png", 400), ("3", "c.png", 300),
             ("4", "d.png", 100)]
    drop, message = quotas.trim_uploads(files, max_files=10, max_bytes=1000)
    assert drop == ["3"]  # d.png still fits once c.png is out
    assert message.startswith("Upload refused: c.png would pass this server's limit of "
                              "at most 1 kB of uploads per session")
    assert "(CELLSEG_MAX_UPLOAD_MB = 0.000953674)" in message
    drop, message = quotas.trim_uploads(files, max_files=2, max_bytes=10**6)
    assert drop == ["3", "4"]
    assert "c.png, d.png" in message and "at most 2 files per session" in message
    assert "(CELLSEG_MAX_UPLOADS = 2)" in message
    assert quotas.trim_uploads(files, max_files=4, max_bytes=1200) == ([], None)


def _rec(file_id: str, name: str, size: int) -> UploadedFileRec:
    return UploadedFileRec(file_id=file_id, name=name, type="image/png", data=b"x" * size)


def test_upload_refusal_removes_the_extra_files_from_streamlits_store(monkeypatch):
    monkeypatch.setenv("CELLSEG_MAX_UPLOADS", "2")
    manager = MemoryUploadedFileManager("/upload")
    for i in range(3):
        manager.add_file("s", _rec(f"f{i}", f"<b>{i}</b>.png", 10))
    manager.add_file("t", _rec("g", "other.png", 10))
    message = quotas.upload_refusal(manager, "s")
    assert "<b>2</b>.png" in message and "CELLSEG_MAX_UPLOADS = 2" in message
    assert list(manager.file_storage["s"]) == ["f0", "f1"]
    assert list(manager.file_storage["t"]) == ["g"]  # another session's files untouched
    assert quotas.upload_refusal(manager, "s") is None


def test_a_sweep_releases_what_ended_sessions_held(monkeypatch):
    """The runtime no longer knows session "gone": its runs and uploads are released,
    the live session's stay; uploads over the limit are trimmed for everyone."""
    monkeypatch.setenv("CELLSEG_MAX_UPLOADS", "1")
    live = {"here"}
    runtime = SimpleNamespace(
        _session_mgr=SimpleNamespace(get_session_info=lambda s: s if s in live else None),
        uploaded_file_mgr=MemoryUploadedFileManager("/upload"))
    manager = runtime.uploaded_file_mgr
    manager.add_file("gone", _rec("g", "g.png", 10))
    manager.add_file("here", _rec("h1", "h1.png", 10))
    manager.add_file("here", _rec("h2", "h2.png", 10))
    gone_run, here_run = FakeRun(result=[1]), FakeRun(result=[2])
    quotas.registry().add(gone_run, "gone")
    quotas.registry().add(here_run, "here")
    out = quotas.sweep(runtime)
    assert out == {"runs": 1, "jobs": 0, "upload_sessions": 1, "trimmed": 1}
    assert gone_run.cancelled and gone_run.result is None
    assert here_run.result == [2] and not here_run.cancelled
    assert "gone" not in manager.file_storage and list(manager.file_storage["here"]) == ["h1"]
    assert quotas.session_alive("anything", runtime=None)  # no runtime: nothing is swept


# --- on a real server --------------------------------------------------------------------
PROBE = """
import weakref
import numpy as np
import streamlit as st
from app_support import quotas, runs

@st.cache_resource
def refs():
    return {}

def work(run):
    return np.ones(8 * 2**20, np.uint8)

if st.query_params.get("start") == "1" and "probe.run" not in st.session_state:
    run = runs.start("probe", "probe job", work)
    run.join(10)
    refs()["result"] = weakref.ref(run.result)
ref = refs().get("result")
st.markdown("| result alive | released |\\n|---|---|\\n"
            f"| {ref is not None and ref() is not None} | {quotas.registry().released} |")
"""


def _server_env(**extra) -> dict:
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))
    return {"PYTHONPATH": path, "CELLSEG_CONFIG": "", **extra}


@pytest.mark.slow
def test_a_finished_runs_memory_is_released_once_its_session_has_ended(tmp_path):
    from _common import start_streamlit, stop_streamlit
    from ws_client import StreamlitClient

    script = tmp_path / "probe_app.py"
    script.write_text(PROBE)

    async def scenario(url):
        async with StreamlitClient(url, timeout=30) as first:
            opened = await first.open("start=1")
            assert opened.metrics == {"result alive": "True", "released": "0"}
        deadline = time.monotonic() + 30  # TTL 1 s, sweeps every 0.3 s
        while True:
            async with StreamlitClient(url, timeout=30) as later:
                seen = (await later.open("")).metrics
            if seen.get("released") == "1" or time.monotonic() > deadline:
                return seen
            await asyncio.sleep(0.5)

    proc, url = start_streamlit(_server_env(STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL="1",
                                            CELLSEG_SWEEP_SECONDS="0.3"),
                                script=str(script))
    try:
        seen = asyncio.run(asyncio.wait_for(scenario(url), 90))
    finally:
        stop_streamlit(proc)
    assert seen == {"result alive": "False", "released": "1"}


def _png(side: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((side, side), 128, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.slow
def test_an_upload_over_the_session_limit_is_refused_with_a_message():
    from _common import start_streamlit, stop_streamlit
    from ws_client import StreamlitClient

    async def scenario(url):
        async with StreamlitClient(url, timeout=60) as client:
            await client.open("")
            await client.set_widget(client.find_widget("radio", key="source.kind"), "Upload")
            image = await client.upload(client.find_widget("file_uploader", label="Image"),
                                        "cells.png", _png(64))
            mask = await client.upload(
                client.find_widget("file_uploader", key="source.upload.mask"),
                "mask.png", _png(64))
            return image, mask

    proc, url = start_streamlit(_server_env(CELLSEG_MAX_UPLOADS="1"))
    try:
        image, mask = asyncio.run(asyncio.wait_for(scenario(url), 120))
    finally:
        stop_streamlit(proc)
    assert not image.errors and not image.exceptions
    assert image.metrics.get("Nuclei") is not None  # the image is segmented
    assert len(mask.errors) == 1 and not mask.exceptions
    assert "mask.png would pass this server's limit of at most 1 files per session" \
        in mask.errors[0].replace("\\", "")
    assert "CELLSEG_MAX_UPLOADS = 1" in mask.errors[0].replace("\\", "")
    assert mask.metrics.get("Nuclei") == image.metrics["Nuclei"]  # still the image alone
