"""Explore's "Classify cells" section: click cells to give them a class, train a random
forest on their features, see every cell coloured by its predicted class (QuPath's
object classifier; :mod:`cellseg_core.learn.objects`).

The examples a user gives are kept in the session as (features, class index) rows,
keyed by the image and parameters they were measured with, so examples from several
images train one classifier. Class names are edited in one text box (renaming keeps
the examples: they hold the class's position). The classifier is a model file: it
can be downloaded and uploaded (same refusal rules as every model file) and used by
``cellseg segment --object-classifier``.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import streamlit as st

from cellseg_core.learn.objects import (DEFAULT_CLASSES, DEFAULT_RADIUS, ObjectClassifier,
                                        class_counts)

from . import cache, figures, quotas
from .safe_text import md

__all__ = ["render_classify_cells", "classes_figure", "parse_class_names", "CLASS_PALETTE",
           "UNCLASSIFIED"]

#: Marker colours of the classes, in order (colour-blind-friendly, Okabe-Ito first).
CLASS_PALETTE = ("#E69F00", "#56B4E9", "#009E73", "#D55E00", "#CC79A7", "#0072B2",
                 "#F0E442", "#999999")
#: Marker colour of a cell without a class (no classifier yet, not clicked).
UNCLASSIFIED = "#FFFFFF"
#: At most this many classes in the app (the palette's size).
MAX_CLASSES = len(CLASS_PALETTE)
_TREES = 100


def parse_class_names(text: str) -> list[str]:
    """Class names from comma-separated `text` (2 to :data:`MAX_CLASSES`, distinct).

    Examples
    --------
    >>> parse_class_names(" tumour, lymphocyte ,stroma")
    ['tumour', 'lymphocyte', 'stroma']
    """
    names = [n.strip() for n in str(text).split(",") if n.strip()]
    if not 2 <= len(names) <= MAX_CLASSES:
        raise ValueError(f"give 2 to {MAX_CLASSES} class names, separated by commas "
                         f"(got {len(names)})")
    if len(set(names)) != len(names):
        raise ValueError("class names must be distinct")
    ObjectClassifier(names)  # the core's own checks (length)
    return names


def _keys(page: str) -> dict:
    p = f"{page}.cls"
    return {k: f"{p}.{k}" for k in ("names", "names_text", "current", "examples", "model",
                                    "model_note", "chart", "cell_id", "assign", "train",
                                    "clear", "upload", "upload_seen", "download")}


def _state(page: str) -> dict:
    k = _keys(page)
    ss = st.session_state
    ss.setdefault(k["names"], list(DEFAULT_CLASSES))
    ss.setdefault(k["examples"], {})
    ss.setdefault(k["model"], None)
    return k


def classes_figure(image: np.ndarray, centres: np.ndarray, ids: np.ndarray, *,
                   colors, hover, annotated, legend: dict | None = None,
                   max_side: int = 1024, height: int = 520, image_uri: str | None = None):
    """The image with one clickable marker per cell (a scatter trace of centroids).

    Parameters
    ----------
    image : (M, N[, 3]) ndarray
    centres : (K, 2) ndarray of row, col
    ids : (K,) ndarray of int, each marker's nucleus label (``customdata``)
    colors : sequence of K colours (class or :data:`UNCLASSIFIED`)
    hover : sequence of K strings
    annotated : (K,) bool, cells a user gave a class (drawn larger, outlined)
    legend : dict, optional
        Class name -> colour, shown as a legend under the image.

    The cells are the first trace (clicks and selections name its points); the
    legend's entries are traces without points.
    """
    step = figures.display_step(image.shape[:2], max_side)
    small = np.asarray(image)[::step, ::step]
    uri = image_uri or figures.jpeg_data_uri(figures.to_rgb8(small))
    layout = figures._grid_layout(["image"], height=height, extent=(small.shape[:2], step),
                                  titled=False)
    layout["images"] = [figures._layer_image(uri, small.shape[:2], step, "image", 1,
                                             layer="below")]
    layout.update(showlegend=bool(legend), clickmode="event+select", hovermode="closest")
    annotated = np.asarray(annotated, bool)
    trace = {"type": "scatter", "mode": "markers", "name": "cells",
             "x": centres[:, 1].tolist(), "y": centres[:, 0].tolist(),
             "customdata": [[int(i)] for i in ids], "text": list(hover),
             "hovertemplate": "%{text}<extra></extra>",
             "marker": {"color": list(colors), "size": np.where(annotated, 15, 10).tolist(),
                        "line": {"color": "#000000",
                                 "width": np.where(annotated, 3, 1).tolist()},
                        "opacity": 0.9},
             "selected": {"marker": {"opacity": 1.0}},
             "unselected": {"marker": {"opacity": 0.9}}, "showlegend": False}
    keys = figures._legend({name: tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))
                            for name, color in (legend or {}).items()})
    return figures._figure([trace, *keys], layout)


def _assign(page: str, version: str, ids, features, labels, class_index) -> int:
    """Store (or remove, `class_index` None) examples for nuclei `labels`; how many."""
    k = _keys(page)
    examples = st.session_state[k["examples"]]
    rows = {int(i): r for r, i in enumerate(ids)}
    n = 0
    for label in labels:
        row = rows.get(int(label))
        if row is None:
            continue
        if class_index is None:
            examples.pop((version, int(label)), None)
        else:
            examples[(version, int(label))] = (int(class_index), features[row])
        n += 1
    return n


def _assign_typed(page: str, version: str, ids, features) -> None:
    """The Assign button: the class picked to the cell whose id was typed."""
    k = _keys(page)
    cell = st.session_state.get(k["cell_id"])
    if cell is None or _assign(page, version, ids, features, [cell], _current_class(page)) == 0:
        st.session_state[f"{k['model_note']}.error"] = f"No cell {cell} in this segmentation."
    else:
        st.session_state.pop(f"{k['model_note']}.error", None)


def _current_class(page: str):
    k = _keys(page)
    names = st.session_state[k["names"]]
    current = st.session_state.get(k["current"])
    return names.index(current) if current in names else None  # None: "remove"


def _on_select(page: str, version: str, ids, features) -> None:
    k = _keys(page)
    event = st.session_state.get(k["chart"])
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    labels = [p["customdata"][0] for p in points if p.get("customdata")]
    _assign(page, version, ids, features, labels, _current_class(page))


def _on_names(page: str) -> None:
    k = _keys(page)
    try:
        names = parse_class_names(st.session_state[k["names_text"]])
    except ValueError as err:
        st.session_state[f"{k['names']}.error"] = str(err)
        return
    st.session_state.pop(f"{k['names']}.error", None)
    old = st.session_state[k["names"]]
    model = st.session_state[k["model"]]
    if model is not None and len(model.class_names) == len(names):
        model.rename_classes(names)  # by position, as the examples
    st.session_state[k["names"]] = names
    if len(names) < len(old):  # examples of removed classes go
        examples = st.session_state[k["examples"]]
        for key in [key for key, (c, _) in examples.items() if c >= len(names)]:
            del examples[key]


def _train(page: str) -> None:
    k = _keys(page)
    examples = st.session_state[k["examples"]]
    classes = np.array([c for c, _ in examples.values()], int)
    if np.unique(classes).size < 2:
        st.session_state[f"{k['model_note']}.error"] = (
            "Give examples of at least two classes first (pick a class, click cells).")
        return
    x = np.stack([f for _, f in examples.values()])
    model = ObjectClassifier(st.session_state[k["names"]], n_estimators=_TREES)
    st.session_state[k["model"]] = model.fit(x, classes, rng=0)
    st.session_state[k["model_note"]] = (f"trained on {len(classes)} cells in "
                                         f"{model.fit_seconds_:.2f} s")
    st.session_state.pop(f"{k['model_note']}.error", None)


def _clear(page: str) -> None:
    k = _keys(page)
    st.session_state[k["examples"]] = {}
    st.session_state[k["model"]] = None
    st.session_state.pop(k["model_note"], None)


def _upload(page: str) -> None:
    """A classifier file from the uploader, read once per file (refused files say why)."""
    k = _keys(page)
    up = quotas.accepted(st.file_uploader(
        "Object classifier file (from here or `cellseg train --method objects`)",
        key=k["upload"]))
    if up is None:
        return
    data = up.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    seen = st.session_state.get(k["upload_seen"])
    if seen is not None and seen[0] == digest:
        if seen[1]:
            st.error(f"{md(up.name)} is not a usable object classifier: {md(seen[1])}")
        return
    try:
        model = ObjectClassifier.load(data)
    except ValueError as err:
        st.session_state[k["upload_seen"]] = (digest, str(err))
        st.error(f"{md(up.name)} is not a usable object classifier: {md(err)}")
        return
    st.session_state[k["upload_seen"]] = (digest, None)
    st.session_state[k["model"]] = model
    st.session_state[k["names"]] = list(model.class_names)
    st.session_state[k["model_note"]] = f"from the file {up.name}"


def render_classify_cells(seg, source, params, *, page: str) -> None:
    """The section: class names, the class to assign, the clickable image, Train,
    then every cell's predicted class, counts and densities, and the model file."""
    k = _state(page)
    ss = st.session_state
    with st.expander("Load an object classifier file"):
        _upload(page)  # first: a file sets the class names the widgets below show
    pixel_size = getattr(source, "pixel_size", None)  # set where the source knows it
    model = ss[k["model"]]
    if model is not None and model.microns and pixel_size is None:
        st.error("This object classifier measures in µm, but the image has no pixel size.")
        return
    radius = model.radius if model is not None else DEFAULT_RADIUS["px"]
    ids, x, centres, _ = cache.cell_features(
        source.digest, source.image, params, seg,
        pixel_size=pixel_size if model is not None and model.microns else None, radius=radius)
    version = hashlib.sha1(f"{source.digest}{params.to_json(indent=None)}".encode()).hexdigest()
    st.caption("Pick a class, then click cells on the image to give them that class "
               "(examples from several images add up). **Train** fits a random forest "
               "on their size, shape, colour, stain and neighbourhood; every cell is then "
               "coloured by its predicted class. Measurements for review, not a diagnosis.")
    if len(ids) == 0:
        st.info("No nuclei in this segmentation: nothing to classify.")
        return

    try:  # the names are the truth (a file or the Train page may have set them)
        shown = parse_class_names(ss.get(k["names_text"], ""))
    except ValueError:
        shown = None
    if shown != ss[k["names"]]:
        ss[k["names_text"]] = ", ".join(ss[k["names"]])
    st.text_input("Classes (comma-separated, 2 to 8; renaming keeps the examples)",
                  key=k["names_text"], on_change=_on_names, args=(page,))
    if f"{k['names']}.error" in ss:
        st.error(ss[f"{k['names']}.error"])
    names = ss[k["names"]]
    st.radio("Class to assign", [*names, "(remove class)"], horizontal=True, key=k["current"])

    examples = ss[k["examples"]]
    here = {label: c for (v, label), (c, _) in examples.items() if v == version}
    predicted = probability = None
    if model is not None:
        proba = model.predict_proba(x)
        best = proba.argmax(1)
        predicted = np.array(model.class_names, dtype=object)[best]
        probability = proba[np.arange(len(best)), best]
    colors, hover = [], []
    palette = {n: CLASS_PALETTE[i % MAX_CLASSES] for i, n in enumerate(
        model.class_names if model is not None else names)}
    for i, label in enumerate(ids.tolist()):
        given = names[here[label]] if label in here and here[label] < len(names) else None
        text = f"cell {label}"
        if predicted is not None:
            text += f" · {predicted[i]} ({probability[i]:.2f})"
            colors.append(palette.get(predicted[i], UNCLASSIFIED))
        else:
            colors.append(CLASS_PALETTE[here[label]] if given else UNCLASSIFIED)
        if given:
            text += f" · example: {given}"
        hover.append(text)
    figure = classes_figure(source.image, centres, ids, colors=colors, hover=hover,
                            annotated=np.isin(ids, list(here)), legend=palette,
                            image_uri=cache.image_uri(source.digest, source.image,
                                                      figures.display_step(source.shape)))
    st.plotly_chart(figure, key=k["chart"], on_select=lambda: _on_select(page, version, ids, x),
                    selection_mode="points", config={"scrollZoom": True}, theme=None)
    st.caption("White markers: no class yet. Large outlined markers: your examples. "
               "Hover a cell for its id, class and probability.")

    row = st.container(horizontal=True, vertical_alignment="bottom")
    row.number_input("Cell id", min_value=int(ids.min()), max_value=int(ids.max()),
                            value=int(ids.min()), step=1, key=k["cell_id"], width=160,
                            help="Or give a cell by its id (hover shows it), then Assign.")
    row.button("Assign", key=k["assign"], on_click=_assign_typed,
               args=(page, version, ids, x))
    row.button("Train", key=k["train"], type="primary", on_click=_train, args=(page,))
    row.button("Clear examples and classifier", key=k["clear"], on_click=_clear, args=(page,))
    counts = pd.Series([names[c] for c, _ in examples.values() if c < len(names)],
                       dtype=object).value_counts()
    st.caption("Examples: " + (", ".join(f"{md(n)} {counts.get(n, 0)}" for n in names)
                               if len(counts) else "none yet") + ".")
    if f"{k['model_note']}.error" in ss:
        st.warning(ss[f"{k['model_note']}.error"])

    if model is not None:
        st.markdown(f"**Classifier** {md(ss.get(k['model_note'], ''))}: "
                    f"{len(model.class_names)} classes, {model.n_estimators} trees")
        table = class_counts(predicted, model.class_names, source.shape,
                             pixel_size=pixel_size)
        st.dataframe(table, hide_index=True, key=f"{k['chart']}.counts",
                     column_config={"share": st.column_config.NumberColumn(format="%.3f")})
        st.caption("Densities per mm² (the image's pixel size)" if pixel_size else
                   "No pixel size for this image: densities per megapixel of image.")
        per_cell = pd.DataFrame({"label": ids, "class": predicted,
                                 "class_probability": probability})
        c1, c2 = st.columns(2)
        c1.download_button("Classifier model file", model.to_bytes,
                           file_name="cells.cellseg-model", mime="application/octet-stream",
                           key=k["download"], on_click="ignore",
                           help="Use it with `cellseg segment --object-classifier FILE`.")
        c2.download_button("Cell classes (CSV)", per_cell.to_csv(index=False),
                           file_name="cell_classes.csv", mime="text/csv",
                           key=f"{k['download']}.csv", on_click="ignore")
