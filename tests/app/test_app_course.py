"""Issue 20 in the app: the lessons' check-yourself questions answered in AppTest, the
ablation table against the engine, the gradient exercise, the course's Lab 02 split on
Compare and Optimise, and the connectivity control."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from app_support import ablation as A  # noqa: E402
from app_support import quiz  # noqa: E402
from app_support.lessons import step_key  # noqa: E402
from cellseg_core import experiments as E  # noqa: E402
from cellseg_core.data import demo_datasets  # noqa: E402
from cellseg_core.presets import get_preset  # noqa: E402
from tests._support.apptest import page_app, page_harness, run  # noqa: E402

NC, COUNT = "lesson_nc", "lesson_count"


def _answer(at, page, qid, value):
    """Answer question `qid` on `page`; returns the feedback shown (success, error)."""
    q = quiz.QUESTIONS.get(qid)
    widget = (at.number_input(key=f"{page}.q.{qid}") if q is not None and not q.options
              else at.radio(key=f"{page}.q.{qid}"))
    at = run(widget.set_value(value))
    plain = lambda text: text.replace("\\", "")   # the page escapes markdown (safe_text)
    return at, [plain(s.value) for s in at.success], [plain(e.value) for e in at.error]


def _frame(at, column):
    """The shown dataframe that has `column`."""
    found = [d.value for d in at.dataframe if column in d.value.columns]
    assert found, [list(d.value.columns) for d in at.dataframe]
    return found[0]


def _next(at, page):
    return run(at.button(key=f"{page}.next").click())


def test_question_data_is_checked():
    for q in quiz.QUESTIONS.values():
        if q.options:
            assert q.answer in q.options and len(set(q.options)) == len(q.options)
            assert set(q.why) <= set(q.options) - {q.answer}
    do = quiz.QUESTIONS["do_the_math"]
    assert do.answer == pytest.approx(E.smoothed_peak(1.0, 6, 2.0))      # 36/40
    assert quiz.check(do, 0.9) and quiz.check(do, 0.904) and not quiz.check(do, 0.85)
    assert quiz.check(do, None) is None
    with pytest.raises(ValueError, match="must be one of `options`"):
        quiz.Question("x", "?", "c", "", options=("a", "b"))
    with pytest.raises(TypeError, match="number `answer`"):
        quiz.Question("x", "?", "0.9", "")


def test_ablation_question_reads_the_table():
    ds = demo_datasets()["demo-cytology"]
    table = E.ablation(ds, ds.split["test"])
    q = A.ablation_question(table)
    single = table[table["step"].str.startswith("+ ")]
    assert q.answer == single.loc[single["gain"].idxmax(), "step"][2:]
    assert len(q.options) == 4
    assert list(A.ablation_table(table).columns)[:3] == ["step", "mean Dice",
                                                          "gain over the base"]


@pytest.mark.slow
def test_nc_lesson_questions_answered(monkeypatch):
    at = run(page_app(monkeypatch, "lesson_nc_ratio.py", timeout=180))
    ds = demo_datasets()["demo-cytology"]
    at = _next(at, NC)                                           # 2 optimisation
    wrong = quiz.QUESTIONS["t_bg"].options[1]
    at, ok, bad = _answer(at, NC, "t_bg", wrong)
    assert not ok and any("Not quite" in e and "push t_bg down" in e for e in bad)
    at, ok, _ = _answer(at, NC, "t_bg", quiz.QUESTIONS["t_bg"].answer)
    assert any(s.startswith("Right") and "0.85 and 0.99" in s for s in ok)
    at = _next(at, NC)                                           # 3 blur + ablation
    at, ok, _ = _answer(at, NC, "stage3", quiz.QUESTIONS["stage3"].answer)
    assert any(s.startswith("Right") for s in ok)
    shown = _frame(at, "gain over the base")
    expected = E.ablation(ds, ds.split["test"], get_preset("lab02").with_values(
        {"cleanup.scheme": "course"}))
    np.testing.assert_allclose(shown["mean Dice"], expected["mean_dice"])
    best = A.ablation_question(expected).answer
    at, ok, _ = _answer(at, NC, "ablation", best)
    assert any(s.startswith(f"Right: {best}") for s in ok)
    at = _next(at, NC)                                           # 4 clean-up
    at, _, bad = _answer(at, NC, "failure_modes", quiz.QUESTIONS["failure_modes"].options[2])
    assert any("fill holes" in e for e in bad)
    at = _next(at, NC)                                           # 5 summary
    at, ok, _ = _answer(at, NC, "gain", quiz.QUESTIONS["gain"].answer)
    assert any("t_background" in s for s in ok)


@pytest.mark.slow
def test_counting_lesson_questions_answered():
    at = run(AppTest.from_string(page_harness("lesson_counting.py"), default_timeout=180))
    at = _next(at, COUNT)                                        # 2 smoothing
    at, ok, bad = _answer(at, COUNT, "do_the_math", 0.85)
    assert not ok and any("0.90" in e and "36/40" in e for e in bad)
    at, ok, _ = _answer(at, COUNT, "do_the_math", 0.90)
    assert any(s.startswith("Right: 0.90") for s in ok)
    for _ in range(3):                                           # 3, 4, 5 watershed
        at = _next(at, COUNT)
    q = quiz.QUESTIONS["min_separation"]
    at, _, bad = _answer(at, COUNT, "min_separation", q.options[2])
    assert any("4σ = 8 pixels" in e for e in bad)
    at = _next(at, COUNT)                                        # 6 noise floor
    at, ok, _ = _answer(at, COUNT, "threshold_vs_size",
                        quiz.QUESTIONS["threshold_vs_size"].answer)
    assert any("primary defence" in s for s in ok)
    at.multiselect(key=f"{COUNT}.order").set_value(quiz.TUTORIAL_PIPELINE[:1]
                                                  + quiz.TUTORIAL_PIPELINE[2:3])
    at = run(at)
    assert any("step 2 is “Add Gaussian noise" in e.value for e in at.error)
    at = _next(at, COUNT)                                        # 7 illumination
    assert at.session_state[step_key(COUNT)] == 6
    table = E.gradient_exercise(n_images=8)
    shown = _frame(at, "global 0.5")
    assert shown.loc[0.2, "global 0.5"] == 0
    for _, row in table.iterrows():
        assert shown.loc[row["gradient"], row["method"]] == row["miscounted"]
    text = "\n".join(m.value for m in at.markdown)
    assert "miscounts **0** of 8 images" in text


def test_compare_and_optimise_offer_the_lab02_split(voced, monkeypatch):
    at = run(page_app(monkeypatch, "compare.py", voced, timeout=120))
    at.selectbox(key="compare.dataset").set_value("voced")
    at = run(at)
    radio = at.radio(key="compare.split")
    assert "lab02-test" in radio.options and "lab02-train" in radio.options
    at = run(radio.set_value("lab02-test"))
    assert not at.error
    opt = run(page_app(monkeypatch, "optimise.py", voced, timeout=120))
    opt.selectbox(key="optimise.dataset").set_value("voced")
    opt = run(opt)
    kinds = opt.radio(key="optimise.split_kind")
    assert "the course's Lab 02 split" in kinds.options
    opt = run(kinds.set_value("the course's Lab 02 split"))
    assert any("152 train images" in c.value and "39 test images" in c.value
               for c in opt.caption)


def test_connectivity_control_sets_the_params(monkeypatch):
    from app_support import state

    at = run(page_app(monkeypatch, "explore.py", timeout=120))
    key = state.widget_key("cleanup.connectivity", "explore")
    assert at.radio(key=key).value == 4
    at = run(at.radio(key=key).set_value(8))
    from cellseg_core.params import Params
    held = at.session_state[state.PARAMS]
    held = held if isinstance(held, Params) else Params.from_json(held)
    assert held.cleanup.connectivity == 8
    scheme = at.radio(key=state.widget_key("cleanup.scheme", "explore"))
    assert scheme.options == ["nested", "course"]


@pytest.mark.slow
def test_count_page_offers_the_percentile_filter(monkeypatch):
    from cellseg_core.data import synthetic

    at = run(page_app(monkeypatch, "count.py", timeout=180))
    at = run(at.radio(key="count.light.estimate").set_value("percentile"))
    r = E.illumination_experiment(synthetic.GRADIENT, global_threshold=E.GLOBAL_THRESHOLD,
                                  local_values={"threshold.method": "percentile",
                                                "threshold.block_size": 51,
                                                "threshold.offset": -0.1,
                                                "threshold.percentile": 50.0})
    shown = [m.value for m in at.metric if m.label == "Local threshold"]
    assert shown == [str(r["n_local"])]
    assert "percentile" in at.selectbox(key="count.threshold.method").options
