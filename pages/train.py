"""Train: a pixel classifier (or the k-means baseline) on a dataset, or from strokes.

1. Dataset + split + settings → a background run (:mod:`app_support.runs`) of
   ``learn.train_on_dataset`` with a progress bar, then ``optimize.evaluate`` on the
   test split → the scores, the model file to download, and the model registered for
   Explore, Compare and Batch.
2. The ilastik way: select pixels of the current image with the lasso or box tool
   for a chosen class; the classifier refits on those strokes and shows its
   prediction and its uncertainty (1 − max probability): paint next where it is bright.
"""
from __future__ import annotations

import hashlib
from functools import partial

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app_support import figures, learned, runs, sources, state
from cellseg_core import optimize
from cellseg_core.learn import (CHANNELS, ESTIMATORS, FeatureSettings, KMeansBaseline,
                                PixelClassifier, train_on_dataset, uncertainty)
from cellseg_core.params import CleanupParams
from app_support.router import require_frame

require_frame()  # a deep link on a fresh server must still go through app.py

PAGE = "train"
K_DATASET, K_SPLIT, K_LIMIT = f"{PAGE}.dataset", f"{PAGE}.split", f"{PAGE}.limit"
K_KIND, K_ESTIMATOR, K_N = f"{PAGE}.kind", f"{PAGE}.estimator", f"{PAGE}.n_estimators"
K_CHANNELS, K_SCALE, K_SEED = f"{PAGE}.channels", f"{PAGE}.scale", f"{PAGE}.seed"
K_NAME, K_RUN = f"{PAGE}.name", f"{PAGE}.run_button"
K_CLASS, K_CANVAS, K_STROKES = f"{PAGE}.class", f"{PAGE}.canvas", f"{PAGE}.strokes"
K_STROKE_RESULT, K_CLEAR = f"{PAGE}.stroke_result", f"{PAGE}.clear"
K_REGISTER_STROKES = f"{PAGE}.register_strokes"
KINDS = ("pixel classifier", "k-means baseline")
KMEANS_NAME = "k-means baseline"
CLASSES = {"background": 0, "cytoplasm": 1, "nucleus": 2}
STROKE_COLORS = {0: (80, 160, 255), 1: (60, 200, 60), 2: (230, 40, 160)}
#: Scores shown after training: label -> Evaluation.summary key.
SCORES = {"mean Dice": "mean_dice", "Dice cytoplasm": "dice_cytoplasm",
          "Dice nucleus": "dice_nucleus", "mean IoU": "mean_iou", "N/C MAE": "nc_mae",
          "N/C R²": "nc_r2", "s / image": "seconds_per_image"}


# --- 1. train on a dataset -----------------------------------------------------------------
def _train_work(run: runs.Run, dataset, ids, test_ids, model, seed: int) -> dict:
    """Background work: fit, then score on the test ids (0-100 train, 100-200 test)."""
    def fit_progress(fraction, message):
        run.progress(int(100 * fraction), 200, message)

    train_on_dataset(dataset, ids, model=model, rng=seed, progress=fit_progress)
    evaluation = None
    if test_ids:
        def test_progress(done, total):
            run.progress(100 + int(100 * done / total), 200, f"test image {done} of {total}")
        evaluation = optimize.evaluate(dataset, test_ids, model, progress=test_progress)
    run.progress(200, 200, "done")
    data = model.to_bytes() if isinstance(model, PixelClassifier) else None
    return {"model": model, "evaluation": evaluation, "bytes": data}


def _model_from_widgets():
    if st.session_state[K_KIND] == KINDS[1]:
        return KMeansBaseline()
    settings = FeatureSettings(channels=tuple(st.session_state[K_CHANNELS]),
                               scale=float(st.session_state[K_SCALE]))
    return PixelClassifier(settings, estimator=st.session_state[K_ESTIMATOR],
                           n_estimators=int(st.session_state[K_N]))


def _dataset_form():
    """Widgets; returns (dataset, train ids, test ids) or None."""
    c1, c2, c3 = st.columns([2, 1, 1])
    ds = sources.pick_dataset(
        K_DATASET, container=c1, where=lambda d: d.has_masks and d.kind == "cytology",
        empty="No dataset with cytology masks: set CELLSEG_DATA to a dataset folder.")
    if ds is None:
        return None
    splits = ["train", "all"] if ds.split and ds.split.get("train") else ["all"]
    if st.session_state.get(K_SPLIT) not in splits:
        st.session_state[K_SPLIT] = splits[0]
    split = c2.radio("Train on", splits, key=K_SPLIT, horizontal=True)
    ids = list(ds.split["train"] if split == "train" else ds.ids)
    if not 1 <= st.session_state.get(K_LIMIT, 0) <= len(ids):
        st.session_state[K_LIMIT] = len(ids)
    limit = c3.number_input("Images (first N)", 1, len(ids), step=1, key=K_LIMIT)
    test = list(ds.split.get("test") or []) if split == "train" and ds.split else []
    c1, c2, c3, c4 = st.columns(4)
    st.session_state.setdefault(K_KIND, KINDS[0])
    kind = c1.radio("Model", KINDS, key=K_KIND)
    st.session_state.setdefault(K_NAME, "classifier")
    if kind == KINDS[0]:
        c1.text_input("Name", key=K_NAME, help="The name Explore, Compare and Batch show")
        st.session_state.setdefault(K_ESTIMATOR, ESTIMATORS[0])
        st.session_state.setdefault(K_N, 100)
        st.session_state.setdefault(K_CHANNELS, list(FeatureSettings().channels))
        st.session_state.setdefault(K_SCALE, FeatureSettings().scale)
        c2.selectbox("Estimator", ESTIMATORS, key=K_ESTIMATOR)
        c2.number_input("Trees / iterations", 1, 500, step=10, key=K_N)
        c3.multiselect("Channels", CHANNELS, key=K_CHANNELS)
        c3.select_slider("Working scale", [0.125, 0.25, 0.5, 1.0], key=K_SCALE,
                         help="VocEd is upsampled ~4× from the microscope: 0.25 sees the "
                              "same context for 1/16 of the cost")
    else:
        c2.caption(f"Registered as “{KMEANS_NAME}”: unsupervised clusters matched to "
                   "classes, the baseline that shows what supervision adds.")
    st.session_state.setdefault(K_SEED, 0)
    c4.number_input("Seed", 0, 2**31 - 1, step=1, key=K_SEED)
    return ds, ids[:int(limit)], test


def _results(run: runs.Run) -> None:
    res, config = run.result, run.config
    name = config["name"]
    if not config.get("registered"):
        runs.register_model(name, res["model"])
        config["registered"] = True
    st.success(f"Trained {res['model']!r} on {config['n_train']} image(s) of "
               f"{config['dataset']} in {run.seconds:.1f} s; registered as “{name}” "
               "for Explore, Compare and Batch.")
    ev = res["evaluation"]
    if ev is None:
        st.info("No test split to score on (trained on all images).")
    else:
        s = ev.summary
        c = st.columns(4)
        c[0].metric("Test mean Dice", f"{s['mean_dice']:.4f}")
        c[1].metric("Dice cytoplasm", f"{s['dice_cytoplasm']:.4f}")
        c[2].metric("Dice nucleus", f"{s['dice_nucleus']:.4f}")
        c[3].metric("N/C R²", f"{s['nc_r2']:.3f}")
        table = pd.DataFrame([{"model": name, "test images": s["n_images"],
                               **{k: s[v] for k, v in SCORES.items()}}])
        st.dataframe(table, hide_index=True, key=f"{PAGE}.scores")
    if res["bytes"] is not None:
        st.download_button("Download model file", res["bytes"], file_name=f"{name}.cellseg-model",
                           mime="application/octet-stream", key=f"{PAGE}.download",
                           on_click="ignore",
                           help="Use it with `cellseg segment --model FILE` or upload it in "
                                "Explore")


def train_section() -> None:
    st.subheader("Train on a dataset")
    form = _dataset_form()
    if form is None:
        return
    ds, ids, test = form
    if st.button("Train", key=K_RUN, type="primary"):
        kmeans = st.session_state[K_KIND] == KINDS[1]
        name = KMEANS_NAME if kmeans else (st.session_state[K_NAME].strip() or "classifier")
        try:
            model = _model_from_widgets()
        except ValueError as err:
            st.error(f"Cannot train with these settings: {err}")
            model = None
        if model is not None:
            runs.start(
                PAGE, f"train {name} on {len(ids)} image(s) of {ds.name}", _train_work, ds,
                ids, test, model, int(st.session_state[K_SEED]),
                config={"name": name, "dataset": ds.name, "n_train": len(ids)})
    run = runs.follow(PAGE, "training", cancelled="Training was stopped; nothing was kept.")
    if run is not None:
        _results(run)


# --- 2. strokes ------------------------------------------------------------------------------
def _grid_step(shape) -> int:
    return max(4, int(np.ceil(max(shape) / 96)))


def _strokes(source) -> np.ndarray | None:
    held = st.session_state.get(K_STROKES)
    return held["mask"] if held and held["digest"] == source.digest else None


def _on_select(digest: str, shape: tuple, step: int) -> None:
    """Callback of the canvas: the selected grid points become a stroke of the class."""
    event = st.session_state.get(K_CANVAS) or {}
    points = (event.get("selection") or {}).get("points") or []
    if not points:
        return
    rows, cols = learned.points_to_pixels(points, step, shape)
    held = st.session_state.get(K_STROKES)
    mask = held["mask"] if held and held["digest"] == digest else None
    cls = CLASSES[st.session_state.get(K_CLASS, "nucleus")]
    st.session_state[K_STROKES] = {"digest": digest,
                                   "mask": learned.add_stroke(mask, shape, rows, cols, cls)}


def _clear() -> None:
    st.session_state.pop(K_STROKES, None)
    st.session_state.pop(K_STROKE_RESULT, None)


def _canvas_figure(source, strokes, step: int) -> go.Figure:
    show = figures.display_step(source.shape, 512)
    rgb = figures.to_rgb8(np.asarray(source.image)[::show, ::show]).astype(float)
    if strokes is not None:
        small = strokes[::show, ::show]
        for cls, color in STROKE_COLORS.items():
            rgb[small == cls] = 0.35 * rgb[small == cls] + 0.65 * np.array(color)
    rows, cols = np.mgrid[0:source.shape[0]:step, 0:source.shape[1]:step]
    fig = go.Figure([
        go.Image(z=rgb.astype(np.uint8), x0=0, y0=0, dx=show, dy=show, hoverinfo="skip"),
        go.Scatter(x=cols.ravel() + step / 2, y=rows.ravel() + step / 2, mode="markers",
                   marker={"size": 4, "opacity": 0.0}, hoverinfo="skip", showlegend=False)])
    fig.update_layout(dragmode="lasso", height=460, margin={"l": 0, "r": 0, "t": 0, "b": 0},
                      yaxis={"autorange": "reversed", "scaleanchor": "x", "visible": False},
                      xaxis={"visible": False})
    return fig


@st.cache_resource(max_entries=4, show_spinner=False)
def _fit_strokes(digest: str, strokes_sha: str, _image, _strokes):
    model = PixelClassifier(FeatureSettings(scale=0.5, sigma_max=8.0), n_estimators=30,
                            samples_per_class=2000, cleanup=CleanupParams(), n_jobs=1)
    model.fit([_image], [_strokes], rng=0)
    proba = model.predict_proba(_image)
    return model, proba.argmax(-1).astype(np.uint8), uncertainty(proba)


def stroke_prediction(source, strokes):
    """(model, labels, uncertainty) fitted on the strokes (cached), or None."""
    sha = hashlib.sha256(strokes.tobytes()).hexdigest()
    return _fit_strokes(source.digest, sha, source.image, strokes)


def strokes_section() -> None:
    st.subheader("Paint strokes on the current image (the ilastik way)")
    source = st.session_state.get(state.SOURCE_CURRENT)
    if source is None:
        st.info("Choose an image in the sidebar.")
        return
    step = _grid_step(source.shape)
    strokes = _strokes(source)
    counts = learned.stroke_counts(strokes)
    c1, c2, c3 = st.columns([3, 2, 1])
    st.session_state.setdefault(K_CLASS, "nucleus")
    c1.radio("Class to paint", list(CLASSES), key=K_CLASS, horizontal=True)
    c2.caption("Painted pixels: " + ", ".join(f"{n} {counts[c]:,}" for n, c in CLASSES.items()))
    c3.button("Clear strokes", key=K_CLEAR, on_click=_clear)
    st.caption("Select pixels with the lasso or box tool (toolbar of the image): they are "
               "labelled with the class above; the classifier refits on every stroke.")
    left, right = st.columns(2)
    with left:
        st.plotly_chart(_canvas_figure(source, strokes, step), key=K_CANVAS,
                        on_select=partial(_on_select, source.digest, tuple(source.shape), step),
                        selection_mode=("lasso", "box"))
    if sum(v > 0 for v in counts.values()) < 2:
        st.session_state.pop(K_STROKE_RESULT, None)
        right.info("Paint at least two classes to see a prediction.")
        return
    with right, st.spinner("Fitting on the strokes…"):
        try:
            model, labels, unc = stroke_prediction(source, strokes)
        except ValueError as err:
            st.error(f"Cannot fit on these strokes: {err}")
            return
        st.session_state[K_STROKE_RESULT] = {"labels": labels, "uncertainty": unc,
                                             "digest": source.digest}
        show = figures.display_step(source.shape, 512)
        small = np.asarray(source.image)[::show, ::show]
        st.image(figures.overlay_rgb(small, labels[::show, ::show], opacity=0.45),
                 caption="Prediction from the strokes")
        st.image(learned.uncertainty_rgb(unc[::show, ::show]),
                 caption=f"Uncertainty (1 − max probability), mean {unc.mean():.3f}: paint "
                         "next where it is bright")
        if st.button("Use as method “strokes”", key=K_REGISTER_STROKES):
            runs.register_model("strokes", model)
            st.success("Registered as “strokes” for Explore, Compare and Batch.")


st.title("Train")
st.caption("Teach a pixel classifier: on a dataset's masks, or with a few strokes.")
train_section()
st.divider()
strokes_section()
