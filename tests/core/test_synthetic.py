"""Synthetic data: determinism, shapes, constants, the model's formulas, exact masks."""
import math

import numpy as np
import pytest
from scipy import ndimage as ndi

from cellseg_core import segment, score_labels
from cellseg_core.data import synthetic as sy
from cellseg_core.color import gray
from cellseg_core.presets import get_preset


def test_seed_constants():
    assert sy.SEED == 7493418
    assert sy.IMAGE_SIZE == 128
    assert sy.N_CELLS == 8
    assert sy.CELL_SIGMA == 6.0
    assert sy.CELL_BRIGHTNESS == 1.0
    assert sy.NOISE_SCALE == 0.15
    assert sy.MIN_SEPARATION == 24
    assert sy.SMOOTH_SIGMA == 2.0
    assert sy.THRESHOLD == 0.50
    assert sy.MIN_CELL_SIZE == 30


# --- fluorescence ---------------------------------------------------------------------
def test_fluorescence_defaults_shapes_dtypes():
    s = sy.fluorescence_image()
    assert s.image.shape == (128, 128) and s.image.dtype == np.float32
    assert s.labels.shape == (128, 128) and s.labels.dtype == np.int32
    assert s.centres.shape == (8, 2)
    assert s.dim.shape == (8,) and s.dim.dtype == bool and not s.dim.any()
    np.testing.assert_array_equal(s.brightness, 1.0)
    assert s.labels.max() == 8 and set(np.unique(s.labels)) == set(range(9))


def test_fluorescence_deterministic_with_rng():
    a, b = sy.fluorescence_image(5), sy.fluorescence_image(5)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.centres, b.centres)
    c = sy.fluorescence_image(6)
    assert not np.array_equal(a.centres, c.centres)
    # A Generator is used as is (and advanced).
    gen = np.random.default_rng(5)
    np.testing.assert_array_equal(sy.fluorescence_image(gen).image, a.image)
    assert not np.array_equal(sy.fluorescence_image(gen).image, a.image)


def test_noise_clipped_at_zero_not_at_one():
    s = sy.fluorescence_image()
    assert s.image.min() == 0.0
    assert s.image.max() > 1.0   # peaks plus noise exceed 1 and are kept
    noise = sy.noise_image()
    assert noise.shape == (128, 128) and noise.dtype == np.float32
    assert noise.min() == 0.0
    assert abs((noise == 0).mean() - 0.5) < 0.02
    # Mean of a clipped normal: sigma / sqrt(2 pi).
    assert noise.mean() == pytest.approx(0.15 / math.sqrt(2 * math.pi), rel=0.03)
    np.testing.assert_array_equal(sy.noise_image(3), sy.noise_image(3))


def test_blob_formula_without_noise():
    s = sy.fluorescence_image(2, n_cells=1, noise=0.0)
    (r0, c0), = s.centres
    rows, cols = np.mgrid[:128, :128]
    expected = np.exp(-((rows - r0) ** 2 + (cols - c0) ** 2) / (2 * 6.0 ** 2))
    np.testing.assert_allclose(s.image, expected, atol=1e-6)


@pytest.mark.parametrize("rng", [sy.SEED, 0, 1, 2, 3])
def test_min_separation_and_border(rng):
    s = sy.fluorescence_image(rng, n_dim=3)
    d = np.hypot(*(s.centres[:, None] - s.centres[None]).transpose(2, 0, 1))
    assert d[~np.eye(len(d), dtype=bool)].min() >= sy.MIN_SEPARATION
    margin = 3 * sy.CELL_SIGMA
    assert s.centres.min() >= margin and s.centres.max() <= 127 - margin


def test_too_many_cells_raise():
    with pytest.raises(ValueError, match="could not place 60 cells"):
        sy.fluorescence_image(0, n_cells=60)
    with pytest.raises(ValueError, match="`n_cells`"):
        sy.fluorescence_image(0, n_cells=-1)
    with pytest.raises(ValueError, match="`sigma`"):
        sy.fluorescence_image(0, sigma=0)


def test_ground_truth_extent_is_half_maximum_disc():
    s = sy.fluorescence_image()
    sizes = np.bincount(s.labels.ravel())[1:]
    # Separated cells: pixels within sigma·sqrt(2 ln 2) of the centre.
    area = math.pi * 2 * math.log(2) * sy.CELL_SIGMA ** 2
    np.testing.assert_allclose(sizes, area, rtol=0.06)
    rows, cols = np.rint(s.centres).astype(int).T
    np.testing.assert_array_equal(s.labels[rows, cols], np.arange(1, 9))


def test_gradient_formula():
    s = sy.fluorescence_image(1, n_cells=0, noise=0.0, gradient=0.2)
    cols = np.arange(128)
    np.testing.assert_allclose(s.image, np.broadcast_to(0.2 * cols / 128, (128, 128)),
                               atol=1e-7)
    flat = sy.fluorescence_image(1, noise=0.0).image
    tilted = sy.fluorescence_image(1, noise=0.0, gradient=0.2).image
    np.testing.assert_allclose(tilted - flat, np.broadcast_to(0.2 * cols / 128, (128, 128)),
                               atol=1e-6)


def test_dim_population():
    plain = sy.fluorescence_image(4)
    s = sy.fluorescence_image(4, n_dim=3)
    assert s.dim.sum() == 3 and len(s.dim) == 11
    np.testing.assert_array_equal(s.brightness[s.dim], 0.4)
    np.testing.assert_array_equal(s.brightness[~s.dim], 1.0)
    # The bright cells do not move when a dim population is added.
    np.testing.assert_array_equal(s.centres[~s.dim], plain.centres)
    # Dim cells peak near 0.4, below the seed's threshold.
    clean = sy.fluorescence_image(4, n_dim=3, noise=0.0).image
    rows, cols = np.rint(s.centres[s.dim]).astype(int).T
    np.testing.assert_allclose(clean[rows, cols], 0.4, atol=0.02)
    assert s.labels.max() == 11


def test_touching_pair_geometry_and_labels():
    s = sy.touching_pair()
    assert np.hypot(*(s.centres[0] - s.centres[1])) == pytest.approx(14.0)
    assert s.labels.max() == 2
    sizes = np.bincount(s.labels.ravel())[1:]
    assert sizes[0] == pytest.approx(sizes[1], abs=4)
    np.testing.assert_allclose(s.centres.mean(axis=0), 63.5)


def test_seed_params():
    p = sy.seed_params()
    assert (p.get("blur.sigma"), p.get("threshold.t_object"),
            p.get("cleanup.min_nucleus_size")) == (2.0, 0.5, 30)


def test_fluorescence_set():
    images = sy.fluorescence_set(6)
    assert len(images) == 6
    np.testing.assert_array_equal(images[0].image, sy.fluorescence_image().image)
    assert [int(s.dim.sum()) for s in images] == [0, 3, 0, 3, 0, 3]
    # First images do not depend on n.
    np.testing.assert_array_equal(sy.fluorescence_set(3)[2].image, images[2].image)
    assert sy.fluorescence_set(0) == []


# --- cytology ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cyto_set():
    return sy.cytology_set(24)


def test_cytology_shapes_dtypes_and_determinism():
    a = sy.cytology_image(3)
    assert a.image.shape == (256, 256, 3) and a.image.dtype == np.float32
    assert a.mask.shape == (256, 256) and a.mask.dtype == np.uint8
    assert 0.0 <= a.image.min() and a.image.max() <= 1.0
    b = sy.cytology_image(3)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert not np.array_equal(a.image, sy.cytology_image(4).image)
    small = sy.cytology_image(3, size=64)
    assert small.image.shape == (64, 64, 3)
    with pytest.raises(ValueError, match="`nc_ratio`"):
        sy.cytology_image(0, nc_ratio=-1.0)
    with pytest.raises(ValueError, match="`size`"):
        sy.cytology_image(0, size=8)


def test_cytology_set_deterministic_and_prefix_stable(cyto_set):
    assert len(cyto_set) == 24
    short = sy.cytology_set(3)
    for a, b in zip(short, cyto_set):
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.mask, b.mask)


def test_masks_consistent(cyto_set):
    for s in cyto_set:
        assert set(np.unique(s.mask)) == {0, 1, 2}
        nucleus = s.mask == 2
        # Nucleus inside cytoplasm: never touches background, even diagonally.
        assert not (ndi.binary_dilation(nucleus, np.ones((3, 3), bool)) & (s.mask == 0)).any()


@pytest.mark.parametrize("ratio", [0.12, 0.5, 1.0, 1.8])
def test_nc_ratio_target(ratio):
    # Seeds whose images hold a single cell: the mask hits the target.
    hits = []
    for rng in range(6):
        s = sy.cytology_image(rng, nc_ratio=ratio)
        if ndi.label(s.mask > 0)[1] == 1:
            hits.append(s.nc_ratio)
    assert hits
    np.testing.assert_allclose(hits, ratio, rtol=0.02)


def test_nc_range_spans_normal_to_malignant(cyto_set):
    ratios = np.array([s.nc_ratio for s in cyto_set])
    assert ratios.min() < 0.15
    assert (ratios < 0.3).sum() >= 6
    assert (ratios > 1.0).sum() >= 3
    assert ratios.max() > 1.5


def test_cytology_appearance(cyto_set):
    g = [gray(s.image) for s in cyto_set]
    background = np.concatenate([x[s.mask == 0] for x, s in zip(g, cyto_set)])
    cytoplasm = np.concatenate([x[s.mask == 1] for x, s in zip(g, cyto_set)])
    nucleus = np.concatenate([x[s.mask == 2] for x, s in zip(g, cyto_set)])
    assert np.median(background) > 0.98                     # bright background
    assert 0.6 < np.median(cytoplasm) < 0.9                  # lighter than nucleus
    assert cytoplasm.std() > 0.08                            # textured
    assert np.median(nucleus) < 0.4                          # dark nucleus
    assert nucleus.std() > 0.06                              # uneven staining
    # Debris: dark specks in the background that are not in the mask.
    assert sum((x[s.mask == 0] < 0.7).sum() > 0 for x, s in zip(g, cyto_set)) >= 20
    # Colour: blue above red in the nucleus (purple), cytoplasm not gray.
    rgb_nuc = np.concatenate([s.image[s.mask == 2] for s in cyto_set]).mean(axis=0)
    assert rgb_nuc[2] > rgb_nuc[0] + 0.1


def test_presets_give_plausible_dice_and_cleanup_helps(cyto_set):
    scores = {}
    for name in ("lab01", "lab02", "lab03v2", "auto-cytology"):
        p = get_preset(name)
        scores[name] = np.mean([score_labels(segment(s.image, p).labels, s.mask)["mean_dice"]
                                for s in cyto_set])
    for name, value in scores.items():
        assert 0.5 <= value <= 0.95, (name, value)
    assert scores["lab03v2"] > scores["lab02"] + 0.005
    assert scores["lab02"] > scores["lab01"]
