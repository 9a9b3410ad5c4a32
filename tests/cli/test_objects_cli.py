"""`cellseg train --method objects` on a tiny generated dataset with classes/<stem>.csv, then
`cellseg segment --object-classifier`: class columns in objects.csv, the rest unchanged."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cellseg_core.batch import OBJECTS_COLUMNS
from cellseg_core.cli import main
from cellseg_core.learn.objects import ObjectClassifier
from tests._support.cells import CLASS_NAMES, write_classified_dataset

NAMES = CLASS_NAMES  # the synthetic types 0 and 1, as a user would call them
#: The params that find the synthetic nuclei (see tests/learn/test_objects.py).
PARAMS = {"threshold": {"t_nuc": 0.62, "t_bg": 0.87}, "cleanup": {"min_nucleus_size": 20}}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_classified_dataset(tmp_path_factory.mktemp("cells") / "cells")


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    import contextlib
    import io

    out = tmp_path_factory.mktemp("model") / "cells.cellseg-model"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["train", str(dataset), "--method", "objects", "--out", str(out),
                     "--n-estimators", "40", "--seed", "1"])
    return out, stdout.getvalue(), stderr.getvalue(), code


def test_train_objects_saves_a_classifier_and_scores_it(trained):
    path, stdout, stderr, code = trained
    assert code == 0, stderr
    clf = ObjectClassifier.load(path)
    assert clf.class_names == NAMES and clf.n_estimators == 40
    assert sum(clf.training_counts_.values()) == 3 * 16  # 3 training images of 4x4 cells
    printed = dict(line.split(None, 1) for line in stdout.strip().splitlines())
    assert int(printed["test_objects"]) == 2 * 16
    assert float(printed["accuracy"]) >= 0.95
    assert "--object-classifier" in stderr


def test_segment_with_object_classifier_adds_class_columns(trained, dataset, tmp_path):
    path = trained[0]
    params = tmp_path / "params.json"
    params.write_text(json.dumps(PARAMS))
    images = [str(dataset / "images" / f"00{i}.png") for i in (3, 4)]
    plain, classed = tmp_path / "plain", tmp_path / "classed"
    assert main(["segment", *images, "--params", str(params), "--out", str(plain)]) == 0
    assert main(["segment", *images, "--params", str(params), "--out", str(classed),
                 "--object-classifier", str(path)]) == 0
    before = pd.read_csv(plain / "objects.csv", dtype={"image": str})
    after = pd.read_csv(classed / "objects.csv", dtype={"image": str})
    # Every existing column kept, in order, with the same values; two more at the end.
    assert list(before.columns) == OBJECTS_COLUMNS
    assert list(after.columns) == OBJECTS_COLUMNS + ["class", "class_probability"]
    pd.testing.assert_frame_equal(after[OBJECTS_COLUMNS], before)
    assert set(after["class"]) <= set(NAMES)
    assert after["class_probability"].between(0.5, 1.0).all()  # the winner of two classes
    # Right against the truth: the true nucleus under each found nucleus's centroid.
    right = []
    for stem, rows in after.groupby("image"):
        truth = np.array(Image.open(dataset / "labels" / f"{stem}.png"))
        cls = pd.read_csv(dataset / "classes" / f"{stem}.csv").set_index("label")["class"]
        under = truth[rows["centroid_row"].round().astype(int),
                      rows["centroid_col"].round().astype(int)]
        right.extend((rows["class"].to_numpy()[under > 0]
                      == cls.reindex(under[under > 0]).to_numpy()).tolist())
    assert len(right) >= 28 and np.mean(right) >= 0.95
    recorded = json.loads((classed / "params.json").read_text())["object_classifier"]
    assert recorded["file"] == str(path) and recorded["classes"] == list(NAMES)
    assert "object_classifier" not in json.loads((plain / "params.json").read_text())


def test_resume_with_another_classifier_is_refused(trained, dataset, tmp_path, capsys):
    image = str(dataset / "images" / "003.png")
    out = tmp_path / "out"
    assert main(["segment", image, "--out", str(out), "--object-classifier",
                 str(trained[0])]) == 0
    assert main(["segment", image, "--out", str(out), "--resume"]) == 2
    assert "other parameters" in capsys.readouterr().err


@pytest.mark.parametrize("setup, message", [
    (lambda d, p: p.write_bytes(b"not a model"), "not a cellseg model"),
    (lambda d, p: None, "no such object classifier file"),
])
def test_bad_object_classifier_is_a_usage_error(dataset, tmp_path, capsys, setup, message):
    path = tmp_path / "bad.cellseg-model"
    setup(dataset, path)
    code = main(["segment", str(dataset / "images" / "000.png"), "--out", str(tmp_path / "o"),
                 "--object-classifier", str(path)])
    assert code == 2 and message in capsys.readouterr().err


def test_train_objects_without_class_files_is_a_usage_error(dataset, tmp_path, capsys):
    bare = tmp_path / "bare"
    (bare / "images").mkdir(parents=True)
    (bare / "masks").mkdir()
    for name in ("images", "masks"):
        src = dataset / name / "000.png"
        (bare / name / "000.png").write_bytes(src.read_bytes())
    code = main(["train", str(bare), "--method", "objects", "--split", "all",
                 "--out", str(tmp_path / "m")])
    assert code == 2 and "classes/<stem>.csv" in capsys.readouterr().err


def test_train_objects_from_mask_regions(dataset, tmp_path, capsys):
    """Without labels/, class files number the mask's connected nucleus regions."""
    from cellseg_core.instances import label_objects

    root = tmp_path / "regions"
    for name in ("images", "masks", "classes"):
        (root / name).mkdir(parents=True)
    for stem in ("000", "001"):
        for name in ("images", "masks"):
            (root / name / f"{stem}.png").write_bytes((dataset / name / f"{stem}.png").read_bytes())
        mask = np.array(Image.open(root / "masks" / f"{stem}.png"))
        regions = label_objects(mask == 2)
        truth = np.array(Image.open(dataset / "labels" / f"{stem}.png"))
        true_cls = pd.read_csv(dataset / "classes" / f"{stem}.csv").set_index("label")["class"]
        ids = np.arange(1, regions.max() + 1)
        first = np.array([truth[regions == k][0] for k in ids])  # test-side loop: tiny
        pd.DataFrame({"label": ids, "class": true_cls.reindex(first).to_numpy()}).to_csv(
            root / "classes" / f"{stem}.csv", index=False)
    out = tmp_path / "m.cellseg-model"
    assert main(["train", str(root), "--method", "objects", "--split", "all",
                 "--out", str(out), "--n-estimators", "10"]) == 0
    back = ObjectClassifier.load(out)
    assert sum(back.training_counts_.values()) == 32 and back.class_names == NAMES


def test_classes_reach_the_qupath_geojson_export(trained, dataset, tmp_path):
    """--object-classifier with --export geojson: each detection's QuPath classification
    is its objects.csv class."""
    params = tmp_path / "params.json"
    params.write_text(json.dumps(PARAMS))
    out = tmp_path / "out"
    assert main(["segment", str(dataset / "images" / "003.png"), "--params", str(params),
                 "--out", str(out), "--object-classifier", str(trained[0]),
                 "--export", "geojson"]) == 0
    table = pd.read_csv(out / "objects.csv")
    geo = json.loads((out / "geojson" / "003.geojson").read_text())
    named = {int(f["properties"]["metadata"]["cellseg_label"]):
             f["properties"].get("classification", {}).get("name") for f in geo["features"]}
    assert named == dict(zip(table["label"], table["class"]))
    assert set(named.values()) == set(NAMES)
