"""Train: a pixel classifier (optionally with auto-context), the small U-Net or the
k-means / mean-shift baselines on a dataset, or a pixel classifier from strokes.

1. Dataset + split + settings → a background run (:mod:`app_support.runs`) of
   ``learn.train_on_dataset`` with a progress bar, then ``evaluation.evaluate`` on the
   test split → the scores, the model file to download, and the model registered for
   Explore, Compare and Batch. The U-Net (:mod:`cellseg_core.learn.unet`) needs PyTorch, an
   optional extra: without it the page says how to install it and offers the rest.
2. The ilastik way: select pixels of the current image with the lasso or box tool
   for a chosen class; the classifier refits on those strokes and shows its
   prediction and its uncertainty (1 − max probability): paint next where it is bright.
"""
from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app_support import cache, figures, learned, object_training, runs, sources, state, wording
from app_support import nuclei_train  # issue 18: the nucleus model's section
from cellseg_core import evaluation
from cellseg_core.learn import (CHANNELS, ESTIMATORS, FeatureSettings, KMeansBaseline,
                                MeanShiftBaseline, PixelClassifier, ProbabilityEnsemble,
                                train_on_dataset, unet)
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
K_UNET_NAME, K_EPOCHS = f"{PAGE}.unet_name", f"{PAGE}.epochs"
K_UNET_SCALE = f"{PAGE}.unet_scale"
K_AUTO_CONTEXT = f"{PAGE}.auto_context"
K_MEMBERS, K_COMBINE = f"{PAGE}.ensemble_members", f"{PAGE}.combine_button"
PIXEL, UNET = "pixel classifier", "U-Net"
KMEANS, MEANSHIFT = "k-means baseline", "mean-shift baseline"
KINDS = (PIXEL, UNET, KMEANS, MEANSHIFT)
#: The unsupervised baselines: kind -> (class, what the caption says).
BASELINES = {
    KMEANS: (KMeansBaseline, "k-means clusters (K = 4) of colour, position and Gabor "
                             "responses, matched to classes by Dice"),
    MEANSHIFT: (MeanShiftBaseline, "mean-shift modes of the same features (their number "
                                   "is found, not chosen), matched to classes by Dice"),
}
SCALES = [0.125, 0.25, 0.5, 1.0]
#: Shown instead of the U-Net's settings when PyTorch is missing.
INSTALL_UNET = ("The U-Net needs PyTorch, an optional extra that is not installed here. "
                "Install it with `pip install .[deep]` (in the app's environment), then "
                "restart the app. The pixel classifier and the k-means baseline work "
                "without it.")
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
    return _score_work(run, dataset, test_ids, model, start=100)


def _score_work(run: runs.Run, dataset, test_ids, model, start: int = 0) -> dict:
    """Background work: score a ready model on the test ids (progress `start`-200);
    also the whole work of an ensemble, which has nothing to fit."""
    scores = None
    if test_ids:
        def test_progress(done, total):
            run.progress(start + int((200 - start) * done / total), 200,
                         f"test image {done} of {total}")
        scores = evaluation.evaluate(dataset, test_ids, model, progress=test_progress)
    run.progress(200, 200, "done")
    return {"model": model, "evaluation": scores, "bytes": _model_file(model)}


def _model_file(model) -> bytes | None:
    """The model file of `model` (``learn.load_model`` reads it), or None when its kind
    has none (the k-means baseline; an ensemble of a model without one)."""
    if not callable(getattr(model, "to_bytes", None)):
        return None
    try:
        return model.to_bytes()
    except ValueError:
        return None


def _model_from_widgets():
    kind = st.session_state[K_KIND]
    if kind in BASELINES:
        return BASELINES[kind][0]()
    if kind == UNET:
        return unet.UNetModel(scale=float(st.session_state[K_UNET_SCALE]),
                              epochs=int(st.session_state[K_EPOCHS]))
    settings = FeatureSettings(channels=tuple(st.session_state[K_CHANNELS]),
                               scale=float(st.session_state[K_SCALE]))
    return PixelClassifier(settings, estimator=st.session_state[K_ESTIMATOR],
                           n_estimators=int(st.session_state[K_N]),
                           auto_context=bool(st.session_state[K_AUTO_CONTEXT]))


def _model_name() -> str:
    """The name the model is registered under (Explore, Compare, Batch)."""
    kind = st.session_state[K_KIND]
    if kind in BASELINES:
        return kind
    if kind == UNET:
        return st.session_state[K_UNET_NAME].strip() or "U-Net"
    return st.session_state[K_NAME].strip() or "classifier"


def _file_name(name: str, dataset: str | None = None) -> str:
    """A download file name for model `name` trained on `dataset`: what it was trained
    on, its name and the date (letters, digits, ``.-_`` only)."""
    return wording.download_name(name or "model", "cellseg-model", image=dataset)


def _dataset_form():
    """Widgets; returns (dataset, train ids, test ids, can train) or None."""
    c1, c2, c3 = st.columns([2, 1, 1])
    ds = sources.pick_dataset(
        K_DATASET, container=c1, where=lambda d: d.has_masks and d.kind == "cytology",
        empty="No dataset with cytology masks: set CELLSEG_DATA to a dataset folder.")
    if ds is None:
        return None
    # "train" and every named split's train part ("lab02-train", the course's Lab 02
    # split), each scored on its own test part; or all images, without a test.
    parts = ds.split or {}
    splits = [name for name in parts if name.endswith("train") and parts.get(name)] + ["all"]
    if st.session_state.get(K_SPLIT) not in splits:
        st.session_state[K_SPLIT] = splits[0]
    split = c2.radio("Train on", splits, key=K_SPLIT, horizontal=True)
    ids = list(ds.ids if split == "all" else parts[split])
    if not 1 <= st.session_state.get(K_LIMIT, 0) <= len(ids):
        st.session_state[K_LIMIT] = len(ids)
    limit = c3.number_input("Images (first N)", 1, len(ids), step=1, key=K_LIMIT)
    test = [] if split == "all" else list(parts.get(split[:-len("train")] + "test") or [])
    c1, c2, c3, c4 = st.columns(4)
    st.session_state.setdefault(K_KIND, KINDS[0])
    kind = c1.radio("Model", KINDS, key=K_KIND)
    st.session_state.setdefault(K_NAME, "classifier")
    can_train = True
    if kind == PIXEL:
        c1.text_input("Name", key=K_NAME, help="The name Explore, Compare and Batch show")
        st.session_state.setdefault(K_ESTIMATOR, ESTIMATORS[0])
        st.session_state.setdefault(K_N, 100)
        st.session_state.setdefault(K_CHANNELS, list(FeatureSettings().channels))
        st.session_state.setdefault(K_SCALE, FeatureSettings().scale)
        c2.selectbox("Estimator", ESTIMATORS, key=K_ESTIMATOR)
        c2.number_input("Trees / iterations", 1, 500, step=10, key=K_N)
        c3.multiselect("Channels", CHANNELS, key=K_CHANNELS)
        c3.select_slider("Working scale", SCALES, key=K_SCALE,
                         help="VocEd is upsampled ~4× from the microscope: 0.25 sees the "
                              "same context for 1/16 of the cost")
        st.session_state.setdefault(K_AUTO_CONTEXT, False)
        c3.checkbox("Auto-context", key=K_AUTO_CONTEXT,
                    help="Two stages, as ilastik's auto-context: a second classifier also "
                         "sees multiscale features of the first one's probabilities "
                         "(better Dice, about 1.7× the training time)")
    elif kind == UNET:
        if not unet.torch_available():
            st.info(INSTALL_UNET)
            can_train = False
        else:
            st.session_state.setdefault(K_UNET_NAME, "U-Net")
            st.session_state.setdefault(K_EPOCHS, 60)
            st.session_state.setdefault(K_UNET_SCALE, 0.25)
            c1.text_input("Name", key=K_UNET_NAME,
                          help="The name Explore, Compare and Batch show")
            c2.number_input("Epochs", 1, 500, step=5, key=K_EPOCHS,
                            help="Passes over the training images; 60 (the command line's "
                                 "default) takes about 2.5 min for VocEd's 160 images at "
                                 "1/4 scale on 2 cores")
            c3.select_slider("Working scale", SCALES, key=K_UNET_SCALE,
                             help="The network sees the image at this scale; 1/4 scored "
                                  "best on VocEd (upsampled ~4× from the microscope)")
            c2.caption("Course Lab 06 U-Net (32/64/128 channels, BatchNorm, cross-entropy "
                       "+ Dice loss, flips/rot90 augmentation), on PyTorch's CPU threads.")
    else:
        c2.caption(f"Registered as “{kind}”: {BASELINES[kind][1]}; unsupervised, the "
                   "baseline that shows what supervision adds.")
    st.session_state.setdefault(K_SEED, 0)
    c4.number_input("Seed", 0, 2**31 - 1, step=1, key=K_SEED)
    return ds, ids[:int(limit)], test, can_train


def _results(run: runs.Run) -> None:
    res, config = run.result, run.config
    name = runs.register_result(run)
    if config.get("members"):
        st.success(f"Combined {' + '.join(config['members'])} (mean of their class "
                   f"probabilities); registered as “{name}” for Explore, Compare and Batch.")
    else:
        st.success(f"Trained “{name}” on {config['n_train']} image(s) of "
                   f"{config['dataset']} in {run.seconds:.1f} s; registered as “{name}” "
                   "for Explore, Compare and Batch.")
    ev = res["evaluation"]
    if ev is None:
        st.info("No test split to score on" + ("." if config.get("members") else
                                                " (trained on all images)."))
    else:
        s = ev.summary
        c = st.columns(4)
        c[0].metric("Test mean Dice", f"{s['mean_dice']:.4f}")
        c[1].metric("Dice cytoplasm", f"{s['dice_cytoplasm']:.4f}")
        c[2].metric("Dice nucleus", f"{s['dice_nucleus']:.4f}")
        c[3].metric("N/C R²", f"{s['nc_r2']:.3f}" if np.isfinite(s["nc_r2"]) else "—",
                    help=None if np.isfinite(s["nc_r2"]) else
                    "Undefined: too few test images with a predicted N/C ratio")
        table = pd.DataFrame([{"model": name, "test images": s["n_images"],
                               **{k: s[v] for k, v in SCORES.items()}}])
        st.dataframe(table, hide_index=True, key=f"{PAGE}.scores")
    if res["bytes"] is not None:
        st.download_button("Download model file", res["bytes"],
                           file_name=_file_name(name, config.get("dataset")),
                           mime="application/octet-stream", key=f"{PAGE}.download",
                           on_click="ignore",
                           help="Use it with `cellseg segment --model FILE` or upload it in "
                                "Explore")
    elif config.get("members"):
        st.caption("No model file for this ensemble: download its members.")


def train_section() -> None:
    st.subheader("Train on a dataset")
    form = _dataset_form()
    if form is None:
        return
    ds, ids, test, can_train = form
    if st.button("Train", key=K_RUN, type="primary", disabled=not can_train):
        name = _model_name()
        try:
            model = _model_from_widgets()
        except ValueError as err:  # also unet.MissingDeepExtra (torch gone since the check)
            st.error(f"Cannot train with these settings: {err}")
            model = None
        if model is not None:
            runs.start(
                PAGE, f"train {name} on {len(ids)} image(s) of {ds.name}", _train_work, ds,
                ids, test, model, int(st.session_state[K_SEED]),
                config={"name": name, "dataset": ds.name, "n_train": len(ids)})
    combine_form(ds, test)
    run = runs.follow(PAGE, "training", cancelled="Training was stopped; nothing was kept.")
    if run is not None:
        _results(run)


def combine_form(ds, test) -> None:
    """Average the probabilities of registered models (e.g. a U-Net and a pixel
    classifier: 0.866 test mean Dice on VocEd, above either alone) and score it."""
    models = {name: m for name, m in runs.learned_models().items()
              if callable(getattr(m, "predict_proba", None))}
    if len(models) < 2:
        return
    with st.expander("Combine trained models (mean of their probabilities)"):
        if any(m not in models for m in st.session_state.get(K_MEMBERS, [])):
            st.session_state[K_MEMBERS] = [m for m in st.session_state[K_MEMBERS]
                                           if m in models]
        members = st.multiselect("Models", list(models), key=K_MEMBERS,
                                 help="Models of this session with class probabilities "
                                      "(not the k-means baseline)")
        name = "ensemble: " + " + ".join(members)
        if st.button(f"Combine and score on {ds.name}'s test split" if test else "Combine",
                     key=K_COMBINE, disabled=len(members) < 2):
            model = ProbabilityEnsemble([models[m] for m in members])
            runs.start(PAGE, f"score {name} on {len(test)} image(s) of {ds.name}",
                       _score_work, ds, test, model,
                       config={"name": name, "dataset": ds.name, "n_train": 0,
                               "members": list(members)})


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
    # The grid markers (trace 1) sit at the centres of their step x step blocks;
    # points_to_pixels wants the blocks' top-left corners.
    points = [{"x": p["x"] - step / 2, "y": p["y"] - step / 2} for p in points
              if p.get("curve_number", 1) == 1 and "x" in p and "y" in p]
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
            model, labels, unc = cache.stroke_prediction(source, strokes)
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
st.caption("Teach a pixel classifier or a small U-Net on a dataset's masks, or a pixel "
           "classifier with a few strokes.")
train_section()
st.divider()
strokes_section()
st.divider()
object_training.render_object_training(PAGE)
st.divider()
nuclei_train.render_section()
