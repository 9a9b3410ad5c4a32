"""Lesson: why supervision pays, the ECSE 415 study walked through for teachers.

Steps (:mod:`app_support.lessons`): k-means on one image with the study's features and
Dice matching (raw clusters beside matched labels), the K sweep, mean-shift and its
bandwidth, the study's random forests (raw pixels, mode filter, 9×9 patches, the
ensemble's curve), and the learned models on the same images. On VocEd when a dataset
named ``voced`` is configured, else on the generated ``demo-cytology`` set. Every
number is computed live by the core on a few images (:mod:`app_support.supervision`).
"""
from __future__ import annotations

import streamlit as st

from app_support import cache, sources
from app_support import supervision as S
from app_support.lessons import Step, choice_question, walk, widget
from app_support.lessons import value as kept
from app_support.router import require_frame
from cellseg_core.learn.clusters import GABOR_SIGMAS
from cellseg_core.metrics import dice

require_frame()  # a deep link on a fresh server must still go through app.py

P = "lesson_sup"
LESSON = "supervision"
VOCED, DEMO = "voced", "demo-cytology"


def _dataset():
    all_ds = sources.datasets()
    return all_ds[VOCED if VOCED in all_ds else DEMO]


def _image_id(ds) -> str:
    ids = S.lesson_ids(ds)
    chosen = kept(P, "image", ids[0])
    return chosen if chosen in ids else ids[0]


def _pick_image(ds) -> str:
    ids = S.lesson_ids(ds)
    widget(st.selectbox, "Image (test split)", P, "image", _image_id(ds), options=ids)
    return _image_id(ds)


def _pictures(ds, id, clusters, matched, captions):
    st.image([S.image_rgb(ds.image(id)), S.cluster_rgb(clusters), S.labels_rgb(matched),
              S.labels_rgb(ds.mask(id))], caption=captions, width=150)


# --- steps --------------------------------------------------------------------------------
def step_kmeans() -> dict:
    ds = _dataset()
    id = _pick_image(ds)
    left, right = st.columns(2)
    with left:
        k = int(widget(st.select_slider, "Clusters K", P, "k", 3, options=[3, 4, 5]))
    with right:
        gray = bool(widget(st.checkbox, "Gray level instead of RGB", P, "gray", False))
    clusters, match, _ = S.clusters(ds, id, k=k, gray=gray)
    _pictures(ds, id, clusters, match.labels,
              ["image", f"{k} clusters (raw)", "matched to classes", "truth"])
    mean_dice = _mean_dice(match.labels, ds.mask(id))
    a, b, c = st.columns(3)
    a.metric("Study Dice", f"{match.score:.4f}")
    b.metric("Mean Dice, matched labels", f"{mean_dice:.4f}")
    c.metric("Surplus clusters", str(match.n_surplus))
    n_gabor = 8 * len(GABOR_SIGMAS)
    return {"k": k, "study_dice": match.score, "n_surplus": match.n_surplus,
            "mean_dice": mean_dice, "n_gabor": n_gabor,
            "n_features": (1 if gray else 3) + 2 + n_gabor}


def _mean_dice(labels, truth) -> float:
    return (dice(labels, truth, 1) + dice(labels, truth, 2)) / 2


def step_sweep() -> dict:
    ds = _dataset()
    table = S.sweep(ds)
    st.dataframe(table.round(4), hide_index=True, key=f"{P}.sweep_table")
    by = table.set_index(["method", "features", "setting"])["study_dice"]
    kmeans = {k: float(by[("k-means", "rgb", f"K={k}")]) for k in (3, 4, 5)}
    best = max(kmeans, key=kmeans.get)
    choice_question(f"{P}.quiz_k", "Which K scores best by the study's rule?",
                    ["K = 3", "K = 4", "K = 5"], f"K = {best}",
                    explanation="Every cluster beyond the number of classes scores 0.")
    ms = table[table["method"] == "mean-shift"].iloc[0]
    return {"n_images": len(S.lesson_ids(ds)), "k3": kmeans[3], "k4": kmeans[4],
            "k5": kmeans[5], "gray3": float(by[("k-means", "gray", "K=3")]),
            "ms_clusters": float(ms["clusters"]), "ms_dice": float(ms["study_dice"])}


def step_meanshift() -> dict:
    ds = _dataset()
    id = _pick_image(ds)
    quantile = float(widget(st.slider, "Bandwidth: quantile of the pixel distances", P,
                            "quantile", 0.3, min_value=0.02, max_value=0.8, step=0.02))
    clusters, match, bandwidth = S.clusters(ds, id, "mean-shift", quantile=quantile)
    n_modes = int(clusters.max()) + 1
    _pictures(ds, id, clusters, match.labels,
              ["image", f"{n_modes} modes (raw)", "matched to classes", "truth"])
    a, b, c = st.columns(3)
    a.metric("Bandwidth", f"{bandwidth:.2f}")
    b.metric("Clusters found", str(n_modes))
    c.metric("Study Dice", f"{match.score:.4f}")
    return {"quantile": quantile, "bandwidth": bandwidth, "n_modes": n_modes,
            "study_dice": match.score, "n_surplus": match.n_surplus}


def step_forest() -> dict:
    ds = _dataset()
    table = S.forest_table(ds)
    st.dataframe(table.round(4), hide_index=True, key=f"{P}.forest_table")
    curve = S.forest_curve(ds)
    st.line_chart(curve.set_index("forests")[["misclassification",
                                              "nucleus_misclassification"]],
                  x_label="forests in the ensemble", y_label="misclassification rate",
                  height=220)
    id = _image_id(ds)
    labels = S.forest(ds, "patch").segment(ds.image(id)).labels
    st.image([S.image_rgb(ds.image(id)), S.labels_rgb(labels), S.labels_rgb(ds.mask(id))],
             caption=["image", "forest on patches", "truth"], width=150)
    rows = table.set_index("forest on")
    raw, mode, patch = (rows.loc["raw gray pixels"], rows.loc["raw gray pixels + mode filter"],
                        rows.loc["9×9 patches + mode filter"])
    a, b = st.columns(2)
    a.metric("Misclassification, raw pixels", f"{raw['misclassification']:.4f}")
    b.metric("Misclassification, patches", f"{patch['misclassification']:.4f}")
    return {"n_train": len(S.train_ids(ds)), "n_images": len(S.lesson_ids(ds)),
            "raw_err": raw["misclassification"], "raw_nuc": raw["nucleus_misclassification"],
            "mode_err": mode["misclassification"], "patch_err": patch["misclassification"],
            "patch_nuc": patch["nucleus_misclassification"], "raw_dice": raw["mean_dice"],
            "patch_dice": patch["mean_dice"], "first_err": curve["misclassification"].iloc[0],
            "last_err": curve["misclassification"].iloc[-1], "n_forests": len(curve)}


def _nuclei():
    try:
        return cache.builtin_method("builtin:nuclei")
    except (ValueError, OSError, ImportError):  # onnxruntime or the file missing
        return None


def step_learned() -> dict:
    ds = _dataset()
    nuclei = _nuclei()
    table = S.learned_table(ds, nuclei)
    st.dataframe(table.round(4), hide_index=True, key=f"{P}.learned_table")
    rows = table.set_index("method")["mean_dice"]
    nucleus = table.set_index("method")["dice_nucleus"]
    kmeans = float(rows.iloc[0])
    forest = float(rows.loc["forest on 9×9 patches (the study)"])
    pc = float(rows.loc["pixel classifier (multiscale colour features)"])
    best = table.loc[table["mean_dice"].idxmax(), "method"]
    choice_question(f"{P}.quiz_best", "Which method has the best mean Dice here?",
                    list(table.dropna(subset=["mean_dice"])["method"]), best,
                    explanation="Computed live on these images: the table above.")
    if nuclei is not None:
        line = (f"the built-in nucleus model, trained on other data's nuclei only, nucleus "
                f"Dice {float(nucleus.iloc[-1]):.3f} (it knows no cytoplasm).")
    else:
        line = "the built-in nucleus model is not available here (onnxruntime missing)."
    return {"n_images": len(S.lesson_ids(ds)), "n_train": len(S.train_ids(ds)),
            "kmeans_dice": kmeans, "forest_dice": forest, "pc_dice": pc,
            "nuclei_line": line}


STEPS = [
    Step("01-kmeans", "k-means on one image, no labels", step_kmeans),
    Step("02-sweep", "The study's K sweep", step_sweep),
    Step("03-meanshift", "Mean-shift and its bandwidth", step_meanshift),
    Step("04-forest", "Random forests learn from masks", step_forest),
    Step("05-learned", "The learned models, side by side", step_learned),
]

st.title("Lesson · Why supervision pays")
st.caption(f"On the {_dataset().name} dataset: the ECSE 415 study's unsupervised and "
           f"supervised segmentation, computed live on {S.N_IMAGES} test images.")
walk(LESSON, STEPS, page=P)
