"""Instances: components, size filter, watershed split, cells; the object table."""
import math

import numpy as np
import pandas as pd
import pytest

from cellseg_core.instances import (assign_cells, filter_by_size, label_objects, split_touching,
                                    watershed_markers)
from cellseg_core.measure import OBJECT_COLUMNS, image_summary, object_table

LABEL_DTYPES = [np.uint8, np.uint16, np.int32, np.int64]


def _disks(shape, centres, radius):
    rr, cc = np.indices(shape)
    mask = np.zeros(shape, bool)
    for r, c in centres:
        mask |= (rr - r) ** 2 + (cc - c) ** 2 <= radius ** 2
    return mask


def test_label_objects_connectivity():
    mask = np.array([[1, 0, 0],
                     [0, 1, 0],
                     [0, 0, 0]], bool)
    four = label_objects(mask)
    assert four.dtype == np.int32 and four.max() == 2
    eight = label_objects(mask, connectivity=2)
    assert eight.max() == 1
    with pytest.raises(ValueError, match="`connectivity` must be 1 or 2"):
        label_objects(mask, connectivity=3)


@pytest.mark.parametrize("dtype", LABEL_DTYPES)
def test_filter_by_size_renumbers_contiguously(dtype):
    labels = np.array([[3, 3, 0, 7, 9, 9, 9],
                       [3, 0, 0, 0, 9, 0, 5]], dtype)
    # sizes: 3 -> 3 px, 7 -> 1, 9 -> 4, 5 -> 1
    out = filter_by_size(labels, min_size=2)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, [[1, 1, 0, 0, 2, 2, 2],
                                        [1, 0, 0, 0, 2, 0, 0]])
    out = filter_by_size(labels, min_size=1, max_size=3)
    np.testing.assert_array_equal(np.unique(out), [0, 1, 2, 3])
    assert (out[labels == 9] == 0).all()
    assert not filter_by_size(labels, min_size=100).any()
    np.testing.assert_array_equal(filter_by_size(np.zeros((2, 2), dtype), 3), 0)
    with pytest.raises(ValueError, match="`min_size` must be >= 0"):
        filter_by_size(labels, -1)


def test_filter_by_size_keeps_order_of_ids():
    labels = np.array([[5, 0, 2, 2, 0, 9, 9]])
    np.testing.assert_array_equal(filter_by_size(labels, 0), [[2, 0, 1, 1, 0, 3, 3]])
    np.testing.assert_array_equal(filter_by_size(labels), [[2, 0, 1, 1, 0, 3, 3]])


def test_split_touching_splits_two_overlapping_disks():
    mask = _disks((40, 60), [(20, 20), (20, 36)], 10)
    assert label_objects(mask).max() == 1            # one blob before
    split = split_touching(mask, min_distance=5, footprint=3)
    assert split.dtype == np.int32
    np.testing.assert_array_equal(np.unique(split), [0, 1, 2])
    np.testing.assert_array_equal(split > 0, mask)    # within the mask, all of it
    left, right = split[20, 20], split[20, 36]
    assert left != right and left > 0 and right > 0
    # the cut lies at the waist, column 28
    assert (split[:, :27][mask[:, :27]] == left).all()
    assert (split[:, 30:][mask[:, 30:]] == right).all()
    areas = np.bincount(split.ravel())[1:]
    assert abs(int(areas[0]) - int(areas[1])) <= mask[:, 28].sum()   # at most the waist column


def test_split_touching_leaves_one_disk_whole_and_empty_mask():
    one = _disks((30, 30), [(15, 15)], 8)
    split = split_touching(one, min_distance=5)
    np.testing.assert_array_equal(split, one.astype(np.int32))
    assert not split_touching(np.zeros((5, 5), bool)).any()


def test_watershed_markers_seeds_every_component():
    mask = np.zeros((10, 20), bool)
    mask[2:8, 2:8] = True          # a square: flat top -> may have no strict peak
    mask[4:6, 12:18] = True        # a 2-px-thick bar: flat ridge
    distance, peaks = watershed_markers(mask, min_distance=3)
    assert distance.shape == mask.shape
    components = label_objects(mask)
    assert set(components[tuple(peaks.T)]) == {1, 2}


def test_assign_cells_nearest_connected_nucleus():
    nuclei = np.array([[1, 1, 0, 0, 0, 0, 0, 0, 2, 2]], np.int32)
    cell = np.ones((1, 10), bool)
    cells = assign_cells(nuclei, cell)
    np.testing.assert_array_equal(cells, [[1, 1, 1, 1, 1, 2, 2, 2, 2, 2]])


def test_assign_cells_never_across_background():
    #             nucleus 1 | bg | cytoplasm closer to 1 ... connected only to nucleus 2
    nuclei = np.array([[1, 0, 0, 0, 0, 0, 0, 2]], np.int32)
    cell = np.array([[1, 0, 1, 1, 1, 1, 1, 1]], bool)
    cells = assign_cells(nuclei, cell)
    np.testing.assert_array_equal(cells, [[1, 0, 2, 2, 2, 2, 2, 2]])
    # cytoplasm with no nucleus in its region stays 0
    nuclei = np.array([[1, 0, 0, 0]], np.int32)
    cell = np.array([[1, 0, 1, 1]], bool)
    np.testing.assert_array_equal(assign_cells(nuclei, cell), [[1, 0, 0, 0]])
    assert not assign_cells(np.zeros((3, 3), np.int32), np.ones((3, 3), bool)).any()


def test_instance_functions_do_not_modify_input():
    mask = _disks((40, 60), [(20, 20), (20, 36)], 10)
    m0 = mask.copy()
    split_touching(mask)
    watershed_markers(mask)
    label_objects(mask)
    np.testing.assert_array_equal(mask, m0)
    labels = np.array([[3, 3, 0, 7]], np.int32)
    filter_by_size(labels, 2)
    np.testing.assert_array_equal(labels, [[3, 3, 0, 7]])


def test_assign_cells_does_not_modify_input():
    nuclei = np.array([[1, 0, 0, 2]], np.int32)
    cell = np.ones((1, 4), bool)
    n0, c0 = nuclei.copy(), cell.copy()
    assign_cells(nuclei, cell)
    np.testing.assert_array_equal(nuclei, n0)
    np.testing.assert_array_equal(cell, c0)


# --- object table on a hand-made two-cell image ----------------------------------------
# cell A (left): nucleus 2x2 = 4 px, cytoplasm 8 px -> N/C 0.5
# cell B (right): nucleus 1x3 = 3 px, cytoplasm 12 px -> N/C 1/4
TWO_CELLS = np.array([
    [1, 1, 1, 1, 0, 1, 1, 1, 1, 1],
    [1, 2, 2, 1, 0, 1, 2, 2, 2, 1],
    [1, 2, 2, 1, 0, 1, 1, 1, 1, 1],
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
], np.uint8)


def test_object_table_two_cells_by_hand():
    nuclei = label_objects(TWO_CELLS == 2)
    cells = assign_cells(nuclei, TWO_CELLS > 0)
    intensity = np.where(TWO_CELLS == 2, 0.2, 0.7).astype(np.float32)
    intensity[1, 6] = 0.5
    table = object_table(nuclei, cells, TWO_CELLS, intensity)
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == OBJECT_COLUMNS
    assert OBJECT_COLUMNS[:1] == ["label"] and {"centroid_row", "centroid_col", "mean_intensity",
                                                "equivalent_diameter", "eccentricity",
                                                "solidity"} <= set(OBJECT_COLUMNS)
    a = table.set_index("label").loc[nuclei[1, 1]]
    b = table.set_index("label").loc[nuclei[1, 6]]
    assert (a.nucleus_area, a.cytoplasm_area, a.cell_area) == (4, 8, 12)
    assert (b.nucleus_area, b.cytoplasm_area, b.cell_area) == (3, 12, 15)
    assert a.nc_ratio == pytest.approx(0.5) and b.nc_ratio == pytest.approx(1 / 4)
    assert (a.centroid_row, a.centroid_col) == pytest.approx((1.5, 1.5))
    assert (b.centroid_row, b.centroid_col) == pytest.approx((1.0, 7.0))
    assert a.mean_intensity == pytest.approx(0.2)
    assert b.mean_intensity == pytest.approx((0.5 + 0.2 + 0.2) / 3)
    assert a.equivalent_diameter == pytest.approx(math.sqrt(4 * 4 / math.pi))
    assert a.eccentricity == pytest.approx(0.0) and a.solidity == pytest.approx(1.0)
    assert b.solidity == pytest.approx(1.0) and b.eccentricity > 0.9


def test_object_table_nucleus_without_cytoplasm_and_empty():
    labels = np.array([[2, 2, 0, 1, 2]], np.uint8)
    nuclei = label_objects(labels == 2)
    cells = assign_cells(nuclei, labels > 0)
    table = object_table(nuclei, cells, labels, labels.astype(float))
    first = table.set_index("label").loc[nuclei[0, 0]]
    assert first.cytoplasm_area == 0 and math.isnan(first.nc_ratio)
    last = table.set_index("label").loc[nuclei[0, 4]]
    assert last.cytoplasm_area == 1 and last.nc_ratio == 1.0
    empty = object_table(np.zeros((2, 2), np.int32), np.zeros((2, 2), np.int32),
                         np.zeros((2, 2), np.uint8), np.zeros((2, 2)))
    assert list(empty.columns) == OBJECT_COLUMNS and len(empty) == 0


def test_image_summary_by_hand():
    nuclei = label_objects(TWO_CELLS == 2)
    s = image_summary(TWO_CELLS, nuclei)
    assert s == {"background_area": 13, "cytoplasm_area": 20, "nucleus_area": 7,
                 "nc_ratio": pytest.approx(7 / 20), "nucleus_cell_ratio": pytest.approx(7 / 27),
                 "n_nuclei": 2}
    full = np.ones((2, 2), np.int32)
    assert image_summary(np.full((2, 2), 2, np.uint8), full)["n_nuclei"] == 1
    assert math.isnan(image_summary(np.zeros((2, 2), np.uint8),
                                    np.zeros((2, 2), np.int32))["nc_ratio"])
