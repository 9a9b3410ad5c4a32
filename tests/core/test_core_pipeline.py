"""segment(): intermediates, modes, presets, and that the input is never modified."""
import numpy as np
import pandas as pd
import pytest

from cellseg_core import Params, Segmentation, segment
from cellseg_core.pipeline import labels_from_channel, preprocess
from cellseg_core.presets import PRESETS, get_preset


def _cells_image(size=64):
    """Two dark-nucleus cells on a bright background, as RGB float32."""
    rr, cc = np.indices((size, size))
    img = np.full((size, size), 0.95, np.float32)
    for r, c in ((20, 20), (40, 44)):
        d2 = (rr - r) ** 2 + (cc - c) ** 2
        img[d2 <= 12 ** 2] = 0.7
        img[d2 <= 5 ** 2] = 0.2
    return np.repeat(img[..., None], 3, axis=2)


IMAGE = _cells_image()


def test_segmentation_intermediates_present():
    seg = segment(IMAGE, get_preset("lab01"))
    assert isinstance(seg, Segmentation)
    for name in ("labels", "raw"):
        arr = getattr(seg, name)
        assert arr.dtype == np.uint8 and arr.shape == (64, 64)
    assert seg.nuclei.dtype == np.int32 and seg.nuclei.max() == 2
    assert seg.channel.shape == seg.blurred.shape == (64, 64)
    assert seg.channel.dtype == np.float32
    assert seg.thresholds == {"t_nuc": 0.45, "t_bg": 0.85}
    assert seg.params == get_preset("lab01")
    np.testing.assert_array_equal(seg.labels, seg.raw)   # lab01 has no clean-up
    assert set(np.unique(seg.labels)) == {0, 1, 2}
    assert seg.cells.dtype == np.int32 and set(np.unique(seg.cells)) == {0, 1, 2}
    assert isinstance(seg.objects, pd.DataFrame) and len(seg.objects) == 2
    assert seg.summary["n_nuclei"] == 2
    assert seg.summary["nucleus_area"] == int((seg.labels == 2).sum())
    nc = seg.objects["nc_ratio"].to_numpy()
    # each cell: nucleus disk r=5 (81 px) in a disk r=12 (441 px)
    np.testing.assert_allclose(nc, 81 / (441 - 81))


def test_default_params_are_lab01_thresholds():
    np.testing.assert_array_equal(segment(IMAGE).labels, segment(IMAGE, PRESETS["lab01"]).labels)


def test_blur_and_cleanup_show_up_in_intermediates():
    noisy = IMAGE.copy()
    noisy[5, 5] = 0.1                      # a speck of "nucleus" in the background
    p = get_preset("lab01").with_values({"blur.kind": "median", "blur.size": 3})
    seg = segment(noisy, p)
    assert not np.array_equal(seg.channel, seg.blurred)
    assert seg.labels[5, 5] == 0
    p = get_preset("lab01").with_values({"cleanup.min_nucleus_size": 10,
                                         "cleanup.min_cytoplasm_size": 10})
    seg = segment(noisy, p)
    assert seg.raw[5, 5] == 2 and seg.labels[5, 5] == 0


@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_segment_does_not_modify_input(name, dtype):
    image = (IMAGE * 255).round().astype(np.uint8) if dtype == np.uint8 else IMAGE.astype(dtype)
    before = image.copy()
    seg = segment(image, PRESETS[name])
    seg.objects, seg.summary  # lazy parts too
    np.testing.assert_array_equal(image, before)
    assert seg.labels.shape == image.shape[:2]


def test_gray_input_and_uint8_input_give_the_same_labels():
    gray8 = (IMAGE[..., 0] * 255).round().astype(np.uint8)
    a = segment(gray8, PRESETS["lab02"]).labels
    b = segment(gray8.astype(np.float32) / np.float32(255), PRESETS["lab02"]).labels
    np.testing.assert_array_equal(a, b)


def test_fluorescence_mode_gives_0_and_2():
    fluo = 1 - IMAGE[..., 0]
    seg = segment(fluo, get_preset("auto-fluorescence"))
    assert set(np.unique(seg.labels)) <= {0, 2}
    assert seg.nuclei.max() == 2
    assert "t_object" in seg.thresholds


def test_preprocess_and_labels_from_channel_compose_to_segment():
    p = get_preset("auto-cytology")
    channel, blurred = preprocess(IMAGE, p)
    raw, labels, thresholds = labels_from_channel(blurred, p)
    seg = segment(IMAGE, p)
    np.testing.assert_array_equal(labels, seg.labels)
    np.testing.assert_array_equal(raw, seg.raw)
    assert thresholds == seg.thresholds
    cached = segment(None, p, preprocessed=(channel, blurred))
    np.testing.assert_array_equal(cached.labels, seg.labels)


def test_watershed_splits_touching_nuclei_in_segment():
    rr, cc = np.indices((40, 60))
    img = np.full((40, 60), 0.95, np.float32)
    for c in (22, 36):
        img[(rr - 20) ** 2 + (cc - c) ** 2 <= 100] = 0.2
    p = Params().with_values({"watershed.enabled": True, "watershed.min_distance": 5})
    assert segment(img).nuclei.max() == 1
    assert segment(img, p).nuclei.max() == 2


@pytest.mark.parametrize("bad, match", [
    (np.zeros((5, 5, 2)), "expected a 2-D gray or RGB image"),
    (np.full((3, 3), np.nan), "NaN"),
    (np.zeros((0, 3)), "empty"),
])
def test_segment_rejects_bad_images(bad, match):
    with pytest.raises(ValueError, match=match):
        segment(bad)
