"""The seed's experiments (cellseg_core.experiments): counts and derivations."""
import math

import numpy as np
import pytest

from cellseg_core import experiments as E
from cellseg_core.data.synthetic import N_CELLS, SEED, THRESHOLD, fluorescence_image, seed_params


# --- derivations: formulas ------------------------------------------------------------
def test_formulas_exact_values():
    assert E.smoothed_peak(1.0, 6.0, 2.0) == pytest.approx(0.9)
    assert E.smoothed_peak(0.4, 6.0, 2.0) == pytest.approx(0.36)
    assert E.smoothed_noise_std(0.15, 2.0) == pytest.approx(0.15 / (4 * math.sqrt(math.pi)))
    assert E.midpoint_intensity(0.0, 1.0, 6.0) == pytest.approx(2.0)
    assert E.midpoint_intensity(14.0, 1.0, 6.0) == pytest.approx(2 * math.exp(-196 / 288))
    # Two smoothed blobs (B' 0.9, sigma'^2 40) meet the 0.5 threshold at ~20.2 px.
    assert E.merge_distance(0.5) == pytest.approx(math.sqrt(320 * math.log(3.6)))
    assert E.merge_distance(2.0) == 0.0
    assert math.isnan(E.object_mean_intensity(0.95))
    with pytest.raises(ValueError, match="`smooth`"):
        E.smoothed_noise_std(0.1, 0.0)


def test_smoothed_peak_matches_blurred_cells():
    table = E.peak_check()
    np.testing.assert_allclose(table["measured_peak"], table["predicted_peak"], rtol=0.01)
    dim = E.peak_check(n_dim=3)
    assert dim["dim"].sum() == 3
    np.testing.assert_allclose(dim["measured_peak"], dim["predicted_peak"], rtol=0.015)


def test_smoothed_peak_with_gradient_adds_the_ramp():
    table = E.peak_check(gradient=0.2)
    np.testing.assert_allclose(table["measured_peak"], table["predicted_peak"], rtol=0.01)
    assert table["predicted_peak"].max() > 0.9 + 0.1  # a cell on the bright side


def test_smoothed_noise_std_matches_measured():
    floor = E.noise_floor(THRESHOLD)
    # The formula on the noise image's own std (clipped at 0, so below sigma_n).
    assert floor["smoothed_std"] == pytest.approx(floor["predicted_std"], rel=0.1)
    # Unclipped white noise (on a level of 1, as intensities are >= 0) against sigma_n.
    p = seed_params()
    from cellseg_core.pipeline import preprocess
    white = np.random.default_rng(0).normal(1.0, 0.15, (256, 256)).astype(np.float32)
    assert preprocess(white, p)[1].std() == pytest.approx(E.smoothed_noise_std(0.15), rel=0.1)


# --- 4 noise floor --------------------------------------------------------------------
def test_noise_floor_seed_numbers():
    low = E.noise_floor(0.05)
    assert low["without_filter"] == 4          # the seed's 4 false cells at 0.05
    assert low["with_filter"] < low["without_filter"]
    op = E.noise_floor(0.50)
    assert op["without_filter"] == op["with_filter"] == 0
    curve = E.noise_floor_curve([0.05, 0.5])
    assert curve["without_filter"].tolist() == [4, 0]


# --- 5 noise sweep --------------------------------------------------------------------
def test_noise_sweep_counts_the_seed_image_right_at_015():
    counts = E.noise_sweep([0.05, 0.15, 0.25], n_images=4)
    assert len(counts) == 12
    # Image 0 at 0.15 is the seed image.
    seed_row = counts[(counts.level == 0.15) & (counts.image == 0)]
    assert seed_row["count"].item() == N_CELLS
    summary = E.sweep_summary(counts)
    at = summary.set_index("level").loc[0.15]
    assert at["mean"] == N_CELLS and at["std"] == 0.0 and at["share_exact"] == 1.0
    assert E.failing_level(summary) is None
    assert summary["smoothed_noise_std"].tolist() == pytest.approx(
        [E.smoothed_noise_std(v) for v in (0.05, 0.15, 0.25)])


def test_noise_sweep_marks_a_failing_level_and_reports_progress():
    calls = []
    counts = E.noise_sweep([0.15, 2.0], n_images=2, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (4, 4)
    assert E.failing_level(E.sweep_summary(counts)) == 2.0
    with pytest.raises(ValueError, match="`levels`"):
        E.noise_sweep([], n_images=1)


# --- 6 touching cells -----------------------------------------------------------------
def test_touching_pair_labelling_merges_watershed_splits():
    r = E.touching_experiment(14.0)
    assert (r["n_plain"], r["n_split"]) == (1, 2)
    assert r["midpoint_raw"] == pytest.approx(2 * math.exp(-196 / 288))
    assert r["midpoint_measured"] == pytest.approx(r["midpoint_predicted"], rel=0.01)
    assert r["midpoint_predicted"] > r["threshold"]  # why labelling merges them


def test_pair_merges_below_the_predicted_distance_only():
    d_merge = E.merge_distance(THRESHOLD)
    sweep = E.pair_distance_sweep([d_merge - 3, d_merge + 3])
    assert sweep["plain"].tolist() == [1, 2]
    np.testing.assert_allclose(sweep["midpoint_measured"], sweep["midpoint_predicted"],
                               rtol=0.01)


# --- 7 uneven illumination ------------------------------------------------------------
def test_local_threshold_restores_the_count_under_the_gradient():
    r = E.illumination_experiment()
    assert r["n_global_even"] == N_CELLS      # the global threshold works on even light
    assert r["n_global"] != N_CELLS           # ... and fails under the 0.2 gradient
    assert r["n_local"] == N_CELLS and r["n_local_even"] == N_CELLS
    assert r["match_local"]["f1"] > r["match_global"]["f1"]


@pytest.mark.parametrize("rng", [1, 2])
def test_local_threshold_count_on_other_seeds(rng):
    assert E.illumination_experiment(rng=rng)["n_local"] == N_CELLS


# --- 8 bright and dim cells -----------------------------------------------------------
def test_dim_bright_precision_recall_at_defaults():
    r = E.dim_bright_experiment(n_images=4)
    scores = r["scores"].set_index("class")
    assert scores.loc["dim", "n_true"] == 4 * E.N_DIM
    assert (scores["precision"] >= 0.9).all() and (scores["recall"] >= 0.9).all(), scores
    # Measured mean intensities near the derivation's.
    objects = r["objects"]
    for cls in ("bright", "dim"):
        measured = objects.loc[objects["true"] == cls, "mean_intensity"].mean()
        assert measured == pytest.approx(r[f"predicted_{cls}"], abs=0.03)
    assert r["peak_dim"] == pytest.approx(0.36) and r["peak_dim"] < THRESHOLD


def test_seed_threshold_misses_the_dim_cells():
    r = E.dim_bright_experiment(seed_params().with_values(E.SPLIT_VALUES))
    scores = r["scores"].set_index("class")
    assert scores.loc["dim", "recall"] == 0.0
    assert scores.loc["bright", "recall"] == 1.0


# --- helpers --------------------------------------------------------------------------
def test_match_centres_one_centre_per_object():
    inst = np.zeros((10, 10), int)
    inst[0:3, 0:3] = 1      # holds centre 0
    inst[5:9, 0:9] = 2      # holds centres 1 and 2: a merge
    inst[0:2, 6:9] = 3      # no centre: false detection
    owner = E.match_centres(inst, np.array([[1.0, 1.0], [6.0, 1.0], [6.0, 7.0]]))
    assert owner.tolist() == [0, -1, -1]
    assert E.match_centres(np.zeros((4, 4), int), np.empty((0, 2))).size == 0


def test_sweep_seeds_start_with_the_seed():
    seeds = E.sweep_seeds(3)
    assert seeds[0] == SEED and len(seeds) == 3
    a = fluorescence_image(seeds[1]).image
    assert np.array_equal(a, fluorescence_image(E.sweep_seeds(5)[1]).image)
