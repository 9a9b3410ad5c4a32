"""The app frame and the Explore page through Streamlit's AppTest (no browser).

Widgets are set by key, and the numbers the page shows are compared with the
engine's own values computed here.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from app_support import state  # noqa: E402
from cellseg_core import read_image, read_mask, score_labels, segment  # noqa: E402
from cellseg_core.presets import get_preset  # noqa: E402
from tests._support.apptest import numbers_shown, page_harness, run as _run  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
APP = str(REPO / "app.py")
IMAGE_ID = "007"
PAGE, TIMEOUT = "explore.py", 60
HARNESS = page_harness(PAGE)
T_NUC = state.widget_key("threshold.t_nuc")


def _metric(at, label: str) -> str:
    shown = numbers_shown(at)
    assert label in shown, f"no number {label!r}; shown: {list(shown)}"
    return shown[label]


def _engine_dice(voced: Path, image_id: str, params) -> dict:
    image = read_image(voced / "images" / f"{image_id}.png")
    truth = read_mask(voced / "masks" / f"{image_id}.png")
    return score_labels(segment(image, params).labels, truth)


def test_starts_on_demo_data_without_configuration(monkeypatch):
    monkeypatch.delenv("CELLSEG_DATA", raising=False)
    monkeypatch.delenv("CELLSEG_CONFIG", raising=False)
    at = _run(AppTest.from_file(APP, default_timeout=60))
    assert not at.error
    datasets = at.sidebar.selectbox(key=state.SOURCE_DATASET)
    assert datasets.options == ["demo-cytology", "demo-fluorescence"]
    # The demo cytology set has masks, so the scores are shown from the start.
    assert 0.0 <= float(_metric(at, "Mean Dice")) <= 1.0
    assert at.query_params["dataset"] == "demo-cytology"
    assert at.query_params["preset"] == state.DEFAULT_PRESET


def _pick(at: AppTest, dataset: str, image_id: str | None = None) -> AppTest:
    """Choose a dataset image in the sidebar.

    Set through the widgets' session keys, as a link or a click would.
    """
    at.session_state[state.SOURCE_KIND] = "Dataset"
    at.session_state[state.SOURCE_DATASET] = dataset
    if image_id is not None:
        at.session_state[state.SOURCE_ID] = image_id
    return _run(at)


def test_voced_image_lab02_then_threshold(app_voced, voced):
    at = _pick(app_voced, "voced", IMAGE_ID)
    assert at.sidebar.selectbox(key=state.SOURCE_DATASET).value == "voced"
    assert at.sidebar.selectbox(key=state.SOURCE_ID).value == IMAGE_ID
    at.selectbox(key=state.preset_key()).set_value("lab01")
    _run(at)
    at.selectbox(key=state.preset_key()).set_value("lab02")
    _run(at)
    lab02 = _engine_dice(voced, IMAGE_ID, get_preset("lab02"))
    assert _metric(at, "Mean Dice") == f"{lab02['mean_dice']:.4f}"
    assert _metric(at, "Dice nucleus") == f"{lab02['dice_nucleus']:.4f}"
    assert at.slider(key=T_NUC).value == pytest.approx(0.3904)

    at.slider(key=T_NUC).set_value(0.45)
    _run(at)
    moved = _engine_dice(voced, IMAGE_ID,
                         get_preset("lab02").with_values({"threshold.t_nuc": 0.45}))
    assert moved["mean_dice"] != pytest.approx(lab02["mean_dice"], abs=1e-4)
    assert _metric(at, "Mean Dice") == f"{moved['mean_dice']:.4f}"
    # The view is in the URL: dataset, image, preset and the one changed parameter.
    query = dict(at.query_params.items())
    assert query == {"dataset": "voced", "image": IMAGE_ID, "preset": "lab02",
                     "threshold.t_nuc": "0.45"}

    at.button(key="explore.reset").click()
    _run(at)
    assert at.slider(key=T_NUC).value == pytest.approx(0.3904)
    assert _metric(at, "Mean Dice") == f"{lab02['mean_dice']:.4f}"


def test_previous_next_buttons(app_voced):
    at = _pick(app_voced, "voced", "000")
    at.sidebar.button(key="source.next").click()
    _run(at)
    assert at.session_state[state.SOURCE_ID] == "001"
    at = _pick(AppTest.from_string(HARNESS, default_timeout=60), "voced", "000")
    at.sidebar.button(key="source.prev").click()  # wraps round to the last image
    _run(at)
    assert at.session_state[state.SOURCE_ID] == "199"
    assert at.query_params["image"] == "199"


def test_link_reopens_the_view(voced, monkeypatch):
    monkeypatch.setenv("CELLSEG_DATA", str(voced))
    at = AppTest.from_file(APP, default_timeout=60)  # first run: the real app.py
    at.query_params.update({"dataset": "voced", "image": IMAGE_ID, "preset": "lab03v2",
                            "threshold.t_bg": "0.95", "blur.kind": "median"})
    _run(at)
    assert at.sidebar.selectbox(key=state.SOURCE_ID).value == IMAGE_ID
    expected = get_preset("lab03v2").with_values({"threshold.t_bg": 0.95,
                                                  "blur.kind": "median"})
    assert at.session_state[state.PARAMS] == expected
    assert at.slider(key=state.widget_key("threshold.t_bg")).value == pytest.approx(0.95)
    scores = _engine_dice(voced, IMAGE_ID, expected)
    assert _metric(at, "Mean Dice") == f"{scores['mean_dice']:.4f}"


def test_bad_link_is_an_error_message_not_a_traceback(app_voced):
    at = app_voced
    at.query_params.update({"dataset": "voced", "image": "../../etc/passwd",
                            "threshold.t_nuc": "7"})
    _run(at)
    shown = " ".join(str(w.value) for w in [*at.warning, *at.error])
    shown = re.sub(r"\\(.)", r"\1", shown)  # a link's text is shown escaped (markdown)
    assert "threshold.t_nuc" in shown
    assert "not found" in shown
    assert at.session_state[state.PARAMS] == get_preset(state.DEFAULT_PRESET)


def test_refused_combination_keeps_params(app_voced):
    at = _run(app_voced)
    at.slider(key=T_NUC).set_value(1.0)  # above t_bg = 0.99: refused with a reason
    _run(at)
    assert any("t_bg" in str(e.value) for e in at.error)
    assert at.session_state[state.PARAMS] == get_preset(state.DEFAULT_PRESET)
    assert at.slider(key=T_NUC).value == pytest.approx(0.3904)


def test_fluorescence_demo_with_auto_preset():
    at = _pick(AppTest.from_string(HARNESS, default_timeout=60), "demo-fluorescence")
    at.selectbox(key=state.preset_key()).set_value("auto-fluorescence")
    _run(at)
    assert at.radio(key=state.widget_key("mode")).value == "fluorescence"
    assert float(_metric(at, "Dice nucleus")) > 0.5
    assert int(_metric(at, "Nuclei").replace(",", "")) >= 1
    assert not at.error
    # What the automatic method read off the image: the kind, its confidence, the size.
    line = next(m.value for m in at.markdown if "Automatic:" in m.value)
    assert re.search(r"Automatic: fluorescence \(\d\.\d\d\) · nuclei ≈ \d+ px across "
                     r"\(estimated\)", line), line


_UPLOAD_SCRIPT = """
import io
import streamlit as st
from app_support import controls, state

class Upload(io.BytesIO):
    name = "params.json"

state.current_params()
st.session_state["explore.params_upload"] = Upload(st.session_state["text"].encode())
controls._on_params_upload("explore")
if "explore.params_upload_error" in st.session_state:
    st.error(st.session_state["explore.params_upload_error"])
"""


@pytest.mark.parametrize("text, error", [
    (get_preset("lab03v2").with_values({"threshold.t_nuc": 0.41}).to_json(), None),
    (json.dumps({"threshold": {"t_nuc": "x"}}), "threshold.t_nuc"),
    ("{not json", "not valid JSON"),
    (json.dumps({"schema_version": 99}), "newer"),
])
def test_params_json_upload_goes_through_the_door(text, error):
    at = AppTest.from_string(_UPLOAD_SCRIPT, default_timeout=30)
    at.session_state["text"] = text
    _run(at)
    if error is None:
        expected = get_preset("lab03v2").with_values({"threshold.t_nuc": 0.41})
        assert at.session_state[state.PARAMS] == expected
        assert at.session_state[T_NUC] == pytest.approx(0.41)
        assert at.session_state[state.widget_key("cleanup.fill_holes")] is True
        assert not at.error
    else:
        assert len(at.error) == 1
        assert error in re.sub(r"\\(.)", r"\1", at.error[0].value)  # shown escaped
        assert at.session_state[state.PARAMS] == get_preset(state.DEFAULT_PRESET)


@pytest.mark.parametrize("kind, extra", [
    ("Synthetic", {"source.synthetic.kind": "cytology"}),
    ("Synthetic", {"source.synthetic.kind": "fluorescence"}),
    ("Sample", {}),
])
def test_other_sources_segment_without_error(kind, extra):
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state[state.SOURCE_KIND] = kind
    for key, value in extra.items():
        at.session_state[key] = value
    _run(at)
    assert not at.error
    assert int(_metric(at, "Nuclei").replace(",", "")) >= 0
    if kind == "Synthetic":  # generated with its exact mask: scores are shown
        label = "Mean Dice" if extra["source.synthetic.kind"] == "cytology" else "Dice nucleus"
        assert 0.0 <= float(_metric(at, label)) <= 1.0
    else:
        assert "Mean Dice" not in numbers_shown(at)  # no ground truth


def test_large_image_is_shown_downsampled_and_segmented_in_full(tmp_path, monkeypatch):
    import numpy as np
    from PIL import Image

    folder = tmp_path / "big"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    image = np.full((2100, 1500), 255, np.uint8)
    image[1000:1010, 700:705] = 0  # a 50-pixel nucleus: lost by a 3x stride
    Image.fromarray(image).save(folder / "images" / "big.png")
    monkeypatch.setenv("CELLSEG_DATA", str(folder))
    at = AppTest.from_string(HARNESS, default_timeout=120)
    _pick(at, "big", "big")
    assert any("shown at 1/3 scale" in i.value for i in at.info)
    assert _metric(at, "Nucleus (px)") == "50"


def test_controls_keep_the_params_when_the_page_had_no_image(app_voced):
    at = _pick(app_voced, "voced", IMAGE_ID)
    at.slider(key=T_NUC).set_value(0.42)
    _run(at)
    at.session_state[state.SOURCE_KIND] = "Upload"  # no file yet: no controls drawn
    _run(at)
    assert any("Upload an image" in i.value for i in at.info)
    _pick(at, "voced", IMAGE_ID)
    assert at.slider(key=T_NUC).value == pytest.approx(0.42)
    assert at.selectbox(key=state.preset_key()).value == state.DEFAULT_PRESET


def _live_chart(at, key: str) -> dict:
    """The data sent to the browser for a ``live_plot`` chart: figure (JSON text),
    config, notify..."""
    charts = [json.loads(c.proto.json) for c in at.get("bidi_component")]
    found = [c for c in charts if c["name"] == key]
    assert found, f"no live chart {key!r}; shown: {[c['name'] for c in charts]}"
    return found[0]


def _overlay_layers(at) -> dict:
    """The overlay chart's label layers as sent to the browser: name -> layout image."""
    images = json.loads(_live_chart(at, "explore.overlay")["figure"])["layout"]["images"]
    return {im["name"]: im for im in images if im["layer"] == "above"}


def test_overlay_options_redraw_the_overlay(app_voced):
    at = _pick(app_voced, "voced", IMAGE_ID)
    fill = _overlay_layers(at)
    assert set(fill) == {"prediction", "ground truth"}
    assert fill["prediction"]["opacity"] == pytest.approx(0.4)
    # The options are drawn after the overlay (it goes to the browser first) and read
    # from the session before it: a change shows in the same run.
    at.slider(key="explore.opacity").set_value(0.9)
    _run(at)
    assert _overlay_layers(at)["prediction"]["opacity"] == pytest.approx(0.9)
    at.slider(key="explore.opacity").set_value(0.5)
    at.radio(key="explore.style").set_value("contour")
    _run(at)
    contour = _overlay_layers(at)
    assert contour["prediction"]["opacity"] == pytest.approx(0.8)  # outlines stay visible
    assert contour["prediction"]["source"] != fill["prediction"]["source"]
    assert at.slider(key="explore.opacity").value == pytest.approx(0.5)


def test_threshold_move_reruns_only_the_overlay_once_the_browser_reports(app_voced, voced):
    """With a browser that reports drawn overlays, a value change that leaves the
    controls as drawn reruns the overlay's fragment alone, asking the browser to report
    when that overlay is drawn (the numbers follow then); a change that alters the
    controls still reruns the whole page."""
    at = _pick(app_voced, "voced", IMAGE_ID)
    assert _live_chart(at, "explore.overlay")["notify"] == "hello"  # does it report?
    at.session_state["explore.browser_reports"] = True  # it did (JavaScript, not here)
    _run(at)
    assert _live_chart(at, "explore.overlay")["notify"] is None  # numbers are current
    dice = _metric(at, "Mean Dice")

    # The first move away from the preset adds t_nuc to the preset's list of changed
    # parameters (drawn with the controls): a whole-page rerun.
    at.slider(key=T_NUC).set_value(0.44)
    _run(at)
    assert _live_chart(at, "explore.overlay")["notify"] is None
    assert _metric(at, "Mean Dice") != dice

    at.slider(key=T_NUC).set_value(0.45)
    _run(at)
    assert _live_chart(at, "explore.overlay")["notify"]  # numbers are for 0.44
    assert not numbers_shown(at), "the numbers were recomputed before the overlay was drawn"
    assert "t_nuc = 0.450" in at.markdown[0].value  # the overlay's heading is current

    at.run()  # what the browser's report (or any full rerun) brings
    moved = _engine_dice(voced, IMAGE_ID, get_preset(state.DEFAULT_PRESET)
                         .with_values({"threshold.t_nuc": 0.45}))
    assert _metric(at, "Mean Dice") == f"{moved['mean_dice']:.4f}"
    assert _live_chart(at, "explore.overlay")["notify"] is None

    # The method changes which controls there are: the whole page reruns at once.
    at.selectbox(key=state.widget_key("threshold.method")).set_value("otsu")
    _run(at)
    assert numbers_shown(at) and not [s for s in at.slider if s.key == T_NUC]


def test_sections_under_the_numbers_show_one_at_a_time(app_voced):
    at = _pick(app_voced, "voced", IMAGE_ID)
    assert _live_chart(at, "explore.steps")  # the default section: the steps strip
    assert not at.dataframe
    at.segmented_control(key="explore.tab").set_value("Per-cell table")
    _run(at)
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) >= 1
    assert not [c for c in at.get("bidi_component") if "steps" in c.proto.json]
    at.segmented_control(key="explore.tab").set_value("Error map")
    _run(at)
    assert _live_chart(at, "explore.errors")
    at.segmented_control(key="explore.tab").set_value("Downloads")
    _run(at)
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels[:4] == ["Labels (uint8 TIFF)", "Nucleus instances (uint16 TIFF)",
                      "Per-cell table (CSV)", "Parameters (JSON)"]
