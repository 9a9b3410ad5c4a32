"""Datasets: layouts, lazy reading, split.json, configuration, resolve_id, splits."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from cellseg_core import data
from cellseg_core.data import datasets
from cellseg_core.data import (Dataset, available_datasets, demo_datasets, open_dataset,
                                   resolve_id, stratified_split)


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _masks(n, rng):
    """n 16x16 masks with a cytoplasm disc and a nucleus of growing size."""
    rows, cols = np.mgrid[:16, :16]
    r = np.hypot(rows - 8, cols - 8)
    out = []
    for i in range(n):
        m = np.where(r < 7, 1, 0).astype(np.uint8)
        m[r < 1 + 5 * i / n] = 2
        out.append(m)
    return out


@pytest.fixture
def folder(tmp_path):
    """images/ + masks/ + split.json with zero-padded stems and int ids."""
    rng = np.random.default_rng(0)
    root = tmp_path / "mini"
    for i, m in enumerate(_masks(8, rng)):
        _png(root / "images" / f"{i:03d}.png", (rng.random((16, 16, 3)) * 255).astype(np.uint8))
        _png(root / "masks" / f"{i:03d}.png", m)
    (root / "split.json").write_text(json.dumps({"train": [0, 2, 3, 5, 6, 7], "test": [4, 1]}))
    return root


def test_folder_layout(folder):
    ds = open_dataset(folder)
    assert ds.name == "mini" and ds.kind == "cytology" and ds.has_masks
    assert ds.ids == [f"{i:03d}" for i in range(8)]
    assert ds.split == {"train": ["000", "002", "003", "005", "006", "007"],
                        "test": ["001", "004"]}
    img = ds.image("003")
    assert img.dtype == np.float32 and img.shape == (16, 16, 3)
    mask = ds.mask("003")
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1, 2}
    assert ds.instances("003") is None


def test_listing_is_lazy(folder, monkeypatch):
    calls = []
    monkeypatch.setattr(datasets, "read_image", lambda p: calls.append(p) or np.zeros((2, 2)))
    ds = Dataset.from_folder(folder)
    assert calls == [] and len(ds) == 8
    ds.image("001")
    assert len(calls) == 1


def test_missing_mask_and_labels_folder(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "fluo"
    for i in range(3):
        _png(root / "images" / f"{i}.png", (rng.random((8, 8)) * 255).astype(np.uint8))
    inst = np.zeros((8, 8), np.uint16)
    inst[1:3, 1:3], inst[5:7, 5:7] = 1, 2
    _png(root / "labels" / "0.png", inst)
    ds = open_dataset(root)
    assert ds.kind == "fluorescence" and ds.has_masks and ds.split is None
    assert ds.instances("0").dtype == np.int32 and ds.instances("0").max() == 2
    np.testing.assert_array_equal(ds.mask("0"), (inst > 0) * 2)
    assert ds.mask("1") is None and ds.instances("2") is None


def test_bad_split_json(folder):
    (folder / "split.json").write_text(json.dumps({"train": [0, 99]}))
    with pytest.raises(ValueError, match="99 of 'train' matches 0 files"):
        open_dataset(folder)
    (folder / "split.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        open_dataset(folder)


def test_not_a_dataset(tmp_path):
    with pytest.raises(ValueError, match="not a dataset folder"):
        open_dataset(tmp_path)


def test_voced_npy_layout(tmp_path):
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 256, (3, 12, 10)).astype(np.float32) / 255 for _ in range(11)]
    masks = [rng.integers(0, 3, (12, 10)).astype(np.uint8) for _ in range(11)]
    (tmp_path / "X").mkdir()
    (tmp_path / "y").mkdir()
    for i, (x, y) in enumerate(zip(images, masks)):
        np.save(tmp_path / "X" / f"{i}.npy", x)
        np.save(tmp_path / "y" / f"{i}.npy", y)
    ds = open_dataset(tmp_path)
    assert ds.ids[:3] == ["0", "1", "2"] and ds.ids[-1] == "10"      # natural order
    np.testing.assert_array_equal(ds.image("10"), np.moveaxis(images[10], 0, -1))
    np.testing.assert_array_equal(ds.mask("10"), masks[10])


@pytest.mark.parametrize("bad", ["..", "../000", "/etc/passwd", "a/b", "a\\b", "C:x", "",
                                 "999", "000\x00"])
def test_resolve_id_refuses(folder, bad):
    ds = open_dataset(folder)
    with pytest.raises(ValueError, match="`id`"):
        resolve_id(ds, bad)
    with pytest.raises(ValueError, match="`id`"):
        ds.image(bad)


def test_resolve_id_types(folder):
    ds = open_dataset(folder)
    assert resolve_id(ds, "007") == "007"
    with pytest.raises(ValueError, match="must be a string"):
        resolve_id(ds, 7)


def test_available_datasets_env_and_config(folder, tmp_path, monkeypatch):
    monkeypatch.delenv("CELLSEG_CONFIG", raising=False)
    monkeypatch.setenv("CELLSEG_DATA", os.pathsep.join([str(folder.parent), "/no/such/dir"]))
    found = available_datasets()
    assert list(found)[:2] == ["demo-cytology", "demo-fluorescence"]
    assert "mini" in found and len(found["mini"]) == 8
    # A config file: a named dataset (relative to the file) plus a data folder.
    monkeypatch.delenv("CELLSEG_DATA")
    cfg = tmp_path / "cellseg.toml"
    cfg.write_text('data = []\n[datasets]\nmine = "mini"\n')
    monkeypatch.setenv("CELLSEG_CONFIG", str(cfg))
    found = available_datasets()
    assert "mine" in found and found["mine"].source == str(folder.resolve())
    # The same folder twice is listed once; a different folder with the same name gets -2.
    other = tmp_path / "elsewhere" / "mini"
    other.mkdir(parents=True)
    _png(other / "images" / "a.png", np.zeros((4, 4), np.uint8))
    found = available_datasets({"data": [str(folder), str(folder), str(other)]})
    assert [n for n in found if n.startswith("mini")] == ["mini", "mini-2"]


def test_config_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        available_datasets(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("data = [")
    with pytest.raises(ValueError, match="not valid TOML"):
        available_datasets(bad)
    with pytest.raises(ValueError, match="unknown key"):
        available_datasets({"path": "x"})


def test_stratified_split_small(folder):
    ds = open_dataset(folder)
    a = stratified_split(ds, 0.25, seed=3)
    assert a == stratified_split(ds, 0.25, seed=3)
    assert sorted(a["train"] + a["test"]) == ds.ids and len(a["test"]) == 2
    with pytest.raises(ValueError, match="test_fraction"):
        stratified_split(ds, 1.5)


def test_demo_datasets():
    demo = demo_datasets()
    cyto, fluo = demo["demo-cytology"], demo["demo-fluorescence"]
    assert len(cyto) == 24 and len(fluo) == 12
    assert cyto.kind == "cytology" and fluo.kind == "fluorescence"
    img, mask = cyto.image("005"), cyto.mask("005")
    assert img.shape == (256, 256, 3) and img.dtype == np.float32
    assert set(np.unique(mask)) == {0, 1, 2}
    assert fluo.instances("000").max() == 8 and set(np.unique(fluo.mask("000"))) == {0, 2}
    # Deterministic split, a quarter for test, the same on every call.
    assert len(cyto.split["test"]) == 6 and len(fluo.split["test"]) == 3
    assert cyto.split == demo_datasets()["demo-cytology"].split
    assert sorted(cyto.split["train"] + cyto.split["test"]) == cyto.ids


# --- the real data ----------------------------------------------------------------------
def test_voced_loads_as_is(voced, voced_split, voced_arrays):
    ds = open_dataset(voced)
    assert len(ds) == 200 and ds.kind == "cytology"
    assert ds.split["train"] == [f"{i:03d}" for i in voced_split["train"]]
    assert ds.split["test"] == [f"{i:03d}" for i in voced_split["test"]]
    assert len(ds.split["train"]) == 160 and len(ds.split["test"]) == 40
    rgb, mask = voced_arrays[58]
    np.testing.assert_array_equal(ds.image("058"), rgb.astype(np.float32) / 255)
    np.testing.assert_array_equal(ds.mask("058"), mask)


def test_voced_lab02_split(voced):
    ds = open_dataset(voced)
    split = stratified_split(ds, 0.2, seed=42, drop_without_nucleus=True)
    assert len(split["train"]) + len(split["test"]) == 191        # 9 have no nucleus
    assert len(split["test"]) == 39
    assert "121" not in split["train"] + split["test"]            # the nucleus-less one
    nc = data.nc_ratios(ds, split["test"])
    nc_train = data.nc_ratios(ds, split["train"])
    # Stratified: every quartile of the whole set is in the test set about 1/5 of the time.
    edges = np.quantile(np.concatenate([nc, nc_train]), [0.25, 0.5, 0.75])
    counts = np.bincount(np.searchsorted(edges, nc), minlength=4)
    assert counts.min() >= 9 and counts.max() <= 11
    full = stratified_split(ds, 0.2, seed=42)
    assert len(full["test"]) == 40 and len(full["train"]) == 160
