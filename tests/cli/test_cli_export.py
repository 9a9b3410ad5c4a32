"""`cellseg segment --export ... --report`: extra files written beside the run's, read back
with the tools' own readers (json + the GeoJSON fill, roifile, the mask reader), and the
run's own files unchanged."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import roifile
from PIL import Image
from shapely.geometry import shape

from cellseg_core.cli import main
from cellseg_core.export import geojson_to_labels, object_polygons
from cellseg_core.instances import assign_cells
from cellseg_core.io import read_instances, read_mask
from tests._support.toys import toy_set

STEMS = ["a", "b"]
RUN_FILES = ["images.csv", "objects.csv", "params.json", "labels/a.tif", "labels/b.tif",
             "nuclei/a.tif", "nuclei/b.tif"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Two 96 x 96 images of four toy cells each, with 0/255 nucleus masks as ground truth."""
    root = tmp_path_factory.mktemp("data")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    images, masks = toy_set(8, 48, seed=3)
    for k, stem in enumerate(STEMS):
        tiles = images[4 * k:4 * k + 4]
        image = np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])])
        mask = np.vstack([np.hstack(masks[4 * k:4 * k + 2]), np.hstack(masks[4 * k + 2:4 * k + 4])])
        Image.fromarray((image * 255 + 0.5).astype(np.uint8)).save(root / "images" / f"{stem}.png")
        Image.fromarray(np.where(mask == 2, 255, 0).astype(np.uint8)).save(root / "masks" / f"{stem}.png")
    return root


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory):
    """The same run without and with every export and the report."""
    plain = tmp_path_factory.mktemp("plain") / "out"
    full = tmp_path_factory.mktemp("full") / "out"
    assert main(["segment", str(data), "--preset", "lab01", "--out", str(plain)]) == 0
    assert main(["segment", str(data), "--preset", "lab01", "--out", str(full),
                 "--export", "geojson,imagej,binary", "--report"]) == 0
    return plain, full


def test_exports_leave_the_run_files_unchanged(runs):
    plain, full = runs
    for name in RUN_FILES:
        assert (plain / name).read_bytes() == (full / name).read_bytes(), name
    extra = sorted(p.relative_to(full).as_posix() for p in full.rglob("*")
                   if p.is_file() and not p.relative_to(full).as_posix().startswith(".parts"))
    assert sorted(set(extra) - set(RUN_FILES)) == sorted(
        [f"geojson/{s}.geojson" for s in STEMS] + [f"rois/{s}.zip" for s in STEMS]
        + [f"binary/{s}_{c}.png" for s in STEMS for c in ("nucleus", "cytoplasm", "cell")]
        + ["report.html"])
    assert not (plain / "report.html").exists() and not (plain / "geojson").exists()


def test_binary_ground_truth_is_scored(runs):
    images = pd.read_csv(runs[1] / "images.csv")
    assert images["has_mask"].all()
    assert (images["dice_nucleus"] > 0.8).all()  # the 0/255 masks read as nucleus masks


def test_geojson_reads_back_to_the_run_labels_with_its_measurements(runs):
    out = runs[1]
    objects = pd.read_csv(out / "objects.csv", dtype={"image": str})
    for stem in STEMS:
        labels = read_instances(out / "labels" / f"{stem}.tif").astype(np.uint8)
        nuclei = read_instances(out / "nuclei" / f"{stem}.tif")
        collection = json.loads((out / "geojson" / f"{stem}.geojson").read_text())
        assert collection["type"] == "FeatureCollection"
        assert [f["properties"]["objectType"] for f in collection["features"]] == ["cell"] * 4
        _, back_nuclei, back_cells = geojson_to_labels(collection, labels.shape)
        np.testing.assert_array_equal(back_nuclei, nuclei)
        np.testing.assert_array_equal(back_cells, assign_cells(nuclei, labels > 0))
        rows = objects[objects["image"] == stem].set_index("label")
        for feature in collection["features"]:
            label = int(feature["properties"]["metadata"]["cellseg_label"])
            measured = feature["properties"]["measurements"]
            assert measured["nucleus_area"] == rows.loc[label, "nucleus_area"]
            assert measured["nc_ratio"] == pytest.approx(rows.loc[label, "nc_ratio"])
            assert shape(feature["nucleusGeometry"]).area == rows.loc[label, "nucleus_area"]
            assert shape(feature["geometry"]).area == rows.loc[label, "cell_area"]


def test_imagej_rois_and_binary_masks_read_back(runs):
    out = runs[1]
    for stem in STEMS:
        labels = read_instances(out / "labels" / f"{stem}.tif").astype(np.uint8)
        nuclei = read_instances(out / "nuclei" / f"{stem}.tif")
        rois = roifile.roiread(out / "rois" / f"{stem}.zip")
        outlines = object_polygons(nuclei)
        assert [int(r.name) for r in rois] == sorted(outlines)
        for roi in rois:
            np.testing.assert_array_equal(roi.coordinates(), outlines[int(roi.name)][0][0][:-1])
        np.testing.assert_array_equal(read_mask(out / "binary" / f"{stem}_nucleus.png"),
                                      np.where(labels == 2, 2, 0))
        cell = np.asarray(Image.open(out / "binary" / f"{stem}_cell.png"))
        np.testing.assert_array_equal(cell, np.where(labels > 0, 255, 0))


def test_report_of_the_run(runs):
    page = (runs[1] / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.count("data:image/png;base64,") == 2
    assert "lab01" in page and "Measurements for review, not a diagnosis." in page
    assert "N/C = nucleus area / cytoplasm area" in page
    images = pd.read_csv(runs[1] / "images.csv")
    assert f"<td class=n>{int(images['n_nuclei'].sum()):,}</td>" in page


def test_resume_with_exports(data, runs, tmp_path):
    out = tmp_path / "out"
    assert main(["segment", str(data / "images" / "a.png"), "--preset", "lab01",
                 "--out", str(out), "--export", "geojson"]) == 0
    assert main(["segment", str(data), "--preset", "lab01", "--out", str(out), "--resume",
                 "--export", "geojson"]) == 0
    for stem in STEMS:
        assert (out / "geojson" / f"{stem}.geojson").read_bytes() == \
            (runs[1] / "geojson" / f"{stem}.geojson").read_bytes()


@pytest.mark.parametrize("value", ["svg", "geojson,,imagej", "GEOJSON,tiff"])
def test_unknown_export_is_a_usage_error(data, tmp_path, capsys, value):
    out = tmp_path / "out"
    assert main(["segment", str(data), "--out", str(out), "--export", value]) == 2
    err = capsys.readouterr().err
    assert "--export: unknown export(s)" in err and "choose from geojson, imagej, binary" in err
    assert "Traceback" not in err and not out.exists()


def test_above_the_object_ceiling_masks_only_with_a_warning(data, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CELLSEG_MAX_OBJECTS", "3")  # each image has 4 cells
    out = tmp_path / "out"
    assert main(["segment", str(data), "--preset", "lab01", "--out", str(out),
                 "--export", "geojson,binary"]) == 0
    err = capsys.readouterr().err
    assert "WARNING a: not exported: this segmentation has 4 objects" in err
    assert sorted(p.name for p in (out / "binary").iterdir()) == sorted(
        f"{s}_{c}.png" for s in STEMS for c in ("nucleus", "cytoplasm", "cell"))
    assert not (out / "geojson").exists()
