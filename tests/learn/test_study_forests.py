"""The ECSE 415 study's supervised segmentation (cellseg_core.learn.forests): forests on
raw gray pixels, 9x9 patches or multiscale features, an ensemble over chunks, a mode
filter, and the study's misclassification rates."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from cellseg_core.data import open_dataset
from cellseg_core.learn.forests import StudyForest, patch_features, study_scores
from cellseg_core.metrics import misclassification_rates
from cellseg_core.morphology import mode_filter
from tests._support.data import shared_set


def test_patch_features_are_the_window_around_each_pixel():
    gray = np.random.default_rng(0).random((12, 15)).astype(np.float32)
    f = patch_features(gray, 9)
    assert f.shape == (12, 15, 81)
    padded = np.pad(gray, 4, mode="reflect")
    for r, c in [(0, 0), (5, 7), (11, 14)]:
        np.testing.assert_array_equal(f[r, c], padded[r:r + 9, c:c + 9].ravel())
    assert (f[..., 40] == gray).all()  # the centre is the pixel itself
    with pytest.raises(ValueError, match="size"):
        patch_features(gray, 4)


def _mode_plain(values):
    """The majority of a window; a tie keeps the centre if it is among the winners."""
    values = values.astype(int)
    counts = np.bincount(values)
    centre = values[len(values) // 2]
    return centre if counts[centre] == counts.max() else counts.argmax()


@pytest.mark.parametrize("size", [3, 5])
def test_mode_filter_is_the_window_majority(size):
    labels = np.random.default_rng(size).integers(0, 3, (20, 17)).astype(np.uint8)
    before = labels.copy()
    expected = ndi.generic_filter(labels, _mode_plain, size=size, mode="nearest")
    got = mode_filter(labels, size)
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(labels, before)
    with pytest.raises(ValueError, match="size"):
        mode_filter(labels, 2)
    with pytest.raises(TypeError, match="dtype"):
        mode_filter(labels.astype(float), 3)


def test_misclassification_rates_count_wrong_pixels():
    truth = np.array([[0, 1, 2, 2], [0, 1, 1, 2]])
    pred = np.array([[0, 2, 2, 1], [1, 1, 1, 2]])
    rates = misclassification_rates(pred, truth)
    assert rates["misclassification"] == pytest.approx(3 / 8)
    # Nucleus vs rest: (0,1) said nucleus, (0,3) missed -> 2 of 8.
    assert rates["nucleus_misclassification"] == pytest.approx(2 / 8)


def _toy(n=4, seed=0):
    rng = np.random.default_rng(seed)
    images, masks = [], []
    for _ in range(n):
        img = np.full((40, 40), 0.9, np.float32)
        mask = np.zeros((40, 40), np.uint8)
        r, c = rng.integers(8, 14, 2)
        img[r:r + 20, c:c + 20], mask[r:r + 20, c:c + 20] = 0.6, 1
        img[r + 6:r + 14, c + 6:c + 14], mask[r + 6:r + 14, c + 6:c + 14] = 0.3, 2
        images.append(np.clip(img + rng.normal(0, 0.12, img.shape), 0, 1).astype(np.float32))
        masks.append(mask)
    return images, masks


def test_forest_chunks_follow_groups_and_curve_ends_at_the_ensemble():
    images, masks = _toy(6)
    model = StudyForest("patch", patch_size=5, scale=1, n_forests=10, n_estimators=5)
    model.fit(images, masks, groups=["a", "a", "b", "b", "c", "c"], rng=0)
    assert len(model.forests_) == 3  # three patients, three chunks
    curve = model.ensemble_curve(images[:2], masks[:2])
    assert curve["forests"].tolist() == [1, 2, 3]
    pooled = study_scores(model, images[:2], masks[:2])
    assert curve["misclassification"].iloc[-1] == pytest.approx(
        pooled["misclassification"].mean())
    np.testing.assert_allclose(curve["pixel_accuracy"] + curve["misclassification"], 1.0)
    with pytest.raises(ValueError, match="groups"):
        model.fit(images, masks, groups=["a"])
    with pytest.raises(ValueError, match="not fitted"):
        StudyForest().segment(images[0])
    with pytest.raises(ValueError, match="features"):
        StudyForest("sift")


def test_patches_and_mode_filter_beat_raw_pixels_on_noisy_toys():
    images, masks = _toy(8, seed=1)
    train, test = (images[:5], masks[:5]), (images[5:], masks[5:])
    scores = {}
    for name, kwargs in {"raw": dict(features="raw", mode_size=1),
                         "raw+mode": dict(features="raw", mode_size=5),
                         "patch": dict(features="patch", patch_size=5, mode_size=1)}.items():
        model = StudyForest(scale=1, n_forests=2, n_estimators=10, **kwargs).fit(*train, rng=0)
        scores[name] = study_scores(model, *test)["misclassification"].mean()
    assert scores["patch"] < scores["raw"]
    assert scores["raw+mode"] < scores["raw"]


@pytest.mark.slow
def test_patch_forest_beats_raw_pixels_on_voced_test_split():
    ds = open_dataset(shared_set("voced"))
    train = ds.split["train"][::4]  # 40 images
    test = ds.split["test"][::2]  # 20 images
    X, Y = [ds.image(i) for i in train], [ds.mask(i) for i in train]
    Xt, Yt = [ds.image(i) for i in test], [ds.mask(i) for i in test]
    results = {}
    for features in ("raw", "patch"):
        model = StudyForest(features, scale=0.5, n_forests=4, n_estimators=10).fit(X, Y, rng=0)
        results[features] = study_scores(model, Xt, Yt).mean(numeric_only=True)
    assert results["patch"]["pixel_accuracy"] > results["raw"]["pixel_accuracy"] + 0.005
    assert results["patch"]["mean_dice"] > results["raw"]["mean_dice"]
