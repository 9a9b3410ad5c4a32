"""`cellseg segment` with a pixel size and ratio cut-offs: the CSV columns and their values,
the pixel size written into the TIFFs, read from dataset.json and from the input TIFF."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import tifffile

from cellseg_core.batch import CELL_CSV_COLUMNS, IMAGE_COLUMNS, OBJECTS_COLUMNS
from cellseg_core.cli import main
from cellseg_core.io import read_image
from cellseg_core.pipeline import segment
from cellseg_core.presets import get_preset
from cellseg_core.units import read_pixel_size

STEMS = ["000", "005", "010"]


@pytest.fixture(scope="module")
def dataset(voced, tmp_path_factory):
    root = tmp_path_factory.mktemp("units") / "data"
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
        for stem in STEMS:
            shutil.copy(voced / sub / f"{stem}.png", root / sub / f"{stem}.png")
    return root


@pytest.fixture(scope="module")
def run(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("units") / "out"
    assert main(["segment", str(dataset), "--preset", "lab03v2", "--out", str(out),
                 "--pixel-size", "0.25", "--flag-cutoffs", "0.4,0.6"]) == 0
    return out


def test_images_csv_carries_units_and_both_ratios(run, dataset):
    images = pd.read_csv(run / "images.csv", dtype={"image": str})
    assert list(images.columns) == IMAGE_COLUMNS
    assert (images["pixel_size_um"] == 0.25).all()
    assert (images["pixel_size_source"] == "user").all()
    for column in ("background_area", "cytoplasm_area", "nucleus_area"):
        np.testing.assert_allclose(images[f"{column}_um2"], images[column] * 0.0625)
    for row in images.itertuples():
        labels = segment(read_image(dataset / "images" / f"{row.image}.png"),
                         get_preset("lab03v2")).labels
        n, c = int((labels == 2).sum()), int((labels == 1).sum())
        assert (row.nucleus_area, row.cytoplasm_area) == (n, c)
        assert row.nc_ratio == pytest.approx(n / c, rel=1e-12)
        assert row.nucleus_cell_ratio == pytest.approx(n / (n + c), rel=1e-12)
    # Against the mask too: the true nucleus/cell ratio and its error.
    assert np.isfinite(images["nucleus_cell_ratio_true"]).all()
    np.testing.assert_allclose(images["nucleus_cell_ratio_error"],
                               images["nucleus_cell_ratio"] - images["nucleus_cell_ratio_true"])


def test_objects_csv_ratios_flags_units_and_features(run):
    images = pd.read_csv(run / "images.csv", dtype={"image": str})
    objects = pd.read_csv(run / "objects.csv", dtype={"image": str})
    assert list(objects.columns) == OBJECTS_COLUMNS == ["image", *CELL_CSV_COLUMNS]
    assert len(objects) > 0
    np.testing.assert_allclose(objects["nucleus_cell_ratio"],
                               objects["nucleus_area"] / objects["cell_area"])
    has_cyto = objects["cytoplasm_area"] > 0
    np.testing.assert_allclose(objects["nc_ratio"][has_cyto],
                               (objects["nucleus_area"] / objects["cytoplasm_area"])[has_cyto])
    np.testing.assert_allclose(objects["cell_area_um2"], objects["cell_area"] * 0.0625)
    np.testing.assert_allclose(objects["equivalent_diameter_um"],
                               objects["equivalent_diameter"] * 0.25)
    ratio = objects["nucleus_cell_ratio"]
    assert (objects["flag_atypia"] == (ratio >= 0.4)).all()
    assert (objects["flag_high_grade"] == (ratio >= 0.6)).all()
    per_image = objects.groupby("image")[["flag_atypia", "flag_high_grade"]].sum()
    for row in images.itertuples():
        assert row.n_flag_atypia == per_image.loc[row.image, "flag_atypia"]
        assert row.n_flag_high_grade == per_image.loc[row.image, "flag_high_grade"]
    for column in ("nucleus_od", "od_ratio", "convexity_deficit", "glcm_contrast",
                   "glcm_entropy"):
        assert objects[column].notna().any(), column
    # Nuclei are darker than their cytoplasm in Pap cytology.
    assert (objects["od_ratio"].dropna() > 1).mean() > 0.9


def test_tiffs_and_params_json_record_the_measurements(run):
    for folder in ("labels", "nuclei"):
        for stem in STEMS:
            assert read_pixel_size(run / folder / f"{stem}.tif") == pytest.approx(0.25)
    saved = json.loads((run / "params.json").read_text())
    assert saved["measurements"] == {"pixel_size_um": 0.25, "ratio_flags": {
        "schema": 1, "atypia": 0.4, "high_grade": 0.6}}


def test_resume_refuses_another_pixel_size(run, dataset, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(run, out)
    assert main(["segment", str(dataset), "--preset", "lab03v2", "--out", str(out),
                 "--pixel-size", "0.5", "--flag-cutoffs", "0.4,0.6", "--resume"]) == 2
    assert "pixel size" in capsys.readouterr().err


def test_pixel_size_from_dataset_json_then_from_the_tiff(dataset, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(dataset, data)
    (data / "dataset.json").write_text(json.dumps({"pixel_size_um": 0.5}))
    out = tmp_path / "out"
    assert main(["segment", str(data), "--preset", "lab03v2", "--out", str(out)]) == 0
    images = pd.read_csv(out / "images.csv", dtype={"image": str})
    assert (images["pixel_size_um"] == 0.5).all()
    assert (images["pixel_size_source"] == "dataset.json").all()
    np.testing.assert_allclose(images["nucleus_area_um2"], images["nucleus_area"] * 0.25)
    # An input TIFF that records its pixel size (as Fiji saves it).
    image = (read_image(dataset / "images" / "000.png") * 255).astype(np.uint8)
    tif = tmp_path / "one" / "scan.tif"
    tif.parent.mkdir()
    tifffile.imwrite(tif, image, imagej=True, resolution=(1 / 0.3, 1 / 0.3),
                     metadata={"unit": "micron"})
    out = tmp_path / "out_tif"
    assert main(["segment", str(tif), "--preset", "lab03v2", "--out", str(out)]) == 0
    row = pd.read_csv(out / "images.csv").iloc[0]
    assert row["pixel_size_um"] == pytest.approx(0.3)
    assert row["pixel_size_source"] == "image file"


def test_without_pixel_size_the_um_columns_are_empty(dataset, tmp_path):
    out = tmp_path / "out"
    assert main(["segment", str(dataset / "images" / "000.png"), "--preset", "lab03v2",
                 "--out", str(out)]) == 0
    images = pd.read_csv(out / "images.csv")
    objects = pd.read_csv(out / "objects.csv")
    assert images["pixel_size_source"][0] == "unknown"
    assert images["pixel_size_um"].isna().all() and images["nucleus_area_um2"].isna().all()
    assert objects["cell_area_um2"].isna().all()
    # Default cut-offs 0.5 / 0.7.
    ratio = objects["nucleus_cell_ratio"]
    assert (objects["flag_atypia"] == (ratio >= 0.5)).all()
    assert (objects["flag_high_grade"] == (ratio >= 0.7)).all()
    assert read_pixel_size(out / "labels" / "000.tif") is None


@pytest.mark.parametrize("extra, message", [
    (["--pixel-size", "-1"], "--pixel-size must be a positive number"),
    (["--pixel-size", "nan"], "--pixel-size must be a positive number"),
    (["--flag-cutoffs", "0.8,0.5"], "must not exceed"),
    (["--flag-cutoffs", "0.5"], "two cut-offs"),
    (["--flag-cutoffs", "a,b"], "must be numbers"),
])
def test_bad_measurement_options_exit_2(extra, message, dataset, tmp_path, capsys):
    argv = ["segment", str(dataset / "images" / "000.png"), "--out", str(tmp_path / "o"),
            *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_exports_carry_the_pixel_size_ratios_and_flags(dataset, tmp_path):
    out = tmp_path / "out"
    data = tmp_path / "data"
    shutil.copytree(dataset, data)
    (data / "dataset.json").write_text(json.dumps({"pixel_size_um": 0.5}))
    assert main(["segment", str(data / "images" / "000.png"), "--preset", "lab03v2",
                 "--out", str(out), "--export", "geojson", "--report"]) == 0
    collection = json.loads((out / "geojson" / "000.geojson").read_text())
    assert collection["cellseg"]["pixel_size_um"] == 0.5  # images.csv's, from dataset.json
    objects = pd.read_csv(out / "objects.csv").set_index("label")
    checked = 0
    for feature in collection["features"]:
        m = feature["properties"]["measurements"]
        if "nucleus_cell_ratio" in m:
            row = objects.loc[objects["nucleus_area"] == m["nucleus_area"]].iloc[0]
            assert m["nucleus_cell_ratio"] == pytest.approx(row["nucleus_cell_ratio"])
            assert m["flag_atypia"] == int(row["flag_atypia"])
            assert m["cell_area_um2"] == pytest.approx(row["cell_area"] * 0.25)
            checked += 1
    assert checked == len(objects) > 0
    report = (out / "report.html").read_text()
    assert "nucleus_cell_ratio" in report and "1.0 for a cell without cytoplasm" in report
