"""The Train page and the learned-model path of Explore through AppTest (demo data, small
settings): training scores equal ``evaluation.evaluate`` of the trained model, strokes give a
prediction and an uncertainty map, a bad model file is an st.error."""
from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from app_support import learned, runs, state  # noqa: E402
from cellseg_core import evaluation  # noqa: E402
from cellseg_core.data import demo_datasets  # noqa: E402
from cellseg_core.learn import IGNORE, FeatureSettings, PixelClassifier, load_model  # noqa: E402
from cellseg_core.learn import unet  # noqa: E402
from tests._support.apptest import numbers_shown, page_harness, run as _run  # noqa: E402



@pytest.fixture
def demo_env(monkeypatch):
    monkeypatch.delenv("CELLSEG_DATA", raising=False)
    monkeypatch.delenv("CELLSEG_CONFIG", raising=False)


@pytest.fixture
def train_app(demo_env):
    return AppTest.from_string(page_harness("train.py"), default_timeout=60)


@pytest.mark.slow
def test_training_shows_the_test_scores_of_the_trained_model(train_app):
    at = _run(train_app)
    assert at.session_state["train.dataset"] == "demo-cytology"
    at.number_input(key="train.limit").set_value(3)
    at.number_input(key="train.n_estimators").set_value(10)
    at.select_slider(key="train.scale").set_value(0.5)
    at = _run(at.button(key="train.run_button").click())
    run = at.session_state["train.run"]
    assert run.join(timeout=60) and run.status == "done", run.error
    at = _run(at)
    model = run.result["model"]
    assert isinstance(model, PixelClassifier) and model.n_estimators == 10
    ds = demo_datasets()["demo-cytology"]
    expected = evaluation.evaluate(ds, ds.split["test"], model).summary
    shown = [d.value for d in at.dataframe if "mean Dice" in d.value.columns][0].iloc[0]
    assert shown["mean Dice"] == pytest.approx(expected["mean_dice"], abs=1e-9)
    assert shown["Dice nucleus"] == pytest.approx(expected["dice_nucleus"], abs=1e-9)
    assert shown["test images"] == len(ds.split["test"])
    assert at.metric[0].value == f"{expected['mean_dice']:.4f}"
    # Registered for the other pages, and the download is a loadable model file.
    assert at.session_state[runs.LEARNED_MODELS]["classifier"] is model
    again = load_model(run.result["bytes"])
    np.testing.assert_array_equal(again.segment(ds.image(ds.ids[0])).labels,
                                  model.segment(ds.image(ds.ids[0])).labels)


def test_strokes_give_a_prediction_and_an_uncertainty_map(train_app):
    at = _run(train_app)
    source = at.session_state[state.SOURCE_CURRENT]
    shape = source.shape
    truth = source.mask
    assert truth is not None
    # Two labelled regions: 4x4 blocks (as a lasso over the grid gives) of background
    # and of nucleus, inside each class of the truth.
    strokes = np.full(shape, IGNORE, np.uint8)
    for cls in (0, 2):
        rows, cols = np.nonzero(truth == cls)
        pick = np.random.default_rng(cls).choice(rows.size, 12, replace=False)
        points = [{"x": c, "y": r} for r, c in zip(rows[pick], cols[pick])]
        rr, cc = learned.points_to_pixels(points, 4, shape)
        inside = truth[rr, cc] == cls
        strokes = learned.add_stroke(strokes, shape, rr[inside], cc[inside], cls)
    at.session_state["train.strokes"] = {"digest": source.digest, "mask": strokes}
    at = _run(at)
    result = at.session_state["train.stroke_result"]
    labels, unc = result["labels"], result["uncertainty"]
    assert labels.shape == shape and unc.shape == shape
    assert set(np.unique(labels)) <= {0, 2}  # only the painted classes
    assert 0 <= unc.min() and unc.max() <= 0.5 + 1e-6  # two classes: 1 - max p <= 1/2
    # The painted pixels are predicted as painted, and it agrees with the truth mostly.
    painted = strokes != IGNORE
    assert (labels[painted] == strokes[painted]).mean() > 0.9
    assert ((labels == 2) == (truth == 2)).mean() > 0.8
    at = _run(at.button(key="train.register_strokes").click())
    assert "strokes" in at.session_state[runs.LEARNED_MODELS]


def test_one_stroke_class_asks_for_another(train_app):
    at = _run(train_app)
    source = at.session_state[state.SOURCE_CURRENT]
    strokes = learned.add_stroke(None, source.shape, [5, 6], [5, 5], 0)
    at.session_state["train.strokes"] = {"digest": source.digest, "mask": strokes}
    at = _run(at)
    assert "train.stroke_result" not in at.session_state
    assert any("at least two classes" in i.value for i in at.info)


def test_points_to_pixels_and_strokes():
    rows, cols = learned.points_to_pixels([{"x": 4, "y": 8}, {"x": 30, "y": 30}], 4, (32, 32))
    assert sorted(set(zip(rows.tolist(), cols.tolist()))) == sorted(
        [(r, c) for r in range(8, 12) for c in range(4, 8)]
        + [(r, c) for r in (30, 31) for c in (30, 31)])  # clipped at the border
    mask = learned.add_stroke(None, (32, 32), rows, cols, 1)
    assert learned.stroke_counts(mask) == {0: 0, 1: 20, 2: 0}
    with pytest.raises(ValueError, match="cls"):
        learned.add_stroke(mask, (32, 32), [0], [0], 3)


@pytest.mark.parametrize("content, reason", [
    (b"just text", "not a cellseg model file"),
    (b"CELLSEG-MODEL\n" + (5).to_bytes(8, "little") + b"{bad", "corrupted"),
])
def test_a_bad_model_file_is_an_error_in_explore(demo_env, content, reason):
    at = _run(AppTest.from_string(page_harness("explore.py"), default_timeout=60))
    at.file_uploader(key="explore.model_file").set_value(("m.cellseg-model", content,
                                                          "application/octet-stream"))
    at = _run(at)
    shown = re.sub(r"\\(.)", r"\1", at.error[0].value) if at.error else ""  # unescaped
    assert "m.cellseg-model is not a usable model file" in shown
    assert reason in shown
    assert runs.LEARNED_MODELS not in at.session_state or not at.session_state[
        runs.LEARNED_MODELS]


@pytest.fixture(scope="module")
def small_model():
    ds = demo_datasets()["demo-cytology"]
    ids = ds.split["train"][:3]
    model = PixelClassifier(FeatureSettings(scale=0.5), n_estimators=10)
    return model.fit([ds.image(i) for i in ids], [ds.mask(i) for i in ids], rng=0)


@pytest.mark.slow
def test_an_uploaded_model_segments_in_explore(demo_env, small_model):
    at = _run(AppTest.from_string(page_harness("explore.py"), default_timeout=60))
    at.file_uploader(key="explore.model_file").set_value(
        ("mine.cellseg-model", small_model.to_bytes(), "application/octet-stream"))
    at = _run(at)
    assert not at.error
    assert at.session_state["explore.model"] == "file:mine"
    source = at.session_state[state.SOURCE_CURRENT]
    seg = small_model.segment(source.image)
    from cellseg_core.metrics import score_labels

    expected = score_labels(seg.labels, source.mask)["mean_dice"]
    assert numbers_shown(at)["Mean Dice"] == f"{expected:.4f}"
    # Back to the parameters: the usual Explore results.
    at.selectbox(key="explore.model").set_value(learned.PARAMS_CHOICE)
    at = _run(at)
    assert at.session_state[state.PARAMS] is not None


@pytest.mark.slow
def test_compare_runs_a_classifier_and_the_kmeans_baseline(demo_env, small_model):
    from cellseg_core.learn import KMeansBaseline

    ds = demo_datasets()["demo-cytology"]
    ids = ds.split["train"][:3]
    kmeans = KMeansBaseline().fit([ds.image(i) for i in ids], [ds.mask(i) for i in ids], rng=0)
    at = _run(AppTest.from_string(page_harness("compare.py"), default_timeout=60))
    at.session_state[runs.LEARNED_MODELS] = {"classifier": small_model,
                                             "k-means baseline": kmeans}
    at = _run(at)
    at.multiselect(key="compare.methods").set_value(["model:classifier",
                                                      "model:k-means baseline"])
    at = _run(at.button(key="compare.run_button").click())
    run = at.session_state["compare.run"]
    assert run.join(timeout=60) and run.status == "done", run.error
    at = _run(at)
    for name, model in (("model:classifier", small_model), ("model:k-means baseline", kmeans)):
        expected = evaluation.evaluate(ds, ds.split["test"], model).summary["mean_dice"]
        assert run.result[name].summary["mean_dice"] == pytest.approx(expected, abs=1e-9)
    assert run.result["model:classifier"].summary["mean_dice"] > \
        run.result["model:k-means baseline"].summary["mean_dice"]


# --- the U-Net (optional extra) --------------------------------------------------------------
def test_without_torch_the_unet_option_says_how_to_install_it(train_app, monkeypatch):
    monkeypatch.setattr(unet, "torch_available", lambda: False)
    at = _run(train_app)
    assert "U-Net" in at.radio(key="train.kind").options
    at = _run(at.radio(key="train.kind").set_value("U-Net"))
    assert any("pip install .[deep]" in i.value for i in at.info)
    assert at.button(key="train.run_button").disabled
    assert "train.epochs" not in at.session_state  # no U-Net settings without torch
    assert "train.run" not in at.session_state
    # The other kinds still train.
    at = _run(at.radio(key="train.kind").set_value("pixel classifier"))
    assert not at.button(key="train.run_button").disabled
    assert not any("pip install" in i.value for i in at.info)


def _unet_page(train_app) -> AppTest:
    """The Train page with the U-Net chosen; skips without PyTorch (the deep extra)."""
    if not unet.torch_available():
        pytest.skip("PyTorch is not installed (the deep extra)")
    at = _run(train_app)
    return _run(at.radio(key="train.kind").set_value("U-Net"))


@pytest.mark.slow
def test_the_unet_trains_in_the_background_is_scored_and_downloadable(train_app):
    at = _unet_page(train_app)
    assert at.session_state["train.epochs"] == 60 and at.session_state["train.unet_scale"] == 0.25
    at.number_input(key="train.limit").set_value(4)
    at.number_input(key="train.epochs").set_value(2)
    at.text_input(key="train.unet_name").set_value("my unet")
    at = _run(at.button(key="train.run_button").click())
    run = at.session_state["train.run"]
    assert run.join(timeout=120) and run.status == "done", run.error
    assert (run.done, run.total) == (200, 200)
    at = _run(at)
    model = run.result["model"]
    assert isinstance(model, unet.UNetModel)
    assert (model.epochs, model.scale, model.epochs_run_) == (2, 0.25, 2)
    ds = demo_datasets()["demo-cytology"]
    expected = evaluation.evaluate(ds, ds.split["test"], model).summary
    shown = [d.value for d in at.dataframe if "mean Dice" in d.value.columns][0].iloc[0]
    assert shown["model"] == "my unet"
    assert shown["mean Dice"] == pytest.approx(expected["mean_dice"], abs=1e-9)
    assert shown["test images"] == len(ds.split["test"])
    assert at.metric[0].value == f"{expected['mean_dice']:.4f}"
    r2 = expected["nc_r2"]  # undefined (NaN) when too few images get a cytoplasm: a dash
    assert at.metric[3].value == (f"{r2:.3f}" if np.isfinite(r2) else "—")
    assert any("registered as “my unet”" in s.value for s in at.success)
    assert at.session_state[runs.LEARNED_MODELS]["my unet"] is model
    download = at.get("download_button")
    assert len(download) == 1 and download[0].label == "Download model file"
    # The model file loads back (learn.load_model) into the same predictions.
    again = load_model(run.result["bytes"])
    assert isinstance(again, unet.UNetModel)
    image = ds.image(ds.split["test"][0])
    np.testing.assert_array_equal(again.segment(image).labels, model.segment(image).labels)
    # Explore offers it like the pixel classifier, with its uncertainty map.
    ex = _run(AppTest.from_string(page_harness("explore.py"), default_timeout=60))
    ex.session_state[runs.LEARNED_MODELS] = {"my unet": model}
    ex = _run(ex)
    ex = _run(ex.selectbox(key="explore.model").set_value("my unet"))
    source = ex.session_state[state.SOURCE_CURRENT]
    from cellseg_core.metrics import score_labels

    dice = score_labels(model.segment(source.image).labels, source.mask)["mean_dice"]
    assert numbers_shown(ex)["Mean Dice"] == f"{dice:.4f}"
    assert learned.probabilities(source.digest, source.image, "my unet", model).shape == (
        *source.shape[:2], 3)
    # Compare runs it on the test split like any method.
    cmp = _run(AppTest.from_string(page_harness("compare.py"), default_timeout=60))
    cmp.session_state[runs.LEARNED_MODELS] = {"my unet": model}
    cmp = _run(cmp)
    cmp.multiselect(key="compare.methods").set_value(["model:my unet"])
    cmp = _run(cmp.button(key="compare.run_button").click())
    compared = cmp.session_state["compare.run"]
    assert compared.join(timeout=60) and compared.status == "done", compared.error
    assert compared.result["model:my unet"].summary["mean_dice"] == pytest.approx(
        expected["mean_dice"], abs=1e-9)



@pytest.mark.slow
def test_two_registered_models_combine_into_a_scored_ensemble(train_app, small_model):
    from cellseg_core.learn import KMeansBaseline
    from cellseg_core.learn import ProbabilityEnsemble

    ds = demo_datasets()["demo-cytology"]
    ids = ds.split["train"][3:6]
    other = PixelClassifier(FeatureSettings(scale=0.5, channels=("gray",)), n_estimators=10,
                            estimator="forest")
    other.fit([ds.image(i) for i in ids], [ds.mask(i) for i in ids], rng=1)
    at = _run(train_app)
    assert not at.expander  # fewer than two models: nothing to combine
    at.session_state[runs.LEARNED_MODELS] = {"a": small_model, "k-means baseline":
                                             KMeansBaseline(), "b": other}
    at = _run(at)
    members = at.multiselect(key="train.ensemble_members")
    assert members.options == ["a", "b"]  # k-means has no probabilities
    assert at.button(key="train.combine_button").disabled
    at = _run(members.set_value(["a", "b"]))
    at = _run(at.button(key="train.combine_button").click())
    run = at.session_state["train.run"]
    assert run.join(timeout=60) and run.status == "done", run.error
    at = _run(at)
    model = at.session_state[runs.LEARNED_MODELS]["ensemble: a + b"]
    assert isinstance(model, ProbabilityEnsemble) and model.models == [small_model, other]
    image = ds.image(ds.ids[0])
    np.testing.assert_allclose(model.predict_proba(image), 0.5 * small_model.predict_proba(
        image) + 0.5 * other.predict_proba(image), atol=1e-6)
    expected = evaluation.evaluate(ds, ds.split["test"], model).summary
    shown = [d.value for d in at.dataframe if "mean Dice" in d.value.columns][0].iloc[0]
    assert shown["model"] == "ensemble: a + b"
    assert shown["mean Dice"] == pytest.approx(expected["mean_dice"], abs=1e-9)
    assert any("Combined a + b" in s.value for s in at.success)
    if hasattr(ProbabilityEnsemble, "to_bytes"):  # ensemble model files (learn helper)
        assert len(at.get("download_button")) == 1
        again = load_model(run.result["bytes"])
        np.testing.assert_array_equal(again.segment(image).labels, model.segment(image).labels)
    else:
        assert run.result["bytes"] is None and not at.get("download_button")


@pytest.mark.slow
def test_stopping_a_unet_training_keeps_nothing(train_app):
    at = _unet_page(train_app)
    at.number_input(key="train.limit").set_value(2)
    at.number_input(key="train.epochs").set_value(500)
    at = _run(at.button(key="train.run_button").click())
    run = at.session_state["train.run"]
    run.cancel()  # what the Stop button does; the work stops after its current epoch
    assert run.join(timeout=60) and run.status == "cancelled"
    assert run.done < 100  # far from 500 epochs
    at = _run(at)
    assert any("Training was stopped" in i.value for i in at.info)
    assert runs.LEARNED_MODELS not in at.session_state or not at.session_state[
        runs.LEARNED_MODELS]
    assert not at.get("download_button")


@pytest.mark.slow
def test_auto_context_and_the_mean_shift_baseline_train_from_the_page(train_app):
    from cellseg_core.learn import MeanShiftBaseline

    ds = demo_datasets()["demo-cytology"]
    at = _run(train_app)
    assert at.radio(key="train.kind").options == ["pixel classifier", "U-Net",
                                                  "k-means baseline", "mean-shift baseline"]
    at.number_input(key="train.limit").set_value(4)
    at.number_input(key="train.n_estimators").set_value(10)
    at.select_slider(key="train.scale").set_value(0.5)
    at = _run(at.checkbox(key="train.auto_context").check())
    at = _run(at.button(key="train.run_button").click())
    run = at.session_state["train.run"]
    assert run.join(timeout=90) and run.status == "done", run.error
    at = _run(at)
    model = run.result["model"]
    assert isinstance(model, PixelClassifier) and model.auto_context
    again = load_model(run.result["bytes"])
    assert again.auto_context
    image = ds.image(ds.split["test"][0])
    np.testing.assert_array_equal(again.segment(image).labels, model.segment(image).labels)
    expected = evaluation.evaluate(ds, ds.split["test"], model).summary
    shown = [d.value for d in at.dataframe if "mean Dice" in d.value.columns][0].iloc[0]
    assert shown["mean Dice"] == pytest.approx(expected["mean_dice"], abs=1e-9)

    # The mean-shift baseline: registered under its own name, scored, no model file.
    at = _run(at.radio(key="train.kind").set_value("mean-shift baseline"))
    assert any("mean-shift modes" in c.value for c in at.caption)
    at = _run(at.button(key="train.run_button").click())
    run = at.session_state["train.run"]
    assert run.join(timeout=90) and run.status == "done", run.error
    at = _run(at)
    model = run.result["model"]
    assert isinstance(model, MeanShiftBaseline) and model.n_clusters >= 1
    assert at.session_state[runs.LEARNED_MODELS]["mean-shift baseline"] is model
    expected = evaluation.evaluate(ds, ds.split["test"], model).summary
    shown = [d.value for d in at.dataframe if "mean Dice" in d.value.columns][0].iloc[0]
    assert shown["model"] == "mean-shift baseline"
    assert shown["mean Dice"] == pytest.approx(expected["mean_dice"], abs=1e-9)
    assert run.result["bytes"] is None and not at.get("download_button")


def test_the_course_lab02_split_is_offered_for_training(voced, monkeypatch):
    """Issue 20 point 1: the course's split by name wherever splits are chosen."""
    monkeypatch.setenv("CELLSEG_DATA", str(voced))
    monkeypatch.delenv("CELLSEG_CONFIG", raising=False)
    at = _run(AppTest.from_string(page_harness("train.py"), default_timeout=60))
    at.selectbox(key="train.dataset").set_value(voced.name)
    at = _run(at)
    assert "lab02-train" in at.radio(key="train.split").options
    at = _run(at.radio(key="train.split").set_value("lab02-train"))
    from cellseg_core.data import open_dataset

    lab02 = open_dataset(voced).split["lab02-train"]
    assert at.number_input(key="train.limit").max == len(lab02) == 152
