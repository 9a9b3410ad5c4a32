"""The textbook nucleus baseline (cellseg_core.textbook): polarity from the image, fixed
settings, known answers on drawn images."""
from __future__ import annotations

import json

import numpy as np
import pytest

from cellseg_core.io import read_image, read_instances
from cellseg_core.metrics import match_instances
from cellseg_core.textbook import (TEXTBOOK, baseline_objects, textbook_nuclei,
                                   textbook_segmentation)

from tests._support.data import shared_set


def _blobs(size=120, seed=0):
    """Nine discs of radius 7 on a 3 × 3 grid, plus one 4 × 4 speck (16 px, under the
    30 px floor): truth instances 1..9 and a bright-on-dark gray image with noise."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:size, :size]
    truth = np.zeros((size, size), np.int32)
    for k, (r, c) in enumerate([(r, c) for r in (20, 60, 100) for c in (20, 60, 100)], 1):
        truth[np.hypot(rows - r, cols - c) <= 7] = k
    image = np.where(truth > 0, 0.8, 0.1) + rng.normal(0, 0.03, truth.shape)
    image[40:44, 38:42] = 0.8  # a speck, removed by the 30 px floor
    return np.clip(image, 0, 1).astype(np.float32), truth


def _touching(size=80):
    """Two discs of radius 12 whose centres are 20 px apart (they overlap): bright."""
    rows, cols = np.mgrid[:size, :size]
    truth = np.zeros((size, size), np.int32)
    truth[np.hypot(rows - 40, cols - 28) <= 12] = 1
    truth[(np.hypot(rows - 40, cols - 52) <= 12) & (cols >= 40)] = 2
    return np.where(truth > 0, 0.9, 0.05).astype(np.float32), truth


def test_bright_blobs_on_dark_are_found_one_for_one():
    image, truth = _blobs()
    assert baseline_objects(image) == "bright"
    found = textbook_nuclei(image)
    m = match_instances(found, truth)
    assert (m["n_pred"], m["n_true"], m["f1"]) == (9, 9, 1.0)
    assert found[40:44, 38:42].max() == 0  # the speck (16 px < 30) is gone
    # σ 2 rounds the edges a little, no more: every disc still matches at IoU 0.8.
    assert match_instances(found, truth, threshold=0.8)["f1"] == 1.0


def test_dark_blobs_on_white_are_found_too_and_match_the_bright_answer():
    image, truth = _blobs()
    dark = 1 - image
    assert baseline_objects(dark) == "dark"
    found = textbook_nuclei(dark)
    assert match_instances(found, truth)["f1"] == 1.0
    # Inverting the image and the polarity is the same computation, pixel for pixel.
    np.testing.assert_array_equal(found, textbook_nuclei(image))


def test_coloured_stain_counts_as_dark_objects():
    image, truth = _blobs()
    rgb = np.stack([1 - 0.6 * image, 1 - 0.9 * image, 1 - 0.3 * image], -1)  # purple on white
    seg = textbook_segmentation(rgb)
    assert seg.method == "textbook baseline (dark objects)"
    assert match_instances(seg.nuclei, truth)["f1"] == 1.0


def test_the_override_wins_over_the_detector():
    image, truth = _blobs()
    # Asked for dark objects on a fluorescence image, it finds the background as one
    # object with nine holes filled... which is the whole image, not nine nuclei.
    wrong = textbook_nuclei(image, "dark")
    assert match_instances(wrong, truth)["f1"] == 0.0
    assert match_instances(textbook_nuclei(1 - image, "dark"), truth)["f1"] == 1.0
    with pytest.raises(ValueError, match="`objects` must be one of auto, bright, dark, got 'up'"):
        textbook_nuclei(image, "up")


def test_touching_discs_come_apart_at_the_neck():
    image, truth = _touching()
    found = textbook_nuclei(image)
    m = match_instances(found, truth)
    assert (m["n_pred"], m["f1"]) == (2, 1.0)
    # The split runs along the neck (column 40), as the distance transform says.
    assert found[40, 36] != found[40, 44] and found[40, 36] > 0 and found[40, 44] > 0


def test_segmentation_fields_and_empty_image():
    image, _ = _blobs()
    seg = textbook_segmentation(image)
    assert seg.nuclei.dtype == np.int32 and set(np.unique(seg.labels)) == {0, 2}
    assert 0.1 < seg.thresholds["t_object"] < 0.8  # Otsu between background and blobs
    assert seg.blurred.dtype == np.float32
    flat = textbook_segmentation(np.full((16, 16), 0.5, np.float32))
    assert flat.nuclei.max() == 0
    assert TEXTBOOK == {"sigma": 2.0, "min_size": 30, "min_distance": 5}


#: Issue 17's table (textbook baseline, polarity given per set): F1@0.5 on the test
#: splits. With the polarity detected the labels are identical on every test image.
ISSUE_17 = {"dsb2018_fluo": 0.793, "dsb2018_histo": 0.566, "dsb2018_brightfield": 0.033}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dsb2018_fluo", "dsb2018_histo"])
def test_detected_polarity_reproduces_the_issue_17_table(name):
    folder = shared_set(name)
    ids = sorted(json.loads((folder / "split.json").read_text())["test"])
    f1 = [match_instances(textbook_nuclei(read_image(folder / "images" / f"{i:03d}.png")),
                          read_instances(folder / "labels" / f"{i:03d}.tif"))["f1"]
          for i in ids]
    assert round(float(np.mean(f1)), 3) == ISSUE_17[name]


def test_compare_nuclei_scores_the_baseline_on_bright_and_dark_images_alike():
    from cellseg_core.data import Dataset
    from cellseg_core.evaluation import compare_nuclei
    from cellseg_core.methods import OTSU_BASELINE, TextbookMethod

    image, truth = _blobs()
    ds = Dataset.from_arrays("blobs", [image, 1 - image], instances=[truth, truth])
    out = compare_nuclei(ds, ds.ids, {OTSU_BASELINE: TextbookMethod(),
                                      "bright only": TextbookMethod("bright")})
    table = out.summary.set_index("method")
    assert table.loc[OTSU_BASELINE, "F1@0.5"] == 1.0
    # Bright objects only (the old baseline): right on the first image, nothing
    # sensible on the second (the white background is one object): F1 (1 + 0) / 2.
    assert table.loc["bright only", "F1@0.5"] == 0.5
