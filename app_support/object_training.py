"""The Train page's object classifier: a random forest of cell classes fitted on a
dataset's ``classes/<stem>.csv`` files (:mod:`cellseg_core.data.classes`), scored on the
test split's labelled nuclei, downloaded as a model file or handed to Explore's
"Classify cells" section."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from cellseg_core.data.classes import CLASSES_FOLDER, classes_file, classes_reader
from cellseg_core.learn.objects import score_object_classifier, train_object_classifier

from . import object_classes, sources
from .safe_text import md

__all__ = ["render_object_training"]

_TREES = 100


def _has_classes(ds) -> bool:
    return ds.has_masks and (Path(ds.source or ".") / CLASSES_FOLDER).is_dir()


def _use_in_explore(page: str, explore: str) -> None:
    classifier, _, name = st.session_state[f"{page}.obj.result"]
    k = object_classes._keys(explore)
    st.session_state[k["model"]] = classifier
    st.session_state[k["names"]] = list(classifier.class_names)
    st.session_state[k["model_note"]] = f"trained on the class files of {name}"


def render_object_training(page: str, *, explore: str = "explore") -> None:
    """Dataset picker, Train, the scores, the model file, and "Use in Explore"."""
    st.subheader("Object classifier (cell classes) from a dataset's class files")
    st.caption(f"A dataset folder with `{CLASSES_FOLDER}/<stem>.csv` files (columns "
               "`label,class`: a nucleus id of `labels/<stem>.tif`, else of the numbered "
               "nucleus regions of the mask, and its class) trains a random forest on "
               "every labelled nucleus's features. `cellseg train DATASET --method objects` "
               "does the same.")
    ds = sources.pick_dataset(f"{page}.obj.dataset", where=_has_classes,
                              empty=f"No dataset with a {CLASSES_FOLDER}/ folder: set "
                                    "CELLSEG_DATA to one.")
    if ds is None:
        return
    train = list((ds.split or {}).get("train") or ds.ids)
    test = list((ds.split or {}).get("test") or []) if ds.split else []
    labelled = [i for i in train if classes_file(ds, i) is not None]
    st.caption(f"{len(labelled)} of {len(train)} training images have a class file"
               + (f"; {sum(classes_file(ds, i) is not None for i in test)} test images"
                  if test else "; no test split to score on") + ".")
    if st.button("Train object classifier", key=f"{page}.obj.train", disabled=not labelled):
        classes_of = classes_reader(ds)
        with st.spinner("Measuring the labelled nuclei and fitting…"):
            try:
                classifier = train_object_classifier(ds, labelled, classes_of,
                                                     n_estimators=_TREES, rng=0)
                scores = score_object_classifier(classifier, ds, test, classes_of)
            except ValueError as err:
                st.error(f"Cannot train on {md(ds.name)}: {md(err)}")
                return
        st.session_state[f"{page}.obj.result"] = (classifier, scores, ds.name)
    result = st.session_state.get(f"{page}.obj.result")
    if result is None:
        return
    classifier, scores, name = result
    counts = pd.DataFrame({"class": list(classifier.training_counts_),
                           "training nuclei": list(classifier.training_counts_.values())})
    st.dataframe(counts, hide_index=True)
    if scores is not None:
        st.markdown(f"Test split of {md(name)}: accuracy **{scores['accuracy']:.3f}**, "
                    f"balanced accuracy **{scores['balanced_accuracy']:.3f}** over "
                    f"{scores['test_objects']} labelled nuclei.")
    c1, c2 = st.columns(2)
    c1.download_button("Object classifier model file", classifier.to_bytes,
                       file_name="cells.cellseg-model", mime="application/octet-stream",
                       key=f"{page}.obj.download", on_click="ignore",
                       help="Use it with `cellseg segment --object-classifier FILE`.")
    c2.button("Use in Explore's Classify cells", key=f"{page}.obj.use",
              on_click=_use_in_explore, args=(page, explore))
