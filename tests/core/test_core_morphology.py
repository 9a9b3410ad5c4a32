"""Clean-up, step by step, on tiny label arrays."""
import numpy as np
import pytest
from scipy import ndimage as ndi

from cellseg_core.morphology import (clean_labels, fill_holes, open_close, remove_small_objects,
                                     small_objects)
from cellseg_core.params import CleanupParams

LABEL_DTYPES = [np.uint8, np.int32, np.int64]


def test_small_objects_by_hand():
    mask = np.array([[1, 1, 0, 1],
                     [0, 0, 0, 1],
                     [1, 0, 0, 0]], bool)
    # pieces (4-connected): 2 px, 2 px, 1 px
    np.testing.assert_array_equal(small_objects(mask, 2), mask & np.array(
        [[0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]], bool))
    np.testing.assert_array_equal(small_objects(mask, 3), mask)
    assert not small_objects(mask, 1).any() and not small_objects(mask, 0).any()


def test_small_objects_uses_4_connectivity_like_skimage():
    diagonal = np.eye(3, dtype=bool)       # three 1-px pieces when 4-connected
    np.testing.assert_array_equal(small_objects(diagonal, 2), diagonal)


def test_remove_small_objects_matches_skimage():
    from skimage.morphology import remove_small_objects as sk_remove

    mask = np.random.default_rng(3).random((40, 40)) > 0.6
    for size in (2, 5, 20):
        np.testing.assert_array_equal(remove_small_objects(mask, size),
                                      sk_remove(mask, max_size=size - 1)
                                      if _has_max_size() else sk_remove(mask, size))
    with pytest.raises(ValueError, match="`min_size` must be >= 0"):
        remove_small_objects(mask, -1)


def _has_max_size():
    import inspect

    from skimage.morphology import remove_small_objects as sk_remove
    return "max_size" in inspect.signature(sk_remove).parameters


def test_fill_holes_matches_scipy():
    rng = np.random.default_rng(4)
    for _ in range(20):
        mask = ndi.binary_opening(rng.random((30, 30)) > 0.4)
        np.testing.assert_array_equal(fill_holes(mask), ndi.binary_fill_holes(mask))
    ring = np.pad(np.pad([[0]], 1, constant_values=1), 1).astype(bool)
    assert fill_holes(ring)[2, 2]
    assert fill_holes(np.ones((3, 3), bool)).all()
    assert not fill_holes(np.zeros((3, 3), bool)).any()


def test_open_close_by_hand():
    mask = np.zeros((9, 9), bool)
    mask[2:7, 2:7] = True
    spur = mask.copy()
    spur[4, 7:9] = True                       # a 1-px-wide spur: opening removes it
    cross = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)   # disk(1)
    opened = open_close(spur, 1, 0)
    # the square loses its corners; the spur's tip goes, its root (which a cross
    # centred on the square's edge pixel covers) stays
    assert not opened[4, 8] and opened[4, 7]
    np.testing.assert_array_equal(opened, ndi.binary_opening(spur, cross))
    gap = mask.copy()
    gap[4, 4] = False                         # a 1-px hole: closing fills it
    np.testing.assert_array_equal(open_close(gap, 0, 1), mask)
    assert open_close(mask, 0, 0) is mask


def test_closing_does_not_erode_the_border():
    full = np.ones((6, 6), bool)
    np.testing.assert_array_equal(open_close(full, 0, 2), full)
    edge = np.zeros((6, 6), bool)
    edge[:, :3] = True
    np.testing.assert_array_equal(open_close(edge, 0, 2), edge)


def test_opening_does_not_erode_the_border():
    full = np.ones((6, 6), bool)
    np.testing.assert_array_equal(open_close(full, 2, 0), full)
    edge = np.zeros((8, 8), bool)
    edge[:, :4] = True                        # a cell cut by the image border
    np.testing.assert_array_equal(open_close(edge, 1, 0), edge)


# --- clean_labels, one step at a time ---------------------------------------------------
@pytest.mark.parametrize("dtype", LABEL_DTYPES)
def test_clean_labels_all_off_is_identity(dtype):
    labels = np.random.default_rng(5).integers(0, 3, (7, 8)).astype(dtype)
    out = clean_labels(labels, CleanupParams())
    assert out.dtype == np.uint8 and out is not labels
    np.testing.assert_array_equal(out, labels)
    np.testing.assert_array_equal(clean_labels(labels), labels)


@pytest.mark.parametrize("dtype", LABEL_DTYPES)
def test_small_nucleus_becomes_cytoplasm(dtype):
    labels = np.array([[1, 1, 1, 1, 1, 1],
                       [1, 2, 1, 2, 2, 1],
                       [1, 1, 1, 2, 2, 1],
                       [0, 0, 0, 0, 0, 0]], dtype)
    out = clean_labels(labels, CleanupParams(min_nucleus_size=2))
    expected = labels.astype(np.uint8).copy()
    expected[1, 1] = 1
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("dtype", LABEL_DTYPES)
def test_small_cytoplasm_becomes_background(dtype):
    labels = np.array([[1, 0, 1, 1, 1],
                       [0, 0, 1, 2, 1],
                       [0, 0, 1, 1, 1]], dtype)
    out = clean_labels(labels, CleanupParams(min_cytoplasm_size=2))
    expected = labels.astype(np.uint8).copy()
    expected[0, 0] = 0                        # 1-px cytoplasm piece
    np.testing.assert_array_equal(out, expected)
    # the ring around the nucleus is one 8-px piece: kept at 8, removed at 9
    assert (clean_labels(labels, CleanupParams(min_cytoplasm_size=8)) == 1).sum() == 8
    out9 = clean_labels(labels, CleanupParams(min_cytoplasm_size=9))
    np.testing.assert_array_equal(out9, np.where(labels == 2, 2, 0))


def test_removed_nucleus_counts_as_cytoplasm_for_the_cytoplasm_step():
    labels = np.array([[0, 0, 0, 0],
                       [0, 1, 2, 0],
                       [0, 0, 0, 0]], np.uint8)
    # nucleus (1 px) -> cytoplasm first, so the cytoplasm piece is 2 px and survives min 2
    out = clean_labels(labels, CleanupParams(min_nucleus_size=2, min_cytoplasm_size=2))
    np.testing.assert_array_equal(out, np.where(labels > 0, 1, 0))


@pytest.mark.parametrize("dtype", LABEL_DTYPES)
def test_fill_holes_in_nuclei(dtype):
    labels = np.array([[1, 1, 1, 1, 1],
                       [1, 2, 2, 2, 1],
                       [1, 2, 1, 2, 1],
                       [1, 2, 0, 2, 1],
                       [1, 2, 2, 2, 1],
                       [1, 1, 1, 1, 1]], dtype)
    out = clean_labels(labels, CleanupParams(fill_holes=True))
    expected = labels.astype(np.uint8).copy()
    expected[2, 2] = expected[3, 2] = 2      # cytoplasm and background holes become nucleus
    np.testing.assert_array_equal(out, expected)
    # a notch open to the outside is not a hole
    notch = labels.copy()
    notch[2:5, 2] = [1, 0, 0]
    notch[5, 2] = 0
    notch[4, 2] = 0
    out = clean_labels(notch, CleanupParams(fill_holes=True))
    assert out[3, 2] == 0


def test_opening_removes_thin_cytoplasm_and_keeps_classes_nested():
    labels = np.zeros((11, 11), np.uint8)
    labels[2:9, 2:9] = 1
    labels[4:7, 4:7] = 2
    labels[5, 9:11] = 1                        # 1-px-wide spur of cytoplasm
    out = clean_labels(labels, CleanupParams(opening_radius=1))
    assert out[5, 10] == 0 and out[5, 9] == 1      # tip removed, root kept (disk(1))
    assert out[3, 3] == 1 and out[5, 5] == 2
    # every nucleus pixel lies inside the cell
    assert ((out == 2) <= (out > 0)).all()


def test_closing_joins_a_gap():
    labels = np.zeros((7, 7), np.uint8)
    labels[1:6, 1:6] = 1
    labels[3, 3] = 0
    out = clean_labels(labels, CleanupParams(closing_radius=1))
    assert out[3, 3] == 1


def test_clean_labels_does_not_modify_input_and_validates():
    labels = np.random.default_rng(6).integers(0, 3, (12, 12)).astype(np.uint8)
    before = labels.copy()
    clean_labels(labels, CleanupParams(opening_radius=1, closing_radius=1, min_nucleus_size=3,
                                       min_cytoplasm_size=3, fill_holes=True))
    np.testing.assert_array_equal(labels, before)
    with pytest.raises(ValueError, match="`labels` must be 2-D"):
        clean_labels(labels[None], CleanupParams())
