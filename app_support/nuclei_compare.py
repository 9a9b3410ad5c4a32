"""Compare page: nucleus methods on a dataset with instances (issue 18 point 7).

The seeds' "U-Net ≈ Otsu?" in one table: the built-in model, models trained in this
session (Train page: a fine-tuned U-Net), the textbook Otsu baseline (polarity from the
image kind) and the automatic presets,
scored by :func:`cellseg_core.evaluation.compare_nuclei` (F1@0.5, DSB AP, precision,
recall, count error) on a split, in a background run; then a gallery of the same
images under every method (images without ground truth too: outlines only). The
page calls :func:`render_section`.
"""
from __future__ import annotations

import numpy as np
import streamlit as st

from cellseg_core.evaluation import compare_nuclei
from cellseg_core.methods import OTSU_BASELINE, nucleus_methods
from cellseg_core.metrics import match_instances

from . import count_figures, nuclei_models, runs, sources
from .safe_text import md

__all__ = ["PAGE", "catalogue", "render_section", "gallery_tile"]

PAGE = "compare.nuclei"
K_DATASET, K_SPLIT, K_LIMIT = f"{PAGE}.dataset", f"{PAGE}.split", f"{PAGE}.limit"
K_METHODS, K_GALLERY, K_RUN = f"{PAGE}.methods", f"{PAGE}.gallery", f"{PAGE}.run_button"


def catalogue() -> dict:
    """Name -> method: the built-in model and this session's nucleus models, the Otsu
    baseline, auto-nuclei and auto-fluorescence."""
    classic = {k: v for k, v in nucleus_methods().items() if k != "builtin:nuclei"}
    return {**nuclei_models.nucleus_models(), **classic}


def gallery_tile(image, nuclei, truth=None) -> tuple[np.ndarray, str]:
    """(RGB uint8 overlay, caption): matched nuclei green, false red, missed blue
    outlines when there is ground truth; one colour per nucleus otherwise."""
    if truth is None:
        return count_figures.instance_overlay_rgb(image, nuclei), f"{int(nuclei.max())} nuclei"
    m = match_instances(nuclei, truth)
    return (count_figures.instance_overlay_rgb(image, nuclei, truth=truth, match=m),
            f"{m['n_pred']} nuclei · F1 {m['f1']:.2f}")


def _work(run: runs.Run, dataset, ids, methods: dict, gallery_ids) -> dict:
    out = compare_nuclei(dataset, ids, methods, gallery_ids=gallery_ids,
                         progress=run.progress)
    images = {i: (dataset.image(i), dataset.instances(i)) for i in gallery_ids}
    return {"comparison": out, "images": images}


def _results(run: runs.Run) -> None:
    res, config = run.result, run.config
    table = res["comparison"].summary
    st.markdown(f"**{md(config['dataset'])} · {md(config['split'])} split** · "
                f"{len(config['ids'])} image(s), {int(table['images'].max())} with ground truth")
    st.dataframe(table, hide_index=True, key=f"{PAGE}.table",
                 column_config={c: st.column_config.NumberColumn(format="%.3f")
                                for c in table.columns if c not in ("method", "images")})
    st.caption("Means over the images with ground truth: F1 and precision/recall at IoU 0.5, "
               "DSB average precision over IoU 0.5:0.95, count error = found − true.")
    gallery = res["comparison"].gallery
    if not gallery:
        return
    st.markdown("**Gallery**: the same images under every method (green matched, red false, "
                "blue outline missed)")
    names = list(config["methods"])
    for ident, per_method in gallery.items():
        image, truth = res["images"][ident]
        cols = st.columns(len(names))
        for col, name in zip(cols, names):
            tile, caption = gallery_tile(image, per_method[name], truth)
            col.image(tile, caption=f"{ident} · {name}: {caption}", width="stretch")


def render_section() -> None:
    """Dataset, split, methods → background run → table and gallery."""
    st.subheader("Nuclei: U-Net vs Otsu vs the automatic presets")
    ds = sources.pick_instance_dataset(K_DATASET)
    if ds is None:
        return
    splits = [s for s in ("test", "train") if (ds.split or {}).get(s)] + ["all"]
    if st.session_state.get(K_SPLIT) not in splits:
        st.session_state[K_SPLIT] = splits[0]
    c1, c2, c3 = st.columns([1, 1, 2])
    split = c1.radio("Split", splits, key=K_SPLIT, horizontal=True)
    ids = list(ds.ids if split == "all" else ds.split[split])
    if not 1 <= st.session_state.get(K_LIMIT, 0) <= len(ids):
        st.session_state[K_LIMIT] = min(len(ids), 20)
    c2.number_input("Images (first N)", 1, len(ids), step=5, key=K_LIMIT)
    st.session_state.setdefault(K_GALLERY, 3)
    c2.number_input("Gallery images", 0, 12, key=K_GALLERY)
    available = catalogue()
    if any(m not in available for m in st.session_state.get(K_METHODS, [])) \
            or K_METHODS not in st.session_state:
        st.session_state[K_METHODS] = list(available)
    chosen = c3.multiselect("Methods", list(available), key=K_METHODS,
                            help=f"“{OTSU_BASELINE}”: the textbook baseline, Gaussian σ 2, "
                                 "Otsu, holes filled, < 30 px removed, distance watershed; "
                                 "bright nuclei on fluorescence, dark ones on stained and "
                                 "bright-field images (the detected image kind decides). "
                                 "Models trained on the Train page join the list.")
    ids = ids[:int(st.session_state[K_LIMIT])]
    gallery = ids[:int(st.session_state[K_GALLERY])]
    if st.button("Compare on nuclei", key=K_RUN, disabled=not chosen):
        methods = {name: available[name] for name in chosen}
        runs.start(PAGE, f"nuclei: {len(methods)} methods on {len(ids)} image(s) of {ds.name}",
                   _work, ds, ids, methods, gallery,
                   config={"dataset": ds.name, "split": split, "ids": ids,
                           "methods": list(methods)})
    run = runs.follow(PAGE, "nucleus comparison")
    if run is not None:
        _results(run)
