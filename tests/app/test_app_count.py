"""The Count page through Streamlit's AppTest: widgets set by key, numbers against the engine."""
from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from cellseg_core import experiments as E  # noqa: E402
from cellseg_core import segment  # noqa: E402
from cellseg_core.data import synthetic  # noqa: E402
from tests._support.apptest import metric as _metric  # noqa: E402

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "count.py")


def _engine_count(at, image) -> int:
    """The engine's count with the parameters the page's widgets hold."""
    names = set(synthetic.seed_params().flat())
    values = {name: at.session_state[f"count.{name}"] for name in names
              if f"count.{name}" in at.session_state}
    return int(segment(image, synthetic.seed_params().with_values(values)).nuclei.max())


@pytest.mark.slow
def test_count_page_shows_the_engine_count_and_experiments():
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    seed = synthetic.fluorescence_image()
    expected = _engine_count(at, seed.image)
    assert expected == synthetic.N_CELLS
    assert at.session_state["count.watershed.enabled"] is True
    assert int(_metric(at, "Nuclei counted")) == expected
    assert float(_metric(at, "Recall (IoU 0.5)")) == 1.0
    # Experiments show the experiments module's numbers.
    assert int(_metric(at, "False cells, no size filter")) == E.noise_floor(0.05)["without_filter"]
    assert (_metric(at, "Plain labelling"), _metric(at, "Watershed")) == ("1", "2")
    assert int(_metric(at, "Local threshold")) == synthetic.N_CELLS
    assert int(_metric(at, "Global threshold")) != synthetic.N_CELLS
    for label in ("Precision bright", "Recall bright", "Precision dim", "Recall dim"):
        assert float(_metric(at, label)) >= 0.9

    # Widgets by key: a higher threshold and no watershed, then a local threshold.
    at.slider(key="count.threshold.t_object").set_value(0.8)
    at.toggle(key="count.watershed.enabled").set_value(False)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["count.threshold.t_object"] == 0.8
    assert int(_metric(at, "Nuclei counted")) == _engine_count(at, seed.image)
    at.selectbox(key="count.threshold.method").set_value("local")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["count.threshold.method"] == "local"
    assert int(_metric(at, "Nuclei counted")) == _engine_count(at, seed.image)
