"""Bounded work (issue 21): the vectorised object table equals scikit-image's, and an
image with absurdly many objects gets a message, not a stall (engine; the CLI side is
in test_cli_bounded.py)."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi
from skimage.measure import regionprops_table

from cellseg_core.data.demo import demo_datasets
from cellseg_core.instances import TooManyMarkers, label_objects, split_touching, watershed_markers
from cellseg_core.io import read_image
from cellseg_core.measure import (DEFAULT_MAX_OBJECTS, HULL_MAX_OBJECTS, OBJECT_COLUMNS,
                                  REGION_COLUMNS, max_objects, object_table, region_stats,
                                  solidity, too_many_objects)
from cellseg_core.nuclear import CELL_COLUMNS
from cellseg_core.pipeline import segment
from cellseg_core.presets import get_preset
from cellseg_core.data.synthetic import fluorescence_set

# --- the reference: the regionprops-based table the engine used before -------------------
_PROPS = ("label", "area", "centroid", "intensity_mean", "equivalent_diameter_area",
          "eccentricity", "solidity")
_RENAME = {"centroid-0": "centroid_row", "centroid-1": "centroid_col",
           "intensity_mean": "mean_intensity", "equivalent_diameter_area": "equivalent_diameter",
           "area": "nucleus_area"}


def regionprops_object_table(nuclei, cells, labels, intensity) -> pd.DataFrame:
    """measure.object_table as it was (scikit-image regionprops_table, per object)."""
    if not nuclei.any():
        return pd.DataFrame({c: pd.Series(dtype=float) for c in OBJECT_COLUMNS})
    table = pd.DataFrame(regionprops_table(nuclei, intensity_image=intensity,
                                           properties=_PROPS)).rename(columns=_RENAME)
    ids = table["label"].to_numpy()
    cytoplasm = np.bincount(cells[labels == 1].ravel(), minlength=int(nuclei.max()) + 1)[ids]
    table["cytoplasm_area"] = cytoplasm
    table["cell_area"] = table["nucleus_area"] + cytoplasm
    with np.errstate(divide="ignore", invalid="ignore"):
        table["nc_ratio"] = np.where(cytoplasm > 0,
                                     table["nucleus_area"] / np.maximum(cytoplasm, 1), np.nan)
    table["nucleus_cell_ratio"] = table["nucleus_area"] / table["cell_area"]
    return table[OBJECT_COLUMNS]


# Exact up to rounding for counts and centroids; moments (eigenvalues of a 2x2 tensor)
# 1e-6; the mean intensity differs by float32 summation in regionprops (~1e-7).
_TOLERANCE = {"label": 0, "nucleus_area": 0, "cytoplasm_area": 0, "cell_area": 0,
              "nc_ratio": 1e-12, "nucleus_cell_ratio": 1e-12, "centroid_row": 1e-9, "centroid_col": 1e-9,
              "mean_intensity": 1e-6, "equivalent_diameter": 1e-9, "eccentricity": 1e-6,
              "solidity": 1e-12}


def assert_tables_equal(new: pd.DataFrame, old: pd.DataFrame, where: str) -> None:
    assert list(new.columns) == list(old.columns) == OBJECT_COLUMNS, where
    assert len(new) == len(old), where
    assert (new.dtypes == old.dtypes).all(), (where, new.dtypes, old.dtypes)
    for column, tol in _TOLERANCE.items():
        a, b = new[column].to_numpy(float), old[column].to_numpy(float)
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=f"{where} {column}")
        np.testing.assert_allclose(a, b, rtol=0, atol=tol, err_msg=f"{where} {column}")


def _compare(seg, where):
    new = seg.objects[OBJECT_COLUMNS]  # the nuclear features are tested in test_ratios_features
    old = regionprops_object_table(seg.nuclei, seg.cells, seg.labels, seg.channel)
    assert_tables_equal(new, old, where)
    return len(new)


# --- the table equals regionprops' --------------------------------------------------------
@pytest.mark.parametrize("preset", ["lab02", "lab03v2", "auto-cytology"])
def test_object_table_equals_regionprops_on_voced(voced, preset):
    paths = sorted((voced / "images").glob("*.png"))[::25]  # 8 images across the set
    n = sum(_compare(segment(read_image(p), get_preset(preset)), f"{p.name} {preset}")
            for p in paths)
    assert n > 8  # real objects were compared


@pytest.mark.slow
def test_object_table_equals_regionprops_on_all_voced(voced):
    n = 0
    for path in sorted((voced / "images").glob("*.png")):
        image = read_image(path)
        for preset in ("lab02", "lab03v2", "auto-cytology"):
            n += _compare(segment(image, get_preset(preset)), f"{path.name} {preset}")
    assert n > 600


def test_object_table_equals_regionprops_on_demo_and_synthetic():
    n = 0
    for name, dataset in demo_datasets().items():
        for ident in list(dataset.ids)[:6]:
            for preset in ("lab03v2", "auto-fluorescence"):
                n += _compare(segment(dataset.image(ident), get_preset(preset)),
                              f"{name} {ident} {preset}")
    for k, sample in enumerate(fluorescence_set(4)):
        n += _compare(segment(sample.image, get_preset("auto-fluorescence")), f"fluo {k}")
    assert n > 50


def _odd_labels():
    """Hand-made labels: gaps in the ids, diagonal neighbours, holes, one-pixel objects."""
    labels = np.zeros((40, 50), np.int32)
    labels[2:12, 3:20] = 7
    labels[5:8, 8:12] = 0  # a hole
    labels[15, 15] = 3  # one pixel
    labels[20:30, 20:22] = 12  # a thin bar (eccentricity near 1)
    for k in range(6):  # a diagonal staircase, one object
        labels[31 + k, 30 + k] = 40
    labels[33:39, 2:10] = ndi.binary_dilation(np.eye(6, 8, dtype=bool)) * 41
    labels[0, 49] = 5
    return labels


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint16, np.uint64])
def test_region_stats_equals_regionprops_on_hand_made_labels(dtype):
    labels = _odd_labels().astype(dtype)
    intensity = np.random.default_rng(1).random(labels.shape)
    ref = pd.DataFrame(regionprops_table(
        labels, intensity_image=intensity,
        properties=("label", "area", "centroid", "bbox", "intensity_mean", "intensity_min",
                    "intensity_max", "equivalent_diameter_area", "axis_major_length",
                    "axis_minor_length", "eccentricity")))
    got = region_stats(labels, intensity)
    assert list(got.columns) == REGION_COLUMNS
    names = {"area": "area", "centroid-0": "centroid_row", "centroid-1": "centroid_col",
             "bbox-0": "bbox_min_row", "bbox-1": "bbox_min_col", "bbox-2": "bbox_max_row",
             "bbox-3": "bbox_max_col", "intensity_mean": "mean_intensity",
             "intensity_min": "min_intensity", "intensity_max": "max_intensity",
             "equivalent_diameter_area": "equivalent_diameter",
             "axis_major_length": "major_axis_length", "axis_minor_length": "minor_axis_length",
             "eccentricity": "eccentricity"}
    assert got["label"].tolist() == [3, 5, 7, 12, 40, 41]
    for theirs, ours in names.items():
        np.testing.assert_allclose(got[ours], ref[theirs], rtol=0, atol=1e-9, err_msg=ours)
    # Solidity as regionprops computes it, for every object
    values, note = solidity(labels, got)
    np.testing.assert_array_equal(
        values, regionprops_table(labels, properties=("solidity",))["solidity"])
    assert note is None


def test_region_stats_huge_label_values_and_no_intensity():
    labels = np.zeros((6, 6), np.int64)
    labels[1:3, 1:3] = 2**40
    labels[4, 4] = 9
    table = region_stats(labels)
    assert table["label"].tolist() == [9, 2**40]
    assert table["area"].tolist() == [1.0, 4.0]
    assert table["mean_intensity"].isna().all()


def test_region_stats_rejects_bad_input():
    with pytest.raises(TypeError, match="`label_image` must be an integer array, got float64"):
        region_stats(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="must not hold negative labels"):
        region_stats(-np.ones((3, 3), int))
    with pytest.raises(ValueError, match=r"`intensity` \(shape \(2, 2\)\) must have the same"):
        region_stats(np.ones((3, 3), int), np.ones((2, 2)))


def test_region_stats_blocks_join_up(monkeypatch):
    """Objects spanning several row blocks get the same numbers as in one block."""
    from cellseg_core import measure

    labels = label_objects(np.random.default_rng(2).random((90, 70)) > 0.4)
    intensity = np.random.default_rng(3).random(labels.shape)
    whole = region_stats(labels, intensity)
    monkeypatch.setattr(measure, "_BLOCK_PIXELS", 7 * 70)  # blocks of 7 rows
    pd.testing.assert_frame_equal(region_stats(labels, intensity), whole, rtol=1e-12)


def test_solidity_only_for_the_largest_objects():
    labels = np.zeros((30, 60), np.int32)
    for k in range(10):  # objects of growing size: k + 1 pixels in a column, plus an arm
        labels[2:3 + k, 3 + 5 * k] = k + 1
        labels[2 + k, 4 + 5 * k] = k + 1
    intensity = np.ones(labels.shape)
    cells = labels.copy()
    table = object_table(labels, cells, (labels > 0).astype(np.uint8) * 2, intensity,
                         hull_limit=3)
    ref = regionprops_table(labels, properties=("label", "solidity"))["solidity"]
    largest = table["nucleus_area"].to_numpy() >= 9
    assert largest.sum() == 3
    np.testing.assert_array_equal(table["solidity"][largest], ref[largest])
    assert table["solidity"][~largest].isna().all()
    assert table.attrs["warnings"] == ("solidity (a convex hull per object) computed for the "
                                       "3 largest of 10 objects; NaN for the others",)
    assert object_table(labels, cells, labels.astype(np.uint8), intensity).attrs["warnings"] == ()


def test_vectorised_stats_are_fast_on_half_a_million_objects():
    """Checkerboard of 1-px objects: 500,000 rows, no per-object Python."""
    rows, cols = np.indices((1000, 1000))
    labels = label_objects((rows + cols) % 2 == 0)
    assert labels.max() == 500_000
    start = time.perf_counter()
    stats = region_stats(labels, np.ones(labels.shape, np.float32))
    seconds = time.perf_counter() - start
    assert len(stats) == 500_000 and (stats["area"] == 1).all()
    assert (stats["eccentricity"] == 0).all() and (stats["mean_intensity"] == 1).all()
    assert seconds < 10, seconds  # regionprops: minutes


# --- the object ceiling ---------------------------------------------------------------------
def _noise(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, n, 3), dtype=np.uint8)


def test_ceiling_message_names_the_count():
    assert too_many_objects(505_795, 20_000) == (
        "this segmentation has 505,795 objects — probably noise or the wrong preset; "
        "per-object measurements are off (limit 20,000, set CELLSEG_MAX_OBJECTS to change it)")
    assert too_many_objects(20_000, 20_000) is None


def test_max_objects_from_environment(monkeypatch):
    monkeypatch.delenv("CELLSEG_MAX_OBJECTS", raising=False)
    assert max_objects() == DEFAULT_MAX_OBJECTS == 20_000
    monkeypatch.setenv("CELLSEG_MAX_OBJECTS", "123")
    assert max_objects() == 123
    for bad in ("0", "-5", "lots"):
        monkeypatch.setenv("CELLSEG_MAX_OBJECTS", bad)
        with pytest.raises(ValueError, match=f"CELLSEG_MAX_OBJECTS must be a positive "
                                             f"integer, got '{bad}'"):
            max_objects()


def test_segment_above_the_ceiling_turns_measurements_off(monkeypatch):
    monkeypatch.setenv("CELLSEG_MAX_OBJECTS", "500")
    start = time.perf_counter()
    seg = segment(_noise(300), get_preset("lab02"))
    n = int(seg.nuclei.max())
    assert n > 10_000  # a bomb: one-pixel "nuclei"
    assert seg.warnings == (f"this segmentation has {n:,} objects — probably noise or the "
                            "wrong preset; per-object measurements are off (limit 500, set "
                            "CELLSEG_MAX_OBJECTS to change it)",)
    assert list(seg.objects.columns) == CELL_COLUMNS and len(seg.objects) == 0
    assert seg.summary["n_nuclei"] == n  # the per-image numbers are still there
    assert time.perf_counter() - start < 10
    # The keyword wins over the environment; below the ceiling the table is complete.
    seg = segment(_noise(300), get_preset("lab02"), max_objects=10**6)
    assert seg.warnings == ()  # cheap: the table is not computed to answer
    assert len(seg.objects) == n
    assert seg.warnings == (f"solidity (a convex hull per object) computed for the "
                            f"{HULL_MAX_OBJECTS:,} largest of {n:,} objects; NaN for the others",)
    with pytest.raises(ValueError, match="`max_objects` must be a positive integer, got 0"):
        segment(_noise(10), max_objects=0)


def test_normal_image_has_no_warning(voced_image_path):
    seg = segment(read_image(voced_image_path), get_preset("lab03v2"))
    assert len(seg.objects) == seg.summary["n_nuclei"] > 0
    assert seg.warnings == ()


# --- the marker ceiling ---------------------------------------------------------------------
def _disks(centres, radius=6, shape=(40, 80)):
    rows, cols = np.indices(shape)
    return np.any([(rows - r) ** 2 + (cols - c) ** 2 <= radius ** 2 for r, c in centres], axis=0)


def test_marker_ceiling_before_the_peak_search():
    mask = _disks([(10, 10 + 15 * k) for k in range(5)], radius=5)  # 5 separate disks
    with pytest.raises(TooManyMarkers, match=r"watershed split skipped: at least 5 seeds "
                                             r"\(limit 4\) — probably noise or the wrong preset"):
        split_touching(mask, max_markers=4)
    assert split_touching(mask, max_markers=5).max() == 5
    np.testing.assert_array_equal(split_touching(mask, max_markers=5), split_touching(mask))


def test_marker_ceiling_after_the_peak_search():
    mask = _disks([(20, 12), (20, 24), (20, 36)])  # one component, three touching disks
    assert label_objects(mask).max() == 1
    assert len(watershed_markers(mask, min_distance=5)[1]) == 3
    with pytest.raises(TooManyMarkers, match=r"skipped: 3 seeds \(limit 2\)") as err:
        watershed_markers(mask, min_distance=5, max_markers=2)
    assert (err.value.n_markers, err.value.limit) == (3, 2)
    assert isinstance(err.value, ValueError)


def test_pipeline_skips_the_watershed_with_a_warning():
    image = _disks([(20, 30), (20, 42)], radius=8).astype(np.float32) * 0.8 + 0.1
    # The fixed pipeline's watershed (the automatic one sizes its seeds from the nuclei).
    params = get_preset("auto-fluorescence").with_values({"auto.kind": "off"})
    assert segment(image, params).nuclei.max() == 2  # the watershed splits the pair
    capped = segment(image, params, max_objects=1)
    assert capped.notes == ("watershed split skipped: 2 seeds (limit 1) — probably noise or "
                            "the wrong preset; touching nuclei are left joined",)
    assert capped.warnings == capped.notes
    assert capped.nuclei.max() == 1 and len(capped.objects) == 1  # as without the split
