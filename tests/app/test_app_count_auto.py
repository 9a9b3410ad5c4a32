"""Issue 17 point 6 on the Count page: the automatic presets (auto-nuclei,
auto-fluorescence) beside the classic pipeline and the models, on any kind of image,
with Explore's kind and diameter overrides; the shown numbers are the core's."""
from __future__ import annotations

import io
import re

import numpy as np
import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from app_support import count_auto, state  # noqa: E402
from cellseg_core import segment  # noqa: E402
from cellseg_core.autoseg import describe  # noqa: E402
from cellseg_core.data.catalog import available_datasets  # noqa: E402
from cellseg_core.metrics import match_instances  # noqa: E402
from cellseg_core.presets import get_preset  # noqa: E402
from tests._support.apptest import metric, page_app, run, upload_harness  # noqa: E402
from tests._support.data import shared_set  # noqa: E402

PAGE, TIMEOUT = "count.py", 180
HISTO = "dsb2018_histo"


def _unescaped(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _captions(at) -> str:
    return "\n".join(_unescaped(c.value) for c in at.caption)


def _histo(monkeypatch):
    """The data folder and the first training image of the stained DSB set (skips
    when the set is absent)."""
    folder = shared_set(HISTO)
    monkeypatch.setenv("CELLSEG_DATA", str(folder))
    ds = available_datasets()[HISTO]
    image_id = ds.split["train"][0]
    return folder, image_id, ds.image(image_id), ds.instances(image_id)


def test_count_offers_the_nucleus_presets_and_not_auto_cytology():
    assert count_auto.PRESETS == ("auto-nuclei", "auto-fluorescence")
    assert "off" not in count_auto.KINDS and "detect" in count_auto.KINDS


@pytest.mark.slow
def test_auto_nuclei_on_a_stained_image_shows_the_cores_count_kind_and_diameter(monkeypatch):
    folder, image_id, image, truth = _histo(monkeypatch)
    at = page_app(monkeypatch, PAGE, folder, timeout=TIMEOUT)
    at.session_state[state.SOURCE_KIND] = "Dataset"
    at.session_state[state.SOURCE_DATASET] = HISTO
    at.session_state[state.SOURCE_ID] = image_id
    at.session_state["count.method"] = "auto-nuclei"
    at = run(at)
    assert not at.error, [e.value for e in at.error]
    assert at.radio(key="count.source").value == "image from the sidebar"
    core = segment(image, get_preset("auto-nuclei"))
    assert core.auto["kind"] == "stained"
    assert int(metric(at, "Nuclei counted")) == int(core.nuclei.max())
    assert int(metric(at, "True nuclei")) == int(truth.max())
    f1 = match_instances(core.nuclei, truth)["f1"]
    assert metric(at, "F1 · mean AP (DSB)").startswith(f"{f1:.3f} · ")
    line = describe(core.auto)
    assert "nuclei ≈" in line and "(estimated, best of 5 sizes tried)" in line
    assert f"auto-nuclei · automatic: {line}" in _captions(at)
    # Explore's override widgets, under the page's own keys; the steps are greyed.
    assert at.selectbox(key="count.auto.kind").value == "detect"
    assert "off" not in at.selectbox(key="count.auto.kind").options
    assert at.number_input(key="count.auto.diameter").value == 0.0
    assert at.selectbox(key="count.threshold.method").disabled
    assert at.toggle(key="count.watershed.enabled").disabled
    assert "do not apply" in _captions(at)

    # A diameter given: the core's result for that diameter (another count here).
    given = float(round(2 * core.auto["diameter"]))
    bigger = segment(image, get_preset("auto-nuclei").with_values({"auto.diameter": given}))
    assert bigger.nuclei.max() != core.nuclei.max()
    at = run(at.number_input(key="count.auto.diameter").set_value(given))
    assert int(metric(at, "Nuclei counted")) == int(bigger.nuclei.max())
    assert f"nuclei ≈ {given:.0f} px across (given)" in _captions(at)

    # The kind forced: the core's result for that kind.
    forced = segment(image, get_preset("auto-nuclei").with_values(
        {"auto.diameter": given, "auto.kind": "brightfield"}))
    at = run(at.selectbox(key="count.auto.kind").set_value("brightfield"))
    assert int(metric(at, "Nuclei counted")) == int(forced.nuclei.max())
    assert "brightfield (1.00)" in _captions(at)

    # Another preset: its own kind and diameter, not the overrides of the last one.
    at = run(at.selectbox(key="count.method").set_value("auto-fluorescence"))
    assert at.selectbox(key="count.auto.kind").value == "fluorescence"
    assert at.number_input(key="count.auto.diameter").value == 0.0
    fluo = segment(image, get_preset("auto-fluorescence"))
    assert int(metric(at, "Nuclei counted")) == int(fluo.nuclei.max())

    # Back to the classic pipeline: the steps are live again.
    at = run(at.selectbox(key="count.method").set_value(
        "classic pipeline (the steps below)"))
    assert not at.selectbox(key="count.threshold.method").disabled
    assert not at.toggle(key="count.watershed.enabled").disabled


def _png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="PNG")
    return out.getvalue()


@pytest.mark.slow
def test_a_stained_upload_without_truth_is_counted_once_auto_nuclei_is_chosen(monkeypatch):
    _, _, image, _ = _histo(monkeypatch)
    crop = (np.clip(image[:128, :128], 0, 1) * 255 + 0.5).astype(np.uint8)
    monkeypatch.delenv("CELLSEG_DATA", raising=False)
    monkeypatch.delenv("CELLSEG_CONFIG", raising=False)
    at = AppTest.from_string(upload_harness(PAGE), default_timeout=TIMEOUT)
    at.session_state["test.upload"] = ("stained.png", _png(crop))
    at = run(at)
    source = at.session_state[state.SOURCE_CURRENT]
    assert source.kind == "cytology" and source.instances is None
    # The classic (fluorescence) pipeline: the seed image, as before, and why.
    assert at.radio(key="count.source").options == ["seed image (synthetic)"]
    assert "choose one under Method" in _captions(at)
    at = run(at.selectbox(key="count.method").set_value("auto-nuclei"))
    assert at.radio(key="count.source").value == "image from the sidebar"
    core = segment(source.image, get_preset("auto-nuclei"))
    assert int(metric(at, "Nuclei counted")) == int(core.nuclei.max()) > 0
    assert describe(core.auto) in _captions(at)
    # A nucleus model counts any image too: the same image stays chosen.
    from cellseg_core.learn import NucleusModel

    at = run(at.selectbox(key="count.method").set_value("nuclei (built-in model)"))
    assert at.radio(key="count.source").value == "image from the sidebar"
    model = NucleusModel().segment(source.image)
    assert int(metric(at, "Nuclei counted")) == int(model.nuclei.max())


def test_the_count_overlay_keeps_the_colours_of_a_stained_image():
    from app_support import count_figures

    rgb = np.zeros((8, 8, 3), np.float32)
    rgb[...] = (0.8, 0.5, 0.9)  # a pink-purple stain
    instances = np.zeros((8, 8), np.int32)
    instances[2:4, 2:4] = 1
    out = count_figures.instance_overlay_rgb(rgb, instances)
    # Away from the nucleus: the image's own colour, stretched by its 99.5th percentile.
    np.testing.assert_array_equal(out[7, 7], np.round(np.array([0.8, 0.5, 0.9]) / 0.9 * 255))
    gray = count_figures.instance_overlay_rgb(rgb[..., 0], instances)
    assert (gray[7, 7] == gray[7, 7, 0]).all()  # a gray image stays gray
