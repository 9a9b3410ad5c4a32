"""Context kept between pages (issue 22 point 4): a server with real data opens on it,
and "Use in Explore" after an optimisation opens the dataset it was about; the
search never runs on an automatic preset, which would ignore every searched value."""
from __future__ import annotations

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from app_support import learned, state  # noqa: E402
from cellseg_core.data import demo_datasets  # noqa: E402
from tests._support.apptest import finish_run, page_app, page_harness, run  # noqa: E402

REPO_APP = page_harness("explore.py")


def test_a_server_with_real_data_opens_on_it_not_on_the_demo(monkeypatch, voced):
    at = run(page_app(monkeypatch, "explore.py", voced))
    assert at.sidebar.selectbox(key=state.SOURCE_DATASET).value == "voced"
    assert at.session_state[state.SOURCE_CURRENT].dataset == "voced"
    assert at.query_params["dataset"] == "voced"


@pytest.mark.slow
def test_use_in_explore_opens_the_optimised_dataset_not_the_sidebars_image(monkeypatch):
    at = page_app(monkeypatch, "optimise.py", timeout=120)
    at.session_state[state.SOURCE_KIND] = "Synthetic"  # what the sidebar held
    at.session_state["explore.model"] = "some model"
    at = run(at)
    assert at.session_state["optimise.dataset"] == "demo-cytology"
    at.number_input(key="optimise.n_calls").set_value(3)
    at, job = finish_run(at, "optimise")
    at = run(at.button(key="optimise.use").click())
    train = demo_datasets()["demo-cytology"].split["train"]
    assert at.session_state[state.SOURCE_KIND] == "Dataset"
    assert at.sidebar.selectbox(key=state.SOURCE_DATASET).value == "demo-cytology"
    assert at.session_state[state.SOURCE_ID] == train[0]
    source = at.session_state[state.SOURCE_CURRENT]
    assert (source.dataset, source.image_id) == ("demo-cytology", train[0])
    assert at.session_state[state.PARAMS] == job.result["best"]
    assert at.session_state["explore.model"] == learned.PARAMS_CHOICE


@pytest.mark.slow
def test_use_in_explore_keeps_the_sidebars_image_when_it_is_of_that_dataset(monkeypatch):
    at = page_app(monkeypatch, "optimise.py", timeout=120)
    train = demo_datasets()["demo-cytology"].split["train"]
    at.session_state[state.SOURCE_KIND] = "Dataset"
    at.session_state[state.SOURCE_DATASET] = "demo-cytology"
    at.session_state[state.SOURCE_ID] = train[3]
    at = run(at)
    at.number_input(key="optimise.n_calls").set_value(2)
    at, _ = finish_run(at, "optimise")
    at = run(at.button(key="optimise.use").click())
    assert at.session_state[state.SOURCE_ID] == train[3]


@pytest.mark.slow
def test_optimising_from_an_automatic_preset_searches_the_fixed_pipeline(monkeypatch):
    at = page_app(monkeypatch, "optimise.py", timeout=120)
    at.session_state["optimise.dataset"] = "demo-fluorescence"
    at = run(at)
    assert at.session_state["optimise.start"] == "auto-fluorescence"
    assert at.session_state["optimise.names"] == ["threshold.t_object"]
    at.number_input(key="optimise.n_calls").set_value(4)
    at, job = finish_run(at, "optimise")
    notes = " ".join(c.value for c in at.caption)
    assert "auto.kind fluorescence → off" in notes
    calls = job.result["history"]
    searched = calls[calls["call"] > 0]
    # The searched thresholds change the score: the automatic method did not ignore them.
    assert searched["score"].nunique() > 1
    if job.result["from_search"]:
        assert job.result["best"].auto.kind.value == "off"
