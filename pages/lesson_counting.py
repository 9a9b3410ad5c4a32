"""Lesson: counting cells in fluorescence, the seed's derivations checked live.

Steps (:mod:`app_support.lessons`): the image model, smoothing (the predicted peak
``B·σ²/(σ²+σs²)`` next to the measured one), the threshold against the smoothed
noise, labelling and the size filter, minimum separation and the watershed, the noise
floor. Images come from :mod:`cellseg_core.data.synthetic`, numbers from
:mod:`cellseg_core.experiments` and ``segment``; figures are the Count page's.
"""
from __future__ import annotations

import numpy as np
import streamlit as st

from app_support import cache, count_figures
from app_support.quiz import QUESTIONS, TUTORIAL_PIPELINE, render_question
from app_support.lessons import Step, choice_question, order_exercise, walk, widget
from app_support.lessons import value as kept
from cellseg_core import experiments as E
from cellseg_core.data import synthetic as S
from cellseg_core.params import Params
from cellseg_core.threshold import object_threshold
from app_support.router import require_frame

require_frame()  # a deep link on a fresh server must still go through app.py

P = "lesson_count"
LESSON = "counting"
DIGEST = "lesson:fluorescence-seed"
#: The ordering exercise: the tutorial's own step list (from making the image to the
#: size filter).
PIPELINE = TUTORIAL_PIPELINE


def _params_for(*, sigma_s: float, t: float = S.THRESHOLD, min_size: int = S.MIN_CELL_SIZE,
                watershed: bool = False) -> Params:
    return S.seed_params().with_values({
        "blur.sigma": float(sigma_s), "threshold.t_object": float(t),
        "cleanup.min_nucleus_size": int(min_size), **(E.SPLIT_VALUES if watershed else {})})


def current(**changes) -> Params:
    """The lesson's params so far: the seed's, with the class's choices."""
    values = dict(sigma_s=kept(P, "sigma_s", S.SMOOTH_SIGMA), t=kept(P, "t", S.THRESHOLD),
                  min_size=kept(P, "min_size", S.MIN_CELL_SIZE),
                  watershed=kept(P, "watershed", True))
    values.update(changes)
    return _params_for(**values)


def _steps_figure(params: Params, key: str) -> object:
    image, _, _ = cache.seed_sample()
    seg = cache.segmentation(DIGEST, image, params)
    st.plotly_chart(count_figures.steps_figure(seg, height=240),
                    key=f"{P}.{key}")
    return seg


def _sigma_s() -> float:
    return float(widget(st.slider, "Smoothing σs (px)", P, "sigma_s", S.SMOOTH_SIGMA,
                        min_value=0.5, max_value=6.0, step=0.1))


def _common() -> dict:
    return {"B": S.CELL_BRIGHTNESS, "sigma": S.CELL_SIGMA, "noise": S.NOISE_SCALE,
            "n_cells": S.N_CELLS, "size": S.IMAGE_SIZE, "min_sep": S.MIN_SEPARATION,
            "seed_t": S.THRESHOLD, "seed_sigma_s": S.SMOOTH_SIGMA,
            "seed_min_size": S.MIN_CELL_SIZE}


# --- steps --------------------------------------------------------------------------------
def step_model() -> dict:
    image, labels, n = cache.seed_sample()
    st.plotly_chart(count_figures.instance_figure(image, labels, height=380),
                    key=f"{P}.model")
    st.caption("The generated image with its true cells outlined.")
    choice_question(f"{P}.quiz_n", "How many cells should a perfect count give?",
                    [n - 1, n, n + 1], n, explanation="The generator placed that many cells.")
    return {**_common(), "n_true": n}


def step_smoothing() -> dict:
    sigma_s = _sigma_s()
    peaks = cache.peak_check(_params_for(sigma_s=sigma_s))
    predicted = float(E.smoothed_peak(S.CELL_BRIGHTNESS, S.CELL_SIGMA, sigma_s))
    measured = float(peaks["measured_peak"].mean())
    c = st.columns(2)
    c[0].metric("Smoothed peak, predicted B·σ²/(σ²+σs²)", f"{predicted:.4f}")
    c[1].metric("Smoothed peak, measured (mean of the cells)", f"{measured:.4f}",
                delta=f"{measured - predicted:+.4f}", delta_color="off")
    _steps_figure(current(sigma_s=sigma_s), "steps_smooth")
    render_question(QUESTIONS["do_the_math"], P)
    return {**_common(), "sigma_s": sigma_s, "peak": predicted, "measured": measured,
            "gap": float(np.abs(peaks["measured_peak"] - peaks["predicted_peak"]).max()),
            "var": S.CELL_SIGMA ** 2 + sigma_s ** 2}


def step_threshold() -> dict:
    sigma_s = float(kept(P, "sigma_s", S.SMOOTH_SIGMA))
    t = float(widget(st.slider, "Threshold t", P, "t", S.THRESHOLD, min_value=0.05,
                     max_value=1.2, step=0.01))
    peak = float(E.smoothed_peak(S.CELL_BRIGHTNESS, S.CELL_SIGMA, sigma_s))
    noise_s = float(E.smoothed_noise_std(S.NOISE_SCALE, sigma_s))
    seg = _steps_figure(current(t=t, watershed=False), "steps_t")
    c = st.columns(3)
    c[0].metric("Smoothed noise std σn/(2√π·σs)", f"{noise_s:.4f}")
    c[1].metric("Margin (peak − t) in noise stds", f"{(peak - t) / noise_s:.1f}")
    c[2].metric("Objects above t", f"{int(seg.nuclei.max())}")
    detected = bool(object_threshold(np.array([peak]), t)[0])
    choice_question(f"{P}.quiz_detect",
                    f"A cell's smoothed peak is {peak:.3f} and t = {t:.2f}: is it detected?",
                    ["yes", "no"], "yes" if detected else "no",
                    explanation="An object pixel is one whose smoothed value is above t.")
    return {**_common(), "sigma_s": sigma_s, "t": t, "peak": peak, "noise_s": noise_s,
            "margin": (peak - t) / noise_s, "count": int(seg.nuclei.max())}


def step_label() -> dict:
    min_size = int(widget(st.number_input, "Remove objects under (px)", P, "min_size",
                          S.MIN_CELL_SIZE, min_value=0, max_value=2000, step=5))
    params = current(min_size=min_size, watershed=False)
    image, _, _ = cache.seed_sample()
    seg = _steps_figure(params, "steps_label")
    raw = cache.segmentation(DIGEST, image, params.with_values({"cleanup.min_nucleus_size": 0}))
    if len(raw.objects):
        st.plotly_chart(count_figures.size_histogram(raw.objects, height=220),
                        key=f"{P}.sizes")
    smallest = int(raw.objects["nucleus_area"].min()) if len(raw.objects) else 0
    c = st.columns(2)
    c[0].metric("Objects, no size filter", f"{int(raw.nuclei.max())}")
    c[1].metric(f"Objects, ≥ {min_size} px", f"{int(seg.nuclei.max())}")
    return {**_common(), "min_size": min_size, "n_raw": int(raw.nuclei.max()),
            "n_filtered": int(seg.nuclei.max()), "smallest": smallest,
            "t": params.threshold.t_object}


def step_watershed() -> dict:
    d = float(widget(st.slider, "Distance between two cells (px)", P, "d", S.PAIR_DISTANCE,
                     min_value=4.0, max_value=40.0, step=0.5))
    sigma_s = float(kept(P, "sigma_s", S.SMOOTH_SIGMA))
    t = float(kept(P, "t", S.THRESHOLD))
    r = cache.touching(d, _params_for(sigma_s=sigma_s, t=t))
    c = st.columns(3)
    c[0].metric("Plain labelling", f"{r['n_plain']}")
    c[1].metric("Watershed", f"{r['n_split']}")
    c[2].metric("Predicted merge below (px)", f"{r['merge_distance']:.1f}")
    st.plotly_chart(count_figures.profile_figure(r, height=260), key=f"{P}.profile")
    widget(st.toggle, "Watershed in the pipeline", P, "watershed", True)
    render_question(QUESTIONS["min_separation"], P)
    return {**_common(), "d": d, "t": r["threshold"], "n_plain": r["n_plain"],
            "n_split": r["n_split"], "midpoint_raw": r["midpoint_raw"],
            "midpoint_predicted": r["midpoint_predicted"],
            "midpoint_measured": r["midpoint_measured"], "merge": r["merge_distance"],
            "md": E.SPLIT_VALUES["watershed.min_distance"]}


def step_noise_floor() -> dict:
    sigma_s = float(kept(P, "sigma_s", S.SMOOTH_SIGMA))
    min_size = int(kept(P, "min_size", S.MIN_CELL_SIZE))
    t = float(widget(st.slider, "Threshold on a pure-noise image", P, "floor_t", 0.05,
                     min_value=0.01, max_value=0.6, step=0.01))
    r = cache.noise_floor(t, _params_for(sigma_s=sigma_s))
    c = st.columns(3)
    c[0].metric("False cells, no size filter", f"{r['without_filter']}")
    c[1].metric(f"… with the {S.MIN_CELL_SIZE}-px filter", f"{r['with_filter']}")
    c[2].metric("Smoothed noise std: predicted · measured",
                f"{r['predicted_std']:.4f} · {r['smoothed_std']:.4f}")
    curve = cache.noise_floor_curve(_params_for(sigma_s=sigma_s))
    st.plotly_chart(count_figures.count_curve_figure(
        {"no size filter": curve.rename(columns={"without_filter": "count"}),
         "with size filter": curve.rename(columns={"with_filter": "count"})}, 0, t,
        height=260), key=f"{P}.floor")
    clean = curve[curve["with_filter"] == 0]["threshold"]
    render_question(QUESTIONS["threshold_vs_size"], P)
    order_exercise(f"{P}.order", "Put these cell-segmentation steps in the correct order",
                   PIPELINE)
    return {**_common(), "t": t, "sigma_s": sigma_s, "min_size": min_size,
            "without": r["without_filter"], "with": r["with_filter"],
            "predicted_std": r["predicted_std"], "measured_std": r["smoothed_std"],
            "max_noise": r["smoothed_max"],
            "first_clean": float(clean.min()) if len(clean) else float("nan"),
            "peak": float(E.smoothed_peak(S.CELL_BRIGHTNESS, S.CELL_SIGMA, sigma_s))}


def step_illumination() -> dict:
    table = cache.gradient_exercise()
    shown = table.pivot(index="gradient", columns="method", values="miscounted")
    st.dataframe(shown, key=f"{P}.gradient")
    st.caption(f"Images miscounted out of {int(table['n_images'].iloc[0])} seed images "
               "per gradient G = g·x/size.")
    by = table.set_index(["gradient", "method"])["miscounted"]
    g0 = float(E.GRADIENT_LEVELS[0])
    global_name = f"global {E.TUTORIAL_THRESHOLD:g}"
    failing = [g for g in E.GRADIENT_LEVELS if by[(float(g), global_name)] > 0]
    return {**_common(), "g0": g0, "t": E.TUTORIAL_THRESHOLD,
            "n_images": int(table["n_images"].iloc[0]),
            "global_g0": int(by[(g0, global_name)]),
            "first_failing": float(failing[0]) if failing else float("nan"),
            "global_failing": int(by[(float(failing[0]), global_name)]) if failing else 0,
            "local_mean_max": int(table[table["method"].str.startswith("local mean")]
                                  ["miscounted"].max()),
            "local_pct_max": int(table[table["method"].str.startswith("local percentile")]
                                 ["miscounted"].max()),
            "pct_window": E.PERCENTILE_VALUES["threshold.block_size"],
            "pct": E.PERCENTILE_VALUES["threshold.percentile"],
            "pct_offset": -E.PERCENTILE_VALUES["threshold.offset"]}


STEPS = [
    Step("01-model", "The model: Gaussian cells in noise", step_model),
    Step("02-smoothing", "Smoothing", step_smoothing),
    Step("03-threshold", "The threshold against the smoothed noise", step_threshold),
    Step("04-label", "Labelling and the size filter", step_label),
    Step("05-watershed", "Minimum separation and the watershed", step_watershed),
    Step("06-noise-floor", "The noise floor", step_noise_floor),
    Step("07-illumination", "Uneven illumination: global against local", step_illumination),
]

st.title("Lesson · Counting cells in fluorescence")
st.caption("On the seed's generated images: each derivation checked live against the "
           "engine.")
walk(LESSON, STEPS, page=P)
