"""The Optimise page and the long-run helpers through Streamlit's AppTest."""
from __future__ import annotations

import threading

import pandas as pd
import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from app_support import state  # noqa: E402
from tests._support.apptest import finish_run, gated_runs_script, page_harness, run as _run  # noqa: E402

PAGE, TIMEOUT = "optimise.py", 120
HARNESS = page_harness(PAGE)


def _optimise(at: AppTest):
    return finish_run(at, "optimise")


def test_defaults_are_the_course_ranges(app_voced):
    at = _run(app_voced)
    assert at.session_state["optimise.dataset"] == "voced"
    assert at.session_state["optimise.names"] == ["threshold.t_nuc", "threshold.t_bg"]
    assert at.session_state["optimise.range.threshold.t_nuc"] == (0.10, 0.70)
    assert at.session_state["optimise.range.threshold.t_bg"] == (0.50, 0.99)
    assert at.number_input(key="optimise.n_calls").value == 50
    at.multiselect(key="optimise.names").set_value(
        ["cleanup.min_nucleus_size", "blur.sigma", "cleanup.opening_radius"])
    at = _run(at)
    assert at.session_state["optimise.range.cleanup.min_nucleus_size"] == (10, 500)
    assert at.session_state["optimise.range.blur.sigma"] == (0.0, 3.0)
    assert at.session_state["optimise.range.cleanup.opening_radius"] == (0, 5)


def test_eight_calls_reproducible_and_not_worse_than_the_start(app_voced):
    at = _run(app_voced)
    assert at.session_state["optimise.start"] == "lab01"
    at.number_input(key="optimise.n_calls").set_value(8)
    at.number_input(key="optimise.seed").set_value(3)
    at, first = _optimise(at)
    at, second = _optimise(at)            # same session, same settings: a second run
    assert first is not second
    h1, h2 = first.result["history"], second.result["history"]
    assert len(h1) == 9 and h1["call"].tolist() == list(range(9))   # call 0 = the start
    pd.testing.assert_frame_equal(h1, h2)
    assert first.result["best"] == second.result["best"]
    scores = first.result["scores"]
    start_train = scores[("start", "train")]["mean_dice"]
    best_train = scores[("best", "train")]["mean_dice"]
    assert start_train == pytest.approx(0.7083, abs=0.002)      # lab01 on the 160 train images
    assert best_train >= start_train
    assert best_train == pytest.approx(h1["score"].max())
    assert scores[("best", "test")]["mean_dice"] > 0.6
    # Shown: train/test metrics, the convergence curve and the exact surface.
    labels = [m.label for m in at.metric]
    assert any(label.startswith("Mean Dice, train (160") for label in labels)
    assert any(label.startswith("Mean Dice, test (40") for label in labels)
    assert {c.key for c in at.get("plotly_chart")} >= {"optimise.convergence",
                                                         "optimise.surface"}
    surface = first.result["surface"]
    assert surface is not None and surface.thresholds.size == 256
    assert surface.best_score >= best_train - 1e-9   # the grid's max bounds any call
    # "Use in Explore" loads the best params through the shared door.
    at = _run(at.button(key="optimise.use").click())
    assert at.session_state[state.PARAMS] == first.result["best"]
    assert at.session_state[state.widget_key("threshold.t_nuc")] == \
        first.result["best"].threshold.t_nuc


def test_stratified_split_made_on_the_page(app_voced):
    at = _run(app_voced)
    at.radio(key="optimise.split_kind").set_value("a stratified split made here")
    at = _run(at)
    at.slider(key="optimise.test_fraction").set_value(0.25)
    at.checkbox(key="optimise.drop_empty").check()
    at = _run(at)
    # 200 images, 9 without nucleus dropped: ceil(0.25 * 191) = 48 test, 143 train.
    assert any("143 train images" in c.value and "48 test images" in c.value
               for c in at.caption)


def test_no_surface_for_pipelines_with_clean_up(app_voced):
    at = _run(app_voced)
    at.selectbox(key="optimise.start").set_value("lab03v2")
    at = _run(at)
    at.number_input(key="optimise.n_calls").set_value(3)
    at, run = _optimise(at)
    assert run.result["surface"] is None
    assert any("two-threshold" in i.value for i in at.info)


WAITER = gated_runs_script(("first", "second"))


def test_a_second_run_is_refused_while_one_is_going():
    at = _run(AppTest.from_string(WAITER, default_timeout=30))
    at = _run(at.button(key="first").click())
    first = at.session_state["first.run"]
    assert first.running
    at = _run(at.button(key="second").click())
    assert "second.run" not in at.session_state
    assert "already going (first job" in at.warning[0].value
    at.session_state["gate"].set()
    assert first.join(10) and first.result == 42 and first.status == "done"
    at = _run(at.button(key="second").click())          # free again
    second = at.session_state["second.run"]
    at.session_state["gate"].set()
    assert second.join(10) and second.status == "done"
    assert not at.warning
    # Stop: the work ends at its next progress report, marked cancelled.
    at.session_state["gate"] = threading.Event()
    at = _run(at.button(key="first").click())
    third = at.session_state["first.run"]
    assert third is not first and third.running
    third.cancel()
    at.session_state["gate"].set()
    assert third.join(10) and third.status == "cancelled" and third.result is None
