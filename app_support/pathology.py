"""Explore's numbers for pathologists: pixel size, both N/C ratios, per-cell flags.

Render functions the Explore page places with one call each:

- :func:`pixel_size_sidebar`: the pixel size in force (the user's number input wins
  over a dataset's ``dataset.json`` and the image file's own metadata), said in the
  sidebar; without one every number stays in pixels, and the page says so.
- :func:`segmentation_numbers` / :func:`agreement_numbers`: the numbers beside the
  histogram, with both ratios and the areas in µm² when there is a pixel size.
- :func:`cell_table`: the per-cell table exactly as ``objects.csv`` holds it
  (:func:`cellseg_core.batch.cell_rows`), so the app and ``cellseg segment`` agree.
- :func:`render_review`: the "Measurements for review" section: cut-offs, the share of
  cells beyond each, the histogram of per-cell ratios with the cut-offs drawn, and the
  image with the flagged cells coloured.

Nothing here is a diagnosis; the section says so. Definitions: ``assets/numbers.md``.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app_support import figures, sources, wording
from app_support.assets import read_asset
from cellseg_core.batch import cell_rows
from cellseg_core.flags import RatioFlags, flag_summary
from cellseg_core.io import IMAGE_SUFFIXES
from cellseg_core.units import dataset_pixel_size, read_pixel_size, resolve_pixel_size

__all__ = ["PIXEL_KEY", "ATYPIA_KEY", "HIGH_GRADE_KEY", "REVIEW", "FLAG_COLORS",
           "source_pixel_size", "pixel_size", "pixel_size_sidebar", "with_pixel_size",
           "current_flags", "segmentation_numbers", "agreement_numbers", "cell_table",
           "ratio_histogram_figure", "flag_overlay_rgb", "render_review", "render_help"]

PAGE = "explore"
PIXEL_KEY = f"{PAGE}.pixel_size"
ATYPIA_KEY, HIGH_GRADE_KEY = f"{PAGE}.flag_atypia", f"{PAGE}.flag_high_grade"
# Kept apart from the widgets, whose state Streamlit drops on a run that does not draw
# them (another section, another page): the per-cell table and CSV keep the user's values.
SAVED_PIXEL, SAVED_FLAGS = f"{PAGE}.pixel_size_saved", f"{PAGE}.ratio_flags"
#: The Explore section this module draws.
REVIEW = "Measurements for review"
#: RGB of cells at or above the atypia cut-off, and the high-grade one.
FLAG_COLORS = {"atypia": (255, 170, 0), "high_grade": (220, 20, 60)}
REVIEW_NOTE = ("Measurements for review, not a diagnosis: the flags mark cells whose "
               "nucleus/cell area ratio is at or above a cut-off, for a person to look at.")


# --- pixel size ----------------------------------------------------------------------------
@st.cache_data(max_entries=64, show_spinner=False)
def _dataset_sizes(folder: str, image_id: str) -> tuple:
    """(dataset.json's size, the image file's size) of a dataset image; errors as text."""
    try:
        from_json = dataset_pixel_size(folder)
    except ValueError as err:
        return None, None, str(err)
    from_file = None
    images = Path(folder) / "images"
    for suffix in IMAGE_SUFFIXES:
        path = images / f"{image_id}{suffix}"
        if path.is_file():
            from_file = read_pixel_size(path)
            break
    return from_json, from_file, None


@st.cache_data(max_entries=8, show_spinner=False)
def _upload_size(digest: str, _data: bytes):
    return read_pixel_size(_data)


def source_pixel_size(source) -> tuple[float | None, float | None, str | None]:
    """What the image's source records: (dataset.json's, the image file's) µm/px, and
    why dataset.json could not be read (or None)."""
    if source is None:
        return None, None, None
    if source.dataset is not None and source.image_id is not None:
        ds = sources.datasets().get(source.dataset)
        if ds is None or not Path(ds.source).is_dir():
            return None, None, None
        return _dataset_sizes(ds.source, str(source.image_id))
    if source.digest.startswith("up:"):
        upload = st.session_state.get(sources.K_UPLOAD)
        if upload is not None:
            return None, _upload_size(source.digest, upload.getvalue()), None
    return None, None, None


def pixel_size(source) -> tuple[float | None, str]:
    """The pixel size in force (µm/px or None) and where it comes from."""
    user = st.session_state.get(PIXEL_KEY, st.session_state.get(SAVED_PIXEL)) or None
    return resolve_pixel_size(user, *source_pixel_size(source)[:2])


def pixel_size_sidebar(source) -> tuple[float | None, str]:
    """The sidebar's pixel-size input and a line saying which size is in force."""
    with st.sidebar:
        st.number_input("Pixel size (µm per pixel)", min_value=0.0, max_value=100.0,
                        value=st.session_state.get(SAVED_PIXEL), step=0.05, format="%.4f",
                        key=PIXEL_KEY,
                        placeholder="from the image",
                        help="Micrometres per pixel. Empty: the dataset's dataset.json "
                             "(pixel_size_um), else the TIFF's own metadata; without any, "
                             "areas stay in pixels.")
        st.session_state[SAVED_PIXEL] = st.session_state.get(PIXEL_KEY)
        error = source_pixel_size(source)[2]
        if error:
            st.warning(f"Pixel size: {error}")
        size, origin = pixel_size(source)
        if size is None:
            st.caption("No pixel size: areas in pixels (px²), lengths in pixels.")
        else:
            st.caption(f"Pixel size {size:.4g} µm/px (from the {origin}): areas also in µm².")
    return size, origin


def with_pixel_size(source):
    """Draw :func:`pixel_size_sidebar` and return `source` with its ``pixel_size`` set,
    for everything on the page that reads it (exports, object classes)."""
    size, _ = pixel_size_sidebar(source)
    return dataclasses.replace(source, pixel_size=size)


# --- numbers ---------------------------------------------------------------------------------
def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def segmentation_numbers(summary: dict, source, *, fluorescence: bool) -> list[dict]:
    """The per-image numbers as rows of name -> text (one small table each, so they fit
    the narrow column beside the histogram): both ratios and the count, the areas in
    pixels, and in µm² when there is a pixel size."""
    size, _ = pixel_size(source)
    counts, pixels, microns = {}, {}, {}
    if not fluorescence:
        counts["N/C ratio"] = _fmt(summary["nc_ratio"])
        counts["Nucleus/cell ratio"] = _fmt(summary["nucleus_cell_ratio"])
        pixels["Cytoplasm (px)"] = f"{summary['cytoplasm_area']:,}"
        if size:
            microns["Cytoplasm (µm²)"] = f"{summary['cytoplasm_area'] * size ** 2:,.1f}"
    counts["Nuclei"] = f"{summary['n_nuclei']:,}"
    pixels["Nucleus (px)"] = f"{summary['nucleus_area']:,}"
    if size:
        microns["Nucleus (µm²)"] = f"{summary['nucleus_area'] * size ** 2:,.1f}"
    return [row for row in (counts, pixels, microns) if row]


def ratio_caption(source) -> str:
    """The one line under the numbers that defines them."""
    size, _ = pixel_size(source)
    units = ("" if size else " No pixel size: areas in pixels (set one in the sidebar).")
    return ("N/C ratio = nucleus / cytoplasm area (the course's, 0 to ∞); nucleus/cell "
            "ratio = nucleus / (nucleus + cytoplasm) area (The Paris System's, 0 to 1)."
            + units)


def agreement_numbers(scores: dict) -> dict:
    """The nucleus/cell ratio's predicted and true values, beside the N/C ones."""
    if "nucleus_cell_ratio_pred" not in scores:
        return {}
    return {"Nucleus/cell predicted": _fmt(scores["nucleus_cell_ratio_pred"]),
            "Nucleus/cell true": _fmt(scores["nucleus_cell_ratio_true"])}


def current_flags() -> RatioFlags:
    """The cut-offs last set in the review section (the defaults until set)."""
    saved = st.session_state.get(SAVED_FLAGS)
    return saved if isinstance(saved, RatioFlags) else RatioFlags()


def cell_table(seg, source) -> pd.DataFrame:
    """The per-cell table as ``objects.csv`` holds it: µm columns and flags included."""
    size, _ = pixel_size(source)
    return cell_rows(seg.objects, size, current_flags())


# --- figures ---------------------------------------------------------------------------------
def ratio_histogram_figure(table: pd.DataFrame, flags: RatioFlags, *,
                           height: int = 300) -> go.Figure:
    """Histogram of the per-cell nucleus/cell ratios with the cut-offs as lines.

    Each line is labelled with the share of cells at or above it (meta ``shares``).
    """
    ratio = table["nucleus_cell_ratio"].to_numpy(float)
    ratio = ratio[np.isfinite(ratio)]
    summary = flag_summary(table, flags)
    fig = go.Figure(go.Histogram(x=ratio, xbins=dict(start=0, end=1.0001, size=0.025),
                                 marker_color="#4c78a8", name="cells"))
    shares = {}
    for name, cut in (("atypia", flags.atypia), ("high_grade", flags.high_grade)):
        share = summary[f"share_{name}"]
        shares[name] = share
        color = "rgb({},{},{})".format(*FLAG_COLORS[name])
        fig.add_vline(x=cut, line=dict(color=color, width=2, dash="dash"))
        fig.add_annotation(x=cut, y=1, yref="paper", showarrow=False, xanchor="left",
                           yanchor="bottom" if name == "atypia" else "top",
                           text=f" ≥ {cut:.2f}: {_fmt(100 * share, 1)} %",
                           font=dict(color=color))
    fig.update_layout(height=height, margin=dict(l=40, r=10, t=30, b=40), bargap=0.05,
                      xaxis=dict(title="nucleus / (nucleus + cytoplasm) per cell",
                                 range=[0, 1.02]),
                      yaxis=dict(title="cells"), showlegend=False,
                      meta={"shares": shares, "n_cells": summary["n_cells"]})
    return fig


def flag_overlay_rgb(image: np.ndarray, cells: np.ndarray, table: pd.DataFrame, *,
                     max_side: int = 1024, opacity: float = 0.55) -> np.ndarray:
    """The image with every flagged cell tinted (atypia orange, high grade red) and
    every cell outlined, at display size (uint8 RGB)."""
    step = figures.display_step(cells.shape, max_side)
    small_cells = cells[::step, ::step]
    rgb = figures.to_rgb8(image[::step, ::step]).astype(np.float32)
    top = int(max(small_cells.max(initial=0), table["label"].max() if len(table) else 0))
    level = np.zeros(top + 1, np.uint8)
    labels = table["label"].to_numpy().astype(np.intp)
    level[labels[table["flag_atypia"].to_numpy(bool)]] = 1
    level[labels[table["flag_high_grade"].to_numpy(bool)]] = 2
    where = level[small_cells]
    for value, name in ((1, "atypia"), (2, "high_grade")):
        hit = where == value
        rgb[hit] = (1 - opacity) * rgb[hit] + opacity * np.array(FLAG_COLORS[name], np.float32)
    rgb[figures.boundaries(small_cells)] = (40, 40, 40)
    return rgb.astype(np.uint8)


# --- the section -----------------------------------------------------------------------------
def _table_md(values: dict) -> str:
    return (f"| {' | '.join(values)} |\n|{'---:|' * len(values)}\n"
            f"| {' | '.join(values.values())} |")


def render_review(seg, source) -> None:
    """Cut-offs, shares of flagged cells, the ratio histogram and the flagged-cell image."""
    st.caption(REVIEW_NOTE)
    if not (seg.labels == 1).any():
        st.info("No cytoplasm is segmented in this image (fluorescence, or nuclei only): "
                "the nucleus/cell ratio and its flags need the cytoplasm.")
        return
    saved = current_flags()
    c1, c2 = st.columns(2)
    c1.number_input("Atypia cut-off (nucleus/cell ≥)", 0.01, 1.0, saved.atypia, 0.05,
                    key=ATYPIA_KEY, format="%.2f")
    c2.number_input("High-grade cut-off (nucleus/cell ≥)", 0.01, 1.0, saved.high_grade,
                    0.05, key=HIGH_GRADE_KEY, format="%.2f")
    try:
        flags = RatioFlags(float(st.session_state[ATYPIA_KEY]),
                           float(st.session_state[HIGH_GRADE_KEY]))
    except ValueError as err:
        st.error(f"Cut-offs: {err}")
        return
    st.session_state[SAVED_FLAGS] = flags
    if seg.too_many_objects:
        st.warning(seg.too_many_objects)
        return
    table = cell_table(seg, source)
    s = flag_summary(table, flags)
    st.markdown(_table_md({
        "Cells": f"{s['n_cells']:,}",
        f"Nucleus/cell ≥ {flags.atypia:.2f}":
            f"{s['n_atypia']:,} ({_fmt(100 * s['share_atypia'], 1)} %)",
        f"Nucleus/cell ≥ {flags.high_grade:.2f}":
            f"{s['n_high_grade']:,} ({_fmt(100 * s['share_high_grade'], 1)} %)",
        "Median nucleus/cell": _fmt(float(np.nanmedian(table["nucleus_cell_ratio"]))
                                    if s["n_cells"] else math.nan),
    }))
    st.caption("Defaults 0.5 and 0.7: the nucleus/cell area ratios The Paris System for "
               "urine cytology uses for atypia and high grade. A cell without cytoplasm "
               "counts as 1.0.")
    left, right = st.columns(2)
    with left:
        st.plotly_chart(ratio_histogram_figure(table, flags), key=f"{PAGE}.ratio_hist")
    with right:
        st.image(flag_overlay_rgb(source.image, seg.cells, table),
                 caption="Flagged cells: orange ≥ atypia cut-off, red ≥ high-grade cut-off; "
                         "every cell outlined.")
    features = ["label", "nucleus_cell_ratio", "nc_ratio", "nucleus_area", "od_ratio",
                "convexity_deficit", "glcm_contrast", "glcm_entropy", "flag_atypia",
                "flag_high_grade"]
    flagged = table[table["flag_atypia"]][features]
    st.markdown(f"**Flagged cells** ({len(flagged)}), with their nuclear features")
    st.dataframe(wording.readable(flagged.sort_values("nucleus_cell_ratio", ascending=False)),
                 hide_index=True, key=f"{PAGE}.flagged")


def render_help() -> None:
    """The definitions of every number (in the page's help expander)."""
    st.markdown(read_asset("numbers.md"))
