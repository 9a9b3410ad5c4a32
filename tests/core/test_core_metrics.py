"""Metrics on tiny hand-made arrays with answers worked out by hand."""
import math

import numpy as np
import pytest

from cellseg_core import metrics as M

INT_DTYPES = [np.uint8, np.uint16, np.int32, np.int64]

# 3 x 4 labels; by hand:
#   truth: class 1 at 5 px, class 2 at 3 px     pred: class 1 at 4 px, class 2 at 4 px
TRUTH = np.array([[0, 1, 1, 2],
                  [0, 1, 1, 2],
                  [0, 0, 1, 2]])
PRED = np.array([[0, 1, 1, 2],
                 [0, 1, 2, 2],
                 [1, 0, 0, 2]])
# class 1: |P|=4, |T|=5, |P&T|=3 -> dice 6/9, iou 3/6
# class 2: |P|=4, |T|=3, |P&T|=3 -> dice 6/7, iou 3/4
# pixels right: (0,0)(0,1)(0,2)(0,3)(1,0)(1,1)(1,3)(2,1)(2,3) = 9 of 12


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_dice_iou_by_hand(dtype):
    p, t = PRED.astype(dtype), TRUTH.astype(dtype)
    assert M.dice(p, t, 1) == pytest.approx(6 / 9)
    assert M.dice(p, t, 2) == pytest.approx(6 / 7)
    assert M.iou(p, t, 1) == pytest.approx(3 / 6)
    assert M.iou(p, t, 2) == pytest.approx(3 / 4)
    assert M.mean_dice(p, t) == pytest.approx((6 / 9 + 6 / 7) / 2)
    assert M.pixel_accuracy(p, t) == pytest.approx(9 / 12)


def test_dice_both_empty_is_one_and_one_empty_is_zero():
    empty = np.zeros((2, 3), np.uint8)
    assert M.dice(empty, empty, 2) == 1.0
    assert M.iou(empty, empty, 2) == 1.0
    assert M.mean_dice(empty, empty) == 1.0
    full = np.full((2, 3), 2, np.uint8)
    assert M.dice(full, empty, 2) == 0.0
    assert M.dice(empty, full, 2) == 0.0
    # nucleus missing in both, cytoplasm perfect: course mean = (1 + 1) / 2
    one = np.ones((2, 2), np.uint8)
    assert M.mean_dice(one, one) == 1.0


def test_dice_is_symmetric_and_perfect_on_identity():
    assert M.dice(PRED, TRUTH, 1) == M.dice(TRUTH, PRED, 1)
    assert M.dice(TRUTH, TRUTH, 1) == 1.0
    assert M.pixel_accuracy(TRUTH, TRUTH) == 1.0


@pytest.mark.parametrize("dtype", INT_DTYPES + [bool])
def test_confusion_matrix_by_hand(dtype):
    if dtype is bool:
        p = np.array([[True, False, True]])
        t = np.array([[True, True, False]])
        np.testing.assert_array_equal(M.confusion_matrix(p, t, 2), [[0, 1], [1, 1]])
        return
    cm = M.confusion_matrix(PRED.astype(dtype), TRUTH.astype(dtype))
    # rows: true class, columns: predicted class
    expected = np.array([[3, 1, 0],
                         [1, 3, 1],
                         [0, 0, 3]])
    np.testing.assert_array_equal(cm, expected)
    assert cm.sum() == PRED.size


def test_confusion_matrix_rejects_labels_above_n_classes():
    with pytest.raises(ValueError, match="n_classes"):
        M.confusion_matrix(np.array([[3]]), np.array([[0]]))


@pytest.mark.parametrize("func", [M.dice, M.iou])
def test_shape_mismatch_names_both_arguments(func):
    with pytest.raises(ValueError, match=r"`pred` \(shape \(1, 2\)\).*`truth` \(shape \(2, 1\)\)"):
        func(np.zeros((1, 2)), np.zeros((2, 1)), 1)


@pytest.mark.parametrize("func", [M.mean_dice, M.pixel_accuracy, M.confusion_matrix,
                                  M.score_labels, M.match_instances, M.average_precision])
def test_shape_mismatch_raises(func):
    with pytest.raises(ValueError, match="same shape"):
        func(np.zeros((1, 2), np.uint8), np.zeros((2, 1), np.uint8))


def test_nc_ratio_by_hand_and_nan():
    assert M.nc_ratio(TRUTH) == pytest.approx(3 / 5)
    assert M.nc_ratio(PRED) == pytest.approx(4 / 4)
    assert math.isnan(M.nc_ratio(np.zeros((2, 2), np.uint8)))
    assert math.isnan(M.nc_ratio(np.full((2, 2), 2, np.uint8)))  # nucleus only
    assert M.nc_ratio(np.ones((2, 2), np.uint8)) == 0.0            # cytoplasm only


def test_score_labels_agrees_with_single_metrics():
    s = M.score_labels(PRED, TRUTH)
    assert set(s) == {"dice_cytoplasm", "dice_nucleus", "mean_dice", "iou_cytoplasm",
                      "iou_nucleus", "mean_iou", "pixel_accuracy", "nc_pred", "nc_true",
                      "nc_error", "nucleus_cell_ratio_pred", "nucleus_cell_ratio_true",
                      "nucleus_cell_ratio_error"}
    assert s["nucleus_cell_ratio_pred"] == pytest.approx(4 / 8)
    assert s["nucleus_cell_ratio_true"] == pytest.approx(3 / 8)
    assert s["dice_cytoplasm"] == pytest.approx(6 / 9)
    assert s["dice_nucleus"] == pytest.approx(6 / 7)
    assert s["mean_dice"] == pytest.approx((6 / 9 + 6 / 7) / 2)
    assert s["iou_cytoplasm"] == pytest.approx(0.5)
    assert s["iou_nucleus"] == pytest.approx(0.75)
    assert s["mean_iou"] == pytest.approx(0.625)
    assert s["pixel_accuracy"] == pytest.approx(0.75)
    assert s["nc_pred"] == pytest.approx(1.0)
    assert s["nc_true"] == pytest.approx(0.6)
    assert s["nc_error"] == pytest.approx(0.4)
    assert all(isinstance(v, float) for v in s.values())


def test_score_labels_empty_classes():
    empty = np.zeros((3, 3), np.uint8)
    s = M.score_labels(empty, empty)
    assert s["mean_dice"] == 1.0 and s["mean_iou"] == 1.0 and s["pixel_accuracy"] == 1.0
    assert math.isnan(s["nc_pred"]) and math.isnan(s["nc_error"])


def test_r2_identity_by_hand():
    truth = np.array([1.0, 2.0, 3.0])
    pred = np.array([1.0, 2.0, 4.0])
    # SS_res = 1, SS_tot = 2 -> 0.5
    assert M.r2_identity(pred, truth) == pytest.approx(0.5)
    assert M.r2_identity(truth, truth) == 1.0
    # predicting the mean gives 0; anything worse is negative
    assert M.r2_identity([2.0, 2.0, 2.0], truth) == pytest.approx(0.0)
    assert M.r2_identity([3.0, 2.0, 1.0], truth) == pytest.approx(1 - 8 / 2)
    # not the squared correlation: a perfect line off the identity is penalised
    assert M.r2_identity(2 * truth, truth) == pytest.approx(1 - 14 / 2)


def test_r2_identity_nan_pairs_left_out_and_degenerate_cases():
    assert M.r2_identity([1.0, np.nan, 2.0, 4.0], [1.0, 5.0, 2.0, 3.0]) == pytest.approx(0.5)
    assert M.r2_identity([1.0, 2.0, 4.0, 9.0], [1.0, 2.0, 3.0, np.nan]) == pytest.approx(0.5)
    assert math.isnan(M.r2_identity([1.0], [1.0]))
    assert math.isnan(M.r2_identity([1.0, 2.0], [3.0, 3.0]))   # truth does not vary
    assert math.isnan(M.r2_identity([], []))


def test_nc_errors_by_hand():
    out = M.nc_errors([1.0, 2.0, 4.0, np.nan], [1.0, 2.0, 3.0, 0.5])
    assert out["nc_mae"] == pytest.approx(1 / 3)
    assert out["nc_r2"] == pytest.approx(0.5)
    none = M.nc_errors([np.nan], [1.0])
    assert math.isnan(none["nc_mae"]) and math.isnan(none["nc_r2"])


# --- instances -------------------------------------------------------------------------
# truth: three objects; pred: object 1 exact, object 2 half-covered (IoU 0.5, not > 0.5),
# truth object 3 missed, one extra predicted object.
INST_TRUTH = np.array([[1, 1, 0, 2, 2, 2, 2, 0, 3],
                       [1, 1, 0, 2, 2, 2, 2, 0, 3]])
INST_PRED = np.array([[5, 5, 0, 7, 7, 0, 0, 0, 0],
                      [5, 5, 0, 7, 7, 0, 0, 9, 0]])


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_match_instances_by_hand(dtype):
    r = M.match_instances(INST_PRED.astype(dtype), INST_TRUTH.astype(dtype))
    # IoUs: (1,5) = 1; (2,7) = 4/8 = 0.5 -> not a match at > 0.5; 9 touches nothing
    assert (r["tp"], r["fp"], r["fn"]) == (1, 2, 2)
    assert r["n_pred"] == 3 and r["n_true"] == 3 and r["count_error"] == 0
    assert r["precision"] == pytest.approx(1 / 3)
    assert r["recall"] == pytest.approx(1 / 3)
    assert r["f1"] == pytest.approx(1 / 3)
    np.testing.assert_array_equal(r["matched_pred"], [5])
    np.testing.assert_array_equal(r["matched_true"], [1])


def test_match_instances_lower_threshold_and_count_error():
    r = M.match_instances(INST_PRED, INST_TRUTH, threshold=0.5)
    assert r["tp"] == 1
    pred = INST_PRED.copy()
    pred[0, 5] = 7  # object 7 grows to 5 px inside truth 2: IoU 5/8 > 0.5
    r = M.match_instances(pred, INST_TRUTH)
    assert (r["tp"], r["fp"], r["fn"]) == (2, 1, 1)
    assert r["f1"] == pytest.approx(2 * 2 / 6)
    extra = np.array([[1, 0, 2, 0, 3]])
    assert M.match_instances(extra, (extra == 1).astype(int))["count_error"] == 2


def test_match_instances_empty_cases():
    empty = np.zeros((3, 3), np.int32)
    one = empty.copy()
    one[1, 1] = 1
    r = M.match_instances(empty, empty)
    assert (r["precision"], r["recall"], r["f1"]) == (1.0, 1.0, 1.0)
    r = M.match_instances(empty, one)
    assert (r["precision"], r["recall"], r["f1"], r["fn"]) == (0.0, 0.0, 0.0, 1)
    r = M.match_instances(one, empty)
    assert (r["precision"], r["recall"], r["f1"], r["fp"]) == (0.0, 0.0, 0.0, 1)


def test_match_instances_rejects_threshold_below_half():
    with pytest.raises(ValueError, match="threshold"):
        M.match_instances(INST_PRED, INST_TRUTH, threshold=0.3)


def test_match_instances_ignores_label_ids_and_gaps():
    # same objects under other numbers: a perfect match
    relabelled = np.where(INST_TRUTH > 0, INST_TRUTH * 10 + 3, 0)
    r = M.match_instances(relabelled, INST_TRUTH)
    assert r["tp"] == 3 and r["f1"] == 1.0


def test_average_precision_dsb_by_hand():
    # truth: a 10-px bar; pred covers 8 of those 10 px (IoU 0.8), plus one false positive.
    truth = np.zeros((2, 10), np.int32)
    truth[0, :] = 1
    pred = np.zeros((2, 10), np.int32)
    pred[0, :8] = 1
    pred[1, 9] = 2
    # thresholds 0.50..0.75 (6 of them): IoU 0.8 > t -> TP 1, FP 1, FN 0 -> 1/2
    # thresholds 0.80..0.95 (4 of them): 0.8 > 0.8 is False -> TP 0, FP 2, FN 1 -> 0
    assert M.average_precision(pred, truth) == pytest.approx(6 * 0.5 / 10)
    assert M.average_precision(truth, truth) == 1.0
    assert M.average_precision(np.zeros((2, 2), int), np.zeros((2, 2), int)) == 1.0
    assert M.average_precision(np.zeros((2, 10), int), truth) == 0.0


def test_dsb_thresholds():
    np.testing.assert_allclose(M.DSB_IOU_THRESHOLDS, np.arange(10) * 0.05 + 0.5)
    assert len(M.DSB_IOU_THRESHOLDS) == 10


@pytest.mark.parametrize("func", [M.dice, M.iou])
def test_metrics_do_not_modify_inputs(func):
    p, t = PRED.copy(), TRUTH.copy()
    func(p, t, 1)
    M.score_labels(p, t)
    M.match_instances(p, t)
    np.testing.assert_array_equal(p, PRED)
    np.testing.assert_array_equal(t, TRUTH)
