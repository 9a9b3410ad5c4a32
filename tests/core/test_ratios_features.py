"""Both N/C ratios, per image and per cell, the flags on them, and the nuclear features,
on hand-made masks with answers worked out by hand."""
import math

import numpy as np
import pandas as pd
import pytest
from skimage.feature import graycomatrix, graycoprops

from cellseg_core.evaluation import scores_from_confusion
from cellseg_core.flags import FLAG_COLUMNS, RatioFlags, flag_cells, flag_summary
from cellseg_core.measure import image_summary, object_table
from cellseg_core.metrics import confusion_matrix, nc_ratio, nucleus_cell_ratio, score_labels
from cellseg_core.nuclear import CELL_COLUMNS, cell_table, glcm_texture, nuclear_features

# Two cells side by side and a naked nucleus (no cytoplasm) at the right:
#   cell 1: nucleus 2 px, cytoplasm 6 px -> nc 2/6, nucleus/cell 2/8
#   cell 2: nucleus 4 px, cytoplasm 2 px -> nc 4/2, nucleus/cell 4/6
#   cell 3: nucleus 3 px, no cytoplasm    -> nc NaN, nucleus/cell 1.0
LABELS = np.array([[1, 1, 1, 1, 2, 2, 0, 2],
                   [1, 2, 2, 1, 2, 2, 0, 2],
                   [0, 0, 0, 0, 1, 1, 0, 2]], np.uint8)
NUCLEI = np.array([[0, 0, 0, 0, 2, 2, 0, 3],
                   [0, 1, 1, 0, 2, 2, 0, 3],
                   [0, 0, 0, 0, 0, 0, 0, 3]], np.int32)
CELLS = np.array([[1, 1, 1, 1, 2, 2, 0, 3],
                  [1, 1, 1, 1, 2, 2, 0, 3],
                  [0, 0, 0, 0, 2, 2, 0, 3]], np.int32)


def test_image_ratios_by_hand():
    # nucleus 2 + 4 + 3 = 9 px, cytoplasm 6 + 2 = 8 px
    assert nc_ratio(LABELS) == 9 / 8
    assert nucleus_cell_ratio(LABELS) == 9 / 17
    summary = image_summary(LABELS, NUCLEI)
    assert summary["nc_ratio"] == 9 / 8 and summary["nucleus_cell_ratio"] == 9 / 17


@pytest.mark.parametrize("labels, nc, ncr", [
    ([[0, 1, 1, 1, 2]], 1 / 3, 1 / 4),
    ([[2, 2, 0]], math.nan, 1.0),      # nuclei without cytoplasm
    ([[1, 1, 0]], 0.0, 0.0),           # cytoplasm without nuclei
    ([[0, 0]], math.nan, math.nan),    # nothing
])
def test_image_ratio_edge_cases(labels, nc, ncr):
    np.testing.assert_equal(nc_ratio(labels), nc)
    np.testing.assert_equal(nucleus_cell_ratio(labels), ncr)


def test_the_two_ratios_convert_into_each_other():
    rng = np.random.default_rng(3)
    for _ in range(10):
        labels = rng.integers(0, 3, (7, 9))
        n = nc_ratio(labels)
        assert nucleus_cell_ratio(labels) == pytest.approx(n / (1 + n))


def test_per_cell_ratios_by_hand_with_a_cell_without_cytoplasm():
    table = object_table(NUCLEI, CELLS, LABELS, np.full(LABELS.shape, 0.5))
    assert table["label"].tolist() == [1, 2, 3]
    assert table["nucleus_area"].tolist() == [2, 4, 3]
    assert table["cytoplasm_area"].tolist() == [6, 2, 0]
    np.testing.assert_array_equal(table["nc_ratio"], [2 / 6, 4 / 2, np.nan])
    np.testing.assert_array_equal(table["nucleus_cell_ratio"], [2 / 8, 4 / 6, 1.0])


def test_scores_carry_both_ratios():
    pred = LABELS.copy()
    truth = np.where(LABELS == 2, 1, LABELS).astype(np.uint8)  # no nucleus at all
    s = score_labels(pred, truth)
    assert s["nucleus_cell_ratio_pred"] == 9 / 17
    assert s["nucleus_cell_ratio_true"] == 0.0
    assert s["nucleus_cell_ratio_error"] == 9 / 17
    fast = scores_from_confusion(confusion_matrix(pred, truth))
    assert float(fast["nucleus_cell_ratio_pred"]) == s["nucleus_cell_ratio_pred"]


def test_flags_at_the_default_cutoffs():
    table = object_table(NUCLEI, CELLS, LABELS, np.full(LABELS.shape, 0.5))
    flagged = flag_cells(table)
    # ratios 0.25, 0.667, 1.0 against 0.5 / 0.7
    assert flagged["flag_atypia"].tolist() == [False, True, True]
    assert flagged["flag_high_grade"].tolist() == [False, False, True]
    assert list(table.columns)[-1] == "solidity"  # input not modified
    s = flag_summary(table)
    assert (s["n_cells"], s["n_atypia"], s["n_high_grade"]) == (3, 2, 1)
    assert s["share_atypia"] == 2 / 3 and s["share_high_grade"] == 1 / 3


def test_flags_follow_their_cutoffs_and_the_boundary_counts():
    table = pd.DataFrame({"nucleus_cell_ratio": [0.25, 0.4, 0.6, np.nan],
                          "cytoplasm_area": [3, 3, 2, 0]})
    flagged = flag_cells(table, RatioFlags(0.4, 0.6))
    assert flagged["flag_atypia"].tolist() == [False, True, True, False]
    assert flagged["flag_high_grade"].tolist() == [False, False, True, False]
    assert flag_summary(table, RatioFlags(0.4, 0.6))["n_cells"] == 3


def test_no_cytoplasm_anywhere_means_no_flags():
    table = pd.DataFrame({"nucleus_cell_ratio": [1.0, 1.0], "cytoplasm_area": [0, 0]})
    assert not flag_cells(table)[FLAG_COLUMNS].to_numpy().any()
    assert flag_summary(table)["assessable"] is False


@pytest.mark.parametrize("args, error, match", [
    ((0.8, 0.7), ValueError, "must not exceed"),
    ((0.0, 0.7), ValueError, "atypia"),
    ((0.5, 1.5), ValueError, "high_grade"),
    (("0.5", 0.7), TypeError, "atypia"),
])
def test_ratio_flags_refuse_bad_cutoffs(args, error, match):
    with pytest.raises(error, match=match):
        RatioFlags(*args)


def test_ratio_flags_serialise():
    flags = RatioFlags(0.45, 0.65)
    assert RatioFlags.from_json(flags.to_json()) == flags
    assert RatioFlags.from_json({"atypia": 0.45, "high_grade": 0.65}) == flags
    assert RatioFlags.parse(" 0.45 , 0.65") == flags
    with pytest.raises(ValueError, match="unknown"):
        RatioFlags.from_json({"atypia": 0.5, "cutoff": 1})
    with pytest.raises(ValueError, match="two cut-offs"):
        RatioFlags.parse("0.5")


def _glcm_reference(image_q, mask, levels):
    """scikit-image's GLCM of the pairs inside `mask`: level 0 marks outside pixels."""
    shifted = np.where(mask, image_q + 1, 0).astype(np.uint8)
    m = graycomatrix(shifted, [1], [0, np.pi / 2], levels=levels + 1, symmetric=True,
                     normed=False)[1:, 1:].astype(float)
    m /= m.sum(axis=(0, 1), keepdims=True)
    return (graycoprops(m, "contrast").mean(), graycoprops(m, "entropy").mean())


def test_glcm_texture_equals_scikit_image_on_each_nucleus():
    rng = np.random.default_rng(7)
    levels = 8
    nuclei = np.zeros((20, 24), np.int32)
    nuclei[2:9, 3:11] = 1                      # a rectangle
    yy, xx = np.mgrid[:20, :24]
    nuclei[(yy - 14) ** 2 + (xx - 16) ** 2 <= 16] = 2   # a disc
    nuclei[12:18, 2:4] = 5                     # thin, non-consecutive label
    intensity = rng.random(nuclei.shape)
    contrast, entropy = glcm_texture(nuclei, intensity, levels=levels)
    q = np.minimum((intensity * levels).astype(int), levels - 1)
    for i, label in enumerate([1, 2, 5]):
        want_c, want_e = _glcm_reference(q, nuclei == label, levels)
        assert contrast[i] == pytest.approx(want_c, rel=1e-12)
        assert entropy[i] == pytest.approx(want_e, rel=1e-12)


def test_glcm_texture_flat_nucleus_and_single_pixel():
    nuclei = np.array([[1, 1, 0, 2]])
    contrast, entropy = glcm_texture(nuclei, np.full(nuclei.shape, 0.3))
    assert contrast[0] == 0.0 and entropy[0] == 0.0
    assert math.isnan(contrast[1]) and math.isnan(entropy[1])


def test_nuclear_features_by_hand():
    # Glass 1.0; nucleus 1 at exp(-2) (OD 2), its cytoplasm at exp(-0.5) (OD 0.5);
    # cell 2: nucleus OD 1, cytoplasm OD 1; cell 3 has no cytoplasm.
    channel = np.ones(LABELS.shape)
    channel[NUCLEI == 1] = np.exp(-2)
    channel[(CELLS == 1) & (LABELS == 1)] = np.exp(-0.5)
    channel[(CELLS == 2)] = np.exp(-1)
    channel[NUCLEI == 3] = np.exp(-1.5)
    table = object_table(NUCLEI, CELLS, LABELS, channel)
    f = nuclear_features(NUCLEI, CELLS, LABELS, channel, table)
    np.testing.assert_allclose(f["nucleus_od"], [2.0, 1.0, 1.5], rtol=1e-6)
    np.testing.assert_allclose(f["cytoplasm_od"], [0.5, 1.0, np.nan], rtol=1e-6)
    np.testing.assert_allclose(f["od_ratio"], [4.0, 1.0, np.nan], rtol=1e-6)
    np.testing.assert_allclose(f["convexity_deficit"], 1 - table["solidity"])
    assert f["convexity_deficit"].tolist() == [0.0, 0.0, 0.0]  # rectangles are convex


def test_convexity_deficit_of_an_l_shape():
    nuclei = np.zeros((6, 6), np.int32)
    nuclei[1:5, 1:3] = 1
    nuclei[3:5, 3:5] = 1          # an L: 12 px, hull 14 px (scikit-image's hull)
    labels = np.where(nuclei > 0, 2, 0).astype(np.uint8)
    t = cell_table(nuclei, nuclei, labels, np.full(nuclei.shape, 0.2))
    assert t["convexity_deficit"][0] == pytest.approx(1 - t["solidity"][0])
    assert 0 < t["convexity_deficit"][0] < 0.3


def test_cell_table_columns_and_empty():
    t = cell_table(NUCLEI, CELLS, LABELS, np.full(LABELS.shape, 0.5))
    assert list(t.columns) == CELL_COLUMNS and len(t) == 3
    empty = cell_table(np.zeros((3, 3), np.int32), np.zeros((3, 3), np.int32),
                       np.zeros((3, 3), np.uint8), np.zeros((3, 3)))
    assert list(empty.columns) == CELL_COLUMNS and len(empty) == 0


def test_features_do_not_modify_inputs():
    arrays = [NUCLEI.copy(), CELLS.copy(), LABELS.copy(), np.full(LABELS.shape, 0.4)]
    before = [a.copy() for a in arrays]
    cell_table(*arrays)
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b)


def test_nuclear_features_refuse_mismatched_shapes():
    table = object_table(NUCLEI, CELLS, LABELS, np.full(LABELS.shape, 0.5))
    with pytest.raises(ValueError, match="`intensity`"):
        nuclear_features(NUCLEI, CELLS, LABELS, np.zeros((2, 2)), table)
