"""The Compare page through Streamlit's AppTest (no browser), on VocEd and on demo data."""
from __future__ import annotations


import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from app_support import state  # noqa: E402
from cellseg_core.presets import get_preset  # noqa: E402
from tests._support.apptest import finish_run, page_harness, run as _run  # noqa: E402

PAGE, TIMEOUT = "compare.py", 120
HARNESS = page_harness(PAGE)
TABS = ["N/C scatter", "Per-image Dice", "Per image", "Worst cases"]


def _compare(at: AppTest) -> AppTest:
    """Click Run, wait for the background run, then draw the results."""
    return finish_run(at, "compare")[0]


def _table(at: AppTest):
    tables = [d.value for d in at.dataframe if "method" in d.value.columns]
    assert tables, "no summary table shown"
    return tables[0].set_index("method")


def test_course_numbers_on_the_voced_test_split(app_voced):
    at = _run(app_voced)
    assert at.session_state["compare.dataset"] == "voced"
    assert at.session_state["compare.split"] == "test"
    at.multiselect(key="compare.methods").set_value(["lab01", "lab02", "lab03v2"])
    table = _table(_compare(at))
    assert list(table.index) == ["lab01", "lab02", "lab03v2"]
    assert table.loc["lab01", "mean Dice"] == pytest.approx(0.712, abs=0.002)
    assert table.loc["lab02", "mean Dice"] == pytest.approx(0.792, abs=0.002)
    assert (table["images"] == 40).all()
    # Lab 02's pooled Dice is the course's published "about 0.81".
    assert 0.80 <= table.loc["lab02", "pooled Dice"] <= 0.83
    # Both N/C definitions (issue 19): the nucleus/cell ratio's error beside the N/C one.
    run = at.session_state["compare.run"]
    for method in ("lab01", "lab02"):
        per_image = run.result[method].per_image
        ok = per_image[["nucleus_cell_ratio_pred", "nucleus_cell_ratio_true"]].notna().all(axis=1)
        mae = (per_image["nucleus_cell_ratio_pred"] - per_image["nucleus_cell_ratio_true"]
               )[ok].abs().mean()
        assert table.loc[method, "nucleus/cell MAE"] == pytest.approx(mae)
    # Every view draws without an exception; the worst cases are the lowest Dice.
    for tab in TABS:
        at.session_state["compare.tab"] = tab
        _run(at)
    at.session_state["compare.method"] = "lab02"
    at.session_state["compare.tab"] = "Worst cases"
    _run(at)
    run = at.session_state["compare.run"]
    worst = run.result["lab02"].per_image.nsmallest(4, "mean_dice")["id"].tolist()
    shown = [b.key.rsplit(".", 1)[1] for b in at.button if b.key.startswith("compare.open.")]
    assert shown == worst
    assert len(at.get("plotly_chart")) == 4


def test_open_a_worst_case_in_explore_with_the_method(app_voced):
    at = _run(app_voced)
    at.multiselect(key="compare.methods").set_value(["lab01"])
    _compare(at)
    at.session_state["compare.tab"] = "Worst cases"
    _run(at)
    button = next(b for b in at.button if b.key.startswith("compare.open."))
    image_id = button.key.rsplit(".", 1)[1]
    at = _run(button.click())
    assert at.session_state[state.SOURCE_DATASET] == "voced"
    assert at.session_state[state.SOURCE_ID] == image_id
    assert at.session_state[state.PARAMS] == get_preset("lab01")
    assert at.session_state[state.PRESET] == "lab01"
    assert at.session_state[state.widget_key("threshold.t_nuc")] == 0.45


def test_results_are_reused_without_recomputing(app_voced):
    at = _run(app_voced)
    at.multiselect(key="compare.methods").set_value(["lab02"])
    first = _compare(at).session_state["compare.run"].result["lab02"]
    at.multiselect(key="compare.methods").set_value(["lab02", "lab01"])
    second = _compare(at).session_state["compare.run"].result
    assert second["lab02"] is first           # from the session's store, not re-run
    assert list(second) == ["lab02", "lab01"]


def test_current_explore_params_are_a_method(app_voced):
    at = _run(app_voced)
    at.session_state[state.PARAMS] = get_preset("lab01").with_values({"threshold.t_bg": 0.95})
    at.multiselect(key="compare.methods").set_value(["explore (current)", "lab01"])
    table = _table(_compare(at))
    assert table.loc["explore (current)", "mean Dice"] != table.loc["lab01", "mean Dice"]


def test_runs_on_demo_data_without_configuration(monkeypatch):
    monkeypatch.delenv("CELLSEG_DATA", raising=False)
    monkeypatch.delenv("CELLSEG_CONFIG", raising=False)
    at = _run(AppTest.from_string(HARNESS, default_timeout=120))
    assert at.selectbox(key="compare.dataset").options == ["demo-cytology",
                                                           "demo-fluorescence"]
    at.multiselect(key="compare.methods").set_value(["lab02", "auto-cytology"])
    table = _table(_compare(at))
    assert ((table["mean Dice"] > 0.3) & (table["mean Dice"] <= 1.0)).all()
    assert not at.error


@pytest.mark.slow
def test_unsupervised_baselines_are_fitted_on_the_train_split_and_scored(monkeypatch):
    """Issue 8, 5a: k-means and mean-shift sit in Compare next to the presets; the
    scores shown equal fitting them on the training split and evaluating directly."""
    from cellseg_core import evaluation
    from cellseg_core.data import demo_datasets
    from cellseg_core.learn import KMeansBaseline, MeanShiftBaseline, train_on_dataset

    monkeypatch.delenv("CELLSEG_DATA", raising=False)
    monkeypatch.delenv("CELLSEG_CONFIG", raising=False)
    at = _run(AppTest.from_string(HARNESS, default_timeout=120))
    options = at.multiselect(key="compare.methods").options
    assert {"baseline: k-means", "baseline: mean-shift"} <= set(options)
    at.multiselect(key="compare.methods").set_value(
        ["lab03v2", "baseline: k-means", "baseline: mean-shift"])
    table = _table(_compare(at))
    ds = demo_datasets()["demo-cytology"]
    test_ids = ds.split["test"]
    for name, cls in (("baseline: k-means", KMeansBaseline),
                      ("baseline: mean-shift", MeanShiftBaseline)):
        model = train_on_dataset(ds, ds.split["train"], model=cls(), rng=0)
        expected = evaluation.evaluate(ds, test_ids, model).summary["mean_dice"]
        assert table.loc[name, "mean Dice"] == pytest.approx(expected, abs=1e-9)
    # the worst cases of a baseline draw its own segmentations, no "Open in Explore"
    at.session_state["compare.method"] = "baseline: k-means"
    at.session_state["compare.tab"] = "Worst cases"
    at = _run(at)
    assert len(at.get("plotly_chart")) == 4
    assert all(b.disabled for b in at.button if b.key.startswith("compare.open."))
