"""Lesson: the N/C ratio of urothelial cells, from a fixed threshold to a cleaned pipeline.

The course chapter as steps (:mod:`app_support.lessons`): hand-picked thresholds with
the per-class histogram, Bayesian optimisation on the train split with the exact Dice
surface, blur + opening/closing, targeted clean-up, the cumulative table and N/C
scatter, and why colour and learning come next. On VocEd when a dataset named
``voced`` is configured, else on the generated ``demo-cytology`` set. Every score is
``evaluation.evaluate`` / ``evaluation.dice_surface`` on the dataset's split, cached.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from app_support import cache, compare_figures, figures, sources
from app_support.ablation import render_ablation
from app_support.quiz import QUESTIONS, render_question
from app_support.lessons import Step, choice_question, order_exercise, walk, widget
from app_support.lessons import value as kept
from cellseg_core.params import Params
from cellseg_core.presets import get_preset
from cellseg_core.threshold import two_threshold
from app_support.router import require_frame

require_frame()  # a deep link on a fresh server must still go through app.py

P = "lesson_nc"
LESSON = "nc_ratio"
VOCED, DEMO = "voced", "demo-cytology"
#: The optimiser's calls by default (the course ran 50; a few give the idea quickly).
N_CALLS = 15
QUIZ_GRAY = 0.72
#: The pipeline, in the order segment() runs it (for the ordering exercise).
PIPELINE = ["read the RGB image", "convert to gray", "blur", "two thresholds (t_nuc, t_bg)",
            "opening / closing", "remove small objects, fill holes", "measure the N/C ratio"]


def key(name: str) -> str:
    return f"{P}.{name}"


# --- data and cached engine calls ---------------------------------------------------------
def _dataset():
    all_ds = sources.datasets()
    name = VOCED if VOCED in all_ds else DEMO
    return all_ds[name]


def _split(ds) -> tuple:
    return tuple(ds.split["train"]), tuple(ds.split["test"])


# --- the stages' parameters (from the widgets' state, defaults before they are drawn) ------
def stage1() -> Params:
    return get_preset("lab01").with_values({
        "threshold.t_nuc": float(kept(P, "t_nuc", 0.45)),
        "threshold.t_bg": float(kept(P, "t_bg", 0.85))})


def stage2() -> tuple[Params, str]:
    """The optimiser's best once it ran here, else the course's (preset lab02)."""
    run = st.session_state.get(key("opt"))
    if run is None:
        return get_preset("lab02"), "preset lab02 (the course's 50-call search)"
    return Params.from_json(run["params"]), f"your {run['n_calls']}-call search"


def stage3() -> Params:
    return stage2()[0].with_values({
        "cleanup.scheme": "course",  # opening / closing as the course's full_pipeline
        "blur.kind": "gaussian", "blur.sigma": float(kept(P, "sigma", 1.0)),
        "cleanup.opening_radius": int(kept(P, "opening", 1)),
        "cleanup.closing_radius": int(kept(P, "closing", 1))})


def stage4() -> Params:
    return stage2()[0].with_values({
        "cleanup.scheme": "course",  # removed pieces as the course's segment_morph
        "cleanup.min_nucleus_size": int(kept(P, "min_nuc", 200)),
        "cleanup.min_cytoplasm_size": int(kept(P, "min_cyto", 200)),
        "cleanup.fill_holes": bool(kept(P, "fill", True))})


def _common(ds) -> dict:
    train, test = _split(ds)
    return {"dataset": ds.name, "n_train": len(train), "n_test": len(test)}


def _image_id(ds) -> str:
    return "007" if ds.name == VOCED and "007" in ds.ids else ds.ids[0]


# --- steps --------------------------------------------------------------------------------
def step_hand_picked() -> dict:
    ds = _dataset()
    image_id = _image_id(ds)
    image, truth = cache.dataset_item(ds, image_id)
    c1, c2 = st.columns(2)
    with c1:
        widget(st.slider, "t_nuc: nucleus below", P, "t_nuc", 0.45, min_value=0.0,
               max_value=1.0, step=0.01)
    with c2:
        widget(st.slider, "t_bg: background from", P, "t_bg", 0.85, min_value=0.0,
               max_value=1.0, step=0.01)
    params = stage1()  # Params refuses t_nuc >= t_bg: the walker shows the reason
    digest = f"lesson:{ds.name}:{ds.source}:{image_id}"
    seg = cache.segmentation(digest, image, params)
    scores = cache.scores(seg, truth)
    hist = cache.histograms(digest, image, params, truth)
    st.plotly_chart(figures.overlay_figure(image, seg.labels, truth=truth, height=300),
                    key=key("overlay"), **figures.CHART_OPTIONS)
    st.caption(figures.overlay_key(truth=truth is not None))
    st.plotly_chart(figures.histogram_figure(hist, seg.thresholds), key=key("hist"))
    train, test = _split(ds)
    ev = cache.dataset_evaluation(ds, test, params).summary
    c = st.columns(3)
    c[0].metric(f"Mean Dice, image {image_id}", f"{scores['mean_dice']:.4f}")
    c[1].metric("Mean Dice, test split", f"{ev['mean_dice']:.4f}")
    c[2].metric("Pooled Dice, test split", f"{ev['pooled_dice']:.4f}")
    label = int(two_threshold(np.array([[QUIZ_GRAY]], np.float32), params.threshold.t_nuc,
                              params.threshold.t_bg)[0, 0])
    choice_question(key("quiz_label"),
                    f"With t_nuc = {params.threshold.t_nuc:g} and t_bg = "
                    f"{params.threshold.t_bg:g}, what label does a pixel of gray "
                    f"{QUIZ_GRAY:g} get?", list(figures.CLASS_NAMES.values()),
                    figures.CLASS_NAMES[label],
                    explanation="The rule: nucleus below t_nuc, cytoplasm from t_nuc up to "
                                "t_bg, background from t_bg.")
    return {**_common(ds), "image_id": image_id, "t_nuc": params.threshold.t_nuc,
            "t_bg": params.threshold.t_bg, "image_dice": scores["mean_dice"],
            "dice_nucleus": scores["dice_nucleus"], "dice_cytoplasm": scores["dice_cytoplasm"],
            "test_dice": ev["mean_dice"], "test_pooled": ev["pooled_dice"]}


def step_optimise() -> dict:
    ds = _dataset()
    train, test = _split(ds)
    c1, c2 = st.columns(2)
    with c1:
        n_calls = int(widget(st.number_input, "Calls", P, "n_calls", N_CALLS, min_value=11,
                             max_value=200, help="Objective evaluations, the first 10 at "
                                                 "random"))
    with c2:
        seed = int(widget(st.number_input, "Seed", P, "seed", 0, min_value=0,
                          max_value=10_000))
    if st.button(f"Run the Bayesian optimisation ({n_calls} calls on the train split)",
                 key=key("run"), type="primary"):
        params_json, score, history = cache.optimise_thresholds(ds, train, n_calls, seed)
        st.session_state[key("opt")] = {"params": params_json, "score": score,
                                        "history": history, "n_calls": n_calls}
    run = st.session_state.get(key("opt"))
    best, origin = stage2()
    surface = cache.dataset_surface(ds, train, stage1())
    st.plotly_chart(compare_figures.surface_figure(
        surface, points=None if run is None else run["history"],
        best=(best.threshold.t_nuc, best.threshold.t_bg), height=420), key=key("surface"))
    ev_train = cache.dataset_evaluation(ds, train, best).summary
    ev_test = cache.dataset_evaluation(ds, test, best).summary
    c = st.columns(3)
    c[0].metric("Train mean Dice", f"{ev_train['mean_dice']:.4f}")
    c[1].metric("Test mean Dice", f"{ev_test['mean_dice']:.4f}")
    c[2].metric("Surface maximum (train)", f"{surface.best_score:.4f}")
    st.caption(f"Stage 2 uses {origin}.")
    render_question(QUESTIONS["t_bg"], P)
    return {**_common(ds), "origin": origin, "n_calls": n_calls if run is None else run["n_calls"],
            "ran": "yes" if run else "not yet", "t_nuc": best.threshold.t_nuc,
            "t_bg": best.threshold.t_bg, "train_dice": ev_train["mean_dice"],
            "test_dice": ev_test["mean_dice"], "test_pooled": ev_test["pooled_dice"],
            "surface_best": surface.best_score, "surface_t_nuc": surface.best[0],
            "surface_t_bg": surface.best[1], "grid": surface.thresholds.size,
            "surface_seconds": surface.seconds}


def step_blur() -> dict:
    ds = _dataset()
    _, test = _split(ds)
    c = st.columns(3)
    with c[0]:
        widget(st.slider, "Gaussian blur σ (px)", P, "sigma", 1.0, min_value=0.0,
               max_value=4.0, step=0.1)
    with c[1]:
        widget(st.slider, "Opening radius (px)", P, "opening", 1, min_value=0, max_value=5)
    with c[2]:
        widget(st.slider, "Closing radius (px)", P, "closing", 1, min_value=0, max_value=5)
    base, params = stage2()[0], stage3()
    before, after = cache.dataset_evaluation(ds, test, base), cache.dataset_evaluation(ds, test, params)
    b, a = before.summary, after.summary
    # Where does the change come from? Per image, how many images moved how much.
    delta = after.per_image["mean_dice"].to_numpy() - before.per_image["mean_dice"].to_numpy()
    st.plotly_chart(compare_figures.dice_distribution_figure(
        {"stage 2": before.per_image, "stage 3 (blur + open/close)": after.per_image},
        height=320), key=key("dist"))
    m = st.columns(3)
    m[0].metric("Test mean Dice, stage 2", f"{b['mean_dice']:.4f}")
    m[1].metric("Test mean Dice, stage 3", f"{a['mean_dice']:.4f}",
                delta=f"{a['mean_dice'] - b['mean_dice']:+.4f}")
    m[2].metric("Images changed by > 0.01", f"{int((np.abs(delta) > 0.01).sum())}")
    render_question(QUESTIONS["stage3"], P)
    with st.expander("Ablation: which step gives the gain? (each step alone)"):
        render_ablation(ds, test, base.with_values({"cleanup.scheme": "course"}), P)
    return {**_common(ds), "sigma": params.blur.sigma,
            "opening": params.cleanup.opening_radius, "closing": params.cleanup.closing_radius,
            "test_before": b["mean_dice"], "test_dice": a["mean_dice"],
            "gain": a["mean_dice"] - b["mean_dice"],
            "n_changed": int((np.abs(delta) > 0.01).sum()),
            "max_gain": float(np.max(delta)), "max_loss": float(-np.min(delta)),
            "nucleus_before": b["dice_nucleus"], "nucleus_after": a["dice_nucleus"]}


def step_cleanup() -> dict:
    ds = _dataset()
    _, test = _split(ds)
    c = st.columns(3)
    with c[0]:
        widget(st.slider, "Remove nucleus pieces under (px)", P, "min_nuc", 200,
               min_value=0, max_value=1000, step=10)
    with c[1]:
        widget(st.slider, "Remove cytoplasm pieces under (px)", P, "min_cyto", 200,
               min_value=0, max_value=1000, step=10)
    with c[2]:
        widget(st.checkbox, "Fill holes in nuclei", P, "fill", True)
    params = stage4()
    image_id = _image_id(ds)
    image, truth = cache.dataset_item(ds, image_id)
    digest = f"lesson:{ds.name}:{ds.source}:{image_id}"
    seg2 = cache.segmentation(digest, image, stage2()[0])
    seg4 = cache.segmentation(digest, image, params)
    st.plotly_chart(figures.overlay_figure(image, seg4.labels, truth=truth, height=300),
                    key=key("overlay4"), **figures.CHART_OPTIONS)
    st.caption(figures.overlay_key(truth=truth is not None))
    b, a = cache.dataset_evaluation(ds, test, stage2()[0]).summary, cache.dataset_evaluation(ds, test, params).summary
    m = st.columns(3)
    m[0].metric("Test mean Dice, stage 2", f"{b['mean_dice']:.4f}")
    m[1].metric("Test mean Dice, stage 4", f"{a['mean_dice']:.4f}",
                delta=f"{a['mean_dice'] - b['mean_dice']:+.4f}")
    m[2].metric(f"Nuclei in image {image_id}: before → after",
                f"{seg2.summary['n_nuclei']} → {seg4.summary['n_nuclei']}")
    render_question(QUESTIONS["failure_modes"], P)
    return {**_common(ds), "min_nuc": params.cleanup.min_nucleus_size,
            "min_cyto": params.cleanup.min_cytoplasm_size,
            "fill": "filled" if params.cleanup.fill_holes else "not filled",
            "test_before": b["mean_dice"], "test_dice": a["mean_dice"],
            "gain": a["mean_dice"] - b["mean_dice"], "image_id": image_id,
            "pieces_before": seg2.summary["n_nuclei"], "pieces_after": seg4.summary["n_nuclei"],
            "nucleus_before": b["dice_nucleus"], "nucleus_after": a["dice_nucleus"]}


def stage_table(ds) -> tuple[pd.DataFrame, dict]:
    """The four stages' scores on the test split, and their per-image tables."""
    _, test = _split(ds)
    stages = {"1 hand-picked": stage1(), "2 optimised": stage2()[0],
              "3 blur + open/close": stage3(), "4 targeted clean-up": stage4()}
    evs = {name: cache.dataset_evaluation(ds, test, params) for name, params in stages.items()}
    rows = [{"stage": name, "test mean Dice": ev.summary["mean_dice"],
             "test pooled Dice": ev.summary["pooled_dice"],
             "Dice nucleus": ev.summary["dice_nucleus"],
             "Dice cytoplasm": ev.summary["dice_cytoplasm"],
             "N/C MAE": ev.summary["nc_mae"], "N/C R²": ev.summary["nc_r2"],
             "nucleus/cell MAE": ev.summary["nucleus_cell_ratio_mae"]}
            for name, ev in evs.items()]
    return pd.DataFrame(rows), {name: ev.per_image for name, ev in evs.items()}


def step_summary() -> dict:
    ds = _dataset()
    table, per_image = stage_table(ds)
    st.dataframe(table.style.format(precision=4), hide_index=True, key=key("table"))
    fig = compare_figures.nc_scatter_figure(per_image, cols=2, height_per_row=300)
    st.plotly_chart(fig, key=key("nc"))
    d = table.set_index("stage")["test mean Dice"].to_numpy()
    r2 = fig.layout.meta["r2"]
    render_question(QUESTIONS["gain"], P)
    return {**_common(ds), "dice1": d[0], "dice2": d[1], "dice3": d[2], "dice4": d[3],
            "gain_total": d[3] - d[0], "gain_opt": d[1] - d[0], "gain_blur": d[2] - d[1],
            "gain_cleanup": d[3] - d[1], "r2_first": list(r2.values())[0],
            "r2_last": list(r2.values())[-1],
            "mae_last": float(table["N/C MAE"].iloc[-1]),
            "ncr_mae_last": float(table["nucleus/cell MAE"].iloc[-1])}


def step_next() -> dict:
    ds = _dataset()
    train, test = _split(ds)
    surface = cache.dataset_surface(ds, test, stage1())
    best4 = cache.dataset_evaluation(ds, test, stage4()).summary["mean_dice"]
    st.metric("Best any gray threshold pair could do on the test split",
              f"{surface.best_score:.4f}")
    st.plotly_chart(compare_figures.surface_figure(surface, height=380), key=key("surface_test"))
    order_exercise(key("order"), "Put the steps of the pipeline in order", PIPELINE)
    return {**_common(ds), "ceiling": surface.best_score, "ceiling_t_nuc": surface.best[0],
            "ceiling_t_bg": surface.best[1], "dice4": best4}


STEPS = [
    Step("01-hand-picked", "Stage 1 · hand-picked thresholds", step_hand_picked),
    Step("02-optimise", "Stage 2 · Bayesian optimisation", step_optimise),
    Step("03-blur", "Stage 3 · blur, opening and closing", step_blur),
    Step("04-cleanup", "Stage 4 · targeted clean-up", step_cleanup),
    Step("05-summary", "The four stages side by side", step_summary),
    Step("06-next", "Why colour and learning come next", step_next),
]

st.title("Lesson · N/C ratio of urothelial cells")
st.caption(f"On the {_dataset().name} dataset: the course's chapter, each number computed "
           "live by the engine on its train/test split.")
walk(LESSON, STEPS, page=P)
