"""The ECSE 415 study's TCGA-style layout: a tiny folder generated here, read back."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cellseg_core.data import Dataset, TCGADataset, open_dataset, patient_of, patient_split
from cellseg_core.data.tcga import (polygons_to_masks, read_polygons, resize_labels,
                                    rgb_mask_to_labels)

PATIENTS = ["TCGA-A1-A0SP", "TCGA-AO-A12F", "TCGA-BH-A0BW"]
#: (patient, slide, tile) per stem: patient 0 has two tiles, patient 2 two slides.
TILES = [(0, "DX1", 0), (0, "DX1", 1), (1, "DX1", 0), (2, "DX1", 0), (2, "DX2", 0)]
# Two nuclei per tile: a tumour square and a stromal triangle.
SQUARE = (np.array([4, 4, 11, 11]), np.array([5, 12, 12, 5]))  # rows, cols
TRIANGLE = (np.array([20, 20, 28]), np.array([20, 28, 20]))
SIZE = 32


def _stem(patient, slide, tile):
    return f"{PATIENTS[patient]}-{slide}_id-{tile}_left-{100 * tile}_top-0"


def _write(root, *, with_csv=True, with_mask=True):
    (root / "rgb").mkdir(parents=True)
    if with_csv:
        (root / "csv").mkdir()
    if with_mask:
        (root / "mask").mkdir()
    classes, instances = polygons_to_masks(
        pd.DataFrame({"class": ["tumor_any", "nonTIL_stromal"],
                      "rows": [SQUARE[0], TRIANGLE[0]], "cols": [SQUARE[1], TRIANGLE[1]]}),
        (SIZE, SIZE), ["nonTIL_stromal", "tumor_any"])
    for p, slide, tile in TILES:
        stem = _stem(p, slide, tile)
        rgb = np.full((SIZE, SIZE, 3), 220, np.uint8)
        rgb[instances > 0] = (80, 40, 120)
        Image.fromarray(rgb).save(root / "rgb" / f"{stem}.png")
        if with_csv:
            pd.DataFrame({
                "raw_classification": ["tumor", "fibroblast"],
                "super_classification": ["tumor_any", "nonTIL_stromal"],
                "type": ["polyline", "polyline"],
                "xmin": [5, 20], "ymin": [4, 20], "xmax": [12, 28], "ymax": [11, 28],
                "coords_x": [",".join(map(str, SQUARE[1])), ",".join(map(str, TRIANGLE[1]))],
                "coords_y": [",".join(map(str, SQUARE[0])), ",".join(map(str, TRIANGLE[0]))],
            }).to_csv(root / "csv" / f"{stem}.csv", index=False)
        if with_mask:
            # Stored at half resolution: read back with nearest neighbour.
            mask = np.zeros((SIZE, SIZE, 3), np.uint8)
            mask[..., 0] = 253  # the field of view, a gray level
            mask[classes == 1] = (3, 1, 2)  # stromal, instance 1 * 2 = 2
            mask[classes == 2] = (1, 1, 1)  # tumour, instance 1
            Image.fromarray(mask[::2, ::2]).save(root / "mask" / f"{stem}.png")
    return root


def test_reads_polygons_classes_and_instances(tmp_path):
    root = _write(tmp_path / "tcga")
    ds = open_dataset(root)
    assert isinstance(ds, TCGADataset) and ds.kind == "fluorescence"
    assert len(ds) == len(TILES)
    assert ds.class_names == ["nonTIL_stromal", "tumor_any"]
    stem = _stem(0, "DX1", 0)
    image = ds.image(stem)
    assert image.shape == (SIZE, SIZE, 3)
    instances = ds.instances(stem)
    assert sorted(np.unique(instances)) == [0, 1, 2]
    assert (instances == 1).sum() == 8 * 8  # the square, vertices included
    classes = ds.nucleus_classes(stem)
    assert (classes[instances == 1] == 2).all() and (classes[instances == 2] == 1).all()
    assert ((ds.mask(stem) == 2) == (instances > 0)).all()


def test_masks_without_csv_are_resized_with_nearest_neighbour(tmp_path):
    root = _write(tmp_path / "tcga", with_csv=False)
    ds = open_dataset(root)
    stem = _stem(1, "DX1", 0)
    instances = ds.instances(stem)
    assert instances.shape == (SIZE, SIZE)
    assert set(np.unique(instances)) == {0, 1, 2}  # channel 1 x channel 2, no blends
    colours = ds.colour_labels(stem)
    # Three colours (FOV gray, stromal, tumour) -> labels 0, 1, 2 in colour order.
    assert set(np.unique(colours)) == {0, 1, 2}
    assert (colours[instances == 1] == 0).all()  # (1, 1, 1) sorts first
    assert (colours[instances == 0] == 2).all()  # (253, 0, 0) last
    classes = ds.nucleus_classes(stem)
    assert set(np.unique(classes)) == {0, 1, 3}  # channel 0 inside the nuclei


def test_split_is_patient_wise(tmp_path):
    ds = open_dataset(_write(tmp_path / "tcga"))
    split = ds.split
    assert sorted(split["train"] + split["test"]) == sorted(ds.ids)
    train = {patient_of(i) for i in split["train"]}
    test = {patient_of(i) for i in split["test"]}
    assert train and test and not train & test
    # The two slides of patient 2 are one patient.
    assert patient_of(_stem(2, "DX1", 0)) == patient_of(_stem(2, "DX2", 0))
    for seed in range(10):
        s = patient_split(ds.ids, ds.patients, 0.4, seed=seed)
        assert not {patient_of(i) for i in s["train"]} & {patient_of(i) for i in s["test"]}
        assert len(s["test"]) >= 0.4 * len(ds.ids) or len(set(ds.patients.values())) - 1 == \
            len({patient_of(i) for i in s["test"]})


def test_split_json_wins_and_folder_layout_gets_patient_split(tmp_path):
    root = _write(tmp_path / "tcga")
    stems = sorted(p.stem for p in (root / "rgb").iterdir())
    (root / "split.json").write_text(json.dumps({"train": stems[:3], "test": stems[3:]}))
    assert open_dataset(root).split["test"] == sorted(stems[3:])
    # An images/ + masks/ folder whose stems name patients is split by patient too.
    folder = tmp_path / "folder"
    (folder / "images").mkdir(parents=True)
    for stem in stems:
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(folder / "images" / f"{stem}.png")
    split = Dataset.from_folder(folder).split
    assert not ({patient_of(i) for i in split["train"]} & {patient_of(i) for i in split["test"]})


def test_rgb_mask_palette_and_errors(tmp_path):
    mask = np.array([[[0, 0, 0], [255, 0, 0]]], np.uint8)
    assert rgb_mask_to_labels(mask, {(0, 0, 0): 0, (255, 0, 0): 2}).tolist() == [[0, 2]]
    with pytest.raises(ValueError, match="palette"):
        rgb_mask_to_labels(mask, {(0, 0, 0): 0})
    small = np.array([[1, 2], [3, 4]])
    big = resize_labels(small, (6, 6))
    assert set(np.unique(big)) == {1, 2, 3, 4} and (big[:3, :3] == 1).all()
    bad = tmp_path / "bad.csv"
    bad.write_text("foo,bar\n1,2\n")
    with pytest.raises(ValueError, match="class column"):
        read_polygons(bad)
    with pytest.raises(ValueError, match="2 patients"):
        patient_split(["a", "b"], ["P", "P"])
