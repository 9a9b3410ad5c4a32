"""Explore's pathology numbers in AppTest: both ratios, the pixel size, the review section
(cut-offs, shares of flagged cells, histogram, flagged-cell image), compared with the
engine's own values."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("streamlit")

from app_support import pathology, state  # noqa: E402
from cellseg_core import read_image, read_mask, score_labels, segment  # noqa: E402
from cellseg_core.flags import RatioFlags, flag_summary  # noqa: E402
from cellseg_core.presets import get_preset  # noqa: E402
from tests._support.apptest import machine_columns, numbers_shown, page_app, run  # noqa: E402

PAGE, TIMEOUT = "explore.py", 60

IMAGE_ID = "007"


def _pick(at, dataset, image_id):
    at.session_state[state.SOURCE_KIND] = "Dataset"
    at.session_state[state.SOURCE_DATASET] = dataset
    at.session_state[state.SOURCE_ID] = image_id
    return run(at)


def _engine(voced, image_id=IMAGE_ID):
    image = read_image(voced / "images" / f"{image_id}.png")
    return segment(image, get_preset(state.DEFAULT_PRESET)), read_mask(
        voced / "masks" / f"{image_id}.png")


def test_both_ratios_shown_with_their_values(app_voced, voced):
    at = _pick(app_voced, "voced", IMAGE_ID)
    seg, truth = _engine(voced)
    shown = numbers_shown(at)
    assert shown["N/C ratio"] == f"{seg.summary['nc_ratio']:.3f}"
    assert shown["Nucleus/cell ratio"] == f"{seg.summary['nucleus_cell_ratio']:.3f}"
    scores = score_labels(seg.labels, truth)
    assert shown["Nucleus/cell predicted"] == f"{scores['nucleus_cell_ratio_pred']:.3f}"
    assert shown["Nucleus/cell true"] == f"{scores['nucleus_cell_ratio_true']:.3f}"
    # No pixel size for VocEd: pixels only, and the page says so.
    assert "Nucleus (µm²)" not in shown
    assert any("No pixel size" in c.value for c in at.sidebar.caption)
    help_text = " ".join(m.value for m in at.markdown)
    assert "nucleus area / (nucleus + cytoplasm) area" in help_text


def test_pixel_size_puts_areas_in_square_micrometres(app_voced, voced):
    at = _pick(app_voced, "voced", IMAGE_ID)
    at.sidebar.number_input(key=pathology.PIXEL_KEY).set_value(0.5)
    at = run(at)
    seg, _ = _engine(voced)
    shown = numbers_shown(at)
    assert shown["Nucleus (µm²)"] == f"{seg.summary['nucleus_area'] * 0.25:,.1f}"
    assert shown["Cytoplasm (µm²)"] == f"{seg.summary['cytoplasm_area'] * 0.25:,.1f}"
    assert any("0.5 µm/px (from the user)" in c.value for c in at.sidebar.caption)
    at.segmented_control(key="explore.tab").set_value("Per-cell table")
    at = run(at)
    table = machine_columns(at.dataframe[0].value)
    np.testing.assert_allclose(table["cell_area_um2"], table["cell_area"] * 0.25)
    np.testing.assert_allclose(table["nucleus_cell_ratio"],
                               table["nucleus_area"] / table["cell_area"])


def test_dataset_json_pixel_size(voced, tmp_path, monkeypatch):
    data = tmp_path / "withsize"
    for sub in ("images", "masks"):
        (data / sub).mkdir(parents=True)
        (data / sub / f"{IMAGE_ID}.png").write_bytes((voced / sub / f"{IMAGE_ID}.png").read_bytes())
    (data / "dataset.json").write_text(json.dumps({"pixel_size_um": 0.4}))
    at = _pick(page_app(monkeypatch, PAGE, data, timeout=TIMEOUT), "withsize", IMAGE_ID)
    seg, _ = _engine(voced)
    assert numbers_shown(at)["Nucleus (µm²)"] == f"{seg.summary['nucleus_area'] * 0.16:,.1f}"
    assert any("from the dataset.json" in c.value for c in at.sidebar.caption)


def test_review_section_counts_flagged_cells_and_follows_the_cutoffs(app_voced, voced):
    at = _pick(app_voced, "voced", IMAGE_ID)
    at.segmented_control(key="explore.tab").set_value(pathology.REVIEW)
    at = run(at)
    seg, _ = _engine(voced)
    assert any("not a diagnosis" in c.value for c in at.caption)
    expected = flag_summary(seg.objects, RatioFlags())
    shown = numbers_shown(at)
    assert shown["Cells"] == f"{expected['n_cells']:,}"
    assert shown["Nucleus/cell ≥ 0.50"] == (
        f"{expected['n_atypia']:,} ({100 * expected['share_atypia']:.1f} %)")
    assert shown["Nucleus/cell ≥ 0.70"] == (
        f"{expected['n_high_grade']:,} ({100 * expected['share_high_grade']:.1f} %)")
    assert at.get("image"), "the flagged-cell image is missing"
    # Other cut-offs: other counts.
    at.number_input(key=pathology.ATYPIA_KEY).set_value(0.2)
    at.number_input(key=pathology.HIGH_GRADE_KEY).set_value(0.4)
    at = run(at)
    moved = flag_summary(seg.objects, RatioFlags(0.2, 0.4))
    shown = numbers_shown(at)
    assert shown["Nucleus/cell ≥ 0.20"] == (
        f"{moved['n_atypia']:,} ({100 * moved['share_atypia']:.1f} %)")
    assert shown["Nucleus/cell ≥ 0.40"] == (
        f"{moved['n_high_grade']:,} ({100 * moved['share_high_grade']:.1f} %)")
    flagged = machine_columns(at.dataframe[0].value)
    assert len(flagged) == moved["n_atypia"]
    assert (flagged["nucleus_cell_ratio"] >= 0.2).all()
    # Inverted cut-offs: an error, not a traceback.
    at.number_input(key=pathology.ATYPIA_KEY).set_value(0.9)
    at = run(at)
    assert at.error and "must not exceed" in at.error[0].value
    # The per-cell table (and its CSV) keep the last valid cut-offs once the section is gone.
    at.segmented_control(key="explore.tab").set_value("Per-cell table")
    at = run(at)
    table = machine_columns(at.dataframe[0].value)
    assert (table["flag_atypia"] == (table["nucleus_cell_ratio"] >= 0.2)).all()
    assert (table["flag_high_grade"] == (table["nucleus_cell_ratio"] >= 0.4)).all()


def test_review_section_without_cytoplasm_says_why(monkeypatch):
    at = run(page_app(monkeypatch, PAGE, timeout=TIMEOUT))
    at.session_state[state.SOURCE_KIND] = "Dataset"
    at.session_state[state.SOURCE_DATASET] = "demo-fluorescence"
    at = run(at)
    at.selectbox(key=state.preset_key()).set_value("auto-fluorescence")
    at = run(at)
    at.segmented_control(key="explore.tab").set_value(pathology.REVIEW)
    at = run(at)
    assert any("No cytoplasm is segmented" in i.value for i in at.info)


def _toy_table():
    import pandas as pd
    return pd.DataFrame({"label": [1, 2, 3], "nucleus_cell_ratio": [0.25, 0.6, 1.0],
                         "cytoplasm_area": [6, 2, 0], "flag_atypia": [False, True, True],
                         "flag_high_grade": [False, False, True]})


def test_ratio_histogram_draws_the_cutoffs_with_their_shares():
    fig = pathology.ratio_histogram_figure(_toy_table(), RatioFlags())
    assert fig.layout.meta["shares"] == {"atypia": 2 / 3, "high_grade": 1 / 3}
    assert [s.x0 for s in fig.layout.shapes] == [0.5, 0.7]
    texts = [a.text for a in fig.layout.annotations]
    assert texts == [" ≥ 0.50: 66.7 %", " ≥ 0.70: 33.3 %"]
    assert list(fig.data[0].x) == [0.25, 0.6, 1.0]


def test_flag_overlay_colours_flagged_cells_only():
    cells = np.kron(np.array([[0, 0, 0, 0, 0, 0, 0, 0],
                              [1, 1, 0, 2, 2, 0, 3, 3],
                              [1, 1, 0, 2, 2, 0, 3, 3]]), np.ones((4, 4), int))
    image = np.full(cells.shape, 0.5, np.float32)
    rgb = pathology.flag_overlay_rgb(image, cells, _toy_table(), opacity=1.0)
    assert rgb.shape == (*cells.shape, 3) and rgb.dtype == np.uint8
    inside = ~_outline(cells)
    assert all(((cells == k) & inside).any() for k in range(4))
    assert (rgb[(cells == 2) & inside] == pathology.FLAG_COLORS["atypia"]).all()
    assert (rgb[(cells == 3) & inside] == pathology.FLAG_COLORS["high_grade"]).all()
    assert (rgb[(cells == 0) & inside] == 128).all()  # background untouched
    assert not any((rgb[(cells == 1) & inside] == c).all(axis=-1).any()
                   for c in pathology.FLAG_COLORS.values())


def _outline(cells):
    from app_support import figures
    return figures.boundaries(cells)
