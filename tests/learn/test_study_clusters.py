"""The ECSE 415 study's unsupervised segmentation (cellseg_core.learn.clusters), checked
against the study's own rules re-implemented here the plain way."""
from __future__ import annotations

import numpy as np
import pytest

from cellseg_core.data import open_dataset
from cellseg_core.learn.clusters import (UNMATCHED, cluster_sweep, estimate_bandwidth_sample,
                                         gabor_kernel_cv, kmeans_clusters, match_clusters,
                                         mean_shift_modes, meanshift_clusters, study_features,
                                         sweep_table)
from tests._support.data import shared_set


def _study_dice_score(output, truth):
    """The study's scoring, as its text describes it: for each unique label of the
    output, the Dice with each existing ground-truth label, the highest taken without
    replacement; surplus labels score 0; the mean over the output's labels."""
    taken, scores = set(), []
    for label in np.unique(output):
        best, best_gt = -1.0, None
        for gt in np.unique(truth):
            if gt in taken:
                continue
            p, t = output == label, truth == gt
            d = 2 * np.logical_and(p, t).sum() / (p.sum() + t.sum())
            if d > best:
                best, best_gt = d, gt
        if best_gt is None:
            scores.append(0.0)
        else:
            taken.add(best_gt)
            scores.append(best)
    return float(np.mean(scores))


@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_match_is_the_studys_rule(k):
    rng = np.random.default_rng(k)
    truth = rng.integers(0, 3, (40, 40))
    # Clusters that mostly follow the classes, with noise and extra clusters.
    clusters = np.where(rng.random((40, 40)) < 0.7, truth, rng.integers(0, k, (40, 40)))
    clusters = clusters % k
    match = match_clusters(clusters, truth)
    assert match.score == pytest.approx(_study_dice_score(clusters, truth), abs=1e-12)
    assert match.n_surplus == max(0, len(np.unique(clusters)) - 3)


def test_surplus_clusters_are_wrong_not_merged():
    truth = np.array([[0, 0, 0, 1, 1, 1, 2, 2]])
    # Cluster 3 lies inside class 0: merged it would be perfect, scored it is wrong.
    clusters = np.array([[0, 0, 3, 1, 1, 1, 2, 2]])
    match = match_clusters(clusters, truth)
    assert match.classes.tolist() == [0, 1, 2, -1]
    assert match.dice[3] == 0.0
    assert match.score == pytest.approx((0.8 + 1 + 1 + 0) / 4)
    assert match.labels.tolist() == [[0, 0, UNMATCHED, 1, 1, 1, 2, 2]]
    # With the optimal rule the surplus cluster is still wrong.
    assert match_clusters(clusters, truth, rule="optimal").n_surplus == 1


def test_match_refuses_bad_input():
    with pytest.raises(ValueError, match="shape"):
        match_clusters(np.zeros((2, 2), int), np.zeros((2, 3), int))
    with pytest.raises(ValueError, match="rule"):
        match_clusters(np.zeros((2, 2), int), np.zeros((2, 2), int), rule="merge")


def test_features_are_the_studys_29_zscored_and_input_untouched():
    image = np.random.default_rng(0).random((24, 30, 3)).astype(np.float32)
    before = image.copy()
    f = study_features(image)
    assert f.shape == (24, 30, 29)
    assert np.allclose(f.reshape(-1, 29).mean(0), 0, atol=1e-5)
    assert np.allclose(f.reshape(-1, 29).std(0), 1, atol=1e-4)
    assert study_features(image, gray=True).shape == (24, 30, 27)
    np.testing.assert_array_equal(image, before)
    # Column feature: z-scored column index.
    cols = np.arange(30.0)
    np.testing.assert_allclose(f[0, :, 4], (cols - cols.mean()) / cols.std(), atol=1e-5)


def test_gabor_kernel_is_opencvs_formula():
    k = gabor_kernel_cv(21, 3.0, np.pi / 4, 10.0, gamma=0.5)
    assert k.shape == (21, 21) and k[10, 10] == 1.0
    y, x = 10 - 3, 10 + 5  # row offset -3, column offset +5
    xr = 5 * np.cos(np.pi / 4) + -3 * np.sin(np.pi / 4)
    yr = -5 * np.sin(np.pi / 4) + -3 * np.cos(np.pi / 4)
    expected = np.exp(-(xr ** 2 + 0.25 * yr ** 2) / 18) * np.cos(2 * np.pi * xr / 10)
    assert k[y, x] == pytest.approx(expected)
    with pytest.raises(ValueError, match="ksize"):
        gabor_kernel_cv(20, 1.0, 0.0, 10.0)


def test_mean_shift_matches_scikit_learn():
    from sklearn.cluster import MeanShift, estimate_bandwidth

    rng = np.random.default_rng(1)
    points = np.concatenate([rng.normal(c, 0.5, (70, 5)) for c in (0, 3, 6)])
    bw = estimate_bandwidth(points, quantile=0.3)
    assert estimate_bandwidth_sample(points, 0.3) == pytest.approx(bw)
    ours = mean_shift_modes(points, bw)
    theirs = MeanShift(bandwidth=bw).fit(points).cluster_centers_
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(np.sort(ours, 0), np.sort(theirs, 0), atol=1e-6)


def test_kmeans_and_meanshift_on_three_grey_levels():
    image = np.zeros((30, 30))
    image[:, 10:20], image[:, 20:] = 0.5, 1.0
    truth = (image * 2).astype(np.uint8)
    clusters = kmeans_clusters(image, 3, gray=True, rng=0)
    assert match_clusters(clusters, truth).score > 0.8
    shifted, bandwidth = meanshift_clusters(image, rng=0, bandwidth=2.0)
    assert bandwidth == 2.0 and shifted.shape == truth.shape
    with pytest.raises(ValueError, match="bandwidth"):
        meanshift_clusters(image, bandwidth=0)
    with pytest.raises(ValueError, match="`k`"):
        kmeans_clusters(image, 0)


@pytest.fixture(scope="module")
def voced():
    return open_dataset(shared_set("voced"))


def test_sweep_table_on_voced_k3_wins_as_in_the_study(voced):
    ids = voced.split["train"][:4]
    sweep = cluster_sweep([voced.image(i) for i in ids], [voced.mask(i) for i in ids],
                          (3, 4, 5), meanshift=True, ids=ids, rng=0)
    assert len(sweep) == 4 * 4
    table = sweep_table(sweep)
    assert table["setting"].tolist() == ["K=3", "K=4", "K=5", "quantile=0.3"]
    assert (table["n_images"] == 4).all()
    kmeans = table.set_index("setting")["study_dice"]
    # Three classes: each cluster beyond three scores 0, so the score falls with K.
    assert kmeans["K=3"] > kmeans["K=4"] > kmeans["K=5"]
    surplus = table.set_index("setting")["surplus_clusters"]
    assert surplus["K=4"] >= 1 and surplus["K=5"] >= 2
    assert table.set_index("setting").loc["quantile=0.3", "clusters"] > 1  # no collapse
