"""Nucleus models on the pages: the built-in model and the ones trained or uploaded in
this session, as a choice next to a page's own pipeline (Count), and the default set
of nucleus methods for Compare (issue 18 points 2 and 7)."""
from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import streamlit as st

from cellseg_core.io import write_bytes_atomic
from cellseg_core.learn import NucleusModel

from . import methods, runs

__all__ = ["PIPELINE", "nucleus_models", "count_method", "model_from_onnx"]

#: Count's choice that means "the classic pipeline of the page's steps".
PIPELINE = "classic pipeline (the steps below)"


def nucleus_models() -> dict:
    """Name -> nucleus model: the built-in one, then this session's
    (:class:`~cellseg_core.learn.NucleusModel` registered by Train or an upload)."""
    out = {name: m.model for name, m in methods.builtin_methods().items()}
    out.update({name: m for name, m in runs.learned_models().items()
                if isinstance(m, NucleusModel)})
    return out


def count_method(page: str):
    """A select box: the page's pipeline or a nucleus model. Returns ``(name, model)``
    for a model, None for the pipeline."""
    models = nucleus_models()
    key = f"{page}.method"
    choices = [PIPELINE, *models]
    if st.session_state.get(key) not in choices:
        st.session_state[key] = PIPELINE
    choice = st.selectbox("Method", choices, key=key,
                          help="The classic pipeline, step by step, or a nucleus model: "
                               "the built-in U-Net (works on fluorescence, stained and "
                               "bright-field images, nucleus size estimated) or one trained "
                               "on the Train page.")
    return (choice, models[choice]) if choice in models else None


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
