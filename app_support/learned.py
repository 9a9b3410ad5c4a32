"""Learned models in the app: upload, pick, segment (cached), show; strokes → labels.

Models live in the session under :data:`app_support.runs.LEARNED_MODELS` (name → object
with ``.segment(image)``), put there by the Train page or by an uploaded model file, so
Explore, Compare and Batch offer them next to the presets. Nothing here trains a
model on a full dataset: that is the Train page's background run.
"""
from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import numpy as np
import streamlit as st

from cellseg_core.io import write_bytes_atomic
from cellseg_core.learn import (IGNORE, NucleusModel, load_model, pickle_models_allowed,
                                uncertainty)
from cellseg_core.params import Mode

from . import cache, figures, methods, quotas, runs, worker
from .safe_text import md

__all__ = ["PARAMS_CHOICE", "NO_CONTROLS", "model_upload", "model_picker", "picked_model",
           "segmentation", "model_segmentation", "probabilities", "show_model_results", "uncertainty_rgb", "points_to_pixels",
           "add_stroke", "stroke_counts", "model_from_onnx"]

#: The picker's entry that means "no model: the parameters".
PARAMS_CHOICE = "parameters (presets)"
#: What a page shows in place of the parameter controls while a model is chosen
#: (``{name}``: the model's name, markdown-escaped).
NO_CONTROLS = ("The learned model **{name}** segments the image by itself: the presets and "
               "parameter controls do not apply (its clean-up is stored in the model). "
               f"Choose “{PARAMS_CHOICE}” above to use them again.")


def model_upload(page: str) -> None:
    """A model-file uploader; a good file is registered as ``file:<stem>``.

    A bad or foreign file is refused with ``st.error``. Model files hold no code; an
    old pickled one is read only when the server allows it
    (:func:`~cellseg_core.learn.pickle_models_allowed`) and the user ticks "Trust this
    file", a box drawn only where the server allows it.
    """
    up = quotas.accepted(st.file_uploader(  # quotas: issue 21 point 5
        "Model file (from Train or `cellseg train`)", key=f"{page}.model_file",
        help="A model file saved by this version holds no code. Files "
             "of the old pickled format are refused unless trusted. An .onnx file is a "
             "nucleus model (Train's nucleus section, `cellseg train --method "
             "unet-nuclei`)."))
    trust = False
    if pickle_models_allowed():
        trust = st.checkbox("Trust this file (runs code from it)", key=f"{page}.trust_pickle",
                            help="Only for an old (pickled) model file from a source you "
                                 "trust: reading it can run code on this server.")
    if up is None:
        return
    data = up.getvalue()
    key = (hashlib.sha256(data).hexdigest(), trust)
    seen = st.session_state.setdefault(f"{page}.model_files", {})
    if key in seen:
        if seen[key] is None:
            st.error(f"{md(up.name)} is not a usable model file (see above).")
        return
    try:
        model = (model_from_onnx(data) if up.name.lower().endswith(".onnx")
                 else load_model(data, trust_pickle=trust))  # .onnx: a nucleus model
    except ValueError as err:
        seen[key] = None
        st.error(f"{md(up.name)} is not a usable model file: {md(err)}")
        return
    name = f"file:{Path(up.name).stem}"
    runs.register_model(name, model)
    seen[key] = name
    st.session_state[f"{page}.model"] = name


def picked_model(page: str):
    """The model chosen in :func:`model_picker` (read, not drawn): ``(name, model)``, or
    None for the parameters."""
    name = st.session_state.get(f"{page}.model")
    models = _models()
    return (name, models[name]) if name in models else None


def _models() -> dict:
    """The built-in models, then the ones registered in this session: name -> model."""
    return {**{name: m.model for name, m in methods.builtin_methods().items()},
            **runs.learned_models()}


def model_picker(page: str):
    """Choose parameters or a registered model: ``(name, model)`` or None (parameters)."""
    choices = [PARAMS_CHOICE, *_models()]
    key = f"{page}.model"
    if st.session_state.get(key) not in choices:
        st.session_state[key] = PARAMS_CHOICE
    if len(choices) > 1:
        st.selectbox("Method", choices, key=key,
                     help="A built-in model, a learned model registered in this session "
                          "(Train page or an uploaded model file), or the parameters below.")
    return picked_model(page)


@st.cache_resource(max_entries=8, show_spinner=False)
def _segmentation(digest: str, name: str, model_id: int, _model, _image):
    if worker.is_heavy(_image):  # issue 21 point 4: large images in the worker pool
        return worker.model_call("segment", digest, _image, f"{name}:{model_id}", _model,
                                 spec=methods.BUILTIN.get(name))
    seg = _model.segment(_image)
    seg.summary  # noqa: B018  computed once
    return seg


def segmentation(digest: str, image: np.ndarray, name: str, model):
    """``model.segment(image)``, cached on (image digest, model name and identity)."""
    return _segmentation(digest, name, id(model), model, image)


@st.cache_resource(max_entries=8, show_spinner=False)
def _probabilities(digest: str, name: str, model_id: int, _model, _image):
    if worker.is_heavy(_image):  # issue 21 point 4: large images in the worker pool
        return worker.model_call("predict_proba", digest, _image, f"{name}:{model_id}",
                                 _model, spec=methods.BUILTIN.get(name))
    return _model.predict_proba(_image)


def probabilities(digest: str, image: np.ndarray, name: str, model):
    """Class probabilities (M, N, 3) of a model with ``predict_proba`` (a
    :class:`~cellseg_core.learn.PixelClassifier`, a U-Net, an ensemble); None for the others (k-means)."""
    if not callable(getattr(model, "predict_proba", None)):
        return None
    return _probabilities(digest, name, id(model), model, image)


def uncertainty_rgb(unc: np.ndarray) -> np.ndarray:
    """(M, N, 3) uint8: dark = sure, bright yellow = 1 - max probability near 2/3."""
    t = np.clip(np.asarray(unc) / (2 / 3), 0, 1)[..., None]
    low, high = np.array([20, 20, 60.0]), np.array([255, 230, 40.0])
    return (low + t * (high - low)).astype(np.uint8)


def model_segmentation(source, name: str, model):
    """The model's cached segmentation of `source`, or None after an ``st.error``."""
    try:
        return segmentation(source.digest, source.image, name, model)
    except ValueError as err:
        st.error(f"{md(name)} cannot segment this image: {md(err)}")
        return None


def show_model_results(source, name: str, model, *, page: str, max_side: int = 1024) -> None:
    """Overlay and uncertainty of a model's segmentation; the numbers, per-cell table
    and downloads are the page's own, as for parameters."""
    seg = model_segmentation(source, name, model)
    if seg is None:
        return
    st.markdown(f"{md(source.name)} · learned model **{md(name)}**")
    step = figures.display_step(source.shape, max_side)
    fluorescence = Mode(seg.params.mode) == Mode.FLUORESCENCE
    fig = figures.overlay_figure(source.image, seg.labels, truth=source.mask,
                                 instances=seg.nuclei, opacity=0.4, max_side=max_side,
                                 fluorescence=fluorescence,
                                 image_uri=cache.image_uri(source.digest, source.image, step))
    st.plotly_chart(fig, key=f"{page}.model_overlay", config={"scrollZoom": True},
                    **figures.CHART_OPTIONS)
    st.caption(figures.overlay_key(truth=source.mask is not None, fluorescence=fluorescence))
    proba = probabilities(source.digest, source.image, name, model)
    if proba is not None:
        unc = uncertainty(proba)
        st.image(uncertainty_rgb(unc[::step, ::step]),
                 caption=f"Uncertainty (1 − max probability), mean {unc.mean():.3f}: "
                         "bright where the model hesitates")


def model_from_onnx(data: bytes) -> NucleusModel:
    """A nucleus model from the bytes of an uploaded ``.onnx`` file (written by the
    Train page or ``cellseg train --method unet-nuclei``), kept under the system's
    temporary folder by content hash (onnxruntime reads a file).

    Raises
    ------
    ValueError
        When the bytes are not ONNX, or an ONNX model that is not a cellseg nucleus model.
    """
    folder = Path(tempfile.gettempdir()) / "cellseg-onnx-models"
    path = folder / f"{hashlib.sha256(data).hexdigest()}.onnx"
    if not path.is_file():
        write_bytes_atomic(path, data)
    return NucleusModel(path)


# --- strokes -------------------------------------------------------------------------------
def points_to_pixels(points, step: int, shape) -> tuple[np.ndarray, np.ndarray]:
    """Pixel (rows, cols) of selected grid points ``{"x": col, "y": row}`` of a figure
    drawn at 1/`step`; each point covers a `step` × `step` block."""
    rows, cols = [], []
    offsets = np.arange(step)
    for p in points:
        r0, c0 = int(round(p["y"])), int(round(p["x"]))
        rr, cc = np.meshgrid(r0 + offsets, c0 + offsets, indexing="ij")
        rows.append(rr.ravel())
        cols.append(cc.ravel())
    if not rows:
        return np.zeros(0, int), np.zeros(0, int)
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    keep = (rows >= 0) & (rows < shape[0]) & (cols >= 0) & (cols < shape[1])
    return rows[keep], cols[keep]


def add_stroke(strokes: np.ndarray | None, shape, rows, cols, cls: int) -> np.ndarray:
    """Label pixels (`rows`, `cols`) as class `cls` (0, 1, 2) in a strokes mask.

    The mask is ``IGNORE`` (255) where nothing was painted; a new array is returned.
    """
    if cls not in (0, 1, 2):
        raise ValueError(f"`cls` must be 0, 1 or 2, got {cls!r}")
    out = (np.full(tuple(shape), IGNORE, np.uint8) if strokes is None
           else np.array(strokes, np.uint8, copy=True))
    out[np.asarray(rows, int), np.asarray(cols, int)] = cls
    return out


def stroke_counts(strokes: np.ndarray | None) -> dict:
    """Painted pixels per class: {0: n, 1: n, 2: n}."""
    if strokes is None:
        return {0: 0, 1: 0, 2: 0}
    counts = np.bincount(strokes.ravel(), minlength=256)
    return {c: int(counts[c]) for c in (0, 1, 2)}
