"""Decode settings of the nucleus model: metadata keys with a backward-compatible default,
the distance decode, test-time augmentation and the classical size estimate."""
from __future__ import annotations

import numpy as np
import pytest

from cellseg_core.autoseg import estimate_nucleus_diameter
from cellseg_core.learn.nuclei import (BUILTIN_MODEL, DECODE, LEGACY_DECODE, NucleusModel,
                                        estimate_diameter, normalize_image,
                                        probabilities_to_instances)
from tests.learn.test_nuclei_model import _blobs

onnx = pytest.importorskip("onnx")


def _with_metadata(tmp_path, name, drop=(), **extra):
    """A copy of the built-in model with some metadata keys dropped or set."""
    model = onnx.load(str(BUILTIN_MODEL))
    kept = [(e.key, e.value) for e in model.metadata_props if e.key not in drop and
            e.key not in extra]
    del model.metadata_props[:]
    for key, value in kept + [(k, str(v)) for k, v in extra.items()]:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def test_builtin_model_carries_the_chosen_decode():
    model = NucleusModel()
    assert {k: model.metadata[k] for k in DECODE} == DECODE
    assert (model.decode, model.size_estimate, model.tta) == ("distance", "classical", 1)


def test_file_without_decode_keys_decodes_as_before(tmp_path):
    old = NucleusModel(_with_metadata(tmp_path, "old.onnx", drop=tuple(DECODE)))
    assert not set(DECODE) & set(old.metadata)
    assert (old.decode, old.size_estimate, str(old.tta)) == tuple(LEGACY_DECODE.values())
    new = NucleusModel()
    image = _blobs((256, 256), n=40, seed=5)
    old_i, old_p = old.predict(image, diameter=old.diameter)
    new_i, new_p = new.predict(image, diameter=new.diameter)
    np.testing.assert_array_equal(old_p, new_p)          # same network, same probabilities
    legacy = probabilities_to_instances(old_p, marker_threshold=old.marker_threshold,
                                        foreground_threshold=old.foreground_threshold,
                                        min_size=old.min_size)  # the default: interior
    np.testing.assert_array_equal(old_i, legacy)
    distance = probabilities_to_instances(new_p, marker_threshold=new.marker_threshold,
                                          foreground_threshold=new.foreground_threshold,
                                          min_size=new.min_size, decode="distance",
                                          diameter=new.diameter)
    np.testing.assert_array_equal(new_i, distance)
    # Old files estimate the size with the model, as before; the built-in one classically.
    assert estimate_diameter(image, model=old) == estimate_diameter(image, model=old,
                                                                    method="model")
    assert estimate_diameter(image, model=new) == estimate_nucleus_diameter(image)
    assert estimate_diameter(image, model=old) != estimate_nucleus_diameter(image)


@pytest.mark.parametrize("key, value, match", [("decode", "blobs", "`decode`"),
                                               ("size_estimate", "guess", "`size_estimate`"),
                                               ("tta", "3", "`tta`"), ("tta", "x", "`tta`")])
def test_unknown_decode_settings_in_a_file_refused(tmp_path, key, value, match):
    path = _with_metadata(tmp_path, "odd.onnx", **{key: value})
    with pytest.raises(ValueError, match=match):
        NucleusModel(path)


def test_arguments_override_the_file():
    model = NucleusModel(decode="interior", size_estimate="model", tta=4)
    assert (model.decode, model.size_estimate, model.tta) == ("interior", "model", 4)


def test_distance_decode_parts_nuclei_whose_cores_merged_and_drops_coreless_pieces():
    rr, cc = np.indices((40, 120))
    disks = [(20, 14), (20, 29), (20, 75), (20, 104)]
    fg = np.zeros(rr.shape, bool)
    for r, c in disks:
        fg |= (rr - r) ** 2 + (cc - c) ** 2 < 100
    interior = fg.astype(float)
    interior[:, 90:] *= 0.6            # the last disk: foreground without a core
    p = np.stack([1 - fg, interior, fg - interior], -1)
    # interior: the overlapping pair is one core, one nucleus; the coreless disk is lost.
    assert probabilities_to_instances(p, marker_threshold=0.7).max() == 2
    out = probabilities_to_instances(p, marker_threshold=0.7, decode="distance", diameter=20)
    assert out.max() == 3
    assert out[20, 14] != out[20, 29] and out[20, 14] and out[20, 29] and out[20, 75]
    assert out[20, 104] == 0
    with pytest.raises(ValueError, match="`decode`"):
        probabilities_to_instances(p, decode="stardist")
    with pytest.raises(ValueError, match="`diameter`"):
        probabilities_to_instances(p, decode="distance", diameter=0)


def test_tta_averages_over_transforms_so_it_is_equivariant():
    model = NucleusModel()
    x = normalize_image(_blobs((64, 96), n=8, radius=8, seed=2))
    one = model.probabilities(x)
    # Without augmentation the network is not exactly rotation-equivariant ...
    assert np.abs(np.rot90(one) - model.probabilities(np.ascontiguousarray(np.rot90(x)))).max() \
        > 1e-3
    # ... with all eight flips/rotations it is, up to float rounding.
    eight = model.probabilities(x, tta=8)
    np.testing.assert_allclose(np.rot90(eight),
                               model.probabilities(np.ascontiguousarray(np.rot90(x)), tta=8),
                               atol=1e-5)
    two = model.probabilities(x, tta=2)
    np.testing.assert_allclose(two[:, ::-1], model.probabilities(
        np.ascontiguousarray(x[:, ::-1]), tta=2), atol=1e-5)
    np.testing.assert_allclose(eight.sum(-1), 1, atol=1e-4)
    assert np.abs(eight - one).max() > 1e-3
    with pytest.raises(ValueError, match="`tta`"):
        model.probabilities(x, tta=3)


def test_classical_size_estimate_is_auto_nuclei_s_and_falls_back_to_the_model():
    model = NucleusModel()
    for radius in (6, 14):
        image = _blobs((256, 256), n=12, radius=radius, seed=radius)
        true = 2 * np.sqrt((np.hypot(*np.mgrid[-radius:radius, -radius:radius]) < radius).sum()
                           / np.pi)
        found = estimate_diameter(image, model=model)
        assert found == pytest.approx(estimate_nucleus_diameter(image))
        assert abs(found / true - 1) < 0.25
    blank = np.full((64, 64), 0.3, np.float32)
    assert not np.isfinite(estimate_nucleus_diameter(blank))
    assert estimate_diameter(blank, model=model) == estimate_diameter(blank, model=model,
                                                                      method="model")
    with pytest.raises(ValueError, match="`method`"):
        estimate_diameter(blank, model=model, method="ruler")
