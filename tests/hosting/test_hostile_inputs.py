"""What a hostile colleague tries on a shared dashboard (issue 21 point 11), beyond the
file corpus of ``tests/_support/bad_inputs.py``: file names with markup at every door
that shows one, links with values out of range, unknown or 100 kB long, and a batch
that would fill the server's disk. Each gets a message, never a traceback, and user
text is shown as written (escaped markdown), never as a link or markup.
"""
from __future__ import annotations

import re
import shutil
import tempfile
from collections import namedtuple

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from app_support import state  # noqa: E402
from app_support.safe_text import md  # noqa: E402
from cellseg_core.presets import get_preset  # noqa: E402
from tests._support.apptest import finish_run, page_harness, run  # noqa: E402
from tests._support.bad_inputs import good_png_bytes  # noqa: E402

#: A file name a browser may send: HTML, markdown emphasis and a link.
EVIL = "<img src=x onerror=alert(1)>**bold**[click](http://x.example)"
HUGE = "9" * 100_000  # a 100 kB query value


@pytest.fixture
def demo(monkeypatch):
    """The app's demo datasets only."""
    monkeypatch.delenv("CELLSEG_DATA", raising=False)
    monkeypatch.delenv("CELLSEG_CONFIG", raising=False)


def _texts(at) -> list[str]:
    """Every text the page shows through markdown (messages, captions, markdown)."""
    return [e.value for kind in ("error", "warning", "info", "success", "markdown",
                                 "caption") for e in getattr(at, kind)]


def _shown_literally(at, name: str) -> None:
    """`name` is on the page, escaped: markdown shows it as written, no link, no
    emphasis, no HTML."""
    texts = _texts(at)
    assert any(md(name) in t for t in texts), texts
    for t in texts:
        assert name not in t  # never unescaped
        assert not re.search(r"(?<!\\)\[click\]\(", t), t


# --- file names with markup ------------------------------------------------------------
def test_explore_params_file_with_markup_name(demo):
    at = run(AppTest.from_string(page_harness("explore.py"), default_timeout=60))
    at.file_uploader(key="explore.params_upload").set_value(
        (f"{EVIL}.json", b'{"mode": "[click](http://x.example)"}', "application/json"))
    at = run(at)
    _shown_literally(at, f"{EVIL}.json")
    assert at.session_state[state.PARAMS] == get_preset(state.DEFAULT_PRESET)


def test_explore_model_file_with_markup_name(demo):
    at = run(AppTest.from_string(page_harness("explore.py"), default_timeout=60))
    at.file_uploader(key="explore.model_file").set_value(
        (f"{EVIL}.cellseg-model", b"not a model", "application/octet-stream"))
    at = run(at)
    _shown_literally(at, f"{EVIL}.cellseg-model")


def test_compare_params_file_with_markup_name(demo):
    at = run(AppTest.from_string(page_harness("compare.py"), default_timeout=60))
    at.file_uploader(key="compare.upload").set_value(
        [(f"{EVIL}.json", b"{not json", "application/json")])
    at = run(at)
    _shown_literally(at, f"{EVIL}.json")


_MODEL_HARNESS = """
import streamlit as st
from app_support import runs, sources
from cellseg_core.methods import ParamsMethod
from cellseg_core.presets import get_preset

st.session_state["source.kind"] = "Upload"
runs.register_model(st.session_state["test.model"], ParamsMethod(get_preset("lab02")))
""" + page_harness("explore.py").replace("from app_support import sources\n", "")


def test_a_model_on_an_image_both_named_with_markup(demo):
    """Explore's learned-model heading shows the image's and the model's names."""
    at = AppTest.from_string(_MODEL_HARNESS, default_timeout=60)
    at.session_state["test.model"] = f"file:{EVIL}"
    at = run(at)
    at.file_uploader(key="source.upload.image").set_value(
        (f"{EVIL}.png", good_png_bytes(), "image/png"))
    at = run(at)
    at.selectbox(key="explore.model").set_value(f"file:{EVIL}")
    at = run(at)
    _shown_literally(at, f"{EVIL}.png")
    _shown_literally(at, f"file:{EVIL}")


_RUN_SCRIPT = f"""
import time
import streamlit as st
from app_support import runs

def work(run):
    run.progress(0, 1, {EVIL!r})
    time.sleep(4)
    raise ValueError({EVIL!r})

if "test.started" not in st.session_state:
    st.session_state["test.started"] = True
    runs.start("first", {EVIL!r}, work)
    runs.start("second", "another", work)  # refused while the first runs
runs.follow("first", "batch")
"""


def test_run_labels_and_errors_with_markup():
    """A run's label (a batch of uploaded files) and its error message, shown while it
    runs (progress, the 'already going' warning) and when it fails."""
    at = run(AppTest.from_string(_RUN_SCRIPT, default_timeout=30))
    _shown_literally(at, EVIL)  # the warning
    progress = [p.proto.text for p in at.get("progress")]
    assert progress and md(EVIL) in progress[0] and EVIL not in progress[0], progress
    at.session_state["first.run"].join(timeout=30)
    at = run(at)
    assert any(md(EVIL) in e.value for e in at.error), [e.value for e in at.error]


# --- links ---------------------------------------------------------------------------------
def _link(query: dict):
    at = AppTest.from_string(page_harness("explore.py"), default_timeout=60)
    at.query_params.update(query)
    return run(at)


@pytest.mark.parametrize("query, said", [
    ({"dataset": "demo-cytology", "image": "99999999"}, "not in dataset"),
    ({"dataset": "no-such-set", "image": "000"}, "unknown dataset"),
    ({"threshold.t_nuc": "1e308"}, "between 0 and 1"),
    ({"threshold.t_nuc": "-1e308"}, "between 0 and 1"),
    ({"t_nuc": "1e308"}, "unknown URL parameter"),
    ({"cleanup.min_nucleus_size": "1e308"}, "between 0 and 1,000,000,000"),
    ({"threshold.t_object": "Infinity"}, "between -1000 and 1000"),
    ({"preset": "no-such-preset"}, "unknown preset"),
    ({"preset": "[click](http://x.example)"}, "unknown preset"),
    ({"mode": "**bold**<img src=x onerror=alert(1)>"}, "must be one of"),
    ({"preset": HUGE}, "100,000 characters long"),
    ({"dataset": HUGE}, "100,000 characters long"),
    ({"dataset": "demo-cytology", "image": HUGE}, "100,000 characters long"),
    ({"threshold.t_nuc": HUGE}, "100,000 characters long"),
    ({HUGE: "1"}, "100,000 characters long"),
    ({f"p{i}": "1" for i in range(500)}, "and 495 more"),
])
def test_a_hostile_link_gets_a_short_message(demo, query, said):
    at = _link(query)
    messages = [m.value for m in [*at.error, *at.warning]]
    shown = [re.sub(r"\\(.)", r"\1", m) for m in messages]  # as markdown shows them
    assert any(said in m for m in shown), messages
    assert all(len(m) < 1500 for m in messages), [len(m) for m in messages]
    for m in messages:  # nothing from the link becomes markup
        assert not re.search(r"(?<!\\)\[click\]\(|(?<!\\)\*\*bold|(?<!\\)<img", m), m
    assert at.session_state[state.PARAMS] == get_preset(state.DEFAULT_PRESET)
    assert at.session_state[state.SOURCE_CURRENT] is not None  # still an image to show


# --- a batch that would fill the disk --------------------------------------------------------
def _upload_batch(at, n: int):
    at = run(at)
    at.radio(key="batch.input").set_value("Upload")
    at = run(at)
    at.file_uploader(key="batch.files").set_value(
        [(f"cell{i}.png", good_png_bytes(), "image/png") for i in range(n)])
    at.radio(key="batch.method").set_value("Preset")
    return run(at)


def test_a_batch_stops_before_the_disk_fills(demo, tmp_path, monkeypatch):
    """Free space shrinks as the batch writes: it stops with a message naming the limit
    before the next image, and its temporary folder is gone."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("CELLSEG_MIN_FREE_MB", "100")
    usage = namedtuple("usage", "total used free")
    free = iter([2**30, 2**30, 50 * 2**20] + [0] * 10)  # 1 GB, 1 GB, then 50 MB
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(2**40, 0, next(free)))
    at = _upload_batch(AppTest.from_string(page_harness("batch.py"), default_timeout=60), 4)
    at = run(at.button(key="batch.run_button").click())
    job = at.session_state["batch.run"]
    assert job.join(timeout=120)
    assert job.status == "failed"
    assert job.error.startswith("stopped after 2 of 4 image(s)") and \
        "CELLSEG_MIN_FREE_MB" in job.error and "50 MB free" in job.error, job.error
    at = run(at)
    assert any("CELLSEG\\_MIN\\_FREE\\_MB" in e.value for e in at.error)
    assert list(tmp_path.iterdir()) == []


def test_a_batch_is_refused_when_the_disk_is_already_short(demo, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    free_mb = shutil.disk_usage(tmp_path).free / 2**20
    monkeypatch.setenv("CELLSEG_MIN_FREE_MB", str(int(free_mb * 2) + 1))
    at = _upload_batch(AppTest.from_string(page_harness("batch.py"), default_timeout=60), 2)
    at = run(at.button(key="batch.run_button").click())
    job = at.session_state["batch.run"]
    assert job.join(timeout=120) and job.status == "failed"
    assert job.error.startswith("stopped after 0 of 2 image(s)"), job.error
    assert list(tmp_path.iterdir()) == []


def test_a_batch_with_room_runs(demo, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("CELLSEG_MIN_FREE_MB", "0")
    at = _upload_batch(AppTest.from_string(page_harness("batch.py"), default_timeout=60), 2)
    at, job = finish_run(at, "batch", timeout=120)
    assert list(job.result["images"]["status"]) == ["ok", "ok"]


@pytest.mark.parametrize("raw", ["lots", "-5", "nan"])
def test_a_bad_free_space_setting_is_named(monkeypatch, raw):
    from app_support import disk

    monkeypatch.setenv("CELLSEG_MIN_FREE_MB", raw)
    with pytest.raises(ValueError, match="CELLSEG_MIN_FREE_MB"):
        disk.min_free_bytes()
