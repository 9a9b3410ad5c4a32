"""Train page: fine-tune the built-in nucleus model on a dataset with instances (issue 18
point 5).

Dataset and settings → an augmentation preview (the crops the network will see) →
a background run (:mod:`app_support.runs`) of
:func:`cellseg_core.learn.nuclei_training.train_nucleus_model` with a progress bar,
Stop (which keeps the best network so far) and the loss and validation-F1 curves
drawn live → the ONNX model registered for Explore, Compare, Count and Batch, its
file to download, and its scores next to the built-in model's on the test split.
The page calls :func:`render_section`; the work itself never calls Streamlit.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from cellseg_core.evaluation import compare_nuclei
from cellseg_core.learn import NucleusModel, torch_available
from cellseg_core.learn.nuclei_training import (NucleusTrainingSettings, augmentation_preview,
                                                load_items, train_nucleus_model)

from . import live_plot, methods, runs, sources
from .safe_text import md

__all__ = ["PAGE", "render_section", "curves_figure", "preview_tiles", "settings_from_state"]

#: Session-key prefix of this section (its run is ``train.nuclei.run``).
PAGE = "train.nuclei"
K_DATASET, K_INIT, K_NAME = f"{PAGE}.dataset", f"{PAGE}.init", f"{PAGE}.name"
K_EPOCHS, K_STEPS, K_PATIENCE = f"{PAGE}.epochs", f"{PAGE}.steps", f"{PAGE}.patience"
K_VAL, K_LR, K_BOUNDARY = f"{PAGE}.val_fraction", f"{PAGE}.lr", f"{PAGE}.boundary_weight"
K_LIMIT, K_SEED, K_TEST = f"{PAGE}.limit", f"{PAGE}.seed", f"{PAGE}.test_images"
K_PREVIEW, K_RUN = f"{PAGE}.preview_button", f"{PAGE}.run_button"
FINE_TUNE, SCRATCH = "the built-in model (fine-tune)", "scratch (random weights)"
#: Widget defaults: key -> value.
DEFAULTS = {K_INIT: FINE_TUNE, K_NAME: "nuclei (fine-tuned)", K_EPOCHS: 30, K_STEPS: 20,
            K_PATIENCE: 5, K_VAL: 0.15, K_LR: 5e-4, K_BOUNDARY: 3.0, K_SEED: 0, K_TEST: 20}
INSTALL = ("Training the nucleus model needs PyTorch and onnx, an optional extra that is not "
           "installed here: `pip install .[deep]`, then restart the app. The built-in model "
           "itself works without them (Explore, Count, Compare, Batch).")
PREVIEW_CROPS = 8


def settings_from_state(state) -> NucleusTrainingSettings:
    """The training settings the section's widgets hold (`state`: a mapping)."""
    scratch = state[K_INIT] == SCRATCH
    return NucleusTrainingSettings(
        init=None if scratch else "builtin", epochs=int(state[K_EPOCHS]),
        steps=int(state[K_STEPS]), patience=int(state[K_PATIENCE]),
        val_fraction=float(state[K_VAL]), lr=float(state[K_LR]),
        class_weights=(1.0, 1.0, float(state[K_BOUNDARY])), seed=int(state[K_SEED]))


# --- figures (testable without a browser) ----------------------------------------------------
def curves_figure(epochs: list[dict], *, height: int = 320) -> go.Figure:
    """Training loss (left axis) and validation F1 (right axis) per epoch, best marked.

    `epochs`: the ``{"kind": "epoch", ...}`` records of
    :func:`~cellseg_core.learn.nuclei_training.fit_nucleus_net`.
    """
    x = [e["epoch"] + 1 for e in epochs]
    fig = go.Figure()
    fig.add_scatter(x=x, y=[e["loss"] for e in epochs], name="training loss", mode="lines+markers")
    fig.add_scatter(x=x, y=[e["val_f1"] for e in epochs], name="validation F1@0.5",
                    mode="lines+markers", yaxis="y2")
    if epochs:
        best = max(epochs, key=lambda e: e["val_f1"])
        fig.add_scatter(x=[best["epoch"] + 1], y=[best["val_f1"]], yaxis="y2", mode="markers",
                        name="best (kept)", marker={"size": 14, "symbol": "star"})
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      xaxis={"title": "epoch", "automargin": True},
                      yaxis={"title": "loss", "automargin": True},
                      # Its own ticks on [0, 1] (an overlaying axis would otherwise sync
                      # them to the loss axis: 0.034, 0.284, ...); labels inside the figure.
                      yaxis2={"title": "F1", "overlaying": "y", "side": "right",
                              "range": [0, 1], "tickmode": "auto", "automargin": True},
                      legend={"orientation": "h", "y": 1.15}, uirevision="curves")
    return fig


def preview_tiles(crops) -> list[np.ndarray]:
    """(crop, crop, 3) uint8 tiles: the augmented crop, nucleus boundaries (the class
    the network learns to part touching nuclei with) in green."""
    tiles = []
    for x, target in crops:
        tile = (np.clip(x, 0, 1) * 255).astype(np.uint8)
        tile[target == 2] = (40, 220, 60)
        tiles.append(tile)
    return tiles


@st.cache_data(max_entries=4, show_spinner="Reading and augmenting…")
def _preview(name: str, source: str, ids: tuple, seed: int, env: tuple):
    ds = sources.datasets()[name]
    items = load_items(ds, list(ids[:6]), NucleusTrainingSettings().diameter)
    return preview_tiles(augmentation_preview(items, n=PREVIEW_CROPS, rng=seed))


# --- the background work -------------------------------------------------------------------
def _work(run: runs.Run, dataset, ids, test_ids, settings, name: str, folder: str) -> dict:
    """Train (0 .. epochs × steps), export, then score on `test_ids` beside the built-in
    model. Stop during training keeps the best network so far."""
    total = settings.epochs * settings.steps

    def progress(event):
        if run.cancel_requested:
            return True  # fit_nucleus_net stops and keeps its best network
        kind = event["kind"]
        if kind == "load":
            run.progress(0, total, f"reading image {event['done'] + 1} of {event['total']}")
        elif kind == "step":
            run.progress(event["epoch"] * settings.steps + event["step"], total,
                         f"epoch {event['epoch'] + 1} of {settings.epochs}, step "
                         f"{event['step']}: loss {event['loss']:.3f}")
        elif kind == "epoch":
            run.events.append(event)
        elif kind == "export":
            run.progress(run.done, total, "tuning thresholds on validation, exporting")
        return False

    out = Path(folder) / ((re.sub(r"[^\w.-]+", "_", name).strip("._") or "nuclei") + ".onnx")
    log = train_nucleus_model(dataset, ids, out, settings, progress=progress)
    model = NucleusModel(out)
    scores = None
    if test_ids and not run.cancel_requested:
        compared = {name: model, **methods.builtin_methods()}
        try:
            scores = compare_nuclei(dataset, test_ids, compared, progress=lambda d, n, t:
                                    run.progress(d, n, f"test split: {t}")).summary
        except runs.Cancelled:
            scores = None
    return {"model": model, "bytes": out.read_bytes(), "file": out.name, "log": log,
            "scores": scores, "stopped": log["stopped"]}


# --- the section ----------------------------------------------------------------------------
def _form(ds):
    """Widgets; returns (train ids, test ids)."""
    for k, v in DEFAULTS.items():
        st.session_state.setdefault(k, v)
    split = ds.split or {}
    ids = list(split.get("train") or ds.ids)
    test = list(split.get("test") or []) if split.get("train") else []
    if not 2 <= st.session_state.get(K_LIMIT, 0) <= len(ids):
        st.session_state[K_LIMIT] = len(ids)
    c1, c2, c3, c4 = st.columns(4)
    c1.radio("Start from", (FINE_TUNE, SCRATCH), key=K_INIT,
             help="Fine-tuning starts from the shipped weights (minutes on a CPU); from "
                  "scratch needs far more epochs and data.")
    c1.text_input("Name", key=K_NAME, help="The name Explore, Compare, Count and Batch show")
    if len(ids) >= 2:
        c2.number_input("Training images (first N)", 2, len(ids), step=1, key=K_LIMIT,
                        help=f"Of the {'train split' if split.get('train') else 'dataset'}; "
                             "a part is held out for validation")
    c2.number_input("Epochs (at most)", 1, 500, step=5, key=K_EPOCHS)
    c2.number_input("Steps per epoch", 1, 500, step=5, key=K_STEPS,
                    help="Batches of 8 augmented 128-px crops per epoch")
    c3.number_input("Early stopping: patience (epochs)", 1, 100, key=K_PATIENCE,
                    help="Stop after this many epochs without a better validation F1; the "
                         "best epoch's network is kept")
    c3.slider("Validation part", 0.05, 0.5, step=0.05, key=K_VAL,
              help="Held out of the training images, seeded")
    c3.select_slider("Learning rate", [1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3], key=K_LR,
                     help="Adam; halved after 2 epochs without a better validation F1")
    c4.number_input("Boundary class weight", 0.5, 20.0, step=0.5, key=K_BOUNDARY,
                    help="Weight of the 1-px nucleus boundary in the loss (rare, but it "
                         "parts touching nuclei)")
    c4.number_input("Seed", 0, 2**31 - 1, step=1, key=K_SEED)
    if test:
        c4.number_input("Test images to score", 0, len(test), step=5, key=K_TEST,
                        help="After training, the first N test images: the new model beside "
                             "the built-in one (0: skip)")
    n_test = min(int(st.session_state[K_TEST]), len(test))
    return ids[:int(st.session_state.get(K_LIMIT, len(ids)))], test[:n_test]


def _live_curves() -> None:
    run = runs.get(PAGE)
    if run is not None and run.events:
        live_plot.plotly_chart(curves_figure(list(run.events)), key=f"{PAGE}.curves")


def _results(run: runs.Run) -> None:
    res, config = run.result, run.config
    name = runs.register_result(run)
    log = res["log"]
    why = {"early stop": "stopped early (no better validation F1)",
           "stopped": "stopped by you", "time limit": "time limit",
           "epochs": "all epochs done"}.get(res["stopped"], res["stopped"])
    st.success(f"Trained “{md(name)}” on {len(log['train_ids'])} image(s) of "
               f"{md(config['dataset'])} ({len(log['val_ids'])} held out) in "
               f"{run.seconds:.0f} s: {why} after {len(log['epochs'])} epoch(s); best "
               f"validation F1 {log['best']['val_f1']:.3f} at epoch {log['best']['epoch'] + 1}. "
               "Registered for Explore, Compare, Count and Batch.")
    if res["scores"] is not None:
        st.markdown(f"**Test split** ({int(res['scores']['images'].max())} image(s))")
        st.dataframe(res["scores"], hide_index=True, key=f"{PAGE}.scores")
    st.download_button("Download model (.onnx)", res["bytes"], file_name=res["file"],
                       mime="application/octet-stream", key=f"{PAGE}.download",
                       on_click="ignore",
                       help="Use it with `cellseg segment --model FILE.onnx`")


def render_section() -> None:
    """The whole section: dataset, settings, preview, train, live curves, results."""
    st.subheader("Nucleus model: fine-tune the built-in U-Net")
    ds = sources.pick_instance_dataset(K_DATASET)
    if ds is None:
        return
    ids, test = _form(ds)
    left, right = st.columns(2)
    if left.button("Preview augmentation", key=K_PREVIEW):
        st.session_state[f"{PAGE}.preview"] = (ds.key, tuple(ids), int(st.session_state[K_SEED]))
    shown = st.session_state.get(f"{PAGE}.preview")
    if shown is not None and shown[0] == ds.key:
        try:
            tiles = _preview(ds.name, ds.source, shown[1], shown[2], sources._env_key())
            st.image(tiles, width=140, caption=[f"crop {k + 1}" for k in range(len(tiles))])
            st.caption("Crops as the network sees them (scale, rotation, flips, brightness, "
                       "contrast, gamma, blur, noise); green: the nucleus boundary class.")
        except ValueError as err:
            st.error(f"No preview: {md(err)}")
    can_train = torch_available()
    if not can_train:
        st.info(INSTALL)
    if right.button("Train nucleus model", key=K_RUN, type="primary", disabled=not can_train):
        try:
            settings = settings_from_state(st.session_state)
        except ValueError as err:
            st.error(f"Cannot train with these settings: {md(err)}")
        else:
            name = st.session_state[K_NAME].strip() or DEFAULTS[K_NAME]
            folder = st.session_state.setdefault(f"{PAGE}.folder",
                                                 tempfile.mkdtemp(prefix="cellseg-nuclei-"))
            runs.start(PAGE, f"train {name} on {len(ids)} image(s) of {ds.name}", _work, ds,
                       ids, test, settings, name, folder,
                       config={"name": name, "dataset": ds.name})
    run = runs.follow(PAGE, "nucleus training", stop_label="Stop (keep the best so far)")
    st.fragment(_live_curves, run_every=runs.poll_every(PAGE))()
    if run is not None:
        _results(run)
