"""Tests of cellseg_core.learn.progress: the fitting phase reports stages, time and an
estimate, and a fit in chunks gives the same model as one fit."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

from cellseg_core.learn import FeatureSettings, PixelClassifier
from cellseg_core.learn.progress import (fit_in_stages, format_duration, seconds_left,
                                         stage_message)
from tests._support.toys import toy_set


@pytest.mark.parametrize("seconds, text", [
    (0, "0 s"), (59.4, "59 s"), (60, "1 min 00 s"), (754, "12 min 34 s"),
    (3600, "1 h 00 min"), (7322, "2 h 02 min")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_format_duration_refuses_negative_and_nan():
    for bad in (-1, float("nan")):
        with pytest.raises(ValueError, match="`seconds` must be >= 0"):
            format_duration(bad)


def test_seconds_left_is_the_measured_rate():
    assert seconds_left(20.0, 25, 100) == 60.0
    assert seconds_left(20.0, 100, 100) == 0.0
    assert seconds_left(5.0, 0, 100) is None


def test_stage_message_names_stage_progress_time_and_estimate():
    assert stage_message("fitting", 30, 100, "trees", 90) == \
        "fitting: 30/100 trees, 1 min 30 s so far, about 3 min 30 s left"
    assert stage_message("fitting", 100, 100, "trees", 61) == "fitting: 100/100 trees, 1 min 01 s"


def _data(seed=0, n=600):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    y = (x[:, 0] + x[:, 1] ** 2 > 1).astype(int) + (x[:, 2] > 1)
    return x, y


@pytest.mark.parametrize("make, size", [
    (lambda: HistGradientBoostingClassifier(max_iter=12, early_stopping=False,
                                            random_state=4), "max_iter"),
    (lambda: RandomForestClassifier(12, min_samples_leaf=3, random_state=4), "n_estimators")])
def test_fit_in_stages_equals_one_fit_and_reports_each_chunk(make, size):
    x, y = _data()
    whole = make().fit(x, y)
    seen = []
    staged = fit_in_stages(make(), x, y, chunks=4, stage="fitting",
                           progress=lambda f, m: seen.append((f, m)))
    np.testing.assert_array_equal(staged.predict_proba(x), whole.predict_proba(x))
    assert [f for f, _ in seen] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert seen[0][1].startswith("fitting: 0/12 ")
    assert "3/12" in seen[1][1] and "so far, about" in seen[1][1]
    # the estimator is left as configured: full size, no warm start
    assert staged.get_params()[size] == 12 and staged.get_params()["warm_start"] is False


def test_fit_in_stages_without_progress_is_one_fit_and_refuses_bad_input():
    x, y = _data()
    model = fit_in_stages(RandomForestClassifier(3, random_state=0), x, y)
    assert len(model.estimators_) == 3
    with pytest.raises(ValueError, match="`chunks` must be >= 1"):
        fit_in_stages(RandomForestClassifier(3), x, y, chunks=0, progress=print)
    from sklearn.tree import DecisionTreeClassifier
    with pytest.raises(TypeError, match="neither `max_iter` nor `n_estimators`"):
        fit_in_stages(DecisionTreeClassifier(), x, y, progress=print)


def test_stop_during_the_fit_stops_between_chunks():
    x, y = _data()
    calls = []

    def stop_after_two(fraction, message):
        calls.append(fraction)
        if len(calls) == 3:
            raise KeyboardInterrupt("stop")
    model = RandomForestClassifier(10, random_state=0)
    with pytest.raises(KeyboardInterrupt):
        fit_in_stages(model, x, y, chunks=10, progress=stop_after_two)
    assert len(model.estimators_) == 2  # two chunks fitted, not ten


@pytest.mark.slow
@pytest.mark.parametrize("auto_context", [False, True])
def test_pixel_classifier_fit_reports_the_fitting_phase_with_same_result(auto_context):
    images, masks = toy_set(n=3, size=40)
    settings = FeatureSettings(scale=1, sigma_max=2)
    quiet = PixelClassifier(settings, n_estimators=10, auto_context=auto_context,
                            context_folds=3).fit(images, masks, rng=5)
    seen = []
    loud = PixelClassifier(settings, n_estimators=10, auto_context=auto_context,
                           context_folds=3).fit(images, masks, rng=5,
                                                progress=lambda f, m: seen.append((f, m)))
    np.testing.assert_array_equal(loud.predict_proba(images[0]), quiet.predict_proba(images[0]))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    fitting = [m for f, m in seen if "boosting rounds" in m]
    # the fit is no longer one silent step: several reports, with time and estimate
    assert len(fitting) >= 10
    assert any("so far, about" in m for m in fitting)
    if auto_context:
        assert any(m.startswith("stage 1 of 2") for m in fitting)
        assert any(m.startswith("stage 2 of 2") for m in fitting)
    else:
        assert all(0.5 <= f <= 1.0 for f, m in seen if "boosting rounds" in m)
