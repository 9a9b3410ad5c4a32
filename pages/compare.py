"""Compare: several methods over a dataset split, the course's central table.

Dataset + split + methods → a background run of ``cellseg_core.methods.compare``
(see :mod:`app_support.runs`) → the table, the N/C scatter, the per-image Dice
distribution, a per-image table that opens an image in Explore, the worst cases.
Every evaluation is kept in the session (keyed on dataset, ids and method), so
switching views, pages or re-running the same methods costs nothing.
"""
from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import pandas as pd
import streamlit as st
from streamlit.errors import StreamlitAPIException

from app_support import cache, compare_figures, figures, methods, runs, sources, state, wording
from app_support import nuclei_compare  # issue 18 point 7
from app_support.assets import read_asset
from app_support.safe_text import md
from cellseg_core.methods import BASELINES, compare
from cellseg_core.params import Params
from cellseg_core.presets import PRESETS
from app_support.router import require_frame

require_frame()  # a deep link on a fresh server must still go through app.py

PAGE = "compare"
K_DATASET = f"{PAGE}.dataset"
K_SPLIT = f"{PAGE}.split"
K_METHODS = f"{PAGE}.methods"
K_UPLOAD = f"{PAGE}.upload"
K_RUN = f"{PAGE}.run_button"
K_TABLE = f"{PAGE}.table"
K_VIEW = f"{PAGE}.method"
K_PER_IMAGE = f"{PAGE}.per_image"
K_WORST_K = f"{PAGE}.worst_k"
K_TAB = f"{PAGE}.tab"
K_CACHE = f"{PAGE}.evaluations"      # (dataset key, ids, method key) -> Evaluation
K_GOTO = f"{PAGE}.goto_explore"
K_NOTICE = f"{PAGE}.notice"
SPLITS = ("test", "train", "lab02-test", "lab02-train", "all")
MAX_CACHED = 64
#: Summary columns: label shown -> Evaluation.summary key.
COLUMNS = {
    "mean Dice": "mean_dice", "Dice cytoplasm": "dice_cytoplasm",
    "Dice nucleus": "dice_nucleus", "pooled Dice": "pooled_dice", "mean IoU": "mean_iou",
    "N/C MAE": "nc_mae", "N/C R²": "nc_r2", "nucleus/cell MAE": "nucleus_cell_ratio_mae",
    "s / image": "seconds_per_image",
}


# --- methods ------------------------------------------------------------------------------
def _uploaded_methods() -> dict:
    """The uploaded parameter files; a bad file is reported and skipped."""
    out = {}
    for up in st.session_state.get(K_UPLOAD) or []:
        try:
            out[f"file:{Path(up.name).stem}"] = methods.uploaded_params(up.name, up.getvalue())
        except ValueError as err:
            st.error(f"{md(up.name)} is not a parameters file: {md(err)}")
    return out


def method_catalogue() -> dict:
    """Every method the user may pick (:func:`app_support.methods.catalogue`)."""
    return methods.catalogue(uploads=_uploaded_methods(), baselines=True)


def _method_key(name: str, method) -> tuple:
    """What an evaluation is kept under: the params, the baseline or the model object."""
    if method.params is not None:
        return ("params", method.params)
    return ("baseline", name) if name in BASELINES else ("model", name, id(method.model))


# --- the run ---------------------------------------------------------------------------------
def _evaluate_all(run: runs.Run, dataset, ids, chosen: dict, known: dict, cache_) -> dict:
    """Work of a compare run (background thread): name -> Evaluation. The baselines are
    fitted on the dataset's training split (the compared images when it has none)."""
    todo = {name: m for name, m in chosen.items() if name not in known}
    done, fitted = compare(dataset, ids, todo, cache=cache_, progress=run.progress)
    run.config["fitted"] = fitted
    out = {**known, **done}
    return {name: out[name] for name in chosen}


def _start(dataset, split: str, ids: list, chosen: dict) -> None:
    store = st.session_state.setdefault(K_CACHE, {})
    keys = {name: (dataset.key, tuple(ids), _method_key(name, m)) for name, m in chosen.items()}
    # baselines are refitted (seconds): their fitted model is needed for the worst cases
    known = {name: store[k] for name, k in keys.items() if k in store and name not in BASELINES}
    config = {"dataset": dataset.name, "split": split, "ids": list(ids), "keys": keys,
              "methods": {n: (m.params.to_json(indent=None) if m.params is not None else None)
                          for n, m in chosen.items()}}
    label = f"compare {len(chosen)} method(s) on {dataset.name} / {split}"
    runs.start(PAGE, label, _evaluate_all, dataset, ids, chosen, known,
               runs.shared_cache(), config=config)


def _remember(run: runs.Run) -> None:
    """Keep a finished run's evaluations in the session cache (bounded)."""
    if run.status != "done" or run.config.get("stored"):
        return
    store = st.session_state.setdefault(K_CACHE, {})
    for name, key in run.config["keys"].items():
        store[key] = run.result[name]
    while len(store) > MAX_CACHED:
        store.pop(next(iter(store)))
    run.config["stored"] = True


# --- open an image in Explore -----------------------------------------------------------------
def _open_in_explore(dataset: str, image_id: str, method: str, params_json: str | None) -> None:
    """Callback: point the sidebar at the image and load the method's params."""
    if params_json is None:
        st.session_state[K_NOTICE] = f"{method} is a learned model: it has no parameters to open."
        return
    try:
        sources.select_dataset_image(dataset, image_id)
    except ValueError as err:
        st.session_state[K_NOTICE] = f"Cannot open {image_id}: {err}"
        return
    params = Params.from_json(params_json)
    state.set_params(params, preset=method if PRESETS.get(method) == params else None,
                     page="explore")
    st.session_state[K_GOTO] = f"{dataset} / {image_id} with {method}"


def _on_row_selected(dataset: str, method: str, params_json: str | None, ids: list) -> None:
    rows = st.session_state[K_PER_IMAGE].selection.rows
    if rows:
        _open_in_explore(dataset, ids[rows[0]], method, params_json)


# --- display ----------------------------------------------------------------------------------
def summary_table(results: dict) -> pd.DataFrame:
    """One row per method with the course's numbers."""
    rows = []
    for name, ev in results.items():
        s = ev.summary
        rows.append({"method": name, **{label: s[key] for label, key in COLUMNS.items()},
                     "images": s["n_images"]})
    return pd.DataFrame(rows)


def _results(run: runs.Run) -> None:
    results = run.result
    config = run.config
    ds = sources.datasets().get(config["dataset"])
    st.subheader(f"{config['dataset']} · {config['split']} split · {len(config['ids'])} images")
    table = summary_table(results)
    fmt = {label: st.column_config.NumberColumn(label, format="%.4f") for label in COLUMNS}
    fmt["s / image"] = st.column_config.NumberColumn(
        "s / image", format="%.4f",
        help="Seconds per image of this evaluation. Plain two-threshold methods are scored "
             "exactly from cached per-class histograms, without segmenting.")
    fmt["N/C R²"] = st.column_config.NumberColumn(
        "N/C R²", format="%.3f", help="R² of predicted vs true N/C against the identity line")
    fmt["nucleus/cell MAE"] = st.column_config.NumberColumn(
        "nucleus/cell MAE", format="%.4f",
        help="Mean absolute error of nucleus / (nucleus + cytoplasm), The Paris System's "
             "N/C ratio (0 to 1); N/C is nucleus / cytoplasm, the course's")
    fmt["pooled Dice"] = st.column_config.NumberColumn(
        "pooled Dice", format="%.4f",
        help="Each class's Dice over all pixels of all images, averaged: the number the "
             "course reports as ≈ 0.81 for Lab 02")
    st.dataframe(table, hide_index=True, key=K_TABLE, column_config=fmt)
    st.download_button("Download table (CSV)", table.to_csv(index=False),
                       file_name=wording.download_name(
                           "comparison", "csv", image=f"{config['dataset']}-{config['split']}"),
                       mime="text/csv", key=f"{PAGE}.dl_table", on_click="ignore")
    per_image = {name: ev.per_image for name, ev in results.items()}
    names = ["N/C scatter", "Per-image Dice", "Per image", "Worst cases"]
    tabs = st.tabs(names, key=K_TAB, on_change="rerun")
    with tabs[0]:
        if tabs[0].open:
            st.plotly_chart(compare_figures.nc_scatter_figure(per_image), key=f"{PAGE}.nc")
    with tabs[1]:
        if tabs[1].open:
            column = st.radio("Score", ["mean_dice", "dice_cytoplasm", "dice_nucleus",
                                        "mean_iou"], horizontal=True, key=f"{PAGE}.score")
            st.plotly_chart(compare_figures.dice_distribution_figure(per_image, column),
                            key=f"{PAGE}.dist")
    if st.session_state.get(K_VIEW) not in results:
        st.session_state[K_VIEW] = next(iter(results))
    with tabs[2]:
        if tabs[2].open:
            _per_image(config, per_image)
    with tabs[3]:
        if tabs[3].open:
            _worst_cases(ds, config, results)


def _per_image(config: dict, per_image: dict) -> None:
    method = st.selectbox("Method", list(per_image), key=K_VIEW)
    table = per_image[method].copy()
    for other, t in per_image.items():
        if other != method:
            table[f"mean Dice · {other}"] = t["mean_dice"].to_numpy()
    ids = table["id"].tolist()
    can_open = config["methods"][method] is not None
    st.caption("Click a row to open that image in Explore with this method's parameters."
               if can_open else "A learned model has no parameters to open in Explore.")
    on_select = (partial(_on_row_selected, config["dataset"], method, config["methods"][method],
                         ids) if can_open else "ignore")
    st.dataframe(wording.readable(table), hide_index=True, key=K_PER_IMAGE,
                 selection_mode="single-row",
                 on_select=on_select)
    st.download_button("Download per-image table (CSV)", table.to_csv(index=False),
                       file_name=wording.download_name(
                           "per-image", "csv", image=f"{config['dataset']}-{config['split']}",
                           method=method), mime="text/csv",
                       key=f"{PAGE}.dl_per_image", on_click="ignore")


def _worst_cases(ds, config: dict, results: dict) -> None:
    c1, c2 = st.columns([3, 1])
    method = c1.selectbox("Method", list(results), key=K_VIEW)
    k = c2.number_input("How many", 1, 24, 4, key=K_WORST_K)
    if ds is None:
        st.warning(f"dataset {config['dataset']!r} is no longer configured")
        return
    worst = results[method].per_image.nsmallest(int(k), "mean_dice")
    params_json = config["methods"][method]
    offered = method_catalogue()
    for i, row in enumerate(worst.itertuples()):
        image = ds.image(row.id)
        truth = ds.mask(row.id)
        digest = f"ds:{ds.name}:{ds.source}:{row.id}"
        if params_json is not None:
            seg = cache.segmentation(digest, image, Params.from_json(params_json))
        elif method in config.get("fitted", {}):
            seg = config["fitted"][method].segment(image)
        elif method in offered and method not in BASELINES:
            seg = offered[method].segment(image)
        else:
            st.info(f"{md(method)} is no longer available")
            return
        head, button = st.columns([4, 1], vertical_alignment="bottom")
        head.markdown(f"**{i + 1}. image {row.id}** · mean Dice {row.mean_dice:.3f} "
                      f"(cytoplasm {row.dice_cytoplasm:.3f}, nucleus {row.dice_nucleus:.3f}) · "
                      f"N/C {_fmt(row.nc_pred)} predicted vs {_fmt(row.nc_true)} true · "
                      f"nucleus/cell {_fmt(row.nucleus_cell_ratio_pred)} vs "
                      f"{_fmt(row.nucleus_cell_ratio_true)}")
        button.button("Open in Explore", key=f"{PAGE}.open.{row.id}",
                      on_click=_open_in_explore,
                      args=(ds.name, row.id, method, params_json),
                      disabled=params_json is None)
        st.plotly_chart(figures.overlay_figure(image, seg.labels, truth=truth, height=300,
                                               max_side=384,
                                               fluorescence=ds.kind == "fluorescence"),
                        key=f"{PAGE}.worst.{row.id}", **figures.CHART_OPTIONS)
        st.caption(figures.overlay_key(truth=truth is not None,
                                       fluorescence=ds.kind == "fluorescence"))


def _fmt(value: float) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.3f}"


def _setup():
    """Dataset, split and methods pickers; returns (dataset, split, ids, methods) or None."""
    c1, c2 = st.columns([2, 1])
    ds = sources.pick_dataset(K_DATASET, container=c1, where=lambda d: d.has_masks)
    if ds is None:
        return None
    course = ds.kind == "cytology"
    splits = [s for s in SPLITS if s == "all" or (ds.split and s in ds.split)
              or (course and s.startswith("lab02-"))]
    if st.session_state.get(K_SPLIT) not in splits:
        st.session_state[K_SPLIT] = splits[0]
    split = c2.radio("Split", splits, key=K_SPLIT, horizontal=True,
                     help="train / test come from the dataset's split.json; lab02-* is the "
                          "course's Lab 02 split (no image without nucleus, stratified by "
                          "nucleus-size quartile)")
    if split.startswith("lab02-"):
        try:
            ids = cache.course_split(ds)[split]
        except ValueError as err:
            st.error(f"Cannot split {ds.name}: {err}")
            return None
    else:
        ids = ds.ids if split == "all" else ds.split[split]
    st.file_uploader("Add saved parameter files (JSON)", type=["json"],
                     accept_multiple_files=True, key=K_UPLOAD)
    catalogue = method_catalogue()
    default = (["auto-fluorescence"] if ds.kind == "fluorescence"
               else ["lab01", "lab02", "lab03v2", "auto-cytology"])
    if K_METHODS not in st.session_state:
        st.session_state[K_METHODS] = default
    st.session_state[K_METHODS] = [m for m in st.session_state[K_METHODS] if m in catalogue]
    chosen = st.multiselect("Methods", list(catalogue), key=K_METHODS,
                            help="Presets, the parameters now set on Explore, uploaded "
                                 "files, learned models and two unsupervised baselines "
                                 "(fitted on the training split when the run starts).")
    return ds, split, ids, {name: catalogue[name] for name in chosen}


def main() -> None:
    if K_GOTO in st.session_state:
        target = st.session_state.pop(K_GOTO)
        try:
            st.switch_page("pages/explore.py")
        except StreamlitAPIException:
            st.success(f"Opened {md(target)} in Explore: go to the Explore page.")
    st.title("Compare")
    st.caption("Which method gives the best Dice and the most faithful N/C ratio, "
               "over a whole dataset split.")
    with st.expander("How to read this page"):
        st.markdown(read_asset("compare.md"))
    if K_NOTICE in st.session_state:
        st.warning(st.session_state.pop(K_NOTICE))
    setup = _setup()
    if setup is None:
        return
    ds, split, ids, chosen = setup
    if st.button("Run comparison", key=K_RUN, type="primary", disabled=not chosen):
        _start(ds, split, ids, chosen)
    run = runs.follow(PAGE, "comparison")
    if run is not None:
        _remember(run)
        _results(run)


main()

st.divider()
nuclei_compare.render_section()  # issue 18 point 7: U-Net vs Otsu on nuclei
