"""Pixel size: read from TIFF metadata and dataset.json, written back, areas in µm²."""
import io
import json
import math

import numpy as np
import pandas as pd
import pytest
import tifffile

from cellseg_core.io import read_instances, tiff_bytes, write_tiff
from cellseg_core.units import (check_pixel_size, dataset_pixel_size, read_pixel_size,
                                resolve_pixel_size, with_units)

LABELS = np.array([[0, 1, 1, 2],
                   [0, 1, 2, 2]], np.uint8)


def _tiff(**kwargs) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.zeros((6, 5), np.uint8), **kwargs)
    return buf.getvalue()


@pytest.mark.parametrize("pixel_size", [0.25, 0.3215, 1.0, 2.5])
def test_label_tiff_round_trips_pixel_size_and_area(tmp_path, pixel_size):
    path = write_tiff(tmp_path / "labels.tif", LABELS, pixel_size=pixel_size)
    labels = read_instances(path)
    np.testing.assert_array_equal(labels, LABELS)
    found = read_pixel_size(path)
    assert found == pytest.approx(pixel_size, rel=1e-9)
    # Same µm² from the original value and from the value read back.
    table = pd.DataFrame({"nucleus_area": [float((labels == 2).sum())]})
    assert with_units(table, found)["nucleus_area_um2"][0] == pytest.approx(
        3 * pixel_size ** 2, rel=1e-9)


def test_tiff_without_pixel_size_reads_none_and_keeps_bytes():
    assert read_pixel_size(tiff_bytes(LABELS)) is None
    assert tiff_bytes(LABELS) == tiff_bytes(LABELS, pixel_size=None)
    assert tiff_bytes(LABELS, pixel_size=0.5) != tiff_bytes(LABELS)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_tiff_bytes_refuses_bad_pixel_size(bad):
    with pytest.raises(ValueError, match="pixel_size"):
        tiff_bytes(LABELS, pixel_size=bad)


def test_ome_tiff_physical_size_with_units():
    data = _tiff(ome=True, metadata={"PhysicalSizeX": 0.3, "PhysicalSizeY": 0.3,
                                     "PhysicalSizeXUnit": "µm", "PhysicalSizeYUnit": "µm"})
    assert read_pixel_size(data) == pytest.approx(0.3)
    nm = _tiff(ome=True, metadata={"PhysicalSizeX": 250, "PhysicalSizeY": 250,
                                   "PhysicalSizeXUnit": "nm", "PhysicalSizeYUnit": "nm"})
    assert read_pixel_size(nm) == pytest.approx(0.25)


def test_anisotropic_pixels_keep_the_area():
    data = _tiff(ome=True, metadata={"PhysicalSizeX": 0.2, "PhysicalSizeY": 0.8})
    assert read_pixel_size(data) ** 2 == pytest.approx(0.2 * 0.8)


def test_imagej_tiff_unit_and_resolution():
    data = _tiff(imagej=True, resolution=(1 / 0.5, 1 / 0.5), metadata={"unit": "micron"})
    assert read_pixel_size(data) == pytest.approx(0.5)
    mm = _tiff(imagej=True, resolution=(1 / 0.0004, 1 / 0.0004), metadata={"unit": "mm"})
    assert read_pixel_size(mm) == pytest.approx(0.4)


def test_resolution_tags_in_inches():
    data = _tiff(resolution=(25_400 / 0.5, 25_400 / 0.5), resolutionunit="INCH")
    assert read_pixel_size(data) == pytest.approx(0.5)


@pytest.mark.parametrize("dpi", [72, 96, 300])
def test_editor_dpi_defaults_are_not_a_pixel_size(dpi):
    assert read_pixel_size(_tiff(resolution=(dpi, dpi), resolutionunit="INCH")) is None


def test_tiff_resolution_without_unit_is_no_pixel_size():
    assert read_pixel_size(_tiff(resolution=(2.0, 2.0), resolutionunit="NONE")) is None


def test_non_tiff_files_have_no_pixel_size(tmp_path):
    buf = io.BytesIO()
    np.save(buf, np.zeros((3, 4), np.float32))
    assert read_pixel_size(buf.getvalue()) is None
    assert read_pixel_size(b"\x89PNG\r\n\x1a\n garbage") is None
    assert read_pixel_size(b"II*\x00 broken tiff") is None


def test_dataset_json(tmp_path):
    assert dataset_pixel_size(tmp_path) is None
    (tmp_path / "dataset.json").write_text(json.dumps({"pixel_size_um": 0.65}))
    assert dataset_pixel_size(tmp_path) == 0.65
    (tmp_path / "dataset.json").write_text(json.dumps({"pixel_size_um": -2}))
    with pytest.raises(ValueError, match="pixel_size_um"):
        dataset_pixel_size(tmp_path)
    (tmp_path / "dataset.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        dataset_pixel_size(tmp_path)


def test_user_value_wins_then_dataset_then_file():
    assert resolve_pixel_size(0.1, 0.2, 0.3) == (0.1, "user")
    assert resolve_pixel_size(None, 0.2, 0.3) == (0.2, "dataset.json")
    assert resolve_pixel_size(0, None, 0.3) == (0.3, "image file")
    assert resolve_pixel_size(None, None, None) == (None, "unknown")


@pytest.mark.parametrize("bad", [-0.5, "abc", float("nan")])
def test_check_pixel_size_errors_name_the_argument(bad):
    with pytest.raises(ValueError, match="`pixel_size`"):
        check_pixel_size(bad)


def test_with_units_adds_twins_in_place_and_nan_without_size():
    table = pd.DataFrame({"label": [1, 2], "nucleus_area": [4.0, 10.0],
                          "cell_area": [8, 20], "equivalent_diameter": [2.0, 3.0],
                          "nc_ratio": [1.0, 1.0]})
    out = with_units(table, 0.5)
    assert list(out.columns) == ["label", "nucleus_area", "nucleus_area_um2", "cell_area",
                                 "cell_area_um2", "equivalent_diameter",
                                 "equivalent_diameter_um", "nc_ratio"]
    assert out["nucleus_area_um2"].tolist() == [1.0, 2.5]
    assert out["cell_area_um2"].tolist() == [2.0, 5.0]
    assert out["equivalent_diameter_um"].tolist() == [1.0, 1.5]
    bare = with_units(table, None)
    assert list(bare.columns) == list(out.columns)
    assert bare["nucleus_area_um2"].isna().all()
    assert list(table.columns) == ["label", "nucleus_area", "cell_area",
                                   "equivalent_diameter", "nc_ratio"]  # input unchanged
    assert math.isnan(with_units(table, 0)["cell_area_um2"][0])
