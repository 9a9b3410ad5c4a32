"""Explore with a learned model and with the automatic presets (issues 22 point 2, 17).

A model is a method like a preset: the same numbers, per-cell table and CSV; the
parameter controls that do not apply to it are not drawn. The automatic presets'
own settings (kind of image, nucleus diameter) have controls, and the fixed steps
they replace are greyed with a line saying why.
"""
from __future__ import annotations

import re

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from app_support import learned, runs, state  # noqa: E402
from cellseg_core.data import demo_datasets  # noqa: E402
from cellseg_core.presets import get_preset  # noqa: E402
from cellseg_core.pipeline import segment  # noqa: E402
from tests._support.apptest import machine_columns, numbers_shown, page_app, run  # noqa: E402

PAGE, TIMEOUT = "explore.py", 60


def _unescaped(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


@pytest.fixture(scope="module")
def small_model():
    from cellseg_core.learn import FeatureSettings, PixelClassifier

    ds = demo_datasets()["demo-cytology"]
    ids = ds.split["train"][:2]
    model = PixelClassifier(FeatureSettings(scale=0.5), n_estimators=5)
    return model.fit([ds.image(i) for i in ids], [ds.mask(i) for i in ids], rng=0)


def _downloads(at) -> dict:
    """Label -> element of the download buttons drawn."""
    return {el.proto.label: el for el in at.get("download_button")}


@pytest.mark.slow
def test_a_learned_model_gets_the_numbers_table_and_csv_of_a_preset(monkeypatch, small_model):
    at = page_app(monkeypatch, PAGE, timeout=TIMEOUT)
    at.session_state[runs.LEARNED_MODELS] = {"mine": small_model}
    at = run(at)
    at = run(at.selectbox(key="explore.model").set_value("mine"))
    source = at.session_state[state.SOURCE_CURRENT]
    seg = small_model.segment(source.image)
    from cellseg_core.metrics import score_labels

    shown = numbers_shown(at)
    assert shown["N/C ratio"] == f"{seg.summary['nc_ratio']:.3f}"
    assert shown["Nuclei"] == f"{seg.summary['n_nuclei']:,}"
    assert shown["Cytoplasm (px)"] == f"{seg.summary['cytoplasm_area']:,}"
    truth = score_labels(seg.labels, source.mask)
    assert shown["Mean Dice"] == f"{truth['mean_dice']:.4f}"
    # The parameter controls are not drawn; a line says why.
    assert not [w for w in [*at.slider, *at.number_input, *at.selectbox]
                if (w.key or "").startswith("explore.p.")]
    assert not [w for w in at.selectbox if w.key == state.preset_key()]
    assert any("do not apply" in _unescaped(i.value) and "mine" in i.value for i in at.info)
    # The sections offered: no steps strip, no threshold methods.
    offered = str(at.get("button_group")[0].proto)
    assert "Per-cell table" in offered and "Downloads" in offered
    assert "Try all thresholds" not in offered and "Intermediate steps" not in offered
    # The per-cell table is the model segmentation's.
    at.session_state["explore.tab"] = "Per-cell table"
    at = run(at)
    assert len(at.dataframe) == 1
    table = machine_columns(at.dataframe[0].value)
    assert len(table) == len(seg.objects) == seg.summary["n_nuclei"]
    assert table["nucleus_area"].tolist() == seg.objects["nucleus_area"].tolist()
    # ... and so is the CSV.
    at.session_state["explore.tab"] = "Downloads"
    at = run(at)
    buttons = _downloads(at)
    assert "Per-cell table (CSV)" in buttons and "Labels (uint8 TIFF)" in buttons
    assert "Parameters (JSON)" not in buttons  # a model has no parameters to save
    # Back to the parameters: the controls are back.
    at = run(at.selectbox(key="explore.model").set_value(learned.PARAMS_CHOICE))
    assert at.slider(key=state.widget_key("threshold.t_nuc")).value is not None


def test_the_built_in_nucleus_model_scores_instances_without_controls(monkeypatch):
    pytest.importorskip("onnxruntime")
    at = page_app(monkeypatch, PAGE, timeout=TIMEOUT)
    at.session_state[state.SOURCE_KIND] = "Dataset"
    at.session_state[state.SOURCE_DATASET] = "demo-fluorescence"
    at = run(at)
    name = "nuclei (built-in model)"
    at = run(at.selectbox(key="explore.model").set_value(name))
    from app_support import methods

    source = at.session_state[state.SOURCE_CURRENT]
    seg = methods.builtin_methods()[name].segment(source.image)
    shown = numbers_shown(at)
    assert shown["Nuclei"] == f"{seg.summary['n_nuclei']:,}"
    assert "N/C ratio" not in shown  # fluorescence labels: no cytoplasm
    if source.instances is not None:
        assert "Instance F1 (IoU ≥ 0.5)" in shown
    assert not [w for w in at.slider if (w.key or "").startswith("explore.p.")]


# --- the automatic presets' own controls (issue 17) -------------------------------------------
def _explore_on(monkeypatch, dataset: str, preset: str) -> AppTest:
    at = page_app(monkeypatch, PAGE, timeout=TIMEOUT)
    at.query_params.update({"dataset": dataset, "preset": preset})
    return run(at)


def test_auto_kind_and_diameter_overrides_change_the_result(monkeypatch):
    at = _explore_on(monkeypatch, "demo-fluorescence", "auto-nuclei")
    source = at.session_state[state.SOURCE_CURRENT]
    kind = at.selectbox(key=state.widget_key("auto.kind"))
    diameter = at.number_input(key=state.widget_key("auto.diameter"))
    assert kind.value == "detect" and diameter.value == 0
    estimated = segment(source.image, get_preset("auto-nuclei"))
    assert numbers_shown(at)["Nuclei"] == f"{estimated.summary['n_nuclei']:,}"
    assert f"nuclei ≈ {estimated.auto['diameter']:.0f} px across (estimated)" in \
        _unescaped(" ".join(m.value for m in at.markdown))
    # A given diameter: the settings derive from it, the count follows the engine's.
    at = run(diameter.set_value(6.0))
    given = segment(source.image, get_preset("auto-nuclei").with_values({"auto.diameter": 6.0}))
    assert at.session_state[state.PARAMS].auto.diameter == 6.0
    assert given.auto["diameter"] == 6.0 and not given.auto["diameter_estimated"]
    assert numbers_shown(at)["Nuclei"] == f"{given.summary['n_nuclei']:,}"
    assert "nuclei ≈ 6 px across (given)" in _unescaped(" ".join(m.value for m in at.markdown))
    # The kind forced: the engine's result for that kind.
    at = run(at.selectbox(key=state.widget_key("auto.kind")).set_value("brightfield"))
    forced = segment(source.image, get_preset("auto-nuclei").with_values(
        {"auto.diameter": 6.0, "auto.kind": "brightfield"}))
    assert forced.auto["kind"] == "brightfield"
    assert numbers_shown(at)["Nuclei"] == f"{forced.summary['n_nuclei']:,}"
    assert forced.summary["n_nuclei"] != given.summary["n_nuclei"]
    assert at.query_params["auto.kind"] == "brightfield"


def test_fixed_steps_an_automatic_preset_ignores_are_greyed_with_a_reason(monkeypatch):
    at = _explore_on(monkeypatch, "demo-fluorescence", "auto-fluorescence")
    fixed = [w for w in [*at.slider, *at.number_input, *at.selectbox, *at.toggle]
             if (w.key or "").startswith("explore.p.") and not
             (w.key or "").startswith(("explore.p.auto.", "explore.p.mode"))]
    assert fixed and all(w.disabled for w in fixed)
    assert any("do not apply" in c.value for c in at.caption)
    assert not at.number_input(key=state.widget_key("auto.diameter")).disabled
    # Kind off: the fixed pipeline, every control live again, no diameter box.
    at = run(at.selectbox(key=state.widget_key("auto.kind")).set_value("off"))
    live = [w for w in [*at.slider, *at.number_input] if (w.key or "").startswith("explore.p.")]
    assert live and not any(w.disabled for w in live)
    assert state.widget_key("auto.diameter") not in {w.key for w in at.number_input}


def test_try_all_thresholds_leaves_automatic_presets_out(monkeypatch):
    at = _explore_on(monkeypatch, "demo-fluorescence", "auto-fluorescence")
    at.session_state["explore.tab"] = "Try all thresholds"
    at = run(at)
    assert any("does not apply" in i.value for i in at.info)
    assert not at.get("dataframe") or not [d for d in at.dataframe
                                            if d.key == "explore.try_all_table"]
