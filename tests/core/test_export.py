"""Exports (cellseg_core.export): GeoJSON valid against the GeoJSON schema and filled back
into the same pixels, shapely polygons with the pixel areas, ImageJ ROIs read back with
roifile to the same outlines, 0/255 masks, label TIFFs with their pixel size."""
from __future__ import annotations

import io
import json
import zipfile

import jsonschema
import numpy as np
import pandas as pd
import pytest
import roifile
import tifffile
from PIL import Image
from shapely.geometry import Polygon, box, shape
from skimage.draw import polygon as fill_polygon
from skimage.measure import label as sk_label

from cellseg_core import read_mask
from cellseg_core.data.datasets import Dataset
from cellseg_core.export import (BINARY_CLASSES, EXPORTS, binary_masks, binary_masks_zip,
                                 geojson_bytes, geojson_to_labels, object_polygons,
                                 png_bytes, polygon_area, to_geojson, to_imagej_rois,
                                 write_exports)
from cellseg_core.instances import assign_cells
from cellseg_core.io import tiff_bytes, write_label_tiff
from cellseg_core.measure import object_table

# The GeoJSON schema (RFC 7946, the geometry types these exports use), written for
# jsonschema: positions of >= 2 numbers, linear rings of >= 4 positions, Features with
# type / properties / geometry, FeatureCollections of Features.
_POSITION = {"type": "array", "minItems": 2, "items": {"type": "number"}}
_RING = {"type": "array", "minItems": 4, "items": {"$ref": "#/$defs/position"}}
GEOJSON_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$defs": {
        "position": _POSITION,
        "ring": _RING,
        "bbox": {"type": "array", "minItems": 4, "items": {"type": "number"}},
        "polygon": {
            "type": "object", "required": ["type", "coordinates"],
            "properties": {"type": {"const": "Polygon"},
                           "coordinates": {"type": "array", "items": {"$ref": "#/$defs/ring"}},
                           "bbox": {"$ref": "#/$defs/bbox"}}},
        "multipolygon": {
            "type": "object", "required": ["type", "coordinates"],
            "properties": {"type": {"const": "MultiPolygon"},
                           "coordinates": {"type": "array", "items": {
                               "type": "array", "items": {"$ref": "#/$defs/ring"}}},
                           "bbox": {"$ref": "#/$defs/bbox"}}},
        "geometry": {"oneOf": [{"type": "null"}, {"$ref": "#/$defs/polygon"},
                               {"$ref": "#/$defs/multipolygon"}]},
        "feature": {
            "type": "object", "required": ["type", "properties", "geometry"],
            "properties": {"type": {"const": "Feature"},
                           "id": {"type": ["string", "number"]},
                           "properties": {"type": ["object", "null"]},
                           "geometry": {"$ref": "#/$defs/geometry"}}},
    },
    "type": "object", "required": ["type", "features"],
    "properties": {"type": {"const": "FeatureCollection"},
                   "features": {"type": "array", "items": {"$ref": "#/$defs/feature"}}},
}


def validate(collection: dict) -> None:
    """Schema-valid, closed rings, and plain JSON (no NaN) once written."""
    jsonschema.validate(collection, GEOJSON_SCHEMA)
    for feature in collection["features"]:
        for key in ("geometry", "nucleusGeometry"):
            if key in feature:
                jsonschema.validate(feature[key], {**GEOJSON_SCHEMA["$defs"]["geometry"],
                                                   "$defs": GEOJSON_SCHEMA["$defs"]})
                polygons = (feature[key]["coordinates"] if feature[key]["type"] == "MultiPolygon"
                            else [feature[key]["coordinates"]])
                for polygon in polygons:
                    for ring in polygon:
                        assert ring[0] == ring[-1]
    json.loads(geojson_bytes(collection))


def toy():
    """Two cells with a nucleus each; cell 2 has a background hole in its cytoplasm."""
    labels = np.zeros((12, 16), np.uint8)
    labels[1:6, 1:7] = 1
    labels[2:4, 2:5] = 2          # nucleus 1: 2 x 3 = 6 px
    labels[3:11, 8:15] = 1
    labels[5:8, 9:11] = 2         # nucleus 2: 3 x 2 = 6 px
    labels[8, 12] = 0             # a hole in cell 2's cytoplasm
    nuclei = np.zeros(labels.shape, np.int32)
    nuclei[2:4, 2:5] = 1
    nuclei[5:8, 9:11] = 2
    return labels, nuclei


def _by_label(collection, kind):
    return {int(f["properties"]["metadata"]["cellseg_label"]): f
            for f in collection["features"] if f["properties"]["objectType"] == kind}


def test_geojson_cells_with_nuclei_schema_areas_and_exact_polygons():
    labels, nuclei = toy()
    collection = to_geojson(labels, nuclei, name="toy")
    validate(collection)
    cells = _by_label(collection, "cell")
    assert sorted(cells) == [1, 2] and not _by_label(collection, "detection")
    # Pixel-edge outlines: the nucleus of cell 1 is exactly the box of its 6 pixels
    # (x = column, y = row, origin at the top-left corner of the image).
    assert shape(cells[1]["nucleusGeometry"]).equals(box(2, 2, 5, 4))
    assert shape(cells[1]["geometry"]).equals(box(1, 1, 7, 6))
    # Cell 2 keeps its one-pixel hole: area = pixel count.
    cell2 = shape(cells[2]["geometry"])
    assert cell2.is_valid and len(cell2.interiors) == 1
    assert cell2.area == np.count_nonzero(assign_cells(nuclei, labels > 0) == 2) == 7 * 8 - 1
    assert cell2.equals(box(8, 3, 15, 11).difference(box(12, 8, 13, 9)))
    assert shape(cells[2]["nucleusGeometry"]).area == 6
    assert cells[1]["properties"]["name"] == "1"
    assert collection["cellseg"]["pixel_size_um"] is None


def test_geojson_read_back_identical_labels_and_instances():
    labels, nuclei = toy()
    data = geojson_bytes(to_geojson(labels, nuclei))
    back, back_nuclei, back_cells = geojson_to_labels(data, labels.shape)
    np.testing.assert_array_equal(back, labels)
    np.testing.assert_array_equal(back_nuclei, nuclei)
    np.testing.assert_array_equal(back_cells, assign_cells(nuclei, labels > 0))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("connectivity", [1, 2])
def test_random_objects_polygons_valid_exact_area_and_fill_back(seed, connectivity):
    """Ragged objects with holes, pixels touching at corners (8-connected objects,
    diagonal holes): valid shapely geometry, area = pixels, filled back identically."""
    rng = np.random.default_rng(seed)
    instances = sk_label(rng.random((20, 24)) < 0.55, connectivity=connectivity)
    polygons = object_polygons(instances)
    assert sorted(polygons) == sorted(set(np.unique(instances)) - {0})
    for label, parts in polygons.items():
        geometry = shape({"type": "MultiPolygon",
                          "coordinates": [[ring.tolist() for ring in p] for p in parts]})
        assert geometry.is_valid, label
        assert geometry.area == np.count_nonzero(instances == label)
        assert sum(polygon_area(p) for p in parts) == geometry.area
        for part in parts:  # exterior counter-clockwise in (x, y), holes clockwise
            assert Polygon(part[0]).exterior.is_ccw
    collection = to_geojson(np.where(instances > 0, 2, 0).astype(np.uint8), instances)
    validate(collection)
    _, nuclei, _ = geojson_to_labels(json.loads(geojson_bytes(collection)), instances.shape)
    np.testing.assert_array_equal(nuclei, instances)


def test_fluorescence_nuclei_are_detections_with_their_measurements():
    labels = np.zeros((6, 8), np.uint8)
    labels[1:3, 1:3] = 2
    labels[3:5, 5:8] = 2
    nuclei = sk_label(labels == 2).astype(np.int32)
    table = object_table(nuclei, nuclei, labels, np.full(labels.shape, 0.5))
    collection = to_geojson(labels, nuclei, table)
    validate(collection)
    detections = _by_label(collection, "detection")
    assert sorted(detections) == [1, 2] and not _by_label(collection, "cell")
    assert detections[2]["properties"]["measurements"]["nucleus_area"] == 6
    assert shape(detections[2]["geometry"]).area == 6
    # NaN (no cytoplasm: nc_ratio) is left out, as QuPath reads a missing value.
    assert "nc_ratio" not in detections[1]["properties"]["measurements"]


def test_separate_nuclei_adds_a_detection_per_nucleus():
    labels, nuclei = toy()
    collection = to_geojson(labels, nuclei, separate_nuclei=True)
    assert sorted(_by_label(collection, "cell")) == [1, 2]
    detections = _by_label(collection, "detection")
    assert sorted(detections) == [1, 2]
    assert shape(detections[1]["geometry"]).equals(box(2, 2, 5, 4))


def test_measurements_every_numeric_column_and_classes():
    labels, nuclei = toy()
    table = object_table(nuclei, assign_cells(nuclei, labels > 0), labels,
                         np.linspace(0, 1, labels.size).reshape(labels.shape))
    table["flag_high"] = table["label"] == 2           # a bool column: a 0/1 measurement
    table["class"] = ["tumour", "lymphocyte"]          # text: the classification
    collection = to_geojson(labels, nuclei, table, pixel_size=0.5, name="toy")
    cells = _by_label(collection, "cell")
    for _, row in table.iterrows():
        got = cells[int(row["label"])]["properties"]["measurements"]
        numeric = [c for c in table.columns if c not in ("label", "class")]
        assert set(got) == set(numeric)
        for column in numeric:
            assert got[column] == pytest.approx(float(row[column]))
    assert cells[2]["properties"]["measurements"]["flag_high"] == 1
    assert cells[1]["properties"]["classification"] == {"name": "tumour", "color": [200, 0, 0]}
    assert cells[2]["properties"]["classification"]["name"] == "lymphocyte"
    assert collection["cellseg"]["pixel_size_um"] == 0.5
    # An explicit mapping wins over the table's column; unnamed objects have no class.
    other = _by_label(to_geojson(labels, nuclei, table, classes={2: "stroma"}), "cell")
    assert "classification" not in other[1]["properties"]
    assert other[2]["properties"]["classification"]["name"] == "stroma"
    # Same image, same ids: a re-export replaces objects in QuPath rather than adding.
    again = _by_label(to_geojson(labels, nuclei, table, name="toy"), "cell")
    assert again[1]["id"] == cells[1]["id"] != cells[2]["id"]


def test_geojson_does_not_modify_inputs_and_takes_large_ids():
    labels, nuclei = toy()
    nuclei = nuclei.astype(np.int64) * 1_000_000_007
    before = labels.copy(), nuclei.copy()
    collection = to_geojson(labels, nuclei)
    np.testing.assert_array_equal(labels, before[0])
    np.testing.assert_array_equal(nuclei, before[1])
    assert sorted(_by_label(collection, "cell")) == [1_000_000_007, 2_000_000_014]


def test_geojson_bad_inputs():
    labels, nuclei = toy()
    with pytest.raises(ValueError, match=r"`nuclei_instances` \(shape \(3, 3\)\).*`labels`"):
        to_geojson(labels, np.zeros((3, 3), np.int32))
    with pytest.raises(TypeError, match="`labels` must be an integer array, got float64"):
        to_geojson(labels.astype(float), nuclei)
    with pytest.raises(ValueError, match="`pixel_size` must be a positive"):
        to_geojson(labels, nuclei, pixel_size=0)
    with pytest.raises(ValueError, match="'label' column"):
        to_geojson(labels, nuclei, pd.DataFrame({"area": [1.0]}))
    with pytest.raises(ValueError, match="2 objects.*limit 1"):
        object_polygons(nuclei, limit=1)


def test_object_ceiling_from_the_environment(monkeypatch, tmp_path):
    labels, nuclei = toy()
    monkeypatch.setenv("CELLSEG_MAX_OBJECTS", "1")
    with pytest.raises(ValueError, match="CELLSEG_MAX_OBJECTS"):
        to_geojson(labels, nuclei)
    with pytest.raises(ValueError, match="CELLSEG_MAX_OBJECTS"):
        to_imagej_rois(nuclei)
    # The masks need no outlines: written even above the ceiling.
    with pytest.raises(ValueError, match="CELLSEG_MAX_OBJECTS"):
        write_exports(tmp_path, "toy", ["geojson", "binary"], labels, nuclei)
    assert sorted(p.name for p in (tmp_path / "binary").iterdir()) == [
        "toy_cell.png", "toy_cytoplasm.png", "toy_nucleus.png"]
    assert not (tmp_path / "geojson").exists()


def test_imagej_rois_read_back_with_roifile_to_the_same_outlines(tmp_path):
    labels, nuclei = toy()
    nuclei[9, 2:4] = 7
    nuclei[8, 3] = 7                  # an L-shaped nucleus
    path = tmp_path / "rois.zip"
    path.write_bytes(to_imagej_rois(nuclei))
    rois = roifile.roiread(path)
    assert [r.name for r in rois] == ["1", "2", "7"]
    outlines = object_polygons(nuclei)
    for roi in rois:
        label = int(roi.name)
        assert roi.roitype == roifile.ROI_TYPE.TRACED
        np.testing.assert_array_equal(roi.coordinates(), outlines[label][0][0][:-1])
        # The outline through pixel corners holds exactly the nucleus's pixel centres.
        xy = roi.coordinates().astype(float)
        rr, cc = fill_polygon(xy[:, 1] - 0.5, xy[:, 0] - 0.5, nuclei.shape)
        filled = np.zeros(nuclei.shape, bool)
        filled[rr, cc] = True
        np.testing.assert_array_equal(filled, nuclei == label)
    assert Polygon(rois[2].coordinates()).area == 3


def test_binary_masks_png_and_read_back_as_ground_truth(tmp_path):
    labels, _ = toy()
    masks = binary_masks(labels)
    assert list(masks) == list(BINARY_CLASSES) == ["nucleus", "cytoplasm", "cell"]
    for name, mask in masks.items():
        assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}
    np.testing.assert_array_equal(masks["nucleus"] == 255, labels == 2)
    np.testing.assert_array_equal(masks["cell"] == 255, labels > 0)
    # 0/255 PNGs are accepted as ground truth: 255 -> nucleus (or the class asked for).
    np.testing.assert_array_equal(read_mask(png_bytes(masks["nucleus"])), np.where(labels == 2, 2, 0))
    np.testing.assert_array_equal(read_mask(png_bytes(masks["cytoplasm"]), binary_class=1),
                                  np.where(labels == 1, 1, 0))
    archive = zipfile.ZipFile(io.BytesIO(binary_masks_zip(labels, "toy")))
    assert archive.namelist() == ["toy_nucleus.png", "toy_cytoplasm.png", "toy_cell.png"]
    np.testing.assert_array_equal(np.asarray(Image.open(archive.open("toy_cell.png"))),
                                  masks["cell"])


def test_read_mask_refuses_mixed_binary_and_classes():
    with pytest.raises(ValueError, match=r"0 and 255.*found \[255\]"):
        read_mask(png_bytes(np.array([[0, 1, 255]], np.uint8)))
    with pytest.raises(ValueError, match="`binary_class` must be 1"):
        read_mask(png_bytes(np.array([[0, 255]], np.uint8)), binary_class=3)


def test_dataset_folder_with_binary_masks(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.full((4, 5), 128, np.uint8)).save(tmp_path / "images" / "a.png")
    truth = np.zeros((4, 5), np.uint8)
    truth[1:3, 1:4] = 255
    Image.fromarray(truth).save(tmp_path / "masks" / "a.png")
    dataset = Dataset.from_folder(tmp_path)
    np.testing.assert_array_equal(dataset.mask("a"), np.where(truth == 255, 2, 0))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32])
def test_label_tiff_carries_the_pixel_size(tmp_path, dtype):
    labels = np.arange(12, dtype=dtype).reshape(3, 4)
    path = write_label_tiff(tmp_path / "labels.tif", labels, pixel_size=0.25)
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        np.testing.assert_array_equal(page.asarray(), labels)
        assert page.tags["ResolutionUnit"].value == tifffile.RESUNIT.CENTIMETER
        for tag in ("XResolution", "YResolution"):
            numerator, denominator = page.tags[tag].value
            assert 1e4 * denominator / numerator == pytest.approx(0.25)  # µm per pixel
    # Without a pixel size: the bytes the batch always wrote.
    assert tiff_bytes(labels) == tiff_bytes(labels, pixel_size=None)
    with pytest.raises(ValueError, match="`pixel_size` must be a positive"):
        tiff_bytes(labels, pixel_size=-1.0)


def test_write_exports_files_read_back(tmp_path):
    labels, nuclei = toy()
    written = write_exports(tmp_path, "toy", ["geojson", "imagej", "binary"], labels, nuclei)
    names = sorted(p.relative_to(tmp_path).as_posix() for p in written)
    assert names == ["binary/toy_cell.png", "binary/toy_cytoplasm.png", "binary/toy_nucleus.png",
                     "geojson/toy.geojson", "rois/toy.zip"]
    assert set(EXPORTS) == {"geojson", "imagej", "binary"}
    back, _, _ = geojson_to_labels((tmp_path / "geojson/toy.geojson").read_bytes(), labels.shape)
    np.testing.assert_array_equal(back, labels)
    assert [r.name for r in roifile.roiread(tmp_path / "rois/toy.zip")] == ["1", "2"]
    np.testing.assert_array_equal(read_mask(tmp_path / "binary/toy_nucleus.png"),
                                  np.where(labels == 2, 2, 0))
    with pytest.raises(ValueError, match=r"unknown export\(s\) \['svg'\]; choose from geojson"):
        write_exports(tmp_path, "toy", ["svg"], labels, nuclei)
