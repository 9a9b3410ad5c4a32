"""Nucleus models on the pages: the built-in model and the ones trained or uploaded in
this session, as a choice next to a page's own pipeline (Count), and the default set
of nucleus methods for Compare (issue 18 points 2 and 7)."""
from __future__ import annotations

import streamlit as st

from cellseg_core.learn import NucleusModel

from . import cache, learned, methods, runs
from .safe_text import md

__all__ = ["PIPELINE", "nucleus_models", "count_method", "picked", "count_result"]

#: Count's choice that means "the classic pipeline of the page's steps".
PIPELINE = "classic pipeline (the steps below)"


def nucleus_models() -> dict:
    """Name -> nucleus model: the built-in one, then this session's
    (:class:`~cellseg_core.learn.NucleusModel` registered by Train or an upload)."""
    out = {name: m.model for name, m in methods.builtin_methods().items()}
    out.update({name: m for name, m in runs.learned_models().items()
                if isinstance(m, NucleusModel)})
    return out


def count_method(page: str, presets=()):
    """A select box: the page's pipeline, the automatic `presets` (names) or a nucleus
    model. Returns ``(name, model)`` for a model, None for the pipeline or a preset."""
    models = nucleus_models()
    key = f"{page}.method"
    choices = [PIPELINE, *presets, *models]
    if st.session_state.get(key) not in choices:
        st.session_state[key] = PIPELINE
    choice = st.selectbox("Method", choices, key=key,
                          help="The classic pipeline, step by step"
                               + (f"; an automatic preset ({', '.join(presets)}: the kind "
                                  "of image and the nucleus size read off the image, "
                                  "every setting derived from them)" if presets else "")
                               + "; or a nucleus model: "
                               "the built-in U-Net (works on fluorescence, stained and "
                               "bright-field images, nucleus size estimated) or one trained "
                               "on the Train page.")
    return (choice, models[choice]) if choice in models else None


def picked(page: str):
    """The model :func:`count_method` holds (read, not drawn): ``(name, model)`` or None."""
    models = nucleus_models()
    name = st.session_state.get(f"{page}.method")
    return (name, models[name]) if name in models else None


def count_result(source, name: str, model):
    """Count's ``(params, segmentation, instance scores or None)`` for a nucleus model,
    or None after an error (shown)."""
    try:
        seg = learned.segmentation(source.digest, source.image, name, model)
    except ValueError as err:
        st.error(f"{md(name)} cannot segment this image: {md(err)}")
        return None
    truth = source.instances
    scores = None if truth is None else cache.instance_scores(
        source.digest, f"model:{name}:{id(model)}", seg, truth)
    return seg.params, seg, scores
