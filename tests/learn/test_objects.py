"""The object classifier (issue 19 point 4): features, two synthetic cell types told apart,
counts and densities, model files (round trip, hostile and foreign files refused)."""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pandas as pd
import pytest
import skops.io as sio

from cellseg_core.data.classes import read_classes
from cellseg_core.data.synthetic import CELL_TYPES, two_type_cells
from cellseg_core.learn import FORMAT_VERSION, load_model
from cellseg_core.learn.objects import (FEATURE_NAMES, ObjectClassifier, class_counts,
                                        object_features)
from cellseg_core.measure import region_stats
from cellseg_core.pipeline import segment
from cellseg_core.presets import get_preset

MAGIC = b"CELLSEG-MODEL\n"


def _truth(sample, ids) -> np.ndarray:
    return np.array(CELL_TYPES, dtype=object)[sample.types[ids - 1]]


def _xy(clf, samples):
    xs, ys = [], []
    for s in samples:
        ids, x, _ = clf.features(s.image, s.nuclei, s.labels)
        xs.append(x)
        ys.append(_truth(s, ids))
    return np.concatenate(xs), np.concatenate(ys)


@pytest.fixture(scope="module")
def fitted():
    """A classifier fitted on 3 noisy synthetic images (192 cells), and its test images."""
    train = [two_type_cells(i, noise=0.06) for i in range(3)]
    test = [two_type_cells(100 + i, noise=0.06) for i in range(3)]
    clf = ObjectClassifier(CELL_TYPES, n_estimators=60)
    clf.fit(*_xy(clf, train), rng=0)
    return clf, test


# --- features ---------------------------------------------------------------------------
def test_features_hand_made():
    img = np.full((40, 40), 0.9)
    img[2:6, 2:6] = 0.2          # nucleus 1: 4x4, dark
    img[20:28, 10:14] = 0.5      # nucleus 2: 8x4, pale
    nuclei = np.zeros((40, 40), np.int32)
    nuclei[2:6, 2:6] = 1
    nuclei[20:28, 10:14] = 7     # ids need not be consecutive
    labels = (nuclei > 0).astype(np.uint8) * 2
    labels[0:10, 0:10][labels[0:10, 0:10] == 0] = 1  # 100 - 16 = 84 cytoplasm px for cell 1
    ids, x, names = object_features(img, nuclei, labels, radius=5)
    f = pd.DataFrame(x, columns=names, index=ids)
    assert ids.tolist() == [1, 7] and names == list(FEATURE_NAMES)
    assert f["nucleus_area"].tolist() == [16.0, 32.0]
    assert f["cytoplasm_area"].tolist() == [84.0, 0.0]
    assert f["cell_area"].tolist() == [100.0, 32.0]
    assert f.loc[1, "nc_ratio"] == pytest.approx(16 / 84) and np.isnan(f.loc[7, "nc_ratio"])
    assert f["nucleus_mean_red"].tolist() == pytest.approx([0.2, 0.5])
    assert f["nucleus_std_red"].tolist() == pytest.approx([0.0, 0.0], abs=1e-6)
    assert f.loc[7, "elongation"] == pytest.approx(2.0, rel=0.05)
    assert f.loc[1, "cytoplasm_mean_gray"] == pytest.approx(0.9)
    # Optical density against the glass (0.9): -ln(0.2 / 0.9), -ln(0.5 / 0.9).
    assert f["nucleus_od"].tolist() == pytest.approx([np.log(4.5), np.log(1.8)], rel=1e-5)
    assert f.loc[1, "od_contrast"] == pytest.approx(np.log(4.5), rel=1e-5)
    # Centroids (3.5, 3.5) and (23.5, 11.5): 21.5 px apart, beyond 5 px, within 2x5? no.
    assert f["neighbours_r"].tolist() == [0.0, 0.0]
    assert f["nearest_distance"].tolist() == pytest.approx([np.hypot(20, 8)] * 2)


def test_features_in_microns():
    s = two_type_cells(3, size=64)
    _, px, names = object_features(s.image, s.nuclei, s.labels)
    _, um, _ = object_features(s.image, s.nuclei, s.labels, pixel_size=0.5, radius=25)
    f = {n: i for i, n in enumerate(names)}
    assert um[:, f["nucleus_area"]] == pytest.approx(px[:, f["nucleus_area"]] * 0.25)
    assert um[:, f["major_axis_length"]] == pytest.approx(px[:, f["major_axis_length"]] * 0.5)
    # 25 µm at 0.5 µm/px is the 50 px default.
    assert um[:, f["neighbours_r"]] == pytest.approx(px[:, f["neighbours_r"]])
    assert um[:, f["nucleus_od"]] == pytest.approx(px[:, f["nucleus_od"]])


def test_features_match_region_stats_and_leave_inputs_alone():
    s = two_type_cells(5, size=96)
    image, nuclei = s.image.copy(), s.nuclei.copy()
    ids, x, names = object_features(image, nuclei, s.labels)
    stats = region_stats(s.nuclei)
    assert ids.tolist() == stats["label"].tolist()
    assert x[:, names.index("eccentricity")] == pytest.approx(stats["eccentricity"])
    assert np.array_equal(image, s.image) and np.array_equal(nuclei, s.nuclei)


def test_features_edge_cases():
    ids, x, names = object_features(np.ones((8, 8)), np.zeros((8, 8), np.int32))
    assert ids.size == 0 and x.shape == (0, len(names))
    one = np.zeros((8, 8), np.int32)
    one[2:4, 2:4] = 1
    _, x, names = object_features(np.ones((8, 8)), one)
    assert np.isnan(x[0, names.index("nearest_distance")])
    with pytest.raises(ValueError, match="`nuclei` .* shape"):
        object_features(np.ones((8, 8)), np.zeros((4, 4), np.int32))
    with pytest.raises(TypeError, match="integer"):
        object_features(np.ones((8, 8)), np.zeros((8, 8), np.float32))
    with pytest.raises(ValueError, match="pixel_size"):
        object_features(np.ones((8, 8)), one, pixel_size=0)


# --- the classifier ---------------------------------------------------------------------
def test_two_synthetic_cell_types_recovered(fitted):
    """Small dark round vs large pale elongated nuclei, held-out images: >= 95 %."""
    clf, test = fitted
    x, truth = _xy(clf, test)
    accuracy = float((clf.predict(x) == truth).mean())
    assert len(truth) == 192 and accuracy >= 0.95, accuracy


def test_two_types_recovered_on_segmented_nuclei(fitted):
    """The same on the nuclei a preset finds (not the ground truth): each found nucleus
    takes the type of the true nucleus under its centre."""
    clf, test = fitted
    params = get_preset("lab02").with_values({"threshold.t_nuc": 0.62, "threshold.t_bg": 0.87,
                                              "cleanup.min_nucleus_size": 20})
    right = total = 0
    for s in test:
        seg = segment(s.image, params)
        table = clf.classify(s.image, seg.nuclei, seg.labels)
        stats = region_stats(seg.nuclei)
        under = s.nuclei[stats["centroid_row"].round().astype(int),
                         stats["centroid_col"].round().astype(int)]
        found = under > 0
        assert found.mean() > 0.9
        right += int((table["class"].to_numpy()[found] == _truth(s, under[found])).sum())
        total += int(found.sum())
    assert right / total >= 0.95, right / total


def test_class_names_are_editable_and_checked(fitted):
    clf, test = fitted
    x, _ = _xy(clf, test[:1])
    before = clf.predict(x)
    renamed = ObjectClassifier.load(clf.to_bytes()).rename_class(CELL_TYPES[0], "lymphocyte")
    after = renamed.predict(x)
    assert set(after) == {"lymphocyte", CELL_TYPES[1]}
    assert ((before == CELL_TYPES[0]) == (after == "lymphocyte")).all()
    assert ObjectClassifier.load(renamed.to_bytes()).class_names[0] == "lymphocyte"
    swapped = ObjectClassifier.load(clf.to_bytes()).rename_classes(CELL_TYPES[::-1])
    assert ((swapped.predict(x) == CELL_TYPES[1]) == (before == CELL_TYPES[0])).all()
    assert swapped.training_counts_ == {CELL_TYPES[1]: clf.training_counts_[CELL_TYPES[0]],
                                        CELL_TYPES[0]: clf.training_counts_[CELL_TYPES[1]]}
    with pytest.raises(ValueError, match="must hold 2 names"):
        swapped.rename_classes(["a", "b", "c"])
    with pytest.raises(ValueError, match="distinct"):
        ObjectClassifier(["a", "a"])
    with pytest.raises(ValueError, match="`old`"):
        renamed.rename_class("nope", "x")
    with pytest.raises(ValueError, match="at least two different classes"):
        ObjectClassifier(["a", "b"]).fit(x[:3], ["a"] * 3)
    with pytest.raises(ValueError, match="not among the class names"):
        ObjectClassifier(["a", "b"]).fit(x[:2], ["a", "c"])


def test_unseen_class_gets_probability_zero(fitted):
    clf, test = fitted
    x, truth = _xy(clf, test[:1])
    three = ObjectClassifier([*CELL_TYPES, "other"], n_estimators=10).fit(x, truth, rng=0)
    proba = three.predict_proba(x)
    assert proba.shape == (len(x), 3) and (proba[:, 2] == 0).all()
    assert proba.sum(1) == pytest.approx(1.0)


def test_microns_classifier_needs_a_pixel_size():
    s = two_type_cells(1, size=64)
    clf = ObjectClassifier(["a", "b"], microns=True)
    with pytest.raises(ValueError, match="pixel size"):
        clf.features(s.image, s.nuclei)
    assert clf.features(s.image, s.nuclei, pixel_size=0.25)[1].shape[0] == 4


def test_counts_and_densities():
    table = class_counts(["a", "b", "a", "c"], ["a", "b", "z"], (500, 400))
    assert table["class"].tolist() == ["a", "b", "z", "c"]
    assert table["count"].tolist() == [2, 1, 0, 1]
    assert table["cells_per_megapixel"].tolist() == pytest.approx([10.0, 5.0, 0.0, 5.0])
    assert table.attrs["density_unit"] == "megapixel"
    # 0.5 µm/px: 500 x 400 px = 250 x 200 µm = 0.05 mm².
    mm = class_counts(["a", "b", "a", "c"], ["a", "b"], (500, 400), pixel_size=0.5)
    assert mm["cells_per_mm2"].tolist() == pytest.approx([40.0, 20.0, 20.0])
    assert mm["share"].sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="pixel_size"):
        class_counts(["a"], ["a"], (4, 4), pixel_size=-1)


# --- files ------------------------------------------------------------------------------
def test_save_load_round_trip_identical_predictions(fitted, tmp_path):
    clf, test = fitted
    path = clf.save(tmp_path / "cells.cellseg-model")
    back = ObjectClassifier.load(path)
    x, _ = _xy(clf, test)
    assert np.array_equal(back.predict_proba(x), clf.predict_proba(x))
    assert back.class_names == clf.class_names and back.config == clf.config
    assert back.training_counts_ == clf.training_counts_
    from_bytes = ObjectClassifier.load(path.read_bytes())
    assert (from_bytes.predict(x) == clf.predict(x)).all()
    # No pickle anywhere: the payload is a skops archive (a zip of JSON and arrays).
    data = path.read_bytes()
    size = int.from_bytes(data[len(MAGIC):len(MAGIC) + 8], "little")
    header = json.loads(data[len(MAGIC) + 8:len(MAGIC) + 8 + size])
    assert header["kind"] == "ObjectClassifier" and header["payload_format"] == "skops"
    assert header["format_version"] == FORMAT_VERSION
    assert data[len(MAGIC) + 8 + size:].startswith(b"PK")


def _container(kind: str, payload: bytes, version: int = FORMAT_VERSION, **fields) -> bytes:
    import sklearn

    header = {"format": "cellseg-model", "format_version": version, "kind": kind,
              "sklearn_version": sklearn.__version__, "numpy_version": np.__version__,
              "cellseg_version": "0.1.0", "payload_sha256": hashlib.sha256(payload).hexdigest(),
              "payload_bytes": len(payload), "class_names": ["a", "b"],
              "feature_names": list(FEATURE_NAMES),
              "config": {"n_estimators": 5, "microns": False, "radius": 50.0}, **fields}
    head = json.dumps(header).encode()
    return MAGIC + len(head).to_bytes(8, "little") + head + payload


def _popen_pickle(marker) -> bytes:
    """A pickle that runs ``touch marker`` when it is loaded."""
    def text(s):
        raw = s.encode()
        return b"\x8c" + bytes([len(raw)]) + raw
    args = b"(](" + text("sh") + text("-c") + text(f"touch {marker}") + b"et"
    return b"\x80\x04" + text("subprocess") + text("Popen") + b"\x93" + args + b"R."


def test_hostile_and_foreign_files_are_refused(fitted, tmp_path):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    clf, _ = fitted
    marker = tmp_path / "MARKER"
    small = RandomForestClassifier(3, random_state=0).fit(np.zeros((4, 2)), [0, 1, 0, 1])
    good = clf.to_bytes()
    cases = {
        "pickle payload, format 3": (_container("ObjectClassifier", _popen_pickle(marker)),
                                     "corrupted or foreign"),
        "pickle payload, format 2": (_container("ObjectClassifier", _popen_pickle(marker), 2),
                                     "format 3 only"),
        "skops function": (_container("ObjectClassifier", sio.dumps(os.system)),
                           "never holds"),
        "skops other estimator": (_container("ObjectClassifier",
                                             sio.dumps(LogisticRegression())), "never holds"),
        "forest of other features": (_container("ObjectClassifier", sio.dumps(small)),
                                     "does not match"),
        "other feature names": (_container("ObjectClassifier", sio.dumps(clf.model_),
                                           feature_names=["x"] * len(FEATURE_NAMES)),
                                "not this version"),
        "pixel classifier file": (_container("PixelClassifier", sio.dumps(clf.model_)),
                                  "not an object classifier"),
        "truncated": (good[:-10], "checksum"),
        "text": (b"label,class\n1,a\n", "not a cellseg model"),
        "newer format": (_container("ObjectClassifier", b"", FORMAT_VERSION + 1),
                         "not supported"),
    }
    for name, (data, message) in cases.items():
        with pytest.raises(ValueError, match=message):
            ObjectClassifier.load(data)
        path = tmp_path / f"{name}.cellseg-model"
        path.write_bytes(data)
        with pytest.raises(ValueError, match=message):
            ObjectClassifier.load(path)
    assert not marker.exists(), "a payload ran a command"
    # load_model (segmentation models) refuses it with a pointer to the right place.
    with pytest.raises(ValueError, match="object classifier .* --object-classifier"):
        load_model(good)


def test_read_classes():
    table = read_classes("Label,Class\n2, tumour\n5,stroma\n")
    assert table.to_dict("list") == {"label": [2, 5], "class": ["tumour", "stroma"]}
    for text, message in [("label,kind\n1,a\n", "missing"), ("label,class\n0,a\n", "positive"),
                          ("label,class\n1.5,a\n", "positive"), ("label,class\n1,\n", "empty"),
                          ("label,class\n1,a\n1,b\n", "twice")]:
        with pytest.raises(ValueError, match=message):
            read_classes(text)
