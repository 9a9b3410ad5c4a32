"""The automatic nucleus method (issue 17): kind detector, size estimate, channels, steps.

Unit tests on tiny hand-made arrays first; then the real sets of ``../shared/data``
(slow, skipped when absent): detector hit rate, diameter estimate, F1 floors a few
points under ``benchmarks/bench_generalise.py``'s test-split figures, and the IHC
sample bundled with scikit-image.
"""
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from cellseg_core import Params, read_image, segment
from cellseg_core.autoseg import (RELATIVE, background_correct, deep_maxima,
                                  derived_settings, drop_low_contrast,
                                  estimate_nucleus_diameter, nucleus_signal, refine_outlines,
                                  relative, resplit_large, scale_score, segment_nuclei,
                                  split_nuclei, valleys)
from cellseg_core.color import hematoxylin_only, optical_density
from cellseg_core.imagekind import KindResult, detect_kind, image_features, resolve_kind
from cellseg_core.io import read_instances
from cellseg_core.metrics import match_instances, nc_ratio
from cellseg_core.params import AutoKind
from cellseg_core.pipeline import is_automatic
from cellseg_core.presets import get_preset
from cellseg_core.scale import (equivalent_diameters, estimate_diameter, median_diameter,
                                weighted_median)
from tests._support.data import shared_set

# --- synthetic images ---------------------------------------------------------------------
def _disks(shape=(96, 96), centres=((20, 20), (20, 60), (60, 30), (70, 72)), radius=7):
    """Boolean mask of disks and their instance labels."""
    rr, cc = np.indices(shape)
    labels = np.zeros(shape, np.int32)
    for i, (r, c) in enumerate(centres, 1):
        labels[(rr - r) ** 2 + (cc - c) ** 2 <= radius ** 2] = i
    return labels

def _fluorescence(labels, rng=0):
    rng = np.random.default_rng(rng)
    img = np.where(labels > 0, 0.7, 0.05) + rng.normal(0, 0.02, labels.shape)
    return np.clip(ndi.gaussian_filter(img, 1), 0, 1).astype(np.float32)

def _stained(labels, rng=0):
    """Purple nuclei on pale pink: RGB bright-field."""
    rng = np.random.default_rng(rng)
    img = np.empty(labels.shape + (3,), np.float32)
    img[:] = (0.92, 0.80, 0.88)
    img[labels > 0] = (0.35, 0.25, 0.60)
    img += rng.normal(0, 0.01, img.shape).astype(np.float32)
    return np.clip(ndi.gaussian_filter(img, (1, 1, 0)), 0, 1)

@pytest.fixture(scope="module")
def nuclei():
    return _disks()

# --- imagekind ----------------------------------------------------------------------------
def test_detector_tells_the_three_kinds(nuclei):
    fluo = _fluorescence(nuclei)
    assert detect_kind(fluo).kind == AutoKind.FLUORESCENCE
    assert detect_kind(1 - fluo).kind == AutoKind.BRIGHTFIELD
    assert detect_kind(_stained(nuclei)).kind == AutoKind.STAINED
    # a colour fluorescence image (nuclei in the blue channel) is still fluorescence
    rgb = np.zeros(nuclei.shape + (3,), np.float32)
    rgb[..., 2] = fluo
    assert detect_kind(rgb).kind == AutoKind.FLUORESCENCE

def test_detector_confidence_and_features(nuclei):
    result = detect_kind(_fluorescence(nuclei))
    assert 0.5 < result.confidence <= 1.0
    assert result.features["polarity"] > 0.9 and result.features["background"] < 0.1
    assert json.loads(json.dumps(result.to_dict()))["kind"] == "fluorescence"
    assert result.label().startswith("fluorescence (")

def test_detector_same_answer_for_uint8_and_float_and_keeps_input(nuclei):
    fluo = _fluorescence(nuclei)
    as_uint8 = (fluo * 255).round().astype(np.uint8)
    before = as_uint8.copy()
    assert detect_kind(as_uint8).kind == detect_kind(as_uint8 / np.float32(255)).kind
    np.testing.assert_array_equal(as_uint8, before)

def test_constant_image_has_no_polarity():
    features = image_features(np.full((8, 8), 0.3, np.float32))
    assert features["polarity"] == 0.0 and features["background"] == pytest.approx(0.3)

def test_resolve_kind_forced_and_refused():
    img = np.zeros((4, 4), np.float32)
    forced = resolve_kind(img, "stained")
    assert forced.kind == AutoKind.STAINED and forced.confidence == 1.0
    assert resolve_kind(img, forced) is forced
    with pytest.raises(ValueError, match="got 'off'"):
        resolve_kind(img, "off")
    with pytest.raises(ValueError, match="not a valid AutoKind|must be"):
        resolve_kind(img, "phase")

def test_detector_refuses_bad_shapes():
    with pytest.raises(ValueError, match="expected a 2-D gray or RGB image"):
        detect_kind(np.zeros((2, 3, 4, 5)))

# --- scale --------------------------------------------------------------------------------
def test_equivalent_diameters_exact():
    labels = np.zeros((10, 10), np.int32)
    labels[:2, :2] = 1                    # 4 px
    labels[4:, 4:] = 7                    # 36 px (ids need not be consecutive)
    np.testing.assert_allclose(equivalent_diameters(labels),
                               2 * np.sqrt(np.array([4, 36]) / np.pi))
    assert np.isnan(median_diameter(np.zeros((3, 3), np.int32)))
    with pytest.raises(TypeError, match="must be integers"):
        equivalent_diameters(np.zeros((3, 3)))

@pytest.mark.parametrize("radius", [4, 8, 16])
def test_estimate_diameter_of_disks(radius):
    centres = [(3 * radius, 3 * radius), (3 * radius, 8 * radius), (8 * radius, 5 * radius)]
    labels = _disks((11 * radius, 11 * radius), centres, radius)
    estimate = estimate_diameter(_fluorescence(labels))
    assert estimate == pytest.approx(2 * radius, rel=0.15)

def test_estimate_diameter_of_touching_disks_is_one_disk():
    labels = _disks((60, 80), [(30, 25), (30, 38), (30, 51)], 8)   # a chain of three
    assert estimate_diameter(_fluorescence(labels)) == pytest.approx(16, rel=0.15)

def test_estimate_diameter_two_levels_finds_the_nucleus_inside_the_cell():
    cells = _disks((100, 100), [(30, 30), (70, 65)], 22) > 0
    nucleus = _disks((100, 100), [(30, 30), (70, 65)], 6) > 0
    density = 0.3 * cells + 0.7 * nucleus
    assert estimate_diameter(density, levels=1) > 35
    assert estimate_diameter(density, levels=2) == pytest.approx(12, rel=0.2)

def test_estimate_diameter_edge_cases():
    assert np.isnan(estimate_diameter(np.zeros((10, 10))))
    with pytest.raises(ValueError, match="`levels` must be 1 or 2"):
        estimate_diameter(np.zeros((10, 10)), levels=3)
    with pytest.raises(ValueError, match="must be 2-D"):
        estimate_diameter(np.zeros(10))
    with pytest.raises(ValueError, match="same, non-empty shape"):
        weighted_median(np.array([1.0]), np.array([1.0, 2.0]))

# --- channels -----------------------------------------------------------------------------
def test_hematoxylin_only_ignores_dab_brown_and_eosin_pink():
    brown, pink, blue = (0.55, 0.35, 0.2), (0.95, 0.6, 0.8), (0.35, 0.3, 0.6)
    h = hematoxylin_only(np.array([[brown, pink, blue]], np.float32))
    assert h.dtype == np.float32
    assert h[0, 2] < h[0, 0] - 0.15 and h[0, 2] < h[0, 1] - 0.15
    with pytest.raises(ValueError, match="needs an RGB image"):
        hematoxylin_only(np.zeros((3, 3), np.float32))

def test_optical_density():
    od = optical_density(np.array([[0.9, 0.09, 1.0, 0.0]], np.float32), 0.9)
    np.testing.assert_allclose(od[0, :3], [0.0, np.log(10), 0.0], rtol=1e-5)
    assert np.isfinite(od).all() and od[0, 3] > od[0, 1]      # black is clipped, finite
    with pytest.raises(ValueError, match="`background` must be > 0"):
        optical_density(np.ones((2, 2)), 0.0)

def test_nucleus_signal_is_bright_on_nuclei_for_every_kind(nuclei):
    inside = nuclei > 0
    for image, kind in ((_fluorescence(nuclei), "fluorescence"),
                        (_stained(nuclei), "stained"),
                        (1 - _fluorescence(nuclei), "brightfield")):
        s = nucleus_signal(image, kind)
        assert s[inside].mean() > s[~inside].mean() + 0.2, kind
    with pytest.raises(ValueError, match="`kind` must be one of"):
        nucleus_signal(_fluorescence(nuclei), "detect")

# --- steps --------------------------------------------------------------------------------
def test_derived_settings_scale_with_the_diameter():
    small, large = derived_settings(10), derived_settings(40)
    assert (small["opening_radius"], large["opening_radius"]) == (2, 6)      # 0.15 d
    assert large["valley_sigma"] == pytest.approx(4 * small["valley_sigma"])
    assert large["min_area"] == pytest.approx(16 * small["min_area"], rel=0.1)
    assert small["min_area"] == round(RELATIVE["min_area"] * np.pi / 4 * 100)
    assert small["background_size"] % 2 == 1
    with pytest.raises(ValueError, match="`diameter` must be a positive number"):
        derived_settings(0)

def test_background_correct_removes_a_ramp_and_keeps_a_spot():
    ramp = np.tile(np.linspace(0, 2, 40, dtype=np.float32), (40, 1))
    spot = ramp.copy()
    spot[18:22, 18:22] += 1
    out = background_correct(spot, 11)
    assert out[20, 20] > 0.9 and out[:10, 6:-6].max() < 0.1 and out.min() >= 0
    with pytest.raises(ValueError, match="`size` must be >= 1"):
        background_correct(spot, 0)

def test_valleys_mark_the_seam_between_touching_nuclei():
    rr, cc = np.indices((30, 44))
    pair = sum(np.exp(-((rr - 15) ** 2 + (cc - c) ** 2) / 50) for c in (15, 29))   # dip at 22
    v = valleys(pair.astype(np.float32), 1.5)
    # the seam curves up across the pair's axis: positive, largest on the seam line;
    # the nuclei themselves curve down everywhere: negative
    assert v[15, 22] == pytest.approx(0.049, abs=0.005) and int(v[15].argmax()) == 22
    assert v[15, 15] < 0 and v[15, 29] < 0
    flat = valleys(np.full((10, 10), 0.7, np.float32), 1.0)
    np.testing.assert_allclose(flat, 0, atol=1e-3)       # a flat channel has no valley
    with pytest.raises(ValueError, match="`sigma` must be > 0"):
        valleys(pair, 0)

def test_deep_maxima_keep_peaks_above_their_saddle():
    land = np.array([[0, 3, 2.5, 2.9, 0, 1, 2, 0, 0.3, 0]], float)
    # 2.9 rises only 0.4 above the saddle (2.5) to 3: merged with it at depth 0.5;
    # 2 stands alone; the 0.3 bump is a separate piece of the mask: its own marker
    markers = deep_maxima(land, land > 0, 0.5)
    assert [int(m) for m in markers[0]] == [0, 1, 0, 0, 0, 0, 2, 0, 3, 0]
    assert deep_maxima(land, land > 0, 0.3).max() == 4          # 2.9 counts at depth 0.3
    with pytest.raises(ValueError, match="`depth` must be > 0"):
        deep_maxima(land, land > 0, 0)

def test_split_of_a_touching_pair_and_of_unequal_neighbours():
    labels = _disks((30, 44), [(15, 15), (15, 28)], 8)
    mask = labels > 0
    distance = ndi.distance_transform_edt(mask)
    split = split_nuclei(mask, distance, 1.0)
    assert split.max() == 2 and (split > 0).sum() == mask.sum()
    assert set(np.unique(split[15, [15, 28]])) == {1, 2}
    # a neck shallower than the depth is not a split (the smaller disk rises 6 - 4
    # above the neck) ...
    unequal = (_disks((30, 44), [(15, 15)], 8) > 0) | (_disks((30, 44), [(15, 27)], 6) > 0)
    unequal_distance = ndi.distance_transform_edt(unequal)
    assert split_nuclei(unequal, unequal_distance, 1.0).max() == 2
    assert split_nuclei(unequal, unequal_distance, 2.5).max() == 1
    # ... but a separate piece without a deep maximum is seeded at its own maximum
    apart = _disks((30, 80), [(15, 15)], 8) + _disks((30, 80), [(15, 60)], 6)
    assert split_nuclei(apart > 0, ndi.distance_transform_edt(apart > 0), 50.0).max() == 2
    assert split_nuclei(np.zeros((5, 5), bool), np.zeros((5, 5)), 1.0).max() == 0
    # a compact watershed gives the same pair on symmetric disks
    compact = split_nuclei(mask, distance, 1.0, compactness=0.05)
    assert compact.max() == 2 and (compact > 0).sum() == mask.sum()

def test_resplit_large_splits_only_objects_above_the_area():
    chain = _disks((30, 70), [(15, 15), (15, 29), (15, 43)], 8)    # three touching disks
    merged = (chain > 0).astype(np.int32)
    small = _disks((30, 70), [(15, 62)], 5)
    labels = np.where(small > 0, 2, merged)
    disk = np.pi * 8 ** 2
    out = resplit_large(labels, 1.5 * disk, 1.0)
    assert out.max() == 4                                         # 3 disks + the small one
    assert len(np.unique(out[15, [15, 29, 43]])) == 3
    np.testing.assert_array_equal(out > 0, labels > 0)            # no pixel gained or lost
    assert len(np.unique(out[small > 0])) == 1                    # the small one untouched
    # above every object's area: nothing changes but the numbering
    np.testing.assert_array_equal(resplit_large(labels, 10 * disk, 1.0), labels)

def test_bright_field_has_its_own_contrast_check():
    assert relative("brightfield")["min_contrast"] > RELATIVE["min_contrast"]
    assert relative("fluorescence") == RELATIVE
    assert relative("stained")["resplit_area"] > 0 == RELATIVE["resplit_area"]

def test_refine_outlines_follows_each_nucleus_own_brightness():
    sig = np.zeros((1, 17))
    sig[0, 1:6] = [0.3, 0.8, 1.0, 0.8, 0.3]           # bright nucleus
    sig[0, 10:15] = [0.06, 0.16, 0.2, 0.16, 0.06]     # dim nucleus, same shape
    labels = np.zeros((1, 17), np.int32)
    labels[0, 3], labels[0, 12] = 1, 2
    out = refine_outlines(labels, sig, 3, 0.5)
    np.testing.assert_array_equal(out[0], [0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 2, 2, 2, 0, 0, 0])
    assert refine_outlines(np.zeros((2, 2), int), np.zeros((2, 2)), 1, 0.5).max() == 0

def test_drop_low_contrast_keeps_numbering_consecutive():
    sig = np.zeros((3, 11))
    sig[1, 2], sig[1, 5], sig[1, 8] = 1.0, 0.9, 0.2
    labels = np.zeros((3, 11), np.int32)
    labels[1, 2], labels[1, 5], labels[1, 8] = 1, 2, 3
    out = drop_low_contrast(labels, sig, 1, 0.5)
    assert out.max() == 2 and out[1, 8] == 0

# --- the method ---------------------------------------------------------------------------
@pytest.mark.parametrize("make, kind", [(_fluorescence, "fluorescence"),
                                        (_stained, "stained"),
                                        (lambda n: 1 - _fluorescence(n), "brightfield")])
def test_segment_nuclei_finds_every_disk_of_every_kind(nuclei, make, kind):
    image = make(nuclei)
    before = image.copy()
    found = segment_nuclei(image)
    np.testing.assert_array_equal(image, before)                   # input not modified
    assert found.kind.kind.value == kind and found.diameter_estimated
    assert found.diameter == pytest.approx(14, rel=0.2)
    match = match_instances(found.instances, nuclei, 0.5)
    assert match["tp"] == 4 and match["fp"] == 0, match
    assert found.instances.dtype == np.int32 and found.instances.shape == nuclei.shape

def test_segment_nuclei_splits_touching_nuclei_at_their_scale():
    for radius in (6, 12):
        labels = _disks((12 * radius, 12 * radius),
                        [(6 * radius, 4 * radius), (6 * radius, int(5.8 * radius))], radius)
        found = segment_nuclei(_fluorescence(labels))
        assert found.instances.max() == 2, radius

def test_segment_nuclei_given_diameter_and_large_nuclei_at_reduced_scale():
    labels = _disks((400, 400), [(100, 100), (100, 290), (290, 200)], 40)
    found = segment_nuclei(_fluorescence(labels), "fluorescence", 80)
    assert not found.diameter_estimated and found.diameter == 80
    assert found.settings["factor"] == 3                           # worked at 1/3 scale
    match = match_instances(found.instances, labels, 0.5)
    assert match["tp"] == 3 and match["fp"] == 0
    assert found.kind.confidence == 1.0                            # forced kind

def _coarse_chromatin(seed=1):
    """Six 40-px stained nuclei whose pale interior holds dark chromatin clumps."""
    rng = np.random.default_rng(seed)
    labels = _disks((200, 240), [(50, 50), (50, 130), (50, 200), (140, 40), (140, 120),
                                 (145, 195)], 20)
    clumps = ndi.gaussian_filter(rng.random(labels.shape), 1.5)
    clumps = clumps > np.percentile(clumps, 70)
    img = np.empty(labels.shape + (3,), np.float32)
    img[:] = (0.92, 0.80, 0.88)
    img[labels > 0] = (0.80, 0.68, 0.85)
    img[(labels > 0) & clumps] = (0.35, 0.25, 0.60)
    img += rng.normal(0, 0.01, img.shape).astype(np.float32)
    return np.clip(ndi.gaussian_filter(img, (1, 1, 0)), 0, 1), labels

def test_scale_search_on_stained_tissue_keeps_whole_nuclei_over_fragments():
    image, labels = _coarse_chromatin()
    start = estimate_nucleus_diameter(image, "stained")
    at_estimate = segment_nuclei(image, "stained", start)
    assert match_instances(at_estimate.instances, labels)["fp"] >= 3   # clumps as nuclei
    found = segment_nuclei(image, "stained")
    assert found.diameter_estimated and found.diameter != start
    assert found.diameter in [start * s for s in relative("stained")["scales"]]
    match = match_instances(found.instances, labels)
    assert match["tp"] == 6 and match["fp"] == 0, match
    assert scale_score(found.instances, found.diameter, RELATIVE["scale_penalty"]) > \
        scale_score(at_estimate.instances, start, RELATIVE["scale_penalty"])
    # The diameter shown is the one used: typed back in, it gives the same nuclei.
    again = segment_nuclei(image, "stained", found.diameter)
    np.testing.assert_array_equal(again.instances, found.instances)

def test_scale_search_only_where_the_size_is_estimated_on_stained_tissue(monkeypatch):
    from cellseg_core import autoseg
    tried = []
    real = autoseg._nuclei_at
    monkeypatch.setattr(autoseg, "_nuclei_at",
                        lambda signal, d, kind: tried.append((kind.value, d)) or
                        real(signal, d, kind))
    image, _ = _coarse_chromatin()
    segment_nuclei(image, "stained", 30)                           # given: used as it is
    assert tried == [("stained", 30.0)]
    tried.clear()
    segment_nuclei(_fluorescence(_disks()))                         # other kinds: no search
    assert len(tried) == 1 and tried[0][0] == "fluorescence"
    tried.clear()
    found = segment_nuclei(image, "stained")
    assert len(tried) == len(relative("stained")["scales"])        # the search's own result
    assert found.diameter in [d for _, d in tried]

def test_scale_search_on_a_large_image_looks_at_four_windows(monkeypatch):
    from cellseg_core import autoseg
    shapes = []
    real = autoseg._nuclei_at
    monkeypatch.setattr(autoseg, "_nuclei_at",
                        lambda signal, d, kind: shapes.append(signal.shape) or
                        real(signal, d, kind))
    monkeypatch.setattr(autoseg, "_SEARCH_PIXELS", 200 * 200)
    image, labels = _coarse_chromatin()
    big = np.concatenate([image, image], axis=1)                   # 200 x 480
    found = segment_nuclei(big, "stained")
    n = len(relative("stained")["scales"])
    assert shapes[:-1] == [(100, 100)] * (4 * n) and shapes[-1] == (200, 480)
    assert match_instances(found.instances, np.concatenate([labels, labels + 6 * (labels > 0)],
                                                           axis=1))["f1"] == 1.0

def test_segment_nuclei_on_a_blank_image():
    found = segment_nuclei(np.zeros((32, 32), np.float32))
    assert found.instances.max() == 0 and found.diameter > 0

# --- through segment() and the presets ----------------------------------------------------
def test_automatic_presets_record_what_they_resolved(nuclei):
    seg = segment(_fluorescence(nuclei), get_preset("auto-nuclei"))
    assert is_automatic(get_preset("auto-nuclei"))
    assert set(np.unique(seg.labels)) == {0, 2} and seg.nuclei.max() == 4
    info = json.loads(json.dumps(seg.auto))                        # JSON-ready
    assert info["kind"] == "fluorescence" and info["confidence"] > 0.5
    assert info["diameter"] == pytest.approx(14, rel=0.2) and info["diameter_estimated"]
    assert info["nuclei_by"] == "automatic" and "valley_sigma" in info["settings"]
    assert seg.summary["n_nuclei"] == 4 and len(seg.objects) == 4
    # the true disks have 149 px (diameter 13.8); outlines within a pixel of them
    assert seg.objects["equivalent_diameter"].between(12.5, 15.5).all()
    fixed = segment(_fluorescence(nuclei), get_preset("lab01"))
    assert fixed.auto is None

def test_diameter_override_is_used_and_recorded(nuclei):
    params = get_preset("auto-nuclei").with_values({"auto.diameter": 20})
    seg = segment(_fluorescence(nuclei), params)
    assert seg.auto["diameter"] == 20 and not seg.auto["diameter_estimated"]
    assert Params.from_json(params.to_json()) == params

def test_auto_cytology_gives_three_classes_on_a_cytology_image():
    cells = _disks((100, 100), [(30, 30), (70, 65)], 22) > 0
    nucleus = _disks((100, 100), [(30, 30), (70, 65)], 10) > 0   # 317 px > the 200 px floor
    rgb = np.empty((100, 100, 3), np.float32)
    rgb[:] = (0.95, 0.95, 0.95)
    rgb[cells] = (0.75, 0.72, 0.85)
    rgb[nucleus] = (0.3, 0.25, 0.5)
    seg = segment(rgb, get_preset("auto-cytology"))
    assert seg.auto["kind"] == "stained" and seg.auto["nuclei_by"] == "cell threshold"
    assert set(np.unique(seg.labels)) == {0, 1, 2} and seg.nuclei.max() == 2
    # on a fluorescence image auto-cytology has no cytoplasm to give
    fluo = segment(_fluorescence(_disks()), get_preset("auto-cytology"))
    assert set(np.unique(fluo.labels)) == {0, 2}

def test_auto_fluorescence_forces_the_kind(nuclei):
    seg = segment(_fluorescence(nuclei), get_preset("auto-fluorescence"))
    assert seg.auto["kind"] == "fluorescence" and seg.auto["confidence"] == 1.0

# --- the IHC sample (bundled with scikit-image, no download) ------------------------------
def test_ihc_sample_nuclei_are_hematoxylin_not_dab():
    import skimage
    from skimage.color import rgb2hed
    from skimage.data import immunohistochemistry
    assert (Path(skimage.__file__).parent / "data" / "ihc.png").is_file()   # offline
    image = immunohistochemistry()
    hed = rgb2hed(image)
    h, dab = hed[..., 0], hed[..., 2]
    before = segment(image, get_preset("auto-cytology").with_values({"auto.kind": "off"}))
    seg = segment(image, get_preset("auto-cytology"))
    assert seg.auto["dab"] and seg.auto["nuclei_by"] == "automatic"
    nucleus, cytoplasm = seg.labels == 2, seg.labels == 1
    # measured: N/C 0.53 (the fixed rule: 1.47); H-positive share 0.98 (0.64); DAB
    # nucleus / cytoplasm 0.79 (3.5)
    assert 0.2 < nc_ratio(seg.labels) < 0.8 < nc_ratio(before.labels)
    assert np.mean(h[nucleus] > np.median(h)) > 0.9
    assert dab[nucleus].mean() < dab[cytoplasm].mean()
    assert dab[before.labels == 2].mean() > 2 * dab[before.labels == 1].mean()
    assert 400 < seg.nuclei.max() < 650       # measured 439 (533 before the scale search)

# --- the real sets (slow) ---------------------------------------------------------------
def _set(name):
    folder = shared_set(name)
    return folder, json.loads((folder / "split.json").read_text())["test"]

KINDS = {"dsb2018_fluo": "fluorescence", "dsb2018_histo": "stained",
         "dsb2018_brightfield": "brightfield", "usiigaci_phase": "brightfield"}

@pytest.mark.slow
@pytest.mark.parametrize("name", list(KINDS))
def test_detector_on_the_test_splits(name):
    folder, ids = _set(name)
    kinds = [detect_kind(read_image(folder / "images" / f"{i:03d}.png")).kind.value
             for i in ids]
    assert np.mean([k == KINDS[name] for k in kinds]) >= 0.95, kinds

@pytest.mark.slow
def test_detector_calls_voced_stained():
    folder, ids = _set("voced")
    kinds = [detect_kind(read_image(folder / "images" / f"{i:03d}.png")).kind.value
             for i in ids]
    assert kinds.count("stained") == len(ids)

#: Test-split figures of benchmarks/bench_generalise.py (auto-nuclei): F1@0.5 and the
#: share of images whose estimated diameter is within ±25 % of the true median (the
#: textbook baseline's F1: 0.793, 0.566, 0.033). The floors sit a few points under.
#: Issue 17 asks F1 >= 0.85 / 0.70 / 0.70 and diameters within ±25 % on 90 % of the
#: images: F1 met on fluorescence and bright-field; the diameter on fluorescence only.
MEASURED = {"dsb2018_fluo": (0.874, 0.98), "dsb2018_histo": (0.698, 0.72),
            "dsb2018_brightfield": (0.733, 0.75)}

@pytest.mark.slow
@pytest.mark.parametrize("name", list(MEASURED))
def test_auto_nuclei_floors_on_the_test_splits(name):
    folder, ids = _set(name)
    f1, within = [], []
    for i in ids:
        truth = read_instances(folder / "labels" / f"{i:03d}.tif")
        seg = segment(read_image(folder / "images" / f"{i:03d}.png"), get_preset("auto-nuclei"))
        f1.append(match_instances(seg.nuclei, truth)["f1"])
        within.append(abs(seg.auto["diameter"] / median_diameter(truth) - 1) <= 0.25)
    f1_measured, within_measured = MEASURED[name]
    assert np.mean(f1) > f1_measured - 0.03, np.mean(f1)
    assert np.mean(within) >= within_measured - 0.05, np.mean(within)
