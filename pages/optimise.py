"""Optimise: Bayesian search of parameters on a train split, checked on the test split.

Choose the parameters and their ranges, the number of calls and the seed, and the
split (the dataset's ``split.json`` or a stratified split made here). The search
(``evaluation.optimize``) runs in the background (:mod:`app_support.runs`) with a live
progress bar and convergence curve; then the best parameters, their train and test
Dice against the starting point, buttons to use them in Explore or save them, and
for two-threshold pipelines the exact Dice surface with the optimiser's points.
"""
from __future__ import annotations

import math

import pandas as pd
import streamlit as st
from streamlit.errors import StreamlitAPIException

from app_support import cache, compare_figures, learned, runs, sources, state, wording
from app_support.assets import read_asset
from cellseg_core import evaluation
from cellseg_core.params import BlurKind, Mode, Params, ThresholdMethod
from cellseg_core.pipeline import is_automatic
from cellseg_core.presets import PRESETS
from app_support.router import require_frame

require_frame()  # a deep link on a fresh server must still go through app.py

PAGE = "optimise"
K_DATASET = f"{PAGE}.dataset"
K_START = f"{PAGE}.start"
K_NAMES = f"{PAGE}.names"
K_CALLS = f"{PAGE}.n_calls"
K_SEED = f"{PAGE}.seed"
K_SPLIT_KIND = f"{PAGE}.split_kind"
K_TEST_FRACTION = f"{PAGE}.test_fraction"
K_SPLIT_SEED = f"{PAGE}.split_seed"
K_DROP = f"{PAGE}.drop_empty"
K_RUN = f"{PAGE}.run_button"
K_USE = f"{PAGE}.use"
K_SURFACE_KIND = f"{PAGE}.surface_kind"
K_GOTO = f"{PAGE}.goto_explore"
EXPLORE_START = "explore (current)"
SPLIT_FILE, SPLIT_HERE = "the dataset's split.json", "a stratified split made here"
SPLIT_LAB02 = "the course's Lab 02 split"


def range_key(name: str) -> str:
    """Session key of the range slider of dotted parameter `name`."""
    return f"{PAGE}.range.{name}"


#: Searchable parameters: name -> (label, default range (the course's), limits, step, modes).
SEARCHABLE = {
    "threshold.t_nuc": ("t_nuc (nucleus / cytoplasm threshold)", (0.10, 0.70), (0.0, 1.0),
                        0.01, ("cytology",)),
    "threshold.t_bg": ("t_bg (cell / background threshold)", (0.50, 0.99), (0.0, 1.0), 0.01,
                       ("cytology",)),
    "threshold.t_object": ("t_object (object threshold)", (0.05, 0.95), (0.0, 1.0), 0.01,
                           ("fluorescence",)),
    "cleanup.min_nucleus_size": ("min nucleus size (px)", (10, 500), (0, 5000), 10,
                                 ("cytology", "fluorescence")),
    "cleanup.min_cytoplasm_size": ("min cytoplasm size (px)", (10, 500), (0, 5000), 10,
                                   ("cytology",)),
    "blur.sigma": ("gaussian blur sigma", (0.0, 3.0), (0.0, 10.0), 0.1,
                   ("cytology", "fluorescence")),
    "cleanup.opening_radius": ("opening radius (px)", (0, 5), (0, 20), 1,
                               ("cytology", "fluorescence")),
    "cleanup.closing_radius": ("closing radius (px)", (0, 5), (0, 20), 1,
                               ("cytology", "fluorescence")),
}
DEFAULT_NAMES = {"cytology": ["threshold.t_nuc", "threshold.t_bg"],
                 "fluorescence": ["threshold.t_object"]}


def prepared_base(start: Params, names: list) -> tuple[Params, list]:
    """The params the search varies from: `start` with what the searched names need.

    Searching the thresholds needs the manual method; searching the blur sigma needs
    a gaussian blur; and every search needs the fixed pipeline, since an automatic
    preset (``auto.kind`` not off) sets its own threshold, sizes and split per image
    and would ignore every searched value. Returns the base and notes saying what
    was changed.
    """
    changes, notes = {}, []
    if is_automatic(start):
        changes["auto.kind"] = "off"
        notes.append(f"auto.kind {start.auto.kind.value} → off (an automatic preset chooses "
                     "its settings per image: the search varies the fixed steps)")
    if ({"threshold.t_nuc", "threshold.t_bg", "threshold.t_object"} & set(names)
            and start.threshold.method != ThresholdMethod.MANUAL):
        changes["threshold.method"] = "manual"
        notes.append(f"threshold.method {start.threshold.method.value} → manual (the "
                     "searched thresholds are manual ones)")
    if "blur.sigma" in names and start.blur.kind != BlurKind.GAUSSIAN:
        changes["blur.kind"] = "gaussian"
        notes.append(f"blur.kind {start.blur.kind.value} → gaussian (sigma is searched)")
    return start.with_values(changes), notes


def _space(names: list) -> dict:
    space = {}
    for name in names:
        low, high = st.session_state[range_key(name)]
        integer = isinstance(SEARCHABLE[name][1][0], int)
        space[name] = (int(low), int(high)) if integer else (float(low), float(high))
    return space


# --- the run (background thread, no Streamlit) ----------------------------------------------
def _optimise(run: runs.Run, dataset, train: list, test: list, space: dict, base: Params,
              start: Params, n_calls: int, seed: int, cache_) -> dict:
    names = list(space)
    run.progress(0, n_calls, "scoring the starting parameters")
    start_train = evaluation.evaluate(dataset, train, start, cache=cache_).summary
    run.events.append({"call": 0, **{n: start.get(n) for n in names},
                       "score": start_train["mean_dice"], "valid": True,
                       "best_so_far": start_train["mean_dice"]})

    def callback(info):
        best = max(info["best_so_far"], start_train["mean_dice"])
        run.events.append({"call": info["call"], **info["values"], "score": info["score"],
                           "valid": info["valid"], "best_so_far": best})
        run.done, run.total = info["call"], n_calls
        run.text = f"call {info['call']} of {n_calls}, best mean Dice {best:.4f}"
        return run.cancel_requested

    result = evaluation.optimize(dataset, train, space, base, n_calls=n_calls,
                               random_state=seed, callback=callback, cache=cache_)
    # Call 0 is the starting point: the best is the better of it and the search's best.
    from_search = result.best_score >= start_train["mean_dice"]
    best = result.best_params if from_search else start
    run.text = "scoring on the test split"
    scores = {("start", "train"): start_train,
              ("best", "train"): (evaluation.evaluate(dataset, train, best, cache=cache_).summary
                                  if from_search else start_train)}
    if test:
        scores[("start", "test")] = evaluation.evaluate(dataset, test, start, cache=cache_).summary
        scores[("best", "test")] = evaluation.evaluate(dataset, test, best, cache=cache_).summary
    surface, surface_note = None, ""
    if evaluation.is_two_threshold(best) and Mode(best.mode) == Mode.CYTOLOGY:
        run.text = "computing the exact Dice surface"
        surface = evaluation.dice_surface(dataset, train, best, cache=cache_)
    else:
        surface_note = ("The exact Dice surface needs a plain two-threshold pipeline (manual "
                        "thresholds, no clean-up, cytology); these parameters are not one.")
    history = pd.DataFrame(run.events)
    return {"result": result, "history": history, "start": start, "best": best,
            "from_search": from_search, "scores": scores, "surface": surface,
            "surface_note": surface_note, "stopped": run.cancel_requested}


# --- display ------------------------------------------------------------------------------
def explore_image(dataset: str, train: list, test: list) -> str | None:
    """The image "Use in Explore" opens: the sidebar's, when it is already an image of
    the optimised `dataset`, else the first train image (then test), else None."""
    if st.session_state.get(state.SOURCE_KIND) == "Dataset" and \
            st.session_state.get(state.SOURCE_DATASET) == dataset and \
            st.session_state.get(state.SOURCE_ID) in {*train, *test}:
        return st.session_state[state.SOURCE_ID]
    return next(iter([*train, *test]), None)


def _use_in_explore(params_json: str, dataset: str, train: list, test: list) -> None:
    """Callback: the best parameters, on an image of the dataset they were optimised on
    (issue 22 point 4: not whatever the sidebar held), with the parameters (not a
    learned model) chosen in Explore."""
    image = explore_image(dataset, train, test)
    if image is not None:
        try:
            sources.select_dataset_image(dataset, image)
        except ValueError:  # the dataset went away: the parameters alone
            pass
    params = Params.from_json(params_json)
    state.set_params(params, page="explore")
    st.session_state["explore.model"] = learned.PARAMS_CHOICE
    st.session_state[K_GOTO] = True


def _fmt(value) -> str:
    if isinstance(value, float):
        return "—" if not math.isfinite(value) else f"{value:.4g}"
    return str(value)


def _results(run: runs.Run) -> None:
    out, config = run.result, run.config
    best, start = out["best"], out["start"]
    scores = out["scores"]
    st.subheader("Result")
    if out["stopped"]:
        st.info("Stopped early: the best of the calls made so far.")
    if not out["from_search"]:
        st.warning("No call of the search beat the starting parameters on the train split: "
                   "the best is the start. Try more calls or wider ranges.")
    cols = st.columns(4)
    for col, (part, what) in zip(cols, [("train", "mean_dice"), ("test", "mean_dice"),
                                        ("train", "pooled_dice"), ("test", "pooled_dice")]):
        if ("best", part) not in scores:
            col.metric(f"{what.replace('_', ' ')} ({part})", "—")
            continue
        b, s = scores[("best", part)][what], scores[("start", part)][what]
        col.metric(f"{'Mean' if what == 'mean_dice' else 'Pooled'} Dice, {part} "
                   f"({len(config[part])} images)", f"{b:.4f}", delta=f"{b - s:+.4f}",
                   help=f"best parameters {b:.4f}, starting point ({config['start']}) {s:.4f}")
    table = pd.DataFrame([{"parameter": name, "start": _fmt(start.get(name)),
                           "best": _fmt(best.get(name)),
                           "range": f"{config['space'][name][0]} – {config['space'][name][1]}"}
                          for name in config["space"]])
    c1, c2 = st.columns([3, 2], gap="medium")
    with c1:
        history = out["history"]
        st.plotly_chart(compare_figures.convergence_figure(
            history[history["call"] > 0], start_score=float(history["score"].iloc[0]),
            n_calls=config["n_calls"]), key=f"{PAGE}.convergence")
    with c2:
        st.dataframe(table, hide_index=True, key=f"{PAGE}.best_table")
        if config["base_notes"]:
            st.caption("Changed from the start for the search: "
                       + "; ".join(config["base_notes"]))
        b1, b2 = st.columns(2)
        b1.button("Use in Explore", key=K_USE, type="primary", on_click=_use_in_explore,
                  args=(best.to_json(indent=None), config["dataset"], list(config["train"]),
                        list(config["test"])),
                  help=f"Opens {config['dataset']} in Explore with these parameters.")
        b2.download_button("Download JSON", best.to_json(),
                           file_name=wording.download_name(
                               "best-params", "json", image=config["dataset"],
                               method=f"optimised-from-{config['start']}"),
                           mime="application/json", key=f"{PAGE}.download",
                           on_click="ignore")
    st.markdown("**Exact Dice surface** (train split)")
    surface = out["surface"]
    if surface is None:
        st.info(out["surface_note"])
    else:
        kind = st.radio("Score", ["mean Dice (per image)", "pooled Dice"], horizontal=True,
                        key=K_SURFACE_KIND)
        history = out["history"]
        points = history[history["call"] > 0]
        if not {"threshold.t_nuc", "threshold.t_bg"} <= set(points):
            points = None
        st.plotly_chart(compare_figures.surface_figure(
            surface, points=points, best=(best.threshold.t_nuc, best.threshold.t_bg),
            pooled=kind == "pooled Dice"), key=f"{PAGE}.surface")
        st.caption(f"{surface.thresholds.size} × {surface.thresholds.size} threshold pairs, "
                   f"{len(surface.ids)} images, computed exactly from per-class histograms "
                   f"in {surface.seconds:.2f} s (the channel and blur of the best parameters).")


def _setup():
    """Every choice of the page; returns the run's arguments, or None."""
    c1, c2 = st.columns(2)
    ds = sources.pick_dataset(K_DATASET, container=c1, where=lambda d: d.has_masks)
    if ds is None:
        return None
    starts = [*PRESETS, EXPLORE_START]
    if st.session_state.get(K_START) not in starts:
        st.session_state[K_START] = "auto-fluorescence" if ds.kind == "fluorescence" else "lab01"
    start_name = c2.selectbox("Start from", starts, key=K_START,
                              help="The parameters that are not searched keep these values; "
                                   "the start's own score is call 0.")
    start = state.current_params() if start_name == EXPLORE_START else PRESETS[start_name]
    mode = Mode(start.mode).value
    offered = [n for n, spec in SEARCHABLE.items() if mode in spec[4]]
    if K_NAMES not in st.session_state or not set(st.session_state[K_NAMES]) <= set(offered):
        st.session_state[K_NAMES] = [n for n in st.session_state.get(K_NAMES, DEFAULT_NAMES[mode])
                                     if n in offered] or DEFAULT_NAMES[mode]
    chosen = st.multiselect("Parameters to search", offered, key=K_NAMES,
                            format_func=lambda n: f"{n} · {SEARCHABLE[n][0]}")
    for name in chosen:
        label, default, (lo, hi), step, _ = SEARCHABLE[name]
        if range_key(name) not in st.session_state:
            st.session_state[range_key(name)] = default
        st.slider(f"{name} range", lo, hi, step=step, key=range_key(name))
    c1, c2 = st.columns(2)
    n_calls = c1.number_input("Number of calls", 1, 500, 50, key=K_CALLS,
                              help="Objective evaluations, the first 10 at random")
    seed = c2.number_input("Seed", 0, 2**31 - 1, 0, key=K_SEED)
    kinds = ([SPLIT_FILE] if ds.split and "train" in ds.split else []) + [SPLIT_HERE]
    if ds.kind == "cytology":
        kinds.insert(len(kinds) - 1, SPLIT_LAB02)
    if st.session_state.get(K_SPLIT_KIND) not in kinds:
        st.session_state[K_SPLIT_KIND] = kinds[0]
    kind = st.radio("Split", kinds, key=K_SPLIT_KIND, horizontal=True,
                    help="The course's Lab 02 split (lab02-train / lab02-test): images "
                         "without nucleus left out, stratified by nucleus-size quartile, "
                         "20 % test, seed 42")
    if kind == SPLIT_FILE:
        split = ds.split
    elif kind == SPLIT_LAB02:
        try:
            found = cache.course_split(ds)
        except ValueError as err:
            st.error(f"Cannot split {ds.name}: {err}")
            return None
        split = {"train": found["lab02-train"], "test": found["lab02-test"]}
    else:
        c1, c2, c3 = st.columns(3)
        frac = c1.slider("Test fraction", 0.05, 0.5, 0.2, 0.05, key=K_TEST_FRACTION)
        split_seed = c2.number_input("Split seed", 0, 2**31 - 1, 42, key=K_SPLIT_SEED)
        drop = c3.checkbox("Leave out images without nucleus", key=K_DROP,
                           help="The course's Lab 02 drops them before splitting (the split "
                                "is stratified by nucleus-size quartile, as the course's)")
        try:
            split = cache.stratified_split(ds, frac, split_seed, drop)
        except ValueError as err:
            st.error(f"Cannot split {ds.name}: {err}")
            return None
    train, test = list(split.get("train", [])), list(split.get("test", []))
    st.caption(f"{len(train)} train images (searched on), {len(test)} test images "
               "(checked at the end).")
    if not chosen:
        st.info("Choose at least one parameter to search.")
        return None
    space = _space(chosen)
    bad = [n for n, (lo, hi) in space.items() if not lo < hi]
    if bad:
        st.error(f"Empty range for {', '.join(bad)}: the low end must be below the high end.")
        return None
    base, notes = prepared_base(start, chosen)
    return dict(dataset=ds, train=train, test=test, space=space, base=base, start=start,
                n_calls=int(n_calls), seed=int(seed), start_name=start_name, notes=notes)


def main() -> None:
    if st.session_state.pop(K_GOTO, False):
        try:
            st.switch_page("pages/explore.py")
        except StreamlitAPIException:
            st.success("The best parameters are loaded: go to the Explore page.")
    st.title("Optimise")
    st.caption("Search the parameters that maximise the mean Dice on a train split, then "
               "check them on the test split.")
    with st.expander("How to read this page"):
        st.markdown(read_asset("optimise.md"))
    setup = _setup()
    if setup is not None and st.button("Run optimisation", key=K_RUN, type="primary"):
        ds = setup["dataset"]
        config = {"dataset": ds.name, "train": setup["train"], "test": setup["test"],
                  "space": setup["space"], "n_calls": setup["n_calls"], "seed": setup["seed"],
                  "start": setup["start_name"], "base_notes": setup["notes"]}
        label = (f"optimise {len(setup['space'])} parameter(s), {setup['n_calls']} calls on "
                 f"{ds.name}")
        runs.start(PAGE, label, _optimise, ds, setup["train"], setup["test"],
                   setup["space"], setup["base"], setup["start"],
                   setup["n_calls"], setup["seed"], runs.shared_cache(),
                   config=config)
    run = runs.follow(PAGE, "optimisation", stop_label="Stop (keep the best so far)")
    if run is not None:
        _results(run)


main()
