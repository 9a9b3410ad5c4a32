"""The websocket client of ``benchmarks/bench_load.py`` does what a browser does.

One client opens a VocEd image on a real ``streamlit run app.py`` (127.0.0.1), moves the
"Nucleus below" slider one step (0.3904 -> 0.395, one ArrowRight in Chromium) and must
see the same numbers the app shows for that image and value through AppTest and the
engine. For the record, Chromium on the same image and step showed Mean Dice 0.6605 ->
0.6534. The controls are outside fragments, so the browser's message is a rerun with
every widget state and no fragment id, as this client sends; the page reruns whole
for a client that does not report drawn overlays (this one runs no JavaScript; a
browser that does gets the overlay's fragment alone, see pages/explore.py).
"""
from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from app_support import state  # noqa: E402
from cellseg_core import read_image, read_mask, score_labels, segment  # noqa: E402
from cellseg_core.presets import get_preset  # noqa: E402
from tests._support.apptest import numbers_shown, page_harness  # noqa: E402

from _common import start_streamlit, stop_streamlit  # noqa: E402
from ws_client import StreamlitClient  # noqa: E402

IMAGE_ID = "007"
T_NUC = state.widget_key("threshold.t_nuc")
HARNESS = page_harness("explore.py")


async def _one_update(url: str):
    async with StreamlitClient(url, timeout=30) as client:
        opened = await client.open(f"dataset=voced&image={IMAGE_ID}")
        wid = client.find_widget("slider", key=T_NUC)
        assert client.widget(wid).label.startswith("Nucleus below")
        start = client.widget(wid).value[0]
        value = client.next_step(client.widget(wid), start)
        message = client.rerun_message(client.widget_kinds[wid][2])
        moved = await client.set_widget(wid, [value])
        return client, opened, moved, start, value, message


def _app_test_metric(voced, monkeypatch, t_nuc: float) -> str:
    monkeypatch.setenv("CELLSEG_DATA", str(voced))
    monkeypatch.delenv("CELLSEG_CONFIG", raising=False)
    at = AppTest.from_string(HARNESS, default_timeout=60)
    at.session_state[state.SOURCE_KIND] = "Dataset"
    at.session_state[state.SOURCE_DATASET] = "voced"
    at.session_state[state.SOURCE_ID] = IMAGE_ID
    at.run()
    at.slider(key=T_NUC).set_value(t_nuc)
    at.run()
    assert not at.exception, [e.value for e in at.exception]

    return numbers_shown(at)["Mean Dice"]


@pytest.mark.slow
def test_one_ws_update_changes_dice_like_the_app(voced, monkeypatch):
    proc, url = start_streamlit({"CELLSEG_DATA": str(voced), "CELLSEG_CONFIG": ""})
    try:
        client, opened, moved, start, value, message = asyncio.run(
            asyncio.wait_for(_one_update(url), 60))
    finally:
        stop_streamlit(proc)

    assert opened.status == "finished" and moved.status == "finished"
    assert not opened.exceptions and not moved.exceptions
    assert not opened.errors and not moved.errors
    assert start == pytest.approx(0.3904) and value == pytest.approx(0.395)
    # The browser's message: a rerun of the Explore page with every widget.
    rerun = message.rerun_script
    assert not rerun.fragment_id and rerun.page_script_hash
    keys = {w.id.rsplit("-", 1)[-1] for w in rerun.widget_states.widgets}
    assert {T_NUC, state.widget_key("threshold.t_bg"), state.SOURCE_ID} <= keys
    assert f"threshold.t_nuc={value}" in client.query_string  # the URL the browser shows

    lab02 = get_preset("lab02")
    image = read_image(voced / "images" / f"{IMAGE_ID}.png")
    truth = read_mask(voced / "masks" / f"{IMAGE_ID}.png")
    before = score_labels(segment(image, lab02).labels, truth)["mean_dice"]
    after = score_labels(segment(image, lab02.with_values({"threshold.t_nuc": value})).labels,
                         truth)["mean_dice"]
    assert opened.metrics["Mean Dice"] == f"{before:.4f}"
    assert moved.metrics["Mean Dice"] == f"{after:.4f}"
    assert moved.metrics["Mean Dice"] != opened.metrics["Mean Dice"]
    assert moved.metrics["Mean Dice"] == _app_test_metric(voced, monkeypatch, value)


async def _two_updates(url: str):
    async with StreamlitClient(url, timeout=30) as client:
        await client.open(f"dataset=voced&image={IMAGE_ID}")
        hello = client.pending_report("explore.overlay")
        await client.report_drawn("explore.overlay")
        wid = client.find_widget("slider", key=T_NUC)
        first = client.next_step(client.widget(wid), client.widget(wid).value[0])
        await client.set_widget(wid, [first])  # off the preset: the controls change
        second = client.next_step(client.widget(wid), first)
        overlay = await client.set_widget(wid, [second])
        notify = client.pending_report("explore.overlay")
        numbers = await client.report_drawn("explore.overlay")
        return hello, overlay, notify, numbers, second


@pytest.mark.slow
def test_a_client_that_reports_drawn_overlays_gets_two_fragment_runs(voced):
    """What a browser gets: a move reruns the overlay's fragment, whose chart asks to
    be reported once drawn; the report reruns the numbers' fragment."""
    proc, url = start_streamlit({"CELLSEG_DATA": str(voced), "CELLSEG_CONFIG": ""})
    try:
        hello, overlay, notify, numbers, value = asyncio.run(
            asyncio.wait_for(_two_updates(url), 60))
    finally:
        stop_streamlit(proc)
    assert hello == "hello"
    assert overlay.status == numbers.status == "fragment finished"
    assert notify and "Mean Dice" not in overlay.metrics  # the numbers come next
    image = read_image(voced / "images" / f"{IMAGE_ID}.png")
    truth = read_mask(voced / "masks" / f"{IMAGE_ID}.png")
    params = get_preset("lab02").with_values({"threshold.t_nuc": value})
    assert numbers.metrics["Mean Dice"] == \
        f"{score_labels(segment(image, params).labels, truth)['mean_dice']:.4f}"
    assert not (overlay.errors or overlay.exceptions or numbers.errors or numbers.exceptions)
