"""The Lessons pages through Streamlit's AppTest: each lesson walked step by step to its
end (next button by key), numbers shown checked against the engine."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from app_support import lessons, quiz  # noqa: E402
from cellseg_core import experiments as E  # noqa: E402
from cellseg_core import evaluation
from cellseg_core.data import synthetic  # noqa: E402
from cellseg_core.data import demo_datasets, open_dataset  # noqa: E402
from cellseg_core.params import Params  # noqa: E402
from cellseg_core.presets import get_preset  # noqa: E402
from cellseg_core.threshold import two_threshold  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
# As in test_app_explore.py: the page runs under the two calls app.py makes.
HARNESS = """
import runpy
from app_support import sources
sources.shared_sidebar()
runpy.run_path({path!r}, run_name="__main__")
"""
NC, COUNT = "lesson_nc", "lesson_count"


def _app(page: str) -> AppTest:
    return AppTest.from_string(HARNESS.format(path=str(REPO / "pages" / f"{page}.py")),
                               default_timeout=120)


def _run(at) -> AppTest:
    """Run the app (or the app of a clicked / set widget) and check it raised nothing."""
    at = at.run()
    assert not at.exception, [e.value for e in at.exception]
    # No lesson text lacking a value, no step that could not be computed.
    assert not [e.value for e in at.error if not e.value.startswith(("Not quite", "Not yet"))], \
        [e.value for e in at.error]
    return at


def _metric(at, label: str) -> str:
    found = [m.value for m in at.metric if m.label == label]
    assert found, f"no metric {label!r}; shown: {[m.label for m in at.metric]}"
    return found[0]


def _next(at, page: str) -> AppTest:
    return _run(at.button(key=f"{page}.next").click())


def _text(at) -> str:
    return "\n".join(m.value for m in at.markdown)


def _walk_nc(at, ds) -> AppTest:
    """Walk the N/C lesson, checking the engine's numbers on `ds` on the way."""
    train, test = ds.split["train"], ds.split["test"]
    at = _run(at)
    assert at.session_state[lessons.step_key(NC)] == 0
    lab01 = evaluation.evaluate(ds, test, get_preset("lab01")).summary
    assert _metric(at, "Mean Dice, test split") == f"{lab01['mean_dice']:.4f}"
    assert f"**{lab01['mean_dice']:.4f}**" in _text(at)      # the text is filled live
    # Check yourself: the answer is the engine's label of a pixel of gray 0.72.
    label = int(two_threshold(np.array([[0.72]], np.float32), 0.45, 0.85)[0, 0])
    at.radio(key=f"{NC}.quiz_label").set_value("background")
    at = _run(at)
    assert at.error and "cytoplasm" in at.error[0].value and label == 1
    at.radio(key=f"{NC}.quiz_label").set_value("cytoplasm")
    at = _run(at)
    assert at.success and "cytoplasm" in at.success[0].value
    # A class choice is kept for the later steps: t_nuc 0.40.
    at.slider(key=f"{NC}.w.t_nuc").set_value(0.40)
    at = _run(at)
    stage1 = get_preset("lab01").with_values({"threshold.t_nuc": 0.40})
    stage1_dice = evaluation.evaluate(ds, test, stage1).summary["mean_dice"]
    assert _metric(at, "Mean Dice, test split") == f"{stage1_dice:.4f}"

    at = _next(at, NC)                                           # 2 optimisation
    lab02 = evaluation.evaluate(ds, test, get_preset("lab02")).summary
    assert _metric(at, "Test mean Dice") == f"{lab02['mean_dice']:.4f}"
    at.number_input(key=f"{NC}.w.n_calls").set_value(12)
    at = _run(at)
    at = _run(at.button(key=f"{NC}.run").click())
    best = Params.from_json(at.session_state[f"{NC}.opt"]["params"])
    assert len(at.session_state[f"{NC}.opt"]["history"]) == 12
    best_test = evaluation.evaluate(ds, test, best).summary["mean_dice"]
    assert _metric(at, "Test mean Dice") == f"{best_test:.4f}"
    surface = evaluation.dice_surface(ds, train, stage1)
    assert _metric(at, "Surface maximum (train)") == f"{surface.best_score:.4f}"

    at = _next(at, NC)                                           # 3 blur
    # Stages 3 and 4 clean up as the course's code does (issue 20: scheme "course").
    stage3 = best.with_values({"cleanup.scheme": "course", "blur.kind": "gaussian",
                               "blur.sigma": 1.0,
                               "cleanup.opening_radius": 1, "cleanup.closing_radius": 1})
    stage3_dice = evaluation.evaluate(ds, test, stage3).summary["mean_dice"]
    assert _metric(at, "Test mean Dice, stage 3") == f"{stage3_dice:.4f}"
    at = _next(at, NC)                                           # 4 clean-up
    stage4 = best.with_values({"cleanup.scheme": "course", "cleanup.min_nucleus_size": 200,
                               "cleanup.min_cytoplasm_size": 200, "cleanup.fill_holes": True})
    stage4_ev = evaluation.evaluate(ds, test, stage4)
    stage4_dice = stage4_ev.summary["mean_dice"]
    assert _metric(at, "Test mean Dice, stage 4") == f"{stage4_dice:.4f}"
    at = _next(at, NC)                                           # 5 table + N/C scatter
    table = at.dataframe[0].value
    assert list(table["test mean Dice"]) == pytest.approx(
        [stage1_dice, best_test, stage3_dice, stage4_dice])
    # Both N/C definitions (issue 19): the nucleus/cell ratio's error beside the N/C one.
    assert table["nucleus/cell MAE"].iloc[-1] == pytest.approx(
        stage4_ev.summary["nucleus_cell_ratio_mae"])
    assert f"{stage4_ev.summary['nucleus_cell_ratio_mae']:.3f} at stage 4" in " ".join(
        m.value for m in at.markdown)
    at = _next(at, NC)                                           # 6 what comes next
    ceiling = evaluation.dice_surface(ds, test, stage1).best_score
    assert _metric(at, "Best any gray threshold pair could do on the test split") == \
        f"{ceiling:.4f}"
    assert at.button(key=f"{NC}.next").disabled
    at.multiselect(key=f"{NC}.order").set_value(
        ["convert to gray", "read the RGB image"])
    at = _run(at)
    assert at.error and "read the RGB image" in at.error[0].value
    return at


@pytest.mark.slow
def test_nc_lesson_on_voced(voced, monkeypatch):
    monkeypatch.setenv("CELLSEG_DATA", str(voced))
    monkeypatch.delenv("CELLSEG_CONFIG", raising=False)
    at = _walk_nc(_app("lesson_nc_ratio"), open_dataset(voced))
    assert "voced" in at.caption[0].value


def test_nc_lesson_on_demo_data(monkeypatch):
    monkeypatch.delenv("CELLSEG_DATA", raising=False)
    monkeypatch.delenv("CELLSEG_CONFIG", raising=False)
    at = _walk_nc(_app("lesson_nc_ratio"), demo_datasets()["demo-cytology"])
    assert "demo-cytology" in at.caption[0].value


def test_counting_lesson():
    at = _run(_app("lesson_counting"))
    at.radio(key=f"{COUNT}.quiz_n").set_value(synthetic.N_CELLS)
    at = _run(at)
    assert at.success
    at = _next(at, COUNT)                                        # 2 smoothing
    formula = E.smoothed_peak(synthetic.CELL_BRIGHTNESS, synthetic.CELL_SIGMA,
                              synthetic.SMOOTH_SIGMA)
    assert _metric(at, "Smoothed peak, predicted B·σ²/(σ²+σs²)") == f"{formula:.4f}"
    measured = E.peak_check(synthetic.seed_params())["measured_peak"].mean()
    assert _metric(at, "Smoothed peak, measured (mean of the cells)") == f"{measured:.4f}"
    at.slider(key=f"{COUNT}.w.sigma_s").set_value(3.0)
    at = _run(at)
    assert _metric(at, "Smoothed peak, predicted B·σ²/(σ²+σs²)") == \
        f"{1.0 * 36 / (36 + 9):.4f}"
    at = _next(at, COUNT)                                        # 3 threshold (σs 3 kept)
    assert _metric(at, "Smoothed noise std σn/(2√π·σs)") == \
        f"{E.smoothed_noise_std(synthetic.NOISE_SCALE, 3.0):.4f}"
    at.radio(key=f"{COUNT}.quiz_detect").set_value("yes")
    at = _run(at)
    assert at.success
    for _ in range(3):                                           # 4, 5, 6
        at = _next(at, COUNT)
    assert at.session_state[lessons.step_key(COUNT)] == 5
    floor = E.noise_floor(0.05, synthetic.seed_params().with_values({"blur.sigma": 3.0}))
    assert _metric(at, "False cells, no size filter") == str(floor["without_filter"])
    at.multiselect(key=f"{COUNT}.order").set_value(list(quiz.TUTORIAL_PIPELINE))
    at = _run(at)
    assert at.success and "→" in at.success[-1].value
    at = _run(at.button(key=f"{COUNT}.prev").click())
    assert at.session_state[lessons.step_key(COUNT)] == 4
    assert _metric(at, "Plain labelling") == "1" and _metric(at, "Watershed") == "2"


def test_every_placeholder_is_a_value_not_a_number():
    """The lesson texts hold placeholders, and fill() names a missing value."""
    for path in sorted(lessons.LESSONS_DIR.glob("*/*.md")):
        assert lessons.placeholders(path.read_text()), path
    with pytest.raises(ValueError, match="test_dice"):
        lessons.fill("Dice {test_dice:.4f}", {})
    assert lessons.fill("t = {t:.2f}", {"t": 0.456}) == "t = 0.46"
